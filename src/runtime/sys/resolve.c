/* kiln runtime: path resolution. A (dirfd, path) pair of the program becomes
 * a normalized absolute path, then the volume it lies in (the longest mount
 * prefix) or the injected file it names. Paths are resolved lexically, but for
 * ".." after a symlink in a volume (physical_dotdot). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* A component longer than NAME_MAX in a volume path: the kernel's answer
 * would be ENAMETOOLONG, whatever pf accepts. */
static bool name_too_long(const char *rel)
{
	size_t n = 0;

	for (const char *p = rel; *p; p++) {
		n = *p == '/' ? 0 : n + 1;
		if (n > NAME_MAX)
			return true;
	}
	return false;
}

/* Is rel (in t's volume) a directory? 0 yes, -ENOTDIR, -ENOENT, or another
 * error of the lookup. */
static long is_dir(const struct rt_target *t, const char *rel)
{
	struct rt_target d = { .vol = t->vol };
	struct stat st;
	long r;

	if (strlen(rel) >= sizeof(d.abs))
		return -ENAMETOOLONG;
	memcpy(d.abs, rel, strlen(rel) + 1);
	d.rel = d.abs;
	r = rt__shield_stat(&d, &st);
	if (r < 0)
		return r;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* A path written with a trailing '/' or ending in "." or "..": the object
 * before the tail must be a directory. Lexical normalization would hide that
 * ("file/." is "file", "file/.." its directory), so it is looked up here:
 * -ENOTDIR when it is something else, -ENOENT when it is missing (except for
 * "name/": creating calls decide), else 0. */
static int tail_check(struct rt_target *t, const char *path)
{
	char inner[RT_PATH_SIZE];
	const char *rel = t->rel;
	long r;

	if (t->last == RT_LAST_DOTDOT) {
		/* The object ".." was applied to: the normalized path plus the
		 * last component before "..", looked up again. */
		size_t n = strlen(path);
		size_t end, start;

		while (n > 0 && path[n - 1] == '/')
			n--;
		end = n - 2; /* before ".." */
		while (end > 0 && path[end - 1] == '/')
			end--;
		start = end;
		while (start > 0 && path[start - 1] != '/')
			start--;
		if (end == start || (end - start == 1 && path[start] == '.') ||
		    (end - start == 2 && path[start] == '.' && path[start + 1] == '.'))
			return 0; /* "..", "./.." or "../..": directories by construction */
		if ((size_t)snprintf(inner, sizeof(inner), "%s%s%.*s", t->rel,
				     t->rel[0] ? "/" : "", (int)(end - start),
				     path + start) >= sizeof(inner))
			return -ENAMETOOLONG;
		rel = inner;
	}
	r = is_dir(t, rel);
	if (r == -ENOENT && t->last == RT_LAST_NORM)
		return 0;
	return (int)r;
}

/* Skip a run of digits at *p; its value (or -1 when there is none or it is
 * too long). */
static long digits(const char **p)
{
	long v = 0;
	int n = 0;

	while (**p >= '0' && **p <= '9' && n < 10) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	return n && !(**p >= '0' && **p <= '9') ? v : -1;
}

/* Is abs this process's fd directory or an entry in it? RT_PROC_DIR,
 * RT_PROC_ENTRY (*fd: its number) or RT_PROC_NONE. */
static enum rt_proc proc_fd_path(const char *abs, int *fd)
{
	const char *p;
	long n;

	if (strncmp(abs, "/dev/fd", 7) == 0) {
		p = abs + 7;
	} else if (strncmp(abs, "/proc/", 6) == 0) {
		p = abs + 6;
		if (strncmp(p, "self/", 5) == 0) {
			p += 5;
		} else if (strncmp(p, "thread-self/", 12) == 0) {
			p += 12;
		} else {
			n = digits(&p);
			if (n < 0 || *p != '/' || n != rt__raw0(SYS_getpid))
				return RT_PROC_NONE;
			p++;
		}
		if (strncmp(p, "task/", 5) == 0) {
			/* Any task of this process is this process's. */
			p += 5;
			if (digits(&p) < 0 || *p != '/')
				return RT_PROC_NONE;
			p++;
		}
		if (strncmp(p, "fd", 2) != 0)
			return RT_PROC_NONE;
		p += 2;
	} else {
		return RT_PROC_NONE;
	}
	if (!*p)
		return RT_PROC_DIR;
	if (*p++ != '/')
		return RT_PROC_NONE;
	n = digits(&p);
	if (n < 0 || *p)
		return RT_PROC_NONE;
	*fd = (int)n;
	return RT_PROC_ENTRY;
}

/* ".." after a symlink in a volume, as the kernel resolves it: the parent of
 * the link's target, not the directory holding the link. path (absolute, or
 * relative to base) is walked component by component; before a "..", what was
 * walked so far, when it lies in a volume and is a symlink there, is replaced
 * by its target (at most 40 times: -ELOOP); something else there that is no
 * directory is -ENOTDIR, a missing one -ENOENT. 1 with out = the absolute
 * result (normalized) when a symlink was replaced; 0 when none was (the
 * lexical normalization stands); -errno. */
static int physical_dotdot(const char *base, const char *path, char *out, size_t out_size)
{
	char todo[RT_PATH_SIZE], link[RT_PATH_SIZE];
	size_t len = 0;
	int links = 0;

	if ((size_t)snprintf(todo, sizeof(todo), "%s%s%s", path[0] == '/' ? "" : base,
			     path[0] == '/' ? "" : "/", path) >= sizeof(todo))
		return -ENAMETOOLONG;
	out[0] = '\0';
	for (const char *p = todo;;) {
		const char *seg;
		size_t seg_len;
		enum rt_path_last kind = rt_path_next(&p, &seg, &seg_len);
		struct rt_target lt = { 0 };
		struct stat st = { 0 };
		long n;

		if (kind == RT_LAST_ROOT)
			break;
		if (kind == RT_LAST_DOT)
			continue;
		if (kind == RT_LAST_NORM) {
			if (len + 1 + seg_len >= out_size)
				return -ENAMETOOLONG;
			out[len] = '/';
			memcpy(out + len + 1, seg, seg_len);
			len += 1 + seg_len;
			out[len] = '\0';
			continue;
		}
		/* "..": is what it applies to a symlink in a volume? (Something
		 * else there must be a directory, as for the kernel.) */
		memcpy(lt.abs, out, len + 1);
		lt.vol = len ? rt__shield_find_vol(lt.abs, &lt.rel) : NULL;
		if (lt.vol && lt.rel[0]) {
			n = rt__shield_stat_flags(&lt, AT_SYMLINK_NOFOLLOW, &st);
			if (n < 0)
				return (int)n;
			if (!S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode))
				return -ENOTDIR;
		}
		if (!lt.vol || !lt.rel[0] || !S_ISLNK(st.st_mode)) {
			len = rt_path_pop(out, len, 0);
			out[len] = '\0';
			continue;
		}
		n = rt__shield_readlink(&lt, link, sizeof(link) - 1);
		if (n <= 0)
			return n < 0 ? (int)n : -ENOENT;
		if (++links > 40)
			return -ELOOP;
		link[n] = '\0';
		/* Go on from the link's directory (or the root) with its target,
		 * this "..", then the rest. */
		len = link[0] == '/' ? 0 : rt_path_pop(out, len, 0);
		out[len] = '\0';
		if ((size_t)n + 3 + strlen(p) >= sizeof(todo))
			return -ENAMETOOLONG;
		memmove(todo + n + 3, p, strlen(p) + 1); /* p is in todo */
		memcpy(todo, link, (size_t)n);
		memcpy(todo + n, "/..", 3);
		p = todo;
	}
	if (!links)
		return 0;
	if (!len) {
		out[0] = '/';
		out[1] = '\0';
	}
	return 1;
}

bool rt__resolve(long dirfd, const char *path, struct rt_target *t)
{
	char base[RT_PATH_SIZE];
	bool base_known = false, dotdot_done = false;
	int ret;

	t->vol = NULL;
	t->vfile = NULL;
	t->rel = "";
	t->abs[0] = '\0';
	t->err = 0;
	t->proc = RT_PROC_NONE;
	t->procfd = -1;
	t->slash = false;
	t->last = RT_LAST_NORM;
	if (!path || !path[0])
		return false;
	t->last = (uint8_t)rt_path_tail(path, &t->slash);
	if (path[0] == '/') {
		ret = rt_path_normalize(NULL, path, t->abs, sizeof(t->abs));
	} else {
		if ((int)dirfd == AT_FDCWD) {
			rt__vcwd_get(base, sizeof(base));
			if (!base[0] && rt__raw(SYS_getcwd, base, sizeof(base)) < 0)
				return false;
		} else if (rt_fd_kind((int)dirfd) == RT_FD_DIR) {
			if (!rt__shield_fd_path((int)dirfd, base, sizeof(base)))
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
		base_known = true;
		ret = rt_path_normalize(base, path, t->abs, sizeof(t->abs));
	}
	if (ret == -ENAMETOOLONG && base_known) {
		/* The joined path does not fit: inside a volume that is the
		 * program's ENAMETOOLONG (the kernel, which has the directory at
		 * hand, may accept it; outside, it decides). */
		t->vol = rt__shield_find_vol(base, &t->rel);
		t->rel = "";
		t->err = -ENAMETOOLONG;
		return t->vol != NULL;
	}
	if (ret)
		return false;
	/* Lexical ".." is wrong after a symlink in a volume. */
	if (rt_path_has_dotdot(path)) {
		char phys[RT_PATH_SIZE];

		ret = physical_dotdot(base_known ? base : "/", path, phys, sizeof(phys));
		if (ret == 1) {
			memcpy(t->abs, phys, strlen(phys) + 1);
			dotdot_done = true;
		} else if (ret < 0) {
			t->vol = rt__shield_find_vol(t->abs, &t->rel);
			t->err = ret;
			return t->vol != NULL;
		}
	}
	if (t->abs[1] == 'p' || t->abs[1] == 'd') {
		t->proc = (uint8_t)proc_fd_path(t->abs, &t->procfd);
		/* The runtime's own fds are not there for the program. */
		if (t->proc == RT_PROC_ENTRY && rt_fd_kind(t->procfd) == RT_FD_OWNED) {
			t->err = -ENOENT;
			return true;
		}
	}
	t->vol = rt__shield_find_vol(t->abs, &t->rel);
	t->vfile = rt__shield_vfile_find(t->abs);
	if (!t->vol)
		return false;
	if (name_too_long(t->rel))
		t->err = -ENAMETOOLONG;
	else if (t->slash || t->last == RT_LAST_DOT ||
		 (t->last == RT_LAST_DOTDOT && !dotdot_done))
		t->err = tail_check(t, path);
	return true;
}

/* Is fd one the runtime keeps track of for this call? The program's fds on
 * /proc/self/fd matter only to listings and to the calls that copy or close
 * fds (the copy is listed the same way); everything else on them is native. */
static bool fd_tracked(long nr, long fd)
{
	enum rt_fd_kind k = rt_fd_kind((int)fd);

	if (k != RT_FD_PROCFD)
		return k != RT_FD_NONE;
	return nr == SYS_getdents64 || nr == SYS_dup || nr == SYS_dup2 || nr == SYS_dup3 ||
	       nr == SYS_fcntl || nr == SYS_close;
}

bool rt__touches(long nr, const struct rt_syscall *s, const long a[6])
{
	struct rt_target t;

	if (nr == SYS_close_range)
		return true;
	for (int i = 0; i < 6; i++)
		if ((s->fd_mask & (1u << i)) && fd_tracked(nr, a[i]))
			return true;
	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];

		if (p < 0)
			continue;
		if (!a[p] || !((const char *)a[p])[0]) {
			/* AT_EMPTY_PATH / NULL path: the call acts on dirfd. */
			if (d >= 0 && fd_tracked(nr, a[d]))
				return true;
			continue;
		}
		if (rt__resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t) || t.vfile ||
		    t.proc)
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
		if ((s->fd_mask & (1u << i)) && fd_tracked(nr, a[i])) {
			rt__shield_fd_describe((int)a[i], out, out_size);
			return;
		}
	}
	snprintf(out, out_size, "file");
}

long rt__vfile_refuse(long nr, const struct rt_target *t)
{
	rt__refuse("injected file", "%s on injected file %s: not supported (EPERM)",
		   rt_syscall_name(nr), t->abs);
	return -EPERM;
}

long rt__ancestors(struct rt_target *t)
{
	char prefix[RT_PATH_SIZE];
	size_t n = strlen(t->rel);

	if (n >= sizeof(prefix))
		return -ENAMETOOLONG;
	memcpy(prefix, t->rel, n + 1);
	for (size_t i = 0; i < n; i++) {
		long r;

		if (prefix[i] != '/')
			continue;
		prefix[i] = '\0';
		r = is_dir(t, prefix);
		prefix[i] = '/';
		if (r < 0)
			return r;
	}
	return 0;
}

long rt__enoent(struct rt_target *t)
{
	/* The shallowest ancestor that is not a directory decides, as in the
	 * kernel's walk: missing is ENOENT, a file ENOTDIR. */
	long r = rt__ancestors(t);

	return r == -ENOTDIR ? r : -ENOENT;
}

/* ---- paths that reach a volume through symlinks outside it -------------------
 * A symlink outside every volume may point into one: the kernel, which then
 * resolves the path, would find the on-disk store (where no file has its
 * plaintext name) instead of the volume's file, and would even create a name
 * there in plaintext, beside .kiln, when the volume is mounted at its own store
 * directory. Two checks, off the fast path: before the kernel creates a name
 * (one stat of its directory), and after the kernel answered ENOENT/ENOTDIR
 * (the path is followed component by component, as the kernel would). */

/* The argument that names something the call creates, or -1. */
static int create_arg(long nr, const long a[6])
{
	switch (nr) {
	case SYS_open:
		return (a[1] & O_CREAT) ? 0 : -1;
	case SYS_creat:
	case SYS_mkdir:
	case SYS_mknod:
		return 0;
	case SYS_openat:
		return (a[2] & O_CREAT) ? 1 : -1;
	case SYS_mkdirat:
	case SYS_mknodat:
	case SYS_symlink:
	case SYS_link:
	case SYS_rename:
		return 1;
	case SYS_symlinkat:
		return 2;
	case SYS_linkat:
	case SYS_renameat:
	case SYS_renameat2:
		return 3;
	default:
		return -1;
	}
}

/* Write s into buf (the call's copy of argument p) and point the argument at
 * it; an absolute path makes the dirfd argument irrelevant. */
static bool reroute_arg(long a[6], int d, int p, char *buf, const char *s)
{
	size_t n = strlen(s);

	if (n >= RT_PATH_SIZE)
		return false;
	memmove(buf, s, n + 1);
	a[p] = (long)buf;
	if (d >= 0)
		a[d] = AT_FDCWD;
	return true;
}

bool rt__reroute_create(long nr, const struct rt_syscall *s, long a[6],
			char paths[2][RT_PATH_SIZE])
{
	char parent[RT_PATH_SIZE], mount[RT_PATH_SIZE], joined[RT_PATH_SIZE];
	int p = create_arg(nr, a), i, d;
	const char *path, *name;
	struct stat st;
	size_t n;

	if (p < 0)
		return false;
	for (i = 0; i < 2 && s->paths[i][1] != p; i++)
		;
	if (i == 2 || !a[p])
		return false;
	d = s->paths[i][0];
	path = (const char *)a[p];
	/* The directory the name goes in, as the kernel will look it up. */
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	name = path + n;
	while (name > path && name[-1] != '/')
		name--;
	if ((size_t)(name - path) >= sizeof(parent))
		return false;
	memcpy(parent, path, (size_t)(name - path));
	parent[name - path] = '\0';
	if (rt__raw(SYS_newfstatat, d >= 0 ? a[d] : AT_FDCWD, parent[0] ? parent : ".", &st,
		    0) < 0)
		return false;
	if (!S_ISDIR(st.st_mode) || !rt__shield_store_mount(st.st_dev, st.st_ino, mount,
							     sizeof(mount)))
		return false;
	if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", mount, name) >= sizeof(joined))
		return false;
	return reroute_arg(a, d, p, paths[i], joined);
}

/* Follow (dirfd, path) as the kernel does, with lstat and readlink, until it
 * enters a volume's mount point: then out is the absolute path in the volume
 * (the rest joined as written) and the answer true. False when it never
 * enters one (the kernel's answer stands). */
static bool follow_into_volume(long dirfd, const char *path, char *out, size_t out_size)
{
	char todo[RT_PATH_SIZE], cur[RT_PATH_SIZE], link[RT_PATH_SIZE];
	const char *rel;
	int links = 0;
	size_t len = 0;

	if (path[0] == '/') {
		snprintf(todo, sizeof(todo), "%s", path);
	} else {
		struct rt_target base;

		/* The base as rt__resolve sees it (cwd, or the dirfd's path). */
		if (!rt__resolve(dirfd, ".", &base) && !base.abs[0])
			return false;
		if ((size_t)snprintf(todo, sizeof(todo), "%s/%s", base.abs, path) >= sizeof(todo))
			return false;
	}
	cur[0] = '\0';
	for (const char *p = todo;;) {
		const char *seg;
		size_t seg_len;
		struct stat st;
		long r;
		enum rt_path_last kind = rt_path_next(&p, &seg, &seg_len);

		if (kind == RT_LAST_ROOT)
			break;
		if (kind == RT_LAST_DOT)
			continue;
		if (kind == RT_LAST_DOTDOT) {
			/* cur holds no symlink: ".." is its parent. */
			len = rt_path_pop(cur, len, 0);
			cur[len] = '\0';
			continue;
		}
		if (len + 1 + seg_len >= sizeof(cur))
			return false;
		cur[len] = '/';
		memcpy(cur + len + 1, seg, seg_len);
		cur[len + 1 + seg_len] = '\0';
		if (rt__shield_find_vol(cur, &rel))
			return (size_t)snprintf(out, out_size, "%s%s", cur, p) < out_size;
		r = rt__raw(SYS_newfstatat, AT_FDCWD, cur, &st, AT_SYMLINK_NOFOLLOW);
		if (r < 0)
			return false;
		if (S_ISLNK(st.st_mode)) {
			long n = rt__raw(SYS_readlink, cur, link, sizeof(link) - 1);

			if (n <= 0 || ++links > 40)
				return false;
			link[n] = '\0';
			/* Go on from the link's directory (or the root) with its
			 * target, then what was left of the path. */
			cur[len] = '\0';
			if (link[0] == '/')
				len = 0, cur[0] = '\0';
			if (strlen(link) + strlen(p) >= sizeof(todo))
				return false;
			memmove(todo + strlen(link), p, strlen(p) + 1); /* p is in todo */
			memcpy(todo, link, strlen(link));
			p = todo;
			continue;
		}
		len += 1 + seg_len;
	}
	return false;
}

bool rt__reroute_missing(long nr, const struct rt_syscall *s, long a[6],
			 char paths[2][RT_PATH_SIZE])
{
	char out[RT_PATH_SIZE];
	bool any = false;

	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];
		struct open_how how = { .flags = O_PATH | O_CLOEXEC,
					.resolve = RESOLVE_NO_SYMLINKS };
		long fd;

		if (p < 0 || !a[p] || !((const char *)a[p])[0])
			continue;
		/* One system call for the common miss (a file that is not
		 * there, python's imports): with no symlink on the way, nothing
		 * leads into a volume. */
		fd = rt__raw(SYS_openat2, d >= 0 ? a[d] : AT_FDCWD, a[p], &how, sizeof(how));
		if (fd >= 0)
			rt__raw(SYS_close, fd);
		if (fd != -ELOOP)
			continue;
		if (follow_into_volume(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], out,
				       sizeof(out)))
			any |= reroute_arg(a, d, p, paths[i], out);
	}
	return any;
}

/* ---- paths that leave a volume through a symlink in it ----------------------
 * pf answers EXDEV to a call whose walk leaves the volume (a symlink with an
 * absolute target, or one climbing above the root): the call goes on from the
 * host path the walk reaches, as the kernel would follow the link. That path
 * may lead into a volume again (an absolute link to the volume's own mount
 * point: shutil and tempfile make those). open and stat do this themselves;
 * every other call here. rename and link answer EXDEV for two volumes. */

/* Whether the call acts on a symlink in the last component itself. */
static bool nofollow_call(long nr, const long a[6])
{
	switch (nr) {
	case SYS_lchown:
	case SYS_lgetxattr:
	case SYS_llistxattr:
	case SYS_lsetxattr:
	case SYS_lremovexattr:
	case SYS_unlink:
	case SYS_unlinkat:
	case SYS_rmdir:
	case SYS_readlink:
	case SYS_readlinkat:
		return true;
	case SYS_fchownat:
		return a[4] & AT_SYMLINK_NOFOLLOW;
	case SYS_utimensat:
	case SYS_newfstatat:
		return a[3] & AT_SYMLINK_NOFOLLOW;
	case SYS_statx:
		return a[2] & AT_SYMLINK_NOFOLLOW;
	default:
		return false;
	}
}

bool rt__reroute_escape(long nr, const struct rt_syscall *s, long a[6],
			char paths[2][RT_PATH_SIZE])
{
	char host[RT_PATH_SIZE];
	bool any = false;

	if (nr == SYS_rename || nr == SYS_renameat || nr == SYS_renameat2 || nr == SYS_link ||
	    nr == SYS_linkat)
		return false;
	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];
		struct rt_target t;

		if (p < 0 || !a[p] || !((const char *)a[p])[0])
			continue;
		if (!rt__resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t) || t.vfile ||
		    t.err)
			continue;
		if (rt__shield_escape(&t, nofollow_call(nr, a) ? AT_SYMLINK_NOFOLLOW : 0, host,
				      sizeof(host)) == 1)
			any |= reroute_arg(a, d, p, paths[i], host);
	}
	return any;
}
