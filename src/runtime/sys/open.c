/* kiln runtime: open, creat, openat, openat2. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* The size of the first struct open_how (linux/openat2.h does not name it). */
#define OPEN_HOW_SIZE_VER0 24

/* A FIFO node in a volume: its kernel object, opened here, outside the
 * shield's lock (the open waits for the other end). A socket node: ENXIO, as
 * open(2) of a socket answers. */
static long open_special(struct rt_target *t, int flags)
{
	char real[RT_SPECIAL_PATH_MAX];
	long r = rt__shield_special(t, S_IFIFO, real);

	if (r > 0)
		return -ENXIO;
	if (r < 0)
		return r;
	return rt__raw(SYS_openat, AT_FDCWD, real, flags & ~(O_CREAT | O_EXCL | O_TRUNC), 0);
}

static long open_in(long dirfd, const char *path, int flags, mode_t mode, int depth);

static long open_at(long dirfd, const char *path, int flags, mode_t mode)
{
	return open_in(dirfd, path, flags, mode, 0);
}

static long open_in(long dirfd, const char *path, int flags, mode_t mode, int depth)
{
	char host[RT_PATH_SIZE];
	struct rt_target t;
	long r;

	if (!rt__resolve(dirfd, path, &t) && !t.vfile) {
		r = rt__raw(SYS_openat, dirfd, path, flags, mode);
		/* This process's /proc/self/fd: its listings leave the runtime's
		 * own fds out (rt__sys_getdents64). */
		if (r >= 0 && t.proc == RT_PROC_DIR && rt_fd_in_range((int)r))
			rt_fd_set((int)r, RT_FD_PROCFD, NULL);
		return r;
	}
	if (t.vfile)
		return rt__shield_open(&t, flags, mode);
	if (t.err)
		return t.err;
	if ((flags & O_PATH) && (flags & O_NOFOLLOW)) {
		struct stat st;

		if (rt__shield_stat_flags(&t, AT_SYMLINK_NOFOLLOW, &st) == 0 && S_ISLNK(st.st_mode))
			return rt__shield_open_link(&t, flags & O_CLOEXEC);
	}
	if (flags & O_PATH) /* a real descriptor does everything O_PATH allows */
		flags = (flags & ~(O_PATH | O_ACCMODE | O_CREAT | O_TRUNC)) | O_RDONLY;
	/* "name/", "d/." with O_CREAT: a directory is named, which open never
	 * creates (the kernel's EISDIR, once the parent is found). */
	if ((flags & O_CREAT) && (t.slash || t.last != RT_LAST_NORM || !t.rel[0])) {
		r = rt__ancestors(&t);
		return r < 0 ? r : -EISDIR;
	}
	r = rt__shield_open(&t, flags, mode);
	if (r == -ENXIO)
		return open_special(&t, flags);
	/* A symlink in the volume whose target leaves it: go on from the host
	 * path it names (which is not protected, unless in a volume again). */
	if (r == -EXDEV && rt__shield_escape(&t, flags & O_NOFOLLOW ? AT_SYMLINK_NOFOLLOW : 0,
					     host, sizeof(host)) == 1)
		return depth < RT_ESCAPES_MAX ? open_in(AT_FDCWD, host, flags, mode, depth + 1) :
					     -ELOOP;
	return r == -ENOENT ? rt__enoent(&t) : r;
}

long rt__sys_open(long nr, const long a[6])
{
	return open_at(AT_FDCWD, (const char *)a[0], (int)a[1], (mode_t)a[2]);
}

long rt__sys_creat(long nr, const long a[6])
{
	return open_at(AT_FDCWD, (const char *)a[0], O_CREAT | O_WRONLY | O_TRUNC, (mode_t)a[1]);
}

long rt__sys_openat(long nr, const long a[6])
{
	return open_at(a[0], (const char *)a[1], (int)a[2], (mode_t)a[3]);
}

long rt__sys_openat2(long nr, const long a[6])
{
	struct open_how how = { 0 };
	size_t size = (size_t)a[3];
	struct rt_target t;
	long r;

	if (!rt__resolve(a[0], (const char *)a[1], &t) && !t.vfile)
		return rt__raw6(nr, a);
	if (size < OPEN_HOW_SIZE_VER0)
		return -EINVAL;
	r = rt__copy_in(&how, (const void *)a[2], size < sizeof(how) ? size : sizeof(how));
	if (r < 0)
		return r;
	return open_at(a[0], (const char *)a[1], (int)how.flags, (mode_t)how.mode);
}
