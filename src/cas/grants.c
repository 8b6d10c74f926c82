/* Grants: what an attested workload key may do afterwards (update the freshness
 * tags of the volumes its service mounts).
 *
 * A grant is recorded only for a service that mounts volumes (nothing else asks
 * for one), for CAS_GRANT_TTL_S or until the CAS restarts. The table was one
 * global pool, so attestations against an attacker's own sim policy could fill
 * it and lock every other policy out. Now each policy holds at most
 * max_per_policy grants: beyond that its own oldest grant goes, so a flood
 * against one policy costs only that policy. The global bound (max_total) stays
 * as a memory bound; docs/cas.md says what it takes to reach it.
 *
 * t->lock guards everything. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cas__grant {
	uint8_t spki[KC_SHA256_SIZE];
	char volumes[CAS_GRANT_MAX_VOLUMES][33];
	size_t n_volumes;
	uint64_t expires_ns;
	struct cas__grant_policy *gp;
	struct cas__grant *next;          /* bucket chain, by key */
	struct cas__grant *older, *newer; /* the policy's grants, by creation */
};

/* The live grants of one policy, oldest first; freed when it has none. */
struct cas__grant_policy {
	char session[160];
	size_t n;
	struct cas__grant *oldest, *newest;
	struct cas__grant_policy *next;
};

static size_t bucket_of_key(const uint8_t *b)
{
	return ((size_t)b[0] << 8 | b[1]) % CAS_GRANT_BUCKETS;
}

static size_t bucket_of_session(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % CAS_GRANT_BUCKETS;
}

void cas__grants_init(struct cas__grant_table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->max_total = CAS_GRANT_MAX;
	t->max_per_policy = CAS_GRANTS_PER_POLICY;
	t->ttl_ns = (uint64_t)CAS_GRANT_TTL_S * 1000000000ull;
}

static struct cas__grant_policy **policy_slot(struct cas__grant_table *t, const char *session)
{
	struct cas__grant_policy **pp = &t->policies[bucket_of_session(session)];

	while (*pp && strcmp((*pp)->session, session))
		pp = &(*pp)->next;
	return pp;
}

/* Unlink g from its policy's list (t->lock held); the policy goes with its last. */
static void policy_unlink(struct cas__grant_table *t, struct cas__grant *g)
{
	struct cas__grant_policy *gp = g->gp, **pp;

	if (g->older)
		g->older->newer = g->newer;
	else
		gp->oldest = g->newer;
	if (g->newer)
		g->newer->older = g->older;
	else
		gp->newest = g->older;
	if (--gp->n)
		return;
	pp = policy_slot(t, gp->session);
	if (*pp == gp) {
		*pp = gp->next;
		free(gp);
	}
}

/* Remove g from the table and free it (t->lock held). */
static void grant_drop(struct cas__grant_table *t, struct cas__grant *g)
{
	for (struct cas__grant **pp = &t->buckets[bucket_of_key(g->spki)]; *pp;
	     pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	policy_unlink(t, g);
	free(g);
	t->n--;
}

static struct cas__grant *grant_find(struct cas__grant_table *t, const uint8_t *spki)
{
	for (struct cas__grant *g = t->buckets[bucket_of_key(spki)]; g; g = g->next)
		if (!memcmp(g->spki, spki, KC_SHA256_SIZE))
			return g;
	return NULL;
}

static void sweep_locked(struct cas__grant_table *t, uint64_t now_ns)
{
	for (size_t b = 0; b < CAS_GRANT_BUCKETS; b++) {
		struct cas__grant *g = t->buckets[b], *next;

		for (; g; g = next) {
			next = g->next;
			if (g->expires_ns <= now_ns)
				grant_drop(t, g);
		}
	}
}

bool cas__grants_full(struct cas__grant_table *t, const uint8_t spki[KC_SHA256_SIZE],
		      uint64_t now_ns)
{
	bool full;

	pthread_mutex_lock(&t->lock);
	if (t->n >= t->max_total)
		sweep_locked(t, now_ns);
	full = t->n >= t->max_total && !grant_find(t, spki);
	pthread_mutex_unlock(&t->lock);
	return full;
}

int cas__grant_put(struct cas__grant_table *t, const uint8_t spki[KC_SHA256_SIZE],
		   const char *session, char (*volumes)[33], size_t n_volumes, uint64_t now_ns,
		   bool *evicted)
{
	struct cas__grant *g = calloc(1, sizeof(*g)), *old;
	struct cas__grant_policy **pp, *gp;

	*evicted = false;
	if (!g)
		return -ENOMEM;
	if (n_volumes > CAS_GRANT_MAX_VOLUMES)
		n_volumes = CAS_GRANT_MAX_VOLUMES;
	memcpy(g->spki, spki, KC_SHA256_SIZE);
	memcpy(g->volumes, volumes, n_volumes * sizeof(*volumes));
	g->n_volumes = n_volumes;
	g->expires_ns = now_ns + t->ttl_ns;
	pthread_mutex_lock(&t->lock);
	old = grant_find(t, spki); /* a key attests again: its new grant replaces it */
	if (old)
		grant_drop(t, old);
	gp = *policy_slot(t, session);
	if (gp && gp->n >= t->max_per_policy) {
		grant_drop(t, gp->oldest); /* may free gp with its last grant */
		*evicted = true;
	}
	pp = policy_slot(t, session);
	gp = *pp;
	if (!gp) {
		gp = calloc(1, sizeof(*gp));
		if (!gp) {
			pthread_mutex_unlock(&t->lock);
			free(g);
			return -ENOMEM;
		}
		snprintf(gp->session, sizeof(gp->session), "%s", session);
		*pp = gp;
	}
	g->gp = gp;
	g->older = gp->newest;
	if (gp->newest)
		gp->newest->newer = g;
	else
		gp->oldest = g;
	gp->newest = g;
	gp->n++;
	g->next = t->buckets[bucket_of_key(spki)];
	t->buckets[bucket_of_key(spki)] = g;
	t->n++;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

bool cas__grant_allows(struct cas__grant_table *t, const uint8_t spki[KC_SHA256_SIZE],
		       const char *volume_id, uint64_t now_ns)
{
	struct cas__grant *g;
	bool ok = false;

	pthread_mutex_lock(&t->lock);
	g = grant_find(t, spki);
	for (size_t i = 0; g && g->expires_ns > now_ns && i < g->n_volumes; i++)
		if (!strcmp(g->volumes[i], volume_id))
			ok = true;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

size_t cas__grants_sweep(struct cas__grant_table *t, uint64_t now_ns)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	sweep_locked(t, now_ns);
	n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t cas__grants_of(struct cas__grant_table *t, const char *session)
{
	struct cas__grant_policy *gp;
	size_t n;

	pthread_mutex_lock(&t->lock);
	gp = *policy_slot(t, session);
	n = gp ? gp->n : 0;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void cas__grants_free(struct cas__grant_table *t)
{
	for (size_t b = 0; b < CAS_GRANT_BUCKETS; b++)
		while (t->buckets[b])
			grant_drop(t, t->buckets[b]);
	pthread_mutex_destroy(&t->lock);
}
