/* The services section: command, environment, pwd, files, mounts,
 * measurement, host_env. */
#include "policy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- services ---- */

static int parse_mode(struct pol__ctx *c, const struct ynode *n, uint32_t *mode)
{
	const char *s = n->str;
	size_t len;

	if (n->type != YN_SCALAR || pol__is_null(n))
		return pol__fail(c, n, "file mode: expected an octal mode like \"0600\", found %s",
				 pol__type_name(n));
	len = strlen(s);
	if (len < 3 || len > 4 || strspn(s, "01234567") != len || (len == 4 && s[0] != '0'))
		return pol__fail(c, n,
				 "file mode: expected an octal mode like \"0600\", found '%s'", s);
	*mode = (uint32_t)strtoul(s, NULL, 8);
	return 0;
}

int pol__parse_service(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *n,
		       struct pol_service *svc)
{
	static const char *const keys[] = { "name", "command", "environment", "pwd", "files",
					    "mounts", "measurement", "host_env", "network",
					    "console", NULL };
	static const char *const file_keys[] = { "path", "content", "mode", NULL };
	static const char *const mount_keys[] = { "volume", "path", NULL };
	const struct ynode *v;

	if (pol__check_map(c, n, "service", keys) < 0)
		return c->code;
	svc->mark.line = n->line;
	svc->mark.col = n->col;
	v = pol__map_get(n, "name");
	if (!v)
		return pol__fail(c, n, "service: missing required key 'name'");
	if (pol__get_str(c, v, "service name", &svc->name) < 0 ||
	    pol__check_item_name(c, v, "service name") < 0)
		return c->code;
	if ((v = pol__map_get(n, "host_env")) &&
	    pol__get_str_list(c, v, "service host_env", pol__check_env_name, &svc->host_env,
			      &svc->n_host_env) < 0)
		return c->code;
	v = pol__map_get(n, "command");
	if (!v)
		return pol__fail(c, n, "service '%s': missing required key 'command'", svc->name);
	if (v->type != YN_SEQ || v->n == 0)
		return pol__fail(c, v, "service '%s' command: expected a non-empty list of strings",
				 svc->name);
	svc->command = calloc(v->n + 1, sizeof(char *));
	if (!svc->command)
		return pol__oom(c);
	for (size_t i = 0; i < v->n; i++) {
		if (pol__get_str(c, v->items[i], "command", &svc->command[i]) < 0)
			return c->code;
		svc->n_command = i + 1;
		if (pol__check_template(c, p, svc, v->items[i], "command", true) < 0)
			return c->code;
	}
	if ((v = pol__map_get(n, "environment"))) {
		if (pol__check_map(c, v, "environment", NULL) < 0)
			return c->code;
		svc->env = calloc(v->n / 2 + 1, sizeof(*svc->env));
		if (!svc->env)
			return pol__oom(c);
		for (size_t i = 0; i + 1 < v->n; i += 2) {
			struct pol_env *e = &svc->env[i / 2];

			if (pol__check_env_name(c, v->items[i], "environment") < 0 ||
			    pol__get_str(c, v->items[i], "environment", &e->name) < 0)
				return c->code;
			svc->n_env = i / 2 + 1;
			if (pol__get_str(c, v->items[i + 1], "environment value", &e->value) < 0 ||
			    pol__check_template(c, p, svc, v->items[i + 1], "environment", true) <
				    0)
				return c->code;
		}
	}
	if ((v = pol__map_get(n, "pwd"))) {
		if (pol__get_str(c, v, "pwd", &svc->pwd) < 0 ||
		    pol__check_abs_path(c, v, "pwd") < 0)
			return c->code;
	} else if (!(svc->pwd = strdup("/"))) {
		return pol__oom(c);
	}
	if ((v = pol__map_get(n, "files"))) {
		if (v->type != YN_SEQ)
			return pol__fail(c, v, "files: expected a list, found %s",
					 pol__type_name(v));
		svc->files = calloc(v->n + 1, sizeof(*svc->files));
		if (!svc->files)
			return pol__oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;
			struct pol_file *fl = &svc->files[i];

			if (pol__check_map(c, x, "file", file_keys) < 0)
				return c->code;
			svc->n_files = i + 1;
			f = pol__map_get(x, "path");
			if (!f)
				return pol__fail(c, x, "file: missing required key 'path'");
			if (pol__get_str(c, f, "file path", &fl->path) < 0 ||
			    pol__check_abs_path(c, f, "file path") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(svc->files[j].path, fl->path))
					return pol__fail(c, f, "files: duplicate path '%s'",
							 fl->path);
			f = pol__map_get(x, "content");
			if (!f)
				return pol__fail(c, x, "file '%s': missing required key 'content'",
						 fl->path);
			if (pol__get_str(c, f, "file content", &fl->content) < 0 ||
			    pol__check_template(c, p, svc, f, "file content", false) < 0)
				return c->code;
			fl->mode = 0600;
			if ((f = pol__map_get(x, "mode")) && parse_mode(c, f, &fl->mode) < 0)
				return c->code;
		}
	}
	if ((v = pol__map_get(n, "mounts"))) {
		if (v->type != YN_SEQ)
			return pol__fail(c, v, "mounts: expected a list, found %s",
					 pol__type_name(v));
		svc->mounts = calloc(v->n + 1, sizeof(*svc->mounts));
		if (!svc->mounts)
			return pol__oom(c);
		for (size_t i = 0; i < v->n; i++) {
			const struct ynode *x = v->items[i], *f;
			struct pol_mount *m = &svc->mounts[i];
			bool known = false;

			if (pol__check_map(c, x, "mount", mount_keys) < 0)
				return c->code;
			svc->n_mounts = i + 1;
			f = pol__map_get(x, "volume");
			if (!f)
				return pol__fail(c, x, "mount: missing required key 'volume'");
			if (pol__get_str(c, f, "mount volume", &m->volume) < 0)
				return c->code;
			for (size_t j = 0; j < p->n_volumes; j++)
				if (!strcmp(p->volumes[j], m->volume))
					known = true;
			if (!known) {
				static const char *const none[] = { NULL };
				const char *s =
					pol__suggest(m->volume,
						     p->volumes ? (const char *const *)p->volumes
								: none);

				if (s)
					return pol__fail(c, f,
							 "mount: unknown volume '%s' (did you "
							 "mean '%s'?)",
							 m->volume, s);
				return pol__fail(c, f,
						 "mount: unknown volume '%s' (declare it under "
						 "volumes)",
						 m->volume);
			}
			f = pol__map_get(x, "path");
			if (!f)
				return pol__fail(c, x, "mount: missing required key 'path'");
			if (pol__get_str(c, f, "mount path", &m->path) < 0 ||
			    pol__check_abs_path(c, f, "mount path") < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(svc->mounts[j].path, m->path) ||
				    !strcmp(svc->mounts[j].volume, m->volume))
					return pol__fail(c, x, "mounts: volume '%s' or path '%s' "
							 "mounted twice", m->volume, m->path);
		}
	}
	v = pol__map_get(n, "measurement");
	if (!v)
		return pol__fail(c, n,
				 "service '%s': missing required key 'measurement' (a list of "
				 "values printed by 'kiln measure', or [any])",
				 svc->name);
	if (pol__get_str_list(c, v, "measurement", pol__check_measurement, &svc->measurement,
			      &svc->n_measurement) < 0)
		return c->code;
	if (svc->n_measurement == 0)
		return pol__fail(c, v, "measurement: empty list (nothing could ever run; use [any] "
				 "to accept any)");
	if (svc->n_measurement > 1 && !(c->flags & POL_PARSE_STORED))
		for (size_t i = 0; i < svc->n_measurement; i++)
			if (!strcmp(svc->measurement[i], "any"))
				return pol__fail(
					c, v->items[i],
					"measurement: 'any' accepts every "
					"program, so the other values say nothing: list [any] "
					"or measurements, not both");
	for (size_t i = 0; i < svc->n_measurement; i++)
		for (char *q = svc->measurement[i]; *q; q++)
			if (*q >= 'A' && *q <= 'F')
				*q = (char)(*q - 'A' + 'a');
	if ((v = pol__map_get(n, "network")) && pol__parse_network(c, p, v, &svc->network) < 0)
		return c->code;
	if ((v = pol__map_get(n, "console")) && pol__parse_console(c, v, &svc->console) < 0)
		return c->code;
	return 0;
}
