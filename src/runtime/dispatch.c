/* kiln runtime: rt__dispatch, the one place where the libc wrappers and the
 * SIGSYS handler meet. The table (syscalls.def, generated) names what happens
 * to every x86-64 system call: PASS calls are issued unchanged, RUNTIME calls
 * always go to their handler, SHIELD and REFUSE calls go to their handler only
 * when they touch a protected path or fd. The fast path (a PASS call, or any
 * call while no volume is mounted) costs a table load and the raw system
 * call. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/net_load.h"
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
	rt__refuse(s->name, "%s on protected %s: not supported by the runtime (ENOTSUP)",
		   s->name, what);
	return -ENOTSUP;
}

/* The arguments of a call as the handlers see them: path arguments copied
 * into runtime memory (so a bad pointer is EFAULT, not a crash, and another
 * thread cannot change a path between the runtime's look and the kernel's)
 * and, relative ones of AT_FDCWD calls, made absolute against a virtual
 * working directory (the kernel's cwd is elsewhere then). */
struct args {
	long a[6];
	char path[2][RT_PATH_SIZE];
};

static long copy_paths(const struct rt_syscall *s, const long a[6], struct args *c)
{
	char tmp[RT_PATH_SIZE];

	for (int i = 0; i < 6; i++)
		c->a[i] = a[i];
	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];
		long r;

		/* NULL stays NULL: some calls take it (utimensat on an fd). */
		if (p < 0 || !a[p])
			continue;
		r = rt__path_in(c->path[i], (const char *)a[p], sizeof(c->path[i]));
		if (r < 0)
			return r;
		c->a[p] = (long)c->path[i];
		if (!rt__vcwd_on() || !c->path[i][0] || c->path[i][0] == '/' ||
		    (d >= 0 && (int)a[d] != AT_FDCWD))
			continue;
		r = rt__vcwd_abs(c->path[i], tmp, sizeof(tmp));
		if (r < 0)
			return r;
		memcpy(c->path[i], tmp, strlen(tmp) + 1);
	}
	return 0;
}

/* touches: rt__touches said so already (each look resolves every path). */
static long dispatch(long nr, const struct rt_syscall *s, const long a[6], bool touches)
{
	if (s->action == RT_SYS_PASS)
		return rt__raw6(nr, a);
	if (s->action == RT_SYS_RUNTIME)
		return g_handlers[nr](nr, a);
	if (!touches && !rt__touches(nr, s, a))
		return rt__raw6(nr, a);
	if (s->action == RT_SYS_REFUSE)
		return rt__sys_refuse(nr, a);
	return g_handlers[nr](nr, a);
}

/* Separate frame: the 8 KiB of path copies are only on the stack for calls
 * with paths (the SIGSYS handler may run on a small stack). */
static __attribute__((noinline)) long dispatch_paths(long nr, const struct rt_syscall *s,
						     const long a[6])
{
	struct args c;
	long r = copy_paths(s, a, &c);

	if (r < 0)
		return r;
	for (int hops = 0;; hops++) {
		if (s->action == RT_SYS_PASS || s->action == RT_SYS_RUNTIME ||
		    rt__touches(nr, s, c.a)) {
			r = dispatch(nr, s, c.a, true);
		} else if (!rt__reroute_create(nr, s, c.a, c.path)) {
			/* Nothing protected by name; through a symlink outside,
			 * maybe. */
			r = rt__raw6(nr, c.a);
			if ((r != -ENOENT && r != -ENOTDIR) ||
			    !rt__reroute_missing(nr, s, c.a, c.path))
				return r;
			r = dispatch(nr, s, c.a, false);
		} else {
			r = dispatch(nr, s, c.a, false);
		}
		/* A walk that left a volume through a symlink in it goes on
		 * from the host path it reached (ELOOP after as many hops as
		 * open allows). */
		if (r != -EXDEV || !rt__reroute_escape(nr, s, c.a, c.path))
			return r;
		if (hops == RT_ESCAPES_MAX)
			return -ELOOP;
	}
}

long rt__dispatch(long nr, const long a[6], ucontext_t *uc)
{
	const struct rt_syscall *s;

	if (nr < 0 || nr > RT_SYSCALL_MAX || t_rt_depth > 0)
		return rt__raw6(nr, a);
	s = &g_rt_syscalls[nr];
	rt__spare_use(nr, s, a); /* a lent description's flock, read ... (fast.c) */
	/* The network and console shields see their calls first (sys/socket.c). */
	if (g_rt_net_on) {
		long r;

		if (g_rt_net->call(nr, a, &r))
			return r;
	}
	/* The fast path: nothing the runtime looks at. */
	if (s->action == RT_SYS_PASS && !(s->paths[0][1] >= 0 && rt__vcwd_on()))
		return rt__raw6(nr, a);
	if (!g_rt.shield_on)
		return s->action == RT_SYS_RUNTIME ? g_handlers[nr](nr, a) : rt__raw6(nr, a);
	if (s->paths[0][1] >= 0)
		return dispatch_paths(nr, s, a);
	return dispatch(nr, s, a, false);
}
