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
	ok = rc->peer_id[0] && cas__grant_allows(&s->grants, rc->peer_spki, id, kiln_now_ns());
	if (!ok) {
		cas__fail(rc, -KILN_EDENIED, "this key holds no grant for the volume");
		return;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		return;
	}
	if (cas__volume_by_id(&s->st, id, &v) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -ENOENT, "volume not found");
		return;
	}
	kiln_wipe(v.key, sizeof(v.key));
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
		if (v.prepared == tag && tag == v.committed + 1) {
			ok = true; /* retry of the same prepare */
		} else if (tag == v.committed + 1) {
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
			 "(prepare needs committed+1, commit needs the prepared tag)", op,
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
