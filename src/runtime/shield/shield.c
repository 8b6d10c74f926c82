/* kiln runtime, file shield: the locks every operation takes, start-up, exit
 * and fork. See internal.h for the design. */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

pthread_mutex_t g_shield_lock = PTHREAD_MUTEX_INITIALIZER;
int g_procfd = -1;
uid_t g_uid;
gid_t g_gid;

/* ---- the locks of an operation -------------------------------------------- */
int rt__hold(struct rt_hold *h)
{
	rt__enter(&h->g);
	pthread_mutex_lock(&g_shield_lock);
	return rt__vols_lock() ? -EIO : 0;
}

void rt__release(struct rt_hold *h)
{
	rt__vols_unlock(false);
	pthread_mutex_unlock(&g_shield_lock);
	rt__leave(&h->g);
}

void rt__hold_light(struct rt_hold *h)
{
	rt__enter(&h->g);
	pthread_mutex_lock(&g_shield_lock);
}

void rt__release_light(struct rt_hold *h)
{
	pthread_mutex_unlock(&g_shield_lock);
	rt__leave(&h->g);
}

/* The volume t lies in has not changed since this process last looked (no
 * other process committed or published): what this process holds is current
 * and the fast paths may answer without the volume lock. Under
 * g_shield_lock. */
bool rt__fast_ok(struct rt_target *t)
{
	rt__released_drain_ro();
	rt__cache_drop_inherited();
	if (!t->vol || t->vfile || !t->vol->pf)
		return false;
	t->vol->want_watch = true; /* the load that follows arms the watch */
	return rt__vol_unchanged(t->vol);
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
