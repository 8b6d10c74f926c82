/* Unit tests for the file shield v2 pieces shared by the volume server and its
 * clients (src/runtime/shield/): message parsing, chunk words, the key
 * handshake, and a real server (forked from the test) driven through the
 * protocol as libkiln drives it: open, fill, native writes with dirty marks,
 * group commit, eviction under a small cache, truncation, tampering, an
 * impostor on the socket name, a client without the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/pf.h"
#include "runtime/shield/proto.h"
#include "runtime/shield/server.h"

static const uint8_t g_key[RT_KEY_SIZE] = { 7, 1, 7, 2, 7, 3 };
static const uint8_t g_key2[RT_KEY_SIZE] = { 9, 9, 9 };

/* ---- messages ------------------------------------------------------------------ */
static void test_msg_roundtrip(void **state)
{
	uint8_t buf[RT_MSG_MAX], nonce[RT_NONCE_SIZE] = { 1 }, mac[RT_MAC_SIZE] = { 2 };
	struct rt_msg m = { .op = RT_OP_RENAME, .flags = 1, .id = 5, .a = 6, .b = 7,
			    .path = "a/b", .path2 = "c" }, p;
	ssize_t n = rt__msg_encode(&m, buf, sizeof(buf));

	(void)state;
	assert_true(n > 0);
	assert_int_equal(rt__msg_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.op, RT_OP_RENAME);
	assert_int_equal(p.id, 5);
	assert_int_equal(p.b, 7);
	assert_string_equal(p.path, "a/b");
	assert_string_equal(p.path2, "c");
	/* Path ops carry the caller's credentials; without a cred the encoder
	 * writes what a parse left (the fuzz target's round trip). */
	{
		struct rt_cred cr = { .uid = 65534, .gid = 100, .ngroups = 2, .groups = { 7, 8 } },
			       got;
		uint8_t again[RT_MSG_MAX];
		ssize_t k;

		m.cred = &cr;
		n = rt__msg_encode(&m, buf, sizeof(buf));
		assert_int_equal(rt__msg_parse(buf, (size_t)n, &p), 0);
		rt__msg_cred(&p, &got);
		assert_int_equal(got.uid, 65534);
		assert_int_equal(got.gid, 100);
		assert_int_equal(got.ngroups, 2);
		assert_int_equal(got.groups[1], 8);
		k = rt__msg_encode(&p, again, sizeof(again));
		assert_int_equal(k, n);
		assert_memory_equal(again, buf, (size_t)n);
		/* More groups than a message carries, or fewer bytes than it
		 * says: refused. */
		buf[n - 12] = 0xff;
		assert_int_equal(rt__msg_parse(buf, (size_t)n, &p), -EPROTO);
		cr.ngroups = RT_CRED_GROUPS + 1;
		assert_int_equal(rt__msg_encode(&m, buf, sizeof(buf)), -EINVAL);
		m.cred = NULL;
		n = rt__msg_encode(&m, buf, sizeof(buf));
		assert_true(n > 0);
	}
	/* One byte more or less, a missing NUL, a bad op: refused. */
	assert_int_equal(rt__msg_parse(buf, (size_t)n - 1, &p), -EPROTO);
	buf[n] = 0;
	assert_int_equal(rt__msg_parse(buf, (size_t)n + 1, &p), -EPROTO);
	buf[n - 1] = 'x';
	assert_int_equal(rt__msg_parse(buf, (size_t)n, &p), -EPROTO);
	m = (struct rt_msg){ .op = RT_OP_AUTH, .nonce = nonce, .mac = mac };
	n = rt__msg_encode(&m, buf, sizeof(buf));
	assert_int_equal(rt__msg_parse(buf, (size_t)n, &p), 0);
	assert_memory_equal(p.mac, mac, RT_MAC_SIZE);
	buf[0] = 200;
	assert_int_equal(rt__msg_parse(buf, (size_t)n, &p), -EPROTO);
	/* A path longer than the limit is refused at both ends. */
	{
		char *longp = malloc(RT_MSG_PATH_MAX + 2);

		memset(longp, 'a', RT_MSG_PATH_MAX + 1);
		longp[RT_MSG_PATH_MAX + 1] = '\0';
		m = (struct rt_msg){ .op = RT_OP_STAT, .path = longp };
		assert_int_equal(rt__msg_encode(&m, buf, sizeof(buf)), -ENAMETOOLONG);
		free(longp);
	}
}

/* The fuzz target's seeds (fuzz/corpus/rt_shield_msg, written by
 * scripts/shield-msg-seeds.py) parse and encode back to the same bytes, and
 * every op of the protocol has one: an op added without a seed fails here. */
static void test_msg_seeds(void **state)
{
	static uint8_t buf[RT_MSG_MAX + 1], again[RT_MSG_MAX];
	const char *root = getenv("KILN_SOURCE_ROOT");
	bool seen[RT_OP_MAX_] = { false };
	char dir[4096];
	struct dirent *e;
	DIR *d;

	(void)state;
	assert_non_null(root);
	snprintf(dir, sizeof(dir), "%s/fuzz/corpus/rt_shield_msg", root);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[8192];
		struct rt_msg m;
		const uint8_t *body;
		size_t body_size;
		int32_t status;
		ssize_t n, k;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		n = read(fd, buf, sizeof(buf));
		close(fd);
		assert_true(n > 0 && n <= RT_MSG_MAX);
		if (rt__msg_parse(buf, (size_t)n, &m) == 0) {
			k = rt__msg_encode(&m, again, sizeof(again));
			assert_int_equal(k, n);
			assert_memory_equal(again, buf, (size_t)n);
			seen[m.op] = true;
		} else if (rt__reply_parse(buf, (size_t)n, &status, &body, &body_size) != 0) {
			fail_msg("seed %s is neither a message nor a reply", e->d_name);
		}
	}
	closedir(d);
	for (uint32_t op = RT_OP_HELLO; op < RT_OP_MAX_; op++)
		if (!seen[op])
			fail_msg("no seed for op %u in %s", op, dir);
}

/* ---- chunk words --------------------------------------------------------------- */
static struct rt_fseg *new_seg(uint64_t words, uint64_t stored)
{
	struct rt_fseg *f = mmap(NULL, rt_fseg_bytes(words), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(f != MAP_FAILED);
	f->chunk_size = 4096;
	atomic_store(&f->nwords, words);
	atomic_store(&f->stored_size, stored);
	return f;
}

static void test_chunk_words(void **state)
{
	struct rt_fseg *f = new_seg(16, 5 * 4096 + 10);
	struct rt_vseg v = { .chunk_size = 4096 };
	uint64_t lo = 0, hi = 0;

	(void)state;
	/* Chunks 0..5 are stored: all missing; 6.. are past stored: zeros. */
	assert_int_equal(rt__ck_pin(f, 0, 9, &lo, &hi), 6);
	assert_int_equal(lo, 0);
	assert_int_equal(hi, 5);
	for (int c = 0; c < 6; c++)
		assert_true(rt__ck_set_valid(f, (uint64_t)c));
	assert_int_equal(rt__ck_missing(f, 0, 9, &lo, &hi), 0);
	/* Pinned: not evictable. */
	assert_false(rt__ck_claim(f, 2));
	rt__ck_unpin(f, 0, 9);
	assert_true(rt__ck_claim(f, 2));
	/* Busy (being evicted): a reader must ask for a fill. */
	assert_int_equal(rt__ck_pin(f, 2, 2, &lo, &hi), 1);
	rt__ck_evicted(f, 2);
	rt__ck_unpin(f, 2, 2);
	assert_int_equal(atomic_load(&f->w[2]), 0);
	/* Dirty chunks are never evicted; write-back takes the bit once. */
	rt__ck_mark(f, &v, 3, 4);
	assert_int_equal(atomic_load(&v.dirty_bytes), 2 * 4096);
	assert_false(rt__ck_claim(f, 3));
	assert_true(rt__ck_take_dirty(f, 3));
	assert_false(rt__ck_take_dirty(f, 3));
	assert_true(rt__ck_claim(f, 3));
	munmap(f, rt_fseg_bytes(16));
}

/* Pins and claims race from two processes: a claimed chunk is never pinned
 * and a pinned one is never claimed. */
static void test_chunk_race(void **state)
{
	struct rt_fseg *f = new_seg(1, 4096);
	_Atomic long *violations = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int st;

	(void)state;
	rt__ck_set_valid(f, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 200000; i++) {
			uint64_t lo, hi;

			if (rt__ck_pin(f, 0, 0, &lo, &hi) == 0) {
				/* VALID and not busy: eviction must be excluded. */
				if (atomic_load(&f->w[0]) & RT_CK_BUSY)
					atomic_fetch_add(violations, 1);
			}
			rt__ck_unpin(f, 0, 0);
		}
		_exit(0);
	}
	for (int i = 0; i < 200000; i++) {
		if (rt__ck_claim(f, 0)) {
			if (atomic_load(&f->w[0]) & RT_CK_PINS) {
				/* A pin after the claim sees BUSY: allowed. */
			}
			atomic_fetch_and(&f->w[0], ~RT_CK_BUSY); /* back to VALID */
		}
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(atomic_load(violations), 0);
	munmap(f, rt_fseg_bytes(1));
	munmap((void *)violations, 4096);
}

/* ---- a real server -------------------------------------------------------------- */
struct env {
	char root[256];
	char dir[300];
	char tag[320];
	struct rt_srv_config cfg;
	struct rt_auth_keys keys;
};

static int open_posix(void *arg, const uint8_t key[static RT_KEY_SIZE], pf_volume_t **vol,
		      struct kiln_err *err)
{
	struct env *e = arg;
	struct pf_volume_opts o = { 0 };
	char store[400];
	int ret;

	snprintf(store, sizeof(store), "%s/.kiln", e->dir);
	ret = pf_storage_posix(store, false, &o.storage, &o.storage_ctx, err);

	if (ret)
		return ret;
	ret = pf_freshness_local(e->tag, &o.freshness, &o.freshness_ctx);
	if (ret) {
		o.storage->free(o.storage_ctx);
		return ret;
	}
	o.seal_thread = true;
	return pf_volume_open(e->dir, key, &o, vol, err);
}

static void env_init(struct env *e, uint64_t cache)
{
	struct pf_volume_opts o = { 0 };
	struct kiln_err err = { 0 };
	pf_volume_t *v;

	memset(e, 0, sizeof(*e));
	snprintf(e->root, sizeof(e->root), "/tmp/kiln-shield-XXXXXX");
	assert_non_null(mkdtemp(e->root));
	snprintf(e->dir, sizeof(e->dir), "%s/vol", e->root);
	snprintf(e->tag, sizeof(e->tag), "%s/vol.tag", e->root);
	assert_int_equal(pf_freshness_local(e->tag, &o.freshness, &o.freshness_ctx), 0);
	o.trust_first = true;
	assert_int_equal(pf_volume_init(e->dir, g_key, &o, &v, &err), 0);
	assert_int_equal(pf_volume_close(v, &err), 0);
	snprintf(e->cfg.dir, sizeof(e->cfg.dir), "%s", e->dir);
	memcpy(e->cfg.key, g_key, RT_KEY_SIZE);
	e->cfg.open_volume = open_posix;
	e->cfg.arg = e;
	e->cfg.cache_limit = cache;
	assert_int_equal(rt__auth_derive(g_key, &e->keys), 0);
}

static void env_done(struct env *e)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
	assert_int_equal(system(cmd), 0);
}

struct client {
	int sock;
	struct rt_vseg *vseg;
};

static void client_connect(struct env *e, struct client *c)
{
	struct kiln_err err = { 0 };
	int vfd;

	c->sock = rt__srv_connect(&e->cfg, &e->keys, fork, (uint32_t)getpid(), &vfd, &err);
	if (c->sock < 0)
		fail_msg("connect: %s", kiln_err_msg(&err, c->sock));
	c->vseg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
	assert_true(c->vseg != MAP_FAILED);
	assert_int_equal(c->vseg->magic, RT_VSEG_MAGIC);
	close(vfd);
}

/* Wait until the server has gone (its last client left): the volume lock is
 * free again. */
static void client_close(struct env *e, struct client *c)
{
	char path[400];
	int fd;

	close(c->sock);
	munmap(c->vseg, 4096);
	snprintf(path, sizeof(path), "%s/.kiln", e->dir);
	fd = open(path, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	close(fd);
}

static int req(struct client *c, struct rt_msg *m, uint8_t *reply, const uint8_t **body,
	       size_t *size, int fds[2], char *errmsg)
{
	return rt__request(c->sock, m, reply, body, size, fds, errmsg);
}

struct file {
	uint64_t id;
	int memfd, statefd;
	struct rt_fseg *seg;
	size_t seg_bytes;
};

static int file_open(struct client *c, const char *path, int flags, struct file *f)
{
	static uint8_t reply[RT_MSG_MAX];
	struct rt_msg m = { .op = RT_OP_OPEN, .flags = (uint32_t)flags, .mode = 0600,
			    .path = path };
	const uint8_t *body;
	size_t size;
	int fds[2];
	struct rt_stat_reply r;
	int ret = req(c, &m, reply, &body, &size, fds, NULL);

	if (ret)
		return ret;
	assert_int_equal(size, sizeof(r));
	memcpy(&r, body, sizeof(r));
	f->id = r.id;
	f->memfd = fds[0];
	f->statefd = fds[1];
	{
		struct stat st;

		assert_int_equal(fstat(f->statefd, &st), 0);
		f->seg_bytes = (size_t)st.st_size;
	}
	f->seg = mmap(NULL, f->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f->statefd, 0);
	assert_true(f->seg != MAP_FAILED);
	return 0;
}

static void file_close(struct client *c, struct file *f)
{
	static uint8_t reply[RT_MSG_MAX];
	struct rt_msg m = { .op = RT_OP_RELEASE, .id = f->id };
	const uint8_t *body;
	size_t size;

	assert_int_equal(req(c, &m, reply, &body, &size, NULL, NULL), 0);
	munmap(f->seg, f->seg_bytes);
	close(f->memfd);
	close(f->statefd);
}

static int fill(struct client *c, struct file *f, uint64_t lo, uint64_t hi, char *errmsg)
{
	static uint8_t reply[RT_MSG_MAX];
	struct rt_msg m = { .op = RT_OP_FILL, .id = f->id, .a = lo, .b = hi - lo + 1 };
	const uint8_t *body;
	size_t size;

	return req(c, &m, reply, &body, &size, NULL, errmsg);
}

/* What libkiln does for pread and pwrite. */
static ssize_t file_pread(struct client *c, struct file *f, void *buf, size_t n, off_t off,
			  char *errmsg)
{
	uint64_t c0 = (uint64_t)off / 4096, c1 = ((uint64_t)off + n - 1) / 4096, lo, hi;
	ssize_t r;
	int ret = 0;

	if (rt__ck_pin(f->seg, c0, c1, &lo, &hi))
		ret = fill(c, f, lo, hi, errmsg);
	r = ret ? ret : pread(f->memfd, buf, n, off);
	rt__ck_unpin(f->seg, c0, c1);
	return r;
}

static ssize_t file_pwrite(struct client *c, struct file *f, const void *buf, size_t n,
			   off_t off)
{
	uint64_t c0 = (uint64_t)off / 4096, c1 = ((uint64_t)off + n - 1) / 4096, lo, hi;
	ssize_t r;

	if (rt__ck_pin(f->seg, c0, c1, &lo, &hi))
		assert_int_equal(fill(c, f, lo, hi, NULL), 0);
	r = pwrite(f->memfd, buf, n, off);
	if (r > 0)
		rt__ck_mark(f->seg, c->vseg, c0, c1);
	rt__ck_unpin(f->seg, c0, c1);
	return r;
}

static int fsync_file(struct client *c, struct file *f)
{
	static uint8_t reply[RT_MSG_MAX];
	struct rt_msg m = { .op = RT_OP_FSYNC, .id = f->id, .flags = RT_FSYNC_COMMIT };
	const uint8_t *body;
	size_t size;

	return req(c, &m, reply, &body, &size, NULL, NULL);
}

/* The content as a fresh pf open sees it (the server has gone). */
static void check_on_disk(struct env *e, const char *path, const uint8_t *want, size_t n)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *pf;
	uint64_t size;
	uint8_t *got = malloc(n + 1);

	assert_int_equal(open_posix(e, g_key, &v, &err), 0);
	assert_int_equal(pf_open(v, path, O_RDONLY, 0, &pf, &err), 0);
	assert_int_equal(pf_get_size(pf, &size), 0);
	assert_int_equal(size, n);
	assert_int_equal(pf_pread(pf, got, n, 0, &err), (ssize_t)n);
	assert_memory_equal(got, want, n);
	pf_close(pf);
	assert_int_equal(pf_volume_close(v, &err), 0);
	free(got);
}

static void test_server_write_read(void **state)
{
	struct env e;
	struct client c;
	struct file f;
	size_t n = 300 * 1024 + 123;
	uint8_t *data = malloc(n), *back = malloc(n);

	(void)state;
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	env_init(&e, 0);
	client_connect(&e, &c);
	assert_int_equal(file_open(&c, "a.bin", O_RDWR | O_CREAT, &f), 0);
	/* Two writes, the second overlapping the first's last chunk. */
	assert_int_equal(file_pwrite(&c, &f, data, 100000, 0), 100000);
	assert_int_equal(file_pwrite(&c, &f, data + 100000, n - 100000, 100000),
			 (ssize_t)(n - 100000));
	assert_true(atomic_load(&c.vseg->dirty_bytes) > 0);
	assert_int_equal(fsync_file(&c, &f), 0);
	assert_int_equal(atomic_load(&c.vseg->dirty_bytes), 0);
	assert_int_equal(atomic_load(&f.seg->stored_size), n);
	file_close(&c, &f);
	/* A second open of the same path: the same file, data readable. */
	assert_int_equal(file_open(&c, "a.bin", O_RDONLY, &f), 0);
	assert_int_equal(file_pread(&c, &f, back, n, 0, NULL), (ssize_t)n);
	assert_memory_equal(back, data, n);
	file_close(&c, &f);
	client_close(&e, &c);
	check_on_disk(&e, "a.bin", data, n);

	/* A new server: nothing in memory, every read fills from pf; the
	 * open of a large file costs no fill but its tail. */
	client_connect(&e, &c);
	assert_int_equal(file_open(&c, "a.bin", O_RDWR, &f), 0);
	assert_int_equal(atomic_load(&f.seg->all_valid), 0);
	assert_int_equal(file_pread(&c, &f, back, 10, 5000, NULL), 10);
	assert_memory_equal(back, data + 5000, 10);
	assert_int_equal(file_pread(&c, &f, back, n, 0, NULL), (ssize_t)n);
	assert_memory_equal(back, data, n);
	file_close(&c, &f);
	client_close(&e, &c);
	env_done(&e);
	free(data);
	free(back);
}

/* A cache of 64 KiB for a 1 MiB file: chunks are evicted and filled again,
 * and dirty data is written back before eviction. */
static void test_server_eviction(void **state)
{
	struct env e;
	struct client c;
	struct file f;
	size_t n = 1 << 20;
	uint8_t *data = malloc(n), *back = malloc(n);
	static uint8_t reply[RT_MSG_MAX];
	const uint8_t *body;
	size_t size;

	(void)state;
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i ^ (i >> 12));
	env_init(&e, 64 * 1024);
	client_connect(&e, &c);
	assert_int_equal(file_open(&c, "big", O_RDWR | O_CREAT, &f), 0);
	for (size_t off = 0; off < n; off += 65536) {
		assert_int_equal(file_pwrite(&c, &f, data + off, 65536, (off_t)off), 65536);
		if (atomic_load(&c.vseg->dirty_bytes) > c.vseg->dirty_limit) {
			struct rt_msg m = { .op = RT_OP_WRITEBACK };

			assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
		}
	}
	{
		struct rt_msg m = { .op = RT_OP_WRITEBACK };

		assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	}
	assert_true(atomic_load(&c.vseg->cache_bytes) <= 64 * 1024);
	{
		struct stat st;

		assert_int_equal(fstat(f.memfd, &st), 0);
		assert_true((uint64_t)st.st_blocks * 512 <= 2 * 64 * 1024);
	}
	for (size_t off = 0; off < n; off += 4096)
		assert_int_equal(file_pread(&c, &f, back + off, 4096, (off_t)off, NULL), 4096);
	assert_memory_equal(back, data, n);
	assert_int_equal(fsync_file(&c, &f), 0);
	file_close(&c, &f);
	client_close(&e, &c);
	check_on_disk(&e, "big", data, n);
	env_done(&e);
	free(data);
	free(back);
}

/* Flip a byte of chunk 5 on disk: chunks before it read, chunk 5 fails with
 * EIO and a message naming the file and chunk. */
static void test_server_tamper(void **state)
{
	struct env e;
	struct client c;
	struct file f;
	size_t n = 16 * 4096;
	uint8_t *data = malloc(n), back[4096];
	char errmsg[RT_ERRMSG_MAX] = "", path[600];
	struct dirent *d;
	DIR *dir;

	(void)state;
	memset(data, 'x', n);
	env_init(&e, 0);
	client_connect(&e, &c);
	assert_int_equal(file_open(&c, "t", O_RDWR | O_CREAT, &f), 0);
	assert_int_equal(file_pwrite(&c, &f, data, n, 0), (ssize_t)n);
	assert_int_equal(fsync_file(&c, &f), 0);
	file_close(&c, &f);
	client_close(&e, &c);
	/* The backing file: the one 32-hex-digit name. */
	snprintf(path, sizeof(path), "%s/.kiln", e.dir);
	dir = opendir(path);
	while ((d = readdir(dir))) {
		if (strlen(d->d_name) == 32) {
			int fd;
			uint8_t b;
			off_t off = 64 + 5 * (4096 + 28) + 28 + 100;

			snprintf(path, sizeof(path), "%s/.kiln/%s", e.dir, d->d_name);
			fd = open(path, O_RDWR);
			assert_int_equal(pread(fd, &b, 1, off), 1);
			b ^= 1;
			assert_int_equal(pwrite(fd, &b, 1, off), 1);
			close(fd);
		}
	}
	closedir(dir);
	client_connect(&e, &c);
	assert_int_equal(file_open(&c, "t", O_RDONLY, &f), 0);
	assert_int_equal(file_pread(&c, &f, back, 4096, 0, errmsg), 4096);
	assert_int_equal(file_pread(&c, &f, back, 4096, 4 * 4096, errmsg), 4096);
	assert_int_equal(file_pread(&c, &f, back, 4096, 5 * 4096, errmsg), -EIO);
	assert_non_null(strstr(errmsg, "chunk 5"));
	assert_int_equal(file_pread(&c, &f, back, 4096, 6 * 4096, errmsg), 4096);
	file_close(&c, &f);
	client_close(&e, &c);
	env_done(&e);
	free(data);
}

static void test_server_truncate_namespace(void **state)
{
	struct env e;
	struct client c;
	struct file f;
	uint8_t data[10000], back[10000];
	static uint8_t reply[RT_MSG_MAX];
	const uint8_t *body;
	size_t size;
	struct rt_stat_reply r;
	struct rt_msg m;

	(void)state;
	memset(data, 'q', sizeof(data));
	env_init(&e, 0);
	client_connect(&e, &c);
	m = (struct rt_msg){ .op = RT_OP_MKDIR, .mode = 0700, .path = "d" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	assert_int_equal(file_open(&c, "d/f", O_RDWR | O_CREAT, &f), 0);
	assert_int_equal(file_pwrite(&c, &f, data, sizeof(data), 0), (ssize_t)sizeof(data));
	m = (struct rt_msg){ .op = RT_OP_TRUNCATE, .id = f.id, .a = 5000 };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	m = (struct rt_msg){ .op = RT_OP_TRUNCATE, .id = f.id, .a = 9000 };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	assert_int_equal(file_pread(&c, &f, back, 9000, 0, NULL), 9000);
	assert_memory_equal(back, data, 5000);
	for (int i = 5000; i < 9000; i++)
		assert_int_equal(back[i], 0);
	/* Rename the directory while the file is open; stat follows. */
	m = (struct rt_msg){ .op = RT_OP_RENAME, .path = "d", .path2 = "e" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	m = (struct rt_msg){ .op = RT_OP_STAT, .path = "e/f" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	memcpy(&r, body, sizeof(r));
	assert_int_equal(r.size, 9000);
	assert_int_equal(r.cacheable, 0);
	m = (struct rt_msg){ .op = RT_OP_STAT, .path = "d/f" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), -ENOENT);
	/* Unlink while open: still readable through the open file. */
	m = (struct rt_msg){ .op = RT_OP_UNLINK, .path = "e/f" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	assert_int_equal(file_pread(&c, &f, back, 100, 0, NULL), 100);
	assert_int_equal(fsync_file(&c, &f), 0);
	file_close(&c, &f);
	m = (struct rt_msg){ .op = RT_OP_READDIR, .path = "e" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	assert_int_equal(size, 8); /* cookie only: empty */
	m = (struct rt_msg){ .op = RT_OP_UNLINK, .flags = AT_REMOVEDIR, .path = "e" };
	assert_int_equal(req(&c, &m, reply, &body, &size, NULL, NULL), 0);
	client_close(&e, &c);
	env_done(&e);
}

/* Two clients (processes) on one file: a write by one is read by the other;
 * their fsyncs are answered by commits; the server outlives the first. */
static void test_server_two_clients(void **state)
{
	struct env e;
	struct client c;
	struct file f;
	uint8_t back[8];
	pid_t pid;
	int st, p[2], q[2];

	(void)state;
	env_init(&e, 0);
	client_connect(&e, &c);
	assert_int_equal(file_open(&c, "shared", O_RDWR | O_CREAT, &f), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid = fork();
	if (pid == 0) {
		struct client c2;
		struct file f2;
		char b;

		client_connect(&e, &c2);
		if (file_open(&c2, "shared", O_RDWR, &f2) || f2.id != f.id)
			_exit(1);
		if (file_pwrite(&c2, &f2, "child!", 6, 4096 * 3) != 6 || fsync_file(&c2, &f2))
			_exit(2);
		if (write(p[1], "x", 1) != 1 || read(q[0], &b, 1) != 1)
			_exit(3);
		_exit(0);
	}
	{
		char b;

		assert_int_equal(read(p[0], &b, 1), 1);
	}
	assert_int_equal(file_pread(&c, &f, back, 6, 4096 * 3, NULL), 6);
	assert_memory_equal(back, "child!", 6);
	assert_int_equal(write(q[1], "y", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(WEXITSTATUS(st), 0);
	file_close(&c, &f);
	client_close(&e, &c);
	{
		uint8_t want[4096 * 3 + 6] = { 0 };

		memcpy(want + 4096 * 3, "child!", 6);
		check_on_disk(&e, "shared", want, sizeof(want));
	}
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	env_done(&e);
}

/* A wrong key: the server it starts cannot open the volume and says why. An
 * impostor on the socket name: refused by the client. Garbage to a real
 * server: it closes that connection and keeps serving. */
static void test_server_hostile(void **state)
{
	struct env e;
	struct client c;
	struct kiln_err err = { 0 };
	struct rt_auth_keys k2;
	struct rt_srv_config bad;
	char name[RT_SOCK_NAME_MAX];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int vfd, s, l;
	pid_t pid;

	(void)state;
	env_init(&e, 0);
	bad = e.cfg;
	memcpy(bad.key, g_key2, RT_KEY_SIZE);
	assert_int_equal(rt__auth_derive(g_key2, &k2), 0);
	s = rt__srv_connect(&bad, &k2, fork, (uint32_t)getpid(), &vfd, &err);
	assert_true(s < 0);
	assert_non_null(strstr(kiln_err_msg(&err, s), "key"));

	/* An impostor listening on the real name, answering with its own nonce
	 * and a made-up MAC. */
	assert_int_equal(rt__srv_sock_name(e.dir, &e.keys, name), 0);
	memcpy(sa.sun_path + 1, name, strlen(name));
	l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))),
			 0);
	assert_int_equal(listen(l, 4), 0);
	pid = fork();
	if (pid == 0) {
		uint8_t buf[RT_MSG_MAX], nonce[RT_NONCE_SIZE] = { 0 }, fake[RT_MAC_SIZE] = { 0 };
		struct rt_msg m = { .op = RT_OP_HELLO, .flags = RT_SHIELD_VERSION,
				    .nonce = nonce };
		int a = accept(l, NULL, NULL), tmp = memfd_create("x", 0);
		ssize_t n = rt__msg_encode(&m, buf, sizeof(buf));

		rt__pkt_send(a, buf, (size_t)n, NULL, 0, false);
		rt__pkt_recv(a, buf, sizeof(buf), NULL, NULL, false);
		rt__reply_send(a, 0, fake, sizeof(fake), &tmp, 1);
		sleep(1);
		_exit(0);
	}
	err = (struct kiln_err){ 0 };
	s = rt__srv_connect(&e.cfg, &e.keys, fork, (uint32_t)getpid(), &vfd, &err);
	assert_int_equal(s, -KILN_EAUTH);
	assert_non_null(strstr(kiln_err_msg(&err, s), "failed authentication"));
	waitpid(pid, NULL, 0);
	close(l);

	/* The real server: garbage and a client without the key are cut off;
	 * a real client still gets served. */
	client_connect(&e, &c);
	s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sa,
				 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
					     strlen(name))), 0);
	{
		uint8_t buf[RT_MSG_MAX];

		assert_true(rt__pkt_recv(s, buf, sizeof(buf), NULL, NULL, false) > 0);
		assert_int_equal(send(s, "garbage", 7, 0), 7);
		assert_int_equal(rt__pkt_recv(s, buf, sizeof(buf), NULL, NULL, false), 0);
	}
	close(s);
	s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sa,
				 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
					     strlen(name))), 0);
	assert_int_equal(rt__auth_client(s, &k2, (uint32_t)getpid(), &vfd), -KILN_EAUTH);
	close(s);
	{
		struct file f;

		assert_int_equal(file_open(&c, "still", O_RDWR | O_CREAT, &f), 0);
		file_close(&c, &f);
	}
	client_close(&e, &c);
	env_done(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_roundtrip),
		cmocka_unit_test(test_msg_seeds),
		cmocka_unit_test(test_chunk_words),
		cmocka_unit_test(test_chunk_race),
		cmocka_unit_test(test_server_write_read),
		cmocka_unit_test(test_server_eviction),
		cmocka_unit_test(test_server_tamper),
		cmocka_unit_test(test_server_truncate_namespace),
		cmocka_unit_test(test_server_two_clients),
		cmocka_unit_test(test_server_hostile),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
