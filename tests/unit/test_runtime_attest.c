/* Unit tests for the attestation parts of src/runtime that are pure: the JSON
 * reader of the CAS answers (json.c) and the attestation lines of the launcher
 * configuration (las-socket, host-env, volume-dir, kiln). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

static struct rt_json *parse_ok(const char *text)
{
	struct rt_json *j = NULL;

	assert_int_equal(rt_json_parse(text, strlen(text), &j), 0);
	assert_non_null(j);
	return j;
}

static void test_json_answer(void **state)
{
	struct rt_json *j = parse_ok(
		" {\"argv\": [\"/bin/x\", \"a b\"], \"env\": {\"K\": \"v\\\"\\\\\\n\\u00e9\\ud83d\\ude00\"},"
		" \"pwd\": \"/\", \"insecure\": true, \"tag\": {\"committed\": 7, \"prepared\": null},"
		" \"big\": 123456789012345678901234567890, \"f\": -1.5e3, \"e\": [], \"o\": {}} ");
	const struct rt_json *argv = rt_json_get(j, "argv"), *env = rt_json_get(j, "env");
	const struct rt_json *tag = rt_json_get(j, "tag");

	assert_int_equal(j->type, RT_JSON_OBJECT);
	assert_int_equal(argv->type, RT_JSON_ARRAY);
	assert_int_equal(argv->n, 2);
	assert_string_equal(rt_json_str(argv->items[1]), "a b");
	assert_string_equal(rt_json_str(rt_json_get(env, "K")), "v\"\\\n\xc3\xa9\xf0\x9f\x98\x80");
	assert_true(rt_json_get(j, "insecure")->boolean);
	assert_int_equal(rt_json_get(tag, "committed")->num, 7);
	assert_true(rt_json_get(tag, "committed")->is_int);
	assert_int_equal(rt_json_get(tag, "prepared")->type, RT_JSON_NULL);
	assert_false(rt_json_get(j, "big")->is_int);
	assert_false(rt_json_get(j, "f")->is_int);
	assert_int_equal(rt_json_get(j, "e")->n, 0);
	assert_null(rt_json_get(j, "missing"));
	assert_null(rt_json_get(argv, "argv"));      /* not an object */
	assert_null(rt_json_str(rt_json_get(j, "tag")));  /* not a string */
	rt_json_free(j);
}

static void test_json_rejects(void **state)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "\"abc", "\"a\\x\"",
		"\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\u0000\"", "\"a\nb\"", "01", "1.",
		"1e", "-", "tru", "nul", "{\"a\":1,\"a\":2}", "[1] [2]", "{} x",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	struct rt_json *j = (void *)1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(rt_json_parse(bad[i], strlen(bad[i]), &j), -KILN_EFORMAT);
		assert_null(j);
	}
	/* Embedded NUL bytes end nothing: the size is what counts. */
	assert_int_equal(rt_json_parse("\"a\0b\"", 5, &j), -KILN_EFORMAT);
}

static void test_json_quote(void **state)
{
	char *q = NULL;
	struct rt_json *j;

	assert_int_equal(rt_json_quote("a\"b\\c\n\x01/é", &q), 0);
	assert_string_equal(q, "\"a\\\"b\\\\c\\u000a\\u0001/é\"");
	j = parse_ok(q);
	assert_string_equal(rt_json_str(j), "a\"b\\c\n\x01/é");
	rt_json_free(j);
	free(q);
}

static const char g_text[] =
	"kiln-runtime-config-v1\n"
	"sud on\n"
	"cas https://127.0.0.1:8081\n"
	"session acme/db\n"
	"service db\n"
	"tee host\n"
	"cas-fingerprint 0123456789abcdef\n"
	"las-socket /run/kiln/las.sock\n"
	"kiln /usr/local/bin/kiln\n"
	"host-env PORT\n"
	"host-env HOSTNAME\n"
	"volume-dir data /srv/vol with space\n"
	"end\n";

static void test_config_attest_lines(void **state)
{
	struct rt_config *c = calloc(1, sizeof(*c)), *d = calloc(1, sizeof(*d));
	struct kiln_err err = { 0 };
	char *text = NULL;
	size_t size = 0;

	assert_int_equal(rt_config_parse(g_text, strlen(g_text), c, &err), 0);
	assert_string_equal(c->las_socket, "/run/kiln/las.sock");
	assert_int_equal(c->n_host_env, 2);
	assert_string_equal(c->host_env[0], "PORT");
	assert_string_equal(c->host_env[1], "HOSTNAME");
	assert_int_equal(c->n_volume_dirs, 1);
	assert_string_equal(c->volume_dirs[0].name, "data");
	assert_string_equal(c->volume_dirs[0].dir, "/srv/vol with space");
	assert_int_equal(rt_config_serialize(c, &text, &size), 0);
	assert_int_equal(rt_config_parse(text, size, d, &err), 0);
	assert_string_equal(d->las_socket, c->las_socket);
	assert_string_equal(c->kiln, "/usr/local/bin/kiln");
	assert_string_equal(d->kiln, c->kiln);
	assert_int_equal(d->n_host_env, 2);
	assert_string_equal(d->host_env[1], "HOSTNAME");
	assert_int_equal(d->n_volume_dirs, 1);
	assert_string_equal(d->volume_dirs[0].dir, "/srv/vol with space");
	free(text);
	free(c);
	free(d);
}

static void test_config_attest_bad_lines(void **state)
{
	static const char *const bad[] = {
		"host-env \n", "host-env A=B\n", "host-env A B\n", "volume-dir data\n",
		"volume-dir data relative\n", "volume-dir  /x\n", "las-socket \n",
		"kiln \n",
	};
	struct rt_config *c = calloc(1, sizeof(*c));
	struct kiln_err err = { 0 };
	char text[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = snprintf(text, sizeof(text), "kiln-runtime-config-v1\n%send\n", bad[i]);

		assert_int_equal(rt_config_parse(text, (size_t)n, c, &err), -KILN_EFORMAT);
		assert_non_null(strstr(err.msg, "config line 2"));
	}
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_answer),
		cmocka_unit_test(test_json_rejects),
		cmocka_unit_test(test_json_quote),
		cmocka_unit_test(test_config_attest_lines),
		cmocka_unit_test(test_config_attest_bad_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
