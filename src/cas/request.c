/* Validation of the JSON request bodies the CAS accepts. Kept apart from the
 * handlers so the libFuzzer target (fuzz/fuzz_http.c) reaches them directly. */
#include "cas/internal.h"

#include <string.h>

int cas__attest_req_parse(const char *text, size_t size, struct cas__attest_req *out,
			 struct kiln_err *err)
{
	static const char *const known[] = { "session", "service", "tee", "evidence", "nonce",
					     "host", "workload_measurement", NULL };
	const char *key, *nonce;
	json_t *v;

	memset(out, 0, sizeof(*out));
	out->body = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	if (!out->body || !json_is_object(out->body)) {
		json_decref(out->body);
		out->body = NULL;
		return kiln_err_set(err, -KILN_EFORMAT, "body must be a JSON object");
	}
	json_object_foreach(out->body, key, v) {
		bool ok = false;

		for (size_t i = 0; known[i]; i++)
			if (!strcmp(key, known[i]))
				ok = true;
		if (!ok) {
			kiln_err_set(err, -KILN_EFORMAT, "unknown field '%.40s'", key);
			goto fail;
		}
	}
	out->session = json_string_value(json_object_get(out->body, "session"));
	out->service = json_string_value(json_object_get(out->body, "service"));
	out->tee = json_string_value(json_object_get(out->body, "tee"));
	out->evidence_b64 = json_string_value(json_object_get(out->body, "evidence"));
	nonce = json_string_value(json_object_get(out->body, "nonce"));
	out->host = json_object_get(out->body, "host");
	v = json_object_get(out->body, "workload_measurement");
	if (v) {
		const char *wm = json_string_value(v);
		size_t i = 0;

		while (wm && ((wm[i] >= '0' && wm[i] <= '9') || (wm[i] >= 'a' && wm[i] <= 'f')))
			i++;
		if (!wm || i != 96 || wm[i]) {
			kiln_err_set(err, -KILN_EFORMAT,
				     "workload_measurement must be 96 lowercase hex digits");
			goto fail;
		}
		out->workload_measurement = wm;
	}
	if (!out->session || !out->service || !out->tee || !out->evidence_b64 || !nonce) {
		kiln_err_set(err, -KILN_EFORMAT, "body needs string fields session, service, tee, "
			     "evidence and nonce");
		goto fail;
	}
	if (out->host) {
		const char *k;
		json_t *hv;

		if (!json_is_object(out->host) || json_object_size(out->host) > 64) {
			kiln_err_set(err, -KILN_EFORMAT, "host must be an object of at most 64 "
				     "strings");
			goto fail;
		}
		json_object_foreach((json_t *)out->host, k, hv) {
			if (!json_is_string(hv)) {
				kiln_err_set(err, -KILN_EFORMAT, "host.%.40s must be a string", k);
				goto fail;
			}
		}
	}
	out->nonce_ok = strlen(nonce) == 64 &&
			kiln_hex_decode(nonce, out->nonce, sizeof(out->nonce), NULL) == 0;
	return 0;
fail:
	json_decref(out->body);
	memset(out, 0, sizeof(*out));
	return -KILN_EFORMAT;
}

int cas__tag_req_parse(const char *text, size_t size, int64_t *tag)
{
	json_t *j = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	json_t *t = json_object_get(j, "tag");
	int ret = -KILN_EFORMAT;

	if (json_is_object(j) && json_object_size(j) == 1 && json_is_integer(t) &&
	    json_integer_value(t) >= 1) {
		*tag = json_integer_value(t);
		ret = 0;
	}
	json_decref(j);
	return ret;
}

/* Refuse members other than known[] (NULL-terminated). */
static int only_known(const json_t *o, const char *const *known, struct kiln_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)o, key, v) {
		bool ok = false;

		for (size_t i = 0; known[i]; i++)
			ok = ok || !strcmp(key, known[i]);
		if (!ok)
			return kiln_err_set(err, -KILN_EFORMAT, "unknown field '%.40s'", key);
	}
	return 0;
}

int cas__proposal_req_parse(const char *text, size_t size, struct cas__proposal_req *out,
			    struct kiln_err *err)
{
	static const char *const known[] = { "yaml", "expires_in", "approvals", NULL };
	json_t *v, *a;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	out->body = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	if (!out->body || !json_is_object(out->body)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "body must be a JSON object");
		goto fail;
	}
	ret = only_known(out->body, known, err);
	if (ret < 0)
		goto fail;
	v = json_object_get(out->body, "yaml");
	out->yaml = json_string_value(v);
	if (!out->yaml) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "'yaml' (the policy text) is required");
		goto fail;
	}
	out->yaml_size = json_string_length(v);
	v = json_object_get(out->body, "expires_in");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
		  json_integer_value(v) > CAS_PROPOSAL_MAX_EXPIRES)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "'expires_in' must be seconds from 1 "
				   "to %d (90 days)", CAS_PROPOSAL_MAX_EXPIRES);
		goto fail;
	}
	out->expires_in = v ? json_integer_value(v) : 0;
	v = json_object_get(out->body, "approvals");
	if (v && (!json_is_array(v) || json_array_size(v) > CAS_PROPOSAL_MAX_APPROVALS)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "'approvals' must be a list of at most "
				   "%d approvals", CAS_PROPOSAL_MAX_APPROVALS);
		goto fail;
	}
	json_array_foreach(v, i, a) {
		ret = cas__approval_check(a, &out->approvals[i], err);
		if (ret < 0)
			goto fail;
		out->n_approvals = i + 1;
	}
	return 0;
fail:
	json_decref(out->body);
	out->body = NULL;
	return ret;
}

int cas__withdraw_req_parse(const char *text, size_t size, json_t **body, const char **policy,
			    const char **hash, struct kiln_err *err)
{
	static const char *const known[] = { "policy", "hash", NULL };
	int ret;

	*body = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	if (!*body || !json_is_object(*body)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "body must be a JSON object");
		goto fail;
	}
	ret = only_known(*body, known, err);
	if (ret < 0)
		goto fail;
	*policy = json_string_value(json_object_get(*body, "policy"));
	*hash = json_string_value(json_object_get(*body, "hash"));
	if (!*policy || !pol_name_valid(*policy) || !*hash || !pol_hash_valid(*hash)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "'policy' (a policy name) and 'hash' "
				   "(sha256:<64 hex>) are required");
		goto fail;
	}
	return 0;
fail:
	json_decref(*body);
	*body = NULL;
	return ret;
}

int cas__pair_req_parse(const char *text, size_t size, const char *k1, const char *k2,
			json_t **body, const char **v1, const char **v2, struct kiln_err *err)
{
	*body = text ? json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL) : NULL;
	*v1 = json_string_value(json_object_get(*body, k1));
	*v2 = json_string_value(json_object_get(*body, k2));
	if (*v1 && *v2 && json_object_size(*body) == 2)
		return 0;
	json_decref(*body);
	*body = NULL;
	*v1 = *v2 = NULL;
	return kiln_err_set(err, -KILN_EFORMAT, "expected {\"%s\": NAME, \"%s\": NAME}", k1, k2);
}
