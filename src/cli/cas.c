/* kiln cas: run the configuration and attestation service, manage its trust. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"

static void cas_usage(FILE *f)
{
	fprintf(f, "Usage: kiln cas serve --data DIR [--listen HOST:PORT] [--san NAME]...\n"
		   "       kiln cas trust-las CERT --data DIR\n"
		   "       kiln cas fingerprint --data DIR\n\n"
		   "serve        run kiln-cas (HTTPS, TLS 1.3) until SIGTERM/SIGINT; the first\n"
		   "             start creates DIR with its master key, CA (DIR/ca.pem)\n"
		   "             and store;\n"
		   "             prints 'ca-fingerprint HEX' and 'listening URL' when ready\n"
		   "  --listen   address to listen on (default 127.0.0.1:8443; port 0 = any)\n"
		   "  --san      extra DNS name or IP for the server certificate (repeatable)\n"
		   "trust-las    trust a kiln-las certificate for the 'host' evidence backend\n"
		   "fingerprint  print the CA fingerprint clients pin (--cas-fingerprint)\n\n"
		   "See docs/cas.md.\n");
}

static int cas_serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "san", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cas_serve_opts o = { .listen = "127.0.0.1:8443", .announce = stdout };
	const char *sans[32];
	struct kiln_err err = { 0 };
	int c, ret;

	o.sans = sans;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:l:s:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.data_dir = optarg;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 's':
			if (o.n_sans == KILN_ARRAY_SIZE(sans)) {
				cli_error("too many --san (at most %zu)", KILN_ARRAY_SIZE(sans));
				return CLI_EXIT_USAGE;
			}
			sans[o.n_sans++] = optarg;
			break;
		case 'v':
			kiln_log_set_level(KILN_LOG_DEBUG);
			break;
		case 'h':
			cas_usage(stdout);
			return CLI_EXIT_OK;
		default:
			cas_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (!o.data_dir || optind != argc) {
		cli_error("cas serve: --data DIR is required (and takes no other arguments)");
		return CLI_EXIT_USAGE;
	}
	ret = cas_serve(&o, &err);
	if (ret < 0) {
		cli_error("cas serve: %s", kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

static int data_only(int argc, char **argv, const char **data, const char **arg)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (c == 'd') {
			*data = optarg;
		} else if (c == 'h') {
			cas_usage(stdout);
			return 1;
		} else {
			cas_usage(stderr);
			return -1;
		}
	}
	if (arg && optind < argc)
		*arg = argv[optind++];
	if (!*data || optind != argc || (arg && !*arg)) {
		cli_error("%s: wrong arguments (see 'kiln cas --help')", argv[0]);
		return -1;
	}
	return 0;
}

int cas_main(int argc, char **argv)
{
	struct kiln_err err = { 0 };
	const char *data = NULL, *cert = NULL;
	char out[CAS_ID_SIZE];
	int ret;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		cas_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "serve"))
		return cas_serve_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "trust-las")) {
		ret = data_only(argc - 1, argv + 1, &data, &cert);
		if (ret)
			return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
		ret = cas_trust_las(data, cert, out, &err);
		if (ret < 0) {
			cli_error("cas trust-las: %s", kiln_err_msg(&err, ret));
			return CLI_EXIT_FAIL;
		}
		printf("trusted kiln-las %s\n", out);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "fingerprint")) {
		ret = data_only(argc - 1, argv + 1, &data, NULL);
		if (ret)
			return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
		ret = cas_ca_fingerprint(data, out, &err);
		if (ret < 0) {
			cli_error("cas fingerprint: %s", kiln_err_msg(&err, ret));
			return CLI_EXIT_FAIL;
		}
		printf("%s\n", out);
		return CLI_EXIT_OK;
	}
	cli_error("cas: unknown subcommand '%s' (see 'kiln cas --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
