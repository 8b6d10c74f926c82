/* kiln runtime: exec. A program the app executes is re-launched under the
 * runtime: LD_PRELOAD keeps libkiln, and the configuration travels through a
 * fresh inherited pipe named by KILN_CONFIG_FD (the child's runtime reads and
 * closes it before main). In development mode the configuration holds the
 * volume keys, so the child gets the same volumes, and the caller's argv and
 * environment pass unchanged.
 *
 * Under attestation (issue 16 item 5) the executed program attests for itself
 * and its main() receives the argv and environment of its own grant, never
 * the caller's. So nothing of the caller's argv but argv[0], and nothing of
 * its environment -- the policy's secrets -- crosses the exec: the kernel would
 * copy them onto the new program's stack, readable in /proc/PID/environ by
 * every process of the uid until the child's runtime makes it non-dumpable (30
 * of 30 children of an attested python were caught), and for ever by a
 * program the runtime never reaches. The child gets envp = { LD_PRELOAD=libkiln,
 * KILN_CONFIG_FD=N } and the pipe carries the configuration, which holds no
 * secret under attestation. A statically linked program cannot load libkiln: it
 * is executed through kiln instead (`kiln run --cas ... -- PROGRAM`, which
 * attests for it under the static loader, or supervised where the loader cannot
 * run it, docs/runtime.md); a program that
 * cannot be read (so not checked) or a script whose interpreter is static is
 * refused with one line on stderr, and a file that is neither ELF nor #! gets
 * ENOEXEC as from the kernel. Swapping the file after it was checked gains
 * nothing: whatever the kernel then runs gets no secret in argv or envp. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "evidence/evidence.h"
#include "runtime/sload.h"
#include "runtime/sys/sys.h"

static bool has_lib(const char *preload, const char *lib)
{
	size_t n = strlen(lib);

	for (const char *p = preload; (p = strstr(p, lib)); p += n)
		if ((p == preload || p[-1] == ':' || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ':' || p[n] == ' '))
			return true;
	return false;
}

void rt__exec_env_free(struct rt_exec_env *e)
{
	if (e->pipe_rd >= 0)
		rt__raw(SYS_close, e->pipe_rd);
	free(e->preload);
	free(e->env);
	free(e->argv);
	free(e->strs);
	memset(e, 0, sizeof(*e));
	e->pipe_rd = -1;
}

/* The pipe with the configuration; a virtual working directory travels as a
 * "cwd" line before "end", and so do the protected fds the new program
 * inherits ("fd" lines). e->pipe_rd is its inheritable read end. */
static long config_pipe(struct rt_exec_env *e)
{
	size_t len = g_rt.config_size, tail_len = 0, cap = 16384;
	char *tail = malloc(cap);
	int pipefd[2];
	long ret, want;

	if (!tail)
		return -ENOMEM;
	ret = rt__raw(SYS_pipe2, pipefd, 0);
	if (ret < 0)
		goto out;
	e->pipe_rd = pipefd[0];
	if (len >= 4 && memcmp(g_rt.config_text + len - 4, "end\n", 4) == 0) {
		char cwd[4200];

		len -= 4;
		rt__vcwd_get(cwd, sizeof(cwd));
		if (cwd[0])
			tail_len = (size_t)snprintf(tail, cap, "cwd %s\n", cwd);
		if (g_rt.shield_on)
			tail_len += rt__shield_exec_lines(tail + tail_len, cap - tail_len - 8);
		tail_len += (size_t)snprintf(tail + tail_len, cap - tail_len, "end\n");
	}
	/* The config is small (< 64 KiB pipe buffer): the writes cannot block. */
	ret = rt__raw(SYS_write, pipefd[1], g_rt.config_text, len);
	want = (long)len;
	if (ret == want && tail_len) {
		want = (long)tail_len;
		ret = rt__raw(SYS_write, pipefd[1], tail, want);
	}
	rt__raw(SYS_close, pipefd[1]);
	if (ret != want) {
		ret = ret < 0 ? ret : -EIO;
		goto out;
	}
	ret = 0;
	snprintf(e->fdvar, sizeof(e->fdvar), RT_ENV_CONFIG_FD "=%d", e->pipe_rd);
out:
	free(tail);
	return ret;
}

/* ---- what the attested process executes ------------------------------------ */

enum exec_kind { EXEC_DYNAMIC, EXEC_STATIC, EXEC_MUSL };

/* The runtime library a dynamic program of that kind loads: this one, or the
 * other C library's build installed next to it (libkiln.so and
 * libkiln-musl.so, docs/runtime.md); NULL when that one is not there. */
static const char *runtime_lib(int kind, char *buf, size_t size)
{
	const char *want = kind == EXEC_MUSL ? "libkiln-musl.so" : "libkiln.so";
	const char *slash = strrchr(g_rt.lib_path, '/');

	if (strcmp(want, RT_LIBKILN_NAME) == 0)
		return g_rt.lib_path;
	if (!slash || (size_t)snprintf(buf, size, "%.*s/%s", (int)(slash - g_rt.lib_path),
				       g_rt.lib_path, want) >= size ||
	    rt__raw(SYS_faccessat, AT_FDCWD, buf, R_OK, 0) < 0)
		return NULL;
	return buf;
}

/* Open the program (dirfd, path, AT_* flags as execveat takes them) for
 * reading; e->exe receives its path. */
static long open_program(int dirfd, const char *path, int at_flags, struct rt_exec_env *e)
{
	char link[64];
	long fd, n;

	if ((at_flags & AT_EMPTY_PATH) && !path[0]) {
		/* fexecve: the descriptor itself, reopened for reading (it may be
		 * O_PATH). */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		fd = rt__raw(SYS_openat, AT_FDCWD, link, O_RDONLY | O_CLOEXEC);
	} else {
		fd = rt__raw(SYS_openat, dirfd, path, O_RDONLY | O_CLOEXEC |
			     ((at_flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0));
	}
	if (fd < 0)
		return fd;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", (int)fd);
	n = rt__raw(SYS_readlink, link, e->exe, sizeof(e->exe) - 1);
	e->exe[n > 0 ? n : 0] = '\0';
	return fd;
}

/* Static, dynamic (glibc) or musl; a script is what its interpreter is (the
 * kernel follows at most 4 of them). < 0 with *why set: refused. */
static int classify(int fd, int depth, const char **why)
{
	char head[256], *interp, *end;
	long n = rt__raw(SYS_pread64, fd, head, sizeof(head) - 1, 0);
	int ifd, kind;

	if (n < 0) {
		*why = "cannot be read, so not checked";
		return (int)n;
	}
	head[n] = '\0';
	if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
		struct kiln_err err = { 0 };
		struct ev_elf_info info;

		/* No valid x86-64 program: the kernel's exec says ENOEXEC, as
		 * without kiln. */
		if (ev_elf_classify_fd(fd, &info, &err) < 0)
			return EXEC_DYNAMIC;
		if (info.kind == EV_ELF_OTHER) {
			*why = "its program interpreter is neither glibc's nor musl's: no kiln "
			       "runtime can be loaded into it";
			return -EACCES;
		}
		return info.kind == EV_ELF_STATIC ? EXEC_STATIC :
		       info.kind == EV_ELF_MUSL ? EXEC_MUSL : EXEC_DYNAMIC;
	}
	if (n < 3 || head[0] != '#' || head[1] != '!') {
		/* ENOEXEC: glibc's execvp then runs it with /bin/sh, as it would
		 * without kiln; binfmt_misc handlers are not used. */
		*why = "neither an ELF executable nor a #! script";
		return -ENOEXEC;
	}
	if (depth >= 4) {
		*why = "too many levels of #! interpreters";
		return -ELOOP;
	}
	for (interp = head + 2; *interp == ' ' || *interp == '\t'; interp++)
		;
	end = interp + strcspn(interp, " \t\n");
	*end = '\0';
	ifd = (int)rt__raw(SYS_openat, AT_FDCWD, interp, O_RDONLY | O_CLOEXEC);
	if (ifd < 0) {
		*why = "its #! interpreter cannot be read";
		return ifd;
	}
	kind = classify(ifd, depth + 1, why);
	rt__raw(SYS_close, ifd);
	if (kind == EXEC_STATIC) {
		*why = "a script whose #! interpreter is statically linked (no runtime would "
		       "attest it)";
		return -EACCES;
	}
	return kind;
}

/* argv of `kiln run --cas ... -- EXE`: kiln runs the static program as the
 * launcher does for one (the static loader, or its supervisor where the
 * loader cannot run it), attested. */
static long supervisor_argv(struct rt_exec_env *e)
{
	const struct rt_config *c = &g_rt.cfg;
	size_t n = 0, pos = 0, cap = 64 + 2 * RT_MAX_HOST_ENV + 2 * RT_MAX_VOLUMES;
	size_t strs_size = RT_MAX_VOLUMES * (sizeof(c->volume_dirs[0].name) +
					     sizeof(c->volume_dirs[0].dir) + 2);

	e->argv = calloc(cap, sizeof(*e->argv));
	e->strs = malloc(strs_size);
	if (!e->argv || !e->strs)
		return -ENOMEM;
	e->argv[n++] = (char *)c->kiln;
	e->argv[n++] = "run";
	e->argv[n++] = "--cas";
	e->argv[n++] = (char *)c->cas;
	if (c->cas_ca[0]) {
		e->argv[n++] = "--cas-ca";
		e->argv[n++] = (char *)c->cas_ca;
	}
	if (c->cas_fingerprint[0]) {
		e->argv[n++] = "--cas-fingerprint";
		e->argv[n++] = (char *)c->cas_fingerprint;
	}
	if (c->cas_key[0]) {
		e->argv[n++] = "--cas-key";
		e->argv[n++] = (char *)c->cas_key;
	}
	e->argv[n++] = "--session";
	e->argv[n++] = (char *)c->session;
	e->argv[n++] = "--service";
	e->argv[n++] = (char *)c->service;
	e->argv[n++] = "--tee";
	e->argv[n++] = (char *)c->tee;
	e->argv[n++] = "--freshness";
	e->argv[n++] = (char *)rt_freshness_name(c->freshness);
	if (c->las_socket[0]) {
		e->argv[n++] = "--las-socket";
		e->argv[n++] = (char *)c->las_socket;
	}
	for (size_t i = 0; i < c->n_host_env; i++) {
		e->argv[n++] = "--host-env";
		e->argv[n++] = (char *)c->host_env[i];
	}
	for (size_t i = 0; i < c->n_volume_dirs; i++) {
		int w = snprintf(e->strs + pos, strs_size - pos, "%s=%s", c->volume_dirs[i].name,
				 c->volume_dirs[i].dir);

		e->argv[n++] = "--volume-dir";
		e->argv[n++] = e->strs + pos;
		pos += (size_t)w + 1;
	}
	e->argv[n++] = "--";
	e->argv[n++] = e->exe;
	e->argv[n] = NULL;
	e->path = c->kiln;
	e->env = calloc(1, sizeof(*e->env));
	return e->env ? 0 : -ENOMEM;
}

static long attested_env(int dirfd, const char *path, int at_flags, char *const *argv,
			 struct rt_exec_env *e)
{
	const char *why = NULL, *lib = NULL;
	char other[4200];
	long fd, ret;
	int kind;

	fd = open_program(dirfd, path, at_flags, e);
	if (fd < 0) {
		/* Not there: the kernel's own answer. Not readable: not checked. */
		if (fd != -EACCES && fd != -EPERM)
			return fd;
		why = "cannot be read, so not checked";
		kind = (int)fd;
	} else {
		kind = classify((int)fd, 0, &why);
		rt__raw(SYS_close, fd);
	}
	if (kind == EXEC_STATIC && !g_rt.cfg.kiln[0]) {
		why = "statically linked, and the kiln supervisor is not known (launched by an "
		      "older kiln run)";
		kind = -EACCES;
	}
	if (kind >= 0 && kind != EXEC_STATIC && !(lib = runtime_lib(kind, other, sizeof(other)))) {
		why = kind == EXEC_MUSL ? "linked against musl, and libkiln-musl.so is not "
		      "installed next to the runtime" : "linked against glibc, and libkiln.so "
		      "is not installed next to the runtime";
		kind = -EACCES;
	}
	if (kind < 0) {
		if (kind != -ENOEXEC)
			rt__say("attested program: not executing %s: %s", e->exe[0] ? e->exe : path,
				why);
		return kind;
	}
	if (kind == EXEC_STATIC)
		return supervisor_argv(e);
	/* Dynamic: libkiln alone in its environment, argv[0] alone in its argv. */
	e->env = calloc(3, sizeof(*e->env));
	e->argv = calloc(2, sizeof(*e->argv));
	e->preload = malloc(strlen(lib) + 12);
	if (!e->env || !e->argv || !e->preload)
		return -ENOMEM;
	ret = config_pipe(e);
	if (ret)
		return ret;
	sprintf(e->preload, "LD_PRELOAD=%s", lib);
	e->env[0] = e->preload;
	e->env[1] = e->fdvar;
	e->argv[0] = argv && argv[0] ? argv[0] : e->exe;
	return 0;
}

/* Development mode: which runtime the program loads. Nothing is refused here
 * that development mode ran before; only a musl program (or a script of a
 * musl interpreter) gets libkiln-musl.so, and without it EACCES, said (its
 * loader would fail on libkiln.so less clearly). */
static const char *dev_lib(int dirfd, const char *path, int at_flags, struct rt_exec_env *e,
			   char *buf, size_t size, int *kind_out)
{
	const char *why = NULL, *lib;
	long fd = open_program(dirfd, path, at_flags, e);
	int kind;

	if (fd < 0)
		return g_rt.lib_path;
	kind = classify((int)fd, 0, &why);
	*kind_out = kind;
	rt__raw(SYS_close, fd);
	if (kind != EXEC_MUSL && kind != EXEC_DYNAMIC)
		return g_rt.lib_path;
	lib = runtime_lib(kind, buf, size);
	if (!lib)
		rt__say("not executing %s: %s, and %s is not installed next to %s", e->exe,
			kind == EXEC_MUSL ? "linked against musl" : "linked against glibc",
			kind == EXEC_MUSL ? "libkiln-musl.so" : "libkiln.so", g_rt.lib_path);
	return lib;
}

/* Development mode: the caller's environment, with the runtime (lib) first in
 * LD_PRELOAD and the configuration's fd. A program of the other C library
 * gets its runtime alone in LD_PRELOAD: what the caller preloaded is built for
 * the caller's C library and could not load. */
static long dev_env(char *const *envp, const char *lib, struct rt_exec_env *e)
{
	size_t n = 0, k = 0;
	bool have_preload = false, other_libc = lib != g_rt.lib_path;
	long ret;

	while (envp && envp[n])
		n++;
	e->env = calloc(n + 3, sizeof(*e->env));
	if (!e->env)
		return -ENOMEM;
	ret = config_pipe(e);
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(envp[i], RT_ENV_CONFIG_FD "=", sizeof(RT_ENV_CONFIG_FD)) == 0)
			continue;
		if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) {
			if (other_libc)
				continue;
			have_preload = true;
			if (!has_lib(envp[i] + 11, lib)) {
				size_t len = strlen(envp[i]) + strlen(lib) + 2;

				e->preload = malloc(len);
				if (!e->preload)
					return -ENOMEM;
				snprintf(e->preload, len, "LD_PRELOAD=%s:%s", lib, envp[i] + 11);
				e->env[k++] = e->preload;
				continue;
			}
		}
		e->env[k++] = envp[i];
	}
	if (!have_preload) {
		size_t len = strlen(lib) + 12;

		e->preload = malloc(len);
		if (!e->preload)
			return -ENOMEM;
		snprintf(e->preload, len, "LD_PRELOAD=%s", lib);
		e->env[k++] = e->preload;
	}
	e->env[k++] = e->fdvar;
	e->env[k] = NULL;
	return 0;
}

int rt__exec_env(int dirfd, const char *path, int at_flags, char *const *argv,
		 char *const *envp, struct rt_exec_env *e)
{
	long ret;

	memset(e, 0, sizeof(*e));
	e->pipe_rd = -1;
	atomic_fetch_add(&g_spare_epoch, 1); /* the child shares descriptions */
	if (!g_rt.initialized || !g_rt.config_text || !g_rt.lib_path[0])
		return 1;
	if (g_rt.cfg.cas[0]) {
		ret = attested_env(dirfd, path, at_flags, argv, e);
	} else {
		char other[4200];
		int kind = -1;
		const char *lib = dev_lib(dirfd, path, at_flags, e, other, sizeof(other), &kind);

		ret = lib ? dev_env(envp, lib, e) : -EACCES;
		/* Under the static loader a static program runs in the loader
		 * again (e->exe: the file as opened and classified). */
		if (ret == 0 && kind == EXEC_STATIC && g_rt.sload_on)
			ret = rt__sload_exec_argv(e->exe, argv, e);
	}
	if (ret)
		rt__exec_env_free(e);
	return (int)ret;
}

long rt__exec(long nr, const long a[6])
{
	char *const *argv = (char *const *)(nr == SYS_execve ? a[1] : a[2]);
	char *const *envp = (char *const *)(nr == SYS_execve ? a[2] : a[3]);
	char path[4096];
	struct rt_exec_env e;
	long ret, self[6];

	ret = rt__path_in(path, (const char *)(nr == SYS_execve ? a[0] : a[1]), sizeof(path));
	if (ret < 0)
		return ret;
	/* Under the static loader /proc/self/exe is kiln-sload; the program
	 * means itself (busybox runs its applets so). */
	if (rt__sload_program() && strcmp(path, "/proc/self/exe") == 0) {
		snprintf(path, sizeof(path), "%s", rt__sload_program());
		memcpy(self, a, sizeof(self));
		self[nr == SYS_execve ? 0 : 1] = (long)path;
		if (nr == SYS_execveat)
			self[0] = AT_FDCWD;
		a = self;
	}
	ret = rt__exec_env(nr == SYS_execve ? AT_FDCWD : (int)a[0], path,
			   nr == SYS_execve ? 0 : (int)a[4], argv, envp, &e);
	if (ret > 0)
		return rt__raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (ret)
		return ret;
	if (e.path)
		ret = rt__raw(SYS_execve, e.path, e.argv, e.env);
	else if (nr == SYS_execve)
		ret = rt__raw(SYS_execve, a[0], e.argv ? e.argv : argv, e.env);
	else
		ret = rt__raw(SYS_execveat, a[0], a[1], e.argv ? e.argv : argv, e.env, a[4]);
	rt__exec_env_free(&e);
	return ret;
}

/* The program's argv or envp, which rt__exec_env reads: EFAULT as the kernel
 * would answer, never a crash. */
static long vec_check(char *const *uvec)
{
	for (size_t i = 0;; i++) {
		const char *s;
		long r = rt__copy_in(&s, uvec + i, sizeof(s));

		if (r < 0)
			return r;
		if (!s)
			return 0;
		/* MAX_ARG_STRLEN: the kernel's limit for one string. */
		r = rt__str_check(s, 32 * 4096);
		if (r < 0)
			return r;
	}
}

/* A protected file is never executed: the kernel would run its ciphertext. */
long rt__sys_execve(long nr, const long a[6])
{
	char *const *argv = (char *const *)(nr == SYS_execve ? a[1] : a[2]);
	char *const *envp = (char *const *)(nr == SYS_execve ? a[2] : a[3]);
	long r;

	if (g_rt.shield_on && rt__touches(nr, &g_rt_syscalls[nr], a))
		return rt__sys_refuse(nr, a);
	if (envp && (r = vec_check(envp)) < 0)
		return r;
	if (argv && (r = vec_check(argv)) < 0)
		return r;
	return rt__exec(nr, a);
}

long rt__sys_execveat(long nr, const long a[6])
{
	return rt__sys_execve(nr, a);
}
