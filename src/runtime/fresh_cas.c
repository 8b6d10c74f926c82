/* kiln runtime: the freshness provider of volumes granted by the CAS (the
 * CAS keeps each volume's committed and prepared tags; docs/fs.md, rollback
 * protection). pf calls prepare(N) before it renames metadata N into place and
 * commit(N) after; current() answers what the CAS holds, and on the first call
 * what the grant carried, saving a round trip at start. Every call is one
 * request on the CAS connection of the attestation (rt__cas_call), signed by
 * the ephemeral workload key the CAS granted these volumes to.
 *
 * Compiled into libkiln.so and into the supervisor of static programs, like
 * attest_proto.c. The other providers: fresh_local.c (the runtime's KEY.tag
 * file) and pf's pf_freshness_local (kiln fs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pf/pf.h"
#include "runtime/attest_proto.h"

struct cas_fresh {
	char id[80];
	uint64_t committed, prepared; /* as granted, for the first current() */
	bool asked;
};

static int cf_post(struct cas_fresh *f, const char *op, uint64_t tag, struct kiln_err *err)
{
	char path[160];
	char body[48];
	struct rt_json *out = NULL;
	int ret;

	snprintf(body, sizeof(body), "{\"tag\": %llu}", (unsigned long long)tag);
	snprintf(path, sizeof(path), "/v1/volumes/%s/%s", f->id, op);
	ret = rt__cas_call(NULL, "POST", path, body, &out, err);
	rt_json_free(out);
	return ret;
}

static int cf_prepare(void *ctx, uint64_t tag, struct kiln_err *err)
{
	return cf_post(ctx, "prepare", tag, err);
}

static int cf_commit(void *ctx, uint64_t tag, struct kiln_err *err)
{
	return cf_post(ctx, "commit", tag, err);
}

static int cf_current(void *ctx, uint64_t *committed, uint64_t *prepared, struct kiln_err *err)
{
	struct cas_fresh *f = ctx;
	char path[160];
	const struct rt_json *co, *pr;
	struct rt_json *out = NULL;
	int ret;

	if (!f->asked) {
		/* The grant carried the tags: no extra round trip at start. */
		f->asked = true;
		*committed = f->committed;
		*prepared = f->prepared;
		return *committed ? 0 : -ENOENT;
	}
	snprintf(path, sizeof(path), "/v1/volumes/%s/tag", f->id);
	ret = rt__cas_call(NULL, "GET", path, NULL, &out, err);
	if (ret)
		return ret;
	co = rt_json_get(out, "committed");
	pr = rt_json_get(out, "prepared");
	if (!co || co->type != RT_JSON_NUMBER || !co->is_int || co->num < 0) {
		rt_json_free(out);
		return kiln_err_set(err, -KILN_EFORMAT, "GET %s: malformed tag answer", path);
	}
	*committed = (uint64_t)co->num;
	*prepared = pr && pr->type == RT_JSON_NUMBER && pr->is_int && pr->num >= 0 ?
		    (uint64_t)pr->num : *committed;
	rt_json_free(out);
	return *committed ? 0 : -ENOENT;
}

static void cf_free(void *ctx)
{
	free(ctx);
}

static const struct pf_freshness_ops g_cas_fresh_ops = {
	.prepare = cf_prepare,
	.commit = cf_commit,
	.current = cf_current,
	.free = cf_free,
};

int rt_fresh_cas(const struct rt_volume_cfg *c, const struct pf_freshness_ops **ops, void **ctx)
{
	struct cas_fresh *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	memcpy(f->id, c->cas_id, sizeof(f->id));
	f->committed = c->committed;
	f->prepared = c->prepared;
	f->asked = c->committed == RT_TAG_ASK;
	*ops = &g_cas_fresh_ops;
	*ctx = f;
	return 0;
}
