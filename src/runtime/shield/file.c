/* kiln runtime, file shield: open file descriptions. The program's fd on a
 * protected file is its own open of the node's memfd; the fd table (fdtable.c)
 * maps it to a struct rt_ofd, shared by its dup'd copies, which holds a
 * reference on the node (or, for a directory, the listing). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

/* Descriptions whose last fd was closed without the lock (rt__close_lockfree),
 * released under the lock by the next call that takes it. */
static _Atomic(struct rt_ofd *) g_released;
/* Lock-free closes in progress, and a fork waiting for them (see
 * rt__shield_before_fork). */
static atomic_int g_closing;
static atomic_bool g_forking;
static RT_TLS int t_closing;

/* ---- open file descriptions ------------------------------------------------ */
static void ofd_release(struct rt_ofd *o)
{
	if (o->kind == RT_FD_FILE)
		rt__node_unref(o->node);
	if (o->names)
		pf_names_free(o->names, o->count);
	free(o->rel);
	free(o);
}

void rt__ofd_unref(struct rt_ofd *o)
{
	if (o && --o->refs == 0)
		ofd_release(o);
}

/* Take a reference on a description found in the fd table, unless its last fd
 * was closed meanwhile (rt__close_lockfree owns it then). */
static bool ofd_tryref(struct rt_ofd *o)
{
	int r = atomic_load(&o->refs);

	while (r > 0)
		if (atomic_compare_exchange_weak(&o->refs, &r, r + 1))
			return true;
	return false;
}

/* ---- closes without the lock ----------------------------------------------
 * nginx opens, reads and closes a file per request. The close of an fd on a
 * file this process never wrote needs neither pf nor the volume lock, only
 * the fd table and the node's reference count: the fd's slot is taken with
 * one compare-and-swap, and a description whose last fd this was goes to
 * g_released, which the next caller of the lock drains (rt__released_take). No
 * signal mask change, no mutex: signals may arrive at any point, and a
 * handler that calls into the shield finds consistent state. */
static void release_later(struct rt_ofd *o)
{
	struct rt_ofd *head = atomic_load(&g_released);

	do
		o->next_released = head;
	while (!atomic_compare_exchange_weak(&g_released, &head, o));
}

/* Under g_shield_lock: release what rt__close_lockfree left. With all == false, those of
 * written files (their release saves them, which needs the volume lock and a
 * current pf) are returned instead. */
struct rt_ofd *rt__released_take(bool all)
{
	struct rt_ofd *o = atomic_exchange(&g_released, NULL), *next, *held = NULL;

	for (; o; o = next) {
		next = o->next_released;
		if (!all && o->kind == RT_FD_FILE && o->node->vol && o->node->writable) {
			o->next_released = held;
			held = o;
			continue;
		}
		ofd_release(o);
	}
	return held;
}

void rt__released_put(struct rt_ofd *list)
{
	struct rt_ofd *next;

	for (; list; list = next) {
		next = list->next_released;
		ofd_release(list);
	}
}

/* Under g_shield_lock, without the volume lock: release what needs no save; keep the
 * rest for the next rt__vols_lock. */
void rt__released_drain_ro(void)
{
	struct rt_ofd *held = rt__released_take(false), *next;

	for (; held; held = next) {
		next = held->next_released;
		release_later(held);
	}
}

long rt__close_lockfree(int fd)
{
	struct rt_ofd *o = rt_fd_get(fd);
	long r = -EAGAIN;

	if (rt_fd_kind(fd) != RT_FD_FILE)
		return -EAGAIN;
	atomic_fetch_add(&g_closing, 1);
	t_closing++;
	if (atomic_load(&g_forking) || !rt_fd_clear_if(fd, RT_FD_FILE, o))
		goto out;
	/* The slot's reference is ours now. */
	if (atomic_fetch_sub(&o->refs, 1) == 1) {
		if (o->node->vol && o->node->writable) {
			struct rt_guard g;

			/* Written: saved now, under the locks (--freshness on-close). */
			rt__enter(&g);
			pthread_mutex_lock(&g_shield_lock);
			r = rt__vols_lock();
			ofd_release(o);
			rt__vols_unlock(false);
			pthread_mutex_unlock(&g_shield_lock);
			rt__leave(&g);
			if (r) {
				rt__raw(SYS_close, fd);
				r = -EIO;
				goto out;
			}
		} else {
			release_later(o);
		}
	}
	r = rt__raw(SYS_close, fd);
out:
	t_closing--;
	atomic_fetch_sub(&g_closing, 1);
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

/* Track fd as sharing o; drops whatever newfd held before. */
void rt__fd_attach(int fd, struct rt_ofd *o)
{
	struct rt_ofd *old;
	enum rt_fd_kind kind;

	old = rt_fd_clear(fd, &kind);
	if (old && (kind == RT_FD_FILE || kind == RT_FD_DIR))
		rt__ofd_unref(old);
	if (o) {
		o->refs++;
		rt_fd_set(fd, o->kind, o);
	}
}

static int fd_detach(int fd)
{
	enum rt_fd_kind kind;
	struct rt_ofd *o = rt_fd_clear(fd, &kind);

	if (o && (kind == RT_FD_FILE || kind == RT_FD_DIR))
		rt__ofd_unref(o);
	return 0;
}

static long close_locked(long fd)
{
	if (rt__own_badf(fd))
		return -EBADF;
	fd_detach((int)fd);
	return rt__raw(SYS_close, fd);
}

/* ---- open ----------------------------------------------------------------- */
/* ---- open ----------------------------------------------------------------- */
static long open_dir(struct rt_target *t, int flags)
{
	struct rt_ofd *o;
	long fd;

	if ((flags & O_ACCMODE) != O_RDONLY)
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
	rt__fd_attach((int)fd, o);
	return fd;
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
	if (g_procfd >= 0)
		fd = rt__raw(SYS_openat, g_procfd, n->proc + strlen("/proc/self/fd/"), rflags, 0);
	else
		fd = rt__raw(SYS_openat, AT_FDCWD, n->proc, rflags, 0);
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
	n->refs++;
	rt__fd_attach((int)fd, o);
	return fd;
}

/* t names a volume path (the handler resolved it and dealt with O_TMPFILE
 * and O_PATH). */
static long open_locked(struct rt_target *t, int flags, mode_t mode)
{
	struct kiln_err err = { 0 };
	struct pf_stat st;
	struct rt_node *n;
	bool exists;
	int ret, rflags;
	long fd;

	ret = pf_stat(t->vol->pf, t->rel, &st, &err);
	if (ret && ret != -ENOENT && ret != -ENOTDIR) {
		rt__say_pf(t->vol->cfg->mount, t->rel, ret, &err);
		return ret <= -KILN_EBASE ? -EIO : ret;
	}
	exists = ret == 0;
	if (exists && (flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (exists && st.is_dir)
		return open_dir(t, flags);
	if (!exists && !(flags & O_CREAT))
		return ret;
	if (flags & O_DIRECTORY)
		return exists ? -ENOTDIR : -ENOENT;
	n = rt__node_find(t->vol, t->rel);
	if (!n) {
		ret = rt__node_open(t->vol, t->rel, flags, mode, &n);
		if (ret)
			return ret;
	}
	rt__cache_take(n);
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
		ret = rt__node_keep_synced(n);
		if (ret) {
			n->refs++;
			rt__node_unref(n); /* back to the cache */
			return ret;
		}
		n->writable = true;
	}
	rflags = flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_TRUNC | O_NOATIME);
	/* Hold n across the reopen: a node made just now is released (flushed,
	 * cached or freed) by this unref when the open fails. */
	n->refs++;
	fd = rt__ofd_open_node(n, rflags);
	rt__node_unref(n);
	return fd;
}

/* ---- fd calls -------------------------------------------------------------- */
static long getdents_locked(long fd, void *buf, size_t size)
{
	struct kiln_err err = { 0 };
	struct rt_ofd *o = rt_fd_get((int)fd);
	size_t used = 0;

	if (rt_fd_kind((int)fd) != RT_FD_DIR)
		return -ENOTDIR;
	if (!o->names && o->pos == 0) {
		int ret = pf_readdir(o->vol->pf, o->rel, &o->names, &o->count, &err);

		if (ret) {
			struct rt_target t = { .vol = o->vol, .rel = o->rel };

			return rt__pf_result(&t, ret, &err);
		}
	}
	while (o->pos < o->count + 2) {
		const char *name = o->pos == 0 ? "." : o->pos == 1 ? ".." : o->names[o->pos - 2];
		size_t nlen = strlen(name);
		size_t reclen = (offsetof(struct dirent64, d_name) + nlen + 1 + 7) & ~(size_t)7;
		struct dirent64 *d = (struct dirent64 *)((char *)buf + used);

		if (used + reclen > size)
			break;
		d->d_ino = o->pos < 2 ? 1 : rt__ino_of(name);
		d->d_off = (off_t)(o->pos + 1);
		d->d_reclen = (unsigned short)reclen;
		d->d_type = o->pos < 2 ? DT_DIR : DT_UNKNOWN;
		memcpy(d->d_name, name, nlen + 1);
		used += reclen;
		o->pos++;
	}
	if (used == 0 && o->pos < o->count + 2)
		return -EINVAL;
	return (long)used;
}

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
	if (o && !ofd_tryref(o)) {
		/* Another thread closed a[0] (lock-free) after the kernel dup'd
		 * it: the dup lost the race, as if it came second. */
		fd_detach((int)fd);
		rt__raw(SYS_close, fd);
		return -EBADF;
	}
	rt__fd_attach((int)fd, o);
	if (o)
		o->refs--; /* rt__fd_attach took one more */
	return fd;
}

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
			fd_detach((int)fd);
		}
		if (fd == UINT32_MAX)
			break;
	}
	if (from <= last && from >= first)
		return rt__raw(SYS_close_range, from, last, flags);
	return 0;
}

static long fsync_locked(long fd)
{
	struct kiln_err err = { 0 };
	struct rt_ofd *o = rt_fd_get((int)fd);
	bool commit = g_rt.cfg.freshness == RT_FRESH_EVERY_FSYNC;

	switch (rt_fd_kind((int)fd)) {
	case RT_FD_FILE:
		/* on-close / on-exit: the data is saved later, by choice. */
		if (!commit)
			return 0;
		if (rt__node_flush(o->node, true))
			return -EIO;
		/* Unchanged data commits nothing above, but the file's own name
		 * (its creation, a rename) may still be only published: an fsync
		 * makes it durable too. A no-op when nothing is pending. */
		if (o->node->pf && !o->node->unlinked && pf_fsync(o->node->pf, &err)) {
			rt__say_pf(o->node->vol->cfg->mount, o->node->rel, -EIO, &err);
			return -EIO;
		}
		return 0;
	case RT_FD_DIR:
		if (commit && pf_fsync_dir(o->vol->pf, &err)) {
			rt__say_pf(o->vol->cfg->mount, o->rel, -EIO, &err);
			return -EIO;
		}
		return 0;
	default:
		return -EBADF;
	}
}


static long fchmod_locked(long fd, mode_t mode)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_target t;

	if (rt_fd_kind((int)fd) != RT_FD_FILE)
		return 0;
	if (!o->node->vol) {
		o->node->mode = mode & 07777;
		return 0;
	}
	t.vol = o->node->vol;
	t.rel = o->node->rel;
	return rt__chmod_locked(&t, mode);
}

static bool dir_path_locked(int fd, char *out, size_t out_size)
{
	struct rt_ofd *o = rt_fd_get(fd);

	if (rt_fd_kind(fd) != RT_FD_DIR)
		return false;
	return (size_t)snprintf(out, out_size, "%s/%s", o->vol->cfg->mount, o->rel) < out_size;
}

static void fd_describe_locked(int fd, char *out, size_t out_size)
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

static bool dir_target_locked(int fd, struct rt_target *t)
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
	return true;
}

/* ---- operations: each under the shield's locks ----------------------------- */
/* A read-only open of a file this process holds decrypted needs neither the
 * volume lock nor pf while the volume is as this process last saw it (a web
 * server opens the same files again and again). Under g_shield_lock;
 * -EAGAIN: take the full path. */
static long open_fast(struct rt_target *t, int flags)
{
	struct rt_node *n;
	long fd;

	if ((flags & O_ACCMODE) != O_RDONLY ||
	    (flags & (O_CREAT | O_TRUNC | O_DIRECTORY | O_PATH | __O_TMPFILE)))
		return -EAGAIN;
	if (!rt__fast_ok(t))
		return -EAGAIN;
	n = rt__node_find(t->vol, t->rel);
	if (!n || !n->pf)
		return -EAGAIN;
	fd = rt__ofd_open_node(n, flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK |
					   O_NOATIME));
	if (fd >= 0)
		rt__cache_take(n);
	return fd;
}

long rt__shield_open(struct rt_target *t, int flags, mode_t mode)
{
	struct rt_hold h;
	long r;

	rt__hold_light(&h);
	r = t->vfile ? rt__vfile_open(t->vfile, flags) : open_fast(t, flags);
	rt__release_light(&h);
	if (r != -EAGAIN)
		return r;
	r = rt__hold(&h);
	if (r == 0)
		r = open_locked(t, flags, mode);
	rt__release(&h);
	return r;
}

long rt__shield_close(long fd)
{
	struct rt_hold h;
	long r = rt__close_lockfree((int)fd);

	if (r != -EAGAIN)
		return r;
	r = rt__hold(&h);
	if (r == 0)
		r = close_locked(fd);
	rt__release(&h);
	return r;
}

long rt__shield_getdents(long fd, void *buf, size_t size)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = getdents_locked(fd, buf, size);
	rt__release(&h);
	return r;
}

long rt__shield_dup(long nr, const long a[6])
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = dup_locked(nr, a);
	rt__release(&h);
	return r;
}

long rt__shield_close_range(unsigned first, unsigned last, unsigned flags)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = close_range_locked(first, last, flags);
	rt__release(&h);
	return r;
}

long rt__shield_fsync(long fd)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = fsync_locked(fd);
	rt__release(&h);
	return r;
}

long rt__shield_fchmod(long fd, mode_t mode)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = fchmod_locked(fd, mode);
	rt__release(&h);
	return r;
}

/* The lookups below read a description that a close in another thread may
 * release: under g_shield_lock, which that release takes. */
bool rt__shield_dir_path(int fd, char *out, size_t out_size)
{
	struct rt_hold h;
	bool ok;

	rt__hold_light(&h);
	ok = dir_path_locked(fd, out, out_size);
	rt__release_light(&h);
	return ok;
}

bool rt__shield_dir_target(int fd, struct rt_target *t)
{
	struct rt_hold h;
	bool ok;

	rt__hold_light(&h);
	ok = dir_target_locked(fd, t);
	rt__release_light(&h);
	return ok;
}

void rt__shield_fd_describe(int fd, char *out, size_t out_size)
{
	struct rt_hold h;

	rt__hold_light(&h);
	fd_describe_locked(fd, out, out_size);
	rt__release_light(&h);
}
