/* kiln cas collateral add|list|remove|import (and the older trust-collateral,
 * which is 'collateral add'): Intel verification collateral per platform and AMD
 * certificates per product and chip in the CAS store (docs/cas.md "Collateral
 * per platform", "AMD certificates"). Offline, on the data dir; works while the
 * service runs. */
#include "cli/cli.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "cas/cas.h"

static void collateral_usage(FILE *f)
{
	fprintf(f, "Usage: kiln cas collateral add FILE --tee sgx|tdx --data DIR\n"
		   "       kiln cas collateral import FILE... --data DIR\n"
		   "       kiln cas collateral list --data DIR\n"
		   "       kiln cas collateral remove FMSPC --tee sgx|tdx --data DIR\n"
		   "       kiln cas collateral fetch --pccs URL [--fmspc HEX --tee sgx|tdx]\n"
		   "                                 --data DIR   ('fetch --help')\n\n"
		   "add     store Intel collateral (PCK CRL, Root CA CRL, TCB Info, QE or TD\n"
		   "        identity and their issuer chains: the format of 'kiln evidence\n"
		   "        verify --collateral') for the platform (FMSPC) its TCB Info\n"
		   "        names; it is authenticated first (signatures, chains to the pinned\n"
		   "        Intel root) and replaces that FMSPC's previous one. An attestation\n"
		   "        uses the collateral of its quote's FMSPC; none: refused naming the\n"
		   "        tee and FMSPC; expired (past a nextUpdate or a certificate's\n"
		   "        notAfter): refused naming what expired. Prints the FMSPC and the\n"
		   "        validity window\n"
		   "import  AMD certificates, PEM or DER, one chain or certificate per file:\n"
		   "        an ASK/ARK (VCEK) or ASVK/ARK (VLEK) chain of a product (Milan,\n"
		   "        Genoa, Turin; the ARK must be the pinned one), or one chip's VCEK\n"
		   "        (stored by chip ID and reported TCB) or a VLEK (by reported TCB),\n"
		   "        which must chain to a chain imported before. An SNP attestation\n"
		   "        is verified with the VCEK of its report's chip and TCB (or the\n"
		   "        VLEK); none: refused naming the chip ID and what is missing. No\n"
		   "        fetching from the AMD KDS: import what it serves\n"
		   "list    every stored collateral: tee, FMSPC, valid/EXPIRED/NOT YET VALID,\n"
		   "        its window and what ends first; then what expires next; then\n"
		   "        the AMD certificates: kind, product, key, state, window\n"
		   "remove  forget the collateral of one FMSPC (12 hex digits, as listed)\n"
		   "fetch   from a PCCS (Intel PCCS API v4): one platform, or refresh every\n"
		   "        stored one; only authentic, current, not older collateral is\n"
		   "        stored, else the stored one is kept\n\n"
		   "EXAMPLES\n"
		   "  kiln cas collateral add sgx-00A067110000.json --tee sgx --data /var/lib/kiln-cas\n"
		   "  kiln cas collateral import ask_ark_milan.pem vcek.der --data /var/lib/kiln-cas\n"
		   "  kiln cas collateral list --data /var/lib/kiln-cas\n\n"
		   "EXIT STATUS: 0 done, 1 failed (the message names the file and the check),\n"
		   "2 usage error.\n");
}

/* kiln cas collateral import FILE... --data DIR: each file in turn (a chain
 * before the leaves that need it); stops at the first that fails. */
static int import_main(int argc, char **argv, const char *cmd)
{
	const char *data = NULL, *files[64];
	struct kiln_err err = { 0 };
	size_t n = 0;
	int sr;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			collateral_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (!strcmp(argv[i], "--data") && i + 1 < argc) {
			data = argv[++i];
		} else if ((sr = cas_store_arg(argc, argv, &i)) != 0) {
			if (sr < 0)
				return CLI_EXIT_USAGE;
		} else if (argv[i][0] != '-' && n < KILN_ARRAY_SIZE(files)) {
			files[n++] = argv[i];
		} else {
			cli_error("%s import: unexpected argument '%s' (see 'kiln cas collateral "
				  "--help')", cmd, argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!data || !n) {
		cli_error("%s import: usage: FILE... --data DIR", cmd);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++) {
		struct cas_amd_cert c;
		char from[32], until[32];
		int ret = cas_amd_import(data, files[i], &c, &err);

		if (ret < 0) {
			cli_error("%s import: %s", cmd, kiln_err_msg(&err, ret));
			return CLI_EXIT_FAIL;
		}
		cli_fmt_rfc3339(c.not_before, from);
		cli_fmt_rfc3339(c.not_after, until);
		printf("trusted AMD %s %s %s from %s until %s\n", c.product, c.kind, c.key, from,
		       until);
		if (time(NULL) >= c.not_after)
			fprintf(stderr, "kiln: %s import: note: %s expired at %s\n", cmd, files[i],
				until);
	}
	return CLI_EXIT_OK;
}

/* argv[0] is the subcommand ("add", "list", "remove"); cmd names it in errors. */
int cas_collateral_main(int argc, char **argv, const char *cmd)
{
	const char *tee = NULL, *data = NULL, *arg = NULL;
	int sr;
	bool list = !strcmp(argv[0], "list"), add = !strcmp(argv[0], "add");
	struct kiln_err err = { 0 };
	struct cas_collateral c;
	char from[32], until[32];
	int ret;

	if (!strcmp(argv[0], "fetch"))
		return cas_collateral_fetch_main(argc, argv);
	if (!strcmp(argv[0], "import"))
		return import_main(argc, argv, cmd);
	if (!list && !add && strcmp(argv[0], "remove")) {
		cli_error("cas collateral: unknown subcommand '%s' (add, list, remove, fetch, "
			  "import)",
			  argv[0]);
		return CLI_EXIT_USAGE;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			collateral_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (!strcmp(argv[i], "--tee") && i + 1 < argc && !list) {
			tee = argv[++i];
		} else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
			data = argv[++i];
		} else if ((sr = cas_store_arg(argc, argv, &i)) != 0) {
			if (sr < 0)
				return CLI_EXIT_USAGE;
		} else if (argv[i][0] != '-' && !arg && !list) {
			arg = argv[i];
		} else {
			cli_error("%s: unexpected argument '%s' (see 'kiln cas collateral --help')",
				  cmd, argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!data || (!list && (!arg || !tee))) {
		cli_error("%s: %s", cmd, list ? "--data DIR is required" : add ?
			  "usage: FILE --tee sgx|tdx --data DIR" :
			  "usage: FMSPC --tee sgx|tdx --data DIR");
		return CLI_EXIT_USAGE;
	}
	if (tee && strcmp(tee, "sgx") && strcmp(tee, "tdx")) {
		cli_error("%s: --tee must be sgx or tdx, not '%s'", cmd, tee);
		return CLI_EXIT_USAGE;
	}
	if (list) {
		ret = cas_collateral_list(data, stdout, time(NULL), &err);
		if (ret == 0)
			ret = cas_amd_list(data, stdout, time(NULL), &err);
	}
	else if (add)
		ret = cas_collateral_add(data, arg, tee, &c, &err);
	else
		ret = cas_collateral_remove(data, tee, arg, &err);
	if (ret < 0) {
		cli_error("%s: %s", cmd, kiln_err_msg(&err, ret));
		return ret == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
	}
	if (add) {
		cli_fmt_rfc3339(c.valid_from, from);
		cli_fmt_rfc3339(c.valid_until, until);
		printf("trusted %s collateral for FMSPC %s from %s until %s (first to end: %s)\n",
		       tee, c.fmspc, from, until, c.next);
		if (time(NULL) >= c.valid_until)
			fprintf(stderr, "kiln: %s: note: it expired at %s: attestations verified "
				"now are refused until newer collateral is added\n", cmd, until);
	} else if (!list) {
		printf("removed %s collateral for FMSPC %s\n", tee, arg);
	}
	return CLI_EXIT_OK;
}
