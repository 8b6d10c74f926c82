/* Grants: what an attested workload key may do afterwards (update the freshness
 * tags of the volumes its service mounts), as rows of the store's table grants
 * (schema version 3, schema.c).
 *
 * A grant was kept in the memory of the CAS process the workload attested at,
 * so behind a load balancer its volume requests had to reach that process, and
 * a restart lost every grant. In the store, every CAS process of a shared
 * PostgreSQL database sees it, and it outlives a restart until it expires.
 *
 * One row per workload key (the SHA-256 of its SPKI): the session (policy) it
 * attested for, the ids of the volumes its service mounts, when it was made
 * (the eviction order) and when it expires (wall clock, nanoseconds: several
 * machines read it). Every function runs in the caller's write transaction
 * (or a snapshot), so a grant is written and checked atomically with the
 * release or tag update it goes with, across processes: a policy delete
 * (cas__policy_delete drops its grants) either happened before the check or
 * waits for it.
 *
 * Bounds: each policy holds at most max_per_policy grants; beyond, its own
 * oldest goes, so attestations in a loop against an attacker's own policy cost
 * only that policy. All policies together hold at most max_total live grants
 * (a storage bound; docs/cas.md says what it takes to reach it): beyond,
 * cas__grant_put refuses a new key. Expired rows are deleted by every put, and
 * a grant past its expiry is refused at use whether or not its row is gone. */
#include "cas/internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

void cas__grant_limits_init(struct cas__grant_limits *g)
{
	g->max_total = CAS_GRANT_MAX;
	g->max_per_policy = CAS_GRANTS_PER_POLICY;
	g->ttl_ns = (int64_t)CAS_GRANT_TTL_S * 1000000000;
}

int64_t cas__grant_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int io(int ret)
{
	return ret == -EAGAIN ? ret : -EIO;
}

/* The integers of a query that answers one row: n[0..n_cols). */
static int ints(struct cas__store *st, int64_t *n, int n_cols, const char *sql,
		const char *types, const char *t, int64_t i)
{
	struct cas__stmt *s = NULL;
	int ret;

	ret = types[0] == 't' ? cas__db_query(st->db, &s, sql, types, t, i) :
		cas__db_query(st->db, &s, sql, types, i);
	if (ret == 0)
		ret = cas__db_step(s);
	for (int c = 0; ret == 1 && c < n_cols; c++)
		n[c] = cas__db_col_int64(s, c);
	cas__db_finalize(s);
	return ret == 1 ? 0 : ret == 0 ? -EIO : io(ret);
}

int cas__grant_put(struct cas__store *st, const struct cas__grant_limits *g,
		   const uint8_t spki[KC_SHA256_SIZE], const char *session,
		   char (*volumes)[33], size_t n_volumes, int64_t now_ns, bool *evicted)
{
	char list[CAS_GRANT_MAX_VOLUMES * 33 + 1] = "";
	int64_t n[2] = { 0, 0 }; /* the policy's grants, all grants (up to max_total) */
	int ret;

	*evicted = false;
	if (n_volumes > CAS_GRANT_MAX_VOLUMES)
		n_volumes = CAS_GRANT_MAX_VOLUMES;
	for (size_t i = 0; i < n_volumes; i++) {
		if (i)
			strcat(list, ",");
		strncat(list, volumes[i], 32);
	}
	/* Three statements in the common case (each a round trip to PostgreSQL):
	 * expired grants and the key's own go (a key that attests again, maybe
	 * for another service, gets the new grant in place of the old, so it
	 * never counts twice); both counts at once; the row. Counting all
	 * grants stops at the bound: a full table costs one index scan of
	 * max_total entries, never more. */
	ret = cas__db_run(st->db, "DELETE FROM grants WHERE expires_ns <= ? OR spki = ?", "ib",
			  now_ns, spki, (size_t)KC_SHA256_SIZE);
	if (ret == 0)
		ret = ints(st, n, 2, "SELECT (SELECT count(*) FROM grants WHERE session = ?), "
			   "(SELECT count(*) FROM (SELECT 1 FROM grants LIMIT ?) AS g)", "ti",
			   session, (int64_t)g->max_total);
	if (ret < 0)
		return io(ret);
	/* The policy's own oldest go (more than one when --grants-per-policy was
	 * lowered, or another process of the store has a lower one). */
	if ((size_t)n[0] >= g->max_per_policy) {
		ret = cas__db_run(st->db, "DELETE FROM grants WHERE spki IN (SELECT spki FROM "
				  "grants WHERE session = ? ORDER BY created_ns, spki LIMIT ?)",
				  "ti", session, n[0] - (int64_t)g->max_per_policy + 1);
		if (ret < 0)
			return io(ret);
		n[1] -= cas__db_changes(st->db);
		*evicted = true;
	}
	if ((size_t)n[1] >= g->max_total)
		return -ENOSPC;
	ret = cas__db_run(st->db, "INSERT INTO grants(spki, session, volumes, created_ns, "
			  "expires_ns) VALUES(?, ?, ?, ?, ?)", "bttii", spki,
			  (size_t)KC_SHA256_SIZE, session, list, now_ns, now_ns + g->ttl_ns);
	return ret < 0 ? io(ret) : 0;
}

/* True when the comma-separated list holds id. */
static bool listed(const char *list, const char *id)
{
	size_t len = strlen(id);

	for (const char *p = list; *p; ) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == len && !memcmp(p, id, n))
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

int cas__grant_allows(struct cas__store *st, const uint8_t spki[KC_SHA256_SIZE],
		      const char *volume_id, int64_t now_ns, char session[160])
{
	struct cas__stmt *s = NULL;
	int ret;

	session[0] = 0;
	if (!volume_id[0])
		return 0;
	ret = cas__db_query(st->db, &s, "SELECT session, volumes FROM grants WHERE spki = ? "
			    "AND expires_ns > ?", "bi", spki, (size_t)KC_SHA256_SIZE, now_ns);
	if (ret == 0)
		ret = cas__db_step(s);
	if (ret == 1) {
		ret = listed(cas__db_col_text(s, 1), volume_id) ? 1 : 0;
		if (ret)
			snprintf(session, 160, "%s", cas__db_col_text(s, 0));
	}
	cas__db_finalize(s);
	return ret < 0 ? io(ret) : ret;
}

int cas__grants_of(struct cas__store *st, const char *session, int64_t now_ns, int64_t *n)
{
	return ints(st, n, 1, "SELECT count(*) FROM grants WHERE session = ? AND expires_ns > ?",
		    "ti", session, now_ns);
}
