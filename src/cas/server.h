/* Internal to src/cas: the running service. */
#ifndef KILN_CAS_SERVER_H
#define KILN_CAS_SERVER_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "cas/internal.h"

#define N_LAT_BUCKETS 12

struct metric_count {
	char label[96];
	int code;
	uint64_t count;
};

/* lock guards every field: metrics are bumped from every event loop. */
struct cas_metrics {
	pthread_mutex_t lock;
	struct metric_count req[128];
	size_t n_req;
	struct metric_count refused[32];
	size_t n_refused;
	uint64_t attest_ok;
	uint64_t connections; /* TLS connections accepted */
	uint64_t lat_buckets[N_LAT_BUCKETS]; /* cumulative at render time */
	double lat_sum;
	uint64_t lat_count;
};

#define MAX_LOOPS 64

/* Connection deadlines and limits (cas_serve_opts; defaults in docs/cas.md). */
struct cas__limits {
	unsigned handshake_s;  /* accept -> TLS handshake done */
	unsigned header_s;     /* first byte of a request (or the handshake) -> its head */
	unsigned body_s;       /* head -> the last byte of its body */
	unsigned idle_s;       /* between requests, and to write an answer */
	unsigned conns_per_addr;
};

struct cas__conn;

/* One request's context for the handlers; in its connection, made anew each
 * time the request is dispatched (again, after being parked). */
struct reqctx {
	struct cas_server *s;
	struct cas_loop *loop;    /* the loop (thread) that owns conn */
	struct cas__conn *conn;
	uint64_t start_ns;
	const char *route;
	char request_id[33];
	X509 *peer;               /* borrowed from the SSL session, may be NULL */
	char peer_id[CAS_ID_SIZE]; /* "" without a client certificate */
	uint8_t peer_spki[KC_SHA256_SIZE]; /* SHA-256 of its SPKI (the id's bytes) */
	bool deferred;            /* wrote in the open batch: answer after its COMMIT */
	bool store;               /* runs under store_lock (uses the store) */
	bool queued;              /* the answer waits in the loop's pending list */
	bool batch_ok;            /* its batch committed (set when it moves to done) */
	/* The answer, sent once the locks are released (sending may run libevent
	 * callbacks, even the next request of the connection). */
	int out_code;             /* 0: no answer yet */
	const char *out_ctype;
	char *out_body;           /* owned, wiped at free (may hold secrets) */
	size_t out_size;
};

enum cas__conn_state {
	CAS_CONN_HANDSHAKE, /* TLS handshake */
	CAS_CONN_IDLE,      /* waiting for a request */
	CAS_CONN_HEAD,      /* reading a request's head */
	CAS_CONN_BODY,      /* reading its body */
	CAS_CONN_BUSY,      /* handed to the handlers: parked, running or pending */
	CAS_CONN_WRITING,   /* its answer is being written */
};

/* One client connection (http.c), owned by its loop (l->conns). While BUSY it
 * may sit in one of the loop's wait lists; a peer that leaves then only marks it
 * dead, and whoever takes it off the list frees it. */
struct cas__conn {
	struct cas_loop *loop;
	struct bufferevent *bev;      /* TLS, owns the socket; NULL once dead */
	struct event *deadline;
	enum cas__conn_state state;
	bool first;                   /* no request yet */
	bool close_after;             /* close once the answer is written */
	bool dead;                    /* the peer left while BUSY */
	bool eof;                     /* the peer closed with the handshake */
	char addr[64];                /* the peer's address (numeric) */
	struct cas__tally_ent *cap;   /* its count in s->conn_caps */
	struct cas__http_head head;   /* the current request */
	char *head_buf;               /* owned: head.path points into it */
	char *body;                   /* owned, wiped at free */
	size_t body_size;
	struct reqctx rc;
	struct cas__conn *wait_next;  /* in a wait list of the loop */
	struct cas__conn *prev, *next; /* l->conns */
};

/* One event loop: its own event base and listener on the shared listening
 * socket; TLS handshakes and HTTP parsing of its connections run on its thread only.
 * The wait lists are filled and emptied under the server's store_lock (the
 * committer thread moves them at the end of a batch); the loop answers them on its
 * thread. */
struct cas_loop {
	struct cas_server *s;
	size_t index;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_ev;      /* re-enables the listener after an accept error */
	struct cas__conn *conns;      /* every connection of this loop */
	pthread_t thread;
	bool thread_started;
	struct event *commit_ev;      /* zero timer: ask for the COMMIT of the open batch */
	struct event *wake_ev;        /* made active by the committer after a COMMIT */
	struct cas__conn *pending;    /* answers waiting for the open batch's COMMIT */
	struct cas__conn **pending_tail;
	struct cas__conn *done;       /* answers whose batch ended, to send on this loop */
	struct cas__conn **done_tail;
	struct cas__conn *parked;     /* requests waiting for the running COMMIT to end */
	struct cas__conn **parked_tail;
	struct cas__conn *resume;     /* parked requests to dispatch again on this loop */
	struct cas__conn **resume_tail;
};

/* Shared state and its locks (each lock guards only what is listed next to it;
 * never two at once except store_lock -> (nonces.lock | grants.lock | m.lock)):
 * - read-only after start: ssl (OpenSSL locks internally), evidence_at, the
 *   store's master key, CA key and certificate (st.master, st.ca_*), loops[].
 * - store_lock: the SQLite connection st.db (so the audit chain, policies, secrets
 *   and volume tags: one writer at a time, one totally ordered audit chain),
 *   batch_open, commit_busy, commit_requested, commit_quit, commit_rc, and every
 *   loop's pending/done/parked/resume lists. commit_cond goes with it. While
 *   commit_busy the committer thread uses st.db without the lock; nobody else
 *   touches st.db then (requests that need the store are parked).
 * - nonces.lock: the nonce table (so a nonce is consumed exactly once, even when
 *   two loops race for it), nonces.c.
 * - grants.lock: the grant table, grants.c.
 * - m.lock: the metrics.
 * - conn_lock: conn_caps (connections per address, counted across loops). */
struct cas_server {
	SSL_CTX *ssl;
	struct cas_store st;
	time_t evidence_at;          /* cas_serve_opts.evidence_at: 0 = now */
	struct cas_loop loops[MAX_LOOPS];
	size_t n_loops;
	int listen_fd;
	struct event *sig_term, *sig_int, *sweep; /* on loops[0] */

	struct cas__nonce_table nonces;
	struct cas__grant_table grants;

	struct cas_metrics m;
	struct cas__limits lim;      /* read-only after start */

	pthread_mutex_t conn_lock;
	struct cas__tally conn_caps;

	/* reader_lock: rd, a read-only connection to the store for what an attestation
	 * reads before it needs the store (trusted LAS keys, collateral, AMD chains). */
	pthread_mutex_t reader_lock;
	struct cas_store rd;

	pthread_mutex_t store_lock;
	bool batch_open;             /* a write transaction collects requests */
	bool commit_busy;            /* its COMMIT runs on the committer thread */
	/* committer thread: owns the store connection only while commit_busy */
	pthread_t committer;
	bool committer_started;
	pthread_cond_t commit_cond;
	bool commit_requested, commit_quit;
};

/* ---- http.c: connections, HTTP/1.1 framing, deadlines, accept ---- */
/* Start accepting on a dup of the listening socket fd (closed with the loop). */
int cas__http_loop_start(struct cas_loop *l, int listen_fd);
/* Stop accepting and free every connection of the loop (its wait lists must be
 * empty: after flush_batch). */
void cas__http_loop_stop(struct cas_loop *l);
/* Answer the connection's request: takes body (malloc'd; wiped and freed once
 * written). A dead connection is freed instead. On the loop's thread, holding no
 * lock. */
void cas__http_send(struct cas__conn *c, int code, const char *ctype, char *body,
		    size_t size);
/* Free a dead connection taken off a wait list. */
void cas__http_drop(struct cas__conn *c);
/* server.c: handle the connection's complete request (c->head, c->body). */
void cas__handle(struct cas__conn *c);

void metrics_request(struct cas_metrics *m, const char *route, int code, double seconds);
void metrics_refused(struct cas_metrics *m, const char *label);
void metrics_attest_ok(struct cas_metrics *m);
void metrics_connection(struct cas_metrics *m);
/* Prometheus text; malloc'd. */
char *metrics_render(struct cas_metrics *m);

#endif
