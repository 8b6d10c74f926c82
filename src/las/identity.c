/* kiln-las signing identity and evidence signing. */
#include "las/las.h"

#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto/crypto.h"

#define LAS_IDENTITY_MAX (64 * 1024)
#define LAS_CERT_DAYS 3650

struct las_identity {
	EVP_PKEY *key;
	X509 *cert;
	char *cert_pem;                 /* owned */
	char id[7 + 2 * KC_SHA256_SIZE + 1];
};

void las_identity_free(struct las_identity *id)
{
	if (!id)
		return;
	EVP_PKEY_free(id->key); /* OpenSSL clears private key material on free */
	X509_free(id->cert);
	free(id->cert_pem);
	free(id);
}

const char *las_identity_cert_pem(const struct las_identity *id)
{
	return id->cert_pem;
}

const char *las_identity_id(const struct las_identity *id)
{
	return id->id;
}

/* Fill cert_pem and id from cert. */
static int identity_finish(struct las_identity *id)
{
	uint8_t *spki = NULL, digest[KC_SHA256_SIZE];
	BIO *bio = BIO_new(BIO_s_mem());
	int spki_size, ret = -KILN_ECRYPTO;

	if (!bio || PEM_write_bio_X509(bio, id->cert) != 1)
		goto out;
	ret = kc_bio_take(bio, &id->cert_pem, NULL);
	if (ret < 0)
		goto out;
	ret = -KILN_ECRYPTO;
	spki_size = i2d_PUBKEY(X509_get0_pubkey(id->cert), &spki);
	if (spki_size <= 0 || kc_sha256(spki, (size_t)spki_size, digest) < 0)
		goto out;
	memcpy(id->id, "sha256:", 7);
	kiln_hex_encode(digest, sizeof(digest), id->id + 7);
	ret = 0;
out:
	OPENSSL_free(spki);
	BIO_free(bio);
	return ret;
}

int las_identity_load(const char *path, struct las_identity **out, struct kiln_err *err)
{
	struct las_identity *id = NULL;
	uint8_t *data = NULL;
	size_t size = 0;
	BIO *bio = NULL;
	struct stat st;
	int ret;

	*out = NULL;
	ret = kiln_read_file(path, LAS_IDENTITY_MAX, &data, &size);
	if (ret < 0)
		return kiln_err_set(err, ret, "cannot read LAS key %s: %s", path,
				    kiln_strerror(ret));
	if (stat(path, &st) == 0 && (st.st_mode & 077)) {
		ret = kiln_err_set(err, -EPERM, "LAS key %s is accessible by others (mode %04o); "
				   "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	id = calloc(1, sizeof(*id));
	if (!id) {
		ret = -ENOMEM;
		goto out;
	}
	bio = BIO_new_mem_buf(data, (int)size);
	if (bio)
		id->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	bio = BIO_new_mem_buf(data, (int)size);
	if (bio)
		id->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!id->key || !id->cert) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "LAS key %s: expected a PEM private key "
				   "and a PEM certificate, %s is missing", path,
				   id->key ? "the certificate" : "the private key");
		goto out;
	}
	if (EVP_PKEY_get_base_id(id->key) != EVP_PKEY_EC || EVP_PKEY_get_bits(id->key) != 256) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "LAS key %s: not a P-256 key", path);
		goto out;
	}
	if (X509_check_private_key(id->cert, id->key) != 1) {
		ret = kiln_err_set(err, -KILN_EKEY, "LAS key %s: the certificate does not match "
				   "the private key", path);
		goto out;
	}
	ret = identity_finish(id);
	if (ret < 0) {
		kiln_err_set(err, ret, "LAS key %s: cannot encode the certificate", path);
		goto out;
	}
	*out = id;
	id = NULL;
out:
	BIO_free(bio);
	las_identity_free(id);
	kiln_free_secret(data, size);
	return ret;
}

static int make_cert(EVP_PKEY *key, X509 **out)
{
	char host[HOST_NAME_MAX + 1] = "localhost", cn[HOST_NAME_MAX + 16];
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	X509_NAME *name;
	X509 *x = X509_new();
	X509_EXTENSION *ext = NULL;
	X509V3_CTX ctx;
	int ret = -KILN_ECRYPTO;

	*out = NULL;
	if (!x)
		return -ENOMEM;
	if (gethostname(host, sizeof(host) - 1) != 0)
		strcpy(host, "localhost");
	host[HOST_NAME_MAX] = '\0';
	snprintf(cn, sizeof(cn), "kiln-las %s", host);
	if (kc_random(serial, sizeof(serial)) < 0)
		goto out;
	serial[0] &= 0x7f; /* positive */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	name = X509_get_subject_name(x);
	if (!bn || X509_set_version(x, 2) != 1 ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)LAS_CERT_DAYS * 86400) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
		goto out;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,digitalSignature");
	if (!ext || X509_add_ext(x, ext, -1) != 1)
		goto out;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto out;
	*out = x;
	x = NULL;
	ret = 0;
out:
	X509_EXTENSION_free(ext);
	BN_free(bn);
	X509_free(x);
	return ret;
}

int las_identity_create(const char *path, struct las_identity **out, struct kiln_err *err)
{
	struct las_identity *id = NULL;
	char *dir = NULL, *slash, *data;
	BIO *bio = NULL;
	long n;
	int ret;

	*out = NULL;
	if (access(path, F_OK) == 0)
		return kiln_err_set(err, -EEXIST, "LAS key %s already exists", path);
	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		ret = kiln_mkdir_p(dir, 0700);
		if (ret < 0) {
			kiln_err_set(err, ret, "cannot create directory %s: %s", dir,
				     kiln_strerror(ret));
			goto out;
		}
	}
	id = calloc(1, sizeof(*id));
	if (!id) {
		ret = -ENOMEM;
		goto out;
	}
	ret = -KILN_ECRYPTO;
	id->key = EVP_EC_gen("P-256");
	if (!id->key || make_cert(id->key, &id->cert) < 0 || identity_finish(id) < 0) {
		kiln_err_set(err, ret, "cannot generate the LAS key and certificate");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_PrivateKey(bio, id->key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(bio, id->cert) != 1) {
		kiln_err_set(err, ret, "cannot encode the LAS key");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	ret = kiln_write_file_atomic(path, data, (size_t)n, 0600);
	if (ret < 0) {
		kiln_err_set(err, ret, "cannot write LAS key %s: %s", path, kiln_strerror(ret));
		goto out;
	}
	*out = id;
	id = NULL;
	ret = 0;
out:
	if (bio) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0)
			kiln_wipe(data, (size_t)n);
	}
	BIO_free(bio);
	las_identity_free(id);
	free(dir);
	return ret;
}

int las_evidence_make(const struct las_identity *id, const struct las_statement *st,
		      char **out, size_t *size, struct kiln_err *err)
{
	char rd_hex[129], wm_hex[97], exe_hex[65];
	char *payload = NULL, *payload_b64 = NULL, *sig_b64 = NULL, *ev = NULL;
	uint8_t *sig = NULL;
	size_t sig_size = 0;
	EVP_MD_CTX *ctx = NULL;
	json_t *p = NULL, *e = NULL;
	int ret = -KILN_ECRYPTO;

	*out = NULL;
	*size = 0;
	kiln_hex_encode(st->report_data, sizeof(st->report_data), rd_hex);
	kiln_hex_encode(st->workload_measurement, sizeof(st->workload_measurement), wm_hex);
	kiln_hex_encode(st->exe_sha256, sizeof(st->exe_sha256), exe_hex);
	p = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:s}", "pid", (json_int_t)st->pid,
		      "uid", (json_int_t)st->uid, "exe", st->exe, "exe_sha256", exe_hex,
		      "workload_measurement", wm_hex, "report_data", rd_hex, "time",
		      (json_int_t)st->time, "las_id", id->id);
	if (p && st->supervised_by &&
	    json_object_set_new(p, "supervised_by", json_string(st->supervised_by)) < 0) {
		json_decref(p);
		p = NULL;
	}
	/* Canonical: compact, sorted keys. The signature covers these exact bytes. */
	payload = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!payload) {
		ret = kiln_err_set(err, -ENOMEM, "cannot encode the evidence payload (exe %.200s)",
				   st->exe);
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx ||
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, id->key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &sig_size, (const uint8_t *)payload, strlen(payload)) != 1)
		goto sign_fail;
	sig = malloc(sig_size);
	if (!sig ||
	    EVP_DigestSign(ctx, sig, &sig_size, (const uint8_t *)payload, strlen(payload)) != 1)
		goto sign_fail;
	payload_b64 = kiln_b64_encode(payload, strlen(payload));
	sig_b64 = kiln_b64_encode(sig, sig_size);
	e = json_pack("{s:s, s:s?, s:s?, s:s}", "format", "kiln-las-v1", "payload", payload_b64,
		      "signature", sig_b64, "cert", id->cert_pem);
	ev = payload_b64 && sig_b64 && e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER)
					 : NULL;
	if (!ev) {
		ret = kiln_err_set(err, -ENOMEM, "cannot encode the evidence");
		goto out;
	}
	*out = ev;
	*size = strlen(ev);
	ret = 0;
	goto out;
sign_fail:
	ret = kiln_err_set(err, -KILN_ECRYPTO, "signing the evidence failed");
out:
	EVP_MD_CTX_free(ctx);
	free(sig);
	free(sig_b64);
	free(payload_b64);
	free(payload);
	json_decref(p);
	json_decref(e);
	return ret;
}
