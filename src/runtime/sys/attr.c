/* kiln runtime: attributes of files: mode (chmod), owner (chown), times
 * (utime*), extended attributes. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "runtime/sys/sys.h"

static long chmod_at(long dirfd, const char *path, mode_t mode)
{
	struct rt_target t;

	if (!rt__resolve(dirfd, path, &t))
		return rt__raw(SYS_fchmodat, dirfd, path, mode);
	return rt__shield_chmod(&t, mode);
}

/* path NULL: the file behind dirfd (futimens). */
static long utimens_at(long dirfd, const char *path, const struct timespec *ts, int flags)
{
	struct rt_target t;
	struct timespec now;
	int64_t ns;

	if (path && !rt__resolve(dirfd, path, &t))
		return rt__raw(SYS_utimensat, dirfd, path, ts, flags);
	clock_gettime(CLOCK_REALTIME, &now);
	if (ts && ts[1].tv_nsec == UTIME_OMIT)
		return 0;
	if (ts && ts[1].tv_nsec != UTIME_NOW)
		ns = (int64_t)ts[1].tv_sec * 1000000000 + ts[1].tv_nsec;
	else
		ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	return rt__shield_set_mtime(path ? &t : NULL, dirfd, ns);
}

long rt__sys_chmod(long nr, const long a[6])
{
	return chmod_at(AT_FDCWD, (const char *)a[0], (mode_t)a[1]);
}

long rt__sys_fchmod(long nr, const long a[6])
{
	return rt__shield_fchmod(a[0], (mode_t)a[1]);
}

long rt__sys_fchmodat(long nr, const long a[6])
{
	return chmod_at(a[0], (const char *)a[1], (mode_t)a[2]);
}

long rt__sys_fchmodat2(long nr, const long a[6])
{
	return chmod_at(a[0], (const char *)a[1], (mode_t)a[2]);
}

/* Ownership is not stored in volumes: accepted when the file exists. */
long rt__sys_chown(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], 0);
}

long rt__sys_lchown(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], 0);
}

long rt__sys_fchown(long nr, const long a[6])
{
	return rt__own_badf(a[0]);
}

long rt__sys_fchownat(long nr, const long a[6])
{
	return rt__exists(a[0], (const char *)a[1], 0);
}

long rt__sys_utimensat(long nr, const long a[6])
{
	return utimens_at(a[0], (const char *)a[1], (const struct timespec *)a[2], (int)a[3]);
}

/* utime and utimes set the mtime to now, whatever times they ask for. */
long rt__sys_utime(long nr, const long a[6])
{
	return utimens_at(AT_FDCWD, (const char *)a[0], NULL, 0);
}

long rt__sys_utimes(long nr, const long a[6])
{
	return utimens_at(AT_FDCWD, (const char *)a[0], NULL, 0);
}

long rt__sys_futimesat(long nr, const long a[6])
{
	return utimens_at(a[0], (const char *)a[1], NULL, 0);
}

/* Volume files have no extended attributes. */
long rt__sys_getxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], -ENODATA);
}

long rt__sys_lgetxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], -ENODATA);
}

long rt__sys_fgetxattr(long nr, const long a[6])
{
	return -ENODATA;
}

long rt__sys_listxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], 0);
}

long rt__sys_llistxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], 0);
}

long rt__sys_flistxattr(long nr, const long a[6])
{
	return 0;
}
