/* Sections of a policy for `owners:` (who must approve a change of each part):
 * which sections a new version touches, compared on the canonical form so that
 * reordering or restating a default touches nothing. */
#include "policy/internal.h"

#include <string.h>

static const char *const g_sections[POL_SEC_COUNT + 1] = { /* NULL-terminated */
	[POL_SEC_ACCESS] = "access",
	[POL_SEC_SECRETS] = "secrets",
	[POL_SEC_VOLUMES] = "volumes",
	[POL_SEC_SERVICES] = "services",
	[POL_SEC_COMMAND] = "services.command",
	[POL_SEC_MEASUREMENT] = "services.measurement",
	[POL_SEC_SECURITY] = "security",
};

const char *pol_section_name(enum pol_section s)
{
	return s < POL_SEC_COUNT ? g_sections[s] : "?";
}

int pol__section_find(const char *name)
{
	for (int i = 0; i < POL_SEC_COUNT; i++)
		if (!strcmp(g_sections[i], name))
			return i;
	return -1;
}

const char *const *pol__section_names(void)
{
	return g_sections;
}

/* {name: member} of every service (canonical services are sorted by name), or,
 * with member NULL, each service without command and measurement. New reference. */
static json_t *services_part(const json_t *services, const char *member)
{
	json_t *out = json_object(), *svc;
	size_t i;

	json_array_foreach(services, i, svc) {
		const char *name = json_string_value(json_object_get(svc, "name"));
		json_t *v;

		if (!out || !name)
			continue;
		if (member) {
			v = json_object_get(svc, member);
			json_object_set(out, name, v ? v : json_null());
			continue;
		}
		v = json_deep_copy(svc);
		json_object_del(v, "command");
		json_object_del(v, "measurement");
		json_object_set_new(out, name, v);
	}
	return out;
}

/* Does section s differ between the canonical forms a and b? */
static bool differs(const json_t *a, const json_t *b, enum pol_section s)
{
	static const char *const top[POL_SEC_COUNT] = {
		[POL_SEC_ACCESS] = "access", [POL_SEC_SECRETS] = "secrets",
		[POL_SEC_VOLUMES] = "volumes", [POL_SEC_SECURITY] = "security",
	};
	const char *member = s == POL_SEC_COMMAND ? "command" :
			     s == POL_SEC_MEASUREMENT ? "measurement" : NULL;
	json_t *x, *y;
	bool d;

	if (top[s])
		return !json_equal(json_object_get(a, top[s]), json_object_get(b, top[s]));
	x = services_part(json_object_get(a, "services"), member);
	y = services_part(json_object_get(b, "services"), member);
	d = !x || !y || !json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return d;
}

static bool rule_equal(const struct pol_rule *a, const struct pol_rule *b)
{
	if (a->n_of != b->n_of || a->require != b->require)
		return false;
	for (size_t i = 0; i < a->n_of; i++) {
		bool found = false;

		for (size_t j = 0; j < b->n_of && !found; j++)
			found = !strcmp(a->of[i], b->of[j]);
		if (!found)
			return false;
	}
	return true;
}

unsigned pol_sections_touched(const struct pol_policy *cur, const struct pol_policy *next)
{
	unsigned bits = 0;

	for (int s = 0; s < POL_SEC_COUNT; s++)
		if (differs(cur->canonical, next->canonical, s) ||
		    !rule_equal(&cur->owners[s], &next->owners[s]))
			bits |= 1u << s;
	return bits;
}
