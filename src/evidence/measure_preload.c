/* libkiln-measure.so: the LD_PRELOAD library behind `kiln measure -- PROG`.
 *
 * With KILN_MEASURE_ONLY=1 its constructor measures the process before main()
 * runs, prints the measurement (and with KILN_MEASURE_MANIFEST=1 the manifest
 * first) to fd 1 and _exit(0)s; otherwise it does nothing, so loading it has no
 * effect on a program. ev_workload_measure_pid(0) leaves this library itself
 * out of the manifest, exactly as libkiln leaves itself out, so the value
 * equals what libkiln measures at run time as long as both map no other shared
 * object (both link OpenSSL statically). libkiln's own constructor will take
 * this role once it exists; see docs/measurement.md.
 *
 * Runs inside an arbitrary program: no stdio, errno preserved, _exit only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evidence/evidence.h"

#define MEASURE_FAIL_STATUS 111

static void put(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void puts_fd(int fd, const char *s)
{
	put(fd, s, strlen(s));
}

__attribute__((constructor)) static void kiln_measure_ctor(void)
{
	const char *only = getenv("KILN_MEASURE_ONLY");
	const char *want_manifest = getenv("KILN_MEASURE_MANIFEST");
	struct kiln_err err = { 0 };
	uint8_t wm[EV_WM_SIZE];
	char hex[2 * EV_WM_SIZE + 2];
	char *manifest = NULL;
	int saved_errno = errno, ret;

	if (!only || strcmp(only, "1") != 0) {
		errno = saved_errno;
		return;
	}
	ret = ev_workload_measure_pid(0, wm, &manifest, &err);
	if (ret < 0) {
		puts_fd(2, "kiln: measure: ");
		puts_fd(2, kiln_err_msg(&err, ret));
		puts_fd(2, "\n");
		_exit(MEASURE_FAIL_STATUS);
	}
	if (want_manifest && strcmp(want_manifest, "1") == 0)
		puts_fd(1, manifest);
	free(manifest);
	kiln_hex_encode(wm, sizeof(wm), hex);
	hex[2 * EV_WM_SIZE] = '\n';
	put(1, hex, 2 * EV_WM_SIZE + 1);
	_exit(0);
}
