/* kiln runtime: pf storage callbacks for libkiln. Like the library's POSIX
 * storage, but every fd it opens is moved to the runtime-owned range (so the
 * app's fd numbers, closefrom() and dup2() never meet it) and every system call
 * is issued from the runtime's allowed region. Names are flat inside
 * "<volume dir>/.kiln", and as in src/pf/storage.c nothing planted there is
 * followed or opened for use: no symlink (O_NOFOLLOW, for ".kiln" itself too),
 * no FIFO, directory or device (-KILN_EUNSAFE, see kiln_open_own). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "pf/pf.h"
#include "runtime/internal.h"

/* The syncs one commit overlaps (pf's sync_start/sync_wait: the files' data
 * and the new metadata, while the freshness prepare runs) go through an
 * io_uring: IORING_OP_FSYNC runs in kernel workers, so they proceed in
 * parallel. sync_start and sync_dir_start only queue their entry; sync_submit
 * (pf calls it before the prepare), a blocking sync of this storage, or
 * sync_wait submits the queue with one io_uring_enter (sync_wait's also
 * waits): a one-file commit's three syncs are one submission, not three.
 * Made on first use, and again in a forked child (a ring must not be shared);
 * without io_uring (disabled, old kernel) every sync is done at once. */
struct ring {
	long pid;     /* process that made it; 0: none yet; -1: unavailable */
	int fd;       /* owned */
	void *sq, *cq;
	size_t sq_len, cq_len, sqes_len;
	struct io_uring_sqe *sqes;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_cqe *cqes;
	unsigned entries, inflight;
	unsigned queued; /* entries placed, not yet submitted */
	bool off;     /* a submission failed: the ring takes no new entries */
	int err;      /* first error of the syncs started since the last wait */
};

struct store {
	int dirfd; /* owned */
	struct ring r;
	/* Write-behind (st_writeback): its own ring, never waited on. */
	struct ring wr;
};

/* Names longer than this get no O_DIRECT descriptor (store_fh.dfd). */
#define ST_NAME_MAX 64

struct store_fh {
	int fd; /* owned */
	/* The same file opened again with O_DIRECT for pread_direct, at its
	 * first use (owned): -1 not yet, -2 not to be (refused, or the name
	 * moved). */
	int dfd;
	char name[ST_NAME_MAX];
	/* Written since the last write-back hint went out (st_writeback). */
	uint64_t wb_off, wb_end;
	int early; /* 1: st_flush_start's sync in flight; < 0: its error, for fh's next sync */
};

long rt__open_own(int dirfd, const char *path, int oflags, mode_t mode)
{
	struct stat st;
	long fd, r;

	do
		fd = rt__raw(SYS_openat, dirfd, path, oflags | KILN_O_OWN, mode);
	while (fd == -EINTR);
	if (fd < 0)
		return kiln_own_open_error((int)fd);
	r = rt__raw(SYS_fstat, fd, &st);
	if (r == 0)
		r = kiln_own_check(&st);
	if (r < 0) {
		rt__raw(SYS_close, fd);
		return r;
	}
	return fd;
}

static bool flat_name(const char *name)
{
	return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int st_open(void *ctx, const char *name, unsigned flags, void **fh)
{
	struct store *s = ctx;
	struct store_fh *h;
	int oflags = (flags & PF_SO_RDONLY) ? O_RDONLY : O_RDWR;
	long fd;

	if (!flat_name(name))
		return -EINVAL;
	if (flags & PF_SO_CREATE)
		oflags |= O_CREAT;
	if (flags & PF_SO_EXCL)
		oflags |= O_EXCL;
	if (flags & PF_SO_TRUNC)
		oflags |= O_TRUNC;
	fd = rt__open_own(s->dirfd, name, oflags, 0600);
	if (fd < 0)
		return (int)fd;
	fd = rt__own_fd((int)fd);
	if (fd < 0)
		return (int)fd;
	h = calloc(1, sizeof(*h));
	if (!h) {
		rt__own_close((int)fd);
		return -ENOMEM;
	}
	h->fd = (int)fd;
	h->dfd = -1;
	if (snprintf(h->name, sizeof(h->name), "%s", name) >= ST_NAME_MAX)
		h->dfd = -2;
	*fh = h;
	return 0;
}

/* h->dfd: the file h->name names opened with O_DIRECT, if that is still
 * h->fd's file (a rename since the open: not). */
static int open_direct(struct store *s, struct store_fh *h)
{
	struct stat a, b;
	long fd = rt__open_own(s->dirfd, h->name, O_RDONLY | O_DIRECT, 0);

	h->dfd = -2;
	if (fd < 0)
		return (int)fd;
	if (rt__raw(SYS_fstat, fd, &a) != 0 || rt__raw(SYS_fstat, h->fd, &b) != 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		rt__raw(SYS_close, fd);
		return -ESTALE;
	}
	fd = rt__own_fd((int)fd);
	if (fd < 0)
		return (int)fd;
	h->dfd = (int)fd;
	return 0;
}

/* pread until size bytes or EOF (an O_DIRECT fd: or a read that ends inside
 * a page, which ended at EOF). */
static ssize_t read_full(int fd, void *buf, size_t size, uint64_t off, bool direct)
{
	size_t done = 0;

	while (done < size && (!direct || done % PF_DIO_ALIGN == 0)) {
		long n = rt__raw(SYS_pread64, fd, (char *)buf + done, size - done, off + done);

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

/* See pf_storage_ops.pread_direct. */
static ssize_t st_pread_direct(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	struct store_fh *h = fh;
	struct kiln_cachestat_range range = { off, size };
	struct kiln_cachestat cs;
	long n;

	if (h->dfd == -2)
		return -EOPNOTSUPP;
	n = rt__raw(KILN_NR_CACHESTAT, h->fd, &range, &cs, 0);
	if (n < 0)
		return n; /* cannot tell: read through the cache */
	if (!kiln_read_around_cache(&cs, size, PF_DIO_ALIGN))
		return -EAGAIN;
	if (h->dfd == -1 && (n = open_direct(ctx, h)) < 0)
		return n;
	n = read_full(h->dfd, buf, size, off, true);
	if (n == -EINVAL) { /* this file system's O_DIRECT wants more */
		rt__own_close(h->dfd);
		h->dfd = -2;
	}
	return n;
}

/* See pf_storage_ops.direct_fd. */
static int st_direct_fd(void *ctx, void *fh)
{
	struct store_fh *h = fh;
	long n = h->dfd == -1 ? open_direct(ctx, h) : 0;

	if (n < 0 || h->dfd < 0)
		return n < 0 ? (int)n : -EOPNOTSUPP;
	return (int)rt__raw(SYS_fcntl, h->dfd, F_DUPFD_CLOEXEC, 0);
}

/* See pf_storage_ops.write_fd: the backing file's own descriptor, shared
 * (positional writes only: its offset is never used). */
static int st_write_fd(void *ctx, void *fh)
{
	(void)ctx;
	return (int)rt__raw(SYS_fcntl, ((struct store_fh *)fh)->fd, F_DUPFD_CLOEXEC, 0);
}

static ssize_t st_pread(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	return read_full(((struct store_fh *)fh)->fd, buf, size, off, false);
}

static ssize_t st_pwrite(void *ctx, void *fh, const void *buf, size_t size, uint64_t off)
{
	struct store_fh *h = fh;
	long n;

	do
		n = rt__raw(SYS_pwrite64, h->fd, buf, size, off);
	while (n == -EINTR);
	return n;
}

static int st_get_size(void *ctx, void *fh, uint64_t *size)
{
	struct store_fh *h = fh;
	struct stat st;
	long r = rt__raw(SYS_fstat, h->fd, &st);

	if (r < 0)
		return (int)r;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int st_truncate(void *ctx, void *fh, uint64_t size)
{
	struct store_fh *h = fh;

	return (int)rt__raw(SYS_ftruncate, h->fd, size);
}

static bool mapped(void *p)
{
	return p && (unsigned long)p < -4096ul;
}

static void ring_drop(struct ring *r)
{
	if (mapped(r->sqes))
		rt__raw(SYS_munmap, r->sqes, r->sqes_len);
	if (mapped(r->cq) && r->cq != r->sq)
		rt__raw(SYS_munmap, r->cq, r->cq_len);
	if (mapped(r->sq))
		rt__raw(SYS_munmap, r->sq, r->sq_len);
	if (r->pid > 0)
		rt__own_close(r->fd);
	memset(r, 0, sizeof(*r));
}

static bool ring_ready(struct ring *r)
{
	struct io_uring_params p = { 0 };
	long pid = rt__raw0(SYS_getpid), fd;

	if (r->pid == pid)
		return true;
	if (r->pid == -1)
		return false;
	if (r->pid > 0) {
		/* Inherited across fork: the parent's. Drop this process's copies. */
		r->inflight = 0;
		ring_drop(r);
	}
	r->pid = -1;
	/* Completions are posted only while this process waits for them
	 * (sync_wait): nothing interrupts its other blocking calls (a CAS
	 * request in the freshness prepare runs while the syncs are in flight). */
	p.flags = IORING_SETUP_COOP_TASKRUN;
	fd = rt__raw(SYS_io_uring_setup, 8, &p);
	if (fd < 0)
		return false;
	fd = rt__own_fd((int)fd);
	if (fd < 0)
		return false;
	r->fd = (int)fd;
	r->pid = pid;
	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		r->sq_len = r->cq_len = r->sq_len > r->cq_len ? r->sq_len : r->cq_len;
	r->sq = (void *)rt__raw(SYS_mmap, NULL, r->sq_len, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		r->cq = r->sq;
	else
		r->cq = (void *)rt__raw(SYS_mmap, NULL, r->cq_len, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = (void *)rt__raw(SYS_mmap, NULL, r->sqes_len, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
	if (!mapped(r->sq) || !mapped(r->cq) || !mapped(r->sqes)) {
		ring_drop(r);
		r->pid = -1;
		return false;
	}
	r->sq_tail = (unsigned *)((char *)r->sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)((char *)r->sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)((char *)r->sq + p.sq_off.array);
	r->cq_head = (unsigned *)((char *)r->cq + p.cq_off.head);
	r->cq_tail = (unsigned *)((char *)r->cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)((char *)r->cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)r->cq + p.cq_off.cqes);
	r->entries = p.sq_entries;
	return true;
}

/* Place e in r's submission queue (ready, not off, with room: inflight +
 * queued < entries); ring_submit submits it. */
static void ring_queue(struct ring *r, const struct io_uring_sqe *e)
{
	unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;

	r->sqes[idx] = *e;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	r->queued++;
}

/* Submit r's queued entries with one io_uring_enter that also waits for
 * min_complete completions (0: does not wait). Returns how many the kernel
 * did not take: the last ones queued, which stay in the ring unsubmitted (no
 * later enter submits any: the ring is then off). */
static unsigned ring_submit(struct ring *r, unsigned min_complete)
{
	unsigned queued = r->queued;
	long n;

	if (!queued)
		return 0;
	do
		n = rt__raw(SYS_io_uring_enter, r->fd, queued, min_complete,
			    min_complete ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
	while (n == -EINTR);
	r->queued = 0;
	if (n < 0)
		n = 0;
	if ((unsigned)n > queued)
		n = queued;
	r->inflight += (unsigned)n;
	if ((unsigned)n < queued)
		r->off = true;
	return queued - (unsigned)n;
}

/* Count r's completions; an early sync's (user_data: its fh) ends it. */
static void wr_reap(struct ring *r)
{
	unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);

	for (; head != tail && r->inflight > 0; head++, r->inflight--) {
		struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];

		if (c->user_data)
			((struct store_fh *)(uintptr_t)c->user_data)->early = c->res < 0 ? c->res : 0;
	}
	__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
}

/* Start e (a write-back, or h's early sync) in an io_uring worker, never
 * waited for here; not with the ring full or h's last one unreported. */
static bool wr_start(struct store *s, const struct io_uring_sqe *e, struct store_fh *h)
{
	struct ring *r = &s->wr;

	if (!ring_ready(r) || r->off)
		return false;
	wr_reap(r);
	if (r->inflight >= r->entries || (h && h->early))
		return false;
	ring_queue(r, e);
	return ring_submit(r, 0) == 0; /* not taken: the ring is off */
}

/* Wait for h's early sync, if one is in flight, and take its error. */
static int early_wait(struct store *s, struct store_fh *h)
{
	int err;

	while (h->early == 1 && (wr_reap(&s->wr), h->early == 1)) {
		long n = rt__raw(SYS_io_uring_enter, s->wr.fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);

		if (n < 0 && n != -EINTR)
			h->early = (int)n; /* cannot wait: its outcome is unknown */
	}
	err = h->early;
	h->early = 0;
	return err;
}

static int st_flush_start(void *ctx, void *fh)
{
	struct store_fh *h = fh;

	if (!wr_start(ctx, &(struct io_uring_sqe){ .opcode = IORING_OP_FSYNC, .fd = h->fd,
			.fsync_flags = IORING_FSYNC_DATASYNC, .user_data = (uintptr_t)h }, h))
		return 0;
	return h->early = 1;
}

/* Write-back hints go out in runs of this many bytes: one sync_file_range
 * per 256 KiB batch cost more than it saved (dd10: 0.95x). */
#define ST_WB_RUN ((uint64_t)4 << 20)

/* See pf_storage_ops.writeback: start the write-back of what a long
 * sequential write has put into the page cache, a run at a time, so that
 * the sync that ends it finds most of it on its way to the disk. Hints come
 * only for the batches pf's helper thread wrote: a small batch between them
 * (the end of each of the volume server's 1 MiB write-backs) was written by
 * the caller, so a hint up to a run past the last one continues its run
 * (the gap goes with it). */
static int st_writeback(void *ctx, void *fh, uint64_t off, uint64_t len)
{
	struct store_fh *h = fh;

	if (!len) /* at once, to the end (pf: a commit log record) */
		return (int)rt__raw(SYS_sync_file_range, h->fd, off, 0, SYNC_FILE_RANGE_WRITE);
	if (off < h->wb_off || off > h->wb_end + ST_WB_RUN)
		h->wb_off = off; /* elsewhere in the file: a new run */
	if (off + len > h->wb_end || h->wb_off == off)
		h->wb_end = off + len;
	if (h->wb_end - h->wb_off < ST_WB_RUN)
		return 0;
	off = h->wb_off;
	h->wb_off = h->wb_end;
	if (h->wb_end - off <= UINT32_MAX)
		wr_start(ctx, &(struct io_uring_sqe){ .opcode = IORING_OP_SYNC_FILE_RANGE,
				.fd = h->fd, .off = off, .len = (uint32_t)(h->wb_end - off),
				.sync_range_flags = SYNC_FILE_RANGE_WRITE }, NULL);
	return 0;
}

/* Submit the queued syncs (see ring_submit). The ones the kernel did not
 * take are done here, one by one (their fds stay open until sync_wait
 * returns); the ring then takes no new syncs, and sync_wait still collects
 * the ones submitted. 0, or an error of the syncs done here (kept for
 * sync_wait too). */
static int sync_submit(struct ring *r, unsigned min_complete)
{
	unsigned left, tail;

	if (!r->queued)
		return 0;
	if (r->pid != rt__raw0(SYS_getpid)) {
		/* A child forked while they were queued: the ring is the parent's. */
		left = r->queued;
		r->queued = 0;
	} else {
		left = ring_submit(r, min_complete);
	}
	tail = *r->sq_tail;
	for (unsigned i = left; i > 0; i--) {
		struct io_uring_sqe *e = &r->sqes[r->sq_array[(tail - i) & *r->sq_mask]];
		long nr = e->fsync_flags & IORING_FSYNC_DATASYNC ? SYS_fdatasync : SYS_fsync;
		int err = (int)rt__raw(nr, e->fd);

		if (err && !r->err)
			r->err = err;
	}
	return r->err;
}

/* Queue an fsync of fd in the ring (datasync: fdatasync, else fsync), or do
 * it here when the ring cannot take it. */
static int ring_fsync(struct ring *r, int fd, bool datasync)
{
	long nr = datasync ? SYS_fdatasync : SYS_fsync;
	struct io_uring_sqe e = { .opcode = IORING_OP_FSYNC, .fd = fd,
				  .fsync_flags = datasync ? IORING_FSYNC_DATASYNC : 0 };

	if (!ring_ready(r) || r->off || r->inflight + r->queued >= r->entries)
		return (int)rt__raw(nr, fd);
	ring_queue(r, &e);
	return 0;
}

static int st_sync(void *ctx, void *fh)
{
	struct store *s = ctx;
	struct store_fh *h = fh;
	int err = early_wait(s, h);

	(void)sync_submit(&s->r, 0); /* the queued syncs run beside this one */
	return err ? err : (int)rt__raw(SYS_fdatasync, h->fd);
}

static int st_sync_start(void *ctx, void *fh)
{
	struct store *s = ctx;
	struct store_fh *h = fh;
	int err = early_wait(s, h);

	return err ? err : ring_fsync(&s->r, h->fd, true);
}

/* The directory's fsync in the ring, beside the files' (sync_dir_start). */
static int st_sync_dir_start(void *ctx)
{
	struct store *s = ctx;

	return ring_fsync(&s->r, s->dirfd, false);
}

/* Start the queued syncs now (pf: before the freshness prepare, which they
 * overlap). */
static int st_sync_submit(void *ctx)
{
	struct store *s = ctx;

	return sync_submit(&s->r, 0);
}

static int st_sync_wait(void *ctx)
{
	struct store *s = ctx;
	struct ring *r = &s->r;
	int err;

	/* Submitted and waited for in one call when nothing was in flight. */
	(void)sync_submit(r, r->inflight ? 0 : r->queued);
	while (r->inflight > 0 && r->pid > 0) {
		unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
		long n;

		for (; head != tail && r->inflight > 0; head++, r->inflight--) {
			struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];

			if (cqe->res < 0 && !r->err)
				r->err = cqe->res;
		}
		__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
		if (r->inflight == 0)
			break;
		n = rt__raw(SYS_io_uring_enter, r->fd, 0, r->inflight, IORING_ENTER_GETEVENTS,
			    NULL, 0);
		if (n < 0 && n != -EINTR) {
			/* Cannot wait: the outcome of these syncs is unknown. */
			r->err = r->err ? r->err : (int)n;
			r->inflight = 0;
			r->off = true;
		}
	}
	err = r->err;
	r->err = 0;
	return err;
}

static int st_close(void *ctx, void *fh)
{
	struct store_fh *h = fh;

	if (!h)
		return 0;
	(void)early_wait(ctx, h); /* its completion names h */
	rt__own_close(h->fd);
	if (h->dfd >= 0)
		rt__own_close(h->dfd);
	free(h);
	return 0;
}

static int st_remove(void *ctx, const char *name)
{
	struct store *s = ctx;

	if (!flat_name(name))
		return -EINVAL;
	return kiln_own_open_error((int)rt__raw(SYS_unlinkat, s->dirfd, name, 0));
}

static int st_rename(void *ctx, const char *from, const char *to)
{
	struct store *s = ctx;

	if (!flat_name(from) || !flat_name(to))
		return -EINVAL;
	return kiln_own_open_error((int)rt__raw(SYS_renameat, s->dirfd, from, s->dirfd, to));
}

static int st_exchange(void *ctx, const char *a, const char *b)
{
	struct store *s = ctx;

	return (int)rt__raw(SYS_renameat2, s->dirfd, a, s->dirfd, b, RENAME_EXCHANGE);
}

static int st_sync_dir(void *ctx)
{
	struct store *s = ctx;

	(void)sync_submit(&s->r, 0);
	return (int)rt__raw(SYS_fsync, s->dirfd);
}

/* One syncfs for every file of a multi-file commit (see pf.h sync_all). */
static int st_sync_all(void *ctx)
{
	struct store *s = ctx;

	(void)sync_submit(&s->r, 0);
	return (int)rt__raw(SYS_syncfs, s->dirfd);
}

static int st_list(void *ctx, int (*cb)(void *arg, const char *name), void *arg)
{
	struct store *s = ctx;
	char buf[8192];
	long fd = rt__raw(SYS_openat, s->dirfd, ".", O_RDONLY | O_DIRECTORY | KILN_O_OWN);
	int ret = 0;

	if (fd < 0)
		return (int)fd;
	for (;;) {
		long n = rt__raw(SYS_getdents64, fd, buf, sizeof(buf));

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
	rt__raw(SYS_close, fd);
	return ret;
}

static void st_free(void *ctx)
{
	struct store *s = ctx;

	if (!s)
		return;
	if (s->r.pid == rt__raw0(SYS_getpid)) {
		(void)st_sync_wait(s);
		ring_drop(&s->r);
	}
	/* Write-behind still in flight finishes in the kernel. */
	if (s->wr.pid == rt__raw0(SYS_getpid))
		ring_drop(&s->wr);
	rt__own_close(s->dirfd);
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
	.sync_start = st_sync_start,
	.sync_wait = st_sync_wait,
	.sync_submit = st_sync_submit,
	.sync_dir_start = st_sync_dir_start,
	.list = st_list,
	.free = st_free,
	.pread_direct = st_pread_direct,
	.direct_fd = st_direct_fd,
	.write_fd = st_write_fd,
	.writeback = st_writeback,
	.flush_start = st_flush_start,
};

void rt__storage_no_overlap(void *ctx)
{
	struct store *s = ctx;

	s->r.pid = -1;
	s->wr.pid = -1; /* no write-behind either */
}

int rt__storage_open(int storefd, const struct pf_storage_ops **ops, void **ctx)
{
	struct store *s;
	long fd;

	/* A copy of the store directory the server has checked (never through
	 * a symlink, a directory) and locked: the lock stays the server's. */
	fd = rt__raw(SYS_fcntl, storefd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return (int)fd;
	fd = rt__own_fd((int)fd);
	if (fd < 0)
		return (int)fd;
	s = calloc(1, sizeof(*s));
	if (!s) {
		rt__own_close((int)fd);
		return -ENOMEM;
	}
	s->dirfd = (int)fd;
	*ops = &g_store_ops;
	*ctx = s;
	return 0;
}
