/* Canonical form of a policy: every default filled in, set-like lists sorted,
 * named entries sorted by name, scalars normalized (modes as "0600", hex in
 * lower case); serialized by jansson with sorted keys, compact. The SHA-256 of
 * that text is the policy hash, so reordering keys or entries, changing
 * whitespace or quoting, or spelling a default out leaves the hash unchanged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "policy/internal.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted JSON array of strings (the input is not modified). */
json_t *pol__str_set(char *const *v, size_t n)
{
	json_t *a = json_array();
	const char **tmp;

	if (!a)
		return NULL;
	if (n == 0)
		return a;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp) {
		json_decref(a);
		return NULL;
	}
	memcpy(tmp, v, n * sizeof(*tmp));
	qsort(tmp, n, sizeof(*tmp), cmp_str);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(tmp[i]));
	free(tmp);
	return a;
}

static json_t *str_list(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *bits_set(unsigned bits, const char *(*name)(unsigned))
{
	const char *names[16];
	size_t n = 0;

	for (unsigned i = 0; i < 16; i++)
		if (bits & (1u << i))
			names[n++] = name(i);
	return pol__str_set((char *const *)names, n);
}

/* Sort an array of JSON objects by a string member. */
static int cmp_by_key(const void *a, const void *b, const char *key)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, key)),
		      json_string_value(json_object_get(*(json_t *const *)b, key)));
}

static int cmp_by_name(const void *a, const void *b)
{
	return cmp_by_key(a, b, "name");
}

static int cmp_by_path(const void *a, const void *b)
{
	return cmp_by_key(a, b, "path");
}

static int cmp_by_session(const void *a, const void *b)
{
	return cmp_by_key(a, b, "session");
}

static json_t *sorted_array(json_t **items, size_t n, int (*cmp)(const void *, const void *))
{
	json_t *a = json_array();

	if (n > 1) /* items may be NULL when n is 0 */
		qsort(items, n, sizeof(*items), cmp);
	for (size_t i = 0; i < n; i++) {
		if (a)
			json_array_append(a, items[i]);
		json_decref(items[i]);
	}
	return a;
}

/* "owner" and "measurement" appear only when given, so the hash of a policy
 * written before they existed does not change. */
static json_t *export_json(const struct pol_export *e)
{
	json_t *o = json_pack("{s:s,s:o}", "session", e->session, "policy_hash",
			      e->policy_hash ? json_string(e->policy_hash) : json_null());

	if (o && e->owner)
		json_object_set_new(o, "owner", json_string(e->owner));
	if (o && e->n_measurement)
		json_object_set_new(o, "measurement",
				    pol__str_set(e->measurement, e->n_measurement));
	return o;
}

/* An access rule: a plain list when any one listed identity suffices (so a
 * policy written before quorums keeps its hash, and {require: 1, of: L} is L),
 * else {"of": sorted, "require": M}. */
static json_t *rule_json(const struct pol_rule *r)
{
	if (r->require <= 1)
		return pol__str_set(r->of, r->n_of);
	return json_pack("{s:o,s:i}", "of", pol__str_set(r->of, r->n_of), "require",
			 (int)r->require);
}

/* A secret's export: the sorted entries; {"of", "require", "to"} when the quorum
 * form was written (even with require 1: it names who must approve changes). */
static json_t *exports_json(const struct pol_secret *s)
{
	json_t **ex = calloc(s->n_exports + 1, sizeof(*ex)), *to;

	if (!ex)
		return NULL;
	for (size_t i = 0; i < s->n_exports; i++)
		ex[i] = export_json(&s->exports[i]);
	to = sorted_array(ex, s->n_exports, cmp_by_session);
	free(ex);
	if (!to || !s->export_rule.quorum)
		return to;
	return json_pack("{s:o,s:i,s:o}", "of",
			 pol__str_set(s->export_rule.of, s->export_rule.n_of), "require",
			 (int)s->export_rule.require, "to", to);
}

static json_t *secret_json(const struct pol_secret *s, bool with_exports)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "kind", s->kind == POL_SECRET_NONE ? json_null() :
				     json_string(pol_kind_name(s->kind)));
	if (s->import) {
		json_object_set_new(o, "import",
				    json_pack("{s:s,s:s,s:s}", "session", s->import->session,
					      "secret", s->import->secret, "policy_hash",
					      s->import->policy_hash));
	} else {
		switch (s->kind) {
		case POL_SECRET_ASCII:
			json_object_set_new(o, "charset", s->charset ? json_string(s->charset) :
							  json_null());
			/* fall through */
		case POL_SECRET_BINARY:
			json_object_set_new(o, "size", json_integer(s->size));
			break;
		case POL_SECRET_X509:
			json_object_set_new(o, "issuer", s->issuer ? json_string(s->issuer) :
							 json_null());
			json_object_set_new(o, "dns", pol__str_set(s->dns, s->n_dns));
			json_object_set_new(o, "ip", pol__str_set(s->ip, s->n_ip));
			/* fall through */
		case POL_SECRET_X509_CA:
			json_object_set_new(o, "common_name",
					    json_string(s->common_name ? s->common_name : s->name));
			json_object_set_new(o, "validity_days", json_integer(s->validity_days));
			/* fall through */
		case POL_SECRET_KEY:
			json_object_set_new(o, "algorithm",
					    json_string(pol_alg_name(s->algorithm)));
			break;
		case POL_SECRET_NONE:
			break;
		}
	}
	if (with_exports) {
		json_t *ex = exports_json(s);

		if (!ex) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "export", ex);
	}
	return o;
}

char *pol__export_text(const struct pol_secret *s)
{
	json_t *ex = exports_json(s);
	char *text = ex ? json_dumps(ex, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) :
			  NULL;

	json_decref(ex);
	return text;
}

char *pol_secret_spec(const struct pol_secret *s)
{
	json_t *o = secret_json(s, /*with_exports=*/false);
	char *text;

	if (!o)
		return NULL;
	text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(o);
	return text;
}

static json_t *service_json(const struct pol_service *s)
{
	json_t *o = json_object(), *env = json_object(), *net, *con;
	json_t **files = calloc(s->n_files + 1, sizeof(json_t *));
	json_t **mounts = calloc(s->n_mounts + 1, sizeof(json_t *));

	if (!o || !env || !files || !mounts) {
		json_decref(o);
		json_decref(env);
		free(files);
		free(mounts);
		return NULL;
	}
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "command", str_list(s->command, s->n_command));
	for (size_t i = 0; i < s->n_env; i++)
		json_object_set_new(env, s->env[i].name, json_string(s->env[i].value));
	json_object_set_new(o, "environment", env);
	json_object_set_new(o, "pwd", json_string(s->pwd));
	for (size_t i = 0; i < s->n_files; i++) {
		char mode[8];

		snprintf(mode, sizeof(mode), "%04o", s->files[i].mode);
		files[i] = json_pack("{s:s,s:s,s:s}", "path", s->files[i].path, "content",
				     s->files[i].content, "mode", mode);
	}
	json_object_set_new(o, "files", sorted_array(files, s->n_files, cmp_by_path));
	for (size_t i = 0; i < s->n_mounts; i++)
		mounts[i] = json_pack("{s:s,s:s}", "volume", s->mounts[i].volume, "path",
				      s->mounts[i].path);
	json_object_set_new(o, "mounts", sorted_array(mounts, s->n_mounts, cmp_by_path));
	json_object_set_new(o, "measurement", pol__str_set(s->measurement, s->n_measurement));
	json_object_set_new(o, "host_env", pol__str_set(s->host_env, s->n_host_env));
	/* Only when they say something: older policies keep their hash. */
	if ((net = pol__network_json(&s->network)))
		json_object_set_new(o, "network", net);
	if ((con = pol__console_json(&s->console)))
		json_object_set_new(o, "console", con);
	free(files);
	free(mounts);
	return o;
}

int pol__canonicalize(struct pol_policy *p)
{
	json_t *o = json_object(), *sec = json_object(), *tol;
	json_t **secrets = calloc(p->n_secrets + 1, sizeof(json_t *));
	json_t **services = calloc(p->n_services + 1, sizeof(json_t *));
	json_t **volumes = calloc(p->n_volumes + 1, sizeof(json_t *));
	uint8_t digest[KC_SHA256_SIZE];
	char *text = NULL;
	int ret = -ENOMEM;

	if (!o || !sec || !secrets || !services || !volumes)
		goto out;
	json_object_set_new(o, "kiln_policy", json_integer(1));
	json_object_set_new(o, "name", json_string(p->name));
	json_object_set_new(o, "predecessor", p->predecessor ? json_string(p->predecessor) :
					      json_null());
	json_object_set_new(o, "access", json_pack("{s:o,s:o}", "read", rule_json(&p->read),
						   "update", rule_json(&p->update)));
	/* Only when given, so the hash of a policy without it does not change. */
	if (p->del.n_of)
		json_object_set_new(json_object_get(o, "access"), "delete", rule_json(&p->del));
	for (int s = 0; s < POL_SEC_COUNT; s++) {
		if (!p->owners[s].n_of)
			continue;
		if (!json_object_get(o, "owners"))
			json_object_set_new(o, "owners", json_object());
		json_object_set_new(json_object_get(o, "owners"), pol_section_name(s),
				    rule_json(&p->owners[s]));
	}
	for (size_t i = 0; i < p->n_secrets; i++)
		secrets[i] = secret_json(&p->secrets[i], /*with_exports=*/true);
	json_object_set_new(o, "secrets", sorted_array(secrets, p->n_secrets, cmp_by_name));
	for (size_t i = 0; i < p->n_volumes; i++)
		volumes[i] = json_pack("{s:s}", "name", p->volumes[i]);
	json_object_set_new(o, "volumes", sorted_array(volumes, p->n_volumes, cmp_by_name));
	for (size_t i = 0; i < p->n_services; i++)
		services[i] = service_json(&p->services[i]);
	json_object_set_new(o, "services", sorted_array(services, p->n_services, cmp_by_name));
	json_object_set_new(sec, "tee", bits_set(p->tee, pol__tee_name));
	json_object_set_new(sec, "allow_insecure_sim", json_boolean(p->allow_insecure_sim));
	tol = bits_set(p->tolerate, pol__tolerate_name);
	if (json_object_set_new(sec, "tolerate", tol) < 0 || pol__tolerate_json(p, tol) < 0)
		goto out;
	json_object_set_new(sec, "ignore_advisories",
			    pol__str_set(p->ignore_advisories, p->n_ignore_advisories));
	json_object_set_new(o, "security", sec);
	sec = NULL;
	text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	if (!text)
		goto out;
	ret = kc_sha256(text, strlen(text), digest);
	if (ret < 0)
		goto out;
	memcpy(p->hash, "sha256:", 7);
	kiln_hex_encode(digest, sizeof(digest), p->hash + 7);
	p->canonical = o;
	o = NULL;
	ret = 0;
out:
	free(text);
	free(secrets);
	free(services);
	free(volumes);
	json_decref(sec);
	json_decref(o);
	return ret;
}

char *pol_canonical_text(const struct pol_policy *p)
{
	return json_dumps(p->canonical, JSON_SORT_KEYS | JSON_COMPACT);
}
