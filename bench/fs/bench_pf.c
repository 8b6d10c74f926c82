/* bench_pf: the pf library driven directly, with the workloads of bench/fs/run.py.
 * Usage: bench_pf VOLUME_DIR SIZE_MIB OPS FILES
 * Prints one JSON object with the same metric names as the directory targets. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/pf.h"

#define BENCH_NAME "bench_pf"
#include "bench_util.h"

#define MIB (1024 * 1024)

static double seconds_since(uint64_t t0)
{
	return (double)(kiln_now_ns() - t0) / 1e9;
}

static pf_volume_t *open_volume(const char *dir, const uint8_t *key, bool init)
{
	/* As kiln fs does (the runtime's shield leaves seal_thread off). */
	struct pf_volume_opts opts = { .seal_thread = true };
	struct kiln_err err = { 0 };
	pf_volume_t *vol = NULL;
	int ret = init ? pf_volume_init(dir, key, &opts, &vol, &err)
		       : pf_volume_open(dir, key, &opts, &vol, &err);

	if (ret < 0)
		die(init ? "init" : "open", ret, &err);
	return vol;
}

int main(int argc, char **argv)
{
	uint64_t size_mib, ops, files, size, t0, blocks, rng = 42;
	uint8_t key[PF_KEY_SIZE], *buf;
	struct kiln_err err = { 0 };
	pf_volume_t *vol;
	pf_file_t *f;
	double t_write, t_read, t_rr, t_rw, t_create;
	char path[64];
	ssize_t n;
	int ret;

	if (argc != 5 || kiln_parse_u64(argv[2], &size_mib) || kiln_parse_u64(argv[3], &ops) ||
	    kiln_parse_u64(argv[4], &files) || size_mib == 0) {
		fprintf(stderr, "usage: bench_pf VOLUME_DIR SIZE_MIB OPS FILES\n");
		return 2;
	}
	size = size_mib * MIB;
	blocks = size / 4096;
	buf = malloc(MIB);
	if (!buf || kc_random(key, sizeof(key)) < 0 || kc_random(buf, MIB) < 0)
		return 1;
	if (mkdir(argv[1], 0700) != 0 && errno != EEXIST)
		die("mkdir", -errno, NULL);
	vol = open_volume(argv[1], key, true);

	/* Sequential write + fsync, 1 MiB writes as the directory targets do. */
	t0 = kiln_now_ns();
	ret = pf_open(vol, "seq", O_RDWR | O_CREAT | O_TRUNC, 0600, &f, &err);
	if (ret < 0)
		die("create seq", ret, &err);
	for (uint64_t off = 0; off < size; off += MIB)
		if ((n = pf_pwrite(f, buf, MIB, off, &err)) < 0)
			die("write", (int)n, &err);
	if ((ret = pf_fsync(f, &err)) < 0)
		die("fsync", ret, &err);
	pf_close(f);
	t_write = seconds_since(t0);

	/* Cold read: close the volume, drop the page cache, reopen. */
	if ((ret = pf_volume_close(vol, &err)) < 0)
		die("close", ret, &err);
	drop_caches();
	t0 = kiln_now_ns();
	vol = open_volume(argv[1], key, false);
	ret = pf_open(vol, "seq", O_RDONLY, 0, &f, &err);
	if (ret < 0)
		die("open seq", ret, &err);
	for (uint64_t off = 0;; off += (uint64_t)n) {
		n = pf_pread(f, buf, MIB, off, &err);
		if (n < 0)
			die("read", (int)n, &err);
		if (n == 0)
			break;
	}
	pf_close(f);
	t_read = seconds_since(t0);

	ret = pf_open(vol, "seq", O_RDWR, 0, &f, &err);
	if (ret < 0)
		die("open seq", ret, &err);
	t0 = kiln_now_ns();
	for (uint64_t i = 0; i < ops; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		if ((n = pf_pread(f, buf, 4096, (rng >> 33) % blocks * 4096, &err)) != 4096)
			die("random read", n < 0 ? (int)n : -EIO, &err);
	}
	t_rr = seconds_since(t0);
	t0 = kiln_now_ns();
	for (uint64_t i = 0; i < ops; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		if ((n = pf_pwrite(f, buf, 4096, (rng >> 33) % blocks * 4096, &err)) != 4096)
			die("random write", n < 0 ? (int)n : -EIO, &err);
	}
	if ((ret = pf_fsync(f, &err)) < 0)
		die("fsync", ret, &err);
	t_rw = seconds_since(t0);
	pf_close(f);

	t0 = kiln_now_ns();
	if ((ret = pf_mkdir(vol, "many", 0700, &err)) < 0)
		die("mkdir", ret, &err);
	for (uint64_t i = 0; i < files; i++) {
		snprintf(path, sizeof(path), "many/f%05" PRIu64, i);
		ret = pf_open(vol, path, O_WRONLY | O_CREAT | O_EXCL, 0600, &f, &err);
		if (ret < 0)
			die("create", ret, &err);
		if ((n = pf_pwrite(f, buf, 4096, 0, &err)) < 0)
			die("write", (int)n, &err);
		pf_close(f);
	}
	if ((ret = pf_volume_flush(vol, &err)) < 0)
		die("flush", ret, &err);
	t_create = seconds_since(t0);
	if ((ret = pf_volume_close(vol, &err)) < 0)
		die("close", ret, &err);

	printf("{\"seq_write_MBps\": %.1f, \"seq_read_cold_MBps\": %.1f, "
	       "\"rand_read_4k_iops\": %.0f, \"rand_write_4k_iops\": %.0f, "
	       "\"create_files_per_s\": %.0f}\n",
	       (double)size_mib / t_write, (double)size_mib / t_read, (double)ops / t_rr,
	       (double)ops / t_rw, (double)files / t_create);
	kiln_wipe(key, sizeof(key));
	free(buf);
	return 0;
}
