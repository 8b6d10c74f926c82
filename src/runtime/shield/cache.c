/* kiln runtime, file shield: the cache of closed files. A web server opens,
 * reads and closes the same files again and again: when the last fd of a
 * file closes, this process keeps its node (the server's memfd, the state
 * mapping, a hold on the server's file) so that the next open of the path is
 * a reopen of the memfd, without a round trip while the namespace is
 * unchanged (stat.c). The plaintext itself is the server's, bounded by its
 * cache; here only the number of kept files is bounded (two runtime fds
 * each), least recently closed out first.
 *
 * KILN_FILE_CACHE=FILES[:MIB]: FILES closed files kept per process (default
 * 64; 0 keeps none), MIB the volume server's plaintext cache (default 256). */
#include <errno.h>
#include <stdlib.h>

#include "runtime/shield/internal.h"

#define CACHE_DEFAULT_FILES 64
#define CACHE_DEFAULT_MIB 256
static size_t g_cache_max_files = CACHE_DEFAULT_FILES;
static size_t g_cache_files;
static uint64_t g_cache_clock;
uint64_t g_cache_limit = (uint64_t)CACHE_DEFAULT_MIB << 20;

void rt__cache_take(struct rt_node *n)
{
	if (!n->cached)
		return;
	n->cached = false;
	g_cache_files--;
}

/* Claim n for freeing: refs 0 -> -1, after which no lock-free open takes
 * it (fast.c). A node a lock-free open holds leaves the cache instead: its
 * last close, which sees it uncached (taken out before the claim), settles
 * it. */
bool rt__node_try_free(struct rt_node *n)
{
	int zero = 0;

	rt__cache_take(n);
	if (!atomic_compare_exchange_strong(&n->refs, &zero, -1))
		return false;
	rt__node_free(n);
	return true;
}

/* True when the cache had a node (freed, or taken out of the cache). */
static bool cache_evict_oldest(void)
{
	struct rt_node *old = NULL;

	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->cached && (!old || n->cached_at < old->cached_at))
			old = n;
	if (old)
		rt__node_try_free(old);
	return old != NULL;
}

/* Out of fds: the cached files let theirs go (an app that retries after
 * closing files, as PostgreSQL does, then finds room). */
bool rt__cache_shrink(void)
{
	bool any = false;
	struct rt_node *next;

	for (struct rt_node *n = g_nodes; n; n = next) {
		next = n->next;
		if (n->cached && rt__node_try_free(n))
			any = true;
	}
	return any;
}

/* n's references reached 0 (under the lock): commit what --freshness
 * on-close owes, then keep it for the next open or free it. A lock-free open
 * may take it again at any point; the claim in rt__node_try_free decides. */
static void node_settle(struct rt_node *n)
{
	if (!n->vol)
		return; /* an injected file lives as long as the process */
	if (atomic_load(&n->refs) != 0)
		return;
	rt__stream_drop(n, false); /* the last close: the keys go */
	/* --freshness on-close: what this process wrote is committed now
	 * (on-exit: at exit, rt__vols_exit; every-fsync: at fsync and exit). */
	if (g_rt.cfg.freshness == RT_FRESH_ON_CLOSE && atomic_load(&n->wrote) &&
	    !n->unlinked && rt__node_commit(n) == 0)
		atomic_store(&n->wrote, false);
	if (n->unlinked || atomic_load(&n->dead) || !g_cache_max_files) {
		rt__node_try_free(n);
		return;
	}
	if (n->cached)
		return;
	while (g_cache_files >= g_cache_max_files && cache_evict_oldest())
		;
	n->cached = true;
	n->cached_at = ++g_cache_clock;
	g_cache_files++;
}

void rt__node_unref(struct rt_node *n)
{
	if (atomic_fetch_sub(&n->refs, 1) == 1)
		node_settle(n);
}

static atomic_bool g_settle;

void rt__node_unref_lockfree(struct rt_node *n)
{
	if (atomic_fetch_sub(&n->refs, 1) != 1 || atomic_load(&n->cached))
		return;
	atomic_store(&n->settle, true);
	atomic_store(&g_settle, true);
}

void rt__cache_settle(void)
{
	if (!atomic_load_explicit(&g_settle, memory_order_relaxed) ||
	    !atomic_exchange(&g_settle, false))
		return;
	/* Settling may free other nodes (the cache's oldest): start over. */
	for (struct rt_node *n = g_nodes; n;) {
		if (atomic_exchange(&n->settle, false)) {
			node_settle(n);
			n = g_nodes;
		} else {
			n = n->next;
		}
	}
}

/* KILN_FILE_CACHE=FILES[:MIB]. */
int rt__cache_init(long fd_limit, struct kiln_err *err)
{
	const char *s = getenv("KILN_FILE_CACHE");
	uint64_t nfiles, mib = CACHE_DEFAULT_MIB;
	/* Two runtime fds per cached file, half the runtime's fd range at most. */
	uint64_t room = (uint64_t)(fd_limit - g_rt.owned_base) / 4;

	g_cache_max_files = CACHE_DEFAULT_FILES > room ? room : CACHE_DEFAULT_FILES;
	if (!s)
		return 0;
	if (rt_file_cache_parse(s, &nfiles, &mib) == 0 && mib > 0) {
		g_cache_max_files = nfiles > room ? room : nfiles;
		g_cache_limit = mib << 20;
		return 0;
	}
	return kiln_err_set(err, -EINVAL, "KILN_FILE_CACHE=%s: expected FILES or FILES:MIB "
			    "(default %d:%d: closed files kept per process, MiB of plaintext "
			    "the volume server keeps; FILES 0 keeps no closed file)", s,
			    CACHE_DEFAULT_FILES, CACHE_DEFAULT_MIB);
}
