/* kiln runtime, file shield: the entry point the system-call handlers go
 * through (fast paths, then the locks around the handler), start-up, exit and
 * fork. See internal.h for the design. */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"
#include "runtime/sys/sys.h"

pthread_mutex_t g_shield_lock = PTHREAD_MUTEX_INITIALIZER;
int g_procfd = -1;
uid_t g_uid;
gid_t g_gid;

/* The fast paths of rt__shield_call, under g_shield_lock; -EAGAIN: take the full path. */
static long fast_call(long nr, const long a[6])
{
	struct rt_target t;
	struct rt_node *n;
	long dirfd = nr == SYS_open ? AT_FDCWD : a[0];
	const char *path = (const char *)(nr == SYS_open ? a[0] : a[1]);
	int flags = (int)(nr == SYS_open ? a[1] : a[2]);
	long fd;

	rt__released_drain_ro();
	rt__cache_drop_inherited();
	if ((flags & O_ACCMODE) != O_RDONLY ||
	    (flags & (O_CREAT | O_TRUNC | O_DIRECTORY | O_PATH | __O_TMPFILE)))
		return -EAGAIN;
	if (!rt__resolve(dirfd, path, &t) || t.vfile)
		return -EAGAIN;
	t.vol->want_watch = true; /* the load that follows arms the watch */
	n = rt__node_find(t.vol, t.rel);
	if (!n || !n->pf)
		return -EAGAIN;
	if (!rt__vol_unchanged(t.vol))
		return -EAGAIN;
	fd = rt__ofd_open_node(n, flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOATIME));
	if (fd >= 0)
		rt__cache_take(n);
	return fd;
}

/* stat and access of a volume path need neither the volume lock nor a
 * publish, as long as no other process changed the volume (sqlite looks for a
 * hot journal before every statement). Under g_shield_lock; -EAGAIN: full path. */
static long fast_stat(long nr, const long a[6])
{
	long dirfd = AT_FDCWD;
	const char *path;
	struct stat *out = NULL;
	struct rt_target t;
	int mode = 0;

	switch (nr) {
	case SYS_stat:
	case SYS_lstat:
		path = (const char *)a[0];
		out = (struct stat *)a[1];
		break;
	case SYS_newfstatat:
		dirfd = a[0];
		path = (const char *)a[1];
		out = (struct stat *)a[2];
		break;
	case SYS_access:
		path = (const char *)a[0];
		mode = (int)a[1];
		break;
	case SYS_faccessat:
	case SYS_faccessat2:
		dirfd = a[0];
		path = (const char *)a[1];
		mode = (int)a[2];
		break;
	default:
		return -EAGAIN;
	}
	rt__released_drain_ro();
	rt__cache_drop_inherited();
	if (g_vfiles || !path || !path[0] || !rt__resolve(dirfd, path, &t) || !t.vol->pf)
		return -EAGAIN;
	if (!rt__vol_unchanged(t.vol))
		return -EAGAIN;
	return out ? rt__shield_stat(t.vol, t.rel, out) : rt__shield_access(&t, mode);
}

/* Under the locks: calls on injected files are answered from memory,
 * anything else by its handler. */
static long locked_call(long nr, rt_handler_fn fn, const long a[6])
{
	const struct rt_syscall *s = &g_rt_syscalls[nr];

	if (g_vfiles && s->paths[0][1] >= 0) {
		struct rt_target t;
		int d = s->paths[0][0], p = s->paths[0][1];

		rt__resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t);
		if (t.vfile)
			return rt__vfile_call(nr, a, t.vfile);
	}
	return fn(nr, a);
}

long rt__shield_call(long nr, rt_handler_fn fn, const long a[6])
{
	struct rt_guard g;
	long r;

	/* Calls that need neither the volume nor the lock (sqlite issues them by
	 * the thousand: fcntl locks and fstat on its open database). */
	if (nr == SYS_fcntl && a[1] != F_DUPFD && a[1] != F_DUPFD_CLOEXEC)
		return rt__own_badf(a[0]) ? -EBADF : rt__raw(SYS_fcntl, a[0], a[1], a[2]);
	if (nr == SYS_fstat && rt_fd_kind((int)a[0]) == RT_FD_FILE)
		return rt__shield_fstat(a[0], (struct stat *)a[1]);
	if (nr == SYS_close) {
		r = rt__close_lockfree((int)a[0]);
		if (r != -EAGAIN)
			return r;
	}
	/* Reads of files this process already holds decrypted, and stat/access
	 * of volume paths, need neither the volume lock nor pf, as long as no
	 * other process changed the volume. */
	if (nr == SYS_openat || nr == SYS_open || nr == SYS_stat || nr == SYS_lstat ||
	    nr == SYS_newfstatat || nr == SYS_access || nr == SYS_faccessat ||
	    nr == SYS_faccessat2) {
		rt__enter(&g);
		pthread_mutex_lock(&g_shield_lock);
		r = nr == SYS_openat || nr == SYS_open ? fast_call(nr, a) : fast_stat(nr, a);
		pthread_mutex_unlock(&g_shield_lock);
		rt__leave(&g);
		if (r != -EAGAIN)
			return r;
	}

	rt__enter(&g);
	pthread_mutex_lock(&g_shield_lock);
	r = rt__vols_lock();
	if (r == 0)
		r = locked_call(nr, fn, a);
	else
		r = -EIO;
	rt__vols_unlock(false);
	pthread_mutex_unlock(&g_shield_lock);
	rt__leave(&g);
	return r;
}

/* ---- fork -------------------------------------------------------------------
 * The shield lock is taken first so that the child never inherits it held by
 * a thread that does not exist there. */
void rt__shield_before_fork(void)
{
	pthread_mutex_lock(&g_shield_lock);
	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->refs > 0)
			n->shared = true;
	rt__closes_quiesce();
}

void rt__shield_parent_after_fork(void)
{
	rt__closes_resume();
	pthread_mutex_unlock(&g_shield_lock);
}

void rt__shield_after_fork(void)
{
	rt__closes_resume();
	rt__cache_after_fork();
	pthread_mutex_unlock(&g_shield_lock);
	if (g_procfd >= 0) {
		/* The inherited one lists the parent's fds. */
		long fd = rt__raw(SYS_openat, AT_FDCWD, "/proc/self/fd",
				  O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			rt__raw(SYS_dup3, fd, g_procfd, O_CLOEXEC);
			rt__raw(SYS_close, fd);
		} else {
			rt__own_close(g_procfd);
			g_procfd = -1;
		}
	}
	rt__vols_after_fork();
}

/* ---- lifecycle ------------------------------------------------------------- */
int rt__shield_init(struct kiln_err *err)
{
	long fd_limit;
	int ret = 0;

	g_rt.owned_base = rt__own_base(&fd_limit);
	ret = rt__cache_init(fd_limit, err);
	if (ret)
		return ret;
	if (g_rt.cfg.n_volumes) {
		long fd = rt__raw(SYS_openat, AT_FDCWD, "/proc/self/fd",
				  O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0)
			g_procfd = rt__own_fd((int)fd);
	}
	g_uid = (uid_t)rt__raw0(SYS_getuid);
	g_gid = (gid_t)rt__raw0(SYS_getgid);
	ret = rt__vols_init(err);
	if (ret)
		return ret;
	g_rt.shield_on = g_nvols > 0;
	return 0;
}

void rt__shield_exit(void)
{
	struct rt_guard g;

	if (!g_rt.shield_on)
		return;
	rt__enter(&g);
	pthread_mutex_lock(&g_shield_lock);
	rt__vols_exit();
	pthread_mutex_unlock(&g_shield_lock);
	rt__leave(&g);
}
