/* kiln runtime: internals of libkiln.so shared by the files of src/runtime/
 * and its sub-folders sys/ (system-call handlers) and shield/ (the file
 * shield); not used outside libkiln. Internal functions are rt__x. */
#ifndef KILN_RUNTIME_INTERNAL_H
#define KILN_RUNTIME_INTERNAL_H

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <ucontext.h>

#include "runtime/attest_proto.h"
#include "runtime/runtime.h"
#include "runtime/shield/proto.h"

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2
#endif

#define RT_HIDDEN __attribute__((visibility("hidden")))
/* This library's file name: libkiln.so, or libkiln-musl.so for the musl build
 * (src/runtime/meson.build). A program of the other C library is executed
 * with the other one, found next to this one (sys/exec.c). */
#ifndef RT_LIBKILN_NAME
#define RT_LIBKILN_NAME "libkiln.so"
#endif
#define RT_TLS __thread __attribute__((tls_model("initial-exec")))
/* Code the static loader runs with the program's FS (sload_trap.c): no stack
 * protector, whose canary is read through FS. */
#if defined(__has_attribute) && __has_attribute(no_stack_protector)
#define RT_NO_SSP __attribute__((no_stack_protector))
#else
#define RT_NO_SSP __attribute__((optimize("no-stack-protector")))
#endif

/* The allowed code region for Syscall User Dispatch (sud.c, assembly). Every
 * system call the runtime itself issues goes through rt__raw_syscall. */
long rt__raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5) RT_HIDDEN;
extern char rt__sud_start[] RT_HIDDEN;
extern char rt__sud_end[] RT_HIDDEN;
void rt__stub_sigreturn(void) RT_HIDDEN;
void rt__stub_clone(void) RT_HIDDEN;

static inline long rt__raw0(long nr)
{
	return rt__raw_syscall(nr, 0, 0, 0, 0, 0, 0);
}
#define rt__raw(nr, ...) rt__raw_n(nr, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define rt__raw_n(nr, a, b, c, d, e, f, ...) \
	rt__raw_syscall((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static inline long rt__raw6(long nr, const long a[6])
{
	return rt__raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The kernel's struct sigaction (rt_sigaction takes this, not libc's). */
struct k_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

/* SIGSYS belongs to the dispatcher while dispatch is on, SIGSEGV and SIGBUS
 * to the fault recovery of uaccess.c: the program never blocks them. */
#define SIGSYS_BIT (1ull << (SIGSYS - 1))
#define RT_KEPT_SIGS (SIGSYS_BIT | (1ull << (SIGSEGV - 1)) | (1ull << (SIGBUS - 1)))

/* Per-thread dispatch selector and nesting depth of runtime code. While
 * t_rt_depth > 0 the runtime runs its own code: wrappers pass straight through
 * and the selector allows libc's system calls. */
extern RT_TLS volatile char t_rt_selector RT_HIDDEN;
extern RT_TLS int t_rt_depth RT_HIDDEN;

struct rt_guard {
	uint64_t mask; /* the kernel's sigset */
	char selector;
	bool masked;   /* the outermost guard changed the mask (rt__leave restores it) */
};
/* A thread's state that is too big for static TLS (thread.c): one mmap made
 * the first time the thread enters a guard, unmapped
 * when the thread exits. Static TLS holds only the pointer: when libkiln.so is
 * loaded late (LD_AUDIT), ld.so must fit its TLS into a small surplus, and a
 * per-thread siginfo per signal there (4 KiB) made it fail. */
#define RT_DEFER_MAX 33  /* 1-31, and glibc's SIGCANCEL (32) and SIGSETXID (33) */
#define RT_NET_STAGE 16384 /* the network shield's plaintext per record (net/io.c) */
struct rt_thread {
	/* Inside an unmasked guard: the program's handlers keep what
	 * arrives (sys/signal.c), rt__leave sends it again. */
	volatile bool defer;
	volatile uint64_t deferred;   /* SIG_BIT of each signal kept */
	siginfo_t info[RT_DEFER_MAX]; /* its siginfo (the first, as a mask would) */
	uint8_t stage[RT_NET_STAGE];  /* net/io.c: plaintext staged per call */
	int net_held;                 /* net/hold.c: 1 + the fd whose connection
				       * holds plaintext this thread wrote, or 0 */
	volatile int in_handler;      /* sys/signal.c: program handlers running */
};
extern RT_TLS struct rt_thread *t_rt_thread RT_HIDDEN;
/* This thread's block, made now if need be (async-signal-safe, no lock):
 * NULL when the memory cannot be had. */
struct rt_thread *rt__thread(void) RT_HIDDEN;
/* The thread ends (its exit system call, sud.c): unmap its block. */
void rt__thread_exit(void) RT_HIDDEN;
/* The program's handlers are the runtime's to call (every one installed
 * through it, none for a real-time signal): guards may defer instead of mask. */
bool rt__sig_can_defer(void) RT_HIDDEN;
/* Take over the program's handlers installed so far (a shield's start): 0,
 * or the kernel's error. */
int rt__sig_defer_init(void) RT_HIDDEN;
/* Send the signals t kept to this thread again (rt__leave). */
void rt__sig_redeliver(struct rt_thread *t) RT_HIDDEN;
/* A guard around the shields' code: no handler of the program runs until it
 * ends (the runtime may hold a lock the handler would take), SIGSYS, SIGSEGV
 * and SIGBUS stay deliverable (the fault-safe copies work inside); libc's
 * system calls are allowed. Without a system call while the program's
 * handlers are the runtime's (sys/signal.c keeps what arrives, rt__leave sends
 * it again), else by masking the signals. Its system calls may fail with
 * EINTR then: retry those the program's call would not have seen fail so.
 * Nested inside another guard it does nothing, so a function that leaves its
 * guard to wait must be given the outermost one. */
void rt__enter(struct rt_guard *g) RT_HIDDEN;
void rt__leave(struct rt_guard *g) RT_HIDDEN;
/* For libkiln-net.so, which cannot reach libkiln's thread-local variables or
 * g_rt (net/host.h): this thread's block or NULL (never made here); make the
 * calling thread one of the runtime's own (depth 1, libc's calls allowed:
 * the shields' engine); a volume is mounted. */
struct rt_thread *rt__thread_peek(void) RT_HIDDEN;
void rt__runtime_thread(void) RT_HIDDEN;
bool rt__shield_on(void) RT_HIDDEN;

/* Global runtime state. */
struct rt_state {
	bool initialized;
	bool sud_on;
	bool sload_on;         /* in kiln-sload: a static program's calls trap by seccomp */
	bool sload_exe;        /* this process is kiln-sload (start.c), set before attesting */
	bool shield_on;        /* at least one volume mounted */
	struct rt_config cfg;  /* secrets (keys) wiped after the volumes are open */
	char *config_text;     /* serialized config handed to exec'd children */
	size_t config_size;
	char lib_path[4096];   /* absolute path of this library (RT_LIBKILN_NAME) */
	int owned_base;        /* runtime-owned fds are moved at or above this */
};
extern struct rt_state g_rt RT_HIDDEN;

/* The calling thread's credentials (sys/cred.c): fs (fsuid, fsgid, groups) goes
 * with every request about a volume path; uid and gid (real) are what
 * access(2) checks with. Kept per thread until a set*id call. */
struct rt_ucred {
	uid_t uid;
	gid_t gid;
	struct rt_cred fs;
	uint64_t key;          /* a hash of fs */
};
const struct rt_ucred *rt__cred(void) RT_HIDDEN;

/* A system-call handler (src/runtime/sys/): nr and the six raw arguments;
 * returns the raw result (-errno on failure). */
typedef long (*rt_handler_fn)(long nr, const long a[6]);

/* Central dispatch: called by the libc wrappers and the SIGSYS handler (uc is
 * non-NULL then). Returns the raw result (-errno on failure). */
long rt__dispatch(long nr, const long a[6], ucontext_t *uc) RT_HIDDEN;

/* Syscall User Dispatch. */
int rt__sud_init(void) RT_HIDDEN;
int rt__sud_thread_init(void) RT_HIDDEN;
/* libc's forks keep the shields' state right (pthread_atfork): 0 or -errno. */
int rt__fork_init(void) RT_HIDDEN;

/* The file shield's life cycle (shield/shield.c); its entry points for the
 * handlers are in shield/shield.h. */
int rt__shield_init(struct kiln_err *err) RT_HIDDEN;
void rt__shield_exit(void) RT_HIDDEN;
/* In a forked child: take private copies of what must not be shared. */
void rt__shield_after_fork(void) RT_HIDDEN;
/* Called by the fork paths: before, and in the parent after. */
void rt__shield_before_fork(void) RT_HIDDEN;
void rt__shield_parent_after_fork(void) RT_HIDDEN;
/* An injected file: plaintext in memory only, at an absolute path. */
int rt__shield_add_file(const char *path, const void *data, size_t size, mode_t mode) RT_HIDDEN;

/* Virtual working directory (a volume directory the kernel cannot hold;
 * sys/dir.c). When set, rt__dispatch rewrites relative paths of AT_FDCWD calls
 * to absolute ones. */
bool rt__vcwd_on(void) RT_HIDDEN;
/* Write the absolute form of a relative path against the virtual cwd. */
int rt__vcwd_abs(const char *path, char *out, size_t out_size) RT_HIDDEN;
/* Copy the virtual cwd (for exec); "" when none. */
void rt__vcwd_get(char *out, size_t out_size) RT_HIDDEN;

/* The program's memory (uaccess.c): copies that return -EFAULT for a bad
 * pointer instead of crashing (inside a guard too). */
int rt__copy_in(void *dst, const void *usrc, size_t n) RT_HIDDEN;
int rt__copy_out(void *udst, const void *src, size_t n) RT_HIDDEN;
/* A NUL-terminated string of at most size bytes with its NUL: its length,
 * -EFAULT, or -ENAMETOOLONG (no NUL in size bytes, as the kernel's getname). */
long rt__path_in(char *dst, const char *usrc, size_t size) RT_HIDDEN;
/* 0 when the program's string at usrc is readable up to its NUL within max
 * bytes; -EFAULT, or -E2BIG without a NUL. */
int rt__str_check(const char *usrc, size_t max) RT_HIDDEN;
/* Whether pc lies in the copy routines, and where a fault there resumes. */
bool rt__uaccess_owns(uintptr_t pc) RT_HIDDEN;
void rt__uaccess_fault(void) RT_HIDDEN;
extern char rt__uaccess_start[] RT_HIDDEN;
extern char rt__uaccess_end[] RT_HIDDEN;
/* Set once the SIGSEGV/SIGBUS handler is in place (sys/signal.c). */
extern bool g_rt_fault_handler RT_HIDDEN;
/* Install it (with dispatch on: the program's sigaction calls are seen). */
int rt__fault_init(void) RT_HIDDEN;

/* The runtime's own fds (sys/fd.c): moved to the top of the fd range,
 * close-on-exec, invisible to the program. rt__own_fd moves fd there and marks
 * it owned; returns the new fd or -errno (fd is closed either way on failure). */
int rt__own_fd(int fd) RT_HIDDEN;
/* Close a runtime-owned fd. */
void rt__own_close(int fd) RT_HIDDEN;
/* The lowest fd number of the runtime's own range (the top of RLIMIT_NOFILE);
 * *limit: the fd limit it was derived from. */
int rt__own_base(long *limit) RT_HIDDEN;
/* -EBADF for an fd the runtime owns (the program must not touch it), else 0. */
static inline long rt__own_badf(long fd)
{
	return rt_fd_kind((int)fd) == RT_FD_OWNED ? -EBADF : 0;
}

/* pf storage over runtime-owned fds in the volume's store directory storefd
 * (<dir>/.kiln, checked and locked by the caller, borrowed) (storage.c). */
struct pf_storage_ops;
int rt__storage_open(int storefd, const struct pf_storage_ops **ops, void **ctx) RT_HIDDEN;
/* kiln_open_own (common.h) with the runtime's raw system calls: a regular file
 * at path under dirfd, never through a symlink (-KILN_EUNSAFE otherwise). */
long rt__open_own(int dirfd, const char *path, int oflags, mode_t mode) RT_HIDDEN;
/* Sync one at a time (no io_uring, and no write-behind, which needs it): for
 * volumes whose freshness prepare is a CAS request, which the io_uring's
 * worker set-up would interrupt. */
void rt__storage_no_overlap(void *ctx) RT_HIDDEN;

/* Local freshness provider, `kiln fs` tag file format (fresh_local.c); its
 * prepares ride the log's flush on device ride (0: never). The CAS
 * provider is rt_fresh_cas (fresh_cas.c, declared in attest_proto.h). */
struct pf_freshness_ops;
int rt__fresh_local(const char *path, dev_t ride, const struct pf_freshness_ops **ops,
		    void **ctx) RT_HIDDEN;

/* Attestation (attest.c). rt_attest talks to the CAS; apply_early turns the
 * answer into argv/env (for the __libc_start_main interposer) and volumes (into
 * g_rt.cfg); apply_late, after the shield is up, injects files and changes to
 * the policy's working directory. */
int rt__attest(struct kiln_err *err) RT_HIDDEN;
int rt__attest_apply_early(struct kiln_err *err) RT_HIDDEN;
int rt__attest_apply_late(struct kiln_err *err) RT_HIDDEN;
bool rt__attest_argv(int *argc, char ***argv, char ***env) RT_HIDDEN;
/* KILN_MEASURE_ONLY=1: print the workload measurement and exit (kiln measure). */
void rt__measure_only(void) RT_HIDDEN;

/* exec: build the environment for a re-launched child and hand it the config. */
long rt__exec(long nr, const long a[6]) RT_HIDDEN;
/* The environment for a child re-launched under the runtime: envp with
 * LD_PRELOAD holding libkiln and KILN_CONFIG_FD naming pipe_rd, a fresh pipe
 * holding the config. -ENOENT when the runtime is inert (use envp as is). */
struct rt_exec_env {
	char **env;       /* malloc'd array; strings borrowed from envp or below */
	char **argv;      /* NULL: the caller's; else malloc'd (attested: argv[0] only, or
			   * the kiln supervisor's), strings borrowed or in strs */
	const char *path; /* NULL: the caller's program; else execute this instead */
	char *preload;    /* malloc'd */
	char *strs;       /* malloc'd */
	char fdvar[64];
	char exe[4096];   /* the program, as /proc/self/fd names it (attested) */
	int pipe_rd;      /* inheritable; closed by rt__exec_env_free */
};
/* What the program executing (dirfd, path, AT_* flags as for execveat) gets
 * (sys/exec.c): 0 and e filled; 1 when the runtime is not active (execute as
 * asked); < 0: refused or failed with that errno (a refusal is said on
 * stderr). Free e with rt__exec_env_free after a 0. */
int rt__exec_env(int dirfd, const char *path, int at_flags, char *const *argv,
		 char *const *envp, struct rt_exec_env *e) RT_HIDDEN;
void rt__exec_env_free(struct rt_exec_env *e) RT_HIDDEN;

/* One line on stderr, "kiln: ..." (async-signal-safe, raw write; bytes that
 * are not printable UTF-8 escaped as \xNN). For integrity failures and start-up. */
void rt__say(const char *fmt, ...) RT_HIDDEN __attribute__((format(printf, 1, 2)));
/* A refusal (a call the runtime does not support there): said once per
 * process for each distinct key (a static string naming the reason, e.g.
 * "link"), whatever the path. */
void rt__refuse(const char *key, const char *fmt, ...) RT_HIDDEN
	__attribute__((format(printf, 2, 3)));

#endif
