/* kiln cas collateral fetch: Intel collateral from a PCCS into the CAS store
 * (docs/cas.md "Collateral from a PCCS"). Offline on the data dir, like add;
 * works while the service runs. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cas/cas.h"

static void fetch_usage(FILE *f)
{
	fprintf(f, "Usage: kiln cas collateral fetch --pccs URL [--fmspc HEX --tee sgx|tdx]\n"
		   "                                 [--ca processor|platform] [--pccs-ca FILE]\n"
		   "                                 [--timeout S] [--insecure-at RFC3339]\n"
		   "                                 --data DIR\n\n"
		   "Fetch the collateral of one platform (--fmspc, --tee), or refresh every\n"
		   "platform stored, from a PCCS (Intel PCCS API v4: /sgx|tdx/certification/v4/\n"
		   "pckcrl, rootcacrl, tcb?fmspc=, qe/identity); each is authenticated, must be\n"
		   "valid now and not older than the one stored, else the stored one is kept.\n\n"
		   "  --pccs URL       http[s]://HOST[:PORT] of the PCCS\n"
		   "  --ca C           PCK CA of the PCK CRL: processor (default for sgx) or\n"
		   "                   platform (default for tdx)\n"
		   "  --pccs-ca FILE   https: the CA to check the PCCS against (default: system)\n"
		   "  --timeout S      per answer, 1-600 (default 10)\n"
		   "  --insecure-at T  judge validity at T, not now (tests, recorded collateral)\n\n"
		   "EXIT STATUS: 0 every platform stored or unchanged, 1 a fetch failed (named;\n"
		   "the collateral stored before is kept), 2 usage error.\n");
}

/* One platform: fetched, stored or unchanged, printed; 0 or -1 after an error. */
static int fetch_one(const char *data, const struct cas_pccs *p, const char *tee,
		     const char *fmspc)
{
	struct kiln_err err = { 0 };
	struct cas_collateral c;
	char from[32], until[32];
	bool changed = false;
	int ret = cas_collateral_fetch_one(data, p, tee, fmspc, &c, &changed, &err);

	if (ret < 0) {
		cli_error("cas collateral fetch: %s (the collateral stored before, if any, is "
			  "kept)", kiln_err_msg(&err, ret));
		return -1;
	}
	cli_fmt_rfc3339(c.valid_from, from);
	cli_fmt_rfc3339(c.valid_until, until);
	printf("%s %s collateral for FMSPC %s from %s until %s (first to end: %s)\n",
	       changed ? "fetched" : "unchanged", tee, c.fmspc, from, until, c.next);
	return 0;
}

int cas_collateral_fetch_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pccs", required_argument, NULL, 'p' },
		{ "fmspc", required_argument, NULL, 'f' },
		{ "tee", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'c' },
		{ "pccs-ca", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "insecure-at", required_argument, NULL, 'i' },
		{ "data", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cas_pccs p = { 0 };
	const char *data = NULL, *fmspc = NULL, *tee = NULL;
	struct cas_collateral *v = NULL;
	struct kiln_err err = { 0 };
	size_t n = 0;
	int c, failed = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			p.url = optarg;
			break;
		case 'f':
			fmspc = optarg;
			break;
		case 't':
			tee = optarg;
			break;
		case 'c':
			p.ca = optarg;
			break;
		case 'a':
			p.ca_file = optarg;
			break;
		case 'T': {
			char *end;
			unsigned long s = strtoul(optarg, &end, 10);

			if (*end || !s || s > 600) {
				cli_error("cas collateral fetch: --timeout '%.20s': 1 to 600", optarg);
				return CLI_EXIT_USAGE;
			}
			p.timeout_s = (unsigned)s;
			break;
		}
		case 'i':
			if (cli_parse_rfc3339(optarg, &p.at) < 0 || !p.at) {
				cli_error("cas collateral fetch: --insecure-at '%.40s' is not an RFC "
					  "3339 time", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'd':
			data = optarg;
			break;
		case 'h':
			fetch_usage(stdout);
			return CLI_EXIT_OK;
		default:
			fetch_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc || !data || !p.url || (!fmspc != !tee) ||
	    (p.ca && strcmp(p.ca, "processor") && strcmp(p.ca, "platform"))) {
		cli_error("cas collateral fetch: usage: --pccs URL [--fmspc HEX --tee sgx|tdx] "
			  "[--ca processor|platform] --data DIR");
		return CLI_EXIT_USAGE;
	}
	if (p.at)
		fprintf(stderr, "kiln: cas collateral fetch: INSECURE: validity judged at a fixed "
			"time (--insecure-at), not now\n");
	if (fmspc)
		return fetch_one(data, &p, tee, fmspc) < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (cas_collateral_stored(data, &v, &n, &err) < 0) {
		cli_error("cas collateral fetch: %s", kiln_err_msg(&err, -EIO));
		return CLI_EXIT_FAIL;
	}
	if (!n) {
		free(v);
		cli_error("cas collateral fetch: no platform stored to refresh: give --fmspc HEX "
			  "--tee sgx|tdx");
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++)
		failed |= fetch_one(data, &p, v[i].tee, v[i].fmspc) < 0;
	free(v);
	return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
