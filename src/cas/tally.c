/* Counts by client key ("id:…", "ip:…"): how many nonces or connections one
 * client holds, so one client's flood cannot take what the others need. Not
 * locked: each table is used under its owner's lock. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cas__tally_ent {
	char key[CAS_CLIENT_KEY_SIZE];
	uint32_t n;
	struct cas__tally_ent *next;
};

static struct cas__tally_ent **slot(struct cas__tally *t, const char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a: keys are not secret, only spread */
	struct cas__tally_ent **pp;

	for (const char *s = key; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	for (pp = &t->buckets[h % CAS_TALLY_BUCKETS]; *pp && strcmp((*pp)->key, key);)
		pp = &(*pp)->next;
	return pp;
}

struct cas__tally_ent *cas__tally_take(struct cas__tally *t, const char *key, uint32_t limit,
				       int *err)
{
	struct cas__tally_ent **pp = slot(t, key), *e = *pp;

	if (e && e->n >= limit) {
		*err = -EUSERS;
		return NULL;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			*err = -ENOMEM;
			return NULL;
		}
		snprintf(e->key, sizeof(e->key), "%s", key);
		*pp = e;
	}
	e->n++;
	return e;
}

void cas__tally_put(struct cas__tally *t, struct cas__tally_ent *e)
{
	struct cas__tally_ent **pp;

	if (!e || --e->n)
		return;
	pp = slot(t, e->key);
	if (*pp == e) {
		*pp = e->next;
		free(e);
	}
}

uint32_t cas__tally_of(struct cas__tally *t, const char *key)
{
	struct cas__tally_ent *e = *slot(t, key);

	return e ? e->n : 0;
}

void cas__tally_free(struct cas__tally *t)
{
	for (size_t b = 0; b < CAS_TALLY_BUCKETS; b++) {
		while (t->buckets[b]) {
			struct cas__tally_ent *e = t->buckets[b];

			t->buckets[b] = e->next;
			free(e);
		}
	}
}
