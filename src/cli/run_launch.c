/* kiln run's common case, shared by the front (`kiln`, cli/front.c) and the
 * full tool (`kiln-tool`, cli/run.c): the options of a development-mode run
 * (--volume, --freshness, --sud), the volume key files, the program's kind,
 * the runtime library, and the exec with the configuration pipe. Plain libc
 * (and the runtime's pure config code): whatever this file needs, the front
 * maps (docs/architecture.md "Binaries"). */
#include "cli/run_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run_static.h"
#include "common/common.h"
#include "evidence/evidence.h"
#include "pf/pf.h"

#ifndef KILN_RUNTIME_INSTALL
#define KILN_RUNTIME_INSTALL "/usr/local/lib/kiln/libkiln.so"
#endif

static const struct option run_opts[] = {
	{ "volume", required_argument, NULL, OPT_VOLUME },
	{ "freshness", required_argument, NULL, OPT_FRESHNESS },
	{ "sud", required_argument, NULL, OPT_SUD },
	{ "static", required_argument, NULL, OPT_STATIC },
	{ "cas", required_argument, NULL, OPT_CAS },
	{ "cas-ca", required_argument, NULL, OPT_CAS_CA },
	{ "cas-fingerprint", required_argument, NULL, OPT_CAS_FP },
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "service", required_argument, NULL, OPT_SERVICE },
	{ "tee", required_argument, NULL, OPT_TEE },
	{ "las-socket", required_argument, NULL, OPT_LAS_SOCKET },
	{ "host-env", required_argument, NULL, OPT_HOST_ENV },
	{ "volume-dir", required_argument, NULL, OPT_VOLUME_DIR },
	{ "cas-key", required_argument, NULL, OPT_CAS_KEY },
	{ "console-listen", required_argument, NULL, OPT_CONSOLE_LISTEN },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* ---- volume key files (also kiln fs's) ---- */

int cli_volume_key_read(const char *path, uint8_t key[static PF_KEY_SIZE])
{
	uint8_t *data = NULL;
	size_t size = 0, n = 0;
	char hex[2 * PF_KEY_SIZE + 1];
	int ret = kiln_read_file(path, 4096, &data, &size);

	if (ret) {
		cli_error("key file %s: %s", path, kiln_strerror(ret));
		return ret;
	}
	if (size == PF_KEY_SIZE) {
		memcpy(key, data, PF_KEY_SIZE);
		goto out;
	}
	for (size_t i = 0; i < size && n < sizeof(hex); i++)
		if (data[i] != ' ' && data[i] != '\n' && data[i] != '\r' && data[i] != '\t')
			hex[n++] = (char)data[i];
	if (n != 2 * PF_KEY_SIZE) {
		ret = -KILN_EFORMAT;
	} else {
		hex[n] = '\0';
		ret = kiln_hex_decode(hex, key, PF_KEY_SIZE, NULL) ? -KILN_EFORMAT : 0;
	}
	kiln_wipe(hex, sizeof(hex));
	if (ret)
		cli_error("key file %s: not a volume key (expected 32 bytes or 64 hex digits)",
			  path);
out:
	kiln_free_secret(data, size);
	return ret;
}

int cli_version_file(const char *key_file, char *out, size_t size)
{
	char legacy[4096];

	if (snprintf(out, size, "%s.version", key_file) >= (int)size ||
	    snprintf(legacy, sizeof(legacy), "%s.tag", key_file) >= (int)sizeof(legacy))
		return -ENAMETOOLONG;
	/* Volumes made before the rename keep their store where it is. */
	if (access(out, F_OK) != 0 && errno == ENOENT && access(legacy, F_OK) == 0)
		snprintf(out, size, "%s", legacy);
	return 0;
}

/* ---- kiln run ---- */

static int add_volume(struct rt_config *cfg, const char *spec)
{
	char buf[8192], cwd[PATH_MAX], vfile[PATH_MAX];
	char *eq, *mount = NULL, *dir, *key;
	struct rt_volume_cfg *v;

	if (cfg->n_volumes >= RT_MAX_VOLUMES) {
		cli_error("--volume: at most %d volumes", RT_MAX_VOLUMES);
		return -E2BIG;
	}
	if (strlen(spec) >= sizeof(buf)) {
		cli_error("--volume: argument too long");
		return -ENAMETOOLONG;
	}
	strcpy(buf, spec);
	eq = strchr(buf, '=');
	if (!eq || eq == buf || !eq[1]) {
		cli_error("--volume '%s': expected MOUNT=DIR:KEYFILE or DIR=KEYFILE", spec);
		return -EINVAL;
	}
	*eq = '\0';
	key = strchr(eq + 1, ':');
	if (key) {
		mount = buf;
		dir = eq + 1;
		*key++ = '\0';
	} else {
		dir = buf;
		key = eq + 1;
	}
	if (!dir[0] || !key[0] || (mount && !mount[0])) {
		cli_error("--volume '%s': expected MOUNT=DIR:KEYFILE or DIR=KEYFILE", spec);
		return -EINVAL;
	}
	if (!getcwd(cwd, sizeof(cwd))) {
		cli_error("--volume: cannot get the working directory: %s", strerror(errno));
		return -errno;
	}
	v = &cfg->volumes[cfg->n_volumes];
	if (rt_path_normalize(cwd, dir, v->dir, sizeof(v->dir)) ||
	    rt_path_normalize(cwd, mount ? mount : dir, v->mount, sizeof(v->mount))) {
		cli_error("--volume '%s': path too long", spec);
		return -ENAMETOOLONG;
	}
	if (strchr(v->dir, ' ') || strchr(v->mount, ' ') || strchr(v->dir, '\n') ||
	    strchr(v->mount, '\n')) {
		cli_error("--volume '%s': paths with spaces or newlines are not supported", spec);
		return -EINVAL;
	}
	if (access(v->dir, R_OK | X_OK) != 0) {
		cli_error("volume %s: %s", v->dir, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < cfg->n_volumes; i++) {
		if (strcmp(cfg->volumes[i].mount, v->mount) == 0) {
			cli_error("--volume: %s is mounted twice", v->mount);
			return -EINVAL;
		}
	}
	if (cli_volume_key_read(key, v->key))
		return -EINVAL;
	/* Rollback protection as `kiln fs` does it: the trusted version lives in
	 * KEY.version (KEY.tag for volumes made before the rename). */
	if (cli_version_file(key, vfile, sizeof(vfile)) != 0) {
		cli_error("--volume '%s': key path too long", spec);
		return -ENAMETOOLONG;
	}
	if (rt_path_normalize(cwd, vfile, v->tag_file, sizeof(v->tag_file)) ||
	    strchr(v->tag_file, ' ')) {
		cli_error("--volume '%s': version file path not supported", spec);
		return -EINVAL;
	}
	cfg->n_volumes++;
	return 0;
}

static int dev_option(struct rt_config *cfg, int opt, const char *val, const char **sud)
{
	switch (opt) {
	case OPT_VOLUME:
		return add_volume(cfg, val) ? -1 : 1;
	case OPT_FRESHNESS:
		if (rt_freshness_parse(val, &cfg->freshness)) {
			cli_error("--freshness '%s': expected every-fsync, on-close or on-exit", val);
			return -1;
		}
		return 1;
	case OPT_SUD:
		if (strcmp(val, "on") && strcmp(val, "off") && strcmp(val, "auto")) {
			cli_error("--sud '%s': expected on, off or auto", val);
			return -1;
		}
		*sud = val;
		return 1;
	default:
		return 0;
	}
}

struct rt_config *cli_run_config_new(void)
{
	struct rt_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->dev = true;
	cfg->freshness = RT_FRESH_EVERY_FSYNC;
	optind = 1;
	opterr = 0;
	return cfg;
}

int cli_run_getopt(int argc, char **argv, struct rt_config *cfg, const char **sud)
{
	int c;

	while ((c = getopt_long(argc, argv, "+h", run_opts, NULL)) != -1) {
		int dev = dev_option(cfg, c, optarg, sud);

		if (dev < 0)
			return CLI_RUN_OPT_BAD;
		if (dev == 0)
			return c;
	}
	return -1;
}

bool cli_run_sud_on(const char *sud, const struct rt_config *cfg)
{
	/* Attested programs may get volumes from the CAS: dispatch on by default. */
	return strcmp(sud, "on") == 0 ||
	       (strcmp(sud, "auto") == 0 && (cfg->n_volumes > 0 || cfg->cas[0]));
}

/* The runtime library name (libkiln.so, libkiln-musl.so: cli_runtime_name):
 * from $env_var, else next to the kiln binary (or in its build tree), else
 * where it is installed (the directory of KILN_RUNTIME_INSTALL). */
int cli_find_runtime_quiet(const char *name, const char *env_var, char *out, size_t out_size)
{
	const char *env = getenv(env_var), *inst_dir_end = strrchr(KILN_RUNTIME_INSTALL, '/');
	char exe[PATH_MAX];
	const char *dirs[] = { "/", "/src/runtime/" };
	ssize_t n;
	char *slash;

	if (env && env[0]) {
		if (env[0] != '/' || access(env, R_OK) != 0)
			return -EINVAL;
		snprintf(out, out_size, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		for (size_t i = 0; i < KILN_ARRAY_SIZE(dirs); i++) {
			if ((size_t)snprintf(out, out_size, "%s%s%s", exe, dirs[i], name) < out_size &&
			    access(out, R_OK) == 0)
				return 0;
		}
	}
	if ((size_t)snprintf(out, out_size, "%.*s/%s", (int)(inst_dir_end - KILN_RUNTIME_INSTALL),
			     KILN_RUNTIME_INSTALL, name) < out_size && access(out, R_OK) == 0)
		return 0;
	out[0] = '\0';
	return -ENOENT;
}

int cli_find_runtime(const char *name, const char *env_var, char *out, size_t out_size)
{
	const char *env = getenv(env_var), *inst_dir_end = strrchr(KILN_RUNTIME_INSTALL, '/');
	int ret = cli_find_runtime_quiet(name, env_var, out, out_size);

	if (ret == -EINVAL)
		cli_error("%s=%s: not a readable absolute path", env_var, env);
	else if (ret < 0)
		cli_error("%s not found next to the kiln binary nor in %.*s (set %s)%s", name,
			  (int)(inst_dir_end - KILN_RUNTIME_INSTALL), KILN_RUNTIME_INSTALL,
			  env_var, strcmp(name, "libkiln-musl.so") == 0 ? "; musl programs need "
			  "it (kiln built with -Dmusl=enabled, docs/runtime.md)" : "");
	return ret < 0 ? -ENOENT : 0;
}

static int set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *val;
	int ret;

	if (!old || !old[0])
		return setenv("LD_PRELOAD", lib, 1) ? -errno : 0;
	if (asprintf(&val, "%s:%s", lib, old) < 0)
		return -ENOMEM;
	ret = setenv("LD_PRELOAD", val, 1) ? -errno : 0;
	free(val);
	return ret;
}

/* Resolve PROGRAM like execvp does; out receives the path or is left empty. */
void cli_run_which(const char *prog, char *out, size_t out_size)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	out[0] = '\0';
	if (strchr(prog, '/')) {
		snprintf(out, out_size, "%s", prog);
		return;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if ((size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog) < sizeof(buf) &&
		    access(buf, X_OK) == 0) {
			snprintf(out, out_size, "%s", buf);
			return;
		}
		path += n;
		if (*path == ':')
			path++;
	}
}

/* Which path serves the program at path (*kind: EV_ELF_STATIC is supervised,
 * as LD_PRELOAD cannot put libkiln into it; EV_ELF_MUSL gets libkiln-musl.so;
 * *links_kiln: a kiln-cc build, which brings its runtime), or -1 once the user
 * is told why none can (cli_program_kind). A file it cannot open is left to
 * exec to report. */
int cli_run_check_program(const char *path, int *kind, bool *links_kiln)
{
	struct ev_elf_info info;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	*kind = EV_ELF_NONE;
	*links_kiln = false;
	if (fd < 0)
		return 0;
	ret = cli_program_kind("run", path, fd, &info);
	close(fd);
	if (ret == 0) {
		*kind = info.kind;
		*links_kiln = info.links_kiln;
	}
	return ret;
}

void cli_static_say(const char *prog, enum cli_static_path path, const char *why)
{
	static const char *const how[] = {
		[CLI_STATIC_RUN_LOADER] = "in-process under the static loader (kiln-sload; "
					  "file calls trap by seccomp)",
		[CLI_STATIC_RUN_SUPERVISED] = "supervised (seccomp), every file call traps",
		[CLI_STATIC_RUN_NATIVE] = "natively (no volume and no --cas: nothing to shield)",
	};

	fprintf(stderr, "kiln: %s is statically linked: running it %s%s%s\n", prog, how[path],
		why && why[0] ? "; not under the static loader: " : "", why ? why : "");
	fflush(stderr);
}

/* Say on stderr how much the run is worth: development mode (no attestation)
 * or the INSECURE simulation backend; nothing for a real attestation. */
void cli_say_mode(const struct rt_config *cfg)
{
	if (cfg->dev)
		fprintf(stderr, "kiln: development mode: no attestation\n");
	else if (strcmp(cfg->tee, "sim") == 0)
		fprintf(stderr, "kiln: WARNING: INSECURE simulation backend: no confidentiality, "
			"for development only\n");
	fflush(stderr);
}

int cli_run_exec(struct rt_config *cfg, const char *lib, const char *sload, const char *prog,
		 char **args)
{
	char fdstr[32];
	char *text = NULL;
	size_t text_size = 0;
	int pipefd[2] = { -1, -1 };

	if (rt_config_serialize(cfg, &text, &text_size)) {
		cli_error("out of memory");
		goto out;
	}
	if (text_size > 60000) {
		cli_error("run: configuration too large");
		goto out;
	}
	if (pipe2(pipefd, 0) || fcntl(pipefd[1], F_SETFD, FD_CLOEXEC)) {
		cli_error("run: pipe: %s", strerror(errno));
		goto out;
	}
	/* Fits in the pipe buffer: the runtime reads it before main. */
	if (kiln_write_all(pipefd[1], text, text_size)) {
		cli_error("run: cannot pass the configuration: %s", strerror(errno));
		goto out;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	snprintf(fdstr, sizeof(fdstr), "%d", pipefd[0]);
	/* A kiln-cc build loads its own runtime; a second copy must not come. */
	if ((lib && set_preload(lib)) || setenv(RT_ENV_CONFIG_FD, fdstr, 1)) {
		cli_error("run: cannot set the environment");
		goto out;
	}
	cli_say_mode(cfg);
	kiln_free_secret(text, text_size);
	text = NULL;
	rt_config_wipe(cfg);
	if (sload) {
		cli_static_say(prog, CLI_STATIC_RUN_LOADER, NULL);
		execv(sload, args);
		cli_error("cannot execute %s: %s", sload, strerror(errno));
		goto out;
	}
	execvp(args[0], args);
	cli_error("cannot execute %s: %s", args[0], strerror(errno));
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (text)
		kiln_free_secret(text, text_size);
	return CLI_EXIT_FAIL;
}

int cli_run_dynamic(struct rt_config *cfg, int kind, bool links_kiln, char **args)
{
	char lib[PATH_MAX];

	if (!links_kiln &&
	    cli_find_runtime(cli_runtime_name(kind), kind == EV_ELF_MUSL ? RT_ENV_LIB_MUSL :
			     RT_ENV_LIB, lib, sizeof(lib)))
		return CLI_EXIT_FAIL;
	return cli_run_exec(cfg, links_kiln ? NULL : lib, NULL, NULL, args);
}
