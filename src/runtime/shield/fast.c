/* kiln runtime, file shield: the open of a file this process holds, without
 * the shield lock or a guard (nginx opens, fstats, sends and closes the same
 * files for every request; the locked open of a known file, file.c's
 * open_fast, costs no round trip, but its guard and chores do):
 *
 *  - Each volume has a small table of the paths this process opened lately
 *    (path, namespace generation, node, mode, owner, credentials), written
 *    under g_shield_lock and read through a sequence count (odd while
 *    written): a reader that sees it move falls back to the locked open.
 *  - The reader takes a reference on the node with a compare-and-swap that
 *    fails once the node is claimed for freeing (refs -1, cache.c). A node's
 *    memory outlives every reader that may have read its address from a
 *    slot: rt__node_free clears its slots first, and frees the node only when
 *    no lock-free operation is in progress (else the next locked call does).
 *  - The description comes from a small pool (no malloc: a signal handler may
 *    open while this thread is in malloc), filled under the lock and by
 *    lock-free closes.
 *  - The fd: a reopen of the memfd through /proc/self/fd (~1.4 us more than an
 *    ext4 open: a proc dentry and inode each, docs/fs.md), or a dup to the
 *    lowest free fd of the node's spare: a description whose fd was closed
 *    untouched, kept (owned, cloexec) for the next open with the same flags.
 *    A call that may leave a trace on one (offset, status flags, a lock: all
 *    but stat, pread, sendfile at an offset, sync, close, F_GETFD/F_SETFD/
 *    F_GETFL) marks it used: closed with the fd. A fork or exec (children
 *    share descriptions) ends the spares made before it (their epoch).
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

/* ---- spares: fd + 1 | flags << 24 | epoch << 48, or LENT; one a node at most */
#define LENT (1ull << 63)
atomic_uint g_spare_epoch;
static atomic_int g_spares; /* at most 64 */

static uint64_t spare_val(long fd, int rflags)
{
	return (uint64_t)(atomic_load(&g_spare_epoch) & 0x7fff) << 48 |
	       (uint64_t)(rflags & ~O_CLOEXEC & 0xffffff) << 24 | (uint64_t)(fd + 1);
}

void rt__spare_drop(uint64_t v)
{
	atomic_fetch_sub(&g_spares, v && v != LENT);
	rt__own_close((int)(v & 0xffffff) - 1); /* -1, nothing, for 0 and LENT */
}

/* n's spare v (LENT until now) is idle again, or goes. */
static void spare_put(struct rt_node *n, uint64_t v, bool keep)
{
	keep = keep && v >> 48 == spare_val(0, 0) >> 48;
	atomic_store(&n->spare, keep ? v : 0);
	if (!keep)
		rt__spare_drop(v);
}

void rt__spare_back(struct rt_ofd *o)
{
	if (o->spare) /* (o goes: freed or cleared) */
		spare_put(o->node, o->spare, !atomic_load(&o->used));
}

void rt__spare_use(long nr, const struct rt_syscall *s, const long a[6])
{
	/* SCM_RIGHTS shares descriptions (g_spares counts lent spares too). */
	if ((nr == SYS_sendmsg || nr == SYS_sendmmsg) && atomic_load(&g_spares))
		atomic_fetch_add(&g_spare_epoch, 1);
	for (int i = 0; i < 6 && atomic_load_explicit(&g_spares, memory_order_relaxed); i++)
		if ((s->fd_mask & (1u << i)) && rt_fd_kind((int)a[i]) == RT_FD_FILE &&
		    nr != SYS_fstat && nr != SYS_newfstatat && nr != SYS_statx && nr != SYS_pread64 &&
		    nr != SYS_fsync && nr != SYS_fdatasync && nr != SYS_close &&
		    !(nr == SYS_sendfile && i == 1 && a[2]) &&
		    !(nr == SYS_fcntl && (a[1] == F_GETFD || a[1] == F_SETFD || a[1] == F_GETFL)))
			atomic_store(&((struct rt_ofd *)rt_fd_get((int)a[i]))->used, true);
}

/* An fd of n's spare for rflags (*v its value, n's now LENT), or -errno. */
static long spare_lend(struct rt_node *n, int rflags, uint64_t *v)
{
	long fd = -EAGAIN;

	*v = atomic_load(&n->spare);
	if (!*v || *v == LENT || !atomic_compare_exchange_strong(&n->spare, v, LENT))
		*v = 0;
	else if (*v >> 24 == spare_val(0, rflags) >> 24)
		fd = rt__raw(SYS_fcntl, (*v & 0xffffff) - 1,
			     rflags & O_CLOEXEC ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
	if (fd < 0 && *v)
		spare_put(n, *v, true);
	*v = fd < 0 ? 0 : *v;
	return fd;
}

/* A spare sharing fd's new description (n's now LENT), or 0. */
static uint64_t spare_make(struct rt_node *n, long fd, int rflags)
{
	uint64_t none = 0;
	long s = -1;

	if (atomic_fetch_add(&g_spares, 1) < 64 &&
	    atomic_compare_exchange_strong(&n->spare, &none, LENT)) {
		s = rt__raw(SYS_fcntl, fd, F_DUPFD_CLOEXEC, g_rt.owned_base);
		if (s >= 0 && rt_fd_in_range((int)s)) {
			rt_fd_set((int)s, RT_FD_OWNED, NULL);
			return spare_val(s, rflags);
		}
		atomic_store(&n->spare, 0);
	}
	if (s >= 0)
		rt__raw(SYS_close, s);
	atomic_fetch_sub(&g_spares, 1);
	return 0;
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
	uint64_t spare = 0;
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
	fd = spare_lend(n, rflags, &spare);
	if (fd < 0)
		fd = rt__memfd_reopen(n, rflags);
	if (fd >= 0 && !rt_fd_in_range((int)fd)) {
		rt__raw(SYS_close, fd);
		fd = -EAGAIN;
	}
	if (fd < 0) {
		/* EMFILE and the like: the locked open gives back cached files
		 * and tries again. */
		if (spare)
			spare_put(n, spare, true);
		rt__node_unref_lockfree(n);
		fd = -EAGAIN;
		goto out_end;
	}
	memset(o, 0, sizeof(*o));
	o->spare = spare ? spare : spare_make(n, fd, rflags);
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
