/* Fuzz DCAP collateral handling: (1) the whole collateral JSON through
 * ev_dcap_collateral_parse (chains, CRLs, signatures); (2) the same input as a TCB Info
 * and as a QE Identity document evaluated against the real SGX and TDX quotes, skipping
 * the signature so that the TCB-level walk itself is reached. Seeds: the three real
 * collateral files and their tcbInfo / enclaveIdentity documents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/dcap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static uint8_t *g_quote[2];
static size_t g_size[2];
static struct ev_dcap_quote g_q[2];

static void load(int i, const char *rel)
{
	const char *base = getenv("KILN_TESTDATA");
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", base ? base : "../shared/testdata", rel);
	if (kiln_read_file(path, 1 << 20, &g_quote[i], &g_size[i]) != 0 ||
	    ev_dcap_quote_parse(g_quote[i], g_size[i], &g_q[i], NULL) != 0) {
		free(g_quote[i]);
		g_quote[i] = NULL;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	load(0, "evidence/sgx/quote.bin");
	load(1, "evidence/tdx/quote_v4.bin");
	return 0;
}

static void eval(json_t *doc)
{
	struct ev_dcap_pck_ext ext;

	memset(&ext, 0, sizeof(ext));
	memset(ext.comp_svn, 3, sizeof(ext.comp_svn));
	ext.pcesvn = 13;
	for (int i = 0; i < 2; i++) {
		ev_dcap_collateral_t c;
		struct ev_dcap_tcb_result r = {0};
		const char *fmspc = json_string_value(json_object_get(doc, "fmspc"));

		if (!g_quote[i])
			continue;
		memset(&c, 0, sizeof(c));
		c.tcb_info = doc;
		c.qe_identity = doc;
		c.tcb_id = i ? "TDX" : "SGX";
		c.qe_id = i ? "TD_QE" : "QE";
		c.tcb_version = (int)json_integer_value(json_object_get(doc, "version"));
		if (fmspc && strlen(fmspc) == 12)
			kiln_hex_decode(fmspc, ext.fmspc, 6, NULL);
		memcpy(c.fmspc, ext.fmspc, 6);
		ev_dcap_eval_qe(&c, g_q[i].qe_report, &r, NULL);
		ev_dcap_eval_tcb(&c, &ext, &g_q[i], &r, NULL);
		ev_dcap_tcb_result_clear(&r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	ev_dcap_collateral_t *c = NULL;

	if (!j)
		return 0;
	if (ev_dcap_collateral_parse(j, &c, NULL) == 0) {
		if (!c)
			abort();
		ev_dcap_collateral_free(c);
	}
	if (json_is_object(j))
		eval(j);
	json_decref(j);
	return 0;
}
