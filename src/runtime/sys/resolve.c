/* kiln runtime: path resolution. A (dirfd, path) pair of the program becomes
 * a normalized absolute path, then the volume it lies in (the longest mount
 * prefix) or the injected file it names. Paths are resolved lexically. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

bool rt__resolve(long dirfd, const char *path, struct rt_target *t)
{
	char base[RT_PATH_SIZE];

	t->vol = NULL;
	t->vfile = NULL;
	if (!path || !path[0])
		return false;
	if (path[0] == '/') {
		if (rt_path_normalize(NULL, path, t->abs, sizeof(t->abs)))
			return false;
	} else {
		if ((int)dirfd == AT_FDCWD) {
			rt__vcwd_get(base, sizeof(base));
			if (!base[0] && rt__raw(SYS_getcwd, base, sizeof(base)) < 0)
				return false;
		} else if (rt_fd_kind((int)dirfd) == RT_FD_DIR) {
			if (!rt__shield_dir_path((int)dirfd, base, sizeof(base)))
				return false;
		} else {
			char link[64];
			long n;

			snprintf(link, sizeof(link), "/proc/self/fd/%d", (int)dirfd);
			n = rt__raw(SYS_readlink, link, base, sizeof(base) - 1);
			if (n <= 0 || base[0] != '/')
				return false;
			base[n] = '\0';
		}
		if (rt_path_normalize(base, path, t->abs, sizeof(t->abs)))
			return false;
	}
	t->vol = rt__shield_find_vol(t->abs, &t->rel);
	t->vfile = rt__shield_vfile_find(t->abs);
	return t->vol != NULL;
}

static bool fd_tracked(long fd)
{
	return rt_fd_kind((int)fd) != RT_FD_NONE;
}

bool rt__touches(long nr, const struct rt_syscall *s, const long a[6])
{
	struct rt_target t;

	if (nr == SYS_close_range)
		return true;
	for (int i = 0; i < 6; i++)
		if ((s->fd_mask & (1u << i)) && fd_tracked(a[i]))
			return true;
	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];

		if (p < 0)
			continue;
		if (!a[p] || !((const char *)a[p])[0]) {
			/* AT_EMPTY_PATH / NULL path: the call acts on dirfd. */
			if (d >= 0 && fd_tracked(a[d]))
				return true;
			continue;
		}
		if (rt__resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t) || t.vfile)
			return true;
	}
	return false;
}

void rt__describe(long nr, const struct rt_syscall *s, const long a[6], char *out,
		  size_t out_size)
{
	struct rt_target t;

	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];

		if (p >= 0 && a[p] && rt__resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t)) {
			snprintf(out, out_size, "path %s", t.abs);
			return;
		}
	}
	for (int i = 0; i < 6; i++) {
		if ((s->fd_mask & (1u << i)) && fd_tracked(a[i])) {
			rt__shield_fd_describe((int)a[i], out, out_size);
			return;
		}
	}
	snprintf(out, out_size, "file");
}

long rt__vfile_refuse(long nr, const struct rt_target *t)
{
	rt__say("%s on injected file %s: not supported (EPERM)", rt_syscall_name(nr), t->abs);
	return -EPERM;
}
