/* Templates in commands, environment and files: {{secret.NAME[.FMT]}} and
 * {{host.NAME}} references, checked against the policy when parsed. */
#include "policy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates ---- */

bool pol__fmt_applies(enum pol_secret_kind kind, enum pol_fmt fmt)
{
	switch (kind) {
	case POL_SECRET_NONE:
		return true;
	case POL_SECRET_ASCII:
	case POL_SECRET_BINARY:
		return fmt == POL_FMT_RAW || fmt == POL_FMT_HEX || fmt == POL_FMT_BASE64;
	case POL_SECRET_KEY:
		return fmt != POL_FMT_CHAIN;
	case POL_SECRET_X509:
	case POL_SECRET_X509_CA:
		return true;
	}
	return false;
}

static const char *const g_fmts[] = { "", "hex", "base64", "pem", "key", "chain", NULL };

const char *pol__fmt_name(enum pol_fmt fmt)
{
	return fmt == POL_FMT_RAW ? "(plain)" : g_fmts[fmt];
}

int pol__ref_parse(const char *s, size_t len, struct pol_ref *ref)
{
	char buf[160];
	char *p, *dot;

	memset(ref, 0, sizeof(*ref));
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len >= sizeof(buf))
		return -KILN_EFORMAT;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!strncmp(buf, "secret.", 7)) {
		p = buf + 7;
	} else if (!strncmp(buf, "host.", 5)) {
		p = buf + 5;
		ref->host = true;
	} else {
		return -KILN_EFORMAT;
	}
	dot = strchr(p, '.');
	if (dot) {
		if (ref->host)
			return -KILN_EFORMAT;
		*dot = '\0';
		for (int i = 1; g_fmts[i]; i++)
			if (!strcmp(dot + 1, g_fmts[i]))
				ref->fmt = (enum pol_fmt)i;
		if (ref->fmt == POL_FMT_RAW) {
			ref->bad_fmt = true;
			return -KILN_EFORMAT;
		}
	}
	if (!pol__ident_valid(p, "_-"))
		return -KILN_EFORMAT;
	memcpy(ref->name, p, strlen(p) + 1); /* ident_valid bounds it to 64 */
	return 0;
}

int pol__check_template(struct pol__ctx *c, const struct pol_policy *p,
			const struct pol_service *svc, const struct ynode *n, const char *what,
			bool text_only)
{
	const char *s = n->str;

	for (;;) {
		const char *open = strstr(s, "{{"), *close;
		struct pol_ref ref;
		const struct pol_secret *sec;
		int r;

		if (!open)
			return 0;
		close = strstr(open + 2, "}}");
		if (!close)
			return pol__fail(c, n, "%s: unterminated '{{' (references look like "
					 "{{secret.NAME}} or {{host.NAME}})", what);
		r = pol__ref_parse(open + 2, (size_t)(close - open - 2), &ref);
		if (r < 0 && ref.bad_fmt)
			return pol__fail(c, n,
					 "%s: unknown format in '%.*s' (expected hex, base64, "
					 "pem, key or chain)",
					 what, (int)(close + 2 - open), open);
		if (r < 0)
			return pol__fail(c, n,
					 "%s: bad reference '%.*s' (expected {{secret.NAME}}, "
					 "{{secret.NAME.FORMAT}} or {{host.NAME}})",
					 what, (int)(close + 2 - open), open);
		if (ref.host) {
			bool listed = false;

			for (size_t i = 0; i < svc->n_host_env; i++)
				if (!strcmp(svc->host_env[i], ref.name))
					listed = true;
			if (!listed)
				return pol__fail(c, n,
						 "%s: {{host.%s}} is not listed in service '%s' "
						 "host_env",
						 what, ref.name, svc->name);
		} else {
			sec = pol_find_secret(p, ref.name);
			if (!sec) {
				const char *names[65];
				size_t k = 0;
				const char *sg;

				for (size_t i = 0; i < p->n_secrets && k < 64; i++)
					names[k++] = p->secrets[i].name;
				names[k] = NULL;
				sg = pol__suggest(ref.name, names);
				if (sg)
					return pol__fail(c, n,
							 "%s: unknown secret '%s' (did you mean "
							 "'%s'?)",
							 what, ref.name, sg);
				return pol__fail(c, n, "%s: unknown secret '%s'", what, ref.name);
			}
			if (!pol__fmt_applies(sec->kind, ref.fmt))
				return pol__fail(c, n,
						 "%s: format '%s' does not apply to secret '%s' "
						 "of kind %s",
						 what, pol__fmt_name(ref.fmt), sec->name,
						 pol_kind_name(sec->kind));
			if (text_only && sec->kind == POL_SECRET_BINARY && ref.fmt == POL_FMT_RAW)
				return pol__fail(c, n,
						 "%s: binary secret '%s' needs .hex or .base64 "
						 "here",
						 what, sec->name);
		}
		s = close + 2;
	}
}
