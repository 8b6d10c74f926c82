/* Fuzz the DCAP quote parser and the verification pipeline that follows it (PEM chain,
 * X.509 and PCK extension parsing, signature checks) with the real SGX collateral, at
 * a fixed time inside its window, and the collateral-free inspection (kiln evidence
 * inspect). Seeds: the three real quotes. No input may crash, leak or read out of
 * bounds; an input verification accepts is one inspection accepts too (inspection
 * checks a subset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/dcap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static ev_dcap_collateral_t *g_sgx, *g_tdx;

static ev_dcap_collateral_t *load(const char *rel)
{
	const char *base = getenv("KILN_TESTDATA");
	char path[4096];
	json_t *j;
	ev_dcap_collateral_t *c = NULL;

	snprintf(path, sizeof(path), "%s/%s", base ? base : "../shared/testdata", rel);
	j = json_load_file(path, 0, NULL);
	if (j && ev_dcap_collateral_parse(j, &c, NULL) != 0)
		c = NULL;
	json_decref(j);
	return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Without the collateral the target still fuzzes the parser. */
	g_sgx = load("evidence/sgx/collateral.json");
	g_tdx = load("evidence/tdx/quote_v4_collateral.json");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ev_dcap_quote q;
	struct kiln_err err;
	json_t *claims = NULL, *inspected = NULL;
	time_t at = 1751328000;  /* 2025-07-01T00:00:00Z */
	int verified, ins;

	if (ev_dcap_quote_parse(data, size, &q, &err) != 0)
		return 0;
	/* Everything the parser returned lies inside the input. */
	if (q.pck_pem_off + q.pck_pem_size > size || q.trailing > size ||
	    q.body_off + q.body_size > size)
		abort();
	verified = ev_dcap_verify(data, size, q.tee_type,
				  q.tee_type == EV_DCAP_TEE_TDX ? g_tdx : g_sgx, at, &claims, &err);
	if (verified == 0 && !claims)
		abort();
	ins = ev_dcap_inspect(data, size, q.tee_type == EV_DCAP_TEE_TDX, at, &inspected, &err);
	if ((ins == 0) != (inspected != NULL) || (verified == 0 && ins != 0))
		abort();
	json_decref(claims);
	json_decref(inspected);
	return 0;
}
