/* Keys, certificates and signatures with OpenSSL, for the CA, the server
 * certificate, identities and generated secrets. */
#include "cas/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

int cas__x509_keygen(const char *alg, EVP_PKEY **out)
{
	*out = NULL;
	if (!strcmp(alg, "p256"))
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (!strcmp(alg, "p384"))
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	else if (!strcmp(alg, "ed25519"))
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (!strcmp(alg, "rsa3072"))
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	else
		return -EINVAL;
	return *out ? 0 : -KILN_ECRYPTO;
}

static const EVP_MD *md_for(EVP_PKEY *key)
{
	return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -KILN_ECRYPTO;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -KILN_ECRYPTO;
}

int cas__x509_make_cert(EVP_PKEY *key, const char *cn, unsigned days, bool ca,
		 char *const *dns, size_t n_dns, char *const *ip, size_t n_ip, X509 *issuer,
		 EVP_PKEY *issuer_key, X509 **out)
{
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = NULL;
	uint8_t rnd[16];
	char *san = NULL;
	size_t san_size = 0;
	int ret = -KILN_ECRYPTO;

	*out = NULL;
	if (!c || !name)
		goto out;
	if (kc_random(rnd, sizeof(rnd)) < 0)
		goto out;
	rnd[0] &= 0x7f;
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (!serial || !X509_set_version(c, 2) || !X509_set_serialNumber(c, serial))
		goto out;
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
					-1, -1, 0))
		goto out;
	if (!X509_set_subject_name(c, name) ||
	    !X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name))
		goto out;
	if (!X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), (long)days * 86400))
		goto out;
	if (!X509_set_pubkey(c, key))
		goto out;
	if (add_ext(c, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" :
		    "critical,CA:FALSE") < 0 ||
	    add_ext(c, issuer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign,digitalSignature" :
		    "critical,digitalSignature,keyEncipherment") < 0 ||
	    add_ext(c, issuer, NID_subject_key_identifier, "hash") < 0)
		goto out;
	if (issuer && add_ext(c, issuer, NID_authority_key_identifier, "keyid") < 0)
		goto out;
	if (!ca && add_ext(c, issuer, NID_ext_key_usage, "serverAuth,clientAuth") < 0)
		goto out;
	if (n_dns + n_ip > 0) {
		for (size_t i = 0; i < n_dns + n_ip; i++) {
			const char *v = i < n_dns ? dns[i] : ip[i - n_dns];
			size_t need = san_size + strlen(v) + 8;
			char *s = realloc(san, need);

			if (!s)
				goto out;
			san = s;
			san_size += (size_t)snprintf(san + san_size, need - san_size, "%s%s:%s",
						     i ? "," : "", i < n_dns ? "DNS" : "IP", v);
		}
		if (add_ext(c, issuer, NID_subject_alt_name, san) < 0)
			goto out;
	}
	if (!X509_sign(c, issuer_key ? issuer_key : key, md_for(issuer_key ? issuer_key : key)))
		goto out;
	*out = c;
	c = NULL;
	ret = 0;
out:
	free(san);
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	X509_free(c);
	return ret;
}

int cas__x509_key_pem(EVP_PKEY *key, bool private_part, char **out, size_t *size)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ret = -KILN_ECRYPTO;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	if (private_part ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) :
			   PEM_write_bio_PUBKEY(b, key))
		ret = kc_bio_take(b, out, size);
	BIO_free(b);
	return ret;
}

int cas__x509_cert_pem(X509 *cert, char **out, size_t *size)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ret = -KILN_ECRYPTO;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	if (PEM_write_bio_X509(b, cert))
		ret = kc_bio_take(b, out, size);
	BIO_free(b);
	return ret;
}

int cas__x509_key_der(EVP_PKEY *key, uint8_t **out, size_t *size)
{
	int n = i2d_PrivateKey(key, out);

	if (n <= 0) {
		*out = NULL;
		return -KILN_ECRYPTO;
	}
	*size = (size_t)n;
	return 0;
}

int cas__x509_cert_der(X509 *cert, uint8_t **out, size_t *size)
{
	int n;

	*out = NULL;
	n = i2d_X509(cert, out);
	if (n <= 0) {
		*out = NULL;
		return -KILN_ECRYPTO;
	}
	*size = (size_t)n;
	return 0;
}

int cas__x509_cert_spki_der(X509 *cert, unsigned char **der)
{
	/* The certificate's own SubjectPublicKeyInfo, re-serialized from its ASN.1
	 * structure: i2d_PUBKEY() would go through OpenSSL 3's encoder lookup,
	 * which costs more than the rest of an attestation. */
	*der = NULL;
	return i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), der);
}

int cas__x509_spki_sha256(X509 *cert, uint8_t out[KC_SHA256_SIZE])
{
	unsigned char *der = NULL;
	int n = cas__x509_cert_spki_der(cert, &der);
	int ret;

	if (n <= 0)
		return -KILN_ECRYPTO;
	ret = kc_sha256(der, (size_t)n, out);
	OPENSSL_free(der);
	return ret;
}

int cas_key_id(EVP_PKEY *key, char out[CAS_ID_SIZE])
{
	unsigned char *der = NULL;
	uint8_t d[KC_SHA256_SIZE];
	int n = i2d_PUBKEY(key, &der);
	int ret;

	if (n <= 0)
		return -KILN_ECRYPTO;
	ret = kc_sha256(der, (size_t)n, d);
	OPENSSL_free(der);
	if (ret < 0)
		return ret;
	memcpy(out, "sha256:", 7);
	kiln_hex_encode(d, sizeof(d), out + 7);
	return 0;
}

int cas_cert_fingerprint(X509 *cert, char out[65])
{
	uint8_t d[KC_SHA256_SIZE];
	unsigned int n = 0;

	if (!X509_digest(cert, EVP_sha256(), d, &n) || n != sizeof(d))
		return -KILN_ECRYPTO;
	kiln_hex_encode(d, sizeof(d), out);
	return 0;
}

int cas__x509_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t **sig, size_t *sig_size)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = 0;
	int ret = -KILN_ECRYPTO;

	*sig = NULL;
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, md_for(key), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &n, data, size) != 1)
		goto out;
	*sig = malloc(n);
	if (!*sig) {
		ret = -ENOMEM;
		goto out;
	}
	if (EVP_DigestSign(ctx, *sig, &n, data, size) != 1) {
		free(*sig);
		*sig = NULL;
		goto out;
	}
	*sig_size = n;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

int cas__x509_verify(EVP_PKEY *key, const void *data, size_t size, const uint8_t *sig,
	      size_t sig_size)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ret = -KILN_ESIG;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestVerifyInit(ctx, NULL, md_for(key), NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, sig, sig_size, data, size) == 1)
		ret = 0;
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* ---- identities ---- */

int cas_identity_create(const char *path, const char *algorithm, const char *common_name,
			char id_out[CAS_ID_SIZE], struct kiln_err *err)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char *kpem = NULL, *cpem = NULL, *all = NULL;
	size_t ksize = 0, csize = 0;
	int ret, fd = -1;

	if (!algorithm)
		algorithm = "p256";
	if (strcmp(algorithm, "p256") && strcmp(algorithm, "p384"))
		return kiln_err_set(err, -EINVAL, "unknown algorithm '%s' (expected p256 or "
				    "p384)", algorithm);
	ret = cas__x509_keygen(algorithm, &key);
	if (ret < 0)
		goto crypto;
	ret = cas__x509_make_cert(key, common_name ? common_name : "kiln identity", 3650, false,
				  NULL, 0, NULL, 0, NULL, NULL, &cert);
	if (ret < 0)
		goto crypto;
	if ((ret = cas__x509_key_pem(key, true, &kpem, &ksize)) < 0 ||
	    (ret = cas__x509_cert_pem(cert, &cpem, &csize)) < 0 ||
	    (ret = cas_key_id(key, id_out)) < 0)
		goto crypto;
	all = malloc(ksize + csize);
	if (!all) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(all, kpem, ksize);
	memcpy(all + ksize, cpem, csize);
	/* O_EXCL: never overwrite an existing identity. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = kiln_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = kiln_write_all(fd, all, ksize + csize);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret < 0) {
		kiln_err_set(err, ret, "%s: write failed: %s", path, kiln_strerror(ret));
		unlink(path);
	}
	goto out;
crypto:
	kiln_err_set(err, ret, "cannot create a key and certificate: %s", kiln_strerror(ret));
out:
	if (fd >= 0)
		close(fd);
	if (all)
		kiln_free_secret(all, ksize + csize);
	if (kpem)
		kiln_free_secret(kpem, ksize);
	free(cpem);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}

int cas_identity_load(const char *path, EVP_PKEY **key, X509 **cert, struct kiln_err *err)
{
	uint8_t *data = NULL;
	size_t size = 0;
	BIO *b = NULL;
	int ret;

	*key = NULL;
	*cert = NULL;
	ret = kiln_read_private_file(path, 1 << 20, &data, &size, err);
	if (ret < 0) {
		kiln_err_prefix(err, "identity ");
		return ret;
	}
	b = BIO_new_mem_buf(data, (int)size);
	if (!b) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	if (!*key) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "identity %s: no PEM private key found "
				   "(make one with 'kiln identity create')", path);
		goto out;
	}
	(void)BIO_reset(b);
	*cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!*cert) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "identity %s: no PEM certificate found",
				   path);
		goto out;
	}
	if (X509_check_private_key(*cert, *key) != 1) {
		ret = kiln_err_set(err, -KILN_EKEY, "identity %s: the certificate does not match "
				   "the private key", path);
		goto out;
	}
	ret = 0;
out:
	if (ret < 0) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		*key = NULL;
		*cert = NULL;
	}
	BIO_free(b);
	kiln_free_secret(data, size);
	return ret;
}
