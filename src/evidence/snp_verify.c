/* AMD SEV-SNP attestation report verifier (ev_backend_snp; the producer is
 * snp_produce.c).
 *
 * Checks, in order: the report layout (bounds, version 2-5, algorithm, signature
 * padding; snp_report.c); the certificate chain VCEK/VLEK <- ASK/ASVK <- ARK
 * (RSA-PSS SHA-384, the ARK self-signed and pinned per product by the SHA-256 of
 * its DER; snp_chain.c); every certificate's validity at opts->at; the report
 * signature (ECDSA P-384 SHA-384 over [0, 0x2A0), r and s little-endian); the
 * VCEK's hwID against chip_id and the certificate's TCB extensions against
 * reported_tcb. The signature is checked before the report fields are compared
 * with the certificate, so a tampered report is named as such and not as a
 * misleading field mismatch. */
#include "evidence/internal.h"

#include <jansson.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"

/* ---- report checks ---------------------------------------------------------------- */

static int check_validity(const struct ev__snp_chain *c, time_t at, struct kiln_err *err)
{
	for (int i = 0; i < 3; i++) {
		char nb[32], na[32], now[32];

		if (at >= c->certs[i].not_before && at <= c->certs[i].not_after)
			continue;
		ev__snp_fmt_time(c->certs[i].not_before, nb);
		ev__snp_fmt_time(c->certs[i].not_after, na);
		ev__snp_fmt_time(at, now);
		return kiln_err_set(err, -KILN_EEXPIRED,
				    "certificate %s is valid %s to %s, not at %s",
				    c->certs[i].name, nb, na, now);
	}
	if (c->n_crls && (at < c->crl_this_update || at > c->crl_next_update)) {
		char tu[32], nu[32], now[32];

		ev__snp_fmt_time(c->crl_this_update, tu);
		ev__snp_fmt_time(c->crl_next_update, nu);
		ev__snp_fmt_time(at, now);
		return kiln_err_set(err, -KILN_EEXPIRED,
				    "AMD CRL of %s is valid %s to %s, not at %s", c->certs[2].name,
				    tu, nu, now);
	}
	return 0;
}

static int check_signature(const uint8_t *report, const struct ev_snp_report *r,
			   EVP_PKEY *key, struct kiln_err *err)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_lebin2bn(r->sig_r, EV__SNP_P384_SIZE, NULL);
	BIGNUM *bs = BN_lebin2bn(r->sig_s, EV__SNP_P384_SIZE, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	int der_size, ret = -ENOMEM;

	if (!sig || !br || !bs || !md)
		goto out;
	if (ECDSA_SIG_set0(sig, br, bs) != 1)
		goto out;
	br = bs = NULL; /* owned by sig now */
	der_size = i2d_ECDSA_SIG(sig, &der);
	if (der_size <= 0) {
		ret = -KILN_ECRYPTO;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1) {
		ret = -KILN_ECRYPTO;
		goto out;
	}
	if (EVP_DigestVerify(md, der, (size_t)der_size, report, EV_SNP_SIGNED_SIZE) != 1) {
		ret = kiln_err_set(err, -KILN_ESIG,
				   "SNP report signature (ECDSA P-384 over bytes 0x0..0x2a0) does "
				   "not verify with the %s public key",
				   r->signing_key == EV_SNP_KEY_VLEK ? "VLEK" : "VCEK");
		goto out;
	}
	ret = 0;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(sig);
	return ret;
}

/* The product line of a v3+ report's CPUID family/model (as AMD KDS and go-sev-guest
 * map them), or NULL when unknown or absent (v2 reports carry no CPUID). */
static const char *cpuid_product(const struct ev_snp_report *r)
{
	if (r->cpuid_fam_id == 0x19 && r->cpuid_mod_id <= 0x0F)
		return "Milan";
	if (r->cpuid_fam_id == 0x19 &&
	    ((r->cpuid_mod_id >= 0x10 && r->cpuid_mod_id <= 0x1F) ||
	     (r->cpuid_mod_id >= 0xA0 && r->cpuid_mod_id <= 0xAF)))
		return "Genoa";
	if (r->cpuid_fam_id == 0x1A && r->cpuid_mod_id <= 0x1F)
		return "Turin";
	return NULL;
}

static int check_binding(const struct ev_snp_report *r, const struct ev__snp_chain *c,
			 struct kiln_err *err)
{
	const char *kind = r->signing_key == EV_SNP_KEY_VLEK ? "VLEK" : "VCEK";
	const char *cpu = cpuid_product(r);
	bool turin = strcmp(c->product, "Turin") == 0;
	struct ev_snp_tcb tcb;
	int rep[EV__SNP_N_TCB_EXTS];

	/* The TCB layout follows the product, so a report from one product line must not
	 * be read under another's chain. */
	if (cpu && strcmp(cpu, c->product) != 0)
		return kiln_err_set(err, -KILN_ECHAIN,
				    "report CPUID family 0x%02x model 0x%02x is a %s part, but "
				    "the %s chain is anchored at the %s ARK", r->cpuid_fam_id,
				    r->cpuid_mod_id, cpu, kind, c->product);

	if (r->signing_key == EV_SNP_KEY_VCEK) {
		char want[2 * 8 + 1], got[2 * 8 + 1];

		if (!c->has_hwid)
			return kiln_err_set(err, -KILN_ECHAIN,
					    "VCEK certificate has no hwID extension (%s)",
					    EV__SNP_OID_HWID);
		if (ev__all_zero(r->chip_id, EV_SNP_CHIP_ID_SIZE))
			return kiln_err_set(err, -KILN_ECHAIN,
					    "report chip_id is masked (all zero), so the VCEK "
					    "cannot be bound to this chip");
		if (!kiln_ct_equal(c->hwid, r->chip_id, EV_SNP_CHIP_ID_SIZE)) {
			kiln_hex_encode(c->hwid, 8, want);
			kiln_hex_encode(r->chip_id, 8, got);
			return kiln_err_set(err, -KILN_ECHAIN,
					    "VCEK hwID does not match report chip_id "
					    "(certificate %s..., report %s...)", want, got);
		}
	}
	ev_snp_tcb_decode(r->reported_tcb, turin, &tcb);
	rep[0] = tcb.bootloader;
	rep[1] = tcb.tee;
	rep[2] = tcb.snp;
	rep[3] = tcb.microcode;
	rep[EV__SNP_TCB_FMC] = tcb.fmc;
	for (size_t i = 0; i < EV__SNP_N_TCB_EXTS; i++) {
		if (i == EV__SNP_TCB_FMC && !turin)
			continue;
		if (c->tcb[i] < 0)
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate has no TCB extension %s (%s)", kind,
					    ev__snp_tcb_exts[i].name, ev__snp_tcb_exts[i].oid);
		if (c->tcb[i] != rep[i])
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate TCB %s is %d but report "
					    "reported_tcb.%s is %d", kind, ev__snp_tcb_exts[i].name,
					    c->tcb[i], ev__snp_tcb_exts[i].field, rep[i]);
	}
	return 0;
}

int ev_snp_check_report(const uint8_t *report, size_t size, X509 *leaf, const char *product,
			struct kiln_err *err)
{
	struct ev_snp_report r;
	struct ev__snp_chain c;
	int ret;

	memset(&c, 0, sizeof(c));
	ret = ev_snp_report_parse(report, size, &r, err);
	if (ret < 0)
		return ret;
	c.product = product;
	ret = ev__snp_leaf_extensions(leaf, r.signing_key == EV_SNP_KEY_VLEK ? "VLEK" : "VCEK",
				   &c, err);
	if (ret < 0)
		return ret;
	c.leaf_key = X509_get0_pubkey(leaf);
	if (!c.leaf_key) {
		ERR_clear_error();
		return kiln_err_set(err, -KILN_ECHAIN, "leaf certificate has no usable key");
	}
	ret = check_signature(report, &r, c.leaf_key, err);
	if (ret == 0)
		ret = check_binding(&r, &c, err);
	return ret; /* c.leaf_key is borrowed from leaf: no chain_release */
}

static int set_hex(json_t *o, const char *name, const uint8_t *p, size_t size)
{
	char hex[2 * 64 + 1];

	kiln_hex_encode(p, size, hex);
	return json_object_set_new(o, name, json_string(hex)) == 0 ? 0 : -ENOMEM;
}

/* A TCB version as {bootloader, tee, snp, microcode[, fmc]}, or NULL. */
static json_t *tcb_json(uint64_t raw, bool turin)
{
	json_t *tcb = json_object();
	struct ev_snp_tcb t;
	int bad = 0;

	if (!tcb)
		return NULL;
	ev_snp_tcb_decode(raw, turin, &t);
	bad |= json_object_set_new(tcb, "bootloader", json_integer(t.bootloader));
	bad |= json_object_set_new(tcb, "tee", json_integer(t.tee));
	bad |= json_object_set_new(tcb, "snp", json_integer(t.snp));
	bad |= json_object_set_new(tcb, "microcode", json_integer(t.microcode));
	if (turin)
		bad |= json_object_set_new(tcb, "fmc", json_integer(t.fmc));
	if (bad) {
		json_decref(tcb);
		return NULL;
	}
	return tcb;
}

static json_t *make_claims(const struct ev_snp_report *r, const struct ev__snp_chain *c)
{
	bool turin = strcmp(c->product, "Turin") == 0;
	json_t *o = json_object(), *tcb = tcb_json(r->reported_tcb, turin);
	char fw[16];
	int bad = 0;

	if (!o || !tcb)
		goto fail;
	bad |= json_object_set_new(o, "tee", json_string("snp"));
	bad |= json_object_set_new(o, "insecure", json_false());
	bad |= set_hex(o, "measurement", r->measurement, 48);
	bad |= set_hex(o, "platform_measurement", r->measurement, 48);
	bad |= set_hex(o, "host_data", r->host_data, 32);
	bad |= set_hex(o, "report_data", r->report_data, EV_REPORT_DATA_SIZE);
	bad |= json_object_set_new(o, "policy", json_integer((json_int_t)r->policy));
	bad |= json_object_set_new(o, "debug", json_boolean(r->policy & (1ULL << 19)));
	bad |= json_object_set_new(o, "migrate_ma", json_boolean(r->policy & (1ULL << 18)));
	bad |= json_object_set_new(o, "smt", json_boolean(r->policy & (1ULL << 16)));
	bad |= json_object_set_new(o, "reported_tcb", tcb);
	tcb = NULL;
	bad |= json_object_set_new(o, "vmpl", json_integer(r->vmpl));
	bad |= json_object_set_new(o, "signing_key", json_string(
		r->signing_key == EV_SNP_KEY_VLEK ? "vlek" : "vcek"));
	bad |= set_hex(o, "chip_id", r->chip_id, EV_SNP_CHIP_ID_SIZE);
	bad |= json_object_set_new(o, "product", json_string(c->product));
	bad |= json_object_set_new(o, "guest_svn", json_integer(r->guest_svn));
	bad |= json_object_set_new(o, "report_version", json_integer(r->version));
	bad |= set_hex(o, "family_id", r->family_id, 16);
	bad |= set_hex(o, "image_id", r->image_id, 16);
	bad |= set_hex(o, "id_key_digest", r->id_key_digest, 48);
	bad |= set_hex(o, "author_key_digest", r->author_key_digest, 48);
	bad |= set_hex(o, "report_id", r->report_id, 32);
	bad |= json_object_set_new(o, "platform_info",
				   json_integer((json_int_t)r->platform_info));
	snprintf(fw, sizeof(fw), "%u.%u.%u", r->current_major, r->current_minor,
		 r->current_build);
	bad |= json_object_set_new(o, "firmware", json_string(fw));
	/* json_object_set_new returns -1 for a NULL value (tcb_json out of memory). */
	bad |= json_object_set_new(o, "current_tcb", tcb_json(r->current_tcb, turin));
	bad |= json_object_set_new(o, "committed_tcb", tcb_json(r->committed_tcb, turin));
	bad |= json_object_set_new(o, "launch_tcb", tcb_json(r->launch_tcb, turin));
	if (bad)
		goto fail;
	return o;
fail:
	json_decref(tcb);
	json_decref(o);
	return NULL;
}

int ev__snp_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   json_t **claims, struct kiln_err *err)
{
	struct ev_snp_report r;
	struct ev__snp_chain chain = { 0 };
	uint8_t **ders = NULL;
	size_t *der_sizes = NULL, n_ders = 0, table_size = 0;
	const uint8_t *table = NULL;
	time_t at = opts && opts->at ? opts->at : time(NULL);
	int ret;

	*claims = NULL;
	if (!evidence && size)
		return kiln_err_set(err, -EINVAL, "SNP report: no data");
	for (size_t i = 0; opts && i < opts->n_certs; i++)
		if (!opts->certs_pem || !opts->certs_pem[i])
			return kiln_err_set(err, -EINVAL, "certificate input %zu is NULL", i + 1);
	/* Bytes after the report are accepted only as an SNP certificate table (what
	 * `kiln evidence produce` appends from configfs-tsm auxblob). */
	ret = ev_snp_report_parse(evidence, size > EV_SNP_REPORT_SIZE ? EV_SNP_REPORT_SIZE : size,
				  &r, err);
	if (ret < 0)
		return ret;
	if (size > EV_SNP_REPORT_SIZE) {
		table = evidence + EV_SNP_REPORT_SIZE;
		table_size = size - EV_SNP_REPORT_SIZE;
		ret = ev_snp_cert_table_parse(table, table_size, &ders, &der_sizes, &n_ders, NULL);
		if (ret == -ENOMEM)
			goto out;
		if (ret < 0) {
			ret = kiln_err_set(err, -KILN_ETRAILING,
					   "SNP report: %zu unexpected bytes after the %d-byte "
					   "report (not an SNP certificate table)", table_size,
					   EV_SNP_REPORT_SIZE);
			goto out;
		}
	}

	ret = ev__snp_chain_get(opts, table, table_size, ders, der_sizes, n_ders, r.signing_key,
				&chain, err);
	if (ret < 0)
		goto out;
	ret = check_validity(&chain, at, err);
	if (ret < 0)
		goto out;
	ret = check_signature(evidence, &r, chain.leaf_key, err);
	if (ret < 0)
		goto out;
	ret = check_binding(&r, &chain, err);
	if (ret < 0)
		goto out;
	*claims = make_claims(&r, &chain);
	ret = *claims ? 0 : -ENOMEM;
out:
	ev__snp_chain_release(&chain);
	for (size_t i = 0; i < n_ders; i++)
		free(ders[i]);
	free(ders);
	free(der_sizes);
	return ret;
}
