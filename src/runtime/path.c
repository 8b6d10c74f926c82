/* kiln runtime: lexical path normalization and volume prefix matching.
 * Pure functions (no syscalls, no allocation) so they are safe in the SIGSYS
 * handler and easy to unit-test. */
#include <errno.h>
#include <string.h>

#include "runtime/runtime.h"

enum rt_path_last rt_path_next(const char **p, const char **seg, size_t *seg_len)
{
	const char *s = *p;

	while (*s == '/')
		s++;
	*seg = s;
	while (*s && *s != '/')
		s++;
	*seg_len = (size_t)(s - *seg);
	*p = s;
	if (!*seg_len)
		return RT_LAST_ROOT;
	if (*seg_len == 1 && (*seg)[0] == '.')
		return RT_LAST_DOT;
	if (*seg_len == 2 && (*seg)[0] == '.' && (*seg)[1] == '.')
		return RT_LAST_DOTDOT;
	return RT_LAST_NORM;
}

bool rt_path_has_dotdot(const char *path)
{
	for (const char *p = path;;) {
		const char *seg;
		size_t n;
		enum rt_path_last kind = rt_path_next(&p, &seg, &n);

		if (kind == RT_LAST_ROOT)
			return false;
		if (kind == RT_LAST_DOTDOT)
			return true;
	}
}

size_t rt_path_pop(const char *path, size_t len, size_t keep)
{
	while (len > keep && path[len - 1] != '/')
		len--;
	return len > keep ? len - 1 : len;
}

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

		for (;;) {
			const char *seg;
			size_t seg_len;
			enum rt_path_last kind = rt_path_next(&p, &seg, &seg_len);

			if (kind == RT_LAST_ROOT)
				break;
			if (kind == RT_LAST_DOT)
				continue;
			if (kind == RT_LAST_DOTDOT) {
				len = rt_path_pop(out, len, 1);
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

enum rt_path_last rt_path_tail(const char *path, bool *slash)
{
	size_t n = strlen(path), end;

	*slash = n > 0 && path[n - 1] == '/';
	end = n;
	while (end > 0 && path[end - 1] == '/')
		end--;
	if (end == 0)
		return n ? RT_LAST_ROOT : RT_LAST_NORM;
	if (end == 1 || path[end - 2] == '/') {
		if (path[end - 1] == '.')
			return RT_LAST_DOT;
	} else if (path[end - 1] == '.' && path[end - 2] == '.' &&
		   (end == 2 || path[end - 3] == '/')) {
		return RT_LAST_DOTDOT;
	}
	return RT_LAST_NORM;
}

int rt_path_absolute(const char *cwd, const char *path, char *out, size_t out_size)
{
	char head[4096];
	bool slash;
	enum rt_path_last last = rt_path_tail(path, &slash);
	size_t n = strlen(path), end = n, start, len;
	int ret;

	if (path[0] == '/' || (last == RT_LAST_NORM && !slash))
		return rt_path_normalize(cwd, path, out, out_size);
	/* The last component as written ("name/", ".", ".."): what the call
	 * does may depend on it (rename of "d/.", open("new/", O_CREAT)). */
	while (end > 0 && path[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	if (start >= sizeof(head))
		return -ENAMETOOLONG;
	memcpy(head, path, start);
	head[start] = '\0';
	ret = rt_path_normalize(cwd, start ? head : ".", out, out_size);
	if (ret)
		return ret;
	len = strlen(out);
	if (len + 1 + (n - start) >= out_size)
		return -ENAMETOOLONG;
	if (len > 1)
		out[len++] = '/';
	memcpy(out + len, path + start, n - start + 1);
	return 0;
}
