/* kiln runtime: calls on names: rename, unlink, rmdir, mkdir, truncate, link,
 * symlink, mknod. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* 1: (dirfd, path) names nothing protected, pass the call on; 0: t names a
 * volume path; else the error (an injected file is never changed). */
static long target_of(long nr, long dirfd, const char *path, struct rt_target *t)
{
	if (!rt__resolve(dirfd, path, t) && !t->vfile)
		return 1;
	if (t->vfile)
		return rt__vfile_refuse(nr, t);
	return t->err;
}

/* The errno of an operation on volume path t: -ENOENT means "missing" to pf,
 * which may be the kernel's ENOTDIR. */
static long result(struct rt_target *t, long r)
{
	return r == -ENOENT ? rt__enoent(t) : r;
}

static long unlink_at(long nr, long dirfd, const char *path, int flags)
{
	struct rt_target t;
	long r = target_of(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_unlinkat, dirfd, path, flags);
	if (r)
		return r;
	/* By the kind of the last component, as fs/namei.c do_rmdir and
	 * do_unlinkat (the volume's root is a mount point: busy). */
	if (flags & AT_REMOVEDIR) {
		if (t.last == RT_LAST_DOT)
			return -EINVAL;
		if (t.last == RT_LAST_DOTDOT)
			return -ENOTEMPTY;
		if (t.last == RT_LAST_ROOT || !t.rel[0])
			return -EBUSY;
	} else if (t.last != RT_LAST_NORM || !t.rel[0]) {
		return -EISDIR;
	}
	return result(&t, rt__shield_unlink(&t, flags));
}

static long rename_at(long nr, long d1, const char *from, long d2, const char *to,
		      unsigned flags)
{
	struct rt_target a, b;
	long ra, rb;

	/* The kernel's answer for a NULL path, not "not in the same volume". */
	if (!from || !to)
		return -EFAULT;
	/* The flags are checked before any name is looked up (do_renameat2). */
	if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) ||
	    ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT))))
		return -EINVAL;
	ra = target_of(nr, d1, from, &a);
	rb = target_of(nr, d2, to, &b);
	if (ra == 1 && rb == 1)
		return rt__raw(SYS_renameat2, d1, from, d2, to, flags);
	if (ra < 0 || rb < 0)
		return ra < 0 ? ra : rb;
	if (ra == 1 || rb == 1 || a.vol != b.vol)
		return -EXDEV;
	if (flags & RENAME_WHITEOUT) {
		/* What a file system without whiteouts answers (overlayfs's). */
		rt__refuse("renameat2 whiteout", "renameat2 RENAME_WHITEOUT on %s: volumes have "
			   "no whiteouts (EINVAL)", a.abs);
		return -EINVAL;
	}
	/* ".", ".." and the volume's root (a mount point) never move or get
	 * replaced (fs/namei.c do_renameat2). */
	if (a.last != RT_LAST_NORM || !a.rel[0])
		return -EBUSY;
	if (b.last != RT_LAST_NORM || !b.rel[0])
		return flags & RENAME_NOREPLACE ? -EEXIST : -EBUSY;
	ra = rt__shield_rename(&a, &b, flags);
	if (ra != -ENOENT)
		return ra;
	/* Which side is missing: the source, or the target's directory. */
	ra = rt__ancestors(&a);
	if (ra < 0)
		return ra == -ENOTDIR ? ra : -ENOENT;
	rb = rt__ancestors(&b);
	return rb == -ENOTDIR ? rb : -ENOENT;
}

static long mkdir_at(long nr, long dirfd, const char *path, mode_t mode)
{
	struct rt_target t;
	long r = target_of(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_mkdirat, dirfd, path, mode);
	if (r)
		return r;
	if (t.last != RT_LAST_NORM || !t.rel[0])
		return -EEXIST;
	return result(&t, rt__shield_mkdir(&t, mode));
}

long rt__sys_truncate(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct rt_target t;
	long r = target_of(nr, AT_FDCWD, path, &t);

	if (r == 1)
		return rt__raw(SYS_truncate, path, a[1]);
	if (r)
		return r;
	if (a[1] < 0)
		return -EINVAL;
	return result(&t, rt__shield_truncate(&t, (uint64_t)a[1]));
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

/* The protected fd a magic link names ("/proc/self/fd/N", "/proc/PID/fd/N"
 * of this process, "/dev/fd/N"), or -1. */
static long proc_fd_of(const char *path)
{
	char self[32];
	const char *p = NULL;
	char *end;
	long fd;

	snprintf(self, sizeof(self), "/proc/%ld/fd/", rt__raw(SYS_getpid, 0));
	if (strncmp(path, "/proc/self/fd/", 14) == 0)
		p = path + 14;
	else if (strncmp(path, "/dev/fd/", 8) == 0)
		p = path + 8;
	else if (strncmp(path, self, strlen(self)) == 0)
		p = path + strlen(self);
	if (!p || *p < '0' || *p > '9')
		return -1;
	fd = strtol(p, &end, 10);
	if (*end || fd > INT32_MAX || rt_fd_kind((int)fd) == RT_FD_NONE)
		return -1;
	return fd;
}

/* Hard links. The source is a path, or a protected fd: AT_EMPTY_PATH, or
 * /proc/self/fd/N followed (AT_SYMLINK_FOLLOW: what glibc and systemd do to
 * name an O_TMPFILE file). Both ends in one volume, else EXDEV. */
static long link_at(long nr, long d1, const char *from, long d2, const char *to, int flags)
{
	struct rt_target a, b;
	long fd = -1;
	bool pa, pb;

	if (!from || !to)
		return -EFAULT;
	if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH))
		return -EINVAL;
	if (!from[0] && (flags & AT_EMPTY_PATH))
		fd = rt_fd_kind((int)d1) != RT_FD_NONE ? d1 : -1;
	else if (flags & AT_SYMLINK_FOLLOW)
		fd = proc_fd_of(from);
	pa = fd < 0 && rt__resolve(d1, from, &a);
	pb = rt__resolve(d2, to, &b);
	if (fd < 0 && a.vfile)
		return rt__vfile_refuse(nr, &a);
	if (b.vfile)
		return rt__vfile_refuse(nr, &b);
	if (fd < 0 && !pa && !pb)
		return rt__raw(SYS_linkat, d1, from, d2, to, flags);
	if (fd < 0 && pa && a.err)
		return a.err;
	if (pb && b.err)
		return b.err;
	if (!pb || (fd < 0 && (!pa || a.vol != b.vol)))
		return -EXDEV;
	return result(&b, rt__shield_link(fd < 0 ? &a : NULL, fd, &b, flags & AT_SYMLINK_FOLLOW));
}

long rt__sys_link(long nr, const long a[6])
{
	return link_at(nr, AT_FDCWD, (const char *)a[0], AT_FDCWD, (const char *)a[1], 0);
}

long rt__sys_linkat(long nr, const long a[6])
{
	return link_at(nr, a[0], (const char *)a[1], a[2], (const char *)a[3], (int)a[4]);
}

/* Symbolic links: the target is stored as given (the program's bytes, read
 * as the kernel would: EFAULT, ENAMETOOLONG) and resolved when used. */
static long symlink_at(long nr, const char *utarget, long dirfd, const char *path)
{
	char dest[RT_PATH_SIZE];
	struct rt_target t;
	long r = rt__path_in(dest, utarget, sizeof(dest));

	if (r < 0)
		return r;
	r = target_of(nr, dirfd, path, &t);
	if (r == 1)
		return rt__raw(SYS_symlinkat, dest, dirfd, path);
	return r ? r : result(&t, rt__shield_symlink(dest, &t));
}

long rt__sys_symlink(long nr, const long a[6])
{
	return symlink_at(nr, (const char *)a[0], AT_FDCWD, (const char *)a[1]);
}

long rt__sys_symlinkat(long nr, const long a[6])
{
	return symlink_at(nr, (const char *)a[0], a[1], (const char *)a[2]);
}

/* Whether volume path t names something: 0 yes, -ENOENT/-ENOTDIR no, or the
 * lookup's error. */
static long exists(struct rt_target *t)
{
	struct stat st;
	long r = rt__shield_stat(t, &st);

	return r == -ENOENT ? rt__enoent(t) : r;
}

/* mknod: a regular file as open(O_CREAT|O_EXCL) makes it; FIFO and socket
 * nodes in the volume (shield/special.c); device nodes are refused by design
 * (a plaintext door to the host's devices in a protected volume): EPERM,
 * mknod(2)'s errno on a file system without device support. */
static long mknod_at(long nr, long dirfd, const char *path, mode_t mode, long dev)
{
	struct rt_target t;
	long r = target_of(nr, dirfd, path, &t);

	if (r == 1)
		return rt__raw(SYS_mknodat, dirfd, path, mode, dev);
	if (r)
		return r;
	if (t.last != RT_LAST_NORM || !t.rel[0] || exists(&t) == 0)
		return -EEXIST;
	switch (mode & S_IFMT) {
	case 0:
	case S_IFREG:
		r = rt__shield_open(&t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
		if (r < 0)
			return r == -ENOENT ? rt__enoent(&t) : r;
		return rt__shield_close(r);
	case S_IFIFO:
	case S_IFSOCK:
		return result(&t, rt__shield_mknod(&t, mode));
	case S_IFCHR:
	case S_IFBLK:
		rt__refuse("device node", "mknod %s: device nodes are refused in volumes (EPERM)",
			   t.abs);
		return -EPERM;
	default:
		return -EINVAL;
	}
}

long rt__sys_mknod(long nr, const long a[6])
{
	return mknod_at(nr, AT_FDCWD, (const char *)a[0], (mode_t)a[1], a[2]);
}

long rt__sys_mknodat(long nr, const long a[6])
{
	return mknod_at(nr, a[0], (const char *)a[1], (mode_t)a[2], a[3]);
}
