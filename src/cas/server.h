/* Internal to src/cas: the running service. */
#ifndef KILN_CAS_SERVER_H
#define KILN_CAS_SERVER_H

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "cas/internal.h"

#define NONCE_TTL_S 60
#define GRANT_TTL_S (24 * 3600)
#define MAX_NONCES 100000
#define MAX_GRANTS 100000
#define MAX_GRANT_VOLUMES 16

struct nonce_ent {
	uint8_t nonce[32];
	uint64_t expires_ns;
	struct nonce_ent *next;
};

struct grant {
	uint8_t spki[KC_SHA256_SIZE];
	char session[160];
	char service[80];
	char volumes[MAX_GRANT_VOLUMES][33];
	size_t n_volumes;
	uint64_t expires_ns;
	struct grant *next;
};

#define N_BUCKETS 4096
#define N_LAT_BUCKETS 12

struct metric_count {
	char label[96];
	int code;
	uint64_t count;
};

struct cas_metrics {
	struct metric_count req[128];
	size_t n_req;
	struct metric_count refused[32];
	size_t n_refused;
	uint64_t attest_ok;
	uint64_t lat_buckets[N_LAT_BUCKETS]; /* cumulative at render time */
	double lat_sum;
	uint64_t lat_count;
};

struct cas_server {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl;
	struct cas_store st;
	struct nonce_ent *nonces[N_BUCKETS];
	size_t n_nonces;
	struct grant *grants[N_BUCKETS];
	size_t n_grants;
	struct cas_metrics m;
	time_t evidence_at;          /* cas_serve_opts.evidence_at: 0 = now */
	struct event *sig_term, *sig_int, *sweep, *commit_ev;
	bool batch_open;             /* a write transaction collects requests */
	bool commit_busy;            /* its COMMIT runs on the committer thread */
	struct pending *pending;     /* answers waiting for its COMMIT */
	struct pending **pending_tail;
	struct parked *parked;       /* requests waiting for the COMMIT to end */
	struct parked **parked_tail;
	/* committer thread: owns the store connection only while commit_busy */
	pthread_t committer;
	bool committer_started;
	pthread_mutex_t commit_lock;
	pthread_cond_t commit_cond;
	bool commit_requested, commit_quit;
	int commit_rc;
	int commit_pipe[2];
	struct event *commit_done_ev;
};

void metrics_request(struct cas_metrics *m, const char *route, int code, double seconds);
void metrics_refused(struct cas_metrics *m, const char *label);
/* Prometheus text; malloc'd. */
char *metrics_render(const struct cas_metrics *m);

#endif
