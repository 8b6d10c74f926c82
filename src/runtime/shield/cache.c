/* kiln runtime, file shield: the cache of closed files. Closed files are
 * kept decrypted for the next open (a web server opens the same files again
 * and again), least recently closed out first, within the bounds of
 * KILN_FILE_CACHE=FILES[:MIB]. Each cached file holds its plaintext once (a
 * memfd) and two runtime-owned fds (the memfd and its pf backing file). A
 * cached file is used only while no other process has committed to its volume
 * (rt__vol_unchanged). */
#include <errno.h>
#include <stdlib.h>

#include "runtime/shield/internal.h"

#define CACHE_DEFAULT_FILES 32
#define CACHE_DEFAULT_MIB 256
static size_t g_cache_max_files = CACHE_DEFAULT_FILES;
static uint64_t g_cache_max_bytes = (uint64_t)CACHE_DEFAULT_MIB << 20;
static size_t g_cache_files;
static uint64_t g_cache_bytes;
static uint64_t g_cache_clock;
/* In a forked child: the cached files' memfds are the parent's too; they are
 * dropped at the child's first call into the shield (rt__cache_drop_inherited). */
static bool g_cache_inherited;

void rt__cache_take(struct rt_node *n)
{
	if (!n->cached)
		return;
	n->cached = false;
	g_cache_files--;
	g_cache_bytes -= n->synced_size;
}

void rt__cache_drop_inherited(void)
{
	struct rt_node *next;

	if (!g_cache_inherited)
		return;
	g_cache_inherited = false;
	for (struct rt_node *n = g_nodes; n; n = next) {
		next = n->next;
		if (n->cached)
			rt__node_free(n);
	}
}

void rt__cache_after_fork(void)
{
	g_cache_inherited = g_cache_files > 0;
}

static void cache_evict_oldest(void)
{
	struct rt_node *old = NULL;

	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->cached && (!old || n->cached_at < old->cached_at))
			old = n;
	if (old)
		rt__node_free(old);
}

void rt__node_unref(struct rt_node *n)
{
	if (--n->refs > 0)
		return;
	/* on-exit: keep the plaintext until exit, when it is saved. */
	if (!n->unlinked && g_rt.cfg.freshness == RT_FRESH_ON_EXIT)
		return;
	/* Not saved: kept (uncached, never evicted) for the exit flush to retry. */
	if (!n->unlinked && rt__node_flush(n, true))
		return;
	if (n->unlinked || !n->pf || n->shared || !g_cache_max_files ||
	    n->synced_size > g_cache_max_bytes) {
		rt__node_free(n);
		return;
	}
	while (g_cache_files >= g_cache_max_files ||
	       g_cache_bytes + n->synced_size > g_cache_max_bytes)
		cache_evict_oldest();
	if (!n->writable) {
		kiln_free_secret(n->synced, n->synced_size);
		n->synced = NULL;
	}
	n->cached = true;
	n->cached_at = ++g_cache_clock;
	g_cache_files++;
	g_cache_bytes += n->synced_size;
}

/* KILN_FILE_CACHE=FILES[:MIB]: bounds of the cache of closed files. */
int rt__cache_init(long fd_limit, struct kiln_err *err)
{
	const char *s = getenv("KILN_FILE_CACHE");
	uint64_t nfiles, mib = CACHE_DEFAULT_MIB;
	/* Two runtime fds per cached file, half the runtime's fd range at most. */
	uint64_t room = (uint64_t)(fd_limit - g_rt.owned_base) / 4;

	if (!s)
		return 0;
	if (rt_file_cache_parse(s, &nfiles, &mib) == 0) {
		g_cache_max_files = nfiles > room ? room : nfiles;
		g_cache_max_bytes = mib << 20;
		return 0;
	}
	return kiln_err_set(err, -EINVAL, "KILN_FILE_CACHE=%s: expected FILES or FILES:MIB "
			    "(default %d:%d; 0 turns the cache of closed files off)", s,
			    CACHE_DEFAULT_FILES, CACHE_DEFAULT_MIB);
}
