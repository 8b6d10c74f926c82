/* Whole-file reads and crash-safe replacement. */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int kiln_read_fd(int fd, size_t max_size, uint8_t **data, size_t *size)
{
	size_t cap = max_size < 4096 ? max_size : 4096, len = 0;
	uint8_t *buf = malloc(cap + 1), *nbuf;

	*data = NULL;
	*size = 0;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap >= max_size) {
				/* One more byte tells "exactly max" from "too big". */
				char probe;
				ssize_t r;

				do
					r = read(fd, &probe, 1);
				while (r < 0 && errno == EINTR);
				if (r == 0)
					break;
				free(buf);
				return r < 0 ? -errno : -EFBIG;
			}
			cap = cap * 2 > max_size ? max_size : cap * 2;
			nbuf = realloc(buf, cap + 1);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(buf);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*data = buf;
	*size = len;
	return 0;
}

int kiln_read_file(const char *path, size_t max_size, uint8_t **data, size_t *size)
{
	int fd, ret;

	*data = NULL;
	*size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = kiln_read_fd(fd, max_size, data, size);
	close(fd);
	return ret;
}

int kiln_write_all(int fd, const void *data, size_t size)
{
	const uint8_t *p = data;

	while (size) {
		ssize_t n = write(fd, p, size);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

int kiln_pwrite_all(int fd, const void *data, size_t size, off_t off)
{
	const uint8_t *p = data;

	while (size) {
		ssize_t n = pwrite(fd, p, size, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += n;
		size -= (size_t)n;
	}
	return 0;
}

ssize_t kiln_read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

ssize_t kiln_pread_full(int fd, void *data, size_t size, off_t off)
{
	uint8_t *p = data;
	size_t done = 0;

	while (done < size) {
		ssize_t n = pread(fd, p + done, size - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int kiln_fsync_dir(const char *path)
{
	char buf[PATH_MAX];
	struct stat st;
	const char *dir = path;
	int fd, ret = 0;

	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
			return -ENAMETOOLONG;
		dir = dirname(buf);
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		ret = -errno;
	close(fd);
	return ret;
}

int kiln_write_file_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
	char tmp[PATH_MAX];
	struct timespec ts;
	int fd = -1, ret;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%ld", path, (int)getpid(), ts.tv_nsec) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	ret = kiln_write_all(fd, data, size);
	if (ret < 0)
		goto out;
	/* open() applies the umask; the caller asked for exactly this mode. */
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
		ret = -errno;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		ret = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		ret = -errno;
		goto out;
	}
	ret = kiln_fsync_dir(path);
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int kiln_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	len = strlen(buf);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = c;
	}
	return 0;
}

int kiln_own_open_error(int err)
{
	return err == -ELOOP || err == -EISDIR ? -KILN_EUNSAFE : err;
}

int kiln_own_check(const struct stat *st)
{
	return S_ISREG(st->st_mode) ? 0 : -KILN_EUNSAFE;
}

int kiln_open_own(int dirfd, const char *path, int oflags, mode_t mode)
{
	struct stat st;
	int fd, ret;

	do
		fd = openat(dirfd, path, oflags | KILN_O_OWN, mode);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return kiln_own_open_error(-errno);
	ret = fstat(fd, &st) < 0 ? -errno : kiln_own_check(&st);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

int kiln_open_own_dir(int dirfd, const char *name, bool create, mode_t mode)
{
	struct stat st;
	int fd;

	if (create && mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | KILN_O_OWN);
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR ? -KILN_EUNSAFE : -errno;
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(fd);
		return -KILN_EUNSAFE;
	}
	return fd;
}

uint64_t kiln_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int kiln_read_private_file(const char *path, size_t max_size, uint8_t **data, size_t *size,
			   struct kiln_err *err)
{
	struct stat st;
	int fd, ret;

	*data = NULL;
	*size = 0;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return kiln_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = kiln_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = kiln_err_set(err, -EINVAL, "%s is not a regular file (a key must be a file, "
				   "not a FIFO, socket, device or directory)", path);
		goto out;
	}
	/* As ssh does: a private key others may read (or replace) is not private. */
	if (st.st_mode & 077) {
		ret = kiln_err_set(err, -EACCES, "%s is accessible by group or others (mode "
				   "%04o): a private key file must be 0600 (chmod 600 %s)", path,
				   (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	ret = kiln_read_fd(fd, max_size, data, size);
	if (ret < 0)
		kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
out:
	close(fd);
	return ret;
}
