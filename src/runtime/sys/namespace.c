/* kiln runtime: calls on names: rename, unlink, rmdir, mkdir, truncate. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* 1: (dirfd, path) names nothing protected, pass the call on; 0: t names a
 * volume path; else the error (an injected file is never changed). */
static long target(long nr, long dirfd, const char *path, struct rt_target *t)
{
	if (!rt__resolve(dirfd, path, t) && !t->vfile)
		return 1;
	if (t->vfile)
		return rt__vfile_refuse(nr, t);
	return 0;
}

static long unlink_at(long nr, long dirfd, const char *path, int flags)
{
	struct rt_target t;
	long r = target(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_unlinkat, dirfd, path, flags);
	return r ? r : rt__shield_unlink(&t, flags);
}

static long rename_at(long nr, long d1, const char *from, long d2, const char *to,
		      unsigned flags)
{
	struct rt_target a, b;
	long ra, rb;

	/* The kernel's answer for a NULL path, not "not in the same volume". */
	if (!from || !to)
		return -EFAULT;
	ra = target(nr, d1, from, &a);
	rb = target(nr, d2, to, &b);
	if (ra == 1 && rb == 1)
		return rt__raw(SYS_renameat2, d1, from, d2, to, flags);
	if (ra < 0 || rb < 0)
		return ra < 0 ? ra : rb;
	if (ra == 1 || rb == 1 || a.vol != b.vol)
		return -EXDEV;
	if (flags & ~RENAME_NOREPLACE) {
		rt__say("renameat2 with flags 0x%x on %s: not supported in volumes (ENOTSUP)",
			flags, a.abs);
		return -ENOTSUP;
	}
	return rt__shield_rename(&a, &b, flags);
}

static long mkdir_at(long nr, long dirfd, const char *path, mode_t mode)
{
	struct rt_target t;
	long r = target(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_mkdirat, dirfd, path, mode);
	return r ? r : rt__shield_mkdir(&t, mode);
}

long rt__sys_truncate(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct rt_target t;
	long r = target(nr, AT_FDCWD, path, &t);

	if (r == 1)
		return rt__raw(SYS_truncate, path, a[1]);
	return r ? r : rt__shield_truncate(&t, (uint64_t)a[1]);
}

long rt__sys_rename(long nr, const long a[6])
{
	return rename_at(nr, AT_FDCWD, (const char *)a[0], AT_FDCWD, (const char *)a[1], 0);
}

long rt__sys_renameat(long nr, const long a[6])
{
	return rename_at(nr, a[0], (const char *)a[1], a[2], (const char *)a[3], 0);
}

long rt__sys_renameat2(long nr, const long a[6])
{
	return rename_at(nr, a[0], (const char *)a[1], a[2], (const char *)a[3], (unsigned)a[4]);
}

long rt__sys_mkdir(long nr, const long a[6])
{
	return mkdir_at(nr, AT_FDCWD, (const char *)a[0], (mode_t)a[1]);
}

long rt__sys_mkdirat(long nr, const long a[6])
{
	return mkdir_at(nr, a[0], (const char *)a[1], (mode_t)a[2]);
}

long rt__sys_rmdir(long nr, const long a[6])
{
	return unlink_at(nr, AT_FDCWD, (const char *)a[0], AT_REMOVEDIR);
}

long rt__sys_unlink(long nr, const long a[6])
{
	return unlink_at(nr, AT_FDCWD, (const char *)a[0], 0);
}

long rt__sys_unlinkat(long nr, const long a[6])
{
	return unlink_at(nr, a[0], (const char *)a[1], (int)a[2]);
}
