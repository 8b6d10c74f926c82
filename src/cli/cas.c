/* kiln cas: run the configuration and attestation service, manage its trust. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"
#include "cli/cas_verify.h"

static void cas_usage(FILE *f)
{
	fprintf(f, "Usage: kiln cas serve [--config FILE] --data DIR [--store URL]\n"
		   "                      [--master-key-file FILE] [--listen HOST:PORT]\n"
		   "                      [--san NAME]... [--log-level LEVEL]\n"
		   "                      [--threads N] [--grants-per-policy N] [--grant-ttl S]\n"
		   "                      [--handshake-timeout S] [--header-timeout S]\n"
		   "                      [--body-timeout S] [--conns-per-addr N]\n"
		   "                      [--insecure-evidence-time RFC3339]\n"
		   "                      [--tee sim|host|tdx|snp]\n"
		   "                      [--pccs URL [--pccs-ca FILE] [--pccs-interval S]]\n"
		   "       kiln cas verify --cas URL [--expect-measurement HEX | --expect FILE]\n"
		   "                      [--allow-sim] [--trust PEM] [--collateral FILE]\n"
		   "       kiln cas trust-las CERT --data DIR\n"
		   "       kiln cas collateral add FILE --tee sgx|tdx --data DIR\n"
		   "       kiln cas collateral list --data DIR\n"
		   "       kiln cas collateral remove FMSPC --tee sgx|tdx --data DIR\n"
		   "       kiln cas collateral fetch --pccs URL [--fmspc HEX --tee sgx|tdx]\n"
		   "                      --data DIR\n"
		   "       kiln cas collateral import FILE... --data DIR\n"
		   "       kiln cas trust-amd-chain PEM --data DIR\n"
		   "       kiln cas namespace NAME (--owner ID... | --remove) --data DIR\n"
		   "       kiln cas fingerprint --data DIR\n"
		   "       kiln cas migrate --data DIR\n"
		   "       kiln cas import-store --from (sqlite:DIR | URL) --data DIR\n"
		   "       kiln cas export-store --to (sqlite:DIR | URL) --data DIR\n"
		   "  (every command takes --store URL and --master-key-file FILE as serve)\n\n"
		   "serve        run kiln-cas (HTTPS, TLS 1.3) until SIGTERM/SIGINT; the first\n"
		   "             start creates DIR with its master key, CA (DIR/ca.pem)\n"
		   "             and store;\n"
		   "             prints 'ca-fingerprint HEX' and 'listening URL' when ready\n"
		   "  --config FILE  settings, one 'KEY = VALUE' per line, KEY a long\n"
		   "             option of serve ('data = /var/lib/kiln-cas'); the command\n"
		   "             line wins; SIGHUP re-reads FILE and applies its log-level\n"
		   "  --log-level debug|info|warn|error   (default info; -v: debug)\n"
		   "  --store URL  keep the store in PostgreSQL (postgresql://USER@HOST/DB\n"
		   "             or libpq key=value; use PGPASSFILE for a password) instead\n"
		   "             of DIR/kiln.db; several kiln-cas may share one database,\n"
		   "             each with the same CA (DIR/ca.key, ca.pem) and master key\n"
		   "  --master-key-file FILE  the master key (default DIR/master.key)\n"
		   "  --listen   address to listen on (default 127.0.0.1:8443; port 0 = any)\n"
		   "  --san      extra DNS name or IP for the server certificate (repeatable)\n"
		   "  --threads  event loops doing TLS and HTTP (1-64; default: one per CPU)\n"
		   "  --grants-per-policy N\n"
		   "             live grants (volume rights of attested keys) one policy\n"
		   "             may hold; beyond, its oldest goes (default 1024)\n"
		   "  --grant-ttl S  how long a grant lasts, in seconds (default 86400)\n"
		   "  --handshake-timeout S  accept to TLS handshake done (default 10)\n"
		   "  --header-timeout S     to a request's complete head (default 10)\n"
		   "  --body-timeout S       from the head to the end of the body (default 30)\n"
		   "  --conns-per-addr N     open connections per source address (default 1024)\n"
		   "  --insecure-evidence-time RFC3339\n"
		   "             INSECURE: verify evidence at this fixed time instead of now\n"
		   "             (tests and replays of recorded evidence only: it accepts\n"
		   "             expired collateral and revoked-later certificates)\n"
		   "  --tee T    serve the CAS's own evidence (GET /v1/attestation), bound\n"
		   "             to its TLS key: sim (INSECURE), host (kiln-las), tdx or snp\n"
		   "             (configfs-tsm, in a confidential VM)\n"
		   "  --pccs URL keep the stored Intel collateral fresh from this PCCS (a\n"
		   "             platform is fetched again once half its window passed, and\n"
		   "             at once when an attestation finds none); --pccs-ca: its CA\n"
		   "             (https); --pccs-interval: seconds between passes (3600)\n"
		   "verify       check the attestation of a running CAS ('kiln cas verify\n"
		   "             --help')\n"
		   "trust-las    trust a kiln-las certificate for the 'host' evidence backend\n"
		   "collateral   Intel collateral JSON (PCK CRL, TCB Info, QE identity, as\n"
		   "             for 'kiln evidence verify --collateral') per platform: add\n"
		   "             (for the FMSPC it names; replaces that FMSPC's), list (with\n"
		   "             validity windows and what expires next), remove; an\n"
		   "             attestation uses its quote's FMSPC's; fetch (from a PCCS);\n"
		   "             import: AMD chains and per-chip VCEKs/VLEKs ('kiln cas\n"
		   "             collateral --help'; trust-collateral FILE --tee T is\n"
		   "             'collateral add')\n"
		   "trust-amd-chain   AMD certificates (ASK/ARK chain, VCEK; PEM or DER) for\n"
		   "             tee snp; added to the ones already trusted\n"
		   "namespace    reserve the policy names NAME/... for the given identities:\n"
		   "             only they may create policies there (--remove: release)\n"
		   "fingerprint  print the CA fingerprint clients pin (--cas-fingerprint)\n"
		   "migrate      bring the store's schema to this kiln's version (forward\n"
		   "             only; serve does it at start); prints 'schema FROM -> TO'\n"
		   "import-store copy every row of the store at --from into this (new or\n"
		   "             empty) store, in one transaction; export-store: from this\n"
		   "             store into --to. Both at this kiln's schema version, under\n"
		   "             DIR's master key and CA (checked; nothing is decrypted, the\n"
		   "             audit chain keeps its head); a SQLite target must not exist\n"
		   "             yet. Prints each table's rows, then 'copied ...'\n\n"
		   "See docs/cas.md.\n");
}

/* --store URL and --master-key-file FILE: where the store is (cas_store_use). */
static const char *g_store_url, *g_master_file;

static int store_opt(int c, const char *arg)
{
	if (c == 'S') {
		if (strncmp(arg, "postgresql://", 13) && strncmp(arg, "postgres://", 11) &&
		    !strchr(arg, '=')) {
			cli_error("--store: expected a PostgreSQL connection URI "
				  "(postgresql://...) or key=value string");
			return -1;
		}
		g_store_url = arg;
	} else {
		g_master_file = arg;
	}
	cas_store_use(g_store_url, g_master_file);
	return 0;
}

int cas_store_arg(int argc, char **argv, int *i)
{
	bool store = !strcmp(argv[*i], "--store");

	if ((!store && strcmp(argv[*i], "--master-key-file")) || *i + 1 >= argc)
		return 0;
	++*i;
	return store_opt(store ? 'S' : 'M', argv[*i]) < 0 ? -1 : 1;
}

static const struct option g_serve_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "log-level", required_argument, NULL, 'L' },
	{ "data", required_argument, NULL, 'd' },
	{ "store", required_argument, NULL, 'S' },
	{ "master-key-file", required_argument, NULL, 'M' },
	{ "listen", required_argument, NULL, 'l' },
	{ "san", required_argument, NULL, 's' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "insecure-evidence-time", required_argument, NULL, 'e' },
	{ "threads", required_argument, NULL, 't' },
	{ "grants-per-policy", required_argument, NULL, 'g' },
	{ "grant-ttl", required_argument, NULL, 'G' },
	{ "handshake-timeout", required_argument, NULL, 'H' },
	{ "header-timeout", required_argument, NULL, 'R' },
	{ "body-timeout", required_argument, NULL, 'B' },
	{ "conns-per-addr", required_argument, NULL, 'C' },
	{ "tee", required_argument, NULL, 'T' },
	{ "pccs", required_argument, NULL, 'P' },
	{ "pccs-ca", required_argument, NULL, 'A' },
	{ "pccs-interval", required_argument, NULL, 'I' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
/* Options a configuration file may set more than once (cli/conf.c). */
static const char *const g_serve_repeatable[] = { "san", NULL };

/* The configuration file of a running kiln-cas (--config), as it started. */
struct serve_reload {
	const char *path;
	struct cli_conf running;
};

static bool reload_kept(const char *arg)
{
	return strncmp(arg, "--log-level=", 12) != 0 && strcmp(arg, "--verbose") != 0;
}

/* SIGHUP, on kiln-cas's first event loop: the file is read again and its
 * log-level (or verbose) applies at once; a change to any other setting is
 * named, for the next start. A file that no longer reads changes nothing. */
static void serve_reload(void *arg)
{
	struct serve_reload *r = arg;
	enum kiln_log_level level = KILN_LOG_INFO;
	struct cli_conf now;
	size_t a = 0, b = 0;
	bool verbose = false, same = true;

	if (cli_conf_load(r->path, g_serve_opts, g_serve_repeatable, &now) < 0) {
		kiln_log(KILN_LOG_ERROR, "configuration not reloaded: the file has an error "
			 "(on stderr above); the running settings stay", "file=%s", r->path);
		return;
	}
	for (size_t i = 0; i < now.n_args; i++) {
		if (!strcmp(now.args[i], "--verbose")) {
			verbose = true;
		} else if (!strncmp(now.args[i], "--log-level=", 12) &&
			   kiln_log_level_parse(now.args[i] + 12, &level) < 0) {
			kiln_log(KILN_LOG_ERROR, "configuration not reloaded: log-level must be "
				 "debug, info, warn or error", "file=%s", r->path);
			goto out;
		}
	}
	/* The other settings, in the file's order, against the running ones. */
	for (;;) {
		while (a < r->running.n_args && !reload_kept(r->running.args[a]))
			a++;
		while (b < now.n_args && !reload_kept(now.args[b]))
			b++;
		if (a == r->running.n_args || b == now.n_args) {
			same = a == r->running.n_args && b == now.n_args;
			break;
		}
		if (strcmp(r->running.args[a++], now.args[b++])) {
			same = false;
			break;
		}
	}
	if (verbose)
		level = KILN_LOG_DEBUG;
	kiln_log_set_level(level);
	kiln_log(KILN_LOG_WARN, "configuration reloaded", "file=%s log_level=%s", r->path,
		 kiln_log_level_name(level));
	if (!same)
		kiln_log(KILN_LOG_WARN, "settings other than log-level changed in the file: they "
			 "take effect at the next start", "file=%s", r->path);
out:
	cli_conf_free(&now);
}

static int serve_run(int argc, char **argv, struct serve_reload *reload)
{
	struct cas_serve_opts o = { .listen = "127.0.0.1:8443", .announce = stdout };
	static struct cas_pccs pccs;
	const char *sans[32], *at_s = NULL;
	struct kiln_err err = { 0 };
	int c, ret;

	o.sans = sans;
	if (reload) {
		o.reload = serve_reload;
		o.reload_arg = reload;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:l:s:vh", g_serve_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			break; /* read before (cas_serve_main) */
		case 'L': {
			enum kiln_log_level level;

			if (kiln_log_level_parse(optarg, &level) < 0) {
				cli_error("cas serve: --log-level '%.40s': expected debug, info, warn "
					  "or error", optarg);
				return CLI_EXIT_USAGE;
			}
			kiln_log_set_level(level);
			break;
		}
		case 'd':
			o.data_dir = optarg;
			break;
		case 'S':
		case 'M':
			if (store_opt(c, optarg) < 0)
				return CLI_EXIT_USAGE;
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
		case 'T':
			o.attest_tee = optarg;
			break;
		case 'P':
			pccs.url = optarg;
			o.pccs = &pccs;
			break;
		case 'A':
			pccs.ca_file = optarg;
			break;
		case 'I': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);

			if (*end || !n || n > 86400) {
				cli_error("cas serve: --pccs-interval '%.20s': 1 to 86400 seconds",
					  optarg);
				return CLI_EXIT_USAGE;
			}
			o.pccs_interval_s = (unsigned)n;
			break;
		}
		case 't': {
			uint64_t n;

			if (kiln_parse_u64(optarg, &n) < 0 || n < 1 || n > 64) {
				cli_error("cas serve: --threads '%s': expected a number from 1 to 64",
					  optarg);
				return CLI_EXIT_USAGE;
			}
			o.threads = (unsigned)n;
			break;
		}
		case 'g': {
			uint64_t n;

			if (kiln_parse_u64(optarg, &n) < 0 || n < 1 || n > 100000) {
				cli_error("cas serve: --grants-per-policy '%.40s': expected a "
					  "number from 1 to 100000", optarg);
				return CLI_EXIT_USAGE;
			}
			o.grants_per_policy = (unsigned)n;
			break;
		}
		case 'G': {
			uint64_t n;

			if (kiln_parse_u64(optarg, &n) < 0 || n < 1 || n > 30 * 86400) {
				cli_error("cas serve: --grant-ttl '%.40s': expected seconds from 1 "
					  "to 2592000 (30 days)", optarg);
				return CLI_EXIT_USAGE;
			}
			o.grant_ttl_s = (unsigned)n;
			break;
		}
		case 'H':
		case 'R':
		case 'B':
		case 'C': {
			uint64_t n, max = c == 'C' ? 65536 : 3600;
			unsigned *dst = c == 'H' ? &o.handshake_timeout_s :
					c == 'R' ? &o.header_timeout_s :
					c == 'B' ? &o.body_timeout_s : &o.conns_per_addr;

			if (kiln_parse_u64(optarg, &n) < 0 || n < 1 || n > max) {
				cli_error("cas serve: --%s '%.40s': expected a number from 1 to "
					  "%llu", c == 'H' ? "handshake-timeout" :
					  c == 'R' ? "header-timeout" : c == 'B' ? "body-timeout" :
					  "conns-per-addr", optarg, (unsigned long long)max);
				return CLI_EXIT_USAGE;
			}
			*dst = (unsigned)n;
			break;
		}
		case 'e':
			at_s = optarg;
			if (cli_parse_rfc3339(optarg, &o.evidence_at) != 0 || o.evidence_at == 0) {
				cli_error("cas serve: --insecure-evidence-time '%s' is not an "
					  "RFC 3339 time such as 2025-07-01T00:00:00Z", optarg);
				return CLI_EXIT_USAGE;
			}
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
	pccs.at = o.evidence_at; /* collateral judged at the same fixed time */
	if (pccs.ca_file && !o.pccs) {
		cli_error("cas serve: --pccs-ca needs --pccs URL");
		return CLI_EXIT_USAGE;
	}
	if (o.evidence_at)
		kiln_log(KILN_LOG_WARN, "INSECURE: evidence verified at a fixed time, not now "
			 "(--insecure-evidence-time: tests and replays only)",
			 "evidence_time=%s", at_s);
	ret = cas_serve(&o, &err);
	if (ret < 0) {
		cli_error("cas serve: %s", kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* --config FILE: the file's settings go before the command line's, which win
 * (cli/conf.c); the file is kept for SIGHUP. */
static int cas_serve_main(int argc, char **argv)
{
	struct serve_reload r = { .path = cli_conf_path(argc, argv) };
	char **v = NULL, abs[PATH_MAX];
	int ret;

	if (!r.path)
		return serve_run(argc, argv, NULL);
	/* The same file at SIGHUP, whatever the working directory then. */
	if (realpath(r.path, abs))
		r.path = abs;
	if (cli_conf_load(r.path, g_serve_opts, g_serve_repeatable, &r.running) < 0)
		return CLI_EXIT_USAGE;
	if (cli_conf_argv(&r.running, argc, argv, &argc, &v) < 0) {
		cli_conf_free(&r.running);
		cli_error("out of memory");
		return CLI_EXIT_FAIL;
	}
	ret = serve_run(argc, v, &r);
	free(v);
	cli_conf_free(&r.running);
	return ret;
}

static int data_only(int argc, char **argv, const char **data, const char **arg)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "store", required_argument, NULL, 'S' },
		{ "master-key-file", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (c == 'd') {
			*data = optarg;
		} else if (c == 'S' || c == 'M') {
			if (store_opt(c, optarg) < 0)
				return -1;
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

static void copy_progress(void *ctx, const char *table, int64_t rows)
{
	(void)ctx;
	printf("  %-16s %lld rows\n", table, (long long)rows);
	fflush(stdout);
}

/* kiln cas import-store --from LOC --data DIR, export-store --to LOC --data DIR */
static int cas_copy_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "store", required_argument, NULL, 'S' },
		{ "master-key-file", required_argument, NULL, 'M' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool import = !strcmp(argv[0], "import-store");
	const char *data = NULL, *other = NULL;
	struct cas_copy_result res;
	struct kiln_err err = { 0 };
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (c == 'd') {
			data = optarg;
		} else if (c == 'S' || c == 'M') {
			if (store_opt(c, optarg) < 0)
				return CLI_EXIT_USAGE;
		} else if ((c == 'f' && import) || (c == 'o' && !import)) {
			other = optarg;
		} else if (c == 'h') {
			cas_usage(stdout);
			return CLI_EXIT_OK;
		} else {
			cli_error("cas %s: wrong arguments (see 'kiln cas --help')", argv[0]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!data || !other || optind != argc) {
		cli_error("cas %s: needs --data DIR and %s (see 'kiln cas --help')", argv[0],
			  import ? "--from sqlite:DIR|URL" : "--to sqlite:DIR|URL");
		return CLI_EXIT_USAGE;
	}
	ret = cas_store_copy(data, import ? other : NULL, import ? NULL : other, copy_progress,
			     NULL, &res, &err);
	if (ret < 0) {
		cli_error("cas %s: %s", argv[0], kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	printf("copied %lld rows in %d tables from %s to %s\n", (long long)res.rows,
	       res.tables, res.from, res.to);
	return CLI_EXIT_OK;
}

/* kiln cas namespace NAME (--owner ID... | --remove) --data DIR */
static int cas_namespace_main(int argc, char **argv)
{
	const char *owners[64], *data = NULL, *name = NULL;
	struct kiln_err err = { 0 };
	size_t n = 0;
	bool remove = false;
	char *notes = NULL;
	size_t notes_size = 0;
	FILE *nf;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cas_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (!strcmp(argv[i], "--owner") && i + 1 < argc) {
			if (n == KILN_ARRAY_SIZE(owners)) {
				cli_error("cas namespace: at most %zu --owner",
					  KILN_ARRAY_SIZE(owners));
				return CLI_EXIT_USAGE;
			}
			owners[n++] = argv[++i];
		} else if (!strcmp(argv[i], "--remove")) {
			remove = true;
		} else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
			data = argv[++i];
		} else if ((ret = cas_store_arg(argc, argv, &i)) != 0) {
			if (ret < 0)
				return CLI_EXIT_USAGE;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			cli_error("cas namespace: unexpected argument '%.80s' (usage: kiln cas "
				  "namespace NAME (--owner ID... | --remove) --data DIR)", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!name || !data || remove == (n > 0)) {
		cli_error("cas namespace: usage: kiln cas namespace NAME (--owner ID... | "
			  "--remove) --data DIR");
		return CLI_EXIT_USAGE;
	}
	nf = open_memstream(&notes, &notes_size);
	ret = cas_namespace_set(data, name, owners, n, nf, &err);
	if (nf)
		fclose(nf);
	if (ret < 0) {
		cli_error("cas namespace: %s", kiln_err_msg(&err, ret));
		free(notes);
		return CLI_EXIT_FAIL;
	}
	if (remove) {
		printf("namespace %s/ released\n", name);
	} else {
		printf("namespace %s/ reserved for %zu identit%s\n", name, n, n == 1 ? "y" : "ies");
		/* Reserving does not evict: say which policies somebody else made first. */
		for (char *line = notes, *next, *owner; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			owner = strchr(line, ' ');
			if (!owner)
				continue;
			*owner++ = '\0';
			fprintf(stderr, "kiln: cas namespace: note: %s is owned by %s, not by a "
				"namespace owner (delete it if it is a squatter's)\n", line, owner);
		}
	}
	free(notes);
	return CLI_EXIT_OK;
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
	if (!strcmp(argv[1], "verify"))
		return cas_verify_main(argc - 1, argv + 1);
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
	if (!strcmp(argv[1], "collateral")) {
		if (argc < 3) {
			cli_error("cas collateral: add, list, remove, fetch or import (see 'kiln "
				  "cas collateral --help')");
			return CLI_EXIT_USAGE;
		}
		return cas_collateral_main(argc - 2, argv + 2, "cas collateral");
	}
	if (!strcmp(argv[1], "trust-collateral")) {
		/* the older name of 'collateral add' */
		argv[1] = "add";
		return cas_collateral_main(argc - 1, argv + 1, "cas trust-collateral");
	}
	if (!strcmp(argv[1], "trust-amd-chain")) {
		char id[80];

		ret = data_only(argc - 1, argv + 1, &data, &cert);
		if (ret)
			return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
		ret = cas_trust_amd_chain(data, cert, id, &err);
		if (ret < 0) {
			cli_error("cas trust-amd-chain: %s", kiln_err_msg(&err, ret));
			return CLI_EXIT_FAIL;
		}
		printf("trusted AMD certificates %s\n", id);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "namespace"))
		return cas_namespace_main(argc - 1, argv + 1);
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
	if (!strcmp(argv[1], "migrate")) {
		int from = 0, to = 0;

		ret = data_only(argc - 1, argv + 1, &data, NULL);
		if (ret)
			return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
		ret = cas_migrate(data, &from, &to, &err);
		if (ret < 0) {
			cli_error("cas migrate: %s", kiln_err_msg(&err, ret));
			return CLI_EXIT_FAIL;
		}
		if (from == to)
			printf("schema %d (current: nothing to do)\n", to);
		else
			printf("schema %d -> %d\n", from, to);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "import-store") || !strcmp(argv[1], "export-store"))
		return cas_copy_main(argc - 1, argv + 1);
	cli_error("cas: unknown subcommand '%s' (see 'kiln cas --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
