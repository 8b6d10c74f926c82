/* kiln runtime, file shield v2: the volume server's open files (srv_int.h).
 *
 * Per file: a pf handle, a sparse memfd with the plaintext that every client
 * maps or opens, and a state memfd with one word per chunk (chunk.c). The
 * server fills chunks on request (decrypt and verify from pf into the memfd),
 * writes dirty chunks back through pf (at a commit, or early under memory
 * pressure), truncates, and evicts clean chunks (punching holes) to keep the
 * plaintext within the cache bound. */
#include "runtime/shield/srv_int.h"

#include "crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A memfd's size, inode and blocks, not its times (server.h). */
static int mstat(int fd, struct stat *st)
{
	struct statx sx;

	if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, RT_MSTAT_MASK, &sx) < 0)
		return -1;
	rt_mstat_fill(&sx, st);
	return 0;
}

/* The server's plaintext window for fills and write-backs (g_srv.buf). 1 MiB: the
 * plaintext read out of the memfd is still in the CPU's cache when pf seals it
 * (with 4 MiB, a 512 MiB dd wrote back 1.07x slower: 1.00-1.16, 6 rounds, load 4.9). */
#define SRV_BUF_SIZE ((size_t)1 << 20)
/* State words a file's state memfd starts with (it grows on request). */
#define SRV_MIN_WORDS 16384u

static uint64_t ino_hash(pf_ino_t ino)
{
	return ino * 0x9e3779b97f4a7c15ull >> 17;
}

int sf_init(void)
{
	g_srv.nbuckets = 1024;
	g_srv.by_ino = calloc(g_srv.nbuckets, sizeof(*g_srv.by_ino));
	g_srv.buf_size = SRV_BUF_SIZE;
	g_srv.buf = malloc(g_srv.buf_size);
	if (!g_srv.by_ino || !g_srv.buf)
		return -ENOMEM;
	g_srv.next_id = 1;
	return 0;
}

/* g_srv.buf holds plaintext of len bytes: wiped by the next sf_buf_wipe. */
static void buf_hold(uint64_t len)
{
	if (len > g_srv.buf_used)
		g_srv.buf_used = len;
}

void sf_buf_wipe(void)
{
	kiln_wipe(g_srv.buf, g_srv.buf_used);
	g_srv.buf_used = 0;
}

/* Files are found by inode (every name of a hard-linked file, and a symlink
 * to it, reach the same memfd); files without a name are not in the index. */
static void index_add(struct sfile *f)
{
	size_t b = ino_hash(f->ino) % g_srv.nbuckets;

	f->hnext = g_srv.by_ino[b];
	g_srv.by_ino[b] = f;
}

static void index_del(struct sfile *f)
{
	struct sfile **pp = &g_srv.by_ino[ino_hash(f->ino) % g_srv.nbuckets];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	}
	f->hnext = NULL;
}

struct sfile *sf_by_ino(pf_ino_t ino)
{
	for (struct sfile *f = g_srv.by_ino[ino_hash(ino) % g_srv.nbuckets]; f; f = f->hnext)
		if (f->ino == ino)
			return f;
	return NULL;
}

struct sfile *sf_by_path(const char *path)
{
	struct pf_stat ps;

	if (pf_statat(g_srv.vol, PF_ROOT_INO, path, 0, NULL, &ps, NULL) ||
	    ps.type != PF_TYPE_REG)
		return NULL;
	return sf_by_ino(ps.ino);
}

void sf_linked(struct sfile *f, const char *path)
{
	char *p;

	sf_attrs(f);
	if (f->path || !(p = strdup(path)))
		return; /* FIXME(ENOMEM): found by id only, as before the link */
	f->path = p;
	index_add(f);
}

struct sfile *sf_by_id(uint64_t id)
{
	for (struct sfile *f = g_srv.files; f; f = f->next)
		if (f->id == id)
			return f;
	return NULL;
}

struct sfile *sf_by_memfd_ino(uint64_t ino)
{
	for (struct sfile *f = g_srv.files; f; f = f->next) {
		struct stat st;

		if (mstat(f->memfd, &st) == 0 && (uint64_t)st.st_ino == ino)
			return f;
	}
	return NULL;
}

static uint64_t words_of(struct sfile *f)
{
	return atomic_load(&f->seg->nwords);
}

static void set_all_valid(struct sfile *f)
{
	uint64_t want = srv_nchunks(atomic_load(&f->seg->stored_size));

	atomic_store(&f->seg->all_valid, f->valid_stored >= want);
}

/* stored_size moves to size. Past the old value the memfd held the truth (no
 * chunk there is ever evicted, a writer may be storing into one right now):
 * those chunks become VALID, so that nobody fills them from pf. */
static void move_stored(struct sfile *f, uint64_t size)
{
	uint64_t old = atomic_load(&f->seg->stored_size), n = 0;
	uint64_t w = atomic_load(&f->seg->nwords), end = srv_nchunks(size);

	for (uint64_t c = srv_nchunks(old); c < end && c < w; c++)
		n += rt__ck_set_valid(f->seg, c);
	atomic_fetch_add(&g_srv.vseg->cache_bytes, n * g_srv.cs);
	atomic_store(&f->seg->stored_size, size);
}

/* Recount VALID chunks below stored_size (after it moved). */
static void recount(struct sfile *f)
{
	uint64_t n = srv_nchunks(atomic_load(&f->seg->stored_size)), w = words_of(f);

	f->valid_stored = 0;
	for (uint64_t c = 0; c < n && c < w; c++)
		f->valid_stored += (atomic_load(&f->seg->w[c]) & RT_CK_VALID) != 0;
	set_all_valid(f);
}

/* ---- digests of stored chunks (files with writable mappings) -------------
 * A write through a mapping, or a supervised program's write (it does not
 * trap), leaves no dirty bit: every chunk is taken as changed at each
 * write-back (mark_mapped), and a commit would reseal the whole file. The
 * chunks whose plaintext has the digest of what pf stores are skipped. The
 * digests are taken when such a file's chunks are filled or stored, and
 * forgotten wherever pf's chunks change otherwise (truncate, punch). */
static void chunk_sum(const uint8_t *p, size_t len, uint8_t out[static SRV_SUM_SIZE])
{
	uint8_t d[KC_SHA256_SIZE];

	if (kc_sha256(p, len, d))
		memset(d, 0, sizeof(d)); /* not known: stored again */
	memcpy(out, d, SRV_SUM_SIZE);
}

static bool sum_known(const uint8_t s[static SRV_SUM_SIZE])
{
	static const uint8_t zero[SRV_SUM_SIZE];

	return memcmp(s, zero, SRV_SUM_SIZE) != 0;
}

/* Room for the digests of chunks [0, n); 0, or -ENOMEM (none kept then). */
static int sums_reserve(struct sfile *f, uint64_t n)
{
	uint64_t want = n > 2 * f->nsums ? n : 2 * f->nsums;
	void *p;

	if (n <= f->nsums)
		return 0;
	p = realloc(f->sums, want * SRV_SUM_SIZE);
	if (!p)
		return -ENOMEM;
	f->sums = p;
	memset(f->sums + f->nsums, 0, (want - f->nsums) * SRV_SUM_SIZE);
	f->nsums = want;
	return 0;
}

/* pf's chunks [from, to) changed without a write-back: digests unknown. */
static void sums_forget(struct sfile *f, uint64_t from, uint64_t to)
{
	if (to > f->nsums)
		to = f->nsums;
	if (from < to)
		memset(f->sums + from, 0, (to - from) * SRV_SUM_SIZE);
}

/* buf holds len bytes of f from chunk c as pf stores them: their digests,
 * when f is written through mappings. */
static void sums_take(struct sfile *f, uint64_t c, const uint8_t *buf, uint64_t len)
{
	uint64_t cs = g_srv.cs;

	if (!f->wmaps || sums_reserve(f, c + (len + cs - 1) / cs))
		return;
	for (uint64_t i = 0; i * cs < len; i++)
		chunk_sum(buf + i * cs, len - i * cs < cs ? len - i * cs : cs, f->sums[c + i]);
}

static void sf_free(struct sfile *f)
{
	struct sfile **pp;
	uint64_t w = words_of(f), valid = 0, dirty = 0;

	for (uint64_t c = 0; c < w; c++) {
		uint32_t x = atomic_load(&f->seg->w[c]);

		valid += (x & RT_CK_VALID) != 0;
		dirty += (x & RT_CK_DIRTY) != 0;
	}
	atomic_fetch_sub(&g_srv.vseg->cache_bytes, valid * g_srv.cs);
	atomic_fetch_sub(&g_srv.vseg->dirty_bytes, dirty * g_srv.cs);
	for (pp = &g_srv.files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	if (g_srv.hand == f)
		g_srv.hand = f->next;
	if (f->path)
		index_del(f);
	g_srv.nfiles--;
	pf_close(f->pf);
	munmap(f->seg, f->seg_bytes);
	close(f->memfd);
	close(f->statefd);
	if (f->sums)
		kiln_free_secret(f->sums, f->nsums * SRV_SUM_SIZE);
	free(f->path);
	free(f);
}

void sf_free_all(void)
{
	while (g_srv.files)
		sf_free(g_srv.files);
}

static int map_state(struct sfile *f, uint64_t words)
{
	size_t bytes = rt_fseg_bytes(words);
	void *p;

	if (ftruncate(f->statefd, (off_t)bytes) < 0)
		return -errno;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f->statefd, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (f->seg)
		munmap(f->seg, f->seg_bytes);
	f->seg = p;
	f->seg_bytes = bytes;
	atomic_store(&f->seg->nwords, words);
	return 0;
}

int sf_grow(struct sfile *f, uint64_t words)
{
	uint64_t have = words_of(f);

	if (words <= have)
		return 0;
	if (words > (UINT64_C(1) << 40))
		return -EFBIG;
	if (words < 2 * have)
		words = 2 * have;
	return map_state(f, words);
}

void sf_attrs(struct sfile *f)
{
	struct pf_stat ps;

	if (pf_fstat(f->pf, &ps))
		return;
	atomic_store(&f->seg->mode, pf_type_mode(ps.type) | (ps.mode & 07777));
	atomic_store(&f->seg->nlink, ps.nlink);
	atomic_store(&f->seg->uid, ps.uid);
	atomic_store(&f->seg->gid, ps.gid);
	atomic_store(&f->seg->blocks, ps.blocks);
	if (ps.ctime_ns > atomic_load(&f->seg->ctime_ns))
		atomic_store(&f->seg->ctime_ns, ps.ctime_ns);
}

/* At open: pf's attributes and times (from then on the segment's times lead). */
static void load_attrs(struct sfile *f)
{
	struct pf_stat ps;

	if (pf_fstat(f->pf, &ps))
		return;
	atomic_store(&f->seg->atime_ns, ps.atime_ns);
	atomic_store(&f->seg->mtime_ns, ps.mtime_ns);
	atomic_store(&f->seg->ctime_ns, ps.ctime_ns);
	f->atime_saved = ps.atime_ns;
	f->mtime_saved = ps.mtime_ns;
	sf_attrs(f);
}

/* Give pf the segment's times when they moved (writes, utimes) or when
 * pf's own write-back may have moved its mtime (wrote). */
static int store_times(struct sfile *f, bool wrote)
{
	struct kiln_err err = { 0 };
	struct pf_setattr sa = { .valid = PF_SET_MTIME | PF_SET_CTIME };
	int ret;

	sa.atime_ns = atomic_load(&f->seg->atime_ns);
	sa.mtime_ns = atomic_load(&f->seg->mtime_ns);
	sa.ctime_ns = atomic_load(&f->seg->ctime_ns);
	if (!wrote && sa.atime_ns == f->atime_saved && sa.mtime_ns == f->mtime_saved)
		return 0;
	if (sa.atime_ns != f->atime_saved)
		sa.valid |= PF_SET_ATIME;
	ret = pf_fsetattr(f->pf, &sa, NULL, &err);
	if (ret)
		return srv_fail(ret, &err);
	f->atime_saved = sa.atime_ns;
	f->mtime_saved = sa.mtime_ns;
	sf_attrs(f);
	return 0;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int sf_utimes(struct sfile *f, unsigned flags, int64_t atime_ns, int64_t mtime_ns)
{
	int64_t now = realtime_ns();

	if (!(flags & RT_UT_ATIME_OMIT))
		atomic_store(&f->seg->atime_ns, (flags & RT_UT_ATIME_NOW) ? now : atime_ns);
	if (!(flags & RT_UT_MTIME_OMIT))
		atomic_store(&f->seg->mtime_ns, (flags & RT_UT_MTIME_NOW) ? now : mtime_ns);
	atomic_store(&f->seg->ctime_ns, now);
	/* pf at once: a stat by path of a file nobody holds reads pf. */
	return store_times(f, true);
}

static int new_file(const char *path, pf_file_t *pf, struct sfile **out)
{
	struct sfile *f = calloc(1, sizeof(*f));
	uint64_t size = 0, words;
	int ret;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	f->memfd = f->statefd = -1;
	f->pf = pf;
	f->path = path ? strdup(path) : NULL;
	if (path && !f->path) {
		ret = -ENOMEM;
		goto fail;
	}
	{
		struct pf_stat ps;

		if ((ret = pf_fstat(pf, &ps)))
			goto fail;
		f->ino = ps.ino;
	}
	ret = pf_get_size(pf, &size);
	if (ret)
		goto fail;
	f->memfd = memfd_create("kiln-plaintext", MFD_CLOEXEC);
	f->statefd = memfd_create("kiln-state", MFD_CLOEXEC);
	if (f->memfd < 0 || f->statefd < 0) {
		ret = -errno;
		goto fail;
	}
	if (ftruncate(f->memfd, (off_t)size) < 0) {
		ret = -errno;
		goto fail;
	}
	words = 2 * srv_nchunks(size);
	ret = map_state(f, words < SRV_MIN_WORDS ? SRV_MIN_WORDS : words);
	if (ret)
		goto fail;
	f->seg->magic = RT_FSEG_MAGIC;
	f->seg->chunk_size = g_srv.cs;
	atomic_store(&f->seg->flags, RT_FS_SIZESEQ);
	ret = rt__ck_lock_init(f->seg);
	if (ret)
		goto fail;
	atomic_store(&f->seg->stored_size, size);
	set_all_valid(f);
	load_attrs(f);
	f->id = g_srv.next_id++;
	f->next = g_srv.files;
	g_srv.files = f;
	g_srv.nfiles++;
	if (f->path)
		index_add(f);
	/* Another process may now change this file without the namespace
	 * changing: stat answers cached before this point must go. */
	atomic_fetch_add(&g_srv.vseg->ns_gen, 1);
	*out = f;
	return 0;
fail:
	if (f->seg)
		munmap(f->seg, f->seg_bytes);
	if (f->memfd >= 0)
		close(f->memfd);
	if (f->statefd >= 0)
		close(f->statefd);
	free(f->path);
	free(f);
	return ret;
}

static int fill_range(struct sfile *f, uint64_t a, uint64_t b, bool strict);

/* At open: a small file whole (a web server reads it whole: one round trip
 * instead of one per read), else the chunk that holds the end of the file
 * (an append writes into it without knowing beforehand where the end is).
 * Not strict: a corrupt chunk fails the read that asks for it, not the open. */
static int fill_tail(struct sfile *f)
{
	uint64_t size = atomic_load(&f->seg->stored_size), n = srv_nchunks(size);

	if (size && size <= SRV_FILL_AT_OPEN)
		return fill_range(f, 0, n, /*strict=*/false);
	if (size % g_srv.cs == 0)
		return 0;
	return fill_range(f, n - 1, n, /*strict=*/false);
}

static int open_new(const char *path, pf_file_t *pf, struct sfile **out);

int sf_open(const char *path, int flags, mode_t mode, struct sfile **out)
{
	struct kiln_err err = { 0 };
	struct sfile *f = sf_by_path(path);
	pf_file_t *pf = NULL;
	int ret;

	*out = NULL;
	if (f) {
		if ((flags & O_CREAT) && (flags & O_EXCL))
			return -EEXIST;
		if ((flags & O_TRUNC) && (ret = sf_truncate(f, 0)))
			return ret;
		*out = f;
		return 0;
	}
	ret = pf_openat(g_srv.vol, PF_ROOT_INO, path,
			O_RDWR | (flags & (O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW)), mode, NULL, &pf,
			&err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	return open_new(path, pf, out);
}

int sf_tmpfile(const char *dir, int flags, mode_t mode, const struct pf_cred *cred,
	       struct sfile **out)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	pf_file_t *pf = NULL;
	int ret;

	*out = NULL;
	ret = pf_statat(g_srv.vol, PF_ROOT_INO, dir, 0, cred, &ps, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	if (ps.type != PF_TYPE_DIR)
		return -ENOTDIR;
	ret = pf_tmpfile(g_srv.vol, ps.ino, O_RDWR | (flags & O_EXCL), mode, cred, &pf, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	return open_new(NULL, pf, out);
}

/* A file the server did not hold: its memfd, state and first fill. */
static int open_new(const char *path, pf_file_t *pf, struct sfile **out)
{
	struct sfile *f;
	int ret = new_file(path, pf, &f);

	if (ret) {
		pf_close(pf);
		return ret;
	}
	ret = fill_tail(f);
	set_all_valid(f);
	if (ret) {
		sf_free(f);
		return ret;
	}
	*out = f;
	return 0;
}

/* Decrypt and verify [off, off + len) from pf into the memfd (through
 * g_srv.buf, wiped at the end of the loop's turn: sf_buf_wipe). A mapping of
 * the memfd to decrypt into was tried and was 2x slower here: every fresh
 * page of a new mapping costs a fault (a shadow-paging exit on this kind of
 * VM) where pwrite writes through the kernel's own mapping. */
static ssize_t fill_bytes(struct sfile *f, uint64_t off, uint64_t len, struct kiln_err *err)
{
	ssize_t r = pf_pread(f->pf, g_srv.buf, len, off, err);

	if (r >= 0) {
		if ((uint64_t)r < len)
			memset(g_srv.buf + r, 0, len - (uint64_t)r);
		r = pwrite(f->memfd, g_srv.buf, len, (off_t)off) == (ssize_t)len ? (ssize_t)len :
									   -EIO;
		if (r >= 0)
			sums_take(f, off / g_srv.cs, g_srv.buf, len);
	}
	buf_hold(len);
	return r;
}

/* Fill the chunks of [a, b) that are not VALID (all below stored_size). With
 * strict, the first chunk that fails verification fails the call; read-ahead
 * is not strict (the chunk fails the read that asks for it). */
static int fill_range(struct sfile *f, uint64_t a, uint64_t b, bool strict)
{
	uint64_t stored = atomic_load(&f->seg->stored_size), cs = g_srv.cs;
	uint64_t per = g_srv.buf_size / cs, n;

	for (uint64_t c = a; c < b;) {
		uint64_t e, off, len;
		ssize_t r;

		if (atomic_load(&f->seg->w[c]) & RT_CK_VALID) {
			c++;
			continue;
		}
		for (e = c + 1; e < b && e - c < per && !(atomic_load(&f->seg->w[e]) & RT_CK_VALID);
		     e++)
			;
		off = c * cs;
		if (off >= stored)
			break; /* nothing stored there: not a fill */
		len = (e * cs < stored ? e * cs : stored) - off;
		r = fill_bytes(f, off, len, NULL);
		if (r < 0 && e - c > 1) {
			/* Find the bad chunk: fill the ones before it. */
			for (; c < e; c++) {
				int ret = fill_range(f, c, c + 1, strict);

				if (ret)
					return ret;
			}
			continue;
		}
		if (r < 0) {
			struct kiln_err err = { 0 };

			if (!strict)
				return 0;
			r = fill_bytes(f, off, len, &err);
			return srv_fail(r < 0 ? (int)r : -EIO, &err);
		}
		g_srv.n_fills++;
		g_srv.fill_chunks += e - c;
		n = 0;
		for (uint64_t k = c; k < e; k++)
			n += rt__ck_set_valid(f->seg, k);
		f->valid_stored += n;
		atomic_fetch_add(&g_srv.vseg->cache_bytes, n * cs);
		c = e;
	}
	return 0;
}

int sf_fill(struct sfile *f, uint64_t first, uint64_t count)
{
	uint64_t nst = srv_nchunks(atomic_load(&f->seg->stored_size));
	uint64_t end = first + count, w = words_of(f), base;
	bool seq;
	int ret;

	if (count == 0 || first >= nst)
		return 0;
	if (end > nst || end < first)
		end = nst;
	if (end > w)
		return -EINVAL;
	ret = fill_range(f, first, end, /*strict=*/true);
	if (ret)
		return ret;
	/* Sequential: the miss is where the last read-ahead ended, or inside
	 * it (the reader overtook a read-ahead that ran after the reply). */
	seq = f->ra_win && first >= f->ra_start && first <= f->ra_end;
	f->ra_win = seq ? f->ra_win * 2 : SRV_RA_MIN;
	if (f->ra_win > SRV_RA_MAX)
		f->ra_win = SRV_RA_MAX;
	base = seq && f->ra_end > end ? f->ra_end : end;
	f->ra_start = end;
	f->ra_end = base + f->ra_win < nst ? base + f->ra_win : nst;
	if (f->ra_end > w)
		f->ra_end = w;
	f->ra_next = base < f->ra_end ? base : f->ra_end;
	set_all_valid(f);
	return 0;
}

void sf_readahead(struct sfile *f)
{
	uint64_t before = g_srv.fill_chunks, w = words_of(f);
	uint64_t nst = srv_nchunks(atomic_load(&f->seg->stored_size));

	/* The plan may be older than a truncation since (sf_truncate fills the
	 * new last chunk through sf_fill, and a failed or empty fill replans
	 * nothing): only chunks pf stores now, and the state covers. */
	if (f->ra_end > nst)
		f->ra_end = nst;
	if (f->ra_end > w)
		f->ra_end = w;
	if (f->ra_next >= f->ra_end)
		return;
	/* Not strict: a bad chunk fails the read that asks for it. */
	(void)fill_range(f, f->ra_next, f->ra_end, /*strict=*/false);
	g_srv.ra_after_reply += g_srv.fill_chunks - before;
	f->ra_next = f->ra_end;
	set_all_valid(f);
}

static int store(struct sfile *f, const uint8_t *buf, uint64_t len, uint64_t off)
{
	struct kiln_err err = { 0 };
	ssize_t r = pf_pwrite(f->pf, buf, len, off, &err);

	return r < 0 ? srv_fail((int)r, &err) : 0;
}

/* buf holds len bytes of f from chunk c, all taken as changed: store the
 * runs of chunks whose digest moved, and keep their new digests (forgotten
 * if the store fails). */
static int store_changed(struct sfile *f, uint64_t c, const uint8_t *buf, uint64_t len)
{
	uint64_t cs = g_srv.cs, n = (len + cs - 1) / cs, run = n;

	for (uint64_t i = 0; i <= n; i++) {
		bool moved = false;

		if (i < n) {
			uint8_t now[SRV_SUM_SIZE];

			chunk_sum(buf + i * cs, len - i * cs < cs ? len - i * cs : cs, now);
			moved = !sum_known(now) || memcmp(now, f->sums[c + i], SRV_SUM_SIZE) != 0;
			memcpy(f->sums[c + i], now, SRV_SUM_SIZE);
			g_srv.n_same += !moved;
		}
		if (moved && run == n)
			run = i;
		if (!moved && run < n) {
			uint64_t end = i * cs < len ? i * cs : len;
			int ret = store(f, buf + run * cs, end - run * cs, (c + run) * cs);

			if (ret) {
				sums_forget(f, c + run, c + n);
				return ret;
			}
			run = n;
		}
	}
	return 0;
}

/* Write chunks [c, e) (all taken dirty) of f back through pf. */
static int write_run(struct sfile *f, uint64_t c, uint64_t e, uint64_t size)
{
	uint64_t cs = g_srv.cs, per = g_srv.buf_size / cs;
	/* Mapped now, or before: the digests stay good while kept
	 * (sf_unmap's write-back takes every chunk as changed too). */
	bool sums = (f->wmaps || f->sums) && !sums_reserve(f, e);

	while (c < e) {
		uint64_t k = e - c < per ? e : c + per;
		uint64_t off = c * cs, len = (k * cs < size ? k * cs : size) - off;
		ssize_t r;
		int ret;

		if (off >= size)
			return 0;
		r = pread(f->memfd, g_srv.buf, len, (off_t)off);
		buf_hold(len);
		if (r != (ssize_t)len)
			return -EIO;
		ret = sums ? store_changed(f, c, g_srv.buf, len) : store(f, g_srv.buf, len, off);
		if (ret)
			return ret;
		c = k;
	}
	return 0;
}

/* Stores through a writable mapping leave no mark: every valid chunk below
 * n may have changed. With a supervised holder (whole) every chunk below n
 * is the file's, also the ones past the stored size that no fill made valid
 * (its writes to the memfd do not trap): valid and dirty too. */
static void mark_mapped(struct sfile *f, uint64_t n, bool whole)
{
	uint64_t first = whole ? srv_nchunks(atomic_load(&f->seg->stored_size)) : UINT64_MAX;
	uint64_t newly = 0, valid = 0;

	if (n > words_of(f))
		n = words_of(f);
	for (uint64_t c = 0; c < n; c++) {
		uint32_t want = RT_CK_DIRTY, old = atomic_load(&f->seg->w[c]);

		if (!(old & RT_CK_VALID)) {
			if (c < first)
				continue;
			want |= RT_CK_VALID;
		}
		old = atomic_fetch_or(&f->seg->w[c], want);
		newly += !(old & RT_CK_DIRTY);
		valid += !(old & RT_CK_VALID);
	}
	atomic_fetch_add(&g_srv.vseg->dirty_bytes, newly * g_srv.cs);
	atomic_fetch_add(&g_srv.vseg->cache_bytes, valid * g_srv.cs);
}

/* The state covers every chunk of the memfd. */
static int grow_to_memfd(struct sfile *f)
{
	struct stat st;

	if (mstat(f->memfd, &st) < 0)
		return -errno;
	return sf_grow(f, srv_nchunks((uint64_t)st.st_size));
}

static int writeback_locked(struct sfile *f);

int sf_writeback_held(struct sfile *f)
{
	return writeback_locked(f);
}

/* Under the file's append lock: no append is half-way in the memfd while
 * its end is read and written back (a commit never holds half a record).
 * The lock is only tried: its holder may be waiting for this server.
 * -EAGAIN: try again later. */
int sf_writeback(struct sfile *f)
{
	int ret;

	/* A supervised program's writes past the end grew the memfd without
	 * growing the state (grown here, not under the lock: it lives in the
	 * state mapping, which growing replaces). */
	if (f->wholes && (ret = grow_to_memfd(f)))
		return ret;
	if (!rt__ck_trylock(f->seg))
		return -EAGAIN;
	sf_wstream_unlease(f);
	ret = writeback_locked(f);
	rt__ck_unlock(f->seg);
	return ret;
}

static int writeback_locked(struct sfile *f)
{
	struct kiln_err err = { 0 };
	uint64_t size, n, w = words_of(f), taken = 0, old_stored, psize = 0;
	struct stat st;
	int ret = 0;

	if (mstat(f->memfd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	n = srv_nchunks(size);
	if (n > w)
		n = w; /* cannot be: writers grow the state first */
	if (f->wmaps)
		mark_mapped(f, n, f->wholes > 0);
	for (uint64_t c = 0; c < n && !ret;) {
		uint64_t e = c;

		while (e < n && rt__ck_take_dirty(f->seg, e))
			e++;
		if (e == c) {
			c++;
			continue;
		}
		taken += e - c;
		ret = write_run(f, c, e, size);
		if (ret) {
			/* Not stored: dirty again, for a retry. */
			for (uint64_t k = c; k < e; k++)
				atomic_fetch_or(&f->seg->w[k], RT_CK_DIRTY);
			taken -= e - c;
		}
		c = e;
	}
	atomic_fetch_sub(&g_srv.vseg->dirty_bytes, taken * g_srv.cs);
	if (ret) {
		atomic_fetch_or(&f->seg->flags, RT_FS_FAILED);
		return ret;
	}
	if (!pf_get_size(f->pf, &psize) && psize != size) {
		sums_forget(f, (psize < size ? psize : size) / g_srv.cs, UINT64_MAX);
		if ((ret = pf_ftruncate(f->pf, size, &err)))
			return srv_fail(ret, &err);
	}
	old_stored = atomic_load(&f->seg->stored_size);
	move_stored(f, size);
	if (size != old_stored)
		recount(f);
	/* Stores through a mapping left no mark on the times either. */
	if (taken && f->wmaps)
		rt__fseg_touch(f->seg);
	return store_times(f, taken || size != psize);
}

/* Forget chunks [from, to): no longer part of the file. */
static void drop_words(struct sfile *f, uint64_t from, uint64_t to)
{
	uint64_t w = words_of(f), valid = 0, dirty = 0;

	for (uint64_t c = from; c < to && c < w; c++) {
		uint32_t old = atomic_fetch_and(&f->seg->w[c], ~(RT_CK_VALID | RT_CK_DIRTY));

		valid += (old & RT_CK_VALID) != 0;
		dirty += (old & RT_CK_DIRTY) != 0;
	}
	atomic_fetch_sub(&g_srv.vseg->cache_bytes, valid * g_srv.cs);
	atomic_fetch_sub(&g_srv.vseg->dirty_bytes, dirty * g_srv.cs);
}

int sf_truncate(struct sfile *f, uint64_t size)
{
	struct kiln_err err = { 0 };
	uint64_t cs = g_srv.cs, nn = srv_nchunks(size), old, stored;
	struct stat st;
	int ret;

	if (size > (UINT64_C(1) << 50))
		return -EFBIG;
	if (nn > words_of(f) && (ret = sf_grow(f, nn)))
		return ret;
	if (mstat(f->memfd, &st) < 0)
		return -errno;
	old = (uint64_t)st.st_size;
	stored = atomic_load(&f->seg->stored_size);
	if (size % cs && size < old && size / cs < words_of(f)) {
		/* The new last chunk keeps only its head: fill it first, then
		 * its cut tail is written back as part of it. */
		ret = sf_fill(f, size / cs, 1);
		if (ret)
			return ret;
	}
	if (ftruncate(f->memfd, (off_t)size) < 0)
		return -errno;
	drop_words(f, nn, srv_nchunks(old > stored ? old : stored));
	if (size % cs && size < old)
		rt__ck_mark(f->seg, g_srv.vseg, size / cs, size / cs);
	sums_forget(f, (size < stored ? size : stored) / cs, UINT64_MAX);
	ret = pf_ftruncate(f->pf, size, &err);
	if (ret)
		return srv_fail(ret, &err);
	move_stored(f, size < old ? size : old);
	atomic_store(&f->seg->stored_size, size);
	recount(f);
	rt__fseg_touch(f->seg);
	return fill_tail(f);
}


static int zero_range(struct sfile *f, int mode, uint64_t off, uint64_t len, uint64_t size);

int sf_fallocate(struct sfile *f, int mode, uint64_t off, uint64_t len)
{
	uint64_t cs = g_srv.cs, end = off + len, c0 = off / cs, c1;
	struct stat st;
	int ret;

	if (len == 0 || end < off || end > (UINT64_C(1) << 50))
		return -EINVAL;
	c1 = (end - 1) / cs;
	if (c1 >= words_of(f) && (ret = sf_grow(f, c1 + 1)))
		return ret;
	if (mstat(f->memfd, &st) < 0)
		return -errno;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		/* The partial chunks at both ends keep their other bytes. */
		if ((ret = sf_fill(f, c0, 1)) || (ret = sf_fill(f, c1, 1)))
			return ret;
	} else if (mode & ~FALLOC_FL_KEEP_SIZE) {
		return -EOPNOTSUPP;
	}
	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
		if (fallocate(f->memfd, mode, (off_t)off, (off_t)len) < 0)
			return -errno;
		rt__fseg_resized(f->seg); /* past the end: a new size */
		return 0;
	}
	return zero_range(f, mode, off, len, (uint64_t)st.st_size);
}

/* Punch a hole (or zero a range) in f: whole chunks become holes in pf (no
 * chunk stored, SEEK_HOLE finds them) and leave the memfd; the partial
 * chunks at both ends are zeroed there and written back. A dirty whole
 * chunk's bit is taken before the memfd is punched: a write that lands
 * after it marks the chunk again (it is then stored, zeros or not). */
static int zero_range(struct sfile *f, int mode, uint64_t off, uint64_t len, uint64_t size)
{
	struct kiln_err err = { 0 };
	uint64_t cs = g_srv.cs, end = off + len, w0 = (off + cs - 1) / cs, w1 = end / cs;
	uint64_t nsz, dropped = 0;
	int ret;

	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > size)
		size = end;
	nsz = srv_nchunks(size);
	for (uint64_t c = w0; c < w1 && c < nsz; c++)
		dropped += rt__ck_take_dirty(f->seg, c);
	atomic_fetch_sub(&g_srv.vseg->dirty_bytes, dropped * cs);
	if (fallocate(f->memfd, mode, (off_t)off, (off_t)len) < 0)
		return -errno;
	sums_forget(f, off / cs, (end + cs - 1) / cs);
	if (w0 < w1 && w0 < nsz) {
		ret = pf_fallocate(f->pf, PF_FALLOC_PUNCH_HOLE | PF_FALLOC_KEEP_SIZE, w0 * cs,
				   ((w1 < nsz ? w1 : nsz) - w0) * cs, &err);
		if (ret)
			return srv_fail(ret, &err);
	}
	if (off % cs && off / cs < nsz)
		rt__ck_mark(f->seg, g_srv.vseg, off / cs, off / cs);
	if (end % cs && end / cs < nsz)
		rt__ck_mark(f->seg, g_srv.vseg, end / cs, end / cs);
	rt__fseg_touch(f->seg);
	sf_attrs(f);
	return 0;
}

/* A file nobody holds stays this long before it may be closed: a forked
 * child attaches its parent's files at its first call, a new program its
 * inherited fds' files at start. */
#define IDLE_GRACE_NS (2ull * 1000000000)

static bool idle(const struct sfile *f)
{
	return !f->holds && !f->maps && !f->resv_by;
}

void sf_unhold(struct sfile *f)
{
	if (f->holds)
		f->holds--;
	if (!f->holds)
		sf_wstream_revoke(f); /* a lease its holder will not use */
	if (idle(f)) {
		f->idle_since = kiln_now_ns();
		sf_reap(false);
	}
}

void sf_reap(bool all)
{
	uint64_t now = kiln_now_ns();

	for (;;) {
		struct sfile *old = NULL;
		bool over = g_srv.nfiles > g_srv.max_files;

		for (struct sfile *f = g_srv.files; f; f = f->next) {
			if (!idle(f) || now - f->idle_since < IDLE_GRACE_NS)
				continue;
			/* Unlinked ones go first: nobody can open them again. */
			if (!f->path) {
				old = f;
				break;
			}
			if (!old || f->idle_since < old->idle_since)
				old = f;
		}
		if (!old || (old->path && !over && !all))
			return;
		/* What it holds that pf has not is written back first. */
		if (old->path && sf_writeback(old))
			return;
		sf_free(old);
	}
}

void sf_unmap(struct sfile *f, unsigned flags)
{
	bool was = f->maps > 0, whole = flags & RT_MAP_WHOLE;

	/* A supervised program's writes changed the size with no mark: moved
	 * before RT_FS_NOEVICT goes, so no client trusts a size it read while
	 * the program held the file (stat.c). */
	if (whole)
		rt__fseg_resized(f->seg);
	if (flags & RT_MAP_WRITE) {
		/* What the mapping stored is written back with the next commit. */
		if (whole)
			(void)grow_to_memfd(f); /* else only what the state covers */
		mark_mapped(f, words_of(f), whole);
		if (f->wmaps)
			f->wmaps--;
		if (whole && f->wholes)
			f->wholes--;
	}
	if (f->maps && --f->maps == 0)
		atomic_fetch_and(&f->seg->flags, ~RT_FS_NOEVICT);
	if (was && idle(f))
		f->idle_since = kiln_now_ns();
}

void sf_unlinked(struct sfile *f)
{
	if (!f->path)
		return;
	index_del(f);
	free(f->path);
	f->path = NULL;
	/* Clients that hold it keep using it (pf keeps the data until the last
	 * handle closes); it goes when nobody holds it, after the grace. */
}

void sf_renamed(const char *from, const char *to)
{
	size_t flen = strlen(from);

	for (struct sfile *f = g_srv.files; f; f = f->next) {
		char *np;

		if (!f->path || strncmp(f->path, from, flen) != 0 ||
		    (f->path[flen] != '\0' && f->path[flen] != '/'))
			continue;
		if (asprintf(&np, "%s%s", to, f->path + flen) < 0)
			continue; /* the name is for messages only */
		free(f->path);
		f->path = np;
	}
}

int sf_stat(struct sfile *f, struct rt_stat_reply *r)
{
	struct stat st;
	uint64_t blocks;

	if (mstat(f->memfd, &st) < 0)
		return -errno;
	r->size = (uint64_t)st.st_size;
	r->atime_ns = atomic_load(&f->seg->atime_ns);
	r->mtime_ns = atomic_load(&f->seg->mtime_ns);
	r->ctime_ns = atomic_load(&f->seg->ctime_ns);
	r->mode = atomic_load(&f->seg->mode);
	r->nlink = atomic_load(&f->seg->nlink);
	r->uid = atomic_load(&f->seg->uid);
	r->gid = atomic_load(&f->seg->gid);
	/* What pf stores, or what the memfd holds when more (written, not yet
	 * written back). */
	blocks = atomic_load(&f->seg->blocks);
	r->blocks = (uint64_t)st.st_blocks > blocks ? (uint64_t)st.st_blocks : blocks;
	return 0;
}

int sf_seek(struct sfile *f, int whence, uint64_t off, uint64_t *out)
{
	struct kiln_err err = { 0 };
	int ret = sf_writeback(f);

	if (ret)
		return ret;
	ret = whence == SEEK_DATA ? pf_seek_data(f->pf, off, out, &err) :
	      pf_seek_hole(f->pf, off, out, &err);
	return ret == 0 || ret == -ENXIO ? ret : srv_fail(ret, &err);
}

/* ---- eviction -------------------------------------------------------------
 * Clean, unpinned chunks are punched out of the memfd. A file is skipped
 * while mapped, and while a client holds its append lock: an append writes
 * into the chunk at the end of the file, which is never evicted, and the
 * evictor holds the lock while it looks for that end. */
static uint64_t evict_file(struct sfile *f, uint64_t want)
{
	uint64_t cs = g_srv.cs, freed = 0, n, tail, nst;
	struct stat st;

	if (f->maps || (atomic_load(&f->seg->flags) & RT_FS_NOEVICT) || !rt__ck_trylock(f->seg))
		return 0;
	sf_wstream_unlease(f);
	if (mstat(f->memfd, &st) < 0)
		goto out;
	n = srv_nchunks((uint64_t)st.st_size);
	if (n > words_of(f))
		n = words_of(f);
	tail = (uint64_t)st.st_size % cs ? (uint64_t)st.st_size / cs : UINT64_MAX;
	nst = srv_nchunks(atomic_load(&f->seg->stored_size));
	atomic_store(&f->seg->all_valid, 0);
	atomic_fetch_add(&f->seg->evict_seq, 1);
	for (uint64_t i = 0; i < n && freed < want; i++) {
		uint64_t c = (f->hand + i) % n, e;

		/* Written-back chunks only (below stored_size): a chunk past it
		 * would read as zeros once punched. */
		if (c == tail || c >= nst || !rt__ck_claim(f->seg, c))
			continue;
		for (e = c + 1; e < n && e < nst && e != tail && freed + (e - c) * cs < want &&
		     rt__ck_claim(f->seg, e); e++)
			;
		fallocate(f->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(c * cs),
			  (off_t)((e - c) * cs));
		for (uint64_t k = c; k < e; k++)
			rt__ck_evicted(f->seg, k);
		f->valid_stored -= e - c;
		freed += (e - c) * cs;
		i += e - c - 1;
		f->hand = e;
	}
	atomic_fetch_add(&f->seg->evict_seq, 1);
	atomic_fetch_sub(&g_srv.vseg->cache_bytes, freed);
	g_srv.n_evicted += freed / cs;
	set_all_valid(f);
out:
	rt__ck_unlock(f->seg);
	return freed;
}

/* What the memfds really hold (the kernel's count), for the counters. */
static void measure(void)
{
	uint64_t sum = 0;

	for (struct sfile *f = g_srv.files; f; f = f->next) {
		struct stat st;

		if (mstat(f->memfd, &st) == 0)
			sum += (uint64_t)st.st_blocks * 512;
	}
	if (sum > g_srv.peak_bytes)
		g_srv.peak_bytes = sum;
}

void sf_balance(bool writeback_all)
{
	struct rt_vseg *v = g_srv.vseg;
	uint64_t limit = v->cache_limit, target = limit - limit / 8;

	if (g_srv.stats)
		measure();

	if (writeback_all || atomic_load(&v->dirty_bytes) > v->dirty_background ||
	    atomic_load(&v->cache_bytes) > limit) {
		for (struct sfile *f = g_srv.files; f; f = f->next)
			if (writeback_all || atomic_load(&v->cache_bytes) > target)
				sf_writeback(f); /* a failure is reported at the commit */
	}
	if (atomic_load(&v->cache_bytes) <= limit)
		return;
	/* Round robin over the files, a bounded slice of each. */
	for (size_t pass = 0; pass < 2 * g_srv.nfiles + 2; pass++) {
		uint64_t cur = atomic_load(&v->cache_bytes);
		struct sfile *f = g_srv.hand ? g_srv.hand : g_srv.files;

		if (cur <= target || !f)
			break;
		g_srv.hand = f->next;
		evict_file(f, cur - target);
	}
}

/* ---- sealed writes in the program's process (RT_OP_WSTREAM) ---------------
 * docs/fs.md "Large writes sealed in the program's process". The client
 * holds the file's append lock from before the reservation to after the
 * tags (so no write-back or eviction of the file runs meanwhile) and a pin
 * on every chunk of the range; the commits wait while a reservation is open
 * (server.c). The chunks are at the end of the file (memfd, stored_size and
 * pf agree on it), neither VALID nor DIRTY: after the record they are below
 * stored_size and not VALID, so every reader fills them from pf. */
static void resv_end(struct sfile *f, bool cancel)
{
	if (cancel)
		pf_stream_cancel(f->pf);
	if (f->resv_lease)
		atomic_store(&f->seg->wlease, 0);
	f->resv_by = NULL;
	f->resv_lease = false;
	g_srv.reserved--;
}

/* A lease is in use only while its holder holds the append lock (from its
 * check of seg->wlease to the tags): with the lock, it is cancelled. */
void sf_wstream_unlease(struct sfile *f)
{
	if (f->resv_by)
		resv_end(f, true);
}

bool sf_wstream_revoke(struct sfile *f)
{
	if (f->resv_by && rt__ck_trylock(f->seg)) {
		sf_wstream_unlease(f);
		rt__ck_unlock(f->seg);
	}
	return !f->resv_by;
}

int sf_wstream_reserve(struct sfile *f, struct sclient *cl, uint64_t first, uint64_t count,
		       struct pf_stream_info *info, int *fd)
{
	struct kiln_err err = { 0 };
	uint64_t at = first * g_srv.cs;
	struct stat st;
	int ret;

	if (f->resv_by == cl)
		resv_end(f, true); /* its lease, unused (it holds the append lock) */
	if (f->resv_by || f->wmaps || f->wholes || first + count > words_of(f) ||
	    mstat(f->memfd, &st) < 0 || (uint64_t)st.st_size != at)
		return -EAGAIN;
	/* Written before, not yet written back (a header before the bulk): pf
	 * first, so that it ends here too (the client holds the append lock). */
	if (atomic_load(&f->seg->stored_size) != at &&
	    ((ret = writeback_locked(f)) || atomic_load(&f->seg->stored_size) != at))
		return ret ? ret : -EAGAIN;
	for (uint64_t c = first; c < first + count; c++)
		if (atomic_load(&f->seg->w[c]) & (RT_CK_VALID | RT_CK_DIRTY))
			return -EAGAIN;
	ret = pf_stream_reserve(f->pf, first, (size_t)count, info, fd, &err);
	if (ret)
		return ret == -EAGAIN || ret == -EOPNOTSUPP || ret == -EBADF ? ret :
		       srv_fail(ret, &err);
	f->resv_by = cl;
	f->resv_first = first;
	f->resv_count = count;
	g_srv.reserved++;
	return 0;
}

int sf_wstream_cancel(struct sfile *f, struct sclient *cl)
{
	if (f->resv_by != cl)
		return -EINVAL;
	resv_end(f, true);
	return 0;
}

void sf_wstream_drop(struct sclient *cl)
{
	for (struct sfile *f = g_srv.files; f; f = f->next)
		if (f->resv_by == cl)
			resv_end(f, true);
}

/* The reservation of the client's next window, taken with the tags of this
 * one (RT_WSTREAM_NEXT): a lease of RT_WSTREAM_MAX chunks from first. Its
 * token (> 0, also in seg->wlease while it stands), or 0: none. */
static int lease(struct sfile *f, struct sclient *cl, uint64_t first)
{
	if (first + RT_WSTREAM_MAX > words_of(f) ||
	    sf_wstream_reserve(f, cl, first, RT_WSTREAM_MAX, NULL, NULL))
		return 0;
	if (++g_srv.lease_seq > INT32_MAX)
		g_srv.lease_seq = 1;
	f->resv_lease = true;
	atomic_store(&f->seg->wlease, g_srv.lease_seq);
	return (int)g_srv.lease_seq;
}

int sf_wstream_done(struct sfile *f, struct sclient *cl, uint64_t first, uint64_t count,
		    const uint8_t *tags, bool next)
{
	struct kiln_err err = { 0 };
	uint64_t cs = g_srv.cs, old = first * cs, size = (first + count) * cs;
	struct stat st;
	bool clash = false, leased = f->resv_lease;
	int ret;

	if (f->resv_by != cl)
		return -EINVAL;
	if (f->resv_first != first || f->resv_count < count) {
		resv_end(f, true); /* not what was reserved: nothing recorded */
		return -EINVAL;
	}
	ret = pf_stream_record(f->pf, first, (size_t)count, tags, &err);
	if (ret) {
		resv_end(f, true);
		return ret == -EAGAIN ? ret : srv_fail(ret, &err);
	}
	resv_end(f, false);
	/* The memfd grows over chunks that are not VALID: a native read that
	 * began while every chunk was valid must retry (as around an eviction). */
	atomic_store(&f->seg->all_valid, 0);
	atomic_fetch_add(&f->seg->evict_seq, 1);
	/* pf holds the chunks now: stored_size first, then a look at the words.
	 * A writer that pinned a chunk here before this store (it saw the old
	 * end, so it will not fill: its write lands on zeros) shows as a second
	 * pin or a mark; one that pins after it sees the new end and fills
	 * from pf (a fill is served after this request). */
	atomic_store(&f->seg->stored_size, size);
	for (uint64_t c = first; c < first + count && !clash; c++) {
		uint32_t w = atomic_load(&f->seg->w[c]);

		clash = (w & (RT_CK_VALID | RT_CK_DIRTY)) || (w & RT_CK_PINS) > RT_CK_PIN;
	}
	if (clash || mstat(f->memfd, &st) < 0 ||
	    ((uint64_t)st.st_size < size && ftruncate(f->memfd, (off_t)size) < 0)) {
		/* Not this time: back to the old end, the client writes the range
		 * the usual way (as if after the other writer). */
		atomic_store(&f->seg->stored_size, old);
		atomic_fetch_add(&f->seg->evict_seq, 1);
		set_all_valid(f);
		/* The slots become debris past the end (the next commit cuts it). */
		ret = pf_ftruncate(f->pf, old, &err);
		if (ret) {
			atomic_fetch_or(&f->seg->flags, RT_FS_FAILED);
			return srv_fail(ret, &err);
		}
		return -EAGAIN;
	}
	atomic_fetch_add(&f->seg->evict_seq, 1);
	rt__fseg_resized(f->seg); /* fstat answers kept by clients go */
	set_all_valid(f);
	/* st_blocks: the slots (28 bytes of nonce and tag each, docs/fs.md
	 * "Backing file") added, not pf_fstat's count over the whole file
	 * (per window: quadratic, 10% of a 512 MiB write). */
	atomic_fetch_add(&f->seg->blocks, (count * (cs + 28) + 511) / 512);
	g_srv.n_wstreams++;
	g_srv.n_leased += leased;
	g_srv.wstream_chunks += count;
	/* Flush the backing file early, in the background, every
	 * SRV_EARLY_FLUSH bytes of a stream (one flush at a time: else at the
	 * next window): the final sync's device flush then has only the last
	 * part left (docs/fs.md "Flushing a stream early"). */
	f->unflushed += count * cs;
	if (f->unflushed >= SRV_EARLY_FLUSH && pf_stream_flush(f->pf)) {
		f->unflushed = 0;
		g_srv.n_early++;
	}
	return next ? lease(f, cl, first + count) : 0;
}
