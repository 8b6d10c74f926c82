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
