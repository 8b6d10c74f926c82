/* kiln runtime: rt_dispatch, the one place where the libc wrappers and the
 * SIGSYS handler meet. The table in syscalls.c decides; the fast path (a PASS
 * call, or any call while no volume is mounted) costs a table load and the
 * raw system call. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/prctl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "runtime/rt_int.h"

struct k_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#define SIGSYS_BIT (1ull << (SIGSYS - 1))

static inline long raw6(long nr, const long a[6])
{
	return rt_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The app's disposition for SIGSYS: kept here, never installed (SIGSYS belongs
 * to the dispatcher). */
static struct k_sigaction g_app_sigsys;

static long do_sigaction(const long a[6])
{
	struct k_sigaction act;
	const struct k_sigaction *in = (const void *)a[1];

	if (a[0] == SIGSYS && g_rt.sud_on) {
		if (a[2])
			memcpy((void *)a[2], &g_app_sigsys, sizeof(g_app_sigsys));
		if (in)
			memcpy(&g_app_sigsys, in, sizeof(g_app_sigsys));
		return 0;
	}
	if (!in || !g_rt.sud_on)
		return raw6(SYS_rt_sigaction, a);
	act = *in;
	/* SIGSYS must stay deliverable inside the app's handlers, and their
	 * return must come from the allowed region. */
	act.mask &= ~SIGSYS_BIT;
	if (act.flags & SA_RESTORER)
		act.restorer = (void *)rt_stub_sigreturn;
	return rt_sys(SYS_rt_sigaction, a[0], &act, a[2], a[3]);
}

static long do_sigprocmask(const long a[6])
{
	uint64_t set;

	if (!a[1] || !g_rt.sud_on || a[3] != 8)
		return raw6(SYS_rt_sigprocmask, a);
	set = *(const uint64_t *)a[1];
	if (a[0] != SIG_UNBLOCK)
		set &= ~SIGSYS_BIT;
	return rt_sys(SYS_rt_sigprocmask, a[0], &set, a[2], a[3]);
}

static long refuse(long nr, const struct rt_syscall *s, const long a[6])
{
	char what[512];

	rt_shield_describe(nr, s, a, what, sizeof(what));
	rt_say("%s on protected %s: not supported by the runtime (ENOTSUP)", s->name, what);
	return -ENOTSUP;
}

static long runtime_call(long nr, const struct rt_syscall *s, const long a[6])
{
	switch (nr) {
	case SYS_rt_sigaction:
		return do_sigaction(a);
	case SYS_rt_sigprocmask:
		return do_sigprocmask(a);
	case SYS_prctl:
		if (a[0] == PR_SET_SYSCALL_USER_DISPATCH && g_rt.sud_on)
			return -EBUSY;
		return raw6(nr, a);
	case SYS_execve:
	case SYS_execveat:
		if (g_rt.shield_on && rt_shield_touches(nr, s, a))
			return refuse(nr, s, a);
		return rt_exec(nr, a);
	case SYS_io_uring_setup:
		if (g_rt.shield_on) {
			rt_say("io_uring_setup: refused while volumes are mounted "
			       "(rings would bypass the file shield)");
			return -ENOSYS;
		}
		return raw6(nr, a);
	case SYS_clone3:
		if (g_rt.sud_on)
			return -ENOSYS;
		return raw6(nr, a);
	case SYS_chdir:
	case SYS_fchdir:
	case SYS_getcwd:
		if (g_rt.shield_on)
			return rt_shield_call(nr, a);
		return raw6(nr, a);
	default:
		return raw6(nr, a);
	}
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
		if (rt_vcwd_abs(path, bufs[i], sizeof(bufs[i])) == 0) {
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

long rt_dispatch(long nr, const long a[6], ucontext_t *uc)
{
	const struct rt_syscall *s;

	if (nr < 0 || nr > RT_SYSCALL_MAX || t_rt_depth > 0)
		return raw6(nr, a);
	s = &g_rt_syscalls[nr];
	if (s->paths[0][1] >= 0 && rt_vcwd_on())
		return dispatch_vcwd(nr, s, a);
	return dispatch(nr, s, a);
}

static long dispatch(long nr, const struct rt_syscall *s, const long a[6])
{
	if (s->action == RT_SYS_PASS)
		return raw6(nr, a);
	if (s->action == RT_SYS_RUNTIME)
		return runtime_call(nr, s, a);
	if (!g_rt.shield_on || !rt_shield_touches(nr, s, a))
		return raw6(nr, a);
	if (s->action == RT_SYS_REFUSE)
		return refuse(nr, s, a);
	return rt_shield_call(nr, a);
}
