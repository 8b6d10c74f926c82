/* kiln CLI: one `<cmd>_main(argc, argv)` per subcommand file (WireGuard tools style).
 * argv[0] is the subcommand name. Exit codes: 0 ok, 1 failure, 2 usage error. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

struct cli_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

/* Subcommands (one file each). */
int run_main(int argc, char **argv);

/* Print "kiln: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when argv[i] is -h or --help anywhere in argv. */
bool cli_wants_help(int argc, char **argv);

#endif
