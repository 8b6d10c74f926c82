/* kiln policy: parse, validate, canonical hash, substitution, access rules and the
 * attestation decision. The one header of src/policy/. Pure library: no I/O
 * beyond what the caller hands in, no logging.
 *
 * A policy ("session") is YAML, validated strictly: unknown keys, wrong types,
 * duplicate names, dangling references and bad enum values are errors of the form
 * `FILE:LINE:COL: message`. YAML anchors, aliases and tags are refused (an alias
 * can expand a tiny document into an exponential tree: "billion laughs"), the
 * input size and nesting depth are bounded. See docs/policy.md. */
#ifndef KILN_POLICY_H
#define KILN_POLICY_H

#include <jansson.h>

#include "common/common.h"

#define POL_MAX_INPUT_SIZE (1u << 20) /* bytes of YAML */
#define POL_MAX_DEPTH 16               /* nesting of collections */
#define POL_MAX_NODES 20000            /* scalars + collections */
#define POL_HASH_STR_SIZE 72           /* "sha256:" + 64 hex + NUL */
#define POL_ID_STR_SIZE 72             /* identity "sha256:<64 hex>" + NUL */
#define POL_MIN_SECRET_BITS 64         /* entropy of a generated ascii/binary secret */

/* Source position of a value, 1-based; 0 when the value was defaulted. */
struct pol_mark {
	unsigned line, col;
};

enum pol_secret_kind {
	POL_SECRET_NONE = 0, /* imported secret that does not declare its kind */
	POL_SECRET_ASCII,
	POL_SECRET_BINARY,
	POL_SECRET_KEY,
	POL_SECRET_X509,
	POL_SECRET_X509_CA,
};

enum pol_key_alg { POL_ALG_P256, POL_ALG_P384, POL_ALG_ED25519, POL_ALG_RSA3072 };

/* Formats of a secret reference: {{secret.NAME}} is POL_FMT_RAW. */
enum pol_fmt { POL_FMT_RAW, POL_FMT_HEX, POL_FMT_BASE64, POL_FMT_PEM, POL_FMT_KEY,
	       POL_FMT_CHAIN };

/* An access rule: identities, and how many of them must agree to one request.
 * A plain list `[a, b]` is require 1 (any one listed); `{require: M, of: [a, b,
 * c]}` needs M distinct identities of the list (quorum true). "owner" stands for
 * the policy owner's identity. */
struct pol_rule {
	char **of;        /* "owner" or "sha256:<hex>", distinct; NULL-terminated */
	size_t n_of;      /* 0: the rule was not given (see its user) */
	unsigned require; /* 1 ≤ require ≤ n_of */
	bool quorum;      /* written as {require, of} */
	struct pol_mark mark;
};

/* Who may import a secret. A name alone is not enough (names are first come,
 * first served): an entry binds the importer's owner identity, its version
 * (policy_hash), or both; pol_parse refuses an entry with neither. Entries
 * stored by an older kiln may lack both (POL_PARSE_STORED): they match nothing. */
struct pol_export {
	char *session;      /* the policy allowed to import */
	char *owner;        /* "sha256:<hex>" identity that must own it, or NULL */
	char *policy_hash;  /* the version it must have, or NULL: any version */
	char **measurement; /* workload measurements (lowercase hex) the importing
			     * workload must have; n_measurement 0: not checked */
	size_t n_measurement;
	struct pol_mark mark;
};

struct pol_import {
	char *session;     /* exporting policy */
	char *secret;      /* secret name there */
	char *policy_hash; /* the exporter's hash, pinned (required) */
};

struct pol_secret {
	char *name;
	enum pol_secret_kind kind;
	uint32_t size;          /* ascii: characters (default 32); binary: bytes (32) */
	char *charset;          /* ascii: allowed characters; NULL = alphanumeric */
	enum pol_key_alg algorithm; /* key, x509, x509-ca (default p256) */
	char *issuer;           /* x509: name of an x509-ca secret; NULL = self-signed */
	char **dns;             /* x509 SANs */
	size_t n_dns;
	char **ip;
	size_t n_ip;
	char *common_name;      /* NULL = the secret name */
	uint32_t validity_days; /* default 365 (x509), 3650 (x509-ca) */
	struct pol_export *exports;
	size_t n_exports;
	/* export written as {require: M, of: [...], to: [entries]}: changing or
	 * removing the entries (or this rule, or the secret) needs M of `of` besides
	 * access.update. quorum false (n_of 0) for the plain list form. */
	struct pol_rule export_rule;
	struct pol_import *import; /* non-NULL: value comes from another policy */
	struct pol_mark mark;
};

struct pol_file {
	char *path;
	char *content; /* template */
	uint32_t mode; /* permission bits, default 0600 */
};

struct pol_mount {
	char *volume;
	char *path;
};

struct pol_env {
	char *name;
	char *value; /* template */
};

/* The network shield of a service (services[].network, network.c): what the
 * runtime does with the program's sockets. Secrets are named, not templated:
 * the CAS hands their certificates and keys to the runtime, never to argv,
 * env or files. */
struct pol_listen {
	uint32_t port;      /* local TCP port, 1..65535 (unique among listen rules) */
	bool plain;         /* allowed in plaintext (no TLS) */
	char *certificate;  /* x509 secret the TLS server presents; NULL when plain */
	char *client_ca;    /* x509-ca (or x509) secret client certificates must chain
			     * to; NULL: no client certificate asked for */
	char **alpn;        /* protocols offered, in preference order */
	size_t n_alpn;
	struct pol_mark mark;
};

struct pol_connect {
	char *host;         /* DNS name, IP address, or "*" (any address) */
	uint32_t port;      /* remote TCP port, 1..65535 */
	bool plain;         /* allowed in plaintext (no TLS) */
	char *ca;           /* x509-ca (or x509) secret the server's certificate must
			     * chain to; NULL when plain */
	char *name;         /* name the certificate must carry (default host) */
	char *certificate;  /* x509 secret presented as client certificate, or NULL */
	char **alpn;
	size_t n_alpn;
	struct pol_mark mark;
};

struct pol_network {
	bool set;           /* the service has a network section that says something */
	bool deny;          /* default: deny (connect/bind/listen outside the rules fail) */
	bool tls12;         /* min_tls: "1.2" (default: TLS 1.3 only) */
	uint32_t handshake_timeout; /* seconds (default 10) */
	struct pol_listen *listen;
	size_t n_listen;
	struct pol_connect *connect;
	size_t n_connect;
};

/* The console shield (services[].console, network.c): stdin, stdout and
 * stderr as authenticated, encrypted records. */
struct pol_console {
	bool protect;       /* console: protected */
	char **readers;     /* "owner" or identities allowed to read/attach; default [owner] */
	size_t n_readers;
};

#define POL_NET_DEFAULT_HANDSHAKE_TIMEOUT 10

struct pol_service {
	char *name;
	char **command; /* templates; at least one */
	size_t n_command;
	struct pol_env *env;
	size_t n_env;
	char *pwd;      /* default "/" */
	struct pol_file *files;
	size_t n_files;
	struct pol_mount *mounts;
	size_t n_mounts;
	char **measurement; /* "any" or lowercase hex */
	size_t n_measurement;
	char **host_env;    /* names the launcher may supply via {{host.NAME}} */
	size_t n_host_env;
	struct pol_network network;
	struct pol_console console;
	struct pol_mark mark;
};

/* Tolerated deviations (security.tolerate). */
enum {
	POL_TOL_DEBUG = 1 << 0,
	POL_TOL_OUTDATED_TCB = 1 << 1,
	POL_TOL_SW_HARDENING = 1 << 2,
	POL_TOL_CONFIGURATION = 1 << 3,
};

/* An entry of security.tolerate ({status, advisories, until}): the TCB status
 * `status` is accepted while now < until, and only when every advisory ID the
 * quote's TCB level names is in advisories. Owned by its policy. */
struct pol_tolerance {
	unsigned status;    /* one POL_TOL_* bit, never POL_TOL_DEBUG */
	char **advisories;  /* sorted, distinct, like INTEL-SA-00615 */
	size_t n_advisories;
	int64_t until;      /* 00:00:00 UTC of the day after until_day (Unix time) */
	char until_day[11]; /* "YYYY-MM-DD" as written */
};

/* Allowed TEEs (security.tee). */
enum {
	POL_TEE_SIM = 1 << 0,
	POL_TEE_HOST = 1 << 1,
	POL_TEE_SGX = 1 << 2,
	POL_TEE_TDX = 1 << 3,
	POL_TEE_SNP = 1 << 4,
};

/* Sections a policy's `owners:` may govern (pol_section_name). */
enum pol_section {
	POL_SEC_ACCESS,
	POL_SEC_SECRETS,
	POL_SEC_VOLUMES,
	POL_SEC_SERVICES,    /* services apart from their command and measurement */
	POL_SEC_COMMAND,     /* services[].command (and which services exist) */
	POL_SEC_MEASUREMENT, /* services[].measurement */
	POL_SEC_SECURITY,
	POL_SEC_COUNT
};

struct pol_policy {
	char *name;
	char *predecessor; /* "sha256:<hex>" or NULL */
	struct pol_rule read;   /* default [owner] */
	struct pol_rule update; /* default [owner] */
	struct pol_rule del;    /* access.delete; n_of 0: the update rule applies */
	/* owners: per section; n_of 0: the section has no owners of its own. A change
	 * touching a section with owners needs their rule besides access.update. */
	struct pol_rule owners[POL_SEC_COUNT];
	struct pol_secret *secrets;
	size_t n_secrets;
	char **volumes;
	size_t n_volumes;
	struct pol_service *services;
	size_t n_services;
	unsigned tee;      /* POL_TEE_* */
	bool allow_insecure_sim;
	unsigned tolerate; /* POL_TOL_*: the plain names of security.tolerate */
	struct pol_tolerance *tolerances; /* its entries */
	size_t n_tolerances;
	char **ignore_advisories;
	size_t n_ignore_advisories;
	char hash[POL_HASH_STR_SIZE]; /* "sha256:<hex>" of the canonical form */
	json_t *canonical;            /* canonical JSON object, owned */
};

/* Parse and validate YAML text. `file` names the input in messages. On success
 * *out is a new policy owned by the caller (pol_free); on failure *out is NULL,
 * the return is -KILN_EFORMAT (or -ENOMEM, -EFBIG for oversize input) and err
 * holds `file:line:col: message`. */
int pol_parse(const char *yaml, size_t size, const char *file, struct pol_policy **out,
	      struct kiln_err *err);

/* pol_parse_ex flags. POL_PARSE_STORED: the text was accepted by an earlier kiln
 * (a policy read back from a store). Rules added since are not enforced at parse
 * time, so such a policy stays readable, updatable and deletable; where a rule
 * matters for security it is enforced where the policy is used (an unbound
 * export matches no importer). Never use it for new input. */
enum { POL_PARSE_STORED = 1 << 0 };
int pol_parse_ex(const char *yaml, size_t size, const char *file, unsigned flags,
		 struct pol_policy **out, struct kiln_err *err);
/* Accepts NULL. */
void pol_free(struct pol_policy *p);

/* Canonical JSON text of a parsed policy (sorted keys, compact), malloc'd,
 * owned by the caller. Its SHA-256 is p->hash. */
char *pol_canonical_text(const struct pol_policy *p);

const char *pol_kind_name(enum pol_secret_kind kind);
const char *pol_alg_name(enum pol_key_alg alg);
const struct pol_secret *pol_find_secret(const struct pol_policy *p, const char *name);
const struct pol_service *pol_find_service(const struct pol_policy *p, const char *name);
/* Canonical JSON of one secret's generation parameters (without exports), so a
 * store can notice that a secret's definition changed. Owned by the caller. */
char *pol_secret_spec(const struct pol_secret *s);

/* "sha256:" + 64 lowercase hex digits. */
bool pol_hash_valid(const char *s);
/* Policy names: letters, digits, '.', '_', '-', '/' (not leading, no "//", no
 * "." segments), at most 128 bytes. */
bool pol_name_valid(const char *s);

/* May identity id (owner: the policy's owner) read the console of service
 * svc? Only when its console is protected and id is listed in its readers
 * ("owner" standing for the owner). */
bool pol_may_read_console(const struct pol_service *svc, const char *owner, const char *id);

/* ---- access decisions (access.c) ----
 * `owner` and `id` are identities "sha256:<hex>". A request carries approvals:
 * ids[0] is the caller (the TLS peer), the others identities whose signature
 * over the request the CAS verified; duplicates count once. */
#define POL_WHY_SIZE 1024

/* Does r list id ("owner" matching owner)? */
bool pol_rule_lists(const struct pol_rule *r, const char *owner, const char *id);
/* Distinct identities of ids[0..n) that r lists. */
unsigned pol_rule_count(const struct pol_rule *r, const char *owner, const char *const *ids,
			size_t n);
/* "2 of [owner, sha256:...]" or "one of [...]", for messages. */
void pol_rule_describe(const struct pol_rule *r, char *buf, size_t size);
/* "access", "secrets", "volumes", "services", "services.command",
 * "services.measurement", "security". */
const char *pol_section_name(enum pol_section s);
/* Bit (1 << section) set for every section whose content differs between cur and
 * next, or whose `owners` rule does; 0 when neither changed. */
unsigned pol_sections_touched(const struct pol_policy *cur, const struct pol_policy *next);
/* Has secret s (of the current version) lost or changed its export entries or
 * export rule in next (or has next dropped s)? */
bool pol_export_changed(const struct pol_secret *s, const struct pol_policy *next);
/* Does any rule of p need more than one approval (update, delete), or name
 * approvers for a secret's export? Then a change one stakeholder cannot make
 * alone becomes a pending proposal instead of a refusal. */
bool pol_quorum_governed(const struct pol_policy *p);
/* Does id take part in any rule of p that approves changes (update, delete, an
 * export's approvers)? */
bool pol_may_approve(const struct pol_policy *p, const char *owner, const char *id);
/* May id read p? When the read rule needs one approval and lists id, or id takes
 * part in the update or delete rule (it must see what it approves). A read rule
 * with require M > 1 (refused for new versions: pol_check_new) lets nobody read
 * on their own. */
bool pol_may_read(const struct pol_policy *p, const char *owner, const char *id);
/* Does id take part in p's update rule (it may propose; alone it may apply only
 * when the rule needs one approval)? */
bool pol_may_update(const struct pol_policy *p, const char *owner, const char *id);
/* May the approvals ids[0..n) replace cur (owned by owner) with next? The update
 * rule of cur must be met; a secret whose export is quorum-governed in cur and
 * whose export entries or rule change (or which disappears) needs that rule met
 * too; when next takes the owner's update access away, the owner must be among
 * the approvals (co-updaters cannot lock the owner out). 0, or -KILN_EDENIED with
 * why (POL_WHY_SIZE) naming the unmet rule, or empty when the caller takes no part
 * in the update rule at all (it learns nothing more). */
int pol_may_apply(const struct pol_policy *cur, const struct pol_policy *next,
		  const char *owner, const char *const *ids, size_t n, char *why,
		  size_t why_size);
/* What a new version may not be although the parser accepts it (versions stored
 * by an older kiln must stay loadable): a read rule with require M > 1 (a read
 * is one request by one identity: it has no approval path, so such a rule could
 * never be met). 0, or -KILN_EFORMAT with why (POL_WHY_SIZE) naming the rule.
 * The CAS checks it on every new version; the CLI before sending. */
int pol_check_new(const struct pol_policy *p, char *why, size_t why_size);
/* May the approvals delete p? Its delete rule (the update rule when none is
 * given) must be met. Same returns as pol_may_apply. */
int pol_may_delete(const struct pol_policy *p, const char *owner, const char *const *ids,
		   size_t n, char *why, size_t why_size);
/* The export entry of secret xs (of an exporting policy) that lets the policy
 * `importer` (its name, current hash and owner identity) import it, or NULL.
 * An entry matches when its session is the importer's name, and its owner (when
 * set) is the importer's owner, and its policy_hash (when set) the importer's
 * hash; an entry with neither owner nor policy_hash (stored by an older kiln)
 * never matches. */
const struct pol_export *pol_export_find(const struct pol_secret *xs, const char *importer,
					 const char *importer_hash, const char *importer_owner);

/* Substitution. The resolver returns the bytes of one reference: for
 * {{secret.NAME.FMT}} name=NAME, fmt=FMT, host=false; for {{host.NAME}} host=true.
 * *out is malloc'd and owned by the caller (which wipes it); return 0 or a
 * negative code with err set. */
typedef int (*pol_resolve_cb)(void *ctx, bool host, const char *name, enum pol_fmt fmt,
			      uint8_t **out, size_t *out_size, struct kiln_err *err);
/* Expand every reference in tmpl. *out is malloc'd (NUL-terminated, not counted
 * in *out_size), owned by the caller, wipe it: it holds secrets. With
 * allow_nul false, a value containing a NUL byte is an error (argv, env). */
int pol_substitute(const char *tmpl, pol_resolve_cb resolve, void *ctx, bool allow_nul,
		   char **out, size_t *out_size, struct kiln_err *err);

/* ---- attestation decisions (decide.c, tolerate.c) ----
 * Decide whether evidence claims satisfy the policy for one service at time now
 * (Unix seconds: the time the evidence was verified at; security.tolerate
 * entries expire). Returns 0 when allowed; otherwise a negative code
 * (-KILN_EPOLICY, -KILN_EINSECURE, -KILN_EMEASUREMENT, -KILN_ETCB) and reason
 * (NUL-terminated, at most reason_size) names the failing claim, e.g.
 * `tee "sgx" not in security.tee [host]`. A short stable label for metrics is
 * stored in *label ("tee_not_allowed", "sim_not_allowed", ...). */
int pol_decide(const struct pol_policy *p, const struct pol_service *svc, const json_t *claims,
	       int64_t now, char *reason, size_t reason_size, const char **label);
/* The security part of pol_decide alone: the policy's `security` section (tee,
 * sim opt-in, debug, TCB status, advisories) against the claims. */
int pol_decide_security(const struct pol_policy *p, const json_t *claims, int64_t now,
			char *reason, size_t reason_size, const char **label);
/* May a secret of the exporting policy `exporter`, imported through export entry
 * ex, be released to a workload with these claims? The exporter's security
 * section applies whatever the importer's policy says, and so does the entry's
 * measurement list when it has one. The reason names the exporter. */
int pol_decide_export(const struct pol_policy *exporter, const struct pol_export *ex,
		      const json_t *claims, int64_t now, char *reason, size_t reason_size,
		      const char **label);
/* When the claims pass the TCB part of the security section at now only thanks
 * to security.tolerate entries: of those, the one that ends first (after its
 * until the same evidence is refused); NULL when no entry is needed (or the
 * claims are refused). In p. For the CAS's early warning. */
const struct pol_tolerance *pol_tolerance_used(const struct pol_policy *p,
					       const json_t *claims, int64_t now);
/* "outdated-tcb", "sw-hardening-needed" or "configuration-needed". */
const char *pol_tolerance_status_name(const struct pol_tolerance *t);

/* Levenshtein distance, for "did you mean" suggestions (exported for tests). */
size_t pol_edit_distance(const char *a, const char *b);

#endif
