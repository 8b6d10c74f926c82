/* kiln runtime: the runtime's lines on stderr ("kiln: ..."). One write per
 * line, async-signal-safe, the program's path bytes escaped (a program that
 * reads its children's stderr as UTF-8 -- CPython's regrtest -- must not choke
 * on a raw file name). Results a program expects (ENOENT, EEXIST ...) are
 * never said; a refusal is said once per distinct reason (rt__refuse). */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/internal.h"

static void say(const char *fmt, va_list ap)
{
	char msg[600], line[1200];
	int n;
	size_t len;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	memcpy(line, "kiln: ", 6);
	len = 6 + kiln_escape_text(line + 6, sizeof(line) - 7,
				   msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	line[len++] = '\n';
	rt__raw(SYS_write, 2, line, len);
}

void rt__say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}

/* The reasons already said, by key (static strings, compared by content: the
 * same reason from two call sites is one reason). Bounded: past the table's
 * size every refusal is said (never silently dropped). */
#define SAID_MAX 64
static const char *_Atomic g_said[SAID_MAX];

static bool said_before(const char *key)
{
	for (size_t i = 0; i < SAID_MAX; i++) {
		const char *k = atomic_load(&g_said[i]);

		if (!k) {
			const char *none = NULL;

			if (atomic_compare_exchange_strong(&g_said[i], &none, key))
				return false;
			k = none;
		}
		if (strcmp(k, key) == 0)
			return true;
	}
	return false;
}

void rt__refuse(const char *key, const char *fmt, ...)
{
	va_list ap;

	if (said_before(key))
		return;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}
