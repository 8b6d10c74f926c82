/* Test program for the kiln runtime: touches a protected file only through
 * direct system calls (inline `syscall` instructions, which no LD_PRELOAD
 * wrapper can see, and libc's syscall(2)), so only Syscall User Dispatch can
 * shield them.
 *   direct_syscall write PATH TEXT   create PATH with TEXT (raw openat/write/fsync)
 *   direct_syscall read PATH         print PATH's content (raw openat/fstat/read)
 *   direct_syscall libc-read PATH    same through syscall(SYS_openat, ...)
 *   direct_syscall link PATH NEW...  raw link(2) to each NEW: hard links in the volume
 *   direct_syscall setxattr PATH     raw setxattr(2) twice: refused (ENOTSUP), said once
 * Exit 0 on success; on failure prints "errno=N (name)" and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long raw(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

static int fail(const char *what, long r)
{
	printf("%s: errno=%ld (%s)\n", what, -r, strerror((int)-r));
	return 1;
}

int main(int argc, char **argv)
{
	char buf[65536];
	struct stat st;
	long fd, n;

	if (argc < 3)
		return 2;
	if (strcmp(argv[1], "write") == 0 && argc == 4) {
		fd = raw(SYS_openat, AT_FDCWD, (long)argv[2], O_CREAT | O_WRONLY | O_TRUNC, 0600);
		if (fd < 0)
			return fail("openat", fd);
		n = raw(SYS_write, fd, (long)argv[3], (long)strlen(argv[3]), 0);
		if (n != (long)strlen(argv[3]))
			return fail("write", n < 0 ? n : -EIO);
		n = raw(SYS_fsync, fd, 0, 0, 0);
		if (n < 0)
			return fail("fsync", n);
		raw(SYS_close, fd, 0, 0, 0);
		return 0;
	}
	if ((strcmp(argv[1], "read") == 0 || strcmp(argv[1], "libc-read") == 0) && argc == 3) {
		if (argv[1][0] == 'r')
			fd = raw(SYS_openat, AT_FDCWD, (long)argv[2], O_RDONLY, 0);
		else
			fd = syscall(SYS_openat, AT_FDCWD, argv[2], O_RDONLY, 0) < 0 ? -errno :
			     0;
		if (argv[1][0] == 'l' && fd == 0)
			fd = syscall(SYS_openat, AT_FDCWD, argv[2], O_RDONLY, 0);
		if (fd < 0)
			return fail("openat", fd);
		n = raw(SYS_fstat, fd, (long)&st, 0, 0);
		if (n < 0)
			return fail("fstat", n);
		n = raw(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0);
		if (n < 0)
			return fail("read", n);
		buf[n] = '\0';
		printf("size=%lld content=%s\n", (long long)st.st_size, buf);
		raw(SYS_close, fd, 0, 0, 0);
		return 0;
	}
	if (strcmp(argv[1], "link") == 0 && argc >= 4) {
		for (int i = 3; i < argc; i++) {
			n = raw(SYS_link, (long)argv[2], (long)argv[i], 0, 0);
			if (n < 0)
				fail("link", n);
		}
		return n < 0;
	}
	if (strcmp(argv[1], "setxattr") == 0 && argc == 3) {
		for (int i = 0; i < 2; i++) {
			n = raw(SYS_setxattr, (long)argv[2], (long)"user.k", (long)"v", 1);
			if (n < 0)
				fail("setxattr", n);
		}
		return n < 0;
	}
	return 2;
}
