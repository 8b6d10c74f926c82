/* kiln runtime micro-benchmark: nanoseconds per system call.
 *
 * Run natively and under `kiln run --sud on`: the libc column then goes through
 * libkiln's LD_PRELOAD wrapper (the fast path) and the inline column traps
 * through Syscall User Dispatch (the safety net). Natively both are plain
 * system calls. Output: one JSON object per line {"op", "path", "ns"}. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long raw3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

#define BENCH(op, path, iters, stmt)                                                  \
	do {                                                                          \
		double best = 1e18;                                                   \
		for (int round = 0; round < 5; round++) {                             \
			double t0 = now_ns();                                         \
			for (long i = 0; i < (iters); i++) {                          \
				stmt;                                                 \
			}                                                             \
			double t = (now_ns() - t0) / (iters);                         \
			if (t < best)                                                 \
				best = t;                                             \
		}                                                                     \
		printf("{\"op\": \"%s\", \"path\": \"%s\", \"ns\": %.1f}\n", op, path, best); \
	} while (0)

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	const char *file = argc > 2 ? argv[2] : "/etc/hostname";
	char buf[16];
	struct stat st;
	int fd = open("/dev/zero", O_RDONLY);
	int ffd = open(file, O_RDONLY);

	if (fd < 0 || ffd < 0)
		return 1;
	BENCH("read(/dev/zero, 1)", "libc", iters, (void)!read(fd, buf, 1));
	BENCH("read(/dev/zero, 1)", "inline", iters, raw3(SYS_read, fd, (long)buf, 1));
	BENCH("fstat", "libc", iters, fstat(ffd, &st));
	BENCH("fstat", "inline", iters, raw3(SYS_fstat, ffd, (long)&st, 0));
	BENCH("getppid", "libc", iters, getppid());
	BENCH("getppid", "inline", iters, raw3(SYS_getppid, 0, 0, 0));
	BENCH("open+close", "libc", iters / 4, close(open(file, O_RDONLY)));
	BENCH("open+close", "inline",
	      iters / 4, raw3(SYS_close, raw3(SYS_openat, AT_FDCWD, (long)file, O_RDONLY), 0, 0));
	return 0;
}
