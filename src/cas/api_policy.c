/* kiln-cas policy API: POST/GET /v1/policies, GET/DELETE /v1/policies/{name}
 * (docs/api.md), with the namespace and access rules. */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- policies ---- */

/* A new policy named "NS/..." where NS is a reserved namespace needs one of its
 * owners: 0, -EACCES, or another negative code for a store error. */
static int namespace_allows(struct cas__req *rc, const char *name)
{
	size_t n = strcspn(name, "/");
	char ns[130], needle[CAS_ID_SIZE + 2], *owners = NULL;
	int ret;

	if (!name[n] || n >= sizeof(ns))
		return 0;
	memcpy(ns, name, n);
	ns[n] = '\0';
	ret = cas__namespace_get(&rc->s->st, ns, &owners);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	snprintf(needle, sizeof(needle), " %s ", rc->peer_id);
	ret = strstr(owners, needle) ? 0 : -EACCES;
	free(owners);
	return ret;
}

int cas__policy_write_version(struct cas__req *rc, const struct pol_policy *p, const char *yaml,
			      const struct cas__policy *old, json_t *approvals)
{
	struct cas__server *s = rc->s;
	struct cas__policy row = { 0 };
	bool created = !old;
	char *canon = pol_canonical_text(p);
	int ret = -EIO;

	row.name = p->name;
	row.hash = (char *)p->hash;
	row.yaml = (char *)yaml;
	row.canonical = canon;
	row.owner = created ? rc->peer_id : old->owner;
	row.version = created ? 1 : old->version + 1;
	/* Other proposals of the old version stay, refused as stale (and listed so)
	 * until withdrawn or the policy is deleted. */
	if (!canon || cas__policy_put(&s->st, &row) < 0 ||
	    cas__proposal_delete(&s->st, p->name, p->hash) < 0 ||
	    cas__audit_append(&s->st, created ? "policy.create" : "policy.update", rc->peer_id,
			      p->name,
			      json_pack("{s:s,s:s?,s:I,s:O?}", "hash", p->hash, "predecessor",
					p->predecessor, "version", (json_int_t)row.version,
					"approvals", approvals)) < 0)
		goto out;
	kiln_log(KILN_LOG_INFO, created ? "policy created" : "policy updated",
		 "session=%s hash=%s version=%lld actor=%s request_id=%s", p->name, p->hash,
		 (long long)row.version, rc->peer_id, rc->request_id);
	if (cas__tx_release(rc) < 0)
		goto out;
	cas__reply_json(rc, created ? 201 : 200,
			json_pack("{s:s,s:s,s:I,s:s,s:b}", "name", p->name, "hash", p->hash,
				  "version", (json_int_t)row.version, "owner", row.owner,
				  "applied", 1));
	ret = 0;
out:
	free(canon);
	return ret;
}

/* 409 naming both hashes when p does not replace the current version. */
static bool predecessor_ok(struct cas__req *rc, const struct pol_policy *p,
			   const struct cas__policy *old)
{
	char msg[300];

	if (old && p->predecessor && !strcmp(p->predecessor, old->hash))
		return true;
	if (!old && !p->predecessor)
		return true;
	if (old) {
		snprintf(msg, sizeof(msg), "predecessor %s does not match the current hash %s "
			 "of '%s' (someone else updated it: get it again)",
			 p->predecessor ? p->predecessor : "null", old->hash, p->name);
		cas__fail_json(rc, -KILN_ECONFLICT,
			       json_pack("{s:s,s:s,s:o,s:s}", "error", msg, "current", old->hash,
					 "predecessor", p->predecessor ?
					 json_string(p->predecessor) : json_null(),
					 "request_id", rc->request_id));
	} else {
		snprintf(msg, sizeof(msg), "predecessor %s given but '%s' does not exist (use "
			 "predecessor: null to create it)", p->predecessor, p->name);
		cas__fail_json(rc, -KILN_ECONFLICT,
			       json_pack("{s:s,s:n,s:s,s:s}", "error", msg, "current",
					 "predecessor", p->predecessor, "request_id",
					 rc->request_id));
	}
	return false;
}

/* Spend the detached approvals of a submission (they count once): 0, or
 * answered 409 (the caller rolls back). */
static int spend_approvals(struct cas__req *rc, const struct cas_approval *aps, size_t n)
{
	int64_t now = (int64_t)time(NULL);
	char msg[400];

	for (size_t i = 0; i < n; i++) {
		int ret = cas__approval_spend(&rc->s->st, &aps[i], now);

		if (ret == -EEXIST) {
			snprintf(msg, sizeof(msg), "approval by %s (%s) was already used: a "
				 "detached approval counts once (sign the change again)",
				 aps[i].identity, aps[i].proposal);
			cas__fail(rc, -KILN_ECONFLICT, msg);
			return ret;
		}
		if (ret < 0) {
			cas__fail(rc, -EIO, NULL);
			return ret;
		}
	}
	return 0;
}

void cas__policy_submit(struct cas__req *rc, const char *yaml, size_t size,
			const char *const *ids, size_t n_ids, const struct cas_approval *aps,
			size_t n_aps, int64_t expires_in)
{
	struct cas__server *s = rc->s;
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL, *cur = NULL;
	struct cas__policy old = { 0 };
	char why[POL_WHY_SIZE];
	json_t *approvals = NULL;
	bool created;
	int ret;

	ret = pol_parse(yaml, size, "policy", &p, &err);
	if (ret < 0) {
		cas__fail(rc, ret, kiln_err_msg(&err, ret));
		goto out;
	}
	cas__refusal_subject(rc, "policy.apply", p->name, p->hash);
	if (pol_check_new(p, why, sizeof(why)) < 0) {
		cas__fail(rc, -KILN_EFORMAT, why);
		goto out;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		goto out;
	}
	if (spend_approvals(rc, aps, n_aps) < 0) {
		cas__tx_rollback(rc);
		goto out;
	}
	ret = cas__policy_get(&s->st, p->name, &old);
	if (ret < 0 && ret != -ENOENT) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
		goto out;
	}
	created = ret == -ENOENT;
	if (created) {
		ret = namespace_allows(rc, p->name);
		if (ret < 0) {
			char msg[300];

			cas__tx_rollback(rc);
			snprintf(msg, sizeof(msg), "policy names under '%.*s/' are reserved for "
				 "the namespace's owners (kiln cas namespace)",
				 (int)strcspn(p->name, "/"), p->name);
			cas__fail(rc, ret == -EACCES ? -KILN_EDENIED : -EIO,
				  ret == -EACCES ? msg : NULL);
			goto out;
		}
		if (!predecessor_ok(rc, p, NULL)) {
			cas__tx_rollback(rc);
			goto out;
		}
		if (cas__policy_write_version(rc, p, yaml, NULL, NULL) < 0) {
			cas__tx_rollback(rc);
			cas__fail(rc, -EIO, NULL);
		}
		goto out;
	}
	ret = cas__policy_parse(&s->st, &old, &cur, &err);
	if (ret == 0)
		ret = pol_may_apply(cur, p, old.owner, ids, n_ids, why, sizeof(why));
	if (ret < 0 && (!cur || !why[0])) {
		/* the caller takes no part in updates: no oracle */
		cas__tx_rollback(rc);
		cas__refuse_forbidden(rc);
		goto out;
	}
	if (!predecessor_ok(rc, p, &old)) {
		cas__tx_rollback(rc);
		goto out;
	}
	if (ret < 0 && !pol_quorum_governed(cur)) {
		cas__tx_rollback(rc);
		cas__fail(rc, -KILN_EDENIED, why);
		goto out;
	}
	if (ret < 0) {
		/* A quorum-governed policy: the change waits for approvals. */
		struct cas__proposal_spec sp = { "update", p->name, p->hash, p->predecessor,
						 yaml };

		cas__proposal_open(rc, &sp, ids, n_ids, expires_in, why);
		goto out;
	}
	approvals = json_array();
	for (size_t i = 0; approvals && i < n_ids; i++)
		json_array_append_new(approvals, json_string(ids[i]));
	if (cas__policy_write_version(rc, p, yaml, &old, n_ids > 1 ? approvals : NULL) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
	}
out:
	json_decref(approvals);
	cas__policy_free(&old);
	pol_free(p);
	cas__policy_unref(&s->st, cur);
}

void cas__api_policy_apply(struct cas__req *rc)
{
	const char *ids[] = { rc->peer_id };
	size_t size = 0;
	char *yaml;

	if (!cas__need_identity(rc))
		return;
	yaml = cas__read_body(rc, &size);
	if (!yaml) {
		cas__fail(rc, -ENOMEM, NULL);
		return;
	}
	cas__policy_submit(rc, yaml, size, ids, 1, NULL, 0, 0);
	free(yaml);
}

/* Load a policy the caller may read (or delete, with for_delete: -KILN_EDENIED
 * with why set when the caller takes part in the delete rule but that needs more
 * approvals; then *row and *p are kept for the caller to free). */
static int load_visible(struct cas__req *rc, const char *name, bool for_delete,
			struct cas__policy *row, struct pol_policy **p, char *why,
			size_t why_size)
{
	const char *approvals[] = { rc->peer_id };
	struct kiln_err err = { 0 };
	int ret;

	*p = NULL;
	why[0] = '\0';
	if (!pol_name_valid(name) || cas__policy_get(&rc->s->st, name, row) < 0)
		return -ENOENT;
	/* A refusal is audited with the version it concerns (the client learns
	 * nothing of it). */
	cas__refusal_subject(rc, rc->audit_kind, NULL, row->hash);
	ret = cas__policy_parse(&rc->s->st, row, p, &err);
	if (ret == 0 && for_delete)
		ret = pol_may_delete(*p, row->owner, approvals, 1, why, why_size);
	if (ret < 0 && why[0])
		return -KILN_EDENIED;
	if (ret < 0 || !(for_delete || pol_may_read(*p, row->owner, rc->peer_id))) {
		cas__policy_unref(&rc->s->st, *p);
		*p = NULL;
		cas__policy_free(row);
		return -ENOENT;
	}
	return 0;
}

void cas__api_policy_get(struct cas__req *rc)
{
	const char *name = rc->args.name;
	struct cas__policy row = { 0 };
	struct pol_policy *p = NULL;
	char why[POL_WHY_SIZE];

	if (!cas__need_identity(rc))
		return;
	cas__refusal_subject(rc, "policy.read", name, NULL);
	if (load_visible(rc, name, false, &row, &p, why, sizeof(why)) < 0) {
		cas__refuse_forbidden(rc);
		return;
	}
	cas__reply_json(rc, 200, json_pack("{s:s,s:s,s:I,s:s,s:s}", "name", row.name, "hash",
				      row.hash, "version", (json_int_t)row.version, "owner",
				      row.owner, "yaml", row.yaml));
	cas__policy_free(&row);
	cas__policy_unref(&rc->s->st, p);
}

struct list_ctx {
	struct cas__req *rc;
	json_t *arr;
};

static int list_cb(void *vctx, const struct cas__policy *row)
{
	struct list_ctx *lc = vctx;
	struct pol_policy *p = NULL;
	struct kiln_err err = { 0 };

	if (cas__policy_parse(&lc->rc->s->st, row, &p, &err) == 0 &&
	    pol_may_read(p, row->owner, lc->rc->peer_id))
		json_array_append_new(lc->arr, json_pack("{s:s,s:s,s:I}", "name", row->name,
							 "hash", row->hash, "version",
							 (json_int_t)row->version));
	cas__policy_unref(&lc->rc->s->st, p);
	return 0;
}

void cas__api_policy_list(struct cas__req *rc)
{
	struct list_ctx lc = { rc, json_array() };

	if (!cas__need_identity(rc)) {
		json_decref(lc.arr);
		return;
	}
	if (!lc.arr || cas__policy_each(&rc->s->st, list_cb, &lc) < 0) {
		json_decref(lc.arr);
		cas__fail(rc, -EIO, NULL);
		return;
	}
	cas__reply_json(rc, 200, json_pack("{s:o}", "policies", lc.arr));
}

int cas__policy_remove(struct cas__req *rc, const struct cas__policy *row, json_t *approvals)
{
	struct cas__server *s = rc->s;

	if (cas__policy_delete(&s->st, row->name) < 0 ||
	    cas__audit_append(&s->st, "policy.delete", rc->peer_id, row->name,
			      json_pack("{s:s,s:I,s:O?}", "hash", row->hash, "version",
					(json_int_t)row->version, "approvals", approvals)) < 0 ||
	    cas__tx_release(rc) < 0)
		return -EIO;
	kiln_log(KILN_LOG_INFO, "policy deleted", "session=%s actor=%s request_id=%s", row->name,
		 rc->peer_id, rc->request_id);
	cas__reply_json(rc, 200, json_pack("{s:s,s:s,s:b}", "deleted", row->name, "hash",
					   row->hash, "applied", 1));
	return 0;
}

void cas__api_policy_delete(struct cas__req *rc)
{
	const char *name = rc->args.name;
	const char *ids[] = { rc->peer_id };
	struct cas__server *s = rc->s;
	struct cas__policy row = { 0 };
	struct pol_policy *p = NULL;
	char why[POL_WHY_SIZE];
	int ret;

	if (!cas__need_identity(rc))
		return;
	cas__refusal_subject(rc, "policy.delete", name, NULL);
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		return;
	}
	ret = load_visible(rc, name, true, &row, &p, why, sizeof(why));
	if (ret == -KILN_EDENIED && p && pol_quorum_governed(p)) {
		/* The caller takes part in deletes but needs others: the deletion of
		 * this version waits for their approvals. */
		struct cas__proposal_spec sp = { "delete", row.name, row.hash, row.hash,
						 row.yaml };

		cas__proposal_open(rc, &sp, ids, 1, 0, why);
		goto out;
	}
	if (ret < 0) {
		cas__tx_rollback(rc);
		if (ret == -KILN_EDENIED)
			/* the caller takes part in deletes: no oracle */
			cas__fail(rc, -KILN_EDENIED, why);
		else
			cas__refuse_forbidden(rc);
		goto out;
	}
	if (cas__policy_remove(rc, &row, NULL) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
	}
out:
	cas__policy_free(&row);
	cas__policy_unref(&s->st, p);
}
