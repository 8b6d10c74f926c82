/* Intel TDX DCAP backend: verification of TD quotes v4 and v5. Production goes through
 * configfs-tsm and lives with the other configfs-tsm producers (not in this file). */
#include "evidence/dcap.h"

static int tdx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		      json_t **claims, struct kiln_err *err)
{
	return dcap_backend_verify(evidence, size, DCAP_TEE_TDX, opts, claims, err);
}

const struct ev_backend ev_backend_tdx = {
	.name = "tdx",
	.insecure = false,
	.produce = NULL,
	.verify = tdx_verify,
};
