/* kiln-cas: configuration and attestation service, its store, audit log and
 * offline operations (trust, CA fingerprint). The one header of src/cas/. Its
 * client is another module, src/casclient/ (used by the CLI and the runtime).
 * Wire format: docs/api.md; operations: docs/cas.md. */
#ifndef KILN_CAS_H
#define KILN_CAS_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <time.h>

#include "common/common.h"

#define CAS_ID_SIZE 72 /* "sha256:" + 64 hex + NUL */

/* ---- identities (X.509 client certificates; id = SHA-256 of the SPKI DER) ---- */

/* Create a new identity file at path (key PEM then self-signed cert PEM, mode
 * 0600; refuses to overwrite). algorithm: "p256" (default when NULL) or "p384".
 * Writes the id to id_out. */
int cas_identity_create(const char *path, const char *algorithm, const char *common_name,
			char id_out[CAS_ID_SIZE], struct kiln_err *err);
/* Load an identity file. *key and *cert are new references owned by the caller
 * (EVP_PKEY_free, X509_free). */
int cas_identity_load(const char *path, EVP_PKEY **key, X509 **cert, struct kiln_err *err);
/* "sha256:<hex>" of the DER SubjectPublicKeyInfo of key. */
int cas_key_id(EVP_PKEY *key, char out[CAS_ID_SIZE]);
/* Lowercase hex SHA-256 of the certificate's DER (65 bytes with NUL). */
int cas_cert_fingerprint(X509 *cert, char out[65]);

/* ---- approvals of a policy version (approval.c; format in docs/api.md) ---- */
#define CAS_APPROVAL_MAX 8192 /* bytes of one approval's JSON */
/* An approval is valid for at most this long after it is made (so the CAS can
 * forget spent detached approvals once they lapse). */
#define CAS_APPROVAL_MAX_VALIDITY (90 * 86400)
#define CAS_APPROVAL_ID_SIZE 42 /* "offline:" + 32 hex + NUL, or 32 hex + NUL */

/* What an approval approves: one action (update: apply version hash; delete:
 * delete version hash) of one proposal instance, until not_after. proposal is
 * the pending proposal's id (32 hex digits, `kiln policy proposals --json`), or
 * "offline:<32 hex>" for a detached approval made before any proposal exists:
 * that one counts only when submitted with the change (kiln policy apply
 * --signature), and only once. */
struct cas_approval {
	char policy[132];
	char action[8];  /* "update" or "delete" */
	char hash[72];
	char proposal[CAS_APPROVAL_ID_SIZE];
	int64_t not_after; /* Unix seconds */
	char identity[CAS_ID_SIZE];
	char digest[CAS_ID_SIZE]; /* sha256 of the signed message and identity: its
				   * one-use key */
};
/* The message an approval signs (docs/api.md), into out: its length or
 * -KILN_EFORMAT when it does not fit. */
int cas_approval_message(const char *name, const char *action, const char *hash,
			 const char *proposal, int64_t not_after, char *out, size_t size);
/* Sign ap's (policy, action, hash, proposal, not_after) with an identity key
 * (ap->identity is filled from the key): *out is the approval's JSON text
 * (malloc'd, owned by the caller). proposal "" makes a fresh "offline:" id. */
int cas_approval_sign(EVP_PKEY *key, struct cas_approval *ap, char **out,
		      struct kiln_err *err);
/* Parse an approval and verify it: its key is the identity it names and the
 * signature over its message verifies with it. Expiry is not checked here (the
 * CAS checks not_after against its clock). 0 and *out filled, or -KILN_EFORMAT /
 * -KILN_ESIG with err naming what is wrong. */
int cas_approval_verify(const char *text, size_t size, struct cas_approval *out,
			struct kiln_err *err);
/* True for "offline:<32 hex>". */
bool cas_approval_offline(const struct cas_approval *ap);

/* ---- server ---- */

struct cas_serve_opts {
	const char *data_dir;    /* created 0700 when missing */
	const char *listen;      /* "HOST:PORT"; port 0 picks a free one */
	const char *const *sans; /* extra DNS names / IPs for the server certificate */
	size_t n_sans;
	FILE *announce;          /* receives "ca-fingerprint HEX" and "listening URL"
				  * lines once ready (stdout for the CLI), may be NULL */
	time_t evidence_at;      /* 0: verify evidence at the current time; else at this
				  * fixed time (tests and replays of recorded evidence) */
	unsigned threads;        /* event loops (TLS + HTTP); 0: one per online CPU;
				  * at most 64 */
	unsigned grants_per_policy; /* live grants one policy may hold (its oldest
				     * goes beyond); 0: the default, 1024 */
	unsigned grant_ttl_s;       /* how long a grant lasts; 0: the default, 86400 */
	/* Deadlines in seconds (0: the default): accept to TLS handshake done (10),
	 * to a request's complete head (10, from its first byte or the handshake),
	 * from the head to the end of its body (30). */
	unsigned handshake_timeout_s, header_timeout_s, body_timeout_s;
	unsigned conns_per_addr; /* open connections per source address (IPv6: /64);
				  * 0: the default, 1024 */
	const char *attest_tee;  /* the service's own evidence (GET /v1/attestation):
				  * "sim" (INSECURE), "host", "tdx", "snp"; NULL: none */
	const struct cas_pccs *pccs; /* keep the stored collateral fresh from this PCCS
				      * (pccs_refresh.c), or NULL */
	unsigned pccs_interval_s;    /* between refresh passes; 0: 3600 */
	/* Called on SIGHUP, on the first event loop's thread (may be NULL:
	 * SIGHUP is then logged and ignored, never fatal). */
	void (*reload)(void *arg);
	void *reload_arg;
};

/* Run the service until SIGTERM/SIGINT. Logs through kiln_log (this is the
 * daemon). Returns 0 after a graceful shutdown or a negative code with err set
 * when it cannot start (bad data dir, missing master key with an existing
 * store, port in use, ...). */
int cas_serve(const struct cas_serve_opts *opts, struct kiln_err *err);

/* Register a kiln-las certificate (PEM file) as trusted for the "host" backend.
 * Works while the service runs (the store is shared). *id_out gets the LAS id. */
int cas_trust_las(const char *data_dir, const char *cert_path, char id_out[CAS_ID_SIZE],
		  struct kiln_err *err);
/* Intel collateral per platform (collateral.c, docs/cas.md): add FILE for tee
 * sgx|tdx under its FMSPC (authenticated first; replaces that FMSPC's previous
 * one), remove one, list them with their validity windows and what expires
 * next. */
struct cas_collateral {
	char tee[4];
	char fmspc[13];
	time_t valid_from, valid_until;
	char next[96]; /* the window that ends first */
};
int cas_collateral_add(const char *data_dir, const char *path, const char *tee,
		       struct cas_collateral *out, struct kiln_err *err);
int cas_collateral_remove(const char *data_dir, const char *tee, const char *fmspc,
			  struct kiln_err *err);
int cas_collateral_list(const char *data_dir, FILE *out, time_t now, struct kiln_err *err);
/* A PCCS to fetch Intel collateral from (pccs.c; docs/cas.md "Collateral from a
 * PCCS"): Intel's PCCS API v4 (/sgx|tdx/certification/v4/...). */
struct cas_pccs {
	const char *url;     /* http[s]://HOST[:PORT][/PATH] */
	const char *ca_file; /* https: the CA to check it against; NULL: the system's */
	const char *ca;      /* PCK CA of the PCK CRL, "processor" or "platform"; NULL:
			      * processor for sgx, platform for tdx */
	unsigned timeout_s;  /* each answer complete within; 0: 10 */
	time_t at;           /* validity judged at; 0: now (tests: a fixed time) */
};
/* Fetch the collateral of tee/fmspc from the PCCS and store it when it is
 * authenticated, of that FMSPC, valid at p->at and not older than the one
 * stored; else the stored one is kept and err says why. *changed: false when
 * the PCCS answered what is stored already. *out as for cas_collateral_add. */
int cas_collateral_fetch_one(const char *data_dir, const struct cas_pccs *p, const char *tee,
			     const char *fmspc, struct cas_collateral *out, bool *changed,
			     struct kiln_err *err);
/* The platforms with collateral of their own in the store (malloc'd array,
 * owned by the caller; collateral that no longer parses is left out). */
int cas_collateral_stored(const char *data_dir, struct cas_collateral **out, size_t *n,
			  struct kiln_err *err);
/* AMD certificates per product and chip (amd_certs.c; docs/cas.md "AMD
 * certificates"): import one file (PEM or DER) holding an ASK/ARK or ASVK/ARK
 * chain (the ARK pinned) or one VCEK/VLEK (which must chain to a stored chain);
 * list them with their validity (one line each, "snp KIND PRODUCT KEY STATE from
 * T until T"). */
struct cas_amd_cert {
	char kind[32];     /* "ASK/ARK chain (VCEK)", "VCEK", ... */
	char product[8];   /* "Milan", "Genoa", "Turin" */
	char key[192];     /* what a report finds it under, e.g. vcek:CHIPID:bl2.tee0.snp5.uc68 */
	time_t not_before, not_after;
};
int cas_amd_import(const char *data_dir, const char *path, struct cas_amd_cert *out,
		   struct kiln_err *err);
int cas_amd_list(const char *data_dir, FILE *out, time_t now, struct kiln_err *err);
/* AMD certificates (ASK/ARK chains, VCEKs; PEM or DER) for tee "snp", added to
 * the others (*id_out: "amd:<sha256 hex>"). Works while the service runs (the
 * store is shared); so do the collateral functions above. */
int cas_trust_amd_chain(const char *data_dir, const char *path, char id_out[80],
			struct kiln_err *err);
/* Reserve the policy names "name/..." for the identities owners[0..n) (ids
 * "sha256:<hex>"): only they may create policies there (updates follow each
 * policy's access rules). n == 0 removes the reservation. Policies that exist
 * under name/ with another owner are not touched; each is written to notes
 * (may be NULL) as "NAME OWNER" so the operator can deal with them. Works while
 * the service runs; audited. */
int cas_namespace_set(const char *data_dir, const char *name, const char *const *owners,
		      size_t n, FILE *notes, struct kiln_err *err);
/* Where the process's store is, before any other call (kiln: --store,
 * --master-key-file): url NULL is DIR/kiln.db (SQLite), else a PostgreSQL
 * connection URI or key=value string (libpq's; it may hold a password and is
 * never logged nor shown); master_key_file NULL is DIR/master.key. The
 * strings must outlive every call. */
void cas_store_use(const char *url, const char *master_key_file);
/* Bring the store's schema to this kiln's version (forward only; 'kiln cas
 * serve' does it at start too): *from and *to are the versions before and
 * after (equal: it was current). A store newer than this kiln is refused. */
int cas_migrate(const char *data_dir, int *from, int *to, struct kiln_err *err);
/* What cas_store_copy copied: from and to name the databases (never a
 * password), tables and rows how much. */
struct cas_copy_result {
	char from[200], to[600];
	int tables;
	int64_t rows;
};
/* Copy every row of the store at `from` into the empty store at `to` (kiln
 * cas import-store / export-store), in one transaction of the target. Each
 * is NULL (the process's store: cas_store_use, else DATA_DIR/kiln.db),
 * "sqlite:DIR" (DIR/kiln.db) or a PostgreSQL connection string. The source
 * must be at this kiln's schema version and sealed under DATA_DIR's master
 * key and CA (nothing is decrypted: rows are copied as they are, the audit
 * chain with its signatures). A SQLite target must not exist yet; a
 * PostgreSQL one must hold no store rows. progress (may be NULL) is called
 * after each table with its row count. On failure the target is unchanged. */
int cas_store_copy(const char *data_dir, const char *from, const char *to,
		   void (*progress)(void *ctx, const char *table, int64_t rows), void *ctx,
		   struct cas_copy_result *res, struct kiln_err *err);
/* The CA fingerprint of an initialized data dir (hex, 65 bytes). */
int cas_ca_fingerprint(const char *data_dir, char out[65], struct kiln_err *err);

/* ---- audit log ---- */

/* Print every entry (one line each: seq time kind actor subject details). */
int cas_audit_show(const char *data_dir, FILE *out, struct kiln_err *err);
/* Check the whole chain: contiguous sequence numbers, each entry's hash, the
 * link to its predecessor, its signature by the CAS key, and the signed head.
 * Returns 0 with *count entries verified, or -KILN_ECORRUPT / -KILN_ESIG with
 * err naming the first bad entry. */
int cas_audit_verify(const char *data_dir, size_t *count, struct kiln_err *err);

#endif
