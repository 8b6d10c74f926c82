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

/* _exit, or exit after the destructors (rt_stop): as at a normal exit,
 * what this process wrote is committed and the volume's last client waits
 * for its server's close (dash ends with _exit: `kiln run sh -c ...` would
 * return with the server still closing the volume). Not from a handler of
 * the program: the code it interrupted may hold libc's locks. */
long rt__sys_exit_group(long nr, const long a[6])
{
	struct rt_thread *t = t_rt_thread;

	if (g_rt.initialized && !(t && t->in_handler))
		rt__shield_exit();
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
