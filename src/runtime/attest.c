/* kiln runtime: attestation before main (design §2, BRIEF-protocol). The
 * protocol itself is attest_proto.c (shared with the CLI's supervisor of
 * statically linked programs); this file measures this process
 * (ev_workload_measure_pid(0), which leaves libkiln itself out, as `kiln
 * measure` does) and applies the grant inside it: argv/env for the
 * __libc_start_main interposer, volumes for the shield, injected files and the
 * working directory. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "evidence/evidence.h"
#include "runtime/attest_proto.h"
#include "runtime/internal.h"
#include "runtime/net_load.h"
#include "runtime/sload.h"

/* KILN_MEASURE_ONLY=1 (`kiln measure`): print the measurement before main and
 * _exit, exactly as libkiln-measure.so does, so the value is what this library
 * measures at run time (same mappings, libkiln's own dependencies included). */
void rt__measure_only(void)
{
	const char *only = getenv("KILN_MEASURE_ONLY");
	const char *want_manifest = getenv("KILN_MEASURE_MANIFEST");
	struct kiln_err err = { 0 };
	uint8_t wm[EV_WM_SIZE];
	char hex[2 * EV_WM_SIZE + 2];
	char *manifest = NULL;
	int ret;

	if (!only || strcmp(only, "1") != 0)
		return;
	ret = ev_workload_measure_pid(0, wm, &manifest, &err);
	if (ret < 0) {
		rt__say("measure: %s", kiln_err_msg(&err, ret));
		rt__raw(SYS_exit_group, 111);
	}
	if (want_manifest && strcmp(want_manifest, "1") == 0)
		kiln_write_all(1, manifest, strlen(manifest));
	free(manifest);
	kiln_hex_encode(wm, sizeof(wm), hex);
	hex[2 * EV_WM_SIZE] = '\n';
	kiln_write_all(1, hex, 2 * EV_WM_SIZE + 1);
	rt__raw(SYS_exit_group, 0);
}

/* The answer of a successful attestation, applied by rt_attest_apply_*. */
static struct rt_json *g_grant;

int rt__attest(struct kiln_err *err)
{
	uint8_t wm[EV_WM_SIZE];
	int ret;

	/* In kiln-sload the workload is the static program it will map: its
	 * descriptor is measured (and passed to kiln-las), the runtime around
	 * it checked (sload_attest.c). */
	if (g_rt.sload_exe) {
		ret = rt__sload_measure(wm, err);
		if (ret)
			return ret;
		return rt_attest_cas(&g_rt.cfg, wm, g_rt_sload_fd, &g_grant, err);
	}
	ret = ev_workload_measure_pid(0, wm, NULL, err);
	if (ret) {
		kiln_err_prefix(err, "attestation: workload measurement: ");
		return ret;
	}
	return rt_attest_cas(&g_rt.cfg, wm, -1, &g_grant, err);
}

/* ---- applying the grant ---------------------------------------------------- */
static char **g_argv; /* argv..., NULL, env..., NULL (one block, never freed) */
static char **g_env;
static int g_argc;

int rt__attest_apply_early(struct kiln_err *err)
{
	struct stat self;
	int ret;

	/* The policy's command names the measured file: kiln-sload's program
	 * (its descriptor), else this process's executable. */
	if (g_rt.sload_exe) {
		if (fstat(g_rt_sload_fd, &self))
			return kiln_err_set(err, -errno, "%s: %s", g_rt_sload_path,
					    kiln_strerror(errno));
		/* The network and console shields are not run by the loader. */
		if (rt_json_get(g_grant, "network") || rt_json_get(g_grant, "console"))
			return kiln_err_set(err, -ENOTSUP, "the policy shields this service's "
					    "%s, which the static loader does not run: refusing "
					    "to run it unshielded", rt_json_get(g_grant, "network") ?
					    "network" : "console");
	} else if (stat("/proc/self/exe", &self)) {
		return kiln_err_set(err, -errno, "/proc/self/exe: %s", kiln_strerror(errno));
	}
	ret = rt_grant_command(g_grant, &self, &g_argv, &g_argc, &g_env, err);
	if (ret)
		return ret;
	/* Volumes join the configuration; the shield opens them. */
	return rt_grant_volumes(g_grant, &g_rt.cfg, err);
}

static int add_file(void *ctx, const char *path, const void *data, size_t size, mode_t mode)
{
	(void)ctx;
	return rt__shield_add_file(path, data, size, mode);
}

/* After the shield is up: injected files and the working directory. */
int rt__attest_apply_late(struct kiln_err *err)
{
	const char *pwd;
	int ret = rt_grant_files(g_grant, add_file, NULL, err);

	if (ret)
		return ret;
	ret = rt__net_load(g_grant, err);
	if (ret)
		return ret;
	pwd = rt_grant_pwd(g_grant);
	if (pwd) {
		long a[6] = { (long)pwd };

		ret = (int)rt__dispatch(SYS_chdir, a, NULL);
		if (ret)
			return kiln_err_set(err, ret, "working directory %s: %s", pwd,
					    kiln_strerror(ret));
	}
	rt_json_free(g_grant);
	g_grant = NULL;
	return 0;
}

bool rt__attest_argv(int *argc, char ***argv, char ***env)
{
	if (!g_argv)
		return false;
	*argc = g_argc;
	*argv = g_argv;
	*env = g_env;
	return true;
}
