/* casclient: the socket BIO under the TLS connection. OpenSSL's socket BIO
 * writes with write(2), so a write to a connection the CAS has closed (an idle
 * keep-alive connection, a restart) raises SIGPIPE, whose default action ends
 * the process. In libkiln that process is the user's program, which never
 * asked for the CAS; in the CLI it is a silent death instead of a message.
 * This BIO sends with MSG_NOSIGNAL: the write fails with EPIPE and the caller
 * reports it (or, in the runtime, retries on a new connection). Blocking
 * sockets with SO_RCVTIMEO/SO_SNDTIMEO: a timeout is an error, not a retry. */
#include "casclient/internal.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <sys/socket.h>

static CRYPTO_ONCE g_once = CRYPTO_ONCE_STATIC_INIT;
static BIO_METHOD *g_method;

static int fd_of(BIO *b)
{
	return (int)(intptr_t)BIO_get_data(b);
}

static int nosig_write(BIO *b, const char *in, int size)
{
	ssize_t n;

	do
		n = send(fd_of(b), in, (size_t)size, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	BIO_clear_retry_flags(b);
	return n < 0 ? -1 : (int)n;
}

static int nosig_read(BIO *b, char *out, int size)
{
	ssize_t n;

	do
		n = recv(fd_of(b), out, (size_t)size, 0);
	while (n < 0 && errno == EINTR);
	BIO_clear_retry_flags(b);
	if (n == 0)
		BIO_set_flags(b, BIO_FLAGS_IN_EOF);
	return n < 0 ? -1 : (int)n;
}

/* What TLS asks of a socket BIO: flush (nothing is buffered here) and EOF
 * (SSL_OP_IGNORE_UNEXPECTED_EOF tells a closed connection from an error by it). */
static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
	default:
		return 0;
	}
}

static void make_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
				     BIO_TYPE_DESCRIPTOR, "kiln casclient socket");

	if (m && BIO_meth_set_write(m, nosig_write) && BIO_meth_set_read(m, nosig_read) &&
	    BIO_meth_set_ctrl(m, nosig_ctrl)) {
		g_method = m;
		return;
	}
	BIO_meth_free(m);
}

BIO *cc__bio_new(int fd)
{
	BIO *b;

	if (!CRYPTO_THREAD_run_once(&g_once, make_method) || !g_method)
		return NULL;
	b = BIO_new(g_method);
	if (!b)
		return NULL;
	BIO_set_data(b, (void *)(intptr_t)fd);
	BIO_set_init(b, 1);
	return b;
}
