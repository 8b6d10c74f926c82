/* A PCCS client (Intel's Provisioning Certificate Caching Service, API v4,
 * docs/cas.md "Collateral from a PCCS"): one platform's collateral from
 *   GET {base}/sgx/certification/v4/pckcrl?ca=processor|platform&encoding=der
 *       (DER; header SGX-PCK-CRL-Issuer-Chain)
 *   GET {base}/sgx/certification/v4/rootcacrl        (hex DER, a PCCS's own)
 *   GET {base}/{sgx|tdx}/certification/v4/tcb?fmspc=F (TCB-Info-Issuer-Chain)
 *   GET {base}/{sgx|tdx}/certification/v4/qe/identity (SGX-Enclave-Identity-Issuer-Chain)
 * over libevent's HTTP client (http:// or https:// checked against the system's
 * or a given CA), each request bounded in time and size. What the answers hold
 * is not trusted here: the collateral is authenticated by Intel's signatures
 * afterwards (ev_dcap_collateral_info). */
#include "cas/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct get {
	const char *url;          /* for messages */
	const char *header;       /* the issuer chain header to keep, or NULL */
	const char *header_v3;    /* its older name, or NULL */
	int status;               /* 0: no answer */
	bool done;
	int error;                /* enum evhttp_request_error + 1, 0: none */
	struct cas__pccs_body body; /* malloc'd, NUL-terminated */
	char *chain;              /* the header, URL-decoded; malloc'd */
	struct event_base *base;
};

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct get *g = arg;

	g->error = (int)e + 1;
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct get *g = arg;
	struct evbuffer *in;
	const char *h = NULL;
	size_t n;

	g->done = true;
	if (!req || !evhttp_request_get_response_code(req))
		goto out;
	g->status = evhttp_request_get_response_code(req);
	in = evhttp_request_get_input_buffer(req);
	n = evbuffer_get_length(in);
	g->body.data = malloc(n + 1);
	if (g->body.data) {
		evbuffer_remove(in, g->body.data, n);
		g->body.data[n] = '\0';
		g->body.size = n;
	}
	if (g->header)
		h = evhttp_find_header(evhttp_request_get_input_headers(req), g->header);
	if (!h && g->header_v3)
		h = evhttp_find_header(evhttp_request_get_input_headers(req), g->header_v3);
	if (h)
		g->chain = evhttp_uridecode(h, 0, NULL);
out:
	event_base_loopbreak(g->base);
}

/* The parts of a URL "http[s]://HOST[:PORT][/PREFIX]" (a trailing slash and a
 * trailing /sgx|tdx/certification/v4 dropped from PREFIX). */
struct base {
	bool tls;
	char host[256], prefix[512];
	int port;
};

static int parse_base(const char *url, struct base *b, struct kiln_err *err)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	size_t n;
	int ret = 0;

	memset(b, 0, sizeof(*b));
	if (!scheme || !host || !host[0] || (strcmp(scheme, "http") && strcmp(scheme, "https")) ||
	    evhttp_uri_get_query(u) || strlen(host) >= sizeof(b->host) ||
	    strlen(path ? path : "") >= sizeof(b->prefix)) {
		ret = kiln_err_set(err, -EINVAL, "--pccs '%.200s': expected http[s]://HOST[:PORT]"
				   "[/PATH]", url);
		goto out;
	}
	b->tls = !strcmp(scheme, "https");
	snprintf(b->host, sizeof(b->host), "%s", host);
	b->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : b->tls ? 443 : 80;
	snprintf(b->prefix, sizeof(b->prefix), "%s", path ? path : "");
	n = strlen(b->prefix);
	while (n && b->prefix[n - 1] == '/')
		b->prefix[--n] = '\0';
	for (const char *const *s = (const char *const[]){ "/sgx/certification/v4",
							   "/tdx/certification/v4", NULL }; *s; s++)
		if (n >= strlen(*s) && !strcmp(b->prefix + n - strlen(*s), *s))
			b->prefix[n - strlen(*s)] = '\0';
out:
	if (u)
		evhttp_uri_free(u);
	return ret;
}

static SSL_CTX *tls_ctx(const struct cas_pccs *p, struct kiln_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		kiln_err_set(err, -KILN_ECRYPTO, "cannot set up TLS");
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (p->ca_file ? SSL_CTX_load_verify_locations(ctx, p->ca_file, NULL) != 1 :
			 SSL_CTX_set_default_verify_paths(ctx) != 1) {
		kiln_err_set(err, -KILN_EFORMAT, "--pccs-ca %s: cannot load it", p->ca_file ?
			     p->ca_file : "(system CAs)");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

/* GET base+path into g; 0 with g->status the HTTP status, or a transport
 * failure (connection, TLS, timeout, too large) named in err. */
static int get(const struct cas_pccs *p, const struct base *b, SSL_CTX *ctx, const char *path,
	       struct get *g, struct kiln_err *err)
{
	unsigned timeout = p->timeout_s ? p->timeout_s : CAS_PCCS_TIMEOUT_S;
	struct timeval total = { timeout, 0 };
	struct evhttp_connection *conn = NULL;
	struct bufferevent *bev = NULL;
	struct evhttp_request *req = NULL;
	char target[1024];
	SSL *ssl = NULL;
	int ret;

	g->base = event_base_new();
	if (!g->base)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	snprintf(target, sizeof(target), "%s%s", b->prefix, path);
	if (b->tls) {
		uint8_t ip[16];
		bool is_ip = inet_pton(AF_INET, b->host, ip) == 1 ||
			     inet_pton(AF_INET6, b->host, ip) == 1;

		ssl = SSL_new(ctx);
		/* the certificate must name the host (or its IP address) */
		if (!ssl || (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
								    b->host) != 1 :
			     SSL_set1_host(ssl, b->host) != 1 ||
			     SSL_set_tlsext_host_name(ssl, b->host) != 1)) {
			SSL_free(ssl);
			ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot set up TLS");
			goto out;
		}
		bev = bufferevent_openssl_socket_new(g->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE);
		if (!bev) {
			SSL_free(ssl);
			ret = kiln_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	conn = evhttp_connection_base_bufferevent_new(g->base, NULL, bev, b->host,
						      (unsigned short)b->port);
	req = conn ? evhttp_request_new(on_done, g) : NULL;
	if (!conn || !req) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	evhttp_request_set_error_cb(req, on_error);
	evhttp_connection_set_timeout(conn, (int)timeout);
	evhttp_connection_set_retries(conn, 0);
	evhttp_connection_set_max_body_size(conn, CAS_PCCS_MAX_BODY);
	evhttp_connection_set_max_headers_size(conn, 64 * 1024);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", b->host);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Accept", "*/*");
	if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, target) < 0) {
		req = NULL; /* freed by libevent */
		ret = kiln_err_set(err, -EIO, "%s: cannot send the request", g->url);
		goto out;
	}
	req = NULL; /* libevent's now */
	/* The connection's timeout bounds each wait; this bounds the whole answer,
	 * so a PCCS that drips one byte at a time cannot hold the caller. */
	event_base_loopexit(g->base, &total);
	event_base_dispatch(g->base);
	if (!g->done || g->error == EVREQ_HTTP_TIMEOUT + 1) {
		ret = kiln_err_set(err, -ETIMEDOUT, "%s: no complete answer within %u s", g->url,
				   timeout);
		goto out;
	}
	if (g->error == EVREQ_HTTP_DATA_TOO_LONG + 1) {
		ret = kiln_err_set(err, -EFBIG, "%s: answer larger than %d bytes", g->url,
				   CAS_PCCS_MAX_BODY);
		goto out;
	}
	if (!g->status) {
		ret = kiln_err_set(err, -EIO, "%s: no answer (connection refused or closed, TLS "
				   "failure, or a malformed answer)", g->url);
		goto out;
	}
	ret = 0;
out:
	if (req)
		evhttp_request_free(req);
	if (conn)
		evhttp_connection_free(conn);
	event_base_free(g->base);
	g->base = NULL;
	return ret;
}

static void get_free(struct get *g)
{
	free(g->body.data);
	free(g->chain);
	memset(g, 0, sizeof(*g));
}

int cas__pccs_fetch(const struct cas_pccs *p, const char *tee, const char *fmspc,
		    json_t **collateral, struct kiln_err *err)
{
	const char *ca = p->ca ? p->ca : !strcmp(tee, "tdx") ? "platform" : "processor";
	struct get g[4];
	struct cas__pccs_answers a = { 0 };
	char paths[4][160], urls[4][1024];
	struct base b;
	SSL_CTX *ctx = NULL;
	int ret;

	*collateral = NULL;
	memset(g, 0, sizeof(g));
	ret = parse_base(p->url, &b, err);
	if (ret < 0)
		return ret;
	if (strcmp(ca, "processor") && strcmp(ca, "platform"))
		return kiln_err_set(err, -EINVAL, "--ca '%.20s': processor or platform", ca);
	if (b.tls && !(ctx = tls_ctx(p, err)))
		return -KILN_ECRYPTO;
	snprintf(paths[0], sizeof(paths[0]), "/sgx/certification/v4/pckcrl?ca=%s&encoding=der",
		 ca);
	snprintf(paths[1], sizeof(paths[1]), "/sgx/certification/v4/rootcacrl");
	snprintf(paths[2], sizeof(paths[2]), "/%s/certification/v4/tcb?fmspc=%s", tee, fmspc);
	snprintf(paths[3], sizeof(paths[3]), "/%s/certification/v4/qe/identity", tee);
	g[0].header = "SGX-PCK-CRL-Issuer-Chain";
	g[2].header = "TCB-Info-Issuer-Chain";
	g[2].header_v3 = "SGX-TCB-Info-Issuer-Chain";
	g[3].header = "SGX-Enclave-Identity-Issuer-Chain";
	for (size_t i = 0; i < 4; i++) {
		snprintf(urls[i], sizeof(urls[i]), "%s://%s:%d%s%s", b.tls ? "https" : "http",
			 b.host, b.port, b.prefix, paths[i]);
		g[i].url = urls[i];
		ret = get(p, &b, ctx, paths[i], &g[i], err);
		if (ret < 0)
			goto out;
		if (g[i].status != 200) {
			ret = kiln_err_set(err, g[i].status == 404 ? -ENOENT : -EIO, "%s: the PCCS "
					   "answers %d%s", urls[i], g[i].status, g[i].status == 404 ?
					   " (it has no such collateral: FMSPC unknown to it?)" : "");
			goto out;
		}
	}
	a.pck_crl = g[0].body;
	a.pck_crl_chain = g[0].chain;
	a.root_ca_crl = g[1].body;
	a.tcb_info = g[2].body;
	a.tcb_info_chain = g[2].chain;
	a.qe_identity = g[3].body;
	a.qe_identity_chain = g[3].chain;
	ret = cas__pccs_collateral(&a, collateral, err);
out:
	for (size_t i = 0; i < 4; i++)
		get_free(&g[i]);
	SSL_CTX_free(ctx);
	return ret;
}
