/* Unit tests for src/evidence's software pieces: the binding, the workload
 * measurement (processes, /proc/PID/maps lines, static programs) and sim
 * evidence. The host verifier: test_evidence_host.c; SNP, configfs-tsm and
 * DCAP: test_evidence_snp.c, test_evidence_tsm.c, test_evidence_dcap.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "evidence/internal.h"

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

/* Map size bytes of fd (-1: anonymous) executable with flags, measure this
 * process, unmap; the measurement's result. */
static int measure_with(int fd, int flags, uint8_t out[48], struct kiln_err *err)
{
	void *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, flags, fd, 0);
	int ret;

	assert_true(m != MAP_FAILED);
	ret = ev_workload_measure_pid(0, out, NULL, err);
	munmap(m, 4096);
	return ret;
}

static void test_manifest_mappings(void **state)
{
	uint8_t before[48], after[48];
	struct kiln_err err = { 0 };
	char path[] = "/tmp/kiln-attest-map-XXXXXX", name[64];
	void *m;
	int fd;

	assert_int_equal(ev_workload_measure_pid(0, before, NULL, &err), 0);
	/* An executable memfd holds code no file on disk does: refused, named. */
	fd = memfd_create("kiln-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	assert_int_equal(measure_with(fd, MAP_PRIVATE, after, &err), -KILN_EUNMEASURED);
	assert_non_null(strstr(err.msg, "'/memfd:kiln-test (deleted)' (a memfd"));
	assert_non_null(strstr(err.msg, "cannot be measured: refused"));
	close(fd);
	/* Anonymous and shared anonymous executable memory: refused. */
	assert_int_equal(measure_with(-1, MAP_PRIVATE | MAP_ANONYMOUS, after, &err),
			 -KILN_EUNMEASURED);
	assert_non_null(strstr(err.msg, "(anonymous memory: code made or loaded at run time) "
				"cannot be measured: refused"));
	assert_int_equal(measure_with(-1, MAP_SHARED | MAP_ANONYMOUS, after, &err),
			 -KILN_EUNMEASURED);
	assert_non_null(strstr(err.msg, "'/dev/zero (deleted)' (shared anonymous memory)"));
	/* Unmapped again: the value is back. */
	assert_int_equal(ev_workload_measure_pid(0, after, NULL, &err), 0);
	assert_memory_equal(before, after, 48);

	/* An executable mapping of another file changes the value ... */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) { /* /tmp mounted noexec */
		close(fd);
		unlink(path);
		skip();
	}
	assert_int_equal(ev_workload_measure_pid(0, after, NULL, &err), 0);
	assert_memory_not_equal(before, after, 48);
	/* ... and once deleted it cannot be measured: refused, naming it. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ev_workload_measure_pid(0, after, NULL, &err), -KILN_EUNMEASURED);
	snprintf(name, sizeof(name), "'%s (deleted)' (a deleted file", path);
	assert_non_null(strstr(err.msg, name));
	munmap(m, 4096);
	close(fd);
	assert_int_equal(ev_workload_measure_pid(0, after, NULL, &err), 0);
	assert_memory_equal(before, after, 48);
}

/* In a child (the change cannot be undone): one byte of libc's code written
 * with its own value through /proc/self/mem, as a debugger or an injected
 * constructor would; the page is a private copy now and the measurement
 * refuses, naming libc and the page. */
static void test_manifest_written_code(void **state)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct kiln_err err = { 0 };
		uint8_t wm[48];
		off_t at = (off_t)(uintptr_t)&getppid;
		int mem = open("/proc/self/mem", O_RDWR);
		unsigned char c;

		if (ev_workload_measure_pid(0, wm, NULL, &err) != 0)
			_exit(10);
		if (mem < 0 || pread(mem, &c, 1, at) != 1 || pwrite(mem, &c, 1, at) != 1)
			_exit(11);
		if (ev_workload_measure_pid(0, wm, NULL, &err) != -KILN_EUNMEASURED)
			_exit(12);
		if (!strstr(err.msg, "libc.so.6' (its page at ") ||
		    !strstr(err.msg, "was written after it was mapped) cannot be measured"))
			_exit(13);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A process with a tracer is refused, naming the tracer. */
static void test_manifest_traced(void **state)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct kiln_err err = { 0 };
		char want[64];
		uint8_t wm[48];

		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
			_exit(10);
		if (ev_workload_measure_pid(0, wm, NULL, &err) != -KILN_EUNMEASURED)
			_exit(11);
		snprintf(want, sizeof(want), "traced (ptrace) by pid %d", (int)getppid());
		_exit(strstr(err.msg, want) ? 0 : 12);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The classification of /proc/PID/maps lines, including names a process can
 * choose and lines that are not maps lines at all. */
static void test_maps_classify(void **state)
{
	static const struct {
		const char *line;
		int kind;
		const char *why; /* substring of m.why, or of err for errors */
	} cases[] = {
		{ "7f00-7f10 r-xp 00000000 08:01 1234    /usr/lib/libc.so.6", EV__MAP_FILE, NULL },
		{ "7f00-7f10 r--p 00000000 08:01 1234    /usr/lib/libc.so.6", EV__MAP_DATA, NULL },
		{ "7f00-7f10 rw-p 00000000 00:00 0 ", EV__MAP_DATA, NULL },
		{ "7f00-7f10 rwxp 00000000 00:00 0 ", EV__MAP_REFUSED, "anonymous memory" },
		{ "7f00-7f10 r-xp 00000000 00:00 0", EV__MAP_REFUSED, "anonymous memory" },
		{ "7f00-7f10 r-xp 00000000 00:00 0   [vdso]", EV__MAP_KERNEL, NULL },
		{ "ff600000-ff601000 --xp 00000000 00:00 0  [vsyscall]", EV__MAP_KERNEL, NULL },
		{ "7f00-7f10 r-xp 00000000 00:00 0   [anon:vdso]", EV__MAP_REFUSED, "named by" },
		{ "7f00-7f10 r-xp 00000000 00:00 0   [anon_shmem:x]", EV__MAP_REFUSED, "named by" },
		{ "7f00-7f10 rwxp 00000000 00:00 0   [heap]", EV__MAP_REFUSED, "heap or stack" },
		{ "7f00-7f10 rwxp 00000000 00:00 0   [stack]", EV__MAP_REFUSED, "heap or stack" },
		{ "7f00-7f10 r-xp 00000000 00:00 0   [vdso] ", EV__MAP_REFUSED, "not a file" },
		{ "7f00-7f10 r-xp 00000000 00:00 0   [uprobes]", EV__MAP_REFUSED, "not a file" },
		{ "7f00-7f10 r-xp 00000000 00:0e 77  anon_inode:[x]", EV__MAP_REFUSED, "not a file" },
		{ "7f00-7f10 r-xp 00000000 00:01 9   /memfd:evil (deleted)", EV__MAP_REFUSED,
		  "a memfd" },
		{ "7f00-7f10 r-xp 00000000 00:01 9   /memfd:x", EV__MAP_REFUSED, "a memfd" },
		{ "7f00-7f10 r-xs 00000000 00:01 9   /dev/zero (deleted)", EV__MAP_REFUSED,
		  "shared anonymous" },
		{ "7f00-7f10 r-xs 00000000 00:01 9   /SYSV00000000 (deleted)", EV__MAP_REFUSED,
		  "SysV" },
		{ "7f00-7f10 r-xp 00000000 08:01 9   /tmp/x.so (deleted)", EV__MAP_REFUSED,
		  "a deleted file" },
		{ "7f00-7f10 r-xp 00000000 08:01 9   /opt/a b/lib.so", EV__MAP_FILE, NULL },
		{ "7f00-7f10 r-xp 00000000 08:01 9", EV__MAP_REFUSED, "anonymous memory" },
		{ "7f10-7f00 r-xp 00000000 08:01 9   /x", -KILN_EFORMAT, "cannot parse" },
		{ "7f00 7f10 r-xp 00000000 08:01 9   /x", -KILN_EFORMAT, NULL },
		{ "7f00-7f10 r-x 00000000 08:01 9   /x", -KILN_EFORMAT, NULL },
		{ "7f00-7f10 r-xp 00000000 08-01 9   /x", -KILN_EFORMAT, NULL },
		{ "7f00-7f10 r-xp 00000000 08:01 -9  /x", -KILN_EFORMAT, NULL },
		{ "-7f00-7f10 r-xp 00000000 08:01 9  /x", -KILN_EFORMAT, NULL },
		{ "", -KILN_EFORMAT, NULL },
	};

	for (size_t i = 0; i < KILN_ARRAY_SIZE(cases); i++) {
		struct kiln_err err = { 0 };
		struct ev__map m;
		char line[256];
		int kind;

		snprintf(line, sizeof(line), "%s", cases[i].line);
		kind = ev__map_parse(line, &m, &err);
		if (kind != cases[i].kind)
			fail_msg("'%s': kind %d, expected %d", cases[i].line, kind, cases[i].kind);
		if (kind == EV__MAP_REFUSED && !strstr(m.why, cases[i].why))
			fail_msg("'%s': why '%s'", cases[i].line, m.why);
		if (kind < 0 && cases[i].why && !strstr(err.msg, cases[i].why))
			fail_msg("'%s': error '%s'", cases[i].line, err.msg);
	}
}

/* The name in a refusal is quoted so a memfd's chosen name cannot forge log
 * fields or lines. */
static void test_maps_refuse_quotes(void **state)
{
	char line[] = "7f00-7f10 r-xp 00000000 00:01 9   /memfd:a\" reason=\"ok\\x (deleted)";
	struct kiln_err err = { 0 };
	struct ev__map m;

	assert_int_equal(ev__map_parse(line, &m, &err), EV__MAP_REFUSED);
	assert_int_equal(ev__map_refuse(&m, m.why, &err), -KILN_EUNMEASURED);
	assert_null(strchr(err.msg, '"'));
	assert_non_null(strstr(err.msg, "'/memfd:a\\x22 reason=\\x22ok\\x5cx (deleted)'"));
}

static void test_manifest_cache(void **state)
{
	struct ev_wm_cache *cache = ev_wm_cache_new(256);
	uint8_t plain[48], cached[48];
	struct kiln_err err = { 0 };
	char path[] = "/var/tmp/kiln-attest-cache-XXXXXX";
	uint64_t hits = 0, misses = 0, hits2 = 0;
	void *m;
	int fd;

	assert_non_null(cache);
	assert_int_equal(ev_workload_measure_pid(0, plain, NULL, &err), 0);
	assert_int_equal(ev_workload_measure_cached(0, NULL, 0, cache, cached, NULL, &err), 0);
	assert_memory_equal(plain, cached, 48);
	assert_int_equal(ev_workload_measure_cached(0, NULL, 0, cache, cached, NULL, &err), 0);
	assert_memory_equal(plain, cached, 48);
	ev_wm_cache_stats(cache, &hits, &misses);
	assert_true(hits >= 2); /* exe and libc were installed long ago */

	/* A file old enough to be cached, then changed in place (same size). */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(kiln_pwrite_all(fd, "AAAA", 4, 0), 0);
	sleep(3);
	m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		close(fd);
		unlink(path);
		ev_wm_cache_free(cache);
		skip();
	}
	assert_int_equal(ev_workload_measure_cached(0, NULL, 0, cache, cached, NULL, &err), 0);
	assert_int_equal(ev_workload_measure_cached(0, NULL, 0, cache, cached, NULL, &err), 0);
	ev_wm_cache_stats(cache, &hits2, &misses);
	assert_true(hits2 > hits + 2); /* the new file was cached and hit too */
	assert_int_equal(kiln_pwrite_all(fd, "BBBB", 4, 0), 0);
	assert_int_equal(ev_workload_measure_pid(0, plain, NULL, &err), 0);
	assert_int_equal(ev_workload_measure_cached(0, NULL, 0, cache, cached, NULL, &err), 0);
	assert_memory_equal(plain, cached, 48);
	munmap(m, 4096);
	close(fd);
	unlink(path);
	ev_wm_cache_free(cache);
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
		"\"workload_measurement\": \"%s\"}",                          /* duplicate */
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


/* ---- static programs ---- */

static void test_static_measure_refuses_dynamic(void **state)
{
	struct kiln_err err = { 0 };
	uint8_t wm[EV_WM_SIZE], exe[32];
	char *manifest = (char *)"x";
	char path[] = "/tmp/kiln-static-XXXXXX";
	int fd;

	/* This test binary has a program interpreter. */
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ev_elf_is_static_fd(fd), 0);
	assert_int_equal(ev_workload_measure_static_fd(fd, NULL, wm, &manifest, exe, &err),
			 -KILN_EFORMAT);
	assert_null(manifest);
	assert_non_null(strstr(err.msg, "not a statically linked"));
	close(fd);
	/* Not ELF at all; a directory. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	assert_int_equal(ev_elf_is_static_fd(fd), 0);
	assert_int_equal(ev_workload_measure_static_fd(fd, NULL, wm, NULL, exe, &err),
			 -KILN_EFORMAT);
	close(fd);
	unlink(path);
	fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(ev_workload_measure_static_fd(fd, NULL, wm, NULL, exe, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "not a regular file"));
	close(fd);
}

static void test_static_measure_manifest(void **state)
{
	/* A minimal static ELF header: ET_EXEC, one PT_LOAD, no PT_INTERP. */
	struct {
		Elf64_Ehdr eh;
		Elf64_Phdr ph;
	} img = { 0 };
	struct kiln_err err = { 0 };
	uint8_t wm[EV_WM_SIZE], exe[32], want_exe[32], want_wm[EV_WM_SIZE];
	char path[] = "/tmp/kiln-static-XXXXXX", hex[65], expect[256], *manifest = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	memcpy(img.eh.e_ident, ELFMAG, SELFMAG);
	img.eh.e_ident[EI_CLASS] = ELFCLASS64;
	img.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	img.eh.e_machine = EM_X86_64;
	img.eh.e_type = ET_EXEC;
	img.eh.e_phoff = sizeof(img.eh);
	img.eh.e_phentsize = sizeof(Elf64_Phdr);
	img.eh.e_phnum = 1;
	img.ph.p_type = PT_LOAD;
	assert_int_equal(write(fd, &img, sizeof(img)), (int)sizeof(img));
	assert_int_equal(ev_elf_is_static_fd(fd), 1);
	assert_int_equal(ev_workload_measure_static_fd(fd, NULL, wm, &manifest, exe, &err), 0);
	assert_int_equal(kc_sha256(&img, sizeof(img), want_exe), 0);
	assert_memory_equal(exe, want_exe, 32);
	kiln_hex_encode(want_exe, 32, hex);
	snprintf(expect, sizeof(expect), "kiln-manifest-v1\nruntime kiln-%s\nexe %s\n",
		 KILN_VERSION, hex);
	assert_string_equal(manifest, expect);
	assert_int_equal(kc_sha384(expect, strlen(expect), want_wm), 0);
	assert_memory_equal(wm, want_wm, EV_WM_SIZE);
	free(manifest);
	/* With a PT_INTERP it is a dynamic program. */
	img.ph.p_type = PT_INTERP;
	assert_int_equal(pwrite(fd, &img, sizeof(img), 0), (int)sizeof(img));
	assert_int_equal(ev_elf_is_static_fd(fd), 0);
	close(fd);
	unlink(path);
}

/* A program image for ev_elf_classify_fd: a header, a PT_LOAD and a
 * PT_INTERP naming interp (none when NULL), in a memfd. */
struct elf_img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	char interp[64];
};

static void elf_img_init(struct elf_img *img, const char *interp)
{
	memset(img, 0, sizeof(*img));
	memcpy(img->eh.e_ident, ELFMAG, SELFMAG);
	img->eh.e_ident[EI_CLASS] = ELFCLASS64;
	img->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	img->eh.e_machine = EM_X86_64;
	img->eh.e_type = ET_DYN;
	img->eh.e_phoff = offsetof(struct elf_img, ph);
	img->eh.e_phentsize = sizeof(Elf64_Phdr);
	img->eh.e_phnum = interp ? 2 : 1;
	img->ph[0].p_type = PT_LOAD;
	if (interp) {
		img->ph[1].p_type = PT_INTERP;
		img->ph[1].p_offset = offsetof(struct elf_img, interp);
		img->ph[1].p_filesz = strlen(interp) + 1;
		snprintf(img->interp, sizeof(img->interp), "%s", interp);
	}
}

/* Classify size bytes of img: the return value, info and the message. */
static int elf_classify(const void *img, size_t size, struct ev_elf_info *info,
			struct kiln_err *err)
{
	int fd = memfd_create("elf", MFD_CLOEXEC), ret;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, size), (int)size);
	memset(err, 0, sizeof(*err));
	errno = ENOENT; /* stale, as after any earlier failed call: never the answer */
	ret = ev_elf_classify_fd(fd, info, err);
	close(fd);
	return ret;
}

static void expect_refused(const struct elf_img *img, size_t size, const char *why)
{
	struct kiln_err err;
	struct ev_elf_info info;

	assert_int_equal(elf_classify(img, size, &info, &err), -KILN_EFORMAT);
	if (!strstr(err.msg, why))
		fail_msg("expected '%s' in '%s'", why, err.msg);
}

static void test_elf_classify(void **state)
{
	struct elf_img img;
	struct ev_elf_info info;
	struct kiln_err err;
	int fd;

	(void)state;
	elf_img_init(&img, NULL);
	assert_int_equal(elf_classify(&img, sizeof(img), &info, &err), 0);
	assert_int_equal(info.kind, EV_ELF_STATIC);
	assert_string_equal(info.interp, "");
	elf_img_init(&img, "/lib64/ld-linux-x86-64.so.2");
	assert_int_equal(elf_classify(&img, sizeof(img), &info, &err), 0);
	assert_int_equal(info.kind, EV_ELF_GLIBC);
	assert_string_equal(info.interp, "/lib64/ld-linux-x86-64.so.2");
	elf_img_init(&img, "/lib/ld-musl-x86_64.so.1");
	assert_int_equal(elf_classify(&img, sizeof(img), &info, &err), 0);
	assert_int_equal(info.kind, EV_ELF_MUSL);
	elf_img_init(&img, "/opt/x/ld-other.so");
	assert_int_equal(elf_classify(&img, sizeof(img), &info, &err), 0);
	assert_int_equal(info.kind, EV_ELF_OTHER);
	/* Not ELF: a script is not refused here. */
	assert_int_equal(elf_classify("#!/bin/sh\n", 10, &info, &err), 0);
	assert_int_equal(info.kind, EV_ELF_NONE);
	/* A real program of this machine. */
	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ev_elf_classify_fd(fd, &info, &err), 0);
	assert_int_equal(info.kind, EV_ELF_GLIBC);
	close(fd);

	/* Each way a file can fail to be an x86-64 program, named. */
	elf_img_init(&img, NULL);
	expect_refused(&img, 20, "truncated ELF header");
	img.eh.e_ident[EI_CLASS] = ELFCLASS32;
	expect_refused(&img, sizeof(img), "32-bit");
	elf_img_init(&img, NULL);
	img.eh.e_ident[EI_DATA] = ELFDATA2MSB;
	expect_refused(&img, sizeof(img), "little-endian");
	elf_img_init(&img, NULL);
	img.eh.e_machine = EM_AARCH64;
	expect_refused(&img, sizeof(img), "another architecture (aarch64");
	img.eh.e_machine = 4242;
	expect_refused(&img, sizeof(img), "machine 4242");
	elf_img_init(&img, NULL);
	img.eh.e_type = ET_REL;
	expect_refused(&img, sizeof(img), "not an executable");
	elf_img_init(&img, NULL);
	img.eh.e_phnum = 0;
	expect_refused(&img, sizeof(img), "program headers");
	elf_img_init(&img, NULL);
	img.eh.e_phentsize = 32;
	expect_refused(&img, sizeof(img), "program headers");
	elf_img_init(&img, NULL);
	img.eh.e_phoff = (Elf64_Off)-8; /* wraps: must not be read */
	expect_refused(&img, sizeof(img), "beyond the end of the file");
	elf_img_init(&img, "/lib/ld-musl-x86_64.so.1");
	expect_refused(&img, offsetof(struct elf_img, ph) + 64, "beyond the end of the file");
	elf_img_init(&img, "/lib/ld-musl-x86_64.so.1");
	expect_refused(&img, offsetof(struct elf_img, interp) + 4, "PT_INTERP");
	img.ph[1].p_offset = (Elf64_Off)-2;
	expect_refused(&img, sizeof(img), "PT_INTERP");
	elf_img_init(&img, "/lib/ld-musl-x86_64.so.1");
	img.ph[1].p_filesz = 4; /* "/lib" without its NUL */
	expect_refused(&img, sizeof(img), "not one absolute path");
	elf_img_init(&img, "lib/ld.so");
	expect_refused(&img, sizeof(img), "not one absolute path");
	elf_img_init(&img, "/lib/ld-musl-x86_64.so.1");
	img.ph[0] = img.ph[1];
	expect_refused(&img, sizeof(img), "two program interpreters");
	elf_img_init(&img, NULL);
	img.ph[0].p_type = PT_NOTE;
	expect_refused(&img, sizeof(img), "no loadable segment");
	/* ev_elf_is_static_fd agrees. */
	fd = memfd_create("elf", MFD_CLOEXEC);
	assert_int_equal(write(fd, &img, sizeof(img)), (int)sizeof(img));
	assert_int_equal(ev_elf_is_static_fd(fd), 0);
	close(fd);
}

/* ---- the CAS's own attestation: the client's check (cas_answer.c) ---- */

/* An answer of GET /v1/attestation with sim evidence: binding over (bkey,
 * bnonce), fields naming (fkey, fnonce). *out malloc'd. */
static char *cas_answer(const uint8_t bkey[32], const uint8_t bnonce[32], const uint8_t fkey[32],
			const uint8_t fnonce[32], const uint8_t wm[EV_WM_SIZE])
{
	uint8_t rd[EV_REPORT_DATA_SIZE], *ev = NULL;
	size_t ev_size = 0;
	char nonce_hex[65], key_hex[65], wm_hex[97], *b64, *out = NULL;

	assert_int_equal(ev_cas_binding(bkey, bnonce, wm, rd), 0);
	assert_int_equal(ev_sim_produce(rd, wm, &ev, &ev_size), 0);
	b64 = kiln_b64_encode(ev, ev_size);
	assert_non_null(b64);
	kiln_hex_encode(fnonce, 32, nonce_hex);
	kiln_hex_encode(fkey, 32, key_hex);
	kiln_hex_encode(wm, EV_WM_SIZE, wm_hex);
	assert_true(asprintf(&out, "{\"kiln_cas_attestation\": 1, \"tee\": \"sim\", \"insecure\": "
			     "true, \"nonce\": \"%s\", \"server_key\": \"sha256:%s\", "
			     "\"workload_measurement\": \"%s\", \"evidence\": \"%s\"}", nonce_hex,
			     key_hex, wm_hex, b64) > 0);
	free(b64);
	free(ev);
	return out;
}

static int answer_verify(const char *text, const uint8_t nonce[32], const uint8_t key[32],
			 struct kiln_err *err)
{
	struct ev_verify_opts opts = { 0 };
	json_t *claims = NULL;
	int ret = ev_cas_answer_verify(text, strlen(text), nonce, key, &opts, &claims, err);

	assert_true((ret == 0) == (claims != NULL));
	json_decref(claims);
	return ret;
}

static void test_cas_answer(void **state)
{
	uint8_t key[32], other_key[32], nonce[32], old_nonce[32], wm[EV_WM_SIZE], rd[64], rd2[64];
	struct kiln_err err = { 0 };
	char *a;

	(void)state;
	fill(key, sizeof(key), 1);
	fill(other_key, sizeof(other_key), 2);
	fill(nonce, sizeof(nonce), 3);
	fill(old_nonce, sizeof(old_nonce), 4);
	fill(wm, sizeof(wm), 5);
	/* distinct from the workload binding over the same bytes */
	assert_int_equal(ev_cas_binding(key, nonce, wm, rd), 0);
	assert_int_equal(ev_binding(key, sizeof(key), nonce, wm, rd2), 0);
	assert_memory_not_equal(rd, rd2, sizeof(rd));

	a = cas_answer(key, nonce, key, nonce, wm);
	assert_int_equal(answer_verify(a, nonce, key, &err), 0);
	/* a recorded answer, for another nonce */
	assert_int_equal(answer_verify(a, old_nonce, key, &err), -KILN_ENONCE);
	assert_non_null(strstr(err.msg, "replayed"));
	/* received over another TLS key (a terminating proxy) */
	assert_int_equal(answer_verify(a, nonce, other_key, &err), -KILN_EBINDING);
	assert_non_null(strstr(err.msg, "terminates TLS"));
	free(a);
	/* fields rewritten to match, evidence bound elsewhere: the binding decides */
	a = cas_answer(key, old_nonce, key, nonce, wm);
	assert_int_equal(answer_verify(a, nonce, key, &err), -KILN_EBINDING);
	assert_non_null(strstr(err.msg, "not bound"));
	free(a);
	a = cas_answer(key, nonce, other_key, nonce, wm);
	assert_int_equal(answer_verify(a, nonce, other_key, &err), -KILN_EBINDING);
	free(a);
	/* malformed */
	assert_int_equal(answer_verify("{}", nonce, key, &err), -KILN_EFORMAT);
	assert_int_equal(answer_verify("[1]", nonce, key, &err), -KILN_EFORMAT);
	assert_int_equal(answer_verify("{\"kiln_cas_attestation\": 2}", nonce, key, &err),
			 -KILN_EFORMAT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binding_vector),
		cmocka_unit_test(test_manifest_self),
		cmocka_unit_test(test_manifest_other_pid),
		cmocka_unit_test(test_manifest_mappings),
		cmocka_unit_test(test_manifest_written_code),
		cmocka_unit_test(test_manifest_traced),
		cmocka_unit_test(test_maps_classify),
		cmocka_unit_test(test_maps_refuse_quotes),
		cmocka_unit_test(test_manifest_cache),
		cmocka_unit_test(test_sim_round_trip),
		cmocka_unit_test(test_sim_malformed),
		cmocka_unit_test(test_static_measure_refuses_dynamic),
		cmocka_unit_test(test_static_measure_manifest),
		cmocka_unit_test(test_elf_classify),
		cmocka_unit_test(test_cas_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
