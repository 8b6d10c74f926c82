/* kiln runtime: the per-thread block (struct rt_thread, internal.h).
 *
 * Static TLS must not grow: ld.so places the TLS of a library loaded after
 * the program started (LD_AUDIT loads libkiln.so that way) in a surplus of a
 * few KiB shared by every such library, and "cannot allocate memory in static
 * TLS block" ends the program. So what a thread needs in KiB (the signals its
 * guards keep, the network shield's staged plaintext) lives in one anonymous
 * mapping, made by the thread itself the first time it enters a guard and
 * unmapped at its exit. A fork copies it with the thread; exec drops it. */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime/internal.h"
#include "runtime/net_load.h"

#define PAGE 4096ul
#define BLOCK ((sizeof(struct rt_thread) + PAGE - 1) & ~(PAGE - 1))

RT_TLS struct rt_thread *t_rt_thread;

struct rt_thread *rt__thread_peek(void)
{
	return t_rt_thread;
}

struct rt_thread *rt__thread(void)
{
	struct rt_thread *t = t_rt_thread, *none = NULL;
	long p;

	if (t)
		return t;
	/* A raw call: this may run in a signal handler, or at depth 0 where
	 * libc's mmap would trap to the dispatcher. */
	p = rt__raw(SYS_mmap, 0, BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (p < 0 && p >= -4095)
		return NULL;
	t = (struct rt_thread *)p;
	/* A handler of the program that used the shield between the test above
	 * and here made one already: keep that one (one instruction, so no
	 * handler of this thread can come between the compare and the store). */
	if (!__atomic_compare_exchange_n(&t_rt_thread, &none, t, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		rt__raw(SYS_munmap, t, BLOCK);
		return none;
	}
	return t;
}

void rt__thread_exit(void)
{
	struct rt_thread *t = t_rt_thread;

	if (!t || t->defer)
		return; /* none, or the runtime's own exit inside a guard: keep it */
	if (t->net_held)
		g_rt_net->hold_flush(); /* what it wrote last goes before it ends */
	t_rt_thread = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	rt__raw(SYS_munmap, t, BLOCK);
}
