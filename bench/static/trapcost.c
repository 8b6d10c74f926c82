/* bench/static: the cost of one system call on each path a static program can
 * take (bench/static/run.py). Built twice from this file: trapcost (glibc,
 * dynamic: native and under libkiln) and trapcost_static (static: native,
 * supervised, and in-process under the static loader).
 *
 *   trapcost MODE N [PATH]   N calls, prints "MODE NS" (ns per call)
 *     getppid   a call nobody traps
 *     read      read(2) of 1 byte from /dev/zero: under the loader a trap
 *               answered on the fast path (an fd the shield does not track)
 *     getcwd    a call the runtime always handles (the loader's slow path:
 *               the FS switch both ways)
 *     fsswitch  (natively) arch_prctl(ARCH_SET_FS) twice with the current
 *               value: what the loader's slow path adds on a CPU without
 *               FSGSBASE
 *     orc PATH  open + read(4 KiB) + close of PATH */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
	char buf[4096];
	long n;
	double t0;
	int fd;

	if (argc < 3 || (n = atol(argv[2])) <= 0)
		return 2;
	t0 = now_ns();
	if (strcmp(argv[1], "getppid") == 0) {
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
	} else if (strcmp(argv[1], "read") == 0) {
		fd = open("/dev/zero", O_RDONLY);
		if (fd < 0)
			return 1;
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (read(fd, buf, 1) != 1)
				return 1;
	} else if (strcmp(argv[1], "getcwd") == 0) {
		for (long i = 0; i < n; i++)
			if (!getcwd(buf, sizeof(buf)))
				return 1;
	} else if (strcmp(argv[1], "fsswitch") == 0) {
		unsigned long fs;

		if (syscall(SYS_arch_prctl, ARCH_GET_FS, &fs))
			return 1;
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			syscall(SYS_arch_prctl, ARCH_SET_FS, fs);
			syscall(SYS_arch_prctl, ARCH_SET_FS, fs);
		}
	} else if (strcmp(argv[1], "orc") == 0 && argc == 4) {
		for (long i = 0; i < n; i++) {
			fd = open(argv[3], O_RDONLY);
			if (fd < 0 || read(fd, buf, sizeof(buf)) < 0)
				return 1;
			close(fd);
		}
	} else {
		return 2;
	}
	printf("%s %.0f\n", argv[1], (now_ns() - t0) / (double)n);
	return 0;
}
