/* Deadline-bounded line I/O on stream sockets (the kiln-las protocol: one JSON
 * line each way), shared by the LAS daemon, its clients and libkiln. */
#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Wait until fd is ready for events or the deadline passes. */
static int wait_ready(int fd, short events, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		uint64_t now = kiln_now_ns();

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)((deadline_ns - now) / 1000000) + 1) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int kiln_send_all_deadline(int fd, const void *data, size_t size, uint64_t deadline_ns)
{
	const uint8_t *p = data;

	while (size > 0) {
		int ret = wait_ready(fd, POLLOUT, deadline_ns);
		ssize_t n;

		if (ret < 0)
			return ret;
		n = send(fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

int kiln_recv_line_deadline(int fd, size_t max_size, uint64_t deadline_ns, char **out,
			    size_t *size)
{
	size_t cap = max_size < 4096 ? max_size + 2 : 4096, len = 0;
	char *buf = malloc(cap), *tmp;
	int ret;

	*out = NULL;
	*size = 0;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		char *nl;
		ssize_t n;

		ret = wait_ready(fd, POLLIN, deadline_ns);
		if (ret < 0)
			goto fail;
		if (len + 1 == cap) {
			/* A line of max_size bytes plus its newline fits in max_size + 2. */
			if (cap >= max_size + 2) {
				ret = -EMSGSIZE;
				goto fail;
			}
			cap = cap * 2 > max_size + 2 ? max_size + 2 : cap * 2;
			tmp = realloc(buf, cap);
			if (!tmp) {
				ret = -ENOMEM;
				goto fail;
			}
			buf = tmp;
		}
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ret = -errno;
			goto fail;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			goto fail;
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl) {
			if (nl != buf + len - 1) {
				ret = -KILN_ETRAILING;
				goto fail;
			}
			len--;
			buf[len] = '\0';
			if (len > max_size) {
				ret = -EMSGSIZE;
				goto fail;
			}
			*out = buf;
			*size = len;
			return 0;
		}
	}
fail:
	free(buf);
	return ret;
}

int kiln_send_fd_deadline(int sock, const void *data, size_t size, int fd,
			  uint64_t deadline_ns)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	ssize_t n;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	for (;;) {
		int ret = wait_ready(sock, POLLOUT, deadline_ns);

		if (ret < 0)
			return ret;
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return kiln_send_all_deadline(sock, (const uint8_t *)data + n, size - (size_t)n,
				      deadline_ns);
}

ssize_t kiln_recv_fd_deadline(int sock, void *buf, size_t size, int flags,
			      uint64_t deadline_ns, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	for (;;) {
		int ret = wait_ready(sock, POLLIN, deadline_ns);

		if (ret < 0)
			return ret;
		n = recvmsg(sock, &mh, flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	if ((c && *fd < 0) || (mh.msg_flags & MSG_CTRUNC)) {
		/* Several descriptors, or other control data: keep none. */
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EPROTO;
	}
	return n;
}
