/* Intel SGX DCAP backend: verification only. Producing an SGX quote needs an enclave,
 * the Intel Quoting Enclave and /dev/sgx_enclave (+ the AESM or in-process QE3 quote
 * library); kiln does not run as an SGX enclave, so produce is NULL here. */
#include "evidence/dcap.h"

static int sgx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		      json_t **claims, struct kiln_err *err)
{
	return dcap_backend_verify(evidence, size, DCAP_TEE_SGX, opts, claims, err);
}

const struct ev_backend ev_backend_sgx = {
	.name = "sgx",
	.insecure = false,
	.produce = NULL,
	.verify = sgx_verify,
};
