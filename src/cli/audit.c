/* kiln audit: read and verify the CAS audit log (offline, from the data dir). */
#include "cli/cli.h"

#include <getopt.h>
#include <string.h>

#include "cas/cas.h"

static void audit_usage(FILE *f)
{
	fprintf(f, "Usage: kiln audit show --data DIR [--store URL]\n"
		   "       kiln audit verify --data DIR [--store URL]\n\n"
		   "show    print every entry: seq time kind actor subject details hash\n"
		   "verify  check the hash chain, every signature and the signed head; exit 1\n"
		   "        naming the first bad entry when anything was edited, removed or\n"
		   "        reordered\n"
		   "--store URL  the PostgreSQL store of 'kiln cas serve --store URL'\n");
}

int audit_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "store", required_argument, NULL, 'S' },
		{ "master-key-file", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kiln_err err = { 0 };
	const char *data = NULL, *store = NULL, *master = NULL;
	size_t count = 0;
	int c, ret;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		audit_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "d:h", opts, NULL)) != -1) {
		if (c == 'd') {
			data = optarg;
		} else if (c == 'S') {
			store = optarg;
		} else if (c == 'M') {
			master = optarg;
		} else if (c == 'h') {
			audit_usage(stdout);
			return CLI_EXIT_OK;
		} else {
			audit_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (!data || optind != argc - 1) {
		cli_error("audit %s: --data DIR is required", argv[1]);
		return CLI_EXIT_USAGE;
	}
	cas_store_use(store, master);
	if (!strcmp(argv[1], "show")) {
		ret = cas_audit_show(data, stdout, &err);
	} else if (!strcmp(argv[1], "verify")) {
		ret = cas_audit_verify(data, &count, &err);
		if (ret == 0)
			printf("audit log ok: %zu entries, chain and signatures verified\n", count);
	} else {
		cli_error("audit: unknown subcommand '%s' (see 'kiln audit --help')", argv[1]);
		return CLI_EXIT_USAGE;
	}
	if (ret < 0) {
		cli_error("audit %s: %s", argv[1], kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}
