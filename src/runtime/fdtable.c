/* kiln runtime: the fd table. One slot per fd number below RT_FD_MAX holding a
 * tagged pointer (kind in the low 3 bits; shield objects are at least 8-byte
 * aligned). Lookups are a single relaxed atomic load so the read/write fast
 * path costs nothing measurable; updates use atomic exchange so a signal
 * handler or another thread never sees a torn entry. The array lives in .bss:
 * pages are only touched for fd numbers actually used. */
#include <stdatomic.h>

#include "runtime/runtime.h"

static _Atomic uintptr_t g_fds[RT_FD_MAX];
static atomic_size_t g_count;

bool rt_fd_in_range(int fd)
{
	return fd >= 0 && fd < RT_FD_MAX;
}

static uintptr_t slot(int fd)
{
	return atomic_load_explicit(&g_fds[fd], memory_order_acquire);
}

enum rt_fd_kind rt_fd_kind(int fd)
{
	if (!rt_fd_in_range(fd))
		return RT_FD_NONE;
	return (enum rt_fd_kind)(slot(fd) & RT_FD_KIND_MASK);
}

void *rt_fd_get(int fd)
{
	if (!rt_fd_in_range(fd))
		return NULL;
	return (void *)(slot(fd) & ~(uintptr_t)RT_FD_KIND_MASK);
}

void *rt_fd_set(int fd, enum rt_fd_kind kind, void *obj)
{
	uintptr_t old;

	if (!rt_fd_in_range(fd))
		return NULL;
	old = atomic_exchange(&g_fds[fd], (uintptr_t)obj | (uintptr_t)kind);
	if (!old)
		atomic_fetch_add(&g_count, 1);
	return (void *)(old & ~(uintptr_t)RT_FD_KIND_MASK);
}

void *rt_fd_clear(int fd, enum rt_fd_kind *kind)
{
	uintptr_t old;

	if (kind)
		*kind = RT_FD_NONE;
	if (!rt_fd_in_range(fd))
		return NULL;
	old = atomic_exchange(&g_fds[fd], 0);
	if (old)
		atomic_fetch_sub(&g_count, 1);
	if (kind)
		*kind = (enum rt_fd_kind)(old & RT_FD_KIND_MASK);
	return (void *)(old & ~(uintptr_t)RT_FD_KIND_MASK);
}

bool rt_fd_clear_if(int fd, enum rt_fd_kind kind, void *obj)
{
	uintptr_t want = (uintptr_t)obj | (uintptr_t)kind;

	if (!rt_fd_in_range(fd) || !want)
		return false;
	if (!atomic_compare_exchange_strong(&g_fds[fd], &want, 0))
		return false;
	atomic_fetch_sub(&g_count, 1);
	return true;
}

size_t rt_fd_count(void)
{
	return atomic_load(&g_count);
}
