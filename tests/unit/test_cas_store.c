/* Unit tests for src/cas: data directory and store (master key handling,
 * encrypted secrets with record-bound AAD, volumes), audit chain and
 * identities. (The CAS client is tested in test_casclient.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas/internal.h"

static char g_dir[256];

static int setup(void **state)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/kiln-test-cas-XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", g_dir, name);
}

static void test_store_create_and_master_key(void **state)
{
	struct cas__store st;
	struct kiln_err err = { 0 };
	char p[300], data[300];
	struct stat sb;
	uint8_t zeros[32] = { 0 };
	uint8_t *good;
	size_t good_size;

	path(data, sizeof(data), "d");
	assert_int_equal(cas__store_open(&st, data, /*create=*/false, &err), -ENOENT);
	assert_int_equal(cas__store_open(&st, data, /*create=*/true, &err), 0);
	cas__store_close(&st);
	path(p, sizeof(p), "d/master.key");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 32);
	assert_int_equal(kiln_read_file(p, 64, &good, &good_size), 0);
	/* Reopen: same key, same store. */
	assert_int_equal(cas__store_open(&st, data, false, &err), 0);
	cas__store_close(&st);
	/* Missing key with an existing store: refused, never regenerated. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(cas__store_open(&st, data, true, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "master.key is missing but the store"));
	assert_int_not_equal(access(p, F_OK), 0);
	/* Damaged and foreign keys. */
	assert_int_equal(kiln_write_file_atomic(p, good, 10, 0600), 0);
	assert_int_equal(cas__store_open(&st, data, true, &err), -KILN_ECORRUPT);
	assert_non_null(strstr(err.msg, "is corrupt: 10 bytes, expected 32"));
	assert_int_equal(kiln_write_file_atomic(p, zeros, 32, 0600), 0);
	assert_int_equal(cas__store_open(&st, data, true, &err), -KILN_EKEY);
	assert_non_null(strstr(err.msg, "does not belong to the store"));
	assert_int_equal(kiln_write_file_atomic(p, good, good_size, 0600), 0);
	assert_int_equal(cas__store_open(&st, data, true, &err), 0);
	cas__store_close(&st);
	kiln_free_secret(good, good_size);
}

static void test_secrets_encrypted_and_bound(void **state)
{
	struct cas__store st;
	struct kiln_err err = { 0 };
	char data[300], p[300];
	char *spec = NULL;
	uint8_t *v = NULL, *db;
	size_t size = 0, db_size;
	static const char secret[] = "correct horse battery staple";

	path(data, sizeof(data), "s");
	assert_int_equal(cas__store_open(&st, data, true, &err), 0);
	assert_int_equal(cas__secret_get(&st, "a/b", "pw", &spec, &v, &size), -ENOENT);
	assert_int_equal(cas__secret_put(&st, "a/b", "pw", "{}", (const uint8_t *)secret,
				       sizeof(secret) - 1), 0);
	assert_int_equal(cas__secret_get(&st, "a/b", "pw", &spec, &v, &size), 0);
	assert_int_equal(size, sizeof(secret) - 1);
	assert_memory_equal(v, secret, size);
	assert_string_equal(spec, "{}");
	free(spec);
	kiln_free_secret(v, size);
	/* A ciphertext moved to another record does not open (AAD = record). */
	assert_int_equal(cas__db_exec(st.db, "INSERT INTO secrets(session, name, spec, value) "
				      "SELECT 'a/b', 'other', spec, value FROM secrets"), 0);
	assert_int_equal(cas__secret_get(&st, "a/b", "other", &spec, &v, &size), -KILN_EAUTH);
	assert_null(v);
	assert_int_equal(cas__db_exec(st.db, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
	cas__store_close(&st);
	path(p, sizeof(p), "s/kiln.db");
	assert_int_equal(kiln_read_file(p, 1 << 24, &db, &db_size), 0);
	assert_null(memmem(db, db_size, secret, sizeof(secret) - 1));
	free(db);
}

static void test_volumes(void **state)
{
	struct cas__store st;
	struct kiln_err err = { 0 };
	struct cas__volume a, b, c;
	char data[300];

	path(data, sizeof(data), "v");
	assert_int_equal(cas__store_open(&st, data, true, &err), 0);
	assert_int_equal(cas__volume_get_or_create(&st, "s", "data", &a), 0);
	assert_int_equal(strlen(a.id), 32);
	assert_int_equal(a.committed, 0);
	assert_int_equal(a.prepared, -1);
	assert_int_equal(cas__volume_get_or_create(&st, "s", "data", &b), 0);
	assert_string_equal(a.id, b.id);
	assert_memory_equal(a.key, b.key, sizeof(a.key));
	assert_int_equal(cas__volume_get_or_create(&st, "s", "logs", &c), 0);
	assert_string_not_equal(a.id, c.id);
	assert_int_equal(cas__volume_set_tags(&st, a.id, 3, 4), 0);
	assert_int_equal(cas__volume_by_id(&st, a.id, &b), 0);
	assert_int_equal(b.committed, 3);
	assert_int_equal(b.prepared, 4);
	assert_int_equal(cas__volume_set_tags(&st, "00000000000000000000000000000000", 1, -1),
			 -EIO);
	assert_int_equal(cas__volume_by_id(&st, "00000000000000000000000000000000", &b), -ENOENT);
	cas__store_close(&st);
}

static void test_audit_chain(void **state)
{
	struct cas__store st;
	struct kiln_err err = { 0 };
	char data[300];
	size_t count = 0;

	path(data, sizeof(data), "a");
	assert_int_equal(cas__store_open(&st, data, true, &err), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(cas__audit_append(&st, "policy.create", "sha256:00", "x",
						 json_pack("{s:i}", "i", i)), 0);
	assert_int_equal(cas__audit_append(&st, "k", "a", "s", NULL), -ENOMEM);
	cas__store_close(&st);
	assert_int_equal(cas_audit_verify(data, &count, &err), 0);
	assert_int_equal(count, 3);
	assert_int_equal(cas__store_open(&st, data, false, &err), 0);
	assert_int_equal(cas__db_exec(st.db, "UPDATE audit SET subject = 'y' WHERE seq = 2"), 0);
	cas__store_close(&st);
	assert_int_equal(cas_audit_verify(data, &count, &err), -KILN_ECORRUPT);
	assert_string_equal(err.msg, "audit entry 2: content does not match its hash (edited)");
}

static void test_identity(void **state)
{
	struct kiln_err err = { 0 };
	char p[300], id[CAS_ID_SIZE], id2[CAS_ID_SIZE];
	EVP_PKEY *key;
	X509 *cert;

	path(p, sizeof(p), "id.pem");
	assert_int_equal(cas_identity_create(p, NULL, NULL, id, &err), 0);
	assert_int_equal(strlen(id), 71);
	assert_int_equal(cas_identity_create(p, NULL, NULL, id2, &err), -EEXIST);
	assert_int_equal(cas_identity_create(p, "rsa", NULL, id2, &err), -EINVAL);
	assert_int_equal(cas_identity_load(p, &key, &cert, &err), 0);
	assert_int_equal(cas_key_id(key, id2), 0);
	assert_string_equal(id, id2);
	EVP_PKEY_free(key);
	X509_free(cert);
	path(p, sizeof(p), "missing.pem");
	assert_int_equal(cas_identity_load(p, &key, &cert, &err), -ENOENT);
	assert_null(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_create_and_master_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_encrypted_and_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
