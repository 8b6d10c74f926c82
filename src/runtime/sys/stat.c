/* kiln runtime: the stat family, access, readlink. Results are built in
 * runtime memory and copied out to the program (EFAULT for a bad buffer). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* The stat of (dirfd, path, flags) that touches something protected: a
 * protected fd (AT_EMPTY_PATH), a volume path or an injected file. 1: not
 * protected, the caller passes the call to the kernel. */
static long stat_at(long dirfd, const char *path, int flags, struct stat *st)
{
	char host[RT_PATH_SIZE];
	struct rt_target t;
	long r;

	if ((!path || !path[0]) && (flags & AT_EMPTY_PATH))
		return rt__shield_fstat(dirfd, st);
	for (int depth = 0;; depth++) {
		if (!rt__resolve(dirfd, path, &t) && !t.vfile)
			return depth ? rt__raw(SYS_newfstatat, AT_FDCWD, path, st, flags) : 1;
		if (t.err)
			return t.err;
		r = rt__shield_stat_flags(&t, flags & AT_SYMLINK_NOFOLLOW, st);
		/* A symlink in the volume whose target leaves it: the host path. */
		if (r != -EXDEV || rt__shield_escape(&t, flags, host, sizeof(host)) != 1)
			return r == -ENOENT && !t.vfile ? rt__enoent(&t) : r;
		if (depth == RT_ESCAPES_MAX)
			return -ELOOP;
		dirfd = AT_FDCWD;
		path = host;
	}
}

static long fstatat_to(long dirfd, const char *path, int flags, void *ubuf)
{
	struct stat st;
	long r = stat_at(dirfd, path, flags, &st);

	if (r == 1)
		return rt__raw(SYS_newfstatat, dirfd, path, ubuf, flags);
	if (r < 0)
		return r;
	return rt__copy_out(ubuf, &st, sizeof(st));
}

static void to_statx_ts(struct statx_timestamp *d, const struct timespec *s)
{
	d->tv_sec = s->tv_sec;
	d->tv_nsec = (uint32_t)s->tv_nsec;
}

static long statx_to(long dirfd, const char *path, int flags, unsigned mask, void *ubuf)
{
	struct statx sx;
	struct stat st;
	long r = stat_at(dirfd, path, flags, &st);

	if (r == 1)
		return rt__raw(SYS_statx, dirfd, path, flags, mask, ubuf);
	if (r < 0)
		return r;
	memset(&sx, 0, sizeof(sx));
	sx.stx_mask = STATX_BASIC_STATS;
	sx.stx_blksize = (uint32_t)st.st_blksize;
	sx.stx_nlink = (uint32_t)st.st_nlink;
	sx.stx_uid = st.st_uid;
	sx.stx_gid = st.st_gid;
	sx.stx_mode = (uint16_t)st.st_mode;
	sx.stx_ino = st.st_ino;
	sx.stx_size = (uint64_t)st.st_size;
	sx.stx_blocks = (uint64_t)st.st_blocks;
	to_statx_ts(&sx.stx_atime, &st.st_atim);
	to_statx_ts(&sx.stx_mtime, &st.st_mtim);
	to_statx_ts(&sx.stx_ctime, &st.st_ctim);
	sx.stx_dev_major = major(st.st_dev);
	sx.stx_dev_minor = minor(st.st_dev);
	return rt__copy_out(ubuf, &sx, sizeof(sx));
}

static long access_at(long dirfd, const char *path, int mode, int flags)
{
	struct rt_target t;

	long r;

	if (!rt__resolve(dirfd, path, &t) && !t.vfile)
		return rt__raw(SYS_faccessat2, dirfd, path, mode, flags);
	if (t.err)
		return t.err;
	r = rt__shield_access(&t, mode, flags);
	return r == -ENOENT && !t.vfile ? rt__enoent(&t) : r;
}

long rt__exists(long dirfd, const char *path, int flags, long if_exists)
{
	struct rt_target t;
	struct stat st;
	long r;

	if (!rt__resolve(dirfd, path, &t) && !t.vfile)
		return -ENOENT;
	if (t.err)
		return t.err;
	r = rt__shield_stat_flags(&t, flags & AT_SYMLINK_NOFOLLOW, &st);
	if (r == -ENOENT && !t.vfile)
		r = rt__enoent(&t);
	return r < 0 ? r : if_exists;
}

long rt__sys_fstat(long nr, const long a[6])
{
	struct stat st;
	long r = rt__shield_fstat(a[0], &st);

	return r < 0 ? r : rt__copy_out((void *)a[1], &st, sizeof(st));
}

long rt__sys_stat(long nr, const long a[6])
{
	return fstatat_to(AT_FDCWD, (const char *)a[0], 0, (void *)a[1]);
}

long rt__sys_lstat(long nr, const long a[6])
{
	return fstatat_to(AT_FDCWD, (const char *)a[0], AT_SYMLINK_NOFOLLOW, (void *)a[1]);
}

long rt__sys_newfstatat(long nr, const long a[6])
{
	return fstatat_to(a[0], (const char *)a[1], (int)a[3], (void *)a[2]);
}

long rt__sys_statx(long nr, const long a[6])
{
	return statx_to(a[0], (const char *)a[1], (int)a[2], (unsigned)a[3], (void *)a[4]);
}

long rt__sys_access(long nr, const long a[6])
{
	return access_at(AT_FDCWD, (const char *)a[0], (int)a[1], 0);
}

long rt__sys_faccessat(long nr, const long a[6])
{
	return access_at(a[0], (const char *)a[1], (int)a[2], 0);
}

long rt__sys_faccessat2(long nr, const long a[6])
{
	return access_at(a[0], (const char *)a[1], (int)a[2], (int)a[3]);
}

/* readlink of a volume path: the stored target, cut to the buffer. In
 * /proc/self/fd, the link of a protected fd is the path the program opened
 * (not the memfd behind it). */
static long readlink_at(long dirfd, const char *path, char *ubuf, long size)
{
	char buf[RT_PATH_SIZE];
	struct rt_target t;
	size_t n;
	long r;

	if (!rt__resolve(dirfd, path, &t) && !t.vfile) {
		if (t.proc == RT_PROC_ENTRY && size > 0 &&
		    rt__shield_fd_path(t.procfd, buf, sizeof(buf))) {
			n = strlen(buf) < (size_t)size ? strlen(buf) : (size_t)size;
			return rt__copy_out(ubuf, buf, n) < 0 ? -EFAULT : (long)n;
		}
		return rt__raw(SYS_readlinkat, dirfd, path, ubuf, size);
	}
	if (t.err)
		return t.err;
	if (size <= 0)
		return -EINVAL;
	r = rt__shield_readlink(&t, buf, sizeof(buf));
	if (r < 0)
		return r == -ENOENT && !t.vfile ? rt__enoent(&t) : r;
	if (r > size)
		r = size;
	return rt__copy_out(ubuf, buf, (size_t)r) < 0 ? -EFAULT : r;
}

long rt__sys_readlink(long nr, const long a[6])
{
	return readlink_at(AT_FDCWD, (const char *)a[0], (char *)a[1], a[2]);
}

long rt__sys_readlinkat(long nr, const long a[6])
{
	return readlink_at(a[0], (const char *)a[1], (char *)a[2], a[3]);
}

/* statfs of a volume path or a protected fd answers for the volume (the
 * kernel would look at the ciphertext store, or at the memfd's tmpfs). */
long rt__sys_statfs(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct rt_target t;
	struct statfs sf;
	long r;

	if (!rt__resolve(AT_FDCWD, path, &t) || t.vfile)
		return t.err ? t.err : rt__raw6(nr, a);
	if (t.err)
		return t.err;
	r = rt__shield_statfs(&t, &sf);
	if (r == -ENOENT)
		r = rt__enoent(&t);
	return r < 0 ? r : rt__copy_out((void *)a[1], &sf, sizeof(sf));
}

long rt__sys_fstatfs(long nr, const long a[6])
{
	struct statfs sf;
	long r = rt__shield_fstatfs(a[0], &sf);

	if (r == 1)
		return rt__raw6(nr, a);
	return r < 0 ? r : rt__copy_out((void *)a[1], &sf, sizeof(sf));
}
