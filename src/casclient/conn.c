/* casclient: the TLS connection to the CAS. Connect (with a timeout and
 * TCP_NODELAY), handshake TLS 1.3 with the optional client certificate, and
 * check the server against the pinned CA (by file or by fingerprint) and the
 * host name or IP of the URL. The pin is checked by hand after the handshake
 * rather than by OpenSSL's verify callback, so a failure names what did not
 * match. */
#include "casclient/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int parse_url(const char *url, char *host, size_t host_size, char *port,
		     size_t port_size)
{
	const char *p, *colon, *end;
	size_t hl;

	if (strncmp(url, "https://", 8))
		return -EINVAL;
	p = url + 8;
	end = p + strcspn(p, "/");
	if (*end && strcmp(end, "/"))
		return -EINVAL;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (!rb)
			return -EINVAL;
		hl = (size_t)(rb - p - 1);
		if (hl == 0 || hl >= host_size)
			return -EINVAL;
		memcpy(host, p + 1, hl);
		host[hl] = '\0';
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hl = (size_t)((colon ? colon : end) - p);
		if (hl == 0 || hl >= host_size)
			return -EINVAL;
		memcpy(host, p, hl);
		host[hl] = '\0';
	}
	if (colon) {
		size_t pl = (size_t)(end - colon - 1);

		if (pl == 0 || pl >= port_size || strspn(colon + 1, "0123456789") < pl)
			return -EINVAL;
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
	} else {
		snprintf(port, port_size, "443");
	}
	return 0;
}

static int connect_to(const char *host, const char *port, int timeout_ms,
		      struct kiln_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int fd = -1, rc, saved = 0, one = 1;

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return kiln_err_set(err, -EHOSTUNREACH, "cannot resolve %s: %s", host,
				    gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		/* The request goes out in two TLS records (head, body): without
		 * NODELAY, Nagle holds the second until the server's delayed ACK
		 * (~40 ms on Linux) on every request. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return kiln_err_set(err, -saved, "cannot connect to %s:%s: %s", host, port,
				    strerror(saved));
	return fd;
}

static bool fingerprint_matches(X509 *x, const char *want)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (!X509_digest(x, EVP_sha256(), d, &n) || n != 32)
		return false;
	kiln_hex_encode(d, n, hex);
	return strcasecmp(hex, want) == 0;
}

/* Verify the server chain against the pinned CA and the host name. */
static int verify_server(SSL *ssl, const struct cc_client *c, const char *host,
			 struct kiln_err *err)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *anchor = NULL;
	uint8_t b[16];
	int ret = -KILN_EROOT;

	if (!store || !ctx) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!leaf) {
		ret = kiln_err_set(err, -KILN_ECHAIN, "the CAS sent no certificate");
		goto out;
	}
	if (c->ca_file) {
		FILE *f = fopen(c->ca_file, "re");

		if (!f) {
			ret = kiln_err_set(err, -errno, "CA file %s: %s", c->ca_file,
					   strerror(errno));
			goto out;
		}
		anchor = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
		if (!anchor) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "CA file %s: no PEM certificate",
					   c->ca_file);
			goto out;
		}
	} else {
		for (int i = 0; chain && i < sk_X509_num(chain); i++) {
			X509 *x = sk_X509_value(chain, i);

			if (fingerprint_matches(x, c->fingerprint)) {
				X509_up_ref(x);
				anchor = x;
				break;
			}
		}
		if (!anchor) {
			ret = kiln_err_set(err, -KILN_EROOT, "the CAS certificate chain does not "
					   "contain the pinned CA (fingerprint %.16s...)",
					   c->fingerprint);
			goto out;
		}
	}
	if (!X509_STORE_add_cert(store, anchor) ||
	    !X509_STORE_CTX_init(ctx, store, leaf, chain)) {
		ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot set up verification");
		goto out;
	}
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	if (X509_verify_cert(ctx) != 1) {
		ret = kiln_err_set(err, -KILN_ECHAIN, "the CAS certificate does not chain to the "
				   "pinned CA: %s",
				   X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1) {
		if (X509_check_ip_asc(leaf, host, 0) != 1) {
			ret = kiln_err_set(err, -KILN_ECHAIN, "the CAS certificate is not valid "
					   "for IP %s", host);
			goto out;
		}
	} else if (X509_check_host(leaf, host, 0, 0, NULL) != 1) {
		ret = kiln_err_set(err, -KILN_ECHAIN, "the CAS certificate is not valid for %s",
				   host);
		goto out;
	}
	ret = 0;
out:
	X509_free(anchor);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ret;
}

/* cn->server_key from the leaf's public key; with a pin (want, "sha256:HEX"),
 * the key must be that one. */
static int server_key(struct cc_conn *cn, const char *want, struct kiln_err *err)
{
	X509 *leaf = SSL_get0_peer_certificate(cn->ssl);
	EVP_PKEY *pub = leaf ? X509_get0_pubkey(leaf) : NULL;
	unsigned char *der = NULL;
	char hex[65];
	int n = pub ? i2d_PUBKEY(pub, &der) : -1;

	if (n <= 0 || !EVP_Digest(der, (size_t)n, cn->server_key, NULL, EVP_sha256(), NULL)) {
		OPENSSL_free(der);
		return kiln_err_set(err, -KILN_ECRYPTO, "cannot hash the CAS's TLS key");
	}
	OPENSSL_free(der);
	if (!want)
		return 0;
	kiln_hex_encode(cn->server_key, sizeof(cn->server_key), hex);
	if (strncmp(want, "sha256:", 7) || strcasecmp(want + 7, hex))
		return kiln_err_set(err, -KILN_EBINDING, "the CAS's TLS key is sha256:%s, not "
				    "the attested key %.71s: another process answers (restarted "
				    "CAS, or something holding a certificate of its CA)", hex,
				    want);
	return 0;
}

void cc_conn_close(struct cc_conn *cn)
{
	if (!cn)
		return;
	if (cn->ssl) {
		SSL_shutdown(cn->ssl);
		SSL_free(cn->ssl);
	}
	SSL_CTX_free(cn->ctx);
	if (cn->fd >= 0)
		close(cn->fd);
	free(cn);
}

int cc_conn_open(const struct cc_client *c, struct cc_conn **out, struct kiln_err *err)
{
	struct cc_conn *cn;
	BIO *bio;
	int timeout = c->timeout_ms > 0 ? c->timeout_ms : 30000;
	uint8_t b[16];
	int ret;

	*out = NULL;
	cn = calloc(1, sizeof(*cn));
	if (!cn)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	cn->fd = -1;
	if (parse_url(c->url, cn->host, sizeof(cn->host), cn->port, sizeof(cn->port)) < 0) {
		ret = kiln_err_set(err, -EINVAL, "bad CAS URL '%s' (expected https://HOST:PORT)",
				   c->url);
		goto out;
	}
	if (!c->ca_file && !c->fingerprint) {
		ret = kiln_err_set(err, -EINVAL, "no CA to pin: give --cas-ca FILE or "
				   "--cas-fingerprint HEX");
		goto out;
	}
	cn->fd = connect_to(cn->host, cn->port, timeout, err);
	if (cn->fd < 0) {
		ret = cn->fd;
		goto out;
	}
	cn->ctx = SSL_CTX_new(TLS_client_method());
	if (!cn->ctx || !SSL_CTX_set_min_proto_version(cn->ctx, TLS1_3_VERSION)) {
		ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot set up TLS");
		goto out;
	}
	/* evhttp may close without close_notify after a complete answer; the
	 * Content-Length check catches real truncation. */
	SSL_CTX_set_options(cn->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Verified by hand after the handshake (pin by file or fingerprint). */
	SSL_CTX_set_verify(cn->ctx, SSL_VERIFY_NONE, NULL);
	if (c->key && c->cert &&
	    (SSL_CTX_use_certificate(cn->ctx, c->cert) != 1 ||
	     SSL_CTX_use_PrivateKey(cn->ctx, c->key) != 1)) {
		ret = kiln_err_set(err, -KILN_EKEY, "the client certificate does not match its "
				   "key");
		goto out;
	}
	cn->ssl = SSL_new(cn->ctx);
	bio = cc__bio_new(cn->fd);
	if (!cn->ssl || !bio) {
		BIO_free(bio);
		ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot set up TLS");
		goto out;
	}
	SSL_set_bio(cn->ssl, bio, bio); /* one reference, now the SSL's */
	if (inet_pton(AF_INET, cn->host, b) != 1 && inet_pton(AF_INET6, cn->host, b) != 1)
		SSL_set_tlsext_host_name(cn->ssl, cn->host);
	if (SSL_connect(cn->ssl) != 1) {
		unsigned long e = ERR_get_error();

		ret = kiln_err_set(err, -KILN_ECRYPTO, "TLS handshake with %s:%s failed: %s",
				   cn->host, cn->port,
				   e ? ERR_reason_error_string(e) : "connection closed");
		goto out;
	}
	ret = verify_server(cn->ssl, c, cn->host, err);
	if (ret == 0)
		ret = server_key(cn, c->server_key, err);
	if (ret < 0)
		goto out;
	*out = cn;
	cn = NULL;
	ret = 0;
out:
	cc_conn_close(cn);
	return ret;
}
