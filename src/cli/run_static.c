/* kiln run of a statically linked program: which path runs it, said on one
 * line, and the two supervised runs (docs/runtime.md "Statically linked
 * programs" and "The static loader").
 *
 * The static loader (kiln-sload, in-process with libkiln) is the default:
 * it gives the program what a dynamic program gets (libkiln's file shield,
 * directory listings, attestation in the process). The seccomp supervisor
 * is the fallback where the loader cannot run the program, decided here
 * before anything of it runs: no kiln-sload or libkiln.so installed, or an
 * ELF file the loader's checks refuse (rt_sload_read: an ET_EXEC linked where
 * the kernel puts kiln-sload and its libraries, a PT_TLS no libc could place,
 * ...). `--static=loader` never falls back: it refuses with the reason. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run_static.h"
#include "common/common.h"
#include "evidence/evidence.h"
#include "runtime/attest_proto.h"
#include "runtime/runtime.h"
#include "runtime/sload_elf.h"
#include "runtime/supervise.h"

int cli_static_mode_parse(const char *s, enum cli_static_mode *mode)
{
	if (strcmp(s, "auto") == 0)
		*mode = CLI_STATIC_AUTO;
	else if (strcmp(s, "loader") == 0)
		*mode = CLI_STATIC_LOADER;
	else if (strcmp(s, "supervise") == 0)
		*mode = CLI_STATIC_SUPERVISE;
	else
		return -EINVAL;
	return 0;
}

/* Whether kiln-sload can run prog: 0 with lib and sload set, or -1 with the
 * reason in why. */
static int loader_check(const char *prog, char *lib, size_t lib_size, char *sload,
			size_t sload_size, char *why, size_t why_size)
{
	struct rt_sload_span span = { 0 };
	const char *reason = NULL;
	Elf64_Phdr ph[RT_SLOAD_MAX_PHNUM];
	Elf64_Ehdr eh = { 0 };
	const char *slash;
	int fd, ret, dir_len;

	if (cli_find_runtime_quiet("libkiln.so", RT_ENV_LIB, lib, lib_size) < 0) {
		snprintf(why, why_size, "libkiln.so is not installed (not in $%s, next to the "
			 "kiln binary nor in its install directory)", RT_ENV_LIB);
		return -1;
	}
	/* Absolute (cli_find_runtime_quiet): there is a slash. */
	slash = strrchr(lib, '/');
	dir_len = slash ? (int)(slash - lib) : 0;
	if ((size_t)snprintf(sload, sload_size, "%.*s/kiln-sload", dir_len, lib) >= sload_size) {
		snprintf(why, why_size, "the path of kiln-sload next to %s is too long", lib);
		return -1;
	}
	if (access(sload, X_OK) != 0) {
		snprintf(why, why_size, "%s: %s (installed next to libkiln.so)", sload,
			 strerror(errno));
		return -1;
	}
	fd = open(prog, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_size, "cannot open it: %s", strerror(errno));
		return -1;
	}
	ret = rt_sload_read(fd, &eh, ph, &span, &reason);
	close(fd);
	if (ret == 0)
		return 0;
	if (eh.e_type == ET_EXEC && span.hi > RT_SLOAD_KERNEL_LO && span.lo < span.hi)
		snprintf(why, why_size, "%s: 0x%lx-0x%lx", reason,
			 (unsigned long)span.lo, (unsigned long)span.hi);
	else
		snprintf(why, why_size, "%s", reason);
	return -1;
}

int cli_static_path(const struct rt_config *cfg, enum cli_static_mode mode, const char *prog,
		    char *lib, size_t lib_size, char *sload, size_t sload_size, char *why,
		    size_t why_size)
{
	bool shield = cfg->n_volumes || cfg->cas[0];

	why[0] = '\0';
	if (mode == CLI_STATIC_SUPERVISE)
		return shield ? CLI_STATIC_RUN_SUPERVISED : CLI_STATIC_RUN_NATIVE;
	if (loader_check(prog, lib, lib_size, sload, sload_size, why, why_size) == 0)
		return CLI_STATIC_RUN_LOADER;
	if (mode == CLI_STATIC_LOADER) {
		cli_error("run: %s: the static loader cannot run it (--static=loader): %s", prog,
			  why);
		return -1;
	}
	return shield ? CLI_STATIC_RUN_SUPERVISED : CLI_STATIC_RUN_NATIVE;
}

/* A static binary with development-mode volumes: run it under the seccomp
 * supervisor (src/runtime/supervise.h). */
int cli_run_supervised(const struct rt_config *cfg, const char *path, char **argv,
		       const char *why)
{
	struct kiln_err err = { 0 };
	int code = 0, ret;

	cli_say_mode(cfg);
	cli_static_say(path, CLI_STATIC_RUN_SUPERVISED, why);
	ret = rt_supervise(cfg, argv, &code, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	return code;
}

/* A static binary with --cas: this process is its supervisor, kiln's own
 * measured code like libkiln. It opens the program once, measures that file,
 * attests for it and runs that very descriptor (no path lookup in between)
 * with the policy's argv, env, pwd, injected files and volumes. Nothing secret
 * goes into this process's command line or environment. */
int cli_run_supervised_attested(struct rt_config *cfg, const char *path, const char *why)
{
	struct kiln_err err = { 0 };
	struct rt_sv_files *files = calloc(1, sizeof(*files));
	struct rt_json *grant = NULL;
	struct rt_sv_opts o = { .exe_fd = -1 };
	uint8_t wm[EV_WM_SIZE], exe_sha[32];
	char **block = NULL, **env = NULL, *pwd = NULL;
	struct stat st;
	int argc = 0, code = CLI_EXIT_FAIL, ret;

	if (!files) {
		cli_error("out of memory");
		return CLI_EXIT_FAIL;
	}
	o.exe_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (o.exe_fd < 0 || fstat(o.exe_fd, &st)) {
		cli_error("cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	ret = ev_workload_measure_static_fd(o.exe_fd, NULL, wm, NULL, exe_sha, &err);
	if (ret) {
		cli_error("attestation: workload measurement of %s: %s", path,
			  kiln_err_msg(&err, ret));
		goto out;
	}
	/* This process will hold the program's secrets: it must hold no code
	 * that cannot be measured either (a memfd, anonymous code, rewritten
	 * pages, a tracer). kiln-las checks the same from outside, and more. */
	{
		uint8_t self_wm[EV_WM_SIZE];

		ret = ev_workload_measure_pid(0, self_wm, NULL, &err);
		if (ret) {
			cli_error("attestation: the supervisor (kiln) itself: %s",
				  kiln_err_msg(&err, ret));
			goto out;
		}
	}
	cli_say_mode(cfg);
	/* Said before the attestation, as the loader's path is. */
	cli_static_say(path, CLI_STATIC_RUN_SUPERVISED, why);
	ret = rt_attest_cas(cfg, wm, o.exe_fd, &grant, &err);
	if (ret) {
		/* Whole lines, as libkiln prints them (docs/attestation.md). */
		cli_error("%s", kiln_err_msg(&err, ret));
		goto out;
	}
	/* The network and console shields live in libkiln: a supervised static
	 * program would run with plaintext sockets and console. */
	if (rt_json_get(grant, "network") || rt_json_get(grant, "console"))
		ret = kiln_err_set(&err, -ENOTSUP, "the policy shields this service's %s, which "
				   "a statically linked program cannot have (the network and "
				   "console shields need libkiln): refusing to run it unshielded",
				   rt_json_get(grant, "network") ? "network" : "console");
	else
		ret = rt_grant_command(grant, &st, &block, &argc, &env, &err);
	if (!ret)
		ret = rt_grant_volumes(grant, cfg, &err);
	if (!ret)
		ret = rt_grant_files(grant, rt_sv_file_add, files, &err);
	if (!ret && rt_grant_pwd(grant) && !(pwd = strdup(rt_grant_pwd(grant))))
		ret = kiln_err_set(&err, -ENOMEM, "out of memory");
	/* Everything needed is copied out: the answer is wiped now. */
	rt_json_free(grant);
	if (ret) {
		cli_error("attestation: %s", kiln_err_msg(&err, ret));
		goto out;
	}
	o.envp = env;
	o.pwd = pwd;
	o.files = files;
	ret = rt_supervise_ex(cfg, &o, block, &code, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		code = CLI_EXIT_FAIL;
	}
out:
	rt_grant_command_free(block);
	rt_sv_files_close(files);
	free(files);
	free(pwd);
	if (o.exe_fd >= 0)
		close(o.exe_fd);
	return code;
}

