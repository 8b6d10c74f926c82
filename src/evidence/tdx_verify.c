/* Intel TDX DCAP verifier: TD quotes v4 and v5 (the checks are dcap_verify.c's).
 * The producer is tdx_produce.c (configfs-tsm). */
#include "evidence/dcap.h"
#include "evidence/internal.h"

int ev__tdx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   json_t **claims, struct kiln_err *err)
{
	return ev_dcap_backend_verify(evidence, size, EV_DCAP_TEE_TDX, opts, claims, err);
}
