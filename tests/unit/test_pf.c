/* Unit tests for src/pf: property test against a plaintext model, namespace,
 * tampering, rollback, and fault injection through the storage callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/pf.h"
#include "pf/internal.h"
#include "fault_storage.h"

static const uint8_t g_key[PF_KEY_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const uint8_t g_key2[PF_KEY_SIZE] = { 9, 8, 7 };

static bool g_use_deferred; /* opts_fill wraps with sync_start/sync_wait */
/* opts_fill's log_data_max: on (0) but in the tests of the journal-based
 * records (their one-phase records, vouching, redo entries), which turn data
 * records off (-1, journal_records) and back on at their end. */
static int32_t g_log_data_max;

/* ---- helpers ---- */
struct env {
	char dir[64];
	char vfile[96];
	char kdir[80];
};

static void env_init(struct env *e)
{
	/* tmpfs: fsync is free there, and these tests do not model power loss. */
	strcpy(e->dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/kiln-pf-XXXXXX"
						  : "/tmp/kiln-pf-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->vfile, sizeof(e->vfile), "%s/version", e->dir);
	snprintf(e->kdir, sizeof(e->kdir), "%s/vol", e->dir);
}

static void env_free(struct env *e)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
}

static struct fault *g_last_fault;

static void journal_records(bool on)
{
	g_log_data_max = on ? -1 : 0;
}

static void opts_fill(struct env *e, struct pf_volume_opts *o, bool with_fault)
{
	memset(o, 0, sizeof(*o));
	o->seal_thread = true; /* large writes take the two-thread path */
	o->log_data_max = g_log_data_max;
	assert_int_equal(pf_freshness_local(e->vfile, &o->freshness, &o->freshness_ctx), 0);
	g_last_fault = NULL;
	if (with_fault) {
		const struct pf_storage_ops *inner;
		void *ictx;
		char sdir[128];

		snprintf(sdir, sizeof(sdir), "%s/.kiln", e->kdir);
		assert_int_equal(pf_storage_posix(sdir, true, &inner, &ictx, NULL), 0);
		fault_storage_wrap(inner, ictx, g_use_deferred, &o->storage, &o->storage_ctx,
				   &g_last_fault);
	}
}

static pf_volume_t *vol_init(struct env *e, uint32_t cs, const struct pf_region *r,
			     size_t rlen)
{
	struct pf_volume_opts o;
	struct kiln_err err = { 0 };
	pf_volume_t *v = NULL;

	opts_fill(e, &o, false);
	o.chunk_size = cs;
	o.regions = r;
	o.regions_len = rlen;
	if (pf_volume_init(e->kdir, g_key, &o, &v, &err) != 0)
		fail_msg("init: %s", err.msg);
	return v;
}

static int vol_open(struct env *e, const uint8_t *key, bool fault, pf_volume_t **v,
		    struct kiln_err *err)
{
	struct pf_volume_opts o;

	opts_fill(e, &o, fault);
	return pf_volume_open(e->kdir, key, &o, v, err);
}

static pf_volume_t *vol_reopen(struct env *e)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v = NULL;

	if (vol_open(e, g_key, false, &v, &err) != 0)
		fail_msg("open: %s", err.msg);
	return v;
}

static void check_content(pf_volume_t *v, const char *path, const uint8_t *model, size_t size)
{
	struct kiln_err err = { 0 };
	pf_file_t *f;
	uint8_t *buf = malloc(size + 100);
	uint64_t fsize;
	ssize_t n;

	if (pf_open(v, path, O_RDONLY, 0, &f, &err) != 0)
		fail_msg("open %s: %s", path, err.msg);
	assert_int_equal(pf_get_size(f, &fsize), 0);
	assert_int_equal(fsize, size);
	n = pf_pread(f, buf, size + 100, 0, &err);
	if (n < 0)
		fail_msg("read %s: %s", path, err.msg);
	assert_int_equal(n, size);
	assert_memory_equal(buf, model, size);
	pf_close(f);
	free(buf);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- property test ---- */

static int g_prop_op; /* the property test's current op, for failure messages */

/* The file is base bytes of hole and then the model (size bytes). */
static void check_window(pf_volume_t *v, const char *path, uint64_t base, const uint8_t *model,
			 size_t size)
{
	struct kiln_err err = { 0 };
	uint8_t *buf = malloc(size + 100);
	uint64_t fsize;
	pf_file_t *f;
	ssize_t n;

	if (pf_open(v, path, O_RDONLY, 0, &f, &err) != 0)
		fail_msg("open %s: %s", path, err.msg);
	assert_int_equal(pf_get_size(f, &fsize), 0);
	assert_int_equal(fsize, base + size);
	n = pf_pread(f, buf, size + 100, base, &err);
	if (n < 0)
		fail_msg("read %s: %s", path, err.msg);
	assert_int_equal(n, size);
	for (size_t i = 0; i < size; i++)
		if (buf[i] != model[i])
			fail_msg("op %d: byte %zu is %02x, model %02x", g_prop_op, i, buf[i],
				 model[i]);
	pf_close(f);
	free(buf);
}

struct prop {
	uint64_t seed;
	uint32_t cs;
	enum pf_region_kind kind;
	int ops;
	size_t cap;    /* model bytes (0: 64 KiB) */
	uint64_t base; /* file offset of model byte 0; the bytes before are a hole */
};

/* Random writes, reads, truncates, appends, punched holes, zeroed ranges, seeks,
 * fsyncs and power cuts (with the fault storage's model of what a power loss
 * keeps) on one file through two handles, against a plaintext model. */
static void property_go(struct prop p)
{
	struct env e;
	struct pf_region r = { "", p.kind };
	pf_volume_t *v;
	pf_file_t *f, *f2;
	struct kiln_err err = { 0 };
	uint64_t seed = p.seed, base = p.base;
	uint32_t cs = p.cs;
	size_t cap = p.cap ? p.cap : 64 * 1024, size = 0, committed = 0;
	uint8_t *model = calloc(1, cap), *cmodel = calloc(1, cap), *buf = malloc(cap);

	env_init(&e);
	v = vol_init(&e, cs, &r, 1);
	pf_volume_close(v, NULL);
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	assert_int_equal(pf_open(v, "p", O_RDWR | O_CREAT, 0600, &f, &err), 0);
	assert_int_equal(pf_open(v, "p", O_RDWR, 0, &f2, &err), 0);
	if (base) { /* a far start: the file is never shorter than base */
		assert_int_equal(pf_pwrite(f, "x", 1, base, &err), 1);
		model[0] = cmodel[0] = 'x';
		size = committed = 1;
	}
	assert_int_equal(pf_fsync(f, &err), 0);
	for (int op = 0; op < p.ops; op++) {
		uint64_t x = rnd(&seed) % 100;
		pf_file_t *h = (x & 1) ? f : f2;

		g_prop_op = op;
		if (getenv("PF_PROP_TRACE"))
			fprintf(stderr, "op %d x %llu size %zu\n", op, (unsigned long long)x, size);
		if (x < 36) { /* write */
			size_t off = rnd(&seed) % (cap / 2), len = rnd(&seed) % (cs * 3) + 1;

			if (rnd(&seed) % 8 == 0) /* many whole chunks: the two-thread sealing */
				len = rnd(&seed) % (cs * 24) + 1;

			if (rnd(&seed) % 4 == 0)
				off = size; /* append */
			if (off + len > cap)
				len = cap - off;
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)rnd(&seed);
			if (getenv("PF_PROP_TRACE"))
				fprintf(stderr, "  write off %zu len %zu\n", off, len);
			if (pf_pwrite(h, buf, len, base + off, &err) != (ssize_t)len)
				fail_msg("seed op %d write: %s", op, err.msg);
			memcpy(model + off, buf, len);
			if (off + len > size)
				size = off + len;
		} else if (x < 62) { /* read */
			size_t off = rnd(&seed) % (cap / 2 + 100), len = rnd(&seed) % (cs * 4) + 1;
			size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
			ssize_t n = pf_pread(h, buf, len, base + off, &err);

			if (n < 0)
				fail_msg("op %d read: %s", op, err.msg);
			assert_int_equal(n, want);
			assert_memory_equal(buf, model + off, want);
		} else if (x < 69) { /* truncate */
			size_t ns = rnd(&seed) % 3 == 0 ? 0 : rnd(&seed) % (cap / 2);

			if (getenv("PF_PROP_TRACE"))
				fprintf(stderr, "  truncate %zu\n", ns);
			assert_int_equal(pf_ftruncate(h, base + ns, &err), 0);
			if (ns < size)
				memset(model + ns, 0, size - ns);
			size = ns;
		} else if (x < 74) { /* append via O_APPEND semantics */
			size_t len = rnd(&seed) % cs + 1;
			uint64_t end;

			if (size + len > cap / 2 + cs * 3)
				continue;
			memset(buf, (int)op, len);
			assert_int_equal(pf_append(h, buf, len, &end, &err), (ssize_t)len);
			memcpy(model + size, buf, len);
			size += len;
			assert_int_equal(end, base + size);
		} else if (x < 80) { /* punch a hole, or zero a range (maybe extending) */
			size_t off = rnd(&seed) % (cap / 2), len = rnd(&seed) % (cs * 6) + 1;
			bool zero = rnd(&seed) % 2, keep = !zero || rnd(&seed) % 2;
			int mode = (zero ? PF_FALLOC_ZERO_RANGE : PF_FALLOC_PUNCH_HOLE) |
				   (keep ? PF_FALLOC_KEEP_SIZE : 0);

			if (off + len > cap)
				len = cap - off;
			if (getenv("PF_PROP_TRACE"))
				fprintf(stderr, "  fallocate mode %x off %zu len %zu\n", mode, off, len);
			if (pf_fallocate(h, mode, base + off, len, &err) != 0)
				fail_msg("seed op %d fallocate: %s", op, err.msg);
			if (off < size)
				memset(model + off, 0, (off + len < size ? off + len : size) - off);
			if (!keep && off + len > size)
				size = off + len;
		} else if (x < 84) { /* SEEK_DATA / SEEK_HOLE agree with the model */
			size_t off = rnd(&seed) % (cap / 2);
			uint64_t d, hl;
			int rd = pf_seek_data(h, base + off, &d, &err);
			int rh = pf_seek_hole(h, base + off, &hl, &err);

			if (off >= size) {
				assert_int_equal(rd, -ENXIO);
				assert_int_equal(rh, -ENXIO);
				continue;
			}
			assert_int_equal(rh, 0);
			assert_true(hl >= base + off && hl <= base + size);
			if (rd == -ENXIO) {
				d = base + size;
			} else {
				assert_int_equal(rd, 0);
				assert_true(d >= base + off && d < base + size);
			}
			/* What is skipped as a hole reads as zeros. */
			for (uint64_t i = base + off; i < d; i++)
				assert_int_equal(model[i - base], 0);
		} else if (x < 91) { /* fsync */
			assert_int_equal(pf_fsync(h, &err), 0);
			memcpy(cmodel, model, cap);
			committed = size;
			if (getenv("PF_PROP_COPY")) {
				char cmd[512];
				struct pf_volume_opts o = { .read_only = true };
				pf_volume_t *c;

				snprintf(cmd, sizeof(cmd), "rm -rf %s/copy && mkdir %s/copy && cp -a "
					 "%s/.kiln %s/copy/", e.dir, e.dir, e.kdir, e.dir);
				assert_int_equal(system(cmd), 0);
				snprintf(cmd, sizeof(cmd), "%s/copy", e.dir);
				assert_int_equal(pf_volume_open(cmd, g_key, &o, &c, &err), 0);
				check_window(c, "p", base, cmodel, committed);
				pf_volume_discard(c);
			}
		} else if (x < 95) { /* crash: every later storage op fails */
			struct fault *flt = g_last_fault;

			flt->rng = seed | 1;
			fault_power_cut(flt);
			pf_close(f);
			pf_close(f2);
			pf_volume_close(v, NULL);
			assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
			check_window(v, "p", base, cmodel, committed);
			memcpy(model, cmodel, cap);
			size = committed;
			assert_int_equal(pf_open(v, "p", O_RDWR, 0, &f, &err), 0);
			assert_int_equal(pf_open(v, "p", O_RDWR, 0, &f2, &err), 0);
		} else { /* full compare */
			check_window(v, "p", base, model, size);
		}
	}
	check_window(v, "p", base, model, size);
	pf_close(f);
	pf_close(f2);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	check_window(v, "p", base, model, size);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	free(model);
	free(cmodel);
	free(buf);
}

static void property_run(uint64_t seed, uint32_t cs, enum pf_region_kind kind, int ops)
{
	property_go((struct prop){ .seed = seed, .cs = cs, .kind = kind, .ops = ops });
}

/* Files of several tag blocks (1024 chunks each), and a window just below and
 * above 4 GiB of a sparse file. */
static void test_property_tree_and_big(void **state)
{
	property_go((struct prop){ .seed = 0x7ee, .cs = 512, .kind = PF_REGION_ENCRYPTED,
				   .ops = 800, .cap = 2 * 1024 * 1024 });
	property_go((struct prop){ .seed = 0xb16, .cs = 512, .kind = PF_REGION_ENCRYPTED,
				   .ops = 1500, .base = (4ull << 30) - 20000 });
	property_go((struct prop){ .seed = 0xb17, .cs = 4096, .kind = PF_REGION_AUTHENTICATED,
				   .ops = 800, .base = (5ull << 30) + 3 });
}

static void test_property_encrypted(void **state)
{
	property_run(0x1234567, 512, PF_REGION_ENCRYPTED, 3000);
	property_run(0xdeadbeef, 4096, PF_REGION_ENCRYPTED, 1500);
}

/* The commit with overlapped syncs (runtime storage): same properties. */
static void test_property_deferred_syncs(void **state)
{
	g_use_deferred = true;
	property_run(0x5eed, 512, PF_REGION_ENCRYPTED, 3000);
	property_run(0xfeed, 4096, PF_REGION_AUTHENTICATED, 1500);
	g_use_deferred = false;
	assert_int_equal(g_fault_last_unwaited, 0);
}

static void test_property_authenticated_plain(void **state)
{
	property_run(0x42, 512, PF_REGION_AUTHENTICATED, 1500);
	property_run(0x77, 1024, PF_REGION_PLAIN, 1500);
}

/* ---- the namespace against the kernel ---- */
/* Random namespace calls run on a volume and, as the same system calls, on a
 * directory of the host: every result must be the kernel's (errno included),
 * and after every call the two trees must agree: names, types, link counts,
 * modes, sizes, contents, symlink targets, and which names share an inode.
 * Paths use a few names at depth <= 3 and symlinks with relative targets
 * without "..", so that nothing leaves either tree. */
static const char *const g_names[] = { "a", "b", "c", "d" };

static void rnd_path(uint64_t *seed, char *out, size_t size)
{
	int depth = 1 + (int)(rnd(seed) % 3);

	out[0] = '\0';
	for (int i = 0; i < depth; i++) {
		size_t n = strlen(out);

		snprintf(out + n, size - n, "%s%s", i ? "/" : "", g_names[rnd(seed) % 4]);
	}
	if (rnd(seed) % 16 == 0)
		strncat(out, "/", size - strlen(out) - 1);
}

static char g_oracle_op[256]; /* the call just made, for failure messages */

struct ino_map {
	uint64_t host[512], vol[512];
	size_t n;
};

/* Host inode h and volume inode p must be the same object every time. */
static void ino_match(struct ino_map *m, uint64_t h, uint64_t p, const char *path)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->host[i] == h || m->vol[i] == p) {
			if (m->host[i] != h || m->vol[i] != p)
				fail_msg("%s: inode identity differs from the kernel's", path);
			return;
		}
	}
	assert_true(m->n < 512);
	m->host[m->n] = h;
	m->vol[m->n++] = p;
}

static void tree_compare(pf_volume_t *v, int hfd, const char *dir, struct ino_map *m)
{
	struct kiln_err err = { 0 };
	char **names = NULL;
	size_t n = 0, hn = 0;
	struct dirent *de;
	DIR *d;
	int fd = dir[0] ? openat(hfd, dir, O_RDONLY | O_DIRECTORY) : dup(hfd);

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	rewinddir(d); /* a dup of hfd shares its offset */
	if (pf_readdir(v, dir, &names, &n, &err) != 0)
		fail_msg("readdir %s: %s", dir, err.msg);
	while ((de = readdir(d)) != NULL) {
		char path[PF_MAX_PATH], target[256], ptarget[256];
		struct stat hs;
		struct pf_stat ps;
		bool found = false;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		hn++;
		for (size_t i = 0; i < n; i++)
			found |= strcmp(names[i], de->d_name) == 0;
		if (!found)
			fail_msg("after %s: %s/%s: on the host, not in the volume", g_oracle_op,
				 dir, de->d_name);
		snprintf(path, sizeof(path), "%s%s%s", dir, dir[0] ? "/" : "", de->d_name);
		assert_int_equal(fstatat(hfd, path, &hs, AT_SYMLINK_NOFOLLOW), 0);
		if (pf_statat(v, PF_ROOT_INO, path, PF_AT_NOFOLLOW, NULL, &ps, &err) != 0)
			fail_msg("lstat %s: %s", path, err.msg);
		ino_match(m, hs.st_ino, ps.ino, path);
		if (hs.st_nlink != ps.nlink)
			fail_msg("after %s: %s: nlink %u, kernel %u", g_oracle_op, path, ps.nlink,
				 (unsigned)hs.st_nlink);
		if ((hs.st_mode & 07777) != ps.mode && !S_ISLNK(hs.st_mode))
			fail_msg("%s: mode %o, kernel %o", path, ps.mode,
				 (unsigned)(hs.st_mode & 07777));
		if (S_ISDIR(hs.st_mode)) {
			assert_int_equal(ps.type, PF_TYPE_DIR);
			tree_compare(v, hfd, path, m);
		} else if (S_ISLNK(hs.st_mode)) {
			ssize_t a = readlinkat(hfd, path, target, sizeof(target));
			ssize_t b = pf_readlinkat(v, PF_ROOT_INO, path, ptarget, sizeof(ptarget),
						  NULL, NULL);

			assert_int_equal(ps.type, PF_TYPE_LNK);
			assert_int_equal(a, b);
			assert_memory_equal(target, ptarget, (size_t)a);
		} else if (S_ISREG(hs.st_mode)) {
			uint8_t hb[512], pb[512];
			int f = openat(hfd, path, O_RDONLY);
			pf_file_t *pf;
			ssize_t a, b;

			assert_int_equal(ps.type, PF_TYPE_REG);
			assert_int_equal(ps.size, hs.st_size);
			assert_true(f >= 0);
			a = pread(f, hb, sizeof(hb), 0);
			close(f);
			assert_int_equal(pf_open(v, path, O_RDONLY, 0, &pf, &err), 0);
			b = pf_pread(pf, pb, sizeof(pb), 0, &err);
			pf_close(pf);
			assert_int_equal(a, b);
			assert_memory_equal(hb, pb, (size_t)a);
		} else {
			assert_int_equal(ps.type, S_ISFIFO(hs.st_mode) ? PF_TYPE_FIFO :
						  PF_TYPE_SOCK);
		}
	}
	if (hn != n)
		fail_msg("after %s: %s: %zu entries in the volume, %zu on the host", g_oracle_op,
			 dir, n, hn);
	closedir(d);
	pf_names_free(names, n);
}

static int host_err(int r)
{
	return r < 0 ? -errno : 0;
}

static void oracle_run(uint64_t seed, int ops)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct ino_map map = { .n = 0 };
	char host[128];
	pf_volume_t *v;
	int hfd;

	env_init(&e);
	snprintf(host, sizeof(host), "%s/host", e.dir);
	assert_int_equal(mkdir(host, 0755), 0);
	hfd = open(host, O_RDONLY | O_DIRECTORY);
	assert_true(hfd >= 0);
	v = vol_init(&e, 512, NULL, 0);
	umask(0);
	for (int op = 0; op < ops; op++) {
		char p1[64], p2[64];
		uint64_t x = rnd(&seed) % 100;
		int hr, pr;
		const char *what;

		rnd_path(&seed, p1, sizeof(p1));
		rnd_path(&seed, p2, sizeof(p2));
		err.code = 0;
		if (x < 14) {
			what = "mkdir";
			hr = host_err(mkdirat(hfd, p1, 0750));
			pr = pf_mkdirat(v, PF_ROOT_INO, p1, 0750, NULL, &err);
		} else if (x < 30) {
			char data[64];
			size_t len = rnd(&seed) % sizeof(data), off = rnd(&seed) % 600;
			int fl = O_WRONLY | O_CREAT | (rnd(&seed) % 3 == 0 ? O_TRUNC : 0) |
				 (rnd(&seed) % 5 == 0 ? O_EXCL : 0) |
				 (rnd(&seed) % 5 == 0 ? O_NOFOLLOW : 0);
			/* O_NONBLOCK: a FIFO without a reader is ENXIO, not a hang. */
			int fd = openat(hfd, p1, fl | O_NONBLOCK, 0640);
			pf_file_t *f;

			what = "open+write";
			for (size_t i = 0; i < len; i++)
				data[i] = (char)('A' + rnd(&seed) % 26);
			hr = host_err(fd);
			pr = pf_open(v, p1, fl, 0640, &f, &err);
			if (fd >= 0) {
				assert_int_equal(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
				close(fd);
			}
			if (pr == 0) {
				assert_int_equal(pf_pwrite(f, data, len, off, &err), (ssize_t)len);
				pf_close(f);
			}
		} else if (x < 40) {
			what = "unlink";
			hr = host_err(unlinkat(hfd, p1, 0));
			pr = pf_unlinkat(v, PF_ROOT_INO, p1, 0, NULL, &err);
		} else if (x < 48) {
			what = "rmdir";
			hr = host_err(unlinkat(hfd, p1, AT_REMOVEDIR));
			pr = pf_unlinkat(v, PF_ROOT_INO, p1, PF_AT_REMOVEDIR, NULL, &err);
		} else if (x < 64) {
			unsigned fl = rnd(&seed) % 4 == 0 ? RENAME_NOREPLACE :
				      rnd(&seed) % 4 == 0 ? RENAME_EXCHANGE : 0;

			what = fl == RENAME_NOREPLACE ? "rename-noreplace" :
			       fl == RENAME_EXCHANGE ? "rename-exchange" : "rename";
			hr = host_err(renameat2(hfd, p1, hfd, p2, fl));
			pr = pf_renameat2(v, PF_ROOT_INO, p1, PF_ROOT_INO, p2,
					  fl == RENAME_NOREPLACE ? PF_RENAME_NOREPLACE :
					  fl == RENAME_EXCHANGE ? PF_RENAME_EXCHANGE : 0, NULL,
					  &err);
		} else if (x < 72) {
			bool follow = rnd(&seed) % 4 == 0;

			what = "link";
			hr = host_err(linkat(hfd, p1, hfd, p2, follow ? AT_SYMLINK_FOLLOW : 0));
			pr = pf_linkat(v, PF_ROOT_INO, p1, PF_ROOT_INO, p2,
				       follow ? PF_AT_FOLLOW : 0, NULL, &err);
		} else if (x < 82) {
			char target[64];

			/* Relative targets without "..": inside both trees. */
			rnd_path(&seed, target, sizeof(target));
			what = "symlink";
			hr = host_err(symlinkat(target, hfd, p1));
			pr = pf_symlinkat(v, target, PF_ROOT_INO, p1, NULL, &err);
		} else if (x < 86) {
			mode_t m = rnd(&seed) % 2 ? S_IFIFO : S_IFREG;

			what = "mknod";
			hr = host_err(mknodat(hfd, p1, m | 0600, 0));
			pr = pf_mknodat(v, PF_ROOT_INO, p1, m | 0600, NULL, &err);
		} else if (x < 90) {
			mode_t m = (mode_t)(rnd(&seed) % 01000);

			what = "chmod";
			hr = host_err(fchmodat(hfd, p1, m, 0));
			pr = pf_setattrat(v, PF_ROOT_INO, p1, 0,
					  &(struct pf_setattr){ .valid = PF_SET_MODE, .mode = m },
					  NULL, &err);
		} else if (x < 94) {
			uint64_t size = rnd(&seed) % 700;
			char full[256];

			snprintf(full, sizeof(full), "%s/%s", host, p1);
			what = "truncate";
			hr = host_err(truncate(full, (off_t)size));
			pr = pf_setattrat(v, PF_ROOT_INO, p1, 0,
					  &(struct pf_setattr){ .valid = PF_SET_SIZE,
								.size = size },
					  NULL, &err);
		} else if (x < 97) {
			struct stat hs;
			struct pf_stat ps;
			bool nofollow = rnd(&seed) % 2;

			what = nofollow ? "lstat" : "stat";
			hr = host_err(fstatat(hfd, p1, &hs, nofollow ? AT_SYMLINK_NOFOLLOW : 0));
			pr = pf_statat(v, PF_ROOT_INO, p1, nofollow ? PF_AT_NOFOLLOW : 0, NULL,
				       &ps, &err);
			if (!hr && !pr)
				ino_match(&map, hs.st_ino, ps.ino, p1);
		} else {
			what = "reopen";
			assert_int_equal(pf_volume_close(v, &err), 0);
			v = vol_reopen(&e);
			hr = pr = 0;
		}
		if (hr != pr && getenv("PF_ORACLE_DEBUG")) {
			char cmd[300];

			snprintf(cmd, sizeof(cmd), "cd %s && find . -printf '%%y %%i %%p %%l\\n'",
				 host);
			(void)system(cmd);
		}
		if (hr != pr)
			fail_msg("seed op %d: %s %s %s: kernel %d (%s), volume %d (%s)", op, what,
				 p1, p2, hr, strerror(-hr), pr, err.msg);
		snprintf(g_oracle_op, sizeof(g_oracle_op), "op %d %s %s %s -> %d", op, what, p1,
			 p2, hr);
		tree_compare(v, hfd, "", &map);
	}
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	tree_compare(v, hfd, "", &map);
	pf_volume_close(v, NULL);
	close(hfd);
	env_free(&e);
}

static void test_namespace_vs_kernel(void **state)
{
	const char *extra = getenv("KILN_PF_ORACLE_SEEDS"); /* more, by hand */

	oracle_run(0xabcdef12345ull, 1500);
	oracle_run(0x1357924680ull, 1500);
	for (uint64_t i = 1, n = extra ? strtoull(extra, NULL, 10) : 0; i <= n; i++)
		oracle_run(i * 0x9e3779b97f4a7c15ull, 3000);
}

/* ---- namespace ---- */
static void test_namespace(void **state)
{
	struct env e;
	pf_volume_t *v;
	pf_file_t *f, *g;
	struct kiln_err err = { 0 };
	struct pf_stat st;
	char **names;
	size_t n;
	uint8_t buf[16];

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_open(v, "d/x", O_RDWR | O_CREAT, 0600, &f, &err), -ENOENT);
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), 0);
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), -EEXIST);
	assert_int_equal(pf_open(v, "d/x", O_RDWR | O_CREAT, 0640, &f, &err), 0);
	assert_int_equal(pf_open(v, "d/x", O_RDWR | O_CREAT | O_EXCL, 0640, &g, &err), -EEXIST);
	assert_int_equal(pf_pwrite(f, "hello", 5, 0, &err), 5);
	assert_int_equal(pf_open(v, "../x", O_RDONLY, 0, &g, &err), -EXDEV);
	assert_int_equal(pf_open(v, "d", O_RDONLY, 0, &g, &err), -EISDIR);
	assert_int_equal(pf_rmdir(v, "d", &err), -ENOTEMPTY);
	assert_int_equal(pf_stat(v, "/d/x", &st, &err), 0);
	assert_int_equal(st.size, 5);
	assert_int_equal(st.mode, 0640);
	assert_false(st.is_dir);
	assert_int_equal(pf_rename(v, "d/x", "y", &err), 0);
	assert_int_equal(pf_stat(v, "d/x", &st, &err), -ENOENT);
	{
		/* The root has no entry of its own: its mtime is its newest child's. */
		struct pf_stat root, child;

		assert_int_equal(pf_stat(v, "y", &child, &err), 0);
		assert_int_equal(pf_stat(v, "", &root, &err), 0);
		assert_true(root.is_dir);
		assert_true(child.mtime_ns > 0);
		assert_true(root.mtime_ns >= child.mtime_ns);
	}
	/* The handle follows the rename. */
	assert_int_equal(pf_pwrite(f, "!", 1, 5, &err), 1);
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(pf_readdir(v, "", &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "d");
	assert_string_equal(names[1], "y");
	pf_names_free(names, n);
	/* Unlink keeps the open handle usable (POSIX). */
	assert_int_equal(pf_unlink(v, "y", &err), 0);
	assert_int_equal(pf_pread(f, buf, sizeof(buf), 0, &err), 6);
	assert_memory_equal(buf, "hello!", 6);
	pf_close(f);
	assert_int_equal(pf_rmdir(v, "d", &err), 0);
	assert_int_equal(pf_readdir(v, "/", &names, &n, &err), 0);
	assert_int_equal(n, 0);
	pf_names_free(names, n);
	/* Directory rename carries its files; many files open at once. */
	assert_int_equal(pf_mkdir(v, "a", 0700, &err), 0);
	{
		pf_file_t *fs[64];
		char p[32];

		for (int i = 0; i < 64; i++) {
			snprintf(p, sizeof(p), "a/f%d", i);
			assert_int_equal(pf_open(v, p, O_RDWR | O_CREAT, 0600, &fs[i], &err), 0);
			assert_int_equal(pf_pwrite(fs[i], p, strlen(p), 0, &err),
					 (ssize_t)strlen(p));
		}
		for (int i = 0; i < 64; i++)
			pf_close(fs[i]);
	}
	assert_int_equal(pf_rename(v, "a", "b", &err), 0);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	check_content(v, "b/f63", (const uint8_t *)"a/f63", 5);
	assert_int_equal(pf_stat(v, "a/f1", &st, &err), -ENOENT);
	assert_int_equal(pf_stat(v, "y", &st, &err), -ENOENT);
	pf_volume_close(v, NULL);
	env_free(&e);
}

static void test_regions(void **state)
{
	struct env e;
	struct pf_region r[] = { { "pub", PF_REGION_PLAIN },
				 { "pub/signed", PF_REGION_AUTHENTICATED } };
	pf_volume_t *v;
	struct kiln_err err = { 0 };

	env_init(&e);
	v = vol_init(&e, 0, r, 2);
	assert_int_equal(pf_volume_region(v, "x"), PF_REGION_ENCRYPTED);
	assert_int_equal(pf_volume_region(v, "pub/a"), PF_REGION_PLAIN);
	assert_int_equal(pf_volume_region(v, "pubx"), PF_REGION_ENCRYPTED);
	assert_int_equal(pf_volume_region(v, "pub/signed/k"), PF_REGION_AUTHENTICATED);
	assert_int_equal(pf_mkdir(v, "pub", 0700, &err), 0);
	{
		pf_file_t *f;

		assert_int_equal(pf_open(v, "pub/a", O_RDWR | O_CREAT, 0600, &f, &err), 0);
		pf_close(f);
	}
	assert_int_equal(pf_rename(v, "pub/a", "a", &err), -EXDEV);
	pf_volume_close(v, NULL);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_region(v, "pub/signed/k"), PF_REGION_AUTHENTICATED);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* ---- keys, tampering, rollback ---- */
static void file_put(pf_file_t *f, const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };

	assert_int_equal(pf_pwrite(f, data, size, 0, &err), (ssize_t)size);
	if (pf_fsync(f, &err) != 0)
		fail_msg("fsync: %s", err.msg);
}

/* The first commit of an open skips a version and is a checkpoint
 * (commit.c, next_version): tests of records commit once after an open. */
static void first_commit(pf_volume_t *v, const char *path, const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	pf_file_t *f;

	assert_int_equal(pf_open(v, path, O_RDWR, 0, &f, &err), 0);
	file_put(f, data, size);
	assert_int_equal(v->log_records, 0);
	pf_close(f);
}

static void write_file(pf_volume_t *v, const char *path, const void *data, size_t size)
{
	struct kiln_err err = { 0 };
	pf_file_t *f;

	assert_int_equal(pf_open(v, path, O_RDWR | O_CREAT | O_TRUNC, 0600, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, data, size, 0, &err), (ssize_t)size);
	assert_int_equal(pf_fsync(f, &err), 0);
	pf_close(f);
}

/* A volume of 1024-byte chunks holding "f" (data), opened again: on the
 * fault storage (faults) or on plain storage. */
static pf_volume_t *vol_with_f(struct env *e, const void *data, size_t size, bool faults)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v;

	env_init(e);
	v = vol_init(e, 1024, NULL, 0);
	write_file(v, "f", data, size);
	pf_volume_close(v, NULL);
	if (!faults)
		return vol_reopen(e);
	if (vol_open(e, g_key, true, &v, &err) != 0)
		fail_msg("open: %s", err.msg);
	return v;
}

/* Large writes are sealed on two threads (the volume's sealer thread). A
 * forked child has no such thread: its writes must be sealed alone, correctly
 * and without waiting for the parent's thread. */
static void test_fork_sealer(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	size_t size = 1024 * 1024 + 4321;
	uint8_t *data = malloc(size), *back = malloc(size);
	pf_volume_t *v;
	pf_file_t *f;
	pid_t pid;
	int st;

	assert_non_null(data);
	assert_non_null(back);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 12));
	env_init(&e);
	v = vol_init(&e, 4096, NULL, 0);
	write_file(v, "a", data, size); /* starts the sealer thread */
	check_content(v, "a", data, size);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Unaligned: partial first and last chunks around whole ones. */
		bool ok = pf_open(v, "b", O_RDWR | O_CREAT, 0600, &f, &err) == 0 &&
			  pf_pwrite(f, data, size - 7, 7, &err) == (ssize_t)(size - 7) &&
			  pf_pread(f, back, size, 0, &err) == (ssize_t)size &&
			  memcmp(back + 7, data, size - 7) == 0;

		_exit(ok ? 0 : 1); /* no commit: the parent owns the volume */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* The parent's thread still works after the fork. */
	assert_int_equal(pf_open(v, "a", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, data + 5, size - 5, 3, &err), (ssize_t)(size - 5));
	assert_int_equal(pf_fsync(f, &err), 0);
	pf_close(f);
	memmove(data + 3, data + 5, size - 5);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	check_content(v, "a", data, size);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	free(data);
	free(back);
}

static void backing_path(struct env *e, pf_volume_t *v, char *out, size_t size)
{
	/* The only 32-hex file in .kiln when the volume holds one file. */
	char cmd[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls %s/.kiln | grep -E '^[0-9a-f]{32}$'", e->kdir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out + strlen(e->kdir) + 7, (int)(size - strlen(e->kdir) - 7), p));
	pclose(p);
	memcpy(out, e->kdir, strlen(e->kdir));
	memcpy(out + strlen(e->kdir), "/.kiln/", 7);
	out[strcspn(out, "\n")] = '\0';
}

static void flip_byte(const char *path, long off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	if (off < 0)
		off += lseek(fd, 0, SEEK_END);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void test_wrong_key_and_tamper(void **state)
{
	struct env e;
	pf_volume_t *v;
	struct kiln_err err = { 0 };
	char path[256] = { 0 }, meta[160];
	uint8_t data[40000]; /* 10 chunks: enough for a tag sidecar */
	pf_file_t *f;

	memset(data, 'q', sizeof(data));
	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	write_file(v, "f", data, sizeof(data));
	pf_volume_close(v, NULL);
	assert_int_equal(vol_open(&e, g_key2, false, &v, &err), -KILN_EKEY);
	assert_non_null(strstr(err.msg, "wrong volume key"));
	backing_path(&e, NULL, path, sizeof(path));
	/* A flipped ciphertext byte names chunk 1. */
	flip_byte(path, PF_HDR_SIZE + (4096 + PF_SLOT_META) + PF_SLOT_META + 5);
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
	{
		uint8_t buf[10000];

		assert_int_equal(pf_pread(f, buf, sizeof(buf), 0, &err), -KILN_EAUTH);
		assert_non_null(strstr(err.msg, "file f: chunk 1 is corrupt"));
	}
	pf_close(f);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), -KILN_EAUTH);
	pf_volume_close(v, NULL);
	/* A flipped tag: the chunk read fails (the tag list comes from the sidecar);
	 * without the tag sidecar the block of tags read from the slots fails its
	 * hash at the first read of it; without either sidecar the scan at open
	 * breaks the root. */
	flip_byte(path, PF_HDR_SIZE + (4096 + PF_SLOT_META) + PF_SLOT_META + 5);
	flip_byte(path, PF_HDR_SIZE + PF_NONCE_SIZE + 3);
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
	{
		uint8_t buf[100];

		assert_int_equal(pf_pread(f, buf, sizeof(buf), 0, &err), -KILN_EAUTH);
		assert_non_null(strstr(err.msg, "file f: chunk 0 is corrupt"));
	}
	pf_close(f);
	pf_volume_close(v, NULL);
	{
		char side[300];

		snprintf(side, sizeof(side), "%s.t", path);
		assert_int_equal(unlink(side), 0);
	}
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
	{
		uint8_t buf[100];

		assert_int_equal(pf_pread(f, buf, sizeof(buf), 0, &err), -KILN_EAUTH);
		assert_non_null(strstr(err.msg, "file f: chunks 0..9 do not match the metadata"));
	}
	pf_close(f);
	pf_volume_close(v, NULL);
	{
		char side[300];

		snprintf(side, sizeof(side), "%s.h", path);
		assert_int_equal(unlink(side), 0);
	}
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), -KILN_EAUTH);
	assert_non_null(strstr(err.msg, "file f: content does not match"));
	pf_volume_close(v, NULL);
	flip_byte(path, PF_HDR_SIZE + PF_NONCE_SIZE + 3);
	/* Corrupt metadata. */
	snprintf(meta, sizeof(meta), "%s/.kiln/meta", e.kdir);
	flip_byte(meta, -3);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EAUTH);
	assert_non_null(strstr(err.msg, "metadata: corrupt"));
	flip_byte(meta, -3);
	flip_byte(meta, 0);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EFORMAT);
	flip_byte(meta, 0);
	v = vol_reopen(&e);
	check_content(v, "f", data, sizeof(data));
	pf_volume_close(v, NULL);
	env_free(&e);
}

static void test_rollback(void **state)
{
	struct env e;
	pf_volume_t *v;
	struct kiln_err err = { 0 };
	char meta[160], cmd[400];

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	write_file(v, "f", "one", 3);
	snprintf(meta, sizeof(meta), "%s/.kiln/meta", e.kdir);
	snprintf(cmd, sizeof(cmd), "cp -a %s %s.old", meta, meta);
	assert_int_equal(system(cmd), 0);
	/* A directory: a checkpoint (a new file alone is a log record). */
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), 0);
	write_file(v, "g", "two", 3);
	assert_int_equal(pf_volume_version(v), 3);
	pf_volume_close(v, NULL);
	snprintf(cmd, sizeof(cmd), "cp -a %s.old %s", meta, meta);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	assert_non_null(strstr(err.msg, "found version 2, expected 3"));
	/* A prepared-but-not-committed version is accepted (crash between rename and
	 * commit). */
	{
		FILE *t = fopen(e.vfile, "w");

		fprintf(t, "1 2\n");
		fclose(t);
	}
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), 2);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* ---- publish: namespace changes visible without being durable ---- */
static int count_backing(struct env *e)
{
	char cmd[256];
	int n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls %s/.kiln | grep -cE '^[0-9a-f]{32}$'", e->kdir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void copy_meta(struct env *e, const char *from, const char *to)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "cp %s/.kiln/%s %s/.kiln/%s", e->kdir, from, e->kdir, to);
	assert_int_equal(system(cmd), 0);
}

/* Save the storage directory aside, or put the saved copy back: two crash
 * states of one moment are checked one after the other. */
static void snapshot(struct env *e, const char *how)
{
	char cmd[400];

	if (strcmp(how, "save") == 0)
		snprintf(cmd, sizeof(cmd), "cp -a %s/.kiln %s/saved", e->kdir, e->dir);
	else
		snprintf(cmd, sizeof(cmd), "rm -rf %s/.kiln && cp -a %s/saved %s/.kiln", e->kdir,
			 e->dir, e->kdir);
	assert_int_equal(system(cmd), 0);
}

static void expect_missing(pf_volume_t *v, const char *path)
{
	struct pf_stat st;

	assert_int_equal(pf_stat(v, path, &st, NULL), -ENOENT);
}

static bool storage_has(struct env *e, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/.kiln/%s", e->kdir, name);
	return access(path, F_OK) == 0;
}

static void test_publish(void **state)
{
	struct env e;
	pf_volume_t *v;
	pf_file_t *f;
	struct pf_stat st;
	struct kiln_err err = { 0 };
	char a_path[256], cmd[600];

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	write_file(v, "a", "alpha", 5);
	assert_int_equal(pf_volume_version(v), 2);
	copy_meta(&e, "meta", "durable");
	backing_path(&e, v, a_path, sizeof(a_path));
	/* Namespace-only changes: create (empty), unlink, mkdir. */
	assert_int_equal(pf_open(v, "b", O_RDWR | O_CREAT, 0640, &f, &err), 0);
	assert_int_equal(pf_close(f), 0);
	assert_int_equal(pf_unlink(v, "a", &err), 0);
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), 0);
	assert_int_equal(pf_volume_publish(v, &err), 0);
	/* Same version (no freshness round), meta untouched, the namespace in
	 * meta.pub; a's backing file stays until a durable commit: the durable
	 * metadata still refers to it. */
	assert_int_equal(pf_volume_version(v), 2);
	assert_true(storage_has(&e, "meta.pub"));
	assert_int_equal(count_backing(&e), 2);
	snprintf(cmd, sizeof(cmd), "cmp -s %s/.kiln/meta %s/.kiln/durable", e.kdir, e.kdir);
	assert_int_equal(system(cmd), 0);
	copy_meta(&e, "meta.pub", "published");
	/* An empty published file written but never fsync'd, then a crash. */
	assert_int_equal(pf_open(v, "b", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, "debris", 6, 0, &err), 6);
	pf_volume_discard(v); /* the crash: nothing written, handles dropped */
	snapshot(&e, "save");

	/* Crash state 1: the publish was lost (meta.pub torn: it is ignored). */
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/.kiln/meta.pub", e.kdir);
		assert_int_equal(truncate(path, 100), 0);
	}
	v = vol_reopen(&e);
	check_content(v, "a", (const uint8_t *)"alpha", 5);
	expect_missing(v, "b");
	expect_missing(v, "d");
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_discard(v);

	/* Crash state 2: the publish landed. b's debris is cut (an empty file
	 * keeps no journal); a's backing file is not removed yet (the durable
	 * metadata names it). */
	snapshot(&e, "restore");
	v = vol_reopen(&e);
	expect_missing(v, "a");
	assert_int_equal(pf_stat(v, "b", &st, &err), 0);
	assert_int_equal(st.size, 0);
	assert_int_equal(st.mode, 0640);
	assert_int_equal(pf_stat(v, "d", &st, &err), 0);
	assert_true(st.is_dir);
	check_content(v, "b", (const uint8_t *)"", 0);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	assert_int_equal(count_backing(&e), 2);
	pf_volume_discard(v);

	/* A published empty file whose backing file a crash lost (its creation
	 * was never synced) opens empty, and is repaired for writing; after the
	 * durable commit meta.pub (an older version now) is ignored, and the next
	 * open collects a's orphan. */
	snapshot(&e, "restore");
	/* b's backing file: the one that is not a's. */
	snprintf(cmd, sizeof(cmd), "cd %s/.kiln && for f in $(ls | grep -E '^[0-9a-f]{32}$'); "
		 "do [ \"%s/.kiln/$f\" = \"%s\" ] || rm $f; done", e.kdir, e.kdir, a_path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(count_backing(&e), 1);
	v = vol_reopen(&e);
	check_content(v, "b", (const uint8_t *)"", 0);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	write_file(v, "b", "beta", 4);
	check_content(v, "b", (const uint8_t *)"beta", 4);
	assert_int_equal(pf_volume_version(v), 4); /* 3 skipped: an open's first commit */
	pf_volume_close(v, NULL);
	v = vol_reopen(&e);
	assert_int_equal(count_backing(&e), 1);
	check_content(v, "b", (const uint8_t *)"beta", 4);
	expect_missing(v, "a");
	pf_volume_close(v, NULL);

	/* The durable commit moved the version: the published metadata of the older
	 * version is ignored, never taken for the current state. */
	copy_meta(&e, "published", "meta.pub");
	v = vol_reopen(&e);
	check_content(v, "b", (const uint8_t *)"beta", 4);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* After a publish, the next fsync of any file is a durable commit of
 * everything, and removes the backing files of unlinked files. */
static void test_publish_then_commit(void **state)
{
	struct env e;
	pf_volume_t *v;
	pf_file_t *f;
	struct kiln_err err = { 0 };

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	write_file(v, "a", "alpha", 5);
	write_file(v, "keep", "k", 1);
	assert_int_equal(pf_unlink(v, "a", &err), 0);
	assert_int_equal(pf_rename(v, "keep", "kept", &err), 0);
	assert_int_equal(pf_volume_publish(v, &err), 0);
	assert_int_equal(pf_volume_version(v), 3);
	assert_int_equal(count_backing(&e), 2);
	/* A file with data to commit: publish is a flush (durable). */
	assert_int_equal(pf_open(v, "c", O_RDWR | O_CREAT, 0600, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, "gamma", 5, 0, &err), 5);
	assert_int_equal(pf_volume_publish(v, &err), 0);
	assert_int_equal(pf_volume_version(v), 4);
	assert_int_equal(count_backing(&e), 2); /* kept, c */
	/* fsync of a clean file after a publish commits the publish. */
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), 0);
	assert_int_equal(pf_volume_publish(v, &err), 0);
	assert_int_equal(pf_volume_version(v), 4);
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(pf_volume_version(v), 5);
	pf_close(f);
	pf_volume_discard(v);
	v = vol_reopen(&e);
	check_content(v, "kept", (const uint8_t *)"k", 1);
	check_content(v, "c", (const uint8_t *)"gamma", 5);
	expect_missing(v, "a");
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* ---- namespace v2: what the kernel oracle does not cover ---- */

/* Unlink while open: the inode lives on without a name; its data goes with the
 * last handle; the directory can be removed meanwhile. Hard links share one
 * inode and its data. */
static void test_links_and_unlink_open(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_stat st, st2;
	pf_volume_t *v;
	pf_file_t *f, *g;
	uint8_t buf[32];
	pf_ino_t ino;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	write_file(v, "d/f", "hello", 5);
	assert_int_equal(pf_linkat(v, PF_ROOT_INO, "d/f", PF_ROOT_INO, "g", 0, NULL, &err), 0);
	assert_int_equal(pf_stat(v, "g", &st, &err), 0);
	assert_int_equal(pf_stat(v, "d/f", &st2, &err), 0);
	assert_int_equal(st.ino, st2.ino);
	assert_int_equal(st.nlink, 2);
	ino = st.ino;
	/* Writes through one name are read through the other. */
	assert_int_equal(pf_open(v, "g", O_RDWR, 0, &g, &err), 0);
	assert_int_equal(pf_pwrite(g, "J", 1, 0, &err), 1);
	assert_int_equal(pf_fsync(g, &err), 0);
	pf_close(g);
	check_content(v, "d/f", (const uint8_t *)"Jello", 5);
	/* Open, then unlink every name and the directory. */
	assert_int_equal(pf_open(v, "d/f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_unlink(v, "d/f", &err), 0);
	assert_int_equal(pf_unlink(v, "g", &err), 0);
	assert_int_equal(pf_rmdir(v, "d", &err), 0);
	assert_int_equal(pf_fstat(f, &st), 0);
	assert_int_equal(st.nlink, 0);
	assert_int_equal(st.ino, ino);
	assert_int_equal(pf_pwrite(f, "!", 1, 5, &err), 1);
	assert_int_equal(pf_pread(f, buf, sizeof(buf), 0, &err), 6);
	assert_memory_equal(buf, "Jello!", 6);
	assert_int_equal(pf_getattr(v, ino, &st), 0);
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(pf_volume_flush(v, &err), 0);
	pf_close(f);
	assert_int_equal(pf_getattr(v, ino, &st), -ENOENT);
	assert_int_equal(pf_volume_close(v, &err), 0);
	/* Nothing is left: no name, no backing file. */
	assert_int_equal(count_backing(&e), 0);
	v = vol_reopen(&e);
	expect_missing(v, "g");
	expect_missing(v, "d");
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* Calls by inode number (kiln fs mount's low-level FUSE server): open, setattr
 * (also of an unlinked file and with an explicit ctime), readlink, link, and
 * O_TMPFILE files that a link names or that go with their last handle. */
static void test_calls_by_inode(void **state)
{
	const struct pf_cred bob = { 1001, 1001, NULL, 0 };
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_stat st, d1, d2;
	pf_volume_t *v;
	pf_file_t *f, *t;
	char buf[16];
	pf_ino_t ino, tino, dino;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	write_file(v, "d/f", "hello", 5);
	assert_int_equal(pf_stat(v, "d/f", &st, &err), 0);
	ino = st.ino;
	assert_int_equal(pf_stat(v, "d", &d1, &err), 0);
	dino = d1.ino;
	assert_int_equal(pf_open_ino(v, ino, O_RDWR, NULL, &f, &err), 0);
	assert_int_equal(pf_pread(f, buf, sizeof(buf), 0, &err), 5);
	assert_int_equal(pf_open_ino(v, dino, O_RDONLY, NULL, &t, &err), -EISDIR);
	assert_int_equal(pf_open_ino(v, 9999, O_RDONLY, NULL, &t, &err), -ENOENT);
	assert_int_equal(pf_symlinkat(v, "d/f", PF_ROOT_INO, "s", NULL, &err), 0);
	assert_int_equal(pf_statat(v, PF_ROOT_INO, "s", PF_AT_NOFOLLOW, NULL, &st, &err), 0);
	assert_int_equal(pf_readlink_ino(v, st.ino, buf, sizeof(buf), &err), 3);
	assert_memory_equal(buf, "d/f", 3);
	assert_int_equal(pf_open_ino(v, st.ino, O_RDONLY, NULL, &t, &err), -ELOOP);
	assert_int_equal(pf_readlink_ino(v, ino, buf, sizeof(buf), &err), -EINVAL);
	/* Link by number; then unlinked while open: setattr still works, a link
	 * back does not (only O_TMPFILE files come back). */
	assert_int_equal(pf_link_ino(v, ino, PF_ROOT_INO, "g", NULL, &err), 0);
	assert_int_equal(pf_link_ino(v, dino, PF_ROOT_INO, "d2", NULL, &err), -EPERM);
	assert_int_equal(pf_link_ino(v, ino, PF_ROOT_INO, "g", NULL, &err), -EEXIST);
	assert_int_equal(pf_getattr(v, ino, &st), 0);
	assert_int_equal(st.nlink, 2);
	assert_int_equal(pf_unlink(v, "g", &err), 0);
	assert_int_equal(pf_unlink(v, "d/f", &err), 0);
	assert_int_equal(pf_setattr_ino(v, ino, &(struct pf_setattr){ .valid = PF_SET_MODE,
								       .mode = 0600 }, NULL, &err), 0);
	assert_int_equal(pf_fstat(f, &st), 0);
	assert_int_equal(st.mode, 0600);
	assert_int_equal(st.nlink, 0);
	assert_int_equal(pf_link_ino(v, ino, PF_ROOT_INO, "back", NULL, &err), -ENOENT);
	pf_close(f);
	assert_int_equal(pf_setattr_ino(v, ino, &(struct pf_setattr){ .valid = PF_SET_MODE,
								       .mode = 0600 }, NULL, &err),
			 -ENOENT);
	/* An explicit ctime, refused with a cred. */
	write_file(v, "c", "x", 1);
	assert_int_equal(pf_stat(v, "c", &st, &err), 0);
	assert_int_equal(pf_setattr_ino(v, st.ino, &(struct pf_setattr){
						 .valid = PF_SET_MTIME | PF_SET_CTIME,
						 .mtime_ns = 5000000005, .ctime_ns = 6000000006 },
					 NULL, &err), 0);
	assert_int_equal(pf_setattr_ino(v, st.ino, &(struct pf_setattr){
						 .valid = PF_SET_CTIME, .ctime_ns = 1 }, &bob,
					 &err), -EPERM);
	assert_int_equal(pf_getattr(v, st.ino, &st), 0);
	assert_int_equal(st.mtime_ns, 5000000005);
	assert_int_equal(st.ctime_ns, 6000000006);
	/* O_TMPFILE: no name, the directory unchanged; a link names it. */
	assert_int_equal(pf_stat(v, "d", &d1, &err), 0);
	assert_int_equal(pf_tmpfile(v, dino, O_RDONLY, 0600, NULL, &t, &err), -EINVAL);
	assert_int_equal(pf_tmpfile(v, dino, O_RDWR, 0600, NULL, &t, &err), 0);
	assert_int_equal(pf_pwrite(t, "tmp", 3, 0, &err), 3);
	assert_int_equal(pf_fstat(t, &st), 0);
	assert_int_equal(st.nlink, 0);
	tino = st.ino;
	assert_int_equal(pf_stat(v, "d", &d2, &err), 0);
	assert_int_equal(d2.mtime_ns, d1.mtime_ns);
	assert_int_equal(d2.nlink, d1.nlink);
	assert_int_equal(pf_link_ino(v, tino, dino, "named", NULL, &err), 0);
	assert_int_equal(pf_fsync(t, &err), 0);
	pf_close(t);
	/* O_TMPFILE|O_EXCL: never linked; gone with its handle. */
	assert_int_equal(pf_tmpfile(v, dino, O_RDWR | O_EXCL, 0600, NULL, &t, &err), 0);
	assert_int_equal(pf_fstat(t, &st), 0);
	assert_int_equal(pf_link_ino(v, st.ino, dino, "never", NULL, &err), -ENOENT);
	pf_close(t);
	assert_int_equal(pf_getattr(v, st.ino, &st), -ENOENT);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	check_content(v, "d/named", (const uint8_t *)"tmp", 3);
	expect_missing(v, "d/never");
	expect_missing(v, "d/f");
	assert_int_equal(pf_stat(v, "d/named", &st, &err), 0);
	assert_int_equal(st.ino, tino);
	pf_volume_close(v, NULL);
	/* Backing files: "c" and "named" only. */
	assert_int_equal(count_backing(&e), 2);
	env_free(&e);
}

/* Inode numbers are stable across rename, commit and reopen; a directory
 * rename moves its subtree without touching it. */
static void test_inode_numbers(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_stat a, b, c;
	pf_volume_t *v;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mkdir(v, "x", 0755, &err), 0);
	assert_int_equal(pf_mkdir(v, "x/y", 0755, &err), 0);
	write_file(v, "x/y/f", "data", 4);
	assert_int_equal(pf_stat(v, "x/y/f", &a, &err), 0);
	assert_int_equal(pf_stat(v, "x/y", &c, &err), 0);
	assert_int_equal(pf_rename(v, "x", "z", &err), 0);
	assert_int_equal(pf_stat(v, "z/y/f", &b, &err), 0);
	assert_int_equal(a.ino, b.ino);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	assert_int_equal(pf_stat(v, "z/y/f", &b, &err), 0);
	assert_int_equal(a.ino, b.ino);
	assert_int_equal(pf_stat(v, "z/y", &b, &err), 0);
	assert_int_equal(c.ino, b.ino);
	assert_int_equal(b.nlink, 2);
	assert_int_equal(pf_stat(v, "z", &b, &err), 0);
	assert_int_equal(b.nlink, 3);
	assert_int_equal(pf_stat(v, "", &b, &err), 0);
	assert_int_equal(b.ino, PF_ROOT_INO);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* Resolution: symlinks inside, escapes with the rest to resolve outside, loop
 * and length limits. */
static void test_resolve(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_resolved r;
	struct pf_stat st;
	char buf[PF_MAX_PATH + 16];
	pf_volume_t *v;
	pf_file_t *f;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	write_file(v, "d/f", "x", 1);
	assert_int_equal(pf_symlinkat(v, "d", PF_ROOT_INO, "ld", NULL, &err), 0);
	assert_int_equal(pf_symlinkat(v, "/etc", PF_ROOT_INO, "abs", NULL, &err), 0);
	assert_int_equal(pf_symlinkat(v, "../up", PF_ROOT_INO, "d/esc", NULL, &err), 0);
	assert_int_equal(pf_symlinkat(v, "../../out", PF_ROOT_INO, "d/esc2", NULL, &err), 0);
	assert_int_equal(pf_symlinkat(v, "loop", PF_ROOT_INO, "loop", NULL, &err), 0);
	assert_int_equal(pf_symlinkat(v, "missing", PF_ROOT_INO, "dangling", NULL, &err), 0);
	/* Inside: followed in the middle and at the end. */
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "ld/f", 0, NULL, &r, &err), 0);
	assert_int_equal(r.type, PF_TYPE_REG);
	assert_string_equal(r.name, "f");
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "ld", PF_AT_NOFOLLOW, NULL, &r, &err), 0);
	assert_int_equal(r.type, PF_TYPE_LNK);
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "ld/", PF_AT_NOFOLLOW, NULL, &r, &err), 0);
	assert_int_equal(r.type, PF_TYPE_DIR);
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "d/./../d/f", 0, NULL, &r, &err), 0);
	assert_int_equal(r.type, PF_TYPE_REG);
	/* Relative to a directory inode. */
	assert_int_equal(pf_stat(v, "d", &st, &err), 0);
	assert_int_equal(pf_resolve(v, st.ino, "f", 0, NULL, &r, &err), 0);
	assert_int_equal(r.parent, st.ino);
	/* Escapes: absolute target, ".." above the root (directly or by link). */
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "abs/passwd", 0, NULL, &r, &err),
			 PF_RESOLVE_ESCAPED);
	assert_string_equal(r.rest, "/etc/passwd");
	free(r.rest);
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "../x/y", 0, NULL, &r, &err),
			 PF_RESOLVE_ESCAPED);
	assert_string_equal(r.rest, "../x/y");
	free(r.rest);
	/* d/esc -> "../up": "up" in the root, which is missing. */
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "d/esc/z", 0, NULL, &r, &err), -ENOENT);
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "d/esc", PF_AT_PARENT, NULL, &r, &err), 0);
	assert_int_equal(r.ino, 0);
	assert_int_equal(r.parent, PF_ROOT_INO);
	assert_string_equal(r.name, "up");
	assert_int_equal(pf_resolve(v, PF_ROOT_INO, "d/esc2/z", 0, NULL, &r, &err),
			 PF_RESOLVE_ESCAPED);
	assert_string_equal(r.rest, "../out/z");
	free(r.rest);
	/* Other calls refuse to leave the volume, naming the link. */
	assert_int_equal(pf_stat(v, "abs/passwd", &st, &err), -EXDEV);
	assert_non_null(strstr(err.msg, "abs"));
	/* Limits. */
	assert_int_equal(pf_stat(v, "loop", &st, &err), -ELOOP);
	assert_int_equal(pf_statat(v, PF_ROOT_INO, "loop", PF_AT_NOFOLLOW, NULL, &st, &err), 0);
	assert_int_equal(pf_stat(v, "d/f/x", &st, &err), -ENOTDIR);
	assert_int_equal(pf_stat(v, "d/f/", &st, &err), -ENOTDIR);
	memset(buf, 'n', 300);
	buf[300] = '\0';
	assert_int_equal(pf_stat(v, buf, &st, &err), -ENAMETOOLONG);
	memset(buf, 'a', sizeof(buf) - 1);
	for (size_t i = 1; i < sizeof(buf) - 1; i += 2)
		buf[i] = '/';
	buf[sizeof(buf) - 1] = '\0';
	assert_int_equal(pf_stat(v, buf, &st, &err), -ENAMETOOLONG);
	/* A dangling symlink: stat ENOENT, lstat fine, O_CREAT makes its target. */
	assert_int_equal(pf_stat(v, "dangling", &st, &err), -ENOENT);
	assert_int_equal(pf_open(v, "dangling", O_RDWR | O_CREAT, 0600, &f, &err), 0);
	pf_close(f);
	assert_int_equal(pf_stat(v, "missing", &st, &err), 0);
	assert_int_equal(pf_openat(v, PF_ROOT_INO, "ld", O_RDONLY | O_NOFOLLOW, 0, NULL, &f, &err),
			 -ELOOP);
	/* Symlinks survive a reopen. */
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	assert_int_equal(pf_readlinkat(v, PF_ROOT_INO, "d/esc2", buf, sizeof(buf), NULL, &err), 9);
	assert_memory_equal(buf, "../../out", 9);
	assert_int_equal(pf_readlinkat(v, PF_ROOT_INO, "d", buf, sizeof(buf), NULL, &err),
			 -EINVAL);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* FIFO and socket nodes live in the namespace; devices are refused. */
static void test_special_nodes(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_dirent ents[8];
	struct pf_stat st;
	pf_volume_t *v;
	pf_file_t *f;
	size_t n;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mknodat(v, PF_ROOT_INO, "fifo", S_IFIFO | 0640, NULL, &err), 0);
	assert_int_equal(pf_mknodat(v, PF_ROOT_INO, "sock", S_IFSOCK | 0600, NULL, &err), 0);
	assert_int_equal(pf_mknodat(v, PF_ROOT_INO, "chr", S_IFCHR | 0600, NULL, &err), -EPERM);
	assert_int_equal(pf_mknodat(v, PF_ROOT_INO, "blk", S_IFBLK | 0600, NULL, &err), -EPERM);
	assert_int_equal(pf_open(v, "fifo", O_RDONLY, 0, &f, &err), -ENXIO);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	assert_int_equal(pf_stat(v, "fifo", &st, &err), 0);
	assert_int_equal(st.type, PF_TYPE_FIFO);
	assert_int_equal(st.mode, 0640);
	assert_int_equal(pf_readdir_ino(v, PF_ROOT_INO, 0, ents, 8, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(ents[0].name, ".");
	assert_string_equal(ents[1].name, "..");
	assert_int_equal(ents[2].type, PF_TYPE_FIFO);
	assert_int_equal(ents[3].type, PF_TYPE_SOCK);
	assert_int_equal(pf_unlink(v, "sock", &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* A listing resumed from cookies sees every entry that stays exactly once,
 * whatever is created and removed in between. */
static void test_readdir_cookies(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_dirent ents[7];
	pf_volume_t *v;
	uint64_t cookie = 0;
	int seen[300] = { 0 };
	size_t n;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	for (int i = 0; i < 300; i++) {
		char name[16];

		snprintf(name, sizeof(name), "e%d", i);
		assert_int_equal(pf_mknodat(v, PF_ROOT_INO, name, S_IFIFO | 0600, NULL, &err), 0);
	}
	for (int round = 0;; round++) {
		char name[16];

		assert_int_equal(pf_readdir_ino(v, PF_ROOT_INO, cookie, ents, 7, &n, &err), 0);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			int k;

			if (ents[i].name[0] == 'e' && sscanf(ents[i].name, "e%d", &k) == 1)
				seen[k]++;
			cookie = ents[i].cookie;
		}
		/* Churn: remove an even entry not yet seen, add new ones. */
		snprintf(name, sizeof(name), "e%d", 298 - 2 * (round % 100));
		(void)pf_unlink(v, name, NULL);
		/* (Not forever: a listing that keeps up with creations never ends.) */
		snprintf(name, sizeof(name), "new%d", round);
		if (round < 30)
			assert_int_equal(pf_mknodat(v, PF_ROOT_INO, name, S_IFIFO | 0600, NULL,
						    &err), 0);
		assert_true(round < 200);
	}
	for (int i = 0; i < 300; i++) {
		struct pf_stat st;
		char name[16];

		snprintf(name, sizeof(name), "e%d", i);
		assert_true(seen[i] <= 1);
		if (pf_stat(v, name, &st, NULL) == 0)
			assert_int_equal(seen[i], 1); /* still there: listed once */
	}
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* ctime, mtime and atime move as Linux moves them. */
static void test_times(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_stat a, b, d1, d2;
	pf_volume_t *v;
	pf_file_t *f;
	uint8_t buf[8];

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	write_file(v, "d/f", "abc", 3);
#define STEP(call, path, field, dirfield)                                            \
	do {                                                                         \
		assert_int_equal(pf_stat(v, path, &a, &err), 0);                     \
		assert_int_equal(pf_stat(v, "d", &d1, &err), 0);                     \
		usleep(2000);                                                        \
		assert_int_equal((call), 0);                                         \
		assert_int_equal(pf_statat(v, PF_ROOT_INO, path, PF_AT_NOFOLLOW,     \
					   NULL, &b, &err), 0);                      \
		assert_int_equal(pf_stat(v, "d", &d2, &err), 0);                     \
		assert_true(b.field > a.field);                                      \
		if (dirfield)                                                        \
			assert_true(d2.mtime_ns > d1.mtime_ns &&                     \
				    d2.ctime_ns > d1.ctime_ns);                      \
	} while (0)
	STEP(pf_chmod(v, "d/f", 0600, &err), "d/f", ctime_ns, false);
	STEP(pf_setattrat(v, PF_ROOT_INO, "d/f", 0,
			  &(struct pf_setattr){ .valid = PF_SET_UID | PF_SET_GID, .uid = 7,
						.gid = 8 }, NULL, &err), "d/f", ctime_ns, false);
	STEP(pf_linkat(v, PF_ROOT_INO, "d/f", PF_ROOT_INO, "d/g", 0, NULL, &err), "d/f",
	     ctime_ns, true);
	STEP(pf_unlink(v, "d/g", &err), "d/f", ctime_ns, true);
	STEP(pf_rename(v, "d/f", "d/h", &err) == 0 ? pf_rename(v, "d/h", "d/f", &err) : -1,
	     "d/f", ctime_ns, true);
	STEP(pf_truncate(v, "d/f", 1, &err), "d/f", mtime_ns, false);
	assert_true(b.ctime_ns > a.ctime_ns);
	assert_int_equal(pf_open(v, "d/f", O_RDWR, 0, &f, &err), 0);
	STEP(pf_pwrite(f, "z", 1, 0, &err) == 1 ? 0 : -1, "d/f", mtime_ns, false);
	assert_true(b.ctime_ns > a.ctime_ns);
	/* relatime: a read after a change moves atime. */
	STEP(pf_pread(f, buf, 1, 0, &err) == 1 ? 0 : -1, "d/f", atime_ns, false);
	pf_close(f);
	/* utimensat: explicit times, ctime now. */
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "d/f", 0,
				      &(struct pf_setattr){ .valid = PF_SET_ATIME | PF_SET_MTIME,
							    .atime_ns = 1000000001,
							    .mtime_ns = 2000000002 }, NULL,
				      &err), 0);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	assert_int_equal(pf_stat(v, "d/f", &b, &err), 0);
	assert_int_equal(b.atime_ns, 1000000001);
	assert_int_equal(b.mtime_ns, 2000000002);
	assert_true(b.ctime_ns > a.ctime_ns);
	assert_int_equal(b.uid, 7);
	assert_int_equal(b.gid, 8);
	pf_volume_close(v, NULL);
	env_free(&e);
#undef STEP
}

/* The kernel's permission rules for a caller who is not root. */
static void test_permissions(void **state)
{
	const gid_t groups[] = { 50 };
	const struct pf_cred alice = { 1000, 1000, groups, 1 }, bob = { 1001, 1001, NULL, 0 };
	const struct pf_cred root = { 0, 0, NULL, 0 };
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_stat st;
	pf_volume_t *v;
	pf_file_t *f;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	/* A world-writable sticky directory, as /tmp, and alice's home. */
	assert_int_equal(pf_mkdir(v, "tmp", 01777, &err), 0);
	assert_int_equal(pf_mkdir(v, "home", 0755, &err), 0);
	assert_int_equal(pf_mkdirat(v, PF_ROOT_INO, "home/alice", 0700, &root, &err), 0);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "home/alice", 0,
				      &(struct pf_setattr){ .valid = PF_SET_UID | PF_SET_GID,
							    .uid = 1000, .gid = 1000 }, &root,
				      &err), 0);
	/* Created nodes belong to their creator. */
	assert_int_equal(pf_openat(v, PF_ROOT_INO, "tmp/a", O_RDWR | O_CREAT, 0600, &alice, &f,
				   &err), 0);
	pf_close(f);
	assert_int_equal(pf_stat(v, "tmp/a", &st, &err), 0);
	assert_int_equal(st.uid, 1000);
	assert_int_equal(st.gid, 1000);
	/* No search permission in alice's home for bob; no read of her file. */
	assert_int_equal(pf_openat(v, PF_ROOT_INO, "home/alice/x", O_RDWR | O_CREAT, 0644, &alice,
				   &f, &err), 0);
	pf_close(f);
	assert_int_equal(pf_statat(v, PF_ROOT_INO, "home/alice/x", 0, &bob, &st, &err), -EACCES);
	assert_int_equal(pf_openat(v, PF_ROOT_INO, "tmp/a", O_RDONLY, 0, &bob, &f, &err), -EACCES);
	assert_int_equal(pf_openat(v, PF_ROOT_INO, "tmp/a", O_RDONLY, 0, &root, &f, &err), 0);
	pf_close(f);
	/* chmod, chown and explicit times by a non-owner: EPERM. */
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_MODE, .mode = 0666 },
				      &bob, &err), -EPERM);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_UID, .uid = 1001 },
				      &alice, &err), -EPERM);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_MTIME, .mtime_ns = 5 },
				      &bob, &err), -EPERM);
	/* utimes(NULL) needs only write permission. */
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_MTIME_NOW }, &bob,
				      &err), -EACCES);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_MODE, .mode = 0666 },
				      &alice, &err), 0);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_MTIME_NOW }, &bob,
				      &err), 0);
	/* chgrp by the owner to one of her groups; not to another. */
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_GID, .gid = 50 },
				      &alice, &err), 0);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "tmp/a", 0,
				      &(struct pf_setattr){ .valid = PF_SET_GID, .gid = 51 },
				      &alice, &err), -EPERM);
	/* Sticky directory: bob may not remove or rename alice's file. */
	assert_int_equal(pf_unlinkat(v, PF_ROOT_INO, "tmp/a", 0, &bob, &err), -EPERM);
	assert_int_equal(pf_renameat2(v, PF_ROOT_INO, "tmp/a", PF_ROOT_INO, "tmp/b", 0, &bob, &err),
			 -EPERM);
	assert_int_equal(pf_unlinkat(v, PF_ROOT_INO, "tmp/a", 0, &alice, &err), 0);
	/* Creating in a directory without write permission. */
	assert_int_equal(pf_mkdirat(v, PF_ROOT_INO, "home/b", 0755, &bob, &err), -EACCES);
	assert_int_equal(pf_symlinkat(v, "x", PF_ROOT_INO, "home/s", &bob, &err), -EACCES);
	/* Root may execute only what has an execute bit; search any directory. */
	st = (struct pf_stat){ .type = PF_TYPE_REG, .mode = 0644, .uid = 5, .gid = 5 };
	assert_int_equal(pf_permission(&root, &st, PF_MAY_EXEC), -EACCES);
	assert_int_equal(pf_permission(&root, &st, PF_MAY_READ | PF_MAY_WRITE), 0);
	st.mode = 0100;
	assert_int_equal(pf_permission(&root, &st, PF_MAY_EXEC), 0);
	st = (struct pf_stat){ .type = PF_TYPE_DIR, .mode = 0, .uid = 5, .gid = 5 };
	assert_int_equal(pf_permission(&root, &st, PF_MAY_EXEC), 0);
	/* The owner class decides for the owner, even when others may more. */
	st = (struct pf_stat){ .type = PF_TYPE_REG, .mode = 0077, .uid = 1000, .gid = 1000 };
	assert_int_equal(pf_permission(&alice, &st, PF_MAY_READ), -EACCES);
	assert_int_equal(pf_permission(&bob, &st, PF_MAY_READ), 0);
	st.gid = 50;
	st.uid = 7;
	st.mode = 0040;
	assert_int_equal(pf_permission(&alice, &st, PF_MAY_READ), 0); /* supplementary */
	/* Set-group-ID directories hand down their group (and the bit to dirs). */
	assert_int_equal(pf_mkdir(v, "sg", 02777, &err), 0);
	assert_int_equal(pf_setattrat(v, PF_ROOT_INO, "sg", 0,
				      &(struct pf_setattr){ .valid = PF_SET_GID, .gid = 77 }, NULL,
				      &err), 0);
	assert_int_equal(pf_mkdirat(v, PF_ROOT_INO, "sg/sub", 0755, &bob, &err), 0);
	assert_int_equal(pf_stat(v, "sg/sub", &st, &err), 0);
	assert_int_equal(st.gid, 77);
	assert_int_equal(st.mode, 02755);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* Bytes the files of directory dir take on disk (st_blocks). */
static uint64_t dir_disk_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t total = 0;
	char p[512];
	struct stat st;

	assert_non_null(d);
	while ((de = readdir(d))) {
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

/* A sparse file past 4 GiB: holes take no space, SEEK_DATA/SEEK_HOLE find the
 * data, and opening it and reading 10 bytes reads a few KiB of the storage
 * (the block hashes, one block of tags, one chunk), not the tag list of the
 * whole file. A dense file: the same, whatever its size. */
/* Every file of dir written back and dropped from the page cache: the next
 * read of them is cold. */
static void drop_dir_cache(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW);

		if (fd < 0)
			continue;
		assert_int_equal(fdatasync(fd), 0);
		assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		close(fd);
	}
	closedir(d);
}

/* Streaming reads of a cold file go around the page cache (pread_direct, in
 * whole pages around the batch's unaligned slots); the file's end is inside a
 * page and inside a chunk. A file system that refuses O_DIRECT (EINVAL), and
 * a range partly or wholly in the page cache, are read with pread instead:
 * the same bytes each way. Needs a disk file system (tmpfs caches
 * everything: never cold). */
static void test_direct_read_fallback(void **state)
{
	struct kiln_err err = { 0 };
	size_t size = 3 * 1024 * 1024 + 4321;
	uint8_t *data = malloc(size), *back = malloc(size + 100);
	char kiln[128];
	struct statfs sf;
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;

	(void)state;
	assert_non_null(data);
	assert_non_null(back);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 13 + (i >> 11));
	strcpy(e.dir, "/tmp/kiln-pf-XXXXXX");
	assert_non_null(mkdtemp(e.dir));
	snprintf(e.vfile, sizeof(e.vfile), "%s/version", e.dir);
	snprintf(e.kdir, sizeof(e.kdir), "%s/vol", e.dir);
	assert_int_equal(statfs(e.dir, &sf), 0);
	if (sf.f_type == 0x01021994) { /* TMPFS_MAGIC */
		env_free(&e);
		free(data);
		free(back);
		skip();
	}
	snprintf(kiln, sizeof(kiln), "%s/.kiln", e.kdir);
	v = vol_init(&e, 4096, NULL, 0);
	write_file(v, "f", data, size);
	assert_int_equal(pf_volume_close(v, &err), 0);

	/* 0: cold. 1: a small read first puts part of the file in the page
	 * cache. 2: the file system refuses O_DIRECT. */
	for (int round = 0; round < 3; round++) {
		drop_dir_cache(kiln);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		if (round == 2)
			g_last_fault->direct_error = -EINVAL;
		assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
		if (round == 1) {
			assert_int_equal(pf_pread(f, back, 100, 1024 * 1024, &err), 100);
			assert_memory_equal(back, data + 1024 * 1024, 100);
		}
		memset(back, 0xa5, size + 100);
		if (pf_pread(f, back, size + 100, 0, &err) != (ssize_t)size)
			fail_msg("round %d: read: %s", round, err.msg);
		assert_memory_equal(back, data, size);
		/* Batches that start inside a page. */
		assert_int_equal(pf_pread(f, back, size - 777, 777, &err), (ssize_t)(size - 777));
		assert_memory_equal(back, data + 777, size - 777);
		pf_close(f);
		if (round < 2) {
			assert_true(g_last_fault->direct_reads >= 4);
		} else {
			assert_true(g_last_fault->direct_refused >= 4);
			assert_int_equal(g_last_fault->direct_reads, 0);
		}
		assert_int_equal(pf_volume_close(v, &err), 0);
	}
	/* All in the page cache now (round 2 read it): read through it. */
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
	assert_int_equal(pf_pread(f, back, size, 0, &err), (ssize_t)size);
	assert_memory_equal(back, data, size);
	pf_close(f);
	assert_int_equal(g_last_fault->direct_reads, 0);
	assert_int_equal(pf_volume_close(v, &err), 0);
	env_free(&e);
	free(data);
	free(back);
}

static void test_sparse_big_lazy_open(void **state)
{
	const uint64_t far = (6ull << 30) + 12345, cs = 4096;
	size_t dense = 24u << 20; /* 6144 chunks: 6 blocks of tags */
	uint8_t *data = malloc(dense), buf[64];
	struct kiln_err err = { 0 };
	char kiln[128];
	struct pf_stat st;
	uint64_t off, disk;
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;

	assert_non_null(data);
	for (size_t i = 0; i < dense; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 13));
	env_init(&e);
	snprintf(kiln, sizeof(kiln), "%s/.kiln", e.kdir);
	v = vol_init(&e, cs, NULL, 0);
	assert_int_equal(pf_open(v, "sparse", O_RDWR | O_CREAT, 0600, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, "hello, far", 10, far, &err), 10);
	assert_int_equal(pf_pwrite(f, "start", 5, 100, &err), 5);
	assert_int_equal(pf_fsync(f, &err), 0);
	pf_close(f);
	write_file(v, "dense", data, dense);
	assert_int_equal(pf_volume_close(v, &err), 0);
	/* 6 GiB of holes: the backing file holds two chunks, the tags of two
	 * blocks and 1537 block hashes; the dense file its own size (+ tags). */
	disk = dir_disk_bytes(kiln);
	if (getenv("PF_TEST_KEEP")) {
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "ls -ls %s >&2", kiln);
		assert_int_equal(system(cmd), 0);
	}
	assert_true(disk < dense + dense / 64 + (1u << 20));
	assert_true(disk >= dense);

	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	g_last_fault->reads = 0;
	g_last_fault->read_bytes = 0;
	assert_int_equal(pf_open(v, "sparse", O_RDONLY, 0, &f, &err), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pf_pread(f, buf, sizeof(buf), far, &err), 10);
	assert_memory_equal(buf, "hello, far", 10);
	/* 48 KiB of block hashes (32 bytes per 4 MiB), 16 KiB of tags, 4 KiB of
	 * data: never the 24 MiB a flat tag list of this file would be. */
	assert_true(g_last_fault->read_bytes < 96 * 1024);
	assert_int_equal(pf_pread(f, buf, 10, far - 5, &err), 10);
	assert_memory_equal(buf, "\0\0\0\0\0hello", 10);
	assert_int_equal(pf_pread(f, buf, 5, 100, &err), 5);
	assert_memory_equal(buf, "start", 5);
	assert_int_equal(pf_seek_data(f, 0, &off, &err), 0);
	assert_int_equal(off, 0);
	assert_int_equal(pf_seek_hole(f, 0, &off, &err), 0);
	assert_int_equal(off, cs);
	assert_int_equal(pf_seek_data(f, cs, &off, &err), 0);
	assert_int_equal(off, far / cs * cs);
	assert_int_equal(pf_seek_hole(f, far, &off, &err), 0);
	assert_int_equal(off, far + 10); /* the end of the file is a hole */
	assert_int_equal(pf_seek_data(f, far + 10, &off, &err), -ENXIO);
	assert_int_equal(pf_fstat(f, &st), 0);
	assert_int_equal(st.size, far + 10);
	assert_true(st.blocks * 512 < 64 * 1024); /* holes are not counted */
	pf_close(f);

	g_last_fault->read_bytes = 0;
	assert_int_equal(pf_open(v, "dense", O_RDONLY, 0, &f, &err), 0);
	assert_int_equal(pf_pread(f, buf, 10, dense - 4000, &err), 10);
	assert_memory_equal(buf, data + dense - 4000, 10);
	assert_true(g_last_fault->read_bytes < 32 * 1024); /* the tag list is 96 KiB */
	pf_close(f);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);

	/* Punching a hole gives the space back (the storage punches), and the
	 * file reads as zeros there, before and after a reopen. */
	assert_int_equal(pf_open(v, "dense", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_fallocate(f, PF_FALLOC_PUNCH_HOLE | PF_FALLOC_KEEP_SIZE, 1000,
				      dense / 2, &err), 0);
	assert_int_equal(pf_fsync(f, &err), 0);
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0);
	assert_true(dir_disk_bytes(kiln) < disk - dense / 2 + 2 * cs + dense / 64);
	memset(data + 1000, 0, dense / 2);
	v = vol_reopen(&e);
	check_content(v, "dense", data, dense);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	free(data);
}

/* The chunk calls of the volume server: write given chunks, read N chunks
 * with a result each; a tampered chunk fails only itself, with a message
 * naming the file and the chunk. */
static void test_chunk_calls(void **state)
{
	const size_t cs = 4096;
	uint8_t *in = malloc(21 * cs), *out = malloc(24 * cs);
	struct kiln_err err = { 0 };
	int res[24];
	char path[256] = { 0 };
	uint64_t off;
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;

	for (size_t i = 0; i < 21 * cs; i++)
		in[i] = (uint8_t)(i * 13 + 1);
	env_init(&e);
	v = vol_init(&e, cs, NULL, 0);
	assert_int_equal(pf_open(v, "c", O_RDWR | O_CREAT, 0600, &f, &err), 0);
	/* Eight chunks, the last one short; then chunk 20 (8..19 are holes). */
	assert_int_equal(pf_write_chunks(f, 0, 8, in, 8 * cs - 100, &err), 0);
	assert_int_equal(pf_write_chunks(f, 20, 1, in + 20 * cs, 21 * cs, &err), 0);
	assert_int_equal(pf_write_chunks(f, 22, 1, in, 21 * cs, &err), -EINVAL);
	assert_int_equal(pf_seek_hole(f, 0, &off, &err), 0);
	assert_int_equal(off, 8 * cs);
	assert_int_equal(pf_seek_data(f, 8 * cs, &off, &err), 0);
	assert_int_equal(off, 20 * cs);
	assert_int_equal(pf_fsync(f, &err), 0);
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0);
	memset(in + 8 * cs - 100, 0, 12 * cs + 100);

	backing_path(&e, NULL, path, sizeof(path));
	flip_byte(path, PF_HDR_SIZE + 3 * (cs + PF_SLOT_META) + PF_SLOT_META + 77);
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "c", O_RDONLY, 0, &f, &err), 0);
	memset(out, 0xee, 24 * cs);
	assert_int_equal(pf_read_chunks(f, 0, 24, out, res, &err), 21);
	for (int i = 0; i < 21; i++) {
		assert_int_equal(res[i], i == 3 ? -KILN_EAUTH : 0);
		if (i != 3)
			assert_memory_equal(out + i * cs, in + i * cs, cs);
	}
	assert_non_null(strstr(err.msg, "file c: chunk 3 is corrupt"));
	/* The byte calls fail on chunk 3 only. */
	assert_int_equal(pf_pread(f, out, cs, 2 * cs, &err), (ssize_t)cs);
	assert_int_equal(pf_pread(f, out, 10, 3 * cs + 5, &err), -KILN_EAUTH);
	assert_non_null(strstr(err.msg, "file c: chunk 3"));
	assert_int_equal(pf_read_chunks(f, 21, 3, out, res, &err), 0);
	pf_close(f);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), -KILN_EAUTH);
	pf_volume_close(v, NULL);
	env_free(&e);
	free(in);
	free(out);
}

/* A volume made by the kiln of before the inode namespace (metadata format 1,
 * tests/fixtures/pf-v1) opens, reads, and is written in format 2 at its first
 * commit. */
static void test_v1_fixture(void **state)
{
	const char *src = getenv("KILN_SOURCE_ROOT");
	struct pf_volume_opts o = { 0 };
	struct kiln_err err = { 0 };
	uint8_t key[PF_KEY_SIZE], *big = malloc(5000);
	struct pf_stat st;
	char cmd[600], vdir[128], vfile[160];
	pf_volume_t *v;
	struct env e;

	assert_non_null(src);
	env_init(&e);
	snprintf(cmd, sizeof(cmd), "cp -a %s/tests/fixtures/pf-v1/. %s/", src, e.dir);
	assert_int_equal(system(cmd), 0);
	snprintf(vdir, sizeof(vdir), "%s/vol", e.dir);
	snprintf(vfile, sizeof(vfile), "%s/key.version", e.dir);
	memset(key, 0x77, sizeof(key));
	memset(big, 'x', 5000);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(pf_freshness_local(vfile, &o.freshness, &o.freshness_ctx), 0);
		if (pf_volume_open(vdir, key, &o, &v, &err) != 0)
			fail_msg("open the v1 fixture: %s", err.msg);
		check_content(v, "docs/hello.txt", (const uint8_t *)"hello, v1\n", 10);
		check_content(v, "docs/big.txt", big, 5000);
		check_content(v, "empty", (const uint8_t *)"", 0);
		check_content(v, "pub/readme", (const uint8_t *)"plain text\n", 11);
		check_content(v, "sig/note", (const uint8_t *)"signed\n", 7);
		check_content(v, "deep/a/b/c/file", (const uint8_t *)"moved\n", 6);
		assert_int_equal(pf_stat(v, "old", &st, &err), 0);
		assert_true(st.is_dir);
		assert_int_equal(pf_stat(v, "pub/readme", &st, &err), 0);
		assert_int_equal(st.kind, PF_REGION_PLAIN);
		assert_int_equal(st.uid, geteuid());
		assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
		if (round == 0) {
			/* The first commit writes format 2; links work from then on. */
			assert_int_equal(pf_volume_version(v), 9);
			assert_int_equal(pf_linkat(v, PF_ROOT_INO, "docs/hello.txt", PF_ROOT_INO,
						   "hello", 0, NULL, &err), 0);
			write_file(v, "docs/hello.txt", "hello, v1\n", 10);
			assert_int_equal(pf_volume_version(v), 11); /* 10 skipped: an open's first */
		} else {
			check_content(v, "hello", (const uint8_t *)"hello, v1\n", 10);
		}
		assert_int_equal(pf_volume_close(v, &err), 0);
	}
	{
		/* The metadata on disk is format 2 now. */
		uint8_t hdr[12];
		FILE *m;

		snprintf(cmd, sizeof(cmd), "%s/.kiln/meta", vdir);
		m = fopen(cmd, "rb");
		assert_non_null(m);
		assert_int_equal(fread(hdr, 1, sizeof(hdr), m), sizeof(hdr));
		fclose(m);
		assert_int_equal(pf__get_u32(hdr + 8), 2);
	}
	free(big);
	env_free(&e);
}

/* Malformed namespaces are refused with a message naming what is wrong. */
static void put_inode(struct pf_buf *b, uint64_t ino, uint32_t type)
{
	pf__buf_u64(b, ino);
	pf__buf_u8(b, type);
	pf__buf_u32(b, 0755);
	pf__buf_u32(b, 0);
	pf__buf_u32(b, 0);
	for (int i = 0; i < 3; i++)
		pf__buf_u64(b, 1);
}

static void put_entry(struct pf_buf *b, const char *name, uint64_t ino)
{
	pf__buf_u8(b, (uint32_t)strlen(name));
	pf__buf_put(b, name, strlen(name));
	pf__buf_u64(b, ino);
}

static void expect_tree_error(struct pf_buf *b, const char *what)
{
	struct kiln_err err = { 0 };
	struct pf_meta m;

	assert_int_equal(b->err, 0);
	assert_int_equal(pf__meta_parse(b->p, b->len, 2, &m, &err), -KILN_EFORMAT);
	if (!strstr(err.msg, what))
		fail_msg("'%s' does not say '%s'", err.msg, what);
	pf__buf_free(b);
}

static void begin_body(struct pf_buf *b, uint64_t next_ino, uint64_t ninodes)
{
	pf__buf_u32(b, 4096);
	pf__buf_u32(b, 0);
	pf__buf_u64(b, next_ino);
	pf__buf_u64(b, ninodes);
}

static void test_meta_tree_checks(void **state)
{
	struct pf_buf b = { 0 };

	begin_body(&b, 3, 1); /* a FIFO, no root */
	put_inode(&b, 2, PF_TYPE_FIFO);
	expect_tree_error(&b, "no root directory");
	begin_body(&b, 4, 2); /* directory 3 names itself: a cycle off the root */
	put_inode(&b, 1, PF_TYPE_DIR);
	pf__buf_u32(&b, 0);
	put_inode(&b, 3, PF_TYPE_DIR);
	pf__buf_u32(&b, 1);
	put_entry(&b, "x", 3);
	expect_tree_error(&b, "not reachable");
	begin_body(&b, 4, 2); /* a directory with two names */
	put_inode(&b, 1, PF_TYPE_DIR);
	pf__buf_u32(&b, 2);
	put_entry(&b, "x", 2);
	put_entry(&b, "y", 2);
	put_inode(&b, 2, PF_TYPE_DIR);
	pf__buf_u32(&b, 0);
	expect_tree_error(&b, "named 2 times");
	begin_body(&b, 4, 1); /* an entry naming nothing */
	put_inode(&b, 1, PF_TYPE_DIR);
	pf__buf_u32(&b, 1);
	put_entry(&b, "x", 3);
	expect_tree_error(&b, "missing inode");
	begin_body(&b, 4, 2); /* one name twice in a directory */
	put_inode(&b, 1, PF_TYPE_DIR);
	pf__buf_u32(&b, 2);
	put_entry(&b, "x", 2);
	put_entry(&b, "x", 2);
	put_inode(&b, 2, PF_TYPE_FIFO);
	expect_tree_error(&b, "names 'x' twice");
	begin_body(&b, 2, 2); /* inode numbers at or past next_ino */
	put_inode(&b, 1, PF_TYPE_DIR);
	pf__buf_u32(&b, 1);
	put_entry(&b, "x", 2);
	put_inode(&b, 2, PF_TYPE_FIFO);
	expect_tree_error(&b, "out of range");
}

static void test_statfs(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	struct pf_statfs sf;
	pf_volume_t *v;

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	assert_int_equal(pf_statfs(v, &sf, &err), 0);
	assert_int_equal(sf.bsize, 4096);
	assert_int_equal(sf.files, 2);
	assert_int_equal(sf.namemax, 255);
	assert_true(sf.blocks > 0 && sf.bavail <= sf.blocks);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* ---- fault injection ---- */
static void faults_run(void)
{
	uint8_t a[20000], b[20000];

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	/* Every failure point of "overwrite + fsync": after the failure, a reopen
	 * shows either the old or the new content, never a mix or an error. */
	for (long point = 1; point < 200; point++) {
		struct env e;
		pf_volume_t *v;
		pf_file_t *f;
		struct kiln_err err = { 0 };
		struct fault *flt;
		int r1, r2 = 0, r3;

		env_init(&e);
		v = vol_init(&e, 1024, NULL, 0);
		write_file(v, "f", a, sizeof(a));
		pf_volume_close(v, NULL);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		flt = g_last_fault;
		flt->countdown = point;
		flt->sticky = true;
		flt->rng = (uint64_t)point * 2654435761u + 1;
		flt->error = (point % 2) ? -EIO : -ENOSPC;
		flt->short_writes = point % 3 == 0;
		r1 = pf_open(v, "f", O_RDWR, 0, &f, &err);
		if (r1 == 0) {
			r2 = (int)pf_pwrite(f, b, 5000, 3000, &err);
			if (r2 >= 0)
				r2 = pf_ftruncate(f, 15000, &err);
			if (r2 >= 0)
				r2 = pf_fsync(f, &err);
			pf_close(f);
		}
		r3 = pf_volume_close(v, NULL);
		v = vol_reopen(&e);
		{
			uint8_t want[20000];
			pf_file_t *g;
			uint64_t size;

			memcpy(want, a, sizeof(a));
			memcpy(want + 3000, b, 5000);
			if (pf_open(v, "f", O_RDONLY, 0, &g, &err) != 0)
				fail_msg("point %ld: %s", point, err.msg);
			assert_int_equal(pf_get_size(g, &size), 0);
			pf_close(g);
			if (size == 15000)
				check_content(v, "f", want, 15000);
			else
				check_content(v, "f", a, sizeof(a));
			if (r1 == 0 && r2 >= 0 && r3 == 0 && !g_fault_last_dead)
				assert_int_equal(size, 15000);
		}
		pf_volume_close(v, NULL);
		env_free(&e);
		if (!g_fault_last_dead && point > 5)
			break; /* the whole sequence ran without reaching the fault */
	}
}

/* A journal (format 2) is rewritten in place after its commit, not
 * truncated: at every failure point of a second generation, the entries of
 * the first one that follow in the file are never replayed (they are bound to
 * their generation's header), and a reopen shows the state of the first
 * fsync, or of the second. */
static void test_journal_reused_in_place(void **state)
{
	uint8_t a[8192], b[8192], c[1024], want[8192];

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(c, 'c', sizeof(c));
	for (long point = 1; point < 100; point++) {
		struct env e;
		pf_volume_t *v;
		pf_file_t *f;
		struct kiln_err err = { 0 };
		struct fault *flt;
		uint8_t got[8192];

		env_init(&e);
		v = vol_init(&e, 1024, NULL, 0);
		write_file(v, "f", a, sizeof(a));
		pf_volume_close(v, NULL);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		/* Generation 1 journals the 8 chunks of 'a', then commits. */
		assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
		assert_int_equal(pf_pwrite(f, b, sizeof(b), 0, &err), (ssize_t)sizeof(b));
		assert_int_equal(pf_fsync(f, &err), 0);
		/* Generation 2 journals chunk 0 ('b') over it and fails somewhere. */
		flt = g_last_fault;
		flt->countdown = point;
		flt->sticky = true;
		flt->rng = (uint64_t)point * 2654435761u + 7;
		if (pf_pwrite(f, c, sizeof(c), 0, &err) == (ssize_t)sizeof(c))
			(void)pf_fsync(f, &err);
		pf_close(f);
		(void)pf_volume_close(v, NULL);
		v = vol_reopen(&e);
		assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
		assert_int_equal(pf_pread(f, got, sizeof(got), 0, &err), (ssize_t)sizeof(got));
		pf_close(f);
		memcpy(want, b, sizeof(b));
		if (got[0] == 'c')
			memcpy(want, c, sizeof(c));
		assert_memory_equal(got, want, sizeof(want));
		assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
		pf_volume_close(v, NULL);
		env_free(&e);
		if (!g_fault_last_dead && point > 5)
			break; /* the whole sequence ran without reaching the fault */
	}
}

/* Rewrite a live format 2 journal in dir as an earlier kiln wrote it (format
 * 1: magic KILNPFJ1, entries checked without the header). Returns the number
 * of journals converted. */
/* The end of one power cut of a crash-point test, after its checks: the
 * volume verifies; true when the fault never struck (the points are done). */
static bool crash_point_done(pf_volume_t *v, struct env *e, long point)
{
	struct kiln_err err = { 0 };

	if (pf_volume_verify(v, NULL, NULL, &err) != 0)
		fail_msg("point %ld: verify: %s", point, err.msg);
	pf_volume_close(v, NULL);
	env_free(e);
	return !g_fault_last_dead && point > 5;
}

/* Rewrite the live format 3 journals (".j", ".k") in dir as format fmt (1 or
 * 2) of an earlier kiln; those holding redo entries or an end record (which
 * the earlier formats cannot say) are left alone. */
static int journal_downgrade(const char *dir, int fmt)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int count = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name), size;
		uint8_t *buf, inner[KC_SHA256_SIZE], sum[KC_SHA256_SIZE];
		char path[400];
		FILE *fp;

		if (len != 34 || (strcmp(de->d_name + 32, ".j") != 0 &&
				  strcmp(de->d_name + 32, ".k") != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fp = fopen(path, "r+b");
		assert_non_null(fp);
		buf = malloc(1 << 20);
		size = fread(buf, 1, 1 << 20, fp);
		if (size >= PF_JOURNAL_HDR_SIZE && memcmp(buf, PF_JOURNAL_MAGIC, 8) == 0) {
			uint8_t h[8];
			size_t off = PF_JOURNAL_HDR_SIZE;
			bool redo = false;

			memcpy(h, buf + 64, 8);
			memcpy(buf, fmt == 1 ? PF_JOURNAL_MAGIC_V1 : PF_JOURNAL_MAGIC_V2, 8);
			kc_sha256(buf, 64, sum);
			memcpy(buf + 64, sum, 8);
			while (off + 12 <= size) {
				uint32_t elen = pf__get_u32(buf + off + 8);
				size_t esize = 12 + PF_SLOT_META + (elen & ~PF_JOURNAL_REDO);

				if (pf__get_u64(buf + off) == PF_JOURNAL_END)
					esize = PF_JOURNAL_END_SIZE;
				if (off + esize + 8 > size)
					break;
				pf__journal_entry_sum(h, buf + off, esize, sum);
				if (memcmp(sum, buf + off + esize, 8) != 0)
					break;
				if ((elen & PF_JOURNAL_REDO) || pf__get_u64(buf + off) == PF_JOURNAL_END) {
					redo = true;
					break;
				}
				pf__journal_entry_sum(fmt == 1 ? NULL : buf + 64, buf + off, esize,
						      inner);
				memcpy(buf + off + esize, inner, 8);
				off += esize + 8;
			}
			if (redo) {
				free(buf);
				fclose(fp);
				continue;
			}
			assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
			assert_int_equal(fwrite(buf, 1, size, fp), size);
			count++;
		}
		free(buf);
		fclose(fp);
	}
	closedir(d);
	return count;
}

/* A crash of an earlier kiln in the middle of a commit leaves a format 1
 * journal: it is still recovered (old content back), at every failure
 * point that leaves one live. */
static void journal_old_format_recovered(int fmt)
{
	uint8_t a[8192], b[8192], got[8192];
	int converted = 0;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	for (long point = 1; point < 60; point++) {
		struct env e;
		pf_volume_t *v;
		pf_file_t *f;
		struct kiln_err err = { 0 };
		char kiln[128];

		env_init(&e);
		snprintf(kiln, sizeof(kiln), "%s/.kiln", e.kdir);
		v = vol_init(&e, 1024, NULL, 0);
		write_file(v, "f", a, sizeof(a));
		pf_volume_close(v, NULL);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		g_last_fault->countdown = point;
		g_last_fault->sticky = true;
		g_last_fault->power_loss = false; /* what was written stays */
		assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
		if (pf_pwrite(f, b, sizeof(b), 0, &err) == (ssize_t)sizeof(b))
			(void)pf_fsync(f, &err);
		pf_close(f);
		(void)pf_volume_close(v, NULL);
		converted += journal_downgrade(kiln, fmt);
		v = vol_reopen(&e);
		assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &f, &err), 0);
		assert_int_equal(pf_pread(f, got, sizeof(got), 0, &err), (ssize_t)sizeof(got));
		pf_close(f);
		assert_memory_equal(got, got[0] == 'a' ? a : b, sizeof(got));
		if (crash_point_done(v, &e, point))
			break;
	}
	assert_true(converted > 0);
}

static void test_journal_format1_recovered(void **state)
{
	journal_old_format_recovered(1);
}

/* Format 2 (kiln before the redo entries): the same. */
static void test_journal_format2_recovered(void **state)
{
	journal_old_format_recovered(2);
}

/* ---- format 3: redo entries, alternating journals ---- */

/* Path of f's backing file (suffix "") or of one of its journals. */
static void node_path(struct env *e, pf_file_t *f, const char *suffix, char *out,
			 size_t size)
{
	snprintf(out, size, "%s/.kiln/%s%s", e->kdir, f->node->name, suffix);
}

static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 20);

	assert_non_null(fp);
	*size = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	return buf;
}

static void spill(const char *path, const uint8_t *buf, size_t size)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, size, fp), size);
	fclose(fp);
}

enum redo_case {
	REDO_PLAIN,        /* the held slot lost: the redo entry puts it back */
	REDO_SWAPPED,      /* .j and .k swapped by the host: same outcome */
	REDO_TORN_END,     /* end record cut: the new state cannot be rebuilt */
	REDO_FLIPPED,      /* a bit of a redo entry flipped: the end is not found */
	REDO_BAD_COUNT,    /* the end record counts one redo entry more: refused */
	REDO_FORGED,       /* flipped and its check recomputed: the tree refuses it */
	REDO_REPLAYED,     /* an older generation's journal put back */
	REDO_OTHER_FILE,   /* the journal rebound to another file id */
	REDO_NONE_NEEDED,  /* the slot reached the disk: nothing to replay */
};

/* Commit generation 2 (a 1 KiB overwrite of chunk 0, held, then redo), make
 * the crash that loses the in-place write after the commit point (the
 * backing file as before the commit), tamper per c, and reopen. Returns
 * the error of the open or the read (0: read back *got). */
static int redo_case_run(enum redo_case c, uint8_t *got, struct kiln_err *err)
{
	uint8_t a[8192], b[1024], b2[1024];
	struct env e;
	pf_volume_t *v;
	pf_file_t *f;
	char data[256], jj[256], jk[256];
	uint8_t *before, *j1 = NULL, *jbuf;
	size_t bsize, j1size = 0, jsize;
	int ret;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(b2, 'B', sizeof(b2));
	env_init(&e);
	v = vol_init(&e, 1024, NULL, 0);
	write_file(v, "f", a, sizeof(a));
	pf_volume_close(v, NULL);
	assert_int_equal(vol_open(&e, g_key, true, &v, err), 0);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, err), 0);
	node_path(&e, f, "", data, sizeof(data));
	node_path(&e, f, ".j", jj, sizeof(jj));
	node_path(&e, f, ".k", jk, sizeof(jk));
	if (c == REDO_REPLAYED) { /* generation 1, in .j; generation 2 then writes .k */
		assert_int_equal(pf_pwrite(f, b2, sizeof(b2), 0, err), (ssize_t)sizeof(b2));
		assert_int_equal(pf_fsync(f, err), 0);
		j1 = slurp(jj, &j1size);
	}
	before = slurp(data, &bsize);
	assert_int_equal(pf_pwrite(f, b, sizeof(b), 0, err), (ssize_t)sizeof(b));
	assert_int_equal(f->node->wb_count, 1); /* held, not written */
	assert_int_equal(pf_fsync(f, err), 0);
	assert_true(f->node->jlive);
	/* The crash: nothing more reaches the disk (not the close's sync). */
	g_last_fault->countdown = 1;
	g_last_fault->sticky = true;
	g_last_fault->power_loss = false;
	pf_close(f);
	pf_volume_discard(v);
	if (c != REDO_NONE_NEEDED)
		spill(data, before, bsize);
	free(before);
	/* Generation 2's journal: .k after generation 1's in .j, else .j. */
	jbuf = slurp(c == REDO_REPLAYED ? jk : jj, &jsize);
	assert_memory_equal(jbuf, PF_JOURNAL_MAGIC, 8);
	switch (c) {
	case REDO_SWAPPED:
		assert_int_equal(rename(jj, jk), 0);
		break;
	case REDO_TORN_END:
		spill(jj, jbuf, jsize - 10);
		break;
	case REDO_BAD_COUNT: {
		size_t end = PF_JOURNAL_HDR_SIZE + 2 * (12 + PF_SLOT_META + 1024 + 8);
		uint8_t sum[KC_SHA256_SIZE];

		assert_int_equal(pf__get_u64(jbuf + end), PF_JOURNAL_END);
		pf__put_u32(jbuf + end + 8, pf__get_u32(jbuf + end + 8) + 1);
		pf__journal_entry_sum(jbuf + 64, jbuf + end, PF_JOURNAL_END_SIZE, sum);
		memcpy(jbuf + end + PF_JOURNAL_END_SIZE, sum, 8);
		spill(jj, jbuf, jsize);
		break;
	}
	case REDO_FLIPPED:
	case REDO_FORGED: {
		/* header, undo entry of chunk 0, redo entry of chunk 0, end */
		size_t esize = 12 + PF_SLOT_META + 1024, redo = PF_JOURNAL_HDR_SIZE + esize + 8;
		uint8_t sum[KC_SHA256_SIZE];

		assert_true(pf__get_u32(jbuf + redo + 8) & PF_JOURNAL_REDO);
		jbuf[redo + 12 + PF_SLOT_META + 100] ^= 0x10;
		if (c == REDO_FORGED) {
			pf__journal_entry_sum(jbuf + 64, jbuf + redo, esize, sum);
			memcpy(jbuf + redo + esize, sum, 8);
		}
		spill(jj, jbuf, jsize);
		break;
	}
	case REDO_REPLAYED:
		spill(jk, j1, j1size);
		break;
	case REDO_OTHER_FILE: {
		uint8_t sum[KC_SHA256_SIZE];

		jbuf[48] ^= 1;
		kc_sha256(jbuf, 64, sum);
		memcpy(jbuf + 64, sum, 8); /* the entries' checks now fail too */
		spill(jj, jbuf, jsize);
		break;
	}
	default:
		break;
	}
	free(jbuf);
	free(j1);
	memset(err, 0, sizeof(*err));
	ret = vol_open(&e, g_key, false, &v, err);
	if (ret) {
		env_free(&e);
		return ret;
	}
	ret = pf_open(v, "f", O_RDONLY, 0, &f, err);
	if (!ret) {
		ssize_t n = pf_pread(f, got, 8192, 0, err);

		ret = n < 0 ? (int)n : n != 8192 ? -EIO : 0;
		pf_close(f);
	}
	if (!ret)
		assert_int_equal(pf_volume_verify(v, NULL, NULL, err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	return ret;
}

/* A crash after the rename, before the held slot was durable in place: the
 * redo entry gives the new content back; a swapped pair of journals too. */
static void test_journal_redo_replayed(void **state)
{
	uint8_t want[8192], got[8192];
	struct kiln_err err = { 0 };

	memset(want, 'a', sizeof(want));
	memset(want, 'b', 1024);
	for (int c = REDO_PLAIN; c <= REDO_NONE_NEEDED; c++) {
		if (c != REDO_PLAIN && c != REDO_SWAPPED && c != REDO_NONE_NEEDED)
			continue;
		memset(got, 0, sizeof(got));
		if (redo_case_run((enum redo_case)c, got, &err) != 0)
			fail_msg("case %d: %s", c, err.msg);
		assert_memory_equal(got, want, sizeof(want));
	}
}

/* A torn, flipped, forged, replayed or foreign journal where the redo entry
 * is needed: the open or the read fails with a message naming the file,
 * never old or wrong bytes. */
static void test_journal_redo_hostile(void **state)
{
	static const enum redo_case cases[] = { REDO_TORN_END, REDO_FLIPPED, REDO_BAD_COUNT,
						REDO_FORGED, REDO_REPLAYED, REDO_OTHER_FILE };
	uint8_t got[8192];

	journal_records(true);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kiln_err err = { 0 };
		int ret = redo_case_run(cases[i], got, &err);

		if (ret == 0)
			fail_msg("case %d: read back without an error", cases[i]);
		/* Generation 2's commit was a one-phase record: with its journal
		 * replaced nothing vouches for it, the replay stops before it, and
		 * the trusted version refuses the state before it. */
		if (cases[i] == REDO_REPLAYED) {
			if (ret != -KILN_EROLLBACK || !strstr(err.msg, "rolled back"))
				fail_msg("replayed: %d %s", ret, err.msg);
			continue;
		}
		if (!strstr(err.msg, "file /f") && !strstr(err.msg, "file f"))
			fail_msg("case %d: message does not name the file: %s", cases[i], err.msg);
		if (cases[i] == REDO_BAD_COUNT &&
		    (ret != -KILN_ECORRUPT || !strstr(err.msg, "redo entries")))
			fail_msg("bad count: %d %s", ret, err.msg);
	}
	journal_records(false);
}

/* A data record's slots at the next open: a read-only open (kiln fs cat
 * while the server runs) accepts them when the backing file holds them (the
 * writer's page cache), reports the file as needing recovery when not (a
 * power cut lost the in-place writes); a read-write open puts them in place
 * before any read. */
static int last_record_flags(struct env *e);
static pf_volume_t *vol_with_file(struct env *e, const char *path, const uint8_t *data,
				  size_t size);

/* A copy of e's store in e->dir/copy (what a reader sees while the writer
 * holds the volume's lock): cdir names it, cdata f's backing file in it. */
static void copy_store(struct env *e, pf_file_t *f, char cdir[128], char cdata[256])
{
	char copy[600];

	snprintf(copy, sizeof(copy), "rm -rf %s/copy && mkdir %s/copy && cp -a %s/.kiln "
		 "%s/copy/", e->dir, e->dir, e->kdir, e->dir);
	assert_int_equal(system(copy), 0);
	snprintf(cdir, 128, "%s/copy", e->dir);
	snprintf(cdata, 256, "%s/copy/.kiln/%s", e->dir, f->node->name);
}

/* Open the volume in cdir read-only and read f: its first want_size bytes
 * are want's (or, want NULL, opening f fails as needing recovery). verify:
 * the volume verifies too. */
static void read_only_check(struct env *e, const char *cdir, const uint8_t *want,
			    size_t want_size, bool verify)
{
	struct pf_volume_opts ro;
	struct kiln_err err = { 0 };
	uint8_t got[8192];
	pf_volume_t *r;
	pf_file_t *g;

	opts_fill(e, &ro, false);
	ro.read_only = true;
	assert_int_equal(pf_volume_open(cdir, g_key, &ro, &r, &err), 0);
	if (!want) {
		assert_int_equal(pf_open(r, "f", O_RDONLY, 0, &g, &err), -EROFS);
		assert_non_null(strstr(err.msg, "needs recovery"));
	} else {
		assert_int_equal(pf_open(r, "f", O_RDONLY, 0, &g, &err), 0);
		assert_int_equal(pf_pread(g, got, sizeof(got), 0, &err), (ssize_t)sizeof(got));
		assert_memory_equal(got, want, want_size);
		pf_close(g);
		if (verify)
			assert_int_equal(pf_volume_verify(r, NULL, NULL, &err), 0);
	}
	pf_volume_close(r, NULL);
}

static void test_data_read_only(void **state)
{
	uint8_t a[8192], b[1024];
	char data[256], cdir[128], cdata[256];
	struct pf_volume_opts rw;
	struct kiln_err err = { 0 };
	pf_volume_t *v, *r;
	pf_file_t *f;
	uint8_t *before;
	size_t bsize;
	struct env e;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	v = vol_with_f(&e, a, sizeof(a), false);
	first_commit(v, "f", a, sizeof(a));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	node_path(&e, f, "", data, sizeof(data));
	before = slurp(data, &bsize);
	assert_int_equal(pf_pwrite(f, b, sizeof(b), 2048, &err), (ssize_t)sizeof(b));
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(last_record_flags(&e), PF_LOG_DATA);
	memcpy(a + 2048, b, sizeof(b));
	copy_store(&e, f, cdir, cdata);
	read_only_check(&e, cdir, a, sizeof(a), false);
	/* The in-place slot lost: read-only, the file needs recovery. */
	spill(cdata, before, bsize);
	read_only_check(&e, cdir, NULL, 0, false);
	/* Read-write: the record's slot goes in place; then read-only reads. */
	opts_fill(&e, &rw, false);
	assert_int_equal(pf_volume_open(cdir, g_key, &rw, &r, &err), 0);
	pf_volume_discard(r);
	read_only_check(&e, cdir, a, sizeof(a), true);
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0);
	free(before);
	env_free(&e);
}

/* An unlinked file's node (the server keeps sqlite's unlinked -journal
 * open a while, then closes it at the volume's close) is never synced: not
 * when it goes, not in a checkpoint's group. Its data records' slots are
 * debris once the unlink is durable, and until then the log replays them:
 * a power cut that loses every unsynced change after the close still finds
 * the file as committed. Without pf__node_gone each pass syncs it once. */
static void test_gone_node_no_sync(void **state)
{
	uint8_t a[3000], b[3000];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *j;
	struct env e;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	pf_volume_close(vol_with_file(&e, "f", a, sizeof(a)), NULL);
	g_use_deferred = true;
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		first_commit(v, "f", a, sizeof(a));
		assert_int_equal(pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0644, &j, &err), 0);
		assert_int_equal(pf_pwrite(j, b, sizeof(b), 0, &err), (ssize_t)sizeof(b));
		assert_int_equal(pf_fsync(j, &err), 0);
		assert_int_equal(last_record_flags(&e) & PF_LOG_DATA, PF_LOG_DATA);
		assert_true(j->node->dplaced);
		g_last_fault->watch_fh = j->node->fh;
		g_last_fault->watch_syncs = 0;
		assert_int_equal(pf_unlink(v, "j", &err), 0);
		if (pass == 1) {
			/* A checkpoint with the unlinked file still open. */
			assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
			assert_int_equal(pf_volume_flush(v, &err), 0);
			assert_int_equal(v->log_records, 0);
		}
		pf_close(j);
		assert_int_equal(g_last_fault->watch_syncs, 0);
		if (pass == 1)
			break;
		/* The unlink is in no record yet: the power goes, every file
		 * losing what no sync covered; the log gives j back whole. */
		g_last_fault->lose_bits = ~0ull;
		fault_power_cut(g_last_fault);
		pf_volume_close(v, NULL);
		v = vol_reopen(&e);
		check_content(v, "j", b, sizeof(b));
		assert_int_equal(pf_unlink(v, "j", &err), 0);
		assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
		pf_volume_close(v, NULL);
	}
	assert_int_equal(pf_volume_close(v, &err), 0);
	g_use_deferred = false;
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "j", O_RDONLY, 0, &j, &err), -ENOENT);
	check_content(v, "f", a, sizeof(a));
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* Names in e's store starting with prefix. */
static int store_names_with(struct env *e, const char *prefix)
{
	char sdir[128];
	DIR *d;
	struct dirent *de;
	int count = 0;

	snprintf(sdir, sizeof(sdir), "%s/.kiln", e->kdir);
	d = opendir(sdir);
	assert_non_null(d);
	while ((de = readdir(d)))
		count += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return count;
}

/* A file created and unlinked in one open, with no journal or tag sidecar
 * ever created (sqlite's -journal): the checkpoint after its unlink removes
 * its backing file alone, not four sidecar names that do not exist (48
 * ENOENT unlinks at the close of sqlite 100k). A file that made sidecars
 * loses them all with it; the power cut after that checkpoint and the next
 * open find neither file nor any name of theirs. */
static void test_unlinked_bare_file_removes(void **state)
{
	uint8_t a[3000], *big = malloc(16 * 1024);
	char jname[PF_BNAME_MAX], kname[PF_BNAME_MAX], side[PF_BNAME_MAX + 2];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *j, *k;
	struct env e;

	(void)state;
	memset(a, 'a', sizeof(a));
	memset(big, 'k', 16 * 1024);
	pf_volume_close(vol_with_file(&e, "f", a, sizeof(a)), NULL);
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	first_commit(v, "f", a, sizeof(a));
	/* k: 16 chunks, tag sidecars written by a checkpoint. */
	assert_int_equal(pf_open(v, "k", O_RDWR | O_CREAT | O_EXCL, 0644, &k, &err), 0);
	file_put(k, big, 16 * 1024);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	assert_int_equal(pf_volume_flush(v, &err), 0);
	snprintf(kname, sizeof(kname), "%s", k->node->name);
	snprintf(side, sizeof(side), "%s.t", kname);
	assert_int_equal(store_names_with(&e, side), 1);
	/* j: one data record, then unlinked. */
	assert_int_equal(pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0644, &j, &err), 0);
	file_put(j, a, sizeof(a));
	snprintf(jname, sizeof(jname), "%s", j->node->name);
	assert_int_equal(store_names_with(&e, jname), 1);
	assert_int_equal(pf_unlink(v, "j", &err), 0);
	pf_close(j);
	assert_int_equal(pf_rmdir(v, "d", &err), 0);
	g_last_fault->removes = g_last_fault->removes_missing = 0;
	assert_int_equal(pf_volume_flush(v, &err), 0);
	assert_int_equal(v->log_records, 0);
	assert_int_equal(g_last_fault->removes_missing, 0);
	assert_int_equal(g_last_fault->removes, 1);
	assert_int_equal(store_names_with(&e, jname), 0);
	/* k, unlinked while open: its backing file and sidecars go. */
	assert_int_equal(pf_unlink(v, "k", &err), 0);
	pf_close(k);
	assert_int_equal(pf_mkdir(v, "d", 0755, &err), 0);
	assert_int_equal(pf_volume_flush(v, &err), 0);
	assert_int_equal(store_names_with(&e, kname), 0);
	g_last_fault->lose_bits = ~0ull;
	fault_power_cut(g_last_fault);
	pf_volume_close(v, NULL);
	v = vol_reopen(&e);
	check_content(v, "f", a, sizeof(a));
	assert_int_equal(pf_open(v, "j", O_RDONLY, 0, &j, &err), -ENOENT);
	assert_int_equal(pf_open(v, "k", O_RDONLY, 0, &k, &err), -ENOENT);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	assert_int_equal(store_names_with(&e, jname) + store_names_with(&e, kname), 0);
	free(big);
	env_free(&e);
}

/* The meta.tmp a checkpoint left (the exchange puts the previous metadata
 * there) stays at the next open: the first checkpoint of the next instance
 * writes over it instead of creating a file (an inode allocation its sync
 * journals), and the open removes nothing. That checkpoint is durable at a
 * power cut right after it; a write never synced goes. A symlink planted at
 * meta.tmp is refused at the open, naming it. */
static void test_meta_tmp_kept_across_opens(void **state)
{
	uint8_t a[3000], b[3000], c[3000];
	char p[200], t[200];
	struct kiln_err err = { 0 };
	struct stat st;
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;

	(void)state;
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(c, 'c', sizeof(c));
	pf_volume_close(vol_with_file(&e, "f", a, sizeof(a)), NULL);
	snprintf(p, sizeof(p), "%s/.kiln/meta.tmp", e.kdir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	assert_int_equal(g_last_fault->removes, 0);
	assert_int_equal(lstat(p, &st), 0);
	first_commit(v, "f", b, sizeof(b));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, c, sizeof(c), 0, &err), (ssize_t)sizeof(c));
	g_last_fault->lose_bits = ~0ull;
	fault_power_cut(g_last_fault);
	pf_close(f);
	pf_volume_close(v, NULL);
	v = vol_reopen(&e);
	check_content(v, "f", b, sizeof(b));
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	snprintf(t, sizeof(t), "%s/planted", e.dir);
	(void)unlink(p);
	assert_int_equal(symlink(t, p), 0);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EUNSAFE);
	assert_non_null(strstr(err.msg, "meta.tmp"));
	env_free(&e);
}

/* A file cut at a chunk boundary and written past the cut in one whole
 * generation (a data record that shrinks it) after a data record that wrote a
 * chunk past the cut: the older slot is stale, not a corrupt log, and the
 * backing file's bytes past the new end are debris. Both opens refused the
 * volume ("does not fit inode"), then the file ("extended or tampered"): the
 * crash trials' failures. */
static void test_data_shrink_replay(void **state)
{
	uint8_t a[8192], b[1024], c[3000], want[4096 + 3000], got[8192];
	char cdir[128], cdata[256];
	struct pf_volume_opts o;
	struct kiln_err err = { 0 };
	pf_volume_t *v, *r;
	pf_file_t *f, *g;
	struct env e;
	FILE *cut;

	(void)state;
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(c, 'c', sizeof(c));
	v = vol_with_f(&e, a, sizeof(a), false);
	first_commit(v, "f", a, sizeof(a));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, b, sizeof(b), 7168, &err), (ssize_t)sizeof(b));
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(last_record_flags(&e), PF_LOG_DATA);
	assert_int_equal(pf_ftruncate(f, 4096, &err), 0);
	assert_int_equal(pf_pwrite(f, c, sizeof(c), 4096, &err), (ssize_t)sizeof(c));
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(last_record_flags(&e), PF_LOG_DATA);
	memcpy(want, a, 4096);
	memcpy(want + 4096, c, sizeof(c));
	copy_store(&e, f, cdir, cdata);
	/* The writer killed before it cut its backing file: the cut chunks'
	 * slots still past the new end (debris no journal names). */
	cut = fopen(cdata, "ab");
	assert_non_null(cut);
	assert_int_equal(fwrite(a, 1, 2000, cut), 2000);
	assert_int_equal(fclose(cut), 0);
	/* Read-only (the slots compared), then read-write (put in place). */
	for (int ro = 1; ro >= 0; ro--) {
		opts_fill(&e, &o, false);
		o.read_only = ro;
		if (pf_volume_open(cdir, g_key, &o, &r, &err) != 0)
			fail_msg("%s open: %s", ro ? "read-only" : "read-write", err.msg);
		assert_int_equal(pf_open(r, "f", O_RDONLY, 0, &g, &err), 0);
		assert_int_equal(pf_pread(g, got, sizeof(got), 0, &err), (ssize_t)sizeof(want));
		assert_memory_equal(got, want, sizeof(want));
		pf_close(g);
		assert_int_equal(pf_volume_verify(r, NULL, NULL, &err), 0);
		assert_int_equal(pf_volume_close(r, &err), 0);
	}
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0);
	env_free(&e);
}

/* A read-only open (kiln fs cat while the server runs) after a commit: the
 * live redo journal is accepted when the backing file holds its slots, and
 * reported as needing recovery when not; a clean close spends it. */
static void test_journal_redo_read_only(void **state)
{
	uint8_t a[8192], b[1024];
	struct env e;
	pf_volume_t *v;
	pf_file_t *f;
	struct kiln_err err = { 0 };
	char data[256], jj[256], cdir[128], cdata[256];
	uint8_t *before, *jbuf;
	size_t bsize, jsize;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	v = vol_with_f(&e, a, sizeof(a), false);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	node_path(&e, f, "", data, sizeof(data));
	node_path(&e, f, ".j", jj, sizeof(jj));
	before = slurp(data, &bsize);
	assert_int_equal(pf_pwrite(f, b, sizeof(b), 0, &err), (ssize_t)sizeof(b));
	assert_int_equal(pf_fsync(f, &err), 0);
	/* While f stays open its redo journal is live: a copy of the volume
	 * (what a reader sees, the writer holding its lock) opens read-only. */
	copy_store(&e, f, cdir, cdata);
	read_only_check(&e, cdir, b, sizeof(b), false);
	/* The same with the in-place slot lost: needs recovery. */
	spill(cdata, before, bsize);
	read_only_check(&e, cdir, NULL, 0, false);
	/* A clean close: the slot synced, the journal spent. */
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0);
	jbuf = slurp(jj, &jsize);
	assert_true(jsize >= 8);
	assert_memory_not_equal(jbuf, PF_JOURNAL_MAGIC, 8);
	free(jbuf);
	free(before);
	env_free(&e);
}

/* Generations alternate between .j and .k: three commits of overwrites (and
 * an append), a power cut at every storage call of the last two, with
 * deferred syncs and without. After the reopen the file is the last
 * completed fsync's content or the one in flight, never anything else. */
static void generations_crash_points(void)
{
	uint8_t s0[6000], s1[6000], s2[6000], s3[7000], got[8000];
	const uint8_t *states[] = { s0, s1, s2, s3 };
	const size_t sizes[] = { 6000, 6000, 6000, 7000 };

	memset(s0, 'a', sizeof(s0));
	memcpy(s1, s0, sizeof(s0));
	memset(s1 + 100, 'b', 2000);
	memcpy(s2, s1, sizeof(s1));
	memset(s2 + 1500, 'c', 300);
	memcpy(s3, s2, sizeof(s2));
	memset(s3 + 5000, 'd', 2000);
	for (long point = 1; point < 200; point++) {
		struct env e;
		pf_volume_t *v;
		pf_file_t *f;
		struct kiln_err err = { 0 };
		uint64_t size;
		int done = 0, k;
		ssize_t n;

		env_init(&e);
		v = vol_init(&e, 1024, NULL, 0);
		write_file(v, "f", s0, sizeof(s0));
		pf_volume_close(v, NULL);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
		assert_int_equal(pf_pwrite(f, s1, sizeof(s1), 0, &err), (ssize_t)sizeof(s1));
		assert_int_equal(pf_fsync(f, &err), 0);
		done = 1;
		g_last_fault->countdown = point;
		g_last_fault->sticky = true;
		g_last_fault->rng = (uint64_t)point * 2654435761u + 11;
		if (pf_pwrite(f, s2 + 1500, 300, 1500, &err) == 300 && pf_fsync(f, &err) == 0) {
			done = 2;
			if (pf_pwrite(f, s3 + 5000, 2000, 5000, &err) == 2000 &&
			    pf_fsync(f, &err) == 0)
				done = 3;
		}
		pf_close(f);
		(void)pf_volume_close(v, NULL);
		v = vol_reopen(&e);
		if (pf_open(v, "f", O_RDONLY, 0, &f, &err) != 0)
			fail_msg("point %ld: open: %s", point, err.msg);
		assert_int_equal(pf_get_size(f, &size), 0);
		n = pf_pread(f, got, sizeof(got), 0, &err);
		if (n < 0)
			fail_msg("point %ld: read: %s", point, err.msg);
		pf_close(f);
		for (k = done; k <= done + 1 && k < 4; k++)
			if ((size_t)n == sizes[k] && memcmp(got, states[k], sizes[k]) == 0)
				break;
		if (k > done + 1 || k == 4)
			fail_msg("point %ld: content is neither state %d nor the next", point, done);
		if (crash_point_done(v, &e, point))
			break;
	}
}

/* A flush of two files (the volume server's commit): with a syncfs both
 * journals' redo entries and both data files are synced in one phase. Two
 * generations, a power cut at every storage call of the second flush: each
 * file is its first or its second content, both the same one. */
static void test_journal_flush_crash_points(void **state)
{
	uint8_t s0[5000], s1[5000], s2[5000], got[6000];

	journal_records(true);
	memset(s0, 'a', sizeof(s0));
	memcpy(s1, s0, sizeof(s0));
	memset(s1 + 200, 'b', 1500);
	memcpy(s2, s1, sizeof(s1));
	memset(s2 + 1000, 'c', 3000);
	g_use_deferred = true;
	for (long point = 1; point < 200; point++) {
		static const char *const names[] = { "f", "g" };
		struct env e;
		pf_volume_t *v;
		pf_file_t *f[2];
		struct kiln_err err = { 0 };
		int which = -1;

		env_init(&e);
		v = vol_init(&e, 1024, NULL, 0);
		write_file(v, "f", s0, sizeof(s0));
		write_file(v, "g", s0, sizeof(s0));
		pf_volume_close(v, NULL);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		first_commit(v, "f", s0, sizeof(s0));
		for (int i = 0; i < 2; i++) {
			assert_int_equal(pf_open(v, names[i], O_RDWR, 0, &f[i], &err), 0);
			assert_int_equal(pf_pwrite(f[i], s1 + 200, 1500, 200, &err), 1500);
		}
		assert_int_equal(pf_volume_flush(v, &err), 0);
		assert_true(f[0]->node->jlive && f[1]->node->jlive);
		assert_int_equal(v->log_records, 1); /* one record names both */
		g_last_fault->countdown = point;
		g_last_fault->sticky = true;
		g_last_fault->rng = (uint64_t)point * 2654435761u + 13;
		if (pf_pwrite(f[0], s2 + 1000, 3000, 1000, &err) == 3000 &&
		    pf_pwrite(f[1], s2 + 1000, 3000, 1000, &err) == 3000)
			(void)pf_volume_flush(v, &err);
		pf_close(f[0]);
		pf_close(f[1]);
		(void)pf_volume_close(v, NULL);
		v = vol_reopen(&e);
		for (int i = 0; i < 2; i++) {
			pf_file_t *h;
			ssize_t n;
			int k;

			if (pf_open(v, names[i], O_RDONLY, 0, &h, &err) != 0)
				fail_msg("point %ld: open %s: %s", point, names[i], err.msg);
			n = pf_pread(h, got, sizeof(got), 0, &err);
			if (n != 5000)
				fail_msg("point %ld: read %s: %zd %s", point, names[i], n, err.msg);
			pf_close(h);
			k = memcmp(got, s1, 5000) == 0 ? 1 : memcmp(got, s2, 5000) == 0 ? 2 : 0;
			if (!k || (which >= 0 && k != which))
				fail_msg("point %ld: %s is state %d (the other file: %d)", point,
					 names[i], k, which);
			which = k;
		}
		if (crash_point_done(v, &e, point))
			break;
	}
	g_use_deferred = false;
	journal_records(false);
}

static void test_journal_generations_crash_points(void **state)
{
	generations_crash_points();
	g_use_deferred = true;
	generations_crash_points();
	g_use_deferred = false;
}

static void test_faults(void **state)
{
	faults_run();
}

static void test_faults_deferred_syncs(void **state)
{
	g_use_deferred = true;
	faults_run();
	g_use_deferred = false;
	assert_int_equal(g_fault_last_unwaited, 0); /* every started sync was waited for */
}

/* A transient ENOSPC fails one file; the others still commit, and the failed
 * file comes back as of its last fsync. */
static void test_enospc_isolated(void **state)
{
	struct env e;
	pf_volume_t *v;
	pf_file_t *a, *b;
	struct kiln_err err = { 0 };
	uint8_t big[50000];

	memset(big, 'z', sizeof(big));
	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	write_file(v, "a", "old-a", 5);
	pf_volume_close(v, NULL);
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	assert_int_equal(pf_open(v, "a", O_RDWR, 0, &a, &err), 0);
	assert_int_equal(pf_open(v, "b", O_RDWR | O_CREAT, 0600, &b, &err), 0);
	assert_int_equal(pf_pwrite(b, "new-b", 5, 0, &err), 5);
	g_last_fault->error = -ENOSPC;
	/* journal: header write, old chunk 0; nothing is synced and no byte of
	 * the backing file moves yet (all of it is held). At fsync the one write
	 * of the redo entries and the end record fails. */
	g_last_fault->countdown = 3;
	assert_int_equal(pf_pwrite(a, big, sizeof(big), 0, &err), (ssize_t)sizeof(big));
	assert_int_equal(pf_fsync(a, &err), -EIO);
	assert_int_equal(pf_pwrite(a, "x", 1, 0, &err), -EIO);
	assert_int_equal(pf_fsync(b, &err), 0);
	pf_close(a);
	pf_close(b);
	assert_int_equal(pf_volume_close(v, &err), -EIO);
	v = vol_reopen(&e);
	check_content(v, "a", (const uint8_t *)"old-a", 5);
	check_content(v, "b", (const uint8_t *)"new-b", 5);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* rename over an open file: the replaced file's handle keeps its data (POSIX);
 * O_TRUNC rewrite switches backing files; two handles see each other. */
static void test_rename_over_open_and_trunc(void **state)
{
	struct env e;
	pf_volume_t *v;
	pf_file_t *a, *b, *b2;
	struct kiln_err err = { 0 };
	uint8_t buf[32];

	env_init(&e);
	v = vol_init(&e, 0, NULL, 0);
	write_file(v, "a", "AAAA", 4);
	write_file(v, "b", "BBBBBB", 6);
	assert_int_equal(pf_open(v, "b", O_RDWR, 0, &b, &err), 0);
	assert_int_equal(pf_rename(v, "a", "b", &err), 0);
	assert_int_equal(pf_pread(b, buf, sizeof(buf), 0, &err), 6);
	assert_memory_equal(buf, "BBBBBB", 6);
	pf_close(b);
	check_content(v, "b", (const uint8_t *)"AAAA", 4);
	assert_int_equal(pf_open(v, "b", O_RDWR | O_TRUNC, 0, &b, &err), 0);
	assert_int_equal(pf_open(v, "b", O_RDONLY, 0, &b2, &err), 0);
	assert_int_equal(pf_pread(b2, buf, sizeof(buf), 0, &err), 0);
	assert_int_equal(pf_pwrite(b, "new", 3, 0, &err), 3);
	assert_int_equal(pf_pread(b2, buf, sizeof(buf), 0, &err), 3);
	assert_memory_equal(buf, "new", 3);
	pf_close(b);
	pf_close(b2);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	check_content(v, "b", (const uint8_t *)"new", 3);
	assert_int_equal(pf_open(v, "a", O_RDONLY, 0, &a, &err), -ENOENT);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	{
		/* Exactly one backing file (plus its sidecar) is left. */
		char cmd[256];
		FILE *p;
		int count = -1;

		snprintf(cmd, sizeof(cmd), "ls %s/.kiln | grep -cE '^[0-9a-f]{32}$'", e.kdir);
		p = popen(cmd, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%d", &count), 1);
		pclose(p);
		assert_int_equal(count, 1);
	}
	env_free(&e);
}

static void test_formats(void **state)
{
	struct pf_header h = { PF_HDR_VERSION, PF_REGION_ENCRYPTED, 4096, { 1, 2 } }, h2;
	uint8_t buf[PF_HDR_SIZE];
	char out[PF_MAX_PATH];
	struct pf_meta m;

	pf__header_encode(&h, buf);
	assert_int_equal(pf__header_decode(buf, sizeof(buf), &h2), 0);
	assert_memory_equal(&h, &h2, sizeof(h));
	assert_int_equal(pf__header_decode(buf, 10, &h2), -KILN_ETRUNC);
	buf[16] = 7;
	assert_int_equal(pf__header_decode(buf, sizeof(buf), &h2), -KILN_EFORMAT);
	assert_int_equal(pf__path_normalize("/a/b/", out), 0);
	assert_string_equal(out, "a/b");
	assert_int_equal(pf__path_normalize("a//b", out), -EINVAL);
	assert_int_equal(pf__path_normalize("a/./b", out), -EINVAL);
	assert_int_equal(pf__meta_parse((const uint8_t *)"\0\x10\0\0", 4, 2, &m, NULL),
			 -KILN_ETRUNC);
}

/* ---- the commit log (log.c): data-only commits as records ---- */
static void log_keys(struct pf_meta_keys *k, const uint8_t *key)
{
	assert_int_equal(pf__meta_keys_derive(key, k), 0);
}

static uint8_t *log_record(const struct pf_meta_keys *k, uint64_t version, uint64_t ino,
			   size_t *size)
{
	struct pf_log_entry ents[2] = { { 0 } };
	struct pf_log_rec r = { .version = version, .ents = ents, .count = 2 };
	uint8_t *rec = NULL;

	ents[0].ino = ino;
	ents[0].size = 100 + version;
	ents[0].mtime_ns = (int64_t)version * 1000;
	memset(ents[0].root, (int)version, PF_ROOT_SIZE);
	ents[1].ino = ino + 1;
	ents[1].size = 7;
	assert_int_equal(pf__log_seal(k, &r, &rec, size), 0);
	return rec;
}

/* A data record (PF_LOG_DATA) round-trips with its slots; the parser refuses
 * a slot of a file the record does not name, a chunk twice, a length of 0 or
 * past PF_LOG_DATA_MAX in all, a cut slot, bytes after the slots, a set
 * reserved field, and the flag with PF_LOG_ONEPHASE, each with a message. */
static void test_log_data_records(void **state)
{
	struct pf_log_entry ents[1] = { { .ino = 7, .size = 3000 } };
	uint8_t s1[PF_SLOT_META + 1024], s2[PF_SLOT_META + 952];
	struct pf_log_slot slots[2] = { { .ino = 7, .idx = 0, .len = 1024, .slot = s1 },
					{ .ino = 7, .idx = 2, .len = 952, .slot = s2 } };
	struct pf_log_rec r = { .version = 9, .flags = PF_LOG_DATA, .ents = ents, .count = 1,
				.slots = slots, .nslots = 2 }, rec;
	struct kiln_err err = { 0 };
	struct pf_meta_keys k;
	uint8_t *buf, *body, *sl2;
	size_t size, bsize;

	memset(s1, 0x11, sizeof(s1));
	memset(s2, 0x22, sizeof(s2));
	log_keys(&k, g_key);
	assert_int_equal(pf__log_seal(&k, &r, &buf, &size), 0);
	assert_int_equal(pf__log_open_rec(&k, buf, size, &rec, &err), 0);
	assert_int_equal(rec.flags, PF_LOG_DATA);
	assert_int_equal(rec.nslots, 2);
	assert_int_equal(rec.slots[1].idx, 2);
	assert_int_equal(rec.slots[1].len, 952);
	assert_memory_equal(rec.slots[0].slot, s1, sizeof(s1));
	assert_memory_equal(rec.slots[1].slot, s2, sizeof(s2));
	pf__log_rec_clear(&rec);
	free(buf);
	r.flags = PF_LOG_DATA | PF_LOG_ONEPHASE;
	assert_int_equal(pf__log_seal(&k, &r, &buf, &size), -EINVAL);
	r.flags = PF_LOG_DATA;
	/* The body: the file entry, then the data part. */
	bsize = 8 + PF_LOG_ENTRY_SIZE + 8 + 2 * PF_LOG_SLOT_FIXED + sizeof(s1) + sizeof(s2);
	body = calloc(1, bsize + 64);
	pf__put_u32(body, 1);
	pf__put_u64(body + 8, 7);
	pf__put_u64(body + 16, 3000);
	pf__put_u32(body + 8 + PF_LOG_ENTRY_SIZE, 2);
	buf = body + 16 + PF_LOG_ENTRY_SIZE;
	pf__put_u64(buf, 7);
	pf__put_u32(buf + 16, 1024);
	sl2 = buf + PF_LOG_SLOT_FIXED + sizeof(s1);
	pf__put_u64(sl2, 7);
	pf__put_u64(sl2 + 8, 2);
	pf__put_u32(sl2 + 16, 952);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err), 0);
	pf__log_rec_clear(&rec);
	/* Without the flag the slots are bytes too many. */
	assert_int_equal(pf__log_body_decode(body, bsize, 0, &rec, &err), -KILN_EFORMAT);
	assert_int_equal(pf__log_body_decode(body, bsize + 1, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "after the slots"));
	assert_int_equal(pf__log_body_decode(body, bsize - 1, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "slot 1 cut"));
	pf__put_u64(sl2, 8);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "slot 1: inode 8 has no file entry"));
	pf__put_u64(sl2, 7);
	pf__put_u64(sl2 + 8, 0);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "chunk 0 of inode 7 twice"));
	pf__put_u64(sl2 + 8, 2);
	pf__put_u32(sl2 + 20, 1);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "reserved field set"));
	pf__put_u32(sl2 + 20, 0);
	pf__put_u32(sl2 + 16, 0);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "out of range"));
	pf__put_u32(sl2 + 16, PF_LOG_DATA_MAX);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "slots of more than"));
	pf__put_u32(sl2 + 16, 952);
	pf__put_u32(body + 8 + PF_LOG_ENTRY_SIZE, 0);
	assert_int_equal(pf__log_body_decode(body, bsize, PF_LOG_DATA, &rec, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "0 slots"));
	free(body);
}

/* Records round-trip; every malformed one is refused with a message. */
static void test_log_records(void **state)
{
	struct pf_meta_keys k, k2;
	struct pf_log_rec rec;
	struct kiln_err err = { 0 };
	uint8_t body[8 + 2 * PF_LOG_ENTRY_SIZE] = { 0 }, *r, *buf;
	size_t size, total;
	struct pf_log_scan s;

	log_keys(&k, g_key);
	log_keys(&k2, g_key2);
	r = log_record(&k, 5, 7, &size);
	assert_int_equal(size, PF_LOG_HDR_SIZE + sizeof(body) + PF_TAG_SIZE);
	assert_int_equal(pf__log_open_rec(&k, r, size, &rec, &err), 0);
	assert_int_equal(rec.version, 5);
	assert_int_equal(rec.count, 2);
	assert_int_equal(rec.size, size);
	assert_int_equal(rec.ents[0].ino, 7);
	assert_int_equal(rec.ents[0].size, 105);
	assert_int_equal(rec.ents[0].mtime_ns, 5000);
	assert_int_equal(rec.ents[0].root[31], 5);
	assert_int_equal(rec.ents[1].ino, 8);
	pf__log_rec_clear(&rec);
	/* Another key, a flipped byte of the body or of the header (the AAD:
	 * the version is bound), a cut, a bad magic, a bad size. */
	assert_int_equal(pf__log_open_rec(&k2, r, size, &rec, &err), -KILN_EAUTH);
	assert_non_null(strstr(err.msg, "authentication failed"));
	r[PF_LOG_HDR_SIZE + 3] ^= 1;
	assert_int_equal(pf__log_open_rec(&k, r, size, &rec, NULL), -KILN_EAUTH);
	r[PF_LOG_HDR_SIZE + 3] ^= 1;
	r[8] ^= 1;
	assert_int_equal(pf__log_open_rec(&k, r, size, &rec, NULL), -KILN_EAUTH);
	r[8] ^= 1;
	assert_int_equal(pf__log_open_rec(&k, r, size - 1, &rec, &err), -KILN_ETRUNC);
	assert_non_null(strstr(err.msg, "cut"));
	assert_int_equal(pf__log_open_rec(&k, r, 39, &rec, NULL), -KILN_ETRUNC);
	r[0] ^= 1;
	assert_int_equal(pf__log_open_rec(&k, r, size, &rec, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "bad magic"));
	r[0] ^= 1;
	r[16] ^= 1;
	assert_int_equal(pf__log_open_rec(&k, r, size, &rec, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "body size"));
	r[16] ^= 1;
	r[20] = 8; /* a flag not defined (1 PF_LOG_ONEPHASE, 2 PF_LOG_NS, 4 PF_LOG_DATA) */
	assert_int_equal(pf__log_open_rec(&k, r, size, &rec, NULL), -KILN_EFORMAT);
	r[20] = 0;
	/* The body's own checks (past authentication). */
	pf__put_u32(body, 2);
	pf__put_u64(body + 8, 9);
	pf__put_u64(body + 8 + PF_LOG_ENTRY_SIZE, 10);
	assert_int_equal(pf__log_body_decode(body, sizeof(body), 0, &rec, &err), 0);
	pf__log_rec_clear(&rec);
	assert_int_equal(pf__log_body_decode(body, sizeof(body) - 1, 0, &rec, &err), -KILN_EFORMAT);
	assert_int_equal(pf__log_body_decode(body, 4, 0, &rec, &err), -KILN_ETRUNC);
	pf__put_u64(body + 8 + PF_LOG_ENTRY_SIZE, 9);
	assert_int_equal(pf__log_body_decode(body, sizeof(body), 0, &rec, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "inode 9 named twice"));
	pf__put_u64(body + 8 + PF_LOG_ENTRY_SIZE, 1);
	assert_int_equal(pf__log_body_decode(body, sizeof(body), 0, &rec, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "out of range"));
	pf__put_u64(body + 8 + PF_LOG_ENTRY_SIZE, 10);
	pf__put_u64(body + 16, PF_MAX_FILE_SIZE + 1);
	assert_int_equal(pf__log_body_decode(body, sizeof(body), 0, &rec, &err), -KILN_EFORMAT);
	pf__put_u64(body + 16, 0);
	pf__put_u32(body, 0);
	assert_int_equal(pf__log_body_decode(body, 8, 0, &rec, &err), -KILN_EFORMAT);
	pf__put_u32(body, 2);
	pf__put_u32(body + 4, 1);
	assert_int_equal(pf__log_body_decode(body, sizeof(body), 0, &rec, &err), -KILN_EFORMAT);
	/* A log: spent records (at or below the base) are skipped, the next
	 * versions applied in order; a gap, a version beyond the admitted one,
	 * a torn record or garbage ends it. */
	total = 0;
	buf = malloc(8 * size + 64);
	for (uint64_t ver = 2; ver <= 6; ver++) {
		uint8_t *x = log_record(&k, ver == 6 ? 8 : ver, 7, &size);

		memcpy(buf + total, x, size);
		total += size;
		free(x);
	}
	memset(buf + total, 0xee, 64);
	assert_int_equal(pf__log_parse(&k, buf, total + 64, 3, UINT64_MAX, &s), 0);
	assert_int_equal(s.count, 2); /* 2, 3 spent; 4, 5; 8 is a gap */
	assert_int_equal(s.version, 5);
	assert_int_equal(s.end, 4 * size);
	assert_int_equal(s.recs[1].ents[0].size, 105);
	pf__log_scan_clear(&s);
	assert_int_equal(pf__log_parse(&k, buf, total, 3, 4, &s), 0);
	assert_int_equal(s.version, 4); /* 5 was never prepared */
	pf__log_scan_clear(&s);
	assert_int_equal(pf__log_parse(&k, buf, 3 * size + 10, 1, UINT64_MAX, &s), 0);
	assert_int_equal(s.version, 4); /* the record of 5 is torn */
	pf__log_scan_clear(&s);
	assert_int_equal(pf__log_parse(&k2, buf, total, 1, UINT64_MAX, &s), 0);
	assert_int_equal(s.count, 0); /* another volume's key */
	assert_int_equal(s.version, 1);
	pf__log_scan_clear(&s);
	/* Reordered: 3 before 2 from base 1 stops at once. */
	memcpy(buf + total, buf, size);
	memcpy(buf, buf + size, size);
	memcpy(buf + size, buf + total, size);
	assert_int_equal(pf__log_parse(&k, buf, total, 1, UINT64_MAX, &s), 0);
	assert_int_equal(s.count, 0);
	pf__log_scan_clear(&s);
	free(buf);
	free(r);
}

static void kiln_path(struct env *e, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/.kiln/%s", e->kdir, name);
}

/* Overwrites of a committed file commit as records: the metadata is not
 * rewritten, the log keeps its size after its first record; a reopen
 * without a clean close replays them (also read-only, as kiln fs cat and
 * verify open); a clean close checkpoints. A flush of two files is one
 * record naming both. */
static void test_log_commits(void **state)
{
	uint8_t a[6000], b[6000];
	char meta[200], logp[200];
	struct kiln_err err = { 0 };
	uint8_t *m0, *m1;
	size_t m0_size, m1_size;
	pf_file_t *f, *g;
	pf_volume_t *v;
	uint64_t ver;
	struct env e;

	journal_records(true);
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	env_init(&e);
	kiln_path(&e, "meta", meta, sizeof(meta));
	kiln_path(&e, PF_LOG_NAME, logp, sizeof(logp));
	v = vol_init(&e, 1024, NULL, 0);
	write_file(v, "f", a, sizeof(a));
	/* A directory: a checkpoint (a new file alone is a log record). */
	assert_int_equal(pf_mkdir(v, "d0", 0700, &err), 0);
	write_file(v, "g", a, sizeof(a));
	ver = pf_volume_version(v);
	m0 = slurp(meta, &m0_size);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_open(v, "g", O_RDWR, 0, &g, &err), 0);
	for (int i = 1; i <= 3; i++) {
		struct stat st;

		a[i * 1000] = (uint8_t)('0' + i);
		file_put(f, a, sizeof(a));
		assert_int_equal(pf_volume_version(v), ver + i);
		assert_int_equal(v->log_records, i);
		/* The first record wrote zeros ahead: the next ones keep the
		 * log's size (their sync writes no inode). */
		assert_int_equal(stat(logp, &st), 0);
		assert_int_equal(st.st_size, PF_LOG_AHEAD);
	}
	assert_int_equal(pf_pwrite(f, b, 100, 0, &err), 100);
	assert_int_equal(pf_pwrite(g, b, sizeof(b), 0, &err), (ssize_t)sizeof(b));
	assert_int_equal(pf_volume_flush(v, &err), 0);
	memcpy(a, b, 100);
	assert_int_equal(pf_volume_version(v), ver + 4);
	assert_int_equal(v->log_records, 4);
	m1 = slurp(meta, &m1_size);
	assert_int_equal(m1_size, m0_size);
	assert_memory_equal(m1, m0, m0_size); /* not rewritten */
	free(m1);
	assert_true(access(logp, F_OK) == 0);
	pf_close(f);
	pf_close(g);
	pf_volume_discard(v); /* no checkpoint: as a kill -9 leaves it */
	/* Read-only (kiln fs cat / verify), then read-write. */
	for (int ro = 1; ro >= 0; ro--) {
		struct pf_volume_opts o;

		opts_fill(&e, &o, false);
		o.read_only = ro;
		if (pf_volume_open(e.kdir, g_key, &o, &v, &err) != 0)
			fail_msg("open (read-only %d): %s", ro, err.msg);
		assert_int_equal(pf_volume_version(v), ver + 4);
		assert_int_equal(v->log_records, 4);
		check_content(v, "f", a, sizeof(a));
		check_content(v, "g", b, sizeof(b));
		assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
		if (ro)
			pf_volume_discard(v);
	}
	/* A clean close checkpoints: the metadata holds it all. */
	assert_int_equal(pf_volume_close(v, &err), 0);
	m1 = slurp(meta, &m1_size);
	assert_true(m1_size != m0_size || memcmp(m1, m0, m0_size) != 0);
	free(m1);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver + 6); /* ver + 5 skipped */
	assert_int_equal(v->log_records, 0);
	check_content(v, "f", a, sizeof(a));
	first_commit(v, "f", a, sizeof(a)); /* ver + 8 */
	/* After the checkpoint the next record goes over the spent ones. */
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, b, sizeof(b));
	assert_int_equal(v->log_off, PF_LOG_HDR_SIZE + 8 + PF_LOG_ENTRY_SIZE + PF_TAG_SIZE);
	pf_close(f);
	pf_volume_discard(v);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver + 9);
	check_content(v, "f", b, sizeof(b));
	/* A namespace change is a checkpoint. */
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), 0);
	assert_int_equal(pf_volume_flush(v, &err), 0);
	assert_int_equal(v->log_records, 0);
	/* A record, then a published (not durable) create: an open takes the
	 * namespace from meta.pub (at the version the log reached), and the
	 * next commit is a checkpoint, not a record over that namespace. */
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, a, sizeof(a));
	pf_close(f);
	assert_int_equal(pf_open(v, "n", O_RDWR | O_CREAT, 0600, &g, &err), 0);
	assert_int_equal(pf_volume_publish(v, &err), 0);
	pf_close(g);
	pf_volume_discard(v);
	v = vol_reopen(&e);
	assert_int_equal(v->log_records, 1);
	check_content(v, "n", a, 0);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, b, sizeof(b));
	pf_close(f);
	assert_int_equal(v->log_records, 0);
	pf_volume_discard(v);
	v = vol_reopen(&e);
	check_content(v, "n", a, 0);
	check_content(v, "f", b, sizeof(b));
	pf_volume_close(v, NULL);
	free(m0);
	env_free(&e);
	journal_records(false);
}

static void copy_file(const char *from, const char *to)
{
	size_t size;
	uint8_t *buf = slurp(from, &size);

	spill(to, buf, size);
	free(buf);
}

/* The host cannot roll a volume back through the log: a truncated log, a
 * record cut, records reordered, an old metadata with its old log are
 * refused as rollbacks (the trusted version covers every record). Garbage
 * after the records is a torn record: ignored. A record whose version the
 * trusted store never prepared is not replayed. */
/* The whole volume directory saved as (or put back from) dir/name. */
static void volume_copy(struct env *e, const char *name, bool put_back)
{
	char cmd[600];

	if (put_back)
		snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s/%s' '%s'", e->kdir, e->dir,
			 name, e->kdir);
	else
		snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s/%s'", e->kdir, e->dir, name);
	assert_int_equal(system(cmd), 0);
}

static void test_log_rollback(void **state)
{
	uint8_t s[5][3000];
	char meta[200], logp[200], saved_meta[200], saved_log[200], last_log[200], cmd[600];
	struct kiln_err err = { 0 };
	uint8_t *buf;
	size_t size, rsize = PF_LOG_HDR_SIZE + 8 + PF_LOG_ENTRY_SIZE + PF_TAG_SIZE;
	pf_file_t *f;
	pf_volume_t *v;
	uint64_t ver;
	struct env e;
	FILE *t;

	journal_records(true);
	for (int i = 0; i < 5; i++)
		memset(s[i], 'p' + i, sizeof(s[i]));
	env_init(&e);
	kiln_path(&e, "meta", meta, sizeof(meta));
	kiln_path(&e, PF_LOG_NAME, logp, sizeof(logp));
	snprintf(saved_meta, sizeof(saved_meta), "%s/meta.saved", e.dir);
	snprintf(saved_log, sizeof(saved_log), "%s/log.saved", e.dir);
	snprintf(last_log, sizeof(last_log), "%s/log.last", e.dir);
	v = vol_init(&e, 1024, NULL, 0);
	/* A directory: a checkpoint (a new file alone is a log record). */
	assert_int_equal(pf_mkdir(v, "d", 0700, &err), 0);
	write_file(v, "f", s[0], sizeof(s[0]));
	ver = pf_volume_version(v);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[1], sizeof(s[1]));
	copy_file(meta, saved_meta);
	copy_file(logp, saved_log); /* version ver + 1 */
	file_put(f, s[2], sizeof(s[2]));
	file_put(f, s[3], sizeof(s[3]));
	pf_close(f);
	pf_volume_discard(v); /* ver + 3, three records */
	copy_file(logp, last_log);
	volume_copy(&e, "vol.last", false);

	/* The log cut to its first record. */
	copy_file(saved_log, logp);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	assert_non_null(strstr(err.msg, "rolled back"));
	/* The last record cut short: the file ends in it, or zeros written
	 * ahead follow its torn end (the records are the file's first bytes,
	 * zeros up to PF_LOG_AHEAD after them). */
	buf = slurp(last_log, &size);
	assert_int_equal(size, PF_LOG_AHEAD);
	for (size_t i = 3 * rsize; i < size; i++)
		assert_int_equal(buf[i], 0);
	spill(logp, buf, 3 * rsize - 5);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	memset(buf + 3 * rsize - 5, 0, 5);
	spill(logp, buf, size);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	free(buf);
	buf = slurp(last_log, &size);
	/* Records 2 and 3 swapped. */
	{
		uint8_t *tmp = malloc(rsize);

		memcpy(tmp, buf + rsize, rsize);
		memcpy(buf + rsize, buf + 2 * rsize, rsize);
		memcpy(buf + 2 * rsize, tmp, rsize);
		free(tmp);
	}
	spill(logp, buf, size);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	free(buf);
	/* The whole log, with garbage after it: opens at ver + 3. */
	copy_file(last_log, logp);
	snprintf(cmd, sizeof(cmd), "head -c 100 /dev/urandom >> %s", logp);
	assert_int_equal(system(cmd), 0);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver + 3);
	check_content(v, "f", s[3], sizeof(s[3]));
	/* More records, a checkpoint, more records; then the old metadata and
	 * its old log put back. */
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[4], sizeof(s[4]));
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[0], sizeof(s[0]));
	pf_close(f);
	pf_volume_discard(v);
	copy_file(saved_meta, meta);
	copy_file(saved_log, logp);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	copy_file(last_log, logp);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);

	/* The trusted store never prepared ver + 3 (the volume as that commit
	 * left it): its record is not replayed, and the file is what ver + 2
	 * committed (its journal's undo entries put back what the unprepared
	 * commit's slots overwrote; ver + 2's one-phase record is vouched for by
	 * the other journal, kept whole by the alternation). */
	volume_copy(&e, "vol.last", true);
	t = fopen(e.vfile, "w");
	fprintf(t, "%llu %llu\n", (unsigned long long)ver + 2, (unsigned long long)ver + 2);
	fclose(t);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver + 2);
	check_content(v, "f", s[2], sizeof(s[2]));
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	journal_records(false);
}

/* A provider whose first answers lag: the CAS's tags as a grant carried them
 * at attestation, before the volume server of the run just ended committed
 * its close. */
struct lagging_fresh {
	const struct pf_freshness_ops *inner;
	void *ictx;
	int stale; /* how many answers lag by one version */
};

static int lag_prepare(void *ctx, uint64_t version, struct kiln_err *err)
{
	struct lagging_fresh *l = ctx;

	return l->inner->prepare(l->ictx, version, err);
}

static int lag_commit(void *ctx, uint64_t version, struct kiln_err *err)
{
	struct lagging_fresh *l = ctx;

	return l->inner->commit(l->ictx, version, err);
}

static int lag_current(void *ctx, uint64_t *c, uint64_t *p, struct kiln_err *err)
{
	struct lagging_fresh *l = ctx;
	int ret = l->inner->current(l->ictx, c, p, err);

	if (!ret && l->stale > 0) {
		l->stale--;
		*c = *p = *c - 1;
	}
	return ret;
}

static void lag_free(void *ctx)
{
	struct lagging_fresh *l = ctx;

	l->inner->free(l->ictx);
	free(l);
}

static const struct pf_freshness_ops g_lag_ops = {
	.prepare = lag_prepare, .commit = lag_commit, .current = lag_current, .free = lag_free,
};

static int vol_open_lagging(struct env *e, int stale, pf_volume_t **v, struct kiln_err *err)
{
	struct pf_volume_opts o;
	struct lagging_fresh *l = calloc(1, sizeof(*l));

	assert_non_null(l);
	opts_fill(e, &o, false);
	l->inner = o.freshness;
	l->ictx = o.freshness_ctx;
	l->stale = stale;
	o.freshness = &g_lag_ops;
	o.freshness_ctx = l;
	return pf_volume_open(e->kdir, g_key, &o, v, err);
}

/* A first answer one version behind is asked again, with records to replay
 * (the log's admission) and without (the rollback check); a provider that
 * stays behind is still a conflict. */
static void test_freshness_asked_again(void **state)
{
	uint8_t s[2][3000];
	struct kiln_err err = { 0 };
	pf_file_t *f;
	pf_volume_t *v;
	uint64_t ver;
	struct env e;

	memset(s[0], 'x', sizeof(s[0]));
	memset(s[1], 'y', sizeof(s[1]));
	env_init(&e);
	v = vol_init(&e, 1024, NULL, 0);
	write_file(v, "f", s[0], sizeof(s[0]));
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	ver = pf_volume_version(v);
	pf_volume_close(v, NULL);
	/* Without records. */
	assert_int_equal(vol_open_lagging(&e, 1, &v, &err), 0);
	assert_int_equal(pf_volume_version(v), ver);
	first_commit(v, "f", s[0], sizeof(s[0]));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[1], sizeof(s[1]));
	assert_true(v->log_records > 0);
	ver = pf_volume_version(v);
	pf_close(f);
	pf_volume_discard(v);
	/* With a record to replay: not dropped for the lagging answer. */
	assert_int_equal(vol_open_lagging(&e, 1, &v, &err), 0);
	assert_int_equal(pf_volume_version(v), ver);
	check_content(v, "f", s[1], sizeof(s[1]));
	assert_int_equal(pf_volume_close(v, &err), 0);
	/* Behind at every answer (no records: a checkpoint at close): refused,
	 * as before. */
	assert_int_equal(vol_open_lagging(&e, 1000, &v, &err), -KILN_ECONFLICT);
	assert_non_null(strstr(err.msg, "newer than the trusted"));
	env_free(&e);
}

/* A version whose commit did not complete is never used again. The host
 * keeps the volume of a commit a crash cut before the trusted store
 * committed it (left prepared, or its prepare lost), hides it, and after the
 * program's next acknowledged commit puts the cut one back: were that commit
 * the same version, the rollback check would accept either content. */
static int last_record_flags(struct env *e);

static void version_cut_then_put_back(bool prepared)
{
	uint8_t s[4][3000];
	struct kiln_err err = { 0 };
	pf_file_t *f;
	pf_volume_t *v;
	uint64_t ver, acked;
	struct env e;
	FILE *t;

	for (int i = 0; i < 4; i++)
		memset(s[i], 'a' + i, sizeof(s[i]));
	env_init(&e);
	v = vol_init(&e, 1024, NULL, 0);
	write_file(v, "f", s[0], sizeof(s[0]));
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	first_commit(v, "f", s[0], sizeof(s[0]));
	ver = pf_volume_version(v);
	volume_copy(&e, "vol.base", false);
	/* The cut commit (a record written with its prepare in flight), the
	 * whole volume saved. */
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[1], sizeof(s[1]));
	/* One phase: the record written with its prepare in flight. */
	assert_int_equal(last_record_flags(&e), PF_LOG_ONEPHASE);
	pf_close(f);
	pf_volume_discard(v);
	volume_copy(&e, "vol.cut", false);
	/* As the crash left it: nothing of it durable; the provider holds its
	 * version as prepared, or never got the prepare. */
	volume_copy(&e, "vol.base", true);
	t = fopen(e.vfile, "w");
	fprintf(t, "%llu %llu\n", (unsigned long long)ver,
		(unsigned long long)(prepared ? ver + 1 : ver));
	fclose(t);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver);
	check_content(v, "f", s[0], sizeof(s[0]));
	/* The next commit, acknowledged, then the machine stops. */
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[2], sizeof(s[2]));
	acked = pf_volume_version(v);
	assert_true(acked > ver + 1);
	pf_close(f);
	pf_volume_discard(v);
	volume_copy(&e, "vol.acked", false);
	/* The cut commit's volume put back: refused, never shown as current
	 * (with its version used twice it opened, showing s[1] for s[2]). */
	volume_copy(&e, "vol.cut", true);
	assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_EROLLBACK);
	assert_non_null(strstr(err.msg, "rolled back"));
	/* The real volume opens where it was, and commits go on (records after
	 * the first commit of an open, which skips one version). */
	volume_copy(&e, "vol.acked", true);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), acked);
	check_content(v, "f", s[2], sizeof(s[2]));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, s[3], sizeof(s[3]));
	file_put(f, s[1], sizeof(s[1]));
	ver = pf_volume_version(v);
	pf_close(f);
	pf_volume_discard(v);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver);
	check_content(v, "f", s[1], sizeof(s[1]));
	pf_volume_close(v, NULL);
	env_free(&e);
}

static void test_version_never_reused(void **state)
{
	journal_records(true);
	version_cut_then_put_back(true);
	version_cut_then_put_back(false);
	journal_records(false);
}

/* A power cut at every storage call of: two records, a checkpoint (a new
 * file: its namespace change) with records in the log, and a record after
 * it written over the spent ones. After the reopen f is the last completed
 * fsync's content or the one in flight; g is missing or whole. */
static void test_log_crash_points(void **state)
{
	uint8_t s[4][4000], got[5000];

	for (int i = 0; i < 4; i++) {
		memset(s[i], 'k', sizeof(s[i]));
		memset(s[i] + 500 * i, 'A' + i, 700);
	}
	for (int deferred = 0; deferred < 2; deferred++) {
		g_use_deferred = deferred;
		for (long point = 1; point < 300; point++) {
			struct env e;
			pf_volume_t *v;
			pf_file_t *f, *g;
			struct kiln_err err = { 0 };
			struct pf_stat st;
			int done = 0, k;
			ssize_t n;

			env_init(&e);
			v = vol_init(&e, 1024, NULL, 0);
			write_file(v, "f", s[0], sizeof(s[0]));
			pf_volume_close(v, NULL);
			assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
			first_commit(v, "f", s[0], sizeof(s[0]));
			assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
			g_last_fault->countdown = point;
			g_last_fault->sticky = true;
			g_last_fault->rng = (uint64_t)point * 2654435761u + 17;
			g_last_fault->dir_loss = FAULT_DIR_RANDOM;
			if (pf_pwrite(f, s[1], sizeof(s[1]), 0, &err) == sizeof(s[1]) &&
			    pf_fsync(f, &err) == 0) {
				done = 1;
				assert_int_equal(v->log_records, 1);
			}
			/* g in a new directory: a checkpoint (a new file alone
			 * is a record: test_ns_log_crash_points). */
			if (done == 1 && pf_pwrite(f, s[2], sizeof(s[2]), 0, &err) == sizeof(s[2]) &&
			    pf_mkdir(v, "d", 0700, &err) == 0 &&
			    pf_open(v, "d/g", O_RDWR | O_CREAT, 0600, &g, &err) == 0) {
				if (pf_pwrite(g, s[3], sizeof(s[3]), 0, &err) == sizeof(s[3]) &&
				    pf_volume_flush(v, &err) == 0) {
					done = 2;
					assert_int_equal(v->log_records, 0);
				}
				pf_close(g);
			}
			if (done == 2 && pf_pwrite(f, s[3], sizeof(s[3]), 0, &err) == sizeof(s[3]) &&
			    pf_fsync(f, &err) == 0) {
				done = 3;
				assert_int_equal(v->log_records, 1);
			}
			pf_close(f);
			(void)pf_volume_close(v, NULL);
			v = vol_reopen(&e);
			if (pf_open(v, "f", O_RDONLY, 0, &f, &err) != 0)
				fail_msg("point %ld: open: %s", point, err.msg);
			n = pf_pread(f, got, sizeof(got), 0, &err);
			pf_close(f);
			for (k = done; k <= done + 1 && k < 4; k++)
				if (n == (ssize_t)sizeof(s[k]) && memcmp(got, s[k], sizeof(s[k])) == 0)
					break;
			if (k > done + 1 || k == 4)
				fail_msg("point %ld (deferred %d): f is neither state %d nor the next",
					 point, deferred, done);
			if (pf_stat(v, "d/g", &st, &err) == 0) {
				assert_true(k >= 2);
				check_content(v, "d/g", s[3], sizeof(s[3]));
			} else {
				assert_true(k <= 1); /* f's state 2 came with g */
			}
			if (crash_point_done(v, &e, point))
				break;
		}
	}
	g_use_deferred = false;
}

/* A new volume (chunk 1024) with one committed file, opened again. */
static pf_volume_t *vol_with_file(struct env *e, const char *path, const uint8_t *data,
				  size_t size)
{
	pf_volume_t *v;

	env_init(e);
	v = vol_init(e, 1024, NULL, 0);
	write_file(v, path, data, size);
	pf_volume_close(v, NULL);
	return vol_reopen(e);
}

/* The flags of the last record of the log (-1: none). */
static int last_record_flags(struct env *e)
{
	struct pf_meta_keys k;
	struct pf_log_rec rec;
	char path[256];
	uint8_t *buf;
	size_t size, off = 0;
	int flags = -1;

	log_keys(&k, g_key);
	kiln_path(e, PF_LOG_NAME, path, sizeof(path));
	buf = slurp(path, &size);
	while (off < size && pf__log_open_rec(&k, buf + off, size - off, &rec, NULL) == 0) {
		flags = (int)rec.flags;
		off += rec.size;
		pf__log_rec_clear(&rec);
	}
	free(buf);
	return flags;
}

/* A commit whose files' generations are whole (all of it held, so all of it
 * in the redo entries: overwrites and an append) writes its record in the
 * sync group: one wait, no sync after it, and the record says so. A
 * generation that wrote in place (a truncate drains the write-back and
 * reseals the last chunk) keeps the two phases. Both replay. */
static void test_log_onephase(void **state)
{
	uint8_t a[5000], b[2000], c[100], model[5600];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;
	long direct;

	journal_records(true);
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(c, 'c', sizeof(c));
	memcpy(model, a, sizeof(a));
	memcpy(model + 100, b, 1500);
	memcpy(model + 5000, b, 600);
	memcpy(model, c, sizeof(c));
	env_init(&e);
	v = vol_init(&e, 1024, NULL, 0);
	write_file(v, "f", a, sizeof(a));
	pf_volume_close(v, NULL);
	g_use_deferred = true;
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	first_commit(v, "f", a, sizeof(a));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	direct = g_last_fault->direct_syncs;
	assert_int_equal(pf_pwrite(f, b, 1500, 100, &err), 1500);
	assert_int_equal(pf_pwrite(f, b, 600, 5000, &err), 600);
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(v->log_records, 1);
	assert_int_equal(g_last_fault->direct_syncs, direct);
	assert_int_equal(last_record_flags(&e), PF_LOG_ONEPHASE);
	direct = g_last_fault->direct_syncs;
	assert_int_equal(pf_ftruncate(f, 3000, &err), 0);
	assert_int_equal(pf_pwrite(f, c, sizeof(c), 0, &err), (ssize_t)sizeof(c));
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(v->log_records, 2);
	assert_int_equal(last_record_flags(&e), 0);
	assert_true(g_last_fault->direct_syncs > direct);
	pf_close(f);
	pf_volume_discard(v);
	g_use_deferred = false;
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_log_records(v), 2);
	check_content(v, "f", model, 3000);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	journal_records(false);
}

/* A commit's redo entries and end record are one write to the journal, and
 * held slots of consecutive chunks one write in place: a commit of three
 * chunks takes two writes more than a commit of one, the undo entries of
 * the two more chunks written in the generation (it took six more: a redo
 * entry and a write in place per chunk too). A data record's generation
 * writes no journal at all (no header, no undo entries): its record and one
 * write in place, for one chunk as for three (it took the header and an
 * undo entry per chunk more). */
static void test_commit_writes_batched(void **state)
{
	uint8_t a[8000], b[3 * 1024];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;
	long one, three;

	for (int data = 0; data < 2; data++) {
		journal_records(!data);
		memset(a, 'a', sizeof(a));
		memset(b, 'b', sizeof(b));
		v = vol_with_f(&e, a, sizeof(a), true);
		first_commit(v, "f", a, sizeof(a));
		assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
		one = g_last_fault->pwrites;
		assert_int_equal(pf_pwrite(f, b, 100, 1024 + 10, &err), 100);
		assert_int_equal(pf_fsync(f, &err), 0);
		one = g_last_fault->pwrites - one;
		three = g_last_fault->pwrites;
		assert_int_equal(pf_pwrite(f, b, sizeof(b), 2 * 1024, &err), (ssize_t)sizeof(b));
		assert_int_equal(pf_fsync(f, &err), 0);
		three = g_last_fault->pwrites - three;
		assert_int_equal(v->log_records, 2);
		assert_int_equal(last_record_flags(&e), data ? (int)PF_LOG_DATA : (int)PF_LOG_ONEPHASE);
		if (data ? one != 2 || three != 2 : three != one + 2)
			fail_msg("%s: a commit of one chunk: %ld writes; of three: %ld",
				 data ? "data records" : "journals", one, three);
		memcpy(a + 1024 + 10, b, 100);
		memcpy(a + 2 * 1024, b, sizeof(b));
		pf_close(f);
		pf_volume_discard(v);
		v = vol_reopen(&e);
		check_content(v, "f", a, sizeof(a));
		assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
		pf_volume_close(v, NULL);
		env_free(&e);
	}
	journal_records(false);
}

/* A one-phase record counts only when a journal vouches for it. Its group
 * cut (the record durable, the journal and the data not: the volume as
 * before the commit plus the record; the provider got the prepare): the
 * replay stops before it, the file is the commit before, and the next
 * commit takes a version above the cut one. Intact: replayed. */
static void test_log_vouch(void **state)
{
	uint8_t a[3000], b[3000], c[3000];
	char data[256], jk[256], logp[256];
	struct kiln_err err = { 0 };
	uint8_t *before, *log;
	size_t bsize, lsize;
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;
	uint64_t ver;
	FILE *t;

	journal_records(true);
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(c, 'c', sizeof(c));
	v = vol_with_file(&e, "f", a, sizeof(a));
	first_commit(v, "f", a, sizeof(a)); /* its generation wrote .j */
	ver = pf_volume_version(v);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	node_path(&e, f, "", data, sizeof(data));
	node_path(&e, f, ".k", jk, sizeof(jk));
	kiln_path(&e, PF_LOG_NAME, logp, sizeof(logp));
	volume_copy(&e, "vol.before", false);
	before = slurp(data, &bsize);
	file_put(f, b, sizeof(b)); /* generation 2, in .k */
	assert_int_equal(last_record_flags(&e), PF_LOG_ONEPHASE);
	pf_close(f);
	pf_volume_discard(v);
	log = slurp(logp, &lsize);
	volume_copy(&e, "vol.acked", false);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver + 1);
	check_content(v, "f", b, sizeof(b));
	pf_volume_discard(v);
	/* The cut group: the volume as before, the record added. */
	volume_copy(&e, "vol.before", true);
	spill(data, before, bsize);
	spill(logp, log, lsize);
	assert_true(access(jk, F_OK) != 0);
	t = fopen(e.vfile, "w");
	fprintf(t, "%llu %llu\n", (unsigned long long)ver, (unsigned long long)ver + 1);
	fclose(t);
	v = vol_reopen(&e);
	assert_int_equal(pf_volume_version(v), ver);
	check_content(v, "f", a, sizeof(a));
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, c, sizeof(c));
	assert_true(pf_volume_version(v) > ver + 1);
	pf_close(f);
	pf_volume_discard(v);
	v = vol_reopen(&e);
	check_content(v, "f", c, sizeof(c));
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	free(before);
	free(log);
	env_free(&e);
	journal_records(false);
}

/* The power cut of crash point `point` in run 0..3 (odd: deferred syncs): two
 * runs of each kind, with deferred syncs the files' fates alternating (a
 * record kept and a journal or a new file's data lost, and the other way
 * round, when they were the last written). Creates, removes and renames not
 * yet covered by a directory sync are kept or lost at random (runs 0, 1) or
 * lost (runs 2, 3). */
static void crash_arm(long point, int run)
{
	g_last_fault->countdown = point;
	g_last_fault->sticky = true;
	g_last_fault->dir_loss = run < 2 ? FAULT_DIR_RANDOM : FAULT_DIR_LOSE;
	g_last_fault->rng = (uint64_t)point * 2654435761u + 29 + (uint64_t)run;
	if (run & 1)
		g_last_fault->lose_bits = run < 2 ? 0x5555555555555555ull : 0xaaaaaaaaaaaaaaaaull;
}

/* The model of a crash-point test: nfiles files, steps states; file i at
 * step k is st[(k * nfiles + i) * z ..] of sizes[k * sstride + i] bytes. */
struct crash_model {
	const uint8_t *st;
	size_t z;
	int nfiles, steps;
	const size_t *sizes;
	size_t sstride;
};

/* A new volume (chunk 1024) with the files names[] in the model's state 0,
 * opened again with the fault storage, g (names[1]) committed once (the
 * first commit of an open is a checkpoint). */
static pf_volume_t *crash_setup(struct env *e, const char *const *names,
				const struct crash_model *m)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v;

	env_init(e);
	v = vol_init(e, 1024, NULL, 0);
	for (int i = 0; i < m->nfiles; i++)
		write_file(v, names[i], m->st + (size_t)i * m->z, m->sizes[i]);
	pf_volume_close(v, NULL);
	assert_int_equal(vol_open(e, g_key, true, &v, &err), 0);
	first_commit(v, names[1], m->st + m->z, m->sizes[1]);
	return v;
}

/* After the cut and the reopen: the files names[] are all state done or all
 * the next one (the step in flight); then g (names[1]) commits once more, at
 * a version above every one the log holds (maxv: none reused). */
static void crash_states_check(pf_volume_t *v, long point, int run, const char *const *names,
			       const struct crash_model *m, int done, uint64_t maxv)
{
	struct kiln_err err = { 0 };
	uint8_t *got = malloc(m->z + 1000);
	pf_file_t *h;
	int k;

	assert_non_null(got);
	for (k = done; k <= done + 1 && k < m->steps; k++) {
		int i;

		for (i = 0; i < m->nfiles; i++) {
			const uint8_t *want = m->st + ((size_t)k * m->nfiles + i) * m->z;
			size_t size = m->sizes[(size_t)k * m->sstride + i];
			ssize_t n;

			if (pf_open(v, names[i], O_RDONLY, 0, &h, &err) != 0)
				fail_msg("point %ld (run %d, step %d done): open %s: %s", point,
					 run, done, names[i], err.msg);
			n = pf_pread(h, got, m->z + 1000, 0, &err);
			pf_close(h);
			if (n != (ssize_t)size || memcmp(got, want, size) != 0)
				break;
		}
		if (i == m->nfiles)
			break;
	}
	free(got);
	if (k > done + 1 || k == m->steps)
		fail_msg("point %ld (run %d): the files are neither step %d nor the next", point,
			 run, done);
	assert_int_equal(pf_open(v, names[1], O_RDWR, 0, &h, &err), 0);
	assert_int_equal(pf_pwrite(h, "!", 1, 0, &err), 1);
	assert_int_equal(pf_fsync(h, &err), 0);
	pf_close(h);
	if (pf_volume_version(v) <= maxv)
		fail_msg("point %ld (run %d): version %llu reused (the log holds %llu)", point, run,
			 (unsigned long long)pf_volume_version(v), (unsigned long long)maxv);
}

/* The highest version of an authentic record anywhere in the log, spent or
 * cut ones too: a version the host could show again. 0: none. */
static uint64_t log_max_version(struct env *e)
{
	struct pf_meta_keys k;
	struct pf_log_rec rec;
	char path[256];
	uint64_t max = 0;
	uint8_t *buf;
	size_t size;

	kiln_path(e, PF_LOG_NAME, path, sizeof(path));
	if (access(path, F_OK) != 0)
		return 0;
	log_keys(&k, g_key);
	buf = slurp(path, &size);
	for (size_t off = 0; off + 8 <= size; off++) {
		if (memcmp(buf + off, PF_LOG_MAGIC, 8) != 0 ||
		    pf__log_open_rec(&k, buf + off, size - off, &rec, NULL) != 0)
			continue;
		if (rec.version > max)
			max = rec.version;
		pf__log_rec_clear(&rec);
	}
	free(buf);
	return max;
}

/* One step of test_onephase_crash_points: write what changed in each file
 * from step k-1 to k (whole runs of differing bytes), then flush the volume
 * (several files) or fsync the one file written. */
static bool onephase_step(pf_volume_t *v, pf_file_t **fh, int nfiles, const size_t *sizes,
			  const uint8_t *from, const uint8_t *to, size_t stride)
{
	struct kiln_err err = { 0 };
	pf_file_t *last = NULL;
	int written = 0;

	for (int i = 0; i < nfiles; i++) {
		const uint8_t *a = from + i * stride, *b = to + i * stride;
		size_t z = sizes[i];

		for (size_t off = 0; off < z;) {
			size_t end = off;

			if (off < sizes[nfiles + i] && a[off] == b[off]) {
				off++;
				continue;
			}
			while (end < z && (end >= sizes[nfiles + i] || a[end] != b[end]))
				end++;
			if (pf_pwrite(fh[i], b + off, end - off, off, &err) != (ssize_t)(end - off))
				return false;
			off = end;
		}
		if (memcmp(a, b, z) != 0 || sizes[i] != sizes[nfiles + i]) {
			written++;
			last = fh[i];
		}
	}
	if (written == 1)
		return pf_fsync(last, &err) == 0;
	return pf_volume_flush(v, &err) == 0;
}

/* A power cut at every storage call of a sequence of one-phase commits:
 * overwrites of f; an overwrite and an append (its redo follows the previous
 * commit's, placed without a sync); f and g flushed in one record; f closed
 * (its node kept for the journal that vouches for the record), opened again
 * and committed; f, g and h flushed in one record; f, g, h and i flushed.
 * With the deferred storage (it has sync_all, a syncfs, as the runtime's),
 * a flush of two or three files whose generations are whole is one group of
 * syncs started together, the one-phase record's among them, and no syncfs;
 * a flush of four keeps the syncfs, the record after it. After the
 * reopen every file is the state of the last completed step or of the one
 * in flight, the same step for all; and a commit then takes a version above
 * every record the log holds (never one a cut commit sealed). */
static void test_onephase_crash_points(void **state)
{
	enum { STEPS = 7, FILES = 4, Z = 6000 };
	static const char *const names[FILES] = { "f", "g", "h", "i" };
	static uint8_t st[STEPS][FILES][Z];
	/* sizes[k][0..3]: step k's sizes; [4..7]: step k-1's (onephase_step). */
	static size_t sizes[STEPS][2 * FILES];
	struct crash_model model;

	journal_records(true);
	for (int k = 0; k < STEPS; k++) {
		for (int i = 0; i < FILES; i++) {
			sizes[k][i] = i == 0 ? (k < 2 ? 5000 : 6000) : 4000;
			sizes[k][FILES + i] = k ? sizes[k - 1][i] : sizes[k][i];
			if (k)
				memcpy(st[k][i], st[k - 1][i], Z);
			else
				memset(st[k][i], "azyx"[i], Z);
		}
	}
	memset(st[1][0] + 100, '1', 1600);
	memset(st[2][0] + 2100, '2', Z - 2100);
	memset(st[3][0], '3', 300);
	memset(st[3][1] + 1000, '3', 1500);
	memset(st[4][0] + 4000, '4', 500);
	memset(st[5][0] + 200, '5', 1000);
	memset(st[5][1], '5', 500);
	memset(st[5][2] + 1000, '5', 2000);
	memset(st[6][0] + 5000, '6', 500);
	memset(st[6][1] + 3000, '6', 500);
	memset(st[6][2], '6', 100);
	memset(st[6][3] + 500, '6', 2000);
	model = (struct crash_model){ .st = &st[0][0][0], .z = Z, .nfiles = FILES, .steps = STEPS,
				      .sizes = &sizes[0][0], .sstride = 2 * FILES };
	for (int run = 0; run < 4; run++) {
		int deferred = run & 1;

		g_use_deferred = deferred;
		for (long point = 1; point < 600; point++) {
			struct kiln_err err = { 0 };
			pf_file_t *fh[FILES];
			pf_volume_t *v;
			struct env e;
			uint64_t maxv;
			int done = 0, k;

			v = crash_setup(&e, names, &model);
			for (int i = 2; i < FILES; i++) {
				pf_file_t *h;

				assert_int_equal(pf_open(v, names[i], O_RDWR, 0, &h, &err), 0);
				file_put(h, st[0][i], sizes[0][i]);
				pf_close(h);
			}
			for (int i = 0; i < FILES; i++)
				assert_int_equal(pf_open(v, names[i], O_RDWR, 0, &fh[i], &err), 0);
			crash_arm(point, run);
			for (k = 1; k < STEPS; k++) {
				long alls = g_last_fault->sync_alls;
				long direct = g_last_fault->direct_syncs;

				if (k == 4) {
					pf_close(fh[0]);
					fh[0] = NULL;
					if (pf_open(v, "f", O_RDWR, 0, &fh[0], &err) != 0) {
						if (!g_last_fault->dead)
							fail_msg("point %ld: reopen f: %s", point,
								 err.msg);
						break;
					}
				}
				if (!onephase_step(v, fh, FILES, sizes[k], st[k - 1][0], st[k][0], Z))
					break;
				done = k;
				if (!deferred || (k != 3 && k != 5 && k != 6))
					continue;
				/* The flush's path: no syncfs and every sync started for
				 * two or three files, the record one-phase; a syncfs for
				 * four. */
				if (k != 6 && (g_last_fault->sync_alls != alls ||
					       g_last_fault->direct_syncs != direct ||
					       last_record_flags(&e) != PF_LOG_ONEPHASE))
					fail_msg("run %d: step %d: %ld syncfs, %ld syncs not "
						 "started, record flags %d", run, k,
						 g_last_fault->sync_alls - alls,
						 g_last_fault->direct_syncs - direct,
						 last_record_flags(&e));
				if (k == 6 && g_last_fault->sync_alls != alls + 1)
					fail_msg("run %d: step 6: %ld syncfs", run,
						 g_last_fault->sync_alls - alls);
			}
			for (int i = 0; i < FILES; i++)
				pf_close(fh[i]);
			(void)pf_volume_close(v, NULL);
			maxv = log_max_version(&e);
			v = vol_reopen(&e);
			crash_states_check(v, point, run, names, &model, done, maxv);
			if (crash_point_done(v, &e, point))
				break;
		}
	}
	g_use_deferred = false;
	journal_records(false);
}

/* The first tag in f's tag sidecar (<id>.t). */
static void sidecar_tag0(struct env *e, uint8_t tag[PF_TAG_SIZE])
{
	char path[256] = { 0 }, tpath[300];
	int fd;

	backing_path(e, NULL, path, sizeof(path));
	snprintf(tpath, sizeof(tpath), "%s.t", path);
	fd = open(tpath, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, tag, PF_TAG_SIZE, 0), PF_TAG_SIZE);
	close(fd);
}

static void read_back(pf_volume_t *v, const char *path, const uint8_t *model, size_t size)
{
	struct kiln_err err = { 0 };
	uint8_t *buf = malloc(size + 1);
	pf_file_t *f;

	assert_non_null(buf);
	if (pf_open(v, path, O_RDONLY, 0, &f, &err) != 0)
		fail_msg("open %s: %s", path, err.msg);
	assert_int_equal(pf_pread(f, buf, size + 1, 0, &err), (ssize_t)size);
	assert_memory_equal(buf, model, size);
	pf_close(f);
	free(buf);
}

/* A commit by a record leaves the tag sidecars as they were (hints: four
 * system calls less per commit); the checkpoint writes them. A crash in
 * between leaves them stale, and the file reads its last commit anyway
 * (the block's hash refuses the stale tags: the slots decide). Fails when
 * the record's commit rewrites the sidecar (checked). */
/* pf__nonces' pool and fork: a child never draws the bytes its parent drew
 * or will draw (the pool's page is wiped in the child: MADV_WIPEONFORK). It
 * fails with the madvise left out: both then take the same pool bytes. */
static void test_nonce_pool_fork(void **state)
{
	uint8_t first[PF_NONCE_SIZE], mine[8][PF_NONCE_SIZE], theirs[8][PF_NONCE_SIZE];
	int fds[2], st;
	pid_t pid;

	(void)state;
	assert_int_equal(pf__nonces(first, 1), 0); /* the pool made and filled */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 8; i++)
			if (pf__nonces(theirs[i], 1) != 0)
				_exit(1);
		_exit(write(fds[1], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs) ? 0 : 1);
	}
	close(fds[1]);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pf__nonces(mine[i], 1), 0);
	assert_int_equal(read(fds[0], theirs, sizeof(theirs)), (ssize_t)sizeof(theirs));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 8; i++) {
		assert_memory_not_equal(mine[i], first, PF_NONCE_SIZE);
		for (int j = 0; j < 8; j++)
			assert_memory_not_equal(mine[i], theirs[j], PF_NONCE_SIZE);
	}
}

static void test_sidecars_deferred(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	uint8_t data[10 * 4096], before[PF_TAG_SIZE], after[PF_TAG_SIZE];
	pf_volume_t *v;
	pf_file_t *f;
	pid_t pid;
	int st;

	(void)state;
	memset(data, 'a', sizeof(data));
	env_init(&e);
	v = vol_init(&e, 4096, NULL, 0);
	write_file(v, "f", data, sizeof(data));
	assert_int_equal(pf_volume_close(v, &err), 0);
	sidecar_tag0(&e, before);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		bool ok;

		v = vol_reopen(&e);
		ok = pf_open(v, "f", O_RDWR, 0, &f, &err) == 0;
		/* The first commit of an open is a checkpoint, the second a record. */
		for (int i = 0; i < 2 && ok; i++)
			ok = pf_pwrite(f, "b", 1, (uint64_t)i, &err) == 1 && pf_fsync(f, &err) == 0;
		ok = ok && v->log_records == 1;
		sidecar_tag0(&e, after);
		ok = ok && memcmp(before, after, PF_TAG_SIZE) != 0; /* the checkpoint's */
		memcpy(before, after, PF_TAG_SIZE);
		ok = ok && pf_pwrite(f, "c", 1, 2, &err) == 1 && pf_fsync(f, &err) == 0 &&
		     v->log_records == 2;
		sidecar_tag0(&e, after);
		_exit(ok && memcmp(before, after, PF_TAG_SIZE) == 0 ? 0 : 1); /* a crash */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	memcpy(data, "bbc", 3);
	v = vol_reopen(&e); /* replays the records; the sidecar is stale */
	read_back(v, "f", data, sizeof(data));
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	assert_int_equal(pf_volume_close(v, &err), 0);
	sidecar_tag0(&e, after);
	assert_memory_not_equal(before, after, PF_TAG_SIZE);
	v = vol_reopen(&e);
	read_back(v, "f", data, sizeof(data));
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* pf_volume_on_durable: called at a record's commit point -- its version
 * committed with the provider, as the reply always followed -- once per
 * record, not for a checkpoint. */
static int g_durable_calls;
static bool g_durable_prepared;

static void durable_cb(void *arg)
{
	struct env *e = arg;
	unsigned long long c = 0, p = 0;
	FILE *fp = fopen(e->vfile, "r");

	g_durable_calls++;
	g_durable_prepared = fp && fscanf(fp, "%llu %llu", &c, &p) == 2 && p == c;
	if (fp)
		fclose(fp);
}

static void test_on_durable(void **state)
{
	struct env e;
	struct kiln_err err = { 0 };
	uint8_t data[4096];
	pf_volume_t *v;
	pf_file_t *f;

	(void)state;
	memset(data, 'a', sizeof(data));
	v = vol_with_f(&e, data, sizeof(data), false);
	pf_volume_on_durable(v, durable_cb, &e);
	g_durable_calls = 0;
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, "b", 1, 0, &err), 1);
	assert_int_equal(pf_fsync(f, &err), 0); /* the open's first commit: a checkpoint */
	assert_int_equal(g_durable_calls, 0);
	for (int i = 1; i <= 3; i++) {
		g_durable_prepared = false;
		assert_int_equal(pf_pwrite(f, "c", 1, (uint64_t)i, &err), 1);
		assert_int_equal(pf_fsync(f, &err), 0);
		assert_int_equal(v->log_records, (uint64_t)i);
		assert_int_equal(g_durable_calls, i);
		assert_true(g_durable_prepared);
	}
	pf_close(f);
	assert_int_equal(pf_volume_close(v, &err), 0); /* a checkpoint */
	assert_int_equal(g_durable_calls, 3);
	env_free(&e);
}

/* Step k (1..10) of test_data_crash_points on f (fh[0]) and g (fh[1]);
 * false when a call failed (the cut). */
static bool data_step(pf_volume_t *v, pf_file_t **fh, int k, uint8_t st[11][2][6000])
{
	struct kiln_err err = { 0 };
	const uint8_t *f = st[k][0], *g = st[k][1];

	switch (k) {
	case 1: /* an overwrite */
		return pf_pwrite(fh[0], f + 100, 1600, 100, &err) == 1600 &&
		       pf_fsync(fh[0], &err) == 0;
	case 2: /* an append */
		return pf_pwrite(fh[0], f + 5000, 1000, 5000, &err) == 1000 &&
		       pf_fsync(fh[0], &err) == 0;
	case 3: /* two files in one flush */
		return pf_pwrite(fh[0], f, 300, 0, &err) == 300 &&
		       pf_pwrite(fh[1], g + 1000, 1000, 1000, &err) == 1000 &&
		       pf_volume_flush(v, &err) == 0;
	case 4: /* more than log_data_max: a journal's record after data records */
		return pf_pwrite(fh[0], f + 500, 4000, 500, &err) == 4000 &&
		       pf_fsync(fh[0], &err) == 0;
	case 5: /* a data record after that journal's redo went in place */
		return pf_pwrite(fh[0], f + 5500, 100, 5500, &err) == 100 &&
		       pf_fsync(fh[0], &err) == 0;
	case 6: /* a truncate: two phases, in place */
		return pf_ftruncate(fh[0], 4500, &err) == 0 &&
		       pf_pwrite(fh[0], f + 4000, 500, 4000, &err) == 500 &&
		       pf_fsync(fh[0], &err) == 0;
	case 7: /* a data record, f closed (its node kept for the checkpoint) */
		if (pf_pwrite(fh[0], f + 200, 1000, 200, &err) != 1000 || pf_fsync(fh[0], &err))
			return false;
		pf_close(fh[0]);
		fh[0] = NULL;
		return true;
	case 8: /* g stays open (the fault storage counts a close as a sync) */
		return pf_pwrite(fh[1], g + 3000, 500, 3000, &err) == 500 &&
		       pf_fsync(fh[1], &err) == 0;
	case 9: /* a checkpoint (a directory made): the placed slots' data first */
		return pf_mkdir(v, "d", 0700, &err) == 0 && pf_volume_flush(v, &err) == 0 &&
		       v->log_records == 0;
	default: /* a data record written over the spent log */
		return pf_open(v, "f", O_RDWR, 0, &fh[0], &err) == 0 &&
		       pf_pwrite(fh[0], f, 100, 0, &err) == 100 && pf_fsync(fh[0], &err) == 0;
	}
}

/* Data records under a power cut at every storage call (the directory model
 * too), log_data_max 4000 bytes: data records of one file (overwrite,
 * append), a two-file flush, a journal's record of f (too large for the log)
 * after them, a data record after that journal's redo, a truncate (two
 * phases, in place), a data record and f closed (its node kept), a data
 * record of g (open), a checkpoint, a data record of f reopened over the
 * spent log. After the cut both files are the last completed step or the
 * one in flight. Fails (checked) when the checkpoint does not sync the slots
 * data records placed, when a journal's record after a data record is
 * one-phase, and when a data record does not wait for a journal's redo. */
static void test_data_crash_points(void **state)
{
	enum { STEPS = 11, Z = 6000 };
	static uint8_t st[STEPS][2][Z];
	static const char *const names[2] = { "f", "g" };
	size_t sizes[STEPS][2];
	struct crash_model model;

	/* Each step's change on the one before. */
	for (int i = 0; i < 2; i++)
		memset(st[0][i], "ag"[i], Z);
	for (int k = 0; k < STEPS; k++) {
		sizes[k][0] = k < 2 ? 5000 : k < 6 ? 6000 : 4500;
		sizes[k][1] = 4000;
		if (!k)
			continue;
		memcpy(st[k], st[k - 1], sizeof(st[k]));
		switch (k) {
		case 1: memset(st[1][0] + 100, '1', 1600); break;
		case 2: memset(st[2][0] + 5000, '2', 1000); break;
		case 3: memset(st[3][0], '3', 300); memset(st[3][1] + 1000, '3', 1000); break;
		case 4: memset(st[4][0] + 500, '4', 4000); break;
		case 5: memset(st[5][0] + 5500, '5', 100); break;
		case 6: memset(st[6][0] + 4000, '6', 500); memset(st[6][0] + 4500, 0, Z - 4500);
			break;
		case 7: memset(st[7][0] + 200, '7', 1000); break;
		case 8: memset(st[8][1] + 3000, '8', 500); break;
		case 10: memset(st[10][0], 'X', 100); break;
		default: break;
		}
	}
	model = (struct crash_model){ .st = &st[0][0][0], .z = Z, .nfiles = 2, .steps = STEPS,
				      .sizes = &sizes[0][0], .sstride = 2 };
	g_log_data_max = 4000;
	for (int run = 0; run < 4; run++) {
		g_use_deferred = run & 1;
		for (long point = 1; point < 900; point++) {
			struct kiln_err err = { 0 };
			pf_file_t *fh[2];
			pf_volume_t *v;
			struct env e;
			uint64_t maxv;
			int done = 0, k;

			v = crash_setup(&e, names, &model);
			for (int i = 0; i < 2; i++)
				assert_int_equal(pf_open(v, names[i], O_RDWR, 0, &fh[i], &err), 0);
			crash_arm(point, run);
			for (k = 1; k < STEPS; k++) {
				if (!data_step(v, fh, k, st))
					break;
				done = k;
				/* (The checkpoint leaves the spent records.) */
				if (k != 9 && last_record_flags(&e) !=
				    (k == 4 || k == 6 ? 0 : (int)PF_LOG_DATA))
					fail_msg("point %ld (run %d): step %d: record flags %d",
						 point, run, k, last_record_flags(&e));
			}
			for (int i = 0; i < 2; i++)
				pf_close(fh[i]);
			(void)pf_volume_close(v, NULL);
			maxv = log_max_version(&e);
			v = vol_reopen(&e);
			crash_states_check(v, point, run, names, &model, done, maxv);
			if (crash_point_done(v, &e, point))
				break;
		}
	}
	g_use_deferred = false;
	journal_records(false);
}

/* The content of path (-1: missing) compared with model[size]: 1 equal, 0 not. */
static int ns_matches(pf_volume_t *v, const char *path, const uint8_t *model, size_t size)
{
	struct kiln_err err = { 0 };
	uint8_t got[5000];
	pf_file_t *f;
	ssize_t n;

	if (pf_open(v, path, O_RDONLY, 0, &f, &err) != 0)
		return err.code == -ENOENT ? -1 : 0;
	n = pf_pread(f, got, sizeof(got), 0, &err);
	pf_close(f);
	return n == (ssize_t)size && memcmp(got, model, size) == 0;
}

/* sqlite's DELETE journal mode on a volume: each transaction creates its
 * journal ("j"), fsyncs it (a record with the create and the file's first
 * contents), rewrites its header and fsyncs it (a one-phase record naming a
 * file an earlier record created), fsyncs the database ("f"), and unlinks
 * the journal, whose removal goes with the next transaction's create (one
 * record: unlink and create). Returns the states completed (0..5). */
/* State k of ns_sqlite_steps completed: with check, its k-th record. */
static int ns_done(pf_volume_t *v, bool check, int k)
{
	if (check)
		assert_int_equal(v->log_records, k);
	return k;
}

/* sqlite closes its journal, then unlinks it. */
static int ns_unlink_j(pf_volume_t *v, pf_file_t **j)
{
	pf_close(*j);
	*j = NULL;
	return pf_unlink(v, "j", NULL);
}

static int ns_sqlite_steps(pf_volume_t *v, uint8_t s[6][3000], bool check)
{
	struct kiln_err err = { 0 };
	pf_file_t *f = NULL, *j = NULL, *t = NULL;
	int done = 0;

	if (pf_open(v, "f", O_RDWR, 0, &f, &err) != 0)
		return 0;
	/* 1: the journal created with its first contents. */
	if (pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0644, &j, &err) != 0 ||
	    pf_pwrite(j, s[1], sizeof(s[1]), 0, &err) != sizeof(s[1]) || pf_fsync(j, &err) != 0)
		goto out;
	done = ns_done(v, check, 1);
	/* 2: its header rewritten (a whole generation: one-phase). */
	if (pf_pwrite(j, s[2], 100, 0, &err) != 100 || pf_fsync(j, &err) != 0)
		goto out;
	done = ns_done(v, check, 2);
	/* 3: the database; a file made and unlinked before any commit is not
	 * in the record. */
	if (pf_pwrite(f, s[3], sizeof(s[3]), 0, &err) != sizeof(s[3]) ||
	    pf_open(v, "tmp", O_RDWR | O_CREAT, 0600, &t, &err) != 0)
		goto out;
	pf_close(t);
	if (pf_unlink(v, "tmp", &err) != 0 || pf_fsync(f, &err) != 0)
		goto out;
	done = ns_done(v, check, 3);
	/* 4: the journal unlinked, the next one created: one record. */
	if (ns_unlink_j(v, &j) != 0 ||
	    pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0644, &j, &err) != 0 ||
	    pf_pwrite(j, s[4], sizeof(s[4]), 0, &err) != sizeof(s[4]) || pf_fsync(j, &err) != 0)
		goto out;
	done = ns_done(v, check, 4);
	/* 5: the journal unlinked, the database written: one record. */
	if (ns_unlink_j(v, &j) != 0 ||
	    pf_pwrite(f, s[5], sizeof(s[5]), 0, &err) != sizeof(s[5]) || pf_fsync(f, &err) != 0)
		goto out;
	done = ns_done(v, check, 5);
out:
	if (j)
		pf_close(j);
	pf_close(f);
	return done;
}

/* f and j of each state of ns_sqlite_steps (j: NULL missing; state 2 is
 * s[2]'s first 100 bytes over s[1]). */
static void ns_state(uint8_t s[6][3000], uint8_t j2[3000], int k, const uint8_t **f,
		     const uint8_t **j)
{
	static const int fs[6] = { 0, 0, 0, 3, 3, 5 };

	*f = s[fs[k]];
	*j = k == 0 || k == 5 ? NULL : k == 1 ? s[1] : k == 2 || k == 3 ? j2 : s[4];
}

static void ns_steps_data(uint8_t s[6][3000], uint8_t j2[3000])
{
	for (int i = 0; i < 6; i++) {
		memset(s[i], 'n', sizeof(s[i]));
		memset(s[i] + 400 * i, 'A' + i, 700);
	}
	memcpy(j2, s[1], 3000);
	memcpy(j2, s[2], 100);
}

/* Namespace changes as commit log records, clean: the record kinds, the
 * replay at open (kiln fs's read-only open too), the versions. */
static void test_ns_log_records(void **state)
{
	uint8_t s[6][3000], j2[3000];
	struct kiln_err err = { 0 };
	struct pf_stat st;
	pf_volume_t *v;
	uint64_t ver;
	struct env e;

	journal_records(true);
	ns_steps_data(s, j2);
	v = vol_with_file(&e, "f", s[0], sizeof(s[0]));
	first_commit(v, "f", s[0], sizeof(s[0]));
	ver = pf_volume_version(v);
	assert_int_equal(ns_sqlite_steps(v, s, true), 5);
	assert_int_equal(pf_volume_version(v), ver + 5);
	/* 5: unlink + data, f's generation whole: one phase */
	assert_int_equal(last_record_flags(&e), PF_LOG_NS | PF_LOG_ONEPHASE);
	pf_volume_discard(v); /* a crash: the log holds the five records */
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	assert_int_equal(pf_volume_version(v), ver + 5);
	assert_int_equal(v->log_records, 5);
	check_content(v, "f", s[5], sizeof(s[5]));
	assert_int_equal(pf_stat(v, "j", &st, &err), -ENOENT);
	assert_int_equal(pf_stat(v, "tmp", &st, &err), -ENOENT);
	/* The next inode number came back with the records: never reused. */
	assert_true(v->next_ino >= 6);
	write_file(v, "h", s[1], sizeof(s[1]));
	assert_int_equal(pf_stat(v, "h", &st, &err), 0);
	assert_true(st.ino >= 6);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	/* Cut the log after its first record (the create): a rollback. */
	env_free(&e);

	ns_steps_data(s, j2);
	v = vol_with_file(&e, "f", s[0], sizeof(s[0]));
	first_commit(v, "f", s[0], sizeof(s[0]));
	{
		pf_file_t *j;

		assert_int_equal(pf_open(v, "j", O_RDWR | O_CREAT, 0644, &j, &err), 0);
		file_put(j, s[1], sizeof(s[1]));
		/* A create with its first contents: one phase (vouched by them). */
		assert_int_equal(last_record_flags(&e), PF_LOG_NS | PF_LOG_ONEPHASE);
		file_put(j, s[2], 100);
		assert_int_equal(last_record_flags(&e), PF_LOG_ONEPHASE);
		pf_close(j);
	}
	pf_volume_discard(v);
	v = vol_reopen(&e); /* the last record is vouched through the first's create */
	check_content(v, "j", j2, sizeof(j2));
	pf_volume_close(v, NULL);
	env_free(&e);
	journal_records(false);
}

/* An authentic record whose namespace entry does not apply refuses the open
 * with a message naming the record and the entry. */
static void test_ns_log_refused(void **state)
{
	struct pf_meta_keys k;
	struct pf_log_entry ent = { 0 };
	struct pf_log_ns ns = { 0 };
	struct pf_log_rec r = { .ents = &ent, .count = 1, .ns = &ns, .nns = 1,
				.flags = PF_LOG_NS };
	uint8_t a[3000], *rec;
	char logp[256];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	size_t size;
	struct env e;
	FILE *t;

	memset(a, 'a', sizeof(a));
	log_keys(&k, g_key);
	for (int c = 0; c < 3; c++) {
		v = vol_with_file(&e, "f", a, sizeof(a));
		first_commit(v, "f", a, sizeof(a));
		r.version = pf_volume_version(v) + 1;
		r.next_ino = v->next_ino + 1;
		ns.op = PF_LOG_NS_CREATE;
		ns.parent = PF_ROOT_INO;
		ns.ino = v->next_ino;
		ns.kind = PF_REGION_ENCRYPTED;
		ns.len = 1;
		memcpy(ns.name, c == 0 ? "f" : "g", 2); /* 0: the name exists */
		if (c == 1)
			ns.ino = 2; /* f's number: reused */
		if (c == 2)
			ns.parent = 99; /* no such directory */
		ent.ino = ns.ino;
		/* The provider prepared the record's version (it was being
		 * committed): authentic and admitted, so it must apply. */
		assert_non_null(v->fo);
		assert_int_equal(v->fo->prepare(v->fctx, r.version, NULL), 0);
		pf_volume_discard(v);
		assert_int_equal(pf__log_seal(&k, &r, &rec, &size), 0);
		kiln_path(&e, PF_LOG_NAME, logp, sizeof(logp));
		t = fopen(logp, "wb");
		assert_non_null(t);
		assert_int_equal(fwrite(rec, 1, size, t), size);
		fclose(t);
		free(rec);
		assert_int_equal(vol_open(&e, g_key, false, &v, &err), -KILN_ECORRUPT);
		assert_non_null(strstr(err.msg, "namespace entry 0"));
		assert_non_null(strstr(err.msg, c == 0 ? "the name exists" :
						c == 1 ? "inode number was used" :
							 "not a directory"));
		env_free(&e);
	}
}

/* A power cut at every storage call of ns_sqlite_steps: after the reopen the
 * namespace and the data are a state the steps produced, the last completed
 * one or the one in flight, never torn; the volume verifies and the next
 * commit takes a version above every one used. */
static void test_ns_log_crash_points(void **state)
{
	uint8_t s[6][3000], j2[3000];

	ns_steps_data(s, j2);
	for (int run = 0; run < 4; run++) {
		int deferred = run & 1;

		g_use_deferred = deferred;
		for (long point = 1; point < 400; point++) {
			const uint8_t *mf, *mj;
			struct kiln_err err = { 0 };
			pf_volume_t *v;
			struct env e;
			int done, k, fm, jm;

			v = vol_with_file(&e, "f", s[0], sizeof(s[0]));
			pf_volume_close(v, NULL);
			assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
			first_commit(v, "f", s[0], sizeof(s[0]));
			crash_arm(point, run);
			done = ns_sqlite_steps(v, s, false);
			(void)pf_volume_close(v, NULL);
			if (vol_open(&e, g_key, false, &v, &err) != 0)
				fail_msg("point %ld (deferred %d, state %d): open: %s", point,
					 deferred, done, err.msg);
			for (k = done; k <= done + 1 && k <= 5; k++) {
				ns_state(s, j2, k, &mf, &mj);
				fm = ns_matches(v, "f", mf, 3000);
				jm = ns_matches(v, "j", mj ? mj : s[0], 3000);
				if (fm == 1 && (mj ? jm == 1 : jm == -1))
					break;
			}
			if (k > done + 1 || k > 5)
				fail_msg("point %ld (deferred %d): neither state %d nor the next "
					 "(f %d, j %d)", point, deferred, done, fm, jm);
			if (pf_statat(v, PF_ROOT_INO, "tmp", 0, NULL, &(struct pf_stat){ 0 },
				      &err) != -ENOENT)
				fail_msg("point %ld: tmp exists", point);
			write_file(v, "h", s[1], sizeof(s[1]));
			if (crash_point_done(v, &e, point))
				break;
		}
	}
	g_use_deferred = false;
}

/* The states of nc_steps: "j" missing (0), created with 3000 bytes (1), cut
 * to 1500 and its first 200 bytes rewritten (2), grown to 4500 (3). */
#define NC_STATES 4
static const size_t g_nc_size[NC_STATES] = { 0, 3000, 1500, 4500 };

static void nc_data(uint8_t s[NC_STATES][4500])
{
	memset(s, 0, NC_STATES * sizeof(s[0]));
	memset(s[1], 'a', 3000);
	memcpy(s[2], s[1], 1500);
	memset(s[2], 'b', 200);
	memcpy(s[3], s[2], 1500);
	memset(s[3] + 1500, 'c', 3000);
}

/* The steps of test_ns_create_crash_points; returns the states completed. */
static int nc_steps(pf_volume_t *v, uint8_t s[NC_STATES][4500])
{
	struct kiln_err err = { 0 };
	pf_file_t *j;
	int done = 0;

	/* 1: created with its first contents: one phase, vouched by them. */
	if (pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0644, &j, &err) != 0)
		return 0;
	if (pf_pwrite(j, s[1], 3000, 0, &err) != 3000 || pf_fsync(j, &err) != 0)
		goto out;
	done = 1;
	/* 2: cut and rewritten: a generation that writes in place before its
	 * commit (two phases), while the create is the log's last record. */
	if (pf_ftruncate(j, 1500, &err) != 0 || pf_pwrite(j, s[2], 200, 0, &err) != 200 ||
	    pf_fsync(j, &err) != 0)
		goto out;
	done = 2;
	/* 3: appended. */
	if (pf_pwrite(j, s[3] + 1500, 3000, 1500, &err) != 3000 || pf_fsync(j, &err) != 0)
		goto out;
	done = 3;
out:
	pf_close(j);
	return done;
}

/* A power cut at every storage call of nc_steps: a file a one-phase record
 * creates, then changes of it. After the reopen "j" is the state of the last
 * completed step or of the one in flight; the volume verifies. Fails without
 * the content check of the created file (the record kept while its data sync
 * was cut) and without the journal whose header names the created state (the
 * create record last, the next generation's in-place writes cut). */
static void test_ns_create_crash_points(void **state)
{
	uint8_t s[NC_STATES][4500], a[3000];

	memset(a, 'f', sizeof(a));
	nc_data(s);
	for (int run = 0; run < 4; run++) {
		g_use_deferred = run & 1;
		for (long point = 1; point < 400; point++) {
			struct kiln_err err = { 0 };
			pf_volume_t *v;
			struct env e;
			int done, k, m = 0;

			v = vol_with_file(&e, "f", a, sizeof(a));
			pf_volume_close(v, NULL);
			assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
			first_commit(v, "f", a, sizeof(a));
			crash_arm(point, run);
			done = nc_steps(v, s);
			(void)pf_volume_close(v, NULL);
			if (vol_open(&e, g_key, false, &v, &err) != 0)
				fail_msg("point %ld (run %d, state %d): open: %s", point, run, done,
					 err.msg);
			for (k = done; k <= done + 1 && k < NC_STATES; k++) {
				m = ns_matches(v, "j", s[k], g_nc_size[k]);
				if (k == 0 ? m == -1 : m == 1)
					break;
			}
			if (k > done + 1 || k == NC_STATES)
				fail_msg("point %ld (run %d): j is neither state %d nor the next "
					 "(%d)", point, run, done, m);
			check_content(v, "f", a, sizeof(a));
			write_file(v, "h", a, 100);
			if (crash_point_done(v, &e, point))
				break;
		}
	}
	g_use_deferred = false;
}

/* States of test_data_create_crash_points: f, j, k, m (size -1: no such
 * file) after step s. */
#define DC_STEPS 11
#define DC_Z 5000
static const int g_dc_size[DC_STEPS][4] = {
	{ 4000, -1, -1, -1 },   { 4000, 3000, -1, -1 },  { 4000, 3000, -1, -1 },
	{ 4000, 3000, -1, -1 }, { 4000, 2000, -1, -1 },  { 4000, 4500, -1, -1 },
	{ 4000, 4500, -1, -1 }, { 4000, 4500, 1500, -1 }, { 4000, 4500, 1500, -1 },
	{ 4000, 4000, 1500, -1 }, { 4000, 4000, 1500, 5000 },
};

static void dc_data(uint8_t st[DC_STEPS][4][DC_Z])
{
	memset(st, 0, DC_STEPS * sizeof(st[0]));
	memset(st[0][0], 'f', 4000);
	for (int k = 1; k < DC_STEPS; k++) {
		uint8_t *j = st[k][1];

		memcpy(st[k], st[k - 1], sizeof(st[k]));
		switch (k) {
		case 1: memset(j, 'j', 3000); break;
		case 2: memset(j, '2', 100); break;
		case 3: memset(st[k][0] + 1000, '3', 500); break;
		case 4: memset(j, 0, DC_Z); memset(j, '4', 2000); break;
		case 5: memset(j, '5', 100); memset(j + 1500, 'T', 3000); break;
		case 6: memset(j + 300, '6', 200); break;
		case 7: memset(st[k][2], 'k', 1500); break;
		case 9: memset(j, 'A', 100); memset(j + 4000, 0, 500); break;
		case 10: memset(st[k][3], 'm', 5000); break;
		default: break;
		}
	}
}

/* Step k of test_data_create_crash_points on j (h[0]) and k (h[1]); false
 * when a call failed. */
static bool dc_step(pf_volume_t *v, pf_file_t **h, int k, uint8_t st[DC_STEPS][4][DC_Z])
{
	struct kiln_err err = { 0 };
	const uint8_t *s = st[k][1];
	pf_file_t *f = NULL;
	bool ok;

	switch (k) {
	case 1: /* created with its first contents: a data record */
		return pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0600, &h[0], &err) == 0 &&
		       pf_pwrite(h[0], s, 3000, 0, &err) == 3000 && pf_fsync(h[0], &err) == 0;
	case 2: /* its header rewritten: a data record of a file a record created */
		return pf_pwrite(h[0], s, 100, 0, &err) == 100 && pf_fsync(h[0], &err) == 0;
	case 3: /* the database */
		ok = pf_open(v, "f", O_RDWR, 0, &f, &err) == 0 &&
		     pf_pwrite(f, st[3][0] + 1000, 500, 1000, &err) == 500 &&
		     pf_fsync(f, &err) == 0;
		pf_close(f);
		return ok;
	case 4: /* unlinked, created again: one data record, both changes */
		pf_close(h[0]);
		h[0] = NULL;
		return pf_unlink(v, "j", &err) == 0 &&
		       pf_open(v, "j", O_RDWR | O_CREAT | O_EXCL, 0600, &h[0], &err) == 0 &&
		       pf_pwrite(h[0], s, 2000, 0, &err) == 2000 && pf_fsync(h[0], &err) == 0;
	case 5: /* a generation begun with nothing written (a held overwrite),
		 * then a truncate (its journal written and synced, the held
		 * slot in place), then an append: two phases, in place */
		return pf_pwrite(h[0], s, 100, 0, &err) == 100 &&
		       pf_ftruncate(h[0], 1500, &err) == 0 &&
		       pf_pwrite(h[0], s + 1500, 3000, 1500, &err) == 3000 &&
		       pf_fsync(h[0], &err) == 0;
	case 6: /* a data record after that journal's redo */
		return pf_pwrite(h[0], s + 300, 200, 300, &err) == 200 && pf_fsync(h[0], &err) == 0;
	case 7: /* another file created, left open (the fault storage counts a
		 * close as a sync) */
		return pf_open(v, "k", O_RDWR | O_CREAT | O_EXCL, 0600, &h[1], &err) == 0 &&
		       pf_pwrite(h[1], st[7][2], 1500, 0, &err) == 1500 &&
		       pf_fsync(h[1], &err) == 0;
	case 8: /* a checkpoint: the created files' slots synced first */
		return pf_mkdir(v, "d", 0700, &err) == 0 && pf_volume_flush(v, &err) == 0 &&
		       v->log_records == 0;
	case 9: /* as 5, with the state only in place (the log spent): the late
		 * journal must hold the held chunk's undo entry */
		return pf_pwrite(h[0], s, 100, 0, &err) == 100 &&
		       pf_ftruncate(h[0], 4000, &err) == 0 && pf_fsync(h[0], &err) == 0;
	default: /* a create too large for a data record: one-phase, vouched */
		ok = pf_open(v, "m", O_RDWR | O_CREAT | O_EXCL, 0600, &f, &err) == 0 &&
		     pf_pwrite(f, st[10][3], 5000, 0, &err) == 5000 && pf_fsync(f, &err) == 0;
		pf_close(f);
		return ok;
	}
}

/* Creates carried by data records under a power cut at every storage call
 * (the directory model too), log_data_max 4000: sqlite's DELETE-mode
 * sequence (a journal "j" created with its contents, its header rewritten,
 * the database "f", j unlinked and created again), then a generation of j
 * whose journal is written late (a held overwrite, then a truncate), a data
 * record after it, another file created (left open), a checkpoint, a late
 * journal again (the state only in place now), a create too large for a
 * record. After the cut every file is the last completed state or
 * the one in flight (missing where it was not created), the volume
 * verifies, and no version is reused. Fails (checked) when a generation's
 * late journal leaves out the undo entries of the chunks it held before
 * (journal_write) and when a data record's create leaves the file without
 * dplaced (the checkpoint does not sync its slots). */
static void test_data_create_crash_points(void **state)
{
	static uint8_t st[DC_STEPS][4][DC_Z];
	static const char *const names[4] = { "f", "j", "k", "m" };

	dc_data(st);
	g_log_data_max = 4000;
	for (int run = 0; run < 4; run++) {
		g_use_deferred = run & 1;
		for (long point = 1; point < 900; point++) {
			struct kiln_err err = { 0 };
			pf_file_t *h[2] = { NULL, NULL };
			pf_volume_t *v;
			struct env e;
			uint64_t maxv;
			int done = 0, k, i = 0, m = 0;

			env_init(&e);
			v = vol_init(&e, 1024, NULL, 0);
			write_file(v, "f", st[0][0], 4000);
			pf_volume_close(v, NULL);
			assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
			first_commit(v, "f", st[0][0], 4000);
			crash_arm(point, run);
			for (k = 1; k < DC_STEPS; k++) {
				if (!dc_step(v, h, k, st))
					break;
				done = k;
				if (k != 8 && last_record_flags(&e) !=
				    (k == 5 || k == 9 ? 0 : k == 10 ? (int)(PF_LOG_NS | PF_LOG_ONEPHASE) :
				     k == 1 || k == 4 || k == 7 ? (int)(PF_LOG_NS | PF_LOG_DATA) :
				     (int)PF_LOG_DATA))
					fail_msg("point %ld (run %d): step %d: record flags %d", point,
						 run, k, last_record_flags(&e));
			}
			pf_close(h[0]);
			pf_close(h[1]);
			(void)pf_volume_close(v, NULL);
			maxv = log_max_version(&e);
			if (vol_open(&e, g_key, false, &v, &err) != 0)
				fail_msg("point %ld (run %d, step %d done): open: %s", point, run,
					 done, err.msg);
			for (k = done; k <= done + 1 && k < DC_STEPS; k++) {
				for (i = 0; i < 4; i++) {
					int want = g_dc_size[k][i];

					m = ns_matches(v, names[i], st[k][i], want < 0 ? 0 : (size_t)want);
					if (want < 0 ? m != -1 : m != 1)
						break;
				}
				if (i == 4)
					break;
			}
			if (k > done + 1 || k == DC_STEPS)
				fail_msg("point %ld (run %d): not state %d nor the next (file %s: %d)",
					 point, run, done, names[i < 4 ? i : 0], m);
			/* The next commit goes above every version sealed. */
			write_file(v, "f", st[0][0], 4000);
			if (pf_volume_version(v) <= maxv)
				fail_msg("point %ld (run %d): version %llu reused (the log holds "
					 "%llu)", point, run, (unsigned long long)pf_volume_version(v),
					 (unsigned long long)maxv);
			if (crash_point_done(v, &e, point))
				break;
		}
	}
	g_use_deferred = false;
	journal_records(false);
}

/* The freshness provider's answer at an open of a volume whose log holds
 * records: asked once (the log's scan asks, the rollback check takes that
 * answer; it asked twice, for a CAS two round trips), and the rollback check
 * still refuses an older log (below the trusted version). */
static const struct pf_freshness_ops *g_counted_fo;
static int g_current_calls;

static int counted_current(void *ctx, uint64_t *c, uint64_t *p, struct kiln_err *err)
{
	g_current_calls++;
	return g_counted_fo->current(ctx, c, p, err);
}

static int open_counted(struct env *e, pf_volume_t **v, struct kiln_err *err)
{
	static struct pf_freshness_ops ops;
	struct pf_volume_opts o;

	opts_fill(e, &o, false);
	g_counted_fo = o.freshness;
	ops = *o.freshness;
	ops.current = counted_current;
	o.freshness = &ops;
	g_current_calls = 0;
	return pf_volume_open(e->kdir, g_key, &o, v, err);
}

static void test_open_asks_freshness_once(void **state)
{
	uint8_t a[8000];
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	struct env e;

	memset(a, 'a', sizeof(a));
	v = vol_with_f(&e, a, sizeof(a), false);
	first_commit(v, "f", a, sizeof(a));
	/* Two data records, then a crash (the records stay). */
	for (int i = 0; i < 2; i++) {
		pf_file_t *f;

		memset(a + 1000 * i, 'b' + i, 100);
		assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
		file_put(f, a, sizeof(a));
		pf_close(f);
	}
	assert_int_equal(v->log_records, 2);
	pf_volume_discard(v);
	if (open_counted(&e, &v, &err) != 0)
		fail_msg("open: %s", err.msg);
	assert_int_equal(pf_volume_log_records(v), 2);
	assert_int_equal(g_current_calls, 1);
	check_content(v, "f", a, sizeof(a));
	pf_volume_close(v, NULL);
	/* No records (the close checkpointed): the rollback check asks. */
	assert_int_equal(open_counted(&e, &v, &err), 0);
	assert_int_equal(g_current_calls, 1);
	pf_volume_close(v, NULL);
	env_free(&e);
}

/* A provider whose prepares may ride the log's flush (prepare_unflushed,
 * docs/fs.md "One flush per commit"): the inner prepare, checked for its
 * place in the commit. */
static const struct pf_freshness_ops *g_ride_inner;
static pf_volume_t *g_ride_vol;
static int g_ride_calls, g_full_calls, g_ride_answer;
static bool g_ride_written; /* the record is written before its prepare */
static bool g_ride_fail;    /* the storage's next call after the ride fails */
static long g_ride_syncs;   /* the log's syncs when the prepare rode */

static int ride_prepare(void *ctx, uint64_t version, struct kiln_err *err)
{
	g_full_calls++;
	return g_ride_inner->prepare(ctx, version, err);
}

static int ride_unflushed(void *ctx, uint64_t version, struct kiln_err *err)
{
	pf_volume_t *v = g_ride_vol;
	uint8_t magic[8] = { 0 };

	g_ride_calls++;
	if (g_ride_answer)
		return g_ride_answer;
	/* One-phase or data: the record is written; two-phase or after jlive
	 * data syncs (pre): it follows. Its sync neither done nor started. */
	if (g_ride_written) {
		assert_int_equal(v->so->pread(v->sctx, v->log_fh, magic, 8, v->log_off), 8);
		assert_memory_equal(magic, PF_LOG_MAGIC, 8);
	}
	for (size_t i = 0; i < g_last_fault->ndeferred; i++)
		assert_ptr_not_equal(g_last_fault->deferred[i], v->log_fh);
	g_last_fault->watch_fh = v->log_fh;
	g_ride_syncs = g_last_fault->watch_syncs;
	if (g_ride_fail)
		g_last_fault->countdown = 1;
	return g_ride_inner->prepare(ctx, version, err);
}

static void ride_record(pf_volume_t *v, uint8_t *a, size_t size, char c)
{
	struct kiln_err err = { 0 };
	pf_file_t *f;

	memset(a + 100, c, 50);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, a, size);
	pf_close(f);
}

/* A volume in e whose f holds size bytes of 'a' (into a), open with the
 * riding provider (ops) and the fault storage, past its first commit. */
static pf_volume_t *ride_vol(struct env *e, struct pf_freshness_ops *ops, uint8_t *a,
			     size_t size)
{
	struct pf_volume_opts o;
	struct kiln_err err = { 0 };
	pf_volume_t *v;

	memset(a, 'a', size);
	v = vol_with_f(e, a, size, false);
	pf_volume_close(v, NULL);
	opts_fill(e, &o, true);
	g_ride_inner = o.freshness;
	*ops = *o.freshness;
	ops->prepare = ride_prepare;
	ops->prepare_unflushed = ride_unflushed;
	o.freshness = ops;
	if (pf_volume_open(e->kdir, g_key, &o, &v, &err) != 0)
		fail_msg("open: %s", err.msg);
	g_ride_vol = v;
	g_ride_calls = g_full_calls = g_ride_answer = 0;
	g_ride_written = true;
	first_commit(v, "f", a, size);
	return v;
}

/* The log synced since the prepare rode. */
static void ride_synced(void)
{
	assert_true(g_last_fault->watch_syncs > g_ride_syncs);
}

/* A power cut losing every unsynced write, then f reads as a, with records
 * records in the log. */
static void ride_cut(struct env *e, pf_volume_t *v, const uint8_t *a, size_t size,
		     size_t records)
{
	g_last_fault->lose_bits = ~0ull;
	fault_power_cut(g_last_fault);
	pf_volume_discard(v);
	v = vol_reopen(e);
	assert_int_equal(pf_volume_log_records(v), records);
	check_content(v, "f", a, size);
	pf_volume_close(v, NULL);
	env_free(e);
}

/* A record's prepare rides the log's sync: for a one-phase record called
 * once the record is written, before the log's sync starts, which then makes
 * the record durable (a power cut losing every unsynced write keeps it); a
 * metadata commit prepares fully; a provider answering -EOPNOTSUPP gets the
 * full prepare. A two-phase record (a truncate in the generation) and a data
 * record after a journal's redo (pre: its data synced first) ride too,
 * before the record is written, whose sync follows; each survives a power
 * cut after it. A riding record whose commit fails leaves its version
 * burned, not trusted: the next commit prepares before it writes. */
static void test_log_prepare_rides(void **state)
{
	static struct pf_freshness_ops ops;
	struct kiln_err err = { 0 };
	uint8_t a[3000], c[100];
	uint64_t trusted;
	pf_volume_t *v;
	pf_file_t *f;
	struct env e;

	journal_records(true);
	g_use_deferred = true;
	v = ride_vol(&e, &ops, a, sizeof(a));
	assert_int_equal(g_ride_calls, 0);
	assert_int_equal(g_full_calls, 1);
	ride_record(v, a, sizeof(a), 'b');
	assert_int_equal(v->log_records, 1);
	assert_int_equal(g_ride_calls, 1);
	assert_int_equal(g_full_calls, 1);
	assert_int_equal(pf_volume_rides(v), 1);
	ride_synced();
	g_ride_answer = -EOPNOTSUPP;
	ride_record(v, a, sizeof(a), 'c');
	assert_int_equal(v->log_records, 2);
	assert_int_equal(g_ride_calls, 2);
	assert_int_equal(g_full_calls, 2);
	assert_int_equal(pf_volume_rides(v), 1);
	g_ride_answer = 0;
	ride_record(v, a, sizeof(a), 'd');
	assert_int_equal(pf_volume_rides(v), 2);
	assert_int_equal(g_last_fault->ndeferred, 0);
	ride_cut(&e, v, a, sizeof(a), 3);

	/* Two phases: a truncate drains the write-back in place. */
	memset(c, 'c', sizeof(c));
	v = ride_vol(&e, &ops, a, sizeof(a));
	ride_record(v, a, sizeof(a), 'b');
	g_ride_written = false;
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_ftruncate(f, 2900, &err), 0);
	assert_int_equal(pf_pwrite(f, c, sizeof(c), 0, &err), (ssize_t)sizeof(c));
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(last_record_flags(&e), 0);
	assert_int_equal(v->log_records, 2);
	assert_int_equal(pf_volume_rides(v), 2);
	assert_int_equal(g_full_calls, 1);
	ride_synced();
	pf_close(f);
	memcpy(a, c, sizeof(c));
	ride_cut(&e, v, a, 2900, 2);

	/* A riding commit that fails (the storage's next call): the version
	 * is burned, not held. */
	v = ride_vol(&e, &ops, a, sizeof(a));
	ride_record(v, a, sizeof(a), 'b');
	trusted = v->trusted;
	assert_int_equal(trusted, v->version);
	g_ride_written = false;
	g_ride_fail = true;
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	assert_int_equal(pf_ftruncate(f, 2800, &err), 0);
	assert_int_not_equal(pf_fsync(f, &err), 0);
	g_ride_fail = false;
	assert_int_equal(pf_volume_rides(v), 2);
	assert_int_equal(v->trusted, trusted);
	assert_int_equal(v->burned, trusted + 1);
	pf_close(f);
	pf_volume_discard(v);
	env_free(&e);
	journal_records(false);

	/* A data record after a journal's redo (jlive): pre. */
	g_log_data_max = 1500;
	v = ride_vol(&e, &ops, a, sizeof(a));
	memset(a + 100, 'j', 2500);
	assert_int_equal(pf_open(v, "f", O_RDWR, 0, &f, &err), 0);
	file_put(f, a, sizeof(a));
	assert_int_equal(last_record_flags(&e), PF_LOG_ONEPHASE);
	assert_true(f->node->jlive);
	assert_int_equal(pf_volume_rides(v), 1);
	g_ride_written = false;
	memset(a + 100, 'k', 50);
	assert_int_equal(pf_pwrite(f, a + 100, 50, 100, &err), 50);
	assert_int_equal(pf_fsync(f, &err), 0);
	assert_int_equal(last_record_flags(&e), PF_LOG_DATA);
	assert_int_equal(pf_volume_rides(v), 2);
	assert_int_equal(g_full_calls, 1);
	ride_synced();
	pf_close(f);
	ride_cut(&e, v, a, sizeof(a), 2);
	g_log_data_max = 0;
	g_use_deferred = false;
}

/* A record carrying a create whose commit failed (its write or sync) may be
 * on disk anyway, its version prepared: a crash then replays it. A file it
 * created and the program unlinked after the failure keeps its backing file
 * until a checkpoint, so the replayed volume is whole (it opens, verifies,
 * and the file reads as written). */
static void test_ns_log_failed_create(void **state)
{
	uint8_t a[3000], b[3000];
	bool struck = true;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	for (long point = 1; struck && point < 80; point++) {
		struct kiln_err err = { 0 };
		pf_volume_t *v;
		pf_file_t *j;
		struct env e;
		int fsynced;

		v = vol_with_file(&e, "f", a, sizeof(a));
		pf_volume_close(v, NULL);
		assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
		first_commit(v, "f", a, sizeof(a));
		g_last_fault->countdown = point; /* one failure, then the disk works */
		fsynced = 0;
		if (pf_open(v, "j", O_RDWR | O_CREAT, 0600, &j, &err) == 0) {
			fsynced = pf_pwrite(j, b, sizeof(b), 0, &err) == sizeof(b) &&
				  pf_fsync(j, &err) == 0;
			pf_close(j);
		}
		struck = g_last_fault->ops >= point;
		if (!fsynced)
			(void)pf_unlink(v, "j", &err); /* ENOENT when the create failed */
		pf_volume_discard(v); /* a crash */
		if (vol_open(&e, g_key, false, &v, &err) != 0)
			fail_msg("point %ld: open: %s", point, err.msg);
		if (pf_volume_verify(v, NULL, NULL, &err) != 0)
			fail_msg("point %ld: verify: %s", point, err.msg);
		if (fsynced || pf_stat(v, "j", &(struct pf_stat){ 0 }, &err) == 0)
			check_content(v, "j", b, sizeof(b));
		pf_volume_close(v, NULL);
		env_free(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_property_encrypted),
		cmocka_unit_test(test_property_deferred_syncs),
		cmocka_unit_test(test_property_authenticated_plain),
		cmocka_unit_test(test_property_tree_and_big),
		cmocka_unit_test(test_sparse_big_lazy_open),
		cmocka_unit_test(test_direct_read_fallback),
		cmocka_unit_test(test_chunk_calls),
		cmocka_unit_test(test_namespace),
		cmocka_unit_test(test_namespace_vs_kernel),
		cmocka_unit_test(test_links_and_unlink_open),
		cmocka_unit_test(test_calls_by_inode),
		cmocka_unit_test(test_inode_numbers),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_special_nodes),
		cmocka_unit_test(test_readdir_cookies),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_permissions),
		cmocka_unit_test(test_v1_fixture),
		cmocka_unit_test(test_meta_tree_checks),
		cmocka_unit_test(test_statfs),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_wrong_key_and_tamper),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_publish),
		cmocka_unit_test(test_publish_then_commit),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_journal_reused_in_place),
		cmocka_unit_test(test_journal_format1_recovered),
		cmocka_unit_test(test_journal_format2_recovered),
		cmocka_unit_test(test_journal_redo_replayed),
		cmocka_unit_test(test_journal_redo_hostile),
		cmocka_unit_test(test_journal_redo_read_only),
		cmocka_unit_test(test_journal_generations_crash_points),
		cmocka_unit_test(test_journal_flush_crash_points),
		cmocka_unit_test(test_faults_deferred_syncs),
		cmocka_unit_test(test_enospc_isolated),
		cmocka_unit_test(test_rename_over_open_and_trunc),
		cmocka_unit_test(test_fork_sealer),
		cmocka_unit_test(test_log_records),
		cmocka_unit_test(test_log_data_records),
		cmocka_unit_test(test_log_commits),
		cmocka_unit_test(test_log_rollback),
		cmocka_unit_test(test_version_never_reused),
		cmocka_unit_test(test_freshness_asked_again),
		cmocka_unit_test(test_log_crash_points),
		cmocka_unit_test(test_ns_log_records),
		cmocka_unit_test(test_ns_log_refused),
		cmocka_unit_test(test_ns_log_crash_points),
		cmocka_unit_test(test_ns_create_crash_points),
		cmocka_unit_test(test_ns_log_failed_create),
		cmocka_unit_test(test_log_onephase),
		cmocka_unit_test(test_log_vouch),
		cmocka_unit_test(test_data_crash_points),
		cmocka_unit_test(test_sidecars_deferred),
		cmocka_unit_test(test_nonce_pool_fork),
		cmocka_unit_test(test_on_durable),
		cmocka_unit_test(test_data_create_crash_points),
		cmocka_unit_test(test_open_asks_freshness_once),
		cmocka_unit_test(test_log_prepare_rides),
		cmocka_unit_test(test_data_read_only),
		cmocka_unit_test(test_gone_node_no_sync),
		cmocka_unit_test(test_unlinked_bare_file_removes),
		cmocka_unit_test(test_meta_tmp_kept_across_opens),
		cmocka_unit_test(test_data_shrink_replay),
		cmocka_unit_test(test_commit_writes_batched),
		cmocka_unit_test(test_onephase_crash_points),
	};

	/* PF_TEST=pattern runs only the matching tests (while working on one). */
	if (getenv("PF_TEST"))
		cmocka_set_test_filter(getenv("PF_TEST"));
	if (getenv("KILN_TEST_FILTER")) /* one test or a pattern, while working on it */
		cmocka_set_test_filter(getenv("KILN_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
