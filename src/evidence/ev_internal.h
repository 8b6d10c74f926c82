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

/* ---- the workload measurement's view of /proc/PID/maps (wm_maps.c) ---- */

enum ev__map_kind {
	EV__MAP_DATA,    /* not executable: not measured */
	EV__MAP_KERNEL,  /* [vdso] or [vsyscall]: the kernel's code, not a file */
	EV__MAP_FILE,    /* an executable mapping of a file that exists: hashed */
	EV__MAP_REFUSED, /* executable and not measurable: the measurement fails */
};

struct ev__map {
	unsigned long start, end, dev_major, dev_minor, ino;
	char perms[5];
	const char *name; /* into the parsed line: a path, "[vdso]", "" (anonymous) */
	const char *why;  /* EV__MAP_REFUSED: why (a static string) */
};

/* Parse one line of /proc/PID/maps (NUL-terminated, without its newline; not
 * modified) into m and classify it: returns an enum ev__map_kind, or
 * -KILN_EFORMAT naming the line. */
int ev__map_parse(char *line, struct ev__map *m, struct kiln_err *err);
/* -KILN_EUNMEASURED with "executable mapping START-END 'NAME' (why) cannot be
 * measured: refused" (the name quoted safely for logs). */
int ev__map_refuse(const struct ev__map *m, const char *why, struct kiln_err *err);
/* Every page of mapping m in the process whose /proc/PID/pagemap is open on
 * pagemap_fd is the mapped file's own page (or not loaded yet): 0, or
 * -KILN_EUNMEASURED naming the mapping and the first page that is a private
 * copy (written after it was mapped). -errno when the map cannot be read. */
int ev__map_check_pages(int pagemap_fd, const struct ev__map *m, struct kiln_err *err);
/* 0 when the process at proc ("/proc/self", "/proc/PID") has no tracer;
 * -KILN_EUNMEASURED naming the tracer's pid otherwise. */
int ev__check_tracer(const char *proc, struct kiln_err *err);

#endif
