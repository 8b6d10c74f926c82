/* kiln runtime: the program's data calls on a TLS connection (network shield).
 *
 * A read returns as much plaintext as there is, so a short read means the
 * socket is drained (what edge-triggered programs such as nginx assume), and
 * a non-blocking read says EAGAIN only after the socket did. A write encrypts
 * at most what it reports written: what the kernel does not take at once is
 * kept and counts as sent (as kernel TLS would count it; the engine sends it
 * as the kernel takes it, whatever the program does next: engine.c), and a
 * non-blocking write says EAGAIN only while older ciphertext still waits. The program's
 * buffers are read and written through the fault-safe copies (EFAULT, never a
 * crash), staged through a buffer of the runtime's. */
#include <errno.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/net/internal.h"

#define RECORD RT_NET_STAGE /* plaintext per record we write, and per staged read */
#define PAGE 4096

RT_TLS bool t_net_sigpipe; /* the call ends with EPIPE: SIGPIPE (sys/socket.c) */

/* RECORD bytes per thread, in its block (thread.c: made by its first guard,
 * unmapped when it exits; static TLS holds no more than the block's pointer). */
static uint8_t *stage(void)
{
	struct rt_thread *t = rt__thread();

	return t ? t->stage : NULL;
}

/* Can the program's buffer take n bytes? (Each page written with what it
 * holds: nothing changes.) A read then never consumes plaintext it cannot
 * deliver. */
static bool writable(void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, end = a + n;
	char b;

	for (; a < end; a = (a | (PAGE - 1)) + 1)
		if (rt__copy_in(&b, (void *)a, 1) || rt__copy_out((void *)a, &b, 1))
			return false;
	return n == 0 || (!rt__copy_in(&b, (void *)(end - 1), 1) &&
			  !rt__copy_out((void *)(end - 1), &b, 1));
}

long rt__conn_read(struct rt_conn *c, int fd, const struct iovec *iov, int cnt, int flags,
		   struct rt_guard *g)
{
	bool blocking = rt__conn_blocking(c, flags);
	size_t total = 0, want = 0, off = 0;
	uint8_t *buf = stage();
	int k = 0;
	long r;

	if (flags & MSG_OOB)
		return -EINVAL; /* no urgent data through TLS */
	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < cnt; i++) {
		if (!writable(iov[i].iov_base, iov[i].iov_len))
			return -EFAULT;
		want += iov[i].iov_len;
	}
	if (!want)
		return 0;
	r = rt__conn_settle(c, fd, blocking, g);
	if (r < 0)
		return r;
	for (;;) {
		bool eof, failed, fault = false;

		rt__conn_lock(c, fd);
		rt__conn_flush(c);
		/* As much as there is: a short read means the socket is drained. */
		while (k < cnt && !c->rd_eof && atomic_load(&c->state) == RT_C_OPEN) {
			size_t room = iov[k].iov_len - off, got = 0;
			int ok, e;

			if (!room) {
				k++;
				off = 0;
				continue;
			}
			ERR_clear_error();
			c->sock_errno = 0;
			room = room < RECORD ? room : RECORD;
			ok = flags & MSG_PEEK ? SSL_peek_ex(c->ssl, buf, room, &got) :
						SSL_read_ex(c->ssl, buf, room, &got);
			if (ok) {
				if (rt__copy_out((char *)iov[k].iov_base + off, buf, got)) {
					/* Unmapped since we looked: the bytes are gone, and
					 * so is the stream's consistency. */
					rt__conn_fail(c, -ECONNRESET, "read into memory that went "
						      "away: the connection cannot go on");
					fault = true;
					break;
				}
				total += got;
				off += got;
				if (flags & MSG_PEEK)
					break; /* one look, nothing consumed */
				continue;
			}
			e = SSL_get_error(c->ssl, 0);
			if (e == SSL_ERROR_ZERO_RETURN)
				c->rd_eof = true;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				rt__conn_fail_ssl(c, e, "TLS record failed");
			break;
		}
		eof = c->rd_eof;
		failed = atomic_load(&c->state) == RT_C_FAILED || !rt__conn_usable(c);
		rt__conn_set_buffered(c);
		rt__conn_unlock(c);
		if (fault)
			return -EFAULT;
		if (failed)
			return total ? (long)total : c->err ? c->err : -ECONNRESET;
		if (total && (!(flags & MSG_WAITALL) || (flags & MSG_PEEK) || total == want ||
			      !blocking))
			return (long)total;
		if (eof)
			return (long)total;
		if (!blocking)
			return -EAGAIN;
		r = rt__conn_wait_input(fd, g);
		if (r < 0)
			return total ? (long)total : r;
	}
}

/* The call ends with EPIPE: SIGPIPE as the kernel would send it, once the
 * caller is out of the runtime (not with MSG_NOSIGNAL). */
static long epipe(struct rt_conn *c, int flags)
{
	(void)c;
	if (!(flags & MSG_NOSIGNAL))
		t_net_sigpipe = true;
	return -EPIPE;
}

/* The program's buffers as a stream of pieces of at most one record, small
 * ones gathered, after what the connection held (nginx's header + body
 * become one record, not two). */
struct cursor {
	const struct iovec *iov;
	int cnt, k;
	size_t off;
};

/* The next piece, copied into buf (room bytes): its size, 0 at the end,
 * -EFAULT. */
static long next_piece(struct cursor *cu, uint8_t *buf, size_t room)
{
	size_t n = 0, off = cu->off;

	for (int k = cu->k; k < cu->cnt && n < room; k++, off = 0) {
		size_t len = cu->iov[k].iov_len - off;

		if (len > room - n)
			len = room - n;
		if (len && rt__copy_in(buf + n, (const char *)cu->iov[k].iov_base + off, len))
			return n ? (long)n : -EFAULT;
		n += len;
	}
	return (long)n;
}

static void advance(struct cursor *cu, size_t n)
{
	while (n && cu->k < cu->cnt) {
		size_t left = cu->iov[cu->k].iov_len - cu->off, d = n < left ? n : left;

		cu->off += d;
		n -= d;
		if (cu->off == cu->iov[cu->k].iov_len) {
			cu->k++;
			cu->off = 0;
		}
	}
}

/* Nothing left of the program's buffers? */
static bool at_end(const struct cursor *cu)
{
	for (int k = cu->k; k < cu->cnt; k++)
		if (cu->iov[k].iov_len > (k == cu->k ? cu->off : 0))
			return false;
	return true;
}

long rt__conn_write(struct rt_conn *c, int fd, const struct iovec *iov, int cnt, int flags,
		    struct rt_guard *g)
{
	bool blocking = rt__conn_blocking(c, flags), held = false;
	struct cursor cu = { iov, cnt, 0, 0 };
	uint8_t *buf = stage();
	size_t total = 0;
	long r;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (!buf)
		return -ENOMEM;
	r = rt__conn_settle(c, fd, blocking, g);
	if (r == -EAGAIN || r == -EINTR)
		return r;
	if (r < 0)
		return epipe(c, flags);
	pthread_mutex_lock(&c->wlock);
	for (;;) {
		size_t got = 0, have;
		long n;
		int e = 0;
		bool reset;

		rt__conn_lock(c, fd);
		if (!rt__conn_usable(c) || c->wr_shut || atomic_load(&c->state) == RT_C_FAILED) {
			rt__conn_unlock(c);
			r = total ? (long)total : epipe(c, flags);
			break;
		}
		/* The ciphertext waiting; what is held joins this record. */
		r = rt__conn_send_out(c);
		if (r == -EAGAIN) {
			rt__conn_unlock(c);
			if (!blocking || total) {
				r = total ? (long)total : -EAGAIN;
				break;
			}
			r = rt__conn_flush_blocking(c, fd, g);
			if (r < 0) {
				r = r == -EPIPE || r == -ECONNRESET ? epipe(c, flags) : r;
				break;
			}
			continue;
		}
		if (r < 0) {
			rt__conn_fail(c, -ECONNRESET, "send: %s", kiln_strerror((int)-r));
			rt__conn_unlock(c);
			r = total ? (long)total : epipe(c, flags);
			break;
		}
		have = c->pend_len;
		if (have)
			memcpy(buf, c->pend, have);
		n = next_piece(&cu, buf + have, RECORD - have);
		if (n <= 0) {
			rt__conn_unlock(c);
			r = total ? (long)total : n;
			break;
		}
		advance(&cu, (size_t)n);
		/* Less than a record and the call's last bytes: hold them for
		 * the next write (hold.c says until when). */
		if (have + (size_t)n < RECORD && at_end(&cu) && rt__hold_ok(c) &&
		    !rt__hold_keep(c, buf, have + (size_t)n, flags)) {
			rt__conn_unlock(c);
			total += (size_t)n;
			r = (long)total;
			held = true;
			break;
		}
		ERR_clear_error();
		c->sock_errno = 0;
		c->send_flags = flags & MSG_MORE;
		c->pend_len = 0;
		atomic_store(&c->pend_ns, 0);
		if (!SSL_write_ex(c->ssl, buf, have + (size_t)n, &got))
			e = SSL_get_error(c->ssl, 0);
		c->send_flags = 0;
		free(c->pend);
		c->pend = NULL;
		reset = e && c->sock_errno == ECONNRESET;
		if (e)
			rt__conn_fail_ssl(c, e, "TLS write failed");
		rt__conn_unlock(c);
		if (e) {
			/* The kernel's pending reset is this call's error (no
			 * SIGPIPE); later writes get EPIPE, as on a plain socket. */
			r = total ? (long)total : reset ? -ECONNRESET : epipe(c, flags);
			break;
		}
		total += (size_t)n;
		if (atomic_load(&c->out_pending)) {
			/* The kernel is full: a non-blocking writer stops here (what it
			 * wrote counts; the rest of its record waits in c->out). */
			rt__conn_changed(c);
			if (!blocking) {
				r = (long)total;
				break;
			}
		}
	}
	pthread_mutex_unlock(&c->wlock);
	if (held)
		rt__hold_note(fd);
	return r;
}

long rt__conn_send_from(struct rt_conn *c, int fd, int in_fd, int64_t *off, size_t n,
			bool in_pipe, struct rt_guard *g)
{
	size_t chunk = 4 * RECORD, total = 0;
	uint8_t *buf = malloc(chunk);
	long r = 0;

	if (!buf)
		return -ENOMEM;
	while (total < n) {
		size_t want = n - total < chunk ? n - total : chunk;
		long a[6] = { in_fd, (long)buf, (long)want, off ? (long)*off : 0, 0, 0 };
		struct iovec v;
		long got, w;

		/* Read only what can be sent now: a non-blocking caller whose
		 * socket is full gets EAGAIN before anything is taken. */
		if (atomic_load(&c->out_pending) && (total || !rt__conn_blocking(c, 0))) {
			rt__conn_lock(c, fd);
			r = rt__conn_flush(c);
			rt__conn_unlock(c);
			if (r == -EAGAIN) {
				if (!total)
					r = -EAGAIN;
				break;
			}
		}
		/* Through the dispatcher: a protected file as the file shield serves
		 * it (its chunks made valid first). Outside the guard, as the
		 * program's own call. With no volume mounted and an fd the runtime
		 * does not track, the dispatcher would only pass the call on: then
		 * straight to the kernel, in the guard (a pair of rt_sigprocmask
		 * less per sendfile: nginx makes one per response). */
		if (!rt__shield_on() && rt_fd_kind(in_fd) == RT_FD_NONE) {
			got = rt__raw(off && !in_pipe ? SYS_pread64 : SYS_read, a[0], a[1], a[2], a[3]);
		} else {
			rt__leave(g);
			got = rt__dispatch(off && !in_pipe ? SYS_pread64 : SYS_read, a, NULL);
			rt__enter(g);
		}
		if (got <= 0) {
			r = got;
			break;
		}
		v.iov_base = buf;
		v.iov_len = (size_t)got;
		/* buf is the runtime's: the copies of rt__conn_write read it safely. */
		w = rt__conn_write(c, fd, &v, 1, MSG_NOSIGNAL, g);
		if (w < 0) {
			if (!off && !in_pipe)
				rt__raw(SYS_lseek, in_fd, -got, SEEK_CUR);
			r = w;
			break;
		}
		if (w < got && !off && !in_pipe)
			rt__raw(SYS_lseek, in_fd, -(got - w), SEEK_CUR);
		if (off)
			*off += w;
		total += (size_t)w;
		if (w < got)
			break;
	}
	free(buf);
	if (total)
		return (long)total;
	return r == -EPIPE ? epipe(c, 0) : r;
}

long rt__conn_splice_to(struct rt_conn *c, int fd, int out_fd, size_t n, bool nonblock,
			struct rt_guard *g)
{
	size_t size = n < 4 * RECORD ? n : 4 * RECORD;
	uint8_t *buf = malloc(size);
	struct iovec v = { buf, size };
	long got, w;

	if (!buf)
		return -ENOMEM;
	/* Look, write what the pipe takes, then consume exactly that. */
	got = rt__conn_read(c, fd, &v, 1, MSG_PEEK | (nonblock ? MSG_DONTWAIT : 0), g);
	if (got <= 0) {
		free(buf);
		return got;
	}
	w = rt__raw(SYS_write, out_fd, buf, got);
	if (w > 0) {
		v.iov_len = (size_t)w;
		rt__conn_read(c, fd, &v, 1, MSG_DONTWAIT, g);
	}
	free(buf);
	return w;
}

long rt__conn_shutdown(struct rt_conn *c, int fd, int how, struct rt_guard *g)
{
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (how != SHUT_RD) {
		/* close_notify after what was written, then the FIN. */
		pthread_mutex_lock(&c->wlock);
		rt__conn_lock(c, fd);
		rt__hold_seal(c); /* what was held goes before close_notify */
		if (atomic_load(&c->state) == RT_C_OPEN && !c->wr_shut && rt__conn_usable(c)) {
			SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		c->wr_shut = true;
		rt__conn_flush(c);
		rt__conn_unlock(c);
		if (atomic_load(&c->out_pending) && rt__conn_blocking(c, 0))
			rt__conn_flush_blocking(c, fd, g);
		pthread_mutex_unlock(&c->wlock);
	}
	if (how != SHUT_WR) {
		rt__conn_lock(c, fd);
		c->rd_eof = true;
		rt__conn_set_buffered(c);
		rt__conn_unlock(c);
	}
	rt__conn_changed(c);
	/* The FIN must follow the ciphertext still held (a non-blocking socket
	 * whose kernel buffer is full): then it goes at close, after the engine
	 * sent the rest. */
	if (how != SHUT_RD && atomic_load(&c->out_pending))
		return how == SHUT_RDWR ? rt__raw(SYS_shutdown, fd, SHUT_RD) : 0;
	return rt__raw(SYS_shutdown, fd, how);
}
