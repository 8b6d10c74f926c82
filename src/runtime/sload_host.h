/* kiln runtime: the seam between libkiln.so and kiln-sload, which carries the
 * static loader's own code (sload.c maps the program, sload_elf.c checks it,
 * sload_trap.c and sload_thread.c see its system calls and threads) so that
 * no other process maps it (docs/runtime.md, "The static loader").
 *
 * kiln run starts kiln-sload with libkiln.so preloaded; libkiln's constructor
 * opens, measures and attests the program first (sload_attest.c). Then
 * kiln-sload's main asks libkiln for this table (kiln_sload_host, the one
 * symbol libkiln exports for it) and the loader calls the runtime through it:
 * libkiln keeps its symbols hidden, and its state (g_rt, thread-local
 * variables) is its own. sload_host.c and lent.c give each entry the name the
 * loader's sources call (rt__raw_syscall, rt_fd_kind, ...), as they would
 * inside libkiln. */
#ifndef KILN_RUNTIME_SLOAD_HOST_H
#define KILN_RUNTIME_SLOAD_HOST_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <ucontext.h>

#include "runtime/lent.h"
#include "runtime/runtime.h"

/* Bumped whenever the table changes (kiln-sload and libkiln.so are installed
 * together; this catches a mixed build, nothing else). */
#define RT_SLOAD_ABI 1

struct rt_sload_host {
	unsigned abi; /* RT_SLOAD_ABI */
	bool (*initialized)(void);            /* g_rt.initialized */
	/* The program's descriptor libkiln's constructor opened (and measured),
	 * now the caller's; -1 with *err the errno when it could not be opened. */
	int (*take_program)(int *err);
	bool (*attest_argv)(int *argc, char ***argv, char ***env);
	const struct rt_lent *lent;           /* lent.h: raw calls, copies, own fds, say */
	void (*refuse)(const char *key, const char *line);
	long (*sigmask_on_context)(const long a[6], ucontext_t *uc);
	void (*sigsys)(int sig, siginfo_t *si, void *ctx);
	void (*stub_sigreturn)(void);         /* the restorer of the SIGSYS handler */
	void (*thread_exit)(void);
	enum rt_fd_kind (*fd_kind)(int fd);
	bool (*shield_on)(void);
	void (*started)(void);                /* the filter is on: g_rt.sload_on */
	const char *(*program)(void);         /* rt__sload_program */
};

#define RT_SLOAD_HOST "kiln_sload_host"
typedef const struct rt_sload_host *(*rt_sload_host_fn)(void);

#endif
