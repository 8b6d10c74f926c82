/* kiln CLI: the socket of a live protected console (console_relay.h).
 *
 * The relay sees only records: it cuts the program's output into whole
 * records (src/console/frame.c), queues them, and writes them to the attached
 * client; it writes the client's whole records to the program's stdin pipe
 * (one write each, at most PIPE_BUF bytes: never half a record, so a client
 * that goes away mid-record leaves nothing the next one cannot follow). A
 * client that sends anything but records is disconnected. */
#include "cli/console_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/common.h"
#include "console/console.h"

#define MAX_PINNED 8

int cli_con_addr_parse(const char *opt, const char *arg, struct cli_con_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (!strncmp(arg, "unix:", 5)) {
		const char *p = arg + 5;
		size_t n = strlen(p);

		if (!n || p[n - 1] == '/' || n >= sizeof(a->path)) {
			cli_error("%s '%s': expected unix:PATH (a file name, under %zu bytes)", opt,
				  arg, sizeof(a->path));
			return -1;
		}
		a->unix_socket = true;
		memcpy(a->path, p, n + 1);
		return 0;
	}
	if (!strncmp(arg, "tcp:", 4)) {
		const char *h = arg + 4, *colon = strrchr(h, ':');
		size_t hn = colon ? (size_t)(colon - h) : 0;
		char *end;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;

		if (!colon || !colon[1] || *end || port < 1 || port > 65535 || !hn) {
			cli_error("%s '%s': expected tcp:HOST:PORT (a port 1-65535)", opt, arg);
			return -1;
		}
		if (h[0] == '[' && h[hn - 1] == ']') { /* [IPv6] */
			h++;
			hn -= 2;
		}
		if (!hn || hn >= sizeof(a->host) || memchr(h, '[', hn) || memchr(h, ']', hn)) {
			cli_error("%s '%s': bad HOST (a name, an IPv4 address or [IPv6])", opt, arg);
			return -1;
		}
		memcpy(a->host, h, hn);
		snprintf(a->port, sizeof(a->port), "%ld", port);
		return 0;
	}
	cli_error("%s '%s': expected unix:PATH or tcp:HOST:PORT", opt, arg);
	return -1;
}

/* The directory of a unix socket: opened, and checked that nobody else can
 * put something in place of the socket. */
static int cli__sock_dir(const char *opt, const char *path, const char **base)
{
	char dir[sizeof(((struct cli_con_addr *)0)->path)];
	const char *slash = strrchr(path, '/');
	struct stat st;
	uid_t me = geteuid();
	int fd;

	if (!slash) {
		snprintf(dir, sizeof(dir), ".");
		*base = path;
	} else {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
		*base = slash + 1;
	}
	if (!strcmp(*base, ".") || !strcmp(*base, "..")) {
		cli_error("%s 'unix:%s': not a file name", opt, path);
		return -1;
	}
	if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid != me && st.st_uid != 0) {
		cli_error("%s 'unix:%s': directory %s is a symlink owned by uid %u, not by you "
			  "or root (planted?): refused", opt, path, dir, (unsigned)st.st_uid);
		return -1;
	}
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("%s 'unix:%s': directory %s: %s", opt, path, dir, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (st.st_uid != me && st.st_uid != 0)) {
		cli_error("%s 'unix:%s': directory %s belongs to uid %u, not to you or root: "
			  "refused", opt, path, dir, (unsigned)st.st_uid);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) {
		cli_error("%s 'unix:%s': directory %s is writable by others (and not sticky): "
			  "refused", opt, path, dir);
		close(fd);
		return -1;
	}
	return fd;
}

/* The first address of a TCP HOST:PORT; *res the caller's (freeaddrinfo). */
static int cli__resolve(const char *opt, const struct cli_con_addr *a, bool passive,
			struct addrinfo **res)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	int ret = getaddrinfo(a->host, a->port, &hints, res);

	if (ret) {
		*res = NULL;
		cli_error("%s 'tcp:%s:%s': %s", opt, a->host, a->port, gai_strerror(ret));
		return -1;
	}
	return 0;
}

int cli_con_listen(const char *opt, const struct cli_con_addr *a, int *dirfd)
{
	struct addrinfo *res = NULL;
	const bool passive = true;
	int fd = -1, one = 1, ret;

	*dirfd = -1;
	if (a->unix_socket) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		const char *base;
		mode_t old;

		*dirfd = cli__sock_dir(opt, a->path, &base);
		if (*dirfd < 0)
			return -1;
		/* Bound through the directory already checked: a directory swapped
		 * in after the check is not followed. */
		if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s",
				     *dirfd, base) >= sizeof(sa.sun_path)) {
			cli_error("%s 'unix:%s': file name too long", opt, a->path);
			goto fail;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail_errno;
		old = umask(0177); /* the socket is made 0600 */
		ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old);
		if (ret < 0 && errno == EADDRINUSE) {
			cli_error("%s 'unix:%s': exists: refused (remove it if it is a stale "
				  "console socket of yours)", opt, a->path);
			goto fail;
		}
		if (ret < 0 || listen(fd, 4) < 0)
			goto fail_errno;
		return fd;
	}
	if (cli__resolve(opt, a, passive, &res) < 0)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4) < 0)
		goto fail_errno;
	freeaddrinfo(res);
	return fd;
fail_errno:
	cli_error("%s '%s:%s': %s", opt, a->unix_socket ? "unix" : "tcp",
		  a->unix_socket ? a->path : a->host, strerror(errno));
fail:
	if (res)
		freeaddrinfo(res);
	if (fd >= 0)
		close(fd);
	if (*dirfd >= 0)
		close(*dirfd);
	*dirfd = -1;
	return -1;
}

int cli_con_connect(const char *opt, const struct cli_con_addr *a)
{
	struct addrinfo *res = NULL;
	const bool passive = false;
	int fd = -1;

	if (a->unix_socket) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			cli_error("%s 'unix:%s': %s", opt, a->path, strerror(errno));
			goto fail;
		}
		return fd;
	}
	if (cli__resolve(opt, a, passive, &res) < 0)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		cli_error("%s 'tcp:%s:%s': %s", opt, a->host, a->port, strerror(errno));
		goto fail;
	}
	freeaddrinfo(res);
	return fd;
fail:
	if (res)
		freeaddrinfo(res);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---- the relay ---------------------------------------------------------------------- */
struct pinned {
	uint8_t rec[CON_MAX_RECORD];
	size_t len;
};

struct relay {
	int lfd, cfd, pin, pout;
	/* program -> client: whole records not yet sent; q_sent bytes of the
	 * first one went to the current client */
	uint8_t *q;
	size_t q_len, q_sent;
	uint8_t out[2 * CON_MAX_RECORD]; /* program output not yet cut */
	size_t out_len;
	/* Stream header records no longer queued (pin()): sent first to every
	 * new client, so it knows the streams (and can bind its input to the
	 * program's) whatever was dropped. */
	struct pinned pinned[MAX_PINNED];
	size_t n_pinned;
	uint64_t dropped;      /* records dropped in the current overflow */
	/* client -> program */
	uint8_t in[2 * CON_MAX_RECORD];
	size_t in_len;
};

static volatile sig_atomic_t g_child;

static void cli__forward_signal(int sig)
{
	if (g_child > 0)
		kill((pid_t)g_child, sig);
}

static size_t rec_size(const uint8_t *rec)
{
	struct con_hdr h;

	return con_parse_hdr(rec, CON_HDR_SIZE, &h) ? 0 :
		CON_HDR_SIZE + (size_t)h.size + CON_TAG_SIZE;
}

/* The first two kept for good: the program's own stdout and stderr headers
 * (the runtime writes them first), whose stream attach binds its input to;
 * the newest of the others (streams of forked children) after them. */
static void pin(struct relay *r, const uint8_t *rec, size_t len)
{
	if (rec[4] != CON_T_HEADER)
		return;
	if (r->n_pinned == MAX_PINNED) {
		memmove(&r->pinned[2], &r->pinned[3], (MAX_PINNED - 3) * sizeof(r->pinned[0]));
		r->n_pinned--;
	}
	memcpy(r->pinned[r->n_pinned].rec, rec, len);
	r->pinned[r->n_pinned++].len = len;
}

/* Drop the oldest record no client has started to receive. */
static void drop_oldest(struct relay *r)
{
	size_t at = 0, n;

	if (r->q_sent)
		at = rec_size(r->q);
	if (at >= r->q_len)
		return;
	n = rec_size(r->q + at);
	pin(r, r->q + at, n);
	memmove(r->q + at, r->q + at + n, r->q_len - at - n);
	r->q_len -= n;
	if (!r->dropped++ && r->cfd < 0)
		fprintf(stderr, "kiln: console: no client attached and %d KiB of output kept: "
			"the oldest records are dropped (the next attach reports them missing)\n",
			CLI_CON_BUFFER / 1024);
}

static void enqueue(struct relay *r, const uint8_t *rec, size_t len)
{
	while (r->q_len + len > CLI_CON_BUFFER && r->q_len > (r->q_sent ? rec_size(r->q) : 0))
		drop_oldest(r);
	memcpy(r->q + r->q_len, rec, len);
	r->q_len += len;
}

/* Cut the program's output: records to the queue, other bytes to stderr. */
static void cut_output(struct relay *r, bool at_end)
{
	size_t pos = 0, n;
	int k;

	while ((k = con_frame(r->out + pos, r->out_len - pos, at_end, &n)) >= 0) {
		if (k == CON_FRAME_RECORD)
			enqueue(r, r->out + pos, n);
		else
			(void)!kiln_write_all(2, r->out + pos, n); /* stderr gone: no one to tell */
		pos += n;
	}
	memmove(r->out, r->out + pos, r->out_len - pos);
	r->out_len -= pos;
}

static void client_gone(struct relay *r, const char *why)
{
	size_t pos = 0, n;

	if (why)
		fprintf(stderr, "kiln: console: client detached: %s\n", why);
	close(r->cfd);
	r->cfd = -1;
	/* Its whole records still go to the program; a record it cut short
	 * does not. The record it was receiving goes again to the next one. */
	while (con_frame(r->in + pos, r->in_len - pos, false, &n) == CON_FRAME_RECORD)
		pos += n;
	r->in_len = pos;
	r->q_sent = 0;
}

/* Send queued records to the client as far as it takes them. */
static void flush_client(struct relay *r)
{
	while (r->cfd >= 0 && r->q_sent < r->q_len) {
		ssize_t n = send(r->cfd, r->q + r->q_sent, r->q_len - r->q_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_gone(r, strerror(errno));
			return;
		}
		r->q_sent += (size_t)n;
		/* Whole records sent leave the queue (headers stay pinned). */
		for (size_t len; r->q_len && (len = rec_size(r->q)) <= r->q_sent;) {
			pin(r, r->q, len);
			memmove(r->q, r->q + len, r->q_len - len);
			r->q_len -= len;
			r->q_sent -= len;
		}
	}
}

static void accept_client(struct relay *r)
{
	int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (r->cfd >= 0) {
		send(fd, CON_HELLO_BUSY, strlen(CON_HELLO_BUSY), MSG_NOSIGNAL);
		fprintf(stderr, "kiln: console: a second client was refused (one at a time)\n");
		close(fd);
		return;
	}
	/* The greeting and the pinned headers fit in a new socket's buffer. */
	if (send(fd, CON_HELLO_OK, strlen(CON_HELLO_OK), MSG_NOSIGNAL) < 0) {
		close(fd);
		return;
	}
	for (size_t i = 0; i < r->n_pinned; i++)
		if (send(fd, r->pinned[i].rec, r->pinned[i].len, MSG_NOSIGNAL) !=
		    (ssize_t)r->pinned[i].len) {
			close(fd);
			return;
		}
	if (r->dropped)
		fprintf(stderr, "kiln: console: client attached; %llu records were dropped "
			"while none was\n", (unsigned long long)r->dropped);
	else
		fprintf(stderr, "kiln: console: client attached\n");
	r->dropped = 0;
	r->cfd = fd;
	r->in_len = 0;
}

/* Client -> program: whole records, one write each. */
static void feed_program(struct relay *r)
{
	size_t pos = 0, n;
	int k;

	while (r->pin >= 0 && (k = con_frame(r->in + pos, r->in_len - pos, false, &n)) >= 0) {
		ssize_t w;

		if (k != CON_FRAME_RECORD) {
			r->in_len = pos; /* keep what was whole before it */
			if (r->cfd >= 0)
				client_gone(r, "it sent bytes that are not console records");
			return;
		}
		w = write(r->pin, r->in + pos, n);
		if (w < 0 && errno == EAGAIN)
			break;
		if (w != (ssize_t)n) {
			/* The program closed its stdin: input goes nowhere. */
			close(r->pin);
			r->pin = -1;
			pos = r->in_len;
			break;
		}
		pos += n;
	}
	memmove(r->in, r->in + pos, r->in_len - pos);
	r->in_len -= pos;
}

static void relay_loop(struct relay *r)
{
	while (r->pout >= 0) {
		bool in_room = r->in_len < sizeof(r->in);
		struct pollfd pf[4] = {
			{ r->pout, r->out_len < sizeof(r->out) ? POLLIN : 0, 0 },
			{ r->lfd, POLLIN, 0 },
			{ r->cfd, (in_room ? POLLIN : 0) | (r->q_sent < r->q_len ? POLLOUT : 0), 0 },
			{ r->in_len && r->pin >= 0 ? r->pin : -1, POLLOUT, 0 },
		};
		ssize_t n;

		if (poll(pf, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents) {
			n = read(r->pout, r->out + r->out_len, sizeof(r->out) - r->out_len);
			if (n > 0) {
				r->out_len += (size_t)n;
				cut_output(r, false);
			} else if (n == 0 || errno != EINTR) {
				cut_output(r, true);
				close(r->pout);
				r->pout = -1;
			}
		}
		if (pf[1].revents)
			accept_client(r);
		if (r->cfd >= 0 && (pf[2].revents & (POLLHUP | POLLERR)) && !in_room) {
			/* Gone while its input waits for the program: what it sent
			 * and we did not read goes with it (poll would not wait). */
			client_gone(r, "it closed the connection");
		} else if (r->cfd >= 0 && (pf[2].revents & (POLLIN | POLLHUP | POLLERR)) &&
			   in_room) {
			n = recv(r->cfd, r->in + r->in_len, sizeof(r->in) - r->in_len, MSG_DONTWAIT);
			if (n > 0)
				r->in_len += (size_t)n;
			else if (n == 0)
				client_gone(r, "it closed the connection");
			else if (errno != EINTR && errno != EAGAIN)
				client_gone(r, strerror(errno));
		}
		if (r->in_len)
			feed_program(r);
		flush_client(r);
	}
}

/* The program's output ended: what is queued goes to the client, if any,
 * while it takes it (a few seconds at most, so a stalled client cannot hold
 * kiln run forever). */
static void relay_drain(struct relay *r)
{
	for (int idle = 0; r->cfd >= 0 && r->q_sent < r->q_len && idle < 50;) {
		struct pollfd pf = { r->cfd, POLLOUT, 0 };
		size_t before = r->q_sent + r->q_len;

		if (poll(&pf, 1, 100) <= 0) {
			idle++;
			continue;
		}
		flush_client(r);
		if (r->q_sent + r->q_len == before)
			idle++;
	}
	if (r->q_len > r->q_sent)
		fprintf(stderr, "kiln: console: the program's output ended with %zu bytes of "
			"records no client received\n", r->q_len - r->q_sent);
}

int cli_con_relay(int lfd, int dirfd, const struct cli_con_addr *a, int prog_in, int prog_out,
		  pid_t child)
{
	struct sigaction sa = { .sa_handler = cli__forward_signal };
	struct relay *r = calloc(1, sizeof(*r));
	int status = 0;

	g_child = child;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (r)
		r->q = malloc(CLI_CON_BUFFER);
	if (!r || !r->q) {
		cli_error("console relay: out of memory");
		if (r)
			free(r);
		close(prog_in);
		close(prog_out);
	} else {
		r->lfd = lfd;
		r->cfd = -1;
		r->pin = prog_in;
		r->pout = prog_out;
		fcntl(prog_in, F_SETFL, fcntl(prog_in, F_GETFL) | O_NONBLOCK);
		relay_loop(r);
		relay_drain(r);
		if (r->cfd >= 0)
			close(r->cfd);
		if (r->pin >= 0)
			close(r->pin);
		if (r->pout >= 0)
			close(r->pout);
		free(r->q);
		free(r);
	}
	close(lfd);
	if (dirfd >= 0) {
		const char *slash = strrchr(a->path, '/');

		unlinkat(dirfd, slash ? slash + 1 : a->path, 0);
		close(dirfd);
	}
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
