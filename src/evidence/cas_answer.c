/* The client's half of the CAS's own attestation: the answer of
 * GET /v1/attestation?nonce=HEX (docs/api.md), verified against the nonce the
 * client chose and the key of the TLS connection it actually used. The answer's
 * own "nonce" and "server_key" fields only make the messages precise: the
 * binding is recomputed from the client's values, so an answer that lies about
 * them fails all the same. */
#include "evidence/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (256 * 1024) /* evidence with a certificate table fits */

static const char g_what[] = "CAS attestation";

/* The answer's keys: every one is checked; "warning" only with sim. */
static const char *const g_keys[] = {
	"kiln_cas_attestation", "tee", "insecure", "nonce", "server_key",
	"workload_measurement", "evidence", "warning",
};

static int check_keys(const json_t *j, struct kiln_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)j, key, v) {
		bool known = false;

		for (size_t i = 0; i < KILN_ARRAY_SIZE(g_keys) && !known; i++)
			known = !strcmp(key, g_keys[i]);
		if (!known)
			return kiln_err_set(err, -KILN_EFORMAT, "%s: unknown key '%.64s'", g_what,
					    key);
	}
	/* all but "warning" are required */
	for (size_t i = 0; i + 1 < KILN_ARRAY_SIZE(g_keys); i++)
		if (!json_object_get(j, g_keys[i]))
			return kiln_err_set(err, -KILN_EFORMAT, "%s: missing key '%s'", g_what,
					    g_keys[i]);
	return 0;
}

/* The format fields and what they claim: version, tee, insecure, nonce and key
 * (compared with the client's, for a precise message). */
static int check_fields(const json_t *j, const uint8_t nonce[static EV_NONCE_SIZE],
			const uint8_t key_sha256[static 32], const struct ev_backend **be,
			struct kiln_err *err)
{
	const json_t *ver = json_object_get(j, "kiln_cas_attestation");
	const char *tee = NULL, *key = NULL;
	uint8_t got_nonce[EV_NONCE_SIZE], got_key[32];
	char want_hex[65], got_hex[65];
	int ret;

	if (!json_is_integer(ver) || json_integer_value(ver) != 1)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: kiln_cas_attestation must be 1 "
				    "(a newer CAS? upgrade kiln)", g_what);
	ret = ev__json_str(j, "tee", &tee, g_what, err);
	if (ret < 0)
		return ret;
	*be = ev_backend_find(tee);
	if (!*be)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: unknown tee '%.32s'", g_what, tee);
	if (!json_is_boolean(json_object_get(j, "insecure")) ||
	    json_is_true(json_object_get(j, "insecure")) != (*be)->insecure)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: 'insecure' must be %s for tee %s",
				    g_what, (*be)->insecure ? "true" : "false", tee);
	ret = ev__json_hex(j, "nonce", got_nonce, sizeof(got_nonce), g_what, err);
	if (ret < 0)
		return ret;
	if (!kiln_ct_equal(got_nonce, nonce, EV_NONCE_SIZE))
		return kiln_err_set(err, -KILN_ENONCE, "%s is for another nonce than the one "
				    "this client sent: a replayed or foreign answer", g_what);
	ret = ev__json_str(j, "server_key", &key, g_what, err);
	if (ret < 0)
		return ret;
	if (strncmp(key, "sha256:", 7) || strlen(key) != 71 ||
	    kiln_hex_decode(key + 7, got_key, sizeof(got_key), NULL) < 0)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: server_key must be sha256:<64 hex>",
				    g_what);
	if (!kiln_ct_equal(got_key, key_sha256, 32)) {
		kiln_hex_encode(key_sha256, 32, want_hex);
		kiln_hex_encode(got_key, 32, got_hex);
		return kiln_err_set(err, -KILN_EBINDING, "the CAS's evidence binds TLS key "
				    "sha256:%s, but this connection's server key is sha256:%s: "
				    "something between this client and the CAS terminates TLS "
				    "(a proxy, or a certificate made with the CAS's CA key)",
				    got_hex, want_hex);
	}
	return 0;
}

/* The workload measurement the binding covers: the evidence's own claim (sim,
 * host), else the answer's (hardware tees carry it only in report_data). Both
 * present must agree. Set in the claims either way. */
static int measurement(const json_t *j, json_t *claims, uint8_t wm[static EV_WM_SIZE],
		       struct kiln_err *err)
{
	const char *in_claims = json_string_value(json_object_get(claims, "workload_measurement"));
	const char *in_answer = json_string_value(json_object_get(j, "workload_measurement"));
	int ret;

	ret = ev__json_hex(j, "workload_measurement", wm, EV_WM_SIZE, g_what, err);
	if (ret < 0)
		return ret;
	if (in_claims && strcmp(in_claims, in_answer))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: workload_measurement %.96s differs "
				    "from the one in its evidence (%.96s)", g_what, in_answer,
				    in_claims);
	if (!in_claims && json_object_set_new(claims, "workload_measurement",
					      json_string(in_answer)) < 0)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

int ev_cas_answer_verify(const char *text, size_t size, const uint8_t nonce[static EV_NONCE_SIZE],
			 const uint8_t key_sha256[static 32], const struct ev_verify_opts *opts,
			 json_t **claims, struct kiln_err *err)
{
	const struct ev_backend *be = NULL;
	const char *b64 = NULL;
	uint8_t *evidence = NULL, rd[EV_REPORT_DATA_SIZE], want[EV_REPORT_DATA_SIZE];
	uint8_t wm[EV_WM_SIZE];
	size_t ev_size = 0;
	json_t *j = NULL, *c = NULL;
	int ret;

	*claims = NULL;
	if (size > ANSWER_MAX)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: larger than %d bytes", g_what,
				    ANSWER_MAX);
	ret = ev__json_object((const uint8_t *)text, size, g_what, &j, err);
	if (ret < 0)
		goto out;
	ret = check_keys(j, err);
	if (ret == 0)
		ret = check_fields(j, nonce, key_sha256, &be, err);
	if (ret == 0)
		ret = ev__json_str(j, "evidence", &b64, g_what, err);
	if (ret < 0)
		goto out;
	if (kiln_b64_decode(b64, &evidence, &ev_size) < 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: evidence is not base64", g_what);
		goto out;
	}
	ret = be->verify(evidence, ev_size, opts, &c, err);
	if (ret < 0) {
		kiln_err_prefix(err, "%s: %s evidence does not verify: ", g_what, be->name);
		goto out;
	}
	ret = measurement(j, c, wm, err);
	if (ret < 0)
		goto out;
	if (ev__json_hex(c, "report_data", rd, sizeof(rd), g_what, err) < 0 ||
	    ev_cas_binding(key_sha256, nonce, wm, want) < 0 ||
	    !kiln_ct_equal(rd, want, sizeof(rd))) {
		ret = kiln_err_set(err, -KILN_EBINDING, "%s: report_data is not SHA-512(kiln-cas-v1 "
				   "|| this connection's server key || this client's nonce || "
				   "workload_measurement): the evidence is not bound to this "
				   "connection and request", g_what);
		goto out;
	}
	*claims = c;
	c = NULL;
	ret = 0;
out:
	json_decref(c);
	json_decref(j);
	free(evidence);
	return ret;
}
