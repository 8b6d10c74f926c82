/* Internal to src/policy: a small YAML tree with source marks, built from
 * libyaml events. Anchors, aliases and explicit tags are refused here. */
#ifndef KILN_POLICY_YTREE_H
#define KILN_POLICY_YTREE_H

#include "policy/policy.h"

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_type type;
	unsigned line, col;   /* 1-based */
	char *str;            /* scalar text (NUL-terminated) */
	size_t str_size;
	bool plain;           /* scalar written without quotes or block style */
	struct ynode **items; /* seq: elements; map: key, value, key, value, ... */
	size_t n;             /* number of entries in items */
	size_t cap;
};

/* Parse one YAML document. *root is owned by the caller (yn_free). On error
 * err holds `file:line:col: message` and the return is negative. */
int yn_parse(const char *text, size_t size, const char *file, struct ynode **root,
	     struct kiln_err *err);
void yn_free(struct ynode *n);

#endif
