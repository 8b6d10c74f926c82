/* X.509 pieces of DCAP verification: the pinned Intel SGX Root CA, PEM chains, CRLs,
 * raw ECDSA-P256 signatures and the SGX extension of PCK certificates.
 *
 * Chains are checked link by link (issuer name/AKID and key usage via
 * X509_check_issued, CA flag via X509_check_ca, signature via X509_verify) instead of
 * X509_verify_cert: DCAP chains have a fixed shape (leaf, Intel CA, pinned root) and
 * doing it here lets the verifier name the failing certificate exactly and skip the
 * links a cached collateral already proved. Validity windows are checked by the
 * caller against the verification time. */
#include "evidence/dcap.h"

#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"

/* Intel SGX Root CA (DER), CN=Intel SGX Root CA, valid 2018-05-21 .. 2049-12-31.
 * Its SHA-256 is pinned below and checked before first use. */
static const uint8_t g_root_der[] = {
	0x30, 0x82, 0x02, 0x8f, 0x30, 0x82, 0x02, 0x34, 0xa0, 0x03, 0x02, 0x01,
	0x02, 0x02, 0x14, 0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34, 0x89, 0xf3,
	0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06, 0xac, 0x30,
	0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x30,
	0x68, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x11,
	0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x53, 0x47, 0x58, 0x20, 0x52, 0x6f,
	0x6f, 0x74, 0x20, 0x43, 0x41, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55,
	0x04, 0x0a, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x43, 0x6f,
	0x72, 0x70, 0x6f, 0x72, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x31, 0x14, 0x30,
	0x12, 0x06, 0x03, 0x55, 0x04, 0x07, 0x0c, 0x0b, 0x53, 0x61, 0x6e, 0x74,
	0x61, 0x20, 0x43, 0x6c, 0x61, 0x72, 0x61, 0x31, 0x0b, 0x30, 0x09, 0x06,
	0x03, 0x55, 0x04, 0x08, 0x0c, 0x02, 0x43, 0x41, 0x31, 0x0b, 0x30, 0x09,
	0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x30, 0x1e, 0x17,
	0x0d, 0x31, 0x38, 0x30, 0x35, 0x32, 0x31, 0x31, 0x30, 0x34, 0x35, 0x31,
	0x30, 0x5a, 0x17, 0x0d, 0x34, 0x39, 0x31, 0x32, 0x33, 0x31, 0x32, 0x33,
	0x35, 0x39, 0x35, 0x39, 0x5a, 0x30, 0x68, 0x31, 0x1a, 0x30, 0x18, 0x06,
	0x03, 0x55, 0x04, 0x03, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20,
	0x53, 0x47, 0x58, 0x20, 0x52, 0x6f, 0x6f, 0x74, 0x20, 0x43, 0x41, 0x31,
	0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x11, 0x49, 0x6e,
	0x74, 0x65, 0x6c, 0x20, 0x43, 0x6f, 0x72, 0x70, 0x6f, 0x72, 0x61, 0x74,
	0x69, 0x6f, 0x6e, 0x31, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x04, 0x07,
	0x0c, 0x0b, 0x53, 0x61, 0x6e, 0x74, 0x61, 0x20, 0x43, 0x6c, 0x61, 0x72,
	0x61, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x08, 0x0c, 0x02,
	0x43, 0x41, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13,
	0x02, 0x55, 0x53, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
	0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
	0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x0b, 0xa9, 0xc4, 0xc0, 0xc0, 0xc8,
	0x61, 0x93, 0xa3, 0xfe, 0x23, 0xd6, 0xb0, 0x2c, 0xda, 0x10, 0xa8, 0xbb,
	0xd4, 0xe8, 0x8e, 0x48, 0xb4, 0x45, 0x85, 0x61, 0xa3, 0x6e, 0x70, 0x55,
	0x25, 0xf5, 0x67, 0x91, 0x8e, 0x2e, 0xdc, 0x88, 0xe4, 0x0d, 0x86, 0x0b,
	0xd0, 0xcc, 0x4e, 0xe2, 0x6a, 0xac, 0xc9, 0x88, 0xe5, 0x05, 0xa9, 0x53,
	0x55, 0x8c, 0x45, 0x3f, 0x6b, 0x09, 0x04, 0xae, 0x73, 0x94, 0xa3, 0x81,
	0xbb, 0x30, 0x81, 0xb8, 0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d, 0x23, 0x04,
	0x18, 0x30, 0x16, 0x80, 0x14, 0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34,
	0x89, 0xf3, 0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06,
	0xac, 0x30, 0x52, 0x06, 0x03, 0x55, 0x1d, 0x1f, 0x04, 0x4b, 0x30, 0x49,
	0x30, 0x47, 0xa0, 0x45, 0xa0, 0x43, 0x86, 0x41, 0x68, 0x74, 0x74, 0x70,
	0x73, 0x3a, 0x2f, 0x2f, 0x63, 0x65, 0x72, 0x74, 0x69, 0x66, 0x69, 0x63,
	0x61, 0x74, 0x65, 0x73, 0x2e, 0x74, 0x72, 0x75, 0x73, 0x74, 0x65, 0x64,
	0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x73, 0x2e, 0x69, 0x6e, 0x74,
	0x65, 0x6c, 0x2e, 0x63, 0x6f, 0x6d, 0x2f, 0x49, 0x6e, 0x74, 0x65, 0x6c,
	0x53, 0x47, 0x58, 0x52, 0x6f, 0x6f, 0x74, 0x43, 0x41, 0x2e, 0x64, 0x65,
	0x72, 0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14,
	0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34, 0x89, 0xf3, 0x83, 0xb4, 0x95,
	0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06, 0xac, 0x30, 0x0e, 0x06, 0x03,
	0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x01, 0x06,
	0x30, 0x12, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x08,
	0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x49, 0x00, 0x30,
	0x46, 0x02, 0x21, 0x00, 0xe5, 0xbf, 0xe5, 0x09, 0x11, 0xf9, 0x2f, 0x42,
	0x89, 0x20, 0xdc, 0x36, 0x8a, 0x30, 0x2e, 0xe3, 0xd1, 0x2e, 0xc5, 0x86,
	0x7f, 0xf6, 0x22, 0xec, 0x64, 0x97, 0xf7, 0x80, 0x60, 0xc1, 0x3c, 0x20,
	0x02, 0x21, 0x00, 0xe0, 0x9d, 0x25, 0xac, 0x7a, 0x0c, 0xb3, 0xe5, 0xe8,
	0xe6, 0x8f, 0xec, 0x5f, 0xa3, 0xbd, 0x41, 0x6c, 0x47, 0x44, 0x0b, 0xd9,
	0x50, 0x63, 0x9d, 0x45, 0x0e, 0xdc, 0xbe, 0xa4, 0x57, 0x6a, 0xa2,
};

static const char g_root_sha256_hex[] =
	"44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

static CRYPTO_ONCE g_root_once = CRYPTO_ONCE_STATIC_INIT;
static X509 *g_root;

static void root_init(void)
{
	uint8_t digest[KC_SHA256_SIZE], pin[KC_SHA256_SIZE];
	const unsigned char *p = g_root_der;

	if (kc_sha256(g_root_der, sizeof(g_root_der), digest) != 0 ||
	    kiln_hex_decode(g_root_sha256_hex, pin, sizeof(pin), NULL) != 0 ||
	    memcmp(digest, pin, sizeof(pin)) != 0)
		return;
	g_root = d2i_X509(NULL, &p, (long)sizeof(g_root_der));
}

X509 *ev_dcap_root_ca(struct kiln_err *err)
{
	if (!CRYPTO_THREAD_run_once(&g_root_once, root_init) || !g_root) {
		kiln_err_set(err, -KILN_EROOT,
			     "embedded Intel SGX Root CA does not match its SHA-256 pin %s",
			     g_root_sha256_hex);
		return NULL;
	}
	return g_root;
}

bool ev_dcap_is_root_der(const uint8_t *der, size_t size)
{
	return size == sizeof(g_root_der) && memcmp(der, g_root_der, size) == 0;
}

bool ev_dcap_is_root(const X509 *cert)
{
	X509 *root = ev_dcap_root_ca(NULL);

	return root && X509_cmp(root, cert) == 0;
}

const char *ev_dcap_cert_name(const X509 *cert, char *buf, size_t size)
{
	const X509_NAME *name = X509_get_subject_name(cert);

	if (!name || X509_NAME_get_text_by_NID((X509_NAME *)name, NID_commonName, buf,
					       (int)size) <= 0)
		snprintf(buf, size, "certificate");
	return buf;
}

int ev_dcap_check_cn(const X509 *cert, const char *const *allowed, const char *what,
		     struct kiln_err *err)
{
	char cn[128];

	ev_dcap_cert_name(cert, cn, sizeof(cn));
	for (size_t i = 0; allowed[i]; i++)
		if (strcmp(cn, allowed[i]) == 0)
			return 0;
	return kiln_err_set(err, -KILN_ECHAIN, "%s: '%s' is not a%s %s", what, cn,
			    allowed[0][0] == 'I' ? "n" : "", allowed[0]);
}

const char *const ev_dcap_cn_pck_ca[] = {"Intel SGX PCK Processor CA",
					 "Intel SGX PCK Platform CA", NULL};
const char *const ev_dcap_cn_pck[] = {"Intel SGX PCK Certificate", NULL};
const char *const ev_dcap_cn_tcb_signing[] = {"Intel SGX TCB Signing", NULL};

const char *ev_dcap_fmt_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "@%lld", (long long)t);
	return buf;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int ev_dcap_parse_time(const char *s, time_t *out)
{
	struct tm tm = {0}, back;
	int y, mo, d, h, mi, se;
	size_t i = 19;
	time_t t;

	if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || s[10] != 'T' || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
		return -KILN_EFORMAT;
	if (s[i] == '.') {
		i++;
		if (s[i] < '0' || s[i] > '9')
			return -KILN_EFORMAT;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (s[i] != 'Z' || s[i + 1] != '\0')
		return -KILN_EFORMAT;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	/* Round-trip to refuse 2025-02-30 and friends, which timegm normalizes. */
	if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_year != y - 1900 ||
	    back.tm_mon != mo - 1 || back.tm_mday != d || back.tm_hour != h ||
	    back.tm_min != mi || back.tm_sec != se)
		return -KILN_EFORMAT;
	*out = t;
	return 0;
}

int ev_dcap_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -KILN_EFORMAT;
	*out = timegm(&tm);
	return 0;
}

static bool is_space(char c)
{
	/* Quotes often carry a NUL after the PEM text; treat it like whitespace. */
	return c == '\n' || c == '\r' || c == ' ' || c == '\t' || c == '\0';
}

void ev_dcap_der_free(struct ev_dcap_der *ders, int n)
{
	for (int i = 0; i < n; i++) {
		free(ders[i].data);
		ders[i].data = NULL;
	}
}

/* Strict PEM splitting: only whitespace may sit between the certificate blocks, so a
 * damaged block is an error instead of being skipped (PEM_read_bio_X509 skips anything
 * before the next BEGIN line, which would silently shorten the chain). */
int ev_dcap_pem_split(const char *pem, size_t size, const char *what, struct ev_dcap_der *ders,
		      int max, int *n, struct kiln_err *err)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	size_t pos = 0;
	int ret;

	*n = 0;
	for (;;) {
		const char *body, *stop;
		char *b64;
		int k = *n + 1;

		while (pos < size && is_space(pem[pos]))
			pos++;
		if (pos == size)
			break;
		if (*n == max) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "%s: more than %d certificates",
					   what, max);
			goto fail;
		}
		/* The END line is searched after the BEGIN line: "-----BEGIN CERTIFICATE-----
		 * END CERTIFICATE-----" shares its dashes and must not end before it starts. */
		stop = NULL;
		body = NULL;
		if (size - pos >= sizeof(begin) - 1 &&
		    memcmp(pem + pos, begin, sizeof(begin) - 1) == 0) {
			body = pem + pos + sizeof(begin) - 1;
			stop = memmem(body, size - (size_t)(body - pem), end, sizeof(end) - 1);
		}
		if (!stop) {
			ret = kiln_err_set(err, -KILN_EFORMAT,
					   "%s: certificate %d: expected a PEM CERTIFICATE "
					   "block at byte %zu", what, k, pos);
			goto fail;
		}
		if (!(b64 = strndup(body, (size_t)(stop - body)))) {
			ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", what);
			goto fail;
		}
		ret = kiln_b64_decode(b64, &ders[*n].data, &ders[*n].size);
		free(b64);
		if (ret != 0) {
			ret = kiln_err_set(err, ret == -ENOMEM ? ret : -KILN_EFORMAT,
					   "%s: certificate %d (byte %zu): bad base64", what,
					   k, pos);
			goto fail;
		}
		(*n)++;
		pos = (size_t)(stop - pem) + sizeof(end) - 1;
	}
	if (*n == 0)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: no PEM certificate found", what);
	return 0;
fail:
	ev_dcap_der_free(ders, *n);
	*n = 0;
	return ret;
}

X509 *ev_dcap_der_cert(const struct ev_dcap_der *der, const char *what, int index,
		       struct kiln_err *err)
{
	const unsigned char *p = der->data;
	X509 *x;

	if (der->size > LONG_MAX) {
		kiln_err_set(err, -KILN_EFORMAT, "%s: certificate %d too large", what, index);
		return NULL;
	}
	x = d2i_X509(NULL, &p, (long)der->size);
	ERR_clear_error();
	if (!x || p != der->data + der->size) {
		X509_free(x);
		kiln_err_set(err, -KILN_EFORMAT, "%s: certificate %d is not a valid DER X.509 "
			     "certificate", what, index);
		return NULL;
	}
	return x;
}

int ev_dcap_pem_chain(const char *pem, size_t size, const char *what, STACK_OF(X509) **chain,
		      struct kiln_err *err)
{
	struct ev_dcap_der ders[EV_DCAP_MAX_CHAIN];
	STACK_OF(X509) *sk = NULL;
	int n, ret;

	*chain = NULL;
	if ((ret = ev_dcap_pem_split(pem, size, what, ders, EV_DCAP_MAX_CHAIN, &n, err)))
		return ret;
	ret = -ENOMEM;
	if (!(sk = sk_X509_new_null()))
		goto out;
	for (int i = 0; i < n; i++) {
		X509 *x = ev_dcap_der_cert(&ders[i], what, i + 1, err);

		if (!x) {
			ret = -KILN_EFORMAT;
			goto out;
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto out;
		}
	}
	*chain = sk;
	sk = NULL;
	ret = 0;
out:
	if (ret == -ENOMEM)
		kiln_err_set(err, ret, "%s: out of memory", what);
	ev_dcap_der_free(ders, n);
	sk_X509_pop_free(sk, X509_free);
	return ret;
}

int ev_dcap_crl_parse(const char *text, size_t size, const char *what, X509_CRL **crl,
		      struct kiln_err *err)
{
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t der_size = 0;
	int ret;

	*crl = NULL;
	if (size > INT_MAX)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: too large", what);
	if (size >= 10 && memcmp(text, "-----BEGIN", 10) == 0) {
		BIO *bio = BIO_new_mem_buf(text, (int)size);

		if (!bio)
			return kiln_err_set(err, -ENOMEM, "%s: out of memory", what);
		*crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		BIO_free(bio);
		ERR_clear_error();
		if (!*crl)
			return kiln_err_set(err, -KILN_EFORMAT, "%s: not a PEM X.509 CRL", what);
		return 0;
	}
	if (size % 2 != 0 || !(der = malloc(size / 2 + 1)))
		return kiln_err_set(err, size % 2 ? -KILN_EFORMAT : -ENOMEM,
				    "%s: expected hex-encoded DER", what);
	ret = kiln_hex_decode(text, der, size / 2, &der_size);
	if (ret != 0 || der_size != size / 2) {
		free(der);
		return kiln_err_set(err, -KILN_EFORMAT, "%s: expected hex-encoded DER", what);
	}
	p = der;
	*crl = d2i_X509_CRL(NULL, &p, (long)der_size);
	ERR_clear_error();
	ret = 0;
	if (!*crl || p != der + der_size) {
		X509_CRL_free(*crl);
		*crl = NULL;
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: not a DER X.509 CRL", what);
	}
	free(der);
	return ret;
}

EVP_PKEY *ev_dcap_p256_key(const uint8_t xy[64])
{
	/* EVP_PKEY_fromdata is several times faster than decoding a SubjectPublicKeyInfo
	 * through the OpenSSL 3 decoders, and it checks the point is on the curve too. */
	uint8_t point[65];
	char group[] = "prime256v1";
	OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
		OSSL_PARAM_END,
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;

	point[0] = 0x04;  /* uncompressed */
	memcpy(point + 1, xy, 64);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return key;
}

int ev_dcap_ecdsa_verify(EVP_PKEY *key, const void *msg, size_t size, const uint8_t sig[64])
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	int der_size, ok, ret = -KILN_ECRYPTO;

	if (!es || !r || !s || !md)
		goto out;
	if (!ECDSA_SIG_set0(es, r, s))
		goto out;
	r = s = NULL;
	if ((der_size = i2d_ECDSA_SIG(es, &der)) <= 0)
		goto out;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)der_size, msg, size);
	ret = ok == 1 ? 0 : -KILN_ESIG;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(s);
	return ret;
}

int ev_dcap_check_issued(X509 *issuer, X509 *child, const char *what, struct kiln_err *err)
{
	char in[128], cn[128];
	int rc;

	ev_dcap_cert_name(issuer, in, sizeof(in));
	ev_dcap_cert_name(child, cn, sizeof(cn));
	rc = X509_check_issued(issuer, child);
	if (rc != X509_V_OK)
		return kiln_err_set(err, -KILN_ECHAIN, "%s '%s' is not issued by '%s': %s", what,
				    cn, in, X509_verify_cert_error_string(rc));
	if (X509_check_ca(issuer) < 1)
		return kiln_err_set(err, -KILN_ECHAIN, "%s: issuer '%s' is not a CA", what, in);
	if (X509_verify(child, X509_get0_pubkey(issuer)) != 1) {
		ERR_clear_error();
		return kiln_err_set(err, -KILN_ECHAIN,
				    "%s '%s': certificate signature by '%s' does not verify",
				    what, cn, in);
	}
	return 0;
}

int ev_dcap_check_revoked(X509_CRL *crl, X509 *cert, const char *what, const char *crl_name,
			  struct kiln_err *err)
{
	X509_REVOKED *rev = NULL;
	char cn[80], *serial;
	BIGNUM *bn;

	if (X509_CRL_get0_by_cert(crl, &rev, cert) != 1)
		return 0;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	serial = bn ? BN_bn2hex(bn) : NULL;
	kiln_err_set(err, -KILN_EREVOKED, "%s '%s' (serial %s) is revoked by the %s", what,
		     ev_dcap_cert_name(cert, cn, sizeof(cn)), serial ? serial : "?", crl_name);
	OPENSSL_free(serial);
	BN_free(bn);
	return -KILN_EREVOKED;
}

/* ---- PCK certificate SGX extension ------------------------------------------ */

#define SGX_EXT_OID "1.2.840.113741.1.13.1"

static STACK_OF(ASN1_TYPE) *seq_of(const ASN1_STRING *der)
{
	const unsigned char *p = ASN1_STRING_get0_data(der);
	long len = ASN1_STRING_length(der);
	STACK_OF(ASN1_TYPE) *sk = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);

	if (sk && p != ASN1_STRING_get0_data(der) + len) {
		sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
		sk = NULL;
	}
	return sk;
}

/* An (OID, value) pair; returns the OID's sub-arc text after prefix, or NULL. */
static const char *pair(const ASN1_TYPE *item, const char *prefix, char *oid, size_t size,
			STACK_OF(ASN1_TYPE) **kv)
{
	size_t n = strlen(prefix);

	*kv = NULL;
	if (item->type != V_ASN1_SEQUENCE || !(*kv = seq_of(item->value.sequence)))
		return NULL;
	if (sk_ASN1_TYPE_num(*kv) != 2 || sk_ASN1_TYPE_value(*kv, 0)->type != V_ASN1_OBJECT ||
	    OBJ_obj2txt(oid, (int)size, sk_ASN1_TYPE_value(*kv, 0)->value.object, 1) <= 0 ||
	    strncmp(oid, prefix, n) != 0 || oid[n] != '.')
		return NULL;
	return oid + n + 1;
}

static int int_value(const ASN1_TYPE *v, int64_t max, int64_t *out)
{
	int64_t x;

	if (v->type == V_ASN1_INTEGER) {
		if (!ASN1_INTEGER_get_int64(&x, v->value.integer))
			return -1;
	} else if (v->type == V_ASN1_ENUMERATED) {
		if (!ASN1_ENUMERATED_get_int64(&x, v->value.enumerated))
			return -1;
	} else {
		return -1;
	}
	if (x < 0 || x > max)
		return -1;
	*out = x;
	return 0;
}

static int octets(const ASN1_TYPE *v, uint8_t *out, int size)
{
	if (v->type != V_ASN1_OCTET_STRING || ASN1_STRING_length(v->value.octet_string) != size)
		return -1;
	memcpy(out, ASN1_STRING_get0_data(v->value.octet_string), (size_t)size);
	return 0;
}

/* Each component may appear once: a duplicate is malformed, never "last one wins". */
static int mark(unsigned *seen, unsigned bit)
{
	if (*seen & (1u << bit))
		return -1;
	*seen |= 1u << bit;
	return 0;
}

static int parse_tcb(const ASN1_TYPE *v, struct ev_dcap_pck_ext *ext, unsigned *seen)
{
	STACK_OF(ASN1_TYPE) *items = NULL, *kv = NULL;
	char oid[80];
	int ret = -1;

	if (v->type != V_ASN1_SEQUENCE || !(items = seq_of(v->value.sequence)))
		return -1;
	for (int i = 0; i < sk_ASN1_TYPE_num(items); i++) {
		const char *arc = pair(sk_ASN1_TYPE_value(items, i), SGX_EXT_OID ".2", oid,
				       sizeof(oid), &kv);
		const ASN1_TYPE *val;
		uint64_t n;
		int64_t x;

		if (!arc || kiln_parse_u64(arc, &n) != 0)
			goto out;
		val = sk_ASN1_TYPE_value(kv, 1);
		if (n >= 1 && n <= 16) {
			if (int_value(val, 255, &x) || mark(seen, (unsigned)n - 1))
				goto out;
			ext->comp_svn[n - 1] = (uint8_t)x;
		} else if (n == 17) {
			if (int_value(val, 65535, &x) || mark(seen, 16))
				goto out;
			ext->pcesvn = (uint16_t)x;
		} else if (n == 18) {
			if (octets(val, ext->cpusvn, 16) || mark(seen, 17))
				goto out;
		}
		sk_ASN1_TYPE_pop_free(kv, ASN1_TYPE_free);
		kv = NULL;
	}
	ret = 0;
out:
	sk_ASN1_TYPE_pop_free(kv, ASN1_TYPE_free);
	sk_ASN1_TYPE_pop_free(items, ASN1_TYPE_free);
	return ret;
}

/* The (OID, value) items of the SGX extension; -1 with *bad naming the item. */
static int parse_items(STACK_OF(ASN1_TYPE) *items, struct ev_dcap_pck_ext *ext, unsigned *seen,
		       const char **bad)
{
	STACK_OF(ASN1_TYPE) *kv = NULL;
	char oid[80];
	int ret = -1;

	for (int i = 0; i < sk_ASN1_TYPE_num(items); i++) {
		const char *arc = pair(sk_ASN1_TYPE_value(items, i), SGX_EXT_OID, oid,
				       sizeof(oid), &kv);
		const ASN1_TYPE *val;
		int64_t x;

		*bad = "structure";
		if (!arc)
			goto out;
		val = sk_ASN1_TYPE_value(kv, 1);
		if (strcmp(arc, "2") == 0) {
			*bad = "TCB (.2)";
			if (parse_tcb(val, ext, seen))
				goto out;
		} else if (strcmp(arc, "3") == 0) {
			*bad = "PCE-ID (.3)";
			if (octets(val, ext->pceid, 2) || mark(seen, 18))
				goto out;
		} else if (strcmp(arc, "4") == 0) {
			*bad = "FMSPC (.4)";
			if (octets(val, ext->fmspc, 6) || mark(seen, 19))
				goto out;
		} else if (strcmp(arc, "5") == 0) {
			*bad = "SGX type (.5)";
			if (int_value(val, 2, &x))
				goto out;
			ext->sgx_type = (int)x;
		}
		sk_ASN1_TYPE_pop_free(kv, ASN1_TYPE_free);
		kv = NULL;
	}
	ret = 0;
out:
	sk_ASN1_TYPE_pop_free(kv, ASN1_TYPE_free);
	return ret;
}

int ev_dcap_pck_ext_parse(X509 *pck, struct ev_dcap_pck_ext *ext, struct kiln_err *err)
{
	STACK_OF(ASN1_TYPE) *items = NULL;
	ASN1_OBJECT *obj = OBJ_txt2obj(SGX_EXT_OID, 1);
	const char *bad = "structure";
	unsigned seen = 0;
	int idx, ret;

	memset(ext, 0, sizeof(*ext));
	ext->sgx_type = -1;
	if (!obj)
		return kiln_err_set(err, -KILN_ECRYPTO, "PCK certificate: OID table failure");
	idx = X509_get_ext_by_OBJ(pck, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "PCK certificate has no SGX extension (OID " SGX_EXT_OID ")");
	items = seq_of(X509_EXTENSION_get_data(X509_get_ext(pck, idx)));
	if (!items || parse_items(items, ext, &seen, &bad) != 0)
		ret = kiln_err_set(err, -KILN_EFORMAT,
				   "PCK certificate SGX extension: malformed %s", bad);
	else if (seen != 0xfffffu)
		ret = kiln_err_set(err, -KILN_EFORMAT,
				   "PCK certificate SGX extension lacks %s",
				   (seen & 0xffffu) != 0xffffu ? "a TCB component SVN" :
				   !(seen & (1u << 16)) ? "PCESVN" :
				   !(seen & (1u << 17)) ? "CPUSVN" :
				   !(seen & (1u << 18)) ? "PCE-ID" : "FMSPC");
	else
		ret = 0;
	ERR_clear_error();
	sk_ASN1_TYPE_pop_free(items, ASN1_TYPE_free);
	return ret;
}
