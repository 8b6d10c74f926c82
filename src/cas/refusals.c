/* Refused requests of the policy API in the audit chain: a change, an approval, a
 * delete, a withdrawal or a read that a rule refused, with who asked, the policy,
 * the hash and the reason (docs/cas.md "Audit log"). Rate-limited, so a client
 * that floods refused requests cannot grow the log without bound: at most
 * CAS_REFUSALS_PER_ID entries per identity and CAS_REFUSALS_PER_MIN in all per
 * minute; the rest are counted, and the next entry written says how many were
 * left out ("suppressed"). The state is guarded by store_lock, like the chain. */
#include "cas/internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void cas__refusal_subject(struct cas__req *rc, const char *kind, const char *name,
			  const char *hash)
{
	rc->audit_kind = kind;
	if (name)
		snprintf(rc->audit_subject, sizeof(rc->audit_subject), "%s",
			 pol_name_valid(name) ? name : "-");
	if (hash)
		snprintf(rc->audit_hash, sizeof(rc->audit_hash), "%s",
			 pol_hash_valid(hash) ? hash : "");
}

void cas__refusal_note(struct cas__req *rc, int status, const char *msg)
{
	/* Refusals by a rule or by the state of a proposal; not malformed requests
	 * (400), a missing identity (401) or our own failures (5xx). */
	if (!rc->audit_kind || (status != 403 && status != 404 && status != 409))
		return;
	rc->refused = status;
	snprintf(rc->refusal, sizeof(rc->refusal), "%s", msg ? msg : "");
}

/* May one more refusal by id be written now? Counts it either way. */
static bool refusal_admit(struct cas__server *s, const char *id, uint64_t *suppressed)
{
	struct cas__refusal_limit *l = &s->refusals;
	int64_t minute = (int64_t)time(NULL) / 60;
	int err = 0;

	if (minute != l->minute) {
		cas__tally_free(&l->per_id);
		l->minute = minute;
		l->total = 0;
	}
	if (l->total >= CAS_REFUSALS_PER_MIN ||
	    !cas__tally_take(&l->per_id, id, CAS_REFUSALS_PER_ID, &err)) {
		if (!l->suppressed++)
			kiln_log(KILN_LOG_WARN, "refusals not audited", "reason=rate_limit "
				 "per_identity=%d per_minute=%d (counted in the next entry)",
				 CAS_REFUSALS_PER_ID, CAS_REFUSALS_PER_MIN);
		return false;
	}
	l->total++;
	*suppressed = l->suppressed;
	return true;
}

int cas__refusal_audit(struct cas__req *rc)
{
	struct cas__server *s = rc->s;
	uint64_t suppressed = 0;

	if (!rc->refused || !refusal_admit(s, rc->peer_id[0] ? rc->peer_id : "none",
					   &suppressed))
		return 0;
	if (cas__tx_begin(rc) < 0)
		return -EIO;
	if (cas__audit_append(&s->st, "policy.refused", rc->peer_id[0] ? rc->peer_id : "none",
			      rc->audit_subject[0] ? rc->audit_subject : "-",
			      json_pack("{s:s,s:i,s:s,s:s?,s:I}", "request", rc->audit_kind,
					"status", rc->refused, "reason", rc->refusal, "hash",
					rc->audit_hash[0] ? rc->audit_hash : NULL,
					"suppressed", (json_int_t)suppressed)) < 0 ||
	    cas__tx_release(rc) < 0) {
		cas__tx_rollback(rc);
		return -EIO;
	}
	s->refusals.suppressed = 0;
	return 0;
}
