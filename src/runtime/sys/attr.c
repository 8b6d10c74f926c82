/* kiln runtime: attributes of files: mode (chmod), owner (chown), times
 * (utime*), extended attributes. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <utime.h>

#include "runtime/sys/sys.h"

/* 1: (dirfd, path) names nothing protected, pass the call on; 0: t names a
 * volume path; else the error (an injected file is never changed). */
static long target(long nr, long dirfd, const char *path, struct rt_target *t)
{
	if (!rt__resolve(dirfd, path, t) && !t->vfile)
		return 1;
	if (t->vfile)
		return rt__vfile_refuse(nr, t);
	return t->err;
}

static long chmod_at(long nr, long dirfd, const char *path, mode_t mode)
{
	struct rt_target t;
	long r = target(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_fchmodat, dirfd, path, mode);
	if (r)
		return r;
	r = rt__shield_chmod(&t, mode);
	return r == -ENOENT ? rt__enoent(&t) : r;
}

/* Owners are stored in the volume; the server checks who may change them
 * (a new owner: root; a new group: the owner, to one of its groups). */
static long chown_at(long nr, long dirfd, const char *path, uid_t uid, gid_t gid, int flags)
{
	struct rt_target t;
	long r = target(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_fchownat, dirfd, path, uid, gid, flags);
	if (r)
		return r;
	r = rt__shield_chown(&t, -1, uid, gid, flags);
	return r == -ENOENT ? rt__enoent(&t) : r;
}

/* path NULL: the file behind dirfd (futimens). ts: the times in runtime
 * memory (NULL: now); uts: the program's pointer, for the kernel. */
static long set_times(long nr, long dirfd, const char *path, const struct timespec *ts,
		      const void *uts, int flags)
{
	struct rt_target t;
	long r;

	if (path) {
		r = target(nr, dirfd, path, &t);
		if (r == 1)
			return rt__raw(SYS_utimensat, dirfd, path, uts, flags);
		if (r)
			return r;
	}
	for (int i = 0; ts && i < 2; i++)
		if (ts[i].tv_nsec != UTIME_NOW && ts[i].tv_nsec != UTIME_OMIT &&
		    (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000))
			return -EINVAL;
	if (ts && ts[0].tv_nsec == UTIME_OMIT && ts[1].tv_nsec == UTIME_OMIT)
		return 0;
	if (!path)
		return rt__shield_set_times(NULL, dirfd, ts, 0);
	r = rt__shield_set_times(&t, dirfd, ts, flags);
	return r == -ENOENT ? rt__enoent(&t) : r;
}

/* utimensat: struct timespec[2] (UTIME_NOW, UTIME_OMIT) or NULL. */
static long utimens_at(long nr, long dirfd, const char *path, const void *uts, int flags)
{
	struct timespec ts[2];

	if (uts && rt__copy_in(ts, uts, sizeof(ts)))
		return -EFAULT;
	return set_times(nr, dirfd, path, uts ? ts : NULL, uts, flags);
}

/* utimes, futimesat: struct timeval[2] or NULL (utime: a struct utimbuf,
 * two time_t, converted by the caller). */
static long utimes_at(long nr, long dirfd, const char *path, const void *utv)
{
	struct timeval tv[2];
	struct timespec ts[2];
	struct rt_target t;

	if (!rt__resolve(dirfd, path, &t) && !t.vfile)
		return rt__raw(SYS_futimesat, dirfd, path, utv);
	if (!utv)
		return set_times(nr, dirfd, path, NULL, NULL, 0);
	if (rt__copy_in(tv, utv, sizeof(tv)))
		return -EFAULT;
	for (int i = 0; i < 2; i++) {
		if (tv[i].tv_usec < 0 || tv[i].tv_usec >= 1000000)
			return -EINVAL;
		ts[i].tv_sec = tv[i].tv_sec;
		ts[i].tv_nsec = tv[i].tv_usec * 1000;
	}
	return set_times(nr, dirfd, path, ts, NULL, 0);
}

long rt__sys_chmod(long nr, const long a[6])
{
	return chmod_at(nr, AT_FDCWD, (const char *)a[0], (mode_t)a[1]);
}

long rt__sys_fchmod(long nr, const long a[6])
{
	return rt__shield_fchmod(a[0], (mode_t)a[1]);
}

long rt__sys_fchmodat(long nr, const long a[6])
{
	return chmod_at(nr, a[0], (const char *)a[1], (mode_t)a[2]);
}

long rt__sys_fchmodat2(long nr, const long a[6])
{
	return chmod_at(nr, a[0], (const char *)a[1], (mode_t)a[2]);
}

long rt__sys_chown(long nr, const long a[6])
{
	return chown_at(nr, AT_FDCWD, (const char *)a[0], (uid_t)a[1], (gid_t)a[2], 0);
}

/* lchown: a symlink is changed itself. */
long rt__sys_lchown(long nr, const long a[6])
{
	return chown_at(nr, AT_FDCWD, (const char *)a[0], (uid_t)a[1], (gid_t)a[2],
			AT_SYMLINK_NOFOLLOW);
}

long rt__sys_fchown(long nr, const long a[6])
{
	if (rt__own_badf(a[0]))
		return -EBADF;
	return rt__shield_chown(NULL, a[0], (uid_t)a[1], (gid_t)a[2], 0);
}

long rt__sys_fchownat(long nr, const long a[6])
{
	const char *path = (const char *)a[1];

	if ((!path || !path[0]) && (a[4] & AT_EMPTY_PATH))
		return rt__shield_chown(NULL, a[0], (uid_t)a[2], (gid_t)a[3], 0);
	return chown_at(nr, a[0], path, (uid_t)a[2], (gid_t)a[3], (int)a[4]);
}

long rt__sys_utimensat(long nr, const long a[6])
{
	return utimens_at(nr, a[0], (const char *)a[1], (const void *)a[2], (int)a[3]);
}

long rt__sys_utime(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct utimbuf ub;
	struct timespec ts[2];
	struct rt_target t;

	if (!rt__resolve(AT_FDCWD, path, &t) && !t.vfile)
		return rt__raw6(nr, a);
	if (!a[1])
		return set_times(nr, AT_FDCWD, path, NULL, NULL, 0);
	if (rt__copy_in(&ub, (const void *)a[1], sizeof(ub)))
		return -EFAULT;
	ts[0] = (struct timespec){ .tv_sec = ub.actime };
	ts[1] = (struct timespec){ .tv_sec = ub.modtime };
	return set_times(nr, AT_FDCWD, path, ts, NULL, 0);
}

long rt__sys_utimes(long nr, const long a[6])
{
	return utimes_at(nr, AT_FDCWD, (const char *)a[0], (const void *)a[1]);
}

long rt__sys_futimesat(long nr, const long a[6])
{
	return utimes_at(nr, a[0], (const char *)a[1], (const void *)a[2]);
}

/* Volume files have no extended attributes. */
long rt__sys_getxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], 0, -ENODATA);
}

long rt__sys_lgetxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], AT_SYMLINK_NOFOLLOW, -ENODATA);
}

long rt__sys_fgetxattr(long nr, const long a[6])
{
	return -ENODATA;
}

long rt__sys_listxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], 0, 0);
}

long rt__sys_llistxattr(long nr, const long a[6])
{
	return rt__exists(AT_FDCWD, (const char *)a[0], AT_SYMLINK_NOFOLLOW, 0);
}

long rt__sys_flistxattr(long nr, const long a[6])
{
	return 0;
}
