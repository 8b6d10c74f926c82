/* kiln runtime: internals of the network and console shields (src/runtime/net/).
 *
 * Objects behind RT_FD_NET fds, reference counted by the fds that name them
 * (dup shares one, like the kernel's file description):
 *   struct rt_conn     a TLS connection (client or server) on a TCP socket;
 *   struct rt_eshadow  the shadow of a program's epoll instance that holds such
 *                      sockets (ready.c);
 *   struct rt_con      stdin, stdout or stderr under the console shield.
 *
 * Locks, in the order they may be taken (never the other way round):
 *   g_net.reg (registry: fd table updates of RT_FD_NET, epoll registrations,
 *   the list of connections, the engine's lists) -> conn->lock (the SSL object
 *   and the connection's state). conn->wlock serializes writers and is taken
 *   before conn->lock; a blocking writer holds it while it waits, nothing else
 *   does. No lock is held across a wait for the network: waits happen with
 *   signals unblocked, as the program's own call would have waited. */
#ifndef KILN_RUNTIME_NET_INTERNAL_H
#define KILN_RUNTIME_NET_INTERNAL_H

#include <sys/prctl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "runtime/net/net.h"

struct rt_iov;

enum rt_nobj_type { RT_NOBJ_CONN = 1, RT_NOBJ_EPOLL = 2, RT_NOBJ_CON = 3 };

/* First member of every object behind an RT_FD_NET fd. 8-byte aligned, so
 * every object that starts with it is, array elements included: the fd table
 * keeps its kind in the low 3 bits of the address. */
struct rt_nobj {
	_Alignas(8) uint32_t type; /* enum rt_nobj_type */
	_Atomic int refs;   /* fds naming it, plus temporary holds */
};

/* ---- rules (rules.c) ---- */
struct rt_listen_rule {
	uint16_t port;
	bool plain;
	SSL_CTX *ctx;       /* TLS server; NULL when plain */
	void *alpn;         /* its ALPN selection's argument (owned, lives as ctx) */
};

#define RT_NAME_ADDRS 32

struct rt_connect_rule {
	char host[256];     /* lower case: a DNS name, an IP address, or "*" */
	char name[256];     /* the name the server's certificate must carry */
	uint16_t port;
	bool plain;
	bool any;           /* host "*" */
	bool is_ip;
	bool loopback;      /* host "localhost": the loopback addresses */
	struct sockaddr_storage ip; /* host as an address when is_ip */
	SSL_CTX *ctx;       /* TLS client; NULL when plain */
	/* Addresses the program's getaddrinfo of host returned (name rules). */
	struct in6_addr seen[RT_NAME_ADDRS]; /* v4 as v4-mapped */
	_Atomic unsigned n_seen;
};

struct rt_net_cfg {
	bool on;            /* a network section came with the grant */
	bool deny;
	bool tls12;
	unsigned handshake_ms;
	struct rt_listen_rule *listen;
	size_t n_listen;
	struct rt_connect_rule *connect;
	size_t n_connect;
};

/* Parse the grant's "network" member into g_net.cfg (SSL contexts built).
 * On failure g_net.cfg is left empty (off), with nothing allocated. */
int rt__net_rules_init(const struct rt_json *net, struct kiln_err *err) RT_HIDDEN;
/* Free g_net.cfg's rules and contexts, and empty it (the fuzz target; the
 * runtime keeps its rules for the life of the process). */
void rt__net_rules_free(void) RT_HIDDEN;
/* The rule for a TCP listener on port, or NULL (none). */
const struct rt_listen_rule *rt__listen_rule(uint16_t port) RT_HIDDEN;
/* The rule for a destination, or NULL. */
const struct rt_connect_rule *rt__connect_rule(const struct sockaddr *sa, socklen_t len) RT_HIDDEN;
/* Record what getaddrinfo(node) returned for the name rules that name node. */
struct addrinfo;
void rt__net_saw_addrs(const char *node, const struct addrinfo *res) RT_HIDDEN;
/* "1.2.3.4:5" / "[::1]:5" */
void rt__addr_str(const struct sockaddr *sa, socklen_t len, char *out, size_t size) RT_HIDDEN;
/* The port of an AF_INET/AF_INET6 address, or -1. */
int rt__addr_port(const struct sockaddr *sa, socklen_t len) RT_HIDDEN;

/* ---- connections (conn.c, io.c, bio.c) ----
 * Every function below runs with signals blocked as by rt__enter (g: the
 * caller's guard), except where it waits: it leaves the guard for the wait
 * and enters it again. The program's memory is read and written only through
 * rt__copy_in/out (a bad pointer is EFAULT). */
enum rt_conn_state {
	RT_C_CONNECTING = 0, /* client: the TCP connect is in progress */
	RT_C_HANDSHAKE = 1,  /* TLS handshake (a server's may not have started yet) */
	RT_C_OPEN = 2,       /* application data */
	RT_C_FAILED = 3,     /* handshake or protocol failure: err says how */
};

struct rt_ereg;

struct rt_conn {
	struct rt_nobj obj;
	pthread_mutex_t lock;   /* ssl, out, flags below */
	pthread_mutex_t wlock;  /* one writer at a time */
	SSL *ssl;
	bool server;
	_Atomic int state;      /* enum rt_conn_state: read without the lock by poll */
	_Atomic bool buffered;  /* plaintext or unread records held inside SSL */
	_Atomic bool out_pending; /* ciphertext the kernel did not take yet */
	_Atomic bool nonblock;  /* the program's O_NONBLOCK (file status flag) */
	bool tls_started;       /* a TLS byte went out or came in */
	bool rd_eof;            /* close_notify or EOF from the peer */
	bool wr_shut;           /* close_notify sent (shutdown SHUT_WR) */
	bool foreign;           /* after fork: another process owns the TLS session */
	bool said;              /* its failure was logged */
	bool flushing;          /* a blocking send of out's head is under way */
	int err;                /* RT_C_FAILED: -ECONNRESET, ... */
	int so_error;           /* reported once by getsockopt(SO_ERROR), then 0 */
	int sock_errno;         /* the last errno of a socket call in the BIO */
	int io_fd;              /* the fd the current operation uses (BIO) */
	int fd_hint;            /* an fd that named it last (engine wake-ups) */
	int send_flags;         /* MSG_MORE of the current write */
	pid_t owner;            /* the process whose TLS session it is */
	uint64_t deadline_ns;   /* end of the handshake (0: none) */
	char peer[64];          /* for log lines */
	char rule[300];         /* "listen 8443" / "connect db:5432" */
	/* Ciphertext not yet taken by the kernel, in order (out[out_off..out_len)). */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	struct rt_ereg *regs;   /* epoll registrations (under g_net.reg) */
	struct rt_conn *next, *prev; /* g_net.conns (under g_net.reg) */
	struct rt_conn *t_next; /* the engine's handshake timers (under g_net.reg) */
	bool timed;
	/* Plaintext written but not sealed yet (hold.c): it goes into the record
	 * of the next write, or is sealed alone by the next flush. pend is
	 * malloc'd by the hold (RT_NET_STAGE bytes) and freed by the seal. */
	uint8_t *pend;
	size_t pend_len;
	bool pend_more;         /* the writes held asked for MSG_MORE */
	_Atomic uint64_t pend_ns; /* when the first byte held was written (0: none) */
	/* In the engine's watch list (engine.c): set under g_net.reg, cleared
	 * under g_net.reg and c->lock, read without either. */
	_Atomic bool watched;
	struct rt_conn *w_next; /* the engine's watch list (under g_net.reg) */
	int w_slot;             /* its socket's entry in the engine's poll set, or -1 */
};

/* rt__enter, the shields' guard: runtime/internal.h. */

/* A new connection for fd (one reference: the fd's). */
int rt__conn_new(int fd, bool server, SSL_CTX *ctx, const char *sni, const char *rule,
		 const struct sockaddr *peer, socklen_t peer_len, bool nonblock,
		 struct rt_conn **out) RT_HIDDEN;
/* The last reference went (under g_net.reg): take it out of every list. */
void rt__conn_unlink(struct rt_conn *c) RT_HIDDEN;
/* Then, without g_net.reg: close_notify where it can (fd: the program's fd
 * being closed, still open, or -1), hand unsent data to the engine or free. */
void rt__conn_destroy(struct rt_conn *c, int fd) RT_HIDDEN;
void rt__conn_free(struct rt_conn *c) RT_HIDDEN;
/* Send what c holds on fd (under c->lock): the engine's steps for a closed
 * connection on its own copy of the socket, and at exit, where grow first
 * lets the socket's send buffer grow to take it all. 0 all sent, -EAGAIN
 * more to come, < 0 the socket failed. */
int rt__conn_to_kernel(struct rt_conn *c, int fd, bool grow) RT_HIDDEN;

/* Under c->lock (conn.c). rt__conn_flush seals what is held (hold.c) and
 * sends the waiting ciphertext; rt__conn_send_out sends only the ciphertext
 * (a writer about to put the held bytes into its own record). */
int rt__conn_flush(struct rt_conn *c) RT_HIDDEN;
int rt__conn_send_out(struct rt_conn *c) RT_HIDDEN;
int rt__conn_handshake(struct rt_conn *c) RT_HIDDEN;
bool rt__conn_usable(struct rt_conn *c) RT_HIDDEN;
void rt__conn_set_buffered(struct rt_conn *c) RT_HIDDEN;
void rt__conn_lock(struct rt_conn *c, int fd) RT_HIDDEN;
void rt__conn_unlock(struct rt_conn *c) RT_HIDDEN;
/* Finish the handshake of a call (blocking: it may wait), or -EAGAIN. */
long rt__conn_settle(struct rt_conn *c, int fd, bool blocking, struct rt_guard *g) RT_HIDDEN;
/* Send the waiting ciphertext, blocking: 0, -EINTR, -EAGAIN (SO_SNDTIMEO), -EPIPE. */
long rt__conn_flush_blocking(struct rt_conn *c, int fd, struct rt_guard *g) RT_HIDDEN;
/* Wait for input (MSG_PEEK): 0, -EINTR, -EAGAIN (SO_RCVTIMEO). */
long rt__conn_wait_input(int fd, struct rt_guard *g) RT_HIDDEN;
bool rt__conn_blocking(struct rt_conn *c, int flags) RT_HIDDEN;

/* bio.c: the socket under OpenSSL (never blocking), and failures. */
BIO *rt__conn_bio(struct rt_conn *c) RT_HIDDEN;
/* Mark failed with a reason (logged, naming the peer, rate-limited; fmt NULL:
 * an ordinary end such as a peer's reset, not logged). Under c->lock. */
void rt__conn_fail(struct rt_conn *c, int err, const char *fmt, ...) RT_HIDDEN
	__attribute__((format(printf, 3, 4)));
/* After an OpenSSL failure e (SSL_get_error) during what. */
void rt__conn_fail_ssl(struct rt_conn *c, int e, const char *what) RT_HIDDEN;

/* io.c: the program's data calls; iov is the runtime's copy of the array (its
 * buffers are the program's). Results as the kernel's (-errno). */
long rt__conn_read(struct rt_conn *c, int fd, const struct iovec *iov, int cnt, int flags,
		   struct rt_guard *g) RT_HIDDEN;
long rt__conn_write(struct rt_conn *c, int fd, const struct iovec *iov, int cnt, int flags,
		    struct rt_guard *g) RT_HIDDEN;
/* sendfile/splice from a file or pipe: the input is read through the
 * dispatcher (a protected file as the file shield serves it). off: the
 * offset to read at and advance, or NULL for the file position. */
long rt__conn_send_from(struct rt_conn *c, int fd, int in_fd, int64_t *off, size_t n,
			bool in_pipe, struct rt_guard *g) RT_HIDDEN;
/* splice into a pipe: at most n bytes of plaintext to out_fd. */
long rt__conn_splice_to(struct rt_conn *c, int fd, int out_fd, size_t n, bool nonblock,
			struct rt_guard *g) RT_HIDDEN;
long rt__conn_shutdown(struct rt_conn *c, int fd, int how, struct rt_guard *g) RT_HIDDEN;
/* A blocking connect finished: the handshake, as part of connect(). */
long rt__conn_connect_done(struct rt_conn *c, int fd, struct rt_guard *g) RT_HIDDEN;

/* Readiness (conn.c). rt__conn_poll: drive the connection with what the
 * kernel said (kev: POLLIN/POLLOUT/POLLERR/POLLHUP of the socket) and answer
 * what the program may see of want (POLL* bits, POLLRDHUP included).
 * rt__conn_interest: what to ask the kernel for to serve want.
 * rt__conn_ready_now: events that need no kernel readiness (a failure). */
unsigned rt__conn_poll(struct rt_conn *c, int fd, unsigned want, unsigned kev) RT_HIDDEN;
unsigned rt__conn_interest(struct rt_conn *c, unsigned want) RT_HIDDEN;
unsigned rt__conn_ready_now(struct rt_conn *c, unsigned want) RT_HIDDEN;
/* getsockopt(SO_ERROR) answer: the failure of a handshake once, else -1 (ask
 * the kernel). */
int rt__conn_so_error(struct rt_conn *c) RT_HIDDEN;
/* The readiness the program may see changed (state, out_pending, buffered):
 * update its epoll registrations (ready.c). Not under c->lock. */
void rt__conn_changed(struct rt_conn *c) RT_HIDDEN;

/* ---- epoll (ready.c) ---- */
struct rt_eshadow;
/* epoll_ctl when fd is a connection (false: not ours); epoll_wait when epfd
 * has a shadow (-ENOENT: not ours); poll over pollfds (-ENOENT: none of them
 * is a connection). Called with signals as the program has them (they wait). */
bool rt__epoll_ctl(int epfd, int op, int fd, const struct epoll_event *uev, long *ret) RT_HIDDEN;
long rt__epoll_wait(int epfd, struct epoll_event *uev, int max, int timeout_ms,
		    const void *sigmask, size_t sigsize) RT_HIDDEN;
long rt__poll(struct pollfd *ufds, unsigned long n, int64_t timeout_ns, const void *sigmask,
	      size_t sigsize) RT_HIDDEN;
/* A connection made by connect() may already sit in epoll instances (added
 * before connect): move those registrations into the shadows. */
void rt__epoll_adopt(int fd, struct rt_conn *c) RT_HIDDEN;
/* The connection's registrations go (its last fd closed). Under g_net.reg. */
void rt__epoll_forget_conn(struct rt_conn *c) RT_HIDDEN;
/* The shadow's last reference went: its registrations go (under g_net.reg);
 * then close and free it (without). */
void rt__eshadow_unlink(struct rt_eshadow *e) RT_HIDDEN;
void rt__eshadow_destroy(struct rt_eshadow *e) RT_HIDDEN;

/* ---- held plaintext (hold.c) ---- */
/* Under c->lock. rt__hold_ok: may c hold a write's tail instead of sealing
 * it now? rt__hold_keep: keep buf[0..len) as its held plaintext (the first
 * c->pend_len bytes of buf are what it held already): 0, or -ENOMEM (then
 * the caller seals it). */
bool rt__hold_ok(struct rt_conn *c) RT_HIDDEN;
int rt__hold_keep(struct rt_conn *c, const uint8_t *buf, size_t len, int flags) RT_HIDDEN;
/* Under c->lock: seal the held plaintext into a record (handed to the BIO):
 * 0, or the connection's error. */
int rt__hold_seal(struct rt_conn *c) RT_HIDDEN;
/* After a write held on fd (no lock held): this thread flushes it at its
 * next call that is not a send on fd; the engine within RT_HOLD_NS. */
void rt__hold_note(int fd) RT_HIDDEN;
/* Flush the connection behind fd, if it holds plaintext (in a guard). */
void rt__hold_flush_fd(int fd) RT_HIDDEN;
/* Under g_net.reg: seal and send what every connection has held since
 * before `before` (ns; ~0: all). Connections whose readiness changed get a
 * hold (obj.refs) and are put in changed[] (at most max): the caller calls
 * rt__conn_changed and rt__nobj_put on each without g_net.reg. Its count. */
size_t rt__hold_sweep(uint64_t before, struct rt_conn **changed, size_t max) RT_HIDDEN;
/* The longest a held byte waits for a thread that makes no system call. */
#define RT_HOLD_NS 1000000ull
extern _Atomic uint64_t g_hold_at RT_HIDDEN; /* the last hold's time (ns) */

/* ---- the engine thread (engine.c) ---- */
/* A hold began: make sure the engine ticks every RT_HOLD_NS (no lock held). */
void rt__engine_hold(void) RT_HIDDEN;
/* Seal everything held now, not in RT_HOLD_NS (async-signal-safe: an
 * eventfd write). */
void rt__engine_kick(void) RT_HIDDEN;
/* Watch the handshake deadline of c; stop watching it (under g_net.reg). */
void rt__engine_timer(struct rt_conn *c) RT_HIDDEN;
void rt__engine_untimer(struct rt_conn *c) RT_HIDDEN;
/* Ciphertext waits in c->out, counted as written: the engine sends it as the
 * kernel takes it, whatever the program's threads wait in (as the kernel
 * sends what it buffered). rt__engine_watch: no lock held (rt__conn_unlock);
 * _locked: under g_net.reg. rt__engine_unwatch: under g_net.reg. */
void rt__engine_watch(struct rt_conn *c) RT_HIDDEN;
void rt__engine_watch_locked(struct rt_conn *c) RT_HIDDEN;
void rt__engine_unwatch(struct rt_conn *c) RT_HIDDEN;
/* Take over a closed connection with unsent data: send it, close_notify,
 * close own_fd (a runtime-owned dup of the socket). */
void rt__engine_linger(struct rt_conn *c, int own_fd) RT_HIDDEN;
void rt__engine_after_fork(void) RT_HIDDEN;
/* exit_group, execve (under g_net.reg): what waits in the runtime goes to the
 * kernel before the engine thread ends with the process image. */
void rt__engine_drain_for_exit(void) RT_HIDDEN;

/* ---- the console shield (console.c) ---- */
struct rt_con;
int rt__con_init(const struct rt_json *console, struct kiln_err *err) RT_HIDDEN;
long rt__con_read(struct rt_con *k, int fd, const struct iovec *iov, int cnt,
		  struct rt_guard *g) RT_HIDDEN;
long rt__con_write(struct rt_con *k, int fd, const struct iovec *iov, int cnt,
		   struct rt_guard *g) RT_HIDDEN;
long rt__con_send_from(struct rt_con *k, int fd, int in_fd, int64_t *off, size_t n,
		       struct rt_guard *g) RT_HIDDEN;
unsigned rt__con_ready_now(struct rt_con *k, unsigned want) RT_HIDDEN;
void rt__con_put(struct rt_con *k) RT_HIDDEN;
void rt__con_after_fork(void) RT_HIDDEN;
void rt__con_exit(int status) RT_HIDDEN;

/* ---- shared state (net.c) ---- */
struct rt_net {
	pthread_mutex_t reg;
	struct rt_net_cfg cfg;
	struct rt_conn *conns;  /* every live connection (fork, exit) */
	bool console;           /* the console shield is on */
};
extern struct rt_net g_net RT_HIDDEN;

/* Objects behind fds. rt__nobj_get takes a hold on fd's object of the given
 * type (NULL when fd has none of it; under a guard: it takes g_net.reg);
 * rt__nobj_put drops one (the last one destroys the object; fd: the fd being
 * closed, still open, or -1). rt__nobj_peek: the object without a hold, under
 * g_net.reg. rt__nobj_set_locked makes fd name obj (taking a reference) and
 * returns what fd named before (to put after unlocking). */
void *rt__nobj_get(int fd, enum rt_nobj_type type) RT_HIDDEN;
void *rt__nobj_peek(int fd, enum rt_nobj_type type) RT_HIDDEN;
void rt__nobj_put(void *obj, int fd) RT_HIDDEN;
void *rt__nobj_set_locked(int fd, void *obj) RT_HIDDEN;
void rt__nobj_set(int fd, void *obj) RT_HIDDEN;
/* fd closes (or dup2 replaces it): forget what it named (under a guard). */
void rt__nobj_forget(int fd) RT_HIDDEN;

/* The program's epoll fds (made by epoll_create*, gone at close): note one,
 * and walk them (the next after fd, -1 at the end; start with -1). */
void rt__net_epfd_note(int fd, bool is) RT_HIDDEN;
int rt__net_epfd_next(int fd) RT_HIDDEN;

/* libc's own function (dlsym RTLD_NEXT): not the program's wrapper. */
void *rt__libc_sym(const char *name) RT_HIDDEN;
/* The readiness calls (sys/poll.c), as rt__net_call. */
bool rt__net_event_call(long nr, const long a[6], long *ret) RT_HIDDEN;
extern RT_TLS bool t_net_sigpipe RT_HIDDEN;

/* Now, CLOCK_MONOTONIC, in ns. */
uint64_t rt__now_ns(void) RT_HIDDEN;
/* A refusal or a failure, once per distinct key (a static string). */
void rt__net_say_once(const char *key, const char *fmt, ...) RT_HIDDEN
	__attribute__((format(printf, 2, 3)));

#endif
