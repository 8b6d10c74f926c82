/* Fuzz the "sim" evidence verifier (strict JSON, exact keys, hex lengths). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ev_backend *sim = ev_backend_find("sim");
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	int ret = sim->verify(data, size, NULL, &claims, &err);

	if ((ret < 0) != (claims == NULL))
		abort();
	if (ret == 0) {
		/* Accepted evidence re-produces to an equal claims set. */
		uint8_t rd[EV_REPORT_DATA_SIZE], wm[EV_WM_SIZE], *again = NULL;
		size_t again_size = 0;
		json_t *claims2 = NULL;

		if (kiln_hex_decode(json_string_value(json_object_get(claims, "report_data")), rd,
				    sizeof(rd), NULL) < 0 ||
		    kiln_hex_decode(json_string_value(json_object_get(claims,
								      "workload_measurement")),
				    wm, sizeof(wm), NULL) < 0 ||
		    ev_sim_produce(rd, wm, &again, &again_size) < 0 ||
		    sim->verify(again, again_size, NULL, &claims2, &err) < 0 ||
		    !json_equal(claims, claims2))
			abort();
		free(again);
		json_decref(claims2);
	}
	json_decref(claims);
	return 0;
}
