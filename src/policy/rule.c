/* Access rules in a policy: `[id, ...]` (any one) or `{require: M, of: [id, ...]}`
 * (M distinct identities of the list), for access.read/update/delete; and a
 * secret's export written as `{require: M, of: [...], to: [entries]}`. */
#include "policy/internal.h"

#include <stdlib.h>
#include <string.h>

void pol__rule_free(struct pol_rule *r)
{
	for (size_t i = 0; r->of && i < r->n_of; i++)
		free(r->of[i]);
	free(r->of);
	memset(r, 0, sizeof(*r));
}

int pol__rule_default_owner(struct pol__ctx *c, struct pol_rule *r)
{
	r->of = calloc(2, sizeof(char *));
	if (!r->of || !(r->of[0] = strdup("owner")))
		return pol__oom(c);
	r->n_of = 1;
	r->require = 1;
	return 0;
}

/* The {require, of} part of a mapping n (which may hold other keys, checked by
 * the caller). */
int pol__get_quorum(struct pol__ctx *c, const struct ynode *n, const char *what,
		    struct pol_rule *r)
{
	const struct ynode *req = pol__map_get(n, "require"), *of = pol__map_get(n, "of");
	uint32_t m;

	r->mark.line = n->line;
	r->mark.col = n->col;
	r->quorum = true;
	if (!of)
		return pol__fail(c, n, "%s: missing required key 'of' (the identities that "
				 "approve)", what);
	if (!req)
		return pol__fail(c, n, "%s: missing required key 'require' (how many of 'of' "
				 "must approve)", what);
	if (pol__get_str_list(c, of, what, pol__check_identity, &r->of, &r->n_of) < 0)
		return c->code;
	if (r->n_of == 0)
		return pol__fail(c, of, "%s: 'of' is empty (nobody could ever approve)", what);
	if (pol__get_uint(c, req, what, 1, UINT32_MAX, &m) < 0)
		return c->code;
	if (m > r->n_of)
		return pol__fail(c, req, "%s: require %u is more than the %zu identities in "
				 "'of' (it could never be met)", what, m, r->n_of);
	r->require = m;
	return 0;
}

int pol__get_rule(struct pol__ctx *c, const struct ynode *n, const char *what,
		  struct pol_rule *r)
{
	static const char *const keys[] = { "require", "of", NULL };

	r->mark.line = n->line;
	r->mark.col = n->col;
	if (n->type == YN_SEQ) {
		r->require = 1;
		return pol__get_str_list(c, n, what, pol__check_identity, &r->of, &r->n_of);
	}
	if (n->type != YN_MAP)
		return pol__fail(c, n, "%s: expected a list of identities or {require: M, of: "
				 "[identity, ...]}, found %s", what, pol__type_name(n));
	if (pol__check_map(c, n, what, keys) < 0)
		return c->code;
	return pol__get_quorum(c, n, what, r);
}
