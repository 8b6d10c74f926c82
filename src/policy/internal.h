/* Internal to src/policy: the YAML tree, the parser's walker and validators,
 * references, canonical form. Functions here are pol__*; the public API is
 * policy.h. */
#ifndef KILN_POLICY_INTERNAL_H
#define KILN_POLICY_INTERNAL_H

#include "policy/policy.h"

/* ---- YAML tree (ytree.c) ----
 * A small YAML tree with source marks, built from libyaml events. Anchors,
 * aliases and explicit tags are refused there. */
enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_type type;
	unsigned line, col;   /* 1-based */
	char *str;            /* scalar text (NUL-terminated) */
	size_t str_size;
	bool plain;           /* scalar written without quotes or block style */
	struct ynode **items; /* seq: elements; map: key, value, key, value, ... */
	size_t n;             /* number of entries in items */
	size_t cap;
};

/* Parse one YAML document. *root is owned by the caller (pol__yn_free). On error
 * err holds `file:line:col: message` and the return is negative. */
int pol__yn_parse(const char *text, size_t size, const char *file, struct ynode **root,
		  struct kiln_err *err);
void pol__yn_free(struct ynode *n);

/* ---- parser state and tree walker (walk.c) ---- */
struct pol__ctx {
	const char *file;
	struct kiln_err *err;
	int code;       /* the first error's code, returned by every caller up */
	unsigned flags; /* POL_PARSE_* */
};

/* Set err to `file:line:col: message` (n NULL: 1:1) and c->code; returns it. */
KILN_PRINTF(3, 4)
int pol__fail(struct pol__ctx *c, const struct ynode *n, const char *fmt, ...);
int pol__oom(struct pol__ctx *c);
/* The closest of the NULL-terminated cands within a small edit distance, or NULL. */
const char *pol__suggest(const char *word, const char *const *cands);
bool pol__is_null(const struct ynode *n);
/* 1 true, 0 false, -1 not a plain boolean scalar. */
int pol__bool_value(const struct ynode *n);
/* "a list", "a mapping", "null", "a boolean", "a scalar": for messages. */
const char *pol__type_name(const struct ynode *n);
const struct ynode *pol__map_get(const struct ynode *map, const char *key);
/* map must be a mapping whose keys are unique and (known non-NULL) all in known. */
int pol__check_map(struct pol__ctx *c, const struct ynode *map, const char *what,
		   const char *const *known);
/* Getters: *out is malloc'd and owned by the caller (the policy being built). */
int pol__get_str(struct pol__ctx *c, const struct ynode *n, const char *what, char **out);
int pol__get_uint(struct pol__ctx *c, const struct ynode *n, const char *what, uint64_t min,
		  uint64_t max, uint32_t *out);
int pol__get_bool(struct pol__ctx *c, const struct ynode *n, const char *what, bool *out);
typedef int (*pol__check_fn)(struct pol__ctx *c, const struct ynode *n, const char *what);
/* A list of distinct strings, each checked by check when given. *out is a
 * NULL-terminated vector; *count counts the entries filled so far, so the
 * caller frees them on error too. */
int pol__get_str_list(struct pol__ctx *c, const struct ynode *n, const char *what,
		      pol__check_fn check, char ***out, size_t *count);
/* One of names (NULL-terminated) → its index; a list of them → a bit set. */
int pol__get_enum(struct pol__ctx *c, const struct ynode *n, const char *what,
		  const char *const *names, int *out);
int pol__get_enum_set(struct pol__ctx *c, const struct ynode *n, const char *what,
		      const char *const *names, unsigned *out);
extern const char *const pol__kinds[], *const pol__algs[], *const pol__tees[],
	*const pol__tols[];
const char *pol__tee_name(unsigned bit_index);
const char *pol__tolerate_name(unsigned bit_index);

/* ---- value validators (values.c): 0 or pol__fail naming `what` ---- */
bool pol__ident_valid(const char *s, const char *extra);
int pol__check_policy_name(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_item_name(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_env_name(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_hash(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_identity(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_abs_path(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_dns(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_ip(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_measurement(struct pol__ctx *c, const struct ynode *n, const char *what);
int pol__check_advisory(struct pol__ctx *c, const struct ynode *n, const char *what);

/* ---- access rules (rule.c) ----
 * A list or {require, of} (pol__get_rule); the {require, of} keys of a mapping
 * that may hold more (pol__get_quorum); [owner]. r's strings are owned by r. */
int pol__get_rule(struct pol__ctx *c, const struct ynode *n, const char *what,
		  struct pol_rule *r);
int pol__get_quorum(struct pol__ctx *c, const struct ynode *n, const char *what,
		    struct pol_rule *r);
int pol__rule_default_owner(struct pol__ctx *c, struct pol_rule *r);
void pol__rule_free(struct pol_rule *r);

/* ---- owners' sections (sections.c) ----
 * The index of a section name, or -1; the names, NULL-terminated. */
int pol__section_find(const char *name);
const char *const *pol__section_names(void);

/* ---- sections (secret.c, service.c) ---- */
int pol__parse_secret(struct pol__ctx *c, const struct ynode *n, struct pol_secret *s);
/* p: the policy so far (secrets and volumes parsed), for references. */
int pol__parse_service(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *n,
		       struct pol_service *svc);

/* ---- network.c: services[].network and services[].console ---- */
int pol__parse_network(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *n,
		       struct pol_network *net);
int pol__parse_console(struct pol__ctx *c, const struct ynode *n, struct pol_console *con);
void pol__network_free(struct pol_network *net);
void pol__console_free(struct pol_console *con);
/* Canonical JSON of the sections (owned by the caller), NULL when the section
 * says nothing beyond the defaults: then the service's canonical form has no
 * such key, and policies written before these keys existed keep their hash. */
json_t *pol__network_json(const struct pol_network *net);
json_t *pol__console_json(const struct pol_console *con);

/* ---- references (template.c) ----
 * One parsed reference (the text between "{{" and "}}"). */
struct pol_ref {
	bool host;
	bool bad_fmt; /* set when the only problem is an unknown .FORMAT */
	char name[65];
	enum pol_fmt fmt;
};

int pol__ref_parse(const char *s, size_t len, struct pol_ref *ref);
const char *pol__fmt_name(enum pol_fmt fmt);
bool pol__fmt_applies(enum pol_secret_kind kind, enum pol_fmt fmt);
/* Check every reference of a template node against the policy; text_only: the
 * value ends up in argv or env (no NUL, binary secrets need .hex/.base64). */
int pol__check_template(struct pol__ctx *c, const struct pol_policy *p,
			const struct pol_service *svc, const struct ynode *n, const char *what,
			bool text_only);

/* ---- security.tolerate (tolerate.c) ----
 * Parse the list (plain names into p->tolerate, entries into p->tolerances);
 * free the entries; append the entries' canonical JSON to names (the sorted
 * plain names), 0 or -1 on ENOMEM. */
int pol__parse_tolerate(struct pol__ctx *c, const struct ynode *n, struct pol_policy *p);
void pol__tolerances_free(struct pol_policy *p);
int pol__tolerate_json(const struct pol_policy *p, json_t *names);
/* The TCB status and advisories of the claims against security.tolerate and
 * ignore_advisories at now; *used as pol_tolerance_used returns. */
int pol__decide_tcb(const struct pol_policy *p, const json_t *claims, int64_t now,
		    const struct pol_tolerance **used, char *reason, size_t reason_size, const char **label);

/* ---- decisions (decide.c) ----
 * Format a refusal into reason, set *label (both may be NULL); returns code. */
KILN_PRINTF(6, 7)
int pol__refuse(char *reason, size_t reason_size, const char **label, const char *lab,
		int code, const char *fmt, ...);

/* ---- canonical form (canon.c) ----
 * A sorted JSON array of the strings (v is not modified); NULL on ENOMEM. */
json_t *pol__str_set(char *const *v, size_t n);
/* Fill p->canonical and p->hash. */
int pol__canonicalize(struct pol_policy *p);
/* Canonical JSON text of a secret's export (entries and rule), owned by the
 * caller; NULL on ENOMEM. */
char *pol__export_text(const struct pol_secret *s);

#endif
