/* Unit tests for the runtime's fault-safe copies of the program's memory
 * (src/runtime/uaccess.c): good pointers copy, bad ones (unmapped, PROT_NONE,
 * NULL, a string running into a PROT_NONE page) give -EFAULT, a string without
 * a NUL in the limit gives -ENAMETOOLONG; both with the fault handler (the
 * recovery the runtime's SIGSEGV handler does, reproduced here) and without
 * it (process_vm_readv/writev). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime/internal.h"

/* What libkiln's sud.c and sys/signal.c provide. */
bool g_rt_fault_handler;

long rt__raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long r = syscall(nr, a0, a1, a2, a3, a4, a5);

	return r == -1 ? -errno : r;
}

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;

	if (si->si_code > 0 && rt__uaccess_owns((uintptr_t)uc->uc_mcontext.gregs[REG_RIP])) {
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)rt__uaccess_fault;
		return;
	}
	signal(sig, SIG_DFL);
}

static char *g_page;  /* two pages: RW then PROT_NONE */
static size_t g_psz;

static int setup(void **state)
{
	g_psz = (size_t)sysconf(_SC_PAGESIZE);
	g_page = mmap(NULL, 2 * g_psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g_page == MAP_FAILED || mprotect(g_page + g_psz, g_psz, PROT_NONE))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	munmap(g_page, 2 * g_psz);
	return 0;
}

static void check_copies(void)
{
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_NODEFER };
	struct sigaction old_segv, old_bus;
	char buf[64], *none = g_page + g_psz, *edge = none - 3;
	const char *unmapped = (const char *)16;

	/* cmocka installs its own crash handlers around each test: ours goes
	 * in here, as the runtime's does in the program. */
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	/* Good pointers. */
	assert_int_equal(rt__copy_in(buf, "hello", 6), 0);
	assert_string_equal(buf, "hello");
	assert_int_equal(rt__copy_out(g_page, "abc", 4), 0);
	assert_string_equal(g_page, "abc");
	assert_int_equal(rt__path_in(buf, "/a/b", sizeof(buf)), 4);
	assert_string_equal(buf, "/a/b");
	assert_int_equal(rt__copy_in(buf, NULL, 0), 0);
	/* Bad ones. */
	assert_int_equal(rt__copy_in(buf, none, 8), -EFAULT);
	assert_int_equal(rt__copy_in(buf, unmapped, 8), -EFAULT);
	assert_int_equal(rt__copy_in(buf, NULL, 8), -EFAULT);
	assert_int_equal(rt__copy_out(none, "x", 1), -EFAULT);
	assert_int_equal(rt__copy_out((void *)unmapped, "x", 1), -EFAULT);
	assert_int_equal(rt__path_in(buf, none, sizeof(buf)), -EFAULT);
	assert_int_equal(rt__path_in(buf, NULL, sizeof(buf)), -EFAULT);
	/* A copy that starts in good memory and runs into a bad page. */
	assert_int_equal(rt__copy_in(buf, edge, 8), -EFAULT);
	memcpy(edge, "abc", 3);
	assert_int_equal(rt__path_in(buf, edge, sizeof(buf)), -EFAULT);
	/* A string that ends right before the bad page is fine. */
	memcpy(edge, "ab", 3);
	assert_int_equal(rt__path_in(buf, edge, sizeof(buf)), 2);
	assert_string_equal(buf, "ab");
	/* No NUL within the limit: the kernel's getname answer. */
	memset(g_page, 'x', 100);
	assert_int_equal(rt__path_in(buf, g_page, 10), -ENAMETOOLONG);
	g_page[9] = '\0';
	assert_int_equal(rt__path_in(buf, g_page, 10), 9);
	/* The process is still here, and so is a good copy. */
	assert_int_equal(rt__copy_in(buf, "ok", 3), 0);
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
}

static void test_copies_fault_handler(void **state)
{
	g_rt_fault_handler = true;
	check_copies();
}

static void test_copies_process_vm(void **state)
{
	g_rt_fault_handler = false;
	check_copies();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copies_fault_handler),
		cmocka_unit_test(test_copies_process_vm),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
