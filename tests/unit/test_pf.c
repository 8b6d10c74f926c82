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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/pf.h"
#include "pf/internal.h"
#include "fault_storage.h"

static const uint8_t g_key[PF_KEY_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const uint8_t g_key2[PF_KEY_SIZE] = { 9, 8, 7 };

static bool g_use_deferred; /* opts_fill wraps with sync_start/sync_wait */

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

static void opts_fill(struct env *e, struct pf_volume_opts *o, bool with_fault)
{
	memset(o, 0, sizeof(*o));
	o->seal_thread = true; /* large writes take the two-thread path */
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
static void property_run(uint64_t seed, uint32_t cs, enum pf_region_kind kind, int ops)
{
	struct env e;
	struct pf_region r = { "", kind };
	pf_volume_t *v;
	pf_file_t *f, *f2;
	struct kiln_err err = { 0 };
	size_t cap = 64 * 1024, size = 0, committed = 0;
	uint8_t *model = calloc(1, cap), *cmodel = calloc(1, cap), *buf = malloc(cap);

	env_init(&e);
	v = vol_init(&e, cs, &r, 1);
	pf_volume_close(v, NULL);
	assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
	assert_int_equal(pf_open(v, "p", O_RDWR | O_CREAT, 0600, &f, &err), 0);
	assert_int_equal(pf_open(v, "p", O_RDWR, 0, &f2, &err), 0);
	assert_int_equal(pf_fsync(f, &err), 0);
	for (int op = 0; op < ops; op++) {
		uint64_t x = rnd(&seed) % 100;
		pf_file_t *h = (x & 1) ? f : f2;

		if (x < 40) { /* write */
			size_t off = rnd(&seed) % (cap / 2), len = rnd(&seed) % (cs * 3) + 1;

			if (rnd(&seed) % 8 == 0) /* many whole chunks: the two-thread sealing */
				len = rnd(&seed) % (cs * 24) + 1;

			if (rnd(&seed) % 4 == 0)
				off = size; /* append */
			if (off + len > cap)
				len = cap - off;
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)rnd(&seed);
			if (pf_pwrite(h, buf, len, off, &err) != (ssize_t)len)
				fail_msg("seed op %d write: %s", op, err.msg);
			memcpy(model + off, buf, len);
			if (off + len > size)
				size = off + len;
		} else if (x < 70) { /* read */
			size_t off = rnd(&seed) % (cap / 2 + 100), len = rnd(&seed) % (cs * 4) + 1;
			size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
			ssize_t n = pf_pread(h, buf, len, off, &err);

			if (n < 0)
				fail_msg("op %d read: %s", op, err.msg);
			assert_int_equal(n, want);
			assert_memory_equal(buf, model + off, want);
		} else if (x < 78) { /* truncate */
			size_t ns = rnd(&seed) % 3 == 0 ? 0 : rnd(&seed) % (cap / 2);

			assert_int_equal(pf_ftruncate(h, ns, &err), 0);
			if (ns < size)
				memset(model + ns, 0, size - ns);
			size = ns;
		} else if (x < 84) { /* append via O_APPEND semantics */
			size_t len = rnd(&seed) % cs + 1;
			uint64_t end;

			if (size + len > cap / 2 + cs * 3)
				continue;
			memset(buf, (int)op, len);
			assert_int_equal(pf_append(h, buf, len, &end, &err), (ssize_t)len);
			memcpy(model + size, buf, len);
			size += len;
			assert_int_equal(end, size);
		} else if (x < 92) { /* fsync */
			assert_int_equal(pf_fsync(h, &err), 0);
			memcpy(cmodel, model, cap);
			committed = size;
		} else if (x < 96) { /* crash: every later storage op fails */
			struct fault *flt = g_last_fault;

			flt->rng = seed | 1;
			fault_power_cut(flt);
			pf_close(f);
			pf_close(f2);
			pf_volume_close(v, NULL);
			assert_int_equal(vol_open(&e, g_key, true, &v, &err), 0);
			check_content(v, "p", cmodel, committed);
			memcpy(model, cmodel, cap);
			size = committed;
			assert_int_equal(pf_open(v, "p", O_RDWR, 0, &f, &err), 0);
			assert_int_equal(pf_open(v, "p", O_RDWR, 0, &f2, &err), 0);
		} else { /* full compare */
			check_content(v, "p", model, size);
		}
	}
	check_content(v, "p", model, size);
	pf_close(f);
	pf_close(f2);
	assert_int_equal(pf_volume_close(v, &err), 0);
	v = vol_reopen(&e);
	check_content(v, "p", model, size);
	assert_int_equal(pf_volume_verify(v, NULL, NULL, &err), 0);
	pf_volume_close(v, NULL);
	env_free(&e);
	free(model);
	free(cmodel);
	free(buf);
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
	assert_int_equal(pf_open(v, "../x", O_RDONLY, 0, &g, &err), -EINVAL);
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
static void write_file(pf_volume_t *v, const char *path, const void *data, size_t size)
{
	struct kiln_err err = { 0 };
	pf_file_t *f;

	assert_int_equal(pf_open(v, path, O_RDWR | O_CREAT | O_TRUNC, 0600, &f, &err), 0);
	assert_int_equal(pf_pwrite(f, data, size, 0, &err), (ssize_t)size);
	assert_int_equal(pf_fsync(f, &err), 0);
	pf_close(f);
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
	 * without the sidecar the scan at open breaks the root. */
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
	assert_int_equal(pf_volume_version(v), 3);
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
			assert_int_equal(pf_open(v, "f", O_RDONLY, 0, &g, &err), 0);
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
	/* journal: header write, truncate, old chunk 0; nothing is synced and no
	 * byte of the backing file moves yet (all of it is held). At fsync: the
	 * journal sync, its directory sync, then the first held slot fails. */
	g_last_fault->countdown = 6;
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
	struct pf_header h = { PF_FORMAT_VERSION, PF_REGION_ENCRYPTED, 4096, { 1, 2 } }, h2;
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
	assert_int_equal(pf__meta_parse((const uint8_t *)"\0\x10\0\0", 4, &m, NULL), -KILN_ETRUNC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_property_encrypted),
		cmocka_unit_test(test_property_deferred_syncs),
		cmocka_unit_test(test_property_authenticated_plain),
		cmocka_unit_test(test_namespace),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_wrong_key_and_tamper),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_publish),
		cmocka_unit_test(test_publish_then_commit),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_faults_deferred_syncs),
		cmocka_unit_test(test_enospc_isolated),
		cmocka_unit_test(test_rename_over_open_and_trunc),
		cmocka_unit_test(test_fork_sealer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
