/* kiln runtime: exec. A program the app executes is re-launched under the
 * runtime: LD_PRELOAD keeps libkiln, and the configuration travels through a
 * fresh inherited pipe named by KILN_CONFIG_FD (the child's runtime reads and
 * closes it before main). In development mode the configuration holds the
 * volume keys, so the child gets the same volumes; under attestation it holds
 * only the CAS connection and the child attests again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

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
	memset(e, 0, sizeof(*e));
	e->pipe_rd = -1;
}

int rt__exec_env(char *const *envp, struct rt_exec_env *e)
{
	size_t n = 0, k = 0;
	bool have_preload = false;
	int pipefd[2];
	long ret;

	memset(e, 0, sizeof(*e));
	e->pipe_rd = -1;
	if (!g_rt.initialized || !g_rt.config_text || !g_rt.lib_path[0])
		return -ENOENT;
	while (envp && envp[n])
		n++;
	e->env = calloc(n + 3, sizeof(*e->env));
	if (!e->env)
		return -ENOMEM;
	ret = rt__raw(SYS_pipe2, pipefd, 0);
	if (ret < 0)
		goto fail;
	e->pipe_rd = pipefd[0];
	/* The config is small (< 64 KiB pipe buffer): the writes cannot block.
	 * A virtual working directory travels as a "cwd" line before "end", and
	 * so do the protected fds the new program inherits ("fd" lines). */
	{
		size_t len = g_rt.config_size, tail_len = 0, cap = 16384;
		char *tail = malloc(cap);
		long want;

		if (!tail) {
			ret = -ENOMEM;
			rt__raw(SYS_close, pipefd[1]);
			goto fail;
		}
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
		ret = rt__raw(SYS_write, pipefd[1], g_rt.config_text, len);
		want = (long)len;
		if (ret == want && tail_len) {
			want = (long)tail_len;
			ret = rt__raw(SYS_write, pipefd[1], tail, want);
		}
		free(tail);
		rt__raw(SYS_close, pipefd[1]);
		if (ret != want) {
			ret = ret < 0 ? ret : -EIO;
			goto fail;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (strncmp(envp[i], RT_ENV_CONFIG_FD "=", sizeof(RT_ENV_CONFIG_FD)) == 0)
			continue;
		if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) {
			have_preload = true;
			if (!has_lib(envp[i] + 11, g_rt.lib_path)) {
				size_t len = strlen(envp[i]) + strlen(g_rt.lib_path) + 2;

				e->preload = malloc(len);
				if (!e->preload) {
					ret = -ENOMEM;
					goto fail;
				}
				snprintf(e->preload, len, "LD_PRELOAD=%s:%s", g_rt.lib_path,
					 envp[i] + 11);
				e->env[k++] = e->preload;
				continue;
			}
		}
		e->env[k++] = envp[i];
	}
	if (!have_preload) {
		size_t len = strlen(g_rt.lib_path) + 12;

		e->preload = malloc(len);
		if (!e->preload) {
			ret = -ENOMEM;
			goto fail;
		}
		snprintf(e->preload, len, "LD_PRELOAD=%s", g_rt.lib_path);
		e->env[k++] = e->preload;
	}
	snprintf(e->fdvar, sizeof(e->fdvar), RT_ENV_CONFIG_FD "=%d", e->pipe_rd);
	e->env[k++] = e->fdvar;
	e->env[k] = NULL;
	return 0;
fail:
	rt__exec_env_free(e);
	return (int)ret;
}

long rt__exec(long nr, const long a[6])
{
	char *const *envp = (char *const *)(nr == SYS_execve ? a[2] : a[3]);
	struct rt_exec_env e;
	long ret;

	ret = rt__exec_env(envp, &e);
	if (ret == -ENOENT)
		return rt__raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (ret)
		return ret;
	if (nr == SYS_execve)
		ret = rt__raw(SYS_execve, a[0], a[1], e.env);
	else
		ret = rt__raw(SYS_execveat, a[0], a[1], a[2], e.env, a[4]);
	rt__exec_env_free(&e);
	return ret;
}

/* The program's envp, which rt__exec_env reads: EFAULT as the kernel would
 * answer, never a crash. */
static long envp_check(char *const *uenvp)
{
	for (size_t i = 0;; i++) {
		const char *s;
		long r = rt__copy_in(&s, uenvp + i, sizeof(s));

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
	char *const *envp = (char *const *)(nr == SYS_execve ? a[2] : a[3]);
	long r;

	if (g_rt.shield_on && rt__touches(nr, &g_rt_syscalls[nr], a))
		return rt__sys_refuse(nr, a);
	if (envp && (r = envp_check(envp)) < 0)
		return r;
	return rt__exec(nr, a);
}

long rt__sys_execveat(long nr, const long a[6])
{
	return rt__sys_execve(nr, a);
}
