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

#include "runtime/net_load.h"
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

/* Call the program's handler h as the kernel would, its flags as they were
 * before an SA_RESETHAND took the handler away (an SA_SIGINFO handler still
 * gets its siginfo). */
static void call_program(void *h, unsigned long flags, int sig, siginfo_t *si, void *ctx)
{
	struct rt_thread *t = t_rt_thread;

	/* What this thread wrote last to a TLS connection goes now, sealed by
	 * the network shield's engine (net/hold.c; not here, where libc's locks
	 * may be held), and so does what the handler writes. (A handler that
	 * longjmps out leaves in_handler up: the engine seals from then on.) */
	if (t) {
		if (t->net_held)
			g_rt_net->hold_kick();
		t->in_handler++;
	}
	if (flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))h)(sig, si, ctx);
	else
		((void (*)(int))h)(sig);
	if (t)
		t->in_handler--;
}

/* The kernel would deliver sig with the program's disposition: do what it
 * would have done, from inside the runtime's handler. */
static void chain(int sig, siginfo_t *si, void *ctx)
{
	struct k_sigaction *app = app_of(sig);
	void *h = app->handler;
	bool fault = si->si_code > 0; /* raised by the kernel for this instruction */
	unsigned long flags;
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
	flags = app->flags;
	if (flags & SA_RESETHAND) {
		app->handler = SIG_DFL;
		app->flags &= ~SA_SIGINFO;
	}
	call_program(h, flags, sig, si, ctx);
}

static bool keep(int sig, siginfo_t *si);

static void fault_handler(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;

	if (si->si_code > 0 && rt__uaccess_owns((uintptr_t)g[REG_RIP])) {
		/* A bad pointer of the program met by a copy routine: EFAULT. */
		g[REG_RIP] = (greg_t)rt__uaccess_fault;
		return;
	}
	if (t_rt_depth > 0 && keep(sig, si))
		return;
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

/* ---- deferral: the shields' guards ------------------------------------------
 * A guard (sud.c) must keep the program's handlers from running while the
 * runtime holds a lock they could ask for again (the shield's lock, a
 * connection, malloc's). Masking signals for that costs two rt_sigprocmask per
 * guard: most of what a small TLS request, or a cached lookup of the file
 * shield, cost. Instead, once a shield is on, the program's handlers of the
 * standard signals (and glibc's two internal ones) are installed as the
 * runtime's defer_handler, which calls the program's handler as the kernel
 * would have, except inside a guard: there it notes the signal in the thread's
 * block (thread.c, made when the guard began), and rt__leave sends it again to
 * the thread (rt_tgsigqueueinfo with the same siginfo) when the guard ends. A
 * second one of a signal already kept is dropped, as the kernel drops a
 * standard signal that is pending already. A fault of the runtime's own code
 * inside a guard is fatal, as it was with the signal blocked.
 * A real-time signal of the program's may be queued more than once, which one
 * note per signal could not keep: a handler for one turns deferral off for
 * good, and guards mask as before. */
#ifndef SYS_rt_tgsigqueueinfo
#define SYS_rt_tgsigqueueinfo 297 /* x86-64 */
#endif
#define DEFER_MAX RT_DEFER_MAX

static struct k_sigaction g_prog[DEFER_MAX + 1]; /* the program's, where wrapped */
static _Atomic uint64_t g_wrapped;                /* SIG_BIT: defer_handler installed */
static _Atomic bool g_defer_on, g_defer_ok;

static bool deferrable(long sig)
{
	return sig >= 1 && sig <= DEFER_MAX && sig != SIGKILL && sig != SIGSTOP &&
	       !(SIG_BIT(sig) & RT_KEPT_SIGS);
}

bool rt__sig_can_defer(void)
{
	return atomic_load_explicit(&g_defer_ok, memory_order_relaxed);
}

/* A signal inside a guard: true when kept for the guard's end, or when it is
 * a fault of the runtime's own code (the default action follows, as for a
 * blocked fault); false without a thread block to keep it in. */
static bool keep(int sig, siginfo_t *si)
{
	struct rt_thread *t;

	if (si->si_code > 0 && (sig == SIGILL || sig == SIGFPE || sig == SIGTRAP ||
				sig == SIGSEGV || sig == SIGBUS)) {
		struct k_sigaction dfl = { .handler = SIG_DFL };

		rt__raw(SYS_rt_sigaction, sig, &dfl, NULL, 8);
		return true;
	}
	t = rt__thread();
	if (!t)
		return false;
	/* One instruction each (a handler of another signal may come between
	 * any two). */
	if (!(t->deferred & SIG_BIT(sig))) {
		t->info[sig - 1] = *si;
		__atomic_fetch_or(&t->deferred, SIG_BIT(sig), __ATOMIC_SEQ_CST);
	}
	return true;
}

static void defer_handler(int sig, siginfo_t *si, void *ctx)
{
	struct k_sigaction *p = &g_prog[sig];
	struct rt_thread *t = t_rt_thread;
	void *h = p->handler;
	unsigned long flags;

	if (t && t->defer) {
		keep(sig, si);
		return;
	}
	if (h == SIG_DFL || h == SIG_IGN)
		return; /* changed meanwhile: sigaction installed it with the kernel */
	flags = p->flags;
	if (flags & SA_RESETHAND) {
		struct k_sigaction dfl = { .handler = SIG_DFL };

		rt__raw(SYS_rt_sigaction, sig, &dfl, NULL, 8);
		atomic_fetch_and(&g_wrapped, ~SIG_BIT(sig));
		p->handler = SIG_DFL;
		p->flags &= ~SA_SIGINFO;
	}
	call_program(h, flags, sig, si, ctx);
}

void rt__sig_redeliver(struct rt_thread *t)
{
	/* Taken in one instruction: a handler that runs from here on (outside
	 * the guard now) may end a guard of its own, which must not send these
	 * again; what it keeps is its own to send. */
	uint64_t d = __atomic_exchange_n(&t->deferred, 0, __ATOMIC_SEQ_CST);
	long pid = rt__raw0(SYS_getpid), tid = rt__raw0(SYS_gettid);

	for (int sig = 1; sig <= DEFER_MAX; sig++)
		if (d & SIG_BIT(sig))
			rt__raw(SYS_rt_tgsigqueueinfo, pid, tid, sig, &t->info[sig - 1]);
}

/* Install the program's action act for sig: through defer_handler when it
 * is a handler (the kernel's copy keeps its mask and flags, but never resets
 * itself: defer_handler does, when it calls the program). */
static long install(long sig, const struct k_sigaction *act)
{
	struct k_sigaction k = *act;
	long r;

	k.mask &= ~RT_KEPT_SIGS;
	k.restorer = (void *)rt__stub_sigreturn;
	k.flags |= SA_RESTORER;
	if (act->handler != SIG_DFL && act->handler != SIG_IGN) {
		k.handler = (void *)defer_handler;
		k.flags = (k.flags | SA_SIGINFO) & ~SA_RESETHAND;
	}
	g_prog[sig] = *act;
	r = rt__raw(SYS_rt_sigaction, sig, &k, NULL, 8);
	if (r == 0 && k.handler == (void *)defer_handler)
		atomic_fetch_or(&g_wrapped, SIG_BIT(sig));
	else if (r == 0)
		atomic_fetch_and(&g_wrapped, ~SIG_BIT(sig));
	return r;
}

int rt__sig_defer_init(void)
{
	bool ok = g_rt.sud_on;

	for (long sig = 1; sig <= 64; sig++) {
		struct k_sigaction old;

		if (sig == SIGKILL || sig == SIGSTOP || (SIG_BIT(sig) & RT_KEPT_SIGS) ||
		    rt__raw(SYS_rt_sigaction, sig, NULL, &old, 8) < 0 ||
		    old.handler == SIG_DFL || old.handler == SIG_IGN)
			continue;
		if (!deferrable(sig)) {
			ok = false;
			continue;
		}
		if (install(sig, &old) < 0)
			ok = false;
	}
	atomic_store(&g_defer_on, true);
	atomic_store(&g_defer_ok, ok);
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
	if (atomic_load(&g_defer_on) && a[3] == 8 && deferrable(a[0])) {
		struct k_sigaction old;
		long r = 0;

		if (atomic_load(&g_wrapped) & SIG_BIT(a[0]))
			old = g_prog[a[0]];
		else if ((r = rt__raw(SYS_rt_sigaction, a[0], NULL, &old, 8)) < 0)
			return r;
		if (in && rt__copy_in(&act, in, sizeof(act)))
			return -EFAULT;
		if (in && (r = install(a[0], &act)) < 0)
			return r;
		if (a[2] && rt__copy_out((void *)a[2], &old, sizeof(old)))
			return -EFAULT;
		return 0;
	}
	if (atomic_load(&g_defer_on) && in && a[0] > DEFER_MAX && a[0] <= 64) {
		struct k_sigaction peek;

		if (!rt__copy_in(&peek, in, sizeof(peek)) && peek.handler != SIG_DFL &&
		    peek.handler != SIG_IGN)
			atomic_store(&g_defer_ok, false); /* queued signals: mask */
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
