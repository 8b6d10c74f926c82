/* DCAP collateral: the JSON object of testdata/evidence/sgx/collateral.json (the
 * format of dcap-qvl's QuoteCollateralV3, documented in docs/evidence-intel.md).
 *
 * Parsing authenticates everything that does not depend on the verification time:
 * issuer chains to the pinned root, Root CA CRL and PCK CRL signatures, revocation of
 * the issuer chains by the Root CA CRL, and the TCB Info / QE Identity signatures over
 * their exact JSON bytes. The time windows are recorded and checked per verification,
 * so one parsed collateral can serve many quotes (the cache the benchmark measures). */
#include "evidence/dcap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static int add_window(ev_dcap_collateral_t *c, const char *what, time_t nb, time_t na)
{
	if (c->n_windows >= EV_DCAP_MAX_WINDOWS)
		return -KILN_EFORMAT;
	snprintf(c->windows[c->n_windows].what, sizeof(c->windows[0].what), "%s", what);
	c->windows[c->n_windows].not_before = nb;
	c->windows[c->n_windows].not_after = na;
	c->n_windows++;
	return 0;
}

static int add_cert_window(ev_dcap_collateral_t *c, X509 *cert, const char *chain,
			   struct kiln_err *err)
{
	char cn[80], what[96];
	time_t nb, na;

	if (ev_dcap_asn1_time(X509_get0_notBefore(cert), &nb) ||
	    ev_dcap_asn1_time(X509_get0_notAfter(cert), &na))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad validity in '%s'", chain,
				    ev_dcap_cert_name(cert, cn, sizeof(cn)));
	snprintf(what, sizeof(what), "certificate '%s'", ev_dcap_cert_name(cert, cn, sizeof(cn)));
	for (size_t i = 0; i < c->n_windows; i++)
		if (strcmp(c->windows[i].what, what) == 0 && c->windows[i].not_before == nb &&
		    c->windows[i].not_after == na)
			return 0;
	if (add_window(c, what, nb, na))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: too many certificates", chain);
	return 0;
}

/* Chain [signer, (root)] ending at the pinned root: the link, the Root CA CRL and the
 * windows. */
static int chain_to_root(ev_dcap_collateral_t *c, STACK_OF(X509) *chain, const char *what,
			 struct kiln_err *err)
{
	X509 *root = ev_dcap_root_ca(err), *cert;
	int n = sk_X509_num(chain), r;
	char cn[80];

	if (!root)
		return -KILN_EROOT;
	if (ev_dcap_is_root(sk_X509_value(chain, n - 1)))
		n--;
	else if (X509_check_issued(sk_X509_value(chain, n - 1), sk_X509_value(chain, n - 1)) ==
		 X509_V_OK)
		return kiln_err_set(err, -KILN_EROOT,
				    "%s ends at '%s', which is not the pinned Intel SGX Root CA",
				    what, ev_dcap_cert_name(sk_X509_value(chain, n - 1), cn,
							    sizeof(cn)));
	if (n == 0)
		return kiln_err_set(err, -KILN_ECHAIN, "%s holds only the root", what);
	cert = sk_X509_value(chain, n - 1);
	if (X509_check_issued(root, cert) != X509_V_OK)
		return kiln_err_set(err, -KILN_EROOT,
				    "%s: '%s' is not issued by the pinned Intel SGX Root CA", what,
				    ev_dcap_cert_name(cert, cn, sizeof(cn)));
	/* Every collateral signer (TCB Signing, PCK Processor/Platform CA) is issued by the
	 * root directly: exactly one certificate besides the root. */
	if (n != 1)
		return kiln_err_set(err, -KILN_ECHAIN, "%s: expected one certificate issued by "
				    "the Intel SGX Root CA (and the root), found %d certificates",
				    what, sk_X509_num(chain));
	if ((r = ev_dcap_check_issued(root, cert, what, err)) ||
	    (r = ev_dcap_check_revoked(c->root_crl, cert, what, "Intel SGX Root CA CRL", err)) ||
	    (r = add_cert_window(c, cert, what, err)))
		return r;
	return add_cert_window(c, root, what, err);
}

static int get_str(const json_t *obj, const char *key, const char **s, size_t *size,
		   struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return kiln_err_set(err, -KILN_EFORMAT, "collateral: \"%s\" %s", key,
				    v ? "is not a string" : "is missing");
	*s = json_string_value(v);
	*size = json_string_length(v);
	return 0;
}

static int crl_window(ev_dcap_collateral_t *c, X509_CRL *crl, const char *what,
		      struct kiln_err *err)
{
	time_t tu, nu;

	if (ev_dcap_asn1_time(X509_CRL_get0_lastUpdate(crl), &tu) ||
	    !X509_CRL_get0_nextUpdate(crl) ||
	    ev_dcap_asn1_time(X509_CRL_get0_nextUpdate(crl), &nu))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: missing thisUpdate/nextUpdate",
				    what);
	return add_window(c, what, tu, nu);
}

/* A signed JSON document (TCB Info, QE Identity): chain, signature, parse, window. */
static int signed_doc(ev_dcap_collateral_t *c, const json_t *j, const char *key,
		      const char *name, json_t **doc, struct kiln_err *err)
{
	STACK_OF(X509) *chain = NULL;
	/* Set by get_str when it returns 0 (-O3 cannot see it). */
	const char *text = NULL, *sig_hex = NULL, *pem = NULL;
	size_t text_size = 0, sig_size = 0, pem_size = 0;
	char k_chain[64], k_sig[64], what[96], cn[80];
	uint8_t sig[EV_DCAP_SIG_SIZE];
	json_error_t jerr;
	const char *issue, *next;
	time_t nb, na;
	int ret;

	snprintf(k_chain, sizeof(k_chain), "%s_issuer_chain", key);
	snprintf(k_sig, sizeof(k_sig), "%s_signature", key);
	if ((ret = get_str(j, key, &text, &text_size, err)) ||
	    (ret = get_str(j, k_sig, &sig_hex, &sig_size, err)) ||
	    (ret = get_str(j, k_chain, &pem, &pem_size, err)))
		return ret;
	snprintf(what, sizeof(what), "%s issuer chain", name);
	if ((ret = ev_dcap_pem_chain(pem, pem_size, what, &chain, err)) ||
	    (ret = chain_to_root(c, chain, what, err)) ||
	    (ret = ev_dcap_check_cn(sk_X509_value(chain, 0), ev_dcap_cn_tcb_signing, what, err)))
		goto out;
	if (kiln_hex_decode(sig_hex, sig, sizeof(sig), NULL) != 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT,
				   "collateral: \"%s\" must be 64 bytes (r||s) in hex", k_sig);
		goto out;
	}
	ret = ev_dcap_ecdsa_verify(X509_get0_pubkey(sk_X509_value(chain, 0)), text, text_size,
				   sig);
	if (ret) {
		kiln_err_set(err, ret, "%s signature by '%s' does not verify over its JSON bytes",
			     name, ev_dcap_cert_name(sk_X509_value(chain, 0), cn, sizeof(cn)));
		goto out;
	}
	*doc = json_loadb(text, text_size, JSON_REJECT_DUPLICATES, &jerr);
	if (!*doc || !json_is_object(*doc)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: not a JSON object (%s)", name,
				   *doc ? "wrong type" : jerr.text);
		goto out;
	}
	issue = json_string_value(json_object_get(*doc, "issueDate"));
	next = json_string_value(json_object_get(*doc, "nextUpdate"));
	if (ev_dcap_parse_time(issue, &nb) || ev_dcap_parse_time(next, &na)) {
		ret = kiln_err_set(err, -KILN_EFORMAT,
				   "%s: issueDate/nextUpdate missing or not RFC 3339 UTC", name);
		goto out;
	}
	snprintf(what, sizeof(what), "%s (issueDate .. nextUpdate)", name);
	ret = add_window(c, what, nb, na);
out:
	sk_X509_pop_free(chain, X509_free);
	return ret;
}

static int hex_field(const json_t *doc, const char *key, uint8_t *out, size_t size,
		     const char *name, struct kiln_err *err)
{
	const char *s = json_string_value(json_object_get(doc, key));

	if (!s || strlen(s) != 2 * size || kiln_hex_decode(s, out, size, NULL) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: \"%s\" must be %zu bytes in hex",
				    name, key, size);
	return 0;
}

int ev_dcap_collateral_parse(const json_t *j, ev_dcap_collateral_t **out,
			     struct kiln_err *err)
{
	ev_dcap_collateral_t *c = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *root;
	const char *s = NULL; /* set by get_str when it returns 0 */
	size_t size = 0;
	char cn[80];
	int ret;

	*out = NULL;
	if (!json_is_object(j))
		return kiln_err_set(err, -KILN_EFORMAT, "collateral: expected a JSON object");
	if (!(root = ev_dcap_root_ca(err)))
		return -KILN_EROOT;
	if (!(c = calloc(1, sizeof(*c))))
		return kiln_err_set(err, -ENOMEM, "collateral: out of memory");
	pthread_mutex_init(&c->memo_lock, NULL);
	c->memo_enabled = true;

	/* Root CA CRL: signed by the pinned root. */
	if ((ret = get_str(j, "root_ca_crl", &s, &size, err)) ||
	    (ret = ev_dcap_crl_parse(s, size, "Root CA CRL", &c->root_crl, err)))
		goto out;
	if (X509_NAME_cmp(X509_CRL_get_issuer(c->root_crl), X509_get_subject_name(root)) != 0 ||
	    X509_CRL_verify(c->root_crl, X509_get0_pubkey(root)) != 1) {
		ret = kiln_err_set(err, -KILN_ESIG, "Root CA CRL signature by 'Intel SGX Root "
				   "CA' does not verify");
		goto out;
	}
	if ((ret = crl_window(c, c->root_crl, "Root CA CRL", err)))
		goto out;

	/* PCK CRL and its issuer (PCK Processor or Platform CA). */
	if ((ret = get_str(j, "pck_crl_issuer_chain", &s, &size, err)) ||
	    (ret = ev_dcap_pem_chain(s, size, "PCK CRL issuer chain", &chain, err)) ||
	    (ret = chain_to_root(c, chain, "PCK CRL issuer chain", err)) ||
	    (ret = ev_dcap_check_cn(sk_X509_value(chain, 0), ev_dcap_cn_pck_ca, "PCK CRL issuer chain",
				    err)))
		goto out;
	c->pck_crl_issuer = sk_X509_shift(chain);
	{
		int der_size = i2d_X509(c->pck_crl_issuer, &c->pck_ca_der);

		if (der_size <= 0) {
			ret = kiln_err_set(err, -ENOMEM, "collateral: out of memory");
			goto out;
		}
		c->pck_ca_der_size = (size_t)der_size;
	}
	if ((ret = get_str(j, "pck_crl", &s, &size, err)) ||
	    (ret = ev_dcap_crl_parse(s, size, "PCK CRL", &c->pck_crl, err)))
		goto out;
	if (X509_NAME_cmp(X509_CRL_get_issuer(c->pck_crl),
			  X509_get_subject_name(c->pck_crl_issuer)) != 0 ||
	    X509_CRL_verify(c->pck_crl, X509_get0_pubkey(c->pck_crl_issuer)) != 1) {
		ret = kiln_err_set(err, -KILN_ESIG, "PCK CRL signature by '%s' does not verify",
				   ev_dcap_cert_name(c->pck_crl_issuer, cn, sizeof(cn)));
		goto out;
	}
	if ((ret = crl_window(c, c->pck_crl, "PCK CRL", err)))
		goto out;

	/* TCB Info and QE Identity. */
	if ((ret = signed_doc(c, j, "tcb_info", "TCB Info", &c->tcb_info, err)) ||
	    (ret = signed_doc(c, j, "qe_identity", "QE Identity", &c->qe_identity, err)))
		goto out;
	c->tcb_id = json_string_value(json_object_get(c->tcb_info, "id"));
	c->tcb_version = (int)json_integer_value(json_object_get(c->tcb_info, "version"));
	if (!c->tcb_id) {
		/* TCB Info v2 (SGX only) has no id. */
		c->tcb_id = c->tcb_version == 2 ? "SGX" : NULL;
	}
	if (!c->tcb_id || (strcmp(c->tcb_id, "SGX") != 0 && strcmp(c->tcb_id, "TDX") != 0) ||
	    (c->tcb_version != 2 && c->tcb_version != 3)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "TCB Info: unsupported id/version "
				   "(expected SGX v2/v3 or TDX v3)");
		goto out;
	}
	if ((ret = hex_field(c->tcb_info, "fmspc", c->fmspc, 6, "TCB Info", err)) ||
	    (ret = hex_field(c->tcb_info, "pceId", c->pceid, 2, "TCB Info", err)))
		goto out;
	c->qe_id = json_string_value(json_object_get(c->qe_identity, "id"));
	if (!c->qe_id || (strcmp(c->qe_id, "QE") != 0 && strcmp(c->qe_id, "TD_QE") != 0)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "QE Identity: id must be \"QE\" or "
				   "\"TD_QE\"");
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	ev_dcap_collateral_free(c);
	return ret;
}

void ev_dcap_collateral_free(ev_dcap_collateral_t *c)
{
	if (!c)
		return;
	X509_CRL_free(c->root_crl);
	X509_CRL_free(c->pck_crl);
	X509_free(c->pck_crl_issuer);
	json_decref(c->tcb_info);
	json_decref(c->qe_identity);
	OPENSSL_free(c->pck_ca_der);
	for (size_t i = 0; i < EV_DCAP_PCK_MEMO; i++)
		X509_free(c->memo[i].cert);
	pthread_mutex_destroy(&c->memo_lock);
	free(c);
}

void ev_dcap_collateral_set_pck_memo(ev_dcap_collateral_t *c, bool on)
{
	pthread_mutex_lock(&c->memo_lock);
	c->memo_enabled = on;
	pthread_mutex_unlock(&c->memo_lock);
}

time_t ev_dcap_collateral_valid_until(const ev_dcap_collateral_t *c)
{
	time_t t = 0;

	for (size_t i = 0; i < c->n_windows; i++)
		if (i == 0 || c->windows[i].not_after < t)
			t = c->windows[i].not_after;
	return t;
}
