/* The "sim" evidence backend: INSECURE, for development only. The evidence is
 * a plain JSON claims blob anyone can forge; the CAS accepts it only when a
 * policy opts in (security.allow_insecure_sim) and flags it everywhere.
 *
 * Format (BRIEF-protocol): {"tee": "sim", "report_data": "<128 hex>",
 * "workload_measurement": "<96 hex>"}; exactly these keys, lowercase hex. */
#include "evidence/ev_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define EV_SIM_MAX_SIZE 4096

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int ev__json_object(const uint8_t *data, size_t size, const char *what, json_t **out,
		    struct kiln_err *err)
{
	json_error_t jerr;
	json_t *j;

	*out = NULL;
	if (!data || size == 0)
		return kiln_err_set(err, -KILN_EFORMAT, "%s is empty", what);
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: invalid JSON at byte %d: %s", what,
				    jerr.position, jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return kiln_err_set(err, -KILN_EFORMAT, "%s: expected a JSON object", what);
	}
	*out = j;
	return 0;
}

int ev__json_keys(const json_t *obj, const char *const *keys, size_t n_keys, const char *what,
		  struct kiln_err *err)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)obj, key, value) {
		bool known = false;

		for (size_t i = 0; i < n_keys && !known; i++)
			known = strcmp(key, keys[i]) == 0;
		if (!known)
			return kiln_err_set(err, -KILN_EFORMAT, "%s: unknown key '%.64s'", what,
					    key);
	}
	for (size_t i = 0; i < n_keys; i++)
		if (!json_object_get(obj, keys[i]))
			return kiln_err_set(err, -KILN_EFORMAT, "%s: missing key '%s'", what,
					    keys[i]);
	return 0;
}

int ev__json_str(const json_t *obj, const char *key, const char **out, const char *what,
		 struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: '%s' must be a string", what, key);
	*out = json_string_value(v);
	return 0;
}

int ev__json_hex(const json_t *obj, const char *key, uint8_t *out, size_t size,
		 const char *what, struct kiln_err *err)
{
	const json_t *v = json_object_get(obj, key);
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: '%s' must be a hex string", what,
				    key);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n != 2 * size)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "%s: '%s' must be %zu hex digits, found %zu", what, key,
				    2 * size, n);
	if (!is_lower_hex(s, n) || kiln_hex_decode(s, out, size, NULL) < 0)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: '%s' is not lowercase hex", what,
				    key);
	return 0;
}

int ev_sim_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		   const uint8_t wm[static EV_WM_SIZE], uint8_t **ev, size_t *size)
{
	char rd_hex[2 * EV_REPORT_DATA_SIZE + 1], wm_hex[2 * EV_WM_SIZE + 1];
	char *out;
	int n;

	*ev = NULL;
	*size = 0;
	out = malloc(EV_SIM_MAX_SIZE);
	if (!out)
		return -ENOMEM;
	kiln_hex_encode(report_data, EV_REPORT_DATA_SIZE, rd_hex);
	kiln_hex_encode(wm, EV_WM_SIZE, wm_hex);
	n = snprintf(out, EV_SIM_MAX_SIZE,
		     "{\"tee\": \"sim\", \"report_data\": \"%s\", "
		     "\"workload_measurement\": \"%s\"}",
		     rd_hex, wm_hex);
	*ev = (uint8_t *)out;
	*size = (size_t)n;
	return 0;
}

static int sim_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		       size_t *size, struct kiln_err *err)
{
	uint8_t wm[EV_WM_SIZE];
	int ret;

	*evidence = NULL;
	*size = 0;
	ret = ev_workload_measure_pid(0, wm, NULL, err);
	if (ret < 0) {
		kiln_err_prefix(err, "sim evidence: ");
		return ret;
	}
	return ev_sim_produce(report_data, wm, evidence, size);
}

static int sim_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		      json_t **claims, struct kiln_err *err)
{
	static const char *const keys[] = { "tee", "report_data", "workload_measurement" };
	static const char what[] = "sim evidence";
	uint8_t rd[EV_REPORT_DATA_SIZE], wm[EV_WM_SIZE];
	char rd_hex[2 * EV_REPORT_DATA_SIZE + 1], wm_hex[2 * EV_WM_SIZE + 1];
	const char *tee;
	json_t *j = NULL, *c = NULL;
	int ret;

	*claims = NULL;
	if (size > EV_SIM_MAX_SIZE)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: %zu bytes, at most %d allowed", what,
				    size, EV_SIM_MAX_SIZE);
	ret = ev__json_object(evidence, size, what, &j, err);
	if (ret < 0)
		goto out;
	ret = ev__json_keys(j, keys, KILN_ARRAY_SIZE(keys), what, err);
	if (ret < 0)
		goto out;
	ret = ev__json_str(j, "tee", &tee, what, err);
	if (ret < 0)
		goto out;
	if (strcmp(tee, "sim") != 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: 'tee' is '%.32s', expected 'sim'", what,
				   tee);
		goto out;
	}
	ret = ev__json_hex(j, "report_data", rd, sizeof(rd), what, err);
	if (ret < 0)
		goto out;
	ret = ev__json_hex(j, "workload_measurement", wm, sizeof(wm), what, err);
	if (ret < 0)
		goto out;
	kiln_hex_encode(rd, sizeof(rd), rd_hex);
	kiln_hex_encode(wm, sizeof(wm), wm_hex);
	c = json_pack("{s:s, s:b, s:b, s:s, s:s}", "tee", "sim", "insecure", 1, "debug", 1,
		      "report_data", rd_hex, "workload_measurement", wm_hex);
	if (!c) {
		ret = kiln_err_set(err, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	*claims = c;
	ret = 0;
out:
	json_decref(j);
	return ret;
}

const struct ev_backend ev_backend_sim = {
	.name = "sim",
	.insecure = true,
	.produce = sim_produce,
	.verify = sim_verify,
};
