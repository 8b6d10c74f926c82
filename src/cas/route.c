/* kiln-cas requests: dispatch to the handlers, and the answers (kept until the
 * locks are released, or until the COMMIT of their writes; sent through http.c).
 * Client certificates are requested, not required, and never validated against a
 * CA: an identity is the SHA-256 of the certificate's public key, and TLS proves
 * possession of that key. Routes and bodies: docs/api.md. */
#include "cas/internal.h"

#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Send an answer now (on rc->loop's thread, holding no lock); takes body. The
 * connection may be gone afterwards (freed, or on to its next request). */
static void send_now(struct cas__req *rc, int code, const char *ctype, char *body, size_t size)
{
	cas__metrics_request(&rc->s->m, rc->route, code,
			(double)(kiln_now_ns() - rc->start_ns) / 1e9);
	cas__http_send(rc->conn, code, ctype, body, size);
}

/* Keep the answer for cas__handle to send after the locks are released; takes
 * body (malloc'd; NULL: out of memory, sent as a 500). A second answer for one
 * request is a bug: it is dropped. */
static void stash(struct cas__req *rc, int code, const char *ctype, char *body, size_t size)
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
void cas__send_stashed(struct cas__req *rc, bool ok)
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
		code = cas__http_status(-EIO);
		ctype = "application/json";
	} else if (!body) {
		body = strdup("{\"error\":\"out of memory\"}");
		code = cas__http_status(-ENOMEM);
	}
	send_now(rc, code, ctype, body, body ? strlen(body) : 0);
}

/* The stashed answer waits for the open batch's COMMIT (in the loop's pending
 * list; the caller holds store_lock). */
static void queue(struct cas__req *rc)
{
	rc->queued = true;
	rc->conn->wait_next = NULL;
	*rc->loop->pending_tail = rc->conn;
	rc->loop->pending_tail = &rc->conn->wait_next;
}

/* Sends and releases body (or queues it while a write batch is open: no answer
 * may leave before the data it reflects is durable). */
void cas__reply_json(struct cas__req *rc, int code, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	/* While a batch is open, every answer of a request that used the store waits
	 * for its COMMIT: a reader must not be shown a write that a crash could still
	 * undo. (While the COMMIT runs, requests that need the store are parked;
	 * nonces, health and metrics do not read the store.) The caller holds
	 * store_lock whenever rc->store. */
	if (text && (rc->deferred || (rc->store && rc->s->batch_open && !rc->s->commit_busy))) {
		stash(rc, code, "application/json", text, strlen(text));
		queue(rc);
		json_decref(body);
		return;
	}
	if (!text)
		/* sent as "out of memory" */
		stash(rc, cas__http_status(-ENOMEM), "application/json", NULL, 0);
	else
		stash(rc, code, "application/json", text, strlen(text));
	json_decref(body);
}

static void reply_error(struct cas__req *rc, int code, const char *msg)
{
	cas__reply_json(rc, code, json_pack("{s:s,s:s}", "error", msg, "request_id",
					    rc->request_id));
}

/* A copy of the request body, NUL-terminated (the caller frees it). */
char *cas__read_body(struct cas__req *rc, size_t *size)
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

int cas__read_pair(struct cas__req *rc, const char *k1, const char *k2, json_t **body,
		   const char **v1, const char **v2)
{
	struct kiln_err err = { 0 };
	size_t size = 0;
	char *text = cas__read_body(rc, &size);
	int ret = cas__pair_req_parse(text, size, k1, k2, body, v1, v2, &err);

	free(text);
	if (ret < 0)
		cas__fail(rc, -EINVAL, kiln_err_msg(&err, ret));
	return ret;
}

static X509 *peer_cert(struct cas__conn *c)
{
	SSL *ssl = c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	return ssl ? SSL_get0_peer_certificate(ssl) : NULL;
}

bool cas__need_identity(struct cas__req *rc)
{
	if (rc->peer_id[0])
		return true;
	cas__fail(rc, -ENOKEY, NULL);
	return false;
}

void cas__refuse_forbidden(struct cas__req *rc)
{
	/* Same answer whether the policy exists or not: no existence oracle. */
	cas__fail(rc, -KILN_EDENIED, NULL);
}

/* ---- failures: the one mapping from error codes to HTTP status ---- */

/* Handlers say what went wrong as an error code; this table alone chooses the
 * HTTP status (docs/api.md "Errors"), and the message when the handler has none
 * to add. Codes not listed are internal errors (500). */
static const struct {
	int err;
	int status;
	const char *msg;
} g_status[] = {
	{ -EINVAL, 400, "bad request" },
	{ -KILN_EFORMAT, 400, "malformed request" },
	{ -KILN_ETRUNC, 400, "malformed request" },
	{ -KILN_ETRAILING, 400, "malformed request" },
	{ -ENOKEY, 401, "a client certificate (kiln identity) is required" },
	/* Same answer whether a policy exists or not: no existence oracle. */
	{ -KILN_EDENIED, 403, "not allowed or not found" },
	{ -EACCES, 403, "not allowed or not found" },
	{ -KILN_EPOLICY, 403, "attestation refused" },
	{ -KILN_ESIG, 403, "approval refused" },
	{ -KILN_EEXPIRED, 409, "expired" },
	{ -ENOENT, 404, "not found" },
	{ -EOPNOTSUPP, 405, "method not allowed" },
	{ -KILN_ECONFLICT, 409, "conflict" },
	{ -EFBIG, 413, "body too large" },
	{ -ENOMEM, 500, "out of memory" },
	{ -EIO, 500, "store error" },
	{ -EBUSY, 503, "store busy" },
	{ -EAGAIN, 503, "retry later" },
	{ -EUSERS, 429, "too many requests" },
};

static size_t status_index(int err)
{
	for (size_t i = 0; i < sizeof(g_status) / sizeof(g_status[0]); i++)
		if (g_status[i].err == err)
			return i;
	return SIZE_MAX;
}

int cas__http_status(int err)
{
	size_t i = status_index(err);

	return i == SIZE_MAX ? 500 : g_status[i].status;
}

void cas__fail(struct cas__req *rc, int err, const char *msg)
{
	size_t i = status_index(err);

	if (!msg)
		msg = i == SIZE_MAX ? "internal error" : g_status[i].msg;
	cas__refusal_note(rc, cas__http_status(err), msg);
	reply_error(rc, cas__http_status(err), msg);
}

void cas__fail_json(struct cas__req *rc, int err, json_t *body)
{
	cas__refusal_note(rc, cas__http_status(err),
			  json_string_value(json_object_get(body, "error")));
	cas__reply_json(rc, cas__http_status(err), body);
}

/* ---- routing ---- */

static void h_metrics(struct cas__req *rc)
{
	char *text = cas__metrics_render(&rc->s->m);

	if (!text) {
		cas__fail(rc, -ENOMEM, NULL);
		return;
	}
	stash(rc, 200, "text/plain; version=0.0.4", text, strlen(text));
}

static void h_health(struct cas__req *rc)
{
	cas__reply_json(rc, 200, json_pack("{s:s}", "status", "ok"));
}

/* The routes (docs/api.md). A template's segment "{id}" matches 32 lowercase
 * hex digits; a last segment "{name}" matches the rest of the path, slashes
 * included (policy names have namespaces). The template is also the route's
 * label in the metrics. method 0 takes any method. store: the handler runs under
 * store_lock from the start (/v1/attest takes it itself, once the evidence is
 * verified). */
static const struct cas__route g_routes[] = {
	{ CAS_HTTP_GET, "/v1/nonce", false, cas__api_nonce },
	{ CAS_HTTP_POST, "/v1/attest", false, cas__api_attest },
	{ CAS_HTTP_GET, "/v1/attestation", false, cas__api_attestation },
	{ CAS_HTTP_POST, "/v1/policies", true, cas__api_policy_apply },
	{ CAS_HTTP_GET, "/v1/policies", true, cas__api_policy_list },
	{ CAS_HTTP_GET, "/v1/policies/{name}", true, cas__api_policy_get },
	{ CAS_HTTP_DELETE, "/v1/policies/{name}", true, cas__api_policy_delete },
	{ CAS_HTTP_POST, "/v1/proposals", true, cas__api_proposal_create },
	{ CAS_HTTP_GET, "/v1/proposals", true, cas__api_proposal_list },
	{ CAS_HTTP_POST, "/v1/proposals/approve", true, cas__api_proposal_approve },
	{ CAS_HTTP_POST, "/v1/proposals/withdraw", true, cas__api_proposal_withdraw },
	{ CAS_HTTP_GET, "/v1/volumes/{id}/tag", true, cas__api_volume_tag },
	{ CAS_HTTP_POST, "/v1/volumes/{id}/prepare", true, cas__api_volume_prepare },
	{ CAS_HTTP_POST, "/v1/volumes/{id}/commit", true, cas__api_volume_commit },
	{ CAS_HTTP_POST, "/v1/certificate", true, cas__api_certificate },
	{ CAS_HTTP_POST, "/v1/console", true, cas__api_console },
	{ 0, "/metrics", false, h_metrics },
	{ 0, "/v1/health", false, h_health },
};

/* Does path match the template? Its parameters go to args. */
static bool route_match(const char *tmpl, const char *path, struct cas__route_args *args)
{
	memset(args, 0, sizeof(*args));
	while (*tmpl) {
		if (!strcmp(tmpl, "{name}")) {
			args->name = path; /* validated by the handler (pol_name_valid) */
			return true;
		}
		if (!strncmp(tmpl, "{id}", 4)) {
			if (strspn(path, "0123456789abcdef") < 32 || (path[32] && path[32] != '/'))
				return false;
			memcpy(args->id, path, 32);
			tmpl += 4;
			path += 32;
			continue;
		}
		if (*tmpl++ != *path++)
			return false;
	}
	return *path == '\0';
}

const struct cas__route *cas__route_find(enum cas__http_method method, const char *path,
					 struct cas__route_args *args,
					 const struct cas__route **other_method)
{
	struct cas__route_args a;

	*other_method = NULL;
	for (size_t i = 0; i < sizeof(g_routes) / sizeof(g_routes[0]); i++) {
		const struct cas__route *r = &g_routes[i];

		if (!route_match(r->path, path, &a))
			continue;
		if (!r->method || r->method == method) {
			*args = a;
			return r;
		}
		if (!*other_method)
			*other_method = r;
	}
	return NULL;
}

/* Requests for the store run under store_lock, one at a time, and are parked while
 * a COMMIT runs; nonces, health and metrics never wait. The answer is sent after
 * the lock is released, unless it waits for a COMMIT (queued): then the
 * connection belongs to the loop's wait lists and is not touched here again. */
void cas__handle(struct cas__conn *c)
{
	struct cas__loop *l = c->loop;
	struct cas__server *s = l->s;
	struct cas__req *rc = &c->rc;
	const char *path = c->head.path;
	const struct cas__route *r = NULL, *other = NULL;
	uint8_t rid[8];
	bool queued;

	kiln_free_secret(rc->out_body, rc->out_size);
	memset(rc, 0, sizeof(*rc));
	rc->s = s;
	rc->loop = l;
	rc->conn = c;
	rc->start_ns = kiln_now_ns();
	rc->route = "other";
	if (path && path[0])
		r = cas__route_find(c->head.method, path, &rc->args, &other);
	if (r) {
		rc->route = r->path;
		rc->store = r->store;
	} else if (other) {
		rc->route = other->path;
	}
	if (kc_random(rid, sizeof(rid)) < 0)
		memset(rid, 0, sizeof(rid));
	kiln_hex_encode(rid, sizeof(rid), rc->request_id);
	rc->peer = peer_cert(c);
	if (rc->peer && cas__x509_spki_sha256(rc->peer, rc->peer_spki) == 0) {
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
	if (r)
		r->fn(rc);
	else if (!path || !path[0])
		cas__fail(rc, -EINVAL, "bad request target");
	else if (other)
		cas__fail(rc, -EOPNOTSUPP, NULL);
	else
		cas__fail(rc, -ENOENT, NULL);
	/* A refusal goes into the audit chain; its answer then waits for the COMMIT
	 * like any other written by the request. */
	if (rc->store && rc->refused && cas__refusal_audit(rc) == 0 && rc->deferred &&
	    !rc->queued && rc->out_code)
		queue(rc);
	queued = rc->queued;
	if (rc->store)
		pthread_mutex_unlock(&s->store_lock);
	if (!queued)
		cas__send_stashed(rc, true);
}

