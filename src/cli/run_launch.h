/* What `kiln run` of a development-mode dynamic program needs (run_launch.c),
 * built into both binaries: the front (`kiln`, cli/front.c), which runs that
 * common case itself linking only libc, and the full tool (`kiln-tool`,
 * cli/run.c), which runs every case. One option table and one parser for
 * the options both take, so the two cannot disagree on a command line. */
#ifndef KILN_CLI_RUN_LAUNCH_H
#define KILN_CLI_RUN_LAUNCH_H

#include <getopt.h>
#include <stdbool.h>

#include "runtime/runtime.h"

enum {
	OPT_VOLUME = 256, OPT_FRESHNESS, OPT_SUD, OPT_CAS, OPT_CAS_CA, OPT_CAS_FP, OPT_SESSION,
	OPT_SERVICE, OPT_TEE, OPT_LAS_SOCKET, OPT_HOST_ENV, OPT_VOLUME_DIR, OPT_CAS_KEY,
	OPT_CONSOLE_LISTEN, OPT_STATIC
};

/* A development-mode configuration (freshness every-fsync), with getopt reset
 * for cli_run_getopt; NULL when out of memory. */
struct rt_config *cli_run_config_new(void);
/* kiln run's options, one at a time: --volume, --freshness and --sud are taken
 * into cfg (*sud: "on", "off" or "auto"); returns the next other option's
 * getopt code ('h', OPT_CAS, ..., '?' for an unknown one), -1 at the end of
 * the options (optind: PROGRAM), CLI_RUN_OPT_BAD after telling the user what
 * is wrong with one of the three. */
#define CLI_RUN_OPT_BAD (-2)
int cli_run_getopt(int argc, char **argv, struct rt_config *cfg, const char **sud);
/* Whether Syscall User Dispatch is on for --sud (auto: with a volume or --cas). */
bool cli_run_sud_on(const char *sud, const struct rt_config *cfg);
/* PROGRAM resolved as execvp does; out is "" when it is not found. */
void cli_run_which(const char *prog, char *out, size_t out_size);
/* Which path serves the program at path (*kind, an enum ev_elf_kind;
 * *links_kiln: a kiln-cc build, which brings its runtime), or -1 once the
 * user is told why none can. A file it cannot open is left to exec. */
int cli_run_check_program(const char *path, int *kind, bool *links_kiln);
/* Hand cfg to the program through the config pipe and exec args: with
 * LD_PRELOAD=lib (NULL: a kiln-cc build, nothing preloaded), under the static
 * loader sload with prog (said so) when sload is not NULL, else as execvp.
 * Returns only on failure: CLI_EXIT_FAIL after telling the user. */
int cli_run_exec(struct rt_config *cfg, const char *lib, const char *sload, const char *prog,
		 char **args);
/* A dynamic program (or a script) of that kind: the runtime it preloads
 * found (none for a kiln-cc build, links_kiln), then cli_run_exec. */
int cli_run_dynamic(struct rt_config *cfg, int kind, bool links_kiln, char **args);

#endif
