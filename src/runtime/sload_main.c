/* kiln-sload: the loader of statically linked programs (`kiln run
 * --static=loader`, docs/runtime.md "The static loader"). kiln run starts it
 * with libkiln.so preloaded; the work is libkiln's (sload.c), found here by
 * name so that this program links nothing of the runtime itself.
 * Usage (by kiln run only): kiln-sload PROGRAM ARGV0 [ARGS...] */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	int (*run)(int, char **) = (int (*)(int, char **))dlsym(RTLD_DEFAULT, "kiln_sload_main");

	if (!run) {
		fprintf(stderr, "kiln-sload: libkiln.so is not loaded (start programs with "
			"kiln run --static=loader)\n");
		return 1;
	}
	return run(argc, argv);
}
