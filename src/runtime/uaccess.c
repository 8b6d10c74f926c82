/* kiln runtime: reading and writing the program's memory without trusting its
 * pointers. The kernel answers EFAULT for a bad pointer; the runtime, which
 * looks at paths and fills buffers for the calls it implements, must do the
 * same instead of crashing the program.
 *
 * The copies run in a few assembly routines between rt__uaccess_start and
 * rt__uaccess_end that keep nothing on the stack. A fault inside them reaches
 * the runtime's SIGSEGV/SIGBUS handler (sys/signal.c), which moves the saved
 * instruction pointer to rt__uaccess_fault: the routine returns -EFAULT to its
 * caller, as the kernel's exception table does for copy_from_user. Every
 * other fault goes on to the program's own disposition (inside a guard, where
 * the runtime's code runs, it is fatal). So a good pointer costs the copy and
 * nothing else (no system call).
 *
 * The handler can be kept installed only while Syscall User Dispatch sees the
 * program's sigaction calls (g_rt.sud_on); without it the copies go through
 * process_vm_readv/writev on this process (one system call each). */
#include <errno.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "runtime/internal.h"

__asm__(".pushsection .text.kiln_uaccess,\"ax\",@progbits\n"
	".globl rt__uaccess_start\n.hidden rt__uaccess_start\n"
	"rt__uaccess_start:\n"
	/* long rt__uaccess_copy(void *dst, const void *src, size_t n): 0 */
	".globl rt__uaccess_copy\n.hidden rt__uaccess_copy\n.type rt__uaccess_copy,@function\n"
	"rt__uaccess_copy:\n"
	"\tmovq %rdx, %rcx\n"
	"\trep movsb\n"
	"\txorl %eax, %eax\n"
	"\tret\n"
	".size rt__uaccess_copy, .-rt__uaccess_copy\n"
	/* long rt__uaccess_str(char *dst, const char *src, size_t size): the
	 * length, or -ENAMETOOLONG when src has no NUL in its first size bytes */
	".globl rt__uaccess_str\n.hidden rt__uaccess_str\n.type rt__uaccess_str,@function\n"
	"rt__uaccess_str:\n"
	"\txorl %eax, %eax\n"
	"1:\tcmpq %rdx, %rax\n"
	"\tjae 3f\n"
	"\tmovzbl (%rsi,%rax), %ecx\n"
	"\tmovb %cl, (%rdi,%rax)\n"
	"\ttestb %cl, %cl\n"
	"\tjz 2f\n"
	"\tincq %rax\n"
	"\tjmp 1b\n"
	"2:\tret\n"
	"3:\tmovq $-36, %rax\n"
	"\tret\n"
	".size rt__uaccess_str, .-rt__uaccess_str\n"
	".globl rt__uaccess_end\n.hidden rt__uaccess_end\n"
	"rt__uaccess_end:\n"
	/* Where a fault in the routines above resumes: the stack is as at their
	 * entry, so this returns -EFAULT to their caller. */
	".globl rt__uaccess_fault\n.hidden rt__uaccess_fault\n.type rt__uaccess_fault,@function\n"
	"rt__uaccess_fault:\n"
	"\tmovq $-14, %rax\n"
	"\tret\n"
	".size rt__uaccess_fault, .-rt__uaccess_fault\n"
	".popsection\n");

long rt__uaccess_copy(void *dst, const void *src, size_t n) RT_HIDDEN;
long rt__uaccess_str(char *dst, const char *src, size_t size) RT_HIDDEN;

static RT_NO_SSP long vm_copy(long nr, void *local, const void *remote, size_t n)
{
	struct iovec l = { .iov_base = local, .iov_len = n };
	struct iovec r = { .iov_base = (void *)remote, .iov_len = n };
	long got = rt__raw(nr, rt__raw0(SYS_getpid), &l, 1, &r, 1, 0);

	if (got == (long)n)
		return 0;
	return got < 0 && got != -EFAULT ? got : -EFAULT;
}

int rt__copy_in(void *dst, const void *usrc, size_t n)
{
	if (!n)
		return 0;
	if (!usrc)
		return -EFAULT;
	if (g_rt_fault_handler)
		return (int)rt__uaccess_copy(dst, usrc, n);
	return (int)vm_copy(SYS_process_vm_readv, dst, usrc, n);
}

int rt__copy_out(void *udst, const void *src, size_t n)
{
	if (!n)
		return 0;
	if (!udst)
		return -EFAULT;
	if (g_rt_fault_handler)
		return (int)rt__uaccess_copy(udst, src, n);
	return (int)vm_copy(SYS_process_vm_writev, (void *)src, udst, n);
}

long rt__path_in(char *dst, const char *usrc, size_t size)
{
	if (!usrc)
		return -EFAULT;
	if (g_rt_fault_handler)
		return rt__uaccess_str(dst, usrc, size);
	/* Page by page: a string may end just before an unmapped page. */
	for (size_t got = 0; got < size;) {
		size_t chunk = 4096 - (((uintptr_t)usrc + got) & 4095);
		long r;

		if (chunk > size - got)
			chunk = size - got;
		r = vm_copy(SYS_process_vm_readv, dst + got, usrc + got, chunk);
		if (r)
			return r;
		for (size_t i = got; i < got + chunk; i++)
			if (!dst[i])
				return (long)i;
		got += chunk;
	}
	return -ENAMETOOLONG;
}

bool rt__uaccess_owns(uintptr_t pc)
{
	return pc >= (uintptr_t)rt__uaccess_start && pc < (uintptr_t)rt__uaccess_end;
}

int rt__str_check(const char *usrc, size_t max)
{
	char buf[256];

	for (size_t off = 0; off < max; off += sizeof(buf)) {
		size_t n = max - off < sizeof(buf) ? max - off : sizeof(buf);
		long r = rt__path_in(buf, usrc + off, n);

		if (r >= 0)
			return 0;
		if (r != -ENAMETOOLONG)
			return (int)r;
	}
	return -E2BIG;
}
