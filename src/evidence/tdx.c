/* Intel TDX DCAP backend: verification of TD quotes v4 and v5. Production goes through
 * configfs-tsm and lives with the other configfs-tsm producers (ev_tdx_produce in
 * tsm.c). */
#include "evidence/dcap.h"
#include "evidence/tsm.h"

static int tdx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		      json_t **claims, struct kiln_err *err)
{
	return dcap_backend_verify(evidence, size, DCAP_TEE_TDX, opts, claims, err);
}

const struct ev_backend ev_backend_tdx = {
	.name = "tdx",
	.insecure = false,
	.produce = ev_tdx_produce,
	.verify = tdx_verify,
};
