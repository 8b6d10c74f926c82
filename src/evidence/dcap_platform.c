/* Which platform an Intel quote comes from and which platform a collateral
 * covers (both by FMSPC), so that a verifier holding collateral for many
 * platforms (the CAS, docs/cas.md "Collateral per platform") picks the one that
 * can verify a quote, and says which is missing or stale. Choosing is not
 * verifying: the chosen collateral still verifies the whole quote. */
#include <stdio.h>
#include <string.h>

#include "evidence/dcap.h"
#include "evidence/evidence.h"

static void hex_upper(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int ev_dcap_quote_fmspc(const uint8_t *quote, size_t size, char out[EV_FMSPC_SIZE],
			struct kiln_err *err)
{
	struct ev_dcap_der ders[EV_DCAP_MAX_CHAIN];
	struct ev_dcap_pck_ext ext;
	struct ev_dcap_quote q;
	X509 *pck = NULL;
	int n = 0, ret;

	out[0] = '\0';
	ret = ev_dcap_quote_parse(quote, size, &q, err);
	if (ret < 0)
		return ret;
	ret = ev_dcap_pem_split(q.pck_pem, q.pck_pem_size, "quote PCK chain", ders,
				EV_DCAP_MAX_CHAIN, &n, err);
	if (ret)
		return ret < 0 ? ret : -KILN_EFORMAT;
	pck = ev_dcap_der_cert(&ders[0], "quote PCK chain", 1, err);
	ret = pck ? ev_dcap_pck_ext_parse(pck, &ext, err) : -KILN_EFORMAT;
	if (ret == 0)
		hex_upper(ext.fmspc, sizeof(ext.fmspc), out);
	X509_free(pck);
	ev_dcap_der_free(ders, n);
	return ret;
}

int ev_dcap_collateral_info(const struct json_t *collateral, struct ev_collateral_info *out,
			    struct kiln_err *err)
{
	ev_dcap_collateral_t *c = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = ev_dcap_collateral_parse(collateral, &c, err);
	if (ret < 0)
		return ret;
	hex_upper(c->fmspc, sizeof(c->fmspc), out->fmspc);
	snprintf(out->tcb_id, sizeof(out->tcb_id), "%s", c->tcb_id ? c->tcb_id : "");
	for (size_t i = 0; i < c->n_windows; i++) {
		const struct ev_dcap_window *w = &c->windows[i];

		if (i == 0 || w->not_before > out->valid_from)
			out->valid_from = w->not_before;
		if (i == 0 || w->not_after < out->valid_until) {
			out->valid_until = w->not_after;
			snprintf(out->next, sizeof(out->next), "%s", w->what);
		}
	}
	ev_dcap_collateral_free(c);
	return 0;
}
