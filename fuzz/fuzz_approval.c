/* Fuzz the approval request parsers of kiln-cas (src/cas/approval.c, request.c):
 * an approval (POST /v1/proposals/approve, `kiln policy sign` files), a proposal
 * body (POST /v1/proposals, which carries approvals) and a withdrawal. No input
 * may crash or leak; a refusal says why; an accepted approval names a valid
 * policy, action, hash, proposal id and identity. The seed corpus holds genuine
 * signed approvals (of a proposal and offline), so the signature check itself is
 * reached. */
#include <stdlib.h>
#include <string.h>

#include "cas/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *policy, *hash;
	struct cas__proposal_req req;
	struct kiln_err err = { 0 };
	struct cas_approval ap;
	json_t *body = NULL;

	if (cas_approval_verify(text, size, &ap, &err) == 0) {
		if (!pol_name_valid(ap.policy) || !pol_hash_valid(ap.hash) ||
		    !pol_hash_valid(ap.identity) || !pol_hash_valid(ap.digest) ||
		    (strcmp(ap.action, "update") && strcmp(ap.action, "delete")) ||
		    ap.not_after <= 0 ||
		    strlen(ap.proposal) != (cas_approval_offline(&ap) ? 40 : 32))
			abort();
	} else if (!err.msg[0]) {
		abort();
	}
	memset(&err, 0, sizeof(err));
	if (cas__proposal_req_parse(text, size, &req, &err) == 0) {
		if (!req.yaml || req.n_approvals > CAS_PROPOSAL_MAX_APPROVALS)
			abort();
		json_decref(req.body);
	} else if (!err.msg[0] || req.body) {
		abort();
	}
	if (cas__withdraw_req_parse(text, size, &body, &policy, &hash, &err) == 0)
		json_decref(body);
	return 0;
}
