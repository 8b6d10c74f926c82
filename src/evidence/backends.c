/* The evidence backends: for each TEE kind its producer (<tee>_produce.c) and
 * verifier (<tee>_verify.c), and the registry that finds them by name. */
#include "evidence/internal.h"

#include <string.h>

const struct ev_backend ev_backend_sim = {
	.name = "sim",
	.insecure = true,
	.produce = ev__sim_produce,
	.verify = ev__sim_verify,
};

const struct ev_backend ev_backend_host = {
	.name = "host",
	.insecure = false,
	.produce = ev__host_produce,
	.verify = ev__host_verify,
};

/* No producer: kiln does not run as an SGX enclave (sgx_verify.c). */
const struct ev_backend ev_backend_sgx = {
	.name = "sgx",
	.insecure = false,
	.produce = NULL,
	.verify = ev__sgx_verify,
};

const struct ev_backend ev_backend_tdx = {
	.name = "tdx",
	.insecure = false,
	.produce = ev_tdx_produce,
	.verify = ev__tdx_verify,
};

const struct ev_backend ev_backend_snp = {
	.name = "snp",
	.insecure = false,
	.produce = ev_snp_produce,
	.verify = ev__snp_verify,
};

static const struct ev_backend *const g_backends[] = {
	&ev_backend_sim,
	&ev_backend_host,
	&ev_backend_snp,
	&ev_backend_sgx,
	&ev_backend_tdx,
	NULL
};

const struct ev_backend *const *ev_backends(void)
{
	return g_backends;
}

const struct ev_backend *ev_backend_find(const char *name)
{
	for (size_t i = 0; g_backends[i]; i++)
		if (strcmp(g_backends[i]->name, name) == 0)
			return g_backends[i];
	return NULL;
}
