/* Unit tests for the CAS nonce table and the grants (src/cas/nonces.c, grants.c):
 * per-client nonce limits, single use, expiry, and grants (rows of a store)
 * bounded per policy and in all, replaced, expired and deleted with their
 * policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Grants are rows of a store: one in a temporary directory, each test in one
 * write transaction (as a request's). */
static char g_dir[256];
static struct cas__store g_st;

static int grants_setup(void **state)
{
	struct kiln_err err = { 0 };

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/kiln-test-cas-grants-XXXXXX");
	if (!mkdtemp(g_dir) || cas__store_open(&g_st, g_dir, true, &err) < 0)
		return -1;
	return cas__db_begin(g_st.db) < 0 ? -1 : 0;
}

static int grants_teardown(void **state)
{
	char cmd[300];

	(void)state;
	cas__db_rollback(g_st.db);
	cas__store_close(&g_st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static bool allows(const uint8_t *spki, const char *vol, int64_t now)
{
	char session[160];
	int ret = cas__grant_allows(&g_st, spki, vol, now, session);

	assert_true(ret >= 0);
	return ret == 1;
}

static int64_t grants_of(const char *session, int64_t now)
{
	int64_t n = -1;

	assert_int_equal(cas__grants_of(&g_st, session, now, &n), 0);
	return n;
}

static void test_grant_flood_against_one_policy_spares_the_others(void **state)
{
	struct cas__grant_limits g;
	char vol[1][33] = { "0123456789abcdef0123456789abcdef" };
	char other[1][33] = { "fedcba9876543210fedcba9876543210" };
	uint8_t spki[KC_SHA256_SIZE];
	char session[160];
	bool evicted;

	(void)state;
	cas__grant_limits_init(&g);
	g.max_per_policy = 8;
	key(spki, 1000);
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "honest/db", other, 1, 0, &evicted), 0);
	assert_false(evicted);
	for (unsigned i = 0; i < 100; i++) {
		key(spki, i);
		/* one grant per nanosecond: the eviction order is creation */
		assert_int_equal(cas__grant_put(&g_st, &g, spki, "mallory/sim", vol, 1, 1 + i,
						&evicted), 0);
		assert_int_equal(evicted, i >= 8);
	}
	assert_int_equal(grants_of("mallory/sim", 200), 8);
	/* the flooder's oldest grants went; its newest hold */
	key(spki, 91);
	assert_false(allows(spki, vol[0], 200));
	key(spki, 92);
	assert_true(allows(spki, vol[0], 200));
	key(spki, 99);
	assert_int_equal(cas__grant_allows(&g_st, spki, vol[0], 200, session), 1);
	assert_string_equal(session, "mallory/sim");
	assert_false(allows(spki, other[0], 200));
	/* the other policy's grant is untouched */
	key(spki, 1000);
	assert_true(allows(spki, other[0], 200));
	assert_int_equal(grants_of("honest/db", 200), 1);
	/* its policy deleted, the grant is gone */
	assert_int_equal(cas__policy_delete(&g_st, "honest/db"), 0);
	assert_false(allows(spki, other[0], 200));
	assert_int_equal(grants_of("mallory/sim", 200), 8);
}

static void test_grant_replaced_expired_and_full(void **state)
{
	struct cas__grant_limits g;
	char vol[2][33] = { "0123456789abcdef0123456789abcdef",
			    "11111111111111111111111111111111" };
	uint8_t spki[KC_SHA256_SIZE];
	int64_t ttl;
	bool evicted;

	(void)state;
	cas__grant_limits_init(&g);
	ttl = g.ttl_ns;
	assert_int_equal(ttl, (int64_t)CAS_GRANT_TTL_S * (int64_t)SEC);
	g.max_per_policy = 1;
	key(spki, 1);
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "a", vol, 2, 0, &evicted), 0);
	assert_true(allows(spki, vol[0], 1) && allows(spki, vol[1], 1));
	/* the same key attests again (another service): one grant, the new one */
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "b", vol + 1, 1, 0, &evicted), 0);
	assert_false(evicted);
	assert_int_equal(grants_of("a", 1), 0);
	assert_false(allows(spki, vol[0], 1));
	assert_true(allows(spki, vol[1], 1));
	/* a volume id is matched whole, never as a prefix */
	assert_false(allows(spki, "1111111111111111", 1));
	assert_false(allows(spki, "", 1));
	/* per-policy limit 1: a second key evicts the first (the policy survives) */
	key(spki, 2);
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "b", vol + 1, 1, 1, &evicted), 0);
	assert_true(evicted);
	assert_int_equal(grants_of("b", 1), 1);
	/* full: a new key is refused, the key that holds a grant is not */
	g.max_total = 1;
	key(spki, 3);
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "c", vol, 1, 2, &evicted),
			 -ENOSPC);
	key(spki, 2);
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "b", vol + 1, 1, 2, &evicted), 0);
	/* expiry is enforced at use, the row there or not */
	assert_true(allows(spki, vol[1], 1 + ttl));
	assert_false(allows(spki, vol[1], 2 + ttl));
	assert_int_equal(grants_of("b", 2 + ttl), 0);
	/* and an expired grant frees the table for a new key */
	key(spki, 3);
	assert_int_equal(cas__grant_put(&g_st, &g, spki, "c", vol, 1, 2 + ttl, &evicted), 0);
	assert_int_equal(grants_of("b", 0), 0); /* swept: the row is gone */
	assert_true(allows(spki, vol[0], 3 + ttl));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonce_single_use_and_expiry),
		cmocka_unit_test(test_nonce_flood_from_one_address_leaves_others_served),
		cmocka_unit_test(test_nonce_limit_per_certificate_and_in_total),
		cmocka_unit_test(test_client_key_groups_ipv6_by_64),
		cmocka_unit_test_setup_teardown(test_grant_flood_against_one_policy_spares_the_others,
						grants_setup, grants_teardown),
		cmocka_unit_test_setup_teardown(test_grant_replaced_expired_and_full,
						grants_setup, grants_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
