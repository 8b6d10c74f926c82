/* bench/cas load generator: N threads, each running one operation after the
 * other against kiln-cas over fresh mutual-TLS 1.3 connections.
 *
 *   bare    TLS handshake with a client certificate + GET /v1/health
 *   attest  TLS handshake with an ephemeral workload certificate, GET /v1/nonce
 *           and POST /v1/attest (sim evidence) on the same connection: the
 *           runtime's flow (BRIEF-protocol). The binding is computed here with
 *           the protocol formula so the generator needs no kiln library.
 *   apply   POST /v1/policies: each thread updates its own policy, naming the
 *           previous hash as predecessor, one fresh connection per update (as
 *           `kiln policy apply` does)
 *   apply-ka  the same over one kept-alive connection per thread (API clients)
 *
 * Usage: loadgen MODE HOST PORT CA_PEM IDENTITY_PEM THREADS SECONDS [SESSION]
 * Prints one JSON line: {"mode","threads","ops","errors","seconds","ops_per_s",
 * "p50_ms","p99_ms"}. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *g_mode, *g_host, *g_session = "bench/attest";
static int g_port;
static SSL_CTX *g_ctx;
static double g_seconds;
static atomic_int g_stop;

struct worker {
	pthread_t th;
	int idx;
	long ops, errors;
	double *lat;
	size_t n_lat, cap_lat;
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *spki;
	int spki_size;
	char pred[80];
	int version;
	SSL *ka;     /* apply-ka: the kept-alive connection */
	int ka_fd;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static SSL *tls_connect(struct worker *w, int *fd_out)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	SSL *ssl;

	inet_pton(AF_INET, g_host, &a.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return NULL;
	}
	ssl = SSL_new(g_ctx);
	SSL_use_certificate(ssl, w->cert);
	SSL_use_PrivateKey(ssl, w->key);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	*fd_out = fd;
	return ssl;
}

/* Send a request, read one response; returns status or -1. body_out: malloc'd. */
static int http(SSL *ssl, const char *method, const char *path, const char *body,
		char **body_out)
{
	char head[512], buf[65536];
	size_t len = 0, blen = body ? strlen(body) : 0, want;
	char *hend, *cl;
	int n, status;

	n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n"
		     "\r\n", method, path, g_host, blen);
	if (SSL_write(ssl, head, n) != n || (blen && SSL_write(ssl, body, (int)blen) != (int)blen))
		return -1;
	for (;;) {
		n = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = 0;
		hend = strstr(buf, "\r\n\r\n");
		if (!hend)
			continue;
		cl = strcasestr(buf, "Content-Length:");
		want = (size_t)(hend - buf) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
		if (len >= want)
			break;
	}
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -1;
	if (body_out)
		*body_out = strdup(hend + 4);
	return status;
}

static void tls_close(SSL *ssl, int fd)
{
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
}

static int op_bare(struct worker *w)
{
	int fd, st;
	SSL *ssl = tls_connect(w, &fd);

	if (!ssl)
		return -1;
	st = http(ssl, "GET", "/v1/health", NULL, NULL);
	tls_close(ssl, fd);
	return st == 200 ? 0 : -1;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static int op_attest(struct worker *w)
{
	unsigned char nonce[32], wm[48], rd[64];
	char *resp = NULL, nonce_hex[65], rd_hex[129], wm_hex[97], ev[512], body[2048];
	char *nh, *b64 = NULL;
	EVP_MD_CTX *md;
	int fd, st = -1, evn;
	unsigned int rdn = 0;
	SSL *ssl = tls_connect(w, &fd);

	if (!ssl)
		return -1;
	if (http(ssl, "GET", "/v1/nonce", NULL, &resp) != 200 ||
	    !(nh = strstr(resp, "\"nonce\":\"")))
		goto out;
	memcpy(nonce_hex, nh + 9, 64);
	nonce_hex[64] = 0;
	for (int i = 0; i < 32; i++)
		sscanf(nonce_hex + 2 * i, "%2hhx", &nonce[i]);
	memset(wm, 0x5a, sizeof(wm));
	md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha512(), NULL);
	EVP_DigestUpdate(md, "kiln-v1", 7);
	EVP_DigestUpdate(md, w->spki, (size_t)w->spki_size);
	EVP_DigestUpdate(md, nonce, 32);
	EVP_DigestUpdate(md, wm, 48);
	EVP_DigestFinal_ex(md, rd, &rdn);
	EVP_MD_CTX_free(md);
	hex(rd, 64, rd_hex);
	hex(wm, 48, wm_hex);
	evn = snprintf(ev, sizeof(ev), "{\"tee\": \"sim\", \"report_data\": \"%s\", "
		       "\"workload_measurement\": \"%s\"}", rd_hex, wm_hex);
	b64 = malloc(4 * ((size_t)evn / 3 + 1) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)ev, evn);
	snprintf(body, sizeof(body), "{\"session\": \"%s\", \"service\": \"app\", \"tee\": "
		 "\"sim\", \"evidence\": \"%s\", \"nonce\": \"%s\"}", g_session, b64, nonce_hex);
	free(resp);
	resp = NULL;
	st = http(ssl, "POST", "/v1/attest", body, &resp);
out:
	free(b64);
	free(resp);
	tls_close(ssl, fd);
	return st == 200 ? 0 : -1;
}

static int op_apply(struct worker *w)
{
	char body[1024], *resp = NULL, *h;
	int fd, st;
	bool ka = !strcmp(g_mode, "apply-ka");
	SSL *ssl = ka && w->ka ? w->ka : tls_connect(w, &fd);

	if (!ssl)
		return -1;
	if (ka && !w->ka) {
		w->ka = ssl;
		w->ka_fd = fd;
	}
	snprintf(body, sizeof(body),
		 "name: bench/%s%d\npredecessor: %s\nservices:\n  - name: app\n"
		 "    command: [/bin/app, \"v%d\"]\n    measurement: [any]\n"
		 "security: {tee: [sim], allow_insecure_sim: true}\n", g_mode, w->idx,
		 w->pred[0] ? w->pred : "null", w->version);
	st = http(ssl, "POST", "/v1/policies", body, &resp);
	if (!ka) {
		tls_close(ssl, fd);
	} else if (st < 0) {
		tls_close(w->ka, w->ka_fd);
		w->ka = NULL;
	}
	if ((st == 200 || st == 201) && resp && (h = strstr(resp, "\"hash\":\""))) {
		snprintf(w->pred, sizeof(w->pred), "%.71s", h + 8);
		w->version++;
		free(resp);
		return 0;
	}
	free(resp);
	return -1;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	int (*op)(struct worker *) = !strcmp(g_mode, "bare") ? op_bare :
				     !strcmp(g_mode, "attest") ? op_attest : op_apply;

	while (!atomic_load(&g_stop)) {
		double t = now();

		if (op(w) < 0) {
			w->errors++;
			continue;
		}
		if (w->n_lat == w->cap_lat) {
			w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 4096;
			w->lat = realloc(w->lat, w->cap_lat * sizeof(double));
		}
		w->lat[w->n_lat++] = now() - t;
		w->ops++;
	}
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct worker *ws;
	int threads;
	EVP_PKEY *id_key;
	X509 *id_cert;
	FILE *f;
	double t0, t1, *all;
	long ops = 0, errors = 0;
	size_t n = 0;

	if (argc < 8) {
		fprintf(stderr, "usage: loadgen MODE HOST PORT CA IDENTITY THREADS SECONDS "
			"[SESSION]\n");
		return 2;
	}
	g_mode = argv[1];
	g_host = argv[2];
	g_port = atoi(argv[3]);
	threads = atoi(argv[6]);
	g_seconds = atof(argv[7]);
	if (argc > 8)
		g_session = argv[8];
	g_ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(g_ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Full verification against the CA, as real clients do. */
	SSL_CTX_load_verify_locations(g_ctx, argv[4], NULL);
	SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
	f = fopen(argv[5], "r");
	if (!f)
		return 1;
	id_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	rewind(f);
	id_cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ws = calloc((size_t)threads, sizeof(*ws));
	for (int i = 0; i < threads; i++) {
		ws[i].idx = i;
		if (!strcmp(g_mode, "attest")) {
			/* An ephemeral workload key per thread (made before timing). */
			X509_NAME *nm = X509_NAME_new();

			ws[i].key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
			ws[i].cert = X509_new();
			X509_set_version(ws[i].cert, 2);
			ASN1_INTEGER_set(X509_get_serialNumber(ws[i].cert), i + 1);
			X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)
						   "kiln-workload", -1, -1, 0);
			X509_set_subject_name(ws[i].cert, nm);
			X509_set_issuer_name(ws[i].cert, nm);
			X509_gmtime_adj(X509_getm_notBefore(ws[i].cert), -3600);
			X509_gmtime_adj(X509_getm_notAfter(ws[i].cert), 86400);
			X509_set_pubkey(ws[i].cert, ws[i].key);
			X509_sign(ws[i].cert, ws[i].key, EVP_sha256());
			X509_NAME_free(nm);
			ws[i].spki_size = i2d_PUBKEY(ws[i].key, &ws[i].spki);
		} else {
			ws[i].key = id_key;
			ws[i].cert = id_cert;
		}
		ws[i].version = 1;
	}
	t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&ws[i].th, NULL, run, &ws[i]);
	while (now() - t0 < g_seconds)
		usleep(20000);
	atomic_store(&g_stop, 1);
	for (int i = 0; i < threads; i++)
		pthread_join(ws[i].th, NULL);
	t1 = now();
	for (int i = 0; i < threads; i++) {
		ops += ws[i].ops;
		errors += ws[i].errors;
		n += ws[i].n_lat;
	}
	all = malloc((n + 1) * sizeof(double));
	n = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + n, ws[i].lat, ws[i].n_lat * sizeof(double));
		n += ws[i].n_lat;
	}
	qsort(all, n, sizeof(double), cmp_d);
	printf("{\"mode\": \"%s\", \"threads\": %d, \"ops\": %ld, \"errors\": %ld, "
	       "\"seconds\": %.3f, \"ops_per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
	       g_mode, threads, ops, errors, t1 - t0, (double)ops / (t1 - t0),
	       n ? all[n / 2] * 1e3 : 0.0, n ? all[(size_t)((double)n * 0.99)] * 1e3 : 0.0);
	return errors && !ops ? 1 : 0;
}
