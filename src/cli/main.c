/* kiln: dispatch to subcommands. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "common/common.h"

static int version_main(int argc, char **argv)
{
	printf("kiln %s\n", KILN_VERSION);
	return CLI_EXIT_OK;
}

static const struct cli_command g_commands[] = {
	{ "run", run_main, "run a program under the kiln runtime" },
	{ "fs", fs_main, "protected volumes: init, put, cat, ls, rm, verify, rekey, mount" },
	{ "cas", cas_main, "configuration and attestation service (kiln-cas)" },
	{ "policy", policy_main, "validate, check and manage policies on a CAS" },
	{ "identity", identity_main, "create and show stakeholder identities" },
	{ "audit", audit_main, "show and verify the CAS audit log" },
	{ "console", console_main, "read or attach to a service's protected console" },
	{ "measure", measure_main, "print the workload measurement of a program" },
	{ "cc", cc_main, "compile and link a program against the runtime (kiln-cc)" },
	{ "las", las_main, "host attestor daemon (kiln-las) and its helpers" },
	{ "evidence", evidence_main, "verify or produce TEE attestation evidence" },
	{ "version", version_main, "print the version" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: kiln COMMAND [ARGS...]\n\n"
		   "kiln runs unmodified Linux programs confidentially: it attests them,\n"
		   "hands them secrets only after the proof, and encrypts their files.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_commands); i++)
		fprintf(f, "  %-10s %s\n", g_commands[i].name, g_commands[i].summary);
	fprintf(f, "\n'kiln COMMAND --help' describes each command. Version %s.\n", KILN_VERSION);
}

int main(int argc, char **argv)
{
	const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;

	/* Installed as a link named kiln-cc: the compiler driver (cli/cc.c). */
	base = base ? base + 1 : argv[0];
	if (base && strcmp(base, "kiln-cc") == 0)
		return cc_main(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
		return version_main(argc - 1, argv + 1);
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_commands); i++)
		if (strcmp(argv[1], g_commands[i].name) == 0)
			return g_commands[i].main(argc - 1, argv + 1);
	cli_error("unknown command '%s' (see 'kiln --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
