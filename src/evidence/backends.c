/* Registry of evidence backends. Each backend file defines one `ev_backend_X`. */
#include "evidence/evidence.h"

#include <string.h>

#include "evidence/dcap.h"

extern const struct ev_backend ev_backend_snp;

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
