/* kiln-cas volume API: the freshness tags of a volume, read, prepared and
 * committed by the workload key that attested for it (docs/api.md). */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *cas__tag_json(const struct cas__volume *v)
{
	return json_pack("{s:I,s:o}", "committed", (json_int_t)v->committed, "prepared",
			 v->prepared < 0 ? json_null() : json_integer(v->prepared));
}

/* ---- volumes ---- */

/* In the request's transaction: 0 and the volume in *v when the client key
 * holds a live grant for it and the grant's policy still declares it (an update
 * that drops the volume ends what earlier grants allowed of it); -KILN_EDENIED,
 * -ENOENT, or the store's failure. */
static int volume_granted(struct cas__req *rc, const char *id, struct cas__volume *v)
{
	struct cas__store *st = &rc->s->st;
	struct pol_policy *p = NULL;
	struct kiln_err err = { 0 };
	char session[160];
	bool declared = false;
	int ret;

	ret = cas__grant_allows(st, rc->peer_spki, id, cas__grant_clock(), session);
	if (ret <= 0)
		return ret < 0 ? ret : -KILN_EDENIED;
	ret = cas__volume_by_id(st, id, v);
	if (ret < 0)
		return ret == -ENOENT ? -ENOENT : -EIO;
	kiln_wipe(v->key, sizeof(v->key));
	if (strcmp(v->session, session))
		return -KILN_EDENIED;
	ret = cas__policy_load(st, session, &p, NULL, &err);
	if (ret < 0)
		return ret == -ENOENT ? -KILN_EDENIED : -EIO;
	for (size_t i = 0; i < p->n_volumes; i++)
		if (!strcmp(p->volumes[i], v->name))
			declared = true;
	cas__policy_unref(st, p);
	return declared ? 0 : -KILN_EDENIED;
}

/* op: "tag", "prepare" or "commit" */
static void volume(struct cas__req *rc, const char *op)
{
	struct cas__server *s = rc->s;
	const char *id = rc->args.id;
	struct cas__volume v;
	char *text;
	size_t text_size = 0;
	int64_t tag;
	bool ok = false;
	int ret = 0;

	if (!rc->peer) {
		cas__fail(rc, -ENOKEY, "volumes need the attested TLS client certificate");
		return;
	}
	if (!rc->peer_id[0]) {
		cas__fail(rc, -KILN_EDENIED, "this key holds no grant for the volume");
		return;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		return;
	}
	/* The grant is read in the transaction that updates the tags: whatever
	 * CAS process the key attested at, and a policy delete at another process
	 * either came first (its grants are gone) or waits for this one. */
	ret = volume_granted(rc, id, &v);
	if (ret < 0) {
		cas__tx_rollback(rc);
		if (ret == -KILN_EDENIED)
			cas__fail(rc, ret, "this key holds no grant for the volume");
		else if (ret == -ENOENT)
			cas__fail(rc, ret, "volume not found");
		else
			cas__fail(rc, ret == -EAGAIN ? -EAGAIN : -EIO, NULL);
		return;
	}
	if (!strcmp(op, "tag")) {
		cas__tx_rollback(rc);
		cas__reply_json(rc, 200, cas__tag_json(&v));
		return;
	}
	text = cas__read_body(rc, &text_size);
	if (!text || cas__tag_req_parse(text, text_size, &tag) < 0) {
		cas__tx_rollback(rc);
		free(text);
		cas__fail(rc, -KILN_EFORMAT, "body must be {\"tag\": N} with N >= 1");
		return;
	}
	free(text);
	if (!strcmp(op, "prepare")) {
		/* Above the committed tag and never below a prepared one: a
		 * version whose commit failed or crashed is abandoned, never
		 * prepared again (pf's next commit skips it, so two contents
		 * never carry one version; docs/fs.md, rollback protection). */
		if (v.prepared == tag) {
			ok = true; /* retry of the same prepare */
		} else if (tag > v.committed && tag > v.prepared) {
			v.prepared = tag;
			ret = cas__volume_set_tags(&s->st, id, v.committed, v.prepared);
			ok = true;
		} else {
			ok = false;
		}
	} else {
		if (v.prepared < 0 && v.committed == tag) {
			ok = true; /* retry of the same commit */
		} else if (v.prepared == tag) {
			v.committed = tag;
			v.prepared = -1;
			ret = cas__volume_set_tags(&s->st, id, v.committed, v.prepared);
			ok = true;
		} else {
			ok = false;
		}
	}
	if (!ok) {
		char msg[200], prepared[24] = "none";

		cas__tx_rollback(rc);
		if (v.prepared >= 0)
			snprintf(prepared, sizeof(prepared), "%lld", (long long)v.prepared);
		snprintf(msg, sizeof(msg), "%s %lld refused: committed %lld, prepared %s "
			 "(prepare needs a tag above both, commit needs the prepared tag)", op,
			 (long long)tag, (long long)v.committed, prepared);
		cas__fail_json(rc, -KILN_ECONFLICT,
			       json_pack("{s:s,s:I,s:o}", "error", msg, "committed",
					 (json_int_t)v.committed, "prepared",
					 v.prepared < 0 ? json_null() :
					 json_integer(v.prepared)));
		return;
	}
	if (ret < 0 || cas__tx_release(rc) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
		return;
	}
	cas__reply_json(rc, 200, cas__tag_json(&v));
}


void cas__api_volume_tag(struct cas__req *rc)
{
	volume(rc, "tag");
}

void cas__api_volume_prepare(struct cas__req *rc)
{
	volume(rc, "prepare");
}

void cas__api_volume_commit(struct cas__req *rc)
{
	volume(rc, "commit");
}
