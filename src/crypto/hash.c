/* Digests, HMAC, HKDF and randomness.
 *
 * HMAC-SHA256 and HKDF-SHA256 are composed here (RFC 2104, RFC 5869) on
 * OpenSSL's SHA-256 block functions, and randomness comes from getrandom(2),
 * not through EVP: the first EVP fetch or RAND_bytes of a process initialises
 * OpenSSL's default provider (its name tables, its DRBG), 3.5-5 ms of CPU on
 * these VMs (1.5 ms on an idle one), and the file shield's handshake (two
 * HKDFs, three HMACs, a nonce) is the only cryptography most processes under
 * kiln run ever do: every program a script starts on a volume paid it. The
 * block functions are deprecated in OpenSSL 3 but kept, and run the same
 * assembly as the provider. SHA-256 digests (pf's hash tree and journal
 * checks, in the volume server at each open) use them too, for the same
 * reason; the other digests go through EVP. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto/crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct kc_hash {
	EVP_MD_CTX *ctx; /* NULL: SHA-256 on the block functions */
	SHA256_CTX sha;
};

int kc_random(void *buf, size_t size)
{
	uint8_t *p = buf;

	while (size > 0) {
		ssize_t n = getrandom(p, size, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -KILN_ECRYPTO;
		}
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

static int digest(const char *name, const void *data, size_t size, uint8_t *out)
{
	unsigned int len = 0;
	EVP_MD *md;
	int ok;

	if (strcmp(name, "SHA256") == 0)
		return SHA256(data, size, out) ? 0 : -KILN_ECRYPTO;
	md = EVP_MD_fetch(NULL, name, NULL);
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
	EVP_MD *md = NULL;

	if (h && strcmp(name, "SHA256") == 0 && SHA256_Init(&h->sha) == 1)
		return h;
	md = EVP_MD_fetch(NULL, name, NULL);
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
	if (!h->ctx)
		return SHA256_Update(&h->sha, data, size) == 1 ? 0 : -KILN_ECRYPTO;
	return EVP_DigestUpdate(h->ctx, data, size) == 1 ? 0 : -KILN_ECRYPTO;
}

int kc_hash_final(kc_hash_t *h, uint8_t *out, size_t *out_size)
{
	unsigned int len = KC_SHA256_SIZE;

	if (!h->ctx ? SHA256_Final(out, &h->sha) != 1 : EVP_DigestFinal_ex(h->ctx, out, &len) != 1)
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
	kiln_free_secret(h, sizeof(*h));
}

/* HMAC-SHA256 in two parts, so that HKDF's expand can feed its pieces. */
struct hmac {
	SHA256_CTX inner, outer;
};

static void hmac_init(struct hmac *h, const void *key, size_t key_size)
{
	uint8_t k[SHA256_CBLOCK] = { 0 }, pad[SHA256_CBLOCK];

	if (key_size > sizeof(k))
		SHA256(key, key_size, k);
	else if (key_size)
		memcpy(k, key, key_size);
	for (size_t i = 0; i < sizeof(k); i++)
		pad[i] = k[i] ^ 0x36;
	SHA256_Init(&h->inner);
	SHA256_Update(&h->inner, pad, sizeof(pad));
	for (size_t i = 0; i < sizeof(k); i++)
		pad[i] = k[i] ^ 0x5c;
	SHA256_Init(&h->outer);
	SHA256_Update(&h->outer, pad, sizeof(pad));
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
}

static void hmac_final(struct hmac *h, uint8_t out[static KC_SHA256_SIZE])
{
	uint8_t in[KC_SHA256_SIZE];

	SHA256_Final(in, &h->inner);
	SHA256_Update(&h->outer, in, sizeof(in));
	SHA256_Final(out, &h->outer);
	OPENSSL_cleanse(in, sizeof(in));
	OPENSSL_cleanse(h, sizeof(*h));
}

int kc_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		   uint8_t out[static KC_SHA256_SIZE])
{
	struct hmac h;

	hmac_init(&h, key, key_size);
	SHA256_Update(&h.inner, data, size);
	hmac_final(&h, out);
	return 0;
}

int kc_hkdf_sha256(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
		   const void *info, size_t info_size, void *out, size_t out_size)
{
	uint8_t prk[KC_SHA256_SIZE], t[KC_SHA256_SIZE];
	uint8_t *o = out;
	size_t done = 0;
	struct hmac keyed, h;

	if (out_size > 255 * KC_SHA256_SIZE)
		return -EINVAL;
	/* Extract: PRK = HMAC(salt, IKM) (no salt: a block of zeros, as an
	 * empty key is). */
	kc_hmac_sha256(salt, salt_size, ikm, ikm_size, prk);
	/* Expand: T(i) = HMAC(PRK, T(i-1) | info | i); the pads keyed with PRK
	 * once, copied for each block. */
	hmac_init(&keyed, prk, sizeof(prk));
	for (uint8_t i = 1; done < out_size; i++) {
		size_t n = out_size - done < sizeof(t) ? out_size - done : sizeof(t);

		h = keyed;
		if (i > 1)
			SHA256_Update(&h.inner, t, sizeof(t));
		SHA256_Update(&h.inner, info, info_size);
		SHA256_Update(&h.inner, &i, 1);
		hmac_final(&h, t);
		memcpy(o + done, t, n);
		done += n;
	}
	OPENSSL_cleanse(&keyed, sizeof(keyed));
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(t, sizeof(t));
	return 0;
}
