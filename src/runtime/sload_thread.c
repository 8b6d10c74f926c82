/* kiln runtime: threads of a static program run by the loader (sload.c),
 * docs/runtime.md "The static loader", "Threads".
 *
 * The runtime's C code needs a glibc TCB (FS) of its own per thread: errno,
 * malloc's tcache, its per-thread block (thread.c), the credentials and
 * guards of the dispatcher. A program's thread has its libc's. So every
 * thread of the program borrows the TCB of a glibc thread made for it, its
 * donor:
 *
 *  - At the clone trap (slow path, the caller's runtime FS) a slot is taken
 *    and a donor started with pthread_create. The donor records its TCB and
 *    a stack top (64 KiB below its own frame) in the slot and sleeps.
 *  - The clone itself is the program's, with its flags, stack, TLS, tid
 *    pointers, issued from rt__sload_clone_stub after the handler returned
 *    (the kernel makes the thread exactly as the program asked, CLEARTID
 *    included). The child's first instructions (the stub's) store its tid in
 *    the slot before any code of the program runs, so its first trap finds
 *    it: the SIGSYS entry looks the slot up by gettid (no TLS), runs the slow
 *    path on the donor's TCB and stack, and switches back.
 *  - The donor sleeps on a pidfd of the thread (PIDFD_THREAD); when the
 *    thread is gone it frees the thread's runtime state (rt__thread_exit,
 *    with the TCB it lent), unmaps the stack the thread unmapped under
 *    itself (a detached musl thread's last call before exit, deferred), and
 *    ends. The thread's exit itself is not trapped: a thread that unmapped
 *    its stack could not take a signal frame.
 *
 * While the program thread runs, the donor only sleeps in raw system calls
 * (no errno, no TLS): the TCB is used by one of the two at a time. */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/sload.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
/* Code run with the program's FS and registers (the stub's): no TLS, no
 * stack protector, no vector register (the program's are live). */
#define NO_TLS RT_NO_SSP __attribute__((noinline, target("general-regs-only")))

#define DONOR_STACK (8ul << 20)
#define DONOR_OWN (64ul << 10) /* the donor's own frames, above rt_sp */

struct rt_sload_thread g_sload_threads[RT_SLOAD_THREADS];
static _Atomic int g_hw;                         /* slots [0, g_hw) may be in use */
static atomic_flag g_alloc_lock = ATOMIC_FLAG_INIT; /* slot_alloc only */

void rt__sload_clone_stub(void) RT_HIDDEN;
void rt__sload_clone_child(struct rt_sload_thread *t) RT_HIDDEN;
uintptr_t rt__sload_clone_done(long r) RT_HIDDEN;

/* After the clone: the child (rax 0) finds its slot and return address on
 * the stack it was given (stack - 16), the caller its own by its tid. Both
 * keep every register of the program but rax (rcx and r11 the syscall
 * clobbers anyway) and return where the program's clone returns. */
__asm__(".text\n"
	".globl rt__sload_clone_stub\n.hidden rt__sload_clone_stub\n"
	".type rt__sload_clone_stub,@function\n"
	"rt__sload_clone_stub:\n"
	"\tsyscall\n"
	"\ttestq %rax, %rax\n"
	"\tjnz 1f\n"
	"\tmovq %rsp, %r11\n"
	"\tpushq %rdi\n\tpushq %rdx\n\tpushq %r8\n\tpushq %r9\n\tpushq %r10\n"
	"\tpushq %rbp\n\tmovq %rsp, %rbp\n\tandq $-16, %rsp\n"
	"\tmovq (%r11), %rdi\n"
	"\tcall rt__sload_clone_child\n"
	"\tmovq %rbp, %rsp\n\tpopq %rbp\n"
	"\tpopq %r10\n\tpopq %r9\n\tpopq %r8\n\tpopq %rdx\n\tpopq %rdi\n"
	"\taddq $8, %rsp\n"
	"\tpopq %rcx\n"
	"\tmovq %rsp, %rsi\n" /* the stack as the program passed it */
	"\txorl %eax, %eax\n"
	"\tjmpq *%rcx\n"
	"1:\taddq $16, %rsi\n"
	"\tsubq $128, %rsp\n" /* the program's red zone */
	"\tpushq %rax\n\tpushq %rdi\n\tpushq %rsi\n\tpushq %rdx\n\tpushq %r8\n\tpushq %r9\n"
	"\tpushq %r10\n"
	"\tpushq %rbp\n\tmovq %rsp, %rbp\n\tandq $-16, %rsp\n"
	"\tmovq %rax, %rdi\n"
	"\tcall rt__sload_clone_done\n"
	"\tmovq %rax, %rcx\n"
	"\tmovq %rbp, %rsp\n\tpopq %rbp\n"
	"\tpopq %r10\n\tpopq %r9\n\tpopq %r8\n\tpopq %rdx\n\tpopq %rsi\n\tpopq %rdi\n"
	"\tpopq %rax\n"
	"\taddq $128, %rsp\n"
	"\tjmpq *%rcx\n"
	".size rt__sload_clone_stub, .-rt__sload_clone_stub\n");

static NO_TLS __attribute__((noreturn)) void no_slot(void)
{
	static const char m[] = "kiln: static loader: a system call from a thread it did not "
				"start: aborting\n";

	rt__raw(SYS_write, 2, m, sizeof(m) - 1);
	rt__raw(SYS_exit_group, 159);
	__builtin_unreachable();
}

NO_TLS struct rt_sload_thread *rt__sload_self(void)
{
	int tid = (int)rt__raw0(SYS_gettid);
	int hw = atomic_load_explicit(&g_hw, memory_order_acquire);

	for (int i = 0; i < hw; i++)
		if (atomic_load_explicit(&g_sload_threads[i].tid, memory_order_acquire) == tid)
			return &g_sload_threads[i];
	no_slot();
}

void rt__sload_threads_init(uintptr_t rt_fs)
{
	struct rt_sload_thread *t = &g_sload_threads[0];

	t->rt_fs = rt_fs;
	t->kind = RT_SLOAD_MAIN;
	atomic_store(&t->used, 1);
	atomic_store(&t->tid, (int)rt__raw0(SYS_gettid));
	atomic_store(&g_hw, 1);
}

static struct rt_sload_thread *slot_alloc(void)
{
	struct rt_sload_thread *t = NULL;
	int hw;

	while (atomic_flag_test_and_set_explicit(&g_alloc_lock, memory_order_acquire))
		rt__raw0(SYS_sched_yield);
	hw = atomic_load(&g_hw);
	for (int i = 1; i < hw && !t; i++)
		if (!atomic_load(&g_sload_threads[i].used))
			t = &g_sload_threads[i];
	if (!t && hw < RT_SLOAD_THREADS)
		t = &g_sload_threads[hw];
	if (t) {
		atomic_store(&t->tid, 0);
		atomic_store(&t->state, RT_SLOAD_PENDING);
		atomic_store(&t->ready, 0);
		t->rt_fs = t->rt_sp = t->prog_fs = 0;
		t->unmap_addr = t->unmap_len = 0;
		t->clone_child = NULL;
		atomic_store(&t->used, 1);
		if (t == &g_sload_threads[hw])
			atomic_store(&g_hw, hw + 1);
	}
	atomic_flag_clear_explicit(&g_alloc_lock, memory_order_release);
	return t;
}

static NO_TLS void slot_free(struct rt_sload_thread *t)
{
	atomic_store(&t->tid, 0);
	atomic_store(&t->used, 0);
}

static NO_TLS void futex_wake(_Atomic int *w)
{
	rt__raw(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1);
}

static NO_TLS void futex_wait(_Atomic int *w, int v)
{
	while (atomic_load(w) == v)
		rt__raw(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL);
}

NO_TLS void rt__sload_clone_child(struct rt_sload_thread *t)
{
	atomic_store(&t->tid, (int)rt__raw0(SYS_gettid));
	rt__raw(SYS_rt_sigprocmask, SIG_SETMASK, &t->mask, NULL, 8);
}

NO_TLS uintptr_t rt__sload_clone_done(long r)
{
	struct rt_sload_thread *self = rt__sload_self(), *t = self->clone_child;
	uintptr_t ret = self->clone_ret;
	uint64_t mask = t->mask;

	if (t->kind == RT_SLOAD_ALIAS) {
		slot_free(t); /* the vfork child has exec'd or exited */
	} else {
		t->result = r;
		atomic_store(&t->state, r > 0 ? RT_SLOAD_STARTED : RT_SLOAD_FAILED);
		futex_wake(&t->state);
	}
	rt__raw(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, 8);
	return ret;
}

/* The thread tid (a process when not CLONE_THREAD) no longer exists. */
static NO_TLS bool gone(const struct rt_sload_thread *t)
{
	long r = (t->clone_flags & CLONE_THREAD) ?
		 rt__raw(SYS_tgkill, rt__raw0(SYS_getpid), t->result, 0) :
		 rt__raw(SYS_kill, t->result, 0);

	return r == -ESRCH;
}

/* The donor's sleep: raw calls only (the program thread uses the TCB). The
 * pidfd is the runtime's (the program cannot close it); should it become
 * unusable, the thread is looked at every 50 ms instead. */
static NO_TLS void donor_wait(struct rt_sload_thread *t)
{
	struct pollfd p = { .events = POLLIN };
	long fd;

	futex_wait(&t->state, RT_SLOAD_PENDING);
	if (atomic_load(&t->state) == RT_SLOAD_FAILED)
		return;
	fd = rt__raw(SYS_pidfd_open, t->result,
		     (t->clone_flags & CLONE_THREAD) ? PIDFD_THREAD : 0);
	if (fd >= 0)
		fd = rt__own_fd((int)fd); /* among the runtime's, out of the program's way */
	p.fd = (int)fd;
	while (p.fd >= 0 && !gone(t)) {
		long r = rt__raw(SYS_poll, &p, 1, -1);

		if (r < 0 && r != -EINTR)
			break;
		if (r == 1 && (p.revents & POLLNVAL))
			break;
		if (r == 1 && !gone(t))
			break; /* readable with the thread alive: not a pidfd of it */
	}
	while (!gone(t))
		rt__raw(SYS_poll, NULL, 0, 50);
	rt__own_close((int)fd);
}

static void *donor_main(void *arg)
{
	struct rt_sload_thread *t = arg;
	sigset_t all;
	uintptr_t fs;

	/* Never a program's signal here: they go to the program's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	__asm__ volatile("movq %%fs:0, %0" : "=r"(fs));
	t->rt_fs = fs;
	t->rt_sp = ((uintptr_t)__builtin_frame_address(0) - DONOR_OWN) & ~15ul;
	atomic_store(&t->ready, 1);
	futex_wake(&t->ready);
	donor_wait(t);
	/* The thread is gone: what the runtime kept for it goes with the TCB. */
	rt__thread_exit();
	if (t->unmap_len)
		rt__raw(SYS_munmap, t->unmap_addr, t->unmap_len);
	slot_free(t);
	return NULL;
}

int rt__sload_clone(struct rt_sload_thread *self, ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	long flags = g[REG_RDI];
	uintptr_t stack = (uintptr_t)g[REG_RSI], top[2];
	struct rt_sload_thread *t;
	pthread_attr_t at;
	pthread_t pt;
	int err;

	if (!(flags & CLONE_VM) || (!stack && (flags & CLONE_VFORK)))
		return 0; /* a fork (sud.c runs a vfork on the same stack as one) */
	if (!stack || (flags & (CLONE_VFORK | CLONE_THREAD)) == (CLONE_VFORK | CLONE_THREAD)) {
		rt__refuse("sload-clone-stack", "%s: a clone sharing its memory without a stack "
			   "of its own: not supported by the static loader (EINVAL)",
			   rt__sload_program());
		g[REG_RAX] = -EINVAL;
		return 1;
	}
	t = slot_alloc();
	if (!t) {
		rt__refuse("sload-threads", "%s: more than %d threads: the static loader's "
			   "limit (EAGAIN)", rt__sload_program(), RT_SLOAD_THREADS - 1);
		g[REG_RAX] = -EAGAIN;
		return 1;
	}
	t->prog_fs = (flags & CLONE_SETTLS) ? (uintptr_t)g[REG_R8] : self->prog_fs;
	t->clone_flags = (int)flags;
	memcpy(&t->mask, &uc->uc_sigmask, sizeof(t->mask));
	top[0] = (uintptr_t)t;
	top[1] = (uintptr_t)g[REG_RIP];
	if (rt__copy_out((void *)(stack - sizeof(top)), top, sizeof(top))) {
		slot_free(t);
		g[REG_RAX] = -EFAULT;
		return 1;
	}
	if (flags & CLONE_VFORK) {
		/* The caller sleeps until the child execs or exits: it lends
		 * its own TCB and stack. */
		t->kind = RT_SLOAD_ALIAS;
		t->rt_fs = self->rt_fs;
		t->rt_sp = self->rt_sp;
	} else {
		t->kind = RT_SLOAD_DONOR;
		err = pthread_attr_init(&at);
		if (!err) {
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			pthread_attr_setstacksize(&at, DONOR_STACK);
			err = pthread_create(&pt, &at, donor_main, t);
			pthread_attr_destroy(&at);
		}
		if (err) {
			slot_free(t);
			g[REG_RAX] = -EAGAIN;
			return 1;
		}
		futex_wait(&t->ready, 0);
	}
	self->clone_child = t;
	self->clone_ret = (uintptr_t)g[REG_RIP];
	g[REG_RSI] = (greg_t)(stack - sizeof(top));
	g[REG_RAX] = SYS_clone;
	g[REG_RIP] = (greg_t)rt__sload_clone_stub;
	/* No handler of the program until the stub has recorded the clone on
	 * both sides (the mask the program had comes back there). */
	memset(&uc->uc_sigmask, 0xff, 8);
	*(uint64_t *)&uc->uc_sigmask &= ~RT_KEPT_SIGS;
	return 1;
}

void rt__sload_forked(struct rt_sload_thread *self)
{
	int hw = atomic_load(&g_hw);

	/* The other threads (and their donors) stayed in the parent. */
	for (int i = 0; i < hw; i++)
		if (&g_sload_threads[i] != self)
			slot_free(&g_sload_threads[i]);
	self->kind = RT_SLOAD_MAIN;
	atomic_store(&self->tid, (int)rt__raw0(SYS_gettid));
	atomic_flag_clear(&g_alloc_lock);
}

NO_TLS int rt__sload_unmap_self(struct rt_sload_thread *self, const long a[6], uintptr_t sp)
{
	uintptr_t addr = (uintptr_t)a[0], len = (uintptr_t)a[1];

	if (self->kind != RT_SLOAD_DONOR || sp < addr || sp - addr >= len)
		return 0;
	self->unmap_addr = addr;
	self->unmap_len = len;
	return 1;
}
