/* POST /v1/certificate {session, secret} (docs/api.md): the certificate chain
 * (PEM) of an x509 or x509-ca secret of a policy, for identities that may read
 * the policy. It is what the clients of a shielded service trust (curl
 * --cacert): public parts only, never a key. The secret is made on first use,
 * as at an attestation, so the answer may write the store. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cas__api_certificate(struct cas__req *rc)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;
	const struct pol_secret *sec;
	struct cas__secret_ctx sc = { 0 };
	char owner[CAS_ID_SIZE] = "";
	const char *session, *secret;
	uint8_t *pem = NULL;
	size_t size = 0;
	json_t *body = NULL;

	if (!cas__need_identity(rc))
		return;
	if (cas__read_pair(rc, "session", "secret", &body, &session, &secret) < 0)
		goto out;
	/* The same 403 for a missing policy, a hidden one and a missing secret. */
	if (!pol_name_valid(session) ||
	    cas__policy_load(&rc->s->st, session, &p, owner, &err) < 0 ||
	    !pol_may_read(p, owner, rc->peer_id) || !(sec = pol_find_secret(p, secret)) ||
	    (sec->kind != POL_SECRET_X509 && sec->kind != POL_SECRET_X509_CA)) {
		cas__refuse_forbidden(rc);
		goto out;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		goto out;
	}
	if (cas__tx_policy_current(rc, p) < 0)
		goto out;
	sc.st = &rc->s->st;
	sc.policy = p;
	sc.owner = owner;
	if (cas__secret_resolve(&sc, false, secret, POL_FMT_CHAIN, &pem, &size, &err) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, err.code ? err.code : -EIO, kiln_err_msg(&err, -EIO));
		goto out;
	}
	if (cas__tx_release(rc) < 0) {
		cas__fail(rc, -EIO, NULL);
		goto out;
	}
	cas__reply_json(rc, 200, json_pack("{s:s,s:s,s:s%}", "session", p->name, "secret",
					   secret, "certificate", (const char *)pem, size));
out:
	free(pem);
	json_decref(body);
	cas__policy_unref(&rc->s->st, p);
}
