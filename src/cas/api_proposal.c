/* kiln-cas proposals: a change of a quorum-governed policy that its submitter
 * cannot make alone waits as a pending proposal, under its canonical hash, until
 * the rules it touches have their approvals (signatures verified by approval.c),
 * then takes effect if its predecessor is still the current version. A delete
 * the caller cannot make alone waits the same way, under the hash of the version
 * it deletes (action "delete"). Each proposal instance has a random id that
 * online approvals sign, so an approval never carries over to the same change
 * proposed again. Routes:
 * POST /v1/proposals, GET /v1/proposals, POST /v1/proposals/approve,
 * POST /v1/proposals/withdraw (docs/api.md). Every step is in the audit log. */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROPOSAL_DEFAULT_EXPIRES (7 * 86400)

/* ids as a JSON array, each identity once, in order. */
static json_t *ids_json(const char *const *ids, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen = seen || !strcmp(ids[j], ids[i]);
		if (!seen)
			json_array_append_new(a, json_string(ids[i]));
	}
	return a;
}

void cas__proposal_open(struct cas__req *rc, const struct cas__proposal_spec *sp,
			const char *const *ids, size_t n_ids, int64_t expires_in, const char *why)
{
	struct cas__server *s = rc->s;
	struct cas__proposal pr = { 0 }, row = { 0 };
	json_t *approvals = ids_json(ids, n_ids);
	char *text = approvals ? json_dumps(approvals, JSON_COMPACT) : NULL, when[32], id[33];
	bool del = !strcmp(sp->action, "delete");
	int64_t now = (int64_t)time(NULL);
	uint8_t rid[16];

	/* An expired proposal of the same version is replaced: its approvals lapsed
	 * with it. A pending one is not: re-proposing must not reset its approvals. */
	if (cas__proposal_get(&s->st, sp->name, sp->hash, &pr) == 0 && now < pr.expires) {
		char msg[400];

		cas__tx_rollback(rc);
		snprintf(msg, sizeof(msg), "a proposal %s '%s' with hash %s is already pending "
			 "(re-proposing does not reset it: approve it with 'kiln policy approve "
			 "%s --hash %s')", del ? "to delete" : "of", sp->name, sp->hash, sp->name,
			 sp->hash);
		cas__fail(rc, -KILN_ECONFLICT, msg);
		goto out;
	}
	if (kc_random(rid, sizeof(rid)) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
		goto out;
	}
	kiln_hex_encode(rid, sizeof(rid), id);
	row.name = (char *)sp->name;
	row.hash = (char *)sp->hash;
	row.predecessor = (char *)sp->predecessor;
	row.yaml = (char *)sp->yaml;
	row.proposer = (char *)ids[0];
	row.approvals = text;
	row.id = id;
	row.action = (char *)sp->action;
	row.created = now;
	row.expires = now + (expires_in ? expires_in : PROPOSAL_DEFAULT_EXPIRES);
	if (!text || cas__proposal_put(&s->st, &row) < 0 ||
	    cas__audit_append(&s->st, "policy.propose", rc->peer_id, sp->name,
			      json_pack("{s:s,s:s,s:s,s:s?,s:I,s:O,s:b}", "action", sp->action,
					"id", id, "hash", sp->hash, "predecessor",
					sp->predecessor, "expires", (json_int_t)row.expires,
					"approvals", approvals, "replaces_expired",
					pr.name != NULL)) < 0 ||
	    cas__tx_release(rc) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
		goto out;
	}
	cas__fmt_time(row.expires, when);
	kiln_log(KILN_LOG_INFO, del ? "policy deletion proposed" : "policy proposed",
		 "session=%s hash=%s actor=%s expires=%s request_id=%s", sp->name, sp->hash,
		 rc->peer_id, when, rc->request_id);
	cas__reply_json(rc, 202, json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:O,s:I,s:s}", "name",
					   sp->name, "hash", sp->hash, "action", sp->action,
					   "id", id, "applied", 0, "needs", why, "approvals",
					   approvals, "expires", (json_int_t)row.expires,
					   "proposer", ids[0]));
out:
	free(text);
	json_decref(approvals);
	cas__proposal_free(&pr);
}

/* The body of a request that needs an identity; NULL: answered (401 or 500). */
static char *identity_body(struct cas__req *rc, size_t *size)
{
	char *body;

	if (!cas__need_identity(rc))
		return NULL;
	body = cas__read_body(rc, size);
	if (!body)
		cas__fail(rc, -ENOMEM, NULL);
	return body;
}

int cas__approval_lapsed(struct cas__req *rc, const struct cas_approval *a)
{
	int64_t now = (int64_t)time(NULL);
	char msg[400], when[32];

	if (a->not_after > now + CAS_APPROVAL_MAX_VALIDITY + 86400) {
		snprintf(msg, sizeof(msg), "approval by %s is valid until %lld, more than 90 "
			 "days ahead (sign it again with a nearer --expires)", a->identity,
			 (long long)a->not_after);
		cas__fail(rc, -KILN_ESIG, msg);
		return -KILN_ESIG;
	}
	if (a->not_after >= now)
		return 0;
	cas__fmt_time(a->not_after, when);
	snprintf(msg, sizeof(msg), "approval by %s of '%s' %s expired at %s (sign it again)",
		 a->identity, a->policy, a->hash, when);
	cas__fail(rc, -KILN_EEXPIRED, msg);
	return -KILN_EEXPIRED;
}

void cas__api_proposal_create(struct cas__req *rc)
{
	struct cas__proposal_req req;
	struct kiln_err err = { 0 };
	const char *ids[1 + CAS_PROPOSAL_MAX_APPROVALS];
	struct pol_policy *p = NULL;
	size_t size = 0, n = 1;
	char *body;
	int ret;

	body = identity_body(rc, &size);
	if (!body)
		return;
	cas__refusal_subject(rc, "policy.apply", NULL, NULL);
	ret = cas__proposal_req_parse(body, size, &req, &err);
	if (ret < 0) {
		cas__fail(rc, ret, kiln_err_msg(&err, ret));
		goto out;
	}
	/* Each approval must be of exactly this version of this policy. */
	ret = pol_parse(req.yaml, req.yaml_size, "policy", &p, &err);
	if (ret < 0) {
		cas__fail(rc, ret, kiln_err_msg(&err, ret));
		goto out;
	}
	cas__refusal_subject(rc, "policy.apply", p->name, p->hash);
	ids[0] = rc->peer_id;
	for (size_t i = 0; i < req.n_approvals; i++) {
		const struct cas_approval *a = &req.approvals[i];

		char msg[600];

		if (strcmp(a->policy, p->name) || strcmp(a->hash, p->hash) ||
		    strcmp(a->action, "update")) {
			snprintf(msg, sizeof(msg), "approval by %s is of '%s' %s %s, not of this "
				 "one ('%s' update %s)", a->identity, a->policy, a->action,
				 a->hash, p->name, p->hash);
			cas__fail(rc, -KILN_ESIG, msg);
			goto out;
		}
		if (!cas_approval_offline(a)) {
			snprintf(msg, sizeof(msg), "approval by %s is of proposal %s: it counts "
				 "only for that proposal ('kiln policy approve %s --hash %s "
				 "--signature FILE'), not with a new submission", a->identity,
				 a->proposal, p->name, p->hash);
			cas__fail(rc, -KILN_ESIG, msg);
			goto out;
		}
		if (cas__approval_lapsed(rc, a) < 0)
			goto out;
		ids[n++] = a->identity;
	}
	cas__policy_submit(rc, req.yaml, req.yaml_size, ids, n, req.approvals, req.n_approvals,
			   req.expires_in);
out:
	pol_free(p);
	json_decref(req.body);
	free(body);
}

/* Identities of a proposal's approvals (borrowed from a), at most max. */
static size_t approvals_ids(json_t *a, const char **ids, size_t max)
{
	size_t i, n = 0;
	json_t *v;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && n < max)
			ids[n++] = json_string_value(v);
	return n;
}

/* The policy and its parsed form, when the caller may read it: else 403 answered. */
static int load_readable(struct cas__req *rc, const char *name, struct cas__policy *old,
			 struct pol_policy **cur)
{
	struct kiln_err err = { 0 };

	*cur = NULL;
	if (cas__policy_get(&rc->s->st, name, old) < 0 ||
	    cas__policy_parse(&rc->s->st, old, cur, &err) < 0 ||
	    !pol_may_read(*cur, old->owner, rc->peer_id)) {
		cas__refuse_forbidden(rc);
		return -KILN_EDENIED;
	}
	return 0;
}

/* Refuse an approval of pr (expired, stale, by an outsider, twice): 0 or answered. */
static int approval_refused(struct cas__req *rc, const struct cas__proposal *pr,
			    const struct cas__policy *old, const struct pol_policy *cur,
			    const char *id, const char *const *ids, size_t n)
{
	char msg[600], when[32];

	if ((int64_t)time(NULL) >= pr->expires) {
		cas__fmt_time(pr->expires, when);
		snprintf(msg, sizeof(msg), "proposal %s of '%s' expired at %s (propose it again)",
			 pr->hash, pr->name, when);
		cas__fail(rc, -KILN_EEXPIRED, msg);
		return -KILN_EEXPIRED;
	}
	if (strcmp(pr->predecessor, old->hash)) {
		snprintf(msg, sizeof(msg), "proposal %s of '%s' is stale: it replaces %s but the "
			 "current version is %s", pr->hash, pr->name, pr->predecessor, old->hash);
		cas__fail(rc, -KILN_ECONFLICT, msg);
		return -KILN_ECONFLICT;
	}
	if (!pol_may_approve(cur, old->owner, id)) {
		snprintf(msg, sizeof(msg), "%s takes no part in the rules that govern '%s' "
			 "(access.update, access.delete, an export's approvers)", id, pr->name);
		cas__fail(rc, -KILN_EDENIED, msg);
		return -KILN_EDENIED;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ids[i], id))
			continue;
		snprintf(msg, sizeof(msg), "%s already approved proposal %s of '%s' (an approval "
			 "counts once)", id, pr->hash, pr->name);
		cas__fail(rc, -KILN_ECONFLICT, msg);
		return -KILN_ECONFLICT;
	}
	return 0;
}

/* The policy and hash an approval claims, before it is verified: a forged one
 * is audited under what it claimed. */
static void claimed_subject(struct cas__req *rc, const char *body, size_t size)
{
	json_t *o = size <= CAS_APPROVAL_MAX ? json_loadb(body, size, 0, NULL) : NULL;

	cas__refusal_subject(rc, "policy.approve",
			     json_string_value(json_object_get(o, "policy")) ?
			     json_string_value(json_object_get(o, "policy")) : "",
			     json_string_value(json_object_get(o, "hash")));
	json_decref(o);
}

/* An approval of another instance or action of this change: 0 or answered. */
static int instance_refused(struct cas__req *rc, const struct cas_approval *ap,
			    const struct cas__proposal *pr)
{
	char msg[700];

	if (strcmp(ap->action, pr->action)) {
		snprintf(msg, sizeof(msg), "approval by %s approves the %s of '%s' %s, but the "
			 "pending proposal is to %s it", ap->identity, ap->action, ap->policy,
			 ap->hash, pr->action);
	} else if (cas_approval_offline(ap)) {
		snprintf(msg, sizeof(msg), "approval by %s was made before proposal %s existed "
			 "(%s): it counts only when submitted with the change (kiln policy apply "
			 "--signature); approve this proposal with 'kiln policy approve %s --hash "
			 "%s' or sign it with --proposal %s", ap->identity, pr->id, ap->proposal,
			 pr->name, pr->hash, pr->id);
	} else if (strcmp(ap->proposal, pr->id)) {
		snprintf(msg, sizeof(msg), "approval by %s is of proposal %s, not of the pending "
			 "proposal %s of '%s' %s (the change was withdrawn or expired and proposed "
			 "again: an approval does not carry over; approve it again)", ap->identity,
			 ap->proposal, pr->id, pr->name, pr->hash);
	} else {
		return 0;
	}
	cas__fail(rc, -KILN_ESIG, msg);
	return -KILN_ESIG;
}

void cas__api_proposal_approve(struct cas__req *rc)
{
	struct cas__server *s = rc->s;
	struct cas__policy old = { 0 };
	struct cas__proposal pr = { 0 };
	struct pol_policy *cur = NULL, *next = NULL;
	struct kiln_err err = { 0 };
	struct cas_approval ap;
	const char *ids[1 + CAS_PROPOSAL_MAX_APPROVALS + 64];
	json_t *approvals = NULL;
	char *body, *text = NULL, why[POL_WHY_SIZE];
	size_t size = 0, n;
	bool del;
	int ret;

	body = identity_body(rc, &size);
	if (!body)
		return;
	claimed_subject(rc, body, size);
	ret = size > CAS_APPROVAL_MAX ? kiln_err_set(&err, -EFBIG, "approval too large") :
		cas_approval_verify(body, size, &ap, &err);
	if (ret < 0) {
		cas__fail(rc, ret, kiln_err_msg(&err, ret));
		free(body);
		return;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		free(body);
		return;
	}
	if (load_readable(rc, ap.policy, &old, &cur) < 0)
		goto rollback;
	if (cas__proposal_get(&s->st, ap.policy, ap.hash, &pr) < 0) {
		char msg[600];

		snprintf(msg, sizeof(msg), "no pending proposal %s of '%s' (applied, withdrawn or "
			 "never made: 'kiln policy proposals %s')", ap.hash, ap.policy, ap.policy);
		cas__fail(rc, -ENOENT, msg);
		goto rollback;
	}
	approvals = json_loads(pr.approvals, 0, NULL);
	if (!json_is_array(approvals)) {
		cas__fail(rc, -EIO, NULL);
		goto rollback;
	}
	del = !strcmp(pr.action, "delete");
	n = approvals_ids(approvals, ids, sizeof(ids) / sizeof(ids[0]) - 1);
	if (instance_refused(rc, &ap, &pr) < 0 ||
	    approval_refused(rc, &pr, &old, cur, ap.identity, ids, n) < 0 ||
	    cas__approval_lapsed(rc, &ap) < 0)
		goto rollback;
	ids[n++] = ap.identity;
	json_array_append_new(approvals, json_string(ap.identity));
	if (del) {
		ret = pol_may_delete(cur, old.owner, ids, n, why, sizeof(why));
	} else {
		ret = pol_parse(pr.yaml, strlen(pr.yaml), "proposal", &next, &err);
		if (ret < 0) {
			cas__fail(rc, -EIO, NULL);
			goto rollback;
		}
		ret = pol_may_apply(cur, next, old.owner, ids, n, why, sizeof(why));
	}
	if (cas__audit_append(&s->st, "policy.approve", rc->peer_id, ap.policy,
			      json_pack("{s:s,s:s,s:s,s:s,s:O,s:b}", "action", pr.action, "id",
					pr.id, "hash", ap.hash, "identity", ap.identity,
					"approvals", approvals, "applies", ret == 0)) < 0) {
		cas__fail(rc, -EIO, NULL);
		goto rollback;
	}
	kiln_log(KILN_LOG_INFO, "proposal approved", "session=%s hash=%s identity=%s actor=%s "
		 "request_id=%s", ap.policy, ap.hash, ap.identity, rc->peer_id, rc->request_id);
	if (ret == 0 && del) {
		if (cas__policy_remove(rc, &old, approvals) < 0) {
			cas__fail(rc, -EIO, NULL);
			goto rollback;
		}
		goto out;
	}
	if (ret == 0) {
		if (cas__policy_write_version(rc, next, pr.yaml, &old, approvals) < 0) {
			cas__fail(rc, -EIO, NULL);
			goto rollback;
		}
		goto out;
	}
	text = json_dumps(approvals, JSON_COMPACT);
	free(pr.approvals);
	pr.approvals = text;
	text = NULL;
	if (!pr.approvals || cas__proposal_put(&s->st, &pr) < 0 || cas__tx_release(rc) < 0) {
		cas__fail(rc, -EIO, NULL);
		goto rollback;
	}
	cas__reply_json(rc, 200, json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:O,s:I}", "name", pr.name,
					   "hash", pr.hash, "action", pr.action, "id", pr.id,
					   "applied", 0, "needs", why, "approvals", approvals,
					   "expires", (json_int_t)pr.expires));
	goto out;
rollback:
	cas__tx_rollback(rc);
out:
	json_decref(approvals);
	free(text);
	free(body);
	pol_free(next);
	cas__policy_unref(&s->st, cur);
	cas__policy_free(&old);
	cas__proposal_free(&pr);
}

void cas__api_proposal_withdraw(struct cas__req *rc)
{
	struct cas__server *s = rc->s;
	struct cas__policy old = { 0 };
	struct cas__proposal pr = { 0 };
	struct pol_policy *cur = NULL;
	struct kiln_err err = { 0 };
	const char *name, *hash;
	json_t *req = NULL;
	char *body, msg[400];
	size_t size = 0;
	int ret;

	body = identity_body(rc, &size);
	if (!body)
		return;
	ret = cas__withdraw_req_parse(body, size, &req, &name, &hash, &err);
	if (ret < 0) {
		cas__fail(rc, ret, kiln_err_msg(&err, ret));
		free(body);
		return;
	}
	cas__refusal_subject(rc, "policy.withdraw", name, hash);
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		goto out;
	}
	if (load_readable(rc, name, &old, &cur) < 0)
		goto rollback;
	if (cas__proposal_get(&s->st, name, hash, &pr) < 0) {
		snprintf(msg, sizeof(msg), "no pending proposal %s of '%s'", hash, name);
		cas__fail(rc, -ENOENT, msg);
		goto rollback;
	}
	if (strcmp(pr.proposer, rc->peer_id)) {
		snprintf(msg, sizeof(msg), "only the proposer (%s) may withdraw proposal %s of "
			 "'%s'", pr.proposer, hash, name);
		cas__fail(rc, -KILN_EDENIED, msg);
		goto rollback;
	}
	if (cas__proposal_delete(&s->st, name, hash) < 0 ||
	    cas__audit_append(&s->st, "policy.withdraw", rc->peer_id, name,
			      json_pack("{s:s}", "hash", hash)) < 0 ||
	    cas__tx_release(rc) < 0) {
		cas__fail(rc, -EIO, NULL);
		goto rollback;
	}
	cas__reply_json(rc, 200, json_pack("{s:s,s:s}", "name", name, "withdrawn", hash));
	goto out;
rollback:
	cas__tx_rollback(rc);
out:
	cas__policy_unref(&s->st, cur);
	cas__policy_free(&old);
	cas__proposal_free(&pr);
	json_decref(req);
	free(body);
}

struct list_ctx {
	struct cas__req *rc;
	json_t *arr;
};

static int list_cb(void *vctx, const struct cas__proposal *pr)
{
	struct list_ctx *lc = vctx;
	struct cas__req *rc = lc->rc;
	struct cas__policy old = { 0 };
	struct pol_policy *cur = NULL, *next = NULL;
	struct kiln_err err = { 0 };
	const char *ids[64], *state = "pending";
	json_t *approvals = json_loads(pr->approvals, 0, NULL);
	char why[POL_WHY_SIZE] = "";
	size_t n;

	if (cas__policy_get(&rc->s->st, pr->name, &old) < 0 ||
	    cas__policy_parse(&rc->s->st, &old, &cur, &err) < 0 ||
	    !pol_may_read(cur, old.owner, rc->peer_id) || !json_is_array(approvals))
		goto out;
	n = approvals_ids(approvals, ids, sizeof(ids) / sizeof(ids[0]));
	if ((int64_t)time(NULL) >= pr->expires)
		state = "expired";
	else if (strcmp(pr->predecessor, old.hash))
		state = "stale";
	else if (!strcmp(pr->action, "delete"))
		(void)pol_may_delete(cur, old.owner, ids, n, why, sizeof(why));
	else if (pol_parse(pr->yaml, strlen(pr->yaml), "proposal", &next, &err) == 0)
		(void)pol_may_apply(cur, next, old.owner, ids, n, why, sizeof(why));
	json_array_append_new(lc->arr,
			      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:I,s:I,s:s,s:s}", "name",
					pr->name, "action", pr->action, "id", pr->id,
					"hash", pr->hash, "predecessor", pr->predecessor,
					"proposer", pr->proposer, "approvals", approvals,
					"created", (json_int_t)pr->created, "expires",
					(json_int_t)pr->expires, "state", state, "needs", why));
out:
	json_decref(approvals);
	pol_free(next);
	cas__policy_unref(&rc->s->st, cur);
	cas__policy_free(&old);
	return 0;
}

void cas__api_proposal_list(struct cas__req *rc)
{
	struct list_ctx lc = { rc, json_array() };

	if (!cas__need_identity(rc)) {
		json_decref(lc.arr);
		return;
	}
	if (!lc.arr || cas__proposal_each(&rc->s->st, list_cb, &lc) < 0) {
		json_decref(lc.arr);
		cas__fail(rc, -EIO, NULL);
		return;
	}
	cas__reply_json(rc, 200, json_pack("{s:o}", "proposals", lc.arr));
}
