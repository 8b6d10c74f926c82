/* Digests, HMAC, HKDF and randomness. */
#include "crypto/crypto.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdlib.h>

struct kc_hash {
	EVP_MD_CTX *ctx;
};

int kc_random(void *buf, size_t size)
{
	if (size > INT32_MAX)
		return -EINVAL;
	return RAND_bytes(buf, (int)size) == 1 ? 0 : -KILN_ECRYPTO;
}

static int digest(const char *name, const void *data, size_t size, uint8_t *out)
{
	unsigned int len = 0;
	EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);
	int ok;

	if (!md)
		return -KILN_ECRYPTO;
	ok = EVP_Digest(data, size, out, &len, md, NULL);
	EVP_MD_free(md);
	return ok == 1 ? 0 : -KILN_ECRYPTO;
}

int kc_sha256(const void *data, size_t size, uint8_t out[static KC_SHA256_SIZE])
{
	return digest("SHA256", data, size, out);
}

int kc_sha384(const void *data, size_t size, uint8_t out[static KC_SHA384_SIZE])
{
	return digest("SHA384", data, size, out);
}

int kc_sha512(const void *data, size_t size, uint8_t out[static KC_SHA512_SIZE])
{
	return digest("SHA512", data, size, out);
}

kc_hash_t *kc_hash_new(const char *name)
{
	kc_hash_t *h = calloc(1, sizeof(*h));
	EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);

	if (!h || !md)
		goto fail;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1)
		goto fail;
	EVP_MD_free(md);
	return h;
fail:
	EVP_MD_free(md);
	kc_hash_free(h);
	return NULL;
}

int kc_hash_update(kc_hash_t *h, const void *data, size_t size)
{
	return EVP_DigestUpdate(h->ctx, data, size) == 1 ? 0 : -KILN_ECRYPTO;
}

int kc_hash_final(kc_hash_t *h, uint8_t *out, size_t *out_size)
{
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(h->ctx, out, &len) != 1)
		return -KILN_ECRYPTO;
	if (out_size)
		*out_size = len;
	return 0;
}

void kc_hash_free(kc_hash_t *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int kc_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		   uint8_t out[static KC_SHA256_SIZE])
{
	unsigned int len = 0;

	if (key_size > INT32_MAX)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)key_size, data, size, out, &len))
		return -KILN_ECRYPTO;
	return 0;
}

int kc_hkdf_sha256(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
		   const void *info, size_t info_size, void *out, size_t out_size)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int ret = -KILN_ECRYPTO;

	if (!kdf)
		return ret;
	ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_size);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_size);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_size);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, out_size, params) == 1)
		ret = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ret;
}
