/* Unit tests for src/policy/network.c: the services[].network and
 * services[].console sections (strict validation with exact messages, the
 * canonical form and hash stability, console readers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define ID1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define ID2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

#define HEAD                                                        \
	"name: acme/web\n"                                          \
	"secrets:\n"                                                \
	"  - {name: ca, kind: x509-ca}\n"                           \
	"  - {name: tls, kind: x509, issuer: ca, dns: [web.acme]}\n" \
	"  - {name: pw, kind: ascii}\n"                             \
	"services:\n"                                               \
	"  - name: web\n"                                           \
	"    command: [/usr/sbin/nginx]\n"                          \
	"    measurement: [any]\n"
#define TAIL "security: {tee: [sim], allow_insecure_sim: true}\n"

struct bad_case {
	const char *name;
	const char *yaml; /* between HEAD and TAIL */
	const char *msg;
};

static const struct bad_case g_bad[] = {
	{ "unknown network key",
	  "    network: {defualt: deny}\n",
	  "p.yaml:10:15: unknown key 'defualt' in network (did you mean 'default'?)" },
	{ "bad default",
	  "    network: {default: allow}\n",
	  "p.yaml:10:24: network default: unknown value 'allow' (expected one of: plain, deny)" },
	{ "bad min_tls",
	  "    network: {min_tls: \"1.1\"}\n",
	  "p.yaml:10:24: network min_tls: unknown value '1.1' (did you mean '1.3'?)" },
	{ "timeout range",
	  "    network: {handshake_timeout: 0}\n",
	  "p.yaml:10:34: network handshake_timeout: 0 is out of range 1..300" },
	{ "listen not a list",
	  "    network: {listen: {port: 1}}\n",
	  "p.yaml:10:23: network listen: expected a list, found a mapping" },
	{ "listen without port",
	  "    network: {listen: [{certificate: tls}]}\n",
	  "p.yaml:10:24: listen rule: missing required key 'port'" },
	{ "listen port range",
	  "    network: {listen: [{port: 70000, certificate: tls}]}\n",
	  "p.yaml:10:31: listen port: 70000 is out of range 1..65535" },
	{ "listen without certificate",
	  "    network: {listen: [{port: 443}]}\n",
	  "p.yaml:10:24: listen rule for port 443: missing required key 'certificate' (an x509 "
	  "secret; or 'plain: true')" },
	{ "listen unknown secret",
	  "    network: {listen: [{port: 443, certificate: tlss}]}\n",
	  "p.yaml:10:49: listen certificate: unknown secret 'tlss' (did you mean 'tls'?)" },
	{ "listen wrong kind",
	  "    network: {listen: [{port: 443, certificate: pw}]}\n",
	  "p.yaml:10:49: listen certificate: secret 'pw' is ascii, expected an x509 "
	  "certificate" },
	{ "listen ca not a certificate",
	  "    network: {listen: [{port: 443, certificate: tls, client_ca: pw}]}\n",
	  "p.yaml:10:65: listen client_ca: secret 'pw' is ascii, expected an x509-ca (or x509) "
	  "certificate" },
	{ "listen twice",
	  "    network: {listen: [{port: 443, certificate: tls}, {port: 443, plain: true}]}\n",
	  "p.yaml:10:55: network listen: port 443 has two rules" },
	{ "plain with certificate",
	  "    network: {listen: [{port: 80, plain: true, certificate: tls}]}\n",
	  "p.yaml:10:61: listen rule: 'certificate' does not apply to a plain rule" },
	{ "plain not a bool",
	  "    network: {listen: [{port: 80, plain: yes}]}\n",
	  "p.yaml:10:42: listen plain: expected true or false, found yes" },
	{ "alpn empty",
	  "    network: {listen: [{port: 443, certificate: tls, alpn: []}]}\n",
	  "p.yaml:10:60: listen alpn: expected 1 to 16 protocols" },
	{ "alpn with space",
	  "    network: {listen: [{port: 443, certificate: tls, alpn: [\"a b\"]}]}\n",
	  "p.yaml:10:61: listen alpn: 'a b' must be printable ASCII without spaces" },
	{ "connect without host",
	  "    network: {connect: [{port: 5432, ca: ca}]}\n",
	  "p.yaml:10:25: connect rule: missing required key 'host' (a DNS name, an IP address "
	  "or \"*\")" },
	{ "connect bad host",
	  "    network: {connect: [{host: \"db acme\", port: 5432, ca: ca}]}\n",
	  "p.yaml:10:32: connect host: 'db acme' is not a DNS name" },
	{ "connect wildcard host",
	  "    network: {connect: [{host: \"*.acme\", port: 5432, ca: ca}]}\n",
	  "p.yaml:10:32: connect host: '*.acme': wildcards are not allowed here (use host \"*\" "
	  "with a name)" },
	{ "connect without ca",
	  "    network: {connect: [{host: db.acme, port: 5432}]}\n",
	  "p.yaml:10:25: connect rule for db.acme:5432: missing required key 'ca' (the x509-ca "
	  "secret the server's certificate must chain to; or 'plain: true')" },
	{ "connect any host without name",
	  "    network: {connect: [{host: \"*\", port: 443, ca: ca}]}\n",
	  "p.yaml:10:32: connect rule for *:443: 'name' is required with host \"*\" (the name "
	  "the server's certificate must carry)" },
	{ "connect twice",
	  "    network: {connect: [{host: DB.acme, port: 1, plain: true},"
	  " {host: db.acme, port: 1, plain: true}]}\n",
	  "p.yaml:10:64: network connect: db.acme:1 has two rules" },
	{ "connect client cert kind",
	  "    network: {connect: [{host: db.acme, port: 1, ca: ca, certificate: ca}]}\n",
	  "p.yaml:10:71: connect certificate: secret 'ca' is x509-ca, expected an x509 "
	  "certificate" },
	{ "console bad mode",
	  "    console: secret\n",
	  "p.yaml:10:14: console: unknown value 'secret' (expected one of: plain, protected)" },
	{ "console map without mode",
	  "    console: {readers: [owner]}\n",
	  "p.yaml:10:14: console: missing required key 'mode' (protected or plain)" },
	{ "console readers on plain",
	  "    console: {mode: plain, readers: [owner]}\n",
	  "p.yaml:10:37: console: 'readers' applies only to a protected console" },
	{ "console bad reader",
	  "    console: {mode: protected, readers: [bob]}\n",
	  "p.yaml:10:42: console readers: expected 'owner' or an identity 'sha256:<64 hex>', "
	  "found 'bob'" },
	{ "console empty readers",
	  "    console: {mode: protected, readers: []}\n",
	  "p.yaml:10:41: console readers: empty list (nobody could read the console; list "
	  "'owner' or identities)" },
};

static int parse(const char *middle, struct pol_policy **p, struct kiln_err *err)
{
	char yaml[4096];

	snprintf(yaml, sizeof(yaml), "%s%s%s", HEAD, middle, TAIL);
	return pol_parse(yaml, strlen(yaml), "p.yaml", p, err);
}

static struct pol_policy *parse_ok(const char *middle)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;

	if (parse(middle, &p, &err) != 0)
		fail_msg("parse failed: %s", err.msg);
	return p;
}

static void test_malformed(void **state)
{
	for (size_t i = 0; i < sizeof(g_bad) / sizeof(g_bad[0]); i++) {
		struct kiln_err err = { 0 };
		struct pol_policy *p = (struct pol_policy *)1;
		int ret = parse(g_bad[i].yaml, &p, &err);

		if (ret != -KILN_EFORMAT || strcmp(err.msg, g_bad[i].msg) != 0)
			fail_msg("case '%s': got %d '%s', expected '%s'", g_bad[i].name, ret,
				 err.msg, g_bad[i].msg);
		assert_null(p);
	}
}

static void test_good(void **state)
{
	struct pol_policy *p = parse_ok(
		"    network:\n"
		"      default: deny\n"
		"      min_tls: 1.2\n"
		"      handshake_timeout: 5\n"
		"      listen:\n"
		"        - {port: 8443, certificate: tls, client_ca: ca, alpn: [h2, http/1.1]}\n"
		"        - {port: 8080, plain: true}\n"
		"      connect:\n"
		"        - {host: Db.Acme, port: 5432, ca: ca, certificate: tls}\n"
		"        - {host: \"*\", port: 443, ca: ca, name: api.acme}\n"
		"        - {host: 10.0.0.53, port: 53, plain: true}\n"
		"    console: protected\n");
	const struct pol_network *n = &p->services[0].network;

	assert_true(n->set);
	assert_true(n->deny);
	assert_true(n->tls12);
	assert_int_equal(n->handshake_timeout, 5);
	assert_int_equal(n->n_listen, 2);
	assert_int_equal(n->listen[0].port, 8443);
	assert_string_equal(n->listen[0].certificate, "tls");
	assert_string_equal(n->listen[0].client_ca, "ca");
	assert_int_equal(n->listen[0].n_alpn, 2);
	assert_string_equal(n->listen[0].alpn[1], "http/1.1");
	assert_true(n->listen[1].plain);
	assert_null(n->listen[1].certificate);
	assert_int_equal(n->n_connect, 3);
	assert_string_equal(n->connect[0].host, "db.acme");
	assert_string_equal(n->connect[0].name, "db.acme"); /* defaults to the host */
	assert_string_equal(n->connect[0].certificate, "tls");
	assert_string_equal(n->connect[1].name, "api.acme");
	assert_true(n->connect[2].plain);
	assert_null(n->connect[2].ca);
	assert_true(p->services[0].console.protect);
	assert_int_equal(p->services[0].console.n_readers, 1);
	assert_string_equal(p->services[0].console.readers[0], "owner");
	pol_free(p);
}

/* Sections that say nothing beyond the defaults leave the hash as it was
 * before these keys existed; anything they say changes it; rule order and
 * spelling do not. */
static void test_hash(void **state)
{
	struct pol_policy *none = parse_ok(""), *dflt = parse_ok(
		"    network: {default: plain, min_tls: \"1.3\", handshake_timeout: 10,"
		" listen: [], connect: []}\n"
		"    console: plain\n");
	struct pol_policy *a = parse_ok(
		"    network:\n"
		"      listen: [{port: 1, certificate: tls}, {port: 2, plain: true}]\n"
		"      connect: [{host: b, port: 1, ca: ca}, {host: a, port: 1, ca: ca}]\n"
		"    console: {mode: protected, readers: [\"" ID2 "\", owner]}\n");
	struct pol_policy *b = parse_ok(
		"    console: {readers: [owner, \"" ID2 "\"], mode: protected}\n"
		"    network:\n"
		"      connect: [{port: 1, host: A, ca: ca, name: a}, {host: b, ca: ca, port: 1}]\n"
		"      listen: [{port: 2, plain: true}, {certificate: tls, port: 1}]\n"
		"      default: plain\n");
	struct pol_policy *c = parse_ok(
		"    network:\n"
		"      listen: [{port: 1, certificate: tls}, {port: 2, plain: true}]\n"
		"      connect: [{host: b, port: 1, ca: ca}, {host: a, port: 1, ca: ca,"
		" name: x}]\n"
		"    console: {mode: protected, readers: [\"" ID2 "\", owner]}\n");
	char *t = pol_canonical_text(none);

	assert_null(strstr(t, "network"));
	assert_null(strstr(t, "console"));
	assert_string_equal(none->hash, dflt->hash);
	assert_string_equal(a->hash, b->hash);
	assert_string_not_equal(a->hash, none->hash);
	assert_string_not_equal(a->hash, c->hash);
	free(t);
	pol_free(none);
	pol_free(dflt);
	pol_free(a);
	pol_free(b);
	pol_free(c);
}

static void test_console_readers(void **state)
{
	struct pol_policy *p = parse_ok("    console: {mode: protected, readers: [owner, \"" ID2
					"\"]}\n");
	struct pol_policy *q = parse_ok("");
	const struct pol_service *s = &p->services[0];

	assert_true(pol_may_read_console(s, ID1, ID1));      /* the owner */
	assert_true(pol_may_read_console(s, ID1, ID2));      /* listed */
	assert_false(pol_may_read_console(s, ID2, ID1));     /* not the owner, not listed */
	assert_false(pol_may_read_console(s, NULL, ID1));
	assert_false(pol_may_read_console(s, ID1, NULL));
	assert_false(pol_may_read_console(&q->services[0], ID1, ID1)); /* not protected */
	pol_free(p);
	pol_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_console_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
