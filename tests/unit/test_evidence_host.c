/* Unit tests for the "host" evidence verifier (src/evidence/host_verify.c)
 * with evidence signed by kiln-las's own code (las_evidence_make): good
 * evidence and its claims, an untrusted or tampered signer, clock skew,
 * malformed evidence, and the supervised_by claim of static programs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "evidence/internal.h"
#include "las/las.h"

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* ---- host ---- */

struct host_fixture {
	char dir[64], key1[96], key2[96];
	struct las_identity *id1, *id2;
	struct las_statement st;
	char *ev;
	size_t ev_size;
};

static int host_setup(void **state)
{
	struct host_fixture *f = calloc(1, sizeof(*f));
	struct kiln_err err = { 0 };

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/kiln-attest-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->key1, sizeof(f->key1), "%s/a/las.key", f->dir);
	snprintf(f->key2, sizeof(f->key2), "%s/b.key", f->dir);
	if (las_identity_create(f->key1, &f->id1, &err) < 0 ||
	    las_identity_create(f->key2, &f->id2, &err) < 0)
		return -1;
	f->st.pid = 1234;
	f->st.uid = 1000;
	f->st.exe = "/usr/bin/app \"quoted\"";
	fill(f->st.exe_sha256, 32, 3);
	fill(f->st.workload_measurement, 48, 4);
	fill(f->st.report_data, 64, 5);
	f->st.time = 1700000000;
	if (las_evidence_make(f->id1, &f->st, &f->ev, &f->ev_size, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int host_teardown(void **state)
{
	struct host_fixture *f = *state;
	char cmd[128];

	las_identity_free(f->id1);
	las_identity_free(f->id2);
	free(f->ev);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static int host_verify(struct host_fixture *f, const char *ev, size_t size, time_t at,
		       const struct las_identity *trusted, json_t **claims,
		       struct kiln_err *err)
{
	const char *certs[1] = { trusted ? las_identity_cert_pem(trusted) : NULL };
	struct ev_verify_opts opts = { .at = at, .certs_pem = certs, .n_certs = trusted ? 1 : 0 };

	return ev_backend_find("host")->verify((const uint8_t *)ev, size, &opts, claims, err);
}

static void test_host_good(void **state)
{
	struct host_fixture *f = *state;
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	char wm_hex[97], rd_hex[129];
	struct las_identity *again = NULL;

	assert_false(ev_backend_find("host")->insecure);
	assert_int_equal(host_verify(f, f->ev, f->ev_size, f->st.time + 299, f->id1, &claims,
				     &err), 0);
	kiln_hex_encode(f->st.workload_measurement, 48, wm_hex);
	kiln_hex_encode(f->st.report_data, 64, rd_hex);
	assert_string_equal(json_string_value(json_object_get(claims, "tee")), "host");
	assert_true(json_is_false(json_object_get(claims, "insecure")));
	assert_true(json_is_false(json_object_get(claims, "debug")));
	assert_string_equal(json_string_value(json_object_get(claims, "workload_measurement")),
			    wm_hex);
	assert_string_equal(json_string_value(json_object_get(claims, "report_data")), rd_hex);
	assert_string_equal(json_string_value(json_object_get(claims, "platform_measurement")),
			    las_identity_id(f->id1));
	assert_string_equal(json_string_value(json_object_get(claims, "exe")), f->st.exe);
	assert_int_equal(json_integer_value(json_object_get(claims, "pid")), 1234);
	json_decref(claims);
	/* Reloading the key file gives the same identity. */
	assert_int_equal(las_identity_load(f->key1, &again, &err), 0);
	assert_string_equal(las_identity_id(again), las_identity_id(f->id1));
	las_identity_free(again);
	assert_int_equal(las_identity_create(f->key1, &again, &err), -EEXIST);
}

static void test_host_untrusted(void **state)
{
	struct host_fixture *f = *state;
	struct kiln_err err = { 0 };
	json_t *claims = (json_t *)1;

	assert_int_equal(host_verify(f, f->ev, f->ev_size, f->st.time, f->id2, &claims, &err),
			 -KILN_EROOT);
	assert_null(claims);
	assert_non_null(strstr(err.msg, las_identity_id(f->id1)));
	assert_int_equal(host_verify(f, f->ev, f->ev_size, f->st.time, NULL, &claims, &err),
			 -KILN_EROOT);
}

/* Re-encode the evidence with a payload changed by edit(). */
static char *tamper(const char *ev, void (*edit)(uint8_t *, size_t))
{
	json_t *j = json_loads(ev, 0, NULL);
	uint8_t *payload = NULL;
	size_t size = 0;
	char *b64, *out;

	assert_non_null(j);
	assert_int_equal(kiln_b64_decode(json_string_value(json_object_get(j, "payload")),
					 &payload, &size), 0);
	edit(payload, size);
	b64 = kiln_b64_encode(payload, size);
	json_object_set_new(j, "payload", json_string(b64));
	out = json_dumps(j, JSON_COMPACT);
	free(b64);
	free(payload);
	json_decref(j);
	return out;
}

static void flip_pid(uint8_t *p, size_t n)
{
	char *s = strstr((char *)p, "\"pid\":1234");

	assert_non_null(s);
	s[7] = '9';
}

static void test_host_tampered(void **state)
{
	struct host_fixture *f = *state;
	struct kiln_err err = { 0 };
	json_t *claims = (json_t *)1;
	char *bad = tamper(f->ev, flip_pid);

	assert_int_equal(host_verify(f, bad, strlen(bad), f->st.time, f->id1, &claims, &err),
			 -KILN_ESIG);
	assert_null(claims);
	free(bad);
}

static void test_host_time_skew(void **state)
{
	struct host_fixture *f = *state;
	struct kiln_err err = { 0 };
	json_t *claims = (json_t *)1;

	assert_int_equal(host_verify(f, f->ev, f->ev_size, f->st.time + 301, f->id1, &claims,
				     &err), -KILN_EEXPIRED);
	assert_null(claims);
	assert_int_equal(host_verify(f, f->ev, f->ev_size, f->st.time - 301, f->id1, &claims,
				     &err), -KILN_EEXPIRED);
	/* at = 0 means now: evidence from 2023 is stale. */
	assert_int_equal(host_verify(f, f->ev, f->ev_size, 0, f->id1, &claims, &err),
			 -KILN_EEXPIRED);
}

static void test_host_malformed(void **state)
{
	struct host_fixture *f = *state;
	struct kiln_err err = { 0 };
	json_t *claims = NULL, *j;
	char *bad;

	/* Unknown outer key. */
	j = json_loads(f->ev, 0, NULL);
	json_object_set_new(j, "extra", json_true());
	bad = json_dumps(j, JSON_COMPACT);
	assert_int_equal(host_verify(f, bad, strlen(bad), f->st.time, f->id1, &claims, &err),
			 -KILN_EFORMAT);
	free(bad);
	json_object_del(j, "extra");
	json_object_set_new(j, "format", json_string("kiln-las-v2"));
	bad = json_dumps(j, JSON_COMPACT);
	assert_int_equal(host_verify(f, bad, strlen(bad), f->st.time, f->id1, &claims, &err),
			 -KILN_EFORMAT);
	free(bad);
	json_object_set_new(j, "format", json_string("kiln-las-v1"));
	json_object_set_new(j, "cert", json_string("not a certificate"));
	bad = json_dumps(j, JSON_COMPACT);
	assert_int_equal(host_verify(f, bad, strlen(bad), f->st.time, f->id1, &claims, &err),
			 -KILN_EFORMAT);
	free(bad);
	json_decref(j);
	/* Truncated and trailing bytes. */
	assert_int_equal(host_verify(f, f->ev, f->ev_size - 1, f->st.time, f->id1, &claims, &err),
			 -KILN_EFORMAT);
	bad = malloc(f->ev_size + 3);
	memcpy(bad, f->ev, f->ev_size);
	memcpy(bad + f->ev_size, " {}", 3);
	assert_int_equal(host_verify(f, bad, f->ev_size + 3, f->st.time, f->id1, &claims, &err),
			 -KILN_EFORMAT);
	free(bad);
}

static void test_host_supervised_by(void **state)
{
	struct host_fixture *f = *state;
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	char sup[65], *ev = NULL;
	size_t size = 0;

	/* Plain evidence has no supervised_by claim. */
	assert_int_equal(host_verify(f, f->ev, f->ev_size, f->st.time, f->id1, &claims, &err), 0);
	assert_null(json_object_get(claims, "supervised_by"));
	json_decref(claims);
	memset(sup, 'a', 64);
	sup[64] = '\0';
	f->st.supervised_by = sup;
	assert_int_equal(las_evidence_make(f->id1, &f->st, &ev, &size, &err), 0);
	assert_int_equal(host_verify(f, ev, size, f->st.time, f->id1, &claims, &err), 0);
	assert_string_equal(json_string_value(json_object_get(claims, "supervised_by")), sup);
	json_decref(claims);
	free(ev);
	/* Not a SHA-256: refused, and the signature covers it (any change to the
	 * payload breaks it, see test_host_tampered). */
	sup[63] = '\0';
	assert_int_equal(las_evidence_make(f->id1, &f->st, &ev, &size, &err), 0);
	assert_int_equal(host_verify(f, ev, size, f->st.time, f->id1, &claims, &err),
			 -KILN_EFORMAT);
	assert_null(claims);
	assert_non_null(strstr(err.msg, "supervised_by"));
	free(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_good, host_setup, host_teardown),
		cmocka_unit_test_setup_teardown(test_host_untrusted, host_setup, host_teardown),
		cmocka_unit_test_setup_teardown(test_host_tampered, host_setup, host_teardown),
		cmocka_unit_test_setup_teardown(test_host_time_skew, host_setup, host_teardown),
		cmocka_unit_test_setup_teardown(test_host_malformed, host_setup, host_teardown),
		cmocka_unit_test_setup_teardown(test_host_supervised_by, host_setup, host_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
