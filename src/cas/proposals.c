/* Pending proposals in the store: a new version of a quorum-governed policy
 * waiting for approvals, or the deletion of the current version (docs/policy.md
 * "Proposals"). One row per (policy, hash); approvals is a JSON array of the
 * identities that approved, in order; id is the instance's random id, which
 * online approvals sign. And the detached approvals already spent. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cas__proposal_free(struct cas__proposal *p)
{
	free(p->name);
	free(p->hash);
	free(p->predecessor);
	free(p->yaml);
	free(p->proposer);
	free(p->approvals);
	free(p->id);
	free(p->action);
	memset(p, 0, sizeof(*p));
}

static char *col(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return strdup(t ? (const char *)t : "");
}

static int fill(sqlite3_stmt *s, struct cas__proposal *out)
{
	out->name = col(s, 0);
	out->hash = col(s, 1);
	out->predecessor = col(s, 2);
	out->yaml = col(s, 3);
	out->proposer = col(s, 4);
	out->created = sqlite3_column_int64(s, 5);
	out->expires = sqlite3_column_int64(s, 6);
	out->approvals = col(s, 7);
	out->id = col(s, 8);
	out->action = col(s, 9);
	if (!out->name || !out->hash || !out->predecessor || !out->yaml || !out->proposer ||
	    !out->approvals || !out->id || !out->action) {
		cas__proposal_free(out);
		return -ENOMEM;
	}
	return 0;
}

#define COLUMNS "name, hash, predecessor, yaml, proposer, created, expires, approvals, id, " \
	"action"

int cas__proposal_get(struct cas__store *st, const char *name, const char *hash,
		      struct cas__proposal *out)
{
	sqlite3_stmt *s = NULL;
	int ret = -EIO, rc;

	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(st->db, "SELECT " COLUMNS " FROM proposals WHERE name = ? AND "
			       "hash = ?", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		ret = fill(s, out);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	sqlite3_finalize(s);
	return ret;
}

int cas__proposal_put(struct cas__store *st, const struct cas__proposal *p)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO proposals(" COLUMNS ") "
			       "VALUES(?,?,?,?,?,?,?,?,?,?)", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, p->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, p->predecessor, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, p->yaml, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, p->proposer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, p->created);
	sqlite3_bind_int64(s, 7, p->expires);
	sqlite3_bind_text(s, 8, p->approvals, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 9, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 10, p->action, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int cas__proposal_delete(struct cas__store *st, const char *name, const char *hash)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, hash ? "DELETE FROM proposals WHERE name = ? AND hash = ?" :
			       "DELETE FROM proposals WHERE name = ?", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (hash)
		sqlite3_bind_text(s, 2, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int cas__proposal_each(struct cas__store *st, int (*cb)(void *, const struct cas__proposal *),
		       void *ctx)
{
	sqlite3_stmt *s = NULL;
	int ret = 0, rc;

	if (sqlite3_prepare_v2(st->db, "SELECT " COLUMNS " FROM proposals ORDER BY name, "
			       "created, hash", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct cas__proposal p;

		ret = fill(s, &p);
		if (ret < 0)
			break;
		ret = cb(ctx, &p);
		cas__proposal_free(&p);
		if (ret)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_finalize(s);
	return ret;
}

int cas__approval_spend(struct cas__store *st, const struct cas_approval *ap, int64_t now)
{
	sqlite3_stmt *s = NULL;
	int rc;

	/* Lapsed approvals are refused by their not_after: forget them. */
	if (sqlite3_prepare_v2(st->db, "DELETE FROM spent_approvals WHERE not_after < ?", -1, &s,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(s, 1, now);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE ||
	    sqlite3_prepare_v2(st->db, "INSERT INTO spent_approvals(digest, not_after) "
			       "VALUES(?, ?)", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, ap->digest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, ap->not_after);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT)
		return -EEXIST;
	return rc == SQLITE_DONE ? 0 : -EIO;
}
