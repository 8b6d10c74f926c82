/* Unit tests for the software attestation pieces of src/evidence: binding,
 * workload measurement, sim and host evidence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "evidence/evidence.h"

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* ---- binding ---- */

static void test_binding_vector(void **state)
{
	uint8_t spki[91], nonce[32], wm[48], out[64], expect[64];
	uint8_t cat[7 + sizeof(spki) + 32 + 48];

	fill(spki, sizeof(spki), 0x30);
	fill(nonce, sizeof(nonce), 0xa0);
	fill(wm, sizeof(wm), 0x11);
	/* Independent computation over the concatenation. */
	memcpy(cat, "kiln-v1", 7);
	memcpy(cat + 7, spki, sizeof(spki));
	memcpy(cat + 7 + sizeof(spki), nonce, 32);
	memcpy(cat + 7 + sizeof(spki) + 32, wm, 48);
	assert_int_equal(kc_sha512(cat, sizeof(cat), expect), 0);
	assert_int_equal(ev_binding(spki, sizeof(spki), nonce, wm, out), 0);
	assert_memory_equal(out, expect, 64);
	/* Every input matters. */
	nonce[0] ^= 1;
	assert_int_equal(ev_binding(spki, sizeof(spki), nonce, wm, out), 0);
	assert_memory_not_equal(out, expect, 64);
	assert_int_equal(ev_binding(NULL, 0, nonce, wm, out), -EINVAL);
}

/* ---- workload measurement ---- */

static void test_manifest_self(void **state)
{
	uint8_t wm1[48], wm2[48], check[48], exe_digest[32];
	char *m1 = NULL, *m2 = NULL, exe_line[80], *p;
	uint8_t *exe = NULL;
	size_t exe_size;
	struct kiln_err err = { 0 };
	const char *prev = NULL;
	int n_libs = 0;

	assert_int_equal(ev_workload_measure_pid(0, wm1, &m1, &err), 0);
	assert_int_equal(ev_workload_measure_pid(0, wm2, &m2, &err), 0);
	assert_memory_equal(wm1, wm2, 48);
	assert_string_equal(m1, m2);
	assert_int_equal(kc_sha384(m1, strlen(m1), check), 0);
	assert_memory_equal(check, wm1, 48);

	assert_int_equal(kiln_read_file("/proc/self/exe", 1 << 30, &exe, &exe_size), 0);
	assert_int_equal(kc_sha256(exe, exe_size, exe_digest), 0);
	strcpy(exe_line, "\nexe ");
	kiln_hex_encode(exe_digest, 32, exe_line + 5);
	strcat(exe_line, "\n");
	assert_true(strncmp(m1, "kiln-manifest-v1\nruntime kiln-" KILN_VERSION "\nexe ",
			    strlen("kiln-manifest-v1\nruntime kiln-" KILN_VERSION "\nexe ")) == 0);
	assert_non_null(strstr(m1, exe_line));
	/* lib lines: at least libc and the loader, sorted, unique, not the exe. */
	for (p = strstr(m1, "\nlib "); p; p = strstr(p + 1, "\nlib ")) {
		assert_int_equal(p[5 + 64], '\n');
		if (prev)
			assert_true(memcmp(prev, p + 5, 64) < 0);
		assert_false(memcmp(p + 5, exe_line + 5, 64) == 0);
		prev = p + 5;
		n_libs++;
	}
	assert_true(n_libs >= 2);
	assert_int_equal(m1[strlen(m1) - 1], '\n');
	free(exe);
	free(m1);
	free(m2);
}

static void test_manifest_other_pid(void **state)
{
	uint8_t self[48], child_wm[48];
	struct kiln_err err = { 0 };
	int pipefd[2], status;
	char c;
	pid_t pid;

	assert_int_equal(ev_workload_measure_pid(0, self, NULL, &err), 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pipefd[1]);
		/* Wait until the parent closes the pipe. */
		while (read(pipefd[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(pipefd[0]);
	/* Same executable, same mappings: same measurement. */
	assert_int_equal(ev_workload_measure_pid(pid, child_wm, NULL, &err), 0);
	assert_memory_equal(self, child_wm, 48);
	close(pipefd[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* The child is gone now. */
	assert_int_equal(ev_workload_measure_pid(pid, child_wm, NULL, &err), -ENOENT);
	assert_int_equal(ev_workload_measure_pid(-1, child_wm, NULL, &err), -EINVAL);
}

/* ---- sim ---- */

static void test_sim_round_trip(void **state)
{
	const struct ev_backend *sim = ev_backend_find("sim");
	uint8_t rd[64], wm[48], *ev = NULL;
	char rd_hex[129], wm_hex[97];
	size_t size;
	json_t *claims = NULL;
	struct kiln_err err = { 0 };

	assert_non_null(sim);
	assert_true(sim->insecure);
	fill(rd, sizeof(rd), 1);
	fill(wm, sizeof(wm), 2);
	assert_int_equal(ev_sim_produce(rd, wm, &ev, &size), 0);
	assert_int_equal(sim->verify(ev, size, NULL, &claims, &err), 0);
	kiln_hex_encode(rd, 64, rd_hex);
	kiln_hex_encode(wm, 48, wm_hex);
	assert_string_equal(json_string_value(json_object_get(claims, "tee")), "sim");
	assert_true(json_is_true(json_object_get(claims, "insecure")));
	assert_true(json_is_true(json_object_get(claims, "debug")));
	assert_string_equal(json_string_value(json_object_get(claims, "report_data")), rd_hex);
	assert_string_equal(json_string_value(json_object_get(claims, "workload_measurement")),
			    wm_hex);
	json_decref(claims);
	free(ev);

	/* The vtable produce measures the calling process. */
	assert_int_equal(sim->produce(rd, &ev, &size, &err), 0);
	assert_int_equal(sim->verify(ev, size, NULL, &claims, &err), 0);
	assert_int_equal(ev_workload_measure_pid(0, wm, NULL, &err), 0);
	kiln_hex_encode(wm, 48, wm_hex);
	assert_string_equal(json_string_value(json_object_get(claims, "workload_measurement")),
			    wm_hex);
	json_decref(claims);
	free(ev);
}

/* The table of malformed variants uses printf formats on purpose. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void test_sim_malformed(void **state)
{
	const struct ev_backend *sim = ev_backend_find("sim");
	char rd[129], wm[97], buf[1024];
	json_t *claims = (json_t *)1;
	struct kiln_err err = { 0 };
	const char *const fmts[] = {
		"",
		"[]",
		"{\"tee\": \"sim\", \"report_data\": \"%s\"}",                       /* missing */
		"{\"tee\": \"sgx\", \"report_data\": \"%s\", \"workload_measurement\": \"%s\"}",
		"{\"tee\": \"sim\", \"report_data\": \"%s\", \"workload_measurement\": \"%s\", "
		"\"x\": 1}",                                                          /* unknown */
		"{\"tee\": \"sim\", \"report_data\": \"%s00\", \"workload_measurement\": \"%s\"}",
		"{\"tee\": \"sim\", \"report_data\": \"%s\", \"workload_measurement\": \"%.94s\"}",
		"{\"tee\": \"sim\", \"report_data\": \"%s\", \"workload_measurement\": \"%s\"} x",
		"{\"tee\": \"sim\", \"tee\": \"sim\", \"report_data\": \"%s\", "
		"\"workload_measurement\": \"%s\"}",                                  /* duplicate */
		"{\"tee\": 1, \"report_data\": \"%s\", \"workload_measurement\": \"%s\"}",
		"{\"tee\": \"sim\", \"report_data\": \"%s\", \"workload_measurement\": 5%.0s}",
	};

	memset(rd, 'a', 128);
	rd[128] = '\0';
	memset(wm, '0', 96);
	wm[96] = '\0';
	for (size_t i = 0; i < KILN_ARRAY_SIZE(fmts); i++) {
		snprintf(buf, sizeof(buf), fmts[i], rd, wm);
		claims = (json_t *)1;
		assert_int_equal(sim->verify((const uint8_t *)buf, strlen(buf), NULL, &claims,
					     &err), -KILN_EFORMAT);
		assert_null(claims);
	}
	/* Uppercase hex is not canonical. */
	rd[0] = 'A';
	snprintf(buf, sizeof(buf), "{\"tee\": \"sim\", \"report_data\": \"%s\", "
		 "\"workload_measurement\": \"%s\"}", rd, wm);
	assert_int_equal(sim->verify((const uint8_t *)buf, strlen(buf), NULL, &claims, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "report_data"));
	/* Embedded NUL. */
	assert_int_equal(sim->verify((const uint8_t *)"{\"tee\":\"s\0m\"}", 14, NULL, &claims,
				     &err), -KILN_EFORMAT);
	rd[0] = 'a';
	snprintf(buf, sizeof(buf), "{\"tee\": \"sim\", \"report_data\": \"%s\", "
		 "\"workload_measurement\": \"%s\"}", rd, wm);
	assert_int_equal(sim->verify((const uint8_t *)buf, strlen(buf), NULL, &claims, &err), 0);
	json_decref(claims);
}
#pragma GCC diagnostic pop

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binding_vector),
		cmocka_unit_test(test_manifest_self),
		cmocka_unit_test(test_manifest_other_pid),
		cmocka_unit_test(test_sim_round_trip),
		cmocka_unit_test(test_sim_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
