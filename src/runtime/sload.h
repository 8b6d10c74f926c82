/* kiln runtime: the in-process loader of static programs (sload.c maps the
 * program and jumps to it; sload_trap.c sees its system calls). Part of
 * libkiln.so; kiln-sload (sload_main.c) only calls kiln_sload_main. */
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
 * on a refusal (1, with a line on stderr). */
__attribute__((visibility("default"))) int kiln_sload_main(int argc, char **argv);

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
