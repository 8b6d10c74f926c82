/* kiln runtime: calls on names: rename, unlink, rmdir, mkdir, truncate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

static long unlink_at(long dirfd, const char *path, int flags)
{
	struct rt_target t;

	if (!rt__resolve(dirfd, path, &t))
		return rt__raw(SYS_unlinkat, dirfd, path, flags);
	return rt__shield_unlink(&t, flags);
}

static long rename_at(long d1, const char *from, long d2, const char *to, unsigned flags)
{
	struct rt_target a, b;
	bool pa = rt__resolve(d1, from, &a), pb = rt__resolve(d2, to, &b);

	if (!pa && !pb)
		return rt__raw(SYS_renameat2, d1, from, d2, to, flags);
	if (!pa || !pb || a.vol != b.vol)
		return -EXDEV;
	if (flags & ~RENAME_NOREPLACE) {
		rt__say("renameat2 with flags 0x%x on %s: not supported in volumes (ENOTSUP)",
			flags, a.abs);
		return -ENOTSUP;
	}
	return rt__shield_rename(&a, &b, flags);
}

static long mkdir_at(long dirfd, const char *path, mode_t mode)
{
	struct rt_target t;

	if (!rt__resolve(dirfd, path, &t))
		return rt__raw(SYS_mkdirat, dirfd, path, mode);
	return rt__shield_mkdir(&t, mode);
}

long rt__sys_truncate(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct rt_target t;

	if (!rt__resolve(AT_FDCWD, path, &t))
		return rt__raw(SYS_truncate, path, a[1]);
	return rt__shield_truncate(&t, (uint64_t)a[1]);
}

long rt__sys_rename(long nr, const long a[6])
{
	return rename_at(AT_FDCWD, (const char *)a[0], AT_FDCWD, (const char *)a[1], 0);
}

long rt__sys_renameat(long nr, const long a[6])
{
	return rename_at(a[0], (const char *)a[1], a[2], (const char *)a[3], 0);
}

long rt__sys_renameat2(long nr, const long a[6])
{
	return rename_at(a[0], (const char *)a[1], a[2], (const char *)a[3], (unsigned)a[4]);
}

long rt__sys_mkdir(long nr, const long a[6])
{
	return mkdir_at(AT_FDCWD, (const char *)a[0], (mode_t)a[1]);
}

long rt__sys_mkdirat(long nr, const long a[6])
{
	return mkdir_at(a[0], (const char *)a[1], (mode_t)a[2]);
}

long rt__sys_rmdir(long nr, const long a[6])
{
	return unlink_at(AT_FDCWD, (const char *)a[0], AT_REMOVEDIR);
}

long rt__sys_unlink(long nr, const long a[6])
{
	return unlink_at(AT_FDCWD, (const char *)a[0], 0);
}

long rt__sys_unlinkat(long nr, const long a[6])
{
	return unlink_at(a[0], (const char *)a[1], (int)a[2]);
}
