/* kiln-cas startup and shutdown: the data directory, TLS, the listening socket,
 * N event loops (--threads, default: one per CPU) each on its own thread, all
 * accepting from that socket: a connection, its TLS handshake and its requests
 * stay on the loop that accepted it. Handlers are short (SQLite on local disk,
 * one signature per audit entry) and run under the locks listed in internal.h
 * next to the state they guard; the handlers that use the store run one at a
 * time (store_lock), the handshakes (and an attestation's evidence verification,
 * which reads the store through a second, read-only connection) run in
 * parallel. */
#include "cas/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Drop expired nonces (expired grants go at the next attestation that writes
 * one, in its transaction: grants.c). */
static void sweep(struct cas__server *s)
{
	uint64_t now = kiln_now_ns();

	(void)cas__nonces_sweep(&s->nonces, now);
	cas__snonces_sweep(&s->snonces, (int64_t)time(NULL));
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	sweep(arg);
}

/* ---- TLS and startup ---- */

static int accept_any_client_cert(int preverify_ok, X509_STORE_CTX *ctx)
{
	/* Identities are self-signed: the key is the identity, not a CA's word. */
	return 1;
}

static int make_ssl_ctx(struct cas__server *s, const struct cas_serve_opts *o,
			struct kiln_err *err)
{
	static const unsigned char sid[] = "kiln-cas";
	char *dns[34], *ip[34];
	size_t n_dns = 0, n_ip = 0;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int ret;

	dns[n_dns++] = "localhost";
	ip[n_ip++] = "127.0.0.1";
	ip[n_ip++] = "::1";
	for (size_t i = 0; i < o->n_sans && i < 32; i++) {
		uint8_t b[16];

		if (inet_pton(AF_INET, o->sans[i], b) == 1 ||
		    inet_pton(AF_INET6, o->sans[i], b) == 1)
			ip[n_ip++] = (char *)o->sans[i];
		else
			dns[n_dns++] = (char *)o->sans[i];
	}
	/* A fresh server key each start: clients pin the CA, never this key. */
	ret = cas__x509_keygen("p256", &key);
	if (ret == 0)
		ret = cas__x509_make_cert(key, "kiln-cas", 825, false, dns, n_dns, ip, n_ip,
				   s->st.ca_cert, s->st.ca_key, &cert);
	if (ret < 0) {
		EVP_PKEY_free(key);
		return kiln_err_set(err, ret, "cannot make the server certificate");
	}
	s->ssl = SSL_CTX_new(TLS_server_method());
	ret = -KILN_ECRYPTO;
	if (!s->ssl || !SSL_CTX_set_min_proto_version(s->ssl, TLS1_3_VERSION) ||
	    !SSL_CTX_use_certificate(s->ssl, cert) || !SSL_CTX_use_PrivateKey(s->ssl, key) ||
	    !SSL_CTX_add1_chain_cert(s->ssl, s->st.ca_cert) ||
	    !SSL_CTX_set_session_id_context(s->ssl, sid, sizeof(sid) - 1))
		goto out;
	SSL_CTX_set_verify(s->ssl, SSL_VERIFY_PEER, accept_any_client_cert);
	SSL_CTX_set_options(s->ssl, SSL_OP_NO_RENEGOTIATION);
	/* Clients never resume (a workload key is used once): no tickets, which
	 * also saves two records per handshake. */
	SSL_CTX_set_num_tickets(s->ssl, 0);
	ret = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	if (ret < 0)
		kiln_err_set(err, ret, "cannot set up TLS");
	return ret;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct cas__server *s = arg;

	kiln_log(KILN_LOG_INFO, "shutting down", "signal=%d", (int)sig);
	for (size_t i = 0; i < s->n_loops; i++)
		event_base_loopexit(s->loops[i].base, NULL);
}

/* SIGHUP: what the caller can reload (cas_serve_opts.reload). */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct cas__server *s = arg;

	(void)what;
	if (!s->reload) {
		kiln_log(KILN_LOG_INFO, "nothing to reload (started without --config)",
			 "signal=%d", (int)sig);
		return;
	}
	s->reload(s->reload_arg);
}

static int parse_listen(const char *listen, char *host, size_t host_size, uint16_t *port)
{
	const char *colon = strrchr(listen, ':');
	uint64_t p;
	size_t hl;

	if (!colon || kiln_parse_u64(colon + 1, &p) < 0 || p > 65535)
		return -EINVAL;
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		listen++;
		hl -= 2;
	}
	if (hl == 0 || hl >= host_size)
		return -EINVAL;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static void loop_free(struct cas__loop *l)
{
	/* Parked requests are not run (the loops have stopped); their connections
	 * go with the others. */
	l->parked = NULL;
	l->parked_tail = &l->parked;
	cas__http_loop_stop(l);
	if (l->commit_ev)
		event_free(l->commit_ev);
	if (l->wake_ev)
		event_free(l->wake_ev);
	if (l->base)
		event_base_free(l->base);
}

static void server_free(struct cas__server *s)
{
	cas__refresher_stop(&s->refresher); /* waits for a fetch under way */
	cas__flush_batch(s);
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sig_hup)
		event_free(s->sig_hup);
	if (s->sweep)
		event_free(s->sweep);
	for (size_t i = 0; i < s->n_loops; i++)
		loop_free(&s->loops[i]);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	SSL_CTX_free(s->ssl);
	cas__nonces_free(&s->nonces);
	if (s->snonces_open)
		cas__snonces_close(&s->snonces);
	cas__store_close(&s->rd);
	cas__store_close(&s->st);
	pthread_mutex_destroy(&s->reader_lock);
	pthread_mutex_destroy(&s->m.lock);
	cas__tally_free(&s->conn_caps);
	cas__tally_free(&s->refusals.per_id);
	pthread_mutex_destroy(&s->conn_lock);
	pthread_mutex_destroy(&s->store_lock);
	pthread_cond_destroy(&s->commit_cond);
	free(s);
}

/* Make loop i: its base, its listener on a dup of the listening socket, its
 * timers. */
static int loop_init(struct cas__server *s, size_t i)
{
	struct cas__loop *l = &s->loops[i];

	l->s = s;
	l->index = i;
	l->pending_tail = &l->pending;
	l->done_tail = &l->done;
	l->parked_tail = &l->parked;
	l->resume_tail = &l->resume;
	l->base = event_base_new();
	l->commit_ev = l->base ? evtimer_new(l->base, cas__on_commit, l) : NULL;
	l->wake_ev = l->base ? event_new(l->base, -1, 0, cas__on_wake, l) : NULL;
	if (!l->commit_ev || !l->wake_ev)
		return -ENOMEM;
	/* Every loop waits on the same listening socket (its own descriptor for it,
	 * closed by its listener): whichever loop is free accepts. */
	return cas__http_loop_start(l, s->listen_fd);
}

static void *loop_thread(void *arg)
{
	struct cas__loop *l = arg;

	event_base_dispatch(l->base);
	return NULL;
}

/* Bind and listen (TCP_NODELAY, non-blocking, close-on-exec); the fd or -errno. */
static int listen_on(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char ps[8];
	int fd, one = 1, ret;

	snprintf(ps, sizeof(ps), "%u", port);
	ret = getaddrinfo(host, ps, &hints, &ai);
	if (ret != 0)
		return ret == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	/* Accepted sockets inherit TCP_NODELAY on Linux: without it, Nagle holds
	 * small answers back until the client's delayed ACK (40 ms). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		ret = -errno;
		close(fd);
		goto out;
	}
	ret = fd;
out:
	freeaddrinfo(ai);
	return ret;
}

int cas_serve(const struct cas_serve_opts *o, struct kiln_err *err)
{
	struct cas__server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct timeval sweep_tv = { 5, 0 };
	char host[256], fp[65], addr[INET6_ADDRSTRLEN];
	uint16_t port;
	size_t n_loops;
	int ret;

	if (!s)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	s->listen_fd = -1;
	s->evidence_at = o->evidence_at;
	cas__nonces_init(&s->nonces);
	cas__grant_limits_init(&s->grants);
	if (o->grants_per_policy)
		s->grants.max_per_policy = o->grants_per_policy;
	if (o->grant_ttl_s)
		s->grants.ttl_ns = (int64_t)o->grant_ttl_s * 1000000000;
	pthread_mutex_init(&s->m.lock, NULL);
	pthread_mutex_init(&s->conn_lock, NULL);
	s->lim.handshake_s = o->handshake_timeout_s ? o->handshake_timeout_s : 10;
	s->lim.header_s = o->header_timeout_s ? o->header_timeout_s : 10;
	s->lim.body_s = o->body_timeout_s ? o->body_timeout_s : 30;
	s->lim.idle_s = 30;
	s->lim.conns_per_addr = o->conns_per_addr ? o->conns_per_addr : 1024;
	pthread_mutex_init(&s->store_lock, NULL);
	pthread_mutex_init(&s->reader_lock, NULL);
	pthread_cond_init(&s->commit_cond, NULL);
	n_loops = o->threads;
	if (!n_loops) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		n_loops = n > 0 ? (size_t)n : 1;
	}
	if (n_loops > MAX_LOOPS)
		n_loops = MAX_LOOPS;
	if (parse_listen(o->listen, host, sizeof(host), &port) < 0) {
		ret = kiln_err_set(err, -EINVAL, "--listen '%s': expected HOST:PORT", o->listen);
		goto out;
	}
	ret = cas__store_open(&s->st, o->data_dir, /*create=*/true, err);
	if (ret < 0)
		goto out;
	ret = cas__store_open_reader(&s->st, &s->rd, err);
	if (ret < 0)
		goto out;
	ret = cas__snonces_open(&s->snonces, &s->st, err);
	if (ret < 0)
		goto out;
	s->snonces_open = true;
	ret = make_ssl_ctx(s, o, err);
	if (ret < 0)
		goto out;
	{
		/* The key every answer of GET /v1/attestation binds. */
		uint8_t key_sha256[KC_SHA256_SIZE];

		if (cas__x509_spki_sha256(SSL_CTX_get0_certificate(s->ssl), key_sha256) < 0) {
			ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot hash the server key");
			goto out;
		}
		ret = cas__self_init(s, o->attest_tee, key_sha256, err);
		if (ret < 0)
			goto out;
	}
	ret = cas__refresher_start(&s->refresher, o->data_dir, o->pccs, o->pccs_interval_s, err);
	if (ret < 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	{
		/* Each client holds a descriptor: allow as many as the hard limit. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	/* Locks inside libevent, so the committer may wake a loop (event_active) and a
	 * signal may stop them all (event_base_loopexit). */
	if (evthread_use_pthreads() < 0) {
		ret = kiln_err_set(err, -ENOMEM, "cannot set up libevent threads");
		goto out;
	}
	ret = listen_on(host, port);
	if (ret < 0) {
		ret = kiln_err_set(err, ret == -EADDRNOTAVAIL ? -EADDRNOTAVAIL : -EADDRINUSE,
				   "cannot listen on %s: %s", o->listen, strerror(-ret));
		goto out;
	}
	s->listen_fd = ret;
	if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) < 0) {
		ret = kiln_err_set(err, -errno, "getsockname: %s", strerror(errno));
		goto out;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	for (size_t i = 0; i < n_loops; i++) {
		s->n_loops = i + 1;
		ret = loop_init(s, i);
		if (ret < 0) {
			ret = kiln_err_set(err, ret, "cannot create event loop %zu: %s", i,
					   kiln_strerror(ret));
			goto out;
		}
	}
	s->sig_term = evsignal_new(s->loops[0].base, SIGTERM, on_signal, s);
	s->sig_int = evsignal_new(s->loops[0].base, SIGINT, on_signal, s);
	s->sig_hup = evsignal_new(s->loops[0].base, SIGHUP, on_hup, s);
	s->reload = o->reload;
	s->reload_arg = o->reload_arg;
	s->sweep = event_new(s->loops[0].base, -1, EV_PERSIST, on_sweep, s);
	if (!s->sig_term || !s->sig_int || !s->sig_hup || !s->sweep ||
	    evsignal_add(s->sig_term, NULL) < 0 || evsignal_add(s->sig_int, NULL) < 0 ||
	    evsignal_add(s->sig_hup, NULL) < 0 || event_add(s->sweep, &sweep_tv) < 0) {
		ret = kiln_err_set(err, -ENOMEM, "cannot set up events");
		goto out;
	}
	if (pthread_create(&s->committer, NULL, cas__committer, s) != 0) {
		ret = kiln_err_set(err, -ENOMEM, "cannot start the commit thread");
		goto out;
	}
	s->committer_started = true;
	for (size_t i = 1; i < s->n_loops; i++) {
		if (pthread_create(&s->loops[i].thread, NULL, loop_thread, &s->loops[i]) != 0) {
			ret = kiln_err_set(err, -ENOMEM, "cannot start event loop thread %zu", i);
			goto stop;
		}
		s->loops[i].thread_started = true;
	}
	cas_cert_fingerprint(s->st.ca_cert, fp);
	kiln_log(KILN_LOG_INFO, "kiln-cas ready", "listen=%s:%u data=%s store=\"%s\" "
		 "ca_fingerprint=%s threads=%zu", addr, port, o->data_dir, s->st.where, fp,
		 s->n_loops);
	if (o->announce) {
		fprintf(o->announce, "ca-fingerprint %s\n", fp);
		fprintf(o->announce, ss.ss_family == AF_INET6 ? "listening https://[%s]:%u\n" :
			"listening https://%s:%u\n", addr, port);
		fflush(o->announce);
	}
	event_base_dispatch(s->loops[0].base);
	ret = 0;
stop:
	for (size_t i = 1; i < s->n_loops; i++) {
		if (!s->loops[i].thread_started)
			continue;
		event_base_loopexit(s->loops[i].base, NULL);
		pthread_join(s->loops[i].thread, NULL);
	}
out:
	server_free(s);
	kiln_log_flush(); /* the counts of lines the rate limit left out */
	return ret;
}

