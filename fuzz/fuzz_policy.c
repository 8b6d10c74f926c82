/* libFuzzer target: policy YAML parser, validator and canonicalizer. */
#include <stdint.h>
#include <stdlib.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;

	if (pol_parse((const char *)data, size, "fuzz.yaml", &p, &err) == 0) {
		static const char *const ids[] = {
			"sha256:2222222222222222222222222222222222222222222222222222222222222222",
			"sha256:3333333333333333333333333333333333333333333333333333333333333333",
		};
		char *text = pol_canonical_text(p), why[POL_WHY_SIZE];

		/* The access rules over the parsed form: quorum counts, export changes. */
		(void)pol_may_apply(p, p, ids[0], ids, 2, why, sizeof(why));
		(void)pol_may_delete(p, ids[1], ids, 2, why, sizeof(why));
		(void)pol_may_read(p, ids[0], ids[1]);

		free(text);
		for (size_t i = 0; i < p->n_services; i++) {
			json_t *claims = json_pack("{s:s,s:b,s:s}", "tee", "sim", "insecure", 1,
						   "workload_measurement", "00");
			char reason[256];
			const char *label;

			(void)pol_decide(p, &p->services[i], claims, 0, reason, sizeof(reason),
					 &label);
			json_decref(claims);
			/* security.tolerate entries against a quote with advisories,
			 * before and after a typical `until`. */
			claims = json_pack("{s:s,s:s,s:[s,s]}", "tee", "sgx", "tcb_status",
					   "ConfigurationAndSWHardeningNeeded", "advisories",
					   "INTEL-SA-00289", "INTEL-SA-00615");
			(void)pol_decide(p, &p->services[i], claims, 1751328000, reason,
					 sizeof(reason), &label);
			(void)pol_tolerance_used(p, claims, 1900000000);
			json_decref(claims);
		}
		pol_free(p);
	}
	return 0;
}
