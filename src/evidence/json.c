/* JSON helpers of the evidence verifiers (sim, host): strict parsing of
 * exactly one object with exactly the expected keys, so a verifier never
 * accepts evidence with a field it does not check. */
#include "evidence/internal.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

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
