/* Approvals of a policy version: a stakeholder signs "this version of this
 * policy" with its identity key, online (`kiln policy approve`) or offline
 * (`kiln policy sign`, a detached file). The CAS verifies one against the key it
 * carries and that key against the identity it names, so an approval cannot be
 * made with another identity's key, nor moved to another version or policy.
 *
 * Wire form (and the detached file), one JSON object:
 *   {"kiln_approval": 1, "policy": NAME, "hash": "sha256:<hex>",
 *    "identity": "sha256:<hex>", "key": base64(DER SubjectPublicKeyInfo),
 *    "signature": base64(signature over the message below)}
 * message = "kiln policy approval v1\n" NAME "\n" HASH "\n". */
#include "cas/internal.h"

#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPROVAL_LABEL "kiln policy approval v1\n"

static int approval_message(const char *name, const char *hash, char *out, size_t size)
{
	int n = snprintf(out, size, APPROVAL_LABEL "%s\n%s\n", name, hash);

	return n < 0 || (size_t)n >= size ? -KILN_EFORMAT : n;
}

int cas_approval_sign(EVP_PKEY *key, const char *name, const char *hash, char **out,
		      struct kiln_err *err)
{
	char msg[512], id[CAS_ID_SIZE], *key_b64 = NULL, *sig_b64 = NULL;
	unsigned char *spki = NULL;
	uint8_t *sig = NULL;
	size_t sig_size = 0;
	json_t *o = NULL;
	int n, ret;

	*out = NULL;
	if (!pol_name_valid(name) || !pol_hash_valid(hash))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: bad policy name or hash");
	n = approval_message(name, hash, msg, sizeof(msg));
	if (n < 0)
		return kiln_err_set(err, n, "approval: policy name too long");
	ret = cas_key_id(key, id);
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
		    json_pack("{s:i,s:s,s:s,s:s,s:s,s:s}", "kiln_approval", 1, "policy", name,
			      "hash", hash, "identity", id, "key", key_b64, "signature", sig_b64) :
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
	static const char *const known[] = { "kiln_approval", "policy", "hash", "identity",
					     "key", "signature", NULL };
	const char *name, *hash, *id, *key_b64, *sig_b64, *k;
	uint8_t *spki = NULL, *sig = NULL, digest[KC_SHA256_SIZE];
	size_t spki_size = 0, sig_size = 0;
	const unsigned char *p;
	char msg[512], key_id[CAS_ID_SIZE];
	EVP_PKEY *key = NULL;
	json_t *v;
	int n, ret;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: expected a JSON object");
	json_object_foreach((json_t *)o, k, v) {
		bool ok = false;

		for (size_t i = 0; known[i]; i++)
			ok = ok || !strcmp(k, known[i]);
		if (!ok)
			return kiln_err_set(err, -KILN_EFORMAT, "approval: unknown field '%.40s'",
					    k);
	}
	if (json_integer_value(json_object_get(o, "kiln_approval")) != 1 ||
	    !json_is_integer(json_object_get(o, "kiln_approval")))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'kiln_approval' must be 1");
	if ((ret = member(o, "policy", &name, err)) < 0 ||
	    (ret = member(o, "hash", &hash, err)) < 0 ||
	    (ret = member(o, "identity", &id, err)) < 0 ||
	    (ret = member(o, "key", &key_b64, err)) < 0 ||
	    (ret = member(o, "signature", &sig_b64, err)) < 0)
		return ret;
	if (!pol_name_valid(name))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: bad policy name");
	if (!pol_hash_valid(hash))
		return kiln_err_set(err, -KILN_EFORMAT, "approval: 'hash' must be sha256:<64 hex>");
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
	n = approval_message(name, hash, msg, sizeof(msg));
	ret = n < 0 ? n : cas__x509_verify(key, msg, (size_t)n, sig, sig_size);
	if (ret < 0) {
		ret = kiln_err_set(err, -KILN_ESIG, "approval by %s of %s version %s: the "
				   "signature does not verify", id, name, hash);
		goto out;
	}
	snprintf(out->policy, sizeof(out->policy), "%s", name);
	snprintf(out->hash, sizeof(out->hash), "%s", hash);
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
