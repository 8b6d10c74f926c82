/* kiln cas verify, and KILN_CAS_EXPECT for the CAS clients: check the CAS's own
 * attestation (GET /v1/attestation, docs/cas.md "Attested CAS") before trusting
 * it: a fresh nonce of ours, the evidence verified by the same backends the CAS
 * uses, bound to the TLS key of the connection that carried it, and the
 * measurement (and TEE kind, TCB) against what the user expects. */
#include "cli/cas_verify.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "evidence/evidence.h"
#include "policy/policy.h"

static bool is_measurement(const char *s)
{
	return s && strlen(s) == 2 * EV_WM_SIZE && strspn(s, "0123456789abcdefABCDEF") ==
	       2 * EV_WM_SIZE;
}

/* What the claims must satisfy when only a measurement is expected: the kiln-cas
 * measurement, no debug TEE, an up-to-date TCB where the backend reports one
 * (a policy file given with --expect can tolerate more). */
static int check_measurement(const json_t *claims, const char *want, char *why, size_t size)
{
	const char *wm = json_string_value(json_object_get(claims, "workload_measurement"));
	const char *tcb = json_string_value(json_object_get(claims, "tcb_status"));

	if (!wm || strcasecmp(wm, want)) {
		snprintf(why, size, "the CAS runs workload measurement %.96s, not the expected "
			 "%.96s (another kiln-cas binary or libraries)", wm ? wm : "(none)", want);
		return -KILN_EMEASUREMENT;
	}
	if (!json_is_true(json_object_get(claims, "insecure")) &&
	    json_is_true(json_object_get(claims, "debug"))) {
		snprintf(why, size, "the CAS's TEE is in debug mode (its memory is readable by "
			 "the host): refused (an --expect policy file may tolerate debug)");
		return -KILN_EPOLICY;
	}
	if (tcb && strcmp(tcb, "UpToDate")) {
		snprintf(why, size, "the CAS's platform TCB status is %.40s, not UpToDate "
			 "(an --expect policy file may tolerate it)", tcb);
		return -KILN_EPOLICY;
	}
	return 0;
}

/* The expectation of a policy file: its service "kiln-cas" (or its only service)
 * decided on the claims as the CAS decides on a workload's. */
static int check_policy(const json_t *claims, const char *path, time_t at, char *why,
			size_t size)
{
	struct pol_policy *p = NULL;
	const struct pol_service *svc;
	struct kiln_err err = { 0 };
	const char *label = NULL;
	uint8_t *data = NULL;
	size_t n = 0;
	int ret;

	ret = kiln_read_file(path, 1u << 20, &data, &n);
	if (ret < 0) {
		snprintf(why, size, "%s: %s", path, kiln_strerror(ret));
		return ret;
	}
	ret = pol_parse((const char *)data, n, path, &p, &err);
	free(data);
	if (ret < 0) {
		snprintf(why, size, "%s", kiln_err_msg(&err, ret));
		return ret;
	}
	svc = pol_find_service(p, "kiln-cas");
	if (!svc && p->n_services == 1)
		svc = &p->services[0];
	if (!svc) {
		snprintf(why, size, "%s: no service named 'kiln-cas' (the expectation of the CAS)",
			 path);
		ret = -KILN_EFORMAT;
		goto out;
	}
	ret = pol_decide(p, svc, claims, at, why, size, &label);
	if (ret < 0 && !why[0])
		snprintf(why, size, "refused by %s (%s)", path, label ? label : "policy");
out:
	pol_free(p);
	return ret;
}

/* The verifier's inputs from files: certificates (host: the kiln-las
 * certificate; snp: AMD chains) and Intel collateral (tdx). */
static int load_trust(const struct cli_cas_expect *x, struct ev_verify_opts *opts, char **pem,
		      json_t **collateral, char *why, size_t size)
{
	struct kiln_err err = { 0 };
	json_error_t jerr;
	int ret;

	if (x->trust) {
		ret = cli_load_certs(x->trust, pem, &err);
		if (ret < 0) {
			snprintf(why, size, "%s", kiln_err_msg(&err, ret));
			return ret;
		}
		opts->certs_pem = (const char *const *)pem;
		opts->n_certs = 1;
	}
	if (x->collateral) {
		*collateral = json_load_file(x->collateral, JSON_REJECT_DUPLICATES, &jerr);
		if (!*collateral) {
			snprintf(why, size, "%s: %s", x->collateral, jerr.text);
			return -KILN_EFORMAT;
		}
		opts->collateral = *collateral;
	}
	return 0;
}

int cli_cas_expect_check(const struct cc_client *client, const struct cli_cas_expect *x,
			 FILE *report, char key_out[72], char *why, size_t why_size)
{
	uint8_t nonce[EV_NONCE_SIZE];
	char path[96], nonce_hex[2 * EV_NONCE_SIZE + 1], key_hex[65];
	struct ev_verify_opts opts = { 0 };
	struct cc_response r = { 0 };
	struct kiln_err err = { 0 };
	json_t *claims = NULL, *collateral = NULL;
	char *pem = NULL;
	const char *tee, *wm;
	bool insecure;
	int ret;

	why[0] = '\0';
	if (x->measurement && !is_measurement(x->measurement)) {
		snprintf(why, why_size, "expected measurement '%.100s' is not 96 hex digits "
			 "(kiln measure --pid PID of the CAS prints it)", x->measurement);
		return -EINVAL;
	}
	ret = load_trust(x, &opts, &pem, &collateral, why, why_size);
	if (ret < 0)
		goto out;
	/* Our own nonce: an answer recorded earlier binds another one. */
	ret = kc_random(nonce, sizeof(nonce));
	if (ret < 0) {
		snprintf(why, why_size, "no random nonce");
		goto out;
	}
	kiln_hex_encode(nonce, sizeof(nonce), nonce_hex);
	snprintf(path, sizeof(path), "/v1/attestation?nonce=%s", nonce_hex);
	ret = cc_request(client, "GET", path, NULL, NULL, 0, &r, &err);
	if (ret < 0) {
		snprintf(why, why_size, "%s", kiln_err_msg(&err, ret));
		goto out;
	}
	if (r.status != 200) {
		json_t *e = json_loadb(r.body ? r.body : "", r.body_size, 0, NULL);
		const char *msg = json_string_value(json_object_get(e, "error"));

		snprintf(why, why_size, "the CAS answers %d to GET /v1/attestation: %.300s",
			 r.status, msg ? msg : "(no message)");
		json_decref(e);
		ret = -KILN_EPOLICY;
		goto out;
	}
	opts.at = x->at;
	ret = ev_cas_answer_verify(r.body, r.body_size, nonce, r.server_key, &opts, &claims, &err);
	if (ret < 0) {
		snprintf(why, why_size, "%s", kiln_err_msg(&err, ret));
		goto out;
	}
	tee = json_string_value(json_object_get(claims, "tee"));
	wm = json_string_value(json_object_get(claims, "workload_measurement"));
	insecure = json_is_true(json_object_get(claims, "insecure"));
	if (insecure && !x->allow_sim) {
		snprintf(why, why_size, "the CAS attests with sim evidence (INSECURE: anybody can "
			 "forge it, it proves nothing): refused without --allow-sim");
		ret = -KILN_EINSECURE;
		goto out;
	}
	if (x->measurement)
		ret = check_measurement(claims, x->measurement, why, why_size);
	else if (x->policy_file)
		ret = check_policy(claims, x->policy_file, x->at ? x->at : time(NULL), why,
				   why_size);
	if (ret < 0)
		goto out;
	kiln_hex_encode(r.server_key, sizeof(r.server_key), key_hex);
	snprintf(key_out, 72, "sha256:%s", key_hex);
	if (report) {
		const char *tcb = json_string_value(json_object_get(claims, "tcb_status"));
		const char *pm = json_string_value(json_object_get(claims,
								   "platform_measurement"));

		fprintf(report, "cas %s\n", client->url);
		if (insecure)
			fprintf(report, "tee sim: INSECURE, sim evidence proves nothing (anybody "
				"can forge it); accepted only because of --allow-sim\n");
		else
			fprintf(report, "tee %s: evidence verified by the %s verifier\n", tee, tee);
		if (tcb)
			fprintf(report, "tcb_status %s\n", tcb);
		if (pm && !insecure)
			fprintf(report, "platform_measurement %s\n", pm);
		fprintf(report, "workload_measurement %s: %s\n", wm, x->measurement ?
			"as expected (--expect-measurement)" : x->policy_file ?
			"allowed by the --expect policy" : "NOT CHECKED (no --expect-measurement "
			"or --expect given)");
		fprintf(report, "tls_key %s: bound by the evidence, and the key of this "
			"connection\n", key_out);
		fprintf(report, "nonce %s: chosen by this client, bound by the evidence "
			"(fresh)\n", nonce_hex);
		fprintf(report, "%s\n", x->measurement || x->policy_file ? (insecure ?
			"trusted (INSECURE): nothing but a sim CAS of this build" :
			"trusted: this CAS runs the expected kiln-cas in a verified TEE") :
			"verified, but not trusted: give --expect-measurement or --expect");
	}
out:
	cc_response_free(&r);
	json_decref(claims);
	json_decref(collateral);
	free(pem);
	return ret;
}

int cli_cas_expect_env(struct cc_client *client, const char *cmd, char key[72])
{
	const char *v = getenv("KILN_CAS_EXPECT");
	struct cli_cas_expect x = { 0 };
	char why[768];
	int ret;

	if (!v || !v[0])
		return 0;
	if (is_measurement(v)) {
		x.measurement = v;
	} else {
		/* A policy file: its security section may opt in to sim (INSECURE). */
		x.policy_file = v;
		x.allow_sim = true;
	}
	x.trust = getenv("KILN_CAS_EXPECT_TRUST");
	x.collateral = getenv("KILN_CAS_EXPECT_COLLATERAL");
	ret = cli_cas_expect_check(client, &x, NULL, key, why, sizeof(why));
	if (ret < 0) {
		cli_error("%s: the CAS does not meet KILN_CAS_EXPECT: %s (nothing was sent)", cmd,
			  why);
		return ret;
	}
	client->server_key = key;
	return 0;
}

static void verify_usage(FILE *f)
{
	fprintf(f, "Usage: kiln cas verify --cas URL (--cas-ca FILE | --cas-fingerprint HEX)\n"
		   "                       [--expect-measurement HEX | --expect POLICY-FILE]\n"
		   "                       [--allow-sim] [--trust PEM] [--collateral FILE]\n"
		   "                       [--at RFC3339]\n\n"
		   "Asks the CAS for its own evidence with a fresh nonce (GET /v1/attestation),\n"
		   "verifies it, checks that it binds the TLS key of this very connection and\n"
		   "the nonce, then the expectation; prints what it trusts and why.\n\n"
		   "  --cas URL                https://HOST:PORT [KILN_CAS]\n"
		   "  --cas-ca FILE            CA certificate to pin [KILN_CAS_CA]\n"
		   "  --cas-fingerprint HEX    or its SHA-256 [KILN_CAS_FINGERPRINT]\n"
		   "  --expect-measurement HEX the kiln-cas workload measurement (96 hex;\n"
		   "                           kiln measure --pid PID of the CAS prints it)\n"
		   "  --expect FILE            a kiln policy: its service 'kiln-cas' (or only\n"
		   "                           service) and security section decide\n"
		   "  --allow-sim              accept sim evidence (INSECURE: proves nothing)\n"
		   "  --trust PEM              kiln-las certificate (tee host), AMD chain (snp)\n"
		   "  --collateral FILE        Intel collateral JSON (tee tdx)\n"
		   "  --at RFC3339             verify at this time (recorded collateral)\n\n"
		   "Without an expectation the measurement is printed, NOT CHECKED (exit 0).\n"
		   "EXIT STATUS: 0 verified, 1 refused (the reason is printed), 2 usage.\n"
		   "See docs/cas.md \"Attested CAS\".\n");
}

int cas_verify_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cas", required_argument, NULL, 'c' },
		{ "cas-ca", required_argument, NULL, 'a' },
		{ "cas-fingerprint", required_argument, NULL, 'f' },
		{ "expect-measurement", required_argument, NULL, 'm' },
		{ "expect", required_argument, NULL, 'x' },
		{ "allow-sim", no_argument, NULL, 's' },
		{ "trust", required_argument, NULL, 't' },
		{ "collateral", required_argument, NULL, 'l' },
		{ "at", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cc_client client = { 0 };
	struct cli_cas_expect x = { 0 };
	char key[72], why[768];
	int c, ret;

	client.url = getenv("KILN_CAS");
	client.ca_file = getenv("KILN_CAS_CA");
	client.fingerprint = getenv("KILN_CAS_FINGERPRINT");
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			client.url = optarg;
			break;
		case 'a':
			client.ca_file = optarg;
			client.fingerprint = NULL;
			break;
		case 'f':
			client.fingerprint = optarg;
			client.ca_file = NULL;
			break;
		case 'm':
			x.measurement = optarg;
			break;
		case 'x':
			x.policy_file = optarg;
			break;
		case 's':
			x.allow_sim = true;
			break;
		case 't':
			x.trust = optarg;
			break;
		case 'l':
			x.collateral = optarg;
			break;
		case 'T':
			if (cli_parse_rfc3339(optarg, &x.at) < 0) {
				cli_error("cas verify: --at '%.40s' is not an RFC 3339 time", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'h':
			verify_usage(stdout);
			return CLI_EXIT_OK;
		default:
			verify_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc || !client.url || (x.measurement && x.policy_file)) {
		cli_error("cas verify: %s", optind != argc ? "unexpected argument" : !client.url ?
			  "no CAS given (--cas URL or KILN_CAS)" : "give --expect-measurement or "
			  "--expect, not both");
		return CLI_EXIT_USAGE;
	}
	if (!client.ca_file && !client.fingerprint) {
		cli_error("cas verify: no CA to pin (--cas-ca FILE or --cas-fingerprint HEX)");
		return CLI_EXIT_USAGE;
	}
	ret = cli_cas_expect_check(&client, &x, stdout, key, why, sizeof(why));
	if (ret < 0) {
		cli_error("cas verify: %s: NOT trusted: %s", client.url, why);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}
