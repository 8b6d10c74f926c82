/* Approvals of a policy change: a stakeholder signs "this action (update to
 * version H, or delete version H) of this policy, in this proposal instance,
 * until T" with its identity key, online (`kiln policy approve`) or offline
 * (`kiln policy sign`, a detached file). The CAS verifies one against the key it
 * carries and that key against the identity it names, so an approval cannot be
 * made with another identity's key, nor moved to another version, policy,
 * action or proposal: an approval of a proposal that was withdrawn (or expired)
 * and proposed again does not count for the new one.
 *
 * Wire form (and the detached file), one JSON object:
 *   {"kiln_approval": 2, "policy": NAME, "action": "update"|"delete",
 *    "hash": "sha256:<hex>", "proposal": ID, "not_after": UNIX,
 *    "identity": "sha256:<hex>", "key": base64(DER SubjectPublicKeyInfo),
 *    "signature": base64(signature over the message below)}
 * message = "kiln policy approval v2\npolicy NAME\naction ACTION\nhash HASH\n"
 *           "proposal ID\nnot-after UNIX\n"
 * ID: a pending proposal's id (32 lowercase hex), or "offline:<32 hex>" (a fresh
 * random nonce) for a detached approval submitted with the change. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPROVAL_LABEL "kiln policy approval v2\n"
#define OFFLINE_PREFIX "offline:"

static bool hex32(const char *s)
{
	return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

static bool proposal_id_valid(const char *s)
{
	if (!strncmp(s, OFFLINE_PREFIX, strlen(OFFLINE_PREFIX)))
		s += strlen(OFFLINE_PREFIX);
	return hex32(s);
}

bool cas_approval_offline(const struct cas_approval *ap)
{
	return !strncmp(ap->proposal, OFFLINE_PREFIX, strlen(OFFLINE_PREFIX));
}

static bool action_valid(const char *a)
{
	return !strcmp(a, "update") || !strcmp(a, "delete");
}

int cas_approval_message(const char *name, const char *action, const char *hash,
			 const char *proposal, int64_t not_after, char *out, size_t size)
{
	int n = snprintf(out, size, APPROVAL_LABEL "policy %s\naction %s\nhash %s\n"
			 "proposal %s\nnot-after %lld\n", name, action, hash, proposal,
			 (long long)not_after);

	return n < 0 || (size_t)n >= size ? -KILN_EFORMAT : n;
}

/* sha256 of identity and message: what makes one approval distinct (a detached
 * approval is spent under it). ECDSA signatures are malleable, so the signature
 * bytes cannot be that key. */
static int approval_digest(const char *id, const char *msg, size_t n, char out[CAS_ID_SIZE])
{
	uint8_t d[KC_SHA256_SIZE];
	char *buf = malloc(strlen(id) + 1 + n);
	int ret;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, id, strlen(id));
	buf[strlen(id)] = '\n';
	memcpy(buf + strlen(id) + 1, msg, n);
	ret = kc_sha256(buf, strlen(id) + 1 + n, d);
	free(buf);
	if (ret < 0)
		return ret;
	memcpy(out, "sha256:", 7);
	kiln_hex_encode(d, sizeof(d), out + 7);
	return 0;
}

int cas_approval_sign(EVP_PKEY *key, struct cas_approval *ap, char **out,
		      struct kiln_err *err)
{
	char msg[768], *key_b64 = NULL, *sig_b64 = NULL;
	unsigned char *spki = NULL;
	uint8_t *sig = NULL, nonce[16];
	size_t sig_size = 0;
	json_t *o = NULL;
	int n, ret;

	*out = NULL;
	if (!ap->proposal[0]) {
		if (kc_random(nonce, sizeof(nonce)) < 0)
			return kiln_err_set(err, -KILN_ECRYPTO, "approval: no randomness");
		memcpy(ap->proposal, OFFLINE_PREFIX, strlen(OFFLINE_PREFIX));
		kiln_hex_encode(nonce, sizeof(nonce), ap->proposal + strlen(OFFLINE_PREFIX));
	}
	if (!pol_name_valid(ap->policy) || !pol_hash_valid(ap->hash) ||
	    !action_valid(ap->action) || !proposal_id_valid(ap->proposal) || ap->not_after <= 0)
		return kiln_err_set(err, -KILN_EFORMAT, "approval: bad policy name, action, "
				    "hash, proposal id or expiry");
	n = cas_approval_message(ap->policy, ap->action, ap->hash, ap->proposal, ap->not_after,
				 msg, sizeof(msg));
	if (n < 0)
		return kiln_err_set(err, n, "approval: policy name too long");
	ret = cas_key_id(key, ap->identity);
	if (ret == 0)
		ret = approval_digest(ap->identity, msg, (size_t)n, ap->digest);
	if (ret < 0)
		return kiln_err_set(err, ret, "approval: cannot compute the key's identity");
	ret = i2d_PUBKEY(key, &spki);
	if (ret <= 0)
		return kiln_err_set(err, -KILN_ECRYPTO, "approval: cannot encode the key");
	key_b64 = kiln_b64_encode(spki, (size_t)ret);
	ret = cas__x509_sign(key, msg, (size_t)n, &sig, &sig_size);
	if (ret < 0) {
		kiln_err_set(err, ret, "approval: cannot sign: %s", kiln_strerror(ret));
		goto out;
	}
	sig_b64 = kiln_b64_encode(sig, sig_size);
	o = key_b64 && sig_b64 ?
		    json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s}", "kiln_approval", 2,
			      "policy", ap->policy, "action", ap->action, "hash", ap->hash,
			      "proposal", ap->proposal, "not_after", (json_int_t)ap->not_after,
			      "identity", ap->identity, "key", key_b64, "signature", sig_b64) :
		    NULL;
	*out = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	ret = *out ? 0 : kiln_err_set(err, -ENOMEM, "approval: out of memory");
out:
	json_decref(o);
	OPENSSL_free(spki);
	free(sig);
	free(key_b64);
	free(sig_b64);
	return ret;
}

/* A string member of o: 0 with *out borrowed, or -KILN_EFORMAT naming it. */
static int member(const json_t *o, const char *key, const char **out, struct kiln_err *err)
{
	*out = json_string_value(json_object_get(o, key));
	if (!*out)
		return kiln_err_set(err, -KILN_EFORMAT, "approval: '%s' must be a string", key);
	return 0;
}

int cas__approval_check(const json_t *o, struct cas_approval *out, struct kiln_err *err)
{
	static const char *const known[] = { "kiln_approval", "policy", "action", "hash",
					     "proposal", "not_after", "identity", "key",
					     "signature", NULL };
	const char *name, *action, *hash, *proposal, *id, *key_b64, *sig_b64, *k;
	uint8_t *spki = NULL, *sig = NULL, digest[KC_SHA256_SIZE];
	size_t spki_size = 0, sig_size = 0;
	const unsigned char *p;
	char msg[768], key_id[CAS_ID_SIZE];
	const json_t *na;
	EVP_PKEY *key = NULL;
	json_t *v;
	int n, ret;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: expected a JSON object");
	v = json_object_get(o, "kiln_approval");
	if (json_is_integer(v) && json_integer_value(v) == 1)
		return kiln_err_set(err, -KILN_EFORMAT, "approval: format 1 (not bound to a "
				    "proposal, so reusable when a change is proposed again) is no "
				    "longer accepted: sign again with this kiln");
	if (!json_is_integer(v) || json_integer_value(v) != 2)
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'kiln_approval' must be 2");
	json_object_foreach((json_t *)o, k, v) {
		bool ok = false;

		for (size_t i = 0; known[i]; i++)
			ok = ok || !strcmp(k, known[i]);
		if (!ok)
			return kiln_err_set(err, -KILN_EFORMAT, "approval: unknown field '%.40s'",
					    k);
	}
	if ((ret = member(o, "policy", &name, err)) < 0 ||
	    (ret = member(o, "action", &action, err)) < 0 ||
	    (ret = member(o, "hash", &hash, err)) < 0 ||
	    (ret = member(o, "proposal", &proposal, err)) < 0 ||
	    (ret = member(o, "identity", &id, err)) < 0 ||
	    (ret = member(o, "key", &key_b64, err)) < 0 ||
	    (ret = member(o, "signature", &sig_b64, err)) < 0)
		return ret;
	if (!pol_name_valid(name))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: bad policy name");
	if (!action_valid(action))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'action' must be update or "
				    "delete");
	if (!pol_hash_valid(hash))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'hash' must be sha256:<64 hex>");
	if (!proposal_id_valid(proposal))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'proposal' must be a "
				    "proposal id (32 hex) or offline:<32 hex>");
	na = json_object_get(o, "not_after");
	if (!json_is_integer(na) || json_integer_value(na) <= 0)
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'not_after' must be Unix "
				    "seconds");
	if (!pol_hash_valid(id))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'identity' must be "
				    "sha256:<64 hex>");
	if (kiln_b64_decode(key_b64, &spki, &spki_size) < 0 || spki_size > 2048 ||
	    kiln_b64_decode(sig_b64, &sig, &sig_size) < 0 || sig_size > 1024) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "approval: 'key' and 'signature' must be "
				   "base64 (key: DER SubjectPublicKeyInfo)");
		goto out;
	}
	/* The identity is the SHA-256 of the key: a key of another identity is
	 * refused before its signature is even looked at. */
	ret = kc_sha256(spki, spki_size, digest);
	if (ret < 0)
		goto out;
	memcpy(key_id, "sha256:", 7);
	kiln_hex_encode(digest, sizeof(digest), key_id + 7);
	if (strcmp(key_id, id)) {
		ret = kiln_err_set(err, -KILN_ESIG, "approval names identity %s but carries "
				   "the key of %s: an approval must be signed with the "
				   "approver's own key", id, key_id);
		goto out;
	}
	p = spki;
	key = d2i_PUBKEY(NULL, &p, (long)spki_size);
	if (!key || p != spki + spki_size) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "approval: 'key' is not a public key");
		goto out;
	}
	n = cas_approval_message(name, action, hash, proposal, json_integer_value(na), msg,
				 sizeof(msg));
	ret = n < 0 ? n : cas__x509_verify(key, msg, (size_t)n, sig, sig_size);
	if (ret < 0) {
		ret = kiln_err_set(err, -KILN_ESIG, "approval by %s of %s version %s: the "
				   "signature does not verify", id, name, hash);
		goto out;
	}
	ret = approval_digest(id, msg, (size_t)n, out->digest);
	if (ret < 0)
		goto out;
	snprintf(out->policy, sizeof(out->policy), "%s", name);
	snprintf(out->action, sizeof(out->action), "%s", action);
	snprintf(out->hash, sizeof(out->hash), "%s", hash);
	snprintf(out->proposal, sizeof(out->proposal), "%s", proposal);
	out->not_after = json_integer_value(na);
	snprintf(out->identity, sizeof(out->identity), "%s", id);
	ret = 0;
out:
	EVP_PKEY_free(key);
	free(spki);
	free(sig);
	return ret;
}

int cas_approval_verify(const char *text, size_t size, struct cas_approval *out,
			struct kiln_err *err)
{
	json_t *o = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	int ret;

	if (!o)
		return kiln_err_set(err, -KILN_EFORMAT, "approval: not JSON");
	ret = cas__approval_check(o, out, err);
	json_decref(o);
	return ret;
}
