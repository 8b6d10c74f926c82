/* kiln fs mount: the FUSE session loop, with what Debian 12's libfuse (3.14) lacks.
 *
 * libfuse's own multithreaded loop hands every request to libfuse, which answers
 * the ones it does not know with ENOSYS. O_TMPFILE arrives as FUSE_TMPFILE (Linux
 * 6.1), which libfuse gained only in 3.15: open(O_TMPFILE) on the mount would fail
 * with EOPNOTSUPP where ext4 succeeds. So this loop reads each request itself,
 * gives FUSE_TMPFILE to the mount's handler and everything else to libfuse
 * (fuse_session_process_buf), on a fixed pool of threads. As in libfuse's
 * fuse_loop_mt.c, the main thread waits for a worker to see the session end.
 * Workers are then woken by a signal (a read of /dev/fuse returns EINTR), not
 * cancelled as libfuse does: unwinding a cancelled thread through this file's
 * frames leaves their stack poisoned for ASan (a stack-use-after-scope report at
 * the thread's exit, make check). */
#include "cli/fs_mount.h"

#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct fm_tmpfile_req {
	struct fuse_session *se;
	uint64_t unique;
	uid_t uid;
	gid_t gid;
};

struct fm_loop {
	struct fuse_session *se;
	fm_tmpfile_fn tmpfile;
	sem_t finish; /* posted by each worker as it leaves */
	int error;    /* the first receive error (negative), under lock */
	pthread_mutex_t lock;
};

uid_t fm_tmpfile_uid(const struct fm_tmpfile_req *r)
{
	return r->uid;
}

gid_t fm_tmpfile_gid(const struct fm_tmpfile_req *r)
{
	return r->gid;
}

static int fm_send(struct fm_tmpfile_req *r, int error, struct iovec *iov, int n)
{
	struct fuse_out_header out = { .error = -error, .unique = r->unique };
	size_t len = sizeof(out);
	ssize_t w;

	iov[0].iov_base = &out;
	iov[0].iov_len = sizeof(out);
	for (int i = 1; i < n; i++)
		len += iov[i].iov_len;
	out.len = (uint32_t)len;
	w = writev(fuse_session_fd(r->se), iov, n);
	/* ENOENT: the request was interrupted and the kernel forgot it. */
	return w == (ssize_t)len ? 0 : w < 0 ? -errno : -EIO;
}

int fm_reply_tmpfile_err(struct fm_tmpfile_req *r, int error)
{
	struct iovec iov[1];

	return fm_send(r, error, iov, 1);
}

static void fm_attr_out(const struct stat *st, struct fuse_attr *a)
{
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

/* Seconds and nanoseconds of a timeout, as libfuse's calc_timeout_sec/nsec. */
static void fm_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
	if (t <= 0) {
		*sec = 0;
		*nsec = 0;
		return;
	}
	*sec = (uint64_t)t;
	*nsec = (uint32_t)((t - (double)*sec) * 1e9);
}

int fm_reply_tmpfile(struct fm_tmpfile_req *r, const struct fuse_entry_param *e,
		     const struct fuse_file_info *fi)
{
	struct fuse_entry_out eo = { .nodeid = e->ino, .generation = e->generation };
	struct fuse_open_out oo = { .fh = fi->fh };
	struct iovec iov[3];

	fm_timeout(e->entry_timeout, &eo.entry_valid, &eo.entry_valid_nsec);
	fm_timeout(e->attr_timeout, &eo.attr_valid, &eo.attr_valid_nsec);
	fm_attr_out(&e->attr, &eo.attr);
	if (fi->keep_cache)
		oo.open_flags |= FOPEN_KEEP_CACHE;
	iov[1].iov_base = &eo;
	iov[1].iov_len = sizeof(eo);
	iov[2].iov_base = &oo;
	iov[2].iov_len = sizeof(oo);
	return fm_send(r, 0, iov, 3);
}

/* FUSE_TMPFILE: struct fuse_create_in then the dentry's name (unused). false
 * when buf is not such a request (libfuse answers it). */
static bool fm_take_tmpfile(struct fm_loop *l, const struct fuse_buf *buf)
{
	const struct fuse_in_header *in = buf->mem;
	const struct fuse_create_in *arg;
	struct fm_tmpfile_req r;

	if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < sizeof(*in) ||
	    in->opcode != FUSE_TMPFILE || !l->tmpfile)
		return false;
	r = (struct fm_tmpfile_req){ .se = l->se, .unique = in->unique, .uid = in->uid,
				     .gid = in->gid };
	if (in->len > buf->size || in->len < sizeof(*in) + sizeof(*arg)) {
		fm_reply_tmpfile_err(&r, EINVAL);
		return true;
	}
	arg = (const struct fuse_create_in *)(in + 1);
	l->tmpfile(&r, in->nodeid, arg->mode, (int)arg->flags);
	return true;
}

struct fm_worker {
	struct fm_loop *l;
	pthread_t thread;
	struct fuse_buf buf; /* freed by fm_session_loop */
};

/* SIGUSR1 wakes a worker blocked reading /dev/fuse (installed without
 * SA_RESTART: the read fails with EINTR and the worker sees the session end). */
#define FM_WAKE_SIGNAL SIGUSR1

static void fm_wake(int sig)
{
	(void)sig;
}

/* Wait for worker t to end, waking it every 50 ms until it does (a signal sent
 * just before it starts reading is not seen by that read). */
static void fm_join(pthread_t t)
{
	for (;;) {
		struct timespec ts;

		pthread_kill(t, FM_WAKE_SIGNAL);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(t, NULL, &ts) == 0)
			return;
	}
}

static void *fm_worker(void *arg)
{
	struct fm_worker *w = arg;
	struct fm_loop *l = w->l;

	while (!fuse_session_exited(l->se)) {
		int res = fuse_session_receive_buf(l->se, &w->buf);

		if (res == -EINTR)
			continue;
		if (res <= 0) { /* 0: unmounted */
			if (res < 0) {
				pthread_mutex_lock(&l->lock);
				if (!l->error)
					l->error = res;
				pthread_mutex_unlock(&l->lock);
			}
			fuse_session_exit(l->se);
			break;
		}
		if (!fm_take_tmpfile(l, &w->buf))
			fuse_session_process_buf(l->se, &w->buf);
	}
	sem_post(&l->finish);
	return NULL;
}

int fm_session_loop(struct fuse_session *se, unsigned nthreads, fm_tmpfile_fn tmpfile)
{
	struct sigaction sa = { .sa_handler = fm_wake }, old_sa;
	struct fm_loop l = { .se = se, .tmpfile = tmpfile };
	struct fm_worker *w = calloc(nthreads, sizeof(*w));
	unsigned started = 0;
	int ret = 0;

	if (!w)
		return -ENOMEM;
	sigemptyset(&sa.sa_mask);
	if (sigaction(FM_WAKE_SIGNAL, &sa, &old_sa) != 0) {
		ret = -errno;
		free(w);
		return ret;
	}
	pthread_mutex_init(&l.lock, NULL);
	sem_init(&l.finish, 0, 0);
	for (; started < nthreads; started++) {
		w[started].l = &l;
		if ((ret = -pthread_create(&w[started].thread, NULL, fm_worker, &w[started]))) {
			fuse_session_exit(se);
			break;
		}
	}
	/* sem_wait is interrupted by the signals fuse_set_signal_handlers catches,
	 * whose handler ends the session. */
	while (started && !fuse_session_exited(se))
		sem_wait(&l.finish);
	for (unsigned i = 0; i < started; i++) {
		fm_join(w[i].thread);
		free(w[i].buf.mem);
	}
	sigaction(FM_WAKE_SIGNAL, &old_sa, NULL);
	if (!ret)
		ret = l.error;
	sem_destroy(&l.finish);
	pthread_mutex_destroy(&l.lock);
	free(w);
	fuse_session_reset(se);
	return ret;
}
