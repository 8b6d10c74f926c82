/* kiln runtime: start-up. The constructor runs before the program's main:
 * it reads the launcher's configuration from the inherited fd named by
 * KILN_CONFIG_FD (then closes it and removes the variable), makes the process
 * non-dumpable (so other processes of the same user cannot read its memory or
 * open its fds through /proc), opens the volumes and enables Syscall User
 * Dispatch. Any failure stops the program before main with one line on stderr:
 * an app must never run without the protection it was configured with.
 * Without KILN_CONFIG_FD the library is inert (every call passes through). */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <openssl/crypto.h>

#include "runtime/net_load.h"
#include "runtime/sload.h"
#include "runtime/sys/sys.h"

struct rt_state g_rt;
extern char **environ;

static void die(const char *what, const char *msg)
{
	rt__say("%s: %s", what, msg);
	rt__raw(SYS_exit_group, 1);
}

static int read_config(int fd, char **text, size_t *size)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		long n;

		if (len == cap) {
			char *p;

			if (cap >= (1u << 20)) {
				kiln_free_secret(buf, cap);
				return -EFBIG;
			}
			p = malloc(cap * 2);
			if (!p) {
				kiln_free_secret(buf, cap);
				return -ENOMEM;
			}
			memcpy(p, buf, len);
			kiln_free_secret(buf, cap);
			buf = p;
			cap *= 2;
		}
		n = rt__raw(SYS_read, fd, buf + len, cap - len);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			kiln_free_secret(buf, cap);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*text = buf;
	*size = len;
	return 0;
}

/* Set once the constructor has run. glibc's loader runs constructors before
 * the program's entry calls __libc_start_main; musl's __libc_start_main runs
 * them itself, so the interposer below may come first (start_late). */
static bool g_ctor_ran;

/* This process is kiln-sload, the loader of static programs: the program
 * next to this library (not a name the program could choose: the path of
 * the running executable). Its calls trap by seccomp (sload_trap.c), not
 * by Syscall User Dispatch, which would trap every one. */
static bool in_sload(void)
{
	char exe[4096], want[4096];
	const char *slash = strrchr(g_rt.lib_path, '/');
	long n = rt__raw(SYS_readlink, "/proc/self/exe", exe, sizeof(exe) - 1);

	if (!slash || n <= 0 || (size_t)(slash - g_rt.lib_path) + 12 > sizeof(want))
		return false;
	exe[n] = '\0';
	memcpy(want, g_rt.lib_path, (size_t)(slash - g_rt.lib_path));
	memcpy(want + (slash - g_rt.lib_path), "/kiln-sload", 12);
	return strcmp(exe, want) == 0;
}
static bool g_start_late;

__attribute__((constructor(101))) static void rt_start(void)
{
	struct kiln_err err = { 0 };
	const char *fdstr = getenv(RT_ENV_CONFIG_FD);
	uint64_t fd;
	Dl_info info;
	int ret;

	g_ctor_ran = true;
	rt__measure_only();
	if (!fdstr)
		return;
	rt__raw(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* libkiln's own (static, hidden) OpenSSL reads no configuration file: an
	 * OPENSSL_CONF in the environment could name a provider module, which
	 * would be loaded into the process at the CAS connection, after the
	 * process was measured (docs/runtime.md). The first initialisation
	 * decides it for every later one (libssl's at the CAS connection
	 * included); libcrypto's alone, so that a run without TLS does not add
	 * every cipher and digest to OpenSSL's name table, as libssl's init
	 * does (about a tenth of libkiln's start-up: docs/runtime.md,
	 * "Start-up cost of kiln run"). No atexit handler either: OpenSSL's
	 * cleanup at exit frees and wipes what the kernel is about to free
	 * (a few percent of the CPU of a short program's life under kiln). */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT, NULL);
	if (kiln_parse_u64(fdstr, &fd) || fd > 65535)
		die(RT_ENV_CONFIG_FD, "not an fd number");
	ret = read_config((int)fd, &g_rt.config_text, &g_rt.config_size);
	rt__raw(SYS_close, fd);
	rt_env_drop(RT_ENV_CONFIG_FD);
	if (ret)
		die("runtime configuration", kiln_strerror(ret));
	ret = rt_config_parse(g_rt.config_text, g_rt.config_size, &g_rt.cfg, &err);
	if (ret)
		die("runtime configuration", kiln_err_msg(&err, ret));
	if (dladdr((void *)rt_start, &info) && info.dli_fname && info.dli_fname[0] == '/')
		strncpy(g_rt.lib_path, info.dli_fname, sizeof(g_rt.lib_path) - 1);
	/* kiln-sload: the program is opened now, once, before it is measured
	 * (sload_attest.c); kiln_sload_main maps that descriptor. */
	g_rt.sload_exe = in_sload();
	if (g_rt.sload_exe)
		rt__sload_open();
	if (g_rt.cfg.cas[0]) {
		ret = rt__attest(&err);
		if (ret == 0 && (ret = rt__attest_apply_early(&err)))
			kiln_err_prefix(&err, "attestation: ");
		if (ret) {
			/* rt_attest's messages are whole lines (docs/attestation.md). */
			rt__say("%s", kiln_err_msg(&err, ret));
			rt__raw(SYS_exit_group, 1);
		}
	}
	if (g_rt.cfg.n_volumes) {
		ret = rt__shield_init(&err);
		if (ret == 0)
			ret = rt__vcwd_init(&err);
		if (ret)
			die("file shield", kiln_err_msg(&err, ret));
	}
	if (g_rt.cfg.cas[0]) {
		ret = rt__attest_apply_late(&err);
		if (ret)
			die("attestation", kiln_err_msg(&err, ret));
		/* Late start (musl): the program's own constructors, which run
		 * next, see the policy's environment as they do with glibc. */
		if (g_start_late) {
			int argc;
			char **argv, **env;

			if (rt__attest_argv(&argc, &argv, &env))
				environ = env;
		}
	}
	if (g_rt.cfg.sud && !g_rt.sload_exe) {
		ret = rt__sud_init();
		if (ret)
			die("syscall user dispatch", kiln_strerror(ret));
		/* Dispatch sees the program's sigaction calls: the fault recovery
		 * of the copy routines can keep SIGSEGV and SIGBUS. */
		ret = rt__fault_init();
		if (ret)
			die("fault handler", kiln_strerror(ret));
		/* The shields' guards defer the program's signals in its
		 * handlers rather than mask them (sys/signal.c). */
		if ((g_rt_net_on || g_rt.shield_on) && (ret = rt__sig_defer_init()))
			die("signal handlers", kiln_strerror(ret));
	}
	ret = rt__fork_init();
	if (ret)
		die("fork handlers", kiln_strerror(ret));
	g_rt.initialized = true;
}

/* The program's entry: with an attestation answer, main gets the policy's
 * argv and environment instead of the launcher's. (_start calls this through
 * the PLT, after every constructor, ours included, has run.) */
typedef int (*main_fn)(int, char **, char **);
typedef int (*start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
			     void (*)(void), void *);

__attribute__((visibility("default"))) int __libc_start_main(main_fn main, int argc,
							     char **argv, void (*init)(void),
							     void (*fini)(void),
							     void (*rtld_fini)(void),
							     void *stack_end);
static main_fn g_main;

/* main's caller when the constructor ran after __libc_start_main was entered
 * (musl): the grant is known only now. */
static int main_late(int argc, char **argv, char **env)
{
	if (rt__attest_argv(&argc, &argv, &env))
		environ = env;
	return g_main(argc, argv, env);
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
		      void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
	start_main_fn real = (start_main_fn)dlsym(RTLD_NEXT, "__libc_start_main");
	char **env;

	if (!real)
		rt__raw(SYS_exit_group, 127);
	if (!g_ctor_ran) {
		/* musl's takes (main, argc, argv, init, fini, ldso): the same
		 * registers, the last one ignored. */
		g_start_late = true;
		g_main = main;
		return real(main_late, argc, argv, init, fini, rtld_fini, stack_end);
	}
	/* kiln-sload's main keeps its own argv (PROGRAM first): the grant's
	 * argv and environment go on the loaded program's stack (sload.c). */
	if (g_rt.sload_exe) {
		int grant_argc;
		char **grant_argv;

		if (rt__attest_argv(&grant_argc, &grant_argv, &env))
			environ = env;
	} else if (rt__attest_argv(&argc, &argv, &env)) {
		environ = env;
	}
	return real(main, argc, argv, init, fini, rtld_fini, stack_end);
}

__attribute__((destructor)) static void rt_stop(void)
{
	if (g_rt.initialized)
		rt__shield_exit();
}
