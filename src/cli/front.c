/* kiln, the front: the binary users call. It runs the common `kiln run`
 * itself (development mode, a dynamically linked program or a script: no
 * --cas/KILN_CAS, no --console-listen, no static program) with libc and the
 * runtime's pure configuration code only, and executes the full tool,
 * kiln-tool, with the same argv and environment for every other command and
 * case (docs/architecture.md "Binaries"). The full tool is found from this
 * file's own path, never from PATH, argv[0] or the environment: next to it in
 * the build tree, KILN_TOOL_INSTALL when this is the installed kiln. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run_launch.h"
#include "evidence/evidence.h"

#ifndef KILN_BINDIR
#define KILN_BINDIR "/usr/local/bin"
#endif
#ifndef KILN_TOOL_INSTALL
#define KILN_TOOL_INSTALL "/usr/local/lib/kiln/kiln-tool"
#endif

/* front_run's answer: the case is the full tool's. */
#define FRONT_TOOL (-1)

/* kiln-tool of this front: out gets its path. */
static void tool_path(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (strcmp(self, KILN_BINDIR) != 0 &&
			    (size_t)snprintf(out, size, "%s/kiln-tool", self) < size)
				return;
		}
	}
	snprintf(out, size, "%s", KILN_TOOL_INSTALL);
}

static int exec_tool(char **argv)
{
	char tool[PATH_MAX];

	tool_path(tool, sizeof(tool));
	execv(tool, argv);
	cli_error("cannot execute the kiln tool %s: %s", tool, strerror(errno));
	return CLI_EXIT_FAIL;
}

/* kiln run (argv[0] "run") when it is the front's case: the program's exec
 * (or the status of a refusal, told as kiln-tool tells it: same code);
 * FRONT_TOOL when kiln-tool is to run it, having read nothing it keeps. */
static int front_run(int argc, char **argv)
{
	const char *cas = getenv("KILN_CAS"), *sud = "auto";
	struct rt_config *cfg;
	char path[PATH_MAX];
	int c, kind = EV_ELF_NONE, status = CLI_EXIT_USAGE;
	bool links_kiln = false;

	if (cas && cas[0])
		return FRONT_TOOL;
	cfg = cli_run_config_new();
	if (!cfg)
		return FRONT_TOOL;
	c = cli_run_getopt(argc, argv, cfg, &sud);
	if (c == CLI_RUN_OPT_BAD)
		goto out;
	if (c != -1) {
		/* --help, --cas, --static, ... or an unknown option: the tool's. */
		status = FRONT_TOOL;
		goto out;
	}
	if (optind >= argc) {
		status = FRONT_TOOL;
		goto out;
	}
	cfg->sud = cli_run_sud_on(sud, cfg);
	status = CLI_EXIT_FAIL;
	cli_run_which(argv[optind], path, sizeof(path));
	if (path[0] && cli_run_check_program(path, &kind, &links_kiln) < 0)
		goto out;
	if (kind == EV_ELF_STATIC) {
		status = FRONT_TOOL;
		goto out;
	}
	status = cli_run_dynamic(cfg, kind, links_kiln, argv + optind);
out:
	rt_config_wipe(cfg);
	free(cfg);
	return status;
}

int main(int argc, char **argv)
{
	const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;

	base = base ? base + 1 : argv[0];
	/* kiln-cc (a link to kiln) is always the tool's. */
	if (argc >= 2 && strcmp(argv[1], "run") == 0 && !(base && strcmp(base, "kiln-cc") == 0)) {
		int status = front_run(argc - 1, argv + 1);

		if (status != FRONT_TOOL)
			return status;
	}
	return exec_tool(argv);
}
