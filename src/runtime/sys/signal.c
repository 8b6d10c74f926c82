/* kiln runtime: signals. Three signals belong to the runtime while it runs:
 * SIGSYS to Syscall User Dispatch, SIGSEGV and SIGBUS to the fault recovery of
 * the copy routines (uaccess.c). The program's dispositions for them are kept
 * here, never installed: SIGSYS is never the program's, a SIGSEGV or SIGBUS
 * that is not the runtime's goes on to the program's disposition as the kernel
 * would have delivered it. The program can never block the three (a blocked
 * SIGSYS from dispatch, or a blocked fault, would kill the process); a
 * sigprocmask that asks for it is applied without them. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "runtime/sys/sys.h"

#define SIG_BIT(sig) (1ull << ((sig) - 1))

/* The program's dispositions: [0] SIGSYS, [1] SIGSEGV, [2] SIGBUS. */
static struct k_sigaction g_app[3];

static struct k_sigaction *app_of(long sig)
{
	if (sig == SIGSYS && g_rt.sud_on)
		return &g_app[0];
	if (sig == SIGSEGV && g_rt_fault_handler)
		return &g_app[1];
	if (sig == SIGBUS && g_rt_fault_handler)
		return &g_app[2];
	return NULL;
}

/* The kernel would deliver sig with the program's disposition: do what it
 * would have done, from inside the runtime's handler. */
static void chain(int sig, siginfo_t *si, void *ctx)
{
	struct k_sigaction *app = app_of(sig);
	void *h = app->handler;
	bool fault = si->si_code > 0; /* raised by the kernel for this instruction */
	uint64_t mask;

	if (h == SIG_DFL || (h == SIG_IGN && fault)) {
		/* The default action (the kernel never lets a fault be ignored):
		 * a fault faults again on return, a sent signal is sent again. */
		struct k_sigaction dfl = { .handler = SIG_DFL };
		uint64_t bit = SIG_BIT(sig);

		rt__raw(SYS_rt_sigaction, sig, &dfl, NULL, 8);
		if (!fault) {
			rt__raw(SYS_rt_sigprocmask, SIG_UNBLOCK, &bit, NULL, 8);
			rt__raw(SYS_tgkill, rt__raw0(SYS_getpid), rt__raw0(SYS_gettid), sig);
		}
		return;
	}
	if (h == SIG_IGN)
		return;
	/* The program's handler with its mask (never the runtime's signals). */
	mask = app->mask & ~RT_KEPT_SIGS;
	rt__raw(SYS_rt_sigprocmask, SIG_BLOCK, &mask, NULL, 8);
	if (app->flags & SA_RESETHAND) {
		app->handler = SIG_DFL;
		app->flags &= ~SA_SIGINFO;
	}
	if (app->flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))h)(sig, si, ctx);
	else
		((void (*)(int))h)(sig);
}

static void fault_handler(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;

	if (si->si_code > 0 && rt__uaccess_owns((uintptr_t)g[REG_RIP])) {
		/* A bad pointer of the program met by a copy routine: EFAULT. */
		g[REG_RIP] = (greg_t)rt__uaccess_fault;
		return;
	}
	chain(sig, si, ctx);
}

bool g_rt_fault_handler;

int rt__fault_init(void)
{
	struct k_sigaction sa = {
		.handler = (void *)fault_handler,
		/* SA_ONSTACK: a stack overflow of the program reaches its own
		 * handler on its alternate stack. */
		.flags = SA_SIGINFO | SA_RESTORER | SA_NODEFER | SA_ONSTACK,
		.restorer = (void *)rt__stub_sigreturn,
		.mask = 0,
	};
	const int sigs[2] = { SIGSEGV, SIGBUS };
	uint64_t kept = RT_KEPT_SIGS;

	/* A mask inherited across exec may block them. */
	rt__raw(SYS_rt_sigprocmask, SIG_UNBLOCK, &kept, NULL, 8);
	for (int i = 0; i < 2; i++) {
		long r = rt__raw(SYS_rt_sigaction, sigs[i], &sa, &g_app[1 + i], 8);

		if (r < 0)
			return (int)r;
	}
	g_rt_fault_handler = true;
	return 0;
}

long rt__sys_rt_sigaction(long nr, const long a[6])
{
	struct k_sigaction act, *app = app_of(a[0]);
	const void *in = (const void *)a[1];

	if (app && a[3] == 8) {
		struct k_sigaction old = *app;

		if (in && rt__copy_in(&act, in, sizeof(act)))
			return -EFAULT;
		if (a[2] && rt__copy_out((void *)a[2], &old, sizeof(old)))
			return -EFAULT;
		if (in)
			*app = act;
		return 0;
	}
	if (!in || !g_rt.sud_on)
		return rt__raw6(SYS_rt_sigaction, a);
	if (rt__copy_in(&act, in, sizeof(act)))
		return -EFAULT;
	/* The runtime's signals must stay deliverable inside the app's handlers,
	 * and their return must come from the allowed region. */
	act.mask &= ~RT_KEPT_SIGS;
	if (act.flags & SA_RESTORER)
		act.restorer = (void *)rt__stub_sigreturn;
	return rt__raw(SYS_rt_sigaction, a[0], &act, a[2], a[3]);
}

long rt__sys_rt_sigprocmask(long nr, const long a[6])
{
	uint64_t set;

	if (!a[1] || !g_rt.sud_on || a[3] != 8)
		return rt__raw6(SYS_rt_sigprocmask, a);
	if (rt__copy_in(&set, (const void *)a[1], sizeof(set)))
		return -EFAULT;
	if (a[0] != SIG_UNBLOCK)
		set &= ~RT_KEPT_SIGS;
	return rt__raw(SYS_rt_sigprocmask, a[0], &set, a[2], a[3]);
}
