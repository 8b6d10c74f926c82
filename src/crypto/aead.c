/* AES-256-GCM with a reusable key schedule: the default provider's
 * implementation, called through its dispatch table as EVP would call it.
 * Through EVP, a process's first cipher fetch builds an EVP method for every
 * cipher of the provider and fills OpenSSL's name map from the legacy tables:
 * a third of the volume server's CPU at its start (docs/runtime.md, "Start-up
 * cost of kiln run"). Looking up the one algorithm in the provider's own
 * table costs a small part of that; the code that runs per call is the same. */
#include "crypto/crypto.h"

#include <errno.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct {
	bool ok; /* all eight found */
	void *provctx;
	OSSL_FUNC_cipher_newctx_fn *newctx;
	OSSL_FUNC_cipher_freectx_fn *freectx;
	OSSL_FUNC_cipher_encrypt_init_fn *einit;
	OSSL_FUNC_cipher_decrypt_init_fn *dinit;
	OSSL_FUNC_cipher_update_fn *update;
	OSSL_FUNC_cipher_final_fn *final;
	OSSL_FUNC_cipher_get_ctx_params_fn *get;
	OSSL_FUNC_cipher_set_ctx_params_fn *set;
} g_gcm;
static pthread_once_t g_gcm_once = PTHREAD_ONCE_INIT;

static void gcm_find(void)
{
	OSSL_PROVIDER *p = OSSL_PROVIDER_try_load(NULL, "default", 1); /* fallbacks kept */
	const OSSL_ALGORITHM *alg;
	int no_cache;

	if (!p || !(alg = OSSL_PROVIDER_query_operation(p, OSSL_OP_CIPHER, &no_cache)))
		return;
	while (alg->algorithm_names && strncmp(alg->algorithm_names, "AES-256-GCM:", 12) != 0)
		alg++;
	for (const OSSL_DISPATCH *f = alg->implementation; f && f->function_id; f++) {
		switch (f->function_id) {
		case OSSL_FUNC_CIPHER_NEWCTX:
			g_gcm.newctx = OSSL_FUNC_cipher_newctx(f);
			break;
		case OSSL_FUNC_CIPHER_FREECTX:
			g_gcm.freectx = OSSL_FUNC_cipher_freectx(f);
			break;
		case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
			g_gcm.einit = OSSL_FUNC_cipher_encrypt_init(f);
			break;
		case OSSL_FUNC_CIPHER_DECRYPT_INIT:
			g_gcm.dinit = OSSL_FUNC_cipher_decrypt_init(f);
			break;
		case OSSL_FUNC_CIPHER_UPDATE:
			g_gcm.update = OSSL_FUNC_cipher_update(f);
			break;
		case OSSL_FUNC_CIPHER_FINAL:
			g_gcm.final = OSSL_FUNC_cipher_final(f);
			break;
		case OSSL_FUNC_CIPHER_GET_CTX_PARAMS:
			g_gcm.get = OSSL_FUNC_cipher_get_ctx_params(f);
			break;
		case OSSL_FUNC_CIPHER_SET_CTX_PARAMS:
			g_gcm.set = OSSL_FUNC_cipher_set_ctx_params(f);
			break;
		}
	}
	g_gcm.provctx = OSSL_PROVIDER_get0_provider_ctx(p);
	g_gcm.ok = g_gcm.newctx && g_gcm.freectx && g_gcm.einit && g_gcm.dinit && g_gcm.update &&
		   g_gcm.final && g_gcm.get && g_gcm.set;
}

struct kc_aead {
	void *enc; /* the provider's contexts, keyed */
	void *dec;
};

kc_aead_t *kc_aead_new(const uint8_t key[static KC_AEAD_KEY_SIZE])
{
	kc_aead_t *a;

	if (pthread_once(&g_gcm_once, gcm_find) || !g_gcm.ok || !(a = calloc(1, sizeof(*a))))
		return NULL;
	a->enc = g_gcm.newctx(g_gcm.provctx);
	a->dec = g_gcm.newctx(g_gcm.provctx);
	if (!a->enc || !a->dec || g_gcm.einit(a->enc, key, KC_AEAD_KEY_SIZE, NULL, 0, NULL) != 1 ||
	    g_gcm.dinit(a->dec, key, KC_AEAD_KEY_SIZE, NULL, 0, NULL) != 1) {
		kc_aead_free(a);
		return NULL;
	}
	return a;
}

void kc_aead_free(kc_aead_t *a)
{
	if (!a)
		return;
	/* The provider's freectx cleanses the key schedule. */
	if (a->enc)
		g_gcm.freectx(a->enc);
	if (a->dec)
		g_gcm.freectx(a->dec);
	free(a);
}

/* One message on a keyed context: the IV, the AAD (an update without output),
 * the text, the final step (which checks a tag set before it). */
static int gcm_run(void *ctx, OSSL_FUNC_cipher_encrypt_init_fn *init,
		   const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad, size_t aad_size,
		   const void *in, size_t size, void *out)
{
	size_t len;

	if (size > INT32_MAX || aad_size > INT32_MAX)
		return -EINVAL;
	if (init(ctx, NULL, 0, iv, KC_AEAD_IV_SIZE, NULL) != 1 ||
	    (aad_size && g_gcm.update(ctx, NULL, &len, aad_size, aad, aad_size) != 1) ||
	    (size && g_gcm.update(ctx, out, &len, size, in, size) != 1))
		return -KILN_ECRYPTO;
	return 0;
}

int kc_aead_seal(kc_aead_t *a, const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad,
		 size_t aad_size, const void *in, size_t size, void *out,
		 uint8_t tag[static KC_AEAD_TAG_SIZE])
{
	OSSL_PARAM p[2] = { OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag,
						    KC_AEAD_TAG_SIZE), OSSL_PARAM_END };
	size_t len;
	int ret = gcm_run(a->enc, g_gcm.einit, iv, aad, aad_size, in, size, out);

	if (ret)
		return ret;
	if (g_gcm.final(a->enc, (uint8_t *)out + size, &len, 0) != 1 || g_gcm.get(a->enc, p) != 1)
		return -KILN_ECRYPTO;
	return 0;
}

int kc_aead_open(kc_aead_t *a, const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad,
		 size_t aad_size, const void *in, size_t size, void *out,
		 const uint8_t tag[static KC_AEAD_TAG_SIZE])
{
	OSSL_PARAM p[2] = { OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag,
						    KC_AEAD_TAG_SIZE), OSSL_PARAM_END };
	size_t len;
	int ret = gcm_run(a->dec, g_gcm.dinit, iv, aad, aad_size, in, size, out);

	if (ret)
		return ret;
	if (g_gcm.set(a->dec, p) != 1)
		return -KILN_ECRYPTO;
	if (g_gcm.final(a->dec, (uint8_t *)out + size, &len, 0) != 1) {
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
