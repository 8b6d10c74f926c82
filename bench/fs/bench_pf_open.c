/* bench_pf_open: what opening a big file and writing a sparse one cost through
 * pf, side by side with the same calls on a native file in the same directory.
 * Usage: bench_pf_open DIR SIZE_MIB SPARSE_MIB ROUNDS
 *   open:   open + pread 10 bytes + close of a SIZE_MIB dense file (warm: 200
 *           per round at one offset, its pages cached; cold: one at a random
 *           offset after dropping the page cache),
 *           pf with the block hashes (<id>.h) and without them (every tag read
 *           and hashed at open, as before the tag tree), on a read-only volume;
 *   sparse: create a SPARSE_MIB file holding 16 pieces of 64 KiB spread evenly
 *           (the rest holes), fsync, close: time and the bytes it takes on disk.
 * Rounds alternate native and pf; one JSON object per round on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/pf.h"

#define BENCH_NAME "bench_pf_open"
#include "bench_util.h"

#define MIB (1024 * 1024)
#define WARM 200
#define PIECES 16
#define PIECE (64 * 1024)

static char g_dir[401]; /* at most 400 bytes (checked in main) */
static uint64_t g_rng = 42;

static uint64_t rnd(void)
{
	g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
	return g_rng >> 33;
}

static pf_volume_t *vol_open(const uint8_t *key, bool init, bool ro)
{
	struct pf_volume_opts o = { .seal_thread = true, .read_only = ro };
	struct kiln_err err = { 0 };
	char d[600];
	pf_volume_t *v = NULL;
	int ret;

	snprintf(d, sizeof(d), "%s/vol", g_dir);
	ret = init ? pf_volume_init(d, key, &o, &v, &err) : pf_volume_open(d, key, &o, &v, &err);
	if (ret < 0)
		die(init ? "init" : "open", ret, &err);
	return v;
}

/* Bytes the regular files of dir take on disk. */
static uint64_t disk_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t total = 0;
	char p[1024];
	struct stat st;

	if (!d)
		die(dir, -errno, NULL);
	while ((de = readdir(d))) {
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

/* off: where to read (UINT64_MAX: a random offset each time). */
static uint64_t at(uint64_t off, uint64_t size)
{
	return off == UINT64_MAX ? rnd() % (size - 10) : off;
}

static double native_open_read(const char *path, uint64_t size, uint64_t off, int n)
{
	uint8_t b[10];
	uint64_t t0 = kiln_now_ns();

	for (int i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || pread(fd, b, sizeof(b), (off_t)at(off, size)) != sizeof(b))
			die("native open+read", -errno, NULL);
		close(fd);
	}
	return (double)(kiln_now_ns() - t0) / 1e3 / n;
}

static double pf_open_read(pf_volume_t *v, uint64_t size, uint64_t off, int n)
{
	struct kiln_err err = { 0 };
	uint8_t b[10];
	uint64_t t0 = kiln_now_ns();

	for (int i = 0; i < n; i++) {
		pf_file_t *f;
		int ret = pf_open(v, "big", O_RDONLY, 0, &f, &err);
		ssize_t r;

		if (ret < 0)
			die("pf open", ret, &err);
		r = pf_pread(f, b, sizeof(b), at(off, size), &err);
		if (r != sizeof(b))
			die("pf read", r < 0 ? (int)r : -EIO, &err);
		pf_close(f);
	}
	return (double)(kiln_now_ns() - t0) / 1e3 / n;
}

/* The backing file's "<id>.h": the only one in .kiln (one big file). */
static void hash_sidecar(char *out, size_t size)
{
	char d[440];
	DIR *dd;
	struct dirent *de;

	snprintf(d, sizeof(d), "%s/vol/.kiln", g_dir);
	dd = opendir(d);
	if (!dd)
		die(d, -errno, NULL);
	out[0] = '\0';
	while ((de = readdir(dd)))
		if (strlen(de->d_name) == 34 && strcmp(de->d_name + 32, ".h") == 0)
			snprintf(out, size, "%s/%s", d, de->d_name);
	closedir(dd);
	if (!out[0])
		die("no <id>.h sidecar", -ENOENT, NULL);
}

static double sparse_native(uint64_t size, uint64_t *disk)
{
	char p[600];
	uint8_t *buf = malloc(PIECE);
	struct stat st;
	uint64_t t0;
	int fd;

	if (!buf || kc_random(buf, PIECE) < 0)
		die("random", -ENOMEM, NULL);
	snprintf(p, sizeof(p), "%s/native/sparse", g_dir);
	t0 = kiln_now_ns();
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		die("native sparse", -errno, NULL);
	for (int i = 0; i < PIECES; i++)
		if (pwrite(fd, buf, PIECE, (off_t)(size / PIECES * i + 4096)) != PIECE)
			die("native sparse write", -errno, NULL);
	if (fsync(fd) != 0)
		die("native fsync", -errno, NULL);
	close(fd);
	t0 = kiln_now_ns() - t0;
	if (stat(p, &st) != 0)
		die("stat", -errno, NULL);
	*disk = (uint64_t)st.st_blocks * 512;
	unlink(p);
	free(buf);
	return (double)t0 / 1e6;
}

static double sparse_pf(pf_volume_t *v, uint64_t size, uint64_t *disk)
{
	struct kiln_err err = { 0 };
	uint8_t *buf = malloc(PIECE);
	char kd[600];
	uint64_t t0, before;
	pf_file_t *f;
	int ret;

	if (!buf || kc_random(buf, PIECE) < 0)
		die("random", -ENOMEM, NULL);
	snprintf(kd, sizeof(kd), "%s/vol/.kiln", g_dir);
	before = disk_bytes(kd);
	t0 = kiln_now_ns();
	ret = pf_open(v, "sparse", O_RDWR | O_CREAT | O_TRUNC, 0600, &f, &err);
	if (!ret)
		ret = pf_ftruncate(f, size, &err);
	for (int i = 0; i < PIECES && !ret; i++) {
		ssize_t r = pf_pwrite(f, buf, PIECE, size / PIECES * i + 4096, &err);

		ret = r == PIECE ? 0 : r < 0 ? (int)r : -EIO;
	}
	if (!ret)
		ret = pf_fsync(f, &err);
	if (ret)
		die("pf sparse", ret, &err);
	pf_close(f);
	t0 = kiln_now_ns() - t0;
	*disk = disk_bytes(kd) - before;
	if ((ret = pf_unlink(v, "sparse", &err)) || (ret = pf_volume_flush(v, &err)))
		die("pf unlink", ret, &err);
	free(buf);
	return (double)t0 / 1e6;
}

int main(int argc, char **argv)
{
	uint64_t size_mib, sparse_mib, rounds, size;
	uint8_t key[PF_KEY_SIZE], *buf = malloc(MIB);
	struct kiln_err err = { 0 };
	char p[600], h[700], hoff[710];
	pf_volume_t *v;
	pf_file_t *f;
	int ret, fd;

	if (argc != 5 || kiln_parse_u64(argv[2], &size_mib) ||
	    kiln_parse_u64(argv[3], &sparse_mib) || kiln_parse_u64(argv[4], &rounds) ||
	    size_mib == 0 || sparse_mib == 0 || strlen(argv[1]) > 400) {
		fprintf(stderr, "usage: bench_pf_open DIR SIZE_MIB SPARSE_MIB ROUNDS\n");
		return 2;
	}
	size = size_mib * MIB;
	snprintf(g_dir, sizeof(g_dir), "%s", argv[1]);
	if (!buf || kc_random(key, sizeof(key)) < 0 || kc_random(buf, MIB) < 0)
		return 1;
	snprintf(p, sizeof(p), "%s/native", g_dir);
	if ((mkdir(g_dir, 0700) != 0 && errno != EEXIST) || mkdir(p, 0700) != 0)
		die("mkdir (DIR/native must not exist)", -errno, NULL);

	/* The dense file, native and in the volume. */
	snprintf(p, sizeof(p), "%s/native/big", g_dir);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	for (uint64_t off = 0; fd >= 0 && off < size; off += MIB)
		if (pwrite(fd, buf, MIB, (off_t)off) != MIB)
			die("native write", -errno, NULL);
	if (fd < 0 || fsync(fd) != 0)
		die("native big", -errno, NULL);
	close(fd);
	v = vol_open(key, true, false);
	ret = pf_open(v, "big", O_RDWR | O_CREAT | O_TRUNC, 0600, &f, &err);
	for (uint64_t off = 0; !ret && off < size; off += MIB)
		ret = pf_pwrite(f, buf, MIB, off, &err) == MIB ? 0 : -EIO;
	if (!ret)
		ret = pf_fsync(f, &err);
	if (ret)
		die("pf big", ret, &err);
	pf_close(f);
	if ((ret = pf_volume_close(v, &err)))
		die("close", ret, &err);
	hash_sidecar(h, sizeof(h));
	snprintf(hoff, sizeof(hoff), "%s.off", h);

	for (uint64_t r = 0; r < rounds; r++) {
		double nw, pw, pwf, nc, pc, pcf, ns, ps;
		uint64_t nd, pd, warm;

		/* Open cost, on a read-only volume (nothing is rewritten). */
		v = vol_open(key, false, true);
		warm = size / 2 + 12345;
		native_open_read(p, size, warm, 1);
		pf_open_read(v, size, warm, 1);
		nw = native_open_read(p, size, warm, WARM);
		pw = pf_open_read(v, size, warm, WARM);
		drop_caches();
		nc = native_open_read(p, size, UINT64_MAX, 1);
		drop_caches();
		pc = pf_open_read(v, size, UINT64_MAX, 1);
		/* Without the block hashes: every tag read and hashed at open. */
		if (rename(h, hoff) != 0)
			die("rename .h", -errno, NULL);
		pwf = pf_open_read(v, size, warm, WARM / 10);
		drop_caches();
		pcf = pf_open_read(v, size, UINT64_MAX, 1);
		if (rename(hoff, h) != 0)
			die("rename .h back", -errno, NULL);
		pf_volume_close(v, NULL);

		/* Sparse write. */
		v = vol_open(key, false, false);
		ns = sparse_native(sparse_mib * MIB, &nd);
		ps = sparse_pf(v, sparse_mib * MIB, &pd);
		if ((ret = pf_volume_close(v, &err)))
			die("close", ret, &err);
		printf("{\"round\": %" PRIu64 ", \"open_read10_warm_us\": {\"native\": %.1f, "
		       "\"pf\": %.1f, \"pf_no_block_hashes\": %.1f}, "
		       "\"open_read10_cold_us\": {\"native\": %.0f, \"pf\": %.0f, "
		       "\"pf_no_block_hashes\": %.0f}, "
		       "\"sparse_write_fsync_ms\": {\"native\": %.2f, \"pf\": %.2f}, "
		       "\"sparse_disk_kib\": {\"native\": %" PRIu64 ", \"pf\": %" PRIu64 "}}\n",
		       r, nw, pw, pwf, nc, pc, pcf, ns, ps, nd / 1024, pd / 1024);
		fflush(stdout);
	}
	kiln_wipe(key, sizeof(key));
	free(buf);
	return 0;
}
