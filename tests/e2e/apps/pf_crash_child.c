/* Crash-trial helper for tests/e2e/test_fs.py (built as build/tests/e2e/apps/pf_crash_child).
 *
 *   pf_crash_child run VOL KEY LOG SEED   write+fsync forever (the parent kill -9's it)
 *   pf_crash_child check VOL KEY LOG      exit 0 iff every file holds an allowed state
 *   pf_crash_child memtest VOL KEY GIB    write GIB GiB to one file through a storage
 *                                         that drops chunk data; print peak RSS in KiB
 *
 * The log records, per file, "S i SHA" (state found at start), "P i SHA" (about to
 * fsync this content) and "D i" (that fsync returned). After a crash a file may
 * hold its last completed state or the pending one, nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/pf.h"

#define NFILES 3
#define MAXSIZE (96 * 1024)

static uint64_t g_rng;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static void die(const char *what, int ret, const struct kiln_err *err)
{
	fprintf(stderr, "pf_crash_child: %s: %s\n", what, kiln_err_msg(err, ret));
	exit(2);
}

static void sha_hex(const uint8_t *data, size_t size, char out[65])
{
	uint8_t d[32];

	kc_sha256(data, size, d);
	kiln_hex_encode(d, sizeof(d), out);
}

static int open_vol(const char *dir, const char *keyfile, pf_volume_t **v, struct kiln_err *err)
{
	struct pf_volume_opts o = { .seal_thread = true }; /* as kiln fs */
	uint8_t *key = NULL;
	size_t ksize = 0;
	char vfile[4096];
	int ret = kiln_read_file(keyfile, 64, &key, &ksize);

	if (ret || ksize != PF_KEY_SIZE)
		die("key", ret ? ret : -EINVAL, NULL);
	snprintf(vfile, sizeof(vfile), "%s.version", keyfile);
	if ((ret = pf_freshness_local(vfile, &o.freshness, &o.freshness_ctx)))
		die("version file", ret, NULL);
	ret = pf_volume_open(dir, key, &o, v, err);
	kiln_free_secret(key, ksize);
	return ret;
}

static int read_all(pf_volume_t *v, const char *path, uint8_t *buf, size_t *size,
		    struct kiln_err *err)
{
	pf_file_t *f;
	ssize_t n;
	int ret = pf_open(v, path, O_RDONLY, 0, &f, err);

	*size = 0;
	if (ret)
		return ret;
	n = pf_pread(f, buf, MAXSIZE * 2, 0, err);
	pf_close(f);
	if (n < 0)
		return (int)n;
	*size = (size_t)n;
	return 0;
}

static void log_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (kiln_write_all(fd, line, (size_t)n) != 0 || fsync(fd) != 0)
		die("log", -errno, NULL);
}

static __attribute__((noreturn)) void run(const char *dir, const char *keyfile,
					  const char *logpath, uint64_t seed)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *f[NFILES];
	static uint8_t model[NFILES][MAXSIZE * 2], buf[MAXSIZE];
	size_t size[NFILES];
	char path[16], hex[65];
	int logfd, ret;

	g_rng = seed | 1;
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		die("log", -errno, NULL);
	if ((ret = open_vol(dir, keyfile, &v, &err)))
		die("open", ret, &err);
	for (int i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "f%d", i);
		ret = read_all(v, path, model[i], &size[i], &err);
		if (ret == -ENOENT) {
			if ((ret = pf_open(v, path, O_RDWR | O_CREAT, 0600, &f[i], &err)) ||
			    (ret = pf_fsync(f[i], &err)))
				die("create", ret, &err);
			pf_close(f[i]);
			size[i] = 0;
		} else if (ret) {
			die("read", ret, &err);
		}
		sha_hex(model[i], size[i], hex);
		log_line(logfd, "S %d %s\n", i, hex);
		if ((ret = pf_open(v, path, O_RDWR, 0, &f[i], &err)))
			die("open file", ret, &err);
	}
	for (;;) {
		int i = (int)(rnd() % NFILES), ops = (int)(rnd() % 4) + 1;

		for (int k = 0; k < ops; k++) {
			size_t off = rnd() % MAXSIZE, len = rnd() % 9000 + 1;

			if (rnd() % 4 == 0) /* many chunks: the helper thread's pipeline */
				len = rnd() % (64 * 1024) + 1;
			if (rnd() % 8 == 0) {
				/* Often to zero: the O_TRUNC rewrite takes its own path. */
				size_t ns = rnd() % 3 == 0 ? 0 : rnd() % MAXSIZE;

				if ((ret = pf_ftruncate(f[i], ns, &err)))
					die("truncate", ret, &err);
				if (ns < size[i])
					memset(model[i] + ns, 0, size[i] - ns);
				size[i] = ns;
				continue;
			}
			if (off + len > MAXSIZE)
				len = MAXSIZE - off;
			for (size_t b = 0; b < len; b++)
				buf[b] = (uint8_t)rnd();
			if (pf_pwrite(f[i], buf, len, off, &err) != (ssize_t)len)
				die("write", -EIO, &err);
			memcpy(model[i] + off, buf, len);
			if (off + len > size[i])
				size[i] = off + len;
		}
		sha_hex(model[i], size[i], hex);
		log_line(logfd, "P %d %s\n", i, hex);
		if ((ret = pf_fsync(f[i], &err)))
			die("fsync", ret, &err);
		log_line(logfd, "D %d\n", i);
	}
}

static int check(const char *dir, const char *keyfile, const char *logpath)
{
	char done[NFILES][65], pending[NFILES][65], line[256], hex[65], path[16];
	bool has_done[NFILES] = { false }, has_pending[NFILES] = { false };
	static uint8_t buf[MAXSIZE * 2];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	FILE *lf = fopen(logpath, "r");
	int bad = 0, ret;

	if (lf) {
		while (fgets(line, sizeof(line), lf)) {
			char kind, h[65];
			int i;

			if (!strchr(line, '\n'))
				break; /* torn last line */
			if (sscanf(line, "%c %d %64s", &kind, &i, h) < 2 || i < 0 || i >= NFILES)
				continue;
			if (kind == 'S') {
				memcpy(done[i], h, 65);
				has_done[i] = true;
				has_pending[i] = false;
			} else if (kind == 'P') {
				memcpy(pending[i], h, 65);
				has_pending[i] = true;
			} else if (kind == 'D' && has_pending[i]) {
				memcpy(done[i], pending[i], 65);
				has_done[i] = true;
				has_pending[i] = false;
			}
		}
		fclose(lf);
	}
	if ((ret = open_vol(dir, keyfile, &v, &err))) {
		fprintf(stderr, "check: open: %s\n", kiln_err_msg(&err, ret));
		return 1;
	}
	for (int i = 0; i < NFILES; i++) {
		size_t size;

		snprintf(path, sizeof(path), "f%d", i);
		ret = read_all(v, path, buf, &size, &err);
		if (ret == -ENOENT && !has_done[i])
			continue;
		if (ret) {
			fprintf(stderr, "check: %s: %s\n", path, kiln_err_msg(&err, ret));
			bad++;
			continue;
		}
		sha_hex(buf, size, hex);
		if (!has_done[i] && size == 0)
			continue;
		if ((has_done[i] && strcmp(hex, done[i]) == 0) ||
		    (has_pending[i] && strcmp(hex, pending[i]) == 0))
			continue;
		fprintf(stderr, "check: %s: content %s (size %zu) is neither the last fsync'd "
			"state %s nor the pending one %s\n", path, hex, size,
			has_done[i] ? done[i] : "-", has_pending[i] ? pending[i] : "-");
		bad++;
	}
	ret = pf_volume_verify(v, NULL, NULL, &err);
	if (ret) {
		fprintf(stderr, "check: verify: %s\n", kiln_err_msg(&err, ret));
		bad++;
	}
	pf_volume_close(v, NULL);
	return bad ? 1 : 0;
}

/* ---- memtest: the library's own memory while streaming a huge file ---- */
static const struct pf_storage_ops *g_inner;

static ssize_t drop_pwrite(void *ctx, void *fh, const void *buf, size_t size, uint64_t off)
{
	uint64_t cur;

	/* Backing files (opened before their first data write) keep only the
	 * header: enough for sizes; the data is dropped to spare the disk. */
	if (off >= 64 && g_inner->get_size(ctx, fh, &cur) == 0 && cur <= 64)
		return (ssize_t)size;
	return g_inner->pwrite(ctx, fh, buf, size, off);
}

/* Peak RSS of this program image in KiB: VmHWM, not getrusage's ru_maxrss,
 * which execve keeps (the peak of the process that forked this one counted:
 * a pytest grown to 190 MB failed the test). */
static long peak_rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		die("/proc/self/status", -errno, NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	if (kib < 0)
		die("VmHWM", -EPROTO, NULL);
	return kib;
}

static int memtest(const char *dir, const char *keyfile, const char *gib)
{
	static struct pf_storage_ops ops;
	struct pf_volume_opts o = { 0 };
	struct kiln_err err = { 0 };
	uint64_t n;
	uint8_t *key = NULL, *buf;
	size_t ksize = 0;
	pf_volume_t *v;
	pf_file_t *f;
	char sdir[4096];
	int ret;

	if (kiln_parse_u64(gib, &n) != 0 || kiln_read_file(keyfile, 64, &key, &ksize) != 0 ||
	    ksize != PF_KEY_SIZE)
		die("memtest args", -EINVAL, NULL);
	snprintf(sdir, sizeof(sdir), "%s/.kiln", dir);
	if ((ret = pf_storage_posix(sdir, false, &g_inner, &o.storage_ctx, &err)))
		die("storage", ret, &err);
	ops = *g_inner;
	ops.pwrite = drop_pwrite;
	o.storage = &ops;
	o.trust_first = true;
	if ((ret = pf_volume_open(dir, key, &o, &v, &err)))
		die("open", ret, &err);
	kiln_free_secret(key, ksize);
	if ((ret = pf_open(v, "huge", O_WRONLY | O_CREAT | O_TRUNC, 0600, &f, &err)))
		die("create", ret, &err);
	buf = calloc(1, 1 << 20);
	for (uint64_t i = 0; i < (n << 10); i++) {
		buf[0] = (uint8_t)i;
		if (pf_pwrite(f, buf, 1 << 20, i << 20, &err) != 1 << 20)
			die("write", -EIO, &err);
	}
	if ((ret = pf_fsync(f, &err)))
		die("fsync", ret, &err);
	pf_close(f);
	free(buf);
	printf("%ld\n", peak_rss_kib());
	pf_volume_close(v, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed;

	if (argc == 6 && strcmp(argv[1], "run") == 0 && kiln_parse_u64(argv[5], &seed) == 0)
		run(argv[2], argv[3], argv[4], seed);
	if (argc == 5 && strcmp(argv[1], "memtest") == 0)
		return memtest(argv[2], argv[3], argv[4]);
	if (argc == 5 && strcmp(argv[1], "check") == 0)
		return check(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: pf_crash_child run VOL KEY LOG SEED | check VOL KEY LOG | "
		"memtest VOL KEY GIB\n");
	return 2;
}
