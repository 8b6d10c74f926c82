/* Policy parsing and strict validation, top level: YAML tree → struct pol_policy.
 * The sections live in their own files (secret.c, service.c, template.c), the
 * tree walker in walk.c, value validators in values.c. */
#include "policy/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- top level ---- */

/* owners: {SECTION: rule}: who must approve a change of each section. */
static int parse_owners(struct pol__ctx *c, const struct ynode *v, struct pol_policy *p)
{
	if (pol__check_map(c, v, "owners", pol__section_names()) < 0)
		return c->code;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		int s = pol__section_find(v->items[i]->str);
		char what[64];

		snprintf(what, sizeof(what), "owners %s", v->items[i]->str);
		if (pol__get_rule(c, v->items[i + 1], what, &p->owners[s]) < 0)
			return c->code;
		if (!p->owners[s].n_of)
			return pol__fail(c, v->items[i + 1], "%s: empty list (leave it out and "
					 "access.update alone governs the section)", what);
	}
	return 0;
}

static int parse_access(struct pol__ctx *c, const struct ynode *v, struct pol_policy *p)
{
	static const char *const keys[] = { "read", "update", "delete", NULL };
	const struct ynode *f;

	if (pol__check_map(c, v, "access", keys) < 0)
		return c->code;
	if ((f = pol__map_get(v, "read")) && pol__get_rule(c, f, "access read", &p->read) < 0)
		return c->code;
	if ((f = pol__map_get(v, "update")) &&
	    pol__get_rule(c, f, "access update", &p->update) < 0)
		return c->code;
	if ((f = pol__map_get(v, "delete"))) {
		if (pol__get_rule(c, f, "access delete", &p->del) < 0)
			return c->code;
		/* n_of 0 means "not given": the update rule applies. */
		if (!p->del.n_of)
			return pol__fail(c, f, "access delete: empty list (leave it out and "
					 "the update rule applies)");
	}
	return 0;
}

static int parse_root(struct pol__ctx *c, const struct ynode *root, struct pol_policy *p)
{
	static const char *const keys[] = { "name", "predecessor", "access", "secrets",
					    "volumes", "services", "security", "owners", NULL };
	static const char *const sec_keys[] = { "tee", "allow_insecure_sim", "tolerate",
						"ignore_advisories", NULL };
	static const char *const vol_keys[] = { "name", NULL };
	const struct ynode *v, *svcs = NULL, *secs = NULL;

	if (root->type != YN_MAP)
		return pol__fail(c, root, "policy: expected a mapping at the top level, found %s",
				 pol__type_name(root));
	if (pol__check_map(c, root, "policy", keys) < 0)
		return c->code;
	v = pol__map_get(root, "name");
	if (!v)
		return pol__fail(c, root, "policy: missing required key 'name'");
	if (pol__get_str(c, v, "name", &p->name) < 0 || pol__check_policy_name(c, v, "name") < 0)
		return c->code;
	v = pol__map_get(root, "predecessor");
	if (v && !pol__is_null(v) &&
	    (pol__get_str(c, v, "predecessor", &p->predecessor) < 0 ||
	     pol__check_hash(c, v, "predecessor") < 0))
		return c->code;
	if ((v = pol__map_get(root, "access")) && parse_access(c, v, p) < 0)
		return c->code;
	if ((v = pol__map_get(root, "owners")) && parse_owners(c, v, p) < 0)
		return c->code;
	if (!p->read.of && pol__rule_default_owner(c, &p->read) < 0)
		return c->code;
	if (!p->update.of && pol__rule_default_owner(c, &p->update) < 0)
		return c->code;
	if ((v = pol__map_get(root, "volumes"))) {
		if (v->type != YN_SEQ)
			return pol__fail(c, v, "volumes: expected a list, found %s",
					 pol__type_name(v));
		p->volumes = calloc(v->n + 1, sizeof(char *));
		if (!p->volumes)
			return pol__oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;

			if (pol__check_map(c, x, "volume", vol_keys) < 0)
				return c->code;
			f = pol__map_get(x, "name");
			if (!f)
				return pol__fail(c, x, "volume: missing required key 'name'");
			if (pol__get_str(c, f, "volume name", &p->volumes[i]) < 0)
				return c->code;
			p->n_volumes = i + 1;
			if (pol__check_item_name(c, f, "volume name") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(p->volumes[j], p->volumes[i]))
					return pol__fail(c, f, "volumes: duplicate name '%s'",
							 p->volumes[i]);
		}
	}
	if ((secs = pol__map_get(root, "secrets"))) {
		if (secs->type != YN_SEQ)
			return pol__fail(c, secs, "secrets: expected a list, found %s",
					 pol__type_name(secs));
		p->secrets = calloc(secs->n + 1, sizeof(*p->secrets));
		if (!p->secrets)
			return pol__oom(c);
		for (size_t i = 0; i < secs->n; i++) {
			p->n_secrets = i + 1;
			if (pol__parse_secret(c, secs->items[i], &p->secrets[i]) < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(p->secrets[j].name, p->secrets[i].name))
					return pol__fail(c, pol__map_get(secs->items[i], "name"),
							 "secrets: duplicate name '%s'",
							 p->secrets[i].name);
		}
		/* Issuers can only be checked once every secret is known. */
		for (size_t i = 0; i < p->n_secrets; i++) {
			const struct pol_secret *s = &p->secrets[i], *is;

			if (!s->issuer)
				continue;
			v = pol__map_get(secs->items[i], "issuer");
			is = pol_find_secret(p, s->issuer);
			if (!is)
				return pol__fail(c, v, "secret '%s': unknown issuer '%s'", s->name,
						 s->issuer);
			if (is->kind != POL_SECRET_X509_CA)
				return pol__fail(c, v, "secret '%s': issuer '%s' is not an x509-ca "
						 "secret (it is %s)", s->name, s->issuer,
						 pol_kind_name(is->kind));
		}
	}
	if ((svcs = pol__map_get(root, "services"))) {
		if (svcs->type != YN_SEQ)
			return pol__fail(c, svcs, "services: expected a list, found %s",
					 pol__type_name(svcs));
		p->services = calloc(svcs->n + 1, sizeof(*p->services));
		if (!p->services)
			return pol__oom(c);
		for (size_t i = 0; i < svcs->n; i++) {
			p->n_services = i + 1;
			if (pol__parse_service(c, p, svcs->items[i], &p->services[i]) < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(p->services[j].name, p->services[i].name))
					return pol__fail(c, pol__map_get(svcs->items[i], "name"),
							 "services: duplicate name '%s'",
							 p->services[i].name);
		}
	}
	if ((v = pol__map_get(root, "security"))) {
		const struct ynode *f;

		if (pol__check_map(c, v, "security", sec_keys) < 0)
			return c->code;
		if ((f = pol__map_get(v, "tee")) &&
		    pol__get_enum_set(c, f, "security tee", pol__tees, &p->tee) < 0)
			return c->code;
		if ((f = pol__map_get(v, "allow_insecure_sim")) &&
		    pol__get_bool(c, f, "security allow_insecure_sim", &p->allow_insecure_sim) < 0)
			return c->code;
		if ((f = pol__map_get(v, "tolerate")) && pol__parse_tolerate(c, f, p) < 0)
			return c->code;
		if ((f = pol__map_get(v, "ignore_advisories")) &&
		    pol__get_str_list(c, f, "security ignore_advisories", pol__check_advisory,
				      &p->ignore_advisories, &p->n_ignore_advisories) < 0)
			return c->code;
	}
	if (p->n_services && !p->tee)
		return pol__fail(c, v ? v : root, "security: 'tee' must list at least one TEE "
				 "(sim, host, sgx, tdx, snp) when the policy has services");
	return 0;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void pol_free(struct pol_policy *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->predecessor);
	pol__rule_free(&p->read);
	pol__rule_free(&p->update);
	pol__rule_free(&p->del);
	for (int s = 0; s < POL_SEC_COUNT; s++)
		pol__rule_free(&p->owners[s]);
	for (size_t i = 0; p->secrets && i < p->n_secrets; i++) {
		struct pol_secret *s = &p->secrets[i];

		free(s->name);
		free(s->charset);
		free(s->issuer);
		free(s->common_name);
		free_strv(s->dns, s->n_dns);
		free_strv(s->ip, s->n_ip);
		for (size_t j = 0; s->exports && j < s->n_exports; j++) {
			free(s->exports[j].session);
			free(s->exports[j].owner);
			free(s->exports[j].policy_hash);
			free_strv(s->exports[j].measurement, s->exports[j].n_measurement);
		}
		free(s->exports);
		pol__rule_free(&s->export_rule);
		if (s->import) {
			free(s->import->session);
			free(s->import->secret);
			free(s->import->policy_hash);
			free(s->import);
		}
	}
	free(p->secrets);
	free_strv(p->volumes, p->n_volumes);
	pol__tolerances_free(p);
	for (size_t i = 0; p->services && i < p->n_services; i++) {
		struct pol_service *s = &p->services[i];

		free(s->name);
		free_strv(s->command, s->n_command);
		for (size_t j = 0; s->env && j < s->n_env; j++) {
			free(s->env[j].name);
			free(s->env[j].value);
		}
		free(s->env);
		free(s->pwd);
		for (size_t j = 0; s->files && j < s->n_files; j++) {
			free(s->files[j].path);
			free(s->files[j].content);
		}
		free(s->files);
		for (size_t j = 0; s->mounts && j < s->n_mounts; j++) {
			free(s->mounts[j].volume);
			free(s->mounts[j].path);
		}
		free(s->mounts);
		free_strv(s->measurement, s->n_measurement);
		free_strv(s->host_env, s->n_host_env);
		pol__network_free(&s->network);
		pol__console_free(&s->console);
	}
	free(p->services);
	free_strv(p->ignore_advisories, p->n_ignore_advisories);
	json_decref(p->canonical);
	free(p);
}

const struct pol_secret *pol_find_secret(const struct pol_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_secrets; i++)
		if (p->secrets[i].name && !strcmp(p->secrets[i].name, name))
			return &p->secrets[i];
	return NULL;
}

const struct pol_service *pol_find_service(const struct pol_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_services; i++)
		if (p->services[i].name && !strcmp(p->services[i].name, name))
			return &p->services[i];
	return NULL;
}

int pol_parse(const char *yaml, size_t size, const char *file, struct pol_policy **out,
	      struct kiln_err *err)
{
	return pol_parse_ex(yaml, size, file, 0, out, err);
}

int pol_parse_ex(const char *yaml, size_t size, const char *file, unsigned flags,
		 struct pol_policy **out, struct kiln_err *err)
{
	struct pol__ctx c = { .file = file ? file : "policy", .err = err, .code = 0,
			  .flags = flags };
	struct ynode *root = NULL;
	struct pol_policy *p = NULL;
	int ret;

	*out = NULL;
	ret = pol__yn_parse(yaml, size, c.file, &root, err);
	if (ret < 0)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p) {
		ret = pol__oom(&c);
		goto out;
	}
	ret = parse_root(&c, root, p);
	if (ret < 0)
		goto out;
	ret = pol__canonicalize(p);
	if (ret < 0) {
		ret = kiln_err_set(err, ret, "%s: cannot compute the canonical form: %s", c.file,
				   kiln_strerror(ret));
		goto out;
	}
	*out = p;
	p = NULL;
out:
	pol_free(p);
	pol__yn_free(root);
	return ret;
}
