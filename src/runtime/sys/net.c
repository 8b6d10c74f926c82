/* kiln runtime: the socket family (network and console shields). While a grant
 * configured either shield, rt__dispatch offers every call to rt__net_call
 * first. It answers:
 *
 *   - the data calls on a shield fd (read/write families, recv/send families,
 *     sendfile and splice into or out of one, shutdown, SO_ERROR, FIONBIO,
 *     FIONREAD, F_SETFL);
 *   - the calls that make or end a connection: connect (connect rules and the
 *     default), bind and listen (the default), accept and accept4 (listen
 *     rules, looked up from the accepted socket's own port, so a listening
 *     socket inherited or shared across fork needs no state);
 *   - the fd calls that copy or drop a shield fd (close, dup*, F_DUPFD*,
 *     close_range), before the rest of the runtime sees them;
 *   - the readiness calls (sys/poll.c);
 *   - io_uring_setup (refused: a ring would bypass the shields).
 * Everything else goes on through the usual dispatch. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "runtime/net/internal.h"
#include "runtime/sys/sys.h"

#define IOV_MAX_COPY 1024

/* The program's iovec array into iov (at most IOV_MAX_COPY): its count. */
static long iov_in(struct iovec *iov, const struct iovec *uiov, long cnt)
{
	if (cnt < 0 || cnt > IOV_MAX_COPY)
		return -EINVAL;
	if (cnt && rt__copy_in(iov, uiov, (size_t)cnt * sizeof(*iov)))
		return -EFAULT;
	for (long i = 0; i < cnt; i++)
		if ((ssize_t)iov[i].iov_len < 0)
			return -EINVAL;
	return cnt;
}

/* One data call on the object behind fd. write: the direction. */
static long data(int fd, const struct iovec *iov, int cnt, int flags, bool write)
{
	struct rt_guard g;
	struct rt_nobj *o;
	long r = -EBADF;

	rt__enter(&g);
	o = rt__nobj_get(fd, 0);
	if (o && o->type == RT_NOBJ_CONN)
		r = write ? rt__conn_write((struct rt_conn *)o, fd, iov, cnt, flags, &g) :
			    rt__conn_read((struct rt_conn *)o, fd, iov, cnt, flags, &g);
	else if (o && o->type == RT_NOBJ_CON)
		r = write ? rt__con_write((struct rt_con *)o, fd, iov, cnt, &g) :
			    rt__con_read((struct rt_con *)o, fd, iov, cnt, &g);
	else if (o)
		r = -EINVAL; /* read or write on an epoll fd */
	if (o)
		rt__nobj_put(o, -1);
	rt__leave(&g);
	/* SIGPIPE as the kernel sends it, once signals are the program's again. */
	if (t_net_sigpipe) {
		t_net_sigpipe = false;
		rt__raw(SYS_tgkill, rt__raw0(SYS_getpid), rt__raw0(SYS_gettid), SIGPIPE);
	}
	return r;
}

/* recvmsg/sendmsg: the program's msghdr. TCP carries no address and the
 * shields no ancillary data: both come back empty. */
static long msg_call(int fd, struct msghdr *umsg, int flags, bool write)
{
	struct iovec iov[IOV_MAX_COPY];
	struct msghdr m;
	long cnt, r;

	if (rt__copy_in(&m, umsg, sizeof(m)))
		return -EFAULT;
	cnt = iov_in(iov, m.msg_iov, (long)m.msg_iovlen);
	if (cnt < 0)
		return cnt;
	r = data(fd, iov, (int)cnt, flags, write);
	if (!write && r >= 0) {
		m.msg_namelen = 0;
		m.msg_controllen = 0;
		m.msg_flags = 0;
		if (rt__copy_out(umsg, &m, sizeof(m)))
			return -EFAULT;
	}
	return r;
}

/* sendmmsg/recvmmsg: one message after the other. */
static long mmsg_call(int fd, struct mmsghdr *uv, unsigned vlen, int flags, bool write)
{
	unsigned i;

	if (vlen > IOV_MAX_COPY)
		vlen = IOV_MAX_COPY;
	for (i = 0; i < vlen; i++) {
		/* After the first, a receive waits no more (MSG_WAITFORONE's sense). */
		long r = msg_call(fd, &uv[i].msg_hdr, flags | (i && !write ? MSG_DONTWAIT : 0),
				  write);
		unsigned len;

		if (r < 0)
			return i ? (long)i : r;
		len = (unsigned)r;
		if (rt__copy_out(&uv[i].msg_len, &len, sizeof(len)))
			return i ? (long)i : -EFAULT;
	}
	return (long)i;
}

static long io_call(long nr, const long a[6])
{
	struct iovec iov[IOV_MAX_COPY];
	long cnt;

	switch (nr) {
	case SYS_read:
	case SYS_write:
		iov[0].iov_base = (void *)a[1];
		iov[0].iov_len = (size_t)a[2];
		return data((int)a[0], iov, 1, 0, nr == SYS_write);
	case SYS_recvfrom:
	case SYS_sendto:
		iov[0].iov_base = (void *)a[1];
		iov[0].iov_len = (size_t)a[2];
		if (nr == SYS_recvfrom && a[5]) {
			socklen_t zero = 0; /* a connected stream names no source */

			if (rt__copy_out((void *)a[5], &zero, sizeof(zero)))
				return -EFAULT;
		}
		return data((int)a[0], iov, 1, (int)a[3], nr == SYS_sendto);
	case SYS_readv:
	case SYS_writev:
		cnt = iov_in(iov, (const struct iovec *)a[1], a[2]);
		return cnt < 0 ? cnt : data((int)a[0], iov, (int)cnt, 0, nr == SYS_writev);
	case SYS_recvmsg:
	case SYS_sendmsg:
		return msg_call((int)a[0], (struct msghdr *)a[1], (int)a[2], nr == SYS_sendmsg);
	case SYS_recvmmsg:
	case SYS_sendmmsg:
		return mmsg_call((int)a[0], (struct mmsghdr *)a[1], (unsigned)a[2], (int)a[3],
				 nr == SYS_sendmmsg);
	}
	return -ENOSYS;
}

/* sendfile(out, in, off, n) and splice with a shield fd at one end. */
static long transfer(long nr, const long a[6], bool *mine)
{
	int out = nr == SYS_sendfile ? (int)a[0] : (int)a[2];
	int in = nr == SYS_sendfile ? (int)a[1] : (int)a[0];
	struct rt_nobj *oo, *oi;
	struct rt_guard g;
	int64_t off = 0, *offp = NULL;
	long r = -EINVAL;

	/* One guard for the call (send_from leaves it only to read a file the
	 * runtime serves). */
	rt__enter(&g);
	oo = rt__nobj_get(out, 0);
	oi = nr == SYS_splice ? rt__nobj_get(in, RT_NOBJ_CONN) : NULL;
	*mine = (oo && oo->type != RT_NOBJ_EPOLL) || oi;
	if (!*mine)
		goto out;
	if (nr == SYS_sendfile && a[2]) {
		if (rt__copy_in(&off, (void *)a[2], sizeof(off))) {
			r = -EFAULT;
			goto out;
		}
		offp = &off;
	}
	if (nr == SYS_splice && ((oi && a[1]) || (oo && a[3]))) {
		r = -ESPIPE; /* a socket end has no offset */
		goto out;
	}
	if (oi)
		r = rt__conn_splice_to((struct rt_conn *)oi, in, out, (size_t)a[4],
				       (a[5] & SPLICE_F_NONBLOCK) != 0, &g);
	else if (oo->type == RT_NOBJ_CONN)
		r = rt__conn_send_from((struct rt_conn *)oo, out, in, offp,
				       (size_t)(nr == SYS_sendfile ? a[3] : a[4]),
				       nr == SYS_splice, &g);
	else
		r = rt__con_send_from((struct rt_con *)oo, out, in, offp,
				      (size_t)(nr == SYS_sendfile ? a[3] : a[4]), &g);
	if (r >= 0 && offp && rt__copy_out((void *)a[2], &off, sizeof(off)))
		r = -EFAULT;
out:
	if (oo)
		rt__nobj_put(oo, -1);
	if (oi)
		rt__nobj_put(oi, -1);
	rt__leave(&g);
	if (t_net_sigpipe) {
		t_net_sigpipe = false;
		rt__raw(SYS_tgkill, rt__raw0(SYS_getpid), rt__raw0(SYS_gettid), SIGPIPE);
	}
	return r;
}

/* ---- making and ending connections ---------------------------------------------- */
static void refuse(const char *what, const struct sockaddr *sa, socklen_t len)
{
	char addr[64];

	rt__addr_str(sa, len, addr, sizeof(addr));
	rt__say("network: %s %s refused by the policy (default: deny): EACCES", what, addr);
}

static bool inet(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
}

static long do_connect(const long a[6], bool *mine)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)a[2];
	const struct rt_connect_rule *rule;
	struct rt_conn *c;
	struct rt_guard g;
	char rname[300];
	int type = 0, fd = (int)a[0];
	socklen_t tl = sizeof(type);
	long r, fl;

	*mine = false;
	if (len < sizeof(sa_family_t) || len > sizeof(ss) || rt_fd_kind(fd) == RT_FD_NET ||
	    rt__copy_in(&ss, (void *)a[1], len) || !inet(&ss))
		return 0; /* the kernel answers */
	rule = rt__connect_rule((struct sockaddr *)&ss, len);
	if (!rule && !g_net.cfg.deny)
		return 0;
	*mine = true;
	if (!rule) {
		refuse("connect to", (struct sockaddr *)&ss, len);
		return -EACCES;
	}
	if (rule->plain) {
		*mine = false;
		return 0;
	}
	if (rt__raw(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_STREAM) {
		refuse("a datagram to the TLS destination", (struct sockaddr *)&ss, len);
		return -EACCES;
	}
	fl = rt__raw(SYS_fcntl, fd, F_GETFL);
	snprintf(rname, sizeof(rname), "connect %s:%u", rule->host, rule->port);
	rt__enter(&g);
	r = rt__conn_new(fd, false, rule->ctx, rule->name, rname, (struct sockaddr *)&ss, len,
			 fl >= 0 && (fl & O_NONBLOCK), &c);
	if (r == 0) {
		rt__nobj_set(fd, c);
		rt__nobj_put(c, -1); /* the fd holds it now */
	}
	rt__leave(&g);
	if (r < 0)
		return r;
	rt__epoll_adopt(fd, c);
	r = rt__raw(SYS_connect, fd, &ss, len);
	if (r == -EINPROGRESS || r == -EINTR)
		return r; /* poll/epoll or the first I/O take it on */
	if (r < 0) {
		/* No TCP connection: the socket is an ordinary one again. */
		rt__enter(&g);
		rt__nobj_forget(fd);
		rt__leave(&g);
		return r;
	}
	rt__enter(&g);
	c = rt__nobj_get(fd, RT_NOBJ_CONN);
	if (c && atomic_load(&c->nonblock)) {
		/* Connected at once although non-blocking (loopback): the
		 * handshake starts with the first call that can wait for it. */
		atomic_store(&c->state, RT_C_HANDSHAKE);
		pthread_mutex_lock(&g_net.reg);
		c->deadline_ns = rt__now_ns() + (uint64_t)g_net.cfg.handshake_ms * 1000000ull;
		rt__engine_timer(c);
		pthread_mutex_unlock(&g_net.reg);
		r = 0;
	} else if (c) {
		r = rt__conn_connect_done(c, fd, &g);
	}
	if (c)
		rt__nobj_put(c, -1);
	rt__leave(&g);
	return r;
}

/* bind and listen under default: deny: only the ports of listen rules. */
static long do_bind_listen(long nr, const long a[6], bool *mine)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port;

	*mine = false;
	if (!g_net.cfg.deny)
		return 0;
	if (nr == SYS_bind) {
		len = (socklen_t)a[2];
		if (len < sizeof(sa_family_t) || len > sizeof(ss) ||
		    rt__copy_in(&ss, (void *)a[1], len))
			return 0;
	} else if (rt__raw(SYS_getsockname, a[0], &ss, &len) < 0) {
		return 0;
	}
	if (!inet(&ss) || (port = rt__addr_port((struct sockaddr *)&ss, len)) < 0)
		return 0;
	/* bind to port 0 picks a port: its listen() is checked then. */
	if ((nr == SYS_bind && port == 0) || rt__listen_rule((uint16_t)port))
		return 0;
	*mine = true;
	refuse(nr == SYS_bind ? "bind to" : "listen on", (struct sockaddr *)&ss, len);
	return -EACCES;
}

static long do_accept(long nr, const long a[6])
{
	struct sockaddr_storage peer, local;
	socklen_t plen = sizeof(peer), llen = sizeof(local), ulen = 0;
	int flags = nr == SYS_accept4 ? (int)a[3] : 0;
	const struct rt_listen_rule *rule;
	struct rt_conn *c;
	struct rt_guard g;
	char rname[32];
	long fd, r;

	if (a[2] && rt__copy_in(&ulen, (void *)a[2], sizeof(ulen)))
		return -EFAULT;
	fd = rt__raw(SYS_accept4, a[0], &peer, &plen, flags);
	if (fd < 0)
		return fd;
	if (a[1] && a[2]) {
		/* The program's address, as the kernel would have written it. */
		if ((ulen && rt__copy_out((void *)a[1], &peer, ulen < plen ? ulen : plen)) ||
		    rt__copy_out((void *)a[2], &plen, sizeof(plen))) {
			rt__raw(SYS_close, fd);
			return -EFAULT;
		}
	}
	if (!g_net.cfg.n_listen || !inet(&peer) ||
	    rt__raw(SYS_getsockname, fd, &local, &llen) < 0)
		return fd;
	rule = rt__listen_rule((uint16_t)rt__addr_port((struct sockaddr *)&local, llen));
	if (!rule || rule->plain)
		return fd;
	snprintf(rname, sizeof(rname), "listen %u", rule->port);
	rt__enter(&g);
	r = rt__conn_new((int)fd, true, rule->ctx, NULL, rname, (struct sockaddr *)&peer, plen,
			 (flags & SOCK_NONBLOCK) != 0, &c);
	if (r == 0) {
		rt__nobj_set((int)fd, c);
		rt__nobj_put(c, -1);
	}
	rt__leave(&g);
	if (r < 0) {
		/* Never a plaintext socket where the policy says TLS. */
		rt__raw(SYS_close, fd);
		return r;
	}
	return fd;
}

/* sendto/sendmsg with MSG_FASTOPEN connect as they send. */
static long fastopen(long nr, const long a[6], bool *mine)
{
	struct sockaddr_storage ss;
	const void *uaddr = NULL;
	socklen_t len = 0;
	long ca[6] = { a[0], 0, 0 }, r;

	*mine = false;
	if (nr == SYS_sendto) {
		uaddr = (const void *)a[4];
		len = (socklen_t)a[5];
	} else {
		struct msghdr m;

		if (rt__copy_in(&m, (void *)a[1], sizeof(m)))
			return 0;
		uaddr = m.msg_name;
		len = m.msg_namelen;
	}
	if (!uaddr || len < sizeof(sa_family_t) || len > sizeof(ss) ||
	    rt__copy_in(&ss, uaddr, len) || !inet(&ss))
		return 0;
	if (!rt__connect_rule((struct sockaddr *)&ss, len) && !g_net.cfg.deny)
		return 0;
	/* A TLS destination (or a refusal): connect first, as connect() would,
	 * then send through the shield. */
	*mine = true;
	ca[1] = (long)uaddr;
	ca[2] = len;
	r = do_connect(ca, mine);
	if (!*mine) {
		*mine = true; /* plain rule: the kernel's fast open */
		return rt__raw6(nr, a);
	}
	if (r < 0)
		return r;
	{
		long b[6] = { a[0], a[1], a[2], a[3] & ~MSG_FASTOPEN, 0, 0 };

		if (nr == SYS_sendmsg)
			b[2] = a[2] & ~MSG_FASTOPEN;
		return io_call(nr, b);
	}
}

/* ---- fds: copies and ends --------------------------------------------------------- */
static long dup_call(long nr, const long a[6], bool *mine)
{
	int old = (int)a[0];
	bool old_net = rt_fd_kind(old) == RT_FD_NET;
	long r;

	*mine = false;
	if ((nr == SYS_dup2 || nr == SYS_dup3) && a[1] != a[0] && rt_fd_kind((int)a[1]) == RT_FD_NET) {
		struct rt_guard g;

		/* dup2 closes the target silently: its shield object goes first. */
		rt__enter(&g);
		rt__nobj_forget((int)a[1]);
		rt__leave(&g);
	}
	if (!old_net)
		return 0;
	*mine = true;
	r = rt__raw6(nr, a);
	if (r >= 0 && r != old) {
		struct rt_guard g;
		struct rt_nobj *o;

		rt__enter(&g);
		o = rt__nobj_get(old, 0);
		if (o) {
			rt__nobj_set((int)r, o);
			rt__nobj_put(o, -1);
		}
		if (rt__net_epfd_next(old - 1) == old)
			rt__net_epfd_note((int)r, true);
		rt__leave(&g);
	}
	return r;
}

static long fcntl_call(const long a[6], bool *mine)
{
	struct rt_conn *c;
	struct rt_guard g;
	long r;

	*mine = false;
	if (a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC)
		return dup_call(SYS_fcntl, a, mine);
	if (a[1] != F_SETFL || rt_fd_kind((int)a[0]) != RT_FD_NET)
		return 0;
	*mine = true;
	r = rt__raw(SYS_fcntl, a[0], a[1], a[2]);
	rt__enter(&g);
	c = r == 0 ? rt__nobj_get((int)a[0], RT_NOBJ_CONN) : NULL;
	if (c) {
		atomic_store(&c->nonblock, (a[2] & O_NONBLOCK) != 0);
		rt__nobj_put(c, -1);
	}
	rt__leave(&g);
	return r;
}

static long ioctl_call(const long a[6], bool *mine)
{
	struct rt_conn *c;
	struct rt_guard g;
	int v = 0;
	long r = 0;

	*mine = false;
	if ((a[1] != FIONBIO && a[1] != FIONREAD) || rt_fd_kind((int)a[0]) != RT_FD_NET)
		return 0;
	rt__enter(&g);
	c = rt__nobj_get((int)a[0], RT_NOBJ_CONN);
	rt__leave(&g);
	if (!c)
		return 0;
	*mine = true;
	if (a[1] == FIONBIO) {
		r = rt__raw(SYS_ioctl, a[0], a[1], a[2]);
		if (r == 0 && !rt__copy_in(&v, (void *)a[2], sizeof(v)))
			atomic_store(&c->nonblock, v != 0);
	} else {
		/* The plaintext the next read returns at once. */
		rt__enter(&g);
		pthread_mutex_lock(&c->lock);
		v = SSL_pending(c->ssl);
		pthread_mutex_unlock(&c->lock);
		rt__leave(&g);
		r = rt__copy_out((void *)a[2], &v, sizeof(v)) ? -EFAULT : 0;
	}
	rt__enter(&g);
	rt__nobj_put(c, -1);
	rt__leave(&g);
	return r;
}

static long sockopt_call(const long a[6], bool *mine)
{
	struct rt_conn *c;
	struct rt_guard g;
	socklen_t len;
	int e;

	*mine = false;
	if (a[1] != SOL_SOCKET || a[2] != SO_ERROR || rt_fd_kind((int)a[0]) != RT_FD_NET)
		return 0;
	rt__enter(&g);
	c = rt__nobj_get((int)a[0], RT_NOBJ_CONN);
	e = c ? rt__conn_so_error(c) : -1;
	if (c)
		rt__nobj_put(c, -1);
	rt__leave(&g);
	if (e < 0)
		return 0; /* the kernel's SO_ERROR */
	*mine = true;
	len = sizeof(e);
	if (rt__copy_out((void *)a[3], &e, sizeof(e)) || rt__copy_out((void *)a[4], &len, sizeof(len)))
		return -EFAULT;
	return 0;
}

static long shutdown_call(const long a[6], bool *mine)
{
	struct rt_conn *c;
	struct rt_guard g;
	long r;

	rt__enter(&g);
	c = rt__nobj_get((int)a[0], RT_NOBJ_CONN);
	*mine = c != NULL;
	r = c ? rt__conn_shutdown(c, (int)a[0], (int)a[1], &g) : 0;
	if (c)
		rt__nobj_put(c, -1);
	rt__leave(&g);
	return r;
}

/* close and close_range drop shield objects; the fds close as usual. */
static void forget_range(unsigned first, unsigned last, unsigned flags)
{
	struct rt_guard g;

	if (flags & CLOSE_RANGE_CLOEXEC)
		return;
	rt__enter(&g);
	for (unsigned fd = first; fd <= last && fd < RT_FD_MAX; fd++)
		if (rt_fd_kind((int)fd) == RT_FD_NET)
			rt__nobj_forget((int)fd);
	rt__leave(&g);
}

/* ---- the entry ------------------------------------------------------------------- */
static bool net_fd(long fd)
{
	return rt_fd_kind((int)fd) == RT_FD_NET;
}

/* Does the call go on writing to fd (the fd this thread's held plaintext is
 * for)? Then the plaintext may join its record. */
static bool sends_on(long nr, const long a[6], int fd)
{
	switch (nr) {
	case SYS_write:
	case SYS_writev:
	case SYS_sendto:
	case SYS_sendmsg:
	case SYS_sendmmsg:
	case SYS_sendfile:
		return a[0] == fd;
	case SYS_splice:
		return a[2] == fd;
	default:
		return false;
	}
}

/* What a call does to this thread's held plaintext (net/hold.c): 0 nothing
 * (memory management and the like: the calls libc makes holding its own
 * locks, malloc's among them, which sealing a record takes), 1 flush it now
 * (a call that may wait, or that the peer may see the effect of: I/O on any
 * fd, readiness, the calls that make or end connections, sleeps, process
 * waits, exec and exit), 2 have the engine seal it at once (a futex wait:
 * libc makes one inside its own locks). */
static int hold_point(long nr, const long a[6])
{
	switch (nr) {
	case SYS_read: case SYS_write: case SYS_readv: case SYS_writev:
	case SYS_pread64: case SYS_pwrite64: case SYS_preadv: case SYS_pwritev:
	case SYS_preadv2: case SYS_pwritev2: case SYS_recvfrom: case SYS_recvmsg:
	case SYS_recvmmsg: case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg:
	case SYS_sendfile: case SYS_splice: case SYS_tee: case SYS_vmsplice:
	case SYS_copy_file_range: case SYS_poll: case SYS_ppoll: case SYS_select:
	case SYS_pselect6: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2:
	case SYS_accept: case SYS_accept4: case SYS_connect: case SYS_shutdown:
	case SYS_close: case SYS_close_range: case SYS_dup2: case SYS_dup3:
	case SYS_setsockopt: case SYS_open: case SYS_openat: case SYS_openat2:
	case SYS_fsync: case SYS_fdatasync: case SYS_flock: case SYS_nanosleep:
	case SYS_clock_nanosleep: case SYS_pause: case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait: case SYS_wait4: case SYS_waitid: case SYS_sched_yield:
	case SYS_msgrcv: case SYS_msgsnd: case SYS_semop: case SYS_semtimedop:
	case SYS_execve: case SYS_execveat: case SYS_exit: case SYS_exit_group:
		return 1;
	case SYS_futex:
		switch (a[1] & FUTEX_CMD_MASK) {
		case FUTEX_WAIT: case FUTEX_WAIT_BITSET: case FUTEX_LOCK_PI:
		case FUTEX_LOCK_PI2: case FUTEX_WAIT_REQUEUE_PI:
			return 2;
		default:
			return 0;
		}
#ifdef SYS_futex_waitv
	case SYS_futex_waitv:
		return 2;
#endif
	default:
		return 0;
	}
}

/* Every connection's held plaintext and waiting ciphertext goes out
 * (exit_group, execve: the threads that held it and the engine thread that
 * would send it will not). */
static void flush_all(void)
{
	struct rt_thread *t = rt__thread_peek();
	struct rt_guard g;

	/* From a handler of the program (_exit in a handler) the code it
	 * interrupted may hold libc's locks, malloc's among them, which sealing
	 * takes: what is held then is lost, as on a reset. */
	if (t && t->in_handler)
		return;

	rt__enter(&g);
	pthread_mutex_lock(&g_net.reg);
	rt__hold_sweep(~0ull, NULL, 0);
	rt__engine_drain_for_exit();
	pthread_mutex_unlock(&g_net.reg);
	rt__leave(&g);
}

bool rt__net_call(long nr, const long a[6], long *ret)
{
	struct rt_thread *t = rt__thread_peek();
	bool mine = false;

	if (t && t->net_held && !sends_on(nr, a, t->net_held - 1)) {
		int how = hold_point(nr, a);

		/* Inside a handler of the program, libc may hold any of its locks
		 * in the code the signal interrupted: the engine seals. */
		if (how == 2 || (how == 1 && t->in_handler))
			rt__net_hold_kick();
		else if (how == 1)
			rt__net_hold_flush();
	}

	switch (nr) {
	case SYS_read:
	case SYS_write:
	case SYS_readv:
	case SYS_writev:
	case SYS_recvmsg:
	case SYS_recvmmsg:
	case SYS_sendmmsg:
	case SYS_recvfrom:
		if (!net_fd(a[0]))
			return false;
		*ret = io_call(nr, a);
		return true;
	case SYS_sendto:
	case SYS_sendmsg:
		if (net_fd(a[0])) {
			*ret = io_call(nr, a);
			return true;
		}
		if (!((nr == SYS_sendto ? a[3] : a[2]) & MSG_FASTOPEN) || !g_net.cfg.on)
			return false;
		*ret = fastopen(nr, a, &mine);
		return mine;
	case SYS_sendfile:
	case SYS_splice:
		if (!net_fd(a[0]) && !net_fd(nr == SYS_sendfile ? a[1] : a[2]))
			return false;
		*ret = transfer(nr, a, &mine);
		return mine;
	case SYS_shutdown:
		if (!net_fd(a[0]))
			return false;
		*ret = shutdown_call(a, &mine);
		return mine;
	case SYS_getsockopt:
		*ret = sockopt_call(a, &mine);
		return mine;
	case SYS_ioctl:
		*ret = ioctl_call(a, &mine);
		return mine;
	case SYS_fcntl:
		*ret = fcntl_call(a, &mine);
		return mine;
	case SYS_dup:
	case SYS_dup2:
	case SYS_dup3:
		*ret = dup_call(nr, a, &mine);
		return mine;
	case SYS_close:
		if (net_fd(a[0]))
			forget_range((unsigned)a[0], (unsigned)a[0], 0);
		return false;
	case SYS_close_range:
		forget_range((unsigned)a[0], (unsigned)a[1], (unsigned)a[2]);
		return false;
	case SYS_connect:
		if (!g_net.cfg.on)
			return false;
		*ret = do_connect(a, &mine);
		return mine;
	case SYS_bind:
	case SYS_listen:
		*ret = do_bind_listen(nr, a, &mine);
		return mine;
	case SYS_accept:
	case SYS_accept4:
		if (!g_net.cfg.n_listen)
			return false;
		*ret = do_accept(nr, a);
		return true;
	case SYS_exit_group:
		flush_all();
		rt__net_exit((int)a[0]);
		return false;
	case SYS_execve:
	case SYS_execveat:
		flush_all();
		return false;
	case SYS_setsockopt:
		/* TCP_NODELAY, uncorking: what another thread held goes now too. */
		if (net_fd(a[0])) {
			struct rt_guard g;

			rt__enter(&g);
			rt__hold_flush_fd((int)a[0]);
			rt__leave(&g);
		}
		return false;
	case SYS_io_uring_setup:
		rt__net_say_once("io_uring", "io_uring_setup: refused under the network and "
				 "console shields (a ring would bypass them)");
		*ret = -ENOSYS;
		return true;
	default:
		return rt__net_event_call(nr, a, ret);
	}
}
