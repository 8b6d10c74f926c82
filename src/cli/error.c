/* The CLI's messages and help check, shared by the front (`kiln`) and the
 * full tool (`kiln-tool`). */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

void cli_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quote what the user gave: never all of a 70,000-byte argument. */
	if (n >= (int)sizeof(msg))
		kiln_mark_truncated(msg, sizeof(msg));
	fprintf(stderr, "kiln: %s\n", msg);
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}
