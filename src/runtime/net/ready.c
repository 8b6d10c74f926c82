/* kiln runtime: readiness of shielded sockets for poll, select and epoll.
 *
 * What the kernel says of a TLS socket is not what the program may see: input
 * may hold no application data (a handshake message, a session ticket, half a
 * record), plaintext may sit inside OpenSSL with nothing left in the socket,
 * a handshake must finish before a connected socket is writable, and a
 * handshake failure is an error. So:
 *
 * poll/ppoll/select/pselect6 ask the kernel for what the connection needs
 * (rt__conn_interest), drive the connections it reports and tell the program
 * only what it may see (rt__conn_poll), answering at once for plaintext
 * already held; an answer with nothing in it waits again for the rest of the
 * timeout.
 *
 * epoll: the connections a program adds to its epoll instance E go into a
 * *shadow* epoll instance S of the runtime's (with a handle of theirs as data),
 * and S itself goes into E once, with a marker no program value can equal (a
 * pointer of the runtime's, salted). epoll_wait(E) takes the program's own
 * events as they are and, when S is ready, S's events through the same
 * filter. Edge-triggered registrations stay edge-triggered in S: an event the
 * program does not see (a record without data) is not owed to it later, and a
 * read that drains what the kernel had ends every edge as it would natively.
 * Level-triggered registrations of connections holding plaintext are answered
 * from a list (sticky) without the kernel. EPOLLONESHOT registrations whose
 * event was filtered out are armed again. A connection added to E before
 * connect() made it a TLS one is moved into S then (rt__epoll_adopt, from
 * /proc/self/fdinfo/E). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>

#include "runtime/net/internal.h"

#define HARVEST 64
#define EP_MAX_EVENTS (INT32_MAX / (int)sizeof(struct epoll_event))

struct rt_ereg {
	uint32_t idx, gen;       /* handle: the data in the shadow */
	struct rt_eshadow *ep;
	struct rt_conn *c;
	int fd;                  /* the program's fd of the registration */
	uint32_t events;         /* the program's events */
	uint64_t data;           /* the program's data */
	uint32_t kevents;        /* what the shadow holds */
	bool disabled;           /* EPOLLONESHOT fired: until the program's MOD */
	bool sticky;             /* in ep->sticky */
	struct rt_ereg *ep_next, *c_next, *s_next;
};

struct rt_eshadow {
	struct rt_nobj obj;
	int sfd;                 /* the shadow epoll instance (runtime-owned) */
	uint64_t marker;         /* its data in E */
	struct rt_ereg *regs;
	struct rt_ereg *sticky;
};

/* Handles: a table of registrations, generation-checked, so an event the
 * kernel reports for a registration removed meanwhile is recognized. */
static struct rt_ereg **g_regs;
static uint32_t *g_gens;
static uint32_t g_nregs, g_capregs;
static uint64_t g_salt;

static uint64_t handle(const struct rt_ereg *r)
{
	return (uint64_t)r->gen << 32 | r->idx;
}

/* Under g_net.reg. */
static struct rt_ereg *by_handle(uint64_t h)
{
	uint32_t idx = (uint32_t)h, gen = (uint32_t)(h >> 32);

	if (idx >= g_nregs || g_gens[idx] != gen)
		return NULL;
	return g_regs[idx];
}

static int slot_new(struct rt_ereg *r)
{
	for (uint32_t i = 0; i < g_nregs; i++) {
		if (!g_regs[i]) {
			g_regs[i] = r;
			r->idx = i;
			r->gen = ++g_gens[i];
			return 0;
		}
	}
	if (g_nregs == g_capregs) {
		uint32_t cap = g_capregs ? g_capregs * 2 : 64;
		struct rt_ereg **n = realloc(g_regs, cap * sizeof(*n));
		uint32_t *gn;

		if (!n)
			return -ENOMEM;
		g_regs = n;
		gn = realloc(g_gens, cap * sizeof(*gn));
		if (!gn)
			return -ENOMEM;
		g_gens = gn;
		g_capregs = cap;
	}
	g_regs[g_nregs] = r;
	g_gens[g_nregs] = 1;
	r->idx = g_nregs++;
	r->gen = 1;
	return 0;
}

static uint32_t kevents_of(struct rt_ereg *r)
{
	return rt__conn_interest(r->c, r->events) |
	       (r->events & (EPOLLET | EPOLLONESHOT | EPOLLWAKEUP));
}

static long shadow_ctl(struct rt_eshadow *e, int op, struct rt_ereg *r)
{
	struct epoll_event ev = { .events = r ? r->kevents : 0, .data.u64 = r ? handle(r) : 0 };

	return rt__raw(SYS_epoll_ctl, e->sfd, op, r->fd, &ev);
}

/* Unlink and free a registration (under g_net.reg). Registrations hold no
 * reference: as in the kernel, a connection leaves every epoll set when its
 * last fd closes. */
static void reg_drop(struct rt_ereg *r, bool kernel)
{
	struct rt_ereg **pp;

	if (kernel)
		shadow_ctl(r->ep, EPOLL_CTL_DEL, r);
	for (pp = &r->ep->regs; *pp; pp = &(*pp)->ep_next)
		if (*pp == r) {
			*pp = r->ep_next;
			break;
		}
	for (pp = &r->ep->sticky; *pp; pp = &(*pp)->s_next)
		if (*pp == r) {
			*pp = r->s_next;
			break;
		}
	for (pp = &r->c->regs; *pp; pp = &(*pp)->c_next)
		if (*pp == r) {
			*pp = r->c_next;
			break;
		}
	g_regs[r->idx] = NULL;
	g_gens[r->idx]++;
	free(r);
}

void rt__epoll_forget_conn(struct rt_conn *c)
{
	while (c->regs)
		reg_drop(c->regs, true);
}

void rt__eshadow_unlink(struct rt_eshadow *e)
{
	while (e->regs)
		reg_drop(e->regs, false);
}

void rt__eshadow_destroy(struct rt_eshadow *e)
{
	rt__own_close(e->sfd);
	free(e);
}

/* The shadow of epfd, made on first use (under g_net.reg). */
static long shadow_of(int epfd, struct rt_eshadow **out)
{
	struct rt_eshadow *e = rt__nobj_peek(epfd, RT_NOBJ_EPOLL);
	struct epoll_event ev;
	long r;

	if (e) {
		*out = e;
		return 0;
	}
	if (rt_fd_kind(epfd) != RT_FD_NONE)
		return rt_fd_kind(epfd) == RT_FD_OWNED ? -EBADF : -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->obj.type = RT_NOBJ_EPOLL;
	atomic_init(&e->obj.refs, 0);
	r = rt__raw(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (r >= 0)
		r = rt__own_fd((int)r);
	if (r < 0) {
		free(e);
		return r;
	}
	e->sfd = (int)r;
	if (!g_salt)
		g_salt = rt__now_ns() * 0x9e3779b97f4a7c15ull | 1;
	e->marker = (uint64_t)(uintptr_t)e ^ g_salt;
	ev.events = EPOLLIN;
	ev.data.u64 = e->marker;
	r = rt__raw(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, e->sfd, &ev);
	if (r < 0) {
		rt__own_close(e->sfd);
		free(e);
		return r;
	}
	rt__nobj_set_locked(epfd, e); /* the fd named nothing before */
	*out = e;
	return 0;
}

static struct rt_ereg *find_reg(struct rt_eshadow *e, int fd, struct rt_conn *c)
{
	for (struct rt_ereg *r = e->regs; r; r = r->ep_next)
		if (r->fd == fd && r->c == c)
			return r;
	return NULL;
}

static void sticky_add(struct rt_ereg *r)
{
	if (r->sticky || (r->events & EPOLLET) || !(r->events & EPOLLIN))
		return;
	r->sticky = true;
	r->s_next = r->ep->sticky;
	r->ep->sticky = r;
}

bool rt__epoll_ctl(int epfd, int op, int fd, const struct epoll_event *uev, long *ret)
{
	struct epoll_event ev = { 0 };
	struct rt_eshadow *e;
	struct rt_ereg *r;
	struct rt_conn *c;
	struct rt_guard g;
	long res;

	if (rt_fd_kind(fd) != RT_FD_NET)
		return false;
	if (op != EPOLL_CTL_DEL && rt__copy_in(&ev, uev, sizeof(ev))) {
		*ret = -EFAULT;
		return true;
	}
	rt__enter(&g);
	c = rt__nobj_get(fd, RT_NOBJ_CONN);
	rt__leave(&g);
	if (!c)
		return false;
	if (epfd == fd) {
		rt__enter(&g);
		rt__nobj_put(c, -1);
		rt__leave(&g);
		*ret = -EINVAL;
		return true;
	}
	rt__enter(&g);
	pthread_mutex_lock(&g_net.reg);
	res = shadow_of(epfd, &e);
	if (res < 0)
		goto out;
	r = find_reg(e, fd, c);
	switch (op) {
	case EPOLL_CTL_ADD:
		if (r) {
			res = -EEXIST;
			break;
		}
		r = calloc(1, sizeof(*r));
		if (!r || slot_new(r) < 0) {
			free(r);
			res = -ENOMEM;
			break;
		}
		r->ep = e;
		r->c = c;
		r->fd = fd;
		/* EPOLLEXCLUSIVE registrations cannot be modified, and the shadow's
		 * must follow the connection's state: dropped (it only spreads
		 * wake-ups among processes; nothing is lost without it). */
		r->events = ev.events & ~EPOLLEXCLUSIVE;
		r->data = ev.data.u64;
		r->kevents = kevents_of(r);
		res = shadow_ctl(e, EPOLL_CTL_ADD, r);
		if (res < 0) {
			g_regs[r->idx] = NULL;
			free(r);
			break;
		}
		r->ep_next = e->regs;
		e->regs = r;
		r->c_next = c->regs;
		c->regs = r;
		if (atomic_load(&c->buffered))
			sticky_add(r);
		break;
	case EPOLL_CTL_MOD:
		if (!r) {
			res = -ENOENT;
			break;
		}
		if (ev.events & EPOLLEXCLUSIVE) {
			res = -EINVAL;
			break;
		}
		r->events = ev.events;
		r->data = ev.data.u64;
		r->disabled = false;
		r->kevents = kevents_of(r);
		res = shadow_ctl(e, EPOLL_CTL_MOD, r);
		if (atomic_load(&c->buffered))
			sticky_add(r);
		break;
	case EPOLL_CTL_DEL:
		if (!r) {
			res = -ENOENT;
			break;
		}
		reg_drop(r, true);
		res = 0;
		break;
	default:
		res = -EINVAL;
	}
out:
	pthread_mutex_unlock(&g_net.reg);
	rt__nobj_put(c, -1);
	rt__leave(&g);
	*ret = res;
	return true;
}

void rt__conn_changed(struct rt_conn *c)
{
	struct rt_guard g;

	if (!c->regs)
		return;
	rt__enter(&g);
	pthread_mutex_lock(&g_net.reg);
	for (struct rt_ereg *r = c->regs; r; r = r->c_next) {
		uint32_t k = kevents_of(r);

		if (atomic_load(&c->buffered))
			sticky_add(r);
		if (r->disabled || k == r->kevents)
			continue;
		r->kevents = k;
		shadow_ctl(r->ep, EPOLL_CTL_MOD, r);
	}
	pthread_mutex_unlock(&g_net.reg);
	rt__leave(&g);
}

/* A registration's event as the program may see it, given the kernel's kev
 * (0: none). One reference on r->c is held by the caller. */
static uint32_t visible(struct rt_conn *c, int fd, uint32_t events, uint32_t kev)
{
	unsigned want = events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI);
	unsigned v = rt__conn_ready_now(c, want);

	if (!v)
		v = rt__conn_poll(c, fd, want, kev);
	return v & (want | EPOLLERR | EPOLLHUP);
}

struct pick {
	struct rt_conn *c;
	uint64_t h;
	int fd;
	uint32_t events;
	uint64_t data;
};

/* Answer for the sticky list and the shadow's events: appended to out[*n]
 * up to max. from_kernel: harvest the shadow. Inside the caller's guard
 * (it waits for nothing). */
static long collect(struct rt_eshadow *e, struct epoll_event *out, int *n, int max,
		    bool from_kernel)
{
	struct epoll_event kev[HARVEST];
	struct pick picks[HARVEST];
	int np = 0, k = 0;

	if (from_kernel) {
		int room = max - *n < HARVEST ? max - *n : HARVEST;
		long got = rt__raw(SYS_epoll_wait, e->sfd, kev, room, 0);

		k = got > 0 ? (int)got : 0;
	}
	pthread_mutex_lock(&g_net.reg);
	if (!from_kernel) {
		struct rt_ereg **pp = &e->sticky;

		while (*pp && np < HARVEST && np < max - *n) {
			struct rt_ereg *r = *pp;

			if (!atomic_load(&r->c->buffered) || r->disabled || (r->events & EPOLLET)) {
				r->sticky = false;
				*pp = r->s_next;
				continue;
			}
			atomic_fetch_add(&r->c->obj.refs, 1);
			picks[np++] = (struct pick){ r->c, handle(r), r->fd, r->events, r->data };
			pp = &r->s_next;
		}
	}
	for (int i = 0; i < k; i++) {
		struct rt_ereg *r = by_handle(kev[i].data.u64);

		if (!r)
			continue; /* removed meanwhile */
		atomic_fetch_add(&r->c->obj.refs, 1);
		picks[np] = (struct pick){ r->c, handle(r), r->fd, r->events, r->data };
		kev[np++].events = kev[i].events;
	}
	pthread_mutex_unlock(&g_net.reg);
	for (int i = 0; i < np; i++) {
		uint32_t v = visible(picks[i].c, picks[i].fd, picks[i].events,
				     from_kernel ? kev[i].events : 0);
		struct rt_ereg *r;

		pthread_mutex_lock(&g_net.reg);
		r = by_handle(picks[i].h);
		if (r && (r->events & EPOLLONESHOT)) {
			if (v)
				r->disabled = true;
			else if (from_kernel)
				shadow_ctl(e, EPOLL_CTL_MOD, r); /* not the program's event: arm again */
		}
		if (r && atomic_load(&r->c->buffered))
			sticky_add(r);
		pthread_mutex_unlock(&g_net.reg);
		if (v && r && *n < max) {
			struct epoll_event ev = { .events = v, .data.u64 = picks[i].data };

			if (rt__copy_out(&out[*n], &ev, sizeof(ev))) {
				for (int j = i; j < np; j++)
					rt__nobj_put(picks[j].c, -1);
				return -EFAULT;
			}
			(*n)++;
		}
		rt__nobj_put(picks[i].c, -1);
	}
	return 0;
}

static int64_t remaining_ms(int64_t deadline_ns)
{
	int64_t left;

	if (deadline_ns < 0)
		return -1;
	left = deadline_ns - (int64_t)rt__now_ns();
	return left <= 0 ? 0 : (left + 999999) / 1000000;
}

long rt__epoll_wait(int epfd, struct epoll_event *uev, int max, int timeout_ms,
		    const void *sigmask, size_t sigsize)
{
	int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)rt__now_ns() + timeout_ms * 1000000ll;
	struct rt_eshadow *e;
	struct rt_guard g;
	long ret;

	/* One guard before the wait and one after it: a call costs two pairs of
	 * rt_sigprocmask however many connections it answers for. */
	rt__enter(&g);
	e = rt__nobj_get(epfd, RT_NOBJ_EPOLL);
	if (!e) {
		rt__leave(&g);
		return -ENOENT; /* not ours: the caller issues the call */
	}
	if (max <= 0 || max > EP_MAX_EVENTS) {
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		int n = 0, m;
		bool marker = false;
		long k;

		ret = collect(e, uev, &n, max, false);
		if (ret < 0)
			break;
		/* With the program's signal mask, as its own call would wait. */
		rt__leave(&g);
		k = rt__raw(SYS_epoll_pwait, epfd, uev + n, max - n, n ? 0 : remaining_ms(deadline),
			    sigmask, sigsize);
		rt__enter(&g);
		if (k < 0) {
			ret = n ? n : k;
			break;
		}
		/* The program's own events stay; the marker means: ask the shadow. */
		m = n;
		for (long i = n; i < n + k; i++) {
			struct epoll_event ev;

			if (rt__copy_in(&ev, &uev[i], sizeof(ev))) {
				ret = -EFAULT;
				goto out;
			}
			if (ev.data.u64 == e->marker) {
				marker = true;
				continue;
			}
			if (m != i && rt__copy_out(&uev[m], &ev, sizeof(ev))) {
				ret = -EFAULT;
				goto out;
			}
			m++;
		}
		n = m;
		if (marker) {
			ret = collect(e, uev, &n, max, true);
			if (ret < 0)
				break;
		}
		if (n || remaining_ms(deadline) == 0) {
			ret = n;
			break;
		}
	}
out:
	rt__nobj_put(e, -1);
	rt__leave(&g);
	return ret;
}

/* ---- connections added to an epoll instance before connect() -------------- */
void rt__epoll_adopt(int fd, struct rt_conn *c)
{
	char path[64], buf[4096];

	(void)c;
	/* The program's epoll fds (net.c notes them as epoll_create makes
	 * them): a "tfd: FD" line in /proc/self/fdinfo/EPFD is a registration
	 * of fd, with its events and data. */
	for (int ep = rt__net_epfd_next(-1); ep >= 0; ep = rt__net_epfd_next(ep)) {
		struct epoll_event ev;
		unsigned events = 0;
		unsigned long long data = 0;
		char *p, *q, *d, want[32];
		long n, r;
		int pf;

		if (ep == fd)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
		pf = (int)rt__raw(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
		if (pf < 0)
			continue;
		n = rt__raw(SYS_read, pf, buf, sizeof(buf) - 1);
		rt__raw(SYS_close, pf);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		snprintf(want, sizeof(want), "tfd: %8d ", fd);
		p = strstr(buf, want);
		q = p ? strstr(p, "events:") : NULL;
		d = p ? strstr(p, "data:") : NULL;
		if (!q || !d || sscanf(q, "events: %x", &events) != 1 ||
		    sscanf(d, "data: %llx", &data) != 1)
			continue;
		ev.events = events;
		ev.data.u64 = data;
		if (rt__raw(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, fd, NULL) == 0)
			rt__epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev, &r);
	}
}

/* ---- poll ------------------------------------------------------------------ */
long rt__poll(struct pollfd *ufds, unsigned long n, int64_t timeout_ns, const void *sigmask,
	      size_t sigsize)
{
	struct pollfd stack[64], *kfds, *pfds;
	struct rt_conn *cstack[64], **conns;
	int64_t deadline = timeout_ns < 0 ? -1 : (int64_t)rt__now_ns() + timeout_ns;
	unsigned long held = 0;
	bool any = false;
	long ret;

	if (n > (unsigned long)RT_FD_MAX)
		return -EINVAL;
	kfds = n <= 32 ? stack : malloc(2 * n * sizeof(*kfds));
	conns = n <= 64 ? cstack : calloc(n, sizeof(*conns));
	if (!kfds || !conns) {
		ret = -ENOMEM;
		goto out;
	}
	pfds = kfds + n;
	if (n && rt__copy_in(pfds, ufds, n * sizeof(*pfds))) {
		ret = -EFAULT;
		goto out;
	}
	for (unsigned long i = 0; i < n; i++) {
		conns[i] = NULL;
		if (rt_fd_kind(pfds[i].fd) == RT_FD_NET) {
			struct rt_guard g;

			rt__enter(&g);
			conns[i] = rt__nobj_get(pfds[i].fd, RT_NOBJ_CONN);
			rt__leave(&g);
		}
		held = i + 1;
		any |= conns[i] != NULL;
	}
	if (!any) {
		ret = -ENOENT; /* not ours */
		goto out;
	}
	for (;;) {
		long k, count = 0;
		bool now = false;
		struct timespec ts, *tsp = NULL;
		int64_t left;

		for (unsigned long i = 0; i < n; i++) {
			kfds[i] = pfds[i];
			kfds[i].revents = 0;
			if (!conns[i])
				continue;
			kfds[i].events = (short)rt__conn_interest(conns[i], (unsigned short)pfds[i].events);
			/* Plaintext already held, or a failure: no need to wait. */
			if (rt__conn_ready_now(conns[i], (unsigned short)pfds[i].events) ||
			    atomic_load(&conns[i]->buffered))
				now = true;
			if (!kfds[i].events)
				kfds[i].fd = -1;
		}
		left = now ? 0 : deadline < 0 ? -1 : deadline - (int64_t)rt__now_ns();
		if (deadline >= 0 && left < 0)
			left = 0;
		if (left >= 0) {
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		k = rt__raw(SYS_ppoll, kfds, n, tsp, sigmask, sigsize);
		if (k < 0) {
			ret = k;
			goto out;
		}
		for (unsigned long i = 0; i < n; i++) {
			unsigned want = (unsigned short)pfds[i].events;
			unsigned v;

			if (!conns[i]) {
				pfds[i].revents = kfds[i].revents;
			} else {
				v = rt__conn_ready_now(conns[i], want);
				if (!v && (kfds[i].revents || atomic_load(&conns[i]->buffered)))
					v = rt__conn_poll(conns[i], pfds[i].fd, want,
							  (unsigned short)kfds[i].revents);
				pfds[i].revents = (short)(v & (want | POLLERR | POLLHUP | POLLNVAL));
			}
			count += pfds[i].revents != 0;
		}
		if (count || (deadline >= 0 && (int64_t)rt__now_ns() >= deadline)) {
			for (unsigned long i = 0; i < n; i++)
				if (rt__copy_out(&ufds[i].revents, &pfds[i].revents,
						 sizeof(pfds[i].revents))) {
					ret = -EFAULT;
					goto out;
				}
			ret = count;
			goto out;
		}
	}
out:
	if (conns) {
		struct rt_guard g;

		rt__enter(&g);
		for (unsigned long i = 0; i < held; i++)
			if (conns[i])
				rt__nobj_put(conns[i], -1);
		rt__leave(&g);
	}
	if (kfds != stack)
		free(kfds);
	if (conns != cstack)
		free(conns);
	return ret;
}
