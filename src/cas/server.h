/* Internal to src/cas: the running service. */
#ifndef KILN_CAS_SERVER_H
#define KILN_CAS_SERVER_H

#include <event2/event.h>
#include <event2/http.h>
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

struct pending;
struct parked;

/* One event loop: its own event base and evhttp accepting on the shared listening
 * socket; TLS handshakes and HTTP parsing of its connections run on its thread only.
 * The lists are filled and emptied under the server's store_lock (the committer
 * thread moves them at the end of a batch); the loop answers them on its thread. */
struct cas_loop {
	struct cas_server *s;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	bool thread_started;
	struct event *commit_ev;      /* zero timer: ask for the COMMIT of the open batch */
	struct event *wake_ev;        /* made active by the committer after a COMMIT */
	struct pending *pending;      /* answers waiting for the open batch's COMMIT */
	struct pending **pending_tail;
	struct pending *done;         /* answers whose batch ended, to send on this loop */
	struct pending **done_tail;
	struct parked *parked;        /* requests waiting for the running COMMIT to end */
	struct parked **parked_tail;
	struct parked *resume;        /* parked requests to dispatch again on this loop */
	struct parked **resume_tail;
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
 * - m.lock: the metrics. */
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

void metrics_request(struct cas_metrics *m, const char *route, int code, double seconds);
void metrics_refused(struct cas_metrics *m, const char *label);
void metrics_attest_ok(struct cas_metrics *m);
void metrics_connection(struct cas_metrics *m);
/* Prometheus text; malloc'd. */
char *metrics_render(struct cas_metrics *m);

#endif
