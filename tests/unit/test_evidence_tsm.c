/* Unit tests for the configfs-tsm producers (src/evidence/tsm.c, tdx_produce.c,
 * snp_produce.c) against a fake configfs tree in a temp dir. The fake's ops
 * behave like the kernel's drivers/virt/coco/tsm.c: mkdir creates the attribute
 * files, every inblob write increments `generation` and regenerates
 * outblob/auxblob, rmdir removes the entry with its attributes. A "concurrent
 * writer" is simulated deterministically by bumping generation when outblob is
 * read, as another process writing inblob between our write and our read would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/snp.h"
#include "evidence/tsm.h"

struct fake {
	const char *provider;  /* NULL: no provider attribute */
	bool no_auxblob;
	int concurrent_writes; /* generation bumps still to inject on outblob reads */
	int mkdirs, rmdirs, inblob_writes;
};

static const char *const g_attrs[] = { "inblob", "outblob", "auxblob", "generation",
				       "provider", "privlevel", "privlevel_floor" };

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int put_file(const char *dir, const char *name, const void *data, size_t size)
{
	char path[4400];
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = kiln_write_all(fd, data, size);
	close(fd);
	return ret;
}

static int bump_generation(const char *dir)
{
	char path[4400], text[32];
	uint8_t *data;
	size_t size;
	uint64_t gen;
	int ret;

	snprintf(path, sizeof(path), "%s/generation", dir);
	ret = kiln_read_file(path, 64, &data, &size);
	if (ret < 0)
		return ret;
	while (size && data[size - 1] == '\n')
		data[--size] = '\0';
	ret = kiln_parse_u64((char *)data, &gen);
	free(data);
	if (ret < 0)
		return ret;
	snprintf(text, sizeof(text), "%llu\n", (unsigned long long)gen + 1);
	return put_file(dir, "generation", text, strlen(text));
}

static int fake_mkdir(void *ctx, const char *path)
{
	struct fake *f = ctx;
	int ret;

	if (mkdir(path, 0700) != 0)
		return -errno;
	f->mkdirs++;
	ret = put_file(path, "generation", "0\n", 2);
	if (ret == 0)
		ret = put_file(path, "inblob", "", 0);
	if (ret == 0)
		ret = put_file(path, "outblob", "", 0);
	if (ret == 0 && !f->no_auxblob)
		ret = put_file(path, "auxblob", "", 0);
	if (ret == 0 && f->provider) {
		char text[64];

		snprintf(text, sizeof(text), "%s\n", f->provider);
		ret = put_file(path, "provider", text, strlen(text));
	}
	return ret;
}

static int fake_rmdir(void *ctx, const char *path)
{
	struct fake *f = ctx;

	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_attrs); i++) {
		char p[4300];

		snprintf(p, sizeof(p), "%s/%s", path, g_attrs[i]);
		unlink(p);
	}
	f->rmdirs++;
	return rmdir(path) == 0 ? 0 : -errno;
}

static int fake_read(void *ctx, const char *path, uint8_t **data, size_t *size)
{
	struct fake *f = ctx;

	if (strcmp(base_name(path), "outblob") == 0 && f->concurrent_writes > 0) {
		char dir[4300];
		int ret;

		f->concurrent_writes--;
		snprintf(dir, sizeof(dir), "%.*s", (int)(base_name(path) - path - 1), path);
		ret = bump_generation(dir);
		if (ret < 0)
			return ret;
	}
	return kiln_read_file(path, EV_TSM_MAX_BLOB, data, size);
}

static int fake_write(void *ctx, const char *path, const void *data, size_t size)
{
	struct fake *f = ctx;
	char dir[4300];
	uint8_t report[EV_SNP_REPORT_SIZE] = { 2 };
	struct stat st;
	int ret;

	if (strcmp(base_name(path), "inblob") != 0)
		return -EACCES;
	if (stat(path, &st) != 0)
		return -ENOENT;
	if (size > EV_TSM_INBLOB_SIZE)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%.*s", (int)(base_name(path) - path - 1), path);
	f->inblob_writes++;
	ret = put_file(dir, "inblob", data, size);
	if (ret == 0)
		ret = bump_generation(dir);
	/* The "report" carries inblob at the SNP report_data offset. */
	memcpy(report + 0x50, data, size);
	if (ret == 0)
		ret = put_file(dir, "outblob", report, sizeof(report));
	if (ret == 0 && !f->no_auxblob)
		ret = put_file(dir, "auxblob", "CERTS", 5);
	return ret;
}

static const struct ev_tsm_ops g_fake_ops = {
	.mkdir = fake_mkdir, .rmdir = fake_rmdir, .read = fake_read, .write = fake_write,
};

static char g_base[256];

static int setup(void **state)
{
	snprintf(g_base, sizeof(g_base), "/tmp/kiln-tsm-XXXXXX");
	assert_non_null(mkdtemp(g_base));
	return 0;
}

static int teardown(void **state)
{
	DIR *d = opendir(g_base);
	struct dirent *e;

	/* Leftover entries would be a bug that the tests below already flag. */
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			char p[600];

			snprintf(p, sizeof(p), "%s/%s", g_base, e->d_name);
			fake_rmdir(&(struct fake){ 0 }, p);
		}
	if (d)
		closedir(d);
	rmdir(g_base);
	return 0;
}

static int entries_left(void)
{
	DIR *d = opendir(g_base);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void inblob_pattern(uint8_t in[64])
{
	for (int i = 0; i < 64; i++)
		in[i] = (uint8_t)(0xa0 + i);
}

static void test_report(void **state)
{
	struct fake f = { .provider = "sev_guest" };
	struct ev_tsm_result res;
	struct kiln_err err = { 0 };
	uint8_t in[64];

	inblob_pattern(in);
	assert_int_equal(ev_tsm_report_ops(g_base, &g_fake_ops, &f, in, &res, &err), 0);
	assert_int_equal(res.outblob_size, EV_SNP_REPORT_SIZE);
	assert_memory_equal(res.outblob + 0x50, in, 64);
	assert_int_equal(res.auxblob_size, 5);
	assert_memory_equal(res.auxblob, "CERTS", 5);
	assert_string_equal(res.provider, "sev_guest");
	assert_int_equal(res.generation, 1);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(f.mkdirs, 1);
	assert_int_equal(f.rmdirs, 1);
	assert_int_equal(f.inblob_writes, 1);
	assert_int_equal(entries_left(), 0);
	ev_tsm_result_free(&res);
	ev_tsm_result_free(NULL);
}

static void test_no_auxblob(void **state)
{
	struct fake f = { .provider = "tdx_guest", .no_auxblob = true };
	struct ev_tsm_result res;
	uint8_t in[64] = { 0 };

	assert_int_equal(ev_tsm_report_ops(g_base, &g_fake_ops, &f, in, &res, NULL), 0);
	assert_null(res.auxblob);
	assert_int_equal(res.auxblob_size, 0);
	assert_string_equal(res.provider, "tdx_guest");
	ev_tsm_result_free(&res);
	assert_int_equal(entries_left(), 0);
}

/* One concurrent write: the first entry's report is discarded, the retry succeeds. */
static void test_concurrent_writer_retry(void **state)
{
	struct fake f = { .provider = "sev_guest", .concurrent_writes = 1 };
	struct ev_tsm_result res;
	uint8_t in[64];

	inblob_pattern(in);
	assert_int_equal(ev_tsm_report_ops(g_base, &g_fake_ops, &f, in, &res, NULL), 0);
	assert_int_equal(res.attempts, 2);
	assert_int_equal(f.mkdirs, 2);
	assert_int_equal(f.rmdirs, 2);
	assert_memory_equal(res.outblob + 0x50, in, 64);
	ev_tsm_result_free(&res);
	assert_int_equal(entries_left(), 0);
}

/* A writer that never stops: give up with -EBUSY after EV_TSM_ATTEMPTS entries. */
static void test_concurrent_writer_gives_up(void **state)
{
	struct fake f = { .provider = "sev_guest", .concurrent_writes = 1000 };
	struct ev_tsm_result res;
	struct kiln_err err = { 0 };
	uint8_t in[64] = { 0 };

	assert_int_equal(ev_tsm_report_ops(g_base, &g_fake_ops, &f, in, &res, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "concurrent writer"));
	assert_int_equal(f.mkdirs, EV_TSM_ATTEMPTS);
	assert_int_equal(f.rmdirs, EV_TSM_ATTEMPTS);
	assert_null(res.outblob);
	assert_int_equal(entries_left(), 0);
}

static void test_missing_provider(void **state)
{
	struct fake f = { .provider = NULL };
	struct ev_tsm_result res;
	struct kiln_err err = { 0 };
	uint8_t in[64] = { 0 };

	assert_int_equal(ev_tsm_report_ops(g_base, &g_fake_ops, &f, in, &res, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "/provider"));
	assert_null(res.outblob);
	assert_int_equal(entries_left(), 0);
}

static void test_wrong_provider(void **state)
{
	struct fake f = { .provider = "tdx_guest" };
	struct kiln_err err = { 0 };
	uint8_t rd[64] = { 1 }, *ev = (uint8_t *)1;
	size_t size = 1;

	assert_int_equal(ev_tsm_produce(g_base, &g_fake_ops, &f, "sev_guest", rd, &ev, &size,
					&err), -ENODEV);
	assert_non_null(strstr(err.msg, "provider is 'tdx_guest', expected 'sev_guest'"));
	assert_null(ev);
	assert_int_equal(size, 0);
	assert_int_equal(entries_left(), 0);
}

static void test_produce_snp_layout(void **state)
{
	struct fake f = { .provider = "sev_guest" };
	uint8_t rd[64], *ev = NULL;
	size_t size = 0;

	inblob_pattern(rd);
	assert_int_equal(ev_tsm_produce(g_base, &g_fake_ops, &f, "sev_guest", rd, &ev, &size,
					NULL), 0);
	assert_int_equal(size, EV_SNP_REPORT_SIZE + 5);
	assert_memory_equal(ev + 0x50, rd, 64);
	assert_memory_equal(ev + EV_SNP_REPORT_SIZE, "CERTS", 5);
	free(ev);
}

/* The real system calls on a plain directory (no kernel behind it): a clear error
 * naming the missing attribute, and no entry left behind. */
static void test_plain_directory(void **state)
{
	struct ev_tsm_result res;
	struct kiln_err err = { 0 };
	uint8_t in[64] = { 0 };

	assert_int_equal(ev_tsm_report(g_base, in, &res, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "/generation"));
	assert_int_equal(entries_left(), 0);
}

static void test_no_configfs(void **state)
{
	struct ev_tsm_result res;
	struct kiln_err err = { 0 };
	uint8_t in[64] = { 0 }, *ev = NULL;
	size_t size;
	char missing[300];

	snprintf(missing, sizeof(missing), "%s/none", g_base);
	assert_int_equal(ev_tsm_report(missing, in, &res, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "configfs-tsm is not available"));
	/* The backends honour $KILN_TSM_PATH. */
	assert_int_equal(setenv("KILN_TSM_PATH", missing, 1), 0);
	assert_int_equal(ev_snp_produce(in, &ev, &size, &err), -ENODEV);
	assert_int_equal(ev_backend_snp.produce(in, &ev, &size, &err), -ENODEV);
	assert_int_equal(ev_tdx_produce(in, &ev, &size, &err), -ENODEV);
	if (access("/dev/sev-guest", F_OK) != 0 && access("/dev/tdx_guest", F_OK) != 0) {
		char name[8];

		assert_int_equal(ev_tsm_detect(missing, NULL, NULL, name, &err), -ENODEV);
		assert_string_equal(name, "");
	}
	assert_null(ev);
	unsetenv("KILN_TSM_PATH");
}

/* ev_backend_tdx.produce is the configfs-tsm TDX producer: through the backend table,
 * with $KILN_TSM_PATH at the fake tree, the evidence is exactly the outblob (a TDX
 * provider has no auxblob) and carries our report_data. */
static void test_tdx_backend_produce(void **state)
{
	struct fake f = { .provider = "tdx_guest", .no_auxblob = true };
	const struct ev_backend *tdx = ev_backend_find("tdx");
	struct kiln_err err = { 0 };
	uint8_t rd[64], *ev = NULL;
	size_t size = 0;

	assert_non_null(tdx);
	assert_non_null(tdx->produce);
	inblob_pattern(rd);
	assert_int_equal(setenv("KILN_TSM_PATH", g_base, 1), 0);
	ev_tsm_set_default_ops(&g_fake_ops, &f);
	assert_int_equal(tdx->produce(rd, &ev, &size, &err), 0);
	ev_tsm_set_default_ops(NULL, NULL);
	unsetenv("KILN_TSM_PATH");
	assert_int_equal(size, EV_SNP_REPORT_SIZE); /* the fake's outblob, nothing appended */
	assert_int_equal(ev[0], 2);
	assert_memory_equal(ev + 0x50, rd, 64);
	assert_int_equal(f.inblob_writes, 1);
	assert_int_equal(f.mkdirs, 1);
	assert_int_equal(f.rmdirs, 1);
	assert_int_equal(entries_left(), 0);
	free(ev);

	/* A machine whose configfs-tsm provider is SNP: a named error, no evidence. */
	f = (struct fake){ .provider = "sev_guest" };
	assert_int_equal(setenv("KILN_TSM_PATH", g_base, 1), 0);
	ev_tsm_set_default_ops(&g_fake_ops, &f);
	ev = NULL;
	assert_int_equal(tdx->produce(rd, &ev, &size, &err), -ENODEV);
	ev_tsm_set_default_ops(NULL, NULL);
	unsetenv("KILN_TSM_PATH");
	assert_null(ev);
	assert_non_null(strstr(err.msg, "provider is 'sev_guest', expected 'tdx_guest'"));
	assert_int_equal(entries_left(), 0);
}

/* Without configfs-tsm (and no /dev/tdx_guest here), the TDX backend's produce fails
 * with one clear message naming the missing interface. */
static void test_tdx_backend_no_configfs(void **state)
{
	const struct ev_backend *tdx = ev_backend_find("tdx");
	struct kiln_err err = { 0 };
	uint8_t rd[64] = { 0 }, *ev = NULL;
	size_t size = 0;
	char missing[300];

	if (access("/dev/tdx_guest", F_OK) == 0)
		skip();
	snprintf(missing, sizeof(missing), "%s/none", g_base);
	assert_int_equal(setenv("KILN_TSM_PATH", missing, 1), 0);
	assert_int_equal(tdx->produce(rd, &ev, &size, &err), -ENODEV);
	unsetenv("KILN_TSM_PATH");
	assert_null(ev);
	assert_int_equal(size, 0);
	assert_non_null(strstr(err.msg, "configfs-tsm is not available"));
	assert_non_null(strstr(err.msg, missing));
}

static void test_detect(void **state)
{
	struct fake snp = { .provider = "sev_guest" }, tdx = { .provider = "tdx_guest" };
	struct fake odd = { .provider = "arm_cca_guest" }, none = { .provider = NULL };
	struct kiln_err err = { 0 };
	char name[8];

	assert_int_equal(ev_tsm_detect(g_base, &g_fake_ops, &snp, name, &err), 0);
	assert_string_equal(name, "snp");
	assert_int_equal(snp.inblob_writes, 0); /* no report was asked for */
	assert_int_equal(snp.rmdirs, 1);
	assert_int_equal(ev_tsm_detect(g_base, &g_fake_ops, &tdx, name, &err), 0);
	assert_string_equal(name, "tdx");
	assert_int_equal(ev_tsm_detect(g_base, &g_fake_ops, &odd, name, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'arm_cca_guest' is not supported"));
	assert_int_equal(ev_tsm_detect(g_base, &g_fake_ops, &none, name, &err), -KILN_EFORMAT);
	assert_int_equal(entries_left(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_no_auxblob),
		cmocka_unit_test(test_concurrent_writer_retry),
		cmocka_unit_test(test_concurrent_writer_gives_up),
		cmocka_unit_test(test_missing_provider),
		cmocka_unit_test(test_wrong_provider),
		cmocka_unit_test(test_produce_snp_layout),
		cmocka_unit_test(test_plain_directory),
		cmocka_unit_test(test_no_configfs),
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_tdx_backend_produce),
		cmocka_unit_test(test_tdx_backend_no_configfs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
