/* kiln-las server: one thread per connection (capped), a signalfd for a
 * graceful stop. Each connection: SO_PEERCRED identifies the peer, one request
 * line is read with a size limit and a deadline, the peer is measured from
 * /proc, and signed evidence (or {"error": ...}) is written back.
 *
 * Threads rather than a poll loop because measuring is blocking file I/O
 * (hashing python3 and its libraries takes milliseconds); the cap bounds the
 * damage slow or hostile clients can do, and the deadline frees their slots. */
#include "las/las.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "evidence/evidence.h"

#define LAS_WRITE_TIMEOUT_NS 2000000000ull

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

struct las_server {
	const struct las_config *cfg;
	uint8_t self_digest[32]; /* SHA-256 of /proc/self/exe, for static_exe */
	bool have_self;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned active;
	uint64_t served, refused;
};

struct las_conn {
	struct las_server *srv;
	int fd;
	uint64_t id;
};

static int proc_start_time(pid_t pid, unsigned long long *out)
{
	char buf[1024], *p;
	ssize_t n = kiln_read_proc(pid, "stat", buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	if (n == 0)
		return -EIO;
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -KILN_EFORMAT;
	p++;
	/* p is at the space before field 3 (state); walk to the one before
	 * field 22 (starttime). */
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -KILN_EFORMAT;
	}
	if (sscanf(p, " %llu", out) != 1)
		return -KILN_EFORMAT;
	return 0;
}

static bool pidfd_alive(int pidfd)
{
	return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
}

int las_request_parse(const char *line, struct las_request *req, const char **why)
{
	json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, NULL), *v, *flag;
	const char *s;
	int ret = -KILN_EFORMAT;

	memset(req, 0, sizeof(*req));
	if (!json_is_object(j)) {
		*why = "request is not a JSON object";
		goto out;
	}
	flag = json_object_get(j, "static_exe");
	if (json_object_size(j) != (flag ? 2u : 1u) || !(v = json_object_get(j, "report_data"))) {
		*why = "request must be {\"report_data\": \"<128 hex>\"} (with \"static_exe\": "
		       "true for a passed program)";
		goto out;
	}
	if (flag && !json_is_true(flag)) {
		*why = "static_exe must be true when present";
		goto out;
	}
	s = json_string_value(v);
	if (!s || json_string_length(v) != 128 || kiln_hex_decode(s, req->report_data, 64,
								     NULL) < 0) {
		*why = "report_data must be 128 hex digits";
		goto out;
	}
	for (size_t i = 0; i < 128; i++)
		if (s[i] >= 'A' && s[i] <= 'F') {
			*why = "report_data must be lowercase hex";
			goto out;
		}
	req->static_exe = flag != NULL;
	ret = 0;
out:
	if (ret)
		memset(req, 0, sizeof(*req));
	json_decref(j);
	return ret;
}

/* The supervisor will hold the program's secrets, so its own code must be this
 * kiln and nothing else: measured by the same rules as any peer (no memfd, no
 * anonymous code, no written code pages, no tracer), and every library it maps
 * one that this kiln-las maps itself -- an LD_PRELOAD into `kiln run` (which
 * re-executes itself without one) or a library planted for its loader is
 * refused. */
static int check_supervisor(const struct las_config *cfg, pid_t pid, bool sload,
			    const char **why, struct kiln_err *err)
{
	uint8_t wm[EV_WM_SIZE];
	char *peer = NULL, *self = NULL, *p;
	/* The refusal names the peer the operator started. */
	const char *who = sload ? "the static loader (kiln-sload)" : "the supervisor";
	int ret;

	/* kiln-sload's runtime is libkiln, left out by digest like any
	 * workload's: a libkiln of another build is a lib line, refused below. */
	ret = ev_workload_measure_cached(pid, sload ? cfg->runtime_digests : NULL,
					 sload ? cfg->n_runtime_digests : 0, cfg->cache, wm, &peer,
					 err);
	if (ret < 0) {
		kiln_err_prefix(err, "static_exe: %s: ", who);
		goto out;
	}
	ret = ev_workload_measure_cached(0, NULL, 0, cfg->cache, wm, &self, err);
	if (ret < 0) {
		kiln_err_prefix(err, "static_exe: measuring kiln-las itself: ");
		goto out;
	}
	for (p = strstr(peer, "\nlib "); p; p = strstr(p + 1, "\nlib ")) {
		char line[4 + 64 + 3];

		memcpy(line, p, sizeof(line) - 1);
		line[sizeof(line) - 1] = '\0';
		if (!strstr(self, line)) {
			ret = kiln_err_set(err, -KILN_EDENIED, "static_exe: %s maps a library that "
					   "kiln-las does not (sha256 %.64s): refused", who, p + 5);
			goto out;
		}
	}
	ret = 0;
out:
	if (ret < 0)
		*why = kiln_err_msg(err, ret);
	free(peer);
	free(self);
	return ret;
}

/* Static variant (docs/las.md): the peer passed the program it is about to
 * run and asks for that program's measurement. The LAS vouches for the pair
 * "this file, run by that supervisor" only when the supervisor is the same
 * kiln build as kiln-las itself, or the kiln-sload installed with it (the
 * static loader, with a libkiln kiln-las knows): that code is known to
 * measure, attest and then execveat() (kiln-sload: map) exactly the
 * descriptor it passed, with nothing else loaded into the program. supervised_by
 * is then the digest of that peer. Any other peer could pass one file and run another, and
 * the evidence would lie about what runs. The digest of /proc/PID/exe, like the
 * rest of host evidence, trusts the host kernel and root (docs/las.md). */
static int measure_static(struct las_server *srv, pid_t pid, int exe_fd,
			  struct las_statement *st, char sup_hex[65], char *exe, size_t exe_size,
			  char **manifest, const char **why, struct kiln_err *err)
{
	const struct las_config *cfg = srv->cfg;
	uint8_t peer[32];
	char link[64];
	ssize_t n;
	bool sload;
	int fd, ret;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	fd = open(link, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = "static_exe: cannot open the peer's executable";
		return -errno;
	}
	ret = ev_file_sha256_fd(fd, cfg->cache, peer);
	close(fd);
	if (ret < 0) {
		*why = "static_exe: cannot read the peer's executable";
		return ret;
	}
	/* The static loader (kiln-sload with libkiln) measures, attests and maps
	 * exactly the descriptor it passed, as the supervisor execs it. */
	sload = cfg->have_sload && memcmp(peer, cfg->sload_digest, sizeof(peer)) == 0;
	if (!sload && (!srv->have_self || memcmp(peer, srv->self_digest, sizeof(peer)) != 0)) {
		*why = "static_exe: the peer is not the kiln build of this kiln-las or its "
		       "kiln-sload (only they may pass a program)";
		return -KILN_EDENIED;
	}
	ret = check_supervisor(cfg, pid, sload, why, err);
	if (ret < 0)
		return ret;
	ret = ev_workload_measure_static_fd(exe_fd, cfg->cache, st->workload_measurement,
					    manifest, st->exe_sha256, err);
	if (ret < 0) {
		*why = kiln_err_msg(err, ret);
		return ret;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", exe_fd);
	n = readlink(link, exe, exe_size - 1);
	if (n < 0) {
		*why = "static_exe: cannot name the passed program";
		return -errno;
	}
	exe[n] = '\0';
	kiln_hex_encode(peer, sizeof(peer), sup_hex);
	st->supervised_by = sup_hex;
	return 0;
}

static void answer_error(int fd, const char *msg, uint64_t deadline)
{
	json_t *e = json_pack("{s:s}", "error", msg);
	char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;

	if (s) {
		size_t n = strlen(s);

		s[n] = '\n';
		(void)kiln_send_all_deadline(fd, s, n + 1, deadline);
		s[n] = '\0';
	}
	free(s);
	json_decref(e);
}

static void handle(struct las_conn *c)
{
	const struct las_config *cfg = c->srv->cfg;
	uint64_t t0 = kiln_now_ns();
	uint64_t deadline = t0 + (uint64_t)(cfg->timeout_ms > 0 ? cfg->timeout_ms
							       : LAS_REQUEST_TIMEOUT_MS) *
				      1000000;
	struct ucred cred = { .pid = 0 };
	socklen_t len = sizeof(cred);
	unsigned long long start1 = 0, start2 = 0;
	char exe[4096], link[64], wm_hex[97], hex[65];
	char *line = NULL, *manifest = NULL, *ev = NULL, *p;
	struct las_statement st = { 0 };
	struct kiln_err err = { 0 };
	const char *why = NULL;
	size_t ev_size = 0, line_size = 0;
	ssize_t n;
	struct las_request req;
	char sup_hex[65];
	int pidfd = -1, exe_fd = -1, ret;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0) {
		why = "cannot identify the peer (SO_PEERCRED)";
		goto refuse;
	}
	/* A pidfd pins the connecting process: if it is still alive after the
	 * measurement, /proc/PID named that process all along (a pid is reused only
	 * after its process is reaped). SO_PEERPIDFD (Linux 6.5) takes it at
	 * connect() time; older kernels fall back to pidfd_open now. */
	len = sizeof(pidfd);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
		pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
	/* A descriptor passed with the first byte (the static_exe variant) is
	 * taken by peeking; the line itself is then read as usual (the kernel
	 * drops the descriptor from that plain read). */
	{
		char first;
		ssize_t got = kiln_recv_fd_deadline(c->fd, &first, 1, MSG_PEEK, deadline, &exe_fd);

		ret = got < 0 ? (int)got : kiln_recv_line_deadline(c->fd, LAS_REQUEST_MAX,
								   deadline, &line, &line_size);
	}
	if (ret == -EPROTO) {
		why = "one file descriptor at most, with the first byte of the request";
		goto refuse;
	}
	if (ret < 0) {
		why = ret == -ETIMEDOUT ? "request timed out"
		      : ret == -EMSGSIZE ? "request too large"
		      : ret == -KILN_ETRAILING ? "one request per connection"
		      : "connection closed before a complete request";
		goto refuse;
	}
	if (las_request_parse(line, &req, &why) < 0)
		goto refuse;
	memcpy(st.report_data, req.report_data, sizeof(st.report_data));
	if (req.static_exe != (exe_fd >= 0)) {
		if (req.static_exe)
			why = "static_exe needs the program's file descriptor (SCM_RIGHTS)";
		else
			why = "a file descriptor is accepted only with \"static_exe\": true";
		goto refuse;
	}

	if (proc_start_time(cred.pid, &start1) < 0) {
		why = "peer exited";
		goto refuse;
	}
	if (req.static_exe) {
		if (measure_static(c->srv, cred.pid, exe_fd, &st, sup_hex, exe, sizeof(exe),
				   &manifest, &why, &err) < 0)
			goto refuse;
		n = (ssize_t)strlen(exe);
	} else {
		ret = ev_workload_measure_cached(cred.pid, cfg->runtime_digests,
						 cfg->n_runtime_digests, cfg->cache,
						 st.workload_measurement, &manifest, &err);
		if (ret < 0) {
			why = kiln_err_msg(&err, ret);
			goto refuse;
		}
		snprintf(link, sizeof(link), "/proc/%d/exe", (int)cred.pid);
		n = readlink(link, exe, sizeof(exe) - 1);
	}
	ret = proc_start_time(cred.pid, &start2);
	if (ret < 0 || start1 != start2 || n < 0 || (pidfd >= 0 && !pidfd_alive(pidfd))) {
		kiln_log(KILN_LOG_DEBUG, "peer check failed", "conn=%llu stat=%d start=%llu/%llu "
			 "readlink=%zd pidfd=%d alive=%d", (unsigned long long)c->id, ret, start1,
			 start2, n, pidfd, pidfd >= 0 ? (int)pidfd_alive(pidfd) : -1);
		why = "peer exited or changed during measurement";
		goto refuse;
	}
	exe[n] = '\0';
	if (req.static_exe)
		goto sign;
	/* The manifest's exe line is "exe <64 hex>"; its digest goes in exe_sha256. */
	p = strstr(manifest, "\nexe ");
	if (!p || strlen(p) < 5 + 64) {
		why = "internal error: manifest without exe line";
		goto refuse;
	}
	memcpy(hex, p + 5, 64);
	hex[64] = '\0';
	if (kiln_hex_decode(hex, st.exe_sha256, 32, NULL) < 0) {
		why = "internal error: bad exe line";
		goto refuse;
	}
sign:
	st.pid = cred.pid;
	st.uid = cred.uid;
	st.exe = exe;
	st.time = time(NULL);
	ret = las_evidence_make(cfg->id, &st, &ev, &ev_size, &err);
	if (ret < 0) {
		why = kiln_err_msg(&err, ret);
		goto refuse;
	}
	ev[ev_size] = '\n'; /* replaces the NUL; the buffer is freed, not printed */
	ret = kiln_send_all_deadline(c->fd, ev, ev_size + 1,
				     kiln_now_ns() + LAS_WRITE_TIMEOUT_NS);
	kiln_hex_encode(st.workload_measurement, 48, wm_hex);
	kiln_log(ret < 0 ? KILN_LOG_WARN : KILN_LOG_INFO,
		 ret < 0 ? "evidence not delivered" : "evidence issued",
		 "conn=%llu pid=%d uid=%u exe=\"%s\" measurement=%s%s%s ms=%.1f",
		 (unsigned long long)c->id, (int)cred.pid, (unsigned)cred.uid, exe, wm_hex,
		 st.supervised_by ? " supervised_by=" : "",
		 st.supervised_by ? st.supervised_by : "", (double)(kiln_now_ns() - t0) / 1e6);
	pthread_mutex_lock(&c->srv->lock);
	c->srv->served++;
	pthread_mutex_unlock(&c->srv->lock);
	goto out;
refuse:
	kiln_log(KILN_LOG_WARN, "request refused", "conn=%llu pid=%d uid=%u reason=\"%s\"",
		 (unsigned long long)c->id, (int)cred.pid, (unsigned)cred.uid, why);
	/* The answer gets its own short budget: the read deadline may be spent. */
	answer_error(c->fd, why, kiln_now_ns() + LAS_WRITE_TIMEOUT_NS);
	pthread_mutex_lock(&c->srv->lock);
	c->srv->refused++;
	pthread_mutex_unlock(&c->srv->lock);
out:
	if (pidfd >= 0)
		close(pidfd);
	if (exe_fd >= 0)
		close(exe_fd);
	free(line);
	free(ev);
	free(manifest);
}

/* Closing a unix socket with unread input resets the connection and the peer
 * may lose our answer; so read (and drop) what the peer still sends, within
 * bounds, after our half-close. */
static void linger_close(int fd)
{
	uint64_t deadline = kiln_now_ns() + 1000000000ull;
	size_t total = 0;
	char buf[4096];

	shutdown(fd, SHUT_WR);
	while (total < (1u << 20)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = kiln_now_ns();
		ssize_t n;

		if (now >= deadline ||
		    poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			break;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
			break;
		if (n > 0)
			total += (size_t)n;
	}
	close(fd);
}

static void *conn_thread(void *arg)
{
	struct las_conn *c = arg;
	struct las_server *srv = c->srv;

	handle(c);
	linger_close(c->fd);
	free(c);
	/* Free this thread's OpenSSL state now: the thread is detached and the
	 * process may exit right after the count below drops to zero, before
	 * OpenSSL's thread-exit handler would have run. */
	OPENSSL_thread_stop();
	pthread_mutex_lock(&srv->lock);
	srv->active--;
	pthread_cond_signal(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* Bind the socket, replacing a stale socket file but never a live server or a
 * file that is not a socket. */
static int listen_socket(const char *path, struct kiln_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char *dir = NULL, *slash;
	struct stat st;
	int fd = -1, ret;

	if (strlen(path) >= sizeof(addr.sun_path))
		return kiln_err_set(err, -ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(addr.sun_path, path);
	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		ret = kiln_mkdir_p(dir, 0755);
		if (ret < 0) {
			kiln_err_set(err, ret, "cannot create directory %s: %s", dir,
				     kiln_strerror(ret));
			goto fail;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = kiln_err_set(err, -errno, "socket: %s", kiln_strerror(errno));
		goto fail;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			ret = kiln_err_set(err, -EEXIST, "%s exists and is not a socket", path);
			goto fail;
		}
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			ret = kiln_err_set(err, -EADDRINUSE, "another kiln-las is serving on %s",
					   path);
			goto fail;
		}
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = kiln_err_set(err, -errno, "cannot bind %s: %s", path, kiln_strerror(errno));
		goto fail;
	}
	/* Every local process may ask to be measured; the peer credentials, not
	 * the file mode, say who asked. */
	if (chmod(addr.sun_path, 0666) < 0 || listen(fd, 128) < 0) {
		ret = -errno;
		unlink(addr.sun_path);
		kiln_err_set(err, ret, "cannot listen on %s: %s", addr.sun_path,
			     kiln_strerror(ret));
		goto fail;
	}
	free(dir);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

int las_serve(const struct las_config *cfg, struct kiln_err *err)
{
	const char *path = cfg->socket_path ? cfg->socket_path : EV_LAS_DEFAULT_SOCKET;
	unsigned max_clients = cfg->max_clients ? cfg->max_clients : LAS_DEFAULT_MAX_CLIENTS;
	struct las_server srv = { .cfg = cfg };
	pthread_attr_t attr;
	sigset_t mask, old;
	uint64_t next_id = 0;
	int lfd = -1, sfd = -1, ret = 0;
	bool stop = false;

	pthread_mutex_init(&srv.lock, NULL);
	pthread_cond_init(&srv.idle, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	/* Blocked before any thread starts, so every thread inherits the mask and
	 * only the signalfd sees the signals. */
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		ret = kiln_err_set(err, -errno, "signalfd: %s", kiln_strerror(errno));
		goto out;
	}
	{
		int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

		srv.have_self = self >= 0 && ev_file_sha256_fd(self, NULL, srv.self_digest) == 0;
		if (self >= 0)
			close(self);
	}
	lfd = listen_socket(path, err);
	if (lfd < 0) {
		ret = lfd;
		goto out;
	}
	kiln_log(KILN_LOG_INFO, "kiln-las serving", "socket=%s las_id=%s max_clients=%u "
		 "runtime_libs=%zu version=%s", path, las_identity_id(cfg->id), max_clients,
		 cfg->n_runtime_digests, KILN_VERSION);

	while (!stop) {
		struct pollfd fds[2] = { { .fd = lfd, .events = POLLIN },
					 { .fd = sfd, .events = POLLIN } };
		struct las_conn *c;
		pthread_t t;
		int cfd;

		unsigned active;

		/* At the cap, new connections wait in the listen backlog (kernel
		 * back-pressure) until a slot frees; slow clients free theirs at their
		 * deadline at the latest. */
		pthread_mutex_lock(&srv.lock);
		active = srv.active;
		pthread_mutex_unlock(&srv.lock);
		if (poll(active >= max_clients ? fds + 1 : fds, active >= max_clients ? 1 : 2,
			 active >= max_clients ? 20 : -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = kiln_err_set(err, -errno, "poll: %s", kiln_strerror(errno));
			break;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				kiln_log(KILN_LOG_INFO, "stopping", "signal=%u", si.ssi_signo);
			stop = true;
			continue;
		}
		if (!(fds[0].revents & POLLIN))
			continue;
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				kiln_log(KILN_LOG_WARN, "accept failed", "error=\"%s\"",
					 kiln_strerror(errno));
			/* EMFILE and friends: back off instead of spinning. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				usleep(100000);
			continue;
		}
		next_id++;
		pthread_mutex_lock(&srv.lock);
		srv.active++;
		pthread_mutex_unlock(&srv.lock);
		c = calloc(1, sizeof(*c));
		if (c) {
			c->srv = &srv;
			c->fd = cfd;
			c->id = next_id;
		}
		if (!c || pthread_create(&t, &attr, conn_thread, c) != 0) {
			kiln_log(KILN_LOG_ERROR, "cannot start a connection thread", "conn=%llu",
				 (unsigned long long)next_id);
			free(c);
			close(cfd);
			pthread_mutex_lock(&srv.lock);
			srv.active--;
			pthread_mutex_unlock(&srv.lock);
		}
	}

	/* Graceful stop: no new connections; running requests end by their
	 * deadline at the latest. */
	close(lfd);
	lfd = -1;
	unlink(path);
	pthread_mutex_lock(&srv.lock);
	while (srv.active > 0)
		pthread_cond_wait(&srv.idle, &srv.lock);
	kiln_log(KILN_LOG_INFO, "kiln-las stopped", "served=%llu refused=%llu",
		 (unsigned long long)srv.served, (unsigned long long)srv.refused);
	pthread_mutex_unlock(&srv.lock);
out:
	if (lfd >= 0)
		close(lfd);
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	pthread_cond_destroy(&srv.idle);
	pthread_mutex_destroy(&srv.lock);
	return ret;
}
