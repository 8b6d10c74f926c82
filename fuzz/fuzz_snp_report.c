/* Fuzz the SEV-SNP report parser, the certificate-table parser, the whole
 * verifier (with any certificates the input's table carries) and the AMD
 * certificate import of the CAS (ev_amd_import): no input may crash,
 * over-read, leak or hang, and a success must come with claims. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/snp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ev_snp_report r;
	struct ev_verify_opts opts = { .at = 1751328000 }; /* 2025-07-01T00:00:00Z */
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	uint8_t **ders = NULL;
	size_t *sizes = NULL, n = 0;
	int ret;

	ret = ev_snp_report_parse(data, size, &r, &err);
	if (ret == 0 && size != EV_SNP_REPORT_SIZE)
		abort();
	if (size > EV_SNP_REPORT_SIZE &&
	    ev_snp_cert_table_parse(data + EV_SNP_REPORT_SIZE, size - EV_SNP_REPORT_SIZE, &ders,
				    &sizes, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			free(ders[i]);
		free(ders);
		free(sizes);
	}
	ret = ev_backend_snp.verify(data, size, &opts, &claims, &err);
	if ((ret == 0) != (claims != NULL))
		abort();
	json_decref(claims);
	/* The CAS's store of AMD certificates: the key of a report, and an import
	 * file (PEM or DER) of any bytes. */
	{
		char key[EV_AMD_KEY_SIZE], chip[17];
		enum ev_snp_signing_key kind;
		struct ev_amd_item item;

		if (ev_amd_report_key(data, size, key, &kind, chip, &err) == 0 &&
		    strncmp(key, "vcek:", 5) && strncmp(key, "vlek:", 5))
			abort();
		if (ev_amd_import(data, size, NULL, 0, &item, &err) == 0)
			free(item.pem);
	}
	return 0;
}
