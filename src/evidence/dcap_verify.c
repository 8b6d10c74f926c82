/* DCAP quote verification pipeline (SGX and TDX), in Intel QVL order:
 *   1. parse the quote (bounds-checked)             -> -KILN_ETRUNC / -KILN_EFORMAT
 *   2. collateral windows at the verification time  -> -KILN_EEXPIRED
 *   3. PCK chain to the pinned root, validity, CRLs -> -KILN_EROOT / ECHAIN / EEXPIRED /
 *                                                      EREVOKED
 *   4. QE report signature by the PCK key           -> -KILN_ESIG
 *   5. QE report data = SHA-256(att key || auth)    -> -KILN_EBINDING
 *   6. quote signature by the attestation key       -> -KILN_ESIG
 *   7. QE identity, TCB level, TDX module           -> -KILN_EMEASUREMENT / -KILN_ETCB
 *   8. claims.
 * The collateral was authenticated when it was parsed (dcap_collateral.c).
 * ev_dcap_inspect runs the steps that need no collateral (3 without CRLs, 4, 5,
 * 6) and reports the claims with the TCB status as not evaluated. */
#include "evidence/dcap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"

/* Every window must hold `at`; the message names the window that failed first in time
 * (the earliest nextUpdate that passed, or the latest issue date still to come). */
static int check_windows(const ev_dcap_collateral_t *c, time_t at, struct kiln_err *err)
{
	const struct ev_dcap_window *worst = NULL;
	char a[32], b[32], t[32];
	size_t bad = 0;

	for (size_t i = 0; i < c->n_windows; i++) {
		const struct ev_dcap_window *w = &c->windows[i];

		if (at >= w->not_before && at <= w->not_after)
			continue;
		bad++;
		if (!worst || (at > w->not_after ? w->not_after < worst->not_after :
			       w->not_before > worst->not_before))
			worst = w;
	}
	if (!worst)
		return 0;
	return kiln_err_set(err, -KILN_EEXPIRED,
			    "%s %s: valid %s .. %s, verification time %s%s", worst->what,
			    at < worst->not_before ? "is not yet valid" : "has expired",
			    ev_dcap_fmt_time(worst->not_before, a, sizeof(a)),
			    ev_dcap_fmt_time(worst->not_after, b, sizeof(b)),
			    ev_dcap_fmt_time(at, t, sizeof(t)),
			    bad > 1 ? " (other collateral items are outside their windows too)" :
			    "");
}

static int cert_valid_at(X509 *cert, const char *what, time_t at, struct kiln_err *err)
{
	char cn[80], a[32], b[32], t[32];
	time_t nb, na;

	if (ev_dcap_asn1_time(X509_get0_notBefore(cert), &nb) ||
	    ev_dcap_asn1_time(X509_get0_notAfter(cert), &na))
		return kiln_err_set(err, -KILN_EFORMAT, "%s '%s': bad validity", what,
				    ev_dcap_cert_name(cert, cn, sizeof(cn)));
	if (at < nb || at > na)
		return kiln_err_set(err, -KILN_EEXPIRED,
				    "%s '%s' %s: valid %s .. %s, verification time %s", what,
				    ev_dcap_cert_name(cert, cn, sizeof(cn)),
				    at < nb ? "is not yet valid" : "has expired",
				    ev_dcap_fmt_time(nb, a, sizeof(a)),
				    ev_dcap_fmt_time(na, b, sizeof(b)),
				    ev_dcap_fmt_time(at, t, sizeof(t)));
	return 0;
}

/* The PCK CA issued by the root and named as Intel names PCK CAs. */
static int check_pck_ca(X509 *root, X509 *ca, const char *what, struct kiln_err *err)
{
	int r = ev_dcap_check_issued(root, ca, what, err);

	return r ? r : ev_dcap_check_cn(ca, ev_dcap_cn_pck_ca, what, err);
}

/* The PCK certificate issued by ca, named as a PCK certificate, with its SGX
 * extension parsed into *ext. */
static int check_pck_cert(X509 *ca, X509 *pck, struct ev_dcap_pck_ext *ext, const char *what,
			  struct kiln_err *err)
{
	int r;

	if ((r = ev_dcap_check_issued(ca, pck, what, err)) ||
	    (r = ev_dcap_check_cn(pck, ev_dcap_cn_pck, what, err)))
		return r;
	return ev_dcap_pck_ext_parse(pck, ext, err);
}

/* Each certificate of the chain valid at `at`. */
static int chain_valid_at(X509 *root, X509 *ca, X509 *pck, const char *what, time_t at,
			  struct kiln_err *err)
{
	int r;

	if ((r = cert_valid_at(root, what, at, err)) || (r = cert_valid_at(ca, what, at, err)))
		return r;
	return cert_valid_at(pck, what, at, err);
}

static X509 *memo_get(ev_dcap_collateral_t *c, const uint8_t hash[32],
		      struct ev_dcap_pck_ext *ext)
{
	X509 *x = NULL;

	pthread_mutex_lock(&c->memo_lock);
	for (size_t i = 0; c->memo_enabled && i < EV_DCAP_PCK_MEMO; i++)
		if (c->memo[i].cert && memcmp(c->memo[i].hash, hash, 32) == 0) {
			x = c->memo[i].cert;
			X509_up_ref(x);
			*ext = c->memo[i].ext;
			break;
		}
	pthread_mutex_unlock(&c->memo_lock);
	return x;
}

static void memo_put(ev_dcap_collateral_t *c, const uint8_t hash[32], X509 *x,
		     const struct ev_dcap_pck_ext *ext)
{
	struct ev_dcap_pck_memo *m;

	pthread_mutex_lock(&c->memo_lock);
	if (c->memo_enabled && X509_up_ref(x)) {
		m = &c->memo[c->memo_next++ % EV_DCAP_PCK_MEMO];
		X509_free(m->cert);
		memcpy(m->hash, hash, 32);
		m->cert = x;
		m->ext = *ext;
	}
	pthread_mutex_unlock(&c->memo_lock);
}

/* PCK certificate chain from the quote: [PCK, PCK CA, (root)]. On success *pck (owned
 * by the caller) and *ext are the PCK certificate and its SGX extension. The root and
 * the PCK CA are compared as DER with the pinned root and the collateral's
 * (authenticated) PCK CA, so the common case parses only the PCK certificate. */
static int verify_pck_chain(ev_dcap_collateral_t *c, const struct ev_dcap_quote *q, time_t at,
			    X509 **pck_out, struct ev_dcap_pck_ext *ext, struct kiln_err *err)
{
	const char *what = "quote PCK chain";
	struct ev_dcap_der ders[EV_DCAP_MAX_CHAIN];
	X509 *root = ev_dcap_root_ca(err), *pck = NULL, *ca = NULL, *last = NULL;
	uint8_t hash[KC_SHA256_SIZE];
	bool known_ca;
	char cn[80];
	int n = 0, total, r;

	*pck_out = NULL;
	if (!root)
		return -KILN_EROOT;
	if ((r = ev_dcap_pem_split(q->pck_pem, q->pck_pem_size, what, ders, EV_DCAP_MAX_CHAIN, &n,
				   err)))
		return r;
	total = n;
	if (ev_dcap_is_root_der(ders[n - 1].data, ders[n - 1].size)) {
		n--;
	} else {
		if (!(last = ev_dcap_der_cert(&ders[n - 1], what, n, err))) {
			r = -KILN_EFORMAT;
			goto out;
		}
		if (X509_check_issued(last, last) == X509_V_OK) {
			r = kiln_err_set(err, -KILN_EROOT, "%s ends at '%s', which is not the "
					 "pinned Intel SGX Root CA", what,
					 ev_dcap_cert_name(last, cn, sizeof(cn)));
			goto out;
		}
	}
	if (n != 2) {
		r = kiln_err_set(err, -KILN_ECHAIN, "%s: expected PCK certificate, PCK CA and "
				 "root, found %d certificates", what, total);
		goto out;
	}
	/* The PCK CA. The one that signed the collateral's PCK CRL was proved when the
	 * collateral was parsed; another one gets the full check. */
	known_ca = ders[1].size == c->pck_ca_der_size &&
		   memcmp(ders[1].data, c->pck_ca_der, ders[1].size) == 0;
	if (known_ca) {
		ca = c->pck_crl_issuer;
		X509_up_ref(ca);
	} else {
		if (!(ca = ev_dcap_der_cert(&ders[1], what, 2, err))) {
			r = -KILN_EFORMAT;
			goto out;
		}
		if (X509_check_issued(root, ca) != X509_V_OK) {
			r = kiln_err_set(err, -KILN_EROOT, "%s: '%s' is not issued by the pinned "
					 "Intel SGX Root CA", what,
					 ev_dcap_cert_name(ca, cn, sizeof(cn)));
			goto out;
		}
		if ((r = check_pck_ca(root, ca, what, err)) ||
		    (r = ev_dcap_check_revoked(c->root_crl, ca, "PCK CA", "Intel SGX Root CA CRL",
					       err)))
			goto out;
		if (X509_CRL_verify(c->pck_crl, X509_get0_pubkey(ca)) != 1) {
			ERR_clear_error();
			r = kiln_err_set(err, -KILN_ECHAIN, "PCK CRL of the collateral is not "
					 "issued by the quote's PCK CA '%s'",
					 ev_dcap_cert_name(ca, cn, sizeof(cn)));
			goto out;
		}
	}
	/* The PCK certificate. */
	if ((r = kc_sha256(ders[0].data, ders[0].size, hash)))
		goto out;
	if (!known_ca || !(pck = memo_get(c, hash, ext))) {
		if (!(pck = ev_dcap_der_cert(&ders[0], what, 1, err))) {
			r = -KILN_EFORMAT;
			goto out;
		}
		if ((r = check_pck_cert(ca, pck, ext, what, err)))
			goto out;
		if (known_ca)
			memo_put(c, hash, pck, ext);
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(c->pck_crl), X509_get_issuer_name(pck)) != 0) {
		r = kiln_err_set(err, -KILN_ECHAIN, "PCK CRL of the collateral is not issued by "
				 "the PCK certificate's issuer '%s'",
				 ev_dcap_cert_name(ca, cn, sizeof(cn)));
		goto out;
	}
	if ((r = chain_valid_at(root, ca, pck, what, at, err)) ||
	    (r = ev_dcap_check_revoked(c->pck_crl, pck, "PCK certificate", "PCK CRL", err)))
		goto out;
	*pck_out = pck;
	pck = NULL;
out:
	X509_free(pck);
	X509_free(ca);
	X509_free(last);
	ev_dcap_der_free(ders, total);
	return r;
}

static int set_hex(json_t *o, const char *key, const uint8_t *b, size_t size)
{
	char hex[2 * 64 + 1];

	kiln_hex_encode(b, size, hex);
	return json_object_set_new(o, key, json_string(hex));
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static int build_claims(const struct ev_dcap_quote *q, const ev_dcap_collateral_t *c,
			const struct ev_dcap_pck_ext *ext, const struct ev_dcap_tcb_result *t,
			json_t **claims)
{
	const uint8_t *b = q->body;
	char until[32];
	json_t *o = json_object();
	int bad = 0;

	if (!o)
		return -ENOMEM;
	bad |= json_object_set_new(o, "insecure", json_false());
	bad |= json_object_set_new(o, "quote_version", json_integer(q->version));
	if (t) {
		bad |= json_object_set_new(o, "tcb_status",
					   json_string(ev_dcap_status_name(t->status)));
		bad |= json_object_set_new(o, "platform_tcb_status",
					   json_string(ev_dcap_status_name(t->platform)));
		bad |= json_object_set(o, "advisories", t->advisories);
		bad |= json_object_set_new(o, "qe_status",
					   json_string(ev_dcap_status_name(t->qe)));
		bad |= json_object_set_new(o, "collateral_valid_until",
					   json_string(ev_dcap_fmt_time(
						   ev_dcap_collateral_valid_until(c), until,
						   sizeof(until))));
	} else {
		/* Inspected only: what collateral would decide is named as such. */
		bad |= json_object_set_new(o, "tcb_status", json_string("not evaluated"));
		bad |= set_hex(o, "pck_cpusvn", ext->cpusvn, 16);
		bad |= json_object_set_new(o, "pck_pcesvn", json_integer(ext->pcesvn));
	}
	bad |= set_hex(o, "fmspc", ext->fmspc, 6);
	bad |= json_object_set_new(o, "trailing_bytes", json_integer((json_int_t)q->trailing));
	if (q->tee_type == EV_DCAP_TEE_SGX) {
		bad |= json_object_set_new(o, "tee", json_string("sgx"));
		bad |= set_hex(o, "mrenclave", b + SGXR_MRENCLAVE, 32);
		bad |= set_hex(o, "platform_measurement", b + SGXR_MRENCLAVE, 32);
		bad |= set_hex(o, "mrsigner", b + SGXR_MRSIGNER, 32);
		bad |= json_object_set_new(o, "isvprodid", json_integer(le16(b + SGXR_ISVPRODID)));
		bad |= json_object_set_new(o, "isvsvn", json_integer(le16(b + SGXR_ISVSVN)));
		bad |= set_hex(o, "attributes", b + SGXR_ATTRIBUTES, 16);
		bad |= set_hex(o, "cpusvn", b + SGXR_CPUSVN, 16);
		bad |= json_object_set_new(o, "debug",
					   json_boolean(b[SGXR_ATTRIBUTES] & 0x02));
		bad |= set_hex(o, "report_data", b + SGXR_REPORT_DATA, 64);
	} else {
		bad |= json_object_set_new(o, "tee", json_string("tdx"));
		bad |= set_hex(o, "mrtd", b + TDR_MRTD, 48);
		bad |= set_hex(o, "platform_measurement", b + TDR_MRTD, 48);
		for (int i = 0; i < 4; i++) {
			char key[16];

			snprintf(key, sizeof(key), "rtmr%d", i);
			bad |= set_hex(o, key, b + TDR_RTMR0 + 48 * i, 48);
		}
		bad |= set_hex(o, "mrconfigid", b + TDR_MRCONFIGID, 48);
		bad |= set_hex(o, "mrowner", b + TDR_MROWNER, 48);
		bad |= set_hex(o, "mrownerconfig", b + TDR_MROWNERCONFIG, 48);
		bad |= set_hex(o, "mrseam", b + TDR_MRSEAM, 48);
		bad |= set_hex(o, "mrsignerseam", b + TDR_MRSIGNERSEAM, 48);
		bad |= set_hex(o, "tee_tcb_svn", b + TDR_TEE_TCB_SVN, 16);
		bad |= set_hex(o, "td_attributes", b + TDR_TD_ATTRIBUTES, 8);
		bad |= set_hex(o, "xfam", b + TDR_XFAM, 8);
		bad |= json_object_set_new(o, "debug",
					   json_boolean(b[TDR_TD_ATTRIBUTES] & 0x01));
		bad |= set_hex(o, "report_data", b + TDR_REPORT_DATA, 64);
		if (t && t->has_module)
			bad |= json_object_set_new(o, "tdx_module_status",
						   json_string(ev_dcap_status_name(t->module)));
		if (q->body_type == 3) {
			if (t)
				bad |= json_object_set_new(o, "td_relaunch_advised",
							   json_boolean(t->relaunch_advised));
			bad |= set_hex(o, "tee_tcb_svn2", b + TDR_TEE_TCB_SVN2, 16);
			bad |= set_hex(o, "mrservicetd", b + TDR_MRSERVICETD, 48);
		}
	}
	if (bad) {
		json_decref(o);
		return -ENOMEM;
	}
	*claims = o;
	return 0;
}

/* Step 1: the quote parsed, and of the TEE kind the caller expects. */
static int parse_for(const uint8_t *quote, size_t size, uint32_t expect_tee,
		     struct ev_dcap_quote *q, struct kiln_err *err)
{
	int ret = ev_dcap_quote_parse(quote, size, q, err);

	if (ret)
		return ret;
	if (q->tee_type != expect_tee)
		return kiln_err_set(err, -KILN_EFORMAT, "quote header TEE type is %s, expected %s",
				    q->tee_type == EV_DCAP_TEE_TDX ? "TDX" : "SGX",
				    expect_tee == EV_DCAP_TEE_TDX ? "TDX" : "SGX");
	return 0;
}

/* Steps 4-6: the QE report signed by the PCK key and binding the attestation
 * key, and the quote signed by that key. */
static int check_signatures(const uint8_t *quote, const struct ev_dcap_quote *q, X509 *pck,
			    struct kiln_err *err)
{
	static const uint8_t zero[32];
	const uint8_t *rd = q->qe_report + SGXR_REPORT_DATA;
	uint8_t digest[KC_SHA256_SIZE];
	size_t dsize = sizeof(digest);
	EVP_PKEY *att_key = NULL;
	kc_hash_t *h = NULL;
	int ret;

	ret = ev_dcap_ecdsa_verify(X509_get0_pubkey(pck), q->qe_report,
				   EV_DCAP_QE_REPORT_SIZE, q->qe_report_sig);
	if (ret) {
		kiln_err_set(err, ret, "QE report signature (offset %zu) by the PCK certificate "
			     "does not verify", (size_t)(q->qe_report_sig - quote));
		goto out;
	}
	ret = -KILN_ECRYPTO;
	if (!(h = kc_hash_new("SHA256")) || kc_hash_update(h, q->att_key, EV_DCAP_KEY_SIZE) ||
	    kc_hash_update(h, q->qe_auth, q->qe_auth_size) || kc_hash_final(h, digest, &dsize)) {
		kiln_err_set(err, ret, "SHA-256 failed");
		goto out;
	}
	if (memcmp(rd, digest, 32) != 0 || memcmp(rd + 32, zero, 32) != 0) {
		ret = kiln_err_set(err, -KILN_EBINDING, "QE report data does not bind the "
				   "attestation key: expected SHA-256(attestation key || QE auth "
				   "data) and 32 zero bytes");
		goto out;
	}
	if (!(att_key = ev_dcap_p256_key(q->att_key))) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "attestation key (offset %zu) is not a "
				   "P-256 point", (size_t)(q->att_key - quote));
		goto out;
	}
	if ((ret = ev_dcap_ecdsa_verify(att_key, quote, q->signed_size, q->signature)))
		kiln_err_set(err, ret, "quote signature (offset %zu) by the attestation key over "
			     "bytes [0, %zu) does not verify", (size_t)(q->signature - quote),
			     q->signed_size);
out:
	kc_hash_free(h);
	EVP_PKEY_free(att_key);
	return ret;
}

int ev_dcap_verify(const uint8_t *quote, size_t size, uint32_t expect_tee,
		   ev_dcap_collateral_t *c, time_t at, json_t **claims, struct kiln_err *err)
{
	struct ev_dcap_quote q;
	struct ev_dcap_pck_ext ext;
	struct ev_dcap_tcb_result tcb = {0};
	X509 *pck = NULL;
	int ret;

	*claims = NULL;
	if (!c)
		return kiln_err_set(err, -EINVAL, "%s quote: collateral is required",
				    expect_tee == EV_DCAP_TEE_TDX ? "TDX" : "SGX");
	if ((ret = parse_for(quote, size, expect_tee, &q, err)))
		return ret;
	if (at == 0)
		at = time(NULL);
	if ((ret = check_windows(c, at, err)))
		goto out;

	/* PCK chain and CRLs. */
	if ((ret = verify_pck_chain(c, &q, at, &pck, &ext, err)))
		goto out;

	if ((ret = check_signatures(quote, &q, pck, err)))
		goto out;

	/* QE identity and TCB levels. */
	if ((ret = ev_dcap_eval_qe(c, q.qe_report, &tcb, err)) ||
	    (ret = ev_dcap_eval_tcb(c, &ext, &q, &tcb, err)))
		goto out;
	if ((ret = build_claims(&q, c, &ext, &tcb, claims)))
		kiln_err_set(err, ret, "out of memory");
out:
	X509_free(pck);
	ev_dcap_tcb_result_clear(&tcb);
	return ret;
}

int ev_dcap_backend_verify(const uint8_t *quote, size_t size, uint32_t expect_tee,
			   const struct ev_verify_opts *opts, json_t **claims,
			   struct kiln_err *err)
{
	ev_dcap_collateral_t *c = NULL;
	struct ev_dcap_quote q;
	int ret;

	*claims = NULL;
	/* A malformed quote fails before the collateral costs anything. */
	if ((ret = ev_dcap_quote_parse(quote, size, &q, err)))
		return ret;
	if (!opts || !opts->collateral)
		return kiln_err_set(err, -EINVAL, "%s quote: collateral is required "
				    "(PCK CRL, TCB Info, QE Identity; see docs/evidence-intel.md)",
				    expect_tee == EV_DCAP_TEE_TDX ? "TDX" : "SGX");
	if ((ret = ev_dcap_collateral_parse(opts->collateral, &c, err)))
		return ret;
	ret = ev_dcap_verify(quote, size, expect_tee, c, opts->at, claims, err);
	ev_dcap_collateral_free(c);
	return ret;
}

/* Step 3 without collateral: the quote's PCK chain [PCK, PCK CA, root] up to the
 * pinned Intel SGX Root CA, names, signatures and validity at `at`; no CRL
 * (revocation is what collateral would add). */
static int inspect_pck_chain(const struct ev_dcap_quote *q, time_t at, X509 **pck_out,
			     struct ev_dcap_pck_ext *ext, struct kiln_err *err)
{
	const char *what = "quote PCK chain";
	struct ev_dcap_der ders[EV_DCAP_MAX_CHAIN];
	X509 *root = ev_dcap_root_ca(err), *pck = NULL, *ca = NULL;
	int n = 0, r;

	*pck_out = NULL;
	if (!root)
		return -KILN_EROOT;
	if ((r = ev_dcap_pem_split(q->pck_pem, q->pck_pem_size, what, ders, EV_DCAP_MAX_CHAIN, &n,
				   err)))
		return r;
	/* The root may be left out, as verification allows: it is pinned. */
	if ((n == 3 && !ev_dcap_is_root_der(ders[2].data, ders[2].size)) || n < 2 || n > 3) {
		r = kiln_err_set(err, n == 3 ? -KILN_EROOT : -KILN_ECHAIN, "%s: expected PCK "
				 "certificate, PCK CA and the pinned Intel SGX Root CA, found %d "
				 "certificates%s", what, n, n == 3 ? " not ending at that root" : "");
		goto out;
	}
	if (!(ca = ev_dcap_der_cert(&ders[1], what, 2, err)) ||
	    !(pck = ev_dcap_der_cert(&ders[0], what, 1, err))) {
		r = -KILN_EFORMAT;
		goto out;
	}
	if ((r = check_pck_ca(root, ca, what, err)) ||
	    (r = check_pck_cert(ca, pck, ext, what, err)) ||
	    (r = chain_valid_at(root, ca, pck, what, at, err)))
		goto out;
	*pck_out = pck;
	pck = NULL;
out:
	X509_free(pck);
	X509_free(ca);
	ev_dcap_der_free(ders, n);
	return r;
}

int ev_dcap_inspect(const uint8_t *quote, size_t size, bool tdx, time_t at,
		    json_t **claims, struct kiln_err *err)
{
	uint32_t expect_tee = tdx ? EV_DCAP_TEE_TDX : EV_DCAP_TEE_SGX;
	struct ev_dcap_quote q;
	struct ev_dcap_pck_ext ext;
	X509 *pck = NULL;
	int ret;

	*claims = NULL;
	if ((ret = parse_for(quote, size, expect_tee, &q, err)))
		return ret;
	if (at == 0)
		at = time(NULL);
	if ((ret = inspect_pck_chain(&q, at, &pck, &ext, err)) ||
	    (ret = check_signatures(quote, &q, pck, err)))
		goto out;
	if ((ret = build_claims(&q, NULL, &ext, NULL, claims)))
		kiln_err_set(err, ret, "out of memory");
out:
	X509_free(pck);
	return ret;
}
