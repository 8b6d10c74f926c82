/* The CAS's own attestation from the client side (cas_verify.c): `kiln cas
 * verify` and KILN_CAS_EXPECT for the commands that talk to the CAS. */
#ifndef KILN_CLI_CAS_VERIFY_H
#define KILN_CLI_CAS_VERIFY_H

#include <stdio.h>
#include <time.h>

#include "casclient/casclient.h"
#include "cli/cli.h"

/* What the CAS must be. At most one of measurement (96 hex) and policy_file (a
 * kiln policy whose service "kiln-cas", or only service, decides); neither:
 * verified, the measurement printed but not checked. Files may be NULL. */
struct cli_cas_expect {
	const char *measurement;
	const char *policy_file;
	bool allow_sim;          /* sim evidence (INSECURE) accepted */
	const char *trust;       /* PEM: kiln-las certificate (host), AMD chain (snp) */
	const char *collateral;  /* Intel collateral JSON (tdx) */
	time_t at;               /* verification time, 0: now */
};

/* Ask the CAS of client for its attestation with a fresh nonce and check it
 * against x. 0 with key_out = "sha256:<hex>" of the attested TLS key (and, when
 * report is not NULL, what is trusted and why printed to it), or a negative
 * code with why naming what differed. */
int cli_cas_expect_check(const struct cc_client *client, const struct cli_cas_expect *x,
			 FILE *report, char key_out[72], char *why, size_t why_size);

/* KILN_CAS_EXPECT (a measurement, or a policy file), with KILN_CAS_EXPECT_TRUST
 * and KILN_CAS_EXPECT_COLLATERAL: when set, the CAS is checked and client pinned
 * to the attested key (client->server_key = key, which must outlive client's
 * use); on a mismatch an error naming it is printed for cmd and a negative code
 * returned. Unset: 0, nothing done. */
int cli_cas_expect_env(struct cc_client *client, const char *cmd, char key[72]);

/* kiln cas verify */
int cas_verify_main(int argc, char **argv);

#endif
