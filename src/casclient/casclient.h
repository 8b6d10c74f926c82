/* kiln casclient: the CAS wire client, HTTPS/1.1 over TLS 1.3 with the CA
 * pinned. The one header of src/casclient/. Used by the runtime (libkiln: nonce,
 * attestation, volume freshness), by the supervisor of static programs and by
 * the CLI (`kiln policy ...`). It depends on common/ and OpenSSL only, so
 * libkiln can link it without the service's SQLite, libevent, libyaml or
 * jansson (docs/architecture.md, module boundaries). Wire format: docs/api.md.
 *
 * Prefix cc_; functions shared between this module's files are cc__. */
#ifndef KILN_CASCLIENT_H
#define KILN_CASCLIENT_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

/* Where the CAS is and how to trust it. The server certificate must chain to
 * the pinned CA, given either as a PEM file (ca_file) or as the hex SHA-256 of
 * the CA certificate's DER (fingerprint, matched against the chain the server
 * sends); the host name or IP in the URL must match the server certificate.
 * key/cert (optional) are the TLS client identity; for attestation the runtime
 * passes its ephemeral workload key and certificate. */
struct cc_client {
	const char *url;         /* "https://HOST:PORT" (no path) */
	const char *ca_file;     /* PEM CA certificate, or NULL */
	const char *fingerprint; /* hex SHA-256 of the CA cert DER, or NULL */
	EVP_PKEY *key;           /* borrowed, may be NULL */
	X509 *cert;              /* borrowed, may be NULL */
	int timeout_ms;          /* connect/read/write timeout, 0 = 30 s */
	/* "sha256:<64 hex>" of the server certificate's public key (SPKI DER) to
	 * require besides the CA pin, or NULL: the key an attestation of the CAS
	 * verified (KILN_CAS_EXPECT), so later connections reach that very
	 * process and not something else holding a certificate of its CA. */
	const char *server_key;
};

struct cc_response {
	int status;      /* HTTP status code */
	char *body;      /* malloc'd, NUL-terminated, owned by the response */
	size_t body_size;
	/* SHA-256 of the SPKI DER of the server certificate of the connection that
	 * carried this answer (what GET /v1/attestation's evidence must bind). */
	uint8_t server_key[32];
};

/* One request on a connection of its own ("Connection: close"): `method path`
 * with an optional body. On success (any HTTP status) fills resp, which the
 * caller releases with cc_response_free. Transport, TLS and pinning failures
 * return a negative code with err set. */
int cc_request(const struct cc_client *c, const char *method, const char *path,
	       const char *content_type, const void *body, size_t body_size,
	       struct cc_response *resp, struct kiln_err *err);
/* Wipes and frees the body (it may hold secrets); accepts NULL. */
void cc_response_free(struct cc_response *resp);

/* Several requests on one connection (the runtime's nonce and attestation: one
 * TLS handshake instead of two). cc_conn_open connects, handshakes with c's
 * client certificate and checks the pin; *out is owned by the caller
 * (cc_conn_close, accepts NULL). cc_conn_request sends one request
 * ("Connection: keep-alive" or "close") and reads its answer by Content-Length;
 * after a failure the connection is unusable (close it). */
struct cc_conn;
int cc_conn_open(const struct cc_client *c, struct cc_conn **out, struct kiln_err *err);
int cc_conn_request(struct cc_conn *cn, bool keep_alive, const char *method, const char *path,
		    const char *content_type, const void *body, size_t body_size,
		    struct cc_response *resp, struct kiln_err *err);
void cc_conn_close(struct cc_conn *cn);

/* Parse one complete HTTP/1.x response (raw: NUL-terminated, modified). The
 * body is copied into resp (cc_response_free). Used by cc_conn_request;
 * exposed for the fuzz target and the unit tests. */
int cc_parse_response(char *raw, size_t size, struct cc_response *resp,
		      struct kiln_err *err);

#endif
