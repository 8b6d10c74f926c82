/* kiln runtime: the network shield's own thread, for what no call of the
 * program would do at the right time:
 *
 *  - handshake deadlines: a peer that stalls mid-handshake (or never starts
 *    it) fails after the policy's handshake_timeout with a line naming it;
 *    the socket is shut down so the program, whatever it waits in (epoll,
 *    poll, a blocking read), wakes up to an ordinary connection error;
 *  - lingering closes: a connection closed while the kernel had not taken all
 *    of its ciphertext (close_notify included) is finished here on a copy of
 *    the socket, as the kernel finishes a plaintext socket after close();
 *  - held plaintext (hold.c): while writes were held in the last HOT_NS it
 *    ticks every RT_HOLD_NS and seals what has waited that long (a thread
 *    that computes without system calls would not);
 *  - ciphertext that waits in an open connection (c->out: what the kernel
 *    did not take, counted as written): it polls those sockets for room and
 *    sends it, as the kernel sends what it buffered while the program waits
 *    in anything else (a blocking read of the same socket, a sleep, another
 *    fd). Without it a program that wrote and then waits for the peer's
 *    answer waits for ever: the peer never gets what it should answer.
 *
 * Started on first use in each process (a forked child starts its own). It
 * runs no program code and never holds a lock while it waits; all signals are
 * blocked in it, and its system calls go straight to the kernel. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "runtime/net/internal.h"

#define TICK_MS 200
#define LINGER_NS (10ull * 1000000000ull)
#define HOT_NS (50ull * 1000000ull) /* ticks fast this long after the last hold */
#define SWEEP_MAX 64
#define EXIT_DRAIN_NS (2ull * 1000000000ull)

struct lingering {
	struct rt_conn *c;
	int fd;               /* runtime-owned copy of the socket */
	uint64_t until;
	struct lingering *next;
};

/* Under g_net.reg. */
static struct rt_conn *g_timers;
static struct rt_conn *g_watch; /* connections whose ciphertext waits (w_next) */
static struct lingering *g_lingers;
static bool g_running;
static int g_epfd = -1;
static int g_evfd = -1;  /* wakes the engine for a hold (in g_epfd, data 1) */
static pid_t g_pid;
/* Ticking every RT_HOLD_NS (holds are recent). Cleared by the engine only,
 * which then looks at g_hold_at again; a hold stores g_hold_at, then reads
 * this: one of the two sees the other (sequentially consistent). */
static _Atomic bool g_fast;
static _Atomic bool g_kicked; /* seal everything held, however recent */

static void linger_end(struct lingering *l)
{
	rt__own_close(l->fd);
	rt__conn_free(l->c);
	free(l);
}

/* The handshake deadlines (under g_net.reg; conn locks taken inside). */
static void check_timers(uint64_t now)
{
	for (struct rt_conn **pp = &g_timers; *pp;) {
		struct rt_conn *c = *pp;
		int st = atomic_load(&c->state);

		if (st == RT_C_OPEN || st == RT_C_FAILED || !c->deadline_ns) {
			*pp = c->t_next;
			c->timed = false;
			continue;
		}
		if (c->deadline_ns > now) {
			pp = &c->t_next;
			continue;
		}
		*pp = c->t_next;
		c->timed = false;
		pthread_mutex_lock(&c->lock);
		if (atomic_load(&c->state) == RT_C_HANDSHAKE && !c->foreign) {
			int fd = c->fd_hint;

			rt__conn_fail(c, -ECONNRESET, "TLS handshake not finished after %u s "
				      "(the peer stalls)", g_net.cfg.handshake_ms / 1000);
			/* Only through an fd that still names this connection. */
			if (rt__nobj_peek(fd, RT_NOBJ_CONN) == c)
				rt__raw(SYS_shutdown, fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&c->lock);
	}
}

static void check_lingers(uint64_t now)
{
	for (struct lingering **pp = &g_lingers; *pp;) {
		struct lingering *l = *pp;
		int r = rt__conn_to_kernel(l->c, l->fd, false);

		if (r == -EAGAIN && now < l->until) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		linger_end(l);
	}
}

/* The engine's poll set: its epoll instance (evfd, lingering sockets), then
 * the sockets of the watched connections. The engine's own. */
#define PFDS_MIN 16
static struct pollfd g_pfds0[PFDS_MIN];
static struct pollfd *g_pfds = g_pfds0;
static size_t g_pfds_cap = PFDS_MIN;

/* Room for one more entry in the poll set (false: none, the rest waits). */
static bool pfds_room(size_t n)
{
	struct pollfd *p;

	if (n < g_pfds_cap)
		return true;
	p = malloc(2 * g_pfds_cap * sizeof(*p));
	if (!p)
		return false;
	memcpy(p, g_pfds, n * sizeof(*p));
	if (g_pfds != g_pfds0)
		free(g_pfds);
	g_pfds = p;
	g_pfds_cap *= 2;
	return true;
}

/* Is c's ciphertext still the engine's to send, through fd? Under
 * g_net.reg and c->lock. */
static bool watch_ok(struct rt_conn *c, int fd)
{
	return atomic_load(&c->out_pending) && !c->foreign &&
	       atomic_load(&c->state) != RT_C_FAILED && rt__nobj_peek(fd, RT_NOBJ_CONN) == c;
}

/* Keep c in the watch list or take it out (under g_net.reg and c->lock):
 * the link to look at next. */
static struct rt_conn **watch_step(struct rt_conn **pp, struct rt_conn *c, bool keep)
{
	if (keep)
		return &c->w_next;
	*pp = c->w_next;
	atomic_store(&c->watched, false);
	return pp;
}

/* Fill the poll set from the watch list (under g_net.reg): its size. A
 * connection a blocking send is flushing stays listed without a slot (its
 * sender finishes the job); one that no longer waits leaves the list. */
static size_t watch_set(void)
{
	size_t n = 1;

	for (struct rt_conn **pp = &g_watch; *pp;) {
		struct rt_conn *c = *pp;
		bool keep;

		pthread_mutex_lock(&c->lock);
		c->w_slot = -1;
		keep = watch_ok(c, c->fd_hint);
		if (keep && !c->flushing && pfds_room(n)) {
			g_pfds[n] = (struct pollfd){ c->fd_hint, POLLOUT, 0 };
			c->w_slot = (int)n++;
		}
		pp = watch_step(pp, c, keep);
		pthread_mutex_unlock(&c->lock);
	}
	return n;
}

/* Send what the watched connections whose sockets have room hold (under
 * g_net.reg). Those whose readiness changed (all sent) get a hold and go
 * into changed[] (at most max), as rt__hold_sweep's. Its count. */
static size_t watch_send(struct rt_conn **changed, size_t max)
{
	size_t n = 0;

	for (struct rt_conn **pp = &g_watch; *pp;) {
		struct rt_conn *c = *pp;
		int slot = c->w_slot;
		bool keep = true;

		if (slot < 0 || !g_pfds[slot].revents) {
			pp = &c->w_next;
			continue;
		}
		pthread_mutex_lock(&c->lock);
		if (!c->flushing) {
			int fd = g_pfds[slot].fd;

			keep = fd == c->fd_hint && watch_ok(c, fd);
			if (keep) {
				c->io_fd = fd;
				/* Sent, or the socket failed: the program's next call
				 * meets the error. */
				keep = rt__conn_send_out(c) == -EAGAIN;
			}
			if (!atomic_load(&c->out_pending) && n < max) {
				atomic_fetch_add(&c->obj.refs, 1);
				changed[n++] = c;
			}
		}
		pp = watch_step(pp, c, keep);
		pthread_mutex_unlock(&c->lock);
	}
	return n;
}

static void *engine(void *arg)
{
	uint64_t all = ~0ull;

	(void)arg;
	/* Never the program's: no signal here, no dispatch, the runtime's code. */
	rt__raw(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
	rt__runtime_thread();
	for (;;) {
		struct epoll_event ev[16];
		struct rt_conn *changed[SWEEP_MAX];
		size_t n_changed = 0, n_pfds;
		uint64_t now, v;
		bool idle, fast = atomic_load(&g_fast);
		long n;

		pthread_mutex_lock(&g_net.reg);
		n_pfds = watch_set();
		pthread_mutex_unlock(&g_net.reg);
		g_pfds[0] = (struct pollfd){ g_epfd, POLLIN, 0 };
		n = rt__raw(SYS_poll, g_pfds, n_pfds, fast ? 1 : TICK_MS);
		if (n > 0 && g_pfds[0].revents) {
			n = rt__raw(SYS_epoll_wait, g_epfd, ev, 16, 0);
			for (long i = 0; i < n; i++)
				if (ev[i].data.u64 == 1)
					rt__raw(SYS_read, g_evfd, &v, sizeof(v));
		}
		now = rt__now_ns();
		pthread_mutex_lock(&g_net.reg);
		check_timers(now);
		check_lingers(now);
		if (atomic_exchange(&g_kicked, false))
			n_changed = rt__hold_sweep(~0ull, changed, SWEEP_MAX);
		else if (fast || atomic_load(&g_fast))
			n_changed = rt__hold_sweep(now - RT_HOLD_NS / 4, changed, SWEEP_MAX);
		n_changed += watch_send(changed + n_changed, SWEEP_MAX - n_changed);
		if (atomic_load(&g_fast) && now - atomic_load(&g_hold_at) > HOT_NS) {
			atomic_store(&g_fast, false);
			if (rt__now_ns() - atomic_load(&g_hold_at) <= HOT_NS)
				atomic_store(&g_fast, true);
		}
		idle = !g_timers && !g_lingers && !g_watch && !atomic_load(&g_fast);
		if (idle)
			g_running = false;
		pthread_mutex_unlock(&g_net.reg);
		for (size_t i = 0; i < n_changed; i++) {
			rt__conn_changed(changed[i]);
			rt__nobj_put(changed[i], -1);
		}
		if (idle)
			return NULL;
	}
}

/* Under g_net.reg. */
static void start(void)
{
	typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	static create_fn real;
	pthread_attr_t attr;
	pthread_t t;
	pid_t pid = (pid_t)rt__raw0(SYS_getpid);

	if (g_running && g_pid == pid)
		return;
	if (g_epfd < 0 || g_pid != pid) {
		long fd = rt__raw(SYS_epoll_create1, EPOLL_CLOEXEC);

		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };

		g_epfd = fd >= 0 ? rt__own_fd((int)fd) : -1;
		if (g_epfd < 0)
			return;
		fd = rt__raw(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
		g_evfd = fd >= 0 ? rt__own_fd((int)fd) : -1;
		if (g_evfd >= 0)
			rt__raw(SYS_epoll_ctl, g_epfd, EPOLL_CTL_ADD, g_evfd, &ev);
	}
	/* libc's own pthread_create: not the program's (wrap.c would turn on
	 * dispatch in the new thread). */
	if (!real)
		real = (create_fn)rt__libc_sym("pthread_create");
	if (!real || pthread_attr_init(&attr))
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	if (real(&t, &attr, engine, NULL) == 0) {
		g_running = true;
		g_pid = pid;
	}
	pthread_attr_destroy(&attr);
}

void rt__engine_timer(struct rt_conn *c)
{
	if (!c->timed) {
		c->timed = true;
		c->t_next = g_timers;
		g_timers = c;
	}
	start();
}

void rt__engine_untimer(struct rt_conn *c)
{
	if (!c->timed)
		return;
	for (struct rt_conn **pp = &g_timers; *pp; pp = &(*pp)->t_next)
		if (*pp == c) {
			*pp = c->t_next;
			break;
		}
	c->timed = false;
}

void rt__engine_watch_locked(struct rt_conn *c)
{
	uint64_t one = 1;

	if (atomic_load(&c->watched) || !atomic_load(&c->out_pending) || c->foreign)
		return;
	atomic_store(&c->watched, true);
	c->w_slot = -1;
	c->w_next = g_watch;
	g_watch = c;
	start();
	/* A running engine polls the sockets it knew: wake it to take this one. */
	if (g_evfd >= 0)
		rt__raw(SYS_write, g_evfd, &one, sizeof(one));
}

void rt__engine_watch(struct rt_conn *c)
{
	pthread_mutex_lock(&g_net.reg);
	rt__engine_watch_locked(c);
	pthread_mutex_unlock(&g_net.reg);
}

void rt__engine_unwatch(struct rt_conn *c)
{
	if (!atomic_load(&c->watched))
		return;
	for (struct rt_conn **pp = &g_watch; *pp; pp = &(*pp)->w_next)
		if (*pp == c) {
			*pp = c->w_next;
			break;
		}
	atomic_store(&c->watched, false);
}

void rt__engine_hold(void)
{
	uint64_t one = 1;

	if (atomic_load(&g_fast))
		return;
	pthread_mutex_lock(&g_net.reg);
	if (!atomic_load(&g_fast)) {
		bool was = g_running && g_pid == (pid_t)rt__raw0(SYS_getpid);

		atomic_store(&g_fast, true);
		start();
		/* A running engine sleeps for TICK_MS: wake it to tick fast. */
		if (was && g_evfd >= 0)
			rt__raw(SYS_write, g_evfd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&g_net.reg);
}

void rt__engine_kick(void)
{
	uint64_t one = 1;
	int fd = g_evfd;

	/* A hold made it tick (rt__engine_hold): it sweeps within RT_HOLD_NS
	 * anyway; the write makes that now. */
	atomic_store(&g_kicked, true);
	if (fd >= 0)
		rt__raw(SYS_write, fd, &one, sizeof(one));
}

void rt__engine_linger(struct rt_conn *c, int own_fd)
{
	struct lingering *l = calloc(1, sizeof(*l));
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };

	if (!l) {
		rt__own_close(own_fd);
		rt__conn_free(c);
		return;
	}
	l->c = c;
	l->fd = own_fd;
	l->until = rt__now_ns() + LINGER_NS;
	l->next = g_lingers;
	g_lingers = l;
	start();
	if (g_epfd >= 0)
		rt__raw(SYS_epoll_ctl, g_epfd, EPOLL_CTL_ADD, own_fd, &ev);
}

void rt__engine_after_fork(void)
{
	/* The child has no engine thread. What its parent was sending is the
	 * parent's: the child only closes its copies. */
	while (g_lingers) {
		struct lingering *l = g_lingers;

		g_lingers = l->next;
		linger_end(l);
	}
	g_running = false;
	/* What the parent's connections wait to send is the parent's. */
	for (struct rt_conn *c = g_watch; c; c = c->w_next)
		atomic_store(&c->watched, false);
	g_watch = NULL;
	if (g_epfd >= 0)
		rt__own_close(g_epfd);
	g_epfd = -1;
	if (g_evfd >= 0)
		rt__own_close(g_evfd);
	g_evfd = -1;
	atomic_store(&g_fast, false);
	if (g_timers)
		start();
}

/* Hand c's waiting ciphertext to the kernel on fd; a socket still full goes
 * into p (at most max), or with say gets its line: what it holds is lost. */
static void drain_one(struct rt_conn *c, int fd, bool grow, bool say, struct pollfd *p,
		      size_t *n, size_t max)
{
	if (rt__conn_to_kernel(c, fd, grow) != -EAGAIN)
		return;
	if (say)
		rt__say("network: %s: peer %s: %zu bytes the program wrote before it exited were "
			"not taken by the kernel in %llu s: lost", c->rule, c->peer,
			c->out_len - c->out_off,
			(unsigned long long)(EXIT_DRAIN_NS / 1000000000ull));
	else if (*n < max)
		p[(*n)++] = (struct pollfd){ fd, POLLOUT, 0 };
}

/* One pass of rt__engine_drain_for_exit over the lingering closes and the
 * open connections whose ciphertext waits: how many sockets are still full. */
static size_t drain_pass(struct pollfd *p, size_t max, bool grow, bool say)
{
	size_t n = 0;

	for (struct lingering *l = g_lingers; l; l = l->next)
		drain_one(l->c, l->fd, grow, say, p, &n, max);
	for (struct rt_conn *c = g_net.conns; c; c = c->next)
		if (atomic_load(&c->out_pending) && !c->foreign &&
		    rt__nobj_peek(c->fd_hint, RT_NOBJ_CONN) == c)
			drain_one(c, c->fd_hint, grow, say, p, &n, max);
	return n;
}

void rt__engine_drain_for_exit(void)
{
	uint64_t end = rt__now_ns() + EXIT_DRAIN_NS, now;
	struct pollfd p[SWEEP_MAX];
	bool grow = true;
	size_t n;

	/* The kernel goes on sending what a socket holds after the process is
	 * gone; the engine thread does not. So the socket takes the rest now
	 * (its buffer grown to fit), and a peer that does not read at all gets
	 * EXIT_DRAIN_NS of waiting, as SO_LINGER would. */
	while ((n = drain_pass(p, SWEEP_MAX, grow, false)) > 0) {
		grow = false;
		now = rt__now_ns();
		if (now >= end) {
			drain_pass(p, 0, false, true);
			return;
		}
		rt__raw(SYS_poll, p, n, (int)((end - now) / 1000000ull) + 1);
	}
}
