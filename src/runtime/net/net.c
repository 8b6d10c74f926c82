/* kiln runtime: the network and console shields' shared state: start-up from
 * the grant, the objects behind RT_FD_NET fds, fork and exit. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "runtime/net/internal.h"

struct rt_net g_net = { .reg = PTHREAD_MUTEX_INITIALIZER };

uint64_t rt__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *rt__libc_sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

void rt__net_say_once(const char *key, const char *fmt, ...)
{
	static const char *said[64];
	static size_t n_said;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char msg[512];
	va_list ap;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_said; i++)
		if (said[i] == key) {
			pthread_mutex_unlock(&lock);
			return;
		}
	if (n_said < KILN_ARRAY_SIZE(said))
		said[n_said++] = key;
	pthread_mutex_unlock(&lock);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rt__say("%s", msg);
}

/* ---- start -------------------------------------------------------------------- */
int rt__net_init(const struct rt_json *grant, struct kiln_err *err)
{
	const struct rt_json *net = rt_json_get(grant, "network");
	const struct rt_json *con = rt_json_get(grant, "console");
	int ret;

	if (!net && !con)
		return 0;
	if (net) {
		ret = rt__net_rules_init(net, err);
		if (ret < 0)
			return ret;
	}
	if (con) {
		ret = rt__con_init(con, err);
		if (ret < 0)
			return ret;
		g_net.console = true;
	}
	return 0;
}

/* ---- objects behind fds -------------------------------------------------------- */
static bool type_ok(struct rt_nobj *o, enum rt_nobj_type type)
{
	return o && (o->type == (uint32_t)type || type == 0);
}

void *rt__nobj_peek(int fd, enum rt_nobj_type type)
{
	struct rt_nobj *o;

	if (rt_fd_kind(fd) != RT_FD_NET)
		return NULL;
	o = rt_fd_get(fd);
	return type_ok(o, type) ? o : NULL;
}

void *rt__nobj_get(int fd, enum rt_nobj_type type)
{
	struct rt_nobj *o;

	if (rt_fd_kind(fd) != RT_FD_NET)
		return NULL;
	/* Under the registry lock: a close in another thread drops the fd's
	 * reference under it too, so the object cannot go in between. */
	pthread_mutex_lock(&g_net.reg);
	o = rt__nobj_peek(fd, type);
	if (o)
		atomic_fetch_add(&o->refs, 1);
	pthread_mutex_unlock(&g_net.reg);
	return o;
}

static void destroy(struct rt_nobj *o, int fd)
{
	switch (o->type) {
	case RT_NOBJ_CONN:
		rt__conn_destroy((struct rt_conn *)o, fd);
		break;
	case RT_NOBJ_EPOLL:
		rt__eshadow_destroy((struct rt_eshadow *)o);
		break;
	case RT_NOBJ_CON:
		rt__con_put((struct rt_con *)o);
		break;
	}
}

/* The last reference (under g_net.reg): out of every list. */
static void unlink_obj(struct rt_nobj *o)
{
	if (o->type == RT_NOBJ_CONN)
		rt__conn_unlink((struct rt_conn *)o);
	else if (o->type == RT_NOBJ_EPOLL)
		rt__eshadow_unlink((struct rt_eshadow *)o);
}

void rt__nobj_put(void *obj, int fd)
{
	struct rt_nobj *o = obj;
	int old = atomic_load(&o->refs);

	/* Not the last: no lock. The last one goes under the registry lock, so
	 * that whoever finds the object there may still take a hold. */
	while (old > 1)
		if (atomic_compare_exchange_weak(&o->refs, &old, old - 1))
			return;
	pthread_mutex_lock(&g_net.reg);
	if (atomic_fetch_sub(&o->refs, 1) != 1) {
		pthread_mutex_unlock(&g_net.reg);
		return;
	}
	unlink_obj(o);
	pthread_mutex_unlock(&g_net.reg);
	destroy(o, fd);
}

void *rt__nobj_set_locked(int fd, void *obj)
{
	struct rt_nobj *o = obj;
	enum rt_fd_kind kind;
	void *old;

	atomic_fetch_add(&o->refs, 1);
	old = rt_fd_clear(fd, &kind);
	rt_fd_set(fd, RT_FD_NET, o);
	return kind == RT_FD_NET ? old : NULL;
}

void rt__nobj_set(int fd, void *obj)
{
	void *old;

	pthread_mutex_lock(&g_net.reg);
	old = rt__nobj_set_locked(fd, obj);
	pthread_mutex_unlock(&g_net.reg);
	if (old)
		rt__nobj_put(old, -1);
}

void rt__nobj_forget(int fd)
{
	struct rt_nobj *o = NULL;
	enum rt_fd_kind kind;
	void *old;

	if (rt_fd_kind(fd) != RT_FD_NET)
		return;
	pthread_mutex_lock(&g_net.reg);
	if (rt_fd_kind(fd) == RT_FD_NET) {
		old = rt_fd_clear(fd, &kind);
		o = kind == RT_FD_NET ? old : NULL;
	}
	pthread_mutex_unlock(&g_net.reg);
	rt__net_epfd_note(fd, false);
	if (o)
		rt__nobj_put(o, fd);
}

/* ---- the program's epoll fds ---------------------------------------------------- */
static _Atomic uint64_t g_epfds[RT_FD_MAX / 64];

void rt__net_epfd_note(int fd, bool is)
{
	if (!rt_fd_in_range(fd))
		return;
	if (is)
		atomic_fetch_or(&g_epfds[fd / 64], 1ull << (fd % 64));
	else if (atomic_load(&g_epfds[fd / 64]) & (1ull << (fd % 64)))
		atomic_fetch_and(&g_epfds[fd / 64], ~(1ull << (fd % 64)));
}

int rt__net_epfd_next(int fd)
{
	for (int i = fd + 1; i < RT_FD_MAX; i++) {
		uint64_t w = atomic_load(&g_epfds[i / 64]) >> (i % 64);

		if (!w) {
			i = (i / 64 + 1) * 64 - 1;
			continue;
		}
		if (w & 1)
			return i;
	}
	return -1;
}

/* ---- fork and exit ------------------------------------------------------------- */
void rt__net_before_fork(void)
{
	pthread_mutex_lock(&g_net.reg);
}

void rt__net_parent_after_fork(void)
{
	pthread_mutex_unlock(&g_net.reg);
}

void rt__net_child_after_fork(void)
{
	pid_t me = (pid_t)rt__raw0(SYS_getpid);

	/* No other thread here: every lock starts free. A session that started
	 * in the parent stays the parent's (the same keys and sequence numbers
	 * here would reuse AES-GCM nonces); one that has not started is free to
	 * start in whichever process uses it first. */
	pthread_mutex_init(&g_net.reg, NULL);
	for (struct rt_conn *c = g_net.conns; c; c = c->next) {
		pthread_mutex_init(&c->lock, NULL);
		pthread_mutex_init(&c->wlock, NULL);
		c->flushing = false;
		if (c->tls_started)
			c->foreign = true;
		else
			c->owner = me;
		/* What the parent's threads held is the parent's to send. */
		free(c->pend);
		c->pend = NULL;
		c->pend_len = 0;
		atomic_store(&c->pend_ns, 0);
	}
	rt__engine_after_fork();
	if (g_net.console)
		rt__con_after_fork();
}

void rt__net_exit(int status)
{
	if (g_net.console)
		rt__con_exit(status);
}
