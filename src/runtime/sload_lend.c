/* kiln runtime: what libkiln lends the static loader, whose code is kiln-sload's
 * own (sload_host.h): kiln-sload's main asks for this table by the one name
 * libkiln exports for it. glibc's libkiln only, as the loader. */
#include "runtime/sload.h"
#include "runtime/sload_host.h"

static bool initialized(void)
{
	return g_rt.initialized;
}

/* The descriptor is the loader's from now on (it maps and closes it). */
static int take_program(int *err)
{
	int fd = g_rt_sload_fd;

	*err = g_rt_sload_errno;
	g_rt_sload_fd = -1;
	return fd;
}

static void refuse_line(const char *key, const char *line)
{
	rt__refuse(key, "%s", line);
}

static void started(void)
{
	g_rt.sload_on = true;
}

static const struct rt_sload_host g_sload_host = {
	.abi = RT_SLOAD_ABI,
	.initialized = initialized,
	.take_program = take_program,
	.attest_argv = rt__attest_argv,
	.lent = &rt__lent,
	.refuse = refuse_line,
	.sigmask_on_context = rt__sigmask_on_context,
	.sigsys = rt__sigsys,
	.stub_sigreturn = rt__stub_sigreturn,
	.thread_exit = rt__thread_exit,
	.fd_kind = rt_fd_kind,
	.shield_on = rt__shield_on,
	.started = started,
	.program = rt__sload_program,
};

__attribute__((visibility("default"))) const struct rt_sload_host *kiln_sload_host(void);

const struct rt_sload_host *kiln_sload_host(void)
{
	return &g_sload_host;
}
