/* AMD SEV-SNP certificate chains: VCEK/VLEK <- ASK/ASVK <- ARK from the
 * certificates given to the verifier (opts->certs_pem) and the report's
 * certificate table, the ARK pinned per product, AMD CRLs, the leaf's TCB and
 * hwID extensions; and a small cache of verified chains (most reports of a
 * fleet share a handful of chains). */
#include "evidence/internal.h"

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

/* Pinned AMD root keys: SHA-256 of each ARK certificate's DER, as published in AMD
 * KDS (https://kdsintf.amd.com/vcek/v1/<product>/cert_chain; the same ARKs sign VLEK
 * ASVKs). Computed from testdata/evidence/snp/ask_ark_*.pem. */
static const struct {
	const char *product;
	const char *ark_sha256;
} g_arks[] = {
	{ "Milan", "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd" },
	{ "Genoa", "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1" },
	{ "Turin", "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a" },
};

static const char *ark_product(const char *sha256_hex)
{
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_arks); i++)
		if (strcmp(sha256_hex, g_arks[i].ark_sha256) == 0)
			return g_arks[i].product;
	return NULL;
}

const char *ev__snp_ark_product(X509 *ark)
{
	unsigned char *der = NULL;
	uint8_t digest[KC_SHA256_SIZE];
	char hex[2 * KC_SHA256_SIZE + 1];
	int der_size = i2d_X509(ark, &der);
	const char *product = NULL;

	if (der_size > 0 && kc_sha256(der, (size_t)der_size, digest) == 0) {
		kiln_hex_encode(digest, sizeof(digest), hex);
		product = ark_product(hex);
	}
	OPENSSL_free(der);
	return product;
}

/* TCB extensions of VCEK/VLEK certificates, in reported_tcb's order. */
const struct ev__snp_tcb_ext ev__snp_tcb_exts[EV__SNP_N_TCB_EXTS] = {
	{ "blSPL", "1.3.6.1.4.1.3704.1.3.1", "bootloader" },
	{ "teeSPL", "1.3.6.1.4.1.3704.1.3.2", "tee" },
	{ "snpSPL", "1.3.6.1.4.1.3704.1.3.3", "snp" },
	{ "ucodeSPL", "1.3.6.1.4.1.3704.1.3.8", "microcode" },
	{ "fmcSPL", "1.3.6.1.4.1.3704.1.3.9", "fmc" },
};

void ev__snp_chain_release(struct ev__snp_chain *c)
{
	EVP_PKEY_free(c->leaf_key);
	c->leaf_key = NULL;
}

static void cert_cn(X509 *x, char *out, size_t size)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out,
				      (int)size) < 0)
		snprintf(out, size, "(no CN)");
}

static void name_cn(const X509_NAME *n, char *out, size_t size)
{
	if (X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, out, (int)size) < 0)
		snprintf(out, size, "(no CN)");
}

static int asn1_time_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -KILN_EFORMAT;
	*out = timegm(&tm);
	return 0;
}

void ev__snp_fmt_time(time_t t, char out[static 32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", (long long)t);
}

/* The extension's DER contents (the OCTET STRING's bytes), or NULL. */
static const ASN1_OCTET_STRING *cert_ext(X509 *x, const char *oid)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, /*no_name=*/1);
	int idx;

	if (!obj)
		return NULL;
	idx = X509_get_ext_by_OBJ(x, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return NULL;
	return X509_EXTENSION_get_data(X509_get_ext(x, idx));
}

/* The extension parsed as one DER value (INTEGER, IA5String...), or NULL. */
static ASN1_TYPE *cert_ext_value(X509 *x, const char *oid)
{
	const ASN1_OCTET_STRING *os = cert_ext(x, oid);
	const unsigned char *p;

	if (!os)
		return NULL;
	p = ASN1_STRING_get0_data(os);
	return d2i_ASN1_TYPE(NULL, &p, ASN1_STRING_length(os));
}

int ev__snp_leaf_extensions(X509 *leaf, const char *kind, struct ev__snp_chain *c,
			    struct kiln_err *err)
{
	const ASN1_OCTET_STRING *hw = cert_ext(leaf, EV__SNP_OID_HWID);
	ASN1_TYPE *t;

	t = cert_ext_value(leaf, EV__SNP_OID_PRODUCT);
	if (t && (t->type == V_ASN1_IA5STRING || t->type == V_ASN1_UTF8STRING ||
		  t->type == V_ASN1_PRINTABLESTRING)) {
		int len = ASN1_STRING_length(t->value.asn1_string);

		if (len > 0 && (size_t)len < sizeof(c->product_name)) {
			memcpy(c->product_name, ASN1_STRING_get0_data(t->value.asn1_string),
			       (size_t)len);
			c->product_name[len] = '\0';
		}
	}
	ASN1_TYPE_free(t);

	if (hw) {
		const unsigned char *p = ASN1_STRING_get0_data(hw);
		int len = ASN1_STRING_length(hw);

		/* AMD KDS puts the 64 raw bytes in the extension; accept an inner OCTET
		 * STRING too, as some tooling re-encodes it that way. */
		if (len == EV_SNP_CHIP_ID_SIZE) {
			memcpy(c->hwid, p, EV_SNP_CHIP_ID_SIZE);
			c->has_hwid = true;
		} else if (len == EV_SNP_CHIP_ID_SIZE + 2 && p[0] == V_ASN1_OCTET_STRING &&
			   p[1] == EV_SNP_CHIP_ID_SIZE) {
			memcpy(c->hwid, p + 2, EV_SNP_CHIP_ID_SIZE);
			c->has_hwid = true;
		} else {
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate: hwID extension (%s) is %d bytes, "
					    "expected %d", kind, EV__SNP_OID_HWID, len,
					    EV_SNP_CHIP_ID_SIZE);
		}
	}
	for (size_t i = 0; i < EV__SNP_N_TCB_EXTS; i++) {
		int64_t v;

		c->tcb[i] = -1;
		t = cert_ext_value(leaf, ev__snp_tcb_exts[i].oid);
		if (!t)
			continue;
		if (t->type != V_ASN1_INTEGER ||
		    ASN1_INTEGER_get_int64(&v, t->value.integer) != 1 || v < 0 || v > 255) {
			ASN1_TYPE_free(t);
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate: TCB extension %s (%s) is not an "
					    "integer 0-255", kind, ev__snp_tcb_exts[i].name,
					    ev__snp_tcb_exts[i].oid);
		}
		c->tcb[i] = (int)v;
		ASN1_TYPE_free(t);
	}
	return 0;
}

/* Append the PEM certificates and CRLs of one input (PEM reading skips blocks of the
 * other type, so each kind gets its own pass). */
static int load_pem_certs(const char *pem, size_t index, STACK_OF(X509) *certs,
			  STACK_OF(X509_CRL) *crls, struct kiln_err *err)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;
	X509_CRL *crl;
	int n = 0, ret = 0;

	if (!bio)
		return -ENOMEM;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	BIO_free(bio);
	bio = BIO_new_mem_buf(pem, -1);
	if (!bio) {
		ret = -ENOMEM;
		goto out;
	}
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_CRL_push(crls, crl)) {
			X509_CRL_free(crl);
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (n == 0)
		ret = kiln_err_set(err, -KILN_EFORMAT,
				   "certificate input %zu holds no PEM certificate or CRL",
				   index + 1);
out:
	ERR_clear_error();
	BIO_free(bio);
	return ret;
}

/* The certificate among `certs` (other than `child`) whose subject is child's issuer
 * name, or NULL. Whether its key really signed child is checked separately, so a name
 * match with the wrong key is reported as a bad signature, not as a missing issuer. */
static X509 *find_issuer(STACK_OF(X509) *certs, X509 *child)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);

		if (c != child &&
		    X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(child)) == 0)
			return c;
	}
	return NULL;
}

static void list_cns(STACK_OF(X509) *certs, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < sk_X509_num(certs) && used + 1 < size; i++) {
		char cn[64];
		int w;

		cert_cn(sk_X509_value(certs, i), cn, sizeof(cn));
		w = snprintf(out + used, size - used, "%s%s", i ? ", " : "", cn);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int check_signed_by(X509 *child, X509 *issuer, struct kiln_err *err)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	char a[64], b[64];

	if (key && X509_verify(child, key) == 1)
		return 0;
	ERR_clear_error();
	cert_cn(child, a, sizeof(a));
	cert_cn(issuer, b, sizeof(b));
	return kiln_err_set(err, -KILN_ECHAIN,
			    "certificate %s: signature by %s does not verify", a, b);
}

static int note_cert(struct ev__snp_chain *c, int slot, X509 *x, struct kiln_err *err)
{
	cert_cn(x, c->certs[slot].name, sizeof(c->certs[slot].name));
	if (asn1_time_to_time_t(X509_get0_notBefore(x), &c->certs[slot].not_before) != 0 ||
	    asn1_time_to_time_t(X509_get0_notAfter(x), &c->certs[slot].not_after) != 0)
		return kiln_err_set(err, -KILN_ECHAIN,
				    "certificate %s: unreadable validity dates",
				    c->certs[slot].name);
	return 0;
}

static void serial_hex(X509 *x, char *out, size_t size)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	snprintf(out, size, "%s", hex ? hex : "?");
	OPENSSL_free(hex);
	BN_free(bn);
}

int ev_snp_check_crl(X509_CRL *crl, X509 *ark, X509 *const *certs, size_t n_certs,
		     time_t *this_update, time_t *next_update, struct kiln_err *err)
{
	char ark_cn[64], issuer[64], cn[64], serial[80];
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	EVP_PKEY *key = X509_get0_pubkey(ark);

	cert_cn(ark, ark_cn, sizeof(ark_cn));
	name_cn(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ark)) != 0)
		return kiln_err_set(err, -KILN_ECHAIN,
				    "CRL issued by %s, not by the chain's root %s", issuer,
				    ark_cn);
	if (!key || X509_CRL_verify(crl, key) != 1) {
		ERR_clear_error();
		return kiln_err_set(err, -KILN_ECHAIN,
				    "CRL of %s: signature by %s does not verify", issuer, ark_cn);
	}
	if (asn1_time_to_time_t(X509_CRL_get0_lastUpdate(crl), this_update) != 0 ||
	    !next || asn1_time_to_time_t(next, next_update) != 0)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "CRL of %s: unreadable or missing thisUpdate/nextUpdate",
				    issuer);
	for (size_t i = 0; i < n_certs; i++) {
		X509_REVOKED *rev = NULL;

		if (X509_CRL_get0_by_cert(crl, &rev, certs[i]) == 1) {
			char when[32] = "?";
			time_t t;

			if (asn1_time_to_time_t(X509_REVOKED_get0_revocationDate(rev), &t) == 0)
				ev__snp_fmt_time(t, when);
			cert_cn(certs[i], cn, sizeof(cn));
			serial_hex(certs[i], serial, sizeof(serial));
			return kiln_err_set(err, -KILN_EREVOKED,
					    "certificate %s (serial %s) is revoked by the CRL of "
					    "%s since %s", cn, serial, issuer, when);
		}
	}
	ERR_clear_error();
	return 0;
}

/* Build and verify the chain from the given certificates. On success c->leaf_key
 * holds a reference the caller releases with ev__snp_chain_release(). */
static int chain_build(const struct ev_verify_opts *opts, uint8_t *const *table_ders,
		       const size_t *table_sizes, size_t n_table, enum ev_snp_signing_key kind,
		       struct ev__snp_chain *c, struct kiln_err *err)
{
	const char *kind_name = kind == EV_SNP_KEY_VLEK ? "VLEK" : "VCEK";
	const char *leaf_cn = kind == EV_SNP_KEY_VLEK ? "SEV-VLEK" : "SEV-VCEK";
	STACK_OF(X509) *certs = sk_X509_new_null();
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	X509 *leaf = NULL, *ask, *ark, *other_leaf = NULL;
	unsigned char *der = NULL;
	uint8_t digest[KC_SHA256_SIZE];
	char hex[2 * KC_SHA256_SIZE + 1], have[512], cn[64], cn2[64];
	int der_size, ret = -ENOMEM;

	memset(c, 0, sizeof(*c));
	if (!certs || !crls)
		goto out;
	for (size_t i = 0; opts && i < opts->n_certs; i++) {
		ret = load_pem_certs(opts->certs_pem[i], i, certs, crls, err);
		if (ret < 0)
			goto out;
	}
	for (size_t i = 0; i < n_table; i++) {
		const unsigned char *p = table_ders[i];
		X509 *x = d2i_X509(NULL, &p, (long)table_sizes[i]);

		if (!x) {
			ERR_clear_error();
			ret = kiln_err_set(err, -KILN_EFORMAT,
					   "SNP certificate table: certificate %zu is not DER "
					   "X.509", i + 1);
			goto out;
		}
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			ret = -ENOMEM;
			goto out;
		}
	}

	/* The leaf: the end-entity certificate named after the report's signing key. */
	for (int i = 0; i < sk_X509_num(certs) && !leaf; i++) {
		X509 *x = sk_X509_value(certs, i);
		EVP_PKEY *k = X509_get0_pubkey(x);

		if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
			continue;
		cert_cn(x, cn, sizeof(cn));
		if (strcmp(cn, leaf_cn) == 0)
			leaf = x;
		else
			other_leaf = x;
	}
	ERR_clear_error();
	if (!leaf) {
		if (other_leaf) {
			cert_cn(other_leaf, cn, sizeof(cn));
			ret = kiln_err_set(err, -KILN_ECHAIN,
					   "report is signed by the %s, but the end-entity "
					   "certificate given is %s", kind_name, cn);
		} else {
			ret = kiln_err_set(err, -KILN_ECHAIN,
					   "no %s certificate given (CN=%s; AMD KDS serves it for "
					   "the report's chip_id and reported_tcb)", kind_name,
					   leaf_cn);
		}
		goto out;
	}
	{
		EVP_PKEY *k = X509_get0_pubkey(leaf);
		char group[32] = "";
		size_t glen;

		if (EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) != 1 ||
		    strcmp(group, "secp384r1") != 0) {
			ERR_clear_error();
			ret = kiln_err_set(err, -KILN_ECHAIN,
					   "%s certificate: public key is on curve '%s', "
					   "expected secp384r1 (P-384)", kind_name, group);
			goto out;
		}
	}

	ask = find_issuer(certs, leaf);
	if (!ask) {
		name_cn(X509_get_issuer_name(leaf), cn, sizeof(cn));
		list_cns(certs, have, sizeof(have));
		ret = kiln_err_set(err, -KILN_ECHAIN,
				   "%s certificate: its issuer %s is not among the given "
				   "certificates (%s)", kind_name, cn, have);
		goto out;
	}
	if (X509_check_issued(ask, ask) == X509_V_OK) {
		cert_cn(ask, cn, sizeof(cn));
		ret = kiln_err_set(err, -KILN_ECHAIN,
				   "%s certificate is issued directly by the self-signed %s; "
				   "expected an ASK/ASVK in between", kind_name, cn);
		goto out;
	}
	ark = find_issuer(certs, ask);
	if (!ark) {
		cert_cn(ask, cn, sizeof(cn));
		name_cn(X509_get_issuer_name(ask), cn2, sizeof(cn2));
		ret = kiln_err_set(err, -KILN_EROOT,
				   "certificate %s: its issuer %s (the AMD root, ARK) is not "
				   "among the given certificates", cn, cn2);
		goto out;
	}
	cert_cn(ark, cn, sizeof(cn));
	der_size = i2d_X509(ark, &der);
	if (der_size <= 0) {
		ret = -KILN_ECRYPTO;
		goto out;
	}
	ret = kc_sha256(der, (size_t)der_size, digest);
	if (ret < 0)
		goto out;
	kiln_hex_encode(digest, sizeof(digest), hex);
	c->product = ark_product(hex);
	if (!c->product) {
		ret = kiln_err_set(err, -KILN_EROOT,
				   "root certificate %s (sha256 %s) is not a pinned AMD ARK "
				   "(Milan, Genoa, Turin)", cn, hex);
		goto out;
	}
	ret = check_signed_by(ark, ark, err);
	if (ret < 0)
		goto out;
	ret = check_signed_by(ask, ark, err);
	if (ret < 0)
		goto out;
	ret = check_signed_by(leaf, ask, err);
	if (ret < 0)
		goto out;

	ret = ev__snp_leaf_extensions(leaf, kind_name, c, err);
	if (ret < 0)
		goto out;
	if (c->product_name[0] &&
	    strncmp(c->product_name, c->product, strlen(c->product)) != 0) {
		ret = kiln_err_set(err, -KILN_ECHAIN,
				   "%s certificate: productName '%s' does not match the %s root "
				   "%s", kind_name, c->product_name, c->product, cn);
		goto out;
	}
	if ((ret = note_cert(c, 0, leaf, err)) < 0 || (ret = note_cert(c, 1, ask, err)) < 0 ||
	    (ret = note_cert(c, 2, ark, err)) < 0)
		goto out;
	/* AMD KDS CRLs (per product, issued by the ARK) revoke what the ARK issued: ASKs
	 * and ASVKs. Entries match on issuer and serial, so the leaf is passed too for a
	 * CRL that would list it, but the ARK's CRL cannot name a VCEK. */
	for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
		X509 *const chain[2] = { ask, leaf };
		time_t tu, nu;

		ret = ev_snp_check_crl(sk_X509_CRL_value(crls, i), ark, chain, 2, &tu, &nu, err);
		if (ret < 0)
			goto out;
		if (c->n_crls == 0 || tu > c->crl_this_update)
			c->crl_this_update = tu;
		if (c->n_crls == 0 || nu < c->crl_next_update)
			c->crl_next_update = nu;
		c->n_crls++;
	}
	if (EVP_PKEY_up_ref(X509_get0_pubkey(leaf)) != 1) {
		ret = -KILN_ECRYPTO;
		goto out;
	}
	c->leaf_key = X509_get0_pubkey(leaf);
	ret = 0;
out:
	OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	if (ret < 0)
		ev__snp_chain_release(c);
	return ret;
}

int ev__snp_chain_build(const char *const *pems, size_t n, enum ev_snp_signing_key kind,
			struct ev__snp_chain *c, struct kiln_err *err)
{
	struct ev_verify_opts o = { .certs_pem = pems, .n_certs = n };

	return chain_build(&o, NULL, NULL, 0, kind, c, err);
}

/* ---- chain cache ------------------------------------------------------------------ */

#define SNP_CACHE_SLOTS 8

static struct {
	pthread_mutex_t lock;
	bool disabled;
	unsigned next;
	struct {
		bool used;
		uint8_t key[KC_SHA256_SIZE];
		struct ev__snp_chain chain;
	} slot[SNP_CACHE_SLOTS];
} g_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

void ev_snp_cache_clear(void)
{
	pthread_mutex_lock(&g_cache.lock);
	for (unsigned i = 0; i < SNP_CACHE_SLOTS; i++) {
		if (g_cache.slot[i].used)
			ev__snp_chain_release(&g_cache.slot[i].chain);
		g_cache.slot[i].used = false;
	}
	pthread_mutex_unlock(&g_cache.lock);
}

void ev_snp_cache_set_enabled(bool enabled)
{
	pthread_mutex_lock(&g_cache.lock);
	g_cache.disabled = !enabled;
	pthread_mutex_unlock(&g_cache.lock);
	if (!enabled)
		ev_snp_cache_clear();
}

/* Drop cached references at exit so leak checkers see a clean heap. */
__attribute__((destructor)) static void snp_cache_fini(void)
{
	ev_snp_cache_clear();
}

static int cache_key(const struct ev_verify_opts *opts, const uint8_t *table,
		     size_t table_size, enum ev_snp_signing_key kind,
		     uint8_t key[static KC_SHA256_SIZE])
{
	kc_hash_t *h = kc_hash_new("SHA256");
	uint8_t k = (uint8_t)kind;
	size_t out_size;
	int ret;

	if (!h)
		return -ENOMEM;
	ret = kc_hash_update(h, &k, 1);
	for (size_t i = 0; ret == 0 && opts && i < opts->n_certs; i++) {
		uint64_t len = strlen(opts->certs_pem[i]);

		ret = kc_hash_update(h, &len, sizeof(len));
		if (ret == 0)
			ret = kc_hash_update(h, opts->certs_pem[i], len);
	}
	if (ret == 0) {
		uint64_t len = table_size;

		ret = kc_hash_update(h, &len, sizeof(len));
		if (ret == 0 && table_size)
			ret = kc_hash_update(h, table, table_size);
	}
	if (ret == 0)
		ret = kc_hash_final(h, key, &out_size);
	kc_hash_free(h);
	return ret;
}

/* Copy a cached chain into *c (taking a key reference); true on a hit. */
static bool cache_get(const uint8_t key[static KC_SHA256_SIZE], struct ev__snp_chain *c)
{
	bool hit = false;

	pthread_mutex_lock(&g_cache.lock);
	for (unsigned i = 0; !g_cache.disabled && i < SNP_CACHE_SLOTS; i++) {
		if (g_cache.slot[i].used && memcmp(g_cache.slot[i].key, key, KC_SHA256_SIZE) == 0 &&
		    EVP_PKEY_up_ref(g_cache.slot[i].chain.leaf_key) == 1) {
			*c = g_cache.slot[i].chain;
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&g_cache.lock);
	return hit;
}

static void cache_put(const uint8_t key[static KC_SHA256_SIZE], const struct ev__snp_chain *c)
{
	pthread_mutex_lock(&g_cache.lock);
	if (!g_cache.disabled && EVP_PKEY_up_ref(c->leaf_key) == 1) {
		unsigned i = g_cache.next++ % SNP_CACHE_SLOTS;

		if (g_cache.slot[i].used)
			ev__snp_chain_release(&g_cache.slot[i].chain);
		memcpy(g_cache.slot[i].key, key, KC_SHA256_SIZE);
		g_cache.slot[i].chain = *c;
		g_cache.slot[i].used = true;
	}
	pthread_mutex_unlock(&g_cache.lock);
}

int ev__snp_chain_get(const struct ev_verify_opts *opts, const uint8_t *table, size_t table_size,
		      uint8_t *const *ders, const size_t *der_sizes, size_t n_ders,
		      enum ev_snp_signing_key kind, struct ev__snp_chain *c, struct kiln_err *err)
{
	uint8_t key[KC_SHA256_SIZE];
	int ret;

	ret = cache_key(opts, table, table_size, kind, key);
	if (ret < 0)
		return ret;
	if (cache_get(key, c))
		return 0;
	ret = chain_build(opts, ders, der_sizes, n_ders, kind, c, err);
	if (ret < 0)
		return ret;
	cache_put(key, c);
	return 0;
}
