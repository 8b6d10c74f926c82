/* kiln runtime: AF_UNIX socket addresses that name a path in a volume (bind,
 * connect, sendto) and the names the kernel gives back (getsockname,
 * getpeername). The socket node lives in the volume, the kernel's socket file
 * in the volume server's private directory under its inode number
 * (shield/special.c): the program's path never reaches the host. Other
 * addresses (other families, abstract and unnamed sockets, paths outside
 * every volume) pass unchanged. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "runtime/sys/sys.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

/* 1 when (uaddr, len) is an AF_UNIX path in a volume (t resolved, path: the
 * program's bytes), 0 when the call is none of ours, -errno. */
static long unix_target(const void *uaddr, long len, struct rt_target *t,
			char path[static sizeof(((struct sockaddr_un *)0)->sun_path) + 1])
{
	struct sockaddr_un sa;

	if (!uaddr || len <= (long)SUN_OFF || len > (long)sizeof(sa))
		return 0;
	memset(&sa, 0, sizeof(sa));
	if (rt__copy_in(&sa, uaddr, (size_t)len))
		return -EFAULT;
	if (sa.sun_family != AF_UNIX || !sa.sun_path[0])
		return 0;
	memcpy(path, sa.sun_path, (size_t)len - SUN_OFF);
	path[len - (long)SUN_OFF] = '\0';
	return rt__resolve(AT_FDCWD, path, t) ? 1 : 0;
}

static socklen_t real_addr(const char *real, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, real, strlen(real) + 1);
	return (socklen_t)(SUN_OFF + strlen(real) + 1);
}

/* The kernel object of the socket node t names. connect(2)'s errnos: a name
 * that is not a socket, ECONNREFUSED. */
static long peer_of(struct rt_target *t, struct sockaddr_un *sa, socklen_t *len)
{
	char real[RT_SPECIAL_PATH_MAX];
	long r = rt__shield_special(t, S_IFSOCK, real);

	if (r > 0)
		return -ECONNREFUSED;
	if (r < 0)
		return r;
	*len = real_addr(real, sa);
	return 0;
}

long rt__sys_bind(long nr, const long a[6])
{
	char real[RT_SPECIAL_PATH_MAX], given[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct sockaddr_un sa;
	struct rt_target t;
	long r = unix_target((const void *)a[1], a[2], &t, given);

	if (r <= 0)
		return r < 0 ? r : rt__raw6(nr, a);
	r = rt__shield_bind_node(&t, given, 0777, real);
	if (r)
		return r;
	r = rt__raw(SYS_bind, a[0], &sa, real_addr(real, &sa));
	if (r < 0)
		rt__shield_unlink(&t, 0); /* the node goes with the failed bind */
	return r;
}

long rt__sys_connect(long nr, const long a[6])
{
	char given[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct sockaddr_un sa;
	struct rt_target t;
	socklen_t len;
	long r = unix_target((const void *)a[1], a[2], &t, given);

	if (r <= 0)
		return r < 0 ? r : rt__raw6(nr, a);
	r = peer_of(&t, &sa, &len);
	return r ? r : rt__raw(SYS_connect, a[0], &sa, len);
}

long rt__sys_sendto(long nr, const long a[6])
{
	char given[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct sockaddr_un sa;
	struct rt_target t;
	socklen_t len;
	long r = unix_target((const void *)a[4], a[5], &t, given);

	if (r <= 0)
		return r < 0 ? r : rt__raw6(nr, a);
	r = peer_of(&t, &sa, &len);
	return r ? r : rt__raw(SYS_sendto, a[0], a[1], a[2], a[3], &sa, len);
}

/* The kernel's name of a socket, with the program's path put back for one
 * this process bound in a volume. */
static long name_of(long nr, const long a[6])
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa), ulen;
	char prog[RT_PATH_SIZE];
	long r;

	if (!a[1] || !a[2])
		return rt__raw6(nr, a);
	if (rt__copy_in(&ulen, (const void *)a[2], sizeof(ulen)))
		return -EFAULT;
	memset(&sa, 0, sizeof(sa));
	r = rt__raw(nr, a[0], &sa, &len);
	if (r < 0)
		return r;
	if (sa.sun_family != AF_UNIX || len <= SUN_OFF || !sa.sun_path[0] ||
	    !rt__shield_socket_name(sa.sun_path, prog, sizeof(prog)) ||
	    strlen(prog) >= sizeof(sa.sun_path))
		return rt__raw6(nr, a);
	len = real_addr(prog, &sa);
	if (rt__copy_out((void *)a[1], &sa, ulen < len ? ulen : len) ||
	    rt__copy_out((void *)a[2], &len, sizeof(len)))
		return -EFAULT;
	return 0;
}

long rt__sys_getsockname(long nr, const long a[6])
{
	return name_of(nr, a);
}

long rt__sys_getpeername(long nr, const long a[6])
{
	return name_of(nr, a);
}
