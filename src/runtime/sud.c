/* kiln runtime: Syscall User Dispatch (prctl PR_SET_SYSCALL_USER_DISPATCH).
 *
 * Every system call made outside [rt__sud_start, rt__sud_end] while the calling
 * thread's selector byte says BLOCK raises SIGSYS; the handler routes it
 * through rt__dispatch like the libc wrappers do and writes the result into the
 * saved rax. The runtime's own calls go through rt__raw_syscall, which lives in
 * the allowed region, so they never trap. Two traps measured on these machines
 * (design §10): the kernel checks the address *after* the syscall instruction,
 * so the region extends one byte past the last one; and the handler returns
 * through its own restorer in the region (libc's __restore_rt would trap).
 *
 * Special cases handled here because they depend on the trapped context:
 *  - rt_sigreturn from the app's handlers (libc restorer): execution is sent to
 *    our stub, which issues rt_sigreturn from the region with the same stack.
 *  - rt_sigprocmask: the handler's return restores uc_sigmask, so the call is
 *    applied to uc_sigmask (and SIGSYS is never blocked: a blocked SIGSYS from
 *    dispatch kills the process).
 *  - clone with a new stack (threads, posix_spawn): the call is re-issued from
 *    rt__stub_clone, which returns to the trapped address in both parent and
 *    child (the return address is pushed below the red zone and on the child
 *    stack). clone3 answers ENOSYS so libc falls back to clone.
 *  - vfork runs as fork: the handler's stack frame cannot be shared. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "runtime/net_load.h"
#include "runtime/sload.h"

__asm__(".pushsection .text.kiln_sud,\"ax\",@progbits\n"
	".globl rt__sud_start\n.hidden rt__sud_start\n"
	"rt__sud_start:\n"
	".globl rt__raw_syscall\n.hidden rt__raw_syscall\n.type rt__raw_syscall,@function\n"
	"rt__raw_syscall:\n"
	"\tmovq %rdi, %rax\n"
	"\tmovq %rsi, %rdi\n"
	"\tmovq %rdx, %rsi\n"
	"\tmovq %rcx, %rdx\n"
	"\tmovq %r8, %r10\n"
	"\tmovq %r9, %r8\n"
	"\tmovq 8(%rsp), %r9\n"
	"\tsyscall\n"
	"\tret\n"
	".size rt__raw_syscall, .-rt__raw_syscall\n"
	".globl rt__stub_sigreturn\n.hidden rt__stub_sigreturn\n.type rt__stub_sigreturn,@function\n"
	"rt__stub_sigreturn:\n"
	"\tmovl $15, %eax\n"
	"\tsyscall\n"
	"\thlt\n"
	".size rt__stub_sigreturn, .-rt__stub_sigreturn\n"
	".globl rt__stub_clone\n.hidden rt__stub_clone\n.type rt__stub_clone,@function\n"
	"rt__stub_clone:\n"
	"\tsyscall\n"
	"\ttestq %rax, %rax\n"
	"\tjz 1f\n"
	"\tret $128\n"
	"1:\tret\n"
	".size rt__stub_clone, .-rt__stub_clone\n"
	".globl rt__sud_end\n.hidden rt__sud_end\n"
	"rt__sud_end:\n"
	"\tnop\n"
	"\tnop\n"
	".popsection\n");

RT_TLS volatile char t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
RT_TLS int t_rt_depth;

/* A guard (internal.h): one per call of the program that runs the shields'
 * code, however many steps it takes; nested ones change nothing. The program's
 * handlers keep what arrives inside it (sys/signal.c): no system call, where a
 * pair of rt_sigprocmask per guard was most of what a cached lookup (sqlite's
 * stat of its -journal) or a small TLS request cost. Without deferral the
 * guard masks every signal but the runtime's three. The volume server runs at
 * depth 1 with every signal blocked for good (server.c). */
void rt__enter(struct rt_guard *g)
{
	/* SIGSEGV and SIGBUS stay deliverable where they are the runtime's. */
	uint64_t mask = g_rt_fault_handler ? ~RT_KEPT_SIGS : ~SIGSYS_BIT;

	g->masked = false;
	if (t_rt_depth == 0) {
		/* The thread's block keeps what arrives (made by its first guard). */
		struct rt_thread *t = rt__sig_can_defer() ? rt__thread() : NULL;

		if (t) {
			/* Set before the depth: no handler of the program runs
			 * from here on. */
			t->defer = true;
			atomic_signal_fence(memory_order_seq_cst);
		} else {
			rt__raw(SYS_rt_sigprocmask, SIG_BLOCK, &mask, &g->mask, 8);
			g->masked = true;
		}
	}
	g->selector = t_rt_selector;
	t_rt_depth++;
	t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
}

void rt__runtime_thread(void)
{
	t_rt_depth = 1;
	t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
}

void rt__leave(struct rt_guard *g)
{
	struct rt_thread *t;

	t_rt_depth--;
	t_rt_selector = g->selector;
	if (t_rt_depth != 0)
		return;
	if (g->masked) {
		rt__raw(SYS_rt_sigprocmask, SIG_SETMASK, &g->mask, NULL, 8);
	} else {
		atomic_signal_fence(memory_order_seq_cst);
		t_rt_thread->defer = false;
		atomic_signal_fence(memory_order_seq_cst);
	}
	/* What arrived inside it, now (a masked guard keeps only a SIGSEGV
	 * or SIGBUS that was sent: sys/signal.c). */
	t = t_rt_thread;
	if (t && t->deferred)
		rt__sig_redeliver(t);
}

/* Emulate rt_sigprocmask on the context the handler will restore (the
 * program's pointers read and written as the kernel would: EFAULT). No TLS:
 * the static loader calls it with the program's FS (sload_trap.c). */
RT_NO_SSP long rt__sigmask_on_context(const long a[6], ucontext_t *uc)
{
	uint64_t *cur = (uint64_t *)&uc->uc_sigmask;
	uint64_t set = 0, old = *cur;

	if (a[3] != 8)
		return -EINVAL;
	if (a[1]) {
		if (rt__copy_in(&set, (const void *)a[1], sizeof(set)))
			return -EFAULT;
		switch (a[0]) {
		case SIG_BLOCK:
			*cur |= set;
			break;
		case SIG_UNBLOCK:
			*cur &= ~set;
			break;
		case SIG_SETMASK:
			*cur = set;
			break;
		default:
			return -EINVAL;
		}
		*cur &= ~RT_KEPT_SIGS;
	}
	if (a[2] && rt__copy_out((void *)a[2], &old, sizeof(old)))
		return -EFAULT;
	return 0;
}

/* ---- fork -------------------------------------------------------------------
 * The shields' locks are held across a fork, so that the child never inherits
 * one held by a thread it does not have, and inside a guard: a handler of the
 * program must not run while they are held (it may call into the shields).
 * libc's fork runs these through pthread_atfork (rt__fork_init, at start),
 * which calls prepare handlers last registered first: the program's own run
 * before ours and may use the shields. A fork of the runtime's own (the volume
 * server's start, inside a guard) leaves them alone. */
static RT_TLS struct rt_guard t_fork_guard;
static RT_TLS bool t_fork_own;

static void fork_prepare(void)
{
	t_fork_own = t_rt_depth > 0;
	if (t_fork_own)
		return;
	rt__enter(&t_fork_guard);
	if (g_rt.shield_on)
		rt__shield_before_fork();
	if (g_rt_net_on)
		g_rt_net->before_fork();
}

/* pid: the fork's result (0 in the child). */
static void fork_done(long pid)
{
	if (t_fork_own)
		return;
	if (pid == 0)
		rt__sud_thread_init(); /* dispatch is not inherited by children */
	if (g_rt.shield_on)
		pid == 0 ? rt__shield_after_fork() : rt__shield_parent_after_fork();
	if (g_rt_net_on)
		pid == 0 ? g_rt_net->child_after_fork() : g_rt_net->parent_after_fork();
	/* What the guard kept in the parent was sent to the parent. */
	if (pid == 0 && t_rt_thread)
		t_rt_thread->deferred = 0;
	rt__leave(&t_fork_guard);
}

static void fork_parent(void)
{
	fork_done(1);
}

static void fork_child(void)
{
	fork_done(0);
}

int rt__fork_init(void)
{
	return -pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Also the static loader's slow path (sload_trap.c): a seccomp SIGSYS, with
 * the runtime's FS already in place. */
void rt__sigsys(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;
	int saved_errno = errno;
	char saved_sel = t_rt_selector;
	long nr = g[REG_RAX];
	long a[6] = { g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9] };

	if (si->si_code != SYS_USER_DISPATCH && !(g_rt.sload_on && si->si_code == 1)) {
		rt__say("SIGSYS not from syscall dispatch (code %d): aborting", si->si_code);
		rt__raw(SYS_exit_group, 159);
	}
	t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
	switch (nr) {
	case SYS_rt_sigreturn:
		/* Re-issue from the allowed region with the app's stack untouched. */
		g[REG_RIP] = (greg_t)rt__stub_sigreturn;
		break;
	case SYS_rt_sigprocmask:
		g[REG_RAX] = rt__sigmask_on_context(a, uc);
		break;
	case SYS_clone3:
		g[REG_RAX] = -ENOSYS;
		break;
	case SYS_exit:
		/* The thread ends: its block goes (thread.c). */
		rt__thread_exit();
		g[REG_RAX] = rt__dispatch(nr, a, uc);
		break;
	case SYS_fork: /* trapped by the static loader only (musl's fork) */
	case SYS_vfork:
		fork_prepare();
		g[REG_RAX] = rt__raw(SYS_clone, SIGCHLD, 0, 0, 0, 0);
		fork_done(g[REG_RAX]);
		break;
	case SYS_clone:
		if (a[1] && (a[0] & CLONE_VM)) {
			uint64_t *parent_sp = (uint64_t *)(g[REG_RSP] - 136);
			uint64_t *child_sp = (uint64_t *)(a[1] - 8);

			*parent_sp = (uint64_t)g[REG_RIP];
			*child_sp = (uint64_t)g[REG_RIP];
			g[REG_RSP] = (greg_t)parent_sp;
			g[REG_RSI] = (greg_t)child_sp;
			g[REG_RAX] = SYS_clone;
			g[REG_RIP] = (greg_t)rt__stub_clone;
			break;
		}
		fork_prepare();
		if (a[0] & CLONE_VFORK) {
			/* Same-stack vfork through clone: run it as fork. */
			g[REG_RAX] = rt__raw(SYS_clone, (a[0] & ~(CLONE_VM | CLONE_VFORK)), 0,
					     a[2], a[3], a[4]);
		} else {
			g[REG_RAX] = rt__dispatch(nr, a, uc);
		}
		fork_done(g[REG_RAX]);
		break;
	default:
		g[REG_RAX] = rt__dispatch(nr, a, uc);
		break;
	}
	t_rt_selector = saved_sel;
	errno = saved_errno;
}

int rt__sud_thread_init(void)
{
	long ret;

	if (!g_rt.sud_on)
		return 0;
	t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
	ret = rt__raw(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON,
		      (unsigned long)rt__sud_start,
		     (unsigned long)(rt__sud_end - rt__sud_start) + 1, &t_rt_selector);
	if (ret < 0)
		return (int)ret;
	t_rt_selector = SYSCALL_DISPATCH_FILTER_BLOCK;
	return 0;
}

#ifdef __GLIBC__
/* glibc's stdio makes its system calls in the functions of its FILE jump
 * tables (_IO_file_write calls the internal __write, which no wrapper sees):
 * with dispatch on, every flush of stdout was a SIGSYS trap (4-5 us; one per
 * statement of sqlite3's shell). The slots of those five get the runtime's,
 * which dispatch as the wrappers do (docs/runtime.md, "Two interposition
 * paths"). */
static long io(long nr, FILE *f, long a1, long a2)
{
	long a[6] = { f->_fileno, a1, a2 }, r = rt__dispatch(nr, a, NULL);

	return r < 0 && r > -4096 ? (errno = (int)-r, -1) : r;
}
static ssize_t io_read(FILE *f, void *b, ssize_t n) { return io(SYS_read, f, (long)b, n); }
static off64_t io_seek(FILE *f, off64_t o, int how) { return io(SYS_lseek, f, o, how); }
static int io_close(FILE *f) { return (int)io(SYS_close, f, 0, 0); }
static int io_stat(FILE *f, void *st) { return (int)io(SYS_fstat, f, (long)st, 0); }
static ssize_t io_write(FILE *f, const void *b, ssize_t n) /* as _IO_new_file_write */
{
	ssize_t done = 0, r = 0;

	while (done < n && (r = io(SYS_write, f, (long)b + done, n - done)) >= 0)
		done += r;
	f->_flags |= r < 0 ? _IO_ERR_SEEN : 0;
	f->_offset += f->_offset >= 0 ? done : 0;
	return done;
}

/* Written through /proc/self/mem, as a debugger would: the tables stay in
 * libc's read-only (RELRO) pages. Only tables whose slots hold each of the
 * five exactly once: another layout is left alone. */
static void stdio_direct(void)
{
	static const char *const fns[5] = { "_IO_file_read", "_IO_file_write", "_IO_file_seek",
					    "_IO_file_close", "_IO_file_stat" };
	static void *const mine[5] = { (void *)io_read, (void *)io_write, (void *)io_seek,
				       (void *)io_close, (void *)io_stat };
	long mem = rt__raw(SYS_openat, AT_FDCWD, "/proc/self/mem", O_RDWR | O_CLOEXEC);
	void *fn[5];

	for (int i = 0; i < 5; i++)
		fn[i] = dlsym(RTLD_DEFAULT, fns[i]);
	for (int t = 0; t < 2 && mem >= 0; t++) {
		void **tab = dlsym(RTLD_DEFAULT, t ? "_IO_wfile_jumps" : "_IO_file_jumps"), *copy[21];
		int n = 0;

		if (tab)
			memcpy(copy, tab, sizeof(copy));
		for (int i = 0; i < 5 && tab; i++) {
			int c = 0;

			for (int j = 2; j < 21; j++)
				c += fn[i] && tab[j] == fn[i] ? (copy[j] = mine[i], 1) : 0;
			n += c == 1;
		}
		if (n == 5) /* the table in one write: its other slots as they are */
			rt__raw(SYS_pwrite64, mem, copy, sizeof(copy), tab);
	}
	if (mem >= 0)
		rt__raw(SYS_close, mem);
}
#endif

int rt__sud_init(void)
{
	struct k_sigaction sa = {
		.handler = (void *)rt__sigsys,
		.flags = SA_SIGINFO | SA_RESTORER | SA_NODEFER,
		.restorer = (void *)rt__stub_sigreturn,
		.mask = 0,
	};
	long ret;

	ret = rt__raw(SYS_rt_sigaction, SIGSYS, &sa, NULL, 8);
	if (ret < 0)
		return (int)ret;
	g_rt.sud_on = true;
	ret = rt__sud_thread_init();
	if (ret < 0)
		g_rt.sud_on = false;
#ifdef __GLIBC__
	else
		stdio_direct();
#endif
	return (int)ret;
}
