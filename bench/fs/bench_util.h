/* Helpers shared by the bench/fs programs (each includes this once; the
 * program names itself in BENCH_NAME before including it). */
#ifndef KILN_BENCH_FS_UTIL_H
#define KILN_BENCH_FS_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"

static void die(const char *what, int code, const struct kiln_err *err)
{
	fprintf(stderr, BENCH_NAME ": %s: %s\n", what, kiln_err_msg(err, code));
	exit(1);
}

/* Cold reads: write back, then drop the page cache (root only; else a note). */
static void drop_caches(void)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "3\n", 2) != 2)
		fprintf(stderr, BENCH_NAME ": could not drop caches\n");
	close(fd);
}

#endif
