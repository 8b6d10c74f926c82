/* kiln runtime: lexical path normalization and volume prefix matching.
 * Pure functions (no syscalls, no allocation) so they are safe in the SIGSYS
 * handler and easy to unit-test. */
#include <errno.h>
#include <string.h>

#include "runtime/runtime.h"

int rt_path_normalize(const char *cwd, const char *path, char *out, size_t out_size)
{
	size_t len = 0;
	const char *parts[2];
	int n = 0;

	if (!path || !path[0] || out_size < 2)
		return -EINVAL;
	if (path[0] != '/') {
		if (!cwd || cwd[0] != '/')
			return -EINVAL;
		parts[n++] = cwd;
	}
	parts[n++] = path;
	out[len++] = '/';
	for (int i = 0; i < n; i++) {
		const char *p = parts[i];

		while (*p) {
			const char *seg;
			size_t seg_len;

			while (*p == '/')
				p++;
			if (!*p)
				break;
			seg = p;
			while (*p && *p != '/')
				p++;
			seg_len = (size_t)(p - seg);
			if (seg_len == 1 && seg[0] == '.')
				continue;
			if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
				/* Drop the last component; ".." of "/" is "/". */
				while (len > 1 && out[len - 1] != '/')
					len--;
				if (len > 1)
					len--;
				continue;
			}
			if (len > 1) {
				if (len + 1 >= out_size)
					return -ENAMETOOLONG;
				out[len++] = '/';
			}
			if (len + seg_len >= out_size)
				return -ENAMETOOLONG;
			memcpy(out + len, seg, seg_len);
			len += seg_len;
		}
	}
	out[len] = '\0';
	return 0;
}

const char *rt_path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 1 && prefix[0] == '/')
		return path[1] ? path + 1 : path + 1;
	if (strncmp(path, prefix, n) != 0)
		return NULL;
	if (path[n] == '\0')
		return path + n;
	if (path[n] == '/')
		return path + n + 1;
	return NULL;
}
