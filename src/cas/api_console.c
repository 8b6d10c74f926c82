/* POST /v1/console {session, service} (docs/api.md): the console key of a
 * service whose policy lists the caller among its console readers
 * (services[].console.readers, "owner" standing for the policy's owner), for
 * `kiln console read|attach`. Audited (console.read). 403, the same for a
 * missing policy, a missing service, a console that is not protected and a
 * caller that is not a reader: no existence oracle. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

void cas__api_console(struct cas__req *rc)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;
	const struct pol_service *svc = NULL;
	char owner[CAS_ID_SIZE] = "", hex[2 * 32 + 1];
	const char *session, *service;
	uint8_t key[32];
	json_t *body = NULL;

	if (!cas__need_identity(rc))
		return;
	if (cas__read_pair(rc, "session", "service", &body, &session, &service) < 0)
		goto out;
	if (!pol_name_valid(session) ||
	    cas__policy_load(&rc->s->st, session, &p, owner, &err) < 0 ||
	    !(svc = pol_find_service(p, service)) ||
	    !pol_may_read_console(svc, owner, rc->peer_id)) {
		kiln_log(KILN_LOG_WARN, "console key refused", "session=%.128s service=%.64s "
			 "actor=%s request_id=%s", session, service, rc->peer_id, rc->request_id);
		cas__refuse_forbidden(rc);
		goto out;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		goto out;
	}
	if (cas__tx_policy_current(rc, p) < 0)
		goto out;
	if (cas__console_key(&rc->s->st, p->name, svc->name, key) < 0 ||
	    cas__audit_append(&rc->s->st, "console.read", rc->peer_id, p->name,
			      json_pack("{s:s,s:s}", "service", svc->name, "request_id",
					rc->request_id)) < 0 ||
	    cas__tx_release(rc) < 0) {
		cas__tx_rollback(rc);
		OPENSSL_cleanse(key, sizeof(key));
		cas__fail(rc, -EIO, NULL);
		goto out;
	}
	kiln_hex_encode(key, sizeof(key), hex);
	OPENSSL_cleanse(key, sizeof(key));
	kiln_log(KILN_LOG_INFO, "console key released", "session=%s service=%s actor=%s "
		 "request_id=%s", p->name, svc->name, rc->peer_id, rc->request_id);
	cas__reply_json(rc, 200, json_pack("{s:s,s:s,s:s}", "session", p->name, "service",
					   svc->name, "key", hex));
	OPENSSL_cleanse(hex, sizeof(hex));
out:
	json_decref(body);
	cas__policy_unref(&rc->s->st, p);
}
