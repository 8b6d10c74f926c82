/* kiln runtime, file shield v2: the volume server process (server.h).
 *
 * Start: rt__srv_spawn forks twice (the middle process calls setsid and
 * exits), so the server is nobody's child and in its own session: the
 * program's waitpid(-1) and its process group's signals never meet it. The
 * server keeps only its log fd, binds the volume's abstract socket name
 * (EADDRINUSE: another server won the race), opens the volume (the opener
 * takes its flock, waiting for a previous server's last commit) and reports
 * "ok" (or the error) to the starter through a pipe.
 *
 * Loop: epoll over the listening socket and the clients. A new connection
 * gets HELLO and must prove the key within 10 s (auth.c); a failure is logged
 * once per reason and the socket closed. Requests are answered in order;
 * FSYNC and SYNCALL wait for the commit that follows the current batch of
 * requests, so the fsyncs of many processes share one pf commit. When the
 * last client disconnects the server commits everything and exits. A client
 * that dies only drops its holds; a server that dies is noticed by the
 * clients through the robust futex in the volume segment. */
#include "runtime/shield/srv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define AUTH_TIMEOUT_NS (10ull * 1000000000)
#define MAX_UNAUTHED 64

struct srv g_srv;
static struct sconn *g_conns;
static size_t g_nclients, g_nunauthed;
static bool g_had_client;
static struct rt_auth_keys g_keys;
static unsigned g_logged; /* refusal reasons already logged (bit per reason) */

/* DIR/.kiln/server.log (mode 0600, restarted past 1 MiB): lines about the
 * server itself (refused peers, counters). Never a volume path or data: the
 * host reads this file. What a program must know goes in its replies. */
static int open_log(const char *dir)
{
	char path[4200];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/.kiln/server.log", dir);
	/* Never through a planted symlink, never blocked on a planted FIFO
	 * (ENXIO: a FIFO without a reader). */
	fd = kiln_open_own(AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd == -ENXIO)
		return -KILN_EUNSAFE;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > (1 << 20))
		ftruncate(fd, 0);
	return fd;
}

/* DIR/.kiln/server: who serves the volume, written once it does (for
 * operators, and tests that crash it). Opened like the log. */
static int open_info(const char *path)
{
	int fd = kiln_open_own(AT_FDCWD, path, O_WRONLY | O_CREAT, 0600);

	return fd == -ENXIO ? -KILN_EUNSAFE : fd;
}

void srv_log(const char *fmt, ...)
{
	char line[RT_ERRMSG_MAX + 64];
	va_list ap;
	int n;

	if (g_srv.log_fd < 0)
		return;
	struct timespec now;
	struct tm tm;
	int h;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	h = (int)strftime(line, 32, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	h += snprintf(line + h, sizeof(line) - (size_t)h, "pid %d: ", (int)getpid());
	va_start(ap, fmt);
	n = vsnprintf(line + h, sizeof(line) - (size_t)h - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = h + (n < (int)sizeof(line) - h - 1 ? n : (int)sizeof(line) - h - 2);
	line[n++] = '\n';
	if (write(g_srv.log_fd, line, (size_t)n) < 0)
		return;
}

int srv_fail(int code, struct kiln_err *err)
{
	snprintf(g_srv.errmsg, sizeof(g_srv.errmsg), "%s", kiln_err_msg(err, code));
	/* Integrity failures are I/O errors for the program. */
	return code <= -KILN_EBASE ? -EIO : code;
}

static void refuse_once(unsigned reason, const struct sconn *c, const char *what)
{
	if (g_logged & (1u << reason))
		return;
	g_logged |= 1u << reason;
	srv_log("refused a connection (pid %d, uid %u): %s", (int)c->pid, (unsigned)c->uid,
		what);
}

/* ---- clients and connections ------------------------------------------------ */
static struct sclient *g_clients;

/* For clients leaving (rt__srv_wait_closed): how many connections we hold.
 * A new one is counted here before it is in `accepts`. */
static void publish_conns(void)
{
	atomic_store(&g_srv.vseg->conns, (uint32_t)(g_nclients + g_nunauthed));
}

/* A process gone (its last connection closed): its holds go, and what it
 * mapped writable is written back with the next commit. */
static void client_gone(struct sclient *cl)
{
	struct sclient **pp;

	sf_wstream_drop(cl); /* killed between its reservation and its tags */

	for (size_t i = 0; i < cl->nholds; i++) {
		struct shold *h = &cl->holds[i];

		while (h->maps) {
			unsigned fl = (h->wmaps ? RT_MAP_WRITE : 0) | (h->wholes ? RT_MAP_WHOLE : 0);

			h->maps--;
			h->wmaps -= h->wmaps > 0;
			h->wholes -= h->wholes > 0;
			sf_unmap(h->f, fl);
		}
		while (h->holds) {
			h->holds--;
			sf_unhold(h->f);
		}
	}
	for (pp = &g_clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	free(cl->holds);
	free(cl);
}

static void conn_close(struct sconn *c)
{
	struct sconn **pp;

	for (pp = &g_conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->authed) {
		g_nclients--;
		if (--c->cl->nconns == 0)
			client_gone(c->cl);
	} else {
		g_nunauthed--;
		if (c->cl && !c->cl->nconns)
			client_gone(c->cl);
	}
	publish_conns();
	close(c->fd);
	free(c);
}

static struct sclient *client_of(pid_t pid)
{
	struct sclient *cl;

	for (cl = g_clients; cl; cl = cl->next)
		if (cl->pid == pid)
			return cl;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	cl->pid = pid;
	cl->next = g_clients;
	g_clients = cl;
	return cl;
}

static void conn_new(int fd)
{
	struct sconn *c = calloc(1, sizeof(*c));
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uint8_t out[RT_MSG_HDR + 128];
	struct rt_msg m = { .op = RT_OP_HELLO, .flags = RT_SHIELD_VERSION };
	ssize_t n;

	if (!c || g_nunauthed >= MAX_UNAUTHED || kc_random(c->nonce, sizeof(c->nonce))) {
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->pid = cred.pid;
		c->uid = cred.uid;
	}
	c->deadline_ns = kiln_now_ns() + AUTH_TIMEOUT_NS;
	c->next = g_conns;
	g_conns = c;
	g_nunauthed++;
	publish_conns();
	atomic_fetch_add(&g_srv.vseg->accepts, 1);
	m.nonce = c->nonce;
	n = rt__msg_encode(&m, out, sizeof(out));
	if (n < 0 || rt__pkt_send(fd, out, (size_t)n, NULL, 0, true))
		conn_close(c);
}

static void conn_auth(struct sconn *c, const uint8_t *buf, ssize_t n)
{
	uint8_t want[RT_MAC_SIZE], mine[RT_MAC_SIZE];
	struct rt_msg m;
	int fd = g_srv.vsegfd;

	if (rt__msg_parse(buf, (size_t)n, &m) || m.op != RT_OP_AUTH) {
		refuse_once(0, c, "not a kiln client (malformed handshake)");
		conn_close(c);
		return;
	}
	if (m.flags != RT_SHIELD_VERSION) {
		refuse_once(1, c, "another version of kiln");
		conn_close(c);
		return;
	}
	if (rt__auth_client_mac(&g_keys, c->nonce, m.nonce, m.pid, want) ||
	    !kiln_ct_equal(want, m.mac, RT_MAC_SIZE)) {
		refuse_once(2, c, "it does not hold the volume key");
		conn_close(c);
		return;
	}
	if ((pid_t)m.pid != c->pid) {
		refuse_once(3, c, "its proof names another process");
		conn_close(c);
		return;
	}
	c->cl = client_of(c->pid);
	if (!c->cl || rt__auth_server_mac(&g_keys, m.nonce, c->nonce, mine) ||
	    rt__reply_send(c->fd, 0, mine, sizeof(mine), &fd, 1)) {
		conn_close(c);
		return;
	}
	c->cl->nconns++;
	c->authed = true;
	g_nunauthed--;
	g_nclients++;
	g_had_client = true;
}

/* ---- commit --------------------------------------------------------------------- */
static bool g_answering; /* commit() is in pf_volume_flush: on_durable may answer */

/* Answer the programs waiting for the commit with ret. A socket that fails
 * is closed -- after the commit when pf called us (its lock is held). */
static void answer(int ret, bool in_pf)
{
	for (struct sconn *c = g_conns, *next; c; c = next) {
		next = c->next;
		if (!c->waiting)
			continue;
		g_srv.n_waiters++;
		c->waiting = false;
		if (rt__reply_send(c->fd, ret, g_srv.errmsg, ret ? strlen(g_srv.errmsg) : 0,
				   NULL, 0)) {
			if (in_pf)
				c->broken = true;
			else
				conn_close(c);
		}
	}
}

/* pf_volume_on_durable: a record's commit point and its version's commit
 * are behind; every waiter's file was written back before (commit()), so its
 * fsync is answered now, before the slots go in place. */
static void on_durable(void *arg)
{
	(void)arg;
	if (g_answering)
		answer(0, true);
}

static void commit(void)
{
	struct kiln_err err = { 0 };
	uint64_t t0 = kiln_now_ns();
	int ret = 0, fret = 0;

	/* A program is writing slots past a file's end (RT_OP_WSTREAM): its
	 * tags come next; a commit now would cut them. A lease between two
	 * windows goes. */
	for (struct sfile *f = g_srv.files; f && g_srv.reserved; f = f->next)
		sf_wstream_revoke(f);
	if (g_srv.reserved) {
		g_srv.commit_busy = true;
		return;
	}
	for (struct sfile *f = g_srv.files; f; f = f->next) {
		int r;

		if (!g_srv.commit_all && !f->want_commit)
			continue;
		r = sf_writeback(f);
		if (r == -EAGAIN) {
			/* An appender holds the file (maybe waiting for us): serve
			 * the requests first, commit right after. */
			g_srv.commit_busy = true;
			return;
		}
		if (r && !fret)
			fret = r;
	}
	g_srv.commit_busy = false;
	if (!fret) {
		g_answering = true;
		ret = pf_volume_flush(g_srv.vol, &err);
		g_answering = false;
		if (ret)
			ret = srv_fail(ret, &err);
	} else {
		ret = fret;
	}
	if (ret)
		srv_log("a commit failed (the waiting programs were told why)");
	for (struct sfile *f = g_srv.files; f; f = f->next)
		f->want_commit = false;
	g_srv.commit_all = g_srv.need_commit = false;
	g_srv.n_commits++;
	g_srv.commit_ns += kiln_now_ns() - t0;
	answer(ret, false);
	for (struct sconn *c = g_conns, *next; c; c = next) {
		next = c->next;
		if (c->broken)
			conn_close(c);
	}
	g_srv.errmsg[0] = '\0';
	sf_balance(false);
}

static void conn_readable(struct sconn *c)
{
	static uint8_t buf[RT_MSG_MAX];
	struct rt_msg m;
	int fds[2], nfds = 0, ret;
	ssize_t n = rt__pkt_recv(c->fd, buf, sizeof(buf), fds, &nfds, true);

	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (n == -EAGAIN)
		return;
	if (n <= 0 || nfds) {
		conn_close(c);
		return;
	}
	if (!c->authed) {
		conn_auth(c, buf, n);
		return;
	}
	if (c->waiting || rt__msg_parse(buf, (size_t)n, &m) || m.op <= RT_OP_AUTH) {
		/* One request at a time, well formed: anything else is a broken
		 * or hostile client, and it goes. */
		refuse_once(4, c, "malformed request after the handshake");
		conn_close(c);
		return;
	}
	ret = srv_serve(c, &m);
	if (ret < 0 || ret > 0)
		ret = srv_reply(c, ret < 0 ? ret : -EPROTO);
	if (ret)
		conn_close(c);
}

/* ---- the process ------------------------------------------------------------- */
struct k_robust_head {
	void *next;
	long futex_offset;
	void *pending;
};
static struct k_robust_head g_robust;

static int make_vseg(uint64_t cache_limit)
{
	size_t size = 4096;
	struct rt_vseg *v;

	g_srv.vsegfd = memfd_create("kiln-volume", MFD_CLOEXEC);
	if (g_srv.vsegfd < 0 || ftruncate(g_srv.vsegfd, (off_t)size) < 0)
		return -errno;
	v = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g_srv.vsegfd, 0);
	if (v == MAP_FAILED)
		return -errno;
	v->magic = RT_VSEG_MAGIC;
	v->version = RT_SHIELD_VERSION;
	v->chunk_size = g_srv.cs;
	v->cache_limit = cache_limit;
	v->dirty_background = cache_limit / 4;
	v->dirty_limit = cache_limit / 2;
	g_srv.vseg = v;
	/* The kernel marks `server` FUTEX_OWNER_DIED if this thread dies. */
	g_robust.next = &v->robust;
	v->robust.next = (void *)&g_robust;
	g_robust.futex_offset = (long)offsetof(struct rt_vseg, server) -
				(long)offsetof(struct rt_vseg, robust);
	if (syscall(SYS_set_robust_list, &g_robust, sizeof(g_robust)) < 0)
		return -errno;
	atomic_store(&v->server, (uint32_t)syscall(SYS_gettid));
	return 0;
}

int rt__srv_sock_name(const char *dir, const struct rt_auth_keys *k,
		      char name[static RT_SOCK_NAME_MAX])
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/.kiln", dir);
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -KILN_EUNSAFE; /* a planted symlink would name another volume */
	rt__auth_sock_name(k, (uint64_t)st.st_dev, (uint64_t)st.st_ino, name);
	return 0;
}

static int sock_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n + 1 > sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path + 1, name, n); /* abstract: leading NUL */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return 0;
}

static void say_ready(int fd, const char *msg)
{
	if (fd >= 0 && write(fd, msg, strlen(msg)) < 0)
		return;
}

static void loop(int lfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	uint64_t start = kiln_now_ns();

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		return;
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, g_srv.commit_busy ? 1 : 1000);
		uint64_t now = kiln_now_ns();

		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;

			if (!c) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				struct epoll_event cev = { .events = EPOLLIN };

				if (fd < 0)
					continue;
				conn_new(fd);
				if (g_conns && g_conns->fd == fd) {
					cev.data.ptr = g_conns;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0)
						conn_close(g_conns);
				}
				continue;
			}
			/* The connection may have gone in this batch already. */
			for (struct sconn *k = g_conns; k; k = k->next) {
				if (k == c) {
					conn_readable(c);
					break;
				}
			}
		}
		if (g_srv.need_commit)
			commit();
		sf_reap(false);
		sf_buf_wipe();
		for (struct sconn *c = g_conns, *next; c; c = next) {
			next = c->next;
			if (!c->authed && now > c->deadline_ns) {
				refuse_once(5, c, "no proof of the key in time");
				conn_close(c);
			}
		}
		/* The last client has gone (or none came): finish. */
		if (!g_nclients && !g_nunauthed &&
		    (g_had_client || now - start > AUTH_TIMEOUT_NS))
			break;
	}
	close(ep);
}

/* KILN_SHIELD_STATS: the requests by operation (docs/fs.md counts them). */
static void log_ops(void)
{
	static const char *const names[RT_OP_MAX_] = {
		[RT_OP_OPEN] = "OPEN", [RT_OP_ATTACH] = "ATTACH", [RT_OP_RELEASE] = "RELEASE",
		[RT_OP_FILL] = "FILL", [RT_OP_FSYNC] = "FSYNC", [RT_OP_SYNCALL] = "SYNCALL",
		[RT_OP_TRUNCATE] = "TRUNCATE", [RT_OP_STAT] = "STAT", [RT_OP_UNLINK] = "UNLINK",
		[RT_OP_RENAME] = "RENAME", [RT_OP_READDIR] = "READDIR", [RT_OP_GROW] = "GROW",
		[RT_OP_WRITEBACK] = "WRITEBACK", [RT_OP_STREAM] = "STREAM", [RT_OP_WSTREAM] = "WSTREAM",
		[RT_OP_CHOWN] = "CHOWN", [RT_OP_CHMOD] = "CHMOD", [RT_OP_UTIMES] = "UTIMES",
	};
	char line[1024];
	size_t used = 0;

	for (int op = 0; op < RT_OP_MAX_ && used < sizeof(line) - 32; op++) {
		if (!g_srv.n_op[op])
			continue;
		if (names[op])
			used += (size_t)snprintf(line + used, sizeof(line) - used, " %s=%llu",
						 names[op], (unsigned long long)g_srv.n_op[op]);
		else
			used += (size_t)snprintf(line + used, sizeof(line) - used, " op%d=%llu",
						 op, (unsigned long long)g_srv.n_op[op]);
	}
	srv_log("requests by operation:%s", used ? line : " none");
}


static int server_main(const struct rt_srv_config *cfg, int ready)
{
	struct kiln_err err = { 0 };
	struct sockaddr_un sa;
	socklen_t salen;
	char name[RT_SOCK_NAME_MAX], infopath[4200];
	struct rlimit rl;
	sigset_t all;
	int lfd, ret, null, info;

	if (cfg->enter)
		cfg->enter();
	/* Several fds per open file (memfd, state, pf's backing files): as
	 * many as the hard limit allows, whatever the program had. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		g_srv.max_files = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 :
				  (size_t)(rl.rlim_cur > 256 ? (rl.rlim_cur - 64) / 6 : 32);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, 0);
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_NAME, "kiln-volume");
	/* Keep the pipe to the starter (3), nothing else of the program that
	 * started us: not even its stderr (a shell reading it to its end,
	 * `$(kiln run ...)`, would wait for the server's exit). */
	ready = fcntl(ready, F_DUPFD_CLOEXEC, 10);
	if (ready < 0 || dup2(ready, 3) < 0)
		return 1;
	ready = 3;
	syscall(SYS_close_range, 4, ~0u, 0);
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 3)
			close(null);
	}
	fcntl(ready, F_SETFD, FD_CLOEXEC);
	/* The server's own files in .kiln: a planted symlink, FIFO or directory
	 * at their names is refused (the workload does not start). Any other
	 * failure (a read-only store) only costs the log and the info line. */
	g_srv.log_fd = open_log(cfg->dir);
	snprintf(infopath, sizeof(infopath), "%s/.kiln/server", cfg->dir);
	info = open_info(infopath);
	if (g_srv.log_fd == -KILN_EUNSAFE || info == -KILN_EUNSAFE) {
		dprintf(ready, "volume %s: %s/.kiln/%s: %s\n", cfg->dir, cfg->dir,
			g_srv.log_fd == -KILN_EUNSAFE ? "server.log" : "server",
			kiln_strerror(-KILN_EUNSAFE));
		return 1;
	}
	g_srv.stats = getenv("KILN_SHIELD_STATS") && strcmp(getenv("KILN_SHIELD_STATS"), "1") == 0;
	if (chdir("/") < 0)
		return 1;
	ret = rt__auth_derive(cfg->key, &g_keys);
	if (!ret)
		ret = rt__srv_sock_name(cfg->dir, &g_keys, name);
	if (!ret)
		ret = sock_addr(name, &sa, &salen);
	if (ret) {
		dprintf(ready, "volume %s: %s\n", cfg->dir, kiln_strerror(ret));
		return 1;
	}
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno == EADDRINUSE) {
			say_ready(ready, "exists\n");
			return 0;
		}
		dprintf(ready, "volume %s: socket: %s\n", cfg->dir, strerror(errno));
		return 1;
	}
	if (listen(lfd, 128) < 0) {
		dprintf(ready, "volume %s: listen: %s\n", cfg->dir, strerror(errno));
		return 1;
	}
	g_srv.lock_fd = -1;
	ret = cfg->open_volume(cfg->arg, cfg->key, &g_srv.vol, &err);
	if (!ret) {
		g_srv.cs = pf_volume_chunk_size(g_srv.vol);
		pf_volume_on_durable(g_srv.vol, on_durable, NULL);
		srv_cred_init();
		ret = sf_init();
		if (!ret)
			ret = make_vseg(cfg->cache_limit ? cfg->cache_limit : RT_CACHE_DEFAULT);
		if (ret)
			kiln_err_set(&err, ret, "%s", kiln_strerror(ret));
	}
	if (ret) {
		/* Nobody serves the volume (the socket is ours): the info file
		 * goes before the starter hears why, not left for whoever waits
		 * for it to go (a refused volume, "rolled back", left it). */
		if (info >= 0) {
			close(info);
			unlink(infopath);
		}
		dprintf(ready, "volume %s: %s\n", cfg->dir, kiln_err_msg(&err, ret));
		return 1;
	}
	/* For operators (and tests that crash it): who serves the volume.
	 * Opened again now that the volume is ours: a server that served it
	 * before us removed its file before it let the volume go, so this one
	 * (a new file) is not removed under us. */
	if (info >= 0) {
		close(info);
		info = open_info(infopath);
	}
	if (info >= 0) {
		/* Written, then cut to its length: ext4 flushes a file cut to 0
		 * and written again when it is closed (auto_da_alloc), a block
		 * allocation and a write started before "ok". */
		char line[32 + RT_SOCK_NAME_MAX];
		int n = snprintf(line, sizeof(line), "%d @%s\n", (int)getpid(), name);

		if (pwrite(info, line, (size_t)n, 0) == n)
			(void)!ftruncate(info, n);
		close(info);
	}
	say_ready(ready, "ok\n");
	close(ready);
	loop(lfd);
	/* Nobody can reach us any more: commit what is left and go. (No client
	 * is left to hold an append lock; a dead one's lock is taken over.) */
	close(lfd);
	for (struct sfile *f = g_srv.files; f; f = f->next) {
		int r;

		rt__ck_lock(f->seg);
		r = sf_writeback_held(f);
		rt__ck_unlock(f->seg);
		if (r)
			srv_log("final write-back of a file failed");
	}
	sf_buf_wipe();
	sf_free_all();
	sn_cleanup();
	ret = pf_volume_flush(g_srv.vol, &err);
	if (ret)
		srv_log("final commit failed (%s)", kiln_strerror(ret));
	if (g_srv.stats)
		srv_log("%llu requests; %llu commits for %llu fsyncs, %.3f ms each; %llu fills of "
			"%llu chunks; %llu chunks evicted; plaintext peak %llu KiB; %llu background "
			"write-backs; %llu chunks read ahead after the reply; %llu mapped chunks "
			"unchanged, not stored again; %llu streams of %llu chunks; %llu sealed "
			"writes of %llu chunks (%llu on a lease); %llu early flushes; %llu prepares "
			"riding the log's flush",
			(unsigned long long)g_srv.n_requests, (unsigned long long)g_srv.n_commits,
			(unsigned long long)g_srv.n_waiters,
			g_srv.n_commits ? g_srv.commit_ns / 1e6 / (double)g_srv.n_commits : 0.0,
			(unsigned long long)g_srv.n_fills, (unsigned long long)g_srv.fill_chunks,
			(unsigned long long)g_srv.n_evicted,
			(unsigned long long)(g_srv.peak_bytes >> 10),
			(unsigned long long)g_srv.n_nudges, (unsigned long long)g_srv.ra_after_reply,
			(unsigned long long)g_srv.n_same, (unsigned long long)g_srv.n_streams,
			(unsigned long long)g_srv.stream_chunks,
			(unsigned long long)g_srv.n_wstreams,
			(unsigned long long)g_srv.wstream_chunks,
			(unsigned long long)g_srv.n_leased, (unsigned long long)g_srv.n_early,
			(unsigned long long)pf_volume_rides(g_srv.vol));
	if (g_srv.stats)
		log_ops();
	/* Whoever waits for this file to go finds the final commit done and the
	 * log complete. Before the volume is let go: a server started meanwhile
	 * waits for the lock, and then writes its own file, which this unlink
	 * must not remove. */
	unlink(infopath);
	{
		int r = pf_volume_close(g_srv.vol, &err);

		if (r && !ret) {
			srv_log("closing the volume failed (%s)", kiln_err_msg(&err, r));
			ret = r;
		}
	}
	/* Done with the volume's files: the client that waits for our close
	 * (rt__srv_wait_closed: the last one, exiting, so that `kiln run`
	 * returns with the volume closed) goes on now, woken once the lock has
	 * gone too. CLOSED before the lock goes: a server that takes the lock
	 * after us finds us marked closed (clients map its segment then). */
	if (g_srv.log_fd >= 0)
		close(g_srv.log_fd);
	g_srv.log_fd = -1;
	atomic_store(&g_srv.vseg->server, RT_VSEG_CLOSED);
	if (g_srv.lock_fd >= 0)
		close(g_srv.lock_fd);
	syscall(SYS_futex, &g_srv.vseg->server, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	rt__auth_wipe(&g_keys);
	return ret ? 1 : 0;
}

int rt__srv_spawn(const struct rt_srv_config *c, pid_t (*forkfn)(void), struct kiln_err *err)
{
	char msg[RT_ERRMSG_MAX];
	size_t used = 0;
	int p[2], st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return kiln_err_set(err, -errno, "volume server: pipe: %s", strerror(errno));
	pid = forkfn();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return kiln_err_set(err, -errno, "volume server: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		pid_t pid2;

		close(p[0]);
		setsid();
		pid2 = forkfn();
		if (pid2 == 0)
			_exit(server_main(c, p[1]));
		_exit(pid2 < 0 ? 1 : 0);
	}
	close(p[1]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	for (;;) {
		ssize_t n = read(p[0], msg + used, sizeof(msg) - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == sizeof(msg) - 1)
			break;
	}
	close(p[0]);
	msg[used] = '\0';
	if (strcmp(msg, "ok\n") == 0)
		return 0;
	if (strcmp(msg, "exists\n") == 0)
		return -EEXIST;
	if (used && msg[used - 1] == '\n')
		msg[used - 1] = '\0';
	return kiln_err_set(err, -EIO, "%s", used ? msg : "volume server: did not start");
}

int rt__srv_connect(const struct rt_srv_config *c, const struct rt_auth_keys *k,
		    pid_t (*forkfn)(void), uint32_t pid, int *vseg_fd, struct kiln_err *err)
{
	struct sockaddr_un sa;
	socklen_t salen;
	char name[RT_SOCK_NAME_MAX];
	int ret = 0;

	*vseg_fd = -1;
	if (c->sock_name[0])
		memcpy(name, c->sock_name, sizeof(name));
	else
		ret = rt__srv_sock_name(c->dir, k, name);
	if (!ret)
		ret = sock_addr(name, &sa, &salen);
	if (ret)
		return kiln_err_set(err, ret, "volume %s: %s", c->dir, kiln_strerror(ret));
	for (int attempt = 0; attempt < 8; attempt++) {
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

		if (s < 0)
			return kiln_err_set(err, -errno, "socket: %s", strerror(errno));
		if (connect(s, (struct sockaddr *)&sa, salen) == 0) {
			ret = rt__auth_client(s, k, pid, vseg_fd);
			if (ret == 0)
				return s;
			close(s);
			if (ret == -KILN_EAUTH || ret == -EPROTO)
				return kiln_err_set(err, -KILN_EAUTH, "volume %s: the volume "
						    "server at @%s failed authentication (an "
						    "impostor on its socket name?)", c->dir, name);
			continue; /* the server was exiting: start another */
		}
		ret = -errno;
		close(s);
		if (ret != -ECONNREFUSED && ret != -ENOENT)
			return kiln_err_set(err, ret, "volume %s: connect: %s", c->dir,
					    strerror(-ret));
		if (!forkfn)
			return -ENOENT; /* no server runs, and none is to be started */
		ret = rt__srv_spawn(c, forkfn, err);
		if (ret && ret != -EEXIST)
			return ret;
	}
	return kiln_err_set(err, -EAGAIN, "volume %s: cannot reach its volume server", c->dir);
}
