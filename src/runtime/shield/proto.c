/* kiln runtime, file shield v2: the message format between the volume server
 * and its clients, and the packet transport (layouts in proto.h).
 *
 * A message is one SOCK_SEQPACKET packet:
 *   op u32 | body_len u32 | flags u32 | mode u32 | pid u32 | 0 u32 |
 *   id u64 | a u64 | b u64 | tail
 * The tail is what the op fixes: nothing, one or two NUL-terminated strings
 * followed by the caller's credentials (uid, gid, ngroups, groups: u32 each),
 * or a nonce (and a MAC). Both sides parse with rt__msg_parse, which accepts
 * only exactly that shape: the server treats every client as hostile until it
 * has proved the key, and still checks every message afterwards. */
#include "runtime/shield/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FIXED 40 /* flags, mode, pid, pad, id, a, b */
#define RT_TAG_BYTES 16 /* PF_STREAM_TAG */

enum shape { NONE, STR1, STR2, NONCE, NONCE_MAC, TAGS };

static enum shape shape_of(uint32_t op)
{
	switch (op) {
	case RT_OP_WSTREAM:
		return TAGS;
	case RT_OP_HELLO:
		return NONCE;
	case RT_OP_AUTH:
		return NONCE_MAC;
	case RT_OP_OPEN:
	case RT_OP_STAT:
	case RT_OP_UNLINK:
	case RT_OP_MKDIR:
	case RT_OP_READDIR:
	case RT_OP_TRUNCATE:
	case RT_OP_CHMOD:
	case RT_OP_UTIMES:
	case RT_OP_CHOWN:
	case RT_OP_READLINK:
	case RT_OP_MKNOD:
	case RT_OP_ESCAPE:
		return STR1;
	case RT_OP_RENAME:
	case RT_OP_LINK:
	case RT_OP_SYMLINK:
		return STR2;
	default:
		return NONE;
	}
}

int rt__open_may(int flags)
{
	int acc = flags & O_ACCMODE, mask = 0;

	if (acc == O_RDONLY || acc == O_RDWR)
		mask |= R_OK;
	if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC))
		mask |= W_OK;
	return mask;
}

bool rt__msg_has_cred(uint32_t op)
{
	return shape_of(op) == STR1 || shape_of(op) == STR2;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int put_str(uint8_t *buf, size_t size, size_t *off, const char *s)
{
	size_t n = strlen(s ? s : "");

	if (n > RT_MSG_PATH_MAX)
		return -ENAMETOOLONG;
	if (*off + n + 1 > size)
		return -EINVAL;
	memcpy(buf + *off, s ? s : "", n + 1);
	*off += n + 1;
	return 0;
}

static int put_cred(const struct rt_msg *m, uint8_t *buf, size_t size, size_t *off)
{
	uint32_t n = m->cred ? m->cred->ngroups : m->ngroups;

	if (n > RT_CRED_GROUPS)
		return -EINVAL;
	if (*off + 12 + 4 * (size_t)n > size)
		return -EINVAL;
	put32(buf + *off, m->cred ? m->cred->uid : m->uid);
	put32(buf + *off + 4, m->cred ? m->cred->gid : m->gid);
	put32(buf + *off + 8, n);
	*off += 12;
	for (uint32_t i = 0; i < n; i++, *off += 4) {
		if (m->cred)
			put32(buf + *off, m->cred->groups[i]);
		else
			memcpy(buf + *off, m->groups_le + 4 * (size_t)i, 4);
	}
	return 0;
}

ssize_t rt__msg_encode(const struct rt_msg *m, uint8_t *buf, size_t size)
{
	size_t off = RT_MSG_HDR + FIXED;
	int ret = 0;

	if (m->op == 0 || m->op >= RT_OP_MAX_ || size < off)
		return -EINVAL;
	put32(buf, m->op);
	put32(buf + 8, m->flags);
	put32(buf + 12, m->mode);
	put32(buf + 16, m->pid);
	put32(buf + 20, 0);
	put64(buf + 24, m->id);
	put64(buf + 32, m->a);
	put64(buf + 40, m->b);
	switch (shape_of(m->op)) {
	case NONE:
		break;
	case TAGS:
		if (!(m->flags & RT_WSTREAM_DONE))
			break;
		if (m->b > RT_WSTREAM_MAX || off + m->b * RT_TAG_BYTES > size)
			return -EINVAL;
		memcpy(buf + off, m->tags, m->b * RT_TAG_BYTES);
		off += m->b * RT_TAG_BYTES;
		break;
	case STR2:
		ret = put_str(buf, size, &off, m->path);
		if (!ret)
			ret = put_str(buf, size, &off, m->path2);
		if (!ret)
			ret = put_cred(m, buf, size, &off);
		break;
	case STR1:
		ret = put_str(buf, size, &off, m->path);
		if (!ret)
			ret = put_cred(m, buf, size, &off);
		break;
	case NONCE_MAC:
	case NONCE:
		if (off + RT_NONCE_SIZE + RT_MAC_SIZE > size)
			return -EINVAL;
		memcpy(buf + off, m->nonce, RT_NONCE_SIZE);
		off += RT_NONCE_SIZE;
		if (shape_of(m->op) == NONCE_MAC) {
			memcpy(buf + off, m->mac, RT_MAC_SIZE);
			off += RT_MAC_SIZE;
		}
		break;
	}
	if (ret)
		return ret;
	put32(buf + 4, (uint32_t)(off - RT_MSG_HDR));
	return (ssize_t)off;
}

/* One string at *off: NUL within RT_MSG_PATH_MAX + 1 bytes and the packet. */
static int get_str(const uint8_t *buf, size_t size, size_t *off, const char **out)
{
	size_t room = size - *off;
	const uint8_t *nul;

	if (room > RT_MSG_PATH_MAX + 1)
		room = RT_MSG_PATH_MAX + 1;
	nul = memchr(buf + *off, '\0', room);
	if (!nul)
		return -EPROTO;
	*out = (const char *)buf + *off;
	*off = (size_t)(nul - buf) + 1;
	return 0;
}

static int get_cred(const uint8_t *buf, size_t size, size_t *off, struct rt_msg *m)
{
	if (size - *off < 12)
		return -EPROTO;
	m->uid = get32(buf + *off);
	m->gid = get32(buf + *off + 4);
	m->ngroups = get32(buf + *off + 8);
	*off += 12;
	if (m->ngroups > RT_CRED_GROUPS || size - *off < 4 * (size_t)m->ngroups)
		return -EPROTO;
	m->groups_le = buf + *off;
	*off += 4 * (size_t)m->ngroups;
	return 0;
}

void rt__msg_cred(const struct rt_msg *m, struct rt_cred *out)
{
	out->uid = m->uid;
	out->gid = m->gid;
	out->ngroups = m->ngroups <= RT_CRED_GROUPS ? m->ngroups : 0;
	for (uint32_t i = 0; i < out->ngroups; i++)
		out->groups[i] = get32(m->groups_le + 4 * (size_t)i);
}

int rt__msg_parse(const uint8_t *buf, size_t size, struct rt_msg *m)
{
	size_t off = RT_MSG_HDR + FIXED;
	int ret = 0;

	memset(m, 0, sizeof(*m));
	if (size < off || size > RT_MSG_MAX || get32(buf + 4) != size - RT_MSG_HDR)
		return -EPROTO;
	m->op = get32(buf);
	if (m->op == 0 || m->op >= RT_OP_MAX_ || get32(buf + 20) != 0)
		return -EPROTO;
	m->flags = get32(buf + 8);
	m->mode = get32(buf + 12);
	m->pid = get32(buf + 16);
	m->id = get64(buf + 24);
	m->a = get64(buf + 32);
	m->b = get64(buf + 40);
	switch (shape_of(m->op)) {
	case NONE:
		break;
	case TAGS:
		/* Exactly b tags with DONE, nothing else. */
		if (m->flags & RT_WSTREAM_DONE) {
			if (m->b > RT_WSTREAM_MAX || size - off < m->b * RT_TAG_BYTES)
				return -EPROTO;
			m->tags = buf + off;
			off += m->b * RT_TAG_BYTES;
		}
		break;
	case STR2:
		ret = get_str(buf, size, &off, &m->path);
		if (!ret)
			ret = get_str(buf, size, &off, &m->path2);
		if (!ret)
			ret = get_cred(buf, size, &off, m);
		break;
	case STR1:
		ret = get_str(buf, size, &off, &m->path);
		if (!ret)
			ret = get_cred(buf, size, &off, m);
		break;
	case NONCE_MAC:
	case NONCE:
		if (size - off < RT_NONCE_SIZE)
			return -EPROTO;
		m->nonce = buf + off;
		off += RT_NONCE_SIZE;
		if (shape_of(m->op) == NONCE_MAC) {
			if (size - off < RT_MAC_SIZE)
				return -EPROTO;
			m->mac = buf + off;
			off += RT_MAC_SIZE;
		}
		break;
	}
	if (ret || off != size) {
		memset(m, 0, sizeof(*m));
		return -EPROTO;
	}
	return 0;
}

/* ---- packets ------------------------------------------------------------------ */
int rt__pkt_send(int sock, const void *buf, size_t size, const int *fds, int nfds,
		 bool dontwait)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.space;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm.h.cmsg_level = SOL_SOCKET;
		cm.h.cmsg_type = SCM_RIGHTS;
		cm.h.cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(&cm.h), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == size ? 0 : -EIO;
}

ssize_t rt__pkt_recv(int sock, void *buf, size_t size, int *fds, int *nfds, bool dontwait)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			      .msg_controllen = sizeof(cm.space) };
	ssize_t n;
	int got = 0;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		int k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (fds && got < 2)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	if (nfds)
		*nfds = got;
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		if (nfds)
			*nfds = 0;
		return -EMSGSIZE;
	}
	return n;
}

int rt__reply_send(int sock, int32_t status, const void *body, size_t size, const int *fds,
		   int nfds)
{
	uint8_t buf[RT_MSG_HDR + 1024];
	uint8_t *p = buf;
	int ret;

	if (size > RT_MSG_MAX - RT_MSG_HDR)
		return -EMSGSIZE;
	if (RT_MSG_HDR + size > sizeof(buf)) {
		p = malloc(RT_MSG_HDR + size);
		if (!p)
			return -ENOMEM;
	}
	put32(p, (uint32_t)status);
	put32(p + 4, (uint32_t)size);
	if (size)
		memcpy(p + RT_MSG_HDR, body, size);
	ret = rt__pkt_send(sock, p, RT_MSG_HDR + size, fds, nfds, /*dontwait=*/true);
	if (p != buf)
		free(p);
	return ret;
}

int rt__reply_parse(const uint8_t *buf, size_t size, int32_t *status, const uint8_t **body,
		    size_t *body_size)
{
	if (size < RT_MSG_HDR || get32(buf + 4) != size - RT_MSG_HDR)
		return -EPROTO;
	*status = (int32_t)get32(buf);
	*body = buf + RT_MSG_HDR;
	*body_size = size - RT_MSG_HDR;
	return 0;
}

int rt__request(int sock, const struct rt_msg *m, uint8_t *reply, const uint8_t **body,
		size_t *body_size, int fds[2], char *errmsg)
{
	uint8_t out[RT_MSG_HDR + FIXED + 2 * (RT_MSG_PATH_MAX + 1) + 12 + 4 * RT_CRED_GROUPS];
	int got[2] = { -1, -1 }, nfds = 0;
	int32_t status;
	ssize_t n;
	int ret;

	if (fds)
		fds[0] = fds[1] = -1;
	n = rt__msg_encode(m, out, sizeof(out));
	if (n < 0)
		return (int)n;
	ret = rt__pkt_send(sock, out, (size_t)n, NULL, 0, /*dontwait=*/false);
	if (ret)
		return ret == -EPIPE ? -ECONNRESET : ret;
	n = rt__pkt_recv(sock, reply, RT_MSG_MAX, got, &nfds, /*dontwait=*/false);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return (int)n;
	if (rt__reply_parse(reply, (size_t)n, &status, body, body_size)) {
		for (int i = 0; i < nfds; i++)
			close(got[i]);
		return -EPROTO;
	}
	for (int i = 0; i < nfds; i++) {
		if (fds && status >= 0)
			fds[i] = got[i];
		else
			close(got[i]);
	}
	if (status < 0 && errmsg) {
		size_t len = *body_size < RT_ERRMSG_MAX - 1 ? *body_size : RT_ERRMSG_MAX - 1;

		memcpy(errmsg, *body, len);
		errmsg[len] = '\0';
		for (size_t i = 0; i < len; i++) /* a line for stderr, nothing else */
			if ((unsigned char)errmsg[i] < 0x20 || errmsg[i] == 0x7f)
				errmsg[i] = '?';
	}
	return status;
}

int rt__srv_wait_closed(struct rt_vseg *seg, uint32_t accepts, unsigned timeout_ms)
{
	/* Short slices: the kernel wakes nobody when it marks a dead server's
	 * word, and a newcomer shows only in `accepts`. */
	const unsigned slice_ms = 10;

	for (unsigned waited = 0;; waited += slice_ms) {
		uint32_t w = atomic_load(&seg->server);
		struct timespec ts = { 0, slice_ms * 1000 * 1000 };

		if (w & (RT_VSEG_CLOSED | RT_FUTEX_OWNER_DIED))
			return 0;
		if (atomic_load(&seg->accepts) != accepts)
			return 1;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		/* Woken by the server's store of RT_VSEG_CLOSED; a failed wait
		 * (EAGAIN: the word moved) only ends this slice early. */
		if (syscall(SYS_futex, &seg->server, FUTEX_WAIT, w, &ts, NULL, 0) < 0 &&
		    errno != ETIMEDOUT && errno != EAGAIN && errno != EINTR)
			nanosleep(&ts, NULL);
	}
}
