/* kiln runtime, file shield: mappings of protected files. A mapping reads the
 * memfd's pages directly, with no chance for the shield to check them, so a
 * mapped range is filled (decrypted and verified) at mmap time and the file
 * is registered with the server as mapped: the server never evicts a mapped
 * file. Stores through a writable shared mapping leave no dirty mark either:
 * the server treats every valid chunk of a file mapped writable as dirty at
 * each commit, at munmap, and when the process that mapped it goes away
 * (also when the mapping outlives the file's last fd, and after a kill -9:
 * the pages are in the memfd). msync(MS_SYNC) commits like fsync.
 *
 * The mappings are listed per process; munmap, mremap and msync look at the
 * list only when it is not empty (one atomic load otherwise). */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

struct rt_map {
	uintptr_t addr;
	size_t len;
	struct rt_node *node;  /* holds a reference */
	bool writable;
	struct rt_map *next;
};

static struct rt_map *g_maps; /* under g_shield_lock */
static atomic_int g_nmaps;

bool rt__maps_any(void)
{
	return atomic_load_explicit(&g_nmaps, memory_order_relaxed) > 0;
}

static int map_register(struct rt_node *n, bool writable, bool on)
{
	struct rt_msg m = { .op = on ? RT_OP_MAP : RT_OP_UNMAP,
			    .flags = writable ? RT_MAP_WRITE : 0 };

	return rt__node_call(n, &m);
}

/* Fill [off, off + len) of n (within the file): the chunks a mapping reads. */
static int fill_range(struct rt_node *n, uint64_t off, uint64_t len)
{
	uint64_t cs = n->vol->chunk, size;
	struct stat st;

	if (rt__mstat(n->memfd, &st) < 0)
		return -EIO;
	size = (uint64_t)st.st_size;
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = size - off;
	for (uint64_t c = off / cs, last = (off + len - 1) / cs; c <= last;) {
		uint64_t e = c + 256 <= last ? c + 255 : last, lo, hi;
		struct rt_fseg *seg;
		int ret;

		if (e >= atomic_load(&n->seg_words) &&
		    (ret = rt__node_remap(n, atomic_load(&atomic_load(&n->seg)->nwords))))
			return ret;
		if (e >= atomic_load(&n->seg_words))
			e = atomic_load(&n->seg_words) - 1;
		seg = atomic_load(&n->seg);
		if (rt__ck_pin(seg, c, e, &lo, &hi)) {
			struct rt_msg m = { .op = RT_OP_FILL, .a = lo, .b = hi - lo + 1 };

			ret = rt__node_call(n, &m);
			if (!ret && rt__ck_missing(seg, c, e, &lo, &hi))
				ret = -EIO;
			if (ret) {
				rt__ck_unpin(seg, c, e);
				return ret;
			}
		}
		rt__ck_unpin(seg, c, e);
		if (e < c)
			break;
		c = e + 1;
	}
	return 0;
}

static long mmap_locked(const long a[6]);

RT_LOCKED(rt__shield_mmap, (const long a[6]), mmap_locked(a))

static long mmap_locked(const long a[6])
{
	struct rt_ofd *o = rt_fd_get((int)a[4]);
	struct rt_node *n = o->node;
	bool writable = (a[2] & PROT_WRITE) && (a[3] & MAP_SHARED);
	struct rt_map *map;
	long addr;
	int ret;

	if (rt_fd_kind((int)a[4]) != RT_FD_FILE || !n->vol)
		return rt__raw6(SYS_mmap, a);
	if (rt__node_dead(n))
		return -EIO;
	if (writable && (atomic_load(&atomic_load(&n->seg)->flags) & RT_FS_FAILED))
		return -EIO;
	map = calloc(1, sizeof(*map));
	if (!map)
		return -ENOMEM;
	/* Registered first: from then on nothing of the file is evicted. */
	ret = map_register(n, writable, true);
	if (!ret)
		ret = fill_range(n, (uint64_t)a[5], (uint64_t)a[1]);
	if (ret) {
		if (ret != -EIO || !rt__node_dead(n))
			map_register(n, writable, false);
		free(map);
		return ret;
	}
	addr = rt__raw6(SYS_mmap, a);
	if (addr < 0 && addr > -4096) {
		map_register(n, writable, false);
		free(map);
		return addr;
	}
	if (writable) {
		atomic_store(&n->wrote, true);
		atomic_store(&n->vol->wrote, true);
	}
	map->addr = (uintptr_t)addr;
	map->len = (size_t)a[1];
	map->node = n;
	map->writable = writable;
	n->refs++;
	map->next = g_maps;
	g_maps = map;
	atomic_fetch_add(&g_nmaps, 1);
	return addr;
}

static void map_drop(struct rt_map **pp)
{
	struct rt_map *map = *pp;

	*pp = map->next;
	atomic_fetch_sub(&g_nmaps, 1);
	map_register(map->node, map->writable, false);
	rt__node_unref(map->node);
	free(map);
}

/* Under g_shield_lock, after the kernel unmapped [addr, addr + len). */
static void unmapped(uintptr_t addr, size_t len)
{
	uintptr_t end = addr + len;

	for (struct rt_map **pp = &g_maps; *pp;) {
		struct rt_map *m = *pp;
		uintptr_t mend = m->addr + m->len;

		if (end <= m->addr || addr >= mend) {
			pp = &m->next;
			continue;
		}
		if (addr <= m->addr && end >= mend) {
			map_drop(pp);
			continue;
		}
		/* Partly: what remains stays registered (a hole in the middle
		 * keeps the larger side; the file stays mapped either way). */
		if (addr <= m->addr) {
			m->len = mend - end;
			m->addr = end;
		} else if (end >= mend) {
			m->len = addr - m->addr;
		} else {
			m->len = addr - m->addr > mend - end ? addr - m->addr : mend - end;
			m->addr = addr - m->addr > mend - end ? m->addr : end;
		}
		pp = &m->next;
	}
}

static long do_munmap(const long a[6])
{
	long r = rt__raw6(SYS_munmap, a);

	if (r == 0)
		unmapped((uintptr_t)a[0], (size_t)a[1]);
	return r;
}

static long do_mremap(const long a[6])
{
	struct rt_map *found = NULL;
	long r;

	for (struct rt_map *m = g_maps; m; m = m->next)
		if (m->addr == (uintptr_t)a[0])
			found = m;
	if (found && (uint64_t)a[2] > found->len) {
		/* The new part must hold valid plaintext too. (The offset of the
		 * mapping in the file is not kept: fill from the file's start.) */
		int ret = fill_range(found->node, 0, (uint64_t)a[2]);

		if (ret)
			return ret;
	}
	r = rt__raw6(SYS_mremap, a);
	if (r < 0 && r > -4096)
		return r;
	if (found) {
		found->addr = (uintptr_t)r;
		found->len = (size_t)a[2];
	} else {
		unmapped((uintptr_t)a[0], (size_t)a[1]);
	}
	return r;
}

static long do_msync(const long a[6])
{
	uintptr_t addr = (uintptr_t)a[0], end = addr + (size_t)a[1];
	long r = rt__raw6(SYS_msync, a);

	if (r < 0 || !(a[2] & MS_SYNC) || g_rt.cfg.freshness != RT_FRESH_EVERY_FSYNC)
		return r;
	for (struct rt_map *m = g_maps; m; m = m->next)
		if (m->writable && end > m->addr && addr < m->addr + m->len &&
		    rt__node_commit(m->node))
			return -EIO;
	return r;
}

long rt__shield_maps(long nr, const long a[6])
{
	struct rt_guard g;
	long r;

	if (!g_rt.shield_on || !rt__maps_any())
		return rt__raw6(nr, a);
	rt__lock(&g);
	r = nr == SYS_munmap ? do_munmap(a) : nr == SYS_mremap ? do_mremap(a) : do_msync(a);
	rt__unlock(&g);
	return r;
}

/* A forked child: its inherited mappings registered as its own. */
void rt__maps_after_fork(void)
{
	for (struct rt_map *m = g_maps; m; m = m->next)
		if (atomic_load(&m->node->dead) || map_register(m->node, m->writable, true))
			atomic_store(&m->node->dead, true);
}
