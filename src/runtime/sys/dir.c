/* kiln runtime: directories: listings (getdents64) and the working directory.
 *
 * A volume directory that is not a directory on disk (every one but the root
 * of a volume mounted at its own directory) cannot be the kernel's working
 * directory: chdir into it makes it the virtual working directory (g_vcwd),
 * the kernel's being the volume directory, and rt__dispatch turns relative
 * paths of AT_FDCWD calls into absolute ones. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* The working directory when it is a volume directory (see rt__vcwd_on). */
static char g_vcwd[RT_PATH_SIZE];
static atomic_bool g_vcwd_set;

bool rt__vcwd_on(void)
{
	return atomic_load_explicit(&g_vcwd_set, memory_order_relaxed);
}

int rt__vcwd_abs(const char *path, char *out, size_t out_size)
{
	return rt_path_normalize(g_vcwd, path, out, out_size);
}

void rt__vcwd_get(char *out, size_t out_size)
{
	snprintf(out, out_size, "%s", atomic_load(&g_vcwd_set) ? g_vcwd : "");
}

/* chdir into a volume: the root of a volume mounted at its own directory is
 * a real directory the kernel can hold; any other volume directory becomes
 * the virtual working directory (the kernel's is the volume directory). */
static long chdir_volume(struct rt_target *t)
{
	long r = rt__shield_chdir(t);

	if (r < 0)
		return r;
	if (r == 1) {
		atomic_store(&g_vcwd_set, false);
		return 0;
	}
	snprintf(g_vcwd, sizeof(g_vcwd), "%s", t->abs);
	atomic_store(&g_vcwd_set, true);
	return 0;
}

int rt__vcwd_init(struct kiln_err *err)
{
	struct rt_target t;

	if (!g_rt.cfg.cwd[0])
		return 0;
	/* Inherited from the parent across exec. */
	if (!rt__resolve(AT_FDCWD, g_rt.cfg.cwd, &t) || chdir_volume(&t) < 0)
		return kiln_err_set(err, -ENOENT, "working directory %s: not in a volume",
				    g_rt.cfg.cwd);
	return 0;
}

static long chdir_locked(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct rt_target t;
	long r;

	if (rt__resolve(AT_FDCWD, path, &t))
		return chdir_volume(&t);
	r = rt__raw(SYS_chdir, path);
	if (r == 0)
		atomic_store(&g_vcwd_set, false);
	return r;
}

static long fchdir_locked(long nr, const long a[6])
{
	struct rt_target t;
	long fd = a[0];
	long r;

	if (rt_fd_kind((int)fd) == RT_FD_DIR) {
		if (!rt__shield_dir_target((int)fd, &t))
			return -ENAMETOOLONG;
		return chdir_volume(&t);
	}
	if (rt__own_badf(fd))
		return -EBADF;
	r = rt__raw(SYS_fchdir, fd);
	if (r == 0)
		atomic_store(&g_vcwd_set, false);
	return r;
}

static long getcwd_locked(long nr, const long a[6])
{
	char *buf = (char *)a[0];
	size_t size = (size_t)a[1];
	size_t n;

	if (!atomic_load(&g_vcwd_set))
		return rt__raw(SYS_getcwd, buf, size);
	n = strlen(g_vcwd) + 1;
	if (n > size)
		return -ERANGE;
	memcpy(buf, g_vcwd, n);
	return (long)n;
}

long rt__sys_chdir(long nr, const long a[6])
{
	if (!g_rt.shield_on)
		return rt__raw6(nr, a);
	return rt__shield_call(nr, chdir_locked, a);
}

long rt__sys_fchdir(long nr, const long a[6])
{
	if (!g_rt.shield_on)
		return rt__raw6(nr, a);
	return rt__shield_call(nr, fchdir_locked, a);
}

long rt__sys_getcwd(long nr, const long a[6])
{
	if (!g_rt.shield_on)
		return rt__raw6(nr, a);
	return rt__shield_call(nr, getcwd_locked, a);
}

long rt__sys_getdents64(long nr, const long a[6])
{
	return rt__shield_getdents(a[0], (void *)a[1], (size_t)a[2]);
}
