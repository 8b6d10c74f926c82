/* The "host" evidence verifier (the producer is host_produce.c): kiln-las, a
 * root daemon on the same host, measures the calling process from /proc and
 * signs a statement with its key. It trusts the host kernel and its root user
 * (see docs/las.md); it is not a hardware TEE, so it reports debug=false only
 * in the sense that the LAS saw no debugger policy to check.
 *
 * Evidence (BRIEF-protocol): {"format": "kiln-las-v1", "payload": "<base64>",
 * "signature": "<base64 DER ECDSA-P256-SHA256 over the payload bytes>",
 * "cert": "<PEM>"}; payload = {"pid", "uid", "exe", "exe_sha256",
 * "workload_measurement", "report_data", "time", "las_id"}. */
#include "evidence/internal.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define EV_HOST_MAX_SKEW 300 /* seconds between the LAS clock and the verifier's */

/* The first certificate of a PEM string, or NULL. */
static X509 *pem_first_cert(const char *pem, size_t size)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)size);
	X509 *x = NULL;

	if (bio)
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return x;
}

/* True when one of the certificates in pem has exactly this DER encoding. */
static bool pem_holds_der(const char *pem, const uint8_t *der, int der_size)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	bool found = false;
	X509 *x;

	if (!bio)
		return false;
	while (!found && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		uint8_t *d = NULL;
		int n = i2d_X509(x, &d);

		found = n == der_size && memcmp(d, der, (size_t)n) == 0;
		OPENSSL_free(d);
		X509_free(x);
	}
	BIO_free(bio);
	return found;
}

static int spki_id(X509 *x, char out[7 + 2 * KC_SHA256_SIZE + 1])
{
	uint8_t *spki = NULL, digest[KC_SHA256_SIZE];
	int n = i2d_PUBKEY(X509_get0_pubkey(x), &spki), ret;

	if (n <= 0)
		return -KILN_ECRYPTO;
	ret = kc_sha256(spki, (size_t)n, digest);
	OPENSSL_free(spki);
	if (ret < 0)
		return ret;
	memcpy(out, "sha256:", 7);
	kiln_hex_encode(digest, sizeof(digest), out + 7);
	return 0;
}

static int verify_sig(X509 *x, const uint8_t *msg, size_t msg_size, const uint8_t *sig,
		      size_t sig_size)
{
	EVP_PKEY *pub = X509_get0_pubkey(x);
	EVP_MD_CTX *ctx;
	int ok;

	if (!pub || EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC || EVP_PKEY_get_bits(pub) != 256)
		return -KILN_EFORMAT;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, sig, sig_size, msg, msg_size) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -KILN_ESIG;
}

static int json_uint(const json_t *obj, const char *key, json_int_t *out, const char *what,
		     struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: '%s' must be a non-negative integer",
				    what, key);
	*out = json_integer_value(v);
	return 0;
}

int ev__host_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		    json_t **claims, struct kiln_err *err)
{
	static const char *const outer_keys[] = { "format", "payload", "signature", "cert" };
	static const char *const payload_keys[] = { "pid", "uid", "exe", "exe_sha256",
		"workload_measurement", "report_data", "time", "las_id",
		"supervised_by" /* optional, last: the static variant */ };
	static const char what[] = "host evidence", pwhat[] = "host evidence payload";
	const char *format, *payload_b64, *sig_b64, *cert_pem, *exe, *las_id;
	uint8_t *payload = NULL, *sig = NULL, *der = NULL;
	uint8_t rd[EV_REPORT_DATA_SIZE], wm[EV_WM_SIZE], exe_digest[KC_SHA256_SIZE];
	uint8_t sup[KC_SHA256_SIZE];
	char sup_hex[2 * KC_SHA256_SIZE + 1];
	bool supervised = false;
	char rd_hex[2 * EV_REPORT_DATA_SIZE + 1], wm_hex[2 * EV_WM_SIZE + 1];
	char exe_hex[2 * KC_SHA256_SIZE + 1], id[7 + 2 * KC_SHA256_SIZE + 1];
	size_t payload_size = 0, sig_size = 0;
	json_int_t pid = 0, uid = 0, t = 0; /* set when ret stays 0: -O3 cannot see it */
	time_t at;
	json_t *j = NULL, *p = NULL, *c = NULL;
	X509 *x = NULL;
	bool trusted = false;
	int der_size, ret;

	*claims = NULL;
	if (size > EV_LAS_MAX_EVIDENCE)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: %zu bytes, at most %d allowed", what,
				    size, EV_LAS_MAX_EVIDENCE);
	ret = ev__json_object(evidence, size, what, &j, err);
	if (ret < 0)
		goto out;
	ret = ev__json_keys(j, outer_keys, KILN_ARRAY_SIZE(outer_keys), what, err);
	if (ret == 0)
		ret = ev__json_str(j, "format", &format, what, err);
	if (ret == 0)
		ret = ev__json_str(j, "payload", &payload_b64, what, err);
	if (ret == 0)
		ret = ev__json_str(j, "signature", &sig_b64, what, err);
	if (ret == 0)
		ret = ev__json_str(j, "cert", &cert_pem, what, err);
	if (ret < 0)
		goto out;
	if (strcmp(format, "kiln-las-v1") != 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: format '%.32s', expected 'kiln-las-v1'",
				   what, format);
		goto out;
	}
	if (kiln_b64_decode(payload_b64, &payload, &payload_size) < 0 ||
	    kiln_b64_decode(sig_b64, &sig, &sig_size) < 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: payload or signature is not base64",
				   what);
		goto out;
	}
	x = pem_first_cert(cert_pem, json_string_length(json_object_get(j, "cert")));
	if (!x) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: 'cert' is not a PEM certificate", what);
		goto out;
	}
	der_size = i2d_X509(x, &der);
	if (der_size <= 0 || spki_id(x, id) < 0) {
		ret = kiln_err_set(err, -KILN_ECRYPTO, "%s: cannot encode the LAS certificate",
				   what);
		goto out;
	}
	for (size_t i = 0; opts && i < opts->n_certs && !trusted; i++)
		trusted = opts->certs_pem[i] && pem_holds_der(opts->certs_pem[i], der, der_size);
	if (!trusted) {
		ret = kiln_err_set(err, -KILN_EROOT,
				   "%s: kiln-las certificate %s is not one of the %zu trusted "
				   "LAS certificates", what, id, opts ? opts->n_certs : 0);
		goto out;
	}
	ret = verify_sig(x, payload, payload_size, sig, sig_size);
	if (ret < 0) {
		kiln_err_set(err, ret, "%s: signature of kiln-las %s does not verify over the "
			     "payload", what, id);
		goto out;
	}

	ret = ev__json_object(payload, payload_size, pwhat, &p, err);
	if (ret == 0)
		supervised = json_object_get(p, "supervised_by") != NULL;
	if (ret == 0)
		ret = ev__json_keys(p, payload_keys, KILN_ARRAY_SIZE(payload_keys) - !supervised,
				    pwhat, err);
	if (ret == 0 && supervised)
		ret = ev__json_hex(p, "supervised_by", sup, sizeof(sup), pwhat, err);
	if (ret == 0)
		ret = json_uint(p, "pid", &pid, pwhat, err);
	if (ret == 0)
		ret = json_uint(p, "uid", &uid, pwhat, err);
	if (ret == 0)
		ret = json_uint(p, "time", &t, pwhat, err);
	if (ret == 0)
		ret = ev__json_str(p, "exe", &exe, pwhat, err);
	if (ret == 0)
		ret = ev__json_str(p, "las_id", &las_id, pwhat, err);
	if (ret == 0)
		ret = ev__json_hex(p, "exe_sha256", exe_digest, sizeof(exe_digest), pwhat, err);
	if (ret == 0)
		ret = ev__json_hex(p, "workload_measurement", wm, sizeof(wm), pwhat, err);
	if (ret == 0)
		ret = ev__json_hex(p, "report_data", rd, sizeof(rd), pwhat, err);
	if (ret < 0)
		goto out;
	if (strcmp(las_id, id) != 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: las_id %.80s is not the id %s of the "
				   "signing certificate", pwhat, las_id, id);
		goto out;
	}
	at = opts && opts->at ? opts->at : time(NULL);
	if ((json_int_t)at - t > EV_HOST_MAX_SKEW || t - (json_int_t)at > EV_HOST_MAX_SKEW) {
		ret = kiln_err_set(err, -KILN_EEXPIRED,
				   "%s: made at unix time %lld, verification time %lld: more "
				   "than %d s apart", what, (long long)t, (long long)at,
				   EV_HOST_MAX_SKEW);
		goto out;
	}
	kiln_hex_encode(rd, sizeof(rd), rd_hex);
	kiln_hex_encode(wm, sizeof(wm), wm_hex);
	kiln_hex_encode(exe_digest, sizeof(exe_digest), exe_hex);
	c = json_pack("{s:s, s:b, s:b, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I}", "tee", "host",
		      "insecure", 0, "debug", 0, "report_data", rd_hex, "workload_measurement",
		      wm_hex, "platform_measurement", id, "pid", pid, "uid", uid, "exe", exe,
		      "exe_sha256", exe_hex, "time", t);
	if (c && supervised) {
		/* The measurement is of a statically linked program that the kiln
		 * build with this SHA-256 runs supervised (docs/las.md). */
		kiln_hex_encode(sup, sizeof(sup), sup_hex);
		if (json_object_set_new(c, "supervised_by", json_string(sup_hex)) < 0) {
			json_decref(c);
			c = NULL;
		}
	}
	if (!c) {
		ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	*claims = c;
	ret = 0;
out:
	OPENSSL_free(der);
	X509_free(x);
	free(payload);
	free(sig);
	json_decref(p);
	json_decref(j);
	return ret;
}
