/* kiln runtime: the runtime functions libkiln lends the code it keeps out of
 * itself, libkiln-net.so (net/host.h) and kiln-sload's loader (sload_host.h):
 * both call them, and both tables start from this one. libkiln.so keeps its
 * symbols hidden, so this code cannot link to them by name; lent.c, built into
 * each, gives every entry its usual name (rt__raw_syscall, rt__copy_in, ...)
 * once rt__lent_set has the table. lend.c is libkiln's side. */
#ifndef KILN_RUNTIME_LENT_H
#define KILN_RUNTIME_LENT_H

#include <stddef.h>

#include "runtime/internal.h"

struct rt_lent {
	long (*raw_syscall)(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
	int (*copy_in)(void *dst, const void *usrc, size_t n);
	int (*copy_out)(void *udst, const void *src, size_t n);
	int (*own_fd)(int fd);
	void (*own_close)(int fd);
	void (*say)(const char *line); /* one line, as rt__say("%s", line) */
};

/* libkiln's (lend.c). */
extern const struct rt_lent rt__lent RT_HIDDEN;
/* lent.c, in the code kept out: keep libkiln's table for the process's life. */
void rt__lent_set(const struct rt_lent *lent) RT_HIDDEN;

#endif
