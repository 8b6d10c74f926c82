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
 *     orc PATH  open + read(4 KiB) + close of PATH
 *     patched   (natively) what getcwd would cost if the loader patched its
 *               call site into a direct call to the runtime instead of
 *               trapping it (issue 13), the dispatcher's work left out: a
 *               call, the thread's slot looked up by gettid as the SIGSYS
 *               entry does, the FS switch pair, the system call
 *     patched_read  (natively) the same for a call the loader answers on its
 *               fast path (read of /dev/zero): a call, a look at the fd, the
 *               system call; no FS switch */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003

static long raw3(long nr, long a, long b, long c)
{
	long r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}

/* The prototype's thread table and fd kinds, as the runtime keeps them. */
static int g_tids[64];
static unsigned char g_fd_kind[1024];
static unsigned long g_fs;

static __attribute__((noinline)) long patched_slow(long nr, long a, long b)
{
	int tid = (int)raw3(SYS_gettid, 0, 0, 0), i = 0;
	long r;

	while (i < 63 && g_tids[i] != tid)
		i++;
	raw3(SYS_arch_prctl, ARCH_SET_FS, (long)g_fs, 0); /* to the runtime's TCB */
	r = raw3(nr, a, b, 0);                            /* the dispatcher's place */
	raw3(SYS_arch_prctl, ARCH_SET_FS, (long)g_fs, 0); /* back to the program's */
	return i == 63 ? -1 : r;
}

static __attribute__((noinline)) long patched_fast(long nr, long fd, long buf, long n)
{
	if (fd >= 0 && fd < 1024 && g_fd_kind[fd])
		return patched_slow(nr, fd, buf);
	return raw3(nr, fd, buf, n);
}

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
	} else if (strcmp(argv[1], "patched") == 0) {
		if (syscall(SYS_arch_prctl, ARCH_GET_FS, &g_fs))
			return 1;
		g_tids[0] = (int)syscall(SYS_gettid);
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (patched_slow(SYS_getcwd, (long)buf, sizeof(buf)) < 0)
				return 1;
	} else if (strcmp(argv[1], "patched_read") == 0) {
		fd = open("/dev/zero", O_RDONLY);
		if (fd < 0)
			return 1;
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (patched_fast(SYS_read, fd, (long)buf, 1) != 1)
				return 1;
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
