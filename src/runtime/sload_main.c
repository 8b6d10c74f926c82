/* kiln-sload: the loader of statically linked programs (`kiln run
 * --static=loader`, docs/runtime.md "The static loader"). kiln run starts it
 * with libkiln.so preloaded; the loader's code is this program's (sload.c and
 * its parts), the runtime's is libkiln's, reached through the table libkiln
 * exports for it (sload_host.h), so no other process maps the loader.
 * Usage (by kiln run only): kiln-sload PROGRAM ARGV0 [ARGS...] */
#include <dlfcn.h>
#include <stdio.h>

#include "runtime/sload.h"
#include "runtime/sload_host.h"

int main(int argc, char **argv)
{
	rt_sload_host_fn host = (rt_sload_host_fn)dlsym(RTLD_DEFAULT, RT_SLOAD_HOST);

	if (!host) {
		fprintf(stderr, "kiln-sload: libkiln.so is not loaded (start programs with "
			"kiln run --static=loader)\n");
		return 1;
	}
	if (rt__sload_host_set(host()) < 0) {
		fprintf(stderr, "kiln-sload: the libkiln.so loaded is not of this kiln-sload's "
			"build (reinstall kiln)\n");
		return 1;
	}
	return kiln_sload_main(argc, argv);
}
