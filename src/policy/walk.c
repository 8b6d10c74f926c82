/* Walking the YAML tree of a policy: typed getters, strict mappings, error
 * messages with line:column and "did you mean" suggestions. Shared by the
 * section parsers (parse.c, secret.c, service.c, template.c). */
#include "policy/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pol__fail(struct pol__ctx *c, const struct ynode *n, const char *fmt, ...)
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

int pol__oom(struct pol__ctx *c)
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
const char *pol__suggest(const char *word, const char *const *cands)
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

bool pol__is_null(const struct ynode *n)
{
	return n->type == YN_SCALAR && n->plain &&
	       (!n->str[0] || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
		!strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

int pol__bool_value(const struct ynode *n)
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

const char *pol__type_name(const struct ynode *n)
{
	if (n->type == YN_SEQ)
		return "a list";
	if (n->type == YN_MAP)
		return "a mapping";
	if (pol__is_null(n))
		return "null";
	if (pol__bool_value(n) >= 0)
		return "a boolean";
	return "a scalar";
}

const struct ynode *pol__map_get(const struct ynode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (!strcmp(map->items[i]->str, key))
			return map->items[i + 1];
	return NULL;
}

/* map must be a mapping whose keys are unique and all in `known`. */
int pol__check_map(struct pol__ctx *c, const struct ynode *map, const char *what,
		   const char *const *known)
{
	if (map->type != YN_MAP)
		return pol__fail(c, map, "%s: expected a mapping, found %s", what,
				 pol__type_name(map));
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *k = map->items[i];
		bool ok = false;

		if (k->type != YN_SCALAR)
			return pol__fail(c, k, "%s: keys must be plain strings", what);
		for (size_t j = 0; j < i; j += 2)
			if (!strcmp(map->items[j]->str, k->str))
				return pol__fail(c, k, "duplicate key '%s' in %s", k->str, what);
		if (!known)
			continue;
		for (size_t j = 0; known[j]; j++)
			if (!strcmp(known[j], k->str))
				ok = true;
		if (!ok) {
			const char *s = pol__suggest(k->str, known);

			if (s)
				return pol__fail(c, k,
						 "unknown key '%s' in %s (did you mean '%s'?)",
						 k->str, what, s);
			return pol__fail(c, k, "unknown key '%s' in %s", k->str, what);
		}
	}
	return 0;
}

int pol__get_str(struct pol__ctx *c, const struct ynode *n, const char *what, char **out)
{
	if (n->type != YN_SCALAR || pol__is_null(n) || pol__bool_value(n) >= 0)
		return pol__fail(c, n, "%s: expected a string, found %s", what, pol__type_name(n));
	*out = strdup(n->str);
	if (!*out)
		return pol__oom(c);
	return 0;
}

int pol__get_uint(struct pol__ctx *c, const struct ynode *n, const char *what, uint64_t min,
		  uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (n->type != YN_SCALAR || !n->plain || kiln_parse_u64(n->str, &v) < 0) {
		if (n->type == YN_SCALAR)
			return pol__fail(c, n, "%s: expected an integer, found '%s'", what, n->str);
		return pol__fail(c, n, "%s: expected an integer, found %s", what,
				 pol__type_name(n));
	}
	if (v < min || v > max)
		return pol__fail(c, n, "%s: %s is out of range %llu..%llu", what, n->str,
				 (unsigned long long)min, (unsigned long long)max);
	*out = (uint32_t)v;
	return 0;
}

int pol__get_bool(struct pol__ctx *c, const struct ynode *n, const char *what, bool *out)
{
	int b = pol__bool_value(n);

	if (b < 0)
		return pol__fail(c, n, "%s: expected true or false, found %s", what,
				 n->type == YN_SCALAR ? n->str : pol__type_name(n));
	*out = b;
	return 0;
}

/* A list of strings; each checked by `check` when given. Duplicates refused. */
int pol__get_str_list(struct pol__ctx *c, const struct ynode *n, const char *what,
		      int (*check)(struct pol__ctx *, const struct ynode *, const char *),
		      char ***out, size_t *count)
{
	char **v;

	if (n->type != YN_SEQ)
		return pol__fail(c, n, "%s: expected a list, found %s", what, pol__type_name(n));
	v = calloc(n->n + 1, sizeof(*v));
	if (!v)
		return pol__oom(c);
	*out = v;
	*count = 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];

		if (pol__get_str(c, it, what, &v[i]) < 0)
			return c->code;
		*count = i + 1;
		if (check && check(c, it, what) < 0)
			return c->code;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(v[j], v[i]))
				return pol__fail(c, it, "%s: duplicate entry '%s'", what, v[i]);
	}
	return 0;
}

/* Enumerations. */
const char *const pol__kinds[] = { "ascii", "binary", "key", "x509", "x509-ca", NULL };
const char *const pol__algs[] = { "p256", "p384", "ed25519", "rsa3072", NULL };
const char *const pol__tees[] = { "sim", "host", "sgx", "tdx", "snp", NULL };
const char *const pol__tols[] = { "debug", "outdated-tcb", "sw-hardening-needed",
				      "configuration-needed", NULL };

int pol__get_enum(struct pol__ctx *c, const struct ynode *n, const char *what,
		  const char *const *names, int *out)
{
	const char *s;

	if (n->type != YN_SCALAR || pol__is_null(n) || pol__bool_value(n) >= 0)
		return pol__fail(c, n, "%s: expected a string, found %s", what, pol__type_name(n));
	for (int i = 0; names[i]; i++) {
		if (!strcmp(names[i], n->str)) {
			*out = i;
			return 0;
		}
	}
	s = pol__suggest(n->str, names);
	if (s)
		return pol__fail(c, n, "%s: unknown value '%s' (did you mean '%s'?)", what, n->str,
				 s);
	{
		char list[160] = "";

		for (int i = 0; names[i]; i++) {
			strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
			strncat(list, names[i], sizeof(list) - strlen(list) - 1);
		}
		return pol__fail(c, n, "%s: unknown value '%s' (expected one of: %s)", what, n->str,
				 list);
	}
}

/* A list of enum values folded into a bit set. */
int pol__get_enum_set(struct pol__ctx *c, const struct ynode *n, const char *what,
		      const char *const *names, unsigned *out)
{
	*out = 0;
	if (n->type != YN_SEQ)
		return pol__fail(c, n, "%s: expected a list, found %s", what, pol__type_name(n));
	for (size_t i = 0; i < n->n; i++) {
		int v;

		if (pol__get_enum(c, n->items[i], what, names, &v) < 0)
			return c->code;
		if (*out & (1u << v))
			return pol__fail(c, n->items[i], "%s: duplicate entry '%s'", what,
					 n->items[i]->str);
		*out |= 1u << v;
	}
	return 0;
}

const char *pol_kind_name(enum pol_secret_kind kind)
{
	return kind == POL_SECRET_NONE ? "imported" : pol__kinds[kind - 1];
}

const char *pol_alg_name(enum pol_key_alg alg)
{
	return pol__algs[alg];
}

const char *pol__tee_name(unsigned bit_index)
{
	return pol__tees[bit_index];
}

const char *pol__tolerate_name(unsigned bit_index)
{
	return pol__tols[bit_index];
}
