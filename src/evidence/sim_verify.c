/* The "sim" evidence verifier: INSECURE, for development only. The evidence is
 * a plain JSON claims blob anyone can forge (sim_produce.c makes it); the CAS
 * accepts it only when a policy opts in (security.allow_insecure_sim) and the
 * claims say "insecure": true.
 *
 * Format (BRIEF-protocol): {"tee": "sim", "report_data": "<128 hex>",
 * "workload_measurement": "<96 hex>"}; exactly these keys, lowercase hex. */
#include "evidence/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int ev__sim_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   json_t **claims, struct kiln_err *err)
{
	static const char *const keys[] = { "tee", "report_data", "workload_measurement" };
	static const char what[] = "sim evidence";
	uint8_t rd[EV_REPORT_DATA_SIZE], wm[EV_WM_SIZE];
	char rd_hex[2 * EV_REPORT_DATA_SIZE + 1], wm_hex[2 * EV_WM_SIZE + 1];
	const char *tee;
	json_t *j = NULL, *c = NULL;
	int ret;

	*claims = NULL;
	if (size > EV__SIM_MAX_SIZE)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: %zu bytes, at most %d allowed", what,
				    size, EV__SIM_MAX_SIZE);
	ret = ev__json_object(evidence, size, what, &j, err);
	if (ret < 0)
		goto out;
	ret = ev__json_keys(j, keys, KILN_ARRAY_SIZE(keys), what, err);
	if (ret < 0)
		goto out;
	ret = ev__json_str(j, "tee", &tee, what, err);
	if (ret < 0)
		goto out;
	if (strcmp(tee, "sim") != 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: 'tee' is '%.32s', expected 'sim'", what,
				   tee);
		goto out;
	}
	ret = ev__json_hex(j, "report_data", rd, sizeof(rd), what, err);
	if (ret < 0)
		goto out;
	ret = ev__json_hex(j, "workload_measurement", wm, sizeof(wm), what, err);
	if (ret < 0)
		goto out;
	kiln_hex_encode(rd, sizeof(rd), rd_hex);
	kiln_hex_encode(wm, sizeof(wm), wm_hex);
	c = json_pack("{s:s, s:b, s:b, s:s, s:s}", "tee", "sim", "insecure", 1, "debug", 1,
		      "report_data", rd_hex, "workload_measurement", wm_hex);
	if (!c) {
		ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	*claims = c;
	ret = 0;
out:
	json_decref(j);
	return ret;
}
