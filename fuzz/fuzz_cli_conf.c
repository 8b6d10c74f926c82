/* Fuzz the configuration-file reader of long-running commands
 * (cli_conf_load, src/cli/conf.c: kiln cas serve --config). No input may
 * crash or leak; an accepted file yields only "--KEY" or "--KEY=VALUE"
 * arguments whose KEY is one of the command's options (never config or
 * help), a one-value key at most once, and values without a newline. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* cli/main.c's, without the output. */
void cli_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
}

static const struct option g_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "data", required_argument, NULL, 'd' },
	{ "san", required_argument, NULL, 's' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
static const char *const g_repeatable[] = { "san", NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cli_conf c;
	char path[64];
	int fd = memfd_create("fuzz-conf", MFD_CLOEXEC), data_seen = 0;

	if (fd < 0)
		return 0;
	/* A memfd is made 0777: as a configuration file that is refused. */
	if (fchmod(fd, 0600) < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (cli_conf_load(path, g_opts, g_repeatable, &c) == 0) {
		for (size_t i = 0; i < c.n_args; i++) {
			const char *a = c.args[i];

			if (strncmp(a, "--", 2) || strchr(a, '\n'))
				abort();
			if (!strcmp(a, "--verbose"))
				continue;
			if (!strncmp(a, "--data=", 7))
				data_seen++;
			else if (strncmp(a, "--san=", 6))
				abort(); /* config, help, or an unknown key */
			if (!a[strcspn(a, "=") + 1])
				abort(); /* a value is never empty */
		}
		if (data_seen > 1)
			abort();
		cli_conf_free(&c);
	}
	close(fd);
	return 0;
}
