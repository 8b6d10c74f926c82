/* What the files of src/casclient/ share (not a public header: other modules
 * use casclient.h). Prefix cc__. */
#ifndef KILN_CASCLIENT_INTERNAL_H
#define KILN_CASCLIENT_INTERNAL_H

#include <openssl/ssl.h>

#include "casclient/casclient.h"

/* One TLS connection to the CAS, verified against the pin (conn.c). */
struct cc_conn {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	char host[256], port[8];
	uint8_t server_key[32]; /* SHA-256 of the server certificate's SPKI DER */
};

/* A BIO over the connected socket fd that never raises SIGPIPE (bio.c). The
 * fd stays the caller's (the BIO does not close it). NULL when out of memory. */
BIO *cc__bio_new(int fd);

/* The end of the head of a response: its "\r\n\r\n" within raw[0..size), or
 * NULL while it has not arrived. */
char *cc__head_end(const char *raw, size_t size);
/* The head of a response ends at hdr_end (cc__head_end). Its Content-Length,
 * or (size_t)-1 when there is none; *chunked is true when it names a
 * Transfer-Encoding. */
size_t cc__content_length(const char *raw, const char *hdr_end, bool *chunked);

#endif
