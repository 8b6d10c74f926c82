/* kiln-cas: HTTPS (TLS 1.3 over OpenSSL bufferevents, HTTP/1.1 in http.c) JSON API.
 *
 * N event loops (--threads, default: one per CPU) each run on their own thread,
 * all accepting from one listening socket: a connection, its TLS handshake
 * and its requests stay on the loop that accepted it. Handlers are short (SQLite
 * on local disk, one signature per audit entry) and run under the locks listed in
 * server.h next to the state they guard; the handlers that use the store run
 * one at a time (store_lock), the handshakes (and an attestation's evidence
 * verification, which reads the store through a second, read-only connection) run
 * in parallel. Client
 * certificates are requested, not required, and never validated against a CA:
 * an identity is the SHA-256 of the certificate's public key, and TLS proves
 * possession of that key. Routes and bodies: docs/api.md. */
#include "cas/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "evidence/evidence.h"

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
static void send_stashed(struct reqctx *rc, bool ok)
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
static void reply_json(struct reqctx *rc, int code, json_t *body)
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

static void reply_error(struct reqctx *rc, int code, const char *msg)
{
	reply_json(rc, code, json_pack("{s:s,s:s}", "error", msg, "request_id", rc->request_id));
}

/* A copy of the request body, NUL-terminated (the caller frees it). */
static char *read_body(struct reqctx *rc, size_t *size)
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

static bool need_identity(struct reqctx *rc)
{
	if (rc->peer_id[0])
		return true;
	reply_error(rc, 401, "a client certificate (kiln identity) is required");
	return false;
}

static void refuse_forbidden(struct reqctx *rc)
{
	/* Same answer whether the policy exists or not: no existence oracle. */
	reply_error(rc, 403, "not allowed or not found");
}

/* ---- nonces ---- */

static void h_nonce(struct reqctx *rc)
{
	struct cas_server *s = rc->s;
	char client[CAS_CLIENT_KEY_SIZE], hex[65];
	uint8_t nonce[32];
	int ret;

	cas__client_key(rc->peer_id[0] ? rc->peer_spki : NULL, rc->conn->addr, client);
	ret = cas__nonce_issue(&s->nonces, client, rc->peer_id[0] != '\0', kiln_now_ns(), nonce);
	if (ret == -EUSERS) {
		kiln_log(KILN_LOG_WARN, "nonce refused: client holds its limit", "client=%s "
			 "request_id=%s", client, rc->request_id);
		reply_error(rc, 503, "too many outstanding nonces for this client, use or let "
			    "them expire first");
		return;
	}
	if (ret == -ENOSPC) {
		kiln_log(KILN_LOG_WARN, "nonce refused: table full", "client=%s request_id=%s",
			 client, rc->request_id);
		reply_error(rc, 503, "too many outstanding nonces, retry later");
		return;
	}
	if (ret < 0) {
		reply_error(rc, 500, "internal error");
		return;
	}
	kiln_hex_encode(nonce, sizeof(nonce), hex);
	reply_json(rc, 200, json_pack("{s:s,s:i}", "nonce", hex, "expires_in", CAS_NONCE_TTL_S));
}

/* Drop expired nonces and grants. */
static void sweep(struct cas_server *s)
{
	uint64_t now = kiln_now_ns();

	(void)cas__nonces_sweep(&s->nonces, now);
	(void)cas__grants_sweep(&s->grants, now);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	sweep(arg);
}

/* ---- group commit ----
 *
 * With synchronous=FULL every COMMIT waits for the disk (an fsync of the WAL).
 * Requests that write therefore join one open transaction (a SAVEPOINT each,
 * so a failing request undoes only its own writes); the batch commits at the
 * next turn of the event loop, after every request that arrived meanwhile,
 * and only then are their answers sent. One fsync serves many requests, and
 * nothing is acknowledged before it is durable. */

/* Send (or drop, for clients that left) a list of answers whose batch ended; on
 * their loop's thread. */
static void answer_list(struct cas__conn *c)
{
	struct cas__conn *next;

	for (; c; c = next) {
		next = c->wait_next;
		c->wait_next = NULL;
		c->rc.queued = false;
		c->rc.deferred = false;
		if (c->dead)
			cas__http_drop(c);
		else
			send_stashed(&c->rc, c->rc.batch_ok);
	}
}

/* The batch ended (store_lock held; commit_busy still set, so the caller owns the
 * store connection): hand every loop its answers and its parked requests. All
 * pending answers belong to this batch: none are added while commit_busy. */
static void end_batch(struct cas_server *s, int commit_rc)
{
	if (commit_rc < 0) {
		kiln_log(KILN_LOG_ERROR, "store commit failed", "error=\"%s\"",
			 sqlite3_errmsg(s->st.db));
		cs_rollback(&s->st);
	}
	for (size_t i = 0; i < s->n_loops; i++) {
		struct cas_loop *l = &s->loops[i];
		bool work = l->pending || l->parked;

		for (struct cas__conn *c = l->pending; c; c = c->wait_next)
			c->rc.batch_ok = commit_rc == 0;
		if (l->pending) {
			*l->done_tail = l->pending;
			l->done_tail = l->pending_tail;
			l->pending = NULL;
			l->pending_tail = &l->pending;
		}
		/* Requests that arrived during the COMMIT: dispatched again by their
		 * loop, they form the next batch. */
		if (l->parked) {
			*l->resume_tail = l->parked;
			l->resume_tail = l->parked_tail;
			l->parked = NULL;
			l->parked_tail = &l->parked;
		}
		if (work && l->wake_ev)
			event_active(l->wake_ev, EV_TIMEOUT, 1);
	}
	s->batch_open = false;
	s->commit_busy = false;
	pthread_cond_broadcast(&s->commit_cond);
}

/* The committer made this loop's answers and parked requests ready. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct cas_loop *l = arg;
	struct cas_server *s = l->s;
	struct cas__conn *done, *c, *next;

	pthread_mutex_lock(&s->store_lock);
	done = l->done;
	l->done = NULL;
	l->done_tail = &l->done;
	c = l->resume;
	l->resume = NULL;
	l->resume_tail = &l->resume;
	pthread_mutex_unlock(&s->store_lock);
	answer_list(done);
	for (; c; c = next) {
		next = c->wait_next;
		c->wait_next = NULL;
		if (c->dead)
			cas__http_drop(c);
		else
			cas__handle(c);
	}
}

/* The COMMIT (and its fsync) runs on its own thread so the event loops keep
 * doing TLS handshakes meanwhile; requests that need the store wait (parked). */
static void *committer(void *arg)
{
	struct cas_server *s = arg;

	pthread_mutex_lock(&s->store_lock);
	for (;;) {
		while (!s->commit_requested && !s->commit_quit)
			pthread_cond_wait(&s->commit_cond, &s->store_lock);
		if (s->commit_quit)
			break;
		s->commit_requested = false;
		pthread_mutex_unlock(&s->store_lock);
		int rc = cs_commit(&s->st); /* commit_busy: the connection is ours */

		pthread_mutex_lock(&s->store_lock);
		end_batch(s, rc);
	}
	pthread_mutex_unlock(&s->store_lock);
	return NULL;
}

/* Zero timer of the loop that opened the batch: every request that was ready
 * on that turn of its loop (and on the other loops meanwhile) is in the batch. */
static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	struct cas_loop *l = arg;
	struct cas_server *s = l->s;

	pthread_mutex_lock(&s->store_lock);
	if (s->batch_open && !s->commit_busy) {
		s->commit_busy = true;
		s->commit_requested = true;
		pthread_cond_broadcast(&s->commit_cond);
	}
	pthread_mutex_unlock(&s->store_lock);
}

/* At shutdown, once the loops have stopped: let the COMMIT in flight end, commit
 * the open batch here, and queue the answers (best effort: the connections are
 * freed next). */
static void flush_batch(struct cas_server *s)
{
	pthread_mutex_lock(&s->store_lock);
	while (s->commit_busy && s->committer_started)
		pthread_cond_wait(&s->commit_cond, &s->store_lock);
	if (s->batch_open) {
		s->commit_busy = true;
		end_batch(s, cs_commit(&s->st));
	}
	s->commit_quit = true;
	pthread_cond_broadcast(&s->commit_cond);
	pthread_mutex_unlock(&s->store_lock);
	if (s->committer_started) {
		pthread_join(s->committer, NULL);
		s->committer_started = false;
	}
	for (size_t i = 0; i < s->n_loops; i++) {
		struct cas_loop *l = &s->loops[i];

		answer_list(l->done);
		l->done = NULL;
		l->done_tail = &l->done;
		/* Parked requests are not run: their connections are freed with the
		 * loop's. */
		l->resume = NULL;
		l->resume_tail = &l->resume;
	}
}

/* Park the connection's request on its loop until the running COMMIT ends
 * (store_lock held). */
static void park_locked(struct cas_loop *l, struct cas__conn *c)
{
	c->wait_next = NULL;
	*l->parked_tail = c;
	l->parked_tail = &c->wait_next;
}

/* For a handler that starts without the store: take store_lock for the rest of
 * the request (true; cas__handle releases it), or park the request while a
 * COMMIT runs (false: it is dispatched again from the start when the COMMIT
 * ends). */
static bool store_enter(struct reqctx *rc)
{
	struct cas_server *s = rc->s;

	pthread_mutex_lock(&s->store_lock);
	if (!s->commit_busy) {
		rc->store = true;
		return true;
	}
	park_locked(rc->loop, rc->conn);
	rc->queued = true;
	pthread_mutex_unlock(&s->store_lock);
	return false;
}

static int tx_begin(struct reqctx *rc)
{
	struct cas_server *s = rc->s;
	struct timeval zero = { 0, 0 };

	if (!s->batch_open) {
		if (cs_begin(&s->st) < 0)
			return -EIO;
		s->batch_open = true;
		evtimer_add(rc->loop->commit_ev, &zero);
	}
	if (sqlite3_exec(s->st.db, "SAVEPOINT req", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	return 0;
}

static void tx_rollback(struct reqctx *rc)
{
	(void)sqlite3_exec(rc->s->st.db, "ROLLBACK TO req; RELEASE req", NULL, NULL, NULL);
}

/* Keep this request's writes in the batch; its answer waits for the COMMIT. */
static int tx_release(struct reqctx *rc)
{
	if (sqlite3_exec(rc->s->st.db, "RELEASE req", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	rc->deferred = true;
	return 0;
}

/* ---- policies ---- */

/* A new policy named "NS/..." where NS is a reserved namespace needs one of its
 * owners: 0, -EACCES, or another negative code for a store error. */
static int namespace_allows(struct reqctx *rc, const char *name)
{
	size_t n = strcspn(name, "/");
	char ns[130], needle[CAS_ID_SIZE + 2], *owners = NULL;
	int ret;

	if (!name[n] || n >= sizeof(ns))
		return 0;
	memcpy(ns, name, n);
	ns[n] = '\0';
	ret = cs_namespace_get(&rc->s->st, ns, &owners);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	snprintf(needle, sizeof(needle), " %s ", rc->peer_id);
	ret = strstr(owners, needle) ? 0 : -EACCES;
	free(owners);
	return ret;
}

static void h_policy_apply(struct reqctx *rc)
{
	struct cas_server *s = rc->s;
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL, *cur = NULL;
	struct cs_policy row = { 0 }, old = { 0 };
	size_t size = 0;
	char *yaml = NULL, *canon = NULL;
	const char *why = NULL;
	bool created;
	int ret;

	if (!need_identity(rc))
		return;
	yaml = read_body(rc, &size);
	if (!yaml) {
		reply_error(rc, 500, "out of memory");
		return;
	}
	ret = pol_parse(yaml, size, "policy", &p, &err);
	if (ret < 0) {
		reply_error(rc, ret == -EFBIG ? 413 : 400, kiln_err_msg(&err, ret));
		goto out;
	}
	if (tx_begin(rc) < 0) {
		reply_error(rc, 503, "store busy");
		goto out;
	}
	ret = cs_policy_get(&s->st, p->name, &old);
	if (ret < 0 && ret != -ENOENT) {
		tx_rollback(rc);
		reply_error(rc, 500, "store error");
		goto out;
	}
	created = ret == -ENOENT;
	if (created) {
		ret = namespace_allows(rc, p->name);
		if (ret < 0) {
			char msg[300];

			tx_rollback(rc);
			snprintf(msg, sizeof(msg), "policy names under '%.*s/' are reserved for "
				 "the namespace's owners (kiln cas namespace)",
				 (int)strcspn(p->name, "/"), p->name);
			if (ret == -EACCES)
				reply_error(rc, 403, msg);
			else
				reply_error(rc, 500, "store error");
			goto out;
		}
	}
	if (!created) {
		ret = pol_parse_ex(old.yaml, strlen(old.yaml), p->name, POL_PARSE_STORED, &cur,
				   &err);
		if (ret < 0 || pol_may_apply(cur, p, old.owner, rc->peer_id, &why) < 0) {
			tx_rollback(rc);
			if (ret == 0 && why)
				reply_error(rc, 403, why); /* the caller may update: no oracle */
			else
				refuse_forbidden(rc);
			goto out;
		}
		if (!p->predecessor || strcmp(p->predecessor, old.hash)) {
			char msg[300];

			tx_rollback(rc);
			snprintf(msg, sizeof(msg), "predecessor %s does not match the current hash "
				 "%s of '%s' (someone else updated it: get it again)",
				 p->predecessor ? p->predecessor : "null", old.hash, p->name);
			reply_json(rc, 409, json_pack("{s:s,s:s,s:o,s:s}", "error", msg,
						      "current", old.hash, "predecessor",
						      p->predecessor ? json_string(p->predecessor) :
						      json_null(), "request_id", rc->request_id));
			goto out;
		}
	} else if (p->predecessor) {
		char msg[300];

		tx_rollback(rc);
		snprintf(msg, sizeof(msg), "predecessor %s given but '%s' does not exist (use "
			 "predecessor: null to create it)", p->predecessor, p->name);
		reply_json(rc, 409, json_pack("{s:s,s:n,s:s,s:s}", "error", msg, "current",
					      "predecessor", p->predecessor, "request_id",
					      rc->request_id));
		goto out;
	}
	canon = pol_canonical_text(p);
	row.name = p->name;
	row.hash = p->hash;
	row.yaml = yaml;
	row.canonical = canon;
	row.owner = created ? rc->peer_id : old.owner;
	row.version = created ? 1 : old.version + 1;
	if (!canon || cs_policy_put(&s->st, &row) < 0 ||
	    cs_audit_append(&s->st, created ? "policy.create" : "policy.update", rc->peer_id,
			    p->name, json_pack("{s:s,s:s?,s:I}", "hash", p->hash, "predecessor",
					       p->predecessor, "version",
					       (json_int_t)row.version)) < 0 ||
	    tx_release(rc) < 0) {
		tx_rollback(rc);
		reply_error(rc, 500, "store error");
		goto out;
	}
	kiln_log(KILN_LOG_INFO, created ? "policy created" : "policy updated",
		 "session=%s hash=%s version=%lld actor=%s request_id=%s", p->name, p->hash,
		 (long long)row.version, rc->peer_id, rc->request_id);
	reply_json(rc, created ? 201 : 200,
		   json_pack("{s:s,s:s,s:I,s:s}", "name", p->name, "hash", p->hash, "version",
			     (json_int_t)row.version, "owner", row.owner));
out:
	free(canon);
	free(yaml);
	cs_policy_free(&old);
	pol_free(p);
	pol_free(cur);
}

/* Load a policy the caller may read (or update, with for_update). */
static int load_visible(struct reqctx *rc, const char *name, bool for_update,
			struct cs_policy *row, struct pol_policy **p)
{
	struct kiln_err err = { 0 };
	int ret;

	*p = NULL;
	if (!pol_name_valid(name) || cs_policy_get(&rc->s->st, name, row) < 0)
		return -ENOENT;
	ret = pol_parse_ex(row->yaml, strlen(row->yaml), name, POL_PARSE_STORED, p, &err);
	if (ret < 0 || !(for_update ? pol_may_update(*p, row->owner, rc->peer_id) :
			 pol_may_read(*p, row->owner, rc->peer_id))) {
		pol_free(*p);
		*p = NULL;
		cs_policy_free(row);
		return -ENOENT;
	}
	return 0;
}

static void h_policy_get(struct reqctx *rc, const char *name)
{
	struct cs_policy row = { 0 };
	struct pol_policy *p = NULL;

	if (!need_identity(rc))
		return;
	if (load_visible(rc, name, false, &row, &p) < 0) {
		refuse_forbidden(rc);
		return;
	}
	reply_json(rc, 200, json_pack("{s:s,s:s,s:I,s:s,s:s}", "name", row.name, "hash",
				      row.hash, "version", (json_int_t)row.version, "owner",
				      row.owner, "yaml", row.yaml));
	cs_policy_free(&row);
	pol_free(p);
}

struct list_ctx {
	struct reqctx *rc;
	json_t *arr;
};

static int list_cb(void *vctx, const struct cs_policy *row)
{
	struct list_ctx *lc = vctx;
	struct pol_policy *p = NULL;
	struct kiln_err err = { 0 };

	if (pol_parse_ex(row->yaml, strlen(row->yaml), row->name, POL_PARSE_STORED, &p,
			 &err) == 0 &&
	    pol_may_read(p, row->owner, lc->rc->peer_id))
		json_array_append_new(lc->arr, json_pack("{s:s,s:s,s:I}", "name", row->name,
							 "hash", row->hash, "version",
							 (json_int_t)row->version));
	pol_free(p);
	return 0;
}

static void h_policy_list(struct reqctx *rc)
{
	struct list_ctx lc = { rc, json_array() };

	if (!need_identity(rc)) {
		json_decref(lc.arr);
		return;
	}
	if (!lc.arr || cs_policy_each(&rc->s->st, list_cb, &lc) < 0) {
		json_decref(lc.arr);
		reply_error(rc, 500, "store error");
		return;
	}
	reply_json(rc, 200, json_pack("{s:o}", "policies", lc.arr));
}

static void h_policy_delete(struct reqctx *rc, const char *name)
{
	struct cas_server *s = rc->s;
	struct cs_policy row = { 0 };
	struct pol_policy *p = NULL;

	if (!need_identity(rc))
		return;
	if (tx_begin(rc) < 0) {
		reply_error(rc, 503, "store busy");
		return;
	}
	if (load_visible(rc, name, true, &row, &p) < 0) {
		tx_rollback(rc);
		refuse_forbidden(rc);
		return;
	}
	if (cs_policy_delete(&s->st, name) < 0 ||
	    cs_audit_append(&s->st, "policy.delete", rc->peer_id, name,
			    json_pack("{s:s,s:I}", "hash", row.hash, "version",
				      (json_int_t)row.version)) < 0 ||
	    tx_release(rc) < 0) {
		tx_rollback(rc);
		reply_error(rc, 500, "store error");
	} else {
		kiln_log(KILN_LOG_INFO, "policy deleted", "session=%s actor=%s request_id=%s",
			 name, rc->peer_id, rc->request_id);
		reply_json(rc, 200, json_pack("{s:s}", "deleted", name));
	}
	cs_policy_free(&row);
	pol_free(p);
}

/* ---- attestation ---- */

struct attest {
	const char *session, *service, *tee;
	const char *wm; /* hardware tees: the request's workload_measurement */
	bool insecure;
	const char *label;
	char reason[512];
};

/* Escape a value for a quoted logfmt field. */
static void log_escape(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in && o + 3 < size; in++) {
		if (*in == '"' || *in == '\\')
			out[o++] = '\\';
		out[o++] = (unsigned char)*in < 0x20 ? ' ' : *in;
	}
	out[o] = '\0';
}

static void refuse_attest(struct reqctx *rc, struct attest *a, const char *label)
{
	char reason[2 * sizeof(a->reason)];

	a->label = label;
	log_escape(a->reason, reason, sizeof(reason));
	kiln_log(KILN_LOG_WARN, "attestation refused",
		 "reason=\"%s\" label=%s request_id=%s session=%s service=%s tee=%s%s%s%s",
		 reason, label, rc->request_id, a->session ? a->session : "-",
		 a->service ? a->service : "-", a->tee ? a->tee : "-",
		 a->insecure ? " INSECURE=sim" : "", a->wm ? " workload_measurement=" : "",
		 a->wm ? a->wm : "");
	metrics_refused(&rc->s->m, label);
	reply_json(rc, 403, json_pack("{s:s,s:s}", "error", "attestation refused", "request_id",
				      rc->request_id));
}

static json_t *tag_json(const struct cs_volume *v)
{
	return json_pack("{s:I,s:o}", "committed", (json_int_t)v->committed, "prepared",
			 v->prepared < 0 ? json_null() : json_integer(v->prepared));
}

/* Build the service configuration (inside the caller's transaction); sc resolves
 * the secrets and collects the releases of imported ones; the ids of the volumes
 * go to vol_ids (CAS_GRANT_MAX_VOLUMES entries), their count to *n_vols. */
static int build_config(struct reqctx *rc, struct cas_secret_ctx *sc, json_t *resp,
			char (*vol_ids)[33], size_t *n_vols, struct kiln_err *err)
{
	const struct pol_policy *p = sc->policy;
	const struct pol_service *svc = sc->svc;
	json_t *argv = json_array(), *env = json_object(), *files = json_array();
	json_t *vols = json_array();
	char *out = NULL;
	size_t size = 0;
	int ret = -ENOMEM;

	if (!argv || !env || !files || !vols)
		goto out;
	for (size_t i = 0; i < svc->n_command; i++) {
		ret = pol_substitute(svc->command[i], cas_secret_resolve, sc, false, &out, &size,
				     err);
		if (ret < 0) {
			kiln_err_prefix(err, "command[%zu]: ", i);
			goto out;
		}
		json_array_append_new(argv, json_stringn(out, size));
		kiln_free_secret(out, size);
	}
	for (size_t i = 0; i < svc->n_env; i++) {
		ret = pol_substitute(svc->env[i].value, cas_secret_resolve, sc, false, &out,
				     &size, err);
		if (ret < 0) {
			kiln_err_prefix(err, "environment %s: ", svc->env[i].name);
			goto out;
		}
		json_object_set_new(env, svc->env[i].name, json_stringn(out, size));
		kiln_free_secret(out, size);
	}
	for (size_t i = 0; i < svc->n_files; i++) {
		char mode[8], *b64;

		ret = pol_substitute(svc->files[i].content, cas_secret_resolve, sc, true, &out,
				     &size, err);
		if (ret < 0) {
			kiln_err_prefix(err, "file %s: ", svc->files[i].path);
			goto out;
		}
		b64 = kiln_b64_encode(out, size);
		kiln_free_secret(out, size);
		if (!b64) {
			ret = -ENOMEM;
			goto out;
		}
		snprintf(mode, sizeof(mode), "%04o", svc->files[i].mode);
		json_array_append_new(files, json_pack("{s:s,s:s,s:s}", "path", svc->files[i].path,
						       "content", b64, "mode", mode));
		kiln_free_secret(b64, strlen(b64));
	}
	*n_vols = 0;
	for (size_t i = 0; i < svc->n_mounts && i < CAS_GRANT_MAX_VOLUMES; i++) {
		struct cs_volume v;
		char key[65];

		ret = cs_volume_get_or_create(&rc->s->st, p->name, svc->mounts[i].volume, &v);
		if (ret < 0) {
			kiln_err_set(err, ret, "volume %s: %s", svc->mounts[i].volume,
				     kiln_strerror(ret));
			goto out;
		}
		kiln_hex_encode(v.key, sizeof(v.key), key);
		json_array_append_new(vols, json_pack("{s:s,s:s,s:s,s:s,s:o}", "name", v.name,
						      "id", v.id, "path", svc->mounts[i].path,
						      "key", key, "tag", tag_json(&v)));
		memcpy(vol_ids[(*n_vols)++], v.id, sizeof(v.id));
		kiln_wipe(key, sizeof(key));
		kiln_wipe(v.key, sizeof(v.key));
	}
	json_object_set(resp, "argv", argv);
	json_object_set(resp, "env", env);
	json_object_set_new(resp, "pwd", json_string(svc->pwd));
	json_object_set(resp, "files", files);
	json_object_set(resp, "volumes", vols);
	ret = 0;
out:
	if (ret == -ENOMEM)
		kiln_err_set(err, ret, "out of memory");
	json_decref(argv);
	json_decref(env);
	json_decref(files);
	json_decref(vols);
	return ret;
}

/* The secrets of other policies that this attestation released (imports) are
 * audited and logged under each exporting policy too, so its owner sees every
 * release of its secrets (inside the caller's transaction). */
static int audit_exports(struct reqctx *rc, const struct cas_secret_ctx *sc,
			 const struct attest *a, const json_t *claims)
{
	for (size_t i = 0; i < sc->n_releases; i++) {
		const struct cas_release *r = &sc->releases[i];
		json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:s?,s:s}", "imported_by",
				      r->importer, "via_session", a->session, "service",
				      a->service, "secret", r->secret, "tee", a->tee,
				      "policy_hash", r->exporter_hash, "insecure", a->insecure,
				      "workload_measurement",
				      json_string_value(json_object_get(claims,
									"workload_measurement")),
				      "request_id", rc->request_id);

		if (cs_audit_append(&rc->s->st, "secrets.release", rc->peer_id, r->exporter,
				    d) < 0)
			return -EIO;
		kiln_log(KILN_LOG_INFO, "exported secret released",
			 "session=%s secret=%s imported_by=%s via_session=%s service=%s tee=%s "
			 "request_id=%s", r->exporter, r->secret, r->importer, a->session,
			 a->service, a->tee, rc->request_id);
	}
	return 0;
}

static int hex_field(const json_t *claims, const char *key, uint8_t *out, size_t size)
{
	const char *h = json_string_value(json_object_get(claims, key));

	return h ? kiln_hex_decode(h, out, size, NULL) : -KILN_EFORMAT;
}

static void h_attest(struct reqctx *rc)
{
	struct cas_server *s = rc->s;
	struct attest a = { 0 };
	struct kiln_err err = { 0 };
	struct cas_attest_req req = { 0 };
	json_t *claims = NULL, *resp = NULL, *rel;
	const char *supervised_by = NULL;
	char *text = NULL;
	size_t text_size = 0;
	const struct ev_backend *be;
	struct ev_verify_opts opts = { 0 };
	struct pol_policy *p = NULL;
	const struct pol_service *svc;
	struct cas_secret_ctx sc = { 0 };
	char owner[CAS_ID_SIZE] = "";
	char vol_ids[CAS_GRANT_MAX_VOLUMES][33];
	size_t n_vols = 0;
	json_t *collateral = NULL;
	bool hw;
	uint8_t rd[EV_REPORT_DATA_SIZE], want[EV_REPORT_DATA_SIZE], wm[EV_WM_SIZE];
	uint8_t *evidence = NULL, *spki = NULL;
	size_t evidence_size = 0;
	char **las = NULL;
	size_t n_las = 0;
	int spki_size, ret;
	bool burn = false;

	if (!rc->peer) {
		reply_error(rc, 401, "attestation needs the workload's TLS client certificate");
		return;
	}
	text = read_body(rc, &text_size);
	if (!text) {
		reply_error(rc, 500, "out of memory");
		return;
	}
	ret = cas_attest_req_parse(text, text_size, &req, &err);
	kiln_free_secret(text, text_size + 1);
	if (ret < 0) {
		reply_error(rc, 400, kiln_err_msg(&err, ret));
		return;
	}
	a.session = req.session;
	a.service = req.service;
	a.tee = req.tee;
	a.insecure = !strcmp(a.tee, "sim");
	/* Hardware TEEs cannot carry the kiln workload measurement in their claims: it
	 * comes beside the evidence and is checked through report_data (the binding). */
	hw = !strcmp(a.tee, "sgx") || !strcmp(a.tee, "tdx") || !strcmp(a.tee, "snp");
	a.wm = hw ? req.workload_measurement : NULL;
	if (hw && !req.workload_measurement) {
		reply_error(rc, 400, "workload_measurement (96 hex) is required for a hardware "
			    "tee");
		goto out;
	}
	if (!hw && req.workload_measurement) {
		reply_error(rc, 400, "workload_measurement is only for hardware tees (sgx, tdx, "
			    "snp): sim and host evidence carries it");
		goto out;
	}
	/* The evidence is verified without the store lock, so loops verify in
	 * parallel; the nonce is consumed once the store is ours (of requests racing
	 * with one nonce, the first there goes on), and burnt by any refusal before
	 * that (burn): no retries with it. */
	if (!req.nonce_ok || !cas__nonce_peek(&s->nonces, req.nonce, kiln_now_ns())) {
		snprintf(a.reason, sizeof(a.reason), "stale nonce: unknown, already used or "
			 "expired");
		refuse_attest(rc, &a, "stale_nonce");
		goto out;
	}
	burn = true;
	be = ev_backend_find(a.tee);
	if (!be) {
		snprintf(a.reason, sizeof(a.reason), "unknown tee \"%.32s\"", a.tee);
		refuse_attest(rc, &a, "unknown_tee");
		goto out;
	}
	a.insecure = be->insecure;
	if (kiln_b64_decode(req.evidence_b64, &evidence, &evidence_size) < 0) {
		snprintf(a.reason, sizeof(a.reason), "evidence is not base64");
		refuse_attest(rc, &a, "bad_evidence");
		goto out;
	}
	if (!strcmp(a.tee, "host") || !strcmp(a.tee, "snp")) {
		pthread_mutex_lock(&s->reader_lock);
		ret = a.tee[0] == 'h' ? cs_las_list(&s->rd, &las, &n_las) :
		      cs_tee_trust_list(&s->rd, a.tee, &las, &n_las);
		pthread_mutex_unlock(&s->reader_lock);
		if (ret < 0) {
			reply_error(rc, 500, "store error");
			goto out;
		}
		opts.certs_pem = (const char *const *)las;
		opts.n_certs = n_las;
	} else if (hw) {
		char **col = NULL;
		size_t n_col = 0;

		pthread_mutex_lock(&s->reader_lock);
		ret = cs_tee_trust_list(&s->rd, a.tee, &col, &n_col);
		pthread_mutex_unlock(&s->reader_lock);
		if (ret < 0) {
			reply_error(rc, 500, "store error");
			goto out;
		}
		collateral = n_col ? json_loads(col[0], JSON_REJECT_DUPLICATES, NULL) : NULL;
		cs_strv_free(col);
		if (!collateral) {
			snprintf(a.reason, sizeof(a.reason), "no collateral configured for tee %s "
				 "(kiln cas trust-collateral FILE --tee %s)", a.tee, a.tee);
			refuse_attest(rc, &a, "no_collateral");
			goto out;
		}
		opts.collateral = collateral;
	}
	opts.at = s->evidence_at ? s->evidence_at : time(NULL);
	ret = be->verify(evidence, evidence_size, &opts, &claims, &err);
	if (ret < 0) {
		snprintf(a.reason, sizeof(a.reason), "evidence does not verify: %s",
			 kiln_err_msg(&err, ret));
		refuse_attest(rc, &a, "bad_evidence");
		goto out;
	}
	spki_size = cx_cert_spki_der(rc->peer, &spki);
	/* For hardware TEEs, wm is the request's workload_measurement (validated as 96
	 * hex by cas_attest_req_parse). It is put into the claims here, but nothing
	 * uses it unless the comparison below holds, which makes it hardware-bound;
	 * otherwise the request is refused. */
	if (hw && json_object_set_new(claims, "workload_measurement",
				      json_string(req.workload_measurement)) < 0) {
		reply_error(rc, 500, "out of memory");
		goto out;
	}
	if (spki_size <= 0 || hex_field(claims, "report_data", rd, sizeof(rd)) < 0 ||
	    hex_field(claims, "workload_measurement", wm, sizeof(wm)) < 0 ||
	    ev_binding(spki, (size_t)spki_size, req.nonce, wm, want) < 0 ||
	    !kiln_ct_equal(rd, want, sizeof(rd))) {
		snprintf(a.reason, sizeof(a.reason), "binding mismatch: claims.report_data is not "
			 "SHA-512(kiln-v1 || TLS client key || nonce || workload_measurement)");
		refuse_attest(rc, &a, "binding_mismatch");
		goto out;
	}
	if (!store_enter(rc)) {
		burn = false; /* parked: the nonce is needed again */
		goto out;
	}
	burn = false;
	if (!cas__nonce_consume(&s->nonces, req.nonce, kiln_now_ns())) {
		snprintf(a.reason, sizeof(a.reason), "stale nonce: unknown, already used or "
			 "expired");
		refuse_attest(rc, &a, "stale_nonce");
		goto out;
	}
	if (!pol_name_valid(a.session) ||
	    cas_policy_load(&s->st, a.session, &p, owner, &err) < 0) {
		snprintf(a.reason, sizeof(a.reason), "unknown session \"%.128s\"", a.session);
		refuse_attest(rc, &a, "unknown_session");
		goto out;
	}
	svc = pol_find_service(p, a.service);
	if (!svc) {
		snprintf(a.reason, sizeof(a.reason), "unknown service \"%.64s\" in session %s",
			 a.service, p->name);
		refuse_attest(rc, &a, "unknown_service");
		goto out;
	}
	ret = pol_decide(p, svc, claims, a.reason, sizeof(a.reason), &a.label);
	if (ret < 0) {
		refuse_attest(rc, &a, a.label);
		goto out;
	}
	resp = json_pack("{s:s,s:b,s:s}", "request_id", rc->request_id, "insecure", a.insecure,
			 "tee", a.tee);
	if (!resp) {
		reply_error(rc, 500, "internal error");
		goto out;
	}
	/* Checked here, added below: the limit is soft by at most one grant per loop.
	 * Only a service that mounts volumes gets a grant (nothing else uses one). */
	if (svc->n_mounts && cas__grants_full(&s->grants, rc->peer_spki, kiln_now_ns())) {
		kiln_log(KILN_LOG_WARN, "attestation refused: grant table full",
			 "session=%s request_id=%s", a.session, rc->request_id);
		reply_error(rc, 503, "too many live grants, retry later");
		goto out;
	}
	if (tx_begin(rc) < 0) {
		reply_error(rc, 503, "store busy");
		goto out;
	}
	sc.st = &s->st;
	sc.policy = p;
	sc.owner = owner;
	sc.host = req.host;
	sc.svc = svc;
	sc.claims = claims;
	ret = build_config(rc, &sc, resp, vol_ids, &n_vols, &err);
	if (ret < 0) {
		tx_rollback(rc);
		snprintf(a.reason, sizeof(a.reason), "configuration: %s", kiln_err_msg(&err, ret));
		refuse_attest(rc, &a, sc.label ? sc.label : "config_error");
		goto out;
	}
	supervised_by = json_string_value(json_object_get(claims, "supervised_by"));
	rel = json_pack("{s:s,s:s,s:s,s:b,s:s?,s:s}", "service", a.service, "tee", a.tee,
			"policy_hash", p->hash, "insecure", a.insecure, "workload_measurement",
			json_string_value(json_object_get(claims, "workload_measurement")),
			"request_id", rc->request_id);
	/* host evidence for a statically linked program: which kiln build runs it
	 * supervised (docs/las.md). */
	if (rel && supervised_by)
		json_object_set_new(rel, "supervised_by", json_string(supervised_by));
	if (cs_audit_append(&s->st, "secrets.release", rc->peer_id, a.session, rel) < 0 ||
	    audit_exports(rc, &sc, &a, claims) < 0 || tx_release(rc) < 0) {
		tx_rollback(rc);
		reply_error(rc, 500, "store error");
		goto out;
	}
	if (n_vols) {
		bool evicted;

		/* Out of memory here leaves the workload without volume updates; its
		 * answer says nothing of it, but each prepare is refused (403). */
		if (cas__grant_put(&s->grants, rc->peer_spki, a.session, vol_ids, n_vols,
				   kiln_now_ns(), &evicted) < 0)
			kiln_log(KILN_LOG_ERROR, "grant not recorded: out of memory",
				 "session=%s request_id=%s", a.session, rc->request_id);
		else if (evicted)
			kiln_log(KILN_LOG_WARN, "grant evicted: policy holds its limit of live "
				 "grants", "session=%s limit=%zu request_id=%s", a.session,
				 s->grants.max_per_policy, rc->request_id);
	}
	metrics_attest_ok(&s->m);
	kiln_log(a.insecure ? KILN_LOG_WARN : KILN_LOG_INFO, a.insecure ?
		 "attestation ok (INSECURE: sim backend, no protection)" : "attestation ok",
		 "request_id=%s session=%s service=%s tee=%s insecure=%s%s%s", rc->request_id,
		 a.session, a.service, a.tee, a.insecure ? "true" : "false",
		 supervised_by ? " supervised_by=" : "", supervised_by ? supervised_by : "");
	reply_json(rc, 200, resp);
	resp = NULL;
out:
	if (burn)
		(void)cas__nonce_consume(&s->nonces, req.nonce, kiln_now_ns());
	json_decref(resp);
	json_decref(claims);
	json_decref(collateral);
	json_decref(req.body);
	cs_strv_free(las);
	OPENSSL_free(spki);
	free(evidence);
	pol_free(p);
}

/* ---- volumes ---- */

static void h_volume(struct reqctx *rc, const char *id, const char *op)
{
	struct cas_server *s = rc->s;
	struct cs_volume v;
	char *text;
	size_t text_size = 0;
	int64_t tag;
	bool ok = false;

	if (!rc->peer) {
		reply_error(rc, 401, "volumes need the attested TLS client certificate");
		return;
	}
	ok = rc->peer_id[0] && cas__grant_allows(&s->grants, rc->peer_spki, id, kiln_now_ns());
	if (!ok) {
		reply_error(rc, 403, "this key holds no grant for the volume");
		return;
	}
	if (tx_begin(rc) < 0) {
		reply_error(rc, 503, "store busy");
		return;
	}
	if (cs_volume_by_id(&s->st, id, &v) < 0) {
		tx_rollback(rc);
		reply_error(rc, 404, "volume not found");
		return;
	}
	kiln_wipe(v.key, sizeof(v.key));
	if (!strcmp(op, "tag")) {
		tx_rollback(rc);
		reply_json(rc, 200, tag_json(&v));
		return;
	}
	text = read_body(rc, &text_size);
	if (!text || cas_tag_req_parse(text, text_size, &tag) < 0) {
		tx_rollback(rc);
		free(text);
		reply_error(rc, 400, "body must be {\"tag\": N} with N >= 1");
		return;
	}
	free(text);
	if (!strcmp(op, "prepare")) {
		if (v.prepared == tag && tag == v.committed + 1) {
			ok = true; /* retry of the same prepare */
		} else if (tag == v.committed + 1) {
			v.prepared = tag;
			ok = cs_volume_set_tags(&s->st, id, v.committed, v.prepared) == 0;
		} else {
			ok = false;
		}
	} else {
		if (v.prepared < 0 && v.committed == tag) {
			ok = true; /* retry of the same commit */
		} else if (v.prepared == tag) {
			v.committed = tag;
			v.prepared = -1;
			ok = cs_volume_set_tags(&s->st, id, v.committed, v.prepared) == 0;
		} else {
			ok = false;
		}
	}
	if (!ok) {
		char msg[200], prepared[24] = "none";

		tx_rollback(rc);
		if (v.prepared >= 0)
			snprintf(prepared, sizeof(prepared), "%lld", (long long)v.prepared);
		snprintf(msg, sizeof(msg), "%s %lld refused: committed %lld, prepared %s "
			 "(prepare needs committed+1, commit needs the prepared tag)", op,
			 (long long)tag, (long long)v.committed, prepared);
		reply_json(rc, 409, json_pack("{s:s,s:I,s:o}", "error", msg, "committed",
					      (json_int_t)v.committed, "prepared",
					      v.prepared < 0 ? json_null() :
					      json_integer(v.prepared)));
		return;
	}
	if (tx_release(rc) < 0) {
		tx_rollback(rc);
		reply_error(rc, 500, "store error");
		return;
	}
	reply_json(rc, 200, tag_json(&v));
}

/* ---- routing ---- */

static void h_metrics(struct reqctx *rc)
{
	char *text = metrics_render(&rc->s->m);

	if (!text) {
		reply_error(rc, 500, "out of memory");
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
		reply_error(rc, 400, "bad request target");
		return;
	}
	if (!strcmp(path, "/v1/nonce")) {
		rc->route = "/v1/nonce";
		if (method == CAS_HTTP_GET)
			h_nonce(rc);
		else
			reply_error(rc, 405, "method not allowed");
	} else if (!strcmp(path, "/v1/attest")) {
		rc->route = "/v1/attest";
		if (method == CAS_HTTP_POST)
			h_attest(rc);
		else
			reply_error(rc, 405, "method not allowed");
	} else if (!strcmp(path, "/v1/policies")) {
		rc->route = "/v1/policies";
		if (method == CAS_HTTP_POST)
			h_policy_apply(rc);
		else if (method == CAS_HTTP_GET)
			h_policy_list(rc);
		else
			reply_error(rc, 405, "method not allowed");
	} else if (!strncmp(path, "/v1/policies/", 13)) {
		rc->route = "/v1/policies/{name}";
		if (method == CAS_HTTP_GET)
			h_policy_get(rc, path + 13);
		else if (method == CAS_HTTP_DELETE)
			h_policy_delete(rc, path + 13);
		else
			reply_error(rc, 405, "method not allowed");
	} else if (!strncmp(path, "/v1/volumes/", 12)) {
		char id[33] = "";
		const char *op = strchr(path + 12, '/');

		if (op && op - (path + 12) == 32) {
			memcpy(id, path + 12, 32);
			op++;
		}
		if (!op || !is_hex_id(id, 32) ||
		    (strcmp(op, "prepare") && strcmp(op, "commit") && strcmp(op, "tag"))) {
			reply_error(rc, 404, "not found");
			return;
		}
		rc->route = !strcmp(op, "tag") ? "/v1/volumes/{id}/tag" :
			   !strcmp(op, "prepare") ? "/v1/volumes/{id}/prepare" :
						    "/v1/volumes/{id}/commit";
		if ((method == CAS_HTTP_GET) != !strcmp(op, "tag") ||
		    (method != CAS_HTTP_GET && method != CAS_HTTP_POST))
			reply_error(rc, 405, "method not allowed");
		else
			h_volume(rc, id, op);
	} else if (!strcmp(path, "/metrics")) {
		rc->route = "/metrics";
		h_metrics(rc);
	} else if (!strcmp(path, "/v1/health")) {
		rc->route = "/v1/health";
		reply_json(rc, 200, json_pack("{s:s}", "status", "ok"));
	} else {
		reply_error(rc, 404, "not found");
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
			park_locked(l, c);
			pthread_mutex_unlock(&s->store_lock);
			return;
		}
	}
	dispatch(rc, path);
	queued = rc->queued;
	if (rc->store)
		pthread_mutex_unlock(&s->store_lock);
	if (!queued)
		send_stashed(rc, true);
}

/* ---- TLS and startup ---- */

static int accept_any_client_cert(int preverify_ok, X509_STORE_CTX *ctx)
{
	/* Identities are self-signed: the key is the identity, not a CA's word. */
	return 1;
}

static int make_ssl_ctx(struct cas_server *s, const struct cas_serve_opts *o,
			struct kiln_err *err)
{
	static const unsigned char sid[] = "kiln-cas";
	char *dns[34], *ip[34];
	size_t n_dns = 0, n_ip = 0;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int ret;

	dns[n_dns++] = "localhost";
	ip[n_ip++] = "127.0.0.1";
	ip[n_ip++] = "::1";
	for (size_t i = 0; i < o->n_sans && i < 32; i++) {
		uint8_t b[16];

		if (inet_pton(AF_INET, o->sans[i], b) == 1 ||
		    inet_pton(AF_INET6, o->sans[i], b) == 1)
			ip[n_ip++] = (char *)o->sans[i];
		else
			dns[n_dns++] = (char *)o->sans[i];
	}
	/* A fresh server key each start: clients pin the CA, never this key. */
	ret = cx_keygen("p256", &key);
	if (ret == 0)
		ret = cx_make_cert(key, "kiln-cas", 825, false, dns, n_dns, ip, n_ip,
				   s->st.ca_cert, s->st.ca_key, &cert);
	if (ret < 0) {
		EVP_PKEY_free(key);
		return kiln_err_set(err, ret, "cannot make the server certificate");
	}
	s->ssl = SSL_CTX_new(TLS_server_method());
	ret = -KILN_ECRYPTO;
	if (!s->ssl || !SSL_CTX_set_min_proto_version(s->ssl, TLS1_3_VERSION) ||
	    !SSL_CTX_use_certificate(s->ssl, cert) || !SSL_CTX_use_PrivateKey(s->ssl, key) ||
	    !SSL_CTX_add1_chain_cert(s->ssl, s->st.ca_cert) ||
	    !SSL_CTX_set_session_id_context(s->ssl, sid, sizeof(sid) - 1))
		goto out;
	SSL_CTX_set_verify(s->ssl, SSL_VERIFY_PEER, accept_any_client_cert);
	SSL_CTX_set_options(s->ssl, SSL_OP_NO_RENEGOTIATION);
	/* Clients never resume (a workload key is used once): no tickets, which
	 * also saves two records per handshake. */
	SSL_CTX_set_num_tickets(s->ssl, 0);
	ret = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	if (ret < 0)
		kiln_err_set(err, ret, "cannot set up TLS");
	return ret;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct cas_server *s = arg;

	kiln_log(KILN_LOG_INFO, "shutting down", "signal=%d", (int)sig);
	for (size_t i = 0; i < s->n_loops; i++)
		event_base_loopexit(s->loops[i].base, NULL);
}

static int parse_listen(const char *listen, char *host, size_t host_size, uint16_t *port)
{
	const char *colon = strrchr(listen, ':');
	uint64_t p;
	size_t hl;

	if (!colon || kiln_parse_u64(colon + 1, &p) < 0 || p > 65535)
		return -EINVAL;
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		listen++;
		hl -= 2;
	}
	if (hl == 0 || hl >= host_size)
		return -EINVAL;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static void loop_free(struct cas_loop *l)
{
	/* Parked requests are not run (the loops have stopped); their connections
	 * go with the others. */
	l->parked = NULL;
	l->parked_tail = &l->parked;
	cas__http_loop_stop(l);
	if (l->commit_ev)
		event_free(l->commit_ev);
	if (l->wake_ev)
		event_free(l->wake_ev);
	if (l->base)
		event_base_free(l->base);
}

static void server_free(struct cas_server *s)
{
	flush_batch(s);
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sweep)
		event_free(s->sweep);
	for (size_t i = 0; i < s->n_loops; i++)
		loop_free(&s->loops[i]);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	SSL_CTX_free(s->ssl);
	cas__nonces_free(&s->nonces);
	cas__grants_free(&s->grants);
	cs_close(&s->rd);
	cs_close(&s->st);
	pthread_mutex_destroy(&s->reader_lock);
	pthread_mutex_destroy(&s->m.lock);
	cas__tally_free(&s->conn_caps);
	pthread_mutex_destroy(&s->conn_lock);
	pthread_mutex_destroy(&s->store_lock);
	pthread_cond_destroy(&s->commit_cond);
	free(s);
}

/* Make loop i: its base, its listener on a dup of the listening socket, its
 * timers. */
static int loop_init(struct cas_server *s, size_t i)
{
	struct cas_loop *l = &s->loops[i];

	l->s = s;
	l->index = i;
	l->pending_tail = &l->pending;
	l->done_tail = &l->done;
	l->parked_tail = &l->parked;
	l->resume_tail = &l->resume;
	l->base = event_base_new();
	l->commit_ev = l->base ? evtimer_new(l->base, on_commit, l) : NULL;
	l->wake_ev = l->base ? event_new(l->base, -1, 0, on_wake, l) : NULL;
	if (!l->commit_ev || !l->wake_ev)
		return -ENOMEM;
	/* Every loop waits on the same listening socket (its own descriptor for it,
	 * closed by its listener): whichever loop is free accepts. */
	return cas__http_loop_start(l, s->listen_fd);
}

static void *loop_thread(void *arg)
{
	struct cas_loop *l = arg;

	event_base_dispatch(l->base);
	return NULL;
}

/* Bind and listen (TCP_NODELAY, non-blocking, close-on-exec); the fd or -errno. */
static int listen_on(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char ps[8];
	int fd, one = 1, ret;

	snprintf(ps, sizeof(ps), "%u", port);
	ret = getaddrinfo(host, ps, &hints, &ai);
	if (ret != 0)
		return ret == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	/* Accepted sockets inherit TCP_NODELAY on Linux: without it, Nagle holds
	 * small answers back until the client's delayed ACK (40 ms). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		ret = -errno;
		close(fd);
		goto out;
	}
	ret = fd;
out:
	freeaddrinfo(ai);
	return ret;
}

int cas_serve(const struct cas_serve_opts *o, struct kiln_err *err)
{
	struct cas_server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct timeval sweep_tv = { 5, 0 };
	char host[256], fp[65], addr[INET6_ADDRSTRLEN];
	uint16_t port;
	size_t n_loops;
	int ret;

	if (!s)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	s->listen_fd = -1;
	s->evidence_at = o->evidence_at;
	cas__nonces_init(&s->nonces);
	cas__grants_init(&s->grants);
	if (o->grants_per_policy)
		s->grants.max_per_policy = o->grants_per_policy;
	pthread_mutex_init(&s->m.lock, NULL);
	pthread_mutex_init(&s->conn_lock, NULL);
	s->lim.handshake_s = o->handshake_timeout_s ? o->handshake_timeout_s : 10;
	s->lim.header_s = o->header_timeout_s ? o->header_timeout_s : 10;
	s->lim.body_s = o->body_timeout_s ? o->body_timeout_s : 30;
	s->lim.idle_s = 30;
	s->lim.conns_per_addr = o->conns_per_addr ? o->conns_per_addr : 1024;
	pthread_mutex_init(&s->store_lock, NULL);
	pthread_mutex_init(&s->reader_lock, NULL);
	pthread_cond_init(&s->commit_cond, NULL);
	n_loops = o->threads;
	if (!n_loops) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		n_loops = n > 0 ? (size_t)n : 1;
	}
	if (n_loops > MAX_LOOPS)
		n_loops = MAX_LOOPS;
	if (parse_listen(o->listen, host, sizeof(host), &port) < 0) {
		ret = kiln_err_set(err, -EINVAL, "--listen '%s': expected HOST:PORT", o->listen);
		goto out;
	}
	ret = cs_open(&s->st, o->data_dir, /*create=*/true, err);
	if (ret < 0)
		goto out;
	ret = cs_open_reader(&s->st, &s->rd, err);
	if (ret < 0)
		goto out;
	ret = make_ssl_ctx(s, o, err);
	if (ret < 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	{
		/* Each client holds a descriptor: allow as many as the hard limit. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	/* Locks inside libevent, so the committer may wake a loop (event_active) and a
	 * signal may stop them all (event_base_loopexit). */
	if (evthread_use_pthreads() < 0) {
		ret = kiln_err_set(err, -ENOMEM, "cannot set up libevent threads");
		goto out;
	}
	ret = listen_on(host, port);
	if (ret < 0) {
		ret = kiln_err_set(err, ret == -EADDRNOTAVAIL ? -EADDRNOTAVAIL : -EADDRINUSE,
				   "cannot listen on %s: %s", o->listen, strerror(-ret));
		goto out;
	}
	s->listen_fd = ret;
	if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) < 0) {
		ret = kiln_err_set(err, -errno, "getsockname: %s", strerror(errno));
		goto out;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	for (size_t i = 0; i < n_loops; i++) {
		s->n_loops = i + 1;
		ret = loop_init(s, i);
		if (ret < 0) {
			ret = kiln_err_set(err, ret, "cannot create event loop %zu: %s", i,
					   kiln_strerror(ret));
			goto out;
		}
	}
	s->sig_term = evsignal_new(s->loops[0].base, SIGTERM, on_signal, s);
	s->sig_int = evsignal_new(s->loops[0].base, SIGINT, on_signal, s);
	s->sweep = event_new(s->loops[0].base, -1, EV_PERSIST, on_sweep, s);
	if (!s->sig_term || !s->sig_int || !s->sweep ||
	    evsignal_add(s->sig_term, NULL) < 0 ||
	    evsignal_add(s->sig_int, NULL) < 0 || event_add(s->sweep, &sweep_tv) < 0) {
		ret = kiln_err_set(err, -ENOMEM, "cannot set up events");
		goto out;
	}
	if (pthread_create(&s->committer, NULL, committer, s) != 0) {
		ret = kiln_err_set(err, -ENOMEM, "cannot start the commit thread");
		goto out;
	}
	s->committer_started = true;
	for (size_t i = 1; i < s->n_loops; i++) {
		if (pthread_create(&s->loops[i].thread, NULL, loop_thread, &s->loops[i]) != 0) {
			ret = kiln_err_set(err, -ENOMEM, "cannot start event loop thread %zu", i);
			goto stop;
		}
		s->loops[i].thread_started = true;
	}
	cas_cert_fingerprint(s->st.ca_cert, fp);
	kiln_log(KILN_LOG_INFO, "kiln-cas ready", "listen=%s:%u data=%s ca_fingerprint=%s "
		 "threads=%zu", addr, port, o->data_dir, fp, s->n_loops);
	if (o->announce) {
		fprintf(o->announce, "ca-fingerprint %s\n", fp);
		fprintf(o->announce, ss.ss_family == AF_INET6 ? "listening https://[%s]:%u\n" :
			"listening https://%s:%u\n", addr, port);
		fflush(o->announce);
	}
	event_base_dispatch(s->loops[0].base);
	ret = 0;
stop:
	for (size_t i = 1; i < s->n_loops; i++) {
		if (!s->loops[i].thread_started)
			continue;
		event_base_loopexit(s->loops[i].base, NULL);
		pthread_join(s->loops[i].thread, NULL);
	}
out:
	server_free(s);
	kiln_log_flush(); /* the counts of lines the rate limit left out */
	return ret;
}
