/* kiln runtime: the network shield's rules (the grant's "network" member,
 * docs/api.md) and the OpenSSL contexts behind them.
 *
 * A listen rule covers a local TCP port: connections accepted on it are TLS
 * servers with the rule's certificate (and client-certificate check). A
 * connect rule covers a destination: an IP address, "localhost" (the loopback
 * addresses), a DNS name (the addresses the program's own getaddrinfo of that
 * name returned: the runtime resolves nothing itself, so no resolver module
 * is loaded into the process after it was measured), or "*" (any address);
 * exact addresses win over names, names over "*". */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/net/internal.h"

static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unknown error";
}

/* The certificates of a PEM text into store (trust anchors). */
static int load_cas(X509_STORE *store, STACK_OF(X509_NAME) *names, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int n = 0;

	if (!b)
		return -ENOMEM;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (X509_STORE_add_cert(store, x) == 1) {
			n++;
			if (names) {
				X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));

				if (nm && !sk_X509_NAME_push(names, nm))
					X509_NAME_free(nm);
			}
		}
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(b);
	return n ? 0 : -KILN_EFORMAT;
}

/* The certificate chain and key of a rule. */
static int load_identity(SSL_CTX *ctx, const char *chain, const char *key)
{
	BIO *b = BIO_new_mem_buf(chain, -1), *k = BIO_new_mem_buf(key, -1);
	X509 *x = NULL;
	EVP_PKEY *pk = NULL;
	int ret = -KILN_EFORMAT;

	if (!b || !k) {
		ret = -ENOMEM;
		goto out;
	}
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!x || SSL_CTX_use_certificate(ctx, x) != 1)
		goto out;
	for (;;) {
		X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);

		if (!c)
			break;
		if (SSL_CTX_add0_chain_cert(ctx, c) != 1) {
			X509_free(c);
			goto out;
		}
	}
	ERR_clear_error();
	pk = PEM_read_bio_PrivateKey(k, NULL, NULL, NULL);
	if (!pk || SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto out;
	ret = 0;
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	BIO_free(b);
	BIO_free(k);
	return ret;
}

/* ALPN in wire format (length-prefixed), malloc'd. */
static int alpn_wire(const struct rt_json *list, uint8_t **out, unsigned *size)
{
	size_t n = 0;
	uint8_t *w;

	*out = NULL;
	*size = 0;
	if (!list || list->type != RT_JSON_ARRAY || !list->n)
		return 0;
	for (size_t i = 0; i < list->n; i++) {
		const char *s = rt_json_str(list->items[i]);

		if (!s || !s[0] || strlen(s) > 255)
			return -KILN_EFORMAT;
		n += 1 + strlen(s);
	}
	w = malloc(n);
	if (!w)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < list->n; i++) {
		const char *s = rt_json_str(list->items[i]);

		w[n++] = (uint8_t)strlen(s);
		memcpy(w + n, s, strlen(s));
		n += strlen(s);
	}
	*out = w;
	*size = (unsigned)n;
	return 0;
}

struct alpn {
	uint8_t *wire;
	unsigned size;
};

/* Server preference order; no common protocol fails the handshake
 * (no_application_protocol), as RFC 7301 asks. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned inlen, void *arg)
{
	const struct alpn *a = arg;

	(void)ssl;
	if (SSL_select_next_proto((unsigned char **)out, outlen, a->wire, a->size, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *new_ctx(bool server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, g_net.cfg.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	/* A peer that closes without close_notify is an end of stream (as for
	 * plaintext TCP), not an error the program could not tell apart. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_NO_COMPRESSION);
	/* Idle connections give their buffers back (thousands of them); reads
	 * take what the socket has, not one record header at a time. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	return ctx;
}

static int verify_store(SSL_CTX *ctx, const char *pem, bool client_names)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_NAME) *names = client_names ? sk_X509_NAME_new_null() : NULL;
	int ret;

	if (client_names && !names)
		return -ENOMEM;
	ret = load_cas(st, names, pem);
	if (ret < 0) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		return ret;
	}
	/* The policy's CA secret is the anchor even when it is itself issued
	 * by another CA (an x509 secret named as a CA). */
	X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	return 0;
}

static int listen_rule(const struct rt_json *j, struct rt_listen_rule *r, struct kiln_err *err)
{
	const struct rt_json *port = rt_json_get(j, "port"), *plain = rt_json_get(j, "plain");
	const char *cert = rt_json_str(rt_json_get(j, "cert"));
	const char *key = rt_json_str(rt_json_get(j, "key"));
	const char *ca = rt_json_str(rt_json_get(j, "client_ca"));
	struct alpn *a = NULL;
	int ret;

	if (!port || !port->is_int || port->num < 1 || port->num > 65535)
		return kiln_err_set(err, -KILN_EFORMAT, "network: listen rule without a port");
	r->port = (uint16_t)port->num;
	r->plain = plain && plain->type == RT_JSON_BOOL && plain->boolean;
	if (r->plain)
		return 0;
	if (!cert || !key)
		return kiln_err_set(err, -KILN_EFORMAT, "network: listen %u: no certificate",
				    r->port);
	r->ctx = new_ctx(true);
	if (!r->ctx)
		return kiln_err_set(err, -ENOMEM, "network: listen %u: %s", r->port, ssl_reason());
	ret = load_identity(r->ctx, cert, key);
	if (ret < 0)
		return kiln_err_set(err, ret, "network: listen %u: its certificate or key cannot "
				    "be used: %s", r->port, ssl_reason());
	if (ca) {
		ret = verify_store(r->ctx, ca, true);
		if (ret < 0)
			return kiln_err_set(err, ret, "network: listen %u: client_ca holds no "
					    "certificate", r->port);
		SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   NULL);
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	ret = alpn_wire(rt_json_get(j, "alpn"), &a->wire, &a->size);
	if (ret < 0) {
		free(a);
		return kiln_err_set(err, ret, "network: listen %u: bad alpn", r->port);
	}
	if (a->size) {
		SSL_CTX_set_alpn_select_cb(r->ctx, alpn_select, a);
		r->alpn = a; /* lives as long as ctx */
	} else {
		free(a);
	}
	return 0;
}

static int connect_rule(const struct rt_json *j, struct rt_connect_rule *r, struct kiln_err *err)
{
	const struct rt_json *port = rt_json_get(j, "port"), *plain = rt_json_get(j, "plain");
	const char *host = rt_json_str(rt_json_get(j, "host"));
	const char *name = rt_json_str(rt_json_get(j, "name"));
	const char *ca = rt_json_str(rt_json_get(j, "ca"));
	const char *cert = rt_json_str(rt_json_get(j, "cert"));
	const char *key = rt_json_str(rt_json_get(j, "key"));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&r->ip;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&r->ip;
	uint8_t *wire = NULL;
	unsigned wire_size = 0;
	int ret;

	if (!host || strlen(host) >= sizeof(r->host) || !port || !port->is_int ||
	    port->num < 1 || port->num > 65535)
		return kiln_err_set(err, -KILN_EFORMAT, "network: malformed connect rule");
	snprintf(r->host, sizeof(r->host), "%s", host);
	r->port = (uint16_t)port->num;
	r->plain = plain && plain->type == RT_JSON_BOOL && plain->boolean;
	r->any = !strcmp(host, "*");
	r->loopback = !strcmp(host, "localhost");
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		r->is_ip = true;
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		r->is_ip = true;
	}
	if (r->plain)
		return 0;
	if (!ca || !name || strlen(name) >= sizeof(r->name))
		return kiln_err_set(err, -KILN_EFORMAT, "network: connect %s:%u: no CA or name",
				    host, r->port);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->ctx = new_ctx(false);
	if (!r->ctx)
		return kiln_err_set(err, -ENOMEM, "network: connect %s:%u: %s", host, r->port,
				    ssl_reason());
	ret = verify_store(r->ctx, ca, false);
	if (ret < 0)
		return kiln_err_set(err, ret, "network: connect %s:%u: ca holds no certificate",
				    host, r->port);
	SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
	if (cert && key && (ret = load_identity(r->ctx, cert, key)) < 0)
		return kiln_err_set(err, ret, "network: connect %s:%u: its client certificate or "
				    "key cannot be used: %s", host, r->port, ssl_reason());
	ret = alpn_wire(rt_json_get(j, "alpn"), &wire, &wire_size);
	if (ret < 0)
		return kiln_err_set(err, ret, "network: connect %s:%u: bad alpn", host, r->port);
	if (wire_size && SSL_CTX_set_alpn_protos(r->ctx, wire, wire_size) != 0) {
		free(wire);
		return kiln_err_set(err, -ENOMEM, "network: connect %s:%u: alpn", host, r->port);
	}
	free(wire);
	return 0;
}

static void rules_free(struct rt_net_cfg *cfg, size_t n_listen, size_t n_connect)
{
	for (size_t i = 0; cfg->listen && i < n_listen; i++) {
		struct alpn *a = cfg->listen[i].alpn;

		SSL_CTX_free(cfg->listen[i].ctx);
		if (a)
			free(a->wire);
		free(a);
	}
	for (size_t i = 0; cfg->connect && i < n_connect; i++)
		SSL_CTX_free(cfg->connect[i].ctx);
	free(cfg->listen);
	free(cfg->connect);
	memset(cfg, 0, sizeof(*cfg));
}

void rt__net_rules_free(void)
{
	rules_free(&g_net.cfg, g_net.cfg.n_listen, g_net.cfg.n_connect);
}

int rt__net_rules_init(const struct rt_json *net, struct kiln_err *err)
{
	struct rt_net_cfg *cfg = &g_net.cfg;
	const char *dflt = rt_json_str(rt_json_get(net, "default"));
	const char *tls = rt_json_str(rt_json_get(net, "min_tls"));
	const struct rt_json *to = rt_json_get(net, "handshake_timeout");
	const struct rt_json *ls = rt_json_get(net, "listen");
	const struct rt_json *cs = rt_json_get(net, "connect");
	int ret;

	if (net->type != RT_JSON_OBJECT || !dflt || (strcmp(dflt, "plain") && strcmp(dflt, "deny")) ||
	    (ls && ls->type != RT_JSON_ARRAY) || (cs && cs->type != RT_JSON_ARRAY) ||
	    (to && (!to->is_int || to->num < 1 || to->num > 300)))
		return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: network malformed");
	cfg->on = true;
	cfg->deny = !strcmp(dflt, "deny");
	cfg->tls12 = tls && !strcmp(tls, "1.2");
	cfg->handshake_ms = (unsigned)(to ? to->num : 10) * 1000;
	cfg->listen = calloc(ls ? ls->n + 1 : 1, sizeof(*cfg->listen));
	cfg->connect = calloc(cs ? cs->n + 1 : 1, sizeof(*cfg->connect));
	if (!cfg->listen || !cfg->connect) {
		rules_free(cfg, 0, 0);
		return kiln_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; ls && i < ls->n; i++) {
		ret = listen_rule(ls->items[i], &cfg->listen[i], err);
		if (ret < 0) {
			rules_free(cfg, i + 1, 0); /* the failed rule's context too */
			return ret;
		}
		cfg->n_listen = i + 1;
	}
	for (size_t i = 0; cs && i < cs->n; i++) {
		ret = connect_rule(cs->items[i], &cfg->connect[i], err);
		if (ret < 0) {
			rules_free(cfg, cfg->n_listen, i + 1);
			return ret;
		}
		cfg->n_connect = i + 1;
	}
	return 0;
}

const struct rt_listen_rule *rt__listen_rule(uint16_t port)
{
	for (size_t i = 0; i < g_net.cfg.n_listen; i++)
		if (g_net.cfg.listen[i].port == port)
			return &g_net.cfg.listen[i];
	return NULL;
}

/* The address as IPv6 (IPv4 as v4-mapped), false for other families. */
static bool addr6(const struct sockaddr *sa, socklen_t len, struct in6_addr *out)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		memset(out, 0, sizeof(*out));
		out->s6_addr[10] = out->s6_addr[11] = 0xff;
		memcpy(out->s6_addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		*out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		return true;
	}
	return false;
}

int rt__addr_port(const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return -1;
}

static bool is_loopback(const struct in6_addr *a)
{
	static const uint8_t lo6[16] = { [15] = 1 };

	return !memcmp(a->s6_addr, lo6, 16) ||
	       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

const struct rt_connect_rule *rt__connect_rule(const struct sockaddr *sa, socklen_t len)
{
	const struct rt_connect_rule *named = NULL, *any = NULL;
	struct in6_addr a;
	int port = rt__addr_port(sa, len);

	if (port < 0 || !addr6(sa, len, &a))
		return NULL;
	for (size_t i = 0; i < g_net.cfg.n_connect; i++) {
		const struct rt_connect_rule *r = &g_net.cfg.connect[i];
		struct in6_addr ra;

		if (r->port != port)
			continue;
		if (r->is_ip) {
			if (addr6((const struct sockaddr *)&r->ip, sizeof(r->ip), &ra) &&
			    !memcmp(&ra, &a, sizeof(a)))
				return r;
		} else if (r->any) {
			any = any ? any : r;
		} else if (r->loopback && is_loopback(&a)) {
			named = named ? named : r;
		} else if (!named) {
			unsigned n = atomic_load(&r->n_seen);

			for (unsigned k = 0; k < n && k < RT_NAME_ADDRS; k++)
				if (!memcmp(&r->seen[k], &a, sizeof(a)))
					named = r;
		}
	}
	return named ? named : any;
}

void rt__net_saw_addrs(const char *node, const struct addrinfo *res)
{
	if (!node)
		return;
	for (size_t i = 0; i < g_net.cfg.n_connect; i++) {
		struct rt_connect_rule *r = &g_net.cfg.connect[i];

		if (r->is_ip || r->any || r->loopback || strcasecmp(r->host, node))
			continue;
		pthread_mutex_lock(&g_net.reg);
		for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			struct in6_addr a;
			unsigned n = atomic_load(&r->n_seen), k;

			if (!ai->ai_addr || !addr6(ai->ai_addr, ai->ai_addrlen, &a))
				continue;
			for (k = 0; k < n; k++)
				if (!memcmp(&r->seen[k], &a, sizeof(a)))
					break;
			if (k < n)
				continue;
			/* Full: the oldest goes (names move; the table stays bounded). */
			if (n == RT_NAME_ADDRS) {
				memmove(&r->seen[0], &r->seen[1], (n - 1) * sizeof(a));
				n--;
			}
			r->seen[n] = a;
			atomic_store(&r->n_seen, n + 1);
		}
		pthread_mutex_unlock(&g_net.reg);
	}
}

void rt__addr_str(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
	char h[INET6_ADDRSTRLEN] = "?";
	int port = rt__addr_port(sa, len);

	if (sa->sa_family == AF_INET && port >= 0) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, h, sizeof(h));
		snprintf(out, size, "%s:%d", h, port);
	} else if (sa->sa_family == AF_INET6 && port >= 0) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* An IPv4 peer of a dual-stack socket, as people write it. */
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			inet_ntop(AF_INET, a->s6_addr + 12, h, sizeof(h));
			snprintf(out, size, "%s:%d", h, port);
			return;
		}
		inet_ntop(AF_INET6, a, h, sizeof(h));
		snprintf(out, size, "[%s]:%d", h, port);
	} else {
		snprintf(out, size, "(unknown peer)");
	}
}
