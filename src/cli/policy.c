/* kiln policy: validate policies locally, manage them on a CAS. */
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"
#include "casclient/casclient.h"
#include "cli/cas_verify.h"
#include "cli/policy.h"
#include "evidence/evidence.h"
#include "policy/policy.h"

#define CHECK_MAX_FILE (16 * 1024 * 1024)
#define CHECK_MAX_CERTS 16

static void policy_usage(FILE *f)
{
	fprintf(f, "Usage: kiln policy validate FILE\n"
		   "       kiln policy apply FILE   [CAS OPTIONS] [--signature S]...\n"
		   "             [--expires D]\n"
		   "       kiln policy sign FILE --identity ID [--out S] [--expires D]\n"
		   "             [--proposal P]\n"
		   "       kiln policy approve NAME --hash H [CAS OPTIONS] [--signature S]\n"
		   "       kiln policy proposals [NAME] [CAS OPTIONS] [--json]\n"
		   "       kiln policy withdraw NAME --hash H [CAS OPTIONS]\n"
		   "       kiln policy diff OLD NEW\n"

		   "       kiln policy get NAME     [CAS OPTIONS] [--json]\n"
		   "       kiln policy list         [CAS OPTIONS]\n"
		   "       kiln policy delete NAME  [CAS OPTIONS]\n"
		   "       kiln policy certificate NAME:SECRET [CAS OPTIONS]\n"
		   "       kiln policy check FILE --service NAME (--claims JSON_FILE |\n"
		   "             --evidence FILE --tee T [--collateral JSON]\n"
		   "             [--cert-chain PEM]...\n"
		   "             [--at RFC3339] [--workload-measurement HEX])\n\n"
		   "validate  check FILE strictly and print its hash (no CAS needed)\n"
		   "apply     create or update a policy; an update names the current hash as\n"
		   "          'predecessor' (the CAS refuses lost updates with both hashes).\n"
		   "          When a quorum rule is not met (docs/policy.md), the change is\n"
		   "          stored as a pending proposal under its hash (exit 0, 'proposed').\n"
		   "          --signature S: a detached approval from 'kiln policy sign', sent\n"
		   "          with the change (repeatable, at most 32); --expires D: how long a\n"
		   "          proposal waits (Ns, Nm, Nh or Nd; at most 90d; default 7d)\n"
		   "sign      offline approval: sign FILE's change with the identity ID (a file\n"
		   "          from 'kiln identity create'), write the approval to S (default\n"
		   "          stdout; an existing S is not overwritten) and print the message\n"
		   "          signed (docs/api.md). Without --proposal it counts once, only\n"
		   "          when sent with the change ('apply --signature'); with --proposal\n"
		   "          P (an id from 'proposals --json') only for that pending proposal\n"
		   "          ('approve --signature'). Valid for --expires D (default 7d)\n"
		   "approve   approve the pending proposal with hash H (a change, or a deletion)\n"
		   "          with your identity key: signs (policy, action, hash, the\n"
		   "          proposal's id, its expiry); or send a detached approval S made\n"
		   "          with 'sign --proposal'. It takes effect once every rule it\n"
		   "          touches is met\n"
		   "proposals list the pending proposals you may read: name, hash, state\n"
		   "          (pending, stale, expired), who proposed and approved, what it\n"
		   "          needs (--json: one JSON object per line)\n"
		   "withdraw  withdraw your own proposal\n"
		   "diff      the sections a change from OLD to NEW touches (access, secrets,\n"
		   "          volumes, services, services.command, services.measurement,\n"
		   "          security) and whose approval each needs under OLD's rules\n"
		   "          (owners:, access.update, export approvers); no CAS needed\n"

		   "get       print the stored YAML (--json: name, hash, version, owner, yaml)\n"
		   "list      print NAME VERSION HASH of every policy you may read\n"
		   "delete    delete a policy, its secrets and its volumes' keys; when the\n"
		   "          delete rule needs more approvals, the deletion of the current\n"
		   "          version waits as a proposal ('proposed delete NAME HASH'; approve\n"
		   "          it as a change, it expires in 7 days)\n"
		   "certificate  print the certificate chain (PEM) of an x509 or x509-ca\n"
		   "          secret, made on first use: what clients of a service whose\n"
		   "          network shield presents it must trust (never the key)\n"
		   "check     explain the CAS's decision offline: verify the evidence (or take\n"
		   "          the claims JSON) and run the same policy decision the CAS runs in\n"
		   "          /v1/attest; prints 'allowed' or 'refused: REASON' naming the\n"
		   "          failing claim. Exit 0 allowed, 1 refused or unverifiable evidence.\n"
		   "          It does NOT check the report_data binding (that needs the CAS's\n"
		   "          live nonce and the workload's TLS key); see docs/policy.md.\n"
		   "          --workload-measurement: for sgx/tdx/snp evidence, the value a\n"
		   "          CVM workload sent beside it; set as the claim, as the CAS does\n"
		   "          once the binding holds (else the service's measurement list is\n"
		   "          matched against platform_measurement)\n\n"
		   "CAS OPTIONS (defaults from the environment variable in brackets):\n"
		   "  --cas URL               https://HOST:PORT of kiln-cas [KILN_CAS]\n"
		   "  --identity FILE         your identity ('kiln identity create')\n"
		   "                          [KILN_IDENTITY]\n"
		   "  --cas-ca FILE           CA certificate to pin [KILN_CAS_CA]\n"
		   "  --cas-fingerprint HEX   or the CA's SHA-256 fingerprint\n"
		   "                          [KILN_CAS_FINGERPRINT]\n\n"
		   "EXAMPLES (access.update: {require: 2, of: [owner, VENDOR, OPERATOR]})\n"
		   "  kiln policy apply v2.yaml              # owner: 'proposed NAME HASH'\n"
		   "  kiln policy approve acme/db --hash H   # vendor: 'updated ... version 2'\n"
		   "  kiln policy sign v3.yaml --identity operator.pem --out op.sig  # offline\n"
		   "  kiln policy apply v3.yaml --signature op.sig    # owner: applied at once\n\n"
		   "EXIT STATUS: 0 done (also 'proposed'), 1 refused or failed (the CAS's\n"
		   "message names the rule), 2 usage error.\n");
}

void cli_cas_opts_init(struct policy_args *a)
{
	memset(a, 0, sizeof(*a));
	a->client.url = getenv("KILN_CAS");
	a->identity = getenv("KILN_IDENTITY");
	a->client.ca_file = getenv("KILN_CAS_CA");
	a->client.fingerprint = getenv("KILN_CAS_FINGERPRINT");
}

bool cli_cas_opt(struct policy_args *a, int c, const char *arg)
{
	switch (c) {
	case 'c':
		a->client.url = arg;
		return true;
	case 'i':
		a->identity = arg;
		return true;
	case 'a':
		a->client.ca_file = arg;
		a->client.fingerprint = NULL;
		return true;
	case 'f':
		a->client.fingerprint = arg;
		a->client.ca_file = NULL;
		return true;
	}
	return false;
}

int cli_policy_parse_args(int argc, char **argv, struct policy_args *a, int want_args)
{
	static const struct option opts[] = {
		{ "cas", required_argument, NULL, 'c' },
		{ "identity", required_argument, NULL, 'i' },
		{ "cas-ca", required_argument, NULL, 'a' },
		{ "cas-fingerprint", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "signature", required_argument, NULL, 's' },
		{ "expires", required_argument, NULL, 'e' },
		{ "hash", required_argument, NULL, 'H' },
		{ "out", required_argument, NULL, 'o' },
		{ "proposal", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	cli_cas_opts_init(a);
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:i:a:f:jh", opts, NULL)) != -1) {
		if (cli_cas_opt(a, c, optarg))
			continue;
		switch (c) {
		case 'j':
			a->json = true;
			break;
		case 's':
			if (a->n_signatures == CLI_POLICY_MAX_SIGNATURES) {
				cli_error("policy %s: at most %d --signature files", argv[0],
					  CLI_POLICY_MAX_SIGNATURES);
				return -1;
			}
			a->signatures[a->n_signatures++] = optarg;
			break;
		case 'e':
			a->expires = optarg;
			break;
		case 'H':
			a->hash = optarg;
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'P':
			a->proposal = optarg;
			break;
		case 'h':
			policy_usage(stdout);
			return 1;
		default:
			policy_usage(stderr);
			return -1;
		}
	}
	/* want_args: how many; -1: zero or one */
	if (want_args >= 0 && argc - optind != want_args) {
		if (want_args == 0)
			cli_error("policy %s: unexpected argument '%s'", argv[0], argv[optind]);
		else
			cli_error("policy %s: expected %d argument%s", argv[0], want_args,
				  want_args > 1 ? "s" : "");
		return -1;
	}
	if (want_args < 0 && argc - optind > 1) {
		cli_error("policy %s: unexpected argument '%s'", argv[0], argv[optind + 1]);
		return -1;
	}
	a->arg = optind < argc ? argv[optind] : NULL;
	a->arg2 = optind + 1 < argc ? argv[optind + 1] : NULL;
	return 0;
}

int cli_policy_request(struct policy_args *a, const char *cmd, const char *method,
		       const char *path, const char *ctype, const void *body, size_t size,
		       struct cc_response *resp)
{
	struct kiln_err err = { 0 };
	char expect_key[72], what[64];
	int ret;

	if (!a->client.url) {
		cli_error("policy %s: no CAS given (--cas URL or KILN_CAS)", cmd);
		return CLI_EXIT_USAGE;
	}
	if (!a->identity) {
		cli_error("policy %s: no identity given (--identity FILE or KILN_IDENTITY)", cmd);
		return CLI_EXIT_USAGE;
	}
	if (!a->client.ca_file && !a->client.fingerprint) {
		cli_error("policy %s: no CA to pin (--cas-ca FILE or --cas-fingerprint HEX)", cmd);
		return CLI_EXIT_USAGE;
	}
	/* KILN_CAS_EXPECT: the CAS proves what it is before anything is sent. */
	snprintf(what, sizeof(what), "policy %s", cmd);
	if (cli_cas_expect_env(&a->client, what, expect_key) < 0)
		return CLI_EXIT_FAIL;
	ret = cas_identity_load(a->identity, &a->client.key, &a->client.cert, &err);
	if (ret == 0) {
		ret = cc_request(&a->client, method, path, ctype, body, size, resp, &err);
		EVP_PKEY_free(a->client.key);
		X509_free(a->client.cert);
		a->client.key = NULL;
		a->client.cert = NULL;
	}
	a->client.server_key = NULL; /* expect_key goes out of scope */
	if (ret < 0) {
		cli_error("policy %s: %s", cmd, kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

int cli_policy_server_error(const char *cmd, const struct cc_response *r)
{
	json_t *j = json_loads(r->body, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));

	cli_error("policy %s: CAS answered %d: %s", cmd, r->status, msg ? msg : r->body);
	json_decref(j);
	return CLI_EXIT_FAIL;
}

/* An expired security.tolerate entry is valid (the policy then refuses what it
 * tolerated, which is the point of `until`), but probably not what the author
 * meant to submit: say so once per entry, and go on. */
static void warn_expired(const char *path, const struct pol_policy *p, time_t now)
{
	for (size_t i = 0; i < p->n_tolerances; i++) {
		const struct pol_tolerance *t = &p->tolerances[i];

		if (now >= t->until)
			cli_error("warning: %s: security.tolerate entry for %s expired (until "
				  "%s, UTC): it tolerates nothing now", path,
				  pol_tolerance_status_name(t), t->until_day);
	}
}

int cli_policy_load_file(const char *path, uint8_t **data, size_t *size,
			 struct pol_policy **p)
{
	struct kiln_err err = { 0 };
	char why[POL_WHY_SIZE];
	int ret;

	ret = kiln_read_file(path, POL_MAX_INPUT_SIZE, data, size);
	if (ret < 0) {
		cli_error("%s: %s", path, kiln_strerror(ret));
		return CLI_EXIT_FAIL;
	}
	ret = pol_parse((const char *)*data, *size, path, p, &err);
	if (ret < 0) {
		cli_error("%s", kiln_err_msg(&err, ret));
		free(*data);
		*data = NULL;
		return CLI_EXIT_FAIL;
	}
	if (pol_check_new(*p, why, sizeof(why)) < 0) {
		cli_error("%s: %s", path, why);
		pol_free(*p);
		*p = NULL;
		free(*data);
		*data = NULL;
		return CLI_EXIT_FAIL;
	}
	warn_expired(path, *p, time(NULL));
	return CLI_EXIT_OK;
}

/* kiln policy check: the CAS's decision (pol_decide), offline. */
static int check_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "claims", required_argument, NULL, 'c' },
		{ "evidence", required_argument, NULL, 'e' },
		{ "tee", required_argument, NULL, 't' },
		{ "collateral", required_argument, NULL, 'l' },
		{ "cert-chain", required_argument, NULL, 'r' },
		{ "at", required_argument, NULL, 'a' },
		{ "workload-measurement", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *wm = NULL, *service = NULL, *claims_path = NULL, *ev_path = NULL, *tee = NULL;
	const char *collateral_path = NULL, *at_s = NULL, *cert_paths[CHECK_MAX_CERTS];
	char *pems[CHECK_MAX_CERTS] = { 0 }, reason[512];
	size_t n_certs = 0, size = 0, ev_size = 0;
	struct ev_verify_opts vopts = { 0 };
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;
	const struct pol_service *svc;
	const struct ev_backend *be;
	json_t *claims = NULL, *collateral = NULL;
	json_error_t jerr;
	uint8_t *data = NULL, *evidence = NULL;
	const char *label;
	int c, ret = CLI_EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			service = optarg;
			break;
		case 'c':
			claims_path = optarg;
			break;
		case 'e':
			ev_path = optarg;
			break;
		case 't':
			tee = optarg;
			break;
		case 'l':
			collateral_path = optarg;
			break;
		case 'r':
			if (n_certs == CHECK_MAX_CERTS) {
				cli_error("policy check: at most %d --cert-chain files",
					  CHECK_MAX_CERTS);
				return CLI_EXIT_USAGE;
			}
			cert_paths[n_certs++] = optarg;
			break;
		case 'a':
			at_s = optarg;
			break;
		case 'w':
			wm = optarg;
			break;
		case 'h':
			policy_usage(stdout);
			return CLI_EXIT_OK;
		default:
			policy_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		cli_error("policy check: expected one policy FILE (see --help)");
		return CLI_EXIT_USAGE;
	}
	if (!service) {
		cli_error("policy check: missing --service NAME");
		return CLI_EXIT_USAGE;
	}
	if (!claims_path == !ev_path) {
		cli_error("policy check: give exactly one of --claims JSON_FILE or "
			  "--evidence FILE");
		return CLI_EXIT_USAGE;
	}
	if (claims_path && (tee || collateral_path || n_certs || at_s)) {
		cli_error("policy check: --tee, --collateral, --cert-chain and --at go with "
			  "--evidence, not --claims");
		return CLI_EXIT_USAGE;
	}
	if (wm && (!tee || (strcmp(tee, "sgx") && strcmp(tee, "tdx") && strcmp(tee, "snp")))) {
		cli_error("policy check: --workload-measurement goes with --evidence and --tee "
			  "sgx, tdx or snp");
		return CLI_EXIT_USAGE;
	}
	if (wm && (strlen(wm) != 96 || strspn(wm, "0123456789abcdef") != 96)) {
		cli_error("policy check: --workload-measurement must be 96 lowercase hex digits");
		return CLI_EXIT_USAGE;
	}
	if (ev_path && !tee) {
		cli_error("policy check: --evidence needs --tee sim|host|sgx|tdx|snp");
		return CLI_EXIT_USAGE;
	}
	be = tee ? ev_backend_find(tee) : NULL;
	if (tee && !be) {
		cli_error("policy check: unknown --tee '%s' (sim, host, sgx, tdx or snp)", tee);
		return CLI_EXIT_USAGE;
	}
	if (at_s && cli_parse_rfc3339(at_s, &vopts.at) != 0) {
		cli_error("policy check: --at '%s' is not an RFC 3339 time such as "
			  "2025-07-01T00:00:00Z", at_s);
		return CLI_EXIT_USAGE;
	}
	ret = cli_policy_load_file(argv[optind], &data, &size, &p);
	if (ret != CLI_EXIT_OK)
		goto out;
	ret = CLI_EXIT_FAIL;
	svc = pol_find_service(p, service);
	if (!svc) {
		cli_error("policy check: %s has no service '%s'", argv[optind], service);
		goto out;
	}
	if (claims_path) {
		claims = json_load_file(claims_path, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(claims)) {
			cli_error("policy check: %s:%d:%d: %s", claims_path, jerr.line, jerr.column,
				  claims ? "claims must be a JSON object" : jerr.text);
			goto out;
		}
	} else {
		if (collateral_path) {
			collateral = json_load_file(collateral_path, JSON_REJECT_DUPLICATES, &jerr);
			if (!json_is_object(collateral)) {
				cli_error("policy check: %s:%d:%d: %s", collateral_path, jerr.line,
					  jerr.column, collateral ? "collateral must be a JSON "
					  "object" : jerr.text);
				goto out;
			}
		}
		for (size_t i = 0; i < n_certs; i++) {
			int r = cli_load_certs(cert_paths[i], &pems[i], &err);

			if (r < 0) {
				cli_error("policy check: %s", kiln_err_msg(&err, r));
				goto out;
			}
		}
		c = kiln_read_file(ev_path, CHECK_MAX_FILE, &evidence, &ev_size);
		if (c < 0) {
			cli_error("policy check: %s: %s", ev_path, kiln_strerror(c));
			goto out;
		}
		vopts.collateral = collateral;
		vopts.certs_pem = (const char *const *)pems;
		vopts.n_certs = n_certs;
		c = be->verify(evidence, ev_size, &vopts, &claims, &err);
		if (c < 0) {
			/* The CAS's wording for this refusal. */
			printf("refused: evidence does not verify: %s\n", kiln_err_msg(&err, c));
			goto out;
		}
		if (wm && json_object_set_new(claims, "workload_measurement", json_string(wm))) {
			cli_error("policy check: out of memory");
			goto out;
		}
	}
	if (pol_decide(p, svc, claims, vopts.at ? vopts.at : time(NULL), reason, sizeof(reason),
		       &label) == 0) {
		printf("allowed\n");
		ret = CLI_EXIT_OK;
	} else {
		printf("refused: %s\n", reason);
	}
out:
	for (size_t i = 0; i < n_certs; i++)
		free(pems[i]);
	json_decref(claims);
	json_decref(collateral);
	free(evidence);
	pol_free(p);
	free(data);
	return ret;
}

/* kiln policy certificate NAME:SECRET (policy names have no ':'). */
static int certificate(struct policy_args *a, struct cc_response *r)
{
	const char *colon = strrchr(a->arg, ':');
	char session[200];
	json_t *req, *j;
	char *body;
	int ret;

	if (!colon || colon == a->arg || (size_t)(colon - a->arg) >= sizeof(session) ||
	    !colon[1]) {
		cli_error("policy certificate: expected NAME:SECRET, found '%s'", a->arg);
		return CLI_EXIT_USAGE;
	}
	memcpy(session, a->arg, (size_t)(colon - a->arg));
	session[colon - a->arg] = '\0';
	req = json_pack("{s:s,s:s}", "session", session, "secret", colon + 1);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return CLI_EXIT_FAIL;
	ret = cli_policy_request(a, "certificate", "POST", "/v1/certificate", "application/json", body,
		      strlen(body), r);
	free(body);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (r->status != 200)
		return cli_policy_server_error("certificate", r);
	j = json_loads(r->body, 0, NULL);
	fputs(json_string_value(json_object_get(j, "certificate")) ?
	      json_string_value(json_object_get(j, "certificate")) : "", stdout);
	json_decref(j);
	return CLI_EXIT_OK;
}

int policy_main(int argc, char **argv)
{
	struct policy_args a;
	struct cc_response r = { 0 };
	struct pol_policy *p = NULL;
	uint8_t *data = NULL;
	size_t size = 0;
	const char *cmd;
	char path[300];
	json_t *j = NULL;
	int ret;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		policy_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "check"))
		return check_main(argc - 1, argv + 1);
	if (strcmp(cmd, "validate") && strcmp(cmd, "apply") && strcmp(cmd, "get") &&
	    strcmp(cmd, "list") && strcmp(cmd, "delete") && strcmp(cmd, "sign") &&
	    strcmp(cmd, "approve") && strcmp(cmd, "proposals") && strcmp(cmd, "withdraw") &&
	    strcmp(cmd, "diff") && strcmp(cmd, "certificate")) {
		cli_error("policy: unknown subcommand '%s' (see 'kiln policy --help')", cmd);
		return CLI_EXIT_USAGE;
	}
	ret = cli_policy_parse_args(argc - 1, argv + 1, &a, !strcmp(cmd, "list") ? 0 :
				    !strcmp(cmd, "proposals") ? -1 : !strcmp(cmd, "diff") ? 2 : 1);
	if (ret)
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if ((a.n_signatures && strcmp(cmd, "apply") && strcmp(cmd, "approve")) ||
	    (a.n_signatures > 1 && !strcmp(cmd, "approve")) ||
	    (a.expires && strcmp(cmd, "apply") && strcmp(cmd, "sign"))) {
		cli_error("policy %s: --signature goes with apply (repeatable) and approve "
			  "(once), --expires with apply and sign", cmd);
		return CLI_EXIT_USAGE;
	}
	if ((a.hash && strcmp(cmd, "approve") && strcmp(cmd, "withdraw")) ||
	    ((a.out || a.proposal) && strcmp(cmd, "sign"))) {
		cli_error("policy %s: --hash goes with approve and withdraw, --out and "
			  "--proposal with sign", cmd);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(cmd, "sign"))
		return cli_policy_sign(&a);
	if (!strcmp(cmd, "diff"))
		return cli_policy_diff(&a);
	if (!strcmp(cmd, "approve") || !strcmp(cmd, "withdraw"))
		return cli_policy_approve(&a, cmd);
	if (!strcmp(cmd, "proposals"))
		return cli_policy_proposals(&a);
	if (!strcmp(cmd, "apply") && (a.n_signatures || a.expires))
		return cli_policy_propose(&a);
	if (!strcmp(cmd, "validate")) {
		ret = cli_policy_load_file(a.arg, &data, &size, &p);
		if (ret == CLI_EXIT_OK)
			printf("%s: ok, %s\n", a.arg, p->hash);
		goto out;
	}
	if (!strcmp(cmd, "apply")) {
		/* Validate locally first: errors then name the user's file. */
		ret = cli_policy_load_file(a.arg, &data, &size, &p);
		if (ret != CLI_EXIT_OK)
			goto out;
		ret = cli_policy_request(&a, cmd, "POST", "/v1/policies", "application/yaml", data,
					 size, &r);
		if (ret != CLI_EXIT_OK)
			goto out;
		ret = cli_policy_print_applied(cmd, &r);
		goto out;
	}
	if (!strcmp(cmd, "list")) {
		size_t i;
		json_t *e;

		ret = cli_policy_request(&a, cmd, "GET", "/v1/policies", NULL, NULL, 0, &r);
		if (ret != CLI_EXIT_OK)
			goto out;
		if (r.status != 200) {
			ret = cli_policy_server_error(cmd, &r);
			goto out;
		}
		j = json_loads(r.body, 0, NULL);
		json_array_foreach(json_object_get(j, "policies"), i, e)
			printf("%s %lld %s\n", json_string_value(json_object_get(e, "name")),
			       (long long)json_integer_value(json_object_get(e, "version")),
			       json_string_value(json_object_get(e, "hash")));
		goto out;
	}
	if (!strcmp(cmd, "certificate")) {
		ret = certificate(&a, &r);
		goto out;
	}
	if (!pol_name_valid(a.arg)) {
		cli_error("policy %s: '%s' is not a valid policy name", cmd, a.arg);
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/policies/%s", a.arg);
	ret = cli_policy_request(&a, cmd, !strcmp(cmd, "get") ? "GET" : "DELETE", path, NULL,
				 NULL, 0, &r);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (!strcmp(cmd, "delete")) {
		ret = cli_policy_print_applied(cmd, &r);
		goto out;
	}
	if (r.status != 200) {
		ret = cli_policy_server_error(cmd, &r);
		goto out;
	}
	j = json_loads(r.body, 0, NULL);
	if (a.json)
		printf("%s\n", r.body);
	else
		fputs(json_string_value(json_object_get(j, "yaml")) ?
		      json_string_value(json_object_get(j, "yaml")) : "", stdout);
out:
	json_decref(j);
	cc_response_free(&r);
	pol_free(p);
	free(data);
	return ret;
}
