/* Policy parsing and strict validation: YAML tree → struct pol_policy. */
#include "policy/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"
#include "policy/ytree.h"

struct pctx {
	const char *file;
	struct kiln_err *err;
	int code;
	unsigned flags; /* POL_PARSE_* */
};

KILN_PRINTF(3, 4)
static int fail(struct pctx *c, const struct ynode *n, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof(msg))
		kiln_mark_truncated(msg, sizeof(msg));
	c->code = -KILN_EFORMAT;
	return kiln_err_set(c->err, -KILN_EFORMAT, "%s:%u:%u: %s", c->file, n ? n->line : 1,
			    n ? n->col : 1, msg);
}

static int oom(struct pctx *c)
{
	c->code = -ENOMEM;
	return kiln_err_set(c->err, -ENOMEM, "%s: out of memory", c->file);
}

size_t pol_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (la >= 63 || lb >= 63)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t best = prev + (a[i - 1] == b[j - 1] ? 0 : 1);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

/* The closest candidate within a small distance, or NULL. */
static const char *suggest(const char *word, const char *const *cands)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	size_t limit = strlen(word) <= 4 ? 1 : 2;

	for (size_t i = 0; cands[i]; i++) {
		size_t d = pol_edit_distance(word, cands[i]);

		if (d < best_d) {
			best_d = d;
			best = cands[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

static bool is_null(const struct ynode *n)
{
	return n->type == YN_SCALAR && n->plain &&
	       (!n->str[0] || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
		!strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

static int bool_value(const struct ynode *n)
{
	static const char *const t[] = { "true", "True", "TRUE" };
	static const char *const f[] = { "false", "False", "FALSE" };

	if (n->type != YN_SCALAR || !n->plain)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if (!strcmp(n->str, t[i]))
			return 1;
		if (!strcmp(n->str, f[i]))
			return 0;
	}
	return -1;
}

static const char *type_name(const struct ynode *n)
{
	if (n->type == YN_SEQ)
		return "a list";
	if (n->type == YN_MAP)
		return "a mapping";
	if (is_null(n))
		return "null";
	if (bool_value(n) >= 0)
		return "a boolean";
	return "a scalar";
}

static const struct ynode *map_get(const struct ynode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (!strcmp(map->items[i]->str, key))
			return map->items[i + 1];
	return NULL;
}

/* map must be a mapping whose keys are unique and all in `known`. */
static int check_map(struct pctx *c, const struct ynode *map, const char *what,
		     const char *const *known)
{
	if (map->type != YN_MAP)
		return fail(c, map, "%s: expected a mapping, found %s", what, type_name(map));
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *k = map->items[i];
		bool ok = false;

		if (k->type != YN_SCALAR)
			return fail(c, k, "%s: keys must be plain strings", what);
		for (size_t j = 0; j < i; j += 2)
			if (!strcmp(map->items[j]->str, k->str))
				return fail(c, k, "duplicate key '%s' in %s", k->str, what);
		if (!known)
			continue;
		for (size_t j = 0; known[j]; j++)
			if (!strcmp(known[j], k->str))
				ok = true;
		if (!ok) {
			const char *s = suggest(k->str, known);

			if (s)
				return fail(c, k, "unknown key '%s' in %s (did you mean '%s'?)",
					    k->str, what, s);
			return fail(c, k, "unknown key '%s' in %s", k->str, what);
		}
	}
	return 0;
}

static int get_str(struct pctx *c, const struct ynode *n, const char *what, char **out)
{
	if (n->type != YN_SCALAR || is_null(n) || bool_value(n) >= 0)
		return fail(c, n, "%s: expected a string, found %s", what, type_name(n));
	*out = strdup(n->str);
	if (!*out)
		return oom(c);
	return 0;
}

static int get_uint(struct pctx *c, const struct ynode *n, const char *what, uint64_t min,
		    uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (n->type != YN_SCALAR || !n->plain || kiln_parse_u64(n->str, &v) < 0) {
		if (n->type == YN_SCALAR)
			return fail(c, n, "%s: expected an integer, found '%s'", what, n->str);
		return fail(c, n, "%s: expected an integer, found %s", what, type_name(n));
	}
	if (v < min || v > max)
		return fail(c, n, "%s: %s is out of range %llu..%llu", what, n->str,
			    (unsigned long long)min, (unsigned long long)max);
	*out = (uint32_t)v;
	return 0;
}

static int get_bool(struct pctx *c, const struct ynode *n, const char *what, bool *out)
{
	int b = bool_value(n);

	if (b < 0)
		return fail(c, n, "%s: expected true or false, found %s", what,
			    n->type == YN_SCALAR ? n->str : type_name(n));
	*out = b;
	return 0;
}

/* A list of strings; each checked by `check` when given. Duplicates refused. */
static int get_str_list(struct pctx *c, const struct ynode *n, const char *what,
			int (*check)(struct pctx *, const struct ynode *, const char *),
			char ***out, size_t *count)
{
	char **v;

	if (n->type != YN_SEQ)
		return fail(c, n, "%s: expected a list, found %s", what, type_name(n));
	v = calloc(n->n + 1, sizeof(*v));
	if (!v)
		return oom(c);
	*out = v;
	*count = 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];

		if (get_str(c, it, what, &v[i]) < 0)
			return c->code;
		*count = i + 1;
		if (check && check(c, it, what) < 0)
			return c->code;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(v[j], v[i]))
				return fail(c, it, "%s: duplicate entry '%s'", what, v[i]);
	}
	return 0;
}

static bool name_char(char ch, const char *extra)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr(extra, ch);
}

bool pol_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 128 || !name_char(s[0], "") || s[len - 1] == '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i], "._-/") || (s[i] == '/' && s[i + 1] == '/'))
			return false;
	return !strstr(s, "/.") && !strstr(s, "./");
}

static int check_policy_name(struct pctx *c, const struct ynode *n, const char *what)
{
	if (!pol_name_valid(n->str))
		return fail(c, n, "%s: '%s' is not a valid policy name (letters, digits, '.', "
			    "'_', '-', '/'; at most 128)", what, n->str);
	return 0;
}

static bool ident_valid(const char *s, const char *extra)
{
	if (!s[0] || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!name_char(*s, extra))
			return false;
	return true;
}

static int check_item_name(struct pctx *c, const struct ynode *n, const char *what)
{
	if (!ident_valid(n->str, "_-"))
		return fail(c, n, "%s: '%s' is not a valid name (letters, digits, '_', '-'; "
			    "at most 64)", what, n->str);
	return 0;
}

static int check_env_name(struct pctx *c, const struct ynode *n, const char *what)
{
	if (!ident_valid(n->str, "_") || (n->str[0] >= '0' && n->str[0] <= '9'))
		return fail(c, n, "%s: '%s' is not a valid environment variable name", what,
			    n->str);
	return 0;
}

bool pol_hash_valid(const char *s)
{
	if (strncmp(s, "sha256:", 7) || strlen(s) != 7 + 64)
		return false;
	for (s += 7; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static int check_hash(struct pctx *c, const struct ynode *n, const char *what)
{
	if (!pol_hash_valid(n->str))
		return fail(c, n, "%s: expected 'sha256:' and 64 lowercase hex digits, found '%s'",
			    what, n->str);
	return 0;
}

static int check_identity(struct pctx *c, const struct ynode *n, const char *what)
{
	if (strcmp(n->str, "owner") && !pol_hash_valid(n->str))
		return fail(c, n, "%s: expected 'owner' or an identity 'sha256:<64 hex>', "
			    "found '%s'", what, n->str);
	return 0;
}

static int check_abs_path(struct pctx *c, const struct ynode *n, const char *what)
{
	if (n->str[0] != '/' || strlen(n->str) > 4096)
		return fail(c, n, "%s: expected an absolute path, found '%s'", what, n->str);
	return 0;
}

static int check_dns(struct pctx *c, const struct ynode *n, const char *what)
{
	size_t len = strlen(n->str);

	if (!len || len > 253 ||
	    strspn(n->str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*") !=
		    len)
		return fail(c, n, "%s: '%s' is not a DNS name", what, n->str);
	return 0;
}

static int check_ip(struct pctx *c, const struct ynode *n, const char *what)
{
	uint8_t buf[16];

	if (inet_pton(AF_INET, n->str, buf) != 1 && inet_pton(AF_INET6, n->str, buf) != 1)
		return fail(c, n, "%s: '%s' is not an IP address", what, n->str);
	return 0;
}

static int check_measurement(struct pctx *c, const struct ynode *n, const char *what)
{
	size_t len = strlen(n->str);

	if (!strcmp(n->str, "any"))
		return 0;
	if ((len != 64 && len != 96) || strspn(n->str, "0123456789abcdefABCDEF") != len)
		return fail(c, n, "%s: expected 'any' or a measurement (64 or 96 hex digits), "
			    "found '%s'", what, n->str);
	return 0;
}

static int check_advisory(struct pctx *c, const struct ynode *n, const char *what)
{
	if (!ident_valid(n->str, "-_."))
		return fail(c, n, "%s: '%s' is not an advisory id", what, n->str);
	return 0;
}

/* Enumerations. */
static const char *const g_kinds[] = { "ascii", "binary", "key", "x509", "x509-ca", NULL };
static const char *const g_algs[] = { "p256", "p384", "ed25519", "rsa3072", NULL };
static const char *const g_tees[] = { "sim", "host", "sgx", "tdx", "snp", NULL };
static const char *const g_tols[] = { "debug", "outdated-tcb", "sw-hardening-needed",
				      "configuration-needed", NULL };

static int get_enum(struct pctx *c, const struct ynode *n, const char *what,
		    const char *const *names, int *out)
{
	const char *s;

	if (n->type != YN_SCALAR || is_null(n) || bool_value(n) >= 0)
		return fail(c, n, "%s: expected a string, found %s", what, type_name(n));
	for (int i = 0; names[i]; i++) {
		if (!strcmp(names[i], n->str)) {
			*out = i;
			return 0;
		}
	}
	s = suggest(n->str, names);
	if (s)
		return fail(c, n, "%s: unknown value '%s' (did you mean '%s'?)", what, n->str, s);
	{
		char list[160] = "";

		for (int i = 0; names[i]; i++) {
			strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
			strncat(list, names[i], sizeof(list) - strlen(list) - 1);
		}
		return fail(c, n, "%s: unknown value '%s' (expected one of: %s)", what, n->str,
			    list);
	}
}

/* A list of enum values folded into a bit set. */
static int get_enum_set(struct pctx *c, const struct ynode *n, const char *what,
			const char *const *names, unsigned *out)
{
	*out = 0;
	if (n->type != YN_SEQ)
		return fail(c, n, "%s: expected a list, found %s", what, type_name(n));
	for (size_t i = 0; i < n->n; i++) {
		int v;

		if (get_enum(c, n->items[i], what, names, &v) < 0)
			return c->code;
		if (*out & (1u << v))
			return fail(c, n->items[i], "%s: duplicate entry '%s'", what,
				    n->items[i]->str);
		*out |= 1u << v;
	}
	return 0;
}

const char *pol_kind_name(enum pol_secret_kind kind)
{
	return kind == POL_SECRET_NONE ? "imported" : g_kinds[kind - 1];
}

const char *pol_alg_name(enum pol_key_alg alg)
{
	return g_algs[alg];
}

const char *pol_tee_name(unsigned bit_index)
{
	return g_tees[bit_index];
}

const char *pol_tolerate_name(unsigned bit_index)
{
	return g_tols[bit_index];
}

/* ---- secrets ---- */

static const char *const g_secret_keys[] = { "name", "kind", "size", "charset", "algorithm",
					     "issuer", "dns", "ip", "common_name",
					     "validity_days", "export", "import", NULL };

/* Keys that apply to each kind; index = kind. */
static bool key_applies(const char *key, enum pol_secret_kind kind)
{
	if (!strcmp(key, "size"))
		return kind == POL_SECRET_ASCII || kind == POL_SECRET_BINARY;
	if (!strcmp(key, "charset"))
		return kind == POL_SECRET_ASCII;
	if (!strcmp(key, "algorithm"))
		return kind == POL_SECRET_KEY || kind == POL_SECRET_X509 ||
		       kind == POL_SECRET_X509_CA;
	if (!strcmp(key, "issuer") || !strcmp(key, "dns") || !strcmp(key, "ip"))
		return kind == POL_SECRET_X509;
	if (!strcmp(key, "common_name") || !strcmp(key, "validity_days"))
		return kind == POL_SECRET_X509 || kind == POL_SECRET_X509_CA;
	return true;
}

static int check_export_measurement(struct pctx *c, const struct ynode *n, const char *what)
{
	if (!strcmp(n->str, "any"))
		return fail(c, n, "%s: 'any' is the default (leave measurement out); list "
			    "measurements (64 or 96 hex digits) to restrict the importer", what);
	return check_measurement(c, n, what);
}

/* owner / policy_hash / measurement of one export entry. A name alone is refused:
 * names are first come, first served, so anybody could create the importer. */
static int parse_export_binding(struct pctx *c, const struct ynode *x,
				const struct pol_secret *s, struct pol_export *ex)
{
	const struct ynode *f;

	ex->mark.line = x->line;
	ex->mark.col = x->col;
	f = map_get(x, "owner");
	if (f && !is_null(f) &&
	    (get_str(c, f, "export owner", &ex->owner) < 0 ||
	     check_hash(c, f, "export owner") < 0))
		return c->code;
	f = map_get(x, "policy_hash");
	if (f && !is_null(f) &&
	    (get_str(c, f, "export policy_hash", &ex->policy_hash) < 0 ||
	     check_hash(c, f, "export policy_hash") < 0))
		return c->code;
	if ((f = map_get(x, "measurement"))) {
		if (get_str_list(c, f, "export measurement", check_export_measurement,
				 &ex->measurement, &ex->n_measurement) < 0)
			return c->code;
		if (ex->n_measurement == 0)
			return fail(c, f, "export measurement: empty list (leave it out to "
				    "accept the importer's own measurement rules)");
		for (size_t i = 0; i < ex->n_measurement; i++)
			for (char *q = ex->measurement[i]; *q; q++)
				if (*q >= 'A' && *q <= 'F')
					*q = (char)(*q - 'A' + 'a');
	}
	if (!ex->owner && !ex->policy_hash && !(c->flags & POL_PARSE_STORED))
		return fail(c, x, "secret '%s': export to '%s' names only a policy, which "
			    "anybody may create first: add 'owner: sha256:<id>' (the importer "
			    "owner's identity, 'kiln identity show') or 'policy_hash: "
			    "sha256:<hash>' (the importer's version)", s->name, ex->session);
	return 0;
}

/* A generated ascii or binary secret must hold at least POL_MIN_SECRET_BITS bits
 * of entropy (size * log2(distinct characters)): `charset: "a"` made a secret
 * anybody could guess. Policies stored by an earlier kiln keep what they had. */
static int check_entropy(struct pctx *c, const struct ynode *n, const struct pol_secret *s)
{
	size_t chars = s->kind == POL_SECRET_BINARY ? 256 :
		       s->charset ? strlen(s->charset) : 62;
	double per_char = log2((double)chars), bits = per_char * s->size;

	if ((s->kind != POL_SECRET_ASCII && s->kind != POL_SECRET_BINARY) || s->import ||
	    (c->flags & POL_PARSE_STORED) || bits >= POL_MIN_SECRET_BITS)
		return 0;
	if (chars < 2)
		return fail(c, n, "secret '%s': a charset of one character gives a secret anybody "
			    "can guess (at least %d bits of entropy are needed)", s->name,
			    POL_MIN_SECRET_BITS);
	return fail(c, n, "secret '%s': %u %s from %zu possible give %.0f bits of entropy, "
		    "fewer than %d: make size at least %.0f", s->name, s->size,
		    s->kind == POL_SECRET_BINARY ? "bytes" : "characters", chars, floor(bits),
		    POL_MIN_SECRET_BITS, ceil(POL_MIN_SECRET_BITS / per_char));
}

static int parse_secret(struct pctx *c, const struct ynode *n, struct pol_secret *s)
{
	static const char *const export_keys[] = { "session", "owner", "policy_hash",
						   "measurement", NULL };
	static const char *const import_keys[] = { "session", "secret", "policy_hash", NULL };
	const struct ynode *v;
	int e;

	if (check_map(c, n, "secret", g_secret_keys) < 0)
		return c->code;
	s->mark.line = n->line;
	s->mark.col = n->col;
	v = map_get(n, "name");
	if (!v)
		return fail(c, n, "secret: missing required key 'name'");
	if (get_str(c, v, "secret name", &s->name) < 0 ||
	    check_item_name(c, v, "secret name") < 0)
		return c->code;
	v = map_get(n, "import");
	if (v) {
		const struct ynode *f;

		if (check_map(c, v, "import", import_keys) < 0)
			return c->code;
		s->import = calloc(1, sizeof(*s->import));
		if (!s->import)
			return oom(c);
		f = map_get(v, "session");
		if (!f)
			return fail(c, v, "import: missing required key 'session'");
		if (get_str(c, f, "import session", &s->import->session) < 0 ||
		    check_policy_name(c, f, "import session") < 0)
			return c->code;
		f = map_get(v, "secret");
		if (!f)
			return fail(c, v, "import: missing required key 'secret'");
		if (get_str(c, f, "import secret", &s->import->secret) < 0 ||
		    check_item_name(c, f, "import secret") < 0)
			return c->code;
		f = map_get(v, "policy_hash");
		if (!f)
			return fail(c, v, "import: missing required key 'policy_hash' (the "
				    "exporting policy's hash, pinned)");
		if (get_str(c, f, "import policy_hash", &s->import->policy_hash) < 0 ||
		    check_hash(c, f, "import policy_hash") < 0)
			return c->code;
	}
	v = map_get(n, "kind");
	if (!v && !s->import)
		return fail(c, n, "secret '%s': missing required key 'kind'", s->name);
	if (v) {
		if (get_enum(c, v, "secret kind", g_kinds, &e) < 0)
			return c->code;
		s->kind = (enum pol_secret_kind)(e + 1);
	}
	for (size_t i = 0; i + 1 < n->n; i += 2) {
		const char *k = n->items[i]->str;

		if (s->import && strcmp(k, "name") && strcmp(k, "kind") && strcmp(k, "import") &&
		    strcmp(k, "export"))
			return fail(c, n->items[i], "secret '%s': '%s' does not apply to an "
				    "imported secret", s->name, k);
		if (!s->import && !key_applies(k, s->kind))
			return fail(c, n->items[i], "secret '%s': '%s' does not apply to kind %s",
				    s->name, k, pol_kind_name(s->kind));
	}
	s->size = s->kind == POL_SECRET_BINARY || s->kind == POL_SECRET_ASCII ? 32 : 0;
	if ((v = map_get(n, "size")) &&
	    get_uint(c, v, "secret size", 1, s->kind == POL_SECRET_ASCII ? 4096 : 65536,
		     &s->size) < 0)
		return c->code;
	if ((v = map_get(n, "charset"))) {
		if (get_str(c, v, "secret charset", &s->charset) < 0)
			return c->code;
		if (!s->charset[0] || strlen(s->charset) > 256)
			return fail(c, v, "secret charset: must hold 1 to 256 characters");
		for (const char *p = s->charset; *p; p++) {
			if (*p < 0x20 || *p > 0x7e)
				return fail(c, v, "secret charset: only printable ASCII allowed");
			/* Characters are drawn uniformly by position: a repeated one
			 * would be likelier than the others. */
			if (!(c->flags & POL_PARSE_STORED) && strchr(p + 1, *p))
				return fail(c, v, "secret charset: '%c' appears twice", *p);
		}
	}
	if (!(v = map_get(n, "size")) && !(v = map_get(n, "charset")))
		v = n;
	if (check_entropy(c, v, s) < 0)
		return c->code;
	s->algorithm = POL_ALG_P256;
	if ((v = map_get(n, "algorithm"))) {
		if (get_enum(c, v, "secret algorithm", g_algs, &e) < 0)
			return c->code;
		s->algorithm = (enum pol_key_alg)e;
	}
	if ((v = map_get(n, "issuer")) &&
	    (get_str(c, v, "secret issuer", &s->issuer) < 0 ||
	     check_item_name(c, v, "secret issuer") < 0))
		return c->code;
	if ((v = map_get(n, "dns")) &&
	    get_str_list(c, v, "secret dns", check_dns, &s->dns, &s->n_dns) < 0)
		return c->code;
	if ((v = map_get(n, "ip")) &&
	    get_str_list(c, v, "secret ip", check_ip, &s->ip, &s->n_ip) < 0)
		return c->code;
	if ((v = map_get(n, "common_name"))) {
		if (get_str(c, v, "secret common_name", &s->common_name) < 0)
			return c->code;
		if (!s->common_name[0] || strlen(s->common_name) > 64)
			return fail(c, v, "secret common_name: must hold 1 to 64 characters");
	}
	s->validity_days = s->kind == POL_SECRET_X509 ? 365 :
			   s->kind == POL_SECRET_X509_CA ? 3650 : 0;
	if ((v = map_get(n, "validity_days")) &&
	    get_uint(c, v, "secret validity_days", 1, 36500, &s->validity_days) < 0)
		return c->code;
	if ((v = map_get(n, "export"))) {
		if (v->type != YN_SEQ)
			return fail(c, v, "secret export: expected a list, found %s", type_name(v));
		s->exports = calloc(v->n + 1, sizeof(*s->exports));
		if (!s->exports)
			return oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;
			struct pol_export *ex = &s->exports[i];

			if (check_map(c, x, "export", export_keys) < 0)
				return c->code;
			s->n_exports = i + 1;
			f = map_get(x, "session");
			if (!f)
				return fail(c, x, "export: missing required key 'session'");
			if (get_str(c, f, "export session", &ex->session) < 0 ||
			    check_policy_name(c, f, "export session") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(s->exports[j].session, ex->session))
					return fail(c, f, "export: duplicate session '%s'",
						    ex->session);
			if (parse_export_binding(c, x, s, ex) < 0)
				return c->code;
		}
	}
	return 0;
}

/* ---- templates ---- */

static bool fmt_applies(enum pol_secret_kind kind, enum pol_fmt fmt)
{
	switch (kind) {
	case POL_SECRET_NONE:
		return true;
	case POL_SECRET_ASCII:
	case POL_SECRET_BINARY:
		return fmt == POL_FMT_RAW || fmt == POL_FMT_HEX || fmt == POL_FMT_BASE64;
	case POL_SECRET_KEY:
		return fmt != POL_FMT_CHAIN;
	case POL_SECRET_X509:
	case POL_SECRET_X509_CA:
		return true;
	}
	return false;
}

bool pol_fmt_applies(enum pol_secret_kind kind, enum pol_fmt fmt)
{
	return fmt_applies(kind, fmt);
}

static const char *const g_fmts[] = { "", "hex", "base64", "pem", "key", "chain", NULL };

const char *pol_fmt_name(enum pol_fmt fmt)
{
	return fmt == POL_FMT_RAW ? "(plain)" : g_fmts[fmt];
}

int pol_ref_parse(const char *s, size_t len, struct pol_ref *ref)
{
	char buf[160];
	char *p, *dot;

	memset(ref, 0, sizeof(*ref));
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len >= sizeof(buf))
		return -KILN_EFORMAT;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!strncmp(buf, "secret.", 7)) {
		p = buf + 7;
	} else if (!strncmp(buf, "host.", 5)) {
		p = buf + 5;
		ref->host = true;
	} else {
		return -KILN_EFORMAT;
	}
	dot = strchr(p, '.');
	if (dot) {
		if (ref->host)
			return -KILN_EFORMAT;
		*dot = '\0';
		for (int i = 1; g_fmts[i]; i++)
			if (!strcmp(dot + 1, g_fmts[i]))
				ref->fmt = (enum pol_fmt)i;
		if (ref->fmt == POL_FMT_RAW) {
			ref->bad_fmt = true;
			return -KILN_EFORMAT;
		}
	}
	if (!ident_valid(p, "_-"))
		return -KILN_EFORMAT;
	memcpy(ref->name, p, strlen(p) + 1); /* ident_valid bounds it to 64 */
	return 0;
}

static int check_template(struct pctx *c, const struct pol_policy *p,
			  const struct pol_service *svc, const struct ynode *n, const char *what,
			  bool text_only)
{
	const char *s = n->str;

	for (;;) {
		const char *open = strstr(s, "{{"), *close;
		struct pol_ref ref;
		const struct pol_secret *sec;
		int r;

		if (!open)
			return 0;
		close = strstr(open + 2, "}}");
		if (!close)
			return fail(c, n, "%s: unterminated '{{' (references look like "
				    "{{secret.NAME}} or {{host.NAME}})", what);
		r = pol_ref_parse(open + 2, (size_t)(close - open - 2), &ref);
		if (r < 0 && ref.bad_fmt)
			return fail(c, n, "%s: unknown format in '%.*s' (expected hex, base64, "
				    "pem, key or chain)", what, (int)(close + 2 - open), open);
		if (r < 0)
			return fail(c, n, "%s: bad reference '%.*s' (expected {{secret.NAME}}, "
				    "{{secret.NAME.FORMAT}} or {{host.NAME}})", what,
				    (int)(close + 2 - open), open);
		if (ref.host) {
			bool listed = false;

			for (size_t i = 0; i < svc->n_host_env; i++)
				if (!strcmp(svc->host_env[i], ref.name))
					listed = true;
			if (!listed)
				return fail(c, n, "%s: {{host.%s}} is not listed in service '%s' "
					    "host_env", what, ref.name, svc->name);
		} else {
			sec = pol_find_secret(p, ref.name);
			if (!sec) {
				const char *names[65];
				size_t k = 0;
				const char *sg;

				for (size_t i = 0; i < p->n_secrets && k < 64; i++)
					names[k++] = p->secrets[i].name;
				names[k] = NULL;
				sg = suggest(ref.name, names);
				if (sg)
					return fail(c, n, "%s: unknown secret '%s' (did you mean "
						    "'%s'?)", what, ref.name, sg);
				return fail(c, n, "%s: unknown secret '%s'", what, ref.name);
			}
			if (!fmt_applies(sec->kind, ref.fmt))
				return fail(c, n, "%s: format '%s' does not apply to secret '%s' "
					    "of kind %s", what, pol_fmt_name(ref.fmt), sec->name,
					    pol_kind_name(sec->kind));
			if (text_only && sec->kind == POL_SECRET_BINARY && ref.fmt == POL_FMT_RAW)
				return fail(c, n, "%s: binary secret '%s' needs .hex or .base64 "
					    "here", what, sec->name);
		}
		s = close + 2;
	}
}

/* ---- services ---- */

static int parse_mode(struct pctx *c, const struct ynode *n, uint32_t *mode)
{
	const char *s = n->str;
	size_t len;

	if (n->type != YN_SCALAR || is_null(n))
		return fail(c, n, "file mode: expected an octal mode like \"0600\", found %s",
			    type_name(n));
	len = strlen(s);
	if (len < 3 || len > 4 || strspn(s, "01234567") != len || (len == 4 && s[0] != '0'))
		return fail(c, n, "file mode: expected an octal mode like \"0600\", found '%s'",
			    s);
	*mode = (uint32_t)strtoul(s, NULL, 8);
	return 0;
}

static int parse_service(struct pctx *c, const struct pol_policy *p, const struct ynode *n,
			 struct pol_service *svc)
{
	static const char *const keys[] = { "name", "command", "environment", "pwd", "files",
					    "mounts", "measurement", "host_env", NULL };
	static const char *const file_keys[] = { "path", "content", "mode", NULL };
	static const char *const mount_keys[] = { "volume", "path", NULL };
	const struct ynode *v;

	if (check_map(c, n, "service", keys) < 0)
		return c->code;
	svc->mark.line = n->line;
	svc->mark.col = n->col;
	v = map_get(n, "name");
	if (!v)
		return fail(c, n, "service: missing required key 'name'");
	if (get_str(c, v, "service name", &svc->name) < 0 ||
	    check_item_name(c, v, "service name") < 0)
		return c->code;
	if ((v = map_get(n, "host_env")) &&
	    get_str_list(c, v, "service host_env", check_env_name, &svc->host_env,
			 &svc->n_host_env) < 0)
		return c->code;
	v = map_get(n, "command");
	if (!v)
		return fail(c, n, "service '%s': missing required key 'command'", svc->name);
	if (v->type != YN_SEQ || v->n == 0)
		return fail(c, v, "service '%s' command: expected a non-empty list of strings",
			    svc->name);
	svc->command = calloc(v->n + 1, sizeof(char *));
	if (!svc->command)
		return oom(c);
	for (size_t i = 0; i < v->n; i++) {
		if (get_str(c, v->items[i], "command", &svc->command[i]) < 0)
			return c->code;
		svc->n_command = i + 1;
		if (check_template(c, p, svc, v->items[i], "command", true) < 0)
			return c->code;
	}
	if ((v = map_get(n, "environment"))) {
		if (check_map(c, v, "environment", NULL) < 0)
			return c->code;
		svc->env = calloc(v->n / 2 + 1, sizeof(*svc->env));
		if (!svc->env)
			return oom(c);
		for (size_t i = 0; i + 1 < v->n; i += 2) {
			struct pol_env *e = &svc->env[i / 2];

			if (check_env_name(c, v->items[i], "environment") < 0 ||
			    get_str(c, v->items[i], "environment", &e->name) < 0)
				return c->code;
			svc->n_env = i / 2 + 1;
			if (get_str(c, v->items[i + 1], "environment value", &e->value) < 0 ||
			    check_template(c, p, svc, v->items[i + 1], "environment", true) < 0)
				return c->code;
		}
	}
	if ((v = map_get(n, "pwd"))) {
		if (get_str(c, v, "pwd", &svc->pwd) < 0 || check_abs_path(c, v, "pwd") < 0)
			return c->code;
	} else if (!(svc->pwd = strdup("/"))) {
		return oom(c);
	}
	if ((v = map_get(n, "files"))) {
		if (v->type != YN_SEQ)
			return fail(c, v, "files: expected a list, found %s", type_name(v));
		svc->files = calloc(v->n + 1, sizeof(*svc->files));
		if (!svc->files)
			return oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;
			struct pol_file *fl = &svc->files[i];

			if (check_map(c, x, "file", file_keys) < 0)
				return c->code;
			svc->n_files = i + 1;
			f = map_get(x, "path");
			if (!f)
				return fail(c, x, "file: missing required key 'path'");
			if (get_str(c, f, "file path", &fl->path) < 0 ||
			    check_abs_path(c, f, "file path") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(svc->files[j].path, fl->path))
					return fail(c, f, "files: duplicate path '%s'", fl->path);
			f = map_get(x, "content");
			if (!f)
				return fail(c, x, "file '%s': missing required key 'content'",
					    fl->path);
			if (get_str(c, f, "file content", &fl->content) < 0 ||
			    check_template(c, p, svc, f, "file content", false) < 0)
				return c->code;
			fl->mode = 0600;
			if ((f = map_get(x, "mode")) && parse_mode(c, f, &fl->mode) < 0)
				return c->code;
		}
	}
	if ((v = map_get(n, "mounts"))) {
		if (v->type != YN_SEQ)
			return fail(c, v, "mounts: expected a list, found %s", type_name(v));
		svc->mounts = calloc(v->n + 1, sizeof(*svc->mounts));
		if (!svc->mounts)
			return oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;
			struct pol_mount *m = &svc->mounts[i];
			bool known = false;

			if (check_map(c, x, "mount", mount_keys) < 0)
				return c->code;
			svc->n_mounts = i + 1;
			f = map_get(x, "volume");
			if (!f)
				return fail(c, x, "mount: missing required key 'volume'");
			if (get_str(c, f, "mount volume", &m->volume) < 0)
				return c->code;
			for (size_t j = 0; j < p->n_volumes; j++)
				if (!strcmp(p->volumes[j], m->volume))
					known = true;
			if (!known) {
				static const char *const none[] = { NULL };
				const char *s = suggest(m->volume, p->volumes ?
							(const char *const *)p->volumes : none);

				if (s)
					return fail(c, f, "mount: unknown volume '%s' (did you "
						    "mean '%s'?)", m->volume, s);
				return fail(c, f, "mount: unknown volume '%s' (declare it under "
					    "volumes)", m->volume);
			}
			f = map_get(x, "path");
			if (!f)
				return fail(c, x, "mount: missing required key 'path'");
			if (get_str(c, f, "mount path", &m->path) < 0 ||
			    check_abs_path(c, f, "mount path") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(svc->mounts[j].path, m->path) ||
				    !strcmp(svc->mounts[j].volume, m->volume))
					return fail(c, x, "mounts: volume '%s' or path '%s' "
						    "mounted twice", m->volume, m->path);
		}
	}
	v = map_get(n, "measurement");
	if (!v)
		return fail(c, n, "service '%s': missing required key 'measurement' (a list of "
			    "values printed by 'kiln measure', or [any])", svc->name);
	if (get_str_list(c, v, "measurement", check_measurement, &svc->measurement,
			 &svc->n_measurement) < 0)
		return c->code;
	if (svc->n_measurement == 0)
		return fail(c, v, "measurement: empty list (nothing could ever run; use [any] "
			    "to accept any)");
	if (svc->n_measurement > 1 && !(c->flags & POL_PARSE_STORED))
		for (size_t i = 0; i < svc->n_measurement; i++)
			if (!strcmp(svc->measurement[i], "any"))
				return fail(c, v->items[i], "measurement: 'any' accepts every "
					    "program, so the other values say nothing: list [any] "
					    "or measurements, not both");
	for (size_t i = 0; i < svc->n_measurement; i++)
		for (char *q = svc->measurement[i]; *q; q++)
			if (*q >= 'A' && *q <= 'F')
				*q = (char)(*q - 'A' + 'a');
	return 0;
}

/* ---- top level ---- */

static int parse_root(struct pctx *c, const struct ynode *root, struct pol_policy *p)
{
	static const char *const keys[] = { "name", "predecessor", "access", "secrets",
					    "volumes", "services", "security", NULL };
	static const char *const access_keys[] = { "read", "update", NULL };
	static const char *const sec_keys[] = { "tee", "allow_insecure_sim", "tolerate",
						"ignore_advisories", NULL };
	static const char *const vol_keys[] = { "name", NULL };
	const struct ynode *v, *svcs = NULL, *secs = NULL;

	if (root->type != YN_MAP)
		return fail(c, root, "policy: expected a mapping at the top level, found %s",
			    type_name(root));
	if (check_map(c, root, "policy", keys) < 0)
		return c->code;
	v = map_get(root, "name");
	if (!v)
		return fail(c, root, "policy: missing required key 'name'");
	if (get_str(c, v, "name", &p->name) < 0 || check_policy_name(c, v, "name") < 0)
		return c->code;
	v = map_get(root, "predecessor");
	if (v && !is_null(v) &&
	    (get_str(c, v, "predecessor", &p->predecessor) < 0 ||
	     check_hash(c, v, "predecessor") < 0))
		return c->code;
	if ((v = map_get(root, "access"))) {
		const struct ynode *f;

		if (check_map(c, v, "access", access_keys) < 0)
			return c->code;
		if ((f = map_get(v, "read")) &&
		    get_str_list(c, f, "access read", check_identity, &p->read, &p->n_read) < 0)
			return c->code;
		if ((f = map_get(v, "update")) &&
		    get_str_list(c, f, "access update", check_identity, &p->update,
				 &p->n_update) < 0)
			return c->code;
	}
	if (!p->read) {
		p->read = calloc(2, sizeof(char *));
		if (!p->read || !(p->read[0] = strdup("owner")))
			return oom(c);
		p->n_read = 1;
	}
	if (!p->update) {
		p->update = calloc(2, sizeof(char *));
		if (!p->update || !(p->update[0] = strdup("owner")))
			return oom(c);
		p->n_update = 1;
	}
	if ((v = map_get(root, "volumes"))) {
		if (v->type != YN_SEQ)
			return fail(c, v, "volumes: expected a list, found %s", type_name(v));
		p->volumes = calloc(v->n + 1, sizeof(char *));
		if (!p->volumes)
			return oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;

			if (check_map(c, x, "volume", vol_keys) < 0)
				return c->code;
			f = map_get(x, "name");
			if (!f)
				return fail(c, x, "volume: missing required key 'name'");
			if (get_str(c, f, "volume name", &p->volumes[i]) < 0)
				return c->code;
			p->n_volumes = i + 1;
			if (check_item_name(c, f, "volume name") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(p->volumes[j], p->volumes[i]))
					return fail(c, f, "volumes: duplicate name '%s'",
						    p->volumes[i]);
		}
	}
	if ((secs = map_get(root, "secrets"))) {
		if (secs->type != YN_SEQ)
			return fail(c, secs, "secrets: expected a list, found %s", type_name(secs));
		p->secrets = calloc(secs->n + 1, sizeof(*p->secrets));
		if (!p->secrets)
			return oom(c);
		for (size_t i = 0; i < secs->n; i++) {
			p->n_secrets = i + 1;
			if (parse_secret(c, secs->items[i], &p->secrets[i]) < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(p->secrets[j].name, p->secrets[i].name))
					return fail(c, map_get(secs->items[i], "name"),
						    "secrets: duplicate name '%s'",
						    p->secrets[i].name);
		}
		/* Issuers can only be checked once every secret is known. */
		for (size_t i = 0; i < p->n_secrets; i++) {
			const struct pol_secret *s = &p->secrets[i], *is;

			if (!s->issuer)
				continue;
			v = map_get(secs->items[i], "issuer");
			is = pol_find_secret(p, s->issuer);
			if (!is)
				return fail(c, v, "secret '%s': unknown issuer '%s'", s->name,
					    s->issuer);
			if (is->kind != POL_SECRET_X509_CA)
				return fail(c, v, "secret '%s': issuer '%s' is not an x509-ca "
					    "secret (it is %s)", s->name, s->issuer,
					    pol_kind_name(is->kind));
		}
	}
	if ((svcs = map_get(root, "services"))) {
		if (svcs->type != YN_SEQ)
			return fail(c, svcs, "services: expected a list, found %s",
				    type_name(svcs));
		p->services = calloc(svcs->n + 1, sizeof(*p->services));
		if (!p->services)
			return oom(c);
		for (size_t i = 0; i < svcs->n; i++) {
			p->n_services = i + 1;
			if (parse_service(c, p, svcs->items[i], &p->services[i]) < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(p->services[j].name, p->services[i].name))
					return fail(c, map_get(svcs->items[i], "name"),
						    "services: duplicate name '%s'",
						    p->services[i].name);
		}
	}
	if ((v = map_get(root, "security"))) {
		const struct ynode *f;

		if (check_map(c, v, "security", sec_keys) < 0)
			return c->code;
		if ((f = map_get(v, "tee")) && get_enum_set(c, f, "security tee", g_tees,
							     &p->tee) < 0)
			return c->code;
		if ((f = map_get(v, "allow_insecure_sim")) &&
		    get_bool(c, f, "security allow_insecure_sim", &p->allow_insecure_sim) < 0)
			return c->code;
		if ((f = map_get(v, "tolerate")) &&
		    get_enum_set(c, f, "security tolerate", g_tols, &p->tolerate) < 0)
			return c->code;
		if ((f = map_get(v, "ignore_advisories")) &&
		    get_str_list(c, f, "security ignore_advisories", check_advisory,
				 &p->ignore_advisories, &p->n_ignore_advisories) < 0)
			return c->code;
	}
	if (p->n_services && !p->tee)
		return fail(c, v ? v : root, "security: 'tee' must list at least one TEE "
			    "(sim, host, sgx, tdx, snp) when the policy has services");
	return 0;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void pol_free(struct pol_policy *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->predecessor);
	free_strv(p->read, p->n_read);
	free_strv(p->update, p->n_update);
	for (size_t i = 0; p->secrets && i < p->n_secrets; i++) {
		struct pol_secret *s = &p->secrets[i];

		free(s->name);
		free(s->charset);
		free(s->issuer);
		free(s->common_name);
		free_strv(s->dns, s->n_dns);
		free_strv(s->ip, s->n_ip);
		for (size_t j = 0; s->exports && j < s->n_exports; j++) {
			free(s->exports[j].session);
			free(s->exports[j].owner);
			free(s->exports[j].policy_hash);
			free_strv(s->exports[j].measurement, s->exports[j].n_measurement);
		}
		free(s->exports);
		if (s->import) {
			free(s->import->session);
			free(s->import->secret);
			free(s->import->policy_hash);
			free(s->import);
		}
	}
	free(p->secrets);
	free_strv(p->volumes, p->n_volumes);
	for (size_t i = 0; p->services && i < p->n_services; i++) {
		struct pol_service *s = &p->services[i];

		free(s->name);
		free_strv(s->command, s->n_command);
		for (size_t j = 0; s->env && j < s->n_env; j++) {
			free(s->env[j].name);
			free(s->env[j].value);
		}
		free(s->env);
		free(s->pwd);
		for (size_t j = 0; s->files && j < s->n_files; j++) {
			free(s->files[j].path);
			free(s->files[j].content);
		}
		free(s->files);
		for (size_t j = 0; s->mounts && j < s->n_mounts; j++) {
			free(s->mounts[j].volume);
			free(s->mounts[j].path);
		}
		free(s->mounts);
		free_strv(s->measurement, s->n_measurement);
		free_strv(s->host_env, s->n_host_env);
	}
	free(p->services);
	free_strv(p->ignore_advisories, p->n_ignore_advisories);
	json_decref(p->canonical);
	free(p);
}

const struct pol_secret *pol_find_secret(const struct pol_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_secrets; i++)
		if (p->secrets[i].name && !strcmp(p->secrets[i].name, name))
			return &p->secrets[i];
	return NULL;
}

const struct pol_service *pol_find_service(const struct pol_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_services; i++)
		if (p->services[i].name && !strcmp(p->services[i].name, name))
			return &p->services[i];
	return NULL;
}

int pol_parse(const char *yaml, size_t size, const char *file, struct pol_policy **out,
	      struct kiln_err *err)
{
	return pol_parse_ex(yaml, size, file, 0, out, err);
}

int pol_parse_ex(const char *yaml, size_t size, const char *file, unsigned flags,
		 struct pol_policy **out, struct kiln_err *err)
{
	struct pctx c = { .file = file ? file : "policy", .err = err, .code = 0,
			  .flags = flags };
	struct ynode *root = NULL;
	struct pol_policy *p = NULL;
	int ret;

	*out = NULL;
	ret = yn_parse(yaml, size, c.file, &root, err);
	if (ret < 0)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p) {
		ret = oom(&c);
		goto out;
	}
	ret = parse_root(&c, root, p);
	if (ret < 0)
		goto out;
	ret = pol_canonicalize(p);
	if (ret < 0) {
		ret = kiln_err_set(err, ret, "%s: cannot compute the canonical form: %s", c.file,
				   kiln_strerror(ret));
		goto out;
	}
	*out = p;
	p = NULL;
out:
	pol_free(p);
	yn_free(root);
	return ret;
}
