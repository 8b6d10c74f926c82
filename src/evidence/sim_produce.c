/* The "sim" evidence producer: INSECURE, for development only. The evidence is
 * a plain JSON claims blob anyone can forge (format: sim_verify.c); the CAS
 * accepts it only when a policy opts in (security.allow_insecure_sim). No JSON
 * library: libkiln links this file as it is (its evidence for kiln run --tee
 * sim), and libkiln has no jansson. */
#include "evidence/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int ev_sim_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		   const uint8_t wm[static EV_WM_SIZE], uint8_t **ev, size_t *size)
{
	char rd_hex[2 * EV_REPORT_DATA_SIZE + 1], wm_hex[2 * EV_WM_SIZE + 1];
	char *out;
	int n;

	*ev = NULL;
	*size = 0;
	out = malloc(EV__SIM_MAX_SIZE);
	if (!out)
		return -ENOMEM;
	kiln_hex_encode(report_data, EV_REPORT_DATA_SIZE, rd_hex);
	kiln_hex_encode(wm, EV_WM_SIZE, wm_hex);
	n = snprintf(out, EV__SIM_MAX_SIZE,
		     "{\"tee\": \"sim\", \"report_data\": \"%s\", "
		     "\"workload_measurement\": \"%s\"}",
		     rd_hex, wm_hex);
	*ev = (uint8_t *)out;
	*size = (size_t)n;
	return 0;
}

int ev__sim_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		    size_t *size, struct kiln_err *err)
{
	uint8_t wm[EV_WM_SIZE];
	int ret;

	*evidence = NULL;
	*size = 0;
	ret = ev_workload_measure_pid(0, wm, NULL, err);
	if (ret < 0) {
		kiln_err_prefix(err, "sim evidence: ");
		return ret;
	}
	return ev_sim_produce(report_data, wm, evidence, size);
}
