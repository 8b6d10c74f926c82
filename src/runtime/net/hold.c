/* kiln runtime: plaintext held back so that consecutive writes share one TLS
 * record (network shield).
 *
 * nginx writes a response's header with writev and its body with sendfile:
 * sealed call by call, that is two records and two sendto where nginx's own
 * TLS makes one of each (its 16 KiB buffer). So a write whose tail is less
 * than a record keeps that tail in the connection (c->pend, counted as
 * written, as the kernel counts what it buffers) and the next write puts it
 * at the head of its own record. Nothing held may make the peer wait on the
 * program, so the tail is sealed and sent before anything that could make the
 * program wait or let the peer see the delay:
 *
 *   - this thread's next system call that is not a send on the same fd (every
 *     call of the program passes rt__net_call first: read, recv, poll, select,
 *     epoll_wait, accept, connect, close, shutdown, dup2, setsockopt
 *     (TCP_NODELAY, uncorking), fork, execve, exit, futex waits, sleeps, and
 *     the system calls of a signal handler);
 *   - any call of any thread on the connection (it takes c->lock, and
 *     rt__conn_flush seals first), and its close;
 *   - a record's worth (the write seals it at once);
 *   - RT_HOLD_NS (1 ms): a thread that computes without system calls (or
 *     calls only the vDSO) gets its tail sent by the engine thread, which
 *     ticks every millisecond while holds are recent (engine.c);
 *   - exit_group and execve, for every connection of the process.
 *
 * MSG_MORE is kept: a record sealed from writes that asked for it goes to
 * the kernel with MSG_MORE, and TCP_CORK stays the kernel's (it holds the
 * records it is given, as it held the plaintext). */
#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/net/internal.h"

_Atomic uint64_t g_hold_at;

bool rt__hold_ok(struct rt_conn *c)
{
	return atomic_load(&c->state) == RT_C_OPEN && !c->wr_shut && !c->foreign &&
	       !atomic_load(&c->out_pending);
}

int rt__hold_keep(struct rt_conn *c, const uint8_t *buf, size_t len, int flags)
{
	size_t have = c->pend_len;

	if (!c->pend) {
		c->pend = malloc(RT_NET_STAGE);
		if (!c->pend)
			return -ENOMEM;
	}
	memcpy(c->pend + have, buf + have, len - have);
	c->pend_len = len;
	c->pend_more = (flags & MSG_MORE) != 0;
	if (!have)
		atomic_store(&c->pend_ns, rt__now_ns());
	return 0;
}

int rt__hold_seal(struct rt_conn *c)
{
	size_t len = c->pend_len, got = 0;
	int ok;

	if (!len)
		return 0;
	c->pend_len = 0;
	atomic_store(&c->pend_ns, 0);
	if (atomic_load(&c->state) != RT_C_OPEN || c->foreign) {
		/* Failed since: lost with the connection, as a reset loses
		 * what the kernel had buffered. */
		free(c->pend);
		c->pend = NULL;
		return c->err ? c->err : -ECONNRESET;
	}
	ERR_clear_error();
	c->sock_errno = 0;
	c->send_flags = c->pend_more ? MSG_MORE : 0;
	ok = SSL_write_ex(c->ssl, c->pend, len, &got);
	c->send_flags = 0;
	free(c->pend);
	c->pend = NULL;
	if (!ok) {
		rt__conn_fail_ssl(c, SSL_get_error(c->ssl, 0), "TLS write failed");
		return c->err;
	}
	return 0;
}

void rt__hold_note(int fd)
{
	struct rt_thread *t = rt__thread();

	if (t)
		t->net_held = fd + 1;
	/* Seen by the engine before it stops ticking, or it sees us first
	 * (both sequentially consistent: see rt__engine_hold). */
	atomic_store(&g_hold_at, rt__now_ns());
	rt__engine_hold();
}

void rt__hold_flush_fd(int fd)
{
	struct rt_conn *c = rt__nobj_get(fd, RT_NOBJ_CONN);
	bool pend0;

	if (!c)
		return;
	if (atomic_load(&c->pend_ns)) {
		rt__conn_lock(c, fd);
		pend0 = atomic_load(&c->out_pending);
		if (c->pend_len && rt__conn_usable(c))
			rt__conn_flush(c);
		rt__conn_unlock(c);
		if (pend0 != atomic_load(&c->out_pending))
			rt__conn_changed(c);
	}
	rt__nobj_put(c, -1);
}

void rt__net_hold_flush(void)
{
	struct rt_thread *t = rt__thread_peek();
	struct rt_guard g;
	int fd;

	if (!t || !t->net_held)
		return;
	fd = t->net_held - 1;
	t->net_held = 0;
	rt__enter(&g);
	rt__hold_flush_fd(fd);
	rt__leave(&g);
}

void rt__net_hold_kick(void)
{
	struct rt_thread *t = rt__thread_peek();

	if (!t || !t->net_held)
		return;
	t->net_held = 0;
	rt__engine_kick();
}

size_t rt__hold_sweep(uint64_t before, struct rt_conn **changed, size_t max)
{
	size_t n = 0;

	for (struct rt_conn *c = g_net.conns; c; c = c->next) {
		uint64_t at = atomic_load(&c->pend_ns);
		bool pend0;
		int fd;

		if (!at || at > before)
			continue;
		pthread_mutex_lock(&c->lock);
		fd = c->fd_hint;
		/* Only through an fd that still names this connection (a close
		 * seals first, so a held connection has one). */
		if (c->pend_len && rt__nobj_peek(fd, RT_NOBJ_CONN) == c && rt__conn_usable(c)) {
			pend0 = atomic_load(&c->out_pending);
			c->io_fd = fd;
			rt__conn_flush(c);
			if (changed) /* the engine's sweep: it sends what the kernel did not take */
				rt__engine_watch_locked(c);
			if (pend0 != atomic_load(&c->out_pending) && n < max) {
				atomic_fetch_add(&c->obj.refs, 1);
				changed[n++] = c;
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
	return n;
}
