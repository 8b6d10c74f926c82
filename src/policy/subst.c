/* Template substitution: {{secret.NAME[.FORMAT]}} and {{host.NAME}}. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

struct buf {
	char *data;
	size_t size, cap;
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->size + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *d;

		while (cap < b->size + n + 1)
			cap *= 2;
		d = malloc(cap);
		if (!d)
			return -ENOMEM;
		if (b->data) {
			memcpy(d, b->data, b->size);
			kiln_free_secret(b->data, b->cap);
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->size, p, n);
	b->size += n;
	b->data[b->size] = '\0';
	return 0;
}

int pol_substitute(const char *tmpl, pol_resolve_cb resolve, void *ctx, bool allow_nul,
		   char **out, size_t *out_size, struct kiln_err *err)
{
	struct buf b = { 0 };
	const char *s = tmpl;
	int ret;

	*out = NULL;
	*out_size = 0;
	ret = buf_add(&b, "", 0);
	if (ret < 0)
		goto out;
	for (;;) {
		const char *open = strstr(s, "{{"), *close;
		struct pol_ref ref;
		uint8_t *val = NULL;
		size_t val_size = 0;

		if (!open) {
			ret = buf_add(&b, s, strlen(s));
			break;
		}
		close = strstr(open + 2, "}}");
		if (!close || pol__ref_parse(open + 2, (size_t)(close - open - 2), &ref) < 0) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "bad reference in template");
			goto out;
		}
		ret = buf_add(&b, s, (size_t)(open - s));
		if (ret < 0)
			goto out;
		ret = resolve(ctx, ref.host, ref.name, ref.fmt, &val, &val_size, err);
		if (ret < 0)
			goto out;
		if (!allow_nul && memchr(val, '\0', val_size)) {
			kiln_free_secret(val, val_size);
			ret = kiln_err_set(err, -KILN_EFORMAT, "%s '%s' contains a NUL byte and "
					   "cannot go into argv or the environment",
					   ref.host ? "host value" : "secret", ref.name);
			goto out;
		}
		ret = buf_add(&b, val, val_size);
		kiln_free_secret(val, val_size);
		if (ret < 0)
			goto out;
		s = close + 2;
	}
out:
	if (ret < 0) {
		if (ret == -ENOMEM)
			kiln_err_set(err, ret, "out of memory");
		kiln_free_secret(b.data, b.cap);
		return ret;
	}
	*out = b.data;
	*out_size = b.size;
	return 0;
}
