/* kiln-cas requests: dispatch to the handlers, and the answers (kept until the
 * locks are released, or until the COMMIT of their writes; sent through http.c).
 * Client certificates are requested, not required, and never validated against a
 * CA: an identity is the SHA-256 of the certificate's public key, and TLS proves
 * possession of that key. Routes and bodies: docs/api.md. */
#include "cas/internal.h"

#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Send an answer now (on rc->loop's thread, holding no lock); takes body. The
 * connection may be gone afterwards (freed, or on to its next request). */
static void send_now(struct reqctx *rc, int code, const char *ctype, char *body, size_t size)
{
	metrics_request(&rc->s->m, rc->route, code,
			(double)(kiln_now_ns() - rc->start_ns) / 1e9);
	cas__http_send(rc->conn, code, ctype, body, size);
}

/* Keep the answer for cas__handle to send after the locks are released; takes
 * body (malloc'd; NULL: out of memory, sent as a 500). A second answer for one
 * request is a bug: it is dropped. */
static void stash(struct reqctx *rc, int code, const char *ctype, char *body, size_t size)
{
	if (rc->out_code) {
		kiln_free_secret(body, size);
		return;
	}
	rc->out_code = code;
	rc->out_ctype = ctype;
	rc->out_body = body;
	rc->out_size = size;
}

/* Send the stashed answer (or a 500: out of memory, or a batch that did not
 * commit); the connection may be gone afterwards. */
void cas__send_stashed(struct reqctx *rc, bool ok)
{
	char *body = rc->out_body;
	size_t size = rc->out_size;
	int code = rc->out_code;
	const char *ctype = rc->out_ctype;

	rc->out_body = NULL;
	rc->out_size = 0;
	rc->out_code = 0;
	if (!ok) {
		kiln_free_secret(body, size);
		body = strdup("{\"error\":\"store error\"}");
		code = 500;
		ctype = "application/json";
	} else if (!body) {
		body = strdup("{\"error\":\"out of memory\"}");
		code = 500;
	}
	send_now(rc, code, ctype, body, body ? strlen(body) : 0);
}

/* Sends and releases body (or queues it while a write batch is open: no answer
 * may leave before the data it reflects is durable). */
void cas__reply_json(struct reqctx *rc, int code, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	/* While a batch is open, every answer of a request that used the store waits
	 * for its COMMIT: a reader must not be shown a write that a crash could still
	 * undo. (While the COMMIT runs, requests that need the store are parked;
	 * nonces, health and metrics do not read the store.) The caller holds
	 * store_lock whenever rc->store. */
	if (text && (rc->deferred || (rc->store && rc->s->batch_open && !rc->s->commit_busy))) {
		stash(rc, code, "application/json", text, strlen(text));
		rc->queued = true;
		rc->conn->wait_next = NULL;
		*rc->loop->pending_tail = rc->conn;
		rc->loop->pending_tail = &rc->conn->wait_next;
		json_decref(body);
		return;
	}
	if (!text)
		stash(rc, 500, "application/json", NULL, 0); /* sent as "out of memory" */
	else
		stash(rc, code, "application/json", text, strlen(text));
	json_decref(body);
}

void cas__reply_error(struct reqctx *rc, int code, const char *msg)
{
	cas__reply_json(rc, code, json_pack("{s:s,s:s}", "error", msg, "request_id", rc->request_id));
}

/* A copy of the request body, NUL-terminated (the caller frees it). */
char *cas__read_body(struct reqctx *rc, size_t *size)
{
	struct cas__conn *c = rc->conn;
	char *d = malloc(c->body_size + 1);

	if (!d)
		return NULL;
	if (c->body_size)
		memcpy(d, c->body, c->body_size);
	d[c->body_size] = '\0';
	*size = c->body_size;
	return d;
}

static X509 *peer_cert(struct cas__conn *c)
{
	SSL *ssl = c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	return ssl ? SSL_get0_peer_certificate(ssl) : NULL;
}

bool cas__need_identity(struct reqctx *rc)
{
	if (rc->peer_id[0])
		return true;
	cas__reply_error(rc, 401, "a client certificate (kiln identity) is required");
	return false;
}

void cas__refuse_forbidden(struct reqctx *rc)
{
	/* Same answer whether the policy exists or not: no existence oracle. */
	cas__reply_error(rc, 403, "not allowed or not found");
}

/* ---- routing ---- */

static void h_metrics(struct reqctx *rc)
{
	char *text = metrics_render(&rc->s->m);

	if (!text) {
		cas__reply_error(rc, 500, "out of memory");
		return;
	}
	stash(rc, 200, "text/plain; version=0.0.4", text, strlen(text));
}

static bool is_hex_id(const char *s, size_t len)
{
	return strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}

static void dispatch(struct reqctx *rc, const char *path)
{
	enum cas_http_method method = rc->conn->head.method;

	if (!path || !path[0]) {
		cas__reply_error(rc, 400, "bad request target");
		return;
	}
	if (!strcmp(path, "/v1/nonce")) {
		rc->route = "/v1/nonce";
		if (method == CAS_HTTP_GET)
			cas__api_nonce(rc);
		else
			cas__reply_error(rc, 405, "method not allowed");
	} else if (!strcmp(path, "/v1/attest")) {
		rc->route = "/v1/attest";
		if (method == CAS_HTTP_POST)
			cas__api_attest(rc);
		else
			cas__reply_error(rc, 405, "method not allowed");
	} else if (!strcmp(path, "/v1/policies")) {
		rc->route = "/v1/policies";
		if (method == CAS_HTTP_POST)
			cas__api_policy_apply(rc);
		else if (method == CAS_HTTP_GET)
			cas__api_policy_list(rc);
		else
			cas__reply_error(rc, 405, "method not allowed");
	} else if (!strncmp(path, "/v1/policies/", 13)) {
		rc->route = "/v1/policies/{name}";
		if (method == CAS_HTTP_GET)
			cas__api_policy_get(rc, path + 13);
		else if (method == CAS_HTTP_DELETE)
			cas__api_policy_delete(rc, path + 13);
		else
			cas__reply_error(rc, 405, "method not allowed");
	} else if (!strncmp(path, "/v1/volumes/", 12)) {
		char id[33] = "";
		const char *op = strchr(path + 12, '/');

		if (op && op - (path + 12) == 32) {
			memcpy(id, path + 12, 32);
			op++;
		}
		if (!op || !is_hex_id(id, 32) ||
		    (strcmp(op, "prepare") && strcmp(op, "commit") && strcmp(op, "tag"))) {
			cas__reply_error(rc, 404, "not found");
			return;
		}
		rc->route = !strcmp(op, "tag") ? "/v1/volumes/{id}/tag" :
			   !strcmp(op, "prepare") ? "/v1/volumes/{id}/prepare" :
						    "/v1/volumes/{id}/commit";
		if ((method == CAS_HTTP_GET) != !strcmp(op, "tag") ||
		    (method != CAS_HTTP_GET && method != CAS_HTTP_POST))
			cas__reply_error(rc, 405, "method not allowed");
		else
			cas__api_volume(rc, id, op);
	} else if (!strcmp(path, "/metrics")) {
		rc->route = "/metrics";
		h_metrics(rc);
	} else if (!strcmp(path, "/v1/health")) {
		rc->route = "/v1/health";
		cas__reply_json(rc, 200, json_pack("{s:s}", "status", "ok"));
	} else {
		cas__reply_error(rc, 404, "not found");
	}
}

/* Requests for the store run under store_lock, one at a time, and are parked while
 * a COMMIT runs; nonces, health and metrics never wait. The answer is sent after
 * the lock is released, unless it waits for a COMMIT (queued): then the
 * connection belongs to the loop's wait lists and is not touched here again. */
void cas__handle(struct cas__conn *c)
{
	struct cas_loop *l = c->loop;
	struct cas_server *s = l->s;
	struct reqctx *rc = &c->rc;
	const char *path = c->head.path;
	uint8_t rid[8];
	bool queued;

	kiln_free_secret(rc->out_body, rc->out_size);
	memset(rc, 0, sizeof(*rc));
	rc->s = s;
	rc->loop = l;
	rc->conn = c;
	rc->start_ns = kiln_now_ns();
	rc->route = "other";
	/* /v1/attest takes the store itself, after verifying the evidence. */
	rc->store = strcmp(path, "/v1/nonce") && strcmp(path, "/metrics") &&
		    strcmp(path, "/v1/health") && strcmp(path, "/v1/attest");
	if (kc_random(rid, sizeof(rid)) < 0)
		memset(rid, 0, sizeof(rid));
	kiln_hex_encode(rid, sizeof(rid), rc->request_id);
	rc->peer = peer_cert(c);
	if (rc->peer && cx_spki_sha256(rc->peer, rc->peer_spki) == 0) {
		memcpy(rc->peer_id, "sha256:", 7);
		kiln_hex_encode(rc->peer_spki, sizeof(rc->peer_spki), rc->peer_id + 7);
	}
	if (rc->store) {
		pthread_mutex_lock(&s->store_lock);
		if (s->commit_busy) {
			cas__park_locked(l, c);
			pthread_mutex_unlock(&s->store_lock);
			return;
		}
	}
	dispatch(rc, path);
	queued = rc->queued;
	if (rc->store)
		pthread_mutex_unlock(&s->store_lock);
	if (!queued)
		cas__send_stashed(rc, true);
}

