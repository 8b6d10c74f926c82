/* kiln policy sign / approve / proposals / withdraw, and apply with approvals:
 * the stakeholders' side of quorum rules (docs/policy.md "Proposals"). */
#include "cli/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cas/cas.h"

/* "a, b" of a JSON array of strings, into buf. */
static void join(const json_t *arr, char *buf, size_t size)
{
	size_t i;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(arr, i, v) {
		size_t len = strlen(buf);

		snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
			 json_string_value(v) ? json_string_value(v) : "?");
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

int cli_policy_print_applied(const char *cmd, const struct cc_response *r)
{
	json_t *j;
	const char *action, *id;
	char who[2048], when[32];
	bool del;

	if (r->status != 200 && r->status != 201 && r->status != 202)
		return cli_policy_server_error(cmd, r);
	j = json_loads(r->body, 0, NULL);
	action = json_string_value(json_object_get(j, "action"));
	del = action && !strcmp(action, "delete");
	id = json_string_value(json_object_get(j, "id"));
	if (json_string_value(json_object_get(j, "deleted"))) {
		printf("deleted %s\n", json_string_value(json_object_get(j, "deleted")));
	} else if (json_is_true(json_object_get(j, "applied"))) {
		printf("%s %s version %lld %s\n", r->status == 201 ? "created" : "updated",
		       json_string_value(json_object_get(j, "name")),
		       (long long)json_integer_value(json_object_get(j, "version")),
		       json_string_value(json_object_get(j, "hash")));
	} else {
		join(json_object_get(j, "approvals"), who, sizeof(who));
		cli_fmt_rfc3339((time_t)json_integer_value(json_object_get(j, "expires")), when);
		printf("%s%s %s %s\n  approved by: %s\n  needs: %s\n  expires: %s\n"
		       "  proposal: %s\n", r->status == 202 ? "proposed" : "approved",
		       del ? " delete" : "", json_string_value(json_object_get(j, "name")),
		       json_string_value(json_object_get(j, "hash")), who,
		       json_string_value(json_object_get(j, "needs")), when, id ? id : "?");
	}
	json_decref(j);
	return CLI_EXIT_OK;
}

/* "7d", "12h", "30m", "3600s" -> seconds, at most 90 days; -1 if malformed. */
static int64_t parse_duration(const char *s)
{
	char *end;
	long long v;
	int64_t mul;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0 || !end[0] || end[1])
		return -1;
	mul = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
	if (!mul || v > 90LL * 86400 / mul)
		return -1;
	return v * mul;
}

int cli_policy_propose(struct policy_args *a)
{
	struct cc_response r = { 0 };
	struct pol_policy *p = NULL;
	uint8_t *data = NULL, *sig = NULL;
	size_t size = 0, sig_size = 0;
	json_t *body = NULL, *approvals = json_array();
	char *text = NULL;
	int64_t expires = 0;
	int ret;

	if (a->expires && (expires = parse_duration(a->expires)) < 0) {
		cli_error("policy apply: --expires '%s': expected Ns, Nm, Nh or Nd, at most "
			  "90d", a->expires);
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	ret = cli_policy_load_file(a->arg, &data, &size, &p);
	if (ret != CLI_EXIT_OK)
		goto out;
	ret = CLI_EXIT_FAIL;
	for (size_t i = 0; i < a->n_signatures; i++) {
		struct cas_approval ap;
		struct kiln_err err = { 0 };
		int r2 = kiln_read_file(a->signatures[i], CAS_APPROVAL_MAX, &sig, &sig_size);

		if (r2 < 0) {
			cli_error("policy apply: %s: %s", a->signatures[i], kiln_strerror(r2));
			goto out;
		}
		/* Check it here too: a wrong file is named before anything is sent. */
		r2 = cas_approval_verify((const char *)sig, sig_size, &ap, &err);
		if (r2 == 0 && (strcmp(ap.policy, p->name) || strcmp(ap.hash, p->hash) ||
				strcmp(ap.action, "update")))
			r2 = kiln_err_set(&err, -KILN_ESIG, "it approves the %s of '%s' version "
					  "%s, not the update of %s to version %s", ap.action,
					  ap.policy, ap.hash, p->name, p->hash);
		if (r2 < 0) {
			cli_error("policy apply: %s: %s", a->signatures[i], kiln_err_msg(&err, r2));
			goto out;
		}
		json_array_append_new(approvals, json_loadb((const char *)sig, sig_size, 0, NULL));
		free(sig);
		sig = NULL;
	}
	body = json_pack("{s:s%,s:O}", "yaml", (const char *)data, size, "approvals", approvals);
	if (body && expires)
		json_object_set_new(body, "expires_in", json_integer(expires));
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!text) {
		cli_error("policy apply: out of memory");
		goto out;
	}
	ret = cli_policy_request(a, "apply", "POST", "/v1/proposals", "application/json", text,
				 strlen(text), &r);
	if (ret == CLI_EXIT_OK)
		ret = cli_policy_print_applied("apply", &r);
out:
	cc_response_free(&r);
	json_decref(body);
	json_decref(approvals);
	free(text);
	free(sig);
	free(data);
	pol_free(p);
	return ret;
}

/* Write text to path, created 0644 (an approval is not secret) and not over an
 * existing file. */
static int write_new_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t len = strlen(text);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (kiln_write_all(fd, text, len) < 0 || kiln_write_all(fd, "\n", 1) < 0 ||
	    fsync(fd) < 0)
		ret = errno ? -errno : -EIO;
	close(fd);
	if (ret < 0)
		unlink(path);
	return ret;
}

/* Print the message an approval signs, indented (what the signer vouches for). */
static void print_signed(FILE *f, const struct cas_approval *ap)
{
	char msg[768], when[32];
	const char *line;

	if (cas_approval_message(ap->policy, ap->action, ap->hash, ap->proposal, ap->not_after,
				 msg, sizeof(msg)) < 0)
		return;
	cli_fmt_rfc3339((time_t)ap->not_after, when);
	fprintf(f, "signed message (valid until %s):\n", when);
	for (line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
		fprintf(f, "  %s\n", line);
}

int cli_policy_sign(struct policy_args *a)
{
	struct kiln_err err = { 0 };
	struct cas_approval ap = { 0 };
	struct pol_policy *p = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	uint8_t *data = NULL;
	size_t size = 0;
	int64_t valid = 7 * 86400;
	char *text = NULL;
	int ret;

	if (!a->identity) {
		cli_error("policy sign: --identity FILE is required (KILN_IDENTITY)");
		return CLI_EXIT_USAGE;
	}
	if (a->expires && (valid = parse_duration(a->expires)) < 0) {
		cli_error("policy sign: --expires '%s': expected Ns, Nm, Nh or Nd, at most 90d",
			  a->expires);
		return CLI_EXIT_USAGE;
	}
	if (a->proposal && (strlen(a->proposal) != 32 ||
			    strspn(a->proposal, "0123456789abcdef") != 32)) {
		cli_error("policy sign: --proposal '%s': expected the 32 hex digits of a "
			  "proposal's id ('kiln policy proposals --json')", a->proposal);
		return CLI_EXIT_USAGE;
	}
	ret = cli_policy_load_file(a->arg, &data, &size, &p);
	if (ret != CLI_EXIT_OK)
		goto out;
	ret = CLI_EXIT_FAIL;
	snprintf(ap.policy, sizeof(ap.policy), "%s", p->name);
	snprintf(ap.action, sizeof(ap.action), "update");
	snprintf(ap.hash, sizeof(ap.hash), "%s", p->hash);
	snprintf(ap.proposal, sizeof(ap.proposal), "%s", a->proposal ? a->proposal : "");
	ap.not_after = (int64_t)time(NULL) + valid;
	if (cas_identity_load(a->identity, &key, &cert, &err) < 0 ||
	    cas_approval_sign(key, &ap, &text, &err) < 0) {
		cli_error("policy sign: %s", kiln_err_msg(&err, -EINVAL));
		goto out;
	}
	if (!a->out) {
		printf("%s\n", text);
		print_signed(stderr, &ap);
	} else if ((ret = write_new_file(a->out, text)) < 0) {
		cli_error("policy sign: %s: %s", a->out, kiln_strerror(ret));
		ret = CLI_EXIT_FAIL;
		goto out;
	} else {
		printf("signed %s %s -> %s\n", p->name, p->hash, a->out);
		print_signed(stdout, &ap);
	}
	ret = CLI_EXIT_OK;
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	free(text);
	free(data);
	pol_free(p);
	return ret;
}

/* The pending proposal (name, hash) as the caller sees it in GET /v1/proposals:
 * its id, action and expiry into ap. CLI_EXIT_*. */
static int find_proposal(struct policy_args *a, struct cas_approval *ap)
{
	struct cc_response r = { 0 };
	json_t *j = NULL, *e;
	size_t i;
	int ret;

	ret = cli_policy_request(a, "approve", "GET", "/v1/proposals", NULL, NULL, 0, &r);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (r.status != 200) {
		ret = cli_policy_server_error("approve", &r);
		goto out;
	}
	ret = CLI_EXIT_FAIL;
	j = json_loads(r.body, 0, NULL);
	json_array_foreach(json_object_get(j, "proposals"), i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *hash = json_string_value(json_object_get(e, "hash"));
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *action = json_string_value(json_object_get(e, "action"));

		if (!name || !hash || !id || !action || strcmp(name, a->arg) ||
		    strcmp(hash, a->hash))
			continue;
		snprintf(ap->policy, sizeof(ap->policy), "%s", name);
		snprintf(ap->hash, sizeof(ap->hash), "%s", hash);
		snprintf(ap->proposal, sizeof(ap->proposal), "%s", id);
		snprintf(ap->action, sizeof(ap->action), "%s", action);
		ap->not_after = json_integer_value(json_object_get(e, "expires"));
		ret = CLI_EXIT_OK;
		break;
	}
	if (ret != CLI_EXIT_OK)
		cli_error("policy approve: no pending proposal %s of '%s' that you may see (403: not "
			  "allowed or not found; 'kiln policy proposals %s')", a->hash, a->arg,
			  a->arg);
out:
	json_decref(j);
	cc_response_free(&r);
	return ret;
}

int cli_policy_approve(struct policy_args *a, const char *cmd)
{
	struct cc_response r = { 0 };
	struct kiln_err err = { 0 };
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	json_t *j = NULL;
	char *text = NULL;
	int ret = CLI_EXIT_USAGE;

	if (!pol_name_valid(a->arg)) {
		cli_error("policy %s: '%s' is not a valid policy name", cmd, a->arg);
		return ret;
	}
	if (!a->hash || !pol_hash_valid(a->hash)) {
		cli_error("policy %s: --hash sha256:<64 hex> is required (the proposal's hash, "
			  "'kiln policy proposals %s')", cmd, a->arg);
		return ret;
	}
	ret = CLI_EXIT_FAIL;
	if (!strcmp(cmd, "approve")) {
		if (!a->identity) {
			cli_error("policy approve: no identity given (--identity FILE or "
				  "KILN_IDENTITY)");
			return CLI_EXIT_USAGE;
		}
		struct cas_approval ap = { 0 };
		uint8_t *file = NULL;
		size_t fsize = 0;

		if (a->n_signatures) {
			/* A detached approval of this proposal ('sign --proposal'). */
			int r2 = kiln_read_file(a->signatures[0], CAS_APPROVAL_MAX, &file,
						&fsize);

			if (r2 < 0) {
				cli_error("policy approve: %s: %s", a->signatures[0],
					  kiln_strerror(r2));
				goto out;
			}
			text = strndup((const char *)file, fsize);
			free(file);
			if (!text)
				goto out;
		} else {
			ret = find_proposal(a, &ap);
			if (ret != CLI_EXIT_OK)
				goto out;
			ret = CLI_EXIT_FAIL;
			/* An expired proposal is refused by the CAS, naming it. */
			if (ap.not_after <= (int64_t)time(NULL))
				ap.not_after = (int64_t)time(NULL) + 60;
			if (cas_identity_load(a->identity, &key, &cert, &err) < 0 ||
			    cas_approval_sign(key, &ap, &text, &err) < 0) {
				cli_error("policy approve: %s", kiln_err_msg(&err, -EINVAL));
				goto out;
			}
		}
	} else {
		j = json_pack("{s:s,s:s}", "policy", a->arg, "hash", a->hash);
		text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (!text)
			goto out;
	}
	ret = cli_policy_request(a, cmd, "POST", !strcmp(cmd, "approve") ?
				 "/v1/proposals/approve" : "/v1/proposals/withdraw",
				 "application/json", text, strlen(text), &r);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (!strcmp(cmd, "withdraw")) {
		ret = r.status == 200 ? CLI_EXIT_OK : cli_policy_server_error(cmd, &r);
		if (ret == CLI_EXIT_OK)
			printf("withdrew %s %s\n", a->arg, a->hash);
	} else {
		ret = cli_policy_print_applied(cmd, &r);
	}
out:
	cc_response_free(&r);
	json_decref(j);
	EVP_PKEY_free(key);
	X509_free(cert);
	free(text);
	return ret;
}

int cli_policy_proposals(struct policy_args *a)
{
	struct cc_response r = { 0 };
	json_t *j = NULL, *e;
	size_t i;
	int ret;

	if (a->arg && !pol_name_valid(a->arg)) {
		cli_error("policy proposals: '%s' is not a valid policy name", a->arg);
		return CLI_EXIT_USAGE;
	}
	ret = cli_policy_request(a, "proposals", "GET", "/v1/proposals", NULL, NULL, 0, &r);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (r.status != 200) {
		ret = cli_policy_server_error("proposals", &r);
		goto out;
	}
	j = json_loads(r.body, 0, NULL);
	json_array_foreach(json_object_get(j, "proposals"), i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *needs = json_string_value(json_object_get(e, "needs"));
		const char *action;
		char who[2048], when[32];

		if (!name || (a->arg && strcmp(a->arg, name)))
			continue;
		if (a->json) {
			char *t = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);

			printf("%s\n", t ? t : "{}");
			free(t);
			continue;
		}
		join(json_object_get(e, "approvals"), who, sizeof(who));
		cli_fmt_rfc3339((time_t)json_integer_value(json_object_get(e, "expires")), when);
		action = json_string_value(json_object_get(e, "action"));
		printf("%s %s %s%s\n  proposed by: %s\n  approved by: %s\n  expires: %s\n", name,
		       json_string_value(json_object_get(e, "hash")),
		       json_string_value(json_object_get(e, "state")),
		       action && !strcmp(action, "delete") ? " delete" : "",
		       json_string_value(json_object_get(e, "proposer")), who, when);
		if (needs && needs[0])
			printf("  needs: %s\n", needs);
	}
out:
	json_decref(j);
	cc_response_free(&r);
	return ret;
}

int cli_policy_diff(struct policy_args *a)
{
	struct pol_policy *old = NULL, *new = NULL;
	uint8_t *d1 = NULL, *d2 = NULL;
	size_t s1 = 0, s2 = 0;
	char rule[POL_WHY_SIZE];
	unsigned touched;
	int ret;

	ret = cli_policy_load_file(a->arg, &d1, &s1, &old);
	if (ret == CLI_EXIT_OK)
		ret = cli_policy_load_file(a->arg2, &d2, &s2, &new);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (strcmp(old->name, new->name))
		printf("note: the names differ ('%s', '%s'): NEW would be another policy\n",
		       old->name, new->name);
	if (!new->predecessor || strcmp(new->predecessor, old->hash))
		printf("note: NEW's predecessor is not OLD's hash %s: the CAS would refuse it "
		       "as a lost update\n", old->hash);
	touched = pol_sections_touched(old, new);
	printf("%s %s -> %s\n", old->name, old->hash, new->hash);
	pol_rule_describe(&old->update, rule, sizeof(rule));
	printf("  every change: access.update needs %s\n", rule);
	for (int s = 0; s < POL_SEC_COUNT; s++) {
		if (!(touched & (1u << s)))
			continue;
		if (old->owners[s].n_of) {
			pol_rule_describe(&old->owners[s], rule, sizeof(rule));
			printf("  %s: changed; its owners: %s\n", pol_section_name(s), rule);
		} else {
			printf("  %s: changed; no owners (access.update alone)\n",
			       pol_section_name(s));
		}
	}
	for (size_t i = 0; i < old->n_secrets; i++) {
		const struct pol_secret *sec = &old->secrets[i];

		if (!sec->export_rule.quorum || !pol_export_changed(sec, new))
			continue;
		pol_rule_describe(&sec->export_rule, rule, sizeof(rule));
		printf("  secret '%s' export: changed; its approvers: %s\n", sec->name, rule);
	}
	if (!touched && !strcmp(old->hash, new->hash))
		printf("  no change\n");
	ret = CLI_EXIT_OK;
out:
	pol_free(old);
	pol_free(new);
	free(d1);
	free(d2);
	return ret;
}
