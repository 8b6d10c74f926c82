/* Parsed policies of a store, cached by hash: GET, every row of a list, and every
 * attestation need the parsed form of a stored policy, and parsing its YAML
 * (libyaml, validation, the canonical hash) costs far more than the lookup.
 *
 * An entry is immutable: a policy's hash names its whole canonical content, so a
 * new version of a policy is a new entry, and the old one ages out. Only a parse
 * whose computed hash equals the row's stored hash is cached (a row whose hash
 * does not match its YAML is parsed every time, as before). Entries are
 * reference-counted so a request may hold several (an attestation holds its
 * policy and those it imports from); only unreferenced ones are evicted. The
 * store's users are serialized (store_lock in the service), and so is its cache. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CS_POLCACHE_SIZE 256

struct cas__polcache_ent {
	struct pol_policy *p; /* owned; NULL: free slot */
	unsigned refs;
	bool used;            /* looked up since the clock hand last passed */
};

struct cas__polcache {
	struct cas__polcache_ent ent[CS_POLCACHE_SIZE];
	size_t hand;
};

static struct cas__polcache_ent *find(struct cas__polcache *pc, const char *hash)
{
	for (size_t i = 0; i < CS_POLCACHE_SIZE; i++)
		if (pc->ent[i].p && !strcmp(pc->ent[i].p->hash, hash))
			return &pc->ent[i];
	return NULL;
}

/* A free slot, or one evicted by the clock (second chance); NULL when every
 * entry is referenced. */
static struct cas__polcache_ent *slot(struct cas__polcache *pc)
{
	for (size_t n = 0; n < 2 * CS_POLCACHE_SIZE; n++) {
		struct cas__polcache_ent *e = &pc->ent[pc->hand];

		pc->hand = (pc->hand + 1) % CS_POLCACHE_SIZE;
		if (!e->p)
			return e;
		if (e->refs)
			continue;
		if (e->used) {
			e->used = false;
			continue;
		}
		pol_free(e->p);
		e->p = NULL;
		return e;
	}
	return NULL;
}

int cas__policy_parse(struct cas__store *st, const struct cas__policy *row,
		    struct pol_policy **out, struct kiln_err *err)
{
	struct cas__polcache_ent *e;
	struct pol_policy *p = NULL;
	int ret;

	*out = NULL;
	if (!st->pc)
		st->pc = calloc(1, sizeof(*st->pc)); /* NULL: parse without caching */
	e = st->pc ? find(st->pc, row->hash) : NULL;
	if (e) {
		e->refs++;
		e->used = true;
		*out = e->p;
		return 0;
	}
	ret = pol_parse_ex(row->yaml, strlen(row->yaml), row->name, POL_PARSE_STORED, &p, err);
	if (ret < 0)
		return ret;
	e = st->pc && !strcmp(p->hash, row->hash) ? slot(st->pc) : NULL;
	if (e) {
		e->p = p;
		e->refs = 1;
		e->used = true;
	}
	*out = p;
	return 0;
}

void cas__policy_unref(struct cas__store *st, struct pol_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; st->pc && i < CS_POLCACHE_SIZE; i++) {
		if (st->pc->ent[i].p == p) {
			if (st->pc->ent[i].refs)
				st->pc->ent[i].refs--;
			return;
		}
	}
	pol_free(p); /* not cached */
}

void cas__polcache_free(struct cas__store *st)
{
	if (!st->pc)
		return;
	for (size_t i = 0; i < CS_POLCACHE_SIZE; i++)
		pol_free(st->pc->ent[i].p);
	free(st->pc);
	st->pc = NULL;
}
