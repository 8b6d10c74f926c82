/* kiln evidence: verify hardware attestation evidence (sgx, tdx, snp) into claims,
 * inspect it without collateral, and produce TDX/SNP evidence inside a
 * confidential VM. See docs/evidence.md. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "crypto/crypto.h"
#include "evidence/evidence.h"

#define EV_CLI_MAX_FILE (16 * 1024 * 1024)
#define EV_CLI_MAX_CERTS 16

static void verify_usage(FILE *f)
{
	const struct ev_backend *const *b = ev_backends();

	fprintf(f, "Usage: kiln evidence verify FILE --tee sgx|tdx|snp [--collateral JSON]\n"
		   "                            [--cert-chain PEM|DER]... [--at RFC3339] "
		   "[--json]\n\n"
		   "Verify attestation evidence and print its claims and the verdict.\n"
		   "Exit status: 0 authentic (whatever the TCB status), 1 not authentic,\n"
		   "2 usage error.\n\n"
		   "  --tee KIND         evidence kind: sgx, tdx or snp (or another backend\n"
		   "                     of this build, e.g. host with its kiln-las certificate)\n"
		   "  --collateral JSON  Intel collateral (PCK CRL, TCB Info, QE identity...)\n"
		   "  --cert-chain FILE  certificates (and CRLs), PEM or DER; repeatable (SNP:\n"
		   "                     the VCEK or VLEK, the ASK/ASVK + ARK chain, optionally\n"
		   "                     the AMD CRL)\n"
		   "  --at TIME          verify at this time (RFC 3339, e.g.\n"
		   "                     2025-07-01T00:00:00Z); default now\n"
		   "  --json             print {\"verdict\", \"error\", \"claims\"} as JSON\n\n"
		   "Backends:");
	for (size_t i = 0; b[i]; i++)
		fprintf(f, " %s", b[i]->name);
	fprintf(f, "\n");
}

static void inspect_usage(FILE *f)
{
	fprintf(f, "Usage: kiln evidence inspect FILE --tee sgx|tdx|snp [--cert-chain PEM|DER]...\n"
		   "                             [--at RFC3339] [--json]\n\n"
		   "Check what can be checked without collateral and print every claim:\n"
		   "  sgx, tdx  the quote's signature, the QE report's signature and its\n"
		   "            binding of the attestation key, the PCK certificate chain in\n"
		   "            the quote up to the pinned Intel SGX Root CA and its validity\n"
		   "            (no CRL)\n"
		   "  snp       the report's signature by the VCEK or VLEK given with\n"
		   "            --cert-chain and that certificate's chain to the AMD root\n"
		   "The TCB status is NOT evaluated (that needs Intel's TCB Info and QE\n"
		   "identity, or your minimum for an SNP reported_tcb): the output says so,\n"
		   "and a CAS never accepts evidence on this basis; 'kiln evidence verify'\n"
		   "is the strict check. Exit status: 0 the checks pass, 1 they do not,\n"
		   "2 usage error.\n\n"
		   "  --tee KIND         sgx, tdx or snp\n"
		   "  --cert-chain FILE  SNP: the VCEK or VLEK and the ASK/ASVK + ARK chain\n"
		   "  --at TIME          check certificate validity at this time (RFC 3339);\n"
		   "                     default now\n"
		   "  --json             print {\"verdict\", \"tcb_evaluated\": false,\n"
		   "                     \"checked\", \"error\", \"claims\"} as JSON\n");
}

static void produce_usage(FILE *f)
{
	fprintf(f, "Usage: kiln evidence produce --tee tdx|snp [--report-data HEX] --out FILE\n\n"
		   "Ask the TEE for evidence carrying report_data (up to 64 bytes in hex,\n"
		   "zero-padded; default all zero) through configfs-tsm\n"
		   "(" EV_TSM_DEFAULT_PATH ", or $KILN_TSM_PATH), falling back to\n"
		   "/dev/sev-guest or /dev/tdx_guest. Works only inside a TDX or SEV-SNP VM.\n");
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: kiln evidence verify FILE --tee sgx|tdx|snp [OPTIONS]\n"
		   "       kiln evidence inspect FILE --tee sgx|tdx|snp [OPTIONS]\n"
		   "       kiln evidence produce --tee tdx|snp [--report-data HEX] --out FILE\n\n"
		   "'kiln evidence verify --help' (and inspect, produce) describe the\n"
		   "options.\n");
}

/* Option value for "--name VALUE" or "--name=VALUE"; advances *i. NULL when the
 * argument is not this option; sets *missing when the value is absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

void cli_fmt_rfc3339(time_t t, char out[32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%lld", (long long)t);
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); 't'/' ' separators too. */
int cli_parse_rfc3339(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0, oh, om;
	long off = 0;
	const char *p;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -EINVAL;
	p = s + 10;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (sscanf(p, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
		return -EINVAL;
	p += 8;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		off = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
		   sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 && oh < 24 && om < 60) {
		off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
	} else {
		return -EINVAL;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d)
		return -EINVAL;
	*out = t - off;
	return 0;
}

/* Load a certificate file (PEM, or one or more concatenated DER certificates or CRLs)
 * as one malloc'd PEM string the caller frees. */
int cli_load_certs(const char *path, char **pem, struct kiln_err *err)
{
	uint8_t *data = NULL;
	size_t size = 0;
	BIO *mem = NULL;
	int ret;

	*pem = NULL;
	ret = kiln_read_file(path, EV_CLI_MAX_FILE, &data, &size);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	if (strstr((char *)data, "-----BEGIN CERTIFICATE-----") ||
	    strstr((char *)data, "-----BEGIN X509 CRL-----")) {
		*pem = (char *)data; /* kiln_read_file NUL-terminates */
		return 0;
	}
	mem = BIO_new(BIO_s_mem());
	ret = -ENOMEM;
	if (!mem)
		goto out;
	{
		const unsigned char *p = data, *end = data + size;
		int n = 0;

		while (p < end) {
			const unsigned char *at = p;
			X509 *x = d2i_X509(NULL, &p, end - p);
			X509_CRL *crl = NULL;

			if (!x) {
				p = at;
				crl = d2i_X509_CRL(NULL, &p, end - p);
			}
			if (!x && !crl) {
				ret = kiln_err_set(err, -KILN_EFORMAT,
						   "%s: certificate %d (at byte %zu) is "
						   "neither PEM nor DER (X.509 certificate or "
						   "CRL)", path, n + 1, (size_t)(at - data));
				goto out;
			}
			if (x)
				ret = PEM_write_bio_X509(mem, x) == 1 ? 0 : -KILN_ECRYPTO;
			else
				ret = PEM_write_bio_X509_CRL(mem, crl) == 1 ? 0 : -KILN_ECRYPTO;
			X509_free(x);
			X509_CRL_free(crl);
			if (ret < 0)
				goto out;
			n++;
		}
		if (n == 0) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "%s: empty certificate file", path);
			goto out;
		}
	}
	ret = kc_bio_take(mem, pem, NULL);
out:
	ERR_clear_error();
	BIO_free(mem);
	free(data);
	return ret;
}

static void print_claim(const char *key, json_t *v, int indent)
{
	printf("%*s%s: ", indent, "", key);
	if (json_is_string(v)) {
		printf("%s\n", json_string_value(v));
	} else if (json_is_integer(v)) {
		if (strcmp(key, "policy") == 0 || strcmp(key, "platform_info") == 0)
			printf("0x%llx\n", (unsigned long long)json_integer_value(v));
		else
			printf("%lld\n", (long long)json_integer_value(v));
	} else if (json_is_boolean(v)) {
		printf("%s\n", json_is_true(v) ? "true" : "false");
	} else if (json_is_object(v)) {
		const char *k;
		json_t *sub;

		printf("\n");
		json_object_foreach(v, k, sub)
			print_claim(k, sub, indent + 2);
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		printf("%s\n", s ? s : "?");
		free(s);
	}
}

/* What inspect checked, per kind, for the output. */
static const char *inspect_checked(const char *tee)
{
	return strcmp(tee, "snp") == 0 ?
	       "report signature by the given VCEK/VLEK; its chain to the AMD root" :
	       "quote signature; QE report signature and attestation key binding; PCK "
	       "chain to the pinned Intel SGX Root CA (validity, no CRL)";
}

/* kiln evidence verify, or inspect (no collateral; the TCB status is not
 * evaluated and the output says so). */
static int check_main(int argc, char **argv, bool inspect)
{
	const char *cmd = inspect ? "evidence inspect" : "evidence verify";
	const char *file = NULL, *tee = NULL, *collateral_path = NULL, *at_s = NULL;
	const char *cert_paths[EV_CLI_MAX_CERTS];
	char *pems[EV_CLI_MAX_CERTS] = { 0 };
	size_t n_certs = 0;
	bool as_json = false;
	const struct ev_backend *backend;
	struct ev_verify_opts opts = { 0 };
	struct kiln_err err = { 0 };
	json_t *collateral = NULL, *claims = NULL;
	uint8_t *evidence = NULL;
	size_t size = 0;
	int ret, rc = CLI_EXIT_FAIL;

	if (cli_wants_help(argc, argv)) {
		if (inspect)
			inspect_usage(stdout);
		else
			verify_usage(stdout);
		return CLI_EXIT_OK;
	}
	for (int i = 1; i < argc; i++) {
		bool missing = false;
		const char *v;

		if ((v = opt_value(argc, argv, &i, "--tee", &missing))) {
			tee = v;
		} else if ((v = opt_value(argc, argv, &i, "--collateral", &missing))) {
			if (inspect) {
				cli_error("evidence inspect: it uses no collateral; 'kiln evidence "
					  "verify --collateral' evaluates the TCB status");
				return CLI_EXIT_USAGE;
			}
			collateral_path = v;
		} else if ((v = opt_value(argc, argv, &i, "--cert-chain", &missing))) {
			if (n_certs == EV_CLI_MAX_CERTS) {
				cli_error("%s: at most %d --cert-chain files", cmd,
					  EV_CLI_MAX_CERTS);
				return CLI_EXIT_USAGE;
			}
			cert_paths[n_certs++] = v;
		} else if ((v = opt_value(argc, argv, &i, "--at", &missing))) {
			at_s = v;
		} else if (missing) {
			cli_error("%s: option %s needs a value", cmd, argv[i]);
			return CLI_EXIT_USAGE;
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_error("%s: unknown option '%s' (see --help)", cmd, argv[i]);
			return CLI_EXIT_USAGE;
		} else if (!file) {
			file = argv[i];
		} else {
			cli_error("%s: unexpected argument '%s'", cmd, argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!file) {
		cli_error("%s: missing FILE (see --help)", cmd);
		return CLI_EXIT_USAGE;
	}
	if (!tee) {
		cli_error("%s: missing --tee sgx|tdx|snp", cmd);
		return CLI_EXIT_USAGE;
	}
	backend = ev_backend_find(tee);
	if (inspect && backend && strcmp(tee, "sgx") != 0 && strcmp(tee, "tdx") != 0 &&
	    strcmp(tee, "snp") != 0) {
		cli_error("evidence inspect: --tee must be sgx, tdx or snp, not '%s' ('kiln "
			  "evidence verify' checks %s evidence)", tee, tee);
		return CLI_EXIT_USAGE;
	}
	if (!backend) {
		cli_error("%s: --tee must be sgx, tdx or snp, not '%s'", cmd, tee);
		return CLI_EXIT_USAGE;
	}
	if (at_s && cli_parse_rfc3339(at_s, &opts.at) != 0) {
		cli_error("%s: --at '%s' is not an RFC 3339 time such as "
			  "2025-07-01T00:00:00Z", cmd, at_s);
		return CLI_EXIT_USAGE;
	}
	ret = kiln_read_file(file, EV_CLI_MAX_FILE, &evidence, &size);
	if (ret < 0) {
		cli_error("%s: %s: %s", cmd, file, kiln_strerror(ret));
		goto out;
	}
	if (collateral_path) {
		json_error_t jerr;

		collateral = json_load_file(collateral_path, JSON_REJECT_DUPLICATES, &jerr);
		if (!collateral || !json_is_object(collateral)) {
			cli_error("%s: %s:%d:%d: %s", cmd, collateral_path, jerr.line,
				  jerr.column, collateral ? "collateral must be a JSON object"
							 : jerr.text);
			goto out;
		}
	}
	for (size_t i = 0; i < n_certs; i++) {
		ret = cli_load_certs(cert_paths[i], &pems[i], &err);
		if (ret < 0) {
			cli_error("%s: %s", cmd, kiln_err_msg(&err, ret));
			goto out;
		}
	}
	opts.collateral = collateral;
	opts.certs_pem = (const char *const *)pems;
	opts.n_certs = n_certs;

	if (inspect && strcmp(tee, "snp") != 0)
		ret = ev_dcap_inspect(evidence, size, strcmp(tee, "tdx") == 0, opts.at, &claims,
				      &err);
	else
		ret = backend->verify(evidence, size, &opts, &claims, &err);
	/* An SNP report has no TCB status to evaluate beyond its reported_tcb,
	 * which the chain binds; inspect says that nobody compared it with a
	 * minimum. */
	if (inspect && ret == 0 && strcmp(tee, "snp") == 0)
		json_object_set_new(claims, "tcb_status", json_string("not evaluated"));
	if (as_json) {
		json_t *o = json_object();
		char *s;

		json_object_set_new(o, "verdict", json_string(ret == 0 ? (inspect ?
			"checks pass, TCB status not evaluated" : "authentic") : "not authentic"));
		if (inspect) {
			json_object_set_new(o, "tcb_evaluated", json_false());
			json_object_set_new(o, "checked", json_string(inspect_checked(tee)));
		}
		json_object_set_new(o, "error", ret == 0 ? json_null()
							 : json_string(kiln_err_msg(&err, ret)));
		json_object_set_new(o, "claims", claims ? json_incref(claims) : json_null());
		s = json_dumps(o, JSON_INDENT(2));
		json_decref(o);
		if (!s) {
			cli_error("%s: out of memory", cmd);
			goto out;
		}
		printf("%s\n", s);
		free(s);
	} else if (ret == 0) {
		const char *k;
		json_t *v;

		printf("evidence: %s (%s, %zu bytes)\n", file, tee, size);
		if (inspect)
			printf("checked without collateral: %s\n"
			       "NOT evaluated: the TCB status (no collateral; 'kiln evidence "
			       "verify' is the strict check)\n", inspect_checked(tee));
		printf("claims:\n");
		json_object_foreach(claims, k, v)
			print_claim(k, v, 2);
		printf("verdict: %s\n", inspect ? "checks pass, TCB status not evaluated" :
		       "authentic");
	} else {
		printf("evidence: %s (%s, %zu bytes)\n", file, tee, size);
		printf("verdict: not authentic\n");
		printf("failed check: %s\n", kiln_err_msg(&err, ret));
	}
	if (ret < 0 && !as_json)
		cli_error("%s: %s: %s", cmd, file, kiln_err_msg(&err, ret));
	rc = ret == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	for (size_t i = 0; i < n_certs; i++)
		free(pems[i]);
	json_decref(claims);
	json_decref(collateral);
	free(evidence);
	return rc;
}

static int produce_main(int argc, char **argv)
{
	const char *tee = NULL, *rd_hex = NULL, *out = NULL;
	uint8_t report_data[EV_REPORT_DATA_SIZE] = { 0 }, *evidence = NULL;
	size_t size = 0, rd_len = 0;
	struct kiln_err err = { 0 };
	int ret;

	if (cli_wants_help(argc, argv)) {
		produce_usage(stdout);
		return CLI_EXIT_OK;
	}
	for (int i = 1; i < argc; i++) {
		bool missing = false;
		const char *v;

		if ((v = opt_value(argc, argv, &i, "--tee", &missing))) {
			tee = v;
		} else if ((v = opt_value(argc, argv, &i, "--report-data", &missing))) {
			rd_hex = v;
		} else if ((v = opt_value(argc, argv, &i, "--out", &missing))) {
			out = v;
		} else if (missing) {
			cli_error("evidence produce: option %s needs a value", argv[i]);
			return CLI_EXIT_USAGE;
		} else {
			cli_error("evidence produce: unexpected argument '%s' (see --help)",
				  argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!tee || (strcmp(tee, "tdx") != 0 && strcmp(tee, "snp") != 0)) {
		cli_error("evidence produce: --tee must be tdx or snp");
		return CLI_EXIT_USAGE;
	}
	if (!out) {
		cli_error("evidence produce: missing --out FILE");
		return CLI_EXIT_USAGE;
	}
	if (rd_hex && (strlen(rd_hex) > 2 * EV_REPORT_DATA_SIZE ||
		       kiln_hex_decode(rd_hex, report_data, sizeof(report_data), &rd_len) != 0)) {
		cli_error("evidence produce: --report-data must be at most %d bytes of hex",
			  EV_REPORT_DATA_SIZE);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(tee, "tdx") == 0)
		ret = ev_tdx_produce(report_data, &evidence, &size, &err);
	else
		ret = ev_snp_produce(report_data, &evidence, &size, &err);
	if (ret < 0) {
		cli_error("evidence produce: %s", kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	ret = kiln_write_file_atomic(out, evidence, size, 0644);
	free(evidence);
	if (ret < 0) {
		cli_error("evidence produce: cannot write %s: %s", out, kiln_strerror(ret));
		return CLI_EXIT_FAIL;
	}
	printf("wrote %zu bytes of %s evidence to %s\n", size, tee, out);
	return CLI_EXIT_OK;
}

int evidence_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "verify") == 0)
		return check_main(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "inspect") == 0)
		return check_main(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "produce") == 0)
		return produce_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	cli_error("evidence: unknown subcommand '%s' (verify, inspect, produce)", argv[1]);
	return CLI_EXIT_USAGE;
}
