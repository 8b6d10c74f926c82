/* kiln runtime: the system calls of a static program loaded in-process
 * (sload.c), docs/runtime.md "The static loader".
 *
 * The program and the runtime share one process but not one thread pointer:
 * the program's libc sets FS to its own TCB (arch_prctl), the runtime's C code
 * needs glibc's (errno, malloc's arenas, its own TLS). So:
 *
 *  - A seccomp filter traps (SECCOMP_RET_TRAP: SIGSYS in this thread, with
 *    the program's FS) the calls the runtime must see (every number the
 *    system call table does not mark PASS, and arch_prctl, brk, fork,
 *    rt_sigprocmask) when they are made from the program's image; everything
 *    else is allowed: the runtime's own calls, and, after an execve, every
 *    call of the next program (the filter stays, the handler does not: the
 *    next program is mapped elsewhere, kiln-sload places static-pie images
 *    away from where the kernel maps anything). A call the program makes
 *    from code outside its image (JIT code) is not seen.
 *  - The handler's entry (assembly, below) first runs rt__sload_fast, C
 *    that touches no TLS and has no stack protector: a data call on an fd the
 *    shield does not track is issued as is, brk is emulated, arch_prctl is
 *    recorded. Only a call the runtime must act on switches FS to the
 *    runtime's (wrfsbase where the kernel enabled FSGSBASE; else arch_prctl:
 *    ~4-7 us each way here, the reason for the fast path), runs sud.c's handler (the dispatcher the
 *    LD_PRELOAD path uses) and switches back.
 *  - The handler blocks every other signal while it runs, so no handler of
 *    the program ever runs with the runtime's FS. SIGSYS itself is never
 *    blocked (rt_sigprocmask and the masks of rt_sigaction are trapped and
 *    cleared of it): the kernel kills a thread whose seccomp SIGSYS is
 *    blocked.
 *
 * Threads (sload_thread.c): each thread of the program has a slot, found by
 * its tid, with the runtime's TCB and stack it switches to for the slow path
 * and its own FS to switch back to. The handler runs on the program's
 * alternate signal stack when it has one (SA_ONSTACK: Go's goroutine stacks
 * have no room for a signal frame) and the slow path on the slot's stack. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/sload.h"

#ifndef ARCH_SET_FS
#define ARCH_SET_FS 0x1002
#endif
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif
#define NO_SSP RT_NO_SSP __attribute__((noinline))

#define BRK_RESERVE (1ul << 30)
#define PAGE 4096ul

/* The program's image (its calls trap). */
static uintptr_t g_img_lo, g_img_hi;
bool g_sload_fsgsbase RT_HIDDEN;     /* wrfsbase allowed (AT_HWCAP2 says the kernel set CR4) */
static uintptr_t g_brk_start, g_brk_cur, g_brk_end;
static const char *g_prog;
static struct k_sigaction g_prog_sigsys; /* what the program asked for SIGSYS */

struct rt_sload_thread *rt__sload_fast(siginfo_t *si, ucontext_t *uc) RT_HIDDEN;
void rt__sload_slow(int sig, siginfo_t *si, void *ctx, struct rt_sload_thread *t) RT_HIDDEN;
void rt__sload_entry(int sig, siginfo_t *si, void *ctx) RT_HIDDEN;

/* The handler's entry: the fast path with the program's FS; else the
 * thread's slot (rax): the runtime's FS and stack around the slow path.
 * rbx, r12, r13, r14 keep si, uc, the slot and the handler's stack. */
__asm__(".text\n"
	".globl rt__sload_entry\n.hidden rt__sload_entry\n.type rt__sload_entry,@function\n"
	"rt__sload_entry:\n"
	"\tpushq %rbx\n"
	"\tpushq %r12\n"
	"\tpushq %r13\n"
	"\tpushq %r14\n"
	"\tsubq $8, %rsp\n"
	"\tmovq %rsi, %rbx\n"
	"\tmovq %rdx, %r12\n"
	"\tmovq %rsi, %rdi\n"
	"\tmovq %rdx, %rsi\n"
	"\tcall rt__sload_fast\n"
	"\ttestq %rax, %rax\n"
	"\tjz 1f\n"
	"\tmovq %rax, %r13\n"
	"\tmovq %rsp, %r14\n"
	"\tmovq 8(%r13), %rsp\n"  /* rt_sp */
	"\tmovq 0(%r13), %rsi\n"  /* rt_fs */
	"\tcall sload_set_fs\n"
	"\tmovl $31, %edi\n"
	"\tmovq %rbx, %rsi\n"
	"\tmovq %r12, %rdx\n"
	"\tmovq %r13, %rcx\n"
	"\tcall rt__sload_slow\n"
	"\tmovq 16(%r13), %rsi\n" /* prog_fs */
	"\tcall sload_set_fs\n"
	"\tmovq %r14, %rsp\n"
	"1:\taddq $8, %rsp\n"
	"\tpopq %r14\n"
	"\tpopq %r13\n"
	"\tpopq %r12\n"
	"\tpopq %rbx\n"
	"\tret\n"
	".size rt__sload_entry, .-rt__sload_entry\n"
	/* FS = rsi: wrfsbase where the kernel enabled FSGSBASE (a few ns),
	 * else arch_prctl(ARCH_SET_FS) (~4-7 us on this project's VMs).
	 * Clobbers rax, rcx, rdi, r11. */
	".type sload_set_fs,@function\n"
	"sload_set_fs:\n"
	"\tcmpb $0, g_sload_fsgsbase(%rip)\n"
	"\tjne 2f\n"
	"\tmovl $158, %eax\n"
	"\tmovl $0x1002, %edi\n"
	"\tsyscall\n"
	"\tret\n"
	"2:\twrfsbase %rsi\n"
	"\tret\n"
	".size sload_set_fs, .-sload_set_fs\n"
	/* rt__sload_jump(sp, entry): FS 0 and a clean register file, as
	 * execve leaves them (rdx 0: no rtld_fini for atexit). */
	".globl rt__sload_jump\n.hidden rt__sload_jump\n.type rt__sload_jump,@function\n"
	"rt__sload_jump:\n"
	/* This stack, below here, is the first thread's for the slow path. */
	"\tleaq -256(%rsp), %rax\n"
	"\tandq $-16, %rax\n"
	"\tmovq %rax, g_sload_threads+8(%rip)\n"
	"\tmovq %rdi, %rsp\n"
	"\tmovq %rsi, %r12\n"
	"\tmovl $158, %eax\n"
	"\tmovl $0x1002, %edi\n"
	"\txorl %esi, %esi\n"
	"\tsyscall\n"
	"\txorl %eax, %eax\n"
	"\txorl %ebx, %ebx\n"
	"\txorl %ecx, %ecx\n"
	"\txorl %edx, %edx\n"
	"\txorl %esi, %esi\n"
	"\txorl %edi, %edi\n"
	"\txorl %ebp, %ebp\n"
	"\txorl %r8d, %r8d\n"
	"\txorl %r9d, %r9d\n"
	"\txorl %r10d, %r10d\n"
	"\txorl %r11d, %r11d\n"
	"\tmovq %r12, %r13\n"
	"\txorl %r12d, %r12d\n"
	"\txorl %r14d, %r14d\n"
	"\txorl %r15d, %r15d\n"
	"\tjmp *%r13\n"
	".size rt__sload_jump, .-rt__sload_jump\n");

int rt__sload_brk_init(uintptr_t hi, const char **why)
{
	uintptr_t start = (hi + PAGE - 1) & ~(PAGE - 1);
	void *r = mmap((void *)start, BRK_RESERVE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	/* After the image as the kernel places it when it can; anywhere else
	 * (a runtime mapping right there) does as well: the program asks. */
	if (r == MAP_FAILED)
		r = mmap(NULL, BRK_RESERVE, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return *why = "cannot reserve its heap (brk)", -1;
	g_brk_start = g_brk_cur = (uintptr_t)r;
	g_brk_end = g_brk_start + BRK_RESERVE;
	return 0;
}

/* brk inside the reservation: new pages are fresh zeroes, as the kernel's.
 * Out of range or out of memory: the current break, as the kernel answers. */
static NO_SSP long sload_brk(uintptr_t want)
{
	uintptr_t old_top = (g_brk_cur + PAGE - 1) & ~(PAGE - 1);
	uintptr_t new_top = (want + PAGE - 1) & ~(PAGE - 1);
	long r;

	if (want < g_brk_start || want > g_brk_end)
		return (long)g_brk_cur;
	if (new_top > old_top) {
		r = rt__raw(SYS_mmap, old_top, new_top - old_top, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (r < 0 && r > -4096)
			return (long)g_brk_cur;
	} else if (new_top < old_top) {
		rt__raw(SYS_mmap, new_top, old_top - new_top, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	}
	g_brk_cur = want;
	return (long)want;
}

/* With the program's FS: no TLS, no errno, no stack protector, nothing that
 * takes a lock. NULL when the call is answered (result in rax), else the
 * thread's slot for the slow path. */
NO_SSP struct rt_sload_thread *rt__sload_fast(siginfo_t *si, ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	long nr = g[REG_RAX];
	long a[6] = { g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9] };
	const struct rt_syscall *s;
	long r;

	if (si->si_code != SYS_SECCOMP || nr < 0 || nr > RT_SYSCALL_MAX)
		return rt__sload_self();
	switch (nr) {
	case SYS_arch_prctl:
		r = rt__raw6(nr, a);
		if (r == 0 && a[0] == ARCH_SET_FS)
			rt__sload_self()->prog_fs = (uintptr_t)a[1];
		g[REG_RAX] = r;
		return NULL;
	case SYS_munmap: {
		struct rt_sload_thread *t = rt__sload_self();

		if (!rt__sload_unmap_self(t, a, (uintptr_t)g[REG_RSP]))
			return t;
		g[REG_RAX] = 0;
		return NULL;
	}
	case SYS_brk:
		g[REG_RAX] = sload_brk((uintptr_t)a[0]);
		return NULL;
	case SYS_clone3:
		g[REG_RAX] = -ENOSYS; /* libc falls back to clone */
		return NULL;
	case SYS_rt_sigprocmask:
		g[REG_RAX] = rt__sigmask_on_context(a, uc);
		return NULL;
	case SYS_rt_sigaction:
		if (a[0] == SIGSYS)
			return rt__sload_self(); /* recorded, with a line */
		if (a[1]) {
			/* SIGSYS stays deliverable inside the program's handlers. */
			struct k_sigaction k;

			if (a[3] != 8 || rt__copy_in(&k, (const void *)a[1], sizeof(k))) {
				g[REG_RAX] = a[3] != 8 ? -EINVAL : -EFAULT;
				return NULL;
			}
			k.mask &= ~SIGSYS_BIT;
			a[1] = (long)&k;
			g[REG_RAX] = rt__raw6(nr, a);
			return NULL;
		}
		g[REG_RAX] = rt__raw6(nr, a);
		return NULL;
	case SYS_clone:
	case SYS_fork:
	case SYS_vfork:
	case SYS_close_range:
		return rt__sload_self();
	}
	s = &g_rt_syscalls[nr];
	if (s->action == RT_SYS_RUNTIME || s->paths[0][1] >= 0) {
		if (rt__shield_on() || s->action == RT_SYS_RUNTIME)
			return rt__sload_self();
		g[REG_RAX] = rt__raw6(nr, a);
		return NULL;
	}
	if (rt__shield_on())
		for (int i = 0; i < 6; i++)
			if ((s->fd_mask & (1u << i)) && rt_fd_kind((int)a[i]) != RT_FD_NONE)
				return rt__sload_self();
	g[REG_RAX] = rt__raw6(nr, a);
	return NULL;
}

/* rt_sigaction(SIGSYS): the program's view only. SIGSYS stays the loader's
 * (its handler is how the runtime sees the calls), but a program may ask:
 * Go's runtime installs a handler on every signal and stops ("sigaction
 * failed") when one is refused. The handler is recorded and never called. */
static long program_sigsys(const long a[6])
{
	struct k_sigaction k;

	if (a[3] != 8)
		return -EINVAL;
	if (a[1] && rt__copy_in(&k, (const void *)a[1], sizeof(k)))
		return -EFAULT;
	if (a[2] && rt__copy_out((void *)a[2], &g_prog_sigsys, sizeof(k)))
		return -EFAULT;
	if (!a[1])
		return 0;
	g_prog_sigsys = k;
	if (k.handler != SIG_DFL && k.handler != SIG_IGN)
		rt__refuse("sigaction-sigsys", "%s: a handler for SIGSYS: recorded, never called "
			   "(SIGSYS is the static loader's)", g_prog);
	return 0;
}

/* With the runtime's FS, on t's stack: the loader's own calls (a clone
 * sharing memory, SIGSYS), then sud.c's handler. */
void rt__sload_slow(int sig, siginfo_t *si, void *ctx, struct rt_sload_thread *t)
{
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;
	long nr = g[REG_RAX];

	if (si->si_code != SYS_SECCOMP) {
		rt__say("SIGSYS not from the loader's filter (code %d): aborting", si->si_code);
		rt__raw(SYS_exit_group, 159);
	}
	switch (nr) {
	case SYS_clone:
		if (rt__sload_clone(t, uc))
			return;
		break;
	case SYS_rt_sigaction:
		g[REG_RAX] = program_sigsys((const long[6]){ g[REG_RDI], g[REG_RSI], g[REG_RDX],
							      g[REG_R10] });
		return;
	}
	rt__sigsys(sig, si, ctx);
	/* A fork's child: the only thread, with a new tid. */
	if ((nr == SYS_clone || nr == SYS_fork || nr == SYS_vfork) && g[REG_RAX] == 0)
		rt__sload_forked(t);
}

/* The number first, so that the kernel's per-number cache (Linux >= 5.11)
 * answers every untrapped call without running the filter (a filter that
 * read the instruction pointer first could never be cached: every call paid
 * for it). A trapped number made from the runtime's own code is allowed. */
static int build_filter(struct sock_filter *f, int cap)
{
	int n = 0, trapped[RT_SYSCALL_COUNT], nt = 0;

#define EMIT(...) do { if (n == cap) return -1; f[n++] = (struct sock_filter)__VA_ARGS__; } while (0)
	for (long nr = 0; nr <= RT_SYSCALL_MAX; nr++) {
		const struct rt_syscall *s = &g_rt_syscalls[nr];
		bool trap = s->name && s->action != RT_SYS_PASS;

		/* The program's own handlers return through its restorer. */
		if (nr == SYS_rt_sigreturn)
			trap = false;
		if (nr == SYS_arch_prctl || nr == SYS_brk || nr == SYS_fork)
			trap = true;
		if (trap)
			trapped[nt++] = (int)nr;
	}
	if (nt > 250)
		return -1; /* a conditional jump reaches 255 instructions */
	EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
	EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
	EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
	/* x32 numbers: ENOSYS. */
	EMIT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
	for (int i = 0; i < nt; i++)
		EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)trapped[i],
			      (uint8_t)(nt - i), 0));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	/* A trapped number: only from the program's image. */
	if (g_img_lo >> 32 != (g_img_hi - 1) >> 32)
		return -1; /* an image across a 4 GiB line: not placed so by the loader */
	EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		      offsetof(struct seccomp_data, instruction_pointer) + 4));
	EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(g_img_lo >> 32), 1, 0));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		      offsetof(struct seccomp_data, instruction_pointer)));
	EMIT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)g_img_lo, 1, 0));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	EMIT(BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)(g_img_hi - 1), 0, 1));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
#undef EMIT
	return n;
}

int rt__sload_trap_init(const struct rt_sload_image *im, const char **why)
{
	static struct sock_filter f[1024];
	struct sock_fprog prog;
	struct k_sigaction sa = {
		.handler = (void *)rt__sload_entry,
		.flags = SA_SIGINFO | SA_RESTORER | SA_NODEFER | SA_ONSTACK,
		.restorer = (void *)rt__sload_restorer(),
		/* No handler of the program may run with the runtime's FS. */
		.mask = ~(SIGSYS_BIT | (1ull << (SIGSEGV - 1)) | (1ull << (SIGBUS - 1))),
	};
	uintptr_t rt_fs;
	int n;

	g_img_lo = im->lo;
	g_img_hi = im->hi;
	n = build_filter(f, (int)(sizeof(f) / sizeof(f[0])));
	if (n < 0)
		return *why = "cannot build the seccomp filter", -1;
	g_prog = im->path;
	__asm__ volatile("movq %%fs:0, %0" : "=r"(rt_fs));
	rt__sload_threads_init(rt_fs);
	/* HWCAP2_FSGSBASE (bit 1): the kernel enabled the instructions. Not
	 * on this project's test machines (arch_prctl there). */
	g_sload_fsgsbase = (getauxval(AT_HWCAP2) & 2) != 0;
	if (rt__raw(SYS_rt_sigaction, SIGSYS, &sa, NULL, 8) < 0)
		return *why = "cannot install the SIGSYS handler", -1;
	prog.len = (unsigned short)n;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    rt__raw(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return *why = "cannot install the seccomp filter (Linux >= 3.17 with "
			      "CONFIG_SECCOMP_FILTER needed)", -1;
	rt__sload_started();
	return 0;
}
