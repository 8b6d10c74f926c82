/* kiln runtime: directories: listings (getdents64) and the working directory.
 *
 * A volume directory that is not a directory on disk (every one but the root
 * of a volume mounted at its own directory) cannot be the kernel's working
 * directory: chdir into it makes it the virtual working directory (g_vcwd),
 * the kernel's being the volume directory, and rt__dispatch turns relative
 * paths of AT_FDCWD calls into absolute ones. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* The working directory when it is a volume directory (see rt__vcwd_on).
 * Read without a lock by every call with a relative path (also in the SIGSYS
 * handler): a sequence counter, odd while a chdir writes, lets a reader
 * retry instead of seeing half a path; writers are serialized by g_vcwd_lock
 * inside a guard. */
static char g_vcwd[RT_PATH_SIZE];
static atomic_bool g_vcwd_set;
static atomic_uint g_vcwd_seq;
static atomic_flag g_vcwd_lock = ATOMIC_FLAG_INIT;

bool rt__vcwd_on(void)
{
	return atomic_load_explicit(&g_vcwd_set, memory_order_relaxed);
}

/* Copy the virtual working directory into out ("" when there is none). */
static void vcwd_read(char *out, size_t out_size)
{
	unsigned seq;

	do {
		while ((seq = atomic_load_explicit(&g_vcwd_seq, memory_order_acquire)) & 1)
			;
		if (!atomic_load(&g_vcwd_set))
			snprintf(out, out_size, "%s", "");
		else
			snprintf(out, out_size, "%s", g_vcwd);
		atomic_thread_fence(memory_order_acquire);
	} while (atomic_load_explicit(&g_vcwd_seq, memory_order_relaxed) != seq);
}

/* Set (path) or clear (NULL) the virtual working directory. */
static void vcwd_set(const char *path)
{
	struct rt_guard g;

	rt__enter(&g);
	while (atomic_flag_test_and_set_explicit(&g_vcwd_lock, memory_order_acquire))
		;
	atomic_fetch_add_explicit(&g_vcwd_seq, 1, memory_order_acq_rel);
	if (path)
		snprintf(g_vcwd, sizeof(g_vcwd), "%s", path);
	atomic_store(&g_vcwd_set, path != NULL);
	atomic_fetch_add_explicit(&g_vcwd_seq, 1, memory_order_release);
	atomic_flag_clear_explicit(&g_vcwd_lock, memory_order_release);
	rt__leave(&g);
}

int rt__vcwd_abs(const char *path, char *out, size_t out_size)
{
	char cwd[RT_PATH_SIZE];
	const char *rel;
	int ret;

	vcwd_read(cwd, sizeof(cwd));
	ret = rt_path_normalize(cwd, path, out, out_size);
	/* Inside a volume the handlers look at the last component as written
	 * ("new/", "d/."), and rt__resolve at every ".." as written (after a
	 * symlink it is physical); outside, the kernel gets the lexical result
	 * (the virtual directories do not exist on disk). */
	if (ret == 0 && rt__shield_find_vol(out, &rel)) {
		if (!rt_path_has_dotdot(path))
			return rt_path_absolute(cwd, path, out, out_size);
		if ((size_t)snprintf(out, out_size, "%s%s%s", cwd, cwd[1] ? "/" : "", path) >=
		    out_size)
			return -ENAMETOOLONG;
	}
	return ret;
}

void rt__vcwd_get(char *out, size_t out_size)
{
	vcwd_read(out, out_size);
}

/* chdir into a volume: the root of a volume mounted at its own directory is
 * a real directory the kernel can hold; any other volume directory becomes
 * the virtual working directory (the kernel's is the volume directory). */
static long chdir_volume(struct rt_target *t)
{
	long r = t->err ? t->err : rt__shield_chdir(t);

	if (r == -ENOENT)
		r = rt__enoent(t);
	if (r < 0)
		return r;
	vcwd_set(r == 1 ? NULL : t->abs);
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

long rt__sys_chdir(long nr, const long a[6])
{
	const char *path = (const char *)a[0];
	struct rt_target t;
	long r;

	if (!g_rt.shield_on)
		return rt__raw6(nr, a);
	if (rt__resolve(AT_FDCWD, path, &t))
		return chdir_volume(&t);
	if (t.vfile)
		return rt__vfile_refuse(nr, &t);
	r = rt__raw(SYS_chdir, path);
	if (r == 0)
		vcwd_set(NULL);
	return r;
}

long rt__sys_fchdir(long nr, const long a[6])
{
	struct rt_target t;
	long fd = a[0];
	long r;

	if (!g_rt.shield_on)
		return rt__raw6(nr, a);
	if (rt_fd_kind((int)fd) == RT_FD_DIR) {
		if (!rt__shield_dir_target((int)fd, &t))
			return -ENAMETOOLONG;
		return chdir_volume(&t);
	}
	if (rt__own_badf(fd))
		return -EBADF;
	r = rt__raw(SYS_fchdir, fd);
	if (r == 0)
		vcwd_set(NULL);
	return r;
}

long rt__sys_getcwd(long nr, const long a[6])
{
	char cwd[RT_PATH_SIZE];
	size_t n;
	long r;

	if (!g_rt.shield_on)
		return rt__raw6(nr, a);
	vcwd_read(cwd, sizeof(cwd));
	if (!cwd[0])
		return rt__raw6(nr, a);
	n = strlen(cwd) + 1;
	if (n > (size_t)a[1])
		return -ERANGE;
	r = rt__copy_out((void *)a[0], cwd, n);
	return r < 0 ? r : (long)n;
}

/* Is the entry name a number naming one of the runtime's own fds? */
static bool owned_entry(const char *name)
{
	long fd = 0;

	if (!*name)
		return false;
	for (const char *p = name; *p; p++) {
		if (*p < '0' || *p > '9' || fd > RT_FD_MAX)
			return false;
		fd = fd * 10 + (*p - '0');
	}
	return rt_fd_kind((int)fd) == RT_FD_OWNED;
}

/* A listing of this process's /proc/self/fd without the runtime's own fds
 * (their number changes with the cache of closed files; a program that
 * closes "every other fd" must not see them). The kernel's d_off values are
 * kept, so telldir/seekdir work as natively. Never 0 before the end. */
static long getdents_procfd(long fd, char *buf, size_t size)
{
	for (;;) {
		long r = rt__raw(SYS_getdents64, fd, buf, size);
		size_t in = 0, out = 0;

		if (r <= 0)
			return r;
		while (in < (size_t)r) {
			struct dirent64 *d = (struct dirent64 *)(buf + in);
			size_t len = d->d_reclen;

			if (!owned_entry(d->d_name)) {
				memmove(buf + out, d, len);
				out += len;
			}
			in += len;
		}
		if (out)
			return (long)out;
	}
}

/* Listings are made in runtime memory (a bounded buffer: a short listing is
 * what getdents may return anyway) and copied out. */
long rt__sys_getdents64(long nr, const long a[6])
{
	char buf[4096];
	size_t size = (size_t)a[2] < sizeof(buf) ? (size_t)a[2] : sizeof(buf);
	long r;

	if (rt_fd_kind((int)a[0]) == RT_FD_PROCFD)
		r = getdents_procfd(a[0], buf, size);
	else
		r = rt__shield_getdents(a[0], buf, size);
	if (r <= 0)
		return r;
	return rt__copy_out((void *)a[1], buf, (size_t)r) < 0 ? -EFAULT : r;
}
