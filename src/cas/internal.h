/* Internal to src/cas: what the service's files share (prefix cas__; the
 * public API is cas.h). */
#ifndef KILN_CAS_INTERNAL_H
#define KILN_CAS_INTERNAL_H

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "cas/cas.h"
#include "cas/db.h"
#include "crypto/crypto.h"
#include "evidence/evidence.h"
#include "policy/policy.h"

/* ---- x509.c ---- */
/* alg: "p256", "p384", "ed25519", "rsa3072". *out owned by the caller. */
int cas__x509_keygen(const char *alg, EVP_PKEY **out);
/* Make a certificate for key, signed by issuer_key (self-signed when issuer is
 * NULL). sans: DNS names and IP addresses (detected by inet_pton). */
int cas__x509_make_cert(EVP_PKEY *key, const char *cn, unsigned days, bool ca,
		 char *const *dns, size_t n_dns, char *const *ip, size_t n_ip, X509 *issuer,
		 EVP_PKEY *issuer_key, X509 **out);
/* PEM/DER encodings, malloc'd, owned by the caller (wipe private keys). */
int cas__x509_key_pem(EVP_PKEY *key, bool private_part, char **out, size_t *size);
int cas__x509_key_der(EVP_PKEY *key, uint8_t **out, size_t *size);
int cas__x509_cert_pem(X509 *cert, char **out, size_t *size);
int cas__x509_cert_der(X509 *cert, uint8_t **out, size_t *size);
int cas__x509_spki_sha256(X509 *cert, uint8_t out[KC_SHA256_SIZE]);
/* DER SubjectPublicKeyInfo of a certificate (OPENSSL_free); returns its size or
 * <= 0 on failure. */
int cas__x509_cert_spki_der(X509 *cert, unsigned char **der);
/* ECDSA/EdDSA/RSA signature over data with SHA-256 (DER), malloc'd. */
int cas__x509_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t **sig, size_t *sig_size);
int cas__x509_verify(EVP_PKEY *key, const void *data, size_t size, const uint8_t *sig,
	      size_t sig_size);

/* ---- store.c: the data directory and the store's rows (through db.h) ---- */
struct cas__store {
	struct cas__db *db;   /* owned */
	uint8_t master[KC_AEAD_KEY_SIZE];
	EVP_PKEY *ca_key;
	X509 *ca_cert;
	char dir[512];
	char where[600];        /* the database, for messages (DIR/kiln.db) */
	char master_path[600];  /* the master key file */
	int schema_from, schema_to; /* what opening it migrated (equal: nothing) */
	struct cas__polcache *pc; /* parsed policies by hash (polcache.c), owned */
};

/* Open (and create) the data dir: master key, CA, store. Never regenerates a
 * missing master key or CA when a store exists. */
int cas__store_open(struct cas__store *st, const char *dir, bool create, struct kiln_err *err);
void cas__store_close(struct cas__store *st);
/* A second, read-only connection to st's database in *rd (only rd->db and rd->dir
 * are set; cas__store_close releases it). In WAL mode it reads the last committed state
 * without waiting for st's open transaction or its COMMIT. */
int cas__store_open_reader(const struct cas__store *st, struct cas__store *rd,
			   struct kiln_err *err);
/* Only the key material of DIR in st (master key, CA; both must exist), for
 * a command that opens databases itself (store_copy.c); st->db stays NULL. */
int cas__store_load_keys(struct cas__store *st, const char *dir, struct kiln_err *err);
/* What meta's key_check and ca_check hold for st's master key and CA. */
int cas__store_key_checks(const struct cas__store *st, uint8_t mac[KC_SHA256_SIZE],
			  uint8_t ca[KC_SHA256_SIZE]);
/* The process's --store URL (cas_store_use), NULL for DIR/kiln.db. */
const char *cas__store_url(void);
int cas__store_begin(struct cas__store *st);
int cas__store_commit(struct cas__store *st);
void cas__store_rollback(struct cas__store *st);

/* ---- schema.c ---- */
#define CAS_SCHEMA_VERSION 3
/* Bring the store's tables to CAS_SCHEMA_VERSION (in one write transaction);
 * *from / *to (may be NULL) get the versions before and after. A store newer
 * than this kiln is refused (-KILN_EFORMAT). */
int cas__schema_upgrade(struct cas__db *db, int *from, int *to, struct kiln_err *err);
/* The same inside the caller's write transaction (no retry, no message):
 * 0, -KILN_EFORMAT (newer), -KILN_ECORRUPT or the layer's code. */
int cas__schema_upgrade_in_tx(struct cas__db *db, int *from, int *to);
/* The version schema_version holds (0: no row); fails when the table is
 * missing, -KILN_ECORRUPT when it is negative. */
int cas__schema_version(struct cas__db *db, int *version);

struct cas__policy {
	char *name, *hash, *yaml, *canonical, *owner;
	int64_t version;
};
void cas__policy_free(struct cas__policy *p);
/* 0 and *out filled, -ENOENT, or another negative code. */
int cas__policy_get(struct cas__store *st, const char *name, struct cas__policy *out);
int cas__policy_put(struct cas__store *st, const struct cas__policy *p);
/* 0 when name's stored policy has this hash, -ESTALE when it has another or is
 * gone, -EIO. */
int cas__policy_current(struct cas__store *st, const char *name, const char *hash);
int cas__policy_delete(struct cas__store *st, const char *name);
/* ---- proposals.c: pending proposals (new versions awaiting approvals) ---- */
struct cas__proposal {
	char *name, *hash, *predecessor, *yaml;
	char *proposer;  /* identity */
	char *approvals; /* JSON array of identities, in order */
	char *id;        /* 32 hex: this instance (online approvals sign it) */
	char *action;    /* "update" (apply hash) or "delete" (delete hash, the
			  * version current when proposed: then predecessor == hash) */
	int64_t created, expires; /* Unix seconds */
};
void cas__proposal_free(struct cas__proposal *p);
/* 0 and *out filled (owned by the caller), -ENOENT, or another negative code. */
int cas__proposal_get(struct cas__store *st, const char *name, const char *hash,
		      struct cas__proposal *out);
int cas__proposal_put(struct cas__store *st, const struct cas__proposal *p);
/* hash NULL: every proposal of the policy. */
int cas__proposal_delete(struct cas__store *st, const char *name, const char *hash);
int cas__proposal_each(struct cas__store *st, int (*cb)(void *, const struct cas__proposal *),
		       void *ctx);

/* Record a detached approval as used (ap->digest, kept until ap->not_after):
 * -EEXIST when it was used before. */
int cas__approval_spend(struct cas__store *st, const struct cas_approval *ap, int64_t now);

/* ---- approval.c ---- the checks of cas_approval_verify on a parsed object. */
int cas__approval_check(const json_t *o, struct cas_approval *out, struct kiln_err *err);

/* Calls cb for every policy (name order); cb returning non-zero stops. */
int cas__policy_each(struct cas__store *st, int (*cb)(void *, const struct cas__policy *),
		     void *ctx);

/* Secrets: plaintext value handed back malloc'd (caller wipes + frees). */
int cas__secret_get(struct cas__store *st, const char *session, const char *name, char **spec,
		  uint8_t **value, size_t *size);
int cas__secret_put(struct cas__store *st, const char *session, const char *name,
		  const char *spec, const uint8_t *value, size_t size);

struct cas__volume {
	char id[33];
	uint8_t key[32];
	int64_t committed;
	int64_t prepared; /* -1: none */
	char session[160];
	char name[80];
};
/* Get the volume (session, name), creating it (random id and key) if new. */
int cas__volume_get_or_create(struct cas__store *st, const char *session, const char *name,
			    struct cas__volume *out);
int cas__volume_by_id(struct cas__store *st, const char *id, struct cas__volume *out);
int cas__volume_set_tags(struct cas__store *st, const char *id, int64_t committed,
		       int64_t prepared);

int cas__las_add(struct cas__store *st, const char *id, const char *pem);
/* Trusted LAS certificates: *pems is a NULL-terminated malloc'd array. */
int cas__las_list(struct cas__store *st, char ***pems, size_t *n);
void cas__strv_free(char **v);
/* Hardware-TEE trust (kiln cas collateral / trust-amd-chain): rows (id, tee,
 * data). sgx/tdx: id "collateral:<tee>:<FMSPC>", data = the collateral JSON (one
 * per platform, replaced; "collateral:<tee>" from an older kiln: one per tee);
 * snp: id "amd:<sha256 of data>", data = PEM certificates. _list gives
 * the data of every row for tee, a NULL-terminated malloc'd array (cas__strv_free). */
int cas__tee_trust_add(struct cas__store *st, const char *id, const char *tee, const char *data);
int cas__tee_trust_list(struct cas__store *st, const char *tee, char ***items, size_t *n);
/* amd_certs.c: the stored VCEK (by chip ID and reported TCB) or VLEK (by reported
 * TCB) an SNP report is signed with, *pem malloc'd; -ENOENT (what: a refusal
 * reason naming the chip and what is missing), -KILN_EFORMAT (not a report),
 * -EIO, -ENOMEM. */
/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) of Unix time t, for messages (collateral.c). */
void cas__fmt_time(int64_t t, char out[32]);
int cas__amd_leaf_for(struct cas__store *st, const uint8_t *evidence, size_t size,
		      char **pem, char *what, size_t what_size);
/* collateral.c: the collateral for (tee, FMSPC), else the older one-per-tee row:
 * 0 with *out (owned), -ENOENT, or -EIO. */
int cas__collateral_for(struct cas__store *st, const char *tee, const char *fmspc,
			json_t **out);

/* Namespaces (kiln cas namespace): policies named "NAME/..." may be created only
 * by the identities in owners (space-separated "sha256:<hex>"). _get: 0 with
 * *owners malloc'd (the caller frees), -ENOENT when NAME is not registered. */
int cas__namespace_set(struct cas__store *st, const char *name, const char *owners);
int cas__namespace_delete(struct cas__store *st, const char *name);
int cas__namespace_get(struct cas__store *st, const char *name, char **owners);

/* ---- audit.c ---- */
/* Append one entry (inside the caller's transaction when there is one).
 * Takes ownership of details (NULL is -ENOMEM, for json_pack failures). */
int cas__audit_append(struct cas__store *st, const char *kind, const char *actor,
		    const char *subject, json_t *details);

/* ---- secrets.c ---- */
/* A secret of another policy released through an import: audited under the
 * exporting policy too. */
struct cas__release {
	char exporter[160];
	char exporter_hash[POL_HASH_STR_SIZE];
	char secret[72];
	char importer[160]; /* the policy that imported it (the last hop) */
};

struct cas__secret_ctx {
	struct cas__store *st;
	const struct pol_policy *policy;
	const char *owner;    /* the policy's owner identity */
	const json_t *host;   /* launcher-supplied values, may be NULL */
	const struct pol_service *svc;
	const json_t *claims; /* the attestation's claims: exporters' rules apply */
	time_t at;            /* when the claims were verified (tolerate entries expire) */
	/* out */
	const char *label;    /* "export_refused" when an exporter refused */
	struct cas__release releases[64]; /* more are refused: each release is audited */
	size_t n_releases;
};
/* Resolver for pol_substitute over the store (generates on first use). */
int cas__secret_resolve(void *ctx, bool host, const char *name, enum pol_fmt fmt,
		       uint8_t **out, size_t *out_size, struct kiln_err *err);

/* ---- netconf.c: the network and console shields' part of an attestation answer ----
 * Add "network" (rules with their certificates, keys and CA certificates) and
 * "console" (the console key) to resp when the service has them (inside the
 * caller's transaction). */
int cas__net_config(struct cas__secret_ctx *sc, json_t *resp, struct kiln_err *err);
/* The console key of (session, service), made on first use (inside the
 * caller's transaction). */
int cas__console_key(struct cas__store *st, const char *session, const char *service,
		     uint8_t key[static 32]);

/* ---- polcache.c: parsed policies by hash ----
 * The parsed form of a stored policy row, from st's cache (GET, list rows and
 * attestations do not parse the YAML again). *out is a reference: give it back
 * with cas__policy_unref (never pol_free); it is never changed. */
int cas__policy_parse(struct cas__store *st, const struct cas__policy *row,
		    struct pol_policy **out, struct kiln_err *err);
void cas__policy_unref(struct cas__store *st, struct pol_policy *p);
/* At cas__store_close. */
void cas__polcache_free(struct cas__store *st);

/* Load the current parsed policy of a session: *out is a reference (give it back
 * with cas__policy_unref). owner (may be NULL) receives its owner identity. */
int cas__policy_load(struct cas__store *st, const char *name, struct pol_policy **out,
		    char owner[CAS_ID_SIZE], struct kiln_err *err);

/* ---- nonces.c: attestation nonces, bounded per client ---- */
#define CAS_NONCE_TTL_S 20          /* single use, within 20 s of issue */
#define CAS_NONCE_MAX 100000        /* outstanding, all clients (memory bound) */
#define CAS_NONCES_PER_ID 2         /* per client certificate (a workload needs 1) */
#define CAS_NONCES_PER_ADDR 256     /* per source address, without a certificate */
#define CAS_NONCE_BUCKETS 4096
#define CAS_CLIENT_KEY_SIZE 80      /* "id:<64 hex>" or "ip:<address>" */

/* ---- tally.c: counts by client key (under the owner's lock) ---- */
#define CAS_TALLY_BUCKETS 4096
struct cas__tally_ent;
struct cas__tally {
	struct cas__tally_ent *buckets[CAS_TALLY_BUCKETS];
};
/* Count one more for key if it holds fewer than limit: its entry (for
 * cas__tally_put), or NULL with *err = -EUSERS (at its limit) or -ENOMEM. */
struct cas__tally_ent *cas__tally_take(struct cas__tally *t, const char *key, uint32_t limit,
				       int *err);
/* Count one less (e may be NULL); the entry goes with its last count. */
void cas__tally_put(struct cas__tally *t, struct cas__tally_ent *e);
uint32_t cas__tally_of(struct cas__tally *t, const char *key);
void cas__tally_free(struct cas__tally *t);

struct cas__nonce;
/* The limits are set by cas__nonces_init; tests may lower them. */
struct cas__nonce_table {
	pthread_mutex_t lock;
	struct cas__nonce *buckets[CAS_NONCE_BUCKETS];
	struct cas__tally clients;
	size_t n;
	size_t max_total;
	uint32_t max_per_id, max_per_addr;
	uint64_t ttl_ns;
};
void cas__nonces_init(struct cas__nonce_table *t);
void cas__nonces_free(struct cas__nonce_table *t);
/* A new nonce charged to client ("id:..." when identified, else "ip:..."):
 * 0 with nonce filled; -EUSERS when this client holds its limit; -ENOSPC when
 * the table is full; -ENOMEM, -KILN_ECRYPTO. */
int cas__nonce_issue(struct cas__nonce_table *t, const char *client, bool identified,
		     uint64_t now_ns, uint8_t nonce[32]);
/* Remove the nonce; true when it was known and fresh. Exactly one of several
 * racing callers gets true. */
bool cas__nonce_consume(struct cas__nonce_table *t, const uint8_t nonce[32], uint64_t now_ns);
/* True when the nonce is known and fresh (it stays). */
bool cas__nonce_peek(struct cas__nonce_table *t, const uint8_t nonce[32], uint64_t now_ns);
/* Drop expired nonces; returns how many remain. */
size_t cas__nonces_sweep(struct cas__nonce_table *t, uint64_t now_ns);

/* ---- nonces_db.c: nonces shared by the replicas of a PostgreSQL store ----
 * Off (c.db NULL) on SQLite. Times are Unix seconds (replicas share no
 * monotonic clock). _take: 1 when the nonce was there and fresh (and is now
 * used), 0 when unknown, used or expired, negative when the store failed;
 * exactly one of several racing callers, at any replica, gets 1. */
struct cas__shared_nonces {
	pthread_mutex_t lock;  /* c */
	struct cas__store c;   /* its own connection, owned */
};
int cas__snonces_open(struct cas__shared_nonces *sn, const struct cas__store *st,
		      struct kiln_err *err);
void cas__snonces_close(struct cas__shared_nonces *sn);
bool cas__snonces_on(const struct cas__shared_nonces *sn);
int cas__snonce_add(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t expires);
int cas__snonce_take(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t now);
int cas__snonce_peek(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t now);
void cas__snonces_sweep(struct cas__shared_nonces *sn, int64_t now);
/* The client key of a request: "id:<hex>" of its certificate's SPKI SHA-256 when
 * spki is given, else "ip:" + its address (IPv6: the /64 prefix). */
void cas__client_key(const uint8_t *spki, const char *address, char out[CAS_CLIENT_KEY_SIZE]);

/* ---- grants.c: what an attested key may do afterwards (the store's grants) ---- */
#define CAS_GRANT_TTL_S (24 * 3600)
#define CAS_GRANT_MAX 100000        /* live grants, all policies (storage bound) */
#define CAS_GRANTS_PER_POLICY 1024  /* beyond: the policy's oldest grant goes */
#define CAS_GRANT_MAX_VOLUMES 16

/* Read-only after start. */
struct cas__grant_limits {
	size_t max_total, max_per_policy;
	int64_t ttl_ns;
};
void cas__grant_limits_init(struct cas__grant_limits *g);
/* Wall-clock nanoseconds: what grants' created_ns and expires_ns count in (the
 * processes of one store may run on several machines). */
int64_t cas__grant_clock(void);
/* In the open write transaction: grant spki the volumes (ids, 32 hex) of
 * session's service for g->ttl_ns, replacing the key's earlier grant; when
 * session holds max_per_policy grants its oldest go (*evicted). Expired grants
 * are deleted first. 0, -ENOSPC (max_total live grants: the caller rolls
 * back), -EAGAIN or -EIO. */
int cas__grant_put(struct cas__store *st, const struct cas__grant_limits *g,
		   const uint8_t spki[KC_SHA256_SIZE], const char *session,
		   char (*volumes)[33], size_t n_volumes, int64_t now_ns, bool *evicted);
/* 1 when spki holds a live grant naming the volume id (session: its policy),
 * 0 when not, negative when the store failed. */
int cas__grant_allows(struct cas__store *st, const uint8_t spki[KC_SHA256_SIZE],
		      const char *volume_id, int64_t now_ns, char session[160]);
/* Live grants of one policy in *n (for tests). */
int cas__grants_of(struct cas__store *st, const char *session, int64_t now_ns, int64_t *n);

/* ---- http_parse.c: the head of an HTTP/1.1 request (fuzzed) ---- */
#define CAS_HTTP_MAX_HEAD 16384      /* request line and header fields */
#define CAS_HTTP_MAX_BODY (1u << 20)
#define CAS_HTTP_MAX_FIELDS 100

enum cas__http_method { CAS_HTTP_GET = 1, CAS_HTTP_POST, CAS_HTTP_DELETE };

struct cas__http_head {
	enum cas__http_method method;
	char *path;              /* into the parsed text: "/...", query cut off */
	char *query;             /* after the '?' (into the text), or NULL */
	int minor;               /* HTTP/1.minor */
	uint64_t content_length; /* 0 without a Content-Length */
	bool has_length;
	bool keep_alive;         /* the connection stays open after the answer */
	bool close, keep_alive_10; /* the Connection tokens seen */
	bool expect_continue;
};
/* Parse text[0..size), a complete request head ending with its empty line
 * ("\r\n\r\n"), with text[size] == '\0'; text is modified (h->path points
 * into it). Returns 0, or the HTTP status to refuse it with (400, 411, 417,
 * 431, 501, 505) and *why naming the problem (a static string). */
int cas__http_parse_head(char *text, size_t size, struct cas__http_head *h, const char **why);

/* ---- request.c: validation of JSON request bodies (fuzzed) ---- */
struct cas__attest_req {
	const char *session, *service, *tee, *evidence_b64; /* borrowed from body */
	const char *workload_measurement; /* hardware TEEs only; NULL when absent */
	uint8_t nonce[32];
	bool nonce_ok;      /* false: not 64 hex digits (refused as a stale nonce) */
	const json_t *host; /* object or NULL */
	json_t *body;       /* owned: json_decref */
};
/* 0, or -KILN_EFORMAT with err naming what is wrong. */
int cas__attest_req_parse(const char *text, size_t size, struct cas__attest_req *out,
			 struct kiln_err *err);
/* POST /v1/proposals: {"yaml": TEXT, "expires_in": SECONDS?, "approvals": [approval]?}.
 * Each approval is verified (cas__approval_check) and must be of this policy
 * version (checked by the handler, which knows the hash). */
#define CAS_PROPOSAL_MAX_APPROVALS 32
#define CAS_PROPOSAL_MAX_EXPIRES (90 * 86400)
struct cas__proposal_req {
	const char *yaml;  /* borrowed from body */
	size_t yaml_size;
	int64_t expires_in; /* 0: the default */
	struct cas_approval approvals[CAS_PROPOSAL_MAX_APPROVALS];
	size_t n_approvals;
	json_t *body;      /* owned: json_decref */
};
int cas__proposal_req_parse(const char *text, size_t size, struct cas__proposal_req *out,
			    struct kiln_err *err);
/* A body of exactly two string fields k1 and k2 ({"session": .., "secret": ..}):
 * 0 with *v1, *v2 borrowed from *body (owned: json_decref), or -KILN_EFORMAT
 * with err saying what was expected. text may be NULL (no body). */
int cas__pair_req_parse(const char *text, size_t size, const char *k1, const char *k2,
			json_t **body, const char **v1, const char **v2, struct kiln_err *err);
/* POST /v1/proposals/withdraw: {"policy": NAME, "hash": HASH}; borrowed from *body. */
int cas__withdraw_req_parse(const char *text, size_t size, json_t **body, const char **policy,
			    const char **hash, struct kiln_err *err);
/* {"tag": N} with 1 <= N; -KILN_EFORMAT otherwise. */
int cas__tag_req_parse(const char *text, size_t size, int64_t *tag);

#define N_LAT_BUCKETS 12

struct metric_count {
	char label[96];
	int code;
	uint64_t count;
};

/* lock guards every field: metrics are bumped from every event loop. */
struct cas__metrics {
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

/* ---- refusals.c: refused policy requests in the audit chain, rate-limited ---- */
#define CAS_REFUSALS_PER_ID 10  /* audit entries per identity per minute */
#define CAS_REFUSALS_PER_MIN 60 /* audit entries per minute in all */
struct cas__refusal_limit {
	int64_t minute;           /* the current minute (Unix time / 60) */
	unsigned total;           /* entries written in it */
	struct cas__tally per_id; /* entries per identity in it */
	uint64_t suppressed;      /* refusals left out since the last entry */
};
struct cas__req;
/* What a policy request is about, for the audit of its refusal: kind (a static
 * string), the policy name and hash (NULL: unchanged; copied). */
void cas__refusal_subject(struct cas__req *rc, const char *kind, const char *name,
			  const char *hash);
/* Called by cas__fail: note a refusal (403, 404, 409) of an audited request. */
void cas__refusal_note(struct cas__req *rc, int status, const char *msg);
/* After the handler, under store_lock: write the noted refusal to the chain in
 * its own savepoint (unless rate-limited). */
int cas__refusal_audit(struct cas__req *rc);

/* Connection deadlines and limits (cas_serve_opts; defaults in docs/cas.md). */
struct cas__limits {
	unsigned handshake_s;  /* accept -> TLS handshake done */
	unsigned header_s;     /* first byte of a request (or the handshake) -> its head */
	unsigned body_s;       /* head -> the last byte of its body */
	unsigned idle_s;       /* between requests, and to write an answer */
	unsigned conns_per_addr;
};

struct cas__conn;

/* The parameters of a route's path template (route.c). */
struct cas__route_args {
	const char *name;  /* {name}: the rest of the path (into the request head) */
	char id[33];       /* {id}: 32 lowercase hex digits */
};

/* One request's context for the handlers; in its connection, made anew each
 * time the request is dispatched (again, after being parked). */
struct cas__req {
	struct cas__server *s;
	struct cas__loop *loop;    /* the loop (thread) that owns conn */
	struct cas__conn *conn;
	uint64_t start_ns;
	const char *route;        /* its route's template (the metrics label) */
	struct cas__route_args args;
	char request_id[33];
	X509 *peer;               /* borrowed from the SSL session, may be NULL */
	char peer_id[CAS_ID_SIZE]; /* "" without a client certificate */
	uint8_t peer_spki[KC_SHA256_SIZE]; /* SHA-256 of its SPKI (the id's bytes) */
	unsigned retry_after;     /* seconds: sent as Retry-After with the answer */
	bool deferred;            /* wrote in the open batch: answer after its COMMIT */
	bool store;               /* runs under store_lock (uses the store) */
	bool queued;              /* the answer waits in the loop's pending list */
	bool batch_ok;            /* its batch committed (set when it moves to done) */
	/* A refusal to audit (refusals.c): the request's kind ("policy.apply", …;
	 * NULL: not audited), its policy and hash as far as known, and the refusal
	 * (status 0: none). */
	const char *audit_kind;
	char audit_subject[132];
	char audit_hash[72];
	int refused;
	char refusal[600];
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
	struct cas__loop *loop;
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
	struct cas__req rc;
	struct cas__conn *wait_next;  /* in a wait list of the loop */
	struct cas__conn *prev, *next; /* l->conns */
};

/* One event loop: its own event base and listener on the shared listening
 * socket; TLS handshakes and HTTP parsing of its connections run on its thread only.
 * The wait lists are filled and emptied under the server's store_lock (the
 * committer thread moves them at the end of a batch); the loop answers them on its
 * thread. */
struct cas__loop {
	struct cas__server *s;
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
 * never two at once except store_lock -> (nonces.lock | m.lock)):
 * - read-only after start: ssl (OpenSSL locks internally), evidence_at, the
 *   store's master key, CA key and certificate (st.master, st.ca_*), loops[].
 * - store_lock: the store connection st.db (so the audit chain, policies, secrets,
 *   volume tags and grants: one writer at a time, one totally ordered audit chain),
 *   batch_open, commit_busy, commit_requested, commit_quit, commit_rc, and every
 *   loop's pending/done/parked/resume lists. commit_cond goes with it. While
 *   commit_busy the committer thread uses st.db without the lock; nobody else
 *   touches st.db then (requests that need the store are parked).
 * - nonces.lock: the nonce table (so a nonce is consumed exactly once, even when
 *   two loops race for it), nonces.c.
 * - m.lock: the metrics.
 * - conn_lock: conn_caps (connections per address, counted across loops). */
/* ---- pccs_parse.c, pccs.c: collateral from a PCCS ---- */
#define CAS_PCCS_MAX_BODY (1 << 20) /* bytes of one answer */
#define CAS_PCCS_TIMEOUT_S 10
struct cas__pccs_body {
	char *data;  /* NUL-terminated at size (may hold NULs before) */
	size_t size;
};
/* What a PCCS answered, its issuer chain headers URL-decoded (NULL: absent). */
struct cas__pccs_answers {
	struct cas__pccs_body pck_crl, root_ca_crl, tcb_info, qe_identity;
	const char *pck_crl_chain, *tcb_info_chain, *qe_identity_chain;
};
/* The answers as one collateral (the format of `kiln cas collateral add`),
 * not yet authenticated; *out owned by the caller. -KILN_EFORMAT naming the
 * answer that is wrong. */
int cas__pccs_collateral(const struct cas__pccs_answers *a, json_t **out, struct kiln_err *err);
/* Fetch tee/fmspc's answers from p and make them one collateral (*collateral
 * owned by the caller). Transport failures, timeouts, HTTP errors and bad
 * answers: negative, err naming the URL. */
int cas__pccs_fetch(const struct cas_pccs *p, const char *tee, const char *fmspc,
		    json_t **collateral, struct kiln_err *err);

/* ---- pccs_refresh.c: kiln cas serve --pccs ---- */
#define CAS_REFRESH_WANT 8            /* platforms asked for between passes */
#define CAS_REFRESH_INTERVAL_S 3600
struct cas__refresher {
	pthread_t thread;
	bool inited, started;
	pthread_mutex_t lock;         /* want, n_want, quit; cond goes with it */
	pthread_cond_t cond;
	bool quit;
	char want[CAS_REFRESH_WANT][2][16]; /* tee, FMSPC of refused attestations */
	size_t n_want;
	struct cas_pccs pccs;         /* strings borrowed from the serve options */
	unsigned interval_s;
	char data_dir[512];
};
/* Start the thread when p names a PCCS (else only initialize r). */
int cas__refresher_start(struct cas__refresher *r, const char *data_dir,
			 const struct cas_pccs *p, unsigned interval_s, struct kiln_err *err);
/* Ask for tee/fmspc's collateral now (an attestation found none); no-op
 * without a PCCS. */
void cas__refresher_want(struct cas__refresher *r, const char *tee, const char *fmspc);
void cas__refresher_stop(struct cas__refresher *r);

/* GET /v1/attestation per client address: a burst, then this many a second. */
#define CAS_SELF_BURST 20
#define CAS_SELF_PER_SECOND 2
#define CAS_SELF_ADDRS 256

/* The CAS's own attestation (api_self.c), read-only once the service runs but
 * for the locks. */
struct cas__self {
	const struct ev_backend *be;   /* NULL: not attested (serve without --tee) */
	uint8_t wm[48];                /* workload measurement of this process */
	uint8_t key_sha256[KC_SHA256_SIZE]; /* of the TLS server key's SPKI DER */
	/* One evidence request at a time: configfs-tsm reports and kiln-las
	 * requests are serial anyway, and this bounds what a flood can start. */
	pthread_mutex_t lock;
	/* Per client address, a token bucket (CAS_SELF_BURST, CAS_SELF_PER_SECOND):
	 * one client asking in a loop gets 429 with Retry-After and cannot keep
	 * the others waiting for `lock`. Under rl_lock; the least recently used
	 * address makes room for a new one. */
	pthread_mutex_t rl_lock;
	struct cas__self_bucket {
		char addr[64];
		double tokens;
		uint64_t last_ns;
		bool limited;              /* logged since it last had a token */
	} rl[CAS_SELF_ADDRS];
};

/* How many policies the "tolerance ends soon" warning remembers (once each). */
#define CAS_TOL_WARNED 64
/* The warning comes this long before a tolerance an attestation needed ends. */
#define CAS_TOL_WARN_SECONDS (30 * 86400)

struct cas__server {
	SSL_CTX *ssl;
	struct cas__self self;
	struct cas__refresher refresher; /* its own lock (pccs_refresh.c) */
	struct cas__store st;
	time_t evidence_at;          /* cas_serve_opts.evidence_at: 0 = now */
	struct cas__loop loops[MAX_LOOPS];
	size_t n_loops;
	int listen_fd;
	struct event *sig_term, *sig_int, *sig_hup, *sweep; /* on loops[0] */
	void (*reload)(void *arg); /* cas_serve_opts.reload, reload_arg */
	void *reload_arg;

	struct cas__nonce_table nonces;
	struct cas__shared_nonces snonces; /* PostgreSQL store: across replicas */
	bool snonces_open;
	struct cas__grant_limits grants; /* read-only after start; the grants are rows */

	struct cas__metrics m;
	struct cas__limits lim;      /* read-only after start */

	pthread_mutex_t conn_lock;
	struct cas__tally conn_caps;

	struct cas__refusal_limit refusals; /* under store_lock */
	/* Policies (hashes) whose ending security.tolerate entry was logged
	 * (api_attest.c), the last CAS_TOL_WARNED of them; under store_lock. */
	char tol_warned[CAS_TOL_WARNED][POL_HASH_STR_SIZE];
	unsigned n_tol_warned;

	/* reader_lock: rd, a read-only connection to the store for what an attestation
	 * reads before it needs the store (trusted LAS keys, collateral, AMD chains). */
	pthread_mutex_t reader_lock;
	struct cas__store rd;

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
int cas__http_loop_start(struct cas__loop *l, int listen_fd);
/* Stop accepting and free every connection of the loop (its wait lists must be
 * empty: after flush_batch). */
void cas__http_loop_stop(struct cas__loop *l);
/* Answer the connection's request: takes body (malloc'd; wiped and freed once
 * written). A dead connection is freed instead. On the loop's thread, holding no
 * lock. */
void cas__http_send(struct cas__conn *c, int code, const char *ctype, char *body,
		    size_t size);
/* Free a dead connection taken off a wait list. */
void cas__http_drop(struct cas__conn *c);
/* route.c: handle the connection's complete request (c->head, c->body). */
void cas__handle(struct cas__conn *c);

void cas__metrics_request(struct cas__metrics *m, const char *route, int code, double seconds);
void cas__metrics_refused(struct cas__metrics *m, const char *label);
void cas__metrics_attest_ok(struct cas__metrics *m);
void cas__metrics_connection(struct cas__metrics *m);
/* Prometheus text; malloc'd. */
char *cas__metrics_render(struct cas__metrics *m);

/* ---- route.c: the route table, the answers, the failure -> status map ----
 * The answer helpers take the answer (body owned by them) and keep it in rc
 * until cas__handle sends it with the locks released; while a write batch is
 * open an answer of a request that used the store waits for the COMMIT. */
struct cas__route {
	enum cas__http_method method; /* 0: any */
	const char *path;            /* template: "/v1/policies/{name}" (docs/api.md) */
	bool store;                  /* the handler runs under store_lock */
	void (*fn)(struct cas__req *rc);
};
/* The route for method and path (its parameters in args), or NULL; then
 * *other_method is a route of that path for another method (405), if any. */
const struct cas__route *cas__route_find(enum cas__http_method method, const char *path,
					 struct cas__route_args *args,
					 const struct cas__route **other_method);
/* The one mapping from an error code (-errno, -KILN_E*) to an HTTP status: 500
 * for a code it does not list. */
int cas__http_status(int err);
/* Answer a failure: the status from cas__http_status(err); msg NULL: the
 * mapping's own message for err. */
void cas__fail(struct cas__req *rc, int err, const char *msg);
/* The same with a body of the handler's own (it carries more than a message). */
void cas__fail_json(struct cas__req *rc, int err, json_t *body);
/* A successful answer (2xx). */
void cas__reply_json(struct cas__req *rc, int code, json_t *body);
/* Send the kept answer (or a 500 when !ok: its batch did not commit); the
 * connection may be gone afterwards. */
void cas__send_stashed(struct cas__req *rc, bool ok);
/* A NUL-terminated copy of the request body (the caller frees it). */
char *cas__read_body(struct cas__req *rc, size_t *size);
/* The body as two names (cas__pair_req_parse); < 0 once answered 400. */
int cas__read_pair(struct cas__req *rc, const char *k1, const char *k2, json_t **body,
		   const char **v1, const char **v2);
/* True when the request has a client certificate; else answers 401. */
bool cas__need_identity(struct cas__req *rc);
/* 403 "not allowed or not found": the same for a missing and a hidden policy. */
void cas__refuse_forbidden(struct cas__req *rc);

/* ---- commit.c: group commit and transactions ---- */
void *cas__committer(void *arg);                               /* the thread */
void cas__on_commit(evutil_socket_t fd, short what, void *arg); /* loop's timer */
void cas__on_wake(evutil_socket_t fd, short what, void *arg);   /* loop's wake event */
/* At shutdown, once the loops have stopped: commit what is open, send answers. */
void cas__flush_batch(struct cas__server *s);
/* Park the connection's request until the running COMMIT ends (store_lock held). */
void cas__park_locked(struct cas__loop *l, struct cas__conn *c);
/* For a handler that starts without the store: take store_lock for the rest of
 * the request (true), or park the request while a COMMIT runs (false: it is
 * dispatched again from the start afterwards). */
bool cas__store_enter(struct cas__req *rc);
/* The request's writes: a SAVEPOINT in the open batch (opened, and its COMMIT
 * asked for at the next turn of the loop, when there is none). _release keeps
 * them (the answer then waits for the COMMIT), _rollback undoes them. */
int cas__tx_begin(struct cas__req *rc);
void cas__tx_rollback(struct cas__req *rc);
int cas__tx_release(struct cas__req *rc);
/* Inside the request's transaction: p (read before it; another CAS process
 * may have changed it since) is still the policy's current version. If not: the
 * savepoint rolled back, 503 'the policy changed during the request, ask
 * again' (or 500) sent, negative returned; nothing may be served from p. */
int cas__tx_policy_current(struct cas__req *rc, const struct pol_policy *p);

/* ---- the API handlers (api_policy.c, api_attest.c, api_volume.c) ---- */
/* Each is a route's handler (route.c); a path parameter is in rc->args. */
void cas__api_policy_apply(struct cas__req *rc);
void cas__api_policy_list(struct cas__req *rc);
void cas__api_policy_get(struct cas__req *rc);
void cas__api_policy_delete(struct cas__req *rc);
void cas__api_certificate(struct cas__req *rc); /* api_cert.c */
void cas__api_console(struct cas__req *rc);     /* api_console.c */
/* Submit a new version as ids[0] (the caller) with the approvals ids[1..n): apply
 * it when every rule is met; for a quorum-governed policy, else open a proposal
 * (expires_in seconds, 0: the default). aps: the detached approvals behind
 * ids[1..], spent (each counts once) if the submission writes anything. Answers
 * the request. */
void cas__policy_submit(struct cas__req *rc, const char *yaml, size_t size,
			const char *const *ids, size_t n_ids, const struct cas_approval *aps,
			size_t n_aps, int64_t expires_in);
/* Write p as the next version of old (NULL: create it), in the open transaction,
 * audit it (with approvals, may be NULL), release the transaction and answer.
 * Negative: nothing answered, the caller rolls back. */
int cas__policy_write_version(struct cas__req *rc, const struct pol_policy *p, const char *yaml,
			      const struct cas__policy *old, json_t *approvals);
/* Delete the policy of row (its secrets, volumes' keys and proposals), in the
 * open transaction, audit it (with approvals, may be NULL), release and answer.
 * Negative: nothing answered, the caller rolls back. */
int cas__policy_remove(struct cas__req *rc, const struct cas__policy *row, json_t *approvals);
/* api_proposal.c */
/* What a new proposal is: all borrowed. A deletion has hash == predecessor ==
 * the current version's. */
struct cas__proposal_spec {
	const char *action; /* "update" or "delete" */
	const char *name, *hash, *predecessor, *yaml;
};
/* Open a proposal in the open transaction (ids[0] proposes, ids[1..] approve;
 * why: what it still needs), release it and answer 202; on failure roll back
 * and answer. */
void cas__proposal_open(struct cas__req *rc, const struct cas__proposal_spec *sp,
			const char *const *ids, size_t n_ids, int64_t expires_in, const char *why);
/* 0 when a is within its validity window; else answered (expired, or too far
 * ahead) and negative. */
int cas__approval_lapsed(struct cas__req *rc, const struct cas_approval *a);
void cas__api_proposal_create(struct cas__req *rc);
void cas__api_proposal_list(struct cas__req *rc);
void cas__api_proposal_approve(struct cas__req *rc);
void cas__api_proposal_withdraw(struct cas__req *rc);
void cas__api_nonce(struct cas__req *rc);
void cas__api_attest(struct cas__req *rc);

/* ---- api_self.c: the CAS's own attestation (GET /v1/attestation) ---- */
/* Set up s->self for tee (NULL: the service is not attested and the route
 * answers 404): measure this process, and produce one evidence now so a missing
 * device or kiln-las stops the start with its reason. key_sha256: SHA-256 of
 * the TLS server key's SPKI DER (what every answer binds). */
int cas__self_init(struct cas__server *s, const char *tee, const uint8_t key_sha256[32],
		   struct kiln_err *err);
void cas__api_attestation(struct cas__req *rc);
void cas__api_volume_tag(struct cas__req *rc);
void cas__api_volume_prepare(struct cas__req *rc);
void cas__api_volume_commit(struct cas__req *rc);
/* {"committed": N, "prepared": N or null} */
json_t *cas__tag_json(const struct cas__volume *v);

#endif
