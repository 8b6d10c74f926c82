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

static int fill(struct cas__stmt *s, struct cas__proposal *out)
{
	out->name = cas__db_col_strdup(s, 0);
	out->hash = cas__db_col_strdup(s, 1);
	out->predecessor = cas__db_col_strdup(s, 2);
	out->yaml = cas__db_col_strdup(s, 3);
	out->proposer = cas__db_col_strdup(s, 4);
	out->created = cas__db_col_int64(s, 5);
	out->expires = cas__db_col_int64(s, 6);
	out->approvals = cas__db_col_strdup(s, 7);
	out->id = cas__db_col_strdup(s, 8);
	out->action = cas__db_col_strdup(s, 9);
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
	struct cas__stmt *s = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (cas__db_query(st->db, &s, "SELECT " COLUMNS " FROM proposals WHERE name = ? AND "
			  "hash = ?", "tt", name, hash) < 0)
		return -EIO;
	ret = cas__db_step(s);
	ret = ret == 1 ? fill(s, out) : ret == 0 ? -ENOENT : -EIO;
	cas__db_finalize(s);
	return ret;
}

int cas__proposal_put(struct cas__store *st, const struct cas__proposal *p)
{
	return cas__db_run(st->db, "INSERT INTO proposals(" COLUMNS ") VALUES(?,?,?,?,?,?,?,?,?,"
			   "?) ON CONFLICT(name, hash) DO UPDATE SET predecessor = "
			   "excluded.predecessor, yaml = excluded.yaml, proposer = "
			   "excluded.proposer, created = excluded.created, expires = "
			   "excluded.expires, approvals = excluded.approvals, id = excluded.id, "
			   "action = excluded.action", "tttttiittt", p->name, p->hash,
			   p->predecessor, p->yaml, p->proposer, p->created, p->expires,
			   p->approvals, p->id, p->action) < 0 ? -EIO : 0;
}

int cas__proposal_delete(struct cas__store *st, const char *name, const char *hash)
{
	int rc = hash ? cas__db_run(st->db, "DELETE FROM proposals WHERE name = ? AND hash = ?",
				    "tt", name, hash) :
		 cas__db_run(st->db, "DELETE FROM proposals WHERE name = ?", "t", name);

	return rc < 0 ? -EIO : 0;
}

int cas__proposal_each(struct cas__store *st, int (*cb)(void *, const struct cas__proposal *),
		       void *ctx)
{
	struct cas__stmt *s = NULL;
	int ret = 0, rc;

	if (cas__db_query(st->db, &s, "SELECT " COLUMNS " FROM proposals ORDER BY name, "
			  "created, hash", "") < 0)
		return -EIO;
	while ((rc = cas__db_step(s)) == 1) {
		struct cas__proposal p;

		ret = fill(s, &p);
		if (ret < 0)
			break;
		ret = cb(ctx, &p);
		cas__proposal_free(&p);
		if (ret)
			break;
	}
	if (rc < 0)
		ret = -EIO;
	cas__db_finalize(s);
	return ret;
}

int cas__approval_spend(struct cas__store *st, const struct cas_approval *ap, int64_t now)
{
	int rc;

	/* Lapsed approvals are refused by their not_after: forget them. */
	if (cas__db_run(st->db, "DELETE FROM spent_approvals WHERE not_after < ?", "i", now) < 0)
		return -EIO;
	rc = cas__db_run(st->db, "INSERT INTO spent_approvals(digest, not_after) VALUES(?, ?)",
			 "ti", ap->digest, (int64_t)ap->not_after);
	if (rc == -EEXIST)
		return -EEXIST;
	return rc < 0 ? -EIO : 0;
}
