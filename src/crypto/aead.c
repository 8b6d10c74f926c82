/* AES-256-GCM with a reusable key schedule. */
#include "crypto/crypto.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct kc_aead {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

kc_aead_t *kc_aead_new(const uint8_t key[static KC_AEAD_KEY_SIZE])
{
	kc_aead_t *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->enc = EVP_CIPHER_CTX_new();
	a->dec = EVP_CIPHER_CTX_new();
	if (!a->enc || !a->dec ||
	    EVP_EncryptInit_ex(a->enc, EVP_aes_256_gcm(), NULL, key, NULL) != 1 ||
	    EVP_DecryptInit_ex(a->dec, EVP_aes_256_gcm(), NULL, key, NULL) != 1) {
		kc_aead_free(a);
		return NULL;
	}
	return a;
}

void kc_aead_free(kc_aead_t *a)
{
	if (!a)
		return;
	/* EVP_CIPHER_CTX_free cleanses the key schedule. */
	EVP_CIPHER_CTX_free(a->enc);
	EVP_CIPHER_CTX_free(a->dec);
	free(a);
}

int kc_aead_seal(kc_aead_t *a, const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad,
		 size_t aad_size, const void *in, size_t size, void *out,
		 uint8_t tag[static KC_AEAD_TAG_SIZE])
{
	int len;

	if (size > INT32_MAX || aad_size > INT32_MAX)
		return -EINVAL;
	if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, iv) != 1)
		return -KILN_ECRYPTO;
	if (aad_size && EVP_EncryptUpdate(a->enc, NULL, &len, aad, (int)aad_size) != 1)
		return -KILN_ECRYPTO;
	if (size && EVP_EncryptUpdate(a->enc, out, &len, in, (int)size) != 1)
		return -KILN_ECRYPTO;
	if (EVP_EncryptFinal_ex(a->enc, (uint8_t *)out + size, &len) != 1)
		return -KILN_ECRYPTO;
	if (EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_GCM_GET_TAG, KC_AEAD_TAG_SIZE, tag) != 1)
		return -KILN_ECRYPTO;
	return 0;
}

int kc_aead_open(kc_aead_t *a, const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad,
		 size_t aad_size, const void *in, size_t size, void *out,
		 const uint8_t tag[static KC_AEAD_TAG_SIZE])
{
	int len;

	if (size > INT32_MAX || aad_size > INT32_MAX)
		return -EINVAL;
	if (EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, iv) != 1)
		return -KILN_ECRYPTO;
	if (aad_size && EVP_DecryptUpdate(a->dec, NULL, &len, aad, (int)aad_size) != 1)
		return -KILN_ECRYPTO;
	if (size && EVP_DecryptUpdate(a->dec, out, &len, in, (int)size) != 1)
		return -KILN_ECRYPTO;
	if (EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_GCM_SET_TAG, KC_AEAD_TAG_SIZE,
				(void *)tag) != 1)
		return -KILN_ECRYPTO;
	if (EVP_DecryptFinal_ex(a->dec, (uint8_t *)out + size, &len) != 1) {
		kiln_wipe(out, size);
		return -KILN_EAUTH;
	}
	return 0;
}

int kc_aead_seal_blob(const uint8_t key[static KC_AEAD_KEY_SIZE], const void *aad,
		      size_t aad_size, const void *pt, size_t size, uint8_t **out,
		      size_t *out_size)
{
	size_t total = KC_AEAD_IV_SIZE + size + KC_AEAD_TAG_SIZE;
	kc_aead_t *a = NULL;
	uint8_t *buf = NULL;
	int ret;

	*out = NULL;
	*out_size = 0;
	if (size > INT32_MAX - 64)
		return -EINVAL;
	buf = malloc(total);
	a = kc_aead_new(key);
	if (!buf || !a) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kc_random(buf, KC_AEAD_IV_SIZE);
	if (ret < 0)
		goto out;
	ret = kc_aead_seal(a, buf, aad, aad_size, pt, size, buf + KC_AEAD_IV_SIZE,
			   buf + KC_AEAD_IV_SIZE + size);
	if (ret < 0)
		goto out;
	*out = buf;
	*out_size = total;
	buf = NULL;
out:
	free(buf);
	kc_aead_free(a);
	return ret;
}

int kc_aead_open_blob(const uint8_t key[static KC_AEAD_KEY_SIZE], const void *aad,
		      size_t aad_size, const void *blob, size_t blob_size, uint8_t **out,
		      size_t *out_size)
{
	const uint8_t *b = blob;
	size_t size;
	kc_aead_t *a = NULL;
	uint8_t *buf = NULL;
	int ret;

	*out = NULL;
	*out_size = 0;
	if (blob_size < KC_AEAD_IV_SIZE + KC_AEAD_TAG_SIZE)
		return -KILN_ETRUNC;
	size = blob_size - KC_AEAD_IV_SIZE - KC_AEAD_TAG_SIZE;
	buf = malloc(size + 1);
	a = kc_aead_new(key);
	if (!buf || !a) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kc_aead_open(a, b, aad, aad_size, b + KC_AEAD_IV_SIZE, size, buf,
			   b + KC_AEAD_IV_SIZE + size);
	if (ret < 0)
		goto out;
	buf[size] = '\0';
	*out = buf;
	*out_size = size;
	buf = NULL;
out:
	kiln_free_secret(buf, size + 1);
	kc_aead_free(a);
	return ret;
}
