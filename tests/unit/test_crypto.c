/* Unit tests for src/crypto: AEAD (one-shot and the blob format), HMAC and
 * HKDF (RFC 4231 and RFC 5869 vectors, and OpenSSL's EVP as a second opinion
 * over many sizes: kiln composes them itself), randomness and the hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include "crypto/crypto.h"

static void test_aead(void **state)
{
	uint8_t key[32] = { 1 }, iv[12] = { 2 }, tag[16], buf[100], out[100];
	kc_aead_t *a = kc_aead_new(key);

	assert_non_null(a);
	memset(buf, 'p', sizeof(buf));
	assert_int_equal(kc_aead_seal(a, iv, "aad", 3, buf, sizeof(buf), out, tag), 0);
	assert_memory_not_equal(out, buf, sizeof(buf));
	assert_int_equal(kc_aead_open(a, iv, "aad", 3, out, sizeof(out), buf, tag), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 'p');
	/* Wrong AAD, flipped ciphertext, flipped tag: all refused. */
	assert_int_equal(kc_aead_open(a, iv, "aae", 3, out, sizeof(out), buf, tag), -KILN_EAUTH);
	out[7] ^= 1;
	assert_int_equal(kc_aead_open(a, iv, "aad", 3, out, sizeof(out), buf, tag), -KILN_EAUTH);
	out[7] ^= 1;
	tag[0] ^= 1;
	assert_int_equal(kc_aead_open(a, iv, "aad", 3, out, sizeof(out), buf, tag), -KILN_EAUTH);
	kc_aead_free(a);
}

static void test_aead_blob(void **state)
{
	uint8_t key[32] = { 9 }, other[32] = { 8 }, *blob, *pt;
	size_t blob_size, pt_size;

	assert_int_equal(kc_aead_seal_blob(key, "id", 2, "secret", 6, &blob, &blob_size), 0);
	assert_int_equal(blob_size, 12 + 6 + 16);
	assert_int_equal(kc_aead_open_blob(key, "id", 2, blob, blob_size, &pt, &pt_size), 0);
	assert_int_equal(pt_size, 6);
	assert_memory_equal(pt, "secret", 6);
	free(pt);
	assert_int_equal(kc_aead_open_blob(other, "id", 2, blob, blob_size, &pt, &pt_size),
			 -KILN_EAUTH);
	assert_int_equal(kc_aead_open_blob(key, "id", 2, blob, 20, &pt, &pt_size), -KILN_ETRUNC);
	free(blob);
}

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++)
		sscanf(h + 2 * i, "%2hhx", &out[i]);
}

/* GCM's test case 16 (McGrew and Viega; AES-256, 96-bit IV, AAD, 60 bytes). */
static void test_aead_vector(void **state)
{
	uint8_t key[32], iv[12], aad[20], pt[60], ct[60], tag[16], out[60], got[16];
	kc_aead_t *a;

	unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key);
	unhex("cafebabefacedbaddecaf888", iv);
	unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad);
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", pt);
	unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", ct);
	unhex("76fc6ece0f4e1768cddf8853bb2d551b", tag);
	a = kc_aead_new(key);
	assert_non_null(a);
	assert_int_equal(kc_aead_seal(a, iv, aad, sizeof(aad), pt, sizeof(pt), out, got), 0);
	assert_memory_equal(out, ct, sizeof(ct));
	assert_memory_equal(got, tag, sizeof(tag));
	assert_int_equal(kc_aead_open(a, iv, aad, sizeof(aad), ct, sizeof(ct), out, tag), 0);
	assert_memory_equal(out, pt, sizeof(pt));
	kc_aead_free(a);
	(void)state;
}

/* The provider's AES-256-GCM called directly (aead.c) against OpenSSL's EVP,
 * both ways, over many sizes of text and AAD, on one context per key. */
static void test_aead_matches_evp(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 31, 33, 100, 255, 4096, 4097, 65543 };
	static const size_t aads[] = { 0, 3, 16, 32, 100 };
	uint8_t key[32], iv[12], tag[16], etag[16], *pt = malloc(65543), *ct = malloc(65543),
		*ect = malloc(65543 + 16), *back = malloc(65543);
	kc_aead_t *a;
	int len;

	assert_true(pt && ct && ect && back);
	for (size_t i = 0; i < 65543; i++)
		pt[i] = (uint8_t)(i * 7 + 3);
	memset(key, 0x5a, sizeof(key));
	a = kc_aead_new(key);
	assert_non_null(a);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (size_t j = 0; j < sizeof(aads) / sizeof(aads[0]); j++) {
			EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
			size_t n = sizes[s], an = aads[j];

			memset(iv, (int)(s * 16 + j), sizeof(iv));
			assert_int_equal(kc_aead_seal(a, iv, pt + 1, an, pt, n, ct, tag), 0);
			assert_int_equal(EVP_EncryptInit_ex(e, EVP_aes_256_gcm(), NULL, key, iv), 1);
			assert_true(!an || EVP_EncryptUpdate(e, NULL, &len, pt + 1, (int)an) == 1);
			assert_true(!n || EVP_EncryptUpdate(e, ect, &len, pt, (int)n) == 1);
			assert_int_equal(EVP_EncryptFinal_ex(e, ect + n, &len), 1);
			assert_int_equal(EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_GCM_GET_TAG, 16, etag), 1);
			assert_true(!n || memcmp(ct, ect, n) == 0);
			assert_memory_equal(tag, etag, 16);
			assert_int_equal(kc_aead_open(a, iv, pt + 1, an, ect, n, back, etag), 0);
			assert_true(!n || memcmp(back, pt, n) == 0);
			tag[n % 16] ^= 1;
			assert_int_equal(kc_aead_open(a, iv, pt + 1, an, ct, n, back, tag),
					 -KILN_EAUTH);
			EVP_CIPHER_CTX_free(e);
		}
	}
	kc_aead_free(a);
	free(pt);
	free(ct);
	free(ect);
	free(back);
	(void)state;
}

static void test_hkdf_rfc5869_case1(void **state)
{
	uint8_t ikm[22], salt[13], info[10], okm[42], expect[42];

	memset(ikm, 0x0b, sizeof(ikm));
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(info); i++)
		info[i] = (uint8_t)(0xf0 + i);
	assert_int_equal(kiln_hex_decode("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ec"
					 "c4c5bf34007208d5b887185865",
					 expect, sizeof(expect), NULL),
			 0);
	assert_int_equal(kc_hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), info, sizeof(info),
					okm, sizeof(okm)),
			 0);
	assert_memory_equal(okm, expect, sizeof(okm));
}

static void hex_expect(const char *hex, uint8_t *out, size_t size)
{
	assert_int_equal(kiln_hex_decode(hex, out, size, NULL), 0);
}

static void test_hkdf_rfc5869_cases_2_3(void **state)
{
	uint8_t ikm[80], salt[80], info[80], okm[82], expect[82];

	for (size_t i = 0; i < 80; i++) {
		ikm[i] = (uint8_t)i;
		salt[i] = (uint8_t)(0x60 + i);
		info[i] = (uint8_t)(0xb0 + i);
	}
	hex_expect("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
		   "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
		   "cc30c58179ec3e87c14c01d5c1f3434f1d87", expect, 82);
	assert_int_equal(kc_hkdf_sha256(ikm, 80, salt, 80, info, 80, okm, 82), 0);
	assert_memory_equal(okm, expect, 82);
	/* Case 3: no salt, no info. */
	memset(ikm, 0x0b, 22);
	hex_expect("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
		   "9d201395faa4b61a96c8", expect, 42);
	assert_int_equal(kc_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 42), 0);
	assert_memory_equal(okm, expect, 42);
	assert_int_equal(kc_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 255 * 32 + 1), -EINVAL);
}

static void test_hmac_rfc4231(void **state)
{
	uint8_t key[131], mac[32], expect[32];
	static const char big[] = "Test Using Larger Than Block-Size Key - Hash Key First";

	memset(key, 0x0b, 20);
	hex_expect("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
		   expect, 32);
	assert_int_equal(kc_hmac_sha256(key, 20, "Hi There", 8, mac), 0);
	assert_memory_equal(mac, expect, 32);
	/* Case 6: a key longer than the block is hashed first. */
	memset(key, 0xaa, sizeof(key));
	hex_expect("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
		   expect, 32);
	assert_int_equal(kc_hmac_sha256(key, sizeof(key), big, sizeof(big) - 1, mac), 0);
	assert_memory_equal(mac, expect, 32);
}

static void evp_hkdf(const uint8_t *ikm, size_t ikm_size, const uint8_t *salt, size_t salt_size,
		     const uint8_t *info, size_t info_size, uint8_t *out, size_t out_size)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM params[5], *p = params;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_size);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_size);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_size);
	*p = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_KDF_derive(ctx, out, out_size, params), 1);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

/* Every key length around the block size (64) and the hash's (32), data
 * lengths around them, and HKDF outputs across block boundaries: the same
 * bytes as OpenSSL's EVP HMAC and HKDF. */
static void test_hmac_hkdf_match_evp(void **state)
{
	uint8_t buf[300], mac[32], want[32], okm[200], want_okm[200];
	unsigned int len;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	for (size_t k = 0; k <= 140; k++) {
		for (size_t d = 0; d <= 130; d += 13) {
			assert_non_null(HMAC(EVP_sha256(), buf, (int)k, buf + 100, d, want, &len));
			assert_int_equal(kc_hmac_sha256(buf, k, buf + 100, d, mac), 0);
			assert_memory_equal(mac, want, 32);
		}
	}
	for (size_t n = 1; n <= sizeof(okm); n += 7) {
		size_t salt = n % 90, info = n % 70;

		evp_hkdf(buf, 32, buf + 40, salt, buf + 140, info, want_okm, n);
		assert_int_equal(kc_hkdf_sha256(buf, 32, buf + 40, salt, buf + 140, info, okm, n), 0);
		assert_memory_equal(okm, want_okm, n);
	}
}

static void test_random(void **state)
{
	uint8_t a[64] = { 0 }, b[64] = { 0 }, zero[64] = { 0 };

	assert_int_equal(kc_random(a, sizeof(a)), 0);
	assert_int_equal(kc_random(b, sizeof(b)), 0);
	assert_int_equal(kc_random(b, 0), 0);
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_memory_not_equal(a, b, sizeof(a));
}

static void test_sha(void **state)
{
	uint8_t d[32], d2[64];
	char hex[129];
	size_t n;
	kc_hash_t *h = kc_hash_new("SHA256");

	assert_int_equal(kc_sha256("abc", 3, d), 0);
	kiln_hex_encode(d, 32, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_non_null(h);
	assert_int_equal(kc_hash_update(h, "a", 1), 0);
	assert_int_equal(kc_hash_update(h, "bc", 2), 0);
	assert_int_equal(kc_hash_final(h, d2, &n), 0);
	assert_int_equal(n, 32);
	assert_memory_equal(d, d2, 32);
	kc_hash_free(h);
	assert_null(kc_hash_new("NOPE"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aead),
		cmocka_unit_test(test_aead_blob),
		cmocka_unit_test(test_aead_vector),
		cmocka_unit_test(test_aead_matches_evp),
		cmocka_unit_test(test_hkdf_rfc5869_case1),
		cmocka_unit_test(test_hkdf_rfc5869_cases_2_3),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_hmac_hkdf_match_evp),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_sha),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
