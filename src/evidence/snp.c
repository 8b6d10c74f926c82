/* AMD SEV-SNP attestation report verifier (ev_backend_snp).
 *
 * Checks, in order: the report layout (bounds, version 2-5, algorithm, signature
 * padding); the certificate chain VCEK/VLEK <- ASK/ASVK <- ARK (RSA-PSS SHA-384, the
 * ARK self-signed and pinned per product by the SHA-256 of its DER); every
 * certificate's validity at opts->at; the report signature (ECDSA P-384 SHA-384 over
 * [0, 0x2A0), r and s little-endian); the VCEK's hwID against chip_id and the
 * certificate's TCB extensions against reported_tcb. The signature is checked before
 * the report fields are compared with the certificate, so a tampered report is named
 * as such and not as a misleading field mismatch. */
#include "evidence/snp.h"

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

/* ---- report layout ---------------------------------------------------------------- */

struct snp_field {
	const char *name;
	uint32_t off, size;
};

/* Every field in file order, so a truncated report names the first field it cuts. */
static const struct snp_field g_fields[] = {
	{ "version", 0x000, 4 },          { "guest_svn", 0x004, 4 },
	{ "policy", 0x008, 8 },           { "family_id", 0x010, 16 },
	{ "image_id", 0x020, 16 },        { "vmpl", 0x030, 4 },
	{ "signature_algo", 0x034, 4 },   { "current_tcb", 0x038, 8 },
	{ "platform_info", 0x040, 8 },    { "flags", 0x048, 4 },
	{ "reserved0", 0x04C, 4 },        { "report_data", 0x050, 64 },
	{ "measurement", 0x090, 48 },     { "host_data", 0x0C0, 32 },
	{ "id_key_digest", 0x0E0, 48 },   { "author_key_digest", 0x110, 48 },
	{ "report_id", 0x140, 32 },       { "report_id_ma", 0x160, 32 },
	{ "reported_tcb", 0x180, 8 },     { "cpuid/reserved1", 0x188, 24 },
	{ "chip_id", 0x1A0, 64 },         { "committed_tcb", 0x1E0, 8 },
	{ "current_version", 0x1E8, 4 },  { "committed_version", 0x1EC, 4 },
	{ "launch_tcb", 0x1F0, 8 },       { "reserved2", 0x1F8, 0xA8 },
	{ "signature.r", 0x2A0, 72 },     { "signature.s", 0x2E8, 72 },
	{ "signature.reserved", 0x330, 0x170 },
};

#define SNP_SIG_COMPONENT_SIZE 72
#define SNP_P384_SIZE 48

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static bool all_zero(const uint8_t *p, size_t size)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < size; i++)
		acc |= p[i];
	return acc == 0;
}

int ev_snp_report_parse(const uint8_t *buf, size_t size, struct ev_snp_report *r,
			struct kiln_err *err)
{
	memset(r, 0, sizeof(*r));
	if (size < EV_SNP_REPORT_SIZE) {
		for (size_t i = 0; i < KILN_ARRAY_SIZE(g_fields); i++) {
			const struct snp_field *f = &g_fields[i];

			if ((size_t)f->off + f->size > size)
				return kiln_err_set(err, -KILN_ETRUNC,
						    "SNP report truncated at %zu bytes: field "
						    "'%s' (0x%x..0x%x) is incomplete; a report is "
						    "%d bytes",
						    size, f->name, f->off, f->off + f->size,
						    EV_SNP_REPORT_SIZE);
		}
	}
	if (size > EV_SNP_REPORT_SIZE)
		return kiln_err_set(err, -KILN_ETRAILING,
				    "SNP report: %zu unexpected bytes after the %d-byte report",
				    size - EV_SNP_REPORT_SIZE, EV_SNP_REPORT_SIZE);

	r->version = le32(buf + 0x000);
	if (r->version < 2 || r->version > 5)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'version' is %u, supported versions are 2-5",
				    r->version);
	r->guest_svn = le32(buf + 0x004);
	r->policy = le64(buf + 0x008);
	r->family_id = buf + 0x010;
	r->image_id = buf + 0x020;
	r->vmpl = le32(buf + 0x030);
	r->signature_algo = le32(buf + 0x034);
	r->current_tcb = le64(buf + 0x038);
	r->platform_info = le64(buf + 0x040);
	r->flags = le32(buf + 0x048);
	r->report_data = buf + 0x050;
	r->measurement = buf + 0x090;
	r->host_data = buf + 0x0C0;
	r->id_key_digest = buf + 0x0E0;
	r->author_key_digest = buf + 0x110;
	r->report_id = buf + 0x140;
	r->report_id_ma = buf + 0x160;
	r->reported_tcb = le64(buf + 0x180);
	if (r->version >= 3) {
		r->cpuid_fam_id = buf[0x188];
		r->cpuid_mod_id = buf[0x189];
		r->cpuid_step = buf[0x18A];
	}
	r->chip_id = buf + 0x1A0;
	r->committed_tcb = le64(buf + 0x1E0);
	r->current_build = buf[0x1E8];
	r->current_minor = buf[0x1E9];
	r->current_major = buf[0x1EA];
	r->committed_build = buf[0x1EC];
	r->committed_minor = buf[0x1ED];
	r->committed_major = buf[0x1EE];
	r->launch_tcb = le64(buf + 0x1F0);
	r->sig_r = buf + 0x2A0;
	r->sig_s = buf + 0x2E8;

	if (r->vmpl > 3)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'vmpl' is %u, expected 0-3", r->vmpl);
	if (r->signature_algo != 1)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature_algo' is %u, expected 1 "
				    "(ECDSA P-384 with SHA-384)", r->signature_algo);
	switch ((r->flags >> 2) & 7) {
	case EV_SNP_KEY_VCEK:
		r->signing_key = EV_SNP_KEY_VCEK;
		break;
	case EV_SNP_KEY_VLEK:
		r->signing_key = EV_SNP_KEY_VLEK;
		break;
	case EV_SNP_KEY_NONE:
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'flags' says the report is not signed "
				    "(signing key 7 = none)");
	default:
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'flags' names unknown signing key %u "
				    "(expected 0 VCEK or 1 VLEK)", (r->flags >> 2) & 7);
	}
	/* P-384 values fill 48 of the 72 bytes; the rest and the reserved tail are
	 * outside the signed region, so anything there is refused rather than ignored. */
	if (!all_zero(r->sig_r + SNP_P384_SIZE, SNP_SIG_COMPONENT_SIZE - SNP_P384_SIZE))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature.r' bytes 48-71 are not zero "
				    "(P-384 uses 48 bytes)");
	if (!all_zero(r->sig_s + SNP_P384_SIZE, SNP_SIG_COMPONENT_SIZE - SNP_P384_SIZE))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature.s' bytes 48-71 are not zero "
				    "(P-384 uses 48 bytes)");
	if (!all_zero(buf + 0x330, EV_SNP_REPORT_SIZE - 0x330))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature.reserved' (0x330..0x4a0) is not "
				    "zero");
	return 0;
}

void ev_snp_tcb_decode(uint64_t raw, bool turin, struct ev_snp_tcb *out)
{
	memset(out, 0, sizeof(*out));
	if (turin) {
		out->fmc = (uint8_t)raw;
		out->bootloader = (uint8_t)(raw >> 8);
		out->tee = (uint8_t)(raw >> 16);
		out->snp = (uint8_t)(raw >> 24);
	} else {
		out->bootloader = (uint8_t)raw;
		out->tee = (uint8_t)(raw >> 8);
		out->snp = (uint8_t)(raw >> 48);
	}
	out->microcode = (uint8_t)(raw >> 56);
}

/* ---- certificate table (auxblob / SNP_GET_EXT_REPORT) ----------------------------- */

/* GUIDs of the GHCB certificate table, in RFC 4122 byte order. The kernel passes the
 * host's table through unchanged and hosts differ in byte order, so the mixed-endian
 * (Microsoft GUID) order is accepted too. */
static const struct {
	const char *name;
	uint8_t guid[16];
} g_cert_guids[] = {
	{ "VCEK", { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
		    0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd } },
	{ "VLEK", { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
		    0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 } },
	{ "ASK", { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
		   0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 } },
	{ "ARK", { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
		   0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae } },
};

static bool guid_known(const uint8_t *g)
{
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_cert_guids); i++) {
		const uint8_t *k = g_cert_guids[i].guid;
		uint8_t mixed[16] = { k[3], k[2], k[1], k[0], k[5], k[4], k[7], k[6] };

		memcpy(mixed + 8, k + 8, 8);
		if (memcmp(g, k, 16) == 0 || memcmp(g, mixed, 16) == 0)
			return true;
	}
	return false;
}

#define SNP_CERT_ENTRY_SIZE 24
#define SNP_CERT_MAX 16

int ev_snp_cert_table_parse(const uint8_t *buf, size_t size, uint8_t ***ders, size_t **sizes,
			    size_t *n, struct kiln_err *err)
{
	uint8_t **d = NULL;
	size_t *s = NULL, count = 0, i;
	int ret = -KILN_EFORMAT;

	*ders = NULL;
	*sizes = NULL;
	*n = 0;
	d = calloc(SNP_CERT_MAX, sizeof(*d));
	s = calloc(SNP_CERT_MAX, sizeof(*s));
	if (!d || !s) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0;; i++) {
		size_t at = i * SNP_CERT_ENTRY_SIZE;
		uint32_t off, len;

		if (at + SNP_CERT_ENTRY_SIZE > size) {
			kiln_err_set(err, ret, "SNP certificate table: entry %zu is cut off "
				     "(no all-zero terminator in %zu bytes)", i, size);
			goto out;
		}
		if (all_zero(buf + at, SNP_CERT_ENTRY_SIZE))
			break;
		if (i >= SNP_CERT_MAX) {
			kiln_err_set(err, ret, "SNP certificate table: more than %d entries",
				     SNP_CERT_MAX);
			goto out;
		}
		off = le32(buf + at + 16);
		len = le32(buf + at + 20);
		if (len == 0 || off > size || len > size - off ||
		    off < (i + 1) * SNP_CERT_ENTRY_SIZE) {
			kiln_err_set(err, ret, "SNP certificate table: entry %zu (offset %u, "
				     "length %u) lies outside the %zu-byte table", i, off, len,
				     size);
			goto out;
		}
		if (!guid_known(buf + at))
			continue; /* other providers' blobs (e.g. a CRL) are not ours to judge */
		d[count] = malloc(len);
		if (!d[count]) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(d[count], buf + off, len);
		s[count++] = len;
	}
	*ders = d;
	*sizes = s;
	*n = count;
	d = NULL;
	s = NULL;
	ret = 0;
out:
	if (d)
		for (i = 0; i < count; i++)
			free(d[i]);
	free(d);
	free(s);
	return ret;
}

/* ---- certificate chain ------------------------------------------------------------ */

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

#define SNP_OID_PRODUCT "1.3.6.1.4.1.3704.1.2"
#define SNP_OID_HWID "1.3.6.1.4.1.3704.1.4"

/* TCB extensions of VCEK/VLEK certificates. */
static const struct {
	const char *name;  /* extension name in AMD's VCEK specification */
	const char *oid;
	const char *field; /* reported_tcb field */
} g_tcb_exts[] = {
	{ "blSPL", "1.3.6.1.4.1.3704.1.3.1", "bootloader" },
	{ "teeSPL", "1.3.6.1.4.1.3704.1.3.2", "tee" },
	{ "snpSPL", "1.3.6.1.4.1.3704.1.3.3", "snp" },
	{ "ucodeSPL", "1.3.6.1.4.1.3704.1.3.8", "microcode" },
	{ "fmcSPL", "1.3.6.1.4.1.3704.1.3.9", "fmc" },
};
#define SNP_TCB_FMC 4

/* The verified chain, everything the report checks need; what the cache holds. */
struct snp_chain {
	EVP_PKEY *leaf_key;     /* owned (one reference) */
	const char *product;    /* static string from g_arks */
	char product_name[32];  /* VCEK productName extension, "" if absent */
	bool has_hwid;
	uint8_t hwid[EV_SNP_CHIP_ID_SIZE];
	int tcb[KILN_ARRAY_SIZE(g_tcb_exts)]; /* -1 when the extension is absent */
	struct {
		char name[64];
		time_t not_before, not_after;
	} certs[3];             /* leaf, intermediate, root */
	unsigned n_crls;        /* AMD CRLs checked (0: none given) */
	time_t crl_this_update, crl_next_update; /* the narrowest window of those */
};

static void chain_release(struct snp_chain *c)
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

static void fmt_time(time_t t, char out[static 32])
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

static int read_leaf_extensions(X509 *leaf, const char *kind, struct snp_chain *c,
				struct kiln_err *err)
{
	const ASN1_OCTET_STRING *hw = cert_ext(leaf, SNP_OID_HWID);
	ASN1_TYPE *t;

	t = cert_ext_value(leaf, SNP_OID_PRODUCT);
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
					    "expected %d", kind, SNP_OID_HWID, len,
					    EV_SNP_CHIP_ID_SIZE);
		}
	}
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_tcb_exts); i++) {
		int64_t v;

		c->tcb[i] = -1;
		t = cert_ext_value(leaf, g_tcb_exts[i].oid);
		if (!t)
			continue;
		if (t->type != V_ASN1_INTEGER ||
		    ASN1_INTEGER_get_int64(&v, t->value.integer) != 1 || v < 0 || v > 255) {
			ASN1_TYPE_free(t);
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate: TCB extension %s (%s) is not an "
					    "integer 0-255", kind, g_tcb_exts[i].name,
					    g_tcb_exts[i].oid);
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

static int note_cert(struct snp_chain *c, int slot, X509 *x, struct kiln_err *err)
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
				fmt_time(t, when);
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
 * holds a reference the caller releases with chain_release(). */
static int chain_build(const struct ev_verify_opts *opts, uint8_t *const *table_ders,
		       const size_t *table_sizes, size_t n_table, enum ev_snp_signing_key kind,
		       struct snp_chain *c, struct kiln_err *err)
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
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_arks); i++)
		if (strcmp(hex, g_arks[i].ark_sha256) == 0)
			c->product = g_arks[i].product;
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

	ret = read_leaf_extensions(leaf, kind_name, c, err);
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
		chain_release(c);
	return ret;
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
		struct snp_chain chain;
	} slot[SNP_CACHE_SLOTS];
} g_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

void ev_snp_cache_clear(void)
{
	pthread_mutex_lock(&g_cache.lock);
	for (unsigned i = 0; i < SNP_CACHE_SLOTS; i++) {
		if (g_cache.slot[i].used)
			chain_release(&g_cache.slot[i].chain);
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
static bool cache_get(const uint8_t key[static KC_SHA256_SIZE], struct snp_chain *c)
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

static void cache_put(const uint8_t key[static KC_SHA256_SIZE], const struct snp_chain *c)
{
	pthread_mutex_lock(&g_cache.lock);
	if (!g_cache.disabled && EVP_PKEY_up_ref(c->leaf_key) == 1) {
		unsigned i = g_cache.next++ % SNP_CACHE_SLOTS;

		if (g_cache.slot[i].used)
			chain_release(&g_cache.slot[i].chain);
		memcpy(g_cache.slot[i].key, key, KC_SHA256_SIZE);
		g_cache.slot[i].chain = *c;
		g_cache.slot[i].used = true;
	}
	pthread_mutex_unlock(&g_cache.lock);
}

/* ---- report checks ---------------------------------------------------------------- */

static int check_validity(const struct snp_chain *c, time_t at, struct kiln_err *err)
{
	for (int i = 0; i < 3; i++) {
		char nb[32], na[32], now[32];

		if (at >= c->certs[i].not_before && at <= c->certs[i].not_after)
			continue;
		fmt_time(c->certs[i].not_before, nb);
		fmt_time(c->certs[i].not_after, na);
		fmt_time(at, now);
		return kiln_err_set(err, -KILN_EEXPIRED,
				    "certificate %s is valid %s to %s, not at %s",
				    c->certs[i].name, nb, na, now);
	}
	if (c->n_crls && (at < c->crl_this_update || at > c->crl_next_update)) {
		char tu[32], nu[32], now[32];

		fmt_time(c->crl_this_update, tu);
		fmt_time(c->crl_next_update, nu);
		fmt_time(at, now);
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
	BIGNUM *br = BN_lebin2bn(r->sig_r, SNP_P384_SIZE, NULL);
	BIGNUM *bs = BN_lebin2bn(r->sig_s, SNP_P384_SIZE, NULL);
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

static int check_binding(const struct ev_snp_report *r, const struct snp_chain *c,
			 struct kiln_err *err)
{
	const char *kind = r->signing_key == EV_SNP_KEY_VLEK ? "VLEK" : "VCEK";
	const char *cpu = cpuid_product(r);
	bool turin = strcmp(c->product, "Turin") == 0;
	struct ev_snp_tcb tcb;
	int rep[KILN_ARRAY_SIZE(g_tcb_exts)];

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
					    SNP_OID_HWID);
		if (all_zero(r->chip_id, EV_SNP_CHIP_ID_SIZE))
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
	rep[SNP_TCB_FMC] = tcb.fmc;
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_tcb_exts); i++) {
		if (i == SNP_TCB_FMC && !turin)
			continue;
		if (c->tcb[i] < 0)
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate has no TCB extension %s (%s)", kind,
					    g_tcb_exts[i].name, g_tcb_exts[i].oid);
		if (c->tcb[i] != rep[i])
			return kiln_err_set(err, -KILN_ECHAIN,
					    "%s certificate TCB %s is %d but report "
					    "reported_tcb.%s is %d", kind, g_tcb_exts[i].name,
					    c->tcb[i], g_tcb_exts[i].field, rep[i]);
	}
	return 0;
}

int ev_snp_check_report(const uint8_t *report, size_t size, X509 *leaf, const char *product,
			struct kiln_err *err)
{
	struct ev_snp_report r;
	struct snp_chain c;
	int ret;

	memset(&c, 0, sizeof(c));
	ret = ev_snp_report_parse(report, size, &r, err);
	if (ret < 0)
		return ret;
	c.product = product;
	ret = read_leaf_extensions(leaf, r.signing_key == EV_SNP_KEY_VLEK ? "VLEK" : "VCEK",
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

static json_t *make_claims(const struct ev_snp_report *r, const struct snp_chain *c)
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

static int snp_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		      json_t **claims, struct kiln_err *err)
{
	struct ev_snp_report r;
	struct snp_chain chain = { 0 };
	uint8_t **ders = NULL, key[KC_SHA256_SIZE];
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

	ret = cache_key(opts, table, table_size, r.signing_key, key);
	if (ret < 0)
		goto out;
	if (!cache_get(key, &chain)) {
		ret = chain_build(opts, ders, der_sizes, n_ders, r.signing_key, &chain, err);
		if (ret < 0)
			goto out;
		cache_put(key, &chain);
	}
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
	chain_release(&chain);
	for (size_t i = 0; i < n_ders; i++)
		free(ders[i]);
	free(ders);
	free(der_sizes);
	return ret;
}

const struct ev_backend ev_backend_snp = {
	.name = "snp",
	.insecure = false,
	.produce = ev_snp_produce,
	.verify = snp_verify,
};
