/* kiln runtime: pf storage callbacks for libkiln. Like the library's POSIX
 * storage, but every fd it opens is moved to the runtime-owned range (so the
 * app's fd numbers, closefrom() and dup2() never meet it) and every system call
 * is issued from the runtime's allowed region. Names are flat inside
 * "<volume dir>/.kiln". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "pf/pf.h"
#include "runtime/rt_int.h"

struct store {
	int dirfd; /* owned */
};

struct store_fh {
	int fd; /* owned */
};

static int st_open(void *ctx, const char *name, unsigned flags, void **fh)
{
	struct store *s = ctx;
	struct store_fh *h;
	int oflags = O_CLOEXEC | ((flags & PF_SO_RDONLY) ? O_RDONLY : O_RDWR);
	long fd;

	if (flags & PF_SO_CREATE)
		oflags |= O_CREAT;
	if (flags & PF_SO_EXCL)
		oflags |= O_EXCL;
	if (flags & PF_SO_TRUNC)
		oflags |= O_TRUNC;
	fd = rt_sys(SYS_openat, s->dirfd, name, oflags, 0600);
	if (fd < 0)
		return (int)fd;
	fd = rt_own_fd((int)fd);
	if (fd < 0)
		return (int)fd;
	h = malloc(sizeof(*h));
	if (!h) {
		rt_own_close((int)fd);
		return -ENOMEM;
	}
	h->fd = (int)fd;
	*fh = h;
	return 0;
}

static ssize_t st_pread(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	struct store_fh *h = fh;
	size_t done = 0;

	while (done < size) {
		long n = rt_sys(SYS_pread64, h->fd, (char *)buf + done, size - done, off + done);

		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t st_pwrite(void *ctx, void *fh, const void *buf, size_t size, uint64_t off)
{
	struct store_fh *h = fh;
	long n;

	do
		n = rt_sys(SYS_pwrite64, h->fd, buf, size, off);
	while (n == -EINTR);
	return n;
}

static int st_get_size(void *ctx, void *fh, uint64_t *size)
{
	struct store_fh *h = fh;
	struct stat st;
	long r = rt_sys(SYS_fstat, h->fd, &st);

	if (r < 0)
		return (int)r;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int st_truncate(void *ctx, void *fh, uint64_t size)
{
	struct store_fh *h = fh;

	return (int)rt_sys(SYS_ftruncate, h->fd, size);
}

static int st_sync(void *ctx, void *fh)
{
	struct store_fh *h = fh;

	return (int)rt_sys(SYS_fdatasync, h->fd);
}

static int st_close(void *ctx, void *fh)
{
	struct store_fh *h = fh;

	if (!h)
		return 0;
	rt_own_close(h->fd);
	free(h);
	return 0;
}

static int st_remove(void *ctx, const char *name)
{
	struct store *s = ctx;

	return (int)rt_sys(SYS_unlinkat, s->dirfd, name, 0);
}

static int st_rename(void *ctx, const char *from, const char *to)
{
	struct store *s = ctx;

	return (int)rt_sys(SYS_renameat, s->dirfd, from, s->dirfd, to);
}

static int st_exchange(void *ctx, const char *a, const char *b)
{
	struct store *s = ctx;

	return (int)rt_sys(SYS_renameat2, s->dirfd, a, s->dirfd, b, RENAME_EXCHANGE);
}

static int st_sync_dir(void *ctx)
{
	struct store *s = ctx;

	return (int)rt_sys(SYS_fsync, s->dirfd);
}

/* One syncfs for every file of a multi-file commit (see pf.h sync_all). */
static int st_sync_all(void *ctx)
{
	struct store *s = ctx;

	return (int)rt_sys(SYS_syncfs, s->dirfd);
}

static int st_list(void *ctx, int (*cb)(void *arg, const char *name), void *arg)
{
	struct store *s = ctx;
	char buf[8192];
	long fd = rt_sys(SYS_openat, s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return (int)fd;
	for (;;) {
		long n = rt_sys(SYS_getdents64, fd, buf, sizeof(buf));

		if (n <= 0) {
			ret = (int)n;
			break;
		}
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);

			off += d->d_reclen;
			if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
				continue;
			ret = cb(arg, d->d_name);
			if (ret)
				goto out;
		}
	}
out:
	rt_sys(SYS_close, fd);
	return ret;
}

static void st_free(void *ctx)
{
	struct store *s = ctx;

	if (!s)
		return;
	rt_own_close(s->dirfd);
	free(s);
}

static const struct pf_storage_ops g_store_ops = {
	.open = st_open,
	.pread = st_pread,
	.pwrite = st_pwrite,
	.get_size = st_get_size,
	.truncate = st_truncate,
	.sync = st_sync,
	.close = st_close,
	.remove = st_remove,
	.rename = st_rename,
	.sync_dir = st_sync_dir,
	.sync_all = st_sync_all,
	.exchange = st_exchange,
	.list = st_list,
	.free = st_free,
};

int rt_storage_open(const char *dir, const struct pf_storage_ops **ops, void **ctx)
{
	char path[4200];
	struct store *s;
	long fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/.kiln", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = rt_sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return (int)fd;
	fd = rt_own_fd((int)fd);
	if (fd < 0)
		return (int)fd;
	s = malloc(sizeof(*s));
	if (!s) {
		rt_own_close((int)fd);
		return -ENOMEM;
	}
	s->dirfd = (int)fd;
	*ops = &g_store_ops;
	*ctx = s;
	return 0;
}
