/* Helpers shared by the evidence backends of src/evidence/ (not a public
 * header: other modules use evidence.h). Prefix ev__. */
#ifndef KILN_EV_INTERNAL_H
#define KILN_EV_INTERNAL_H

#include "evidence/evidence.h"

/* Parse data as exactly one JSON object (duplicate keys, trailing bytes, NUL
 * bytes and non-objects are -KILN_EFORMAT). *out is a new reference owned by
 * the caller. what names the input in messages ("sim evidence"). */
int ev__json_object(const uint8_t *data, size_t size, const char *what, json_t **out,
		    struct kiln_err *err);
/* The object must have exactly these keys (-KILN_EFORMAT naming the unknown or
 * missing key). */
int ev__json_keys(const json_t *obj, const char *const *keys, size_t n_keys, const char *what,
		  struct kiln_err *err);
/* obj[key] must be a string of exactly 2*size lowercase hex digits. */
int ev__json_hex(const json_t *obj, const char *key, uint8_t *out, size_t size,
		 const char *what, struct kiln_err *err);
/* obj[key] must be a string; *out points into obj (borrowed). */
int ev__json_str(const json_t *obj, const char *key, const char **out, const char *what,
		 struct kiln_err *err);

#endif
