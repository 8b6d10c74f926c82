/* Default storage callbacks: POSIX files in one directory (openat on a dirfd).
 *
 * Whoever controls the disk may plant a symlink, FIFO, directory or device at
 * any name the volume uses. So: every name is one flat name opened relative to
 * the held directory fd, never following a symlink (O_NOFOLLOW; names with a
 * '/' are refused), a FIFO never blocks the open (O_NONBLOCK), and anything but
 * a regular file is refused with -KILN_EUNSAFE before a byte is read or
 * written (kiln_open_own). unlinkat/renameat act on the entry itself, never on
 * a symlink's target. The directory itself is opened the same way under its
 * parent (the volume root, which the user named). */
#include "pf/pf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct posix_storage {
	int dirfd;
};

/* Names longer than this get no O_DIRECT descriptor (posix_fh.dfd). */
#define PS_NAME_MAX 64

struct posix_fh {
	int fd;
	/* The same file opened again with O_DIRECT for pread_direct, at its
	 * first use: -1 not yet, -2 not to be (refused, or the name moved). */
	int dfd;
	char name[PS_NAME_MAX];
};

/* Storage names are one component: never a path, never "." or "..". */
static bool flat_name(const char *name)
{
	return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int ps_open(void *ctx, const char *name, unsigned flags, void **fh)
{
	struct posix_storage *s = ctx;
	int oflags = (flags & PF_SO_RDONLY) ? O_RDONLY : O_RDWR;
	struct posix_fh *h;
	int fd;

	*fh = NULL;
	if (!flat_name(name))
		return -EINVAL;
	if (flags & PF_SO_CREATE)
		oflags |= O_CREAT;
	if (flags & PF_SO_EXCL)
		oflags |= O_EXCL;
	if (flags & PF_SO_TRUNC)
		oflags |= O_TRUNC;
	h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	fd = kiln_open_own(s->dirfd, name, oflags, 0600);
	if (fd < 0) {
		free(h);
		return fd;
	}
	h->fd = fd;
	h->dfd = -1;
	if (snprintf(h->name, sizeof(h->name), "%s", name) >= PS_NAME_MAX)
		h->dfd = -2;
	*fh = h;
	return 0;
}

static ssize_t ps_pread(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	return kiln_pread_full(((struct posix_fh *)fh)->fd, buf, size, (off_t)off);
}

static ssize_t ps_pwrite(void *ctx, void *fh, const void *buf, size_t size, uint64_t off)
{
	ssize_t n;

	do
		n = pwrite(((struct posix_fh *)fh)->fd, buf, size, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* h->dfd: the file h->name names opened with O_DIRECT, if that is still
 * h->fd's file (a rename since the open: not). */
static int ps_open_direct(struct posix_storage *s, struct posix_fh *h)
{
	struct stat a, b;
	int fd = kiln_open_own(s->dirfd, h->name, O_RDONLY | O_DIRECT, 0);

	if (fd < 0) {
		h->dfd = -2;
		return fd;
	}
	if (fstat(fd, &a) != 0 || fstat(h->fd, &b) != 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		close(fd);
		h->dfd = -2;
		return -ESTALE;
	}
	h->dfd = fd;
	return 0;
}

static ssize_t ps_pread_direct(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	struct posix_fh *h = fh;
	struct kiln_cachestat_range range = { off, size };
	struct kiln_cachestat cs;
	ssize_t n;

	if (h->dfd == -2)
		return -EOPNOTSUPP;
	if (syscall(KILN_NR_CACHESTAT, h->fd, &range, &cs, 0) != 0)
		return -errno; /* cannot tell: read through the cache */
	if (!kiln_read_around_cache(&cs, size, PF_DIO_ALIGN))
		return -EAGAIN;
	if (h->dfd == -1 && (n = ps_open_direct(ctx, h)))
		return n;
	n = kiln_pread_full(h->dfd, buf, size, (off_t)off);
	if (n == -EINVAL) { /* this file system's O_DIRECT wants more */
		close(h->dfd);
		h->dfd = -2;
	}
	return n;
}

static int ps_get_size(void *ctx, void *fh, uint64_t *size)
{
	struct stat st;

	if (fstat(((struct posix_fh *)fh)->fd, &st) != 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int ps_truncate(void *ctx, void *fh, uint64_t size)
{
	int r;

	do
		r = ftruncate(((struct posix_fh *)fh)->fd, (off_t)size);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int ps_sync(void *ctx, void *fh)
{
	return fdatasync(((struct posix_fh *)fh)->fd) < 0 ? -errno : 0;
}

static int ps_close(void *ctx, void *fh)
{
	struct posix_fh *h = fh;
	int r = 0;

	if (!h)
		return 0;
	if (close(h->fd) < 0 && errno != EINTR)
		r = -errno;
	if (h->dfd >= 0)
		close(h->dfd);
	free(h);
	return r;
}

static int ps_remove(void *ctx, const char *name)
{
	struct posix_storage *s = ctx;

	if (!flat_name(name))
		return -EINVAL;
	return unlinkat(s->dirfd, name, 0) < 0 ? kiln_own_open_error(-errno) : 0;
}

static int ps_rename(void *ctx, const char *from, const char *to)
{
	struct posix_storage *s = ctx;

	if (!flat_name(from) || !flat_name(to))
		return -EINVAL;
	return renameat(s->dirfd, from, s->dirfd, to) < 0 ? kiln_own_open_error(-errno) : 0;
}

static int ps_exchange(void *ctx, const char *a, const char *b)
{
	struct posix_storage *s = ctx;

	if (!flat_name(a) || !flat_name(b))
		return -EINVAL;
	return renameat2(s->dirfd, a, s->dirfd, b, RENAME_EXCHANGE) < 0 ? -errno : 0;
}

static int ps_sync_dir(void *ctx)
{
	struct posix_storage *s = ctx;

	return fsync(s->dirfd) < 0 ? -errno : 0;
}

static int ps_writeback(void *ctx, void *fh, uint64_t off, uint64_t len)
{
	return sync_file_range(((struct posix_fh *)fh)->fd, (off_t)off, (off_t)len,
			       SYNC_FILE_RANGE_WRITE) < 0 ? -errno : 0;
}

static int ps_space(void *ctx, uint64_t *total, uint64_t *free, uint64_t *avail)
{
	struct posix_storage *s = ctx;
	struct statvfs sv;

	if (fstatvfs(s->dirfd, &sv) != 0)
		return -errno;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*free = (uint64_t)sv.f_bfree * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

static int ps_punch(void *ctx, void *fh, uint64_t off, uint64_t len)
{
	int r;

	do
		r = fallocate(((struct posix_fh *)fh)->fd, FALLOC_FL_PUNCH_HOLE |
			      FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int ps_sync_all(void *ctx)
{
	struct posix_storage *s = ctx;

	return syncfs(s->dirfd) < 0 ? -errno : 0;
}

static int ps_list(void *ctx, int (*cb)(void *arg, const char *name), void *arg)
{
	struct posix_storage *s = ctx;
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | KILN_O_OWN);
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		ret = cb(arg, de->d_name);
		if (ret)
			break;
	}
	closedir(d);
	return ret;
}

static void ps_free(void *ctx)
{
	struct posix_storage *s = ctx;

	if (!s)
		return;
	close(s->dirfd);
	free(s);
}

static const struct pf_storage_ops g_posix_ops = {
	.open = ps_open,
	.pread = ps_pread,
	.pwrite = ps_pwrite,
	.get_size = ps_get_size,
	.truncate = ps_truncate,
	.sync = ps_sync,
	.close = ps_close,
	.remove = ps_remove,
	.rename = ps_rename,
	.sync_dir = ps_sync_dir,
	.list = ps_list,
	.free = ps_free,
	.sync_all = ps_sync_all,
	.exchange = ps_exchange,
	.writeback = ps_writeback,
	.space = ps_space,
	.punch = ps_punch,
	.pread_direct = ps_pread_direct,
};

int pf_storage_posix(const char *dir, bool create, const struct pf_storage_ops **ops,
		     void **ctx, struct kiln_err *err)
{
	char parent[PATH_MAX], *base;
	int pfd, fd, ret;

	*ops = NULL;
	*ctx = NULL;
	if (snprintf(parent, sizeof(parent), "%s", dir) >= (int)sizeof(parent))
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", dir);
	base = strrchr(parent, '/');
	if (base && base[1]) {
		*base++ = '\0';
		if (!parent[0])
			strcpy(parent, "/");
	} else if (!base) {
		base = parent;
	}
	if (!flat_name(base))
		return kiln_err_set(err, -EINVAL, "%s: not a storage directory name", dir);
	if (base != parent) {
		if (create && (ret = kiln_mkdir_p(parent, 0700)))
			return kiln_err_set(err, ret, "%s: cannot create: %s", parent,
					    kiln_strerror(ret));
		pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		pfd = AT_FDCWD;
	}
	if (pfd < 0 && pfd != AT_FDCWD) {
		ret = -errno;
		if (ret == -ENOENT)
			return kiln_err_set(err, -KILN_EFORMAT, "%s: not a kiln volume "
					    "(no such directory)", dir);
		return kiln_err_set(err, ret, "%s: %s", parent, kiln_strerror(ret));
	}
	/* The storage directory itself (".kiln"): not through a symlink, a real
	 * directory, made here (0700) when asked. */
	fd = kiln_open_own_dir(pfd, base, create, 0700);
	if (pfd != AT_FDCWD)
		close(pfd);
	if (fd < 0) {
		ret = fd;
		if (ret == -ENOENT)
			return kiln_err_set(err, -KILN_EFORMAT, "%s: not a kiln volume "
					    "(no such directory)", dir);
		if (ret == -KILN_EUNSAFE)
			return kiln_err_set(err, ret, "%s: a symbolic link or not a directory "
					    "(planted?): refused", dir);
		return kiln_err_set(err, ret, "%s: %s", dir, kiln_strerror(ret));
	}
	/* One owner per volume at a time: two instances would overwrite each other's
	 * metadata and collect each other's uncommitted files. The runtime's
	 * processes take the same lock (per call) on this directory. */
	/* The runtime's processes hold the lock only for the duration of one call:
	 * wait for them (5 s at most) rather than fail. */
	for (int i = 0; (ret = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK &&
			i < 500; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	if (ret != 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		if (ret == -EBUSY)
			return kiln_err_set(err, ret, "%s: volume is in use by another process "
					    "(a mount or a running service)", dir);
		return kiln_err_set(err, ret, "%s: lock: %s", dir, kiln_strerror(ret));
	}
	ret = pf_storage_posix_fd(fd, ops, ctx);
	close(fd);
	return ret;
}

int pf_storage_posix_fd(int dirfd, const struct pf_storage_ops **ops, void **ctx)
{
	struct posix_storage *s;
	int fd;

	*ops = NULL;
	*ctx = NULL;
	/* A copy of the caller's fd: the same open directory, so the caller's
	 * flock on it stays theirs to release. */
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	s = malloc(sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->dirfd = fd;
	*ops = &g_posix_ops;
	*ctx = s;
	return 0;
}
