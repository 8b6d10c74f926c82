/* casclient: one HTTP/1.1 request on a pinned connection, its answer read by
 * Content-Length (the connection may stay open for the next request) or until
 * the server closes it. Every buffer that held an answer is wiped: answers
 * carry secrets (argv, env, files and volume keys of a grant). */
#include "casclient/internal.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds what a hostile or broken server can make the client allocate. */
#define MAX_RESPONSE_SIZE (16u << 20)

static int ssl_write_all(SSL *ssl, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		int n = SSL_write(ssl, p, size > INT32_MAX ? INT32_MAX : (int)size);

		if (n <= 0)
			return -EIO;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

int cc_conn_request(struct cc_conn *cn, bool keep_alive, const char *method, const char *path,
		    const char *content_type, const void *body, size_t body_size,
		    struct cc_response *resp, struct kiln_err *err)
{
	char *head = NULL, *raw = NULL, *hdr_end = NULL;
	size_t raw_size = 0, raw_cap = 0, want = (size_t)-1;
	int ret, n;

	memset(resp, 0, sizeof(*resp));
	n = asprintf(&head, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: %s\r\n"
		     "Content-Length: %zu\r\n%s%s%s\r\n", method, path, cn->host, cn->port,
		     keep_alive ? "keep-alive" : "close", body_size,
		     content_type ? "Content-Type: " : "", content_type ? content_type : "",
		     content_type ? "\r\n" : "");
	if (n < 0) {
		head = NULL;
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (ssl_write_all(cn->ssl, head, (size_t)n) < 0 ||
	    (body_size && ssl_write_all(cn->ssl, body, body_size) < 0)) {
		ret = kiln_err_set(err, -EIO, "sending the request to the CAS failed");
		goto out;
	}
	/* Read until the answer is complete by its Content-Length (the
	 * connection may stay open), or until the server closes it. */
	while (raw_size < want) {
		if (raw_size + 4096 + 1 > raw_cap) {
			size_t cap = raw_cap ? raw_cap * 2 : 16384;
			char *nr;

			if (cap > MAX_RESPONSE_SIZE) {
				ret = kiln_err_set(err, -EFBIG, "CAS response larger than %u bytes",
						   MAX_RESPONSE_SIZE);
				goto out;
			}
			nr = malloc(cap);
			if (!nr) {
				ret = kiln_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			if (raw) {
				memcpy(nr, raw, raw_size);
				kiln_free_secret(raw, raw_cap);
			}
			raw = nr;
			raw_cap = cap;
		}
		n = SSL_read(cn->ssl, raw + raw_size, (int)(raw_cap - raw_size - 1));
		if (n <= 0) {
			int e = SSL_get_error(cn->ssl, n);

			if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)
				break;
			ret = kiln_err_set(err, -EIO, "reading the CAS response failed");
			goto out;
		}
		raw_size += (size_t)n;
		raw[raw_size] = '\0';
		if (!hdr_end && (hdr_end = cc__head_end(raw, raw_size))) {
			bool chunked;
			size_t cl = cc__content_length(raw, hdr_end, &chunked);

			if (cl != (size_t)-1 && !chunked)
				want = (size_t)(hdr_end - raw) + 4 + cl;
		}
	}
	if (raw_size == 0) {
		ret = kiln_err_set(err, -KILN_ETRUNC, "the CAS closed the connection without an "
				   "answer");
		goto out;
	}
	raw[raw_size] = '\0';
	ret = cc_parse_response(raw, raw_size, resp, err);
	memcpy(resp->server_key, cn->server_key, sizeof(resp->server_key));
out:
	free(head);
	if (raw)
		kiln_free_secret(raw, raw_cap);
	return ret;
}

int cc_request(const struct cc_client *c, const char *method, const char *path,
	       const char *content_type, const void *body, size_t body_size,
	       struct cc_response *resp, struct kiln_err *err)
{
	struct cc_conn *cn;
	int ret;

	memset(resp, 0, sizeof(*resp));
	ret = cc_conn_open(c, &cn, err);
	if (ret)
		return ret;
	ret = cc_conn_request(cn, false, method, path, content_type, body, body_size, resp, err);
	cc_conn_close(cn);
	return ret;
}
