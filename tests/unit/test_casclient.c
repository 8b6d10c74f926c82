/* Unit tests for src/casclient: argument checks, the response parser, and
 * requests against a TLS server on loopback (a thread of this test) whose
 * certificate is issued by a CA made here: pinning by fingerprint and by CA
 * file, a wrong pin, a wrong CA, a certificate for another host, several
 * requests on one connection, a server that closes without answering and one
 * that answers more than the client accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "casclient/casclient.h"

/* ---- a CA and a server certificate for IP 127.0.0.1 ----------------------- */

static X509 *make_cert(EVP_PKEY *key, const char *cn, EVP_PKEY *issuer_key, X509 *issuer,
		       const char *san)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  san ? "critical,CA:FALSE" : "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (san) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	} else {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

struct pki {
	EVP_PKEY *ca_key, *key, *other_key;
	X509 *ca, *cert, *other_ca;
	char ca_file[64], other_ca_file[64];
	char fingerprint[65], other_fingerprint[65];
};

static struct pki g_pki;

static void fingerprint(X509 *x, char out[65])
{
	unsigned char d[32];
	unsigned int n = 0;

	assert_int_equal(X509_digest(x, EVP_sha256(), d, &n), 1);
	kiln_hex_encode(d, n, out);
}

static void write_pem(X509 *x, char *path)
{
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

static int pki_setup(void **state)
{
	struct pki *p = &g_pki;

	p->ca_key = EVP_EC_gen("P-256");
	p->key = EVP_EC_gen("P-256");
	p->other_key = EVP_EC_gen("P-256");
	p->ca = make_cert(p->ca_key, "test CA", NULL, NULL, NULL);
	p->cert = make_cert(p->key, "test CAS", p->ca_key, p->ca, "IP:127.0.0.1");
	p->other_ca = make_cert(p->other_key, "other CA", NULL, NULL, NULL);
	fingerprint(p->ca, p->fingerprint);
	fingerprint(p->other_ca, p->other_fingerprint);
	snprintf(p->ca_file, sizeof(p->ca_file), "/tmp/kiln-test-cc-ca-XXXXXX");
	snprintf(p->other_ca_file, sizeof(p->other_ca_file), "/tmp/kiln-test-cc-other-XXXXXX");
	write_pem(p->ca, p->ca_file);
	write_pem(p->other_ca, p->other_ca_file);
	return 0;
}

static int pki_teardown(void **state)
{
	struct pki *p = &g_pki;

	unlink(p->ca_file);
	unlink(p->other_ca_file);
	X509_free(p->ca);
	X509_free(p->cert);
	X509_free(p->other_ca);
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->key);
	EVP_PKEY_free(p->other_key);
	return 0;
}

/* ---- the server: one connection, then the thread ends -------------------- */

enum serve_mode {
	SERVE_ECHO,     /* answer every request with "METHOD PATH BODY" until EOF */
	SERVE_SILENT,   /* read one request, close without answering */
	SERVE_HUGE,     /* answer with a 17 MiB body */
	SERVE_ONCE,     /* answer one request, then close (an idle keep-alive timeout) */
};

struct server {
	int lfd;
	int port;
	enum serve_mode mode;
	int requests;   /* requests answered */
	pthread_t thread;
};

/* One request: head then Content-Length bytes of body. 0 at EOF. */
static int read_request(SSL *ssl, char *buf, size_t cap)
{
	size_t used = 0, want = (size_t)-1;

	while (used < want) {
		int n = SSL_read(ssl, buf + used, (int)(cap - used - 1));
		char *end;

		if (n <= 0)
			return used ? -1 : 0;
		used += (size_t)n;
		buf[used] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end && want == (size_t)-1) {
			const char *cl = strstr(buf, "Content-Length: ");

			want = (size_t)(end - buf) + 4 + (cl ? strtoul(cl + 16, NULL, 10) : 0);
		}
	}
	return 1;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = NULL;
	char buf[8192];
	sigset_t pipe;
	int fd;

	/* The server's writes to a client that went away must not end the test;
	 * the client (this test's main thread) keeps SIGPIPE's default, so a
	 * client write that raised it would. */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0 || !ctx)
		goto out;
	SSL_CTX_use_certificate(ctx, g_pki.cert);
	SSL_CTX_use_PrivateKey(ctx, g_pki.key);
	SSL_CTX_add1_chain_cert(ctx, g_pki.ca);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1)
		goto out;
	while (read_request(ssl, buf, sizeof(buf)) > 0) {
		char *answer = NULL, method[16] = "", path[64] = "";
		const char *body = strstr(buf, "\r\n\r\n") + 4;
		int n;

		if (s->mode == SERVE_SILENT)
			break;
		if (s->mode == SERVE_HUGE) {
			static char chunk[1 << 16];
			size_t total = 17u << 20;

			n = asprintf(&answer, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", total);
			SSL_write(ssl, answer, n);
			free(answer);
			for (size_t sent = 0; sent < total; sent += sizeof(chunk))
				if (SSL_write(ssl, chunk, sizeof(chunk)) <= 0)
					break;
			break;
		}
		sscanf(buf, "%15s %63s", method, path);
		n = asprintf(&answer, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s %s %s",
			     strlen(method) + strlen(path) + strlen(body) + 2, method, path, body);
		SSL_write(ssl, answer, n);
		free(answer);
		s->requests++;
		if (s->mode == SERVE_ONCE)
			break;
	}
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void server_start(struct server *s, enum serve_mode mode)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

/* After a client that never connected (or already closed), the thread may
 * still wait in accept: a connection of our own ends it. */
static void server_stop(struct server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	shutdown(s->lfd, SHUT_RDWR);
	if (fd >= 0) {
		(void)connect(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
	}
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

static void client_for(struct cc_client *c, char *url, size_t url_size, const char *host,
		       const struct server *s)
{
	memset(c, 0, sizeof(*c));
	snprintf(url, url_size, "https://%s:%d", host, s->port);
	c->url = url;
	c->timeout_ms = 10000;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_arguments(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r;
	struct cc_client c = { .url = "http://127.0.0.1:1", .fingerprint = "00" };

	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "bad CAS URL 'http://127.0.0.1:1' (expected "
			    "https://HOST:PORT)");
	c.url = "https://127.0.0.1:1/path";
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -EINVAL);
	c.url = "https://127.0.0.1:1";
	c.fingerprint = NULL;
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no CA to pin"));
	c.fingerprint = "00";
	/* Port 1 on loopback: nothing listens. */
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -ECONNREFUSED);
}

static void test_parse_response(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r;
	char ok[] = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}extra";
	char no_length[] = "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnone";
	char trunc[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}";
	char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
	char junk[] = "SMTP ready\r\n\r\n";
	char no_end[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";

	assert_int_equal(cc_parse_response(ok, strlen(ok), &r, &err), 0);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body, "{}");
	assert_int_equal(r.body_size, 2);
	cc_response_free(&r);
	assert_null(r.body);
	/* Without Content-Length the body is what arrived before EOF. */
	assert_int_equal(cc_parse_response(no_length, strlen(no_length), &r, &err), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "none");
	cc_response_free(&r);
	assert_int_equal(cc_parse_response(trunc, strlen(trunc), &r, &err), -KILN_ETRUNC);
	assert_int_equal(cc_parse_response(chunked, strlen(chunked), &r, &err), -KILN_EFORMAT);
	assert_string_equal(err.msg, "chunked responses are not supported");
	assert_int_equal(cc_parse_response(junk, strlen(junk), &r, &err), -KILN_EFORMAT);
	assert_int_equal(cc_parse_response(no_end, strlen(no_end), &r, &err), -KILN_EFORMAT);
	cc_response_free(NULL);
}

static void test_fingerprint_pin_keep_alive(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct cc_conn *cn = NULL;
	struct server s;
	char url[64];

	server_start(&s, SERVE_ECHO);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.fingerprint = g_pki.fingerprint;
	assert_int_equal(cc_conn_open(&c, &cn, &err), 0);
	assert_int_equal(cc_conn_request(cn, true, "GET", "/v1/nonce", NULL, NULL, 0, &r, &err),
			 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /v1/nonce ");
	cc_response_free(&r);
	/* The second request on the same connection: one handshake for both. */
	assert_int_equal(cc_conn_request(cn, false, "POST", "/v1/attest", "application/json",
					 "{}", 2, &r, &err), 0);
	assert_string_equal(r.body, "POST /v1/attest {}");
	cc_response_free(&r);
	cc_conn_close(cn);
	server_stop(&s);
	assert_int_equal(s.requests, 2);
}

static void test_ca_file_pin(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct server s;
	char url[64];

	server_start(&s, SERVE_ECHO);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.ca_file = g_pki.ca_file;
	assert_int_equal(cc_request(&c, "GET", "/v1/health", NULL, NULL, 0, &r, &err), 0);
	assert_string_equal(r.body, "GET /v1/health ");
	cc_response_free(&r);
	server_stop(&s);
}

static void test_wrong_fingerprint(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct server s;
	char url[64];

	server_start(&s, SERVE_ECHO);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.fingerprint = g_pki.other_fingerprint;
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -KILN_EROOT);
	assert_non_null(strstr(err.msg, "does not contain the pinned CA"));
	assert_null(r.body);
	server_stop(&s);
	assert_int_equal(s.requests, 0);
}

static void test_wrong_ca_file(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct server s;
	char url[64];

	server_start(&s, SERVE_ECHO);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.ca_file = g_pki.other_ca_file;
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "does not chain to the pinned CA"));
	server_stop(&s);
	assert_int_equal(s.requests, 0);
}

/* The certificate is for IP 127.0.0.1, the URL names localhost. */
static void test_wrong_host(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct server s;
	char url[64];

	server_start(&s, SERVE_ECHO);
	client_for(&c, url, sizeof(url), "localhost", &s);
	c.fingerprint = g_pki.fingerprint;
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -KILN_ECHAIN);
	assert_string_equal(err.msg, "the CAS certificate is not valid for localhost");
	server_stop(&s);
	assert_int_equal(s.requests, 0);
}

static void test_closed_without_answer(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct server s;
	char url[64];

	server_start(&s, SERVE_SILENT);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.fingerprint = g_pki.fingerprint;
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -KILN_ETRUNC);
	assert_string_equal(err.msg, "the CAS closed the connection without an answer");
	server_stop(&s);
}

static void test_answer_too_large(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct server s;
	char url[64];

	server_start(&s, SERVE_HUGE);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.fingerprint = g_pki.fingerprint;
	assert_int_equal(cc_request(&c, "GET", "/", NULL, NULL, 0, &r, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "CAS response larger than"));
	assert_null(r.body);
	server_stop(&s);
}

/* The server closed the kept-alive connection; the client's next request
 * writes to a closed socket. That is an error to return (the runtime then
 * retries on a new connection), never a SIGPIPE: in libkiln it would kill the
 * program, which did not ask for the CAS. This test keeps SIGPIPE's default
 * action, so a raised one ends it. */
static void test_write_after_server_closed(void **state)
{
	struct kiln_err err = { 0 };
	struct cc_response r = { 0 };
	struct cc_client c;
	struct cc_conn *cn = NULL;
	struct server s;
	static char body[1 << 20];
	char url[64];

	server_start(&s, SERVE_ONCE);
	client_for(&c, url, sizeof(url), "127.0.0.1", &s);
	c.fingerprint = g_pki.fingerprint;
	assert_int_equal(cc_conn_open(&c, &cn, &err), 0);
	assert_int_equal(cc_conn_request(cn, true, "GET", "/v1/nonce", NULL, NULL, 0, &r, &err),
			 0);
	cc_response_free(&r);
	pthread_join(s.thread, NULL); /* the server has closed its end */
	memset(body, 'x', sizeof(body));
	for (int i = 0; i < 3; i++)
		assert_int_equal(cc_conn_request(cn, true, "POST", "/v1/attest", "application/json",
						 body, sizeof(body), &r, &err), -EIO);
	assert_null(r.body);
	cc_conn_close(cn);
	close(s.lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_parse_response),
		cmocka_unit_test(test_fingerprint_pin_keep_alive),
		cmocka_unit_test(test_ca_file_pin),
		cmocka_unit_test(test_wrong_fingerprint),
		cmocka_unit_test(test_wrong_ca_file),
		cmocka_unit_test(test_wrong_host),
		cmocka_unit_test(test_closed_without_answer),
		cmocka_unit_test(test_answer_too_large),
		cmocka_unit_test(test_write_after_server_closed),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
