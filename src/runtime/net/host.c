/* kiln runtime: libkiln-net.so's side of the seam (net/host.h). The shields'
 * sources call the runtime's functions by their names (rt_fd_get,
 * rt__copy_in, ...), as they would inside libkiln.so; here each name is the
 * entry of the table libkiln lent at load. Built only into libkiln-net.so. */
#include <openssl/ssl.h>

#include "runtime/net/host.h"
#include "runtime/net/internal.h"

/* libkiln's table: set once by kiln_net_entry, before any other call. */
static const struct rt_net_host *g_host;

__attribute__((visibility("default"))) const struct rt_net_ops *
kiln_net_entry(const struct rt_net_host *host);

const struct rt_net_ops *kiln_net_entry(const struct rt_net_host *host)
{
	if (!host || host->abi != RT_NET_ABI)
		return NULL;
	g_host = host;
	rt__lent_set(host->lent);
	/* This object's own OpenSSL (static, hidden, as libkiln's) reads no
	 * configuration file either: OPENSSL_CONF could name a provider module
	 * to load into the attested process (start.c). */
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	return &rt__net_ops;
}

long rt__dispatch(long nr, const long a[6], ucontext_t *uc)
{
	return g_host->dispatch(nr, a, uc);
}

void rt__enter(struct rt_guard *g)
{
	g_host->enter(g);
}

void rt__leave(struct rt_guard *g)
{
	g_host->leave(g);
}

struct rt_thread *rt__thread(void)
{
	return g_host->thread();
}

struct rt_thread *rt__thread_peek(void)
{
	return g_host->thread_peek();
}

void rt__runtime_thread(void)
{
	g_host->runtime_thread();
}

bool rt__sig_can_defer(void)
{
	return g_host->sig_can_defer();
}

bool rt__shield_on(void)
{
	return g_host->shield_on();
}

enum rt_fd_kind rt_fd_kind(int fd)
{
	return g_host->fd_kind(fd);
}

void *rt_fd_get(int fd)
{
	return g_host->fd_get(fd);
}

void *rt_fd_set(int fd, enum rt_fd_kind kind, void *obj)
{
	return g_host->fd_set(fd, kind, obj);
}

void *rt_fd_clear(int fd, enum rt_fd_kind *kind)
{
	return g_host->fd_clear(fd, kind);
}

bool rt_fd_in_range(int fd)
{
	return g_host->fd_in_range(fd);
}

const struct rt_json *rt_json_get(const struct rt_json *obj, const char *key)
{
	return g_host->json_get(obj, key);
}

const char *rt_json_str(const struct rt_json *j)
{
	return g_host->json_str(j);
}
