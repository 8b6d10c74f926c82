/* kiln runtime, file shield: open file descriptions. The program's fd on a
 * protected file is its own open of the server's memfd; the fd table
 * (fdtable.c) maps it to a struct rt_ofd, shared by its dup'd copies, which
 * holds a reference on the node (or, for a directory, the listing). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

/* Descriptions whose last reference went without the lock (a lock-free close
 * or data call), released under the lock by the next call that takes it. */
static _Atomic(struct rt_ofd *) g_released;
/* Lock-free closes in progress, and a fork waiting for them (see
 * rt__shield_before_fork). */
static atomic_int g_closing;
static atomic_bool g_forking;
static RT_TLS int t_closing;

/* ---- open file descriptions ------------------------------------------------ */
static void ofd_release(struct rt_ofd *o)
{
	rt__spare_back(o);
	if (o->kind == RT_FD_FILE)
		rt__node_unref(o->node);
	free(o->list);
	free(o->rel);
	free(o);
}

void rt__ofd_unref(struct rt_ofd *o)
{
	if (o && atomic_fetch_sub(&o->refs, 1) == 1)
		ofd_release(o);
}

/* Take a reference on a description found in the fd table, unless its last fd
 * was closed meanwhile (the closer owns it then). */
bool rt__ofd_tryref(struct rt_ofd *o)
{
	int r = atomic_load(&o->refs);

	while (r > 0)
		if (atomic_compare_exchange_weak(&o->refs, &r, r + 1))
			return true;
	return false;
}

/* ---- releases without the lock --------------------------------------------
 * nginx opens, reads and closes a file per request. The close of an fd needs
 * only the fd table and the description's reference count: the fd's slot is
 * taken with one compare-and-swap, and a description whose last reference
 * this was goes to g_released, which the next caller of the lock drains. No
 * signal mask change, no mutex: signals may arrive at any point, and a
 * handler that calls into the shield finds consistent state. */
void rt__release_later(struct rt_ofd *o)
{
	struct rt_ofd *head = atomic_load(&g_released);

	do
		o->next_released = head;
	while (!atomic_compare_exchange_weak(&g_released, &head, o));
}

void rt__ofd_unref_lockfree(struct rt_ofd *o)
{
	struct rt_node *n;

	if (atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	if (o->kind != RT_FD_FILE || !o->node->vol) {
		rt__release_later(o);
		return;
	}
	/* A file's description goes back to the pool of the lock-free open
	 * (fast.c) at once, its node's reference with it. */
	n = o->node;
	rt__spare_back(o);
	memset(o, 0, sizeof(*o));
	if (!rt__fast_pool_put(o))
		rt__release_later(o);
	rt__node_unref_lockfree(n);
}

/* Under g_shield_lock. */
void rt__released_drain(void)
{
	struct rt_ofd *o = atomic_exchange(&g_released, NULL), *next;

	for (; o; o = next) {
		next = o->next_released;
		ofd_release(o);
	}
}

bool rt__lockfree_begin(void)
{
	atomic_fetch_add(&g_closing, 1);
	t_closing++;
	if (!atomic_load(&g_forking))
		return true;
	rt__lockfree_end();
	return false;
}

void rt__lockfree_end(void)
{
	t_closing--;
	atomic_fetch_sub(&g_closing, 1);
}

bool rt__lockfree_idle(void)
{
	return atomic_load(&g_closing) == 0;
}

long rt__close_lockfree(int fd)
{
	struct rt_ofd *o = rt_fd_get(fd);
	long r = -EAGAIN;

	if (rt_fd_kind(fd) != RT_FD_FILE)
		return -EAGAIN;
	/* --freshness on-close commits at the last close of a written file:
	 * that one waits for the commit, under the lock. */
	if (g_rt.cfg.freshness == RT_FRESH_ON_CLOSE && o->node->vol &&
	    atomic_load(&o->node->wrote))
		return -EAGAIN;
	if (!rt__lockfree_begin())
		return -EAGAIN;
	if (rt_fd_clear_if(fd, RT_FD_FILE, o)) {
		/* The slot's reference is ours now. */
		rt__ofd_unref_lockfree(o);
		r = rt__raw(SYS_close, fd);
	}
	rt__lockfree_end();
	return r;
}

void rt__closes_quiesce(void)
{
	/* Let lock-free closes of other threads finish (new ones take the lock
	 * and wait), so the child never sees one half done. A close this thread
	 * was in when a signal handler forked is not waited for. */
	atomic_store(&g_forking, true);
	while (atomic_load(&g_closing) > t_closing)
		rt__raw0(SYS_sched_yield);
}

void rt__closes_resume(void)
{
	atomic_store(&g_forking, false);
}

/* Track fd as sharing o; drops whatever fd held before. */
void rt__fd_attach(int fd, struct rt_ofd *o)
{
	struct rt_ofd *old;
	enum rt_fd_kind kind;

	old = rt_fd_clear(fd, &kind);
	if (old && (kind == RT_FD_FILE || kind == RT_FD_DIR))
		rt__ofd_unref(old);
	if (o) {
		atomic_fetch_add(&o->refs, 1);
		rt_fd_set(fd, o->kind, o);
	}
}

long rt__shield_close(long fd)
{
	struct rt_guard g;
	long r = rt__close_lockfree((int)fd);

	if (r != -EAGAIN)
		return r;
	if (rt__own_badf(fd))
		return -EBADF;
	rt__lock(&g);
	rt__fd_attach((int)fd, NULL);
	r = rt__raw(SYS_close, fd);
	rt__unlock(&g);
	return r;
}

/* ---- open ----------------------------------------------------------------- */
static long open_dir(struct rt_target *t, int flags, bool link)
{
	struct rt_ofd *o;
	long fd;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT))
		return -EISDIR;
	fd = rt__raw(SYS_openat, t->vol->rootfd, ".", O_RDONLY | O_DIRECTORY |
		     (flags & O_CLOEXEC));
	if (fd < 0)
		return fd;
	if (!rt_fd_in_range((int)fd)) {
		rt__raw(SYS_close, fd);
		return -EMFILE;
	}
	o = calloc(1, sizeof(*o));
	if (!o || !(o->rel = strdup(t->rel))) {
		free(o);
		rt__raw(SYS_close, fd);
		return -ENOMEM;
	}
	o->kind = RT_FD_DIR;
	o->vol = t->vol;
	o->link = link;
	rt__fd_attach((int)fd, o);
	return fd;
}

long rt__shield_open_link(struct rt_target *t, int flags)
{
	struct rt_guard g;
	long fd;

	rt__lock(&g);
	fd = open_dir(t, (flags & ~O_ACCMODE) | O_RDONLY, true);
	rt__unlock(&g);
	return fd;
}

/* n's memfd opened again with rflags. O_DIRECT is kept where tmpfs takes it
 * (Linux 6.6 on, where it changes nothing: F_GETFL shows it, as on a disk
 * file); before, the open goes on without it, served through the cache. */
long rt__memfd_reopen(const struct rt_node *n, int rflags)
{
	long fd = g_procfd >= 0 ? rt__raw(SYS_openat, g_procfd, n->proc + strlen("/proc/self/fd/"),
					   rflags, 0) : rt__raw(SYS_openat, AT_FDCWD, n->proc, rflags, 0);

	return fd == -EINVAL && (rflags & O_DIRECT) ? rt__memfd_reopen(n, rflags & ~O_DIRECT) : fd;
}

/* A new program fd on node n's plaintext: a reopen of its memfd through
 * /proc/self/fd, so the fd has its own offset and flags as an open of the same
 * file would. rflags are the caller's flags reduced to what applies to a memfd.
 * On success the fd holds a reference on n. */
long rt__ofd_open_node(struct rt_node *n, int rflags)
{
	struct rt_ofd *o;
	long fd;

	if (!n->proc[0])
		snprintf(n->proc, sizeof(n->proc), "/proc/self/fd/%d", n->memfd);
	fd = rt__memfd_reopen(n, rflags);
	if (fd < 0)
		return fd;
	o = calloc(1, sizeof(*o));
	if (!o || !rt_fd_in_range((int)fd)) {
		free(o);
		rt__raw(SYS_close, fd);
		return o ? -EMFILE : -ENOMEM;
	}
	o->kind = RT_FD_FILE;
	o->node = n;
	o->append = rflags & O_APPEND;
	o->dsync = rflags & O_DSYNC; /* O_SYNC includes it */
	n->refs++;
	rt__cache_take(n);
	rt__fd_attach((int)fd, o);
	return fd;
}

/* O_SYNC and O_DSYNC stay on the memfd's description although the kernel does
 * nothing with them there: F_GETFL reports them, and an exec'd program's
 * runtime finds them again on the fds it inherits (shield.c). */
#define RFLAGS (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOATIME | O_SYNC | O_DIRECT)

bool rt__open_denied(const struct rt_stat_reply *r, int flags)
{
	const struct rt_cred *c = &rt__cred()->fs;
	struct pf_cred pc = { .uid = c->uid, .gid = c->gid, .groups = c->groups,
			      .ngroups = c->ngroups };
	struct pf_stat ps = { .type = PF_TYPE_REG, .mode = r->mode & 07777, .uid = r->uid,
			      .gid = r->gid };

	return pf_permission(&pc, &ps, rt__open_may(flags)) != 0;
}

/* An open of a file this process holds, answered without the server: the
 * namespace is unchanged since the lookup that named the file. -EAGAIN: ask
 * the server. */
static long open_fast(struct rt_target *t, int flags)
{
	/* Before the lookup (as rt__lookup): at worst older than its answer. */
	uint64_t gen = rt__vol_gen(t->vol);
	struct rt_stat_reply r;
	struct rt_node *n;
	long fd;
	int ret;

	/* O_NOFOLLOW: the cached answer followed a symlink the name may be. */
	if (flags & (O_CREAT | O_TRUNC | O_DIRECTORY | O_PATH | __O_TMPFILE | O_NOFOLLOW))
		return -EAGAIN;
	if (!rt__lookup_cached(t->vol, t->rel, &ret, &r) || ret || !r.id || S_ISDIR(r.mode))
		return -EAGAIN;
	/* The server checked the way there for these credentials (the lookup
	 * is theirs). What the file's mode and owner refuse them, the server
	 * answers (with its errno). */
	if (rt__open_denied(&r, flags))
		return -EAGAIN;
	n = rt__node_by_id(t->vol, r.id);
	if (!n)
		return -EAGAIN;
	fd = rt__ofd_open_node(n, flags & RFLAGS);
	if (fd >= 0)
		rt__fast_put(t->vol, t->rel, gen, n, &r);
	return fd;
}

/* t names a volume path (the handler resolved it and dealt with O_TMPFILE
 * and O_PATH). */
static long open_server(struct rt_target *t, int flags, mode_t mode);

long rt__shield_open(struct rt_target *t, int flags, mode_t mode)
{
	struct rt_guard g;
	long fd = rt__fast_open(t, flags, flags & RFLAGS);

	if (fd != -EAGAIN)
		return fd;
	rt__lock(&g);
	if (t->vfile) {
		fd = rt__vfile_open(t->vfile, flags);
	} else {
		fd = open_server(t, flags, mode);
		/* Out of fds (a reply's fds could not even be received): what
		 * the cache of closed files holds is given back, once. */
		if ((fd == -EMFILE || fd == -EMSGSIZE) && rt__cache_shrink())
			fd = open_server(t, flags, mode);
	}
	rt__unlock(&g);
	return fd == -EMSGSIZE ? -EMFILE : fd;
}

static long open_server(struct rt_target *t, int flags, mode_t mode)
{
	struct rt_msg m = { .op = RT_OP_OPEN, .path = t->rel };
	struct rt_call call;
	struct rt_stat_reply r;
	struct rt_node *n;
	uint64_t gen, vgen;
	long fd;
	int ret;

	fd = open_fast(t, flags);
	if (fd != -EAGAIN)
		return fd;
	if ((flags & O_DIRECTORY) && (flags & __O_TMPFILE) != __O_TMPFILE) {
		ret = rt__lookup(t->vol, t->rel, &r);
		if (ret)
			return ret;
		if (!S_ISDIR(r.mode))
			return -ENOTDIR;
	}
	m.flags = (uint32_t)(flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW |
				      O_TMPFILE));
	if (flags & (O_CREAT | __O_TMPFILE))
		m.mode = mode & 07777 & ~rt__umask();
	/* The generation before the question (as rt__lookup): the reply is
	 * also the lookup of the path, so the next open of it while nothing
	 * changed is open_fast's, with no round trip (was: every open of a
	 * file asked the server, and a known one a second time to release
	 * the reply's hold). */
	gen = rt__vol_gen(t->vol);
	vgen = t->vol->gen;
	ret = rt__vol_call(t->vol, &m, &call);
	if (ret == 0 && call.size == sizeof(r)) {
		memcpy(&r, call.body, sizeof(r));
		/* (An O_TMPFILE reply is a file without a name, not the directory's.) */
		if ((flags & __O_TMPFILE) != __O_TMPFILE)
			rt__lookup_own(t->vol, t->rel, &r.own, vgen, gen, 0, &r);
		if (S_ISDIR(r.mode)) {
			rt__cl_done(t->vol, &call);
			return open_dir(t, flags, false);
		}
		ret = rt__node_from_reply(t->vol, t->rel, &call, &n);
	} else if (ret == 0) {
		ret = -EPROTO;
	}
	rt__cl_done(t->vol, &call);
	if (ret)
		return ret;
	/* The reply's hold is this process's: one per node, dropped when it
	 * goes. A node known already had one. */
	if (n->refs > 0 || n->cached) {
		struct rt_msg rel = { .op = RT_OP_RELEASE, .id = n->id };

		rt__cl_simple(t->vol, &rel, NULL);
	}
	n->refs++;
	fd = rt__ofd_open_node(n, flags & RFLAGS);
	if (fd >= 0)
		rt__fast_put(t->vol, t->rel, gen, n, &r);
	rt__node_unref(n);
	return fd;
}

/* ---- fd calls -------------------------------------------------------------- */
/* Entries from the server: ino (u64), type (u8), name, NUL. */
static int dir_fetch(struct rt_ofd *o)
{
	struct rt_msg m = { .op = RT_OP_READDIR, .a = o->cookie, .path = o->rel };
	struct rt_call call;
	int ret = rt__vol_call(o->vol, &m, &call);

	if (ret == 0 && call.size < 8)
		ret = -EPROTO;
	if (ret == 0) {
		free(o->list);
		o->list = malloc(call.size);
		if (!o->list) {
			ret = -ENOMEM;
		} else {
			memcpy(o->list, call.body, call.size);
			o->list_size = call.size;
			o->list_pos = 8;
			memcpy(&o->cookie, o->list, 8);
			o->eof = o->cookie == 0;
		}
	}
	rt__cl_done(o->vol, &call);
	return ret;
}

static size_t put_dirent(void *buf, size_t size, size_t used, uint64_t ino, uint8_t type,
			 const char *name, uint64_t pos)
{
	size_t nlen = strlen(name);
	size_t reclen = (offsetof(struct dirent64, d_name) + nlen + 1 + 7) & ~(size_t)7;
	struct dirent64 *d = (struct dirent64 *)((char *)buf + used);

	if (used + reclen > size)
		return 0;
	d->d_ino = ino;
	d->d_off = (off_t)(pos + 1);
	d->d_reclen = (unsigned short)reclen;
	d->d_type = type;
	memcpy(d->d_name, name, nlen + 1);
	return reclen;
}

static long getdents_locked(long fd, void *buf, size_t size);

RT_LOCKED(rt__shield_getdents, (long fd, void *buf, size_t size), getdents_locked(fd, buf, size))

static long getdents_locked(long fd, void *buf, size_t size)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	size_t used = 0, k;

	if (rt_fd_kind((int)fd) != RT_FD_DIR)
		return -ENOTDIR;
	while (o->pos < 2) {
		if (o->pos < o->seek_to) { /* after a seekdir: entries before it */
			o->pos++;
			continue;
		}
		k = put_dirent(buf, size, used, 1, DT_DIR, o->pos ? ".." : ".", o->pos);
		if (!k)
			return used ? (long)used : -EINVAL;
		used += k;
		o->pos++;
	}
	for (;;) {
		const uint8_t *e;
		uint64_t ino;
		const char *name;

		if (o->list_pos >= o->list_size) {
			int ret;

			if (o->list && o->eof)
				break;
			ret = dir_fetch(o);
			if (ret)
				return used ? (long)used : ret;
			if (o->list_pos >= o->list_size)
				break;
		}
		e = o->list + o->list_pos;
		if (o->list_size - o->list_pos < 10 ||
		    !memchr(e + 9, '\0', o->list_size - o->list_pos - 9))
			return used ? (long)used : -EPROTO;
		memcpy(&ino, e, 8);
		name = (const char *)e + 9;
		if (o->pos >= o->seek_to) {
			k = put_dirent(buf, size, used, ino, e[8], name, o->pos);
			if (!k)
				return used ? (long)used : -EINVAL;
			used += k;
		}
		o->pos++;
		o->list_pos += 9 + strlen(name) + 1;
	}
	return (long)used;
}

static long dup_locked(long nr, const long a[6]);

RT_LOCKED(rt__shield_dup, (long nr, const long a[6]), dup_locked(nr, a))

static long dup_locked(long nr, const long a[6])
{
	long fd;
	struct rt_ofd *o;

	if (rt__own_badf(a[0]))
		return -EBADF;
	if (nr != SYS_dup && rt__own_badf(a[1]))
		return -EBADF;
	if (nr == SYS_dup2 && a[0] == a[1])
		return rt__raw(SYS_dup2, a[0], a[1]);
	o = rt_fd_get((int)a[0]);
	if (rt_fd_kind((int)a[0]) == RT_FD_NONE)
		o = NULL;
	fd = rt__raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (fd < 0)
		return fd;
	if (o && !rt_fd_in_range((int)fd)) {
		rt__raw(SYS_close, fd);
		return -EMFILE;
	}
	if (o && !rt__ofd_tryref(o)) {
		/* Another thread closed a[0] (lock-free) after the kernel dup'd
		 * it: the dup lost the race, as if it came second. */
		rt__fd_attach((int)fd, NULL);
		rt__raw(SYS_close, fd);
		return -EBADF;
	}
	rt__fd_attach((int)fd, o);
	if (o)
		atomic_fetch_sub(&o->refs, 1); /* rt__fd_attach took one more */
	else if (rt_fd_kind((int)a[0]) == RT_FD_PROCFD && rt_fd_in_range((int)fd))
		rt_fd_set((int)fd, RT_FD_PROCFD, NULL); /* listings of the copy filtered too */
	return fd;
}

static long close_range_locked(unsigned first, unsigned last, unsigned flags);

RT_LOCKED(rt__shield_close_range, (unsigned first, unsigned last, unsigned flags),
	  close_range_locked(first, last, flags))

static long close_range_locked(unsigned first, unsigned last, unsigned flags)
{
	unsigned from = first;

	if (flags & CLOSE_RANGE_CLOEXEC) {
		/* Owned fds are close-on-exec already. */
		return rt__raw(SYS_close_range, first, last, flags);
	}
	for (unsigned fd = first; fd <= last && fd < RT_FD_MAX; fd++) {
		enum rt_fd_kind k = rt_fd_kind((int)fd);

		if (k == RT_FD_OWNED) {
			if (fd > from)
				rt__raw(SYS_close_range, from, fd - 1, flags);
			from = fd + 1;
		} else if (k != RT_FD_NONE) {
			rt__fd_attach((int)fd, NULL);
		}
		if (fd == UINT32_MAX)
			break;
	}
	if (from <= last && from >= first)
		return rt__raw(SYS_close_range, from, last, flags);
	return 0;
}

/* fsync's commit of a file fd (o referenced by the caller): also what a write
 * on an O_DSYNC / O_SYNC fd, or with RWF_DSYNC / RWF_SYNC, waits for. */
long rt__ofd_sync(struct rt_ofd *o)
{
	/* on-close / on-exit: the data is saved later, by choice. */
	if (g_rt.cfg.freshness != RT_FRESH_EVERY_FSYNC || !o->node->vol)
		return 0;
	return rt__node_commit(o->node) ? -EIO : 0;
}

/* No lock: a commit may take a while, and the fsyncs of other threads join
 * the same commit in the server meanwhile. */
long rt__shield_fsync(long fd)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	bool commit = g_rt.cfg.freshness == RT_FRESH_EVERY_FSYNC;
	long r;

	rt__child_check();
	switch (rt_fd_kind((int)fd)) {
	case RT_FD_FILE:
		if (!rt__ofd_tryref(o))
			return -EBADF;
		r = rt__ofd_sync(o);
		rt__ofd_unref_lockfree(o);
		return r;
	case RT_FD_DIR: {
		/* The names in the directory: a commit of the namespace. */
		struct rt_msg m = { .op = RT_OP_SYNCALL, .flags = RT_SYNC_NAMESPACE,
				    .path = o->rel };

		return commit && rt__vol_simple(o->vol, &m) ? -EIO : 0;
	}
	default:
		return -EBADF;
	}
}

long rt__shield_fchmod(long fd, mode_t mode)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_msg m = { .op = RT_OP_CHMOD, .mode = mode & 07777, .path = "" };
	struct rt_guard g;
	int ret = 0;

	if (rt_fd_kind((int)fd) != RT_FD_FILE)
		return 0;
	rt__lock(&g);
	if (!o->node->vol)
		o->node->mode = mode & 07777;
	else if (o->node->mode != (mode & 07777) && (ret = rt__node_call(o->node, &m)) == 0)
		o->node->mode = mode & 07777;
	rt__unlock(&g);
	return ret;
}

void rt__shield_setfl(long fd, long flags)
{
	struct rt_ofd *o = rt_fd_get((int)fd);

	if (rt_fd_kind((int)fd) == RT_FD_FILE)
		o->append = flags & O_APPEND;
}

/* Under the lock: a rename in another thread replaces a node's rel. */
bool rt__shield_fd_path(int fd, char *out, size_t out_size)
{
	struct rt_ofd *o = rt_fd_get(fd);
	struct rt_guard g;
	size_t n = out_size;

	rt__lock(&g);
	switch (rt_fd_kind(fd)) {
	case RT_FD_DIR:
		n = (size_t)snprintf(out, out_size, "%s%s%s", o->vol->cfg->mount,
				     o->rel[0] ? "/" : "", o->rel);
		break;
	case RT_FD_FILE:
		if (!o->node->vol) /* injected: its absolute path */
			n = (size_t)snprintf(out, out_size, "%s", o->node->rel);
		else
			n = (size_t)snprintf(out, out_size, "%s/%s", o->node->vol->cfg->mount,
					     o->node->rel);
		break;
	default:
		break;
	}
	rt__unlock(&g);
	return n < out_size;
}

/* lseek on a directory fd. The listing's position is what getdents gives as
 * d_off: the index of the next entry ("." and ".." first), so telldir/seekdir
 * cookies stay valid. Every seek drops what was fetched: the next getdents
 * lists the directory anew from the server and skips the entries before the
 * position (the server's cookies are its own; a rewind to 0 skips nothing). */
static long seekdir_locked(long fd, int64_t off, int whence)
{
	struct rt_ofd *o = rt_fd_get((int)fd);

	if (rt_fd_kind((int)fd) != RT_FD_DIR)
		return -EBADF;
	if (whence == SEEK_CUR) { /* where the listing is, or is to resume */
		uint64_t at = o->pos > o->seek_to ? o->pos : o->seek_to;

		if (off == 0)
			return (long)at;
		off += (int64_t)at;
	} else if (whence != SEEK_SET)
		return -EINVAL;
	if (off < 0)
		return -EINVAL;
	free(o->list);
	o->list = NULL;
	o->list_size = o->list_pos = 0;
	o->eof = false;
	o->cookie = 0;
	o->pos = 0;
	o->seek_to = (uint64_t)off;
	return (long)off;
}

RT_LOCKED(rt__shield_seekdir, (long fd, int64_t off, int whence), seekdir_locked(fd, off, whence))

void rt__shield_fd_describe(int fd, char *out, size_t out_size)
{
	struct rt_ofd *o = rt_fd_get(fd);

	if (rt_fd_kind(fd) == RT_FD_FILE && !o->node->vol)
		snprintf(out, out_size, "fd %d (%s)", fd, o->node->rel);
	else if (rt_fd_kind(fd) == RT_FD_FILE)
		snprintf(out, out_size, "fd %d (%s/%s)", fd, o->node->vol->cfg->mount,
			 o->node->rel);
	else if (rt_fd_kind(fd) == RT_FD_DIR)
		snprintf(out, out_size, "fd %d (%s/%s)", fd, o->vol->cfg->mount, o->rel);
	else
		snprintf(out, out_size, "fd %d", fd);
}

bool rt__shield_dir_target(int fd, struct rt_target *t)
{
	struct rt_ofd *o = rt_fd_get(fd);

	if (rt_fd_kind(fd) != RT_FD_DIR)
		return false;
	if ((size_t)snprintf(t->abs, sizeof(t->abs), "%s%s%s", o->vol->cfg->mount,
			     o->rel[0] ? "/" : "", o->rel) >= sizeof(t->abs))
		return false;
	t->vfile = NULL;
	t->vol = o->vol;
	t->rel = t->abs + strlen(t->abs) - strlen(o->rel);
	t->err = 0;
	t->slash = false;
	t->last = RT_LAST_NORM;
	t->proc = RT_PROC_NONE;
	t->procfd = -1;
	return true;
}

long rt__shield_syncfs(long fd)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_vol *v = rt_fd_kind((int)fd) == RT_FD_FILE ? o->node->vol :
			   rt_fd_kind((int)fd) == RT_FD_DIR ? o->vol : NULL;
	struct rt_msg m = { .op = RT_OP_SYNCALL };

	if (!v)
		return rt__raw(SYS_syncfs, fd);
	return rt__vol_simple(v, &m) ? -EIO : 0;
}
