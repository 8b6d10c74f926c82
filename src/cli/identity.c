/* kiln identity: stakeholder identities (P-256 key + self-signed certificate). */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cas/cas.h"

static void identity_usage(FILE *f)
{
	fprintf(f, "Usage: kiln identity create --out FILE [--algorithm p256|p384] [--name CN]\n"
		   "       kiln identity show FILE\n\n"
		   "create  make a key and self-signed certificate in FILE (mode 0600, never\n"
		   "        overwritten) and print its id\n"
		   "show    print the id of an identity file: sha256:<hex of the public key>\n");
}

int identity_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "algorithm", required_argument, NULL, 'a' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kiln_err err = { 0 };
	const char *out = NULL, *alg = NULL, *name = NULL;
	char id[CAS_ID_SIZE];
	int c, ret;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		identity_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "create")) {
		optind = 1;
		while ((c = getopt_long(argc - 1, argv + 1, "o:a:n:h", opts, NULL)) != -1) {
			switch (c) {
			case 'o':
				out = optarg;
				break;
			case 'a':
				alg = optarg;
				break;
			case 'n':
				name = optarg;
				break;
			case 'h':
				identity_usage(stdout);
				return CLI_EXIT_OK;
			default:
				identity_usage(stderr);
				return CLI_EXIT_USAGE;
			}
		}
		if (!out || optind != argc - 1) {
			cli_error("identity create: --out FILE is required");
			return CLI_EXIT_USAGE;
		}
		ret = cas_identity_create(out, alg, name, id, &err);
		if (ret < 0) {
			cli_error("identity create: %s", kiln_err_msg(&err, ret));
			return ret == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
		}
		printf("%s\n", id);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "show")) {
		EVP_PKEY *key;
		X509 *cert;

		if (cli_wants_help(argc - 1, argv + 1)) {
			identity_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (argc != 3) {
			cli_error("identity show: expected one FILE");
			return CLI_EXIT_USAGE;
		}
		ret = cas_identity_load(argv[2], &key, &cert, &err);
		if (ret < 0) {
			cli_error("identity show: %s", kiln_err_msg(&err, ret));
			return CLI_EXIT_FAIL;
		}
		ret = cas_key_id(key, id);
		EVP_PKEY_free(key);
		X509_free(cert);
		if (ret < 0) {
			cli_error("identity show: %s", kiln_strerror(ret));
			return CLI_EXIT_FAIL;
		}
		printf("%s\n", id);
		return CLI_EXIT_OK;
	}
	cli_error("identity: unknown subcommand '%s' (see 'kiln identity --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
