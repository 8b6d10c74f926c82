/* Intel SGX DCAP verifier: the quote checks are dcap_verify.c's. There is no
 * SGX producer: an SGX quote needs an enclave, the Intel Quoting Enclave and
 * /dev/sgx_enclave (+ the AESM or in-process QE3 quote library), and kiln does
 * not run as an SGX enclave, so the backend's produce is NULL (backends.c). */
#include "evidence/dcap.h"
#include "evidence/internal.h"

int ev__sgx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   json_t **claims, struct kiln_err *err)
{
	return ev_dcap_backend_verify(evidence, size, EV_DCAP_TEE_SGX, opts, claims, err);
}
