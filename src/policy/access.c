/* Access decisions: who may read, update or delete a policy (rules that may need
 * a quorum of approvals), and which export entry lets another policy import a
 * secret. The attestation decisions are in decide.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

static bool id_is(const char *entry, const char *owner, const char *id)
{
	if (!strcmp(entry, "owner"))
		return owner && !strcmp(owner, id);
	return !strcmp(entry, id);
}

bool pol_rule_lists(const struct pol_rule *r, const char *owner, const char *id)
{
	if (!id)
		return false;
	for (size_t i = 0; i < r->n_of; i++)
		if (id_is(r->of[i], owner, id))
			return true;
	return false;
}

unsigned pol_rule_count(const struct pol_rule *r, const char *owner, const char *const *ids,
			size_t n)
{
	unsigned count = 0;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		if (!ids[i] || !pol_rule_lists(r, owner, ids[i]))
			continue;
		/* The same identity twice (or as "owner" and by its hash) is one. */
		for (size_t j = 0; j < i && !seen; j++)
			seen = ids[j] && !strcmp(ids[j], ids[i]);
		count += !seen;
	}
	return count;
}

void pol_rule_describe(const struct pol_rule *r, char *buf, size_t size)
{
	size_t len;

	if (r->require > 1)
		snprintf(buf, size, "%u of [", r->require);
	else
		snprintf(buf, size, "one of [");
	for (size_t i = 0; i < r->n_of; i++) {
		len = strlen(buf);
		snprintf(buf + len, size - len, "%s%s", i ? ", " : "", r->of[i]);
	}
	len = strlen(buf);
	snprintf(buf + len, size - len, "]");
}

/* The approvals that r lists, "a, b" or "none", for messages. */
static void approvals_describe(const struct pol_rule *r, const char *owner,
			       const char *const *ids, size_t n, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(buf);

		if (ids[i] && pol_rule_lists(r, owner, ids[i]) && !strstr(buf, ids[i]))
			snprintf(buf + len, size - len, "%s%s", len ? ", " : "", ids[i]);
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

/* 0 when r is met by the approvals; else -KILN_EDENIED and why names the rule
 * (`what`), what it needs and which approvals counted. */
static int rule_met(const struct pol_rule *r, const char *what, const char *owner,
		    const char *const *ids, size_t n, char *why, size_t why_size)
{
	char rule[POL_WHY_SIZE / 2], got[POL_WHY_SIZE / 2];
	unsigned count = pol_rule_count(r, owner, ids, n);

	if (count >= r->require)
		return 0;
	pol_rule_describe(r, rule, sizeof(rule));
	approvals_describe(r, owner, ids, n, got, sizeof(got));
	snprintf(why, why_size, "%s needs %s; this request has %u (%s)", what, rule, count,
		 got);
	return -KILN_EDENIED;
}

bool pol_may_read(const struct pol_policy *p, const char *owner, const char *id)
{
	/* Whoever approves changes (update, delete, an export) reads what it approves. */
	return (p->read.require <= 1 && pol_rule_lists(&p->read, owner, id)) ||
	       pol_may_approve(p, owner, id);
}

bool pol_quorum_governed(const struct pol_policy *p)
{
	if (p->update.require > 1 || p->del.require > 1)
		return true;
	for (int s = 0; s < POL_SEC_COUNT; s++)
		if (p->owners[s].n_of)
			return true;
	for (size_t i = 0; i < p->n_secrets; i++)
		if (p->secrets[i].export_rule.quorum)
			return true;
	return false;
}

bool pol_may_approve(const struct pol_policy *p, const char *owner, const char *id)
{
	if (pol_rule_lists(&p->update, owner, id) || pol_rule_lists(&p->del, owner, id))
		return true;
	for (int s = 0; s < POL_SEC_COUNT; s++)
		if (pol_rule_lists(&p->owners[s], owner, id))
			return true;
	for (size_t i = 0; i < p->n_secrets; i++)
		if (pol_rule_lists(&p->secrets[i].export_rule, owner, id))
			return true;
	return false;
}

bool pol_may_update(const struct pol_policy *p, const char *owner, const char *id)
{
	return pol_rule_lists(&p->update, owner, id);
}

bool pol_export_changed(const struct pol_secret *s, const struct pol_policy *next)
{
	const struct pol_secret *ns = pol_find_secret(next, s->name);
	char *a, *b;
	bool changed;

	if (!ns)
		return true;
	a = pol__export_text(s);
	b = pol__export_text(ns);
	changed = !a || !b || strcmp(a, b);
	free(a);
	free(b);
	return changed;
}

static bool approved_by(const char *id, const char *const *ids, size_t n)
{
	for (size_t i = 0; id && i < n; i++)
		if (ids[i] && !strcmp(ids[i], id))
			return true;
	return false;
}

int pol_may_apply(const struct pol_policy *cur, const struct pol_policy *next,
		  const char *owner, const char *const *ids, size_t n, char *why,
		  size_t why_size)
{
	unsigned touched;
	int ret;

	why[0] = '\0';
	if (!n || !pol_may_update(cur, owner, ids[0]))
		return -KILN_EDENIED;
	ret = rule_met(&cur->update, "access.update", owner, ids, n, why, why_size);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < cur->n_secrets; i++) {
		const struct pol_secret *s = &cur->secrets[i];
		char what[120];

		if (!s->export_rule.quorum || !pol_export_changed(s, next))
			continue;
		snprintf(what, sizeof(what), "changing the export of secret '%s'", s->name);
		ret = rule_met(&s->export_rule, what, owner, ids, n, why, why_size);
		if (ret < 0)
			return ret;
	}
	touched = pol_sections_touched(cur, next);
	for (int s = 0; s < POL_SEC_COUNT; s++) {
		char what[120];

		if (!cur->owners[s].n_of || !(touched & (1u << s)))
			continue;
		snprintf(what, sizeof(what), "changing section '%s' (owners)",
			 pol_section_name(s));
		ret = rule_met(&cur->owners[s], what, owner, ids, n, why, why_size);
		if (ret < 0)
			return ret;
	}
	/* Co-updaters may change anything but the owner's own update access: they
	 * cannot lock the owner out of the policy. The owner may. */
	if (!pol_may_update(next, owner, owner) && !approved_by(owner, ids, n)) {
		snprintf(why, why_size, "only the owner may remove the owner's update access");
		return -KILN_EDENIED;
	}
	return 0;
}

int pol_check_new(const struct pol_policy *p, char *why, size_t why_size)
{
	char rule[POL_WHY_SIZE / 2];

	why[0] = '\0';
	if (p->read.require <= 1)
		return 0;
	pol_rule_describe(&p->read, rule, sizeof(rule));
	snprintf(why, why_size, "access.read needs %s, but a read is one request by one "
		 "identity: a read quorum has no approval path and could never be met; list "
		 "the readers instead (any one of them reads; the identities of the update "
		 "and delete rules read what they approve)", rule);
	return -KILN_EFORMAT;
}

int pol_may_delete(const struct pol_policy *p, const char *owner, const char *const *ids,
		   size_t n, char *why, size_t why_size)
{
	const struct pol_rule *r = p->del.n_of ? &p->del : &p->update;

	why[0] = '\0';
	if (!n || !pol_rule_lists(r, owner, ids[0]))
		return -KILN_EDENIED;
	return rule_met(r, p->del.n_of ? "access.delete" : "access.update (there is no "
			"access.delete)", owner, ids, n, why, why_size);
}

const struct pol_export *pol_export_find(const struct pol_secret *xs, const char *importer,
					 const char *importer_hash, const char *importer_owner)
{
	for (size_t i = 0; i < xs->n_exports; i++) {
		const struct pol_export *e = &xs->exports[i];

		if (strcmp(e->session, importer))
			continue;
		/* An entry bound to neither (stored by an older kiln) matches nothing:
		 * the name alone says nothing about who created the importer. */
		if (!e->owner && !e->policy_hash)
			continue;
		if (e->owner && (!importer_owner || strcmp(e->owner, importer_owner)))
			continue;
		if (e->policy_hash && (!importer_hash || strcmp(e->policy_hash, importer_hash)))
			continue;
		return e;
	}
	return NULL;
}
