/* kiln runtime: calls on fds (close, close_range, dup*, fcntl, fsync) and the
 * runtime's own fds, which the program must never see or touch. */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* ---- the runtime's own fds ------------------------------------------------ */
int rt__own_base(long *limit)
{
	struct rlimit rl;
	long lim = 1024;

	if (rt__raw(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY)
		lim = (long)rl.rlim_cur;
	if (lim > RT_FD_MAX)
		lim = RT_FD_MAX;
	*limit = lim;
	/* The top quarter below the soft limit (at least 256 fds when there is
	 * room); apps allocate from the bottom. */
	if (lim >= 1024)
		return (int)(lim - (lim / 4 > 256 ? lim / 4 : 256));
	return (int)(lim / 2);
}

int rt__own_fd(int fd)
{
	long nfd = rt__raw(SYS_fcntl, fd, F_DUPFD_CLOEXEC, g_rt.owned_base);

	rt__raw(SYS_close, fd);
	if (nfd < 0)
		return (int)nfd;
	if (!rt_fd_in_range((int)nfd)) {
		rt__raw(SYS_close, nfd);
		return -EMFILE;
	}
	rt_fd_set((int)nfd, RT_FD_OWNED, NULL);
	return (int)nfd;
}

void rt__own_close(int fd)
{
	if (fd < 0)
		return;
	rt_fd_clear(fd, NULL);
	rt__raw(SYS_close, fd);
}

/* ---- handlers ------------------------------------------------------------- */
long rt__sys_close(long nr, const long a[6])
{
	return rt__shield_close(a[0]);
}

long rt__sys_close_range(long nr, const long a[6])
{
	return rt__shield_close_range((unsigned)a[0], (unsigned)a[1], (unsigned)a[2]);
}

/* dup, dup2, dup3. */
long rt__sys_dup(long nr, const long a[6])
{
	return rt__shield_dup(nr, a);
}

/* Locks and flags act on the kernel's description (the memfd) natively; only
 * F_DUPFD* make a new fd the shield must know. */
long rt__sys_fcntl(long nr, const long a[6])
{
	long r;

	if (rt__own_badf(a[0]))
		return -EBADF;
	if (a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC)
		return rt__shield_dup(nr, a);
	r = rt__raw(SYS_fcntl, a[0], a[1], a[2]);
	if (r == 0 && a[1] == F_SETFL)
		rt__shield_setfl(a[0], a[2]); /* O_APPEND: the shield's append path */
	return r;
}

long rt__sys_fsync(long nr, const long a[6])
{
	return rt__shield_fsync(a[0]);
}

long rt__sys_fdatasync(long nr, const long a[6])
{
	return rt__shield_fsync(a[0]);
}
