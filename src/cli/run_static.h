/* kiln run of a statically linked program (run_static.c): which path runs it
 * (the static loader, the seccomp supervisor, or natively), said on one line
 * before anything of it runs, and the supervised runs themselves. */
#ifndef KILN_CLI_RUN_STATIC_H
#define KILN_CLI_RUN_STATIC_H

#include <stddef.h>

#include "runtime/runtime.h"

/* --static: auto (the default) runs it under the loader when the loader can,
 * else supervised; loader and supervise force a path. */
enum cli_static_mode { CLI_STATIC_AUTO, CLI_STATIC_LOADER, CLI_STATIC_SUPERVISE };

enum cli_static_path {
	CLI_STATIC_RUN_LOADER,     /* kiln-sload with libkiln, in-process */
	CLI_STATIC_RUN_SUPERVISED, /* the seccomp supervisor in this process */
	CLI_STATIC_RUN_NATIVE,     /* nothing to shield: no volume, no --cas */
};

/* "auto", "loader" or "supervise": 0, else -EINVAL (nothing printed). */
int cli_static_mode_parse(const char *s, enum cli_static_mode *mode);

/* The path for the static program at prog (a path kiln run resolved), an
 * enum cli_static_path: for CLI_STATIC_RUN_LOADER, lib receives libkiln.so's
 * path and sload kiln-sload's; otherwise why holds the reason the loader
 * cannot run it ("" when mode is supervise), for cli_static_say. -1 after
 * one line saying why when mode is loader and the loader cannot run it.
 * Reads the program's headers; runs nothing. */
int cli_static_path(const struct rt_config *cfg, enum cli_static_mode mode, const char *prog,
		    char *lib, size_t lib_size, char *sload, size_t sload_size, char *why,
		    size_t why_size);

/* The one line that says how prog runs, with why the loader cannot run it
 * when why is not empty (may be NULL). Every path says it (issue 13). */
void cli_static_say(const char *prog, enum cli_static_path path, const char *why);

/* "kiln: development mode: no attestation" or the INSECURE sim warning. */
void cli_say_mode(const struct rt_config *cfg);

/* Development mode with volumes: run argv (the program at path) under the
 * seccomp supervisor (src/runtime/supervise.h), said with why (as
 * cli_static_say); the program's exit status, or CLI_EXIT_FAIL. */
int cli_run_supervised(const struct rt_config *cfg, const char *path, char **argv,
		       const char *why);

/* --cas: measure the file at path, attest for it and run that very file
 * supervised with the grant (said with why); the program's exit status, or
 * CLI_EXIT_FAIL after one line saying why not. */
int cli_run_supervised_attested(struct rt_config *cfg, const char *path, const char *why);

#endif
