/* kiln runtime: kiln-sload's side of the seam with libkiln.so (sload_host.h).
 * The loader's sources call the runtime's functions by their names, as they
 * would inside libkiln; here each name is the entry of the table libkiln
 * lends. Some run on the program's FS (sload_trap.c's fast path): they use no
 * TLS and no stack protector's canary (no arrays), only g_host. */
#include <stdarg.h>
#include <stdio.h>

#include "runtime/sload.h"
#include "runtime/sload_host.h"

/* libkiln's table: set by rt__sload_host_set before anything else runs. */
static const struct rt_sload_host *g_host;

int rt__sload_host_set(const struct rt_sload_host *host)
{
	if (!host || host->abi != RT_SLOAD_ABI)
		return -1;
	g_host = host;
	rt__lent_set(host->lent);
	return 0;
}

bool rt__initialized(void)
{
	return g_host->initialized();
}

int rt__sload_take_program(int *err)
{
	return g_host->take_program(err);
}

bool rt__attest_argv(int *argc, char ***argv, char ***env)
{
	return g_host->attest_argv(argc, argv, env);
}

void rt__refuse(const char *key, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	g_host->refuse(key, line);
}

long rt__sigmask_on_context(const long a[6], ucontext_t *uc)
{
	return g_host->sigmask_on_context(a, uc);
}

void rt__sigsys(int sig, siginfo_t *si, void *ctx)
{
	g_host->sigsys(sig, si, ctx);
}

void (*rt__sload_restorer(void))(void)
{
	return g_host->stub_sigreturn;
}

void rt__thread_exit(void)
{
	g_host->thread_exit();
}

enum rt_fd_kind rt_fd_kind(int fd)
{
	return g_host->fd_kind(fd);
}

bool rt__shield_on(void)
{
	return g_host->shield_on();
}

void rt__sload_started(void)
{
	g_host->started();
}

const char *rt__sload_program(void)
{
	return g_host->program();
}
