/* kiln-cas connections: accept, TLS 1.3 (OpenSSL bufferevents), HTTP/1.1
 * framing, deadlines and per-address limits. The requests go to cas__handle
 * (route.c) one at a time per connection.
 *
 * Why not libevent's evhttp: in 2.1 it has no hook between accept and a
 * complete request, so a client dribbling a header byte every few seconds was
 * never cut (its timeout is per read, not per request), oversized bodies were
 * answered with its own HTML pages, and its listener logged every failed
 * accept() (10.1 million lines in 45 s at the fd limit). Here every phase of a
 * connection has a deadline:
 *
 *   accept --handshake_s--> TLS done --header_s--> head --body_s--> body -> handler
 *   answer written --idle_s--> next request's first byte --header_s--> head ...
 *
 * (writing an answer also has idle_s), a connection past its deadline is
 * closed, each source address holds at most conns_per_addr connections, every
 * protocol error is a JSON answer, and accept errors (EMFILE, ENFILE) pause the
 * loop's listener for ACCEPT_PAUSE_MS instead of spinning. */
#include "cas/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_PAUSE_MS 250

static const char *reason_phrase(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static void arm(struct cas__conn *c, unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(c->deadline, &tv);
}

/* The current request's buffers (the answer's went with it). */
static void request_clear(struct cas__conn *c)
{
	free(c->head_buf);
	c->head_buf = NULL;
	kiln_free_secret(c->body, c->body_size);
	c->body = NULL;
	c->body_size = 0;
	memset(&c->head, 0, sizeof(c->head));
}

static void conn_free(struct cas__conn *c)
{
	struct cas__loop *l = c->loop;
	struct cas__server *s = l->s;

	if (c->deadline)
		event_free(c->deadline);
	if (c->bev)
		bufferevent_free(c->bev);
	request_clear(c);
	kiln_free_secret(c->rc.out_body, c->rc.out_size);
	pthread_mutex_lock(&s->conn_lock);
	cas__tally_put(&s->conn_caps, c->cap);
	pthread_mutex_unlock(&s->conn_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* The peer left or a deadline passed. A BUSY connection belongs to whoever holds
 * its request: it only drops its socket now and is freed when taken off its list. */
static void conn_close(struct cas__conn *c)
{
	if (c->state != CAS_CONN_BUSY) {
		conn_free(c);
		return;
	}
	c->dead = true;
	evtimer_del(c->deadline);
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
}

void cas__http_drop(struct cas__conn *c)
{
	conn_free(c);
}

static void wipe_body(const void *data, size_t size, void *extra)
{
	kiln_free_secret((void *)data, size);
}

/* Write the answer's head and body (taken); the connection waits for the write
 * to finish (on_write). */
static void write_answer(struct cas__conn *c, int code, const char *ctype, char *body,
			 size_t size)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char retry[40] = "";
	int ret;

	if (c->rc.retry_after)
		snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", c->rc.retry_after);
	ret = evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
				  "Content-Length: %zu\r\nCache-Control: no-store\r\n"
				  "X-Request-Id: %s\r\n%s%s\r\n", code, reason_phrase(code), ctype,
				  size, c->rc.request_id[0] ? c->rc.request_id : "-", retry,
				  c->close_after ? "Connection: close\r\n" : "");
	/* By reference: the body (it may hold secrets) is wiped and freed once
	 * OpenSSL has encrypted it, never copied into libevent's buffers. */
	if (ret >= 0 && size) {
		ret = evbuffer_add_reference(out, body, size, wipe_body, NULL);
		if (ret < 0)
			kiln_free_secret(body, size);
	} else {
		kiln_free_secret(body, size);
	}
	if (ret < 0) {
		conn_free(c);
		return;
	}
	c->state = CAS_CONN_WRITING;
	arm(c, c->loop->s->lim.idle_s);
}

void cas__http_send(struct cas__conn *c, int code, const char *ctype, char *body,
		    size_t size)
{
	if (c->dead || !c->bev) {
		kiln_free_secret(body, size);
		conn_free(c);
		return;
	}
	if (!c->head.keep_alive)
		c->close_after = true;
	write_answer(c, code, ctype, body, size);
}

/* A request the handlers never see: answered with {"error": why} and closed.
 * (A protocol error leaves the stream position unknown.) */
static void refuse(struct cas__conn *c, int code, const char *why)
{
	struct cas__server *s = c->loop->s;
	json_t *j;
	char *body;
	uint8_t rid[8];

	if (kc_random(rid, sizeof(rid)) < 0)
		memset(rid, 0, sizeof(rid));
	kiln_hex_encode(rid, sizeof(rid), c->rc.request_id);
	j = json_pack("{s:s,s:s}", "error", why, "request_id", c->rc.request_id);
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!body) {
		conn_free(c);
		return;
	}
	cas__metrics_request(&s->m, "other", code, 0);
	kiln_log(KILN_LOG_WARN, "request refused", "status=%d reason=\"%s\" addr=%s "
		 "request_id=%s", code, why, c->addr, c->rc.request_id);
	c->close_after = true;
	bufferevent_disable(c->bev, EV_READ);
	write_answer(c, code, "application/json", body, strlen(body));
}

/* Hand the complete request to the handlers; reading pauses until it is answered
 * (pipelined requests wait in the input buffer). */
static void dispatch(struct cas__conn *c)
{
	c->state = CAS_CONN_BUSY;
	c->first = false;
	evtimer_del(c->deadline);
	bufferevent_disable(c->bev, EV_READ);
	cas__handle(c);
}

/* A complete head is in input at [0, size): parse it. True when its body is to
 * be read next; false when the request was handed over or refused (c may be
 * gone). */
static bool take_head(struct cas__conn *c, struct evbuffer *in, size_t size)
{
	struct cas__server *s = c->loop->s;
	const char *why;
	int status;

	c->head_buf = malloc(size + 1);
	if (!c->head_buf) {
		conn_free(c);
		return false;
	}
	evbuffer_remove(in, c->head_buf, size);
	c->head_buf[size] = '\0';
	status = cas__http_parse_head(c->head_buf, size, &c->head, &why);
	if (status) {
		refuse(c, status, why);
		return false;
	}
	if (c->head.content_length > CAS_HTTP_MAX_BODY) {
		refuse(c, 413, "body too large (at most 1 MiB)");
		return false;
	}
	if (!c->head.content_length) {
		dispatch(c);
		return false;
	}
	if (c->head.expect_continue)
		evbuffer_add_printf(bufferevent_get_output(c->bev),
				    "HTTP/1.1 100 Continue\r\n\r\n");
	c->state = CAS_CONN_BODY;
	arm(c, s->lim.body_s);
	return true;
}

/* Read what the input holds: a head, then its body, then hand it over. When
 * more is needed but the peer has closed its side, the connection goes. */
static void process(struct cas__conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr end;
	size_t have = evbuffer_get_length(in);

	if (c->state == CAS_CONN_IDLE) {
		if (!have)
			goto more;
		c->state = CAS_CONN_HEAD;
		/* The first request's head counts from the handshake; the next ones'
		 * from their first byte. */
		if (!c->first)
			arm(c, c->loop->s->lim.header_s);
	}
	if (c->state == CAS_CONN_HEAD) {
		end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0 && have <= CAS_HTTP_MAX_HEAD)
			goto more;
		if (end.pos < 0 || (size_t)end.pos + 4 > CAS_HTTP_MAX_HEAD) {
			refuse(c, 431, "request head too large (at most 16 KiB)");
			return;
		}
		if (!take_head(c, in, (size_t)end.pos + 4))
			return;
		have = evbuffer_get_length(in); /* its body may be here already */
	}
	if (c->state != CAS_CONN_BODY || have < c->head.content_length)
		goto more;
	c->body_size = (size_t)c->head.content_length;
	c->body = malloc(c->body_size + 1);
	if (!c->body) {
		c->body_size = 0;
		conn_free(c);
		return;
	}
	evbuffer_remove(in, c->body, c->body_size);
	c->body[c->body_size] = '\0';
	dispatch(c);
	return;
more:
	if (c->eof)
		conn_free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct cas__conn *c = arg;

	if (c->state == CAS_CONN_IDLE || c->state == CAS_CONN_HEAD || c->state == CAS_CONN_BODY)
		process(c);
}

/* The answer is written: close, or wait for the next request (maybe there
 * already). */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct cas__conn *c = arg;

	if (c->state != CAS_CONN_WRITING || evbuffer_get_length(bufferevent_get_output(bev)))
		return;
	if (c->close_after) {
		conn_free(c);
		return;
	}
	request_clear(c);
	c->state = CAS_CONN_IDLE;
	arm(c, c->loop->s->lim.idle_s);
	bufferevent_enable(bev, EV_READ);
	process(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct cas__conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS is up; the first request's head is due within header_s. A
		 * request may have come with it, and the peer may have closed after
		 * sending it (EOF in the same call): it is still answered. */
		c->state = CAS_CONN_IDLE;
		c->eof = (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0;
		arm(c, c->loop->s->lim.header_s);
		process(c);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_close(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	static const char *const phase[] = {
		[CAS_CONN_HANDSHAKE] = "TLS handshake", [CAS_CONN_IDLE] = "request head",
		[CAS_CONN_HEAD] = "request head", [CAS_CONN_BODY] = "request body",
		[CAS_CONN_BUSY] = "handler", [CAS_CONN_WRITING] = "answer",
	};
	struct cas__conn *c = arg;

	/* An idle keep-alive connection closing is routine; a client that does not
	 * finish what it started is worth a (rate-limited) line. */
	if (!(c->state == CAS_CONN_IDLE && !c->first))
		kiln_log(KILN_LOG_WARN, "connection closed: deadline passed", "phase=\"%s\" "
			 "addr=%s", phase[c->state], c->addr);
	conn_close(c);
}

/* ---- accept ---- */

static void peer_address(const struct sockaddr *sa, char *out, size_t size)
{
	const void *a = sa->sa_family == AF_INET6 ?
			(const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
			(const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (!inet_ntop(sa->sa_family, a, out, (socklen_t)size))
		snprintf(out, size, "?");
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct cas__loop *l = arg;
	struct cas__server *s = l->s;
	char key[CAS_CLIENT_KEY_SIZE];
	struct cas__conn *c = calloc(1, sizeof(*c));
	SSL *ssl = NULL;
	int err = 0;

	if (!c) {
		close(fd);
		return;
	}
	c->loop = l;
	c->first = true;
	peer_address(sa, c->addr, sizeof(c->addr));
	cas__client_key(NULL, c->addr, key);
	pthread_mutex_lock(&s->conn_lock);
	c->cap = cas__tally_take(&s->conn_caps, key, s->lim.conns_per_addr, &err);
	pthread_mutex_unlock(&s->conn_lock);
	if (!c->cap) {
		if (err == -EUSERS)
			kiln_log(KILN_LOG_WARN, "connection refused: address holds its limit",
				 "addr=%s limit=%u", c->addr, s->lim.conns_per_addr);
		close(fd);
		free(c);
		return;
	}
	c->prev = NULL;
	c->next = l->conns;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
	ssl = SSL_new(s->ssl);
	c->deadline = evtimer_new(l->base, on_deadline, c);
	c->bev = ssl && c->deadline ?
		 bufferevent_openssl_socket_new(l->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE |
						BEV_OPT_DEFER_CALLBACKS) : NULL;
	if (!c->bev) {
		SSL_free(ssl); /* bufferevent_openssl_socket_new frees it only on success */
		close(fd);
		conn_free(c);
		return;
	}
	cas__metrics_connection(&s->m);
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = CAS_CONN_HANDSHAKE;
	arm(c, s->lim.handshake_s);
}

/* accept() failed, most likely out of descriptors (EMFILE, ENFILE): the socket
 * stays readable, so libevent would call again at once, forever. Pause this
 * loop's listener; connections finishing or timing out free descriptors. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct cas__loop *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { 0, ACCEPT_PAUSE_MS * 1000 };

	evconnlistener_disable(lev);
	evtimer_add(l->accept_ev, &pause);
	kiln_log(KILN_LOG_WARN, e == EMFILE || e == ENFILE ?
		 "out of file descriptors: not accepting for a moment" :
		 "accept failed: not accepting for a moment", "error=\"%s\" pause_ms=%d loop=%zu",
		 strerror(e), ACCEPT_PAUSE_MS, l->index);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct cas__loop *l = arg;

	evconnlistener_enable(l->listener);
}

int cas__http_loop_start(struct cas__loop *l, int listen_fd)
{
	int fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	l->accept_ev = evtimer_new(l->base, on_accept_resume, l);
	/* backlog 0: the socket already listens. */
	l->listener = l->accept_ev ?
		      evconnlistener_new(l->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE |
					 LEV_OPT_CLOSE_ON_EXEC, 0, fd) : NULL;
	if (!l->listener) {
		close(fd);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(l->listener, on_accept_error);
	return 0;
}

void cas__http_loop_stop(struct cas__loop *l)
{
	if (l->listener)
		evconnlistener_free(l->listener);
	l->listener = NULL;
	if (l->accept_ev)
		event_free(l->accept_ev);
	l->accept_ev = NULL;
	while (l->conns)
		conn_free(l->conns);
}
