/* kiln runtime: signals. SIGSYS belongs to the dispatcher while Syscall User
 * Dispatch is on: the program's disposition for it is kept here, never
 * installed, and the program can never block it (a blocked SIGSYS from
 * dispatch would kill the process). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

/* The app's disposition for SIGSYS: kept here, never installed (SIGSYS belongs
 * to the dispatcher). */
static struct k_sigaction g_app_sigsys;

long rt__sys_rt_sigaction(long nr, const long a[6])
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
		return rt__raw6(SYS_rt_sigaction, a);
	act = *in;
	/* SIGSYS must stay deliverable inside the app's handlers, and their
	 * return must come from the allowed region. */
	act.mask &= ~SIGSYS_BIT;
	if (act.flags & SA_RESTORER)
		act.restorer = (void *)rt__stub_sigreturn;
	return rt__raw(SYS_rt_sigaction, a[0], &act, a[2], a[3]);
}

long rt__sys_rt_sigprocmask(long nr, const long a[6])
{
	uint64_t set;

	if (!a[1] || !g_rt.sud_on || a[3] != 8)
		return rt__raw6(SYS_rt_sigprocmask, a);
	set = *(const uint64_t *)a[1];
	if (a[0] != SIG_UNBLOCK)
		set &= ~SIGSYS_BIT;
	return rt__raw(SYS_rt_sigprocmask, a[0], &set, a[2], a[3]);
}
