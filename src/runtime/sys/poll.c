/* kiln runtime: the readiness calls while the network shield is on (poll,
 * ppoll, select, pselect6, epoll_*): answered by net/ready.c when a shielded
 * connection is among their fds (or, for epoll_wait, when the epoll instance
 * holds one), issued unchanged otherwise. select and pselect6 go through
 * poll's code (their fd sets converted). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>

#include "runtime/net/internal.h"
#include "runtime/sys/sys.h"

struct sigarg {
	const void *mask;
	size_t size;
};

/* A timeout in ns from the program's timespec (-1: none; -EFAULT/-EINVAL). */
static int64_t ts_ns(const void *uts, bool *bad)
{
	struct timespec ts;

	*bad = false;
	if (!uts)
		return -1;
	if (rt__copy_in(&ts, uts, sizeof(ts)) || ts.tv_sec < 0 || ts.tv_nsec < 0 ||
	    ts.tv_nsec >= 1000000000) {
		*bad = true;
		return 0;
	}
	if (ts.tv_sec > INT64_MAX / 1000000000 - 1)
		return -1;
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* select's fd sets: do any of the first nfds name a shielded connection? */
static bool sets_touch(int nfds, const uint64_t *sets[3])
{
	for (int fd = 0; fd < nfds; fd++) {
		bool in = false;

		for (int s = 0; s < 3; s++)
			if (sets[s] && (sets[s][fd / 64] >> (fd % 64) & 1))
				in = true;
		if (in && rt_fd_kind(fd) == RT_FD_NET &&
		    rt__nobj_peek(fd, RT_NOBJ_CONN))
			return true;
	}
	return false;
}

/* select/pselect6 through poll: -ENOENT when no shielded connection is in the
 * sets (the caller issues the call). */
static long select_poll(long nfds, void *usets[3], int64_t timeout_ns, const struct sigarg *sa)
{
	size_t words = ((size_t)nfds + 63) / 64;
	uint64_t *sets[3] = { NULL, NULL, NULL };
	struct pollfd *pf = NULL;
	size_t n = 0;
	long r, count = 0;

	if (nfds < 0 || nfds > RT_FD_MAX)
		return nfds < 0 ? -EINVAL : -ENOENT;
	for (int s = 0; s < 3; s++) {
		if (!usets[s])
			continue;
		sets[s] = calloc(words ? words : 1, sizeof(uint64_t));
		if (!sets[s]) {
			r = -ENOMEM;
			goto out;
		}
		if (words && rt__copy_in(sets[s], usets[s], words * sizeof(uint64_t))) {
			r = -EFAULT;
			goto out;
		}
	}
	if (!sets_touch((int)nfds, (const uint64_t **)sets)) {
		r = -ENOENT;
		goto out;
	}
	pf = calloc((size_t)nfds, sizeof(*pf));
	if (!pf) {
		r = -ENOMEM;
		goto out;
	}
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;

		if (sets[0] && (sets[0][fd / 64] >> (fd % 64) & 1))
			ev |= POLLIN;
		if (sets[1] && (sets[1][fd / 64] >> (fd % 64) & 1))
			ev |= POLLOUT;
		if (sets[2] && (sets[2][fd / 64] >> (fd % 64) & 1))
			ev |= POLLPRI;
		if (ev) {
			pf[n].fd = fd;
			pf[n++].events = ev;
		}
	}
	r = rt__poll(pf, n, timeout_ns, sa ? sa->mask : NULL, sa ? sa->size : 8);
	if (r < 0)
		goto out;
	for (int s = 0; s < 3; s++)
		if (sets[s])
			memset(sets[s], 0, words * sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) {
		short rv = pf[i].revents;
		int fd = pf[i].fd;

		if (rv & POLLNVAL) {
			r = -EBADF;
			goto out;
		}
		if (sets[0] && (pf[i].events & POLLIN) && (rv & (POLLIN | POLLHUP | POLLERR))) {
			sets[0][fd / 64] |= 1ull << (fd % 64);
			count++;
		}
		if (sets[1] && (pf[i].events & POLLOUT) && (rv & (POLLOUT | POLLERR))) {
			sets[1][fd / 64] |= 1ull << (fd % 64);
			count++;
		}
		if (sets[2] && (pf[i].events & POLLPRI) && (rv & POLLPRI)) {
			sets[2][fd / 64] |= 1ull << (fd % 64);
			count++;
		}
	}
	for (int s = 0; s < 3; s++)
		if (sets[s] && words && rt__copy_out(usets[s], sets[s], words * sizeof(uint64_t))) {
			r = -EFAULT;
			goto out;
		}
	r = count;
out:
	for (int s = 0; s < 3; s++)
		free(sets[s]);
	free(pf);
	return r;
}

bool rt__net_event_call(long nr, const long a[6], long *ret)
{
	struct sigarg sa = { NULL, 8 };
	int64_t t;
	bool bad;
	long r;

	switch (nr) {
	case SYS_epoll_create:
	case SYS_epoll_create1:
		r = rt__raw6(nr, a);
		if (r >= 0)
			rt__net_epfd_note((int)r, true);
		*ret = r;
		return true;
	case SYS_epoll_ctl:
		return rt__epoll_ctl((int)a[0], (int)a[1], (int)a[2],
				     (const struct epoll_event *)a[3], ret);
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
		if (rt_fd_kind((int)a[0]) != RT_FD_NET)
			return false;
		t = a[3];
		if (nr == SYS_epoll_pwait2) {
			t = ts_ns((const void *)a[3], &bad);
			if (bad) {
				*ret = -EINVAL;
				return true;
			}
			/* Milliseconds, rounded up: no busy loop on a short wait. */
			t = t < 0 ? -1 : (t + 999999) / 1000000;
		}
		r = rt__epoll_wait((int)a[0], (struct epoll_event *)a[1], (int)a[2],
				   t > INT32_MAX ? INT32_MAX : (int)t,
				   nr == SYS_epoll_wait ? NULL : (const void *)a[4],
				   nr == SYS_epoll_wait ? 8 : (size_t)a[5]);
		if (r == -ENOENT)
			return false;
		*ret = r;
		return true;
	case SYS_poll:
		r = rt__poll((struct pollfd *)a[0], (unsigned long)a[1],
			     a[2] < 0 ? -1 : a[2] * 1000000ll, NULL, 8);
		break;
	case SYS_ppoll:
		t = ts_ns((const void *)a[2], &bad);
		if (bad) {
			*ret = -EFAULT;
			return true;
		}
		r = rt__poll((struct pollfd *)a[0], (unsigned long)a[1], t, (const void *)a[3],
			     (size_t)a[4]);
		break;
	case SYS_select: {
		struct timeval tv;
		void *sets[3] = { (void *)a[1], (void *)a[2], (void *)a[3] };

		t = -1;
		if (a[4]) {
			if (rt__copy_in(&tv, (void *)a[4], sizeof(tv)) || tv.tv_sec < 0 ||
			    tv.tv_usec < 0 || tv.tv_usec >= 1000000) {
				*ret = -EINVAL;
				return true;
			}
			t = tv.tv_sec * 1000000000ll + tv.tv_usec * 1000ll;
		}
		r = select_poll(a[0], sets, t, NULL);
		break;
	}
	case SYS_pselect6: {
		void *sets[3] = { (void *)a[1], (void *)a[2], (void *)a[3] };
		struct { const void *mask; size_t size; } us = { NULL, 8 };

		t = ts_ns((const void *)a[4], &bad);
		if (bad || (a[5] && rt__copy_in(&us, (void *)a[5], sizeof(us)))) {
			*ret = bad ? -EINVAL : -EFAULT;
			return true;
		}
		sa.mask = us.mask;
		sa.size = us.size;
		r = select_poll(a[0], sets, t, &sa);
		break;
	}
	default:
		return false;
	}
	if (r == -ENOENT)
		return false;
	*ret = r;
	return true;
}
