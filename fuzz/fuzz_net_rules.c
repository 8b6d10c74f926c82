/* Fuzz the network shield's rule parser (src/runtime/net/rules.c), which reads
 * the grant's "network" member inside the shielded program: a parser on a
 * trust boundary (the answer crossed the network, and a policy author chose
 * its names, ports and PEM texts), so no input may crash or leak. Properties:
 *
 *  - a refused section leaves the configuration empty (the shield off) with a
 *    message saying what is wrong;
 *  - an accepted one is consistent with the lookups the shield makes: every
 *    rule has a port, a TLS rule a context, a plain one none; the listen rule
 *    for a rule's port is found on that port; a connect rule's destination
 *    (its address, the loopback for "localhost", any address for "*", an
 *    address the program's getaddrinfo of its name returned) finds a rule on
 *    that port; port 0 finds nothing.
 *
 * The input is the JSON text of the section (seeds in fuzz/corpus/net_rules
 * are sections in the CAS's format, src/cas/netconf.c, with real
 * certificates and keys). */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/net/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* rules.c's only state (net.c holds the rest of it in libkiln). */
struct rt_net g_net = { .reg = PTHREAD_MUTEX_INITIALIZER };

static bool empty_cfg(void)
{
	static const struct rt_net_cfg zero;

	return !memcmp(&g_net.cfg, &zero, sizeof(zero));
}

static const struct rt_connect_rule *lookup(const struct in6_addr *a, uint16_t port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				   .sin6_addr = *a };
	char text[64];

	rt__addr_str((struct sockaddr *)&s6, sizeof(s6), text, sizeof(text));
	if (!text[0] || !memchr(text, '\0', sizeof(text)))
		abort();
	return rt__connect_rule((struct sockaddr *)&s6, sizeof(s6));
}

static void v4(struct in6_addr *a, const char *ip)
{
	memset(a, 0, sizeof(*a));
	a->s6_addr[10] = a->s6_addr[11] = 0xff;
	if (inet_pton(AF_INET, ip, a->s6_addr + 12) != 1)
		abort();
}

static void check_connect(const struct rt_connect_rule *r)
{
	const struct rt_connect_rule *q;
	struct in6_addr a;

	if (!r->port || !r->host[0] || strlen(r->host) >= sizeof(r->host) ||
	    (r->plain != !r->ctx) || (!r->plain && !r->name[0]))
		abort();
	if (r->is_ip) {
		const struct sockaddr *sa = (const struct sockaddr *)&r->ip;

		if (sa->sa_family == AF_INET) {
			v4(&a, "0.0.0.0");
			memcpy(a.s6_addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		} else if (sa->sa_family == AF_INET6) {
			a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		} else {
			abort();
		}
		q = lookup(&a, r->port);
		/* Exact addresses win: the first rule of this address and port. */
		if (!q || q->port != r->port || !q->is_ip)
			abort();
	} else if (r->loopback) {
		v4(&a, "127.0.0.1");
		q = lookup(&a, r->port);
		if (!q || q->port != r->port)
			abort();
	} else if (r->any) {
		v4(&a, "192.0.2.1");
		q = lookup(&a, r->port);
		if (!q || q->port != r->port)
			abort();
	} else {
		/* What the program's own lookup of the name returned. */
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct addrinfo ai = { .ai_family = AF_INET, .ai_addr = (struct sockaddr *)&sin,
				       .ai_addrlen = sizeof(sin) };

		inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr);
		rt__net_saw_addrs(r->host, &ai);
		v4(&a, "198.51.100.7");
		q = lookup(&a, r->port);
		if (!q || q->port != r->port)
			abort();
	}
	if (lookup(&a, 0))
		abort(); /* no rule has port 0 */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct rt_json *j = NULL;

	if (rt_json_parse((const char *)data, size, &j) != 0)
		return 0;
	if (rt__net_rules_init(j, &err) < 0) {
		if (!err.msg[0] || !empty_cfg())
			abort();
	} else {
		if (!g_net.cfg.on || g_net.cfg.handshake_ms < 1000 ||
		    g_net.cfg.handshake_ms > 300000)
			abort();
		for (size_t i = 0; i < g_net.cfg.n_listen; i++) {
			const struct rt_listen_rule *r = &g_net.cfg.listen[i], *q;

			if (!r->port || r->plain != !r->ctx)
				abort();
			q = rt__listen_rule(r->port);
			if (!q || q->port != r->port)
				abort();
		}
		if (rt__listen_rule(0))
			abort();
		for (size_t i = 0; i < g_net.cfg.n_connect; i++)
			check_connect(&g_net.cfg.connect[i]);
		rt__net_saw_addrs(NULL, NULL);
		rt__net_rules_free();
		if (!empty_cfg())
			abort();
	}
	rt_json_free(j);
	return 0;
}
