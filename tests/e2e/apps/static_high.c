/* static_high: a statically linked program without libc, linked (non-PIE)
 * where the kernel puts kiln-sload and its libraries (-Wl,-Ttext-segment=
 * 0x560000000000), so the static loader cannot map it: kiln run must run it
 * supervised and say why (tests/e2e/apps/test_app_static_fallback.py).
 * static_high [FILE TEXT]: writes TEXT to FILE, then "high" to stdout. */
#include <fcntl.h>
#include <sys/syscall.h>

static long sys3(long n, long a, long b, long c)
{
	long r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}

static long sys4(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
}

static long len(const char *s)
{
	long n = 0;

	while (s[n])
		n++;
	return n;
}

void high_main(long *sp);

void high_main(long *sp)
{
	long argc = sp[0], fd;
	char **argv = (char **)(sp + 1);
	int status = 0;

	if (argc == 3) {
		fd = sys4(SYS_openat, AT_FDCWD, (long)argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || sys3(SYS_write, fd, (long)argv[2], len(argv[2])) != len(argv[2]) ||
		    sys3(SYS_close, fd, 0, 0) != 0)
			status = 1;
	}
	sys3(SYS_write, 1, (long)"high\n", 5);
	sys3(SYS_exit_group, status, 0, 0);
}

__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall high_main\n\thlt\n");
