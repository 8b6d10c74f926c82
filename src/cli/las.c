/* kiln las: the host attestor daemon and its helpers (docs/las.md). */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evidence/evidence.h"
#include "las/las.h"

#define LAS_MAX_RUNTIME_LIBS 16
#define LAS_EVIDENCE_FILE_MAX (1u << 20)

static void las_usage(FILE *f)
{
	fprintf(f,
		"Usage: kiln las serve [--socket PATH] [--key FILE] [--cert-out FILE]\n"
		"                      [--runtime-lib FILE]... [--max-clients N] [--no-cache]\n"
		"                      [--debug]\n"
		"       kiln las cert [--key FILE] [--id]\n"
		"       kiln las request [--socket PATH] --report-data HEX\n"
		"       kiln las verify FILE --cert CERT [--cert CERT]... [--at UNIXTIME]\n\n"
		"kiln-las measures local processes from /proc and signs \"host\" evidence.\n\n"
		"serve    run the daemon (as root). On first start it creates its P-256 key and\n"
		"         self-signed certificate in --key (default " LAS_DEFAULT_KEY ", 0600)\n"
		"         and writes the certificate to --cert-out (default: the key path with\n"
		"         .pem); register that certificate with 'kiln cas trust-las'.\n"
		"         --socket defaults to $KILN_LAS_SOCKET or " EV_LAS_DEFAULT_SOCKET ".\n"
		"         --runtime-lib adds a kiln runtime library whose digest is left out\n"
		"         of measurements (libkiln.so, libkiln-musl.so and libkiln-measure.so\n"
		"         are found automatically). --no-cache hashes every file on every\n"
		"         request (by default digests are cached by inode, size, mtime and\n"
		"         ctime).\n"
		"cert     print the certificate of a LAS key (--id: print its id instead)\n"
		"request  ask the daemon for evidence about this process; print it\n"
		"verify   verify host evidence against trusted LAS certificates; print claims\n");
}

static const char *default_socket(void)
{
	const char *s = getenv("KILN_LAS_SOCKET");

	return s && s[0] ? s : EV_LAS_DEFAULT_SOCKET;
}

static char *default_cert_out(const char *key)
{
	size_t n = strlen(key);
	char *out = malloc(n + 5);

	if (!out)
		return NULL;
	strcpy(out, key);
	if (n > 4 && strcmp(key + n - 4, ".key") == 0)
		strcpy(out + n - 4, ".pem");
	else
		strcat(out, ".pem");
	return out;
}

/* The kiln-sload installed with this kiln (next to libkiln.so, or in the
 * build tree): kiln-las accepts static_exe from it (docs/las.md). Without
 * one, only kiln itself may pass a program. */
static void sload_digest(struct las_config *cfg)
{
	char path[PATH_MAX];
	int fd;

	if (cli_find_lib("kiln-sload", "src/runtime", path, sizeof(path)) < 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	cfg->have_sload = ev_file_sha256_fd(fd, NULL, cfg->sload_digest) == 0;
	close(fd);
}

static int las_serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{ "cert-out", required_argument, NULL, 'c' },
		{ "runtime-lib", required_argument, NULL, 'r' },
		{ "max-clients", required_argument, NULL, 'm' },
		{ "no-cache", no_argument, NULL, 'n' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = default_socket(), *key = LAS_DEFAULT_KEY, *cert_out = NULL;
	const char *runtime_libs[LAS_MAX_RUNTIME_LIBS];
	struct las_config cfg = { 0 };
	struct las_identity *id = NULL;
	struct kiln_err err = { 0 };
	uint8_t (*digests)[32] = NULL;
	size_t n_runtime = 0, n_digests = 0;
	char *cert_path = NULL;
	uint64_t max_clients = 0;
	int c, r, ret = CLI_EXIT_FAIL;
	bool created = false, no_cache = false;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'c':
			cert_out = optarg;
			break;
		case 'r':
			if (n_runtime == LAS_MAX_RUNTIME_LIBS) {
				cli_error("las serve: at most %d --runtime-lib",
					  LAS_MAX_RUNTIME_LIBS);
				return CLI_EXIT_USAGE;
			}
			runtime_libs[n_runtime++] = optarg;
			break;
		case 'm':
			if (kiln_parse_u64(optarg, &max_clients) < 0 || max_clients == 0 ||
			    max_clients > 4096) {
				cli_error("las serve: --max-clients '%s' must be 1..4096", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'd':
			kiln_log_set_level(KILN_LOG_DEBUG);
			break;
		case 'n':
			no_cache = true;
			break;
		case 'h':
			las_usage(stdout);
			return CLI_EXIT_OK;
		default:
			las_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("las serve: unexpected argument '%s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	cert_path = cert_out ? strdup(cert_out) : default_cert_out(key);
	if (!cert_path)
		goto out;

	if (access(key, F_OK) == 0) {
		r = las_identity_load(key, &id, &err);
	} else {
		r = las_identity_create(key, &id, &err);
		created = r == 0;
	}
	if (r < 0) {
		cli_error("%s", kiln_err_msg(&err, r));
		goto out;
	}
	r = kiln_write_file_atomic(cert_path, las_identity_cert_pem(id),
				   strlen(las_identity_cert_pem(id)), 0644);
	if (r < 0) {
		cli_error("cannot write certificate %s: %s", cert_path, kiln_strerror(r));
		goto out;
	}
	printf("%s LAS key %s\ncertificate: %s\nid: %s\n", created ? "created" : "loaded", key,
	       cert_path, las_identity_id(id));
	fflush(stdout);
	if (geteuid() != 0)
		kiln_log(KILN_LOG_WARN, "not running as root: only processes of this user can "
			 "be measured", "uid=%u", (unsigned)geteuid());

	r = cli_runtime_digests(&digests, &n_digests, runtime_libs, n_runtime);
	if (r < 0)
		goto out;
	sload_digest(&cfg);
	signal(SIGPIPE, SIG_IGN);
	cfg.socket_path = socket_path;
	cfg.id = id;
	cfg.runtime_digests = (const uint8_t (*)[32])digests;
	cfg.n_runtime_digests = n_digests;
	cfg.max_clients = (unsigned)max_clients;
	if (!no_cache) {
		cfg.cache = ev_wm_cache_new(0);
		if (!cfg.cache) {
			cli_error("out of memory");
			goto out;
		}
	}
	r = las_serve(&cfg, &err);
	if (r < 0) {
		kiln_log(KILN_LOG_ERROR, "kiln-las failed", "error=\"%s\"", kiln_err_msg(&err, r));
		cli_error("%s", kiln_err_msg(&err, r));
		goto out;
	}
	ret = CLI_EXIT_OK;
out:
	ev_wm_cache_free(cfg.cache);
	free(digests);
	free(cert_path);
	las_identity_free(id);
	return ret;
}

static int las_cert_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "id", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key = LAS_DEFAULT_KEY;
	struct las_identity *id = NULL;
	struct kiln_err err = { 0 };
	bool want_id = false;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key = optarg;
			break;
		case 'i':
			want_id = true;
			break;
		case 'h':
			las_usage(stdout);
			return CLI_EXIT_OK;
		default:
			las_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("las cert: unexpected argument '%s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	r = las_identity_load(key, &id, &err);
	if (r < 0) {
		cli_error("%s", kiln_err_msg(&err, r));
		return CLI_EXIT_FAIL;
	}
	if (want_id)
		printf("%s\n", las_identity_id(id));
	else
		fputs(las_identity_cert_pem(id), stdout);
	las_identity_free(id);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int las_request_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "report-data", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = default_socket(), *rd_hex = NULL;
	uint8_t rd[EV_REPORT_DATA_SIZE], *ev = NULL;
	struct kiln_err err = { 0 };
	size_t size = 0;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'r':
			rd_hex = optarg;
			break;
		case 'h':
			las_usage(stdout);
			return CLI_EXIT_OK;
		default:
			las_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc || !rd_hex) {
		cli_error("las request: %s", rd_hex ? "unexpected argument" : "--report-data is "
			  "required");
		return CLI_EXIT_USAGE;
	}
	if (strlen(rd_hex) != 2 * EV_REPORT_DATA_SIZE ||
	    kiln_hex_decode(rd_hex, rd, sizeof(rd), NULL) < 0) {
		cli_error("las request: --report-data must be %d hex digits",
			  2 * EV_REPORT_DATA_SIZE);
		return CLI_EXIT_USAGE;
	}
	r = ev_host_request(socket_path, rd, 0, &ev, &size, &err);
	if (r < 0) {
		cli_error("%s", kiln_err_msg(&err, r));
		return CLI_EXIT_FAIL;
	}
	fwrite(ev, 1, size, stdout);
	putchar('\n');
	free(ev);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int las_verify_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cert_files[LAS_MAX_RUNTIME_LIBS];
	char *certs[LAS_MAX_RUNTIME_LIBS] = { NULL };
	struct ev_verify_opts vopts = { 0 };
	struct kiln_err err = { 0 };
	uint8_t *ev = NULL, *data;
	size_t n_certs = 0, size = 0, dsize;
	json_t *claims = NULL;
	uint64_t at = 0;
	char *text;
	int c, r, ret = CLI_EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (n_certs == LAS_MAX_RUNTIME_LIBS) {
				cli_error("las verify: too many --cert");
				return CLI_EXIT_USAGE;
			}
			cert_files[n_certs++] = optarg;
			break;
		case 'a':
			if (kiln_parse_u64(optarg, &at) < 0 || at > INT32_MAX * 4ull) {
				cli_error("las verify: --at '%s' is not a unix time", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'h':
			las_usage(stdout);
			return CLI_EXIT_OK;
		default:
			las_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || n_certs == 0) {
		cli_error("las verify: expected one evidence FILE and at least one --cert CERT");
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < n_certs; i++) {
		r = kiln_read_file(cert_files[i], 1u << 20, &data, &dsize);
		if (r < 0) {
			cli_error("cannot read certificate %s: %s", cert_files[i],
				  kiln_strerror(r));
			goto out;
		}
		certs[i] = (char *)data;
	}
	r = kiln_read_file(argv[optind], LAS_EVIDENCE_FILE_MAX, &ev, &size);
	if (r < 0) {
		cli_error("cannot read evidence %s: %s", argv[optind], kiln_strerror(r));
		goto out;
	}
	/* `kiln las request > FILE` leaves one trailing newline. */
	while (size > 0 && (ev[size - 1] == '\n' || ev[size - 1] == '\r'))
		size--;
	vopts.at = (time_t)at;
	vopts.certs_pem = (const char *const *)certs;
	vopts.n_certs = n_certs;
	r = ev_backend_host.verify(ev, size, &vopts, &claims, &err);
	if (r < 0) {
		cli_error("%s: %s", argv[optind], kiln_err_msg(&err, r));
		goto out;
	}
	text = json_dumps(claims, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text) {
		puts(text);
		free(text);
		ret = CLI_EXIT_OK;
	}
out:
	json_decref(claims);
	free(ev);
	for (size_t i = 0; i < n_certs; i++)
		free(certs[i]);
	return ret;
}

int las_main(int argc, char **argv)
{
	if (argc < 2) {
		las_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		las_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "serve") == 0)
		return las_serve_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "cert") == 0)
		return las_cert_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "request") == 0)
		return las_request_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return las_verify_main(argc - 1, argv + 1);
	cli_error("las: unknown subcommand '%s' (see 'kiln las --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
