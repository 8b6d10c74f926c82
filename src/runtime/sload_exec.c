/* kiln runtime: what an exec inside a program run by the static loader
 * (sload.c) needs: in both libkiln builds (sys/exec.c calls it), though only
 * glibc's libkiln runs the loader (g_rt.sload_on). */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include "runtime/sload.h"

char g_rt_sload_path[4096];

const char *rt__sload_program(void)
{
	return g_rt.sload_on ? g_rt_sload_path : NULL;
}

/* An exec of a static program from the loaded one: kiln-sload again (this
 * very file), with the program and its argv. e->argv: malloc'd, strings
 * borrowed; e->path: static. */
long rt__sload_exec_argv(const char *path, char *const *argv, struct rt_exec_env *e)
{
	static char self[4096];
	size_t n = 0;
	long len = rt__raw(SYS_readlink, "/proc/self/exe", self, sizeof(self) - 1);

	if (len <= 0)
		return -ENOEXEC;
	self[len] = '\0';
	while (argv && argv[n])
		n++;
	e->argv = calloc(n + 3, sizeof(*e->argv));
	if (!e->argv)
		return -ENOMEM;
	e->argv[0] = self;
	e->argv[1] = (char *)path;
	for (size_t i = 0; i < n; i++)
		e->argv[2 + i] = argv[i];
	/* An empty argv still names the program for kiln-sload. */
	if (!n)
		e->argv[2] = (char *)path;
	e->path = self;
	return 0;
}

