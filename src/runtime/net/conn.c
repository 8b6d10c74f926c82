/* kiln runtime: a TLS connection behind a program's socket (network shield):
 * its life, its handshake and its readiness. The data calls are io.c, the
 * socket under OpenSSL bio.c.
 *
 * The program's fd stays the real TCP socket; the runtime runs OpenSSL over
 * it and hands the program plaintext. The handshake runs inside the calls
 * that would have waited anyway (the first read or write, poll/epoll, a
 * blocking connect) and never blocks a non-blocking caller; its deadline is
 * the engine's (engine.c). Waits of blocking calls happen outside every lock,
 * with the program's signal mask, in system calls the kernel restarts as it
 * would the program's own (SA_RESTART) and that honour SO_RCVTIMEO and
 * SO_SNDTIMEO: a 1-byte MSG_PEEK recv for input, a blocking send of a copy of
 * the waiting ciphertext for output. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "runtime/net/internal.h"

#define BLOCKING_CHUNK 65536

/* ---- life -------------------------------------------------------------------- */
static uint64_t deadline(void)
{
	return rt__now_ns() + (uint64_t)g_net.cfg.handshake_ms * 1000000ull;
}

int rt__conn_new(int fd, bool server, SSL_CTX *ctx, const char *sni, const char *rule,
		 const struct sockaddr *peer, socklen_t peer_len, bool nonblock,
		 struct rt_conn **out)
{
	struct rt_conn *c = calloc(1, sizeof(*c));
	BIO *b;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->obj.type = RT_NOBJ_CONN;
	atomic_init(&c->obj.refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	c->server = server;
	atomic_init(&c->state, server ? RT_C_HANDSHAKE : RT_C_CONNECTING);
	atomic_init(&c->nonblock, nonblock);
	c->io_fd = c->fd_hint = fd;
	c->owner = (pid_t)rt__raw0(SYS_getpid);
	snprintf(c->rule, sizeof(c->rule), "%s", rule);
	if (peer)
		rt__addr_str(peer, peer_len, c->peer, sizeof(c->peer));
	else
		snprintf(c->peer, sizeof(c->peer), "(unknown)");
	c->ssl = SSL_new(ctx);
	b = c->ssl ? rt__conn_bio(c) : NULL;
	if (!b) {
		SSL_free(c->ssl);
		free(c);
		return -ENOMEM;
	}
	SSL_set_bio(c->ssl, b, b);
	if (server) {
		SSL_set_accept_state(c->ssl);
	} else {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(sni);

		SSL_set_connect_state(c->ssl);
		/* The name the certificate must carry; SNI only for DNS names. */
		if (ip) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), sni);
			ASN1_OCTET_STRING_free(ip);
		} else {
			SSL_set1_host(c->ssl, sni);
			SSL_set_tlsext_host_name(c->ssl, sni);
		}
	}
	ERR_clear_error();
	pthread_mutex_lock(&g_net.reg);
	c->next = g_net.conns;
	if (c->next)
		c->next->prev = c;
	g_net.conns = c;
	if (server) {
		c->deadline_ns = deadline();
		rt__engine_timer(c);
	}
	pthread_mutex_unlock(&g_net.reg);
	*out = c;
	return 0;
}

void rt__conn_free(struct rt_conn *c)
{
	SSL_free(c->ssl);
	free(c->out);
	free(c->pend);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->wlock);
	free(c);
}

void rt__conn_unlink(struct rt_conn *c)
{
	rt__epoll_forget_conn(c);
	rt__engine_untimer(c);
	rt__engine_unwatch(c);
	if (c->prev)
		c->prev->next = c->next;
	else if (g_net.conns == c)
		g_net.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

void rt__conn_destroy(struct rt_conn *c, int fd)
{
	bool linger = false;

	pthread_mutex_lock(&c->lock);
	if (fd >= 0 && !c->foreign) {
		c->io_fd = fd;
		/* close_notify when the session is up and nobody shut it yet,
		 * after what was held. */
		rt__hold_seal(c);
		if (atomic_load(&c->state) == RT_C_OPEN && !c->wr_shut) {
			SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		linger = rt__conn_flush(c) == -EAGAIN;
	}
	pthread_mutex_unlock(&c->lock);
	if (linger) {
		/* The kernel keeps sending after close(); so does the engine, on a
		 * copy of the socket, for what the kernel has not taken yet. */
		long dup = rt__raw(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0);
		int own = dup >= 0 ? rt__own_fd((int)dup) : (int)dup;

		if (own >= 0) {
			pthread_mutex_lock(&g_net.reg);
			rt__engine_linger(c, own);
			pthread_mutex_unlock(&g_net.reg);
			return;
		}
	}
	rt__conn_free(c);
}

int rt__conn_to_kernel(struct rt_conn *c, int fd, bool grow)
{
	int r, have = 0;
	socklen_t len = sizeof(have);

	pthread_mutex_lock(&c->lock);
	c->io_fd = fd;
	r = rt__conn_flush(c);
	/* The kernel counts a buffer's overhead too: ask for twice what is left
	 * beyond what it has (it doubles the value set again). Forced past
	 * wmem_max where the process may, else up to it. */
	if (r == -EAGAIN && grow &&
	    rt__raw(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0) {
		size_t left = c->out_len - c->out_off;
		int want = left > (size_t)(INT_MAX / 4) || have > INT_MAX / 2 ? INT_MAX / 2 :
			   have + 2 * (int)left;

		if (rt__raw(SYS_setsockopt, fd, SOL_SOCKET, SO_SNDBUFFORCE, &want,
			    sizeof(want)) != 0)
			rt__raw(SYS_setsockopt, fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
		r = rt__conn_flush(c);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* ---- under c->lock ------------------------------------------------------------ */
void rt__conn_lock(struct rt_conn *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	c->io_fd = fd;
	c->fd_hint = fd;
}

void rt__conn_unlock(struct rt_conn *c)
{
	/* Ciphertext counted as written waits: the engine sends it, whatever
	 * this thread does next (a blocking read, a sleep, a wait elsewhere). */
	bool watch = atomic_load(&c->out_pending) && !atomic_load(&c->watched) && !c->foreign;

	pthread_mutex_unlock(&c->lock);
	if (watch)
		rt__engine_watch(c);
}

void rt__conn_set_buffered(struct rt_conn *c)
{
	atomic_store(&c->buffered, !c->rd_eof && SSL_has_pending(c->ssl));
}

int rt__conn_flush(struct rt_conn *c)
{
	int r = rt__hold_seal(c);

	return r < 0 ? r : rt__conn_send_out(c);
}

int rt__conn_send_out(struct rt_conn *c)
{
	if (c->flushing)
		return -EAGAIN; /* a blocking send of the head is under way */
	while (c->out_off < c->out_len) {
		long n = rt__raw(SYS_sendto, c->io_fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL, 0, 0);

		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			return -EAGAIN;
		if (n < 0) {
			c->sock_errno = (int)-n;
			return (int)n;
		}
		c->out_off += (size_t)n;
	}
	/* Idle connections keep no buffer (thousands of them). */
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = c->out_cap = 0;
	atomic_store(&c->out_pending, false);
	return 0;
}

int rt__conn_handshake(struct rt_conn *c)
{
	int st = atomic_load(&c->state), r, e;

	if (st == RT_C_OPEN)
		return 0;
	if (st == RT_C_FAILED)
		return c->err;
	if (st == RT_C_CONNECTING)
		return -EAGAIN;
	ERR_clear_error();
	c->sock_errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		atomic_store(&c->state, RT_C_OPEN);
		c->deadline_ns = 0;
		r = rt__conn_flush(c);
		return r == -EAGAIN ? 0 : r;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		r = rt__conn_flush(c);
		return r == 0 || r == -EAGAIN ? -EAGAIN : r;
	}
	rt__conn_fail_ssl(c, e, "TLS handshake failed");
	return c->err;
}

/* The process that started a TLS session owns it: a forked copy must never
 * encrypt with the same keys and sequence numbers. */
bool rt__conn_usable(struct rt_conn *c)
{
	if (!c->foreign)
		return true;
	if (!c->said) {
		c->said = true;
		rt__say("network: %s: peer %s: connection belongs to process %d, which started "
			"its TLS session before forking: ECONNRESET here", c->rule, c->peer,
			(int)c->owner);
	}
	return false;
}

bool rt__conn_blocking(struct rt_conn *c, int flags)
{
	return !atomic_load(&c->nonblock) && !(flags & MSG_DONTWAIT);
}

/* ---- waiting (outside the guard) --------------------------------------------- */
long rt__conn_wait_input(int fd, struct rt_guard *g)
{
	char b;
	long n;

	rt__leave(g);
	n = rt__raw(SYS_recvfrom, fd, &b, 1, MSG_PEEK, 0, 0);
	rt__enter(g);
	/* Data, EOF, or an error the TLS layer will meet: look again. */
	return n >= 0 || (n != -EINTR && n != -EAGAIN) ? 0 : n;
}

long rt__conn_flush_blocking(struct rt_conn *c, int fd, struct rt_guard *g)
{
	uint8_t *tmp = NULL;
	long ret = 0;

	for (;;) {
		size_t len;
		long n;
		bool other;

		rt__conn_lock(c, fd);
		other = c->flushing;
		if (!other && rt__conn_flush(c) != -EAGAIN) {
			rt__conn_unlock(c);
			break; /* all sent, or the socket failed (the TLS layer says) */
		}
		if (other) {
			/* Another thread's blocking send: wait for room. */
			struct pollfd p = { fd, POLLOUT, 0 };

			rt__conn_unlock(c);
			rt__leave(g);
			n = rt__raw(SYS_poll, &p, 1, 100);
			rt__enter(g);
			if (n == -EINTR) {
				ret = -EINTR;
				break;
			}
			continue;
		}
		len = c->out_len - c->out_off;
		len = len < BLOCKING_CHUNK ? len : BLOCKING_CHUNK;
		if (!tmp && !(tmp = malloc(BLOCKING_CHUNK))) {
			rt__conn_unlock(c);
			ret = -ENOMEM;
			break;
		}
		memcpy(tmp, c->out + c->out_off, len);
		c->flushing = true;
		rt__conn_unlock(c);
		rt__leave(g);
		n = rt__raw(SYS_sendto, fd, tmp, len, MSG_NOSIGNAL, 0, 0);
		rt__enter(g);
		rt__conn_lock(c, fd);
		c->flushing = false;
		if (n > 0) {
			c->out_off += (size_t)n;
			if (c->out_off == c->out_len)
				rt__conn_flush(c); /* frees the buffer */
		}
		rt__conn_unlock(c);
		if (n < 0) {
			ret = n;
			break;
		}
	}
	free(tmp);
	return ret;
}

long rt__conn_settle(struct rt_conn *c, int fd, bool blocking, struct rt_guard *g)
{
	for (;;) {
		long r;
		bool pending;
		int st0 = atomic_load(&c->state);

		rt__conn_lock(c, fd);
		if (!rt__conn_usable(c)) {
			rt__conn_unlock(c);
			return -ECONNRESET;
		}
		r = rt__conn_handshake(c);
		pending = atomic_load(&c->out_pending);
		rt__conn_unlock(c);
		if (atomic_load(&c->state) != st0)
			rt__conn_changed(c);
		if (r != -EAGAIN)
			return r;
		if (!blocking)
			return -EAGAIN;
		if (atomic_load(&c->state) == RT_C_CONNECTING) {
			/* The program started the connect non-blocking, then made the
			 * socket blocking: wait for the TCP connect. */
			struct pollfd p = { fd, POLLOUT, 0 };

			rt__leave(g);
			r = rt__raw(SYS_poll, &p, 1, -1);
			rt__enter(g);
			if (r == -EINTR)
				return -EINTR;
			if (p.revents & (POLLERR | POLLHUP))
				return -ECONNREFUSED;
			atomic_store(&c->state, RT_C_HANDSHAKE);
			continue;
		}
		r = pending ? rt__conn_flush_blocking(c, fd, g) : rt__conn_wait_input(fd, g);
		if (r == -EINTR || r == -EAGAIN)
			return r;
	}
}

long rt__conn_connect_done(struct rt_conn *c, int fd, struct rt_guard *g)
{
	long r;

	atomic_store(&c->state, RT_C_HANDSHAKE);
	pthread_mutex_lock(&g_net.reg);
	c->deadline_ns = deadline();
	rt__engine_timer(c);
	pthread_mutex_unlock(&g_net.reg);
	r = rt__conn_settle(c, fd, true, g);
	/* The handshake is part of connect: a failure is a refused connect. */
	if (r == -EINTR)
		return -EINTR;
	return r < 0 ? -ECONNREFUSED : 0;
}

int rt__conn_so_error(struct rt_conn *c)
{
	int e = -1;

	pthread_mutex_lock(&c->lock);
	if (c->so_error) {
		e = c->so_error;
		c->so_error = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return e;
}

/* ---- readiness ------------------------------------------------------------------ */
unsigned rt__conn_interest(struct rt_conn *c, unsigned want)
{
	unsigned pend = atomic_load(&c->out_pending) ? POLLOUT : 0;

	switch (atomic_load(&c->state)) {
	case RT_C_CONNECTING:
		return POLLOUT;
	case RT_C_HANDSHAKE:
		return POLLIN | pend;
	case RT_C_OPEN:
		return (want & (POLLIN | POLLOUT | POLLRDHUP | POLLPRI)) | pend;
	default:
		return 0;
	}
}

unsigned rt__conn_ready_now(struct rt_conn *c, unsigned want)
{
	if (atomic_load(&c->state) == RT_C_FAILED || c->foreign)
		return (want & (POLLIN | POLLOUT)) | POLLERR | POLLHUP;
	return 0;
}

/* Is there application data (or its end)? Reads what the socket has. */
static void look(struct rt_conn *c)
{
	char b;
	size_t got = 0;
	int e;

	ERR_clear_error();
	c->sock_errno = 0;
	if (SSL_peek_ex(c->ssl, &b, 1, &got))
		return;
	e = SSL_get_error(c->ssl, 0);
	if (e == SSL_ERROR_ZERO_RETURN)
		c->rd_eof = true;
	else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		rt__conn_fail_ssl(c, e, "TLS record failed");
}

unsigned rt__conn_poll(struct rt_conn *c, int fd, unsigned want, unsigned kev)
{
	struct rt_guard g;
	unsigned vis = 0;
	int st0 = atomic_load(&c->state);
	bool pend0 = atomic_load(&c->out_pending), buf0 = atomic_load(&c->buffered);

	rt__enter(&g);
	rt__conn_lock(c, fd);
	if (!rt__conn_usable(c)) {
		vis = (want & (POLLIN | POLLOUT)) | POLLERR | POLLHUP;
		goto out;
	}
	if (atomic_load(&c->state) == RT_C_CONNECTING) {
		if (kev & (POLLERR | POLLHUP)) {
			/* The TCP connect failed: as the kernel says (and SO_ERROR is
			 * the kernel's). */
			vis = kev & (want | POLLERR | POLLHUP | POLLOUT);
			goto out;
		}
		if (!(kev & POLLOUT))
			goto out;
		atomic_store(&c->state, RT_C_HANDSHAKE);
		c->deadline_ns = deadline();
		rt__conn_unlock(c);
		pthread_mutex_lock(&g_net.reg);
		rt__engine_timer(c);
		pthread_mutex_unlock(&g_net.reg);
		rt__conn_lock(c, fd);
	}
	rt__conn_flush(c);
	if (atomic_load(&c->state) == RT_C_HANDSHAKE && rt__conn_handshake(c) == -EAGAIN)
		goto out;
	if (atomic_load(&c->state) == RT_C_OPEN && (want & (POLLIN | POLLRDHUP)) && !c->rd_eof &&
	    SSL_pending(c->ssl) <= 0 &&
	    ((kev & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)) || SSL_has_pending(c->ssl))) {
		look(c);
		rt__conn_flush(c);
	}
	if (atomic_load(&c->state) == RT_C_FAILED) {
		vis = (want & (POLLIN | POLLOUT)) | POLLERR | POLLHUP;
		goto out;
	}
	if (c->rd_eof)
		vis |= want & (POLLIN | POLLRDHUP);
	else if (SSL_pending(c->ssl) > 0)
		vis |= want & POLLIN;
	if ((want & POLLOUT) && (c->wr_shut || !atomic_load(&c->out_pending)))
		vis |= POLLOUT;
	if (kev & POLLHUP)
		vis |= POLLHUP;
out:
	if (atomic_load(&c->state) != RT_C_CONNECTING)
		rt__conn_set_buffered(c);
	rt__conn_unlock(c);
	rt__leave(&g);
	if (atomic_load(&c->state) != st0 || pend0 != atomic_load(&c->out_pending) ||
	    buf0 != atomic_load(&c->buffered))
		rt__conn_changed(c);
	return vis;
}
