/* kiln runtime: the runtime functions lent by libkiln (lent.h), by their
 * usual names, for the code built outside libkiln.so (libkiln-net.so,
 * kiln-sload). The fast path of the static loader runs some of them on the
 * program's FS: no TLS, no arrays (no stack protector's canary) but in
 * rt__say, which runs on the runtime's. */
#include <stdarg.h>
#include <stdio.h>

#include "runtime/lent.h"

static const struct rt_lent *g_lent;

void rt__lent_set(const struct rt_lent *lent)
{
	g_lent = lent;
}

long rt__raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	return g_lent->raw_syscall(nr, a0, a1, a2, a3, a4, a5);
}

int rt__copy_in(void *dst, const void *usrc, size_t n)
{
	return g_lent->copy_in(dst, usrc, n);
}

int rt__copy_out(void *udst, const void *src, size_t n)
{
	return g_lent->copy_out(udst, src, n);
}

int rt__own_fd(int fd)
{
	return g_lent->own_fd(fd);
}

void rt__own_close(int fd)
{
	g_lent->own_close(fd);
}

void rt__say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	g_lent->say(line);
}
