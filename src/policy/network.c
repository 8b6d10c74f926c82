/* Policy sections of the network and console shields (docs/policy.md,
 * "Network" and "Console"): services[].network and services[].console,
 * parsed and validated as strictly as the rest of a policy, and their
 * canonical JSON (only when they say more than the defaults, so that a policy
 * written before these keys existed keeps its hash).
 *
 *   network:
 *     default: plain | deny          # what happens outside the rules
 *     min_tls: "1.3" | "1.2"
 *     handshake_timeout: 10          # seconds
 *     listen:  [{port, certificate, client_ca, alpn} | {port, plain: true}]
 *     connect: [{host, port, ca, name, certificate, alpn} | {host, port, plain: true}]
 *   console: protected | plain | {mode: protected, readers: [owner, sha256:...]} */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

#define MAX_RULES 256
#define MAX_ALPN 16

static const char *const g_defaults[] = { "plain", "deny", NULL };
static const char *const g_tls[] = { "1.3", "1.2", NULL };
static const char *const g_modes[] = { "plain", "protected", NULL };

/* A secret named by a rule: it must exist and be of one of the kinds wanted
 * (an imported secret that does not declare its kind is checked by the CAS
 * when it hands the value out). */
static int check_secret(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *n,
			const char *what, const char *name, bool ca)
{
	const struct pol_secret *s = pol_find_secret(p, name);

	if (!s) {
		const char *cands[64];
		const char *sug;
		size_t k = 0;

		for (size_t i = 0; i < p->n_secrets && k + 1 < KILN_ARRAY_SIZE(cands); i++)
			cands[k++] = p->secrets[i].name;
		cands[k] = NULL;
		sug = pol__suggest(name, cands);
		if (sug)
			return pol__fail(c, n, "%s: unknown secret '%s' (did you mean '%s'?)", what,
					 name, sug);
		return pol__fail(c, n, "%s: unknown secret '%s'", what, name);
	}
	if (s->kind == POL_SECRET_NONE || s->kind == POL_SECRET_X509 ||
	    (ca && s->kind == POL_SECRET_X509_CA))
		return 0;
	return pol__fail(c, n, "%s: secret '%s' is %s, expected %s", what, name,
			 pol_kind_name(s->kind), ca ? "an x509-ca (or x509) certificate" :
			 "an x509 certificate");
}

static int check_alpn(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	size_t len = strlen(n->str);

	if (len == 0 || len > 255)
		return pol__fail(c, n, "%s: '%s' must hold 1 to 255 characters", what, n->str);
	for (const char *q = n->str; *q; q++)
		if (*q <= 0x20 || *q > 0x7e)
			return pol__fail(c, n, "%s: '%s' must be printable ASCII without spaces",
					 what, n->str);
	return 0;
}

static int get_alpn(struct pol__ctx *c, const struct ynode *n, const char *what, char ***out,
		    size_t *count)
{
	if (pol__get_str_list(c, n, what, check_alpn, out, count) < 0)
		return c->code;
	if (*count == 0 || *count > MAX_ALPN)
		return pol__fail(c, n, "%s: expected 1 to %d protocols", what, MAX_ALPN);
	return 0;
}

/* `plain: true` excludes every TLS key of a rule (and needs no other). */
static int check_plain(struct pol__ctx *c, const struct ynode *x, const char *what,
		       const char *const *tls_keys, bool plain)
{
	for (size_t i = 0; plain && tls_keys[i]; i++) {
		const struct ynode *v = pol__map_get(x, tls_keys[i]);

		if (v)
			return pol__fail(c, v, "%s: '%s' does not apply to a plain rule", what,
					 tls_keys[i]);
	}
	return 0;
}

static int parse_listen(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *x,
			struct pol_listen *l)
{
	static const char *const keys[] = { "port", "plain", "certificate", "client_ca",
					    "alpn", NULL };
	static const char *const tls_keys[] = { "certificate", "client_ca", "alpn", NULL };
	const struct ynode *v;

	if (pol__check_map(c, x, "listen rule", keys) < 0)
		return c->code;
	l->mark.line = x->line;
	l->mark.col = x->col;
	if (!(v = pol__map_get(x, "port")))
		return pol__fail(c, x, "listen rule: missing required key 'port'");
	if (pol__get_uint(c, v, "listen port", 1, 65535, &l->port) < 0)
		return c->code;
	if ((v = pol__map_get(x, "plain")) && pol__get_bool(c, v, "listen plain", &l->plain) < 0)
		return c->code;
	if (check_plain(c, x, "listen rule", tls_keys, l->plain) < 0)
		return c->code;
	if (l->plain)
		return 0;
	if (!(v = pol__map_get(x, "certificate")))
		return pol__fail(c, x, "listen rule for port %u: missing required key "
				 "'certificate' (an x509 secret; or 'plain: true')", l->port);
	if (pol__get_str(c, v, "listen certificate", &l->certificate) < 0 ||
	    check_secret(c, p, v, "listen certificate", l->certificate, false) < 0)
		return c->code;
	if ((v = pol__map_get(x, "client_ca")) &&
	    (pol__get_str(c, v, "listen client_ca", &l->client_ca) < 0 ||
	     check_secret(c, p, v, "listen client_ca", l->client_ca, true) < 0))
		return c->code;
	if ((v = pol__map_get(x, "alpn")) && get_alpn(c, v, "listen alpn", &l->alpn,
						     &l->n_alpn) < 0)
		return c->code;
	return 0;
}

static bool is_ip(const char *s)
{
	uint8_t buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A host or name: an IP address or a DNS name without wildcards. */
static int check_host(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (is_ip(n->str))
		return 0;
	if (pol__check_dns(c, n, what) < 0)
		return c->code;
	if (strchr(n->str, '*'))
		return pol__fail(c, n, "%s: '%s': wildcards are not allowed here (use host "
				 "\"*\" with a name)", what, n->str);
	return 0;
}

static int parse_connect(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *x,
			 struct pol_connect *r)
{
	static const char *const keys[] = { "host", "port", "plain", "ca", "name",
					    "certificate", "alpn", NULL };
	static const char *const tls_keys[] = { "ca", "name", "certificate", "alpn", NULL };
	const struct ynode *v, *hv;

	if (pol__check_map(c, x, "connect rule", keys) < 0)
		return c->code;
	r->mark.line = x->line;
	r->mark.col = x->col;
	if (!(hv = pol__map_get(x, "host")))
		return pol__fail(c, x, "connect rule: missing required key 'host' (a DNS name, "
				 "an IP address or \"*\")");
	if (pol__get_str(c, hv, "connect host", &r->host) < 0)
		return c->code;
	if (strcmp(r->host, "*") && check_host(c, hv, "connect host") < 0)
		return c->code;
	for (char *q = r->host; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	if (!(v = pol__map_get(x, "port")))
		return pol__fail(c, x, "connect rule for %s: missing required key 'port'",
				 r->host);
	if (pol__get_uint(c, v, "connect port", 1, 65535, &r->port) < 0)
		return c->code;
	if ((v = pol__map_get(x, "plain")) && pol__get_bool(c, v, "connect plain", &r->plain) < 0)
		return c->code;
	if (check_plain(c, x, "connect rule", tls_keys, r->plain) < 0)
		return c->code;
	if (r->plain)
		return 0;
	/* A TLS client that verifies nothing would hand the program's data to
	 * whoever answers: the CA is required. */
	if (!(v = pol__map_get(x, "ca")))
		return pol__fail(c, x, "connect rule for %s:%u: missing required key 'ca' (the "
				 "x509-ca secret the server's certificate must chain to; or "
				 "'plain: true')", r->host, r->port);
	if (pol__get_str(c, v, "connect ca", &r->ca) < 0 ||
	    check_secret(c, p, v, "connect ca", r->ca, true) < 0)
		return c->code;
	if ((v = pol__map_get(x, "name"))) {
		if (pol__get_str(c, v, "connect name", &r->name) < 0 ||
		    check_host(c, v, "connect name") < 0)
			return c->code;
		for (char *q = r->name; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
	} else if (!strcmp(r->host, "*")) {
		return pol__fail(c, hv, "connect rule for *:%u: 'name' is required with host "
				 "\"*\" (the name the server's certificate must carry)", r->port);
	} else if (!(r->name = strdup(r->host))) {
		return pol__oom(c);
	}
	if ((v = pol__map_get(x, "certificate")) &&
	    (pol__get_str(c, v, "connect certificate", &r->certificate) < 0 ||
	     check_secret(c, p, v, "connect certificate", r->certificate, false) < 0))
		return c->code;
	if ((v = pol__map_get(x, "alpn")) && get_alpn(c, v, "connect alpn", &r->alpn,
						     &r->n_alpn) < 0)
		return c->code;
	return 0;
}

int pol__parse_network(struct pol__ctx *c, const struct pol_policy *p, const struct ynode *n,
		       struct pol_network *net)
{
	static const char *const keys[] = { "default", "min_tls", "handshake_timeout", "listen",
					    "connect", NULL };
	const struct ynode *v;
	int e;

	if (pol__check_map(c, n, "network", keys) < 0)
		return c->code;
	net->handshake_timeout = POL_NET_DEFAULT_HANDSHAKE_TIMEOUT;
	if ((v = pol__map_get(n, "default"))) {
		if (pol__get_enum(c, v, "network default", g_defaults, &e) < 0)
			return c->code;
		net->deny = e == 1;
	}
	if ((v = pol__map_get(n, "min_tls"))) {
		if (pol__get_enum(c, v, "network min_tls", g_tls, &e) < 0)
			return c->code;
		net->tls12 = e == 1;
	}
	if ((v = pol__map_get(n, "handshake_timeout")) &&
	    pol__get_uint(c, v, "network handshake_timeout", 1, 300,
			  &net->handshake_timeout) < 0)
		return c->code;
	if ((v = pol__map_get(n, "listen"))) {
		if (v->type != YN_SEQ)
			return pol__fail(c, v, "network listen: expected a list, found %s",
					 pol__type_name(v));
		if (v->n > MAX_RULES)
			return pol__fail(c, v, "network listen: more than %d rules", MAX_RULES);
		net->listen = calloc(v->n + 1, sizeof(*net->listen));
		if (!net->listen)
			return pol__oom(c);
		for (size_t i = 0; i < v->n; i++) {
			net->n_listen = i + 1;
			if (parse_listen(c, p, v->items[i], &net->listen[i]) < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (net->listen[j].port == net->listen[i].port)
					return pol__fail(c, v->items[i], "network listen: port %u "
							 "has two rules", net->listen[i].port);
		}
	}
	if ((v = pol__map_get(n, "connect"))) {
		if (v->type != YN_SEQ)
			return pol__fail(c, v, "network connect: expected a list, found %s",
					 pol__type_name(v));
		if (v->n > MAX_RULES)
			return pol__fail(c, v, "network connect: more than %d rules", MAX_RULES);
		net->connect = calloc(v->n + 1, sizeof(*net->connect));
		if (!net->connect)
			return pol__oom(c);
		for (size_t i = 0; i < v->n; i++) {
			struct pol_connect *r = &net->connect[i];

			net->n_connect = i + 1;
			if (parse_connect(c, p, v->items[i], r) < 0)
				return c->code;
			for (size_t j = 0; j < i; j++)
				if (net->connect[j].port == r->port &&
				    !strcmp(net->connect[j].host, r->host))
					return pol__fail(c, v->items[i], "network connect: %s:%u "
							 "has two rules", r->host, r->port);
		}
	}
	net->set = net->deny || net->tls12 || net->n_listen || net->n_connect ||
		   net->handshake_timeout != POL_NET_DEFAULT_HANDSHAKE_TIMEOUT;
	return 0;
}

int pol__parse_console(struct pol__ctx *c, const struct ynode *n, struct pol_console *con)
{
	static const char *const keys[] = { "mode", "readers", NULL };
	const struct ynode *v = n;
	int e;

	if (n->type == YN_MAP) {
		if (pol__check_map(c, n, "console", keys) < 0)
			return c->code;
		if (!(v = pol__map_get(n, "mode")))
			return pol__fail(c, n, "console: missing required key 'mode' (protected "
					 "or plain)");
	}
	if (pol__get_enum(c, v, "console", g_modes, &e) < 0)
		return c->code;
	con->protect = e == 1;
	if (n->type == YN_MAP && (v = pol__map_get(n, "readers"))) {
		if (!con->protect)
			return pol__fail(c, v, "console: 'readers' applies only to a protected "
					 "console");
		if (pol__get_str_list(c, v, "console readers", pol__check_identity,
				      &con->readers, &con->n_readers) < 0)
			return c->code;
		if (con->n_readers == 0)
			return pol__fail(c, v, "console readers: empty list (nobody could read "
					 "the console; list 'owner' or identities)");
	}
	if (con->protect && !con->readers) {
		con->readers = calloc(2, sizeof(char *));
		if (!con->readers || !(con->readers[0] = strdup("owner")))
			return pol__oom(c);
		con->n_readers = 1;
	}
	return 0;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void pol__network_free(struct pol_network *net)
{
	for (size_t i = 0; net->listen && i < net->n_listen; i++) {
		free(net->listen[i].certificate);
		free(net->listen[i].client_ca);
		free_strv(net->listen[i].alpn, net->listen[i].n_alpn);
	}
	free(net->listen);
	for (size_t i = 0; net->connect && i < net->n_connect; i++) {
		struct pol_connect *r = &net->connect[i];

		free(r->host);
		free(r->ca);
		free(r->name);
		free(r->certificate);
		free_strv(r->alpn, r->n_alpn);
	}
	free(net->connect);
	memset(net, 0, sizeof(*net));
}

void pol__console_free(struct pol_console *con)
{
	free_strv(con->readers, con->n_readers);
	memset(con, 0, sizeof(*con));
}

bool pol_may_read_console(const struct pol_service *svc, const char *owner, const char *id)
{
	if (!svc->console.protect || !id)
		return false;
	for (size_t i = 0; i < svc->console.n_readers; i++) {
		const char *r = svc->console.readers[i];

		if (!strcmp(r, "owner") ? owner && !strcmp(owner, id) : !strcmp(r, id))
			return true;
	}
	return false;
}

/* ---- canonical form ---- */
static json_t *opt_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *str_array(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static int cmp_listen(const void *a, const void *b)
{
	const struct pol_listen *x = *(const struct pol_listen *const *)a;
	const struct pol_listen *y = *(const struct pol_listen *const *)b;

	return (x->port > y->port) - (x->port < y->port);
}

static int cmp_connect(const void *a, const void *b)
{
	const struct pol_connect *x = *(const struct pol_connect *const *)a;
	const struct pol_connect *y = *(const struct pol_connect *const *)b;
	int d = strcmp(x->host, y->host);

	return d ? d : (x->port > y->port) - (x->port < y->port);
}

json_t *pol__network_json(const struct pol_network *net)
{
	const struct pol_listen **ls = NULL;
	const struct pol_connect **cs = NULL;
	json_t *o = NULL, *la = NULL, *ca = NULL;

	if (!net->set)
		return NULL;
	ls = calloc(net->n_listen + 1, sizeof(*ls));
	cs = calloc(net->n_connect + 1, sizeof(*cs));
	o = json_object();
	la = json_array();
	ca = json_array();
	if (!ls || !cs || !o || !la || !ca)
		goto fail;
	/* Rules are sorted (their order means nothing); ALPN lists keep theirs
	 * (it is the preference order). */
	for (size_t i = 0; i < net->n_listen; i++)
		ls[i] = &net->listen[i];
	qsort(ls, net->n_listen, sizeof(*ls), cmp_listen);
	for (size_t i = 0; i < net->n_listen; i++)
		json_array_append_new(la, json_pack("{s:I,s:b,s:o,s:o,s:o}", "port",
						    (json_int_t)ls[i]->port, "plain",
						    ls[i]->plain, "certificate",
						    opt_str(ls[i]->certificate), "client_ca",
						    opt_str(ls[i]->client_ca), "alpn",
						    str_array(ls[i]->alpn, ls[i]->n_alpn)));
	for (size_t i = 0; i < net->n_connect; i++)
		cs[i] = &net->connect[i];
	qsort(cs, net->n_connect, sizeof(*cs), cmp_connect);
	for (size_t i = 0; i < net->n_connect; i++)
		json_array_append_new(ca, json_pack("{s:s,s:I,s:b,s:o,s:o,s:o,s:o}", "host",
						    cs[i]->host, "port", (json_int_t)cs[i]->port,
						    "plain", cs[i]->plain, "ca", opt_str(cs[i]->ca),
						    "name", opt_str(cs[i]->name), "certificate",
						    opt_str(cs[i]->certificate), "alpn",
						    str_array(cs[i]->alpn, cs[i]->n_alpn)));
	json_object_set_new(o, "default", json_string(net->deny ? "deny" : "plain"));
	json_object_set_new(o, "min_tls", json_string(net->tls12 ? "1.2" : "1.3"));
	json_object_set_new(o, "handshake_timeout", json_integer(net->handshake_timeout));
	json_object_set_new(o, "listen", la);
	json_object_set_new(o, "connect", ca);
	free(ls);
	free(cs);
	return o;
fail:
	free(ls);
	free(cs);
	json_decref(o);
	json_decref(la);
	json_decref(ca);
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *pol__console_json(const struct pol_console *con)
{
	const char **r;
	json_t *a;

	if (!con->protect)
		return NULL;
	r = calloc(con->n_readers + 1, sizeof(*r));
	if (!r)
		return NULL;
	memcpy(r, con->readers, con->n_readers * sizeof(*r));
	qsort(r, con->n_readers, sizeof(*r), cmp_str);
	a = str_array((char *const *)r, con->n_readers);
	free(r);
	return json_pack("{s:s,s:o}", "mode", "protected", "readers", a);
}
