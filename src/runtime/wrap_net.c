/* kiln runtime: LD_PRELOAD wrappers of the socket calls a program makes per
 * connection (connect, bind, listen, shutdown, getsockopt) and of the
 * readiness calls wrap.c has not (select, pselect, ppoll, epoll_create*), so
 * that under the network shield they cost no SUD trap; they dispatch as the
 * trap would. And getaddrinfo, whose answers the network shield notes: a
 * connect rule that names a host matches the addresses the program's own
 * lookup of that name returned (net/rules.c). */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "runtime/net_load.h"

#define RT_EXPORT __attribute__((visibility("default")))
#define DECL(type, name, ...) RT_EXPORT type name(__VA_ARGS__)

static long call(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long a[6] = { a0, a1, a2, a3, a4, a5 };
	long r = rt__dispatch(nr, a, NULL);

	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

DECL(int, connect, int fd, const struct sockaddr *addr, socklen_t len);
int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return (int)call(SYS_connect, fd, (long)addr, len, 0, 0, 0);
}

DECL(int, bind, int fd, const struct sockaddr *addr, socklen_t len);
int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	return (int)call(SYS_bind, fd, (long)addr, len, 0, 0, 0);
}

DECL(int, listen, int fd, int backlog);
int listen(int fd, int backlog)
{
	return (int)call(SYS_listen, fd, backlog, 0, 0, 0, 0);
}

DECL(int, shutdown, int fd, int how);
int shutdown(int fd, int how)
{
	return (int)call(SYS_shutdown, fd, how, 0, 0, 0, 0);
}

DECL(int, getsockopt, int fd, int level, int name, void *val, socklen_t *len);
int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	return (int)call(SYS_getsockopt, fd, level, name, (long)val, (long)len, 0);
}

DECL(int, select, int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv);
int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	return (int)call(SYS_select, n, (long)r, (long)w, (long)e, (long)tv, 0);
}

DECL(int, pselect, int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
     const sigset_t *mask);
int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
	    const sigset_t *mask)
{
	/* The kernel's pselect6 changes the timeout; pselect's must not. */
	struct timespec copy, *tp = NULL;
	struct { const sigset_t *mask; size_t size; } sig = { mask, 8 };

	if (ts) {
		copy = *ts;
		tp = &copy;
	}
	return (int)call(SYS_pselect6, n, (long)r, (long)w, (long)e, (long)tp,
			 mask ? (long)&sig : 0);
}

DECL(int, ppoll, struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask);
int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	struct timespec copy, *tp = NULL;

	if (ts) {
		copy = *ts;
		tp = &copy;
	}
	return (int)call(SYS_ppoll, (long)fds, (long)n, (long)tp, (long)mask, 8, 0);
}

DECL(int, epoll_create, int size);
int epoll_create(int size)
{
	return (int)call(SYS_epoll_create, size, 0, 0, 0, 0, 0);
}

DECL(int, epoll_create1, int flags);
int epoll_create1(int flags)
{
	return (int)call(SYS_epoll_create1, flags, 0, 0, 0, 0, 0);
}

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

DECL(int, getaddrinfo, const char *node, const char *service, const struct addrinfo *hints,
     struct addrinfo **res);
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static gai_fn real;
	int r;

	if (!real)
		real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	if (!real)
		return EAI_SYSTEM;
	r = real(node, service, hints, res);
	if (r == 0 && g_rt_net_on && res && *res)
		g_rt_net->saw_addrs(node, *res);
	return r;
}
