/* kiln-las: the host attestor daemon behind the "host" evidence backend. The
 * one header of src/las/. See docs/las.md. */
#ifndef KILN_LAS_H
#define KILN_LAS_H

#include <sys/types.h>
#include <time.h>

#include "common/common.h"

struct ev_wm_cache;

#define LAS_DEFAULT_KEY "/var/lib/kiln/las.key"
#define LAS_REQUEST_MAX 4096      /* bytes of one request line, newline included */
#define LAS_REQUEST_TIMEOUT_MS 5000
#define LAS_DEFAULT_MAX_CLIENTS 32

/* A LAS signing identity: P-256 key + self-signed certificate. */
struct las_identity;

/* Load the identity file (PEM private key and certificate, any order). The key
 * must match the certificate. *out is owned by the caller (las_identity_free). */
int las_identity_load(const char *path, struct las_identity **out, struct kiln_err *err);
/* Create a new P-256 key and a self-signed certificate (CN=kiln-las <hostname>,
 * 10 years) and write both to path, mode 0600, atomically; -EEXIST if path
 * exists. Parent directories are created (0700). */
int las_identity_create(const char *path, struct las_identity **out, struct kiln_err *err);
/* Accepts NULL. Wipes the key. */
void las_identity_free(struct las_identity *id);
/* Borrowed strings, valid while id lives: the certificate PEM and its id,
 * "sha256:" + hex(SHA-256(SPKI DER)). */
const char *las_identity_cert_pem(const struct las_identity *id);
const char *las_identity_id(const struct las_identity *id);

/* What the LAS states about one peer. */
struct las_statement {
	pid_t pid;
	uid_t uid;
	const char *exe;              /* path of /proc/PID/exe */
	uint8_t exe_sha256[32];
	uint8_t workload_measurement[48];
	uint8_t report_data[64];
	time_t time;
	/* Static variant: hex SHA-256 of the kiln build (the peer) that runs the
	 * measured program supervised; NULL for a plain request. Signed as the
	 * payload's "supervised_by". */
	const char *supervised_by;
};

/* One request line (docs/las.md): {"report_data": "<128 lowercase hex>"},
 * optionally with "static_exe": true (the peer passes the opened program as
 * SCM_RIGHTS and asks for its measurement). Any other key, a duplicate key or
 * "static_exe": false is refused. 0, or -KILN_EFORMAT with *why (static text). */
struct las_request {
	uint8_t report_data[64];
	bool static_exe;
};
int las_request_parse(const char *line, struct las_request *req, const char **why);

/* Build signed host evidence (the kiln-las-v1 JSON, one line, no newline).
 * *out is malloc'd, owned by the caller. */
int las_evidence_make(const struct las_identity *id, const struct las_statement *st,
		      char **out, size_t *size, struct kiln_err *err);

struct las_config {
	const char *socket_path;        /* default EV_LAS_DEFAULT_SOCKET */
	const struct las_identity *id;
	/* SHA-256 digests of kiln runtime libraries (libkiln.so, libkiln-measure.so)
	 * that are left out of a peer's lib lines, as the runtime leaves itself out. */
	const uint8_t (*runtime_digests)[32];
	size_t n_runtime_digests;
	struct ev_wm_cache *cache;      /* file digest cache, may be NULL */
	/* SHA-256 of the kiln-sload installed with this kiln (the static loader,
	 * docs/runtime.md): besides kiln itself, the only peer that may pass a
	 * program with static_exe. */
	uint8_t sload_digest[32];
	bool have_sload;
	unsigned max_clients;           /* concurrent connections; 0 = default */
	int timeout_ms;                 /* per request; 0 = LAS_REQUEST_TIMEOUT_MS */
};

/* Serve until SIGTERM or SIGINT (which the caller must not have ignored; they
 * are blocked and taken with signalfd). Logs every request with kiln_log.
 * Returns 0 after a graceful stop. */
int las_serve(const struct las_config *cfg, struct kiln_err *err);

#endif
