/* Unit tests for src/crypto: AEAD (one-shot and the blob format), HKDF
 * (RFC 5869 vectors) and the hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
		cmocka_unit_test(test_hkdf_rfc5869_case1),
		cmocka_unit_test(test_sha),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
