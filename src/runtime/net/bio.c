/* kiln runtime: the socket under OpenSSL, and how a connection fails.
 *
 * The BIO never blocks, whatever the program's mode: reads are
 * MSG_DONTWAIT (EAGAIN is "retry"), and writes hand the kernel what it takes
 * and keep the rest in c->out, reporting everything written: OpenSSL never
 * sees WANT_WRITE, a record is never half-owned by a caller that might not
 * come back with the same bytes, and the stream keeps its order (nothing is
 * sent while older bytes wait). Whoever holds the connection next sends what
 * waits (rt__conn_flush), or the engine when the socket has room (engine.c). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/net/internal.h"

#define OUT_MIN 32768

struct bio_state {
	struct rt_conn *c;
	bool eof;
};

static BIO_METHOD *g_bio;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

static int out_append(struct rt_conn *c, const void *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t live = c->out_len - c->out_off, cap = live + n;
		uint8_t *b;

		cap = cap < OUT_MIN ? OUT_MIN : cap * 2;
		b = malloc(cap);
		if (!b)
			return -ENOMEM;
		if (live)
			memcpy(b, c->out + c->out_off, live);
		free(c->out);
		c->out = b;
		c->out_cap = cap;
		c->out_off = 0;
		c->out_len = live;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	atomic_store(&c->out_pending, true);
	return 0;
}

static int bio_write(BIO *b, const char *data, int len)
{
	struct bio_state *s = BIO_get_data(b);
	struct rt_conn *c = s->c;
	long n = 0;

	BIO_clear_retry_flags(b);
	c->tls_started = true;
	if (c->out_off == c->out_len && !c->flushing) {
		do
			n = rt__raw(SYS_sendto, c->io_fd, data, len,
				    MSG_DONTWAIT | MSG_NOSIGNAL | c->send_flags, 0, 0);
		while (n == -EINTR);
		if (n < 0 && n != -EAGAIN) {
			c->sock_errno = (int)-n;
			return -1;
		}
		if (n < 0)
			n = 0;
	}
	if (n < len && out_append(c, data + n, (size_t)(len - n)) < 0) {
		c->sock_errno = ENOMEM;
		return -1;
	}
	return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct bio_state *s = BIO_get_data(b);
	struct rt_conn *c = s->c;
	long n;

	BIO_clear_retry_flags(b);
	do
		n = rt__raw(SYS_recvfrom, c->io_fd, buf, len, MSG_DONTWAIT, 0, 0);
	while (n == -EINTR);
	if (n > 0) {
		c->tls_started = true;
		return (int)n;
	}
	if (n == 0) {
		s->eof = true; /* BIO_eof: OpenSSL then ends the stream */
		return 0;
	}
	if (n == -EAGAIN) {
		BIO_set_retry_read(b);
		return -1;
	}
	c->sock_errno = (int)-n;
	return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct bio_state *s = BIO_get_data(b);

	(void)num;
	(void)ptr;
	if (cmd == BIO_CTRL_FLUSH)
		return 1;
	if (cmd == BIO_CTRL_EOF)
		return s && s->eof;
	return 0;
}

static int bio_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static void bio_method(void)
{
	g_bio = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kiln socket");
	if (!g_bio)
		return;
	BIO_meth_set_write(g_bio, bio_write);
	BIO_meth_set_read(g_bio, bio_read);
	BIO_meth_set_ctrl(g_bio, bio_ctrl);
	BIO_meth_set_destroy(g_bio, bio_destroy);
}

BIO *rt__conn_bio(struct rt_conn *c)
{
	struct bio_state *s;
	BIO *b;

	pthread_once(&g_bio_once, bio_method);
	s = g_bio ? calloc(1, sizeof(*s)) : NULL;
	b = s ? BIO_new(g_bio) : NULL;
	if (!b) {
		free(s);
		return NULL;
	}
	s->c = c;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return b;
}

/* ---- failures ---------------------------------------------------------------- */
/* At most this many failure lines per second, then a count: a scanner
 * hammering a TLS port must not flood the program's stderr. */
#define SAY_PER_SECOND 10

void rt__conn_fail(struct rt_conn *c, int err, const char *fmt, ...)
{
	static _Atomic uint64_t window, count, dropped;
	uint64_t now = rt__now_ns() / 1000000000ull, d;
	char why[300];
	va_list ap;

	atomic_store(&c->state, RT_C_FAILED);
	c->err = err;
	c->so_error = -err;
	c->deadline_ns = 0;
	if (c->said)
		return;
	c->said = true;
	if (!fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (atomic_exchange(&window, now) != now)
		atomic_store(&count, 0);
	if (atomic_fetch_add(&count, 1) >= SAY_PER_SECOND) {
		atomic_fetch_add(&dropped, 1);
		return;
	}
	d = atomic_exchange(&dropped, 0);
	if (d)
		rt__say("network: (%llu more connection failures not shown)",
			(unsigned long long)d);
	rt__say("network: %s: peer %s: %s", c->rule, c->peer, why);
}

void rt__conn_fail_ssl(struct rt_conn *c, int e, const char *what)
{
	unsigned long code = ERR_peek_last_error();
	const char *reason = code ? ERR_reason_error_string(code) : NULL;
	long v = SSL_get_verify_result(c->ssl);

	if ((e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && !code)) &&
	    (c->sock_errno == ECONNRESET || c->sock_errno == EPIPE) &&
	    atomic_load(&c->state) != RT_C_HANDSHAKE) {
		/* An established connection the peer reset: a result the program
		 * expects and gets (ECONNRESET, EPIPE), as without the shield;
		 * nothing to log. */
		rt__conn_fail(c, -ECONNRESET, NULL);
	} else if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && !code)) {
		if (c->sock_errno)
			rt__conn_fail(c, -ECONNRESET, "%s: %s", what, kiln_strerror(c->sock_errno));
		else
			rt__conn_fail(c, -ECONNRESET, "%s: the peer closed the connection", what);
	} else if (v != X509_V_OK && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		rt__conn_fail(c, -ECONNRESET, "%s: certificate verify failed: %s", what,
			      X509_verify_cert_error_string(v));
	} else if (ERR_GET_REASON(code) == SSL_R_UNSUPPORTED_PROTOCOL ||
		   ERR_GET_REASON(code) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) {
		rt__conn_fail(c, -ECONNRESET, "%s: no TLS version in common with the peer (the "
			      "policy allows TLS %s and later: network.min_tls)", what,
			      g_net.cfg.tls12 ? "1.2" : "1.3");
	} else if (ERR_GET_REASON(code) == SSL_R_HTTP_REQUEST) {
		rt__conn_fail(c, -ECONNRESET, "%s: the peer speaks plaintext HTTP, not TLS", what);
	} else if (atomic_load(&c->state) == RT_C_HANDSHAKE &&
		   (ERR_GET_REASON(code) == SSL_R_WRONG_VERSION_NUMBER ||
		    ERR_GET_REASON(code) == SSL_R_UNKNOWN_PROTOCOL ||
		    ERR_GET_REASON(code) == SSL_R_PACKET_LENGTH_TOO_LONG ||
		    ERR_GET_REASON(code) == SSL_R_RECORD_LENGTH_MISMATCH)) {
		rt__conn_fail(c, -ECONNRESET, "%s: %s (the peer does not speak TLS: plaintext?)",
			      what, reason);
	} else {
		rt__conn_fail(c, -ECONNRESET, "%s: %s", what, reason ? reason : "TLS error");
	}
	ERR_clear_error();
}
