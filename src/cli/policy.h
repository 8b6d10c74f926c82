/* kiln policy: what the subcommands share (policy.c: validate, apply, get, list,
 * delete, check; policy_quorum.c: sign, approve, proposals, withdraw, apply with
 * approvals). */
#ifndef KILN_CLI_POLICY_H
#define KILN_CLI_POLICY_H

#include "casclient/casclient.h"
#include "cli/cli.h"
#include "policy/policy.h"

#define CLI_POLICY_MAX_SIGNATURES 32

struct policy_args {
	struct cc_client client;
	const char *identity;
	bool json;
	const char *arg, *arg2;  /* the positional arguments, or NULL */
	const char *signatures[CLI_POLICY_MAX_SIGNATURES];
	size_t n_signatures;
	const char *expires; /* --expires, or NULL */
	const char *hash;    /* --hash, or NULL */
	const char *out;     /* --out, or NULL */
	const char *proposal; /* --proposal (sign), or NULL */
};

/* The CAS OPTIONS every CAS client command takes (--cas, --identity, --cas-ca,
 * --cas-fingerprint as getopt's 'c', 'i', 'a', 'f'): defaults from the
 * environment (the rest of *a zeroed), and one option applied (false: c is
 * none of them). Used by kiln policy and kiln console. */
void cli_cas_opts_init(struct policy_args *a);
bool cli_cas_opt(struct policy_args *a, int c, const char *arg);
/* Options and want_args positional arguments (-1: zero or one). 0, 1 after
 * --help (printed), -1 on a usage error (printed). */
int cli_policy_parse_args(int argc, char **argv, struct policy_args *a, int want_args);
/* One request with the identity; prints transport errors; CLI_EXIT_*. */
int cli_policy_request(struct policy_args *a, const char *cmd, const char *method,
		       const char *path, const char *ctype, const void *body, size_t size,
		       struct cc_response *resp);
/* Print the server's error of a non-2xx answer; returns CLI_EXIT_FAIL. */
int cli_policy_server_error(const char *cmd, const struct cc_response *r);
/* Read and validate a policy file; *data and *p are the caller's. CLI_EXIT_*. */
int cli_policy_load_file(const char *path, uint8_t **data, size_t *size,
			 struct pol_policy **p);
/* The answer of an apply: "created/updated NAME version N HASH", or "proposed NAME
 * HASH" and what it still needs (202). CLI_EXIT_*. */
int cli_policy_print_applied(const char *cmd, const struct cc_response *r);

int cli_policy_sign(struct policy_args *a);
int cli_policy_approve(struct policy_args *a, const char *cmd);
int cli_policy_proposals(struct policy_args *a);
int cli_policy_propose(struct policy_args *a);
/* kiln policy diff OLD NEW: no CAS. */
int cli_policy_diff(struct policy_args *a);

#endif
