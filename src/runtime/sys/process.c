/* kiln runtime: processes and threads: the calls the runtime keeps for
 * itself. (fork, vfork and clone are set up by the SIGSYS handler in sud.c and
 * the libc wrappers in wrap.c, which give a new thread or child its own
 * dispatch selector and volume state.) */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

long rt__sys_prctl(long nr, const long a[6])
{
	if (a[0] == PR_SET_SYSCALL_USER_DISPATCH && g_rt.sud_on)
		return -EBUSY;
	return rt__raw6(nr, a);
}

long rt__sys_io_uring_setup(long nr, const long a[6])
{
	if (g_rt.shield_on) {
		rt__refuse("io_uring", "io_uring_setup: refused while volumes are mounted "
			   "(rings would bypass the file shield)");
		return -ENOSYS;
	}
	return rt__raw6(nr, a);
}

/* libc falls back to clone, which the SIGSYS handler knows how to run on a
 * new stack. */
long rt__sys_clone3(long nr, const long a[6])
{
	if (g_rt.sud_on)
		return -ENOSYS;
	return rt__raw6(nr, a);
}
