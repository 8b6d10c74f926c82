/* kiln runtime: rt__dispatch, the one place where the libc wrappers and the
 * SIGSYS handler meet. The table (syscalls.def, generated) names what happens
 * to every x86-64 system call: PASS calls are issued unchanged, RUNTIME calls
 * always go to their handler, SHIELD and REFUSE calls go to their handler only
 * when they touch a protected path or fd. The fast path (a PASS call, or any
 * call while no volume is mounted) costs a table load and the raw system
 * call. */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* The handler of every call, from the same table as g_rt_syscalls. */
static const rt_handler_fn g_handlers[RT_SYSCALL_COUNT] = {
#define RT_SYSCALL(nr, name, action, handler, fds, d0, p0, d1, p1, sv, note) [nr] = handler,
#include "runtime/syscalls.def"
#undef RT_SYSCALL
};

long rt__sys_pass(long nr, const long a[6])
{
	return rt__raw6(nr, a);
}

long rt__sys_refuse(long nr, const long a[6])
{
	const struct rt_syscall *s = &g_rt_syscalls[nr];
	char what[512];

	rt__describe(nr, s, a, what, sizeof(what));
	rt__say("%s on protected %s: not supported by the runtime (ENOTSUP)", s->name, what);
	return -ENOTSUP;
}

/* With a virtual working directory the kernel's cwd is elsewhere: give every
 * relative AT_FDCWD path its absolute form (buffers live in the caller's
 * frame for the duration of the call). */
static const long *absolutize(const struct rt_syscall *s, const long a[6], long out[6],
			      char bufs[2][4096])
{
	bool changed = false;

	for (int i = 0; i < 6; i++)
		out[i] = a[i];
	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];
		const char *path = (const char *)a[p];

		if (p < 0 || !path || !path[0] || path[0] == '/')
			continue;
		if (d >= 0 && (int)a[d] != AT_FDCWD)
			continue;
		if (rt__vcwd_abs(path, bufs[i], sizeof(bufs[i])) == 0) {
			out[p] = (long)bufs[i];
			changed = true;
		}
	}
	return changed ? out : a;
}

static long dispatch(long nr, const struct rt_syscall *s, const long a[6]);

/* Separate frame: the 8 KiB of path buffers are only on the stack when a
 * virtual working directory is in use (the SIGSYS handler may run on a small
 * signal stack). */
static __attribute__((noinline)) long dispatch_vcwd(long nr, const struct rt_syscall *s,
						    const long a[6])
{
	char bufs[2][4096];
	long abs_args[6];

	return dispatch(nr, s, absolutize(s, a, abs_args, bufs));
}

long rt__dispatch(long nr, const long a[6], ucontext_t *uc)
{
	const struct rt_syscall *s;

	if (nr < 0 || nr > RT_SYSCALL_MAX || t_rt_depth > 0)
		return rt__raw6(nr, a);
	s = &g_rt_syscalls[nr];
	if (s->paths[0][1] >= 0 && rt__vcwd_on())
		return dispatch_vcwd(nr, s, a);
	return dispatch(nr, s, a);
}

static long dispatch(long nr, const struct rt_syscall *s, const long a[6])
{
	if (s->action == RT_SYS_PASS)
		return rt__raw6(nr, a);
	if (s->action == RT_SYS_RUNTIME)
		return g_handlers[nr](nr, a);
	if (!g_rt.shield_on || !rt__touches(nr, s, a))
		return rt__raw6(nr, a);
	if (s->action == RT_SYS_REFUSE)
		return rt__sys_refuse(nr, a);
	return rt__shield_call(nr, g_handlers[nr], a);
}
