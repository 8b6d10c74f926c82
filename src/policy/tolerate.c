/* security.tolerate: which TCB statuses (and debug) a policy accepts.
 *
 * Two forms, mixed in one list:
 *   - a category name ("sw-hardening-needed"): that status is accepted with no
 *     end date; the quote's advisories must then be in security.ignore_advisories;
 *   - an entry {status, advisories, until}: that status is accepted only until
 *     the end of `until` (UTC), and only when every advisory ID the quote's TCB
 *     level names is in the entry's `advisories`.
 * The plain form is the one older policies use; its canonical form (and so the
 * hash of those policies) is unchanged: entries are appended after the names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

#define DAY_SECONDS 86400

/* ---- parsing ---- */

/* YYYY-MM-DD, a real calendar day, 2000 to 9999; *end is 00:00:00 UTC of the
 * next day, the first second the entry no longer applies. */
static bool parse_day(const char *s, int64_t *end)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, days_in;
	int64_t days;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    strspn(s, "0123456789") != 4 || strspn(s + 5, "0123456789") != 2 ||
	    strspn(s + 8, "0123456789") != 2)
		return false;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 2000 || m < 1 || m > 12 || d < 1)
		return false;
	days_in = mdays[m - 1];
	if (m == 2 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		days_in = 28;
	if (d > days_in)
		return false;
	/* Days from 1970-01-01 (civil calendar, proleptic Gregorian). */
	{
		int yy = m <= 2 ? y - 1 : y;
		int era = yy / 400;
		int yoe = yy - era * 400;
		int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = (int64_t)era * 146097 + doe - 719468;
	}
	*end = (days + 1) * DAY_SECONDS;
	return true;
}

/* Advisory IDs as TCB Info names them (advisoryIDs): INTEL-SA-00615. A typo such
 * as intel-sa-615 would never match a quote's, so it is an error here. */
static bool advisory_id_valid(const char *s)
{
	size_t letters = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");

	if (!letters || strncmp(s + letters, "-SA-", 4))
		return false;
	s += letters + 4;
	return s[0] && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 16;
}

static int check_advisory_id(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!advisory_id_valid(n->str))
		return pol__fail(c, n, "%s: '%s' is not an advisory ID (like INTEL-SA-00615: "
				 "upper-case letters, -SA-, digits)", what, n->str);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_entry(struct pol__ctx *c, const struct ynode *n, struct pol_tolerance *t)
{
	static const char *const keys[] = { "status", "advisories", "until", NULL };
	const struct ynode *f;
	int v;

	if (pol__check_map(c, n, "security tolerate entry", keys) < 0)
		return c->code;
	f = pol__map_get(n, "status");
	if (!f)
		return pol__fail(c, n, "security tolerate entry: missing required key 'status' "
				 "(outdated-tcb, sw-hardening-needed or configuration-needed)");
	if (pol__get_enum(c, f, "security tolerate status", pol__tols, &v) < 0)
		return c->code;
	if (1u << v == POL_TOL_DEBUG)
		return pol__fail(c, f, "security tolerate status: 'debug' is not a TCB status and "
				 "has no advisories: list it as a plain item (tolerate: [debug])");
	t->status = 1u << v;
	f = pol__map_get(n, "advisories");
	if (!f)
		return pol__fail(c, n, "security tolerate entry: missing required key "
				 "'advisories' (every advisory ID of the tolerated TCB level, or "
				 "[] for none)");
	if (pol__get_str_list(c, f, "security tolerate advisories", check_advisory_id,
			      &t->advisories, &t->n_advisories) < 0)
		return c->code;
	if (t->n_advisories)
		qsort(t->advisories, t->n_advisories, sizeof(char *), cmp_str);
	f = pol__map_get(n, "until");
	if (!f)
		return pol__fail(c, n, "security tolerate entry: missing required key 'until' "
				 "(the last day it applies, YYYY-MM-DD UTC; a plain '%s' item "
				 "tolerates with no end)", pol__tolerate_name((unsigned)v));
	if (f->type != YN_SCALAR || pol__is_null(f) || pol__bool_value(f) >= 0)
		return pol__fail(c, f, "security tolerate until: expected a date (YYYY-MM-DD, "
				 "UTC), found %s", pol__type_name(f));
	if (!parse_day(f->str, &t->until))
		return pol__fail(c, f, "security tolerate until: '%s' is not a date "
				 "(YYYY-MM-DD, UTC, from 2000)", f->str);
	memcpy(t->until_day, f->str, sizeof(t->until_day) - 1);
	t->until_day[sizeof(t->until_day) - 1] = '\0';
	return 0;
}

static bool same_entry(const struct pol_tolerance *a, const struct pol_tolerance *b)
{
	if (a->status != b->status || a->until != b->until || a->n_advisories != b->n_advisories)
		return false;
	for (size_t i = 0; i < a->n_advisories; i++)
		if (strcmp(a->advisories[i], b->advisories[i]))
			return false;
	return true;
}

int pol__parse_tolerate(struct pol__ctx *c, const struct ynode *n, struct pol_policy *p)
{
	if (n->type != YN_SEQ)
		return pol__fail(c, n, "security tolerate: expected a list, found %s",
				 pol__type_name(n));
	p->tolerances = calloc(n->n + 1, sizeof(*p->tolerances));
	if (!p->tolerances)
		return pol__oom(c);
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *x = n->items[i];
		int v;

		if (x->type == YN_MAP) {
			struct pol_tolerance *t = &p->tolerances[p->n_tolerances++];

			if (parse_entry(c, x, t) < 0)
				return c->code;
			for (size_t j = 0; j + 1 < p->n_tolerances; j++)
				if (same_entry(&p->tolerances[j], t))
					return pol__fail(c, x, "security tolerate: duplicate entry "
							 "for '%s'", pol_tolerance_status_name(t));
			continue;
		}
		if (pol__get_enum(c, x, "security tolerate", pol__tols, &v) < 0)
			return c->code;
		if (p->tolerate & (1u << v))
			return pol__fail(c, x, "security tolerate: duplicate entry '%s'", x->str);
		p->tolerate |= 1u << v;
	}
	/* A plain name accepts its status with any advisories and no end: an entry
	 * of the same status beside it would look like a limit and not be one. */
	for (size_t i = 0; i < p->n_tolerances; i++)
		if (p->tolerate & p->tolerances[i].status) {
			const char *name = pol_tolerance_status_name(&p->tolerances[i]);

			return pol__fail(c, n, "security tolerate: '%s' is listed both plainly "
					 "(any advisories, no end date) and as an entry with "
					 "advisories and until: keep one", name);
		}
	return 0;
}

void pol__tolerances_free(struct pol_policy *p)
{
	for (size_t i = 0; p->tolerances && i < p->n_tolerances; i++) {
		for (size_t j = 0; j < p->tolerances[i].n_advisories; j++)
			free(p->tolerances[i].advisories[j]);
		free(p->tolerances[i].advisories);
	}
	free(p->tolerances);
	p->tolerances = NULL;
	p->n_tolerances = 0;
}

/* ---- canonical form ---- */

static int cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int pol__tolerate_json(const struct pol_policy *p, json_t *names)
{
	char **texts;
	int ret = -1;
	size_t n = 0;

	if (!names)
		return -1;
	if (!p->n_tolerances)
		return 0;
	/* Entries in the order of their canonical text: the order they were written
	 * in does not change the hash. */
	texts = calloc(p->n_tolerances, sizeof(*texts));
	if (!texts)
		return -1;
	for (; n < p->n_tolerances; n++) {
		const struct pol_tolerance *t = &p->tolerances[n];
		json_t *o = json_pack("{s:s,s:o,s:s}", "status", pol_tolerance_status_name(t),
				      "advisories", pol__str_set(t->advisories, t->n_advisories),
				      "until", t->until_day);

		texts[n] = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
		json_decref(o);
		if (!texts[n])
			goto out;
	}
	qsort(texts, n, sizeof(*texts), cmp_text);
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(names, json_loads(texts[i], 0, NULL)) < 0)
			goto out;
	ret = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	return ret;
}

/* ---- decisions ---- */

/* Which tolerations a tcb_status needs; -1 when it can never be accepted. */
static int tcb_needs(const char *status)
{
	if (!strcmp(status, "UpToDate"))
		return 0;
	if (!strcmp(status, "SWHardeningNeeded"))
		return POL_TOL_SW_HARDENING;
	if (!strcmp(status, "ConfigurationNeeded"))
		return POL_TOL_CONFIGURATION;
	if (!strcmp(status, "ConfigurationAndSWHardeningNeeded"))
		return POL_TOL_CONFIGURATION | POL_TOL_SW_HARDENING;
	if (!strcmp(status, "OutOfDate"))
		return POL_TOL_OUTDATED_TCB;
	if (!strcmp(status, "OutOfDateConfigurationNeeded"))
		return POL_TOL_OUTDATED_TCB | POL_TOL_CONFIGURATION;
	return -1; /* Revoked, or anything we do not know */
}

static bool listed(char *const *v, size_t n, const char *id)
{
	for (size_t i = 0; id && i < n; i++)
		if (!strcmp(v[i], id))
			return true;
	return false;
}

/* The claims' advisories that t does not list, ", "-separated into out (may be
 * NULL); their count. */
static size_t not_listed(const struct pol_tolerance *t, const json_t *adv, char *out,
			 size_t size)
{
	size_t i, count = 0;
	json_t *a;

	if (out)
		out[0] = '\0';
	json_array_foreach(adv, i, a) {
		const char *id = json_string_value(a);

		if (listed(t->advisories, t->n_advisories, id))
			continue;
		if (out) {
			if (out[0])
				strncat(out, ", ", size - strlen(out) - 1);
			strncat(out, id ? id : "(not a string)", size - strlen(out) - 1);
		}
		count++;
	}
	return count;
}

static void bit_names(unsigned bits, char *out, size_t size)
{
	out[0] = '\0';
	for (unsigned i = 0; i < 4; i++) {
		if (!(bits & (1u << i)))
			continue;
		if (out[0])
			strncat(out, ", ", size - strlen(out) - 1);
		strncat(out, pol__tolerate_name(i), size - strlen(out) - 1);
	}
}

/* The entry of status `bit` that accepts the claims' advisories at now, or NULL;
 * *expired is then the latest-ending expired entry of that status (or NULL) and
 * *closest the in-force entry missing the fewest advisories (or NULL). */
static const struct pol_tolerance *find_entry(const struct pol_policy *p, unsigned bit,
					      const json_t *adv, int64_t now,
					      const struct pol_tolerance **expired,
					      const struct pol_tolerance **closest)
{
	size_t best = (size_t)-1;

	*expired = *closest = NULL;
	for (size_t i = 0; i < p->n_tolerances; i++) {
		const struct pol_tolerance *t = &p->tolerances[i];
		size_t miss;

		if (t->status != bit)
			continue;
		if (now >= t->until) {
			if (!*expired || t->until > (*expired)->until)
				*expired = t;
			continue;
		}
		miss = not_listed(t, adv, NULL, 0);
		if (miss < best) {
			best = miss;
			*closest = t;
		}
	}
	return best == 0 ? *closest : NULL;
}

int pol__decide_tcb(const struct pol_policy *p, const json_t *claims, int64_t now,
		    const struct pol_tolerance **used, char *reason, size_t reason_size, const char **label)
{
	const char *tcb = json_string_value(json_object_get(claims, "tcb_status"));
	const json_t *adv = json_object_get(claims, "advisories");
	json_t *empty = NULL;
	bool by_entry = false;
	int ret = 0;

	*used = NULL;
	if (!json_is_array(adv))
		adv = empty = json_array();
	if (!adv)
		return -ENOMEM;
	if (tcb) {
		int needs = tcb_needs(tcb);
		unsigned open, unlisted = 0;
		char names[96], miss[400];

		if (needs < 0) {
			ret = pol__refuse(reason, reason_size, label, "tcb_not_tolerated",
					  -KILN_ETCB, "claims.tcb_status \"%s\" is never accepted",
					  tcb);
			goto out;
		}
		open = (unsigned)needs & ~p->tolerate;
		for (unsigned i = 0; i < 4; i++) {
			bool any = false;

			if (!(open & (1u << i)))
				continue;
			for (size_t j = 0; j < p->n_tolerances; j++)
				any |= p->tolerances[j].status == 1u << i;
			if (!any)
				unlisted |= 1u << i;
		}
		if (unlisted) {
			bit_names(unlisted, names, sizeof(names));
			ret = pol__refuse(reason, reason_size, label, "tcb_not_tolerated",
					  -KILN_ETCB, "claims.tcb_status \"%s\" needs security."
					  "tolerate [%s]", tcb, names);
			goto out;
		}
		for (unsigned i = 0; i < 4; i++) {
			const struct pol_tolerance *t, *expired, *closest;

			if (!(open & (1u << i)))
				continue;
			t = find_entry(p, 1u << i, adv, now, &expired, &closest);
			if (t) {
				if (!*used || t->until < (*used)->until)
					*used = t;
				by_entry = true;
				continue;
			}
			if (closest) {
				not_listed(closest, adv, miss, sizeof(miss));
				ret = pol__refuse(reason, reason_size, label,
						  "advisory_not_tolerated", -KILN_ETCB,
						  "claims.tcb_status \"%s\": advisories %s are "
						  "not in the security.tolerate entry for %s "
						  "(until %s)",
						  tcb, miss, pol__tolerate_name(i),
						  closest->until_day);
				goto out;
			}
			ret = pol__refuse(reason, reason_size, label, "tolerance_expired",
					  -KILN_ETCB, "claims.tcb_status \"%s\": the security."
					  "tolerate entry for %s expired (until %s, UTC)", tcb,
					  pol__tolerate_name(i), expired->until_day);
			goto out;
		}
	}
	/* A status accepted by an entry: that entry lists every advisory (else it
	 * would not have matched). Otherwise, each must be ignored explicitly. */
	if (!by_entry) {
		size_t i;
		json_t *a;

		json_array_foreach(adv, i, a) {
			const char *id = json_string_value(a);

			if (listed(p->ignore_advisories, p->n_ignore_advisories, id))
				continue;
			ret = pol__refuse(reason, reason_size, label, "advisory_not_ignored",
					  -KILN_ETCB, "claims.advisories has \"%s\" which is not "
					  "in security.ignore_advisories",
					  id ? id : "(not a string)");
			goto out;
		}
	}
out:
	if (ret < 0)
		*used = NULL;
	json_decref(empty);
	return ret;
}

const struct pol_tolerance *pol_tolerance_used(const struct pol_policy *p,
					       const json_t *claims, int64_t now)
{
	const struct pol_tolerance *used;

	if (pol__decide_tcb(p, claims, now, &used, NULL, 0, NULL) < 0)
		return NULL;
	return used;
}

const char *pol_tolerance_status_name(const struct pol_tolerance *t)
{
	return pol__tolerate_name((unsigned)__builtin_ctz(t->status));
}
