/* Fuzz the PCCS answers parser (cas__pccs_collateral, src/cas/pccs_parse.c):
 * the input is the seven parts a PCCS fetch yields (PCK CRL, its issuer chain,
 * Root CA CRL, TCB Info answer, its chain, QE identity answer, its chain),
 * separated by the bytes "\n~~\n". An accepted set must be a JSON object whose
 * signed documents are the raw members of the answers. */
#include <stdlib.h>
#include <string.h>

#include "cas/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *part(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *s = *p, *m = NULL;
	char *out;

	for (const uint8_t *q = s; q + 4 <= end; q++)
		if (!memcmp(q, "\n~~\n", 4)) {
			m = q;
			break;
		}
	*len = (size_t)((m ? m : end) - s);
	out = malloc(*len + 1);
	if (out) {
		memcpy(out, s, *len);
		out[*len] = '\0';
	}
	*p = m ? m + 4 : end;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct cas__pccs_answers a = { 0 };
	struct kiln_err err = { 0 };
	char *parts[7];
	size_t lens[7];
	json_t *j = NULL;
	int ret;

	for (size_t i = 0; i < 7; i++)
		parts[i] = part(&p, end, &lens[i]);
	a.pck_crl = (struct cas__pccs_body){ parts[0], lens[0] };
	a.pck_crl_chain = parts[1];
	a.root_ca_crl = (struct cas__pccs_body){ parts[2], lens[2] };
	a.tcb_info = (struct cas__pccs_body){ parts[3], lens[3] };
	a.tcb_info_chain = parts[4];
	a.qe_identity = (struct cas__pccs_body){ parts[5], lens[5] };
	a.qe_identity_chain = parts[6];
	ret = cas__pccs_collateral(&a, &j, &err);
	if ((ret < 0) != (j == NULL))
		abort();
	if (ret == 0 && (!strstr(parts[3], json_string_value(json_object_get(j, "tcb_info"))) ||
			 !strstr(parts[5], json_string_value(json_object_get(j, "qe_identity")))))
		abort();
	json_decref(j);
	for (size_t i = 0; i < 7; i++)
		free(parts[i]);
	return 0;
}
