/* kiln runtime: the table of every x86-64 system call as data (names, what
 * the runtime does, argument positions, whether the supervisor traps it),
 * expanded from syscalls.def, which scripts/runtime/gen_syscalls.py
 * generates. Used by libkiln's dispatcher, the supervisor of static programs
 * (its seccomp filter), the CLI and the unit tests. */
#include "runtime/runtime.h"

const struct rt_syscall g_rt_syscalls[RT_SYSCALL_COUNT] = {
#define RT_SYSCALL(nr, name, action, handler, fds, d0, p0, d1, p1, sv, note) \
	[nr] = { name, RT_SYS_##action, fds, { { d0, p0 }, { d1, p1 } }, sv, #handler, note },
#include "runtime/syscalls.def"
#undef RT_SYSCALL
};

const char *rt_syscall_name(long nr)
{
	if (nr < 0 || nr > RT_SYSCALL_MAX)
		return "unknown";
	return g_rt_syscalls[nr].name;
}
