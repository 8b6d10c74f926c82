/* kiln runtime, file shield: the open of a file this process holds, without
 * the shield lock or a guard.
 *
 * nginx opens, fstats, sends and closes the same files for every request.
 * The locked open of a known file (file.c, open_fast) costs no round trip,
 * but the lock needs a guard: two rt_sigprocmask per open where signals are
 * masked (serve_loop: the pair was ~30 % of a request), and the lock's own
 * chores. This path takes neither:
 *
 *  - Each volume has a small table of the paths this process opened lately:
 *    path, the namespace generation the answer was made under, the node, the
 *    mode. Slots are written under g_shield_lock and read through a sequence
 *    count (odd while written): a reader that sees it move falls back to the
 *    locked open.
 *  - The reader takes a reference on the node with a compare-and-swap that
 *    fails once the node is claimed for freeing (refs -1, cache.c), then
 *    reopens the memfd and puts the fd in the fd table (an atomic store).
 *  - A node's memory outlives every reader that may have read its address
 *    from a slot: rt__node_free clears its slots first, and frees the node
 *    itself only when no lock-free operation is in progress (else it waits
 *    on a list that the next locked call frees).
 *  - The description comes from a small pool of free ones (no malloc here: a
 *    signal handler may call open while this thread is inside malloc), filled
 *    under the lock and by lock-free closes.
 *
 * Anything unusual (a flag that creates or truncates, a forked child not yet
 * attached, a path too long for a slot, a changed namespace, an empty pool, a
 * failed reopen) returns -EAGAIN: the locked open decides, with the same
 * results it always had. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

#define POOL 32
#define POOL_LOW 4
static _Atomic(struct rt_ofd *) g_pool[POOL];
static atomic_int g_pool_n;

static struct rt_fast_slot *slot_of(struct rt_vol *vol, const char *rel, size_t len)
{
	return &vol->fast[kiln_fnv1a(KILN_FNV1A_INIT, rel, len) % RT_FAST_SLOTS];
}

/* ---- the table (written under g_shield_lock) ------------------------------- */
static void slot_write(struct rt_fast_slot *s, uint64_t gen, struct rt_node *n,
		       const struct rt_stat_reply *r, const char *rel, size_t len)
{
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

	atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->gen, gen, memory_order_relaxed);
	atomic_store_explicit(&s->node, n, memory_order_relaxed);
	atomic_store_explicit(&s->mode, r ? r->mode : 0, memory_order_relaxed);
	atomic_store_explicit(&s->uid, r ? r->uid : 0, memory_order_relaxed);
	atomic_store_explicit(&s->gid, r ? r->gid : 0, memory_order_relaxed);
	atomic_store_explicit(&s->who, r ? rt__cred()->key : 0, memory_order_relaxed);
	if (rel)
		memcpy(s->rel, rel, len + 1);
	atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

void rt__fast_put(struct rt_vol *vol, const char *rel, uint64_t gen, struct rt_node *n,
		  const struct rt_stat_reply *r)
{
	size_t len = strlen(rel);

	if (len >= RT_FAST_REL || !n->proc[0])
		return;
	slot_write(slot_of(vol, rel, len), gen, n, r, rel, len);
}

void rt__fast_forget(struct rt_node *n)
{
	if (!n->vol)
		return;
	for (size_t i = 0; i < RT_FAST_SLOTS; i++) {
		struct rt_fast_slot *s = &n->vol->fast[i];

		if (atomic_load_explicit(&s->node, memory_order_relaxed) == n)
			slot_write(s, 0, NULL, NULL, NULL, 0);
	}
}

/* ---- the pool of free descriptions ------------------------------------------ */
static struct rt_ofd *pool_take(void)
{
	for (size_t i = 0; i < POOL; i++) {
		struct rt_ofd *o;

		if (atomic_load_explicit(&g_pool[i], memory_order_relaxed) &&
		    (o = atomic_exchange(&g_pool[i], NULL))) {
			atomic_fetch_sub(&g_pool_n, 1);
			return o;
		}
	}
	return NULL;
}

bool rt__fast_pool_put(struct rt_ofd *o)
{
	for (size_t i = 0; i < POOL; i++) {
		struct rt_ofd *none = NULL;

		if (!atomic_load_explicit(&g_pool[i], memory_order_relaxed) &&
		    atomic_compare_exchange_strong(&g_pool[i], &none, o)) {
			atomic_fetch_add(&g_pool_n, 1);
			return true;
		}
	}
	return false;
}

/* Under g_shield_lock (in a guard: malloc is safe). */
void rt__fast_pool_fill(void)
{
	while (atomic_load(&g_pool_n) < POOL_LOW) {
		struct rt_ofd *o = calloc(1, sizeof(*o));

		if (!o)
			return;
		if (!rt__fast_pool_put(o)) {
			free(o);
			return;
		}
	}
}

/* ---- the open --------------------------------------------------------------- */
/* A reference on n unless it is being freed (refs -1). */
static bool node_tryref(struct rt_node *n)
{
	int r = atomic_load(&n->refs);

	while (r >= 0)
		if (atomic_compare_exchange_weak(&n->refs, &r, r + 1))
			return true;
	return false;
}

/* The node the slot names for rel under the current generation, referenced;
 * NULL when the slot does not answer (being written, another path, stale). */
static struct rt_node *slot_read(struct rt_vol *vol, const char *rel, size_t len, int flags)
{
	struct rt_fast_slot *s = slot_of(vol, rel, len);
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	struct rt_stat_reply r = { 0 };
	struct rt_node *n;
	uint64_t gen, who;
	bool same;

	if (seq & 1)
		return NULL;
	gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
	n = atomic_load_explicit(&s->node, memory_order_relaxed);
	r.mode = atomic_load_explicit(&s->mode, memory_order_relaxed);
	r.uid = atomic_load_explicit(&s->uid, memory_order_relaxed);
	r.gid = atomic_load_explicit(&s->gid, memory_order_relaxed);
	who = atomic_load_explicit(&s->who, memory_order_relaxed);
	same = memcmp(s->rel, rel, len + 1) == 0;
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->seq, memory_order_relaxed) != seq || !same || !n ||
	    gen != rt__vol_gen(vol))
		return NULL;
	/* Opened with other credentials (a set*id since), or what the file's
	 * mode and owner refuse these: the server answers (with its errno). */
	if (who != rt__cred()->key || rt__open_denied(&r, flags))
		return NULL;
	/* n's memory is good: rt__node_free clears the slot before it frees a
	 * node, and frees none while this operation is in progress. */
	if (!node_tryref(n))
		return NULL;
	if (atomic_load(&n->dead) || n->gen != vol->gen) {
		rt__node_unref_lockfree(n);
		return NULL;
	}
	return n;
}

long rt__fast_open(struct rt_target *t, int flags, int rflags)
{
	size_t len;
	struct rt_node *n;
	struct rt_ofd *o;
	long fd = -EAGAIN;

	/* O_NOFOLLOW: the slot's answer followed a symlink the name may be
	 * (ELOOP); the locked open asks the server (as open_fast). */
	if (t->vfile || g_procfd < 0 || rt__shield_in_child() ||
	    (flags & (O_CREAT | O_TRUNC | O_DIRECTORY | O_PATH | __O_TMPFILE | O_NOFOLLOW)))
		return -EAGAIN;
	len = strlen(t->rel);
	if (len >= RT_FAST_REL)
		return -EAGAIN;
	o = pool_take();
	if (!o)
		return -EAGAIN;
	if (!rt__lockfree_begin())
		goto out;
	n = slot_read(t->vol, t->rel, len, flags);
	if (!n)
		goto out_end;
	fd = rt__raw(SYS_openat, g_procfd, n->proc + strlen("/proc/self/fd/"), rflags, 0);
	if (fd >= 0 && !rt_fd_in_range((int)fd)) {
		rt__raw(SYS_close, fd);
		fd = -EAGAIN;
	}
	if (fd < 0) {
		/* EMFILE and the like: the locked open gives back cached files
		 * and tries again. */
		rt__node_unref_lockfree(n);
		fd = -EAGAIN;
		goto out_end;
	}
	memset(o, 0, sizeof(*o));
	atomic_store(&o->refs, 1);
	o->kind = RT_FD_FILE;
	o->node = n;
	o->append = rflags & O_APPEND;
	o->dsync = rflags & O_DSYNC; /* O_SYNC includes it */
	/* The kernel just made fd: the table has nothing for it. */
	rt_fd_set((int)fd, RT_FD_FILE, o);
	o = NULL;
out_end:
	rt__lockfree_end();
out:
	if (o && !rt__fast_pool_put(o))
		rt__release_later(o);
	return fd;
}
