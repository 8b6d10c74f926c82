/* kiln runtime, file shield: stat of volume paths and protected fds, and the
 * lookup cache.
 *
 * The server answers a stat (size, mode, mtime, inode, file id). Its answer
 * holds while the volume's namespace generation (rt_vseg.ns_gen, bumped by
 * the server on every create, unlink, rename, chmod, utimes, truncation, and
 * whenever a file gets a memfd) has not moved, so it is kept here per path:
 * sqlite's stat of its journal before every statement and nginx's open and
 * fstat of the files it serves cost no round trip. Size and mtime of a file
 * that has a memfd change without the generation moving (writes): they are
 * taken from the memfd (rt__mstat) when this process holds the file, else
 * asked again. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

static struct timespec ts_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	if (ts.tv_nsec < 0) { /* before 1970 */
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

void rt__fill_stat(struct stat *out, struct rt_vol *vol, const struct rt_stat_reply *r,
		   const struct stat *mem)
{
	memset(out, 0, sizeof(*out));
	out->st_dev = vol ? vol->st_dev : 0x6b6c6e; /* injected files: a fixed device */
	out->st_ino = r->ino;
	out->st_mode = r->mode;
	out->st_nlink = r->nlink;
	out->st_uid = vol ? r->uid : g_uid;
	out->st_gid = vol ? r->gid : g_gid;
	out->st_blksize = 4096;
	out->st_size = mem ? mem->st_size : (off_t)r->size;
	out->st_atim = ts_of(r->atime_ns);
	out->st_mtim = ts_of(r->mtime_ns);
	out->st_ctim = ts_of(r->ctime_ns);
	out->st_blocks = (blkcnt_t)r->blocks;
	if (mem && (uint64_t)mem->st_blocks > r->blocks)
		out->st_blocks = mem->st_blocks;
}

/* A memfd's size, inode and blocks, never its times (server.h). */
long rt__mstat(int fd, struct stat *st)
{
	struct statx sx;
	long r = rt__raw(SYS_statx, fd, "", AT_EMPTY_PATH, RT_MSTAT_MASK, &sx);

	if (r == 0)
		rt_mstat_fill(&sx, st);
	return r;
}

static uint64_t hash_of(const char *s)
{
	return kiln_fnv1a(KILN_FNV1A_INIT, s, strlen(s));
}

/* Under g_shield_lock. An answer holds for the credentials it was asked
 * with (search permission on the way: another thread may have others).
 * flags: RT_STAT_NOFOLLOW (lstat answers are kept apart: a symlink's own
 * attributes). */
static int lookup_cached(struct rt_vol *vol, const char *rel, unsigned flags, int *ret,
			 struct rt_stat_reply *out)
{
	struct rt_lookup *l = &vol->lookups[(hash_of(rel) ^ flags) % RT_LOOKUPS];

	if (!l->gen || l->gen != rt__vol_gen(vol) || l->who != rt__cred()->key ||
	    l->flags != flags ||
	    strcmp(l->rel, rel) != 0)
		return 0;
	*ret = l->ret;
	*out = l->st;
	return 1;
}

int rt__lookup_cached(struct rt_vol *vol, const char *rel, int *ret, struct rt_stat_reply *out)
{
	return lookup_cached(vol, rel, 0, ret, out);
}

static void lookup_put(struct rt_vol *vol, const char *rel, unsigned flags, uint64_t gen,
		       int ret, const struct rt_stat_reply *r)
{
	struct rt_lookup *l = &vol->lookups[(hash_of(rel) ^ flags) % RT_LOOKUPS];
	char *copy;

	if (ret && ret != -ENOENT && ret != -ENOTDIR)
		return;
	if (l->rel && strcmp(l->rel, rel) == 0) {
		copy = l->rel;
	} else {
		copy = strdup(rel);
		if (!copy)
			return;
		free(l->rel);
	}
	l->rel = copy;
	l->gen = gen;
	l->who = rt__cred()->key;
	l->flags = flags;
	l->ret = ret;
	if (r)
		l->st = *r;
	else
		memset(&l->st, 0, sizeof(l->st));
}

/* Under g_shield_lock, after this process's own change of rel (NULL: an open
 * file's attributes; vgen: vol->gen before the request): the answers it
 * leaves true are kept (docs/runtime.md, "The lookup cache and a process's
 * own changes") and rel's is (ret, r), under the generation after the change,
 * else under gen (0: not kept). */
void rt__lookup_own(struct rt_vol *vol, const char *rel, const struct rt_own *own,
		    uint64_t vgen, uint64_t gen, int ret, const struct rt_stat_reply *r)
{
	uint64_t base = vgen << 48;
	size_t len = rel ? strlen(rel) : 0, dlen = rel ? rt_path_pop(rel, len, 0) : 0;
	bool keep = own->vouched && vol->gen == vgen;

	for (struct rt_lookup *l = vol->lookups; keep && l < vol->lookups + RT_LOOKUPS; l++) {
		if (!l->gen || l->gen != own->from + base)
			continue;
		/* The name, names below it, its directory, its inode's other links. */
		if ((rel && !strncmp(l->rel, rel, len) && (!l->rel[len] || l->rel[len] == '/')) ||
		    (rel && strlen(l->rel) == dlen && !strncmp(l->rel, rel, dlen)) ||
		    (!l->ret && l->st.ino == own->ino))
			l->gen = 0;
		else
			l->gen = own->to + base;
	}
	if (rel && (keep || gen))
		lookup_put(vol, rel, 0, keep ? own->to + base : gen, ret, r);
}

static int lookup(struct rt_vol *vol, const char *rel, unsigned flags, struct rt_stat_reply *out)
{
	struct rt_msg m = { .op = RT_OP_STAT, .flags = flags, .path = rel };
	struct rt_call call;
	uint64_t gen;
	int ret;

	if (lookup_cached(vol, rel, flags, &ret, out))
		return ret;
	/* The generation before the question: a change racing with it makes
	 * the answer stale at once, never the other way round. */
	gen = rt__vol_gen(vol);
	ret = rt__vol_call(vol, &m, &call);
	if (ret == 0 && call.size != sizeof(*out))
		ret = -EPROTO;
	if (ret == 0)
		memcpy(out, call.body, sizeof(*out));
	rt__cl_done(vol, &call);
	lookup_put(vol, rel, flags, gen, ret, ret ? NULL : out);
	return ret;
}

int rt__lookup(struct rt_vol *vol, const char *rel, struct rt_stat_reply *out)
{
	return lookup(vol, rel, 0, out);
}

int rt__lookup_nofollow(struct rt_vol *vol, const char *rel, struct rt_stat_reply *out)
{
	return lookup(vol, rel, RT_STAT_NOFOLLOW, out);
}

/* The memfd's size and blocks as n keeps them, when they still hold: the
 * file's size_seq is the one they were read under and nothing is mapped
 * whole (a supervised program's writes move nothing while it holds the
 * file). */
static bool size_kept(struct rt_node *n, const struct rt_fseg *f, uint32_t seq,
		      struct stat *mem)
{
	unsigned lk = atomic_load_explicit(&n->st_lock, memory_order_acquire);
	bool ok;

	if ((lk & 1) || (atomic_load(&f->flags) & (RT_FS_SIZESEQ | RT_FS_NOEVICT)) !=
				RT_FS_SIZESEQ)
		return false;
	ok = atomic_load_explicit(&n->st_ok, memory_order_relaxed) &&
	     atomic_load_explicit(&n->st_seq, memory_order_relaxed) == seq;
	mem->st_size = (off_t)atomic_load_explicit(&n->st_size, memory_order_relaxed);
	mem->st_blocks = (blkcnt_t)atomic_load_explicit(&n->st_blocks, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return ok && atomic_load_explicit(&n->st_lock, memory_order_relaxed) == lk;
}

/* Keep what an fstat of the memfd said, read after size_seq was seq (a
 * change that moved it meanwhile makes the copy stale at once, never the
 * other way round). Another thread storing: this one does not. */
static void size_keep(struct rt_node *n, const struct rt_fseg *f, uint32_t seq,
		      const struct stat *mem)
{
	unsigned lk = atomic_load_explicit(&n->st_lock, memory_order_relaxed);

	if ((lk & 1) || (atomic_load(&f->flags) & (RT_FS_SIZESEQ | RT_FS_NOEVICT)) !=
				RT_FS_SIZESEQ ||
	    !atomic_compare_exchange_strong(&n->st_lock, &lk, lk + 1))
		return;
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&n->st_seq, seq, memory_order_relaxed);
	atomic_store_explicit(&n->st_size, (int64_t)mem->st_size, memory_order_relaxed);
	atomic_store_explicit(&n->st_blocks, (int64_t)mem->st_blocks, memory_order_relaxed);
	atomic_store_explicit(&n->st_ok, true, memory_order_relaxed);
	atomic_store_explicit(&n->st_lock, lk + 2, memory_order_release);
}

/* Lock-free: size from the memfd (kept while the file's size_seq stays:
 * nginx fstats every file it serves, and the system call was a sixth of
 * the shield's cost per request), the rest from the file's segment, which
 * the server and every writer keep current. */
long rt__stat_node(struct rt_node *n, struct stat *out)
{
	struct rt_fseg *f = atomic_load(&n->seg);
	struct rt_stat_reply r = { .ino = n->ino };
	uint32_t seq = atomic_load(&f->size_seq);
	struct stat mem;

	if (!size_kept(n, f, seq, &mem)) {
		if (rt__mstat(n->memfd, &mem) < 0)
			return -EIO;
		size_keep(n, f, seq, &mem);
	}
	r.mode = atomic_load(&f->mode);
	if (!r.mode) /* a server that did not set it: as before */
		r.mode = S_IFREG | n->mode;
	r.nlink = atomic_load(&f->nlink); /* 0 once the last name is gone */
	r.uid = atomic_load(&f->uid);
	r.gid = atomic_load(&f->gid);
	r.atime_ns = atomic_load(&f->atime_ns);
	r.mtime_ns = atomic_load(&f->mtime_ns);
	r.ctime_ns = atomic_load(&f->ctime_ns);
	r.blocks = atomic_load(&f->blocks);
	rt__fill_stat(out, n->vol, &r, &mem);
	return 0;
}

/* stat of a volume path (under the lock). */
static long stat_rel(struct rt_vol *vol, const char *rel, unsigned flags, struct stat *out)
{
	struct rt_stat_reply r;
	struct rt_node *n;
	int ret;

	if (lookup_cached(vol, rel, flags, &ret, &r)) {
		n = ret == 0 && r.id ? rt__node_by_id(vol, r.id) : NULL;
		if (n)
			return rt__stat_node(n, out);
		if (ret)
			return ret;
		/* A file that another process may be writing: ask again. */
		if (r.cacheable) {
			rt__fill_stat(out, vol, &r, NULL);
			return 0;
		}
		/* (the generation has not moved: lookup() would answer the same) */
		lookup_put(vol, rel, flags, 0, 0, NULL);
	}
	ret = lookup(vol, rel, flags, &r);
	if (ret)
		return ret;
	n = r.id ? rt__node_by_id(vol, r.id) : NULL;
	if (n)
		return rt__stat_node(n, out);
	rt__fill_stat(out, vol, &r, NULL);
	return 0;
}

long rt__stat_rel(struct rt_vol *vol, const char *rel, struct stat *out)
{
	return stat_rel(vol, rel, 0, out);
}

long rt__shield_stat(struct rt_target *t, struct stat *out)
{
	return rt__shield_stat_flags(t, 0, out);
}

long rt__shield_stat_flags(struct rt_target *t, int flags, struct stat *out)
{
	struct rt_guard g;
	long r;

	rt__lock(&g);
	r = t->vfile ? rt__vfile_stat(t->vfile, out) :
	    stat_rel(t->vol, t->rel, (flags & AT_SYMLINK_NOFOLLOW) ? RT_STAT_NOFOLLOW : 0, out);
	rt__unlock(&g);
	return r;
}

long rt__shield_fstat(long fd, struct stat *out)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_guard g;
	long r;

	switch (rt_fd_kind((int)fd)) {
	case RT_FD_FILE:
		/* Lock-free (nginx fstats every file it serves): the node lives
		 * while the reference lasts. */
		if (!rt__ofd_tryref(o))
			return -EBADF;
		r = o->node->vol ? rt__stat_node(o->node, out) : rt__vfile_stat(o->node, out);
		rt__ofd_unref_lockfree(o);
		return r;
	case RT_FD_DIR:
		rt__lock(&g);
		r = stat_rel(o->vol, o->rel, o->link ? RT_STAT_NOFOLLOW : 0, out);
		rt__unlock(&g);
		return r;
	default:
		return -EBADF;
	}
}

/* The volume's numbers: its store's file system (the space the volume can
 * use), names of at most PF_NAME_MAX bytes. vol->rootfd and the volume do
 * not change while the process runs: no lock. */
static long statfs_of(struct rt_vol *vol, struct statfs *out)
{
	long r = rt__raw(SYS_fstatfs, vol->rootfd, out);

	if (r == 0)
		out->f_namelen = PF_NAME_MAX;
	return r;
}

long rt__shield_statfs(struct rt_target *t, struct statfs *out)
{
	struct stat st;
	long r = rt__shield_stat(t, &st);

	return r < 0 ? r : statfs_of(t->vol, out);
}

long rt__shield_fstatfs(long fd, struct statfs *out)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	enum rt_fd_kind kind = rt_fd_kind((int)fd);
	struct rt_vol *vol;

	if (kind != RT_FD_FILE && kind != RT_FD_DIR)
		return 1;
	/* The reference keeps the description (and its node) while we look. */
	if (!rt__ofd_tryref(o))
		return -EBADF;
	vol = kind == RT_FD_DIR ? o->vol : o->node->vol;
	rt__ofd_unref_lockfree(o);
	return vol ? statfs_of(vol, out) : 1; /* an injected file: the kernel's answer */
}
