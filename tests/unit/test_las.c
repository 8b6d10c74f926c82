/* Unit tests for src/las: the kiln-las request parser (its signing is tested
 * with the host verifier in test_evidence_host.c, the daemon end to end in
 * tests/e2e/test_las.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "las/las.h"

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void test_las_request_parse(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{}", "not json",
		"{\"report_data\": 5}",
		"{\"report_data\": \"00\"}",
		"{\"static_exe\": true}",
		"{\"report_data\": \"%s\", \"static_exe\": false}",
		"{\"report_data\": \"%s\", \"static_exe\": 1}",
		"{\"report_data\": \"%s\", \"static_exe\": \"true\"}",
		"{\"report_data\": \"%s\", \"static_exe\": null}",
		"{\"report_data\": \"%s\", \"other\": true}",
		"{\"report_data\": \"%s\", \"static_exe\": true, \"x\": 1}",
		"{\"report_data\": \"%s\", \"static_exe\": true, \"static_exe\": true}",
		"{\"report_data\": \"%s\", \"report_data\": \"%s\"}",
	};
	struct las_request req;
	uint8_t rd[64];
	char hex[129], upper[129], line[512];
	const char *why = NULL;

	fill(rd, sizeof(rd), 9);
	kiln_hex_encode(rd, sizeof(rd), hex);
	snprintf(line, sizeof(line), "{\"report_data\": \"%s\"}", hex);
	assert_int_equal(las_request_parse(line, &req, &why), 0);
	assert_memory_equal(req.report_data, rd, 64);
	assert_false(req.static_exe);
	snprintf(line, sizeof(line), "{\"static_exe\": true, \"report_data\": \"%s\"}", hex);
	assert_int_equal(las_request_parse(line, &req, &why), 0);
	assert_memory_equal(req.report_data, rd, 64);
	assert_true(req.static_exe);
	for (size_t i = 0; i < KILN_ARRAY_SIZE(bad); i++) {
		why = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(line, sizeof(line), bad[i], hex, hex);
#pragma GCC diagnostic pop
		assert_int_equal(las_request_parse(line, &req, &why), -KILN_EFORMAT);
		assert_non_null(why);
		assert_false(req.static_exe);
	}
	for (size_t i = 0; i < 128; i++)
		upper[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
	upper[128] = '\0';
	snprintf(line, sizeof(line), "{\"report_data\": \"%s\", \"static_exe\": true}", upper);
	assert_int_equal(las_request_parse(line, &req, &why), -KILN_EFORMAT);
	assert_string_equal(why, "report_data must be lowercase hex");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_las_request_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
