/* Internal to src/policy. */
#ifndef KILN_POLICY_INTERNAL_H
#define KILN_POLICY_INTERNAL_H

#include "policy/policy.h"

/* One parsed reference (the text between "{{" and "}}"). */
struct pol_ref {
	bool host;
	bool bad_fmt; /* set when the only problem is an unknown .FORMAT */
	char name[65];
	enum pol_fmt fmt;
};

int pol_ref_parse(const char *s, size_t len, struct pol_ref *ref);
const char *pol_fmt_name(enum pol_fmt fmt);
const char *pol_tee_name(unsigned bit_index);
const char *pol_tolerate_name(unsigned bit_index);
bool pol_fmt_applies(enum pol_secret_kind kind, enum pol_fmt fmt);
/* Fill p->canonical and p->hash. */
int pol_canonicalize(struct pol_policy *p);

#endif
