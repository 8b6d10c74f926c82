/* The secrets section: one secret, its kind-specific keys, its export and
 * import entries, the entropy rule. */
#include "policy/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int check_export_measurement(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!strcmp(n->str, "any"))
		return pol__fail(c, n,
				 "%s: 'any' is the default (leave measurement out); list "
				 "measurements (64 or 96 hex digits) to restrict the importer",
				 what);
	return pol__check_measurement(c, n, what);
}

/* owner / policy_hash / measurement of one export entry. A name alone is refused:
 * names are first come, first served, so anybody could create the importer. */
static int parse_export_binding(struct pol__ctx *c, const struct ynode *x,
				const struct pol_secret *s, struct pol_export *ex)
{
	const struct ynode *f;

	ex->mark.line = x->line;
	ex->mark.col = x->col;
	f = pol__map_get(x, "owner");
	if (f && !pol__is_null(f) &&
	    (pol__get_str(c, f, "export owner", &ex->owner) < 0 ||
	     pol__check_hash(c, f, "export owner") < 0))
		return c->code;
	f = pol__map_get(x, "policy_hash");
	if (f && !pol__is_null(f) &&
	    (pol__get_str(c, f, "export policy_hash", &ex->policy_hash) < 0 ||
	     pol__check_hash(c, f, "export policy_hash") < 0))
		return c->code;
	if ((f = pol__map_get(x, "measurement"))) {
		if (pol__get_str_list(c, f, "export measurement", check_export_measurement,
				      &ex->measurement, &ex->n_measurement) < 0)
			return c->code;
		if (ex->n_measurement == 0)
			return pol__fail(c, f, "export measurement: empty list (leave it out to "
					 "accept the importer's own measurement rules)");
		for (size_t i = 0; i < ex->n_measurement; i++)
			for (char *q = ex->measurement[i]; *q; q++)
				if (*q >= 'A' && *q <= 'F')
					*q = (char)(*q - 'A' + 'a');
	}
	if (!ex->owner && !ex->policy_hash && !(c->flags & POL_PARSE_STORED))
		return pol__fail(c, x, "secret '%s': export to '%s' names only a policy, which "
				 "anybody may create first: add 'owner: sha256:<id>' (the importer "
				 "owner's identity, 'kiln identity show') or 'policy_hash: "
				 "sha256:<hash>' (the importer's version)", s->name, ex->session);
	return 0;
}

/* A generated ascii or binary secret must hold at least POL_MIN_SECRET_BITS bits
 * of entropy (size * log2(distinct characters)): `charset: "a"` made a secret
 * anybody could guess. Policies stored by an earlier kiln keep what they had. */
static int check_entropy(struct pol__ctx *c, const struct ynode *n, const struct pol_secret *s)
{
	size_t chars = s->kind == POL_SECRET_BINARY ? 256 :
		       s->charset ? strlen(s->charset) : 62;
	double per_char = log2((double)chars), bits = per_char * s->size;

	if ((s->kind != POL_SECRET_ASCII && s->kind != POL_SECRET_BINARY) || s->import ||
	    (c->flags & POL_PARSE_STORED) || bits >= POL_MIN_SECRET_BITS)
		return 0;
	if (chars < 2)
		return pol__fail(c, n,
				 "secret '%s': a charset of one character gives a secret anybody "
				 "can guess (at least %d bits of entropy are needed)",
				 s->name, POL_MIN_SECRET_BITS);
	return pol__fail(c, n, "secret '%s': %u %s from %zu possible give %.0f bits of entropy, "
			 "fewer than %d: make size at least %.0f", s->name, s->size,
			 s->kind == POL_SECRET_BINARY ? "bytes" : "characters", chars, floor(bits),
			 POL_MIN_SECRET_BITS, ceil(POL_MIN_SECRET_BITS / per_char));
}

/* export: a list of entries, or {require: M, of: [ids], to: [entries]} when
 * changing the entries needs a quorum. */
static int parse_exports(struct pol__ctx *c, const struct ynode *v, struct pol_secret *s)
{
	static const char *const export_keys[] = { "session", "owner", "policy_hash",
						   "measurement", NULL };
	static const char *const quorum_keys[] = { "require", "of", "to", NULL };

	if (v->type == YN_MAP) {
		const struct ynode *q = v;

		if (pol__check_map(c, q, "secret export", quorum_keys) < 0 ||
		    pol__get_quorum(c, q, "secret export", &s->export_rule) < 0)
			return c->code;
		if (!(v = pol__map_get(q, "to")))
			return pol__fail(c, q, "secret export: missing required key 'to' (the "
					 "export entries, possibly [])");
	}
	if (v->type != YN_SEQ)
		return pol__fail(c, v, "secret export: expected a list or {require: M, of: "
				 "[identity, ...], to: [entries]}, found %s", pol__type_name(v));
	s->exports = calloc(v->n + 1, sizeof(*s->exports));
	if (!s->exports)
		return pol__oom(c);
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *x = v->items[i], *f;
		struct pol_export *ex = &s->exports[i];

		if (pol__check_map(c, x, "export", export_keys) < 0)
			return c->code;
		s->n_exports = i + 1;
		f = pol__map_get(x, "session");
		if (!f)
			return pol__fail(c, x, "export: missing required key 'session'");
		if (pol__get_str(c, f, "export session", &ex->session) < 0 ||
		    pol__check_policy_name(c, f, "export session") < 0)
			return c->code;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->exports[j].session, ex->session))
				return pol__fail(c, f, "export: duplicate session '%s'",
						 ex->session);
		if (parse_export_binding(c, x, s, ex) < 0)
			return c->code;
	}
	return 0;
}

int pol__parse_secret(struct pol__ctx *c, const struct ynode *n, struct pol_secret *s)
{
	static const char *const import_keys[] = { "session", "secret", "policy_hash", NULL };
	const struct ynode *v;
	int e;

	if (pol__check_map(c, n, "secret", g_secret_keys) < 0)
		return c->code;
	s->mark.line = n->line;
	s->mark.col = n->col;
	v = pol__map_get(n, "name");
	if (!v)
		return pol__fail(c, n, "secret: missing required key 'name'");
	if (pol__get_str(c, v, "secret name", &s->name) < 0 ||
	    pol__check_item_name(c, v, "secret name") < 0)
		return c->code;
	v = pol__map_get(n, "import");
	if (v) {
		const struct ynode *f;

		if (pol__check_map(c, v, "import", import_keys) < 0)
			return c->code;
		s->import = calloc(1, sizeof(*s->import));
		if (!s->import)
			return pol__oom(c);
		f = pol__map_get(v, "session");
		if (!f)
			return pol__fail(c, v, "import: missing required key 'session'");
		if (pol__get_str(c, f, "import session", &s->import->session) < 0 ||
		    pol__check_policy_name(c, f, "import session") < 0)
			return c->code;
		f = pol__map_get(v, "secret");
		if (!f)
			return pol__fail(c, v, "import: missing required key 'secret'");
		if (pol__get_str(c, f, "import secret", &s->import->secret) < 0 ||
		    pol__check_item_name(c, f, "import secret") < 0)
			return c->code;
		f = pol__map_get(v, "policy_hash");
		if (!f)
			return pol__fail(c, v, "import: missing required key 'policy_hash' (the "
					 "exporting policy's hash, pinned)");
		if (pol__get_str(c, f, "import policy_hash", &s->import->policy_hash) < 0 ||
		    pol__check_hash(c, f, "import policy_hash") < 0)
			return c->code;
	}
	v = pol__map_get(n, "kind");
	if (!v && !s->import)
		return pol__fail(c, n, "secret '%s': missing required key 'kind'", s->name);
	if (v) {
		if (pol__get_enum(c, v, "secret kind", pol__kinds, &e) < 0)
			return c->code;
		s->kind = (enum pol_secret_kind)(e + 1);
	}
	for (size_t i = 0; i + 1 < n->n; i += 2) {
		const char *k = n->items[i]->str;

		if (s->import && strcmp(k, "name") && strcmp(k, "kind") && strcmp(k, "import") &&
		    strcmp(k, "export"))
			return pol__fail(c, n->items[i], "secret '%s': '%s' does not apply to an "
					 "imported secret", s->name, k);
		if (!s->import && !key_applies(k, s->kind))
			return pol__fail(c, n->items[i],
					 "secret '%s': '%s' does not apply to kind %s", s->name, k,
					 pol_kind_name(s->kind));
	}
	s->size = s->kind == POL_SECRET_BINARY || s->kind == POL_SECRET_ASCII ? 32 : 0;
	if ((v = pol__map_get(n, "size")) &&
	    pol__get_uint(c, v, "secret size", 1, s->kind == POL_SECRET_ASCII ? 4096 : 65536,
			  &s->size) < 0)
		return c->code;
	if ((v = pol__map_get(n, "charset"))) {
		if (pol__get_str(c, v, "secret charset", &s->charset) < 0)
			return c->code;
		if (!s->charset[0] || strlen(s->charset) > 256)
			return pol__fail(c, v, "secret charset: must hold 1 to 256 characters");
		for (const char *p = s->charset; *p; p++) {
			if (*p < 0x20 || *p > 0x7e)
				return pol__fail(c, v,
						 "secret charset: only printable ASCII allowed");
			/* Characters are drawn uniformly by position: a repeated one
			 * would be likelier than the others. */
			if (!(c->flags & POL_PARSE_STORED) && strchr(p + 1, *p))
				return pol__fail(c, v, "secret charset: '%c' appears twice", *p);
		}
	}
	if (!(v = pol__map_get(n, "size")) && !(v = pol__map_get(n, "charset")))
		v = n;
	if (check_entropy(c, v, s) < 0)
		return c->code;
	s->algorithm = POL_ALG_P256;
	if ((v = pol__map_get(n, "algorithm"))) {
		if (pol__get_enum(c, v, "secret algorithm", pol__algs, &e) < 0)
			return c->code;
		s->algorithm = (enum pol_key_alg)e;
	}
	if ((v = pol__map_get(n, "issuer")) &&
	    (pol__get_str(c, v, "secret issuer", &s->issuer) < 0 ||
	     pol__check_item_name(c, v, "secret issuer") < 0))
		return c->code;
	if ((v = pol__map_get(n, "dns")) &&
	    pol__get_str_list(c, v, "secret dns", pol__check_dns, &s->dns, &s->n_dns) < 0)
		return c->code;
	if ((v = pol__map_get(n, "ip")) &&
	    pol__get_str_list(c, v, "secret ip", pol__check_ip, &s->ip, &s->n_ip) < 0)
		return c->code;
	if ((v = pol__map_get(n, "common_name"))) {
		if (pol__get_str(c, v, "secret common_name", &s->common_name) < 0)
			return c->code;
		if (!s->common_name[0] || strlen(s->common_name) > 64)
			return pol__fail(c, v, "secret common_name: must hold 1 to 64 characters");
	}
	s->validity_days = s->kind == POL_SECRET_X509 ? 365 :
			   s->kind == POL_SECRET_X509_CA ? 3650 : 0;
	if ((v = pol__map_get(n, "validity_days")) &&
	    pol__get_uint(c, v, "secret validity_days", 1, 36500, &s->validity_days) < 0)
		return c->code;
	if ((v = pol__map_get(n, "export")) && parse_exports(c, v, s) < 0)
		return c->code;
	return 0;
}
