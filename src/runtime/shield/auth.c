/* kiln runtime, file shield v2: mutual authentication of the volume server and
 * its clients by proof of the volume key (proto.h).
 *
 *   server -> client  HELLO  ns                       (32 random bytes)
 *   client -> server  AUTH   nc, pid, HMAC(Km, "client" ns nc pid)
 *   server -> client  reply  HMAC(Km, "server" nc ns), fd of the volume segment
 *
 * Km = HKDF-SHA256(volume key, salt "kiln-shield", info "kiln-shield-auth-v1"). Each side checks the
 * other's MAC in constant time before it trusts a byte: an impostor that took
 * the socket name first learns ns-free random bytes and is refused; a client
 * without the key gets no reply but a closed socket. The socket name comes
 * from another key (info "kiln-shield-name-v1") and the identity of DIR/.kiln,
 * so it names one volume and one key. */
#include "runtime/shield/proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"

int rt__auth_derive(const uint8_t key[static RT_KEY_SIZE], struct rt_auth_keys *k)
{
	static const char salt[] = "kiln-shield";
	static const char name_info[] = "kiln-shield-name-v1";
	static const char mac_info[] = "kiln-shield-auth-v1";
	int ret;

	ret = kc_hkdf_sha256(key, RT_KEY_SIZE, salt, sizeof(salt) - 1, name_info,
			     sizeof(name_info) - 1, k->name, sizeof(k->name));
	if (!ret)
		ret = kc_hkdf_sha256(key, RT_KEY_SIZE, salt, sizeof(salt) - 1, mac_info,
				     sizeof(mac_info) - 1, k->mac, sizeof(k->mac));
	if (ret)
		rt__auth_wipe(k);
	return ret;
}

void rt__auth_wipe(struct rt_auth_keys *k)
{
	kiln_wipe(k, sizeof(*k));
}

void rt__auth_sock_name(const struct rt_auth_keys *k, uint64_t dev, uint64_t ino,
			char out[static RT_SOCK_NAME_MAX])
{
	uint8_t id[16], mac[KC_SHA256_SIZE];
	char hex[2 * 16 + 1];

	memcpy(id, &dev, 8);
	memcpy(id + 8, &ino, 8);
	kc_hmac_sha256(k->name, sizeof(k->name), id, sizeof(id), mac);
	kiln_hex_encode(mac, 16, hex);
	snprintf(out, RT_SOCK_NAME_MAX, "kiln-shield-%s", hex);
}

static int mac_of(const struct rt_auth_keys *k, const char *who, const uint8_t *first,
		  const uint8_t *second, uint32_t pid, bool with_pid, uint8_t out[RT_MAC_SIZE])
{
	uint8_t buf[8 + 2 * RT_NONCE_SIZE + 4];
	size_t n = strlen(who);

	memcpy(buf, who, n);
	memcpy(buf + n, first, RT_NONCE_SIZE);
	memcpy(buf + n + RT_NONCE_SIZE, second, RT_NONCE_SIZE);
	n += 2 * RT_NONCE_SIZE;
	if (with_pid) {
		memcpy(buf + n, &pid, 4);
		n += 4;
	}
	return kc_hmac_sha256(k->mac, sizeof(k->mac), buf, n, out);
}

int rt__auth_client_mac(const struct rt_auth_keys *k, const uint8_t *ns, const uint8_t *nc,
			uint32_t pid, uint8_t out[static RT_MAC_SIZE])
{
	return mac_of(k, "client", ns, nc, pid, true, out);
}

int rt__auth_server_mac(const struct rt_auth_keys *k, const uint8_t *nc, const uint8_t *ns,
			uint8_t out[static RT_MAC_SIZE])
{
	return mac_of(k, "server", nc, ns, 0, false, out);
}

int rt__auth_client(int sock, const struct rt_auth_keys *k, uint32_t pid, int *vseg_fd)
{
	uint8_t buf[RT_MSG_MAX], out[RT_MSG_HDR + 128];
	uint8_t ns[RT_NONCE_SIZE], nc[RT_NONCE_SIZE], mac[RT_MAC_SIZE], want[RT_MAC_SIZE];
	struct rt_msg m;
	const uint8_t *body;
	size_t body_size;
	int fds[2] = { -1, -1 }, nfds = 0;
	int32_t status;
	ssize_t n;
	int ret;

	*vseg_fd = -1;
	n = rt__pkt_recv(sock, buf, sizeof(buf), fds, &nfds, false);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return (int)n;
	if (nfds || rt__msg_parse(buf, (size_t)n, &m) || m.op != RT_OP_HELLO ||
	    m.flags != RT_SHIELD_VERSION)
		return -EPROTO;
	memcpy(ns, m.nonce, sizeof(ns));
	ret = kc_random(nc, sizeof(nc));
	if (!ret)
		ret = rt__auth_client_mac(k, ns, nc, pid, mac);
	if (ret)
		return ret;
	m = (struct rt_msg){ .op = RT_OP_AUTH, .flags = RT_SHIELD_VERSION, .pid = pid,
			     .nonce = nc, .mac = mac };
	n = rt__msg_encode(&m, out, sizeof(out));
	if (n < 0)
		return (int)n;
	ret = rt__pkt_send(sock, out, (size_t)n, NULL, 0, false);
	if (ret)
		return ret == -EPIPE ? -KILN_EAUTH : ret;
	n = rt__pkt_recv(sock, buf, sizeof(buf), fds, &nfds, false);
	/* A server that does not like our proof closes the socket: from the
	 * client's side that is the same as an impostor that cannot answer. */
	if (n == 0 || n == -ECONNRESET)
		return -KILN_EAUTH;
	if (n < 0)
		return (int)n;
	ret = rt__reply_parse(buf, (size_t)n, &status, &body, &body_size);
	if (!ret && (status != 0 || body_size != RT_MAC_SIZE || nfds != 1))
		ret = -EPROTO;
	if (!ret)
		ret = rt__auth_server_mac(k, nc, ns, want);
	if (!ret && !kiln_ct_equal(want, body, RT_MAC_SIZE))
		ret = -KILN_EAUTH;
	if (ret) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return ret;
	}
	*vseg_fd = fds[0];
	return 0;
}
