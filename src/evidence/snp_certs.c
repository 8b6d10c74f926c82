/* AMD certificates one file at a time, for a store of them (kiln-cas's `kiln cas
 * collateral import`): what a file holds (an ASK/ASVK + ARK chain, or one
 * chip's VCEK, or a VLEK), checked against the pinned ARKs, and the key a
 * report finds it under. The verifier (snp_verify.c) still checks everything
 * again at attestation; this is what lets the CAS give it the right leaf among
 * many chips'. */
#include "evidence/internal.h"
#include "crypto/crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

const char *ev_amd_kind_name(enum ev_amd_kind kind)
{
	switch (kind) {
	case EV_AMD_CHAIN_VCEK:
		return "ASK/ARK chain (VCEK)";
	case EV_AMD_CHAIN_VLEK:
		return "ASVK/ARK chain (VLEK)";
	case EV_AMD_VCEK:
		return "VCEK";
	case EV_AMD_VLEK:
		return "VLEK";
	}
	return "?";
}

static void cn_of(X509 *x, char *out, size_t size)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out,
				      (int)size) < 0)
		snprintf(out, size, "(no CN)");
}

/* "bl2.tee0.snp5.uc68", with ".fmcN" first on Turin. */
static void tcb_string(bool turin, int fmc, int bl, int tee, int snp, int uc, char out[48])
{
	int n = turin ? snprintf(out, 48, "fmc%d.bl%d.tee%d.snp%d.uc%d", fmc, bl, tee, snp, uc) :
			snprintf(out, 48, "bl%d.tee%d.snp%d.uc%d", bl, tee, snp, uc);

	/* Each is a byte in a genuine certificate or report: never cut a name. */
	if (n < 0 || n >= 48)
		snprintf(out, 48, "(TCB values out of range)");
}

/* Every certificate of data (PEM blocks, or concatenated DER) into certs. */
static int read_certs(const uint8_t *data, size_t size, STACK_OF(X509) *certs)
{
	X509 *x;

	if (size > 1 << 20)
		return -KILN_EFORMAT;
	if (memmem(data, size, "-----BEGIN CERTIFICATE-----", 27)) {
		BIO *in = BIO_new_mem_buf(data, (int)size);

		while (in && (x = PEM_read_bio_X509(in, NULL, NULL, NULL))) {
			if (!sk_X509_push(certs, x)) {
				X509_free(x);
				BIO_free(in);
				return -ENOMEM;
			}
		}
		BIO_free(in);
	} else {
		const unsigned char *p = data, *end = data + size;

		while (p < end && (x = d2i_X509(NULL, &p, end - p))) {
			if (!sk_X509_push(certs, x)) {
				X509_free(x);
				return -ENOMEM;
			}
		}
		if (p != end)
			return -KILN_EFORMAT;
	}
	ERR_clear_error();
	return sk_X509_num(certs) ? 0 : -KILN_EFORMAT;
}

static int to_pem(STACK_OF(X509) *certs, char **pem)
{
	BIO *out = BIO_new(BIO_s_mem());
	int ret = -ENOMEM;

	if (!out)
		return -ENOMEM;
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (PEM_write_bio_X509(out, sk_X509_value(certs, i)) != 1)
			goto out;
	ret = kc_bio_take(out, pem, NULL);
out:
	BIO_free(out);
	return ret;
}

static int window(X509 *x, time_t *nb, time_t *na)
{
	struct tm a, b;

	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &a) != 1 ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &b) != 1)
		return -KILN_EFORMAT;
	if (timegm(&a) > *nb)
		*nb = timegm(&a);
	if (!*na || timegm(&b) < *na)
		*na = timegm(&b);
	return 0;
}

/* An ASK/ASVK and its ARK: the ARK pinned and self-signed, the ASK signed by it. */
static int import_chain(STACK_OF(X509) *certs, struct ev_amd_item *out, struct kiln_err *err)
{
	X509 *ark = NULL, *ask = NULL;
	char cn[64];

	if (sk_X509_num(certs) != 2)
		return kiln_err_set(err, -KILN_EFORMAT, "expected an ASK (or ASVK) and its ARK, "
				    "or one VCEK/VLEK certificate; found %d certificates",
				    sk_X509_num(certs));
	for (int i = 0; i < 2; i++) {
		X509 *x = sk_X509_value(certs, i);

		if (X509_check_issued(x, x) == X509_V_OK)
			ark = x;
		else
			ask = x;
	}
	ERR_clear_error();
	if (!ark || !ask)
		return kiln_err_set(err, -KILN_ECHAIN, "expected one self-signed ARK and an "
				    "ASK/ASVK it issued");
	cn_of(ark, cn, sizeof(cn));
	out->product = ev__snp_ark_product(ark);
	if (!out->product)
		return kiln_err_set(err, -KILN_EROOT, "root certificate %s is not a pinned AMD "
				    "ARK (Milan, Genoa, Turin)", cn);
	if (X509_verify(ark, X509_get0_pubkey(ark)) != 1 ||
	    X509_verify(ask, X509_get0_pubkey(ark)) != 1) {
		ERR_clear_error();
		return kiln_err_set(err, -KILN_ECHAIN, "the ASK/ASVK and ARK %s: a signature "
				    "does not verify", cn);
	}
	cn_of(ask, cn, sizeof(cn));
	out->kind = strstr(cn, "VLEK") ? EV_AMD_CHAIN_VLEK : EV_AMD_CHAIN_VCEK;
	snprintf(out->key, sizeof(out->key), "chain:%s:%s", out->product,
		 out->kind == EV_AMD_CHAIN_VLEK ? "vlek" : "vcek");
	if (window(ask, &out->not_before, &out->not_after) < 0 ||
	    window(ark, &out->not_before, &out->not_after) < 0)
		return kiln_err_set(err, -KILN_EFORMAT, "unreadable validity dates");
	return 0;
}

/* One VCEK or VLEK, checked against the stored chains. */
static int import_leaf(X509 *leaf, const char *const *chains, size_t n_chains,
		       struct ev_amd_item *out, struct kiln_err *err)
{
	const char **pems = calloc(n_chains + 1, sizeof(*pems));
	struct ev__snp_chain c;
	char cn[64], hex[2 * EV_SNP_CHIP_ID_SIZE + 1], *leaf_pem = NULL;
	STACK_OF(X509) *one = sk_X509_new_null();
	bool vlek;
	int ret = -ENOMEM;

	memset(&c, 0, sizeof(c));
	if (!pems || !one || !X509_up_ref(leaf))
		goto out;
	if (!sk_X509_push(one, leaf)) {
		X509_free(leaf);
		goto out;
	}
	if ((ret = to_pem(one, &leaf_pem)) < 0)
		goto out;
	cn_of(leaf, cn, sizeof(cn));
	vlek = !strcmp(cn, "SEV-VLEK");
	if (!vlek && strcmp(cn, "SEV-VCEK")) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "certificate %s is neither a VCEK "
				   "(CN=SEV-VCEK) nor a VLEK (CN=SEV-VLEK), nor an ASK/ARK chain",
				   cn);
		goto out;
	}
	pems[0] = leaf_pem;
	for (size_t i = 0; i < n_chains; i++)
		pems[i + 1] = chains[i];
	ret = ev__snp_chain_build(pems, n_chains + 1, vlek ? EV_SNP_KEY_VLEK : EV_SNP_KEY_VCEK,
				  &c, err);
	if (ret < 0) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		ret = kiln_err_set(err, ret, "%s (import the AMD %s chain of its product "
				   "first: ask_ark_PRODUCT%s.pem)", why, vlek ? "ASVK" : "ASK",
				   vlek ? "_vlek" : "");
		goto out;
	}
	out->product = c.product;
	out->kind = vlek ? EV_AMD_VLEK : EV_AMD_VCEK;
	for (size_t i = 0; i < EV__SNP_N_TCB_EXTS; i++)
		if (c.tcb[i] < 0 && (i != EV__SNP_TCB_FMC || !strcmp(c.product, "Turin"))) {
			ret = kiln_err_set(err, -KILN_ECHAIN, "%s certificate has no TCB "
					   "extension %s", vlek ? "VLEK" : "VCEK",
					   ev__snp_tcb_exts[i].name);
			goto out;
		}
	tcb_string(!strcmp(c.product, "Turin"), c.tcb[EV__SNP_TCB_FMC], c.tcb[0], c.tcb[1],
		   c.tcb[2], c.tcb[3], out->tcb);
	if (vlek) {
		snprintf(out->key, sizeof(out->key), "vlek:%s:%s", out->tcb, out->product);
	} else {
		if (!c.has_hwid) {
			ret = kiln_err_set(err, -KILN_ECHAIN, "VCEK certificate has no hwID "
					   "extension (%s)", EV__SNP_OID_HWID);
			goto out;
		}
		kiln_hex_encode(c.hwid, EV_SNP_CHIP_ID_SIZE, hex);
		snprintf(out->key, sizeof(out->key), "vcek:%s:%s", hex, out->tcb);
	}
	out->not_before = 0;
	out->not_after = 0;
	for (int i = 0; i < 3; i++) {
		if (c.certs[i].not_before > out->not_before)
			out->not_before = c.certs[i].not_before;
		if (!out->not_after || c.certs[i].not_after < out->not_after)
			out->not_after = c.certs[i].not_after;
	}
	ret = 0;
out:
	ev__snp_chain_release(&c);
	sk_X509_pop_free(one, X509_free);
	free(leaf_pem);
	free(pems);
	ERR_clear_error();
	return ret == -ENOMEM ? kiln_err_set(err, ret, "out of memory") : ret;
}

int ev_amd_import(const uint8_t *data, size_t size, const char *const *chains,
		  size_t n_chains, struct ev_amd_item *out, struct kiln_err *err)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	int ret;

	memset(out, 0, sizeof(*out));
	if (!certs)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	ret = read_certs(data, size, certs);
	if (ret < 0) {
		ret = ret == -ENOMEM ? kiln_err_set(err, ret, "out of memory") :
		      kiln_err_set(err, ret, "no certificate found (expected PEM, or DER "
				   "certificates such as a VCEK from the AMD KDS)");
		goto out;
	}
	if (sk_X509_num(certs) == 1)
		ret = import_leaf(sk_X509_value(certs, 0), chains, n_chains, out, err);
	else
		ret = import_chain(certs, out, err);
	if (ret == 0 && to_pem(certs, &out->pem) < 0)
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
out:
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return ret;
}

int ev_amd_report_key(const uint8_t *evidence, size_t size, char key[EV_AMD_KEY_SIZE],
		      enum ev_snp_signing_key *kind, char chip[17], struct kiln_err *err)
{
	struct ev_snp_report r;
	struct ev_snp_tcb t;
	char hex[2 * EV_SNP_CHIP_ID_SIZE + 1], tcb[48];
	bool turin;
	int ret;

	ret = ev_snp_report_parse(evidence, size < EV_SNP_REPORT_SIZE ? size :
				  EV_SNP_REPORT_SIZE, &r, err);
	if (ret < 0)
		return ret;
	/* v2 reports carry no CPUID; Turin (family 1Ah) reports are v3 or later. */
	turin = r.version >= 3 && r.cpuid_fam_id == 0x1A;
	ev_snp_tcb_decode(r.reported_tcb, turin, &t);
	tcb_string(turin, t.fmc, t.bootloader, t.tee, t.snp, t.microcode, tcb);
	kiln_hex_encode(r.chip_id, EV_SNP_CHIP_ID_SIZE, hex);
	*kind = r.signing_key;
	if (chip)
		snprintf(chip, 17, "%.16s", hex);
	if (r.signing_key == EV_SNP_KEY_VLEK)
		snprintf(key, EV_AMD_KEY_SIZE, "vlek:%s:", tcb);
	else
		snprintf(key, EV_AMD_KEY_SIZE, "vcek:%s:%s", hex, tcb);
	return 0;
}
