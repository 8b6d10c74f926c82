/* kiln runtime, file shield v2: the per-chunk state words shared by the volume
 * server and its clients (protocol in proto.h). Lock-free: every transition
 * is one atomic operation on one word, so a process killed at any point
 * leaves each word consistent (at worst with a pin that is never dropped,
 * which keeps that chunk in memory until the file is closed everywhere). */
#include "runtime/shield/proto.h"

#include <errno.h>
#include <time.h>

static bool needs_fill(struct rt_fseg *f, uint64_t c, uint32_t w)
{
	if ((w & RT_CK_VALID) && !(w & RT_CK_BUSY))
		return false;
	/* Past what pf stores there is nothing to decrypt: zeros. A BUSY chunk
	 * there cannot be: only written-back (stored) chunks are evicted. */
	return c * f->chunk_size < atomic_load(&f->stored_size) || (w & RT_CK_BUSY);
}

uint64_t rt__ck_missing(struct rt_fseg *f, uint64_t c0, uint64_t c1, uint64_t *lo, uint64_t *hi)
{
	uint64_t n = 0;

	for (uint64_t c = c0; c <= c1; c++) {
		if (!needs_fill(f, c, atomic_load(&f->w[c])))
			continue;
		if (n++ == 0)
			*lo = c;
		*hi = c;
	}
	return n;
}

uint64_t rt__ck_pin(struct rt_fseg *f, uint64_t c0, uint64_t c1, uint64_t *lo, uint64_t *hi)
{
	/* The pin comes first: from then on the server cannot start evicting
	 * the chunk, so what the word says after it stays true. */
	for (uint64_t c = c0; c <= c1; c++)
		atomic_fetch_add(&f->w[c], RT_CK_PIN);
	return rt__ck_missing(f, c0, c1, lo, hi);
}

void rt__ck_unpin(struct rt_fseg *f, uint64_t c0, uint64_t c1)
{
	for (uint64_t c = c0; c <= c1; c++)
		atomic_fetch_sub(&f->w[c], RT_CK_PIN);
}

void rt__ck_mark(struct rt_fseg *f, struct rt_vseg *v, uint64_t c0, uint64_t c1)
{
	uint64_t newly_dirty = 0, newly_valid = 0;

	for (uint64_t c = c0; c <= c1; c++) {
		uint32_t old = atomic_fetch_or(&f->w[c], RT_CK_VALID | RT_CK_DIRTY);

		newly_dirty += !(old & RT_CK_DIRTY);
		newly_valid += !(old & RT_CK_VALID);
	}
	if (v && newly_dirty)
		atomic_fetch_add(&v->dirty_bytes, newly_dirty * f->chunk_size);
	if (v && newly_valid)
		atomic_fetch_add(&v->cache_bytes, newly_valid * f->chunk_size);
	rt__fseg_touch(f);
}

void rt__fseg_touch(struct rt_fseg *f)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	atomic_store(&f->mtime_ns, now);
	atomic_store(&f->ctime_ns, now);
	rt__fseg_resized(f);
}

void rt__fseg_resized(struct rt_fseg *f)
{
	atomic_fetch_add(&f->size_seq, 1);
}

bool rt__ck_set_valid(struct rt_fseg *f, uint64_t c)
{
	return !(atomic_fetch_or(&f->w[c], RT_CK_VALID) & RT_CK_VALID);
}

bool rt__ck_claim(struct rt_fseg *f, uint64_t c)
{
	uint32_t w = atomic_load(&f->w[c]);

	while ((w & (RT_CK_VALID | RT_CK_DIRTY | RT_CK_BUSY | RT_CK_PINS)) == RT_CK_VALID)
		if (atomic_compare_exchange_weak(&f->w[c], &w, w | RT_CK_BUSY))
			return true;
	return false;
}

void rt__ck_evicted(struct rt_fseg *f, uint64_t c)
{
	atomic_fetch_and(&f->w[c], ~(RT_CK_VALID | RT_CK_BUSY));
}

bool rt__ck_take_dirty(struct rt_fseg *f, uint64_t c)
{
	/* A load first: a write-back scans every word of the file and most are
	 * clean; the locked read-modify-write on each was the scan's cost. A
	 * DIRTY set after the load is taken by the next write-back, as it would
	 * be had it been set just after the fetch_and. */
	if (!(atomic_load(&f->w[c]) & RT_CK_DIRTY))
		return false;
	return atomic_fetch_and(&f->w[c], ~RT_CK_DIRTY) & RT_CK_DIRTY;
}

int rt__ck_lock_init(struct rt_fseg *f)
{
	pthread_mutexattr_t a;
	int ret = pthread_mutexattr_init(&a);

	if (!ret)
		ret = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!ret)
		ret = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!ret)
		ret = pthread_mutex_init(&f->append_lock, &a);
	pthread_mutexattr_destroy(&a);
	return -ret;
}

static bool took(struct rt_fseg *f, int ret)
{
	/* Its last owner died holding it: what it was doing either reached the
	 * memfd or not; the lock itself is fine again. */
	if (ret == EOWNERDEAD)
		pthread_mutex_consistent(&f->append_lock);
	return ret == 0 || ret == EOWNERDEAD;
}

bool rt__ck_trylock(struct rt_fseg *f)
{
	return took(f, pthread_mutex_trylock(&f->append_lock));
}

void rt__ck_lock(struct rt_fseg *f)
{
	while (!took(f, pthread_mutex_lock(&f->append_lock)))
		;
}

void rt__ck_unlock(struct rt_fseg *f)
{
	pthread_mutex_unlock(&f->append_lock);
}
