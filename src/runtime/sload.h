/* kiln runtime: the in-process loader of static programs (sload.c maps the
 * program and jumps to it; sload_trap.c sees its system calls). sload.c,
 * sload_elf.c, sload_trap.c and sload_thread.c are kiln-sload's own code,
 * reaching the runtime through the table libkiln lends (sload_host.h,
 * sload_host.c); sload_attest.c and sload_exec.c are libkiln's (its
 * constructor and exec path). */
#ifndef KILN_RUNTIME_SLOAD_H
#define KILN_RUNTIME_SLOAD_H

#include <elf.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#include "runtime/internal.h"
#include "runtime/sload_elf.h"

/* The loaded program: [lo, hi) holds every segment. */
struct rt_sload_image {
	uintptr_t lo, hi, entry, phdr;
	int phnum;
	const char *path; /* as given to kiln-sload, for messages */
};

/* kiln-sload's main: argv[1] the program, argv[2..] its argv. Returns only
 * on a refusal (1, with a line on stderr). After rt__sload_host_set. */
int kiln_sload_main(int argc, char **argv) RT_HIDDEN;

/* sload_host.c (kiln-sload): keep libkiln's table (0), or -1 when it is not
 * this build's; then what the loader needs besides the runtime functions it
 * calls by name: libkiln's constructor ran; the program's descriptor, now the
 * loader's (-1 with *err); the restorer of the SIGSYS handler; the filter is
 * on (g_rt.sload_on). */
struct rt_sload_host;
int rt__sload_host_set(const struct rt_sload_host *host) RT_HIDDEN;
bool rt__initialized(void) RT_HIDDEN;
int rt__sload_take_program(int *err) RT_HIDDEN;
void (*rt__sload_restorer(void))(void) RT_HIDDEN;
void rt__sload_started(void) RT_HIDDEN;

/* sload_trap.c: reserve the program's brk area after hi; install the
 * SIGSYS handler and the seccomp filter. 0, or -1 with *why. */
int rt__sload_brk_init(uintptr_t hi, const char **why) RT_HIDDEN;
int rt__sload_trap_init(const struct rt_sload_image *im, const char **why) RT_HIDDEN;
/* Switch to the program: rsp = sp, FS = 0, every other register 0. */
__attribute__((noreturn)) void rt__sload_jump(uintptr_t sp, uintptr_t entry) RT_HIDDEN;

/* sload_attest.c: the program, opened once by libkiln's constructor
 * (rt__sload_open, from kiln-sload's command line): the descriptor that is
 * measured, compared with the policy's command and mapped; -1 with the
 * reason in g_rt_sload_errno when it cannot be opened. */
extern int g_rt_sload_fd RT_HIDDEN;
extern int g_rt_sload_errno RT_HIDDEN;
void rt__sload_open(void) RT_HIDDEN;
/* Check the runtime's part of this process (environment, mappings, loaded
 * objects) and measure the program from g_rt_sload_fd: 0, or an error whose
 * message is one line for the user. */
int rt__sload_measure(uint8_t wm[48], struct kiln_err *err) RT_HIDDEN;

/* sload_thread.c: one per thread of the program. The SIGSYS entry finds
 * the trapping thread's by its tid (no TLS: FS is the program's), switches
 * FS to rt_fs and the stack to rt_sp for the slow path, then back to
 * prog_fs. The offsets of the first three are used by the entry's assembly. */
struct rt_sload_thread {
	uintptr_t rt_fs;       /* 0: the glibc TCB the runtime's code runs with */
	uintptr_t rt_sp;       /* 8: the top of the stack it runs on (16-aligned) */
	uintptr_t prog_fs;     /* 16: the program's FS (its last ARCH_SET_FS) */
	_Atomic int tid;       /* the program thread's (0: slot free or not started) */
	_Atomic int used;
	_Atomic int state;     /* a donor's: RT_SLOAD_PENDING until the clone returned */
	_Atomic int ready;     /* a donor's rt_fs and rt_sp are set */
	int kind;              /* RT_SLOAD_MAIN, _DONOR or _ALIAS */
	int clone_flags;       /* the program's clone flags (a donor's) */
	long result;           /* the clone's return, when state left PENDING */
	uint64_t mask;         /* the signal mask the new thread starts with */
	uintptr_t clone_ret;   /* the caller's: where its clone returns to */
	struct rt_sload_thread *clone_child; /* the caller's: the slot of its clone */
	uintptr_t unmap_addr, unmap_len; /* the thread's munmap of its own stack,
					  * done by its donor after it exited */
};
#define RT_SLOAD_THREADS 4096
enum { RT_SLOAD_MAIN, RT_SLOAD_DONOR, RT_SLOAD_ALIAS };
enum { RT_SLOAD_PENDING, RT_SLOAD_STARTED, RT_SLOAD_FAILED };
extern struct rt_sload_thread g_sload_threads[RT_SLOAD_THREADS] RT_HIDDEN;

/* The calling thread's slot, by its tid: no TLS, any FS. A thread the loader
 * did not start (none of the program's clones) ends the process (159). */
struct rt_sload_thread *rt__sload_self(void) RT_HIDDEN;
/* Slot 0, the thread that runs kiln_sload_main (rt__sload_trap_init). */
void rt__sload_threads_init(uintptr_t rt_fs) RT_HIDDEN;
/* A clone that shares the memory (CLONE_VM with a stack): a thread of the
 * program with a runtime TCB of its own (a parked glibc thread's), or a
 * vfork child borrowing its parent's. Sets up uc to issue the clone from
 * rt__sload_clone_stub and returns 1; 0 when it is not such a clone (sud.c
 * forks); 1 with an error in rax when it cannot be made. Runtime FS. */
int rt__sload_clone(struct rt_sload_thread *self, ucontext_t *uc) RT_HIDDEN;
/* In the child of a fork: this thread is the only one, tid new. */
void rt__sload_forked(struct rt_sload_thread *self) RT_HIDDEN;
/* The thread unmaps the stack it runs on (a detached musl thread's last
 * call before exit): 1 when deferred to its donor (answered 0). No TLS. */
int rt__sload_unmap_self(struct rt_sload_thread *self, const long a[6], uintptr_t sp) RT_HIDDEN;

/* The program's absolute path (sload_exec.c, set by rt__sload_open). */
extern char g_rt_sload_path[4096] RT_HIDDEN;
/* That path while the loader runs a program, else NULL. */
const char *rt__sload_program(void) RT_HIDDEN;
/* sys/exec.c: an exec of the static program path: kiln-sload runs it (e's
 * path and argv set). 0 or -errno. */
long rt__sload_exec_argv(const char *path, char *const *argv, struct rt_exec_env *e) RT_HIDDEN;

/* The SIGSYS handler of sud.c, also the loader's slow path (with the
 * runtime's FS). */
void rt__sigsys(int sig, siginfo_t *si, void *ctx) RT_HIDDEN;
/* sud.c: rt_sigprocmask applied to the context the handler restores, SIGSYS
 * (and SIGSEGV, SIGBUS) never blocked: a seccomp SIGSYS that finds itself
 * blocked kills the process. */
long rt__sigmask_on_context(const long a[6], ucontext_t *uc) RT_HIDDEN;

#endif
