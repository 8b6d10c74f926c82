/* Unit tests for the CAS nonce and grant tables (src/cas/nonces.c, grants.c):
 * per-client nonce limits, single use, expiry, and grants bounded per policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cas/internal.h"

#define SEC 1000000000ull

static void test_nonce_single_use_and_expiry(void **state)
{
	struct cas__nonce_table t;
	uint8_t a[32], b[32];

	cas__nonces_init(&t);
	assert_int_equal(cas__nonce_issue(&t, "ip:10.0.0.1", false, 0, a), 0);
	assert_int_equal(cas__nonce_issue(&t, "ip:10.0.0.1", false, 0, b), 0);
	assert_memory_not_equal(a, b, 32);
	assert_true(cas__nonce_peek(&t, a, 1));
	assert_true(cas__nonce_consume(&t, a, 1));
	assert_false(cas__nonce_consume(&t, a, 1)); /* used */
	assert_false(cas__nonce_peek(&t, a, 1));
	/* b expires CAS_NONCE_TTL_S after issue: refused, and gone */
	assert_false(cas__nonce_peek(&t, b, CAS_NONCE_TTL_S * SEC));
	assert_false(cas__nonce_consume(&t, b, CAS_NONCE_TTL_S * SEC));
	assert_int_equal(t.n, 0);
	cas__nonces_free(&t);
}

static void test_nonce_flood_from_one_address_leaves_others_served(void **state)
{
	struct cas__nonce_table t;
	uint8_t n[32], first[32];
	char id[CAS_CLIENT_KEY_SIZE];
	const uint8_t spki[KC_SHA256_SIZE] = { 1 };

	cas__nonces_init(&t);
	for (unsigned i = 0; i < CAS_NONCES_PER_ADDR; i++)
		assert_int_equal(cas__nonce_issue(&t, "ip:127.0.0.1", false, 0,
						  i ? n : first), 0);
	assert_int_equal(cas__nonce_issue(&t, "ip:127.0.0.1", false, 0, n), -EUSERS);
	/* another address, and a workload with a certificate on the same one */
	assert_int_equal(cas__nonce_issue(&t, "ip:127.0.0.2", false, 0, n), 0);
	cas__client_key(spki, "127.0.0.1", id);
	assert_int_equal(cas__nonce_issue(&t, id, true, 0, n), 0);
	assert_true(cas__nonce_consume(&t, n, 1));
	/* using a nonce gives its client room again */
	assert_true(cas__nonce_consume(&t, first, 1));
	assert_int_equal(cas__nonce_issue(&t, "ip:127.0.0.1", false, 0, n), 0);
	/* and so does expiry */
	assert_int_equal(cas__nonce_issue(&t, "ip:127.0.0.1", false, 0, n), -EUSERS);
	assert_int_equal(cas__nonces_sweep(&t, CAS_NONCE_TTL_S * SEC), 0);
	assert_int_equal(cas__nonce_issue(&t, "ip:127.0.0.1", false, CAS_NONCE_TTL_S * SEC, n),
			 0);
	cas__nonces_free(&t);
}

static void test_nonce_limit_per_certificate_and_in_total(void **state)
{
	struct cas__nonce_table t;
	uint8_t n[32];

	cas__nonces_init(&t);
	for (unsigned i = 0; i < CAS_NONCES_PER_ID; i++)
		assert_int_equal(cas__nonce_issue(&t, "id:aa", true, 0, n), 0);
	assert_int_equal(cas__nonce_issue(&t, "id:aa", true, 0, n), -EUSERS);
	assert_int_equal(cas__nonce_issue(&t, "id:bb", true, 0, n), 0);
	t.max_total = t.n;
	assert_int_equal(cas__nonce_issue(&t, "id:cc", true, 0, n), -ENOSPC);
	cas__nonces_free(&t);
}

static void test_client_key_groups_ipv6_by_64(void **state)
{
	char a[CAS_CLIENT_KEY_SIZE], b[CAS_CLIENT_KEY_SIZE];
	uint8_t spki[KC_SHA256_SIZE];

	cas__client_key(NULL, "2001:db8:1:2:aaaa::1", a);
	cas__client_key(NULL, "2001:db8:1:2:bbbb::7", b);
	assert_string_equal(a, "ip:2001:db8:1:2::/64");
	assert_string_equal(a, b);
	cas__client_key(NULL, "2001:db8:1:3::1", b);
	assert_string_not_equal(a, b);
	cas__client_key(NULL, "192.0.2.7", a);
	assert_string_equal(a, "ip:192.0.2.7");
	memset(spki, 0xab, sizeof(spki));
	cas__client_key(spki, "192.0.2.7", a);
	assert_string_equal(a, "id:abababababababababababababababab"
			    "abababababababababababababababab");
}

static void key(uint8_t spki[KC_SHA256_SIZE], unsigned i)
{
	memset(spki, 0, KC_SHA256_SIZE);
	memcpy(spki, &i, sizeof(i));
}

static void test_grant_flood_against_one_policy_spares_the_others(void **state)
{
	struct cas__grant_table t;
	char vol[1][33] = { "0123456789abcdef0123456789abcdef" };
	char other[1][33] = { "fedcba9876543210fedcba9876543210" };
	uint8_t spki[KC_SHA256_SIZE];
	bool evicted;

	cas__grants_init(&t);
	t.max_per_policy = 8;
	key(spki, 1000);
	assert_int_equal(cas__grant_put(&t, spki, "honest/db", other, 1, 0, &evicted), 0);
	assert_false(evicted);
	for (unsigned i = 0; i < 100; i++) {
		key(spki, i);
		assert_int_equal(cas__grant_put(&t, spki, "mallory/sim", vol, 1, 0, &evicted), 0);
		assert_int_equal(evicted, i >= 8);
	}
	assert_int_equal(cas__grants_of(&t, "mallory/sim"), 8);
	assert_int_equal(t.n, 9);
	/* the flooder's oldest grants went; its newest hold */
	key(spki, 0);
	assert_false(cas__grant_allows(&t, spki, vol[0], 1));
	key(spki, 99);
	assert_true(cas__grant_allows(&t, spki, vol[0], 1));
	assert_false(cas__grant_allows(&t, spki, other[0], 1));
	/* the other policy's grant is untouched */
	key(spki, 1000);
	assert_true(cas__grant_allows(&t, spki, other[0], 1));
	assert_int_equal(cas__grants_of(&t, "honest/db"), 1);
	cas__grants_free(&t);
}

static void test_grant_replaced_expired_and_full(void **state)
{
	struct cas__grant_table t;
	char vol[2][33] = { "0123456789abcdef0123456789abcdef",
			    "11111111111111111111111111111111" };
	uint8_t spki[KC_SHA256_SIZE];
	bool evicted;

	cas__grants_init(&t);
	t.max_per_policy = 1;
	key(spki, 1);
	assert_int_equal(cas__grant_put(&t, spki, "a", vol, 1, 0, &evicted), 0);
	/* the same key attests again (another service): one grant, the new one */
	assert_int_equal(cas__grant_put(&t, spki, "b", vol + 1, 1, 0, &evicted), 0);
	assert_false(evicted);
	assert_int_equal(t.n, 1);
	assert_int_equal(cas__grants_of(&t, "a"), 0);
	assert_false(cas__grant_allows(&t, spki, vol[0], 1));
	assert_true(cas__grant_allows(&t, spki, vol[1], 1));
	/* per-policy limit 1: a second key evicts the first (the policy survives) */
	key(spki, 2);
	assert_int_equal(cas__grant_put(&t, spki, "b", vol + 1, 1, 0, &evicted), 0);
	assert_true(evicted);
	assert_int_equal(cas__grants_of(&t, "b"), 1);
	/* full: a new key is refused, the key that holds a grant is not */
	t.max_total = 1;
	key(spki, 3);
	assert_true(cas__grants_full(&t, spki, 1));
	key(spki, 2);
	assert_false(cas__grants_full(&t, spki, 1));
	/* expiry frees the table */
	assert_false(cas__grant_allows(&t, spki, vol[1], CAS_GRANT_TTL_S * SEC));
	key(spki, 3);
	assert_false(cas__grants_full(&t, spki, CAS_GRANT_TTL_S * SEC));
	assert_int_equal(t.n, 0);
	cas__grants_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonce_single_use_and_expiry),
		cmocka_unit_test(test_nonce_flood_from_one_address_leaves_others_served),
		cmocka_unit_test(test_nonce_limit_per_certificate_and_in_total),
		cmocka_unit_test(test_client_key_groups_ipv6_by_64),
		cmocka_unit_test(test_grant_flood_against_one_policy_spares_the_others),
		cmocka_unit_test(test_grant_replaced_expired_and_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
