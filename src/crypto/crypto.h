/* kiln crypto: thin OpenSSL 3 wrappers. The one header of src/crypto/.
 * Every function returns 0 or a negative code (see common/common.h); OpenSSL
 * errors are translated here, once, to -KILN_ECRYPTO (or -ENOMEM). */
#ifndef KILN_CRYPTO_H
#define KILN_CRYPTO_H

#include "common/common.h"

#define KC_SHA256_SIZE 32
#define KC_SHA384_SIZE 48
#define KC_SHA512_SIZE 64
#define KC_AEAD_KEY_SIZE 32
#define KC_AEAD_IV_SIZE 12
#define KC_AEAD_TAG_SIZE 16

/* Copies what was written into the memory BIO b (OpenSSL's BIO) into a new
 * NUL-terminated string *out (the caller owns it; *size, if size is not NULL, is
 * its length) and wipes the BIO's copy. */
struct bio_st;
int kc_bio_take(struct bio_st *b, char **out, size_t *size) KILN_WARN_UNUSED;

/* Fill buf with cryptographically secure random bytes. */
int kc_random(void *buf, size_t size) KILN_WARN_UNUSED;

int kc_sha256(const void *data, size_t size, uint8_t out[static KC_SHA256_SIZE]);
int kc_sha384(const void *data, size_t size, uint8_t out[static KC_SHA384_SIZE]);
int kc_sha512(const void *data, size_t size, uint8_t out[static KC_SHA512_SIZE]);

/* Incremental hashing: name is "SHA256", "SHA384" or "SHA512". */
typedef struct kc_hash kc_hash_t;
kc_hash_t *kc_hash_new(const char *name);
int kc_hash_update(kc_hash_t *h, const void *data, size_t size);
/* Writes the digest (out must hold the digest size); the context can be reused
 * only after kc_hash_new again. */
int kc_hash_final(kc_hash_t *h, uint8_t *out, size_t *out_size);
void kc_hash_free(kc_hash_t *h);

/* HMAC-SHA256. */
int kc_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		   uint8_t out[static KC_SHA256_SIZE]);

/* HKDF-SHA256 (RFC 5869) extract+expand into out[out_size]. */
int kc_hkdf_sha256(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
		   const void *info, size_t info_size, void *out, size_t out_size);

/* AES-256-GCM with a reusable context: the key schedule is computed once, so
 * per-chunk calls cost only the cipher (this matters at 4 KiB chunks).
 * A context is owned by one thread at a time. kc_aead_new copies the key. */
typedef struct kc_aead kc_aead_t;
kc_aead_t *kc_aead_new(const uint8_t key[static KC_AEAD_KEY_SIZE]);
void kc_aead_free(kc_aead_t *a);
/* in and out may be the same buffer. */
int kc_aead_seal(kc_aead_t *a, const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad,
		 size_t aad_size, const void *in, size_t size, void *out,
		 uint8_t tag[static KC_AEAD_TAG_SIZE]);
/* Returns -KILN_EAUTH when the tag does not match; out is then wiped. */
int kc_aead_open(kc_aead_t *a, const uint8_t iv[static KC_AEAD_IV_SIZE], const void *aad,
		 size_t aad_size, const void *in, size_t size, void *out,
		 const uint8_t tag[static KC_AEAD_TAG_SIZE]);

/* One-shot convenience: out = iv(12) || ciphertext || tag(16), malloc'd, owned by
 * the caller. Open returns the plaintext malloc'd (caller wipes and frees). */
int kc_aead_seal_blob(const uint8_t key[static KC_AEAD_KEY_SIZE], const void *aad,
		      size_t aad_size, const void *pt, size_t size, uint8_t **out,
		      size_t *out_size);
int kc_aead_open_blob(const uint8_t key[static KC_AEAD_KEY_SIZE], const void *aad,
		      size_t aad_size, const void *blob, size_t blob_size, uint8_t **out,
		      size_t *out_size);

#endif
