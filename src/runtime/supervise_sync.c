/* kiln run, supervised mode: writes that must be durable when they return
 * (supervise_int.h): on a protected fd opened O_DSYNC or O_SYNC (the write
 * family, sendfile, splice and copy_file_range into it), and pwritev2 with
 * RWF_DSYNC or RWF_SYNC.
 *
 * The program's writes of a protected file are native on the server's memfd,
 * where the kernel's O_DSYNC does nothing durable. So the write family traps
 * (the filter cannot tell one fd from another), and the supervisor answers
 * CONTINUE at once unless the call asks for durability: then it does the
 * write itself, on the program's own description of the memfd (pidfd_getfd:
 * the same offset and O_APPEND), and replies only after fsync's commit
 * (sv_fsync). Whether an fd asks for it is the kernel's answer
 * (/proc/TID/fdinfo: its flags and inode), so dup'd, inherited and exec'd
 * fds keep it as the description does. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/supervise_int.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/* At most this much of one write is done at once (a short write: the program
 * writes the rest, as after a signal). */
#define SV_SYNC_WRITE_MAX ((size_t)64 << 20)

bool sv_traps_write(long nr)
{
	return nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_writev || nr == SYS_pwritev ||
	       nr == SYS_pwritev2 || nr == SYS_sendfile || nr == SYS_splice ||
	       nr == SYS_copy_file_range;
}

static bool transfer(long nr)
{
	return nr == SYS_sendfile || nr == SYS_splice || nr == SYS_copy_file_range;
}

/* The fd a trapped call writes to. */
static int written_fd(const struct seccomp_notif *n)
{
	return (int)(n->data.nr == SYS_splice || n->data.nr == SYS_copy_file_range ?
		     n->data.args[2] : n->data.args[0]);
}

/* The flags and inode of fd in tid's table (/proc/TID/fdinfo/FD). */
static int fd_info(pid_t tid, int fd, long *flags, unsigned long *ino)
{
	char name[32], buf[512];
	const char *p;
	ssize_t n;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	n = kiln_read_proc(tid, name, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (n == 0)
		return -EIO;
	p = strstr(buf, "flags:");
	if (!p || sscanf(p, "flags: %lo", flags) != 1)
		return -EIO;
	p = strstr(buf, "ino:");
	if (!p || sscanf(p, "ino: %lu", ino) != 1)
		return -EIO;
	return 0;
}

static struct sv_file *held_by_ino(struct sv *sv, unsigned long ino)
{
	for (struct sv_file *f = sv->files; f; f = f->next)
		if ((unsigned long)f->mino == ino)
			return f;
	return NULL;
}

/* The program's fd in the supervisor: a new fd on the same description. A
 * thread's pidfd (Linux >= 6.9), else its process's. */
static int take_fd(pid_t tid, int fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD), out;
	struct sv_cred c;

	if (pidfd < 0 && errno == EINVAL && sv_cred_of(tid, &c) == 0)
		pidfd = (int)syscall(SYS_pidfd_open, c.tgid, 0);
	if (pidfd < 0)
		return -errno;
	out = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (out < 0)
		out = -errno;
	close(pidfd);
	return out;
}

/* The call's buffers (the program's memory) into buf, at most max bytes;
 * *len: what was read. */
static long read_buffers(pid_t tid, const struct seccomp_notif *n, uint8_t **buf, size_t *len)
{
	const __u64 *a = n->data.args;
	struct iovec one = { (void *)(uintptr_t)a[1], (size_t)a[2] }, *riov = &one, l;
	size_t total = 0;
	long cnt = 1, ret;
	ssize_t got;

	if (n->data.nr != SYS_write && n->data.nr != SYS_pwrite64) {
		cnt = (long)(int)a[2];
		if (cnt < 0 || cnt > IOV_MAX)
			return -EINVAL;
		riov = calloc((size_t)cnt + 1, sizeof(*riov));
		if (!riov)
			return -ENOMEM;
		l = (struct iovec){ riov, (size_t)cnt * sizeof(*riov) };
		one = (struct iovec){ (void *)(uintptr_t)a[1], l.iov_len };
		got = cnt ? process_vm_readv(tid, &l, 1, &one, 1, 0) : 0;
		if (got != (ssize_t)l.iov_len) {
			ret = -EFAULT;
			goto out;
		}
	}
	for (long i = 0; i < cnt; i++) {
		if (riov[i].iov_len > SSIZE_MAX - total) {
			ret = -EINVAL;
			goto out;
		}
		total += riov[i].iov_len;
	}
	if (total > SV_SYNC_WRITE_MAX)
		total = SV_SYNC_WRITE_MAX;
	*buf = malloc(total ? total : 1);
	if (!*buf) {
		ret = -ENOMEM;
		goto out;
	}
	l = (struct iovec){ *buf, total };
	got = total ? process_vm_readv(tid, &l, 1, riov, (unsigned long)cnt, 0) : 0;
	/* A fault part-way: what was before it, as the kernel's write. */
	ret = got < 0 || (got == 0 && total) ? -EFAULT : 0;
	*len = got > 0 ? (size_t)got : 0;
	if (ret) {
		free(*buf);
		*buf = NULL;
	}
out:
	if (riov != &one)
		free(riov);
	return ret;
}

/* The write, done on the program's description, then fsync's commit. */
static long durable_write(struct sv *sv, const struct seccomp_notif *n, struct sv_file *f)
{
	const __u64 *a = n->data.args;
	pid_t tid = (pid_t)n->pid;
	struct sv_fd e = { .f = f };
	bool positional = n->data.nr == SYS_pwrite64 || n->data.nr == SYS_pwritev ||
			  (n->data.nr == SYS_pwritev2 && (long)a[3] != -1);
	uint8_t *buf = NULL;
	size_t len = 0;
	long r;
	int fd;

	fd = take_fd(tid, (int)a[0]);
	if (fd < 0)
		return fd;
	r = read_buffers(tid, n, &buf, &len);
	if (r < 0)
		goto out;
	r = positional ? pwrite(fd, buf, len, (off_t)a[3]) : write(fd, buf, len);
	if (r < 0)
		r = -errno;
	if (r > 0 && sv_fsync(sv, &e) < 0)
		r = -EIO;
out:
	if (buf) {
		kiln_wipe(buf, len);
		free(buf);
	}
	close(fd);
	return r;
}

/* A splice from an empty pipe waits for data here (the program's call
 * would block in the kernel), serving the program's other calls meanwhile:
 * the pipe's writer may be one of them. 0 once the pipe is readable (or the
 * call would not block); -EINTR when the program's thread was interrupted
 * (nothing was moved, as in the kernel). */
static long wait_readable(struct sv *sv, const struct seccomp_notif *n, int pipe_fd,
			  unsigned flags)
{
	int fl = fcntl(pipe_fd, F_GETFL);

	if ((flags & SPLICE_F_NONBLOCK) || fl < 0 || (fl & O_NONBLOCK))
		return 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = pipe_fd, .events = POLLIN },
				       { .fd = sv->listener, .events = POLLIN } };

		if (poll(p, 2, 100) < 0 && errno != EINTR)
			return -errno;
		if (p[0].revents)
			return 0; /* data, or no writer left (the splice returns 0) */
		if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->id))
			return -EINTR;
		if ((p[1].revents & POLLIN) && sv_serve_one(sv))
			return -EIO;
	}
}

/* sendfile, splice or copy_file_range into a protected fd asking for
 * durability: done here on the program's descriptions (offsets read from and
 * written back to the program), then fsync's commit of the file (found again
 * by ino: the program's other calls may have been served meanwhile). */
static long durable_transfer(struct sv *sv, const struct seccomp_notif *n, unsigned long ino)
{
	const __u64 *a = n->data.args;
	pid_t tid = (pid_t)n->pid;
	long nr = n->data.nr;
	bool sf = nr == SYS_sendfile;
	uint64_t in_addr = sf ? a[2] : a[1], out_addr = sf ? 0 : a[3];
	size_t len = (size_t)(sf ? a[3] : a[4]);
	unsigned flags = sf ? 0 : (unsigned)a[5];
	loff_t in_off = 0, out_off = 0;
	int in = take_fd(tid, (int)(sf ? a[1] : a[0])), out = take_fd(tid, written_fd(n));
	struct sv_fd e = { 0 };
	long r = 0;

	if (in < 0 || out < 0)
		r = in < 0 ? in : out;
	else if ((in_addr && sv_read_mem(tid, in_addr, &in_off, sizeof(in_off))) ||
		 (out_addr && sv_read_mem(tid, out_addr, &out_off, sizeof(out_off))))
		r = -EFAULT;
	if (len > SV_SYNC_WRITE_MAX)
		len = SV_SYNC_WRITE_MAX;
	if (!r && nr == SYS_splice)
		r = wait_readable(sv, n, in, flags);
	if (!r) {
		r = sf ? sendfile(out, in, in_addr ? &in_off : NULL, len) :
		    nr == SYS_splice ? splice(in, in_addr ? &in_off : NULL, out,
					      out_addr ? &out_off : NULL, len, flags) :
		    copy_file_range(in, in_addr ? &in_off : NULL, out, out_addr ? &out_off : NULL,
				    len, flags);
		if (r < 0)
			r = -errno;
	}
	if (r > 0 && ((in_addr && sv_write_mem(tid, in_addr, &in_off, sizeof(in_off))) ||
		      (out_addr && sv_write_mem(tid, out_addr, &out_off, sizeof(out_off)))))
		r = -EFAULT;
	if (r > 0 && (!(e.f = held_by_ino(sv, ino)) || sv_fsync(sv, &e) < 0))
		r = -EIO;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

bool sv_sync_write(struct sv *sv, const struct seccomp_notif *n, long *val)
{
	const __u64 *a = n->data.args;
	bool rwf = n->data.nr == SYS_pwritev2 && (a[5] & RT_RWF_SYNCING);
	unsigned long ino;
	struct sv_file *f;
	long flags;

	/* The common case: no protected file asked for it, nothing looked up. */
	if (!sv->files || (!sv->dsync_opens && !rwf))
		return false;
	if (fd_info((pid_t)n->pid, written_fd(n), &flags, &ino) ||
	    (!rwf && !(flags & O_DSYNC)) || !(f = held_by_ino(sv, ino)))
		return false;
	*val = transfer(n->data.nr) ? durable_transfer(sv, n, ino) : durable_write(sv, n, f);
	return true;
}
