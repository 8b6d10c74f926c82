/* kiln measure: print the workload measurement a policy pins (docs/measurement.md). */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "evidence/evidence.h"
#include "runtime/runtime.h"

#define MEASURE_TIMEOUT_MS 30000
#define MEASURE_OUTPUT_MAX (1u << 20)

static void measure_usage(FILE *f)
{
	fprintf(f,
		"Usage: kiln measure [--manifest] -- PROG [ARGS...]\n"
		"       kiln measure [--manifest] --pid PID\n\n"
		"Print the kiln workload measurement (SHA-384 of the kiln-manifest-v1 of the\n"
		"executable and its mapped libraries) that policies list under\n"
		"services[].measurement.\n\n"
		"  -- PROG ARGS  start PROG with the measurement library preloaded; it is\n"
		"                measured before main() runs and never runs main(); a\n"
		"                statically linked PROG is measured from its file (never run);\n"
		"                a musl-linked PROG with libkiln-musl.so preloaded; a file\n"
		"                that is no x86-64 program, or has a loader kiln has no\n"
		"                runtime for, is refused with the reason (stderr names the\n"
		"                kind of PROG)\n"
		"  --pid PID     measure a running process (root, or the same user)\n"
		"  --manifest    print the manifest before the measurement\n"
		"  -h, --help    this help\n\n"
		"PROG runs with the kiln runtime libkiln.so (libkiln-musl.so for musl)\n"
		"preloaded and KILN_MEASURE_ONLY=1 (libkiln-measure.so when libkiln.so is\n"
		"not installed; a glibc PROG only).\n"
		"Environment: KILN_MEASURE_LIB overrides the preloaded library.\n");
}

int cli_find_lib(const char *name, const char *build_subdir, char *out, size_t size)
{
	char self[PATH_MAX], cand[PATH_MAX + 64], *slash;
	const char *dirs[5];
	size_t n_dirs = 0;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -errno;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	/* Build tree first (build/kiln, build/src/<mod>/), then an installed tree
	 * (PREFIX/bin/kiln, PREFIX/lib*\/kiln/). */
	dirs[n_dirs++] = "";
	dirs[n_dirs++] = build_subdir;
	dirs[n_dirs++] = "../lib/kiln";
	dirs[n_dirs++] = "../lib/x86_64-linux-gnu/kiln";
	dirs[n_dirs++] = "../lib64/kiln";
	for (size_t i = 0; i < n_dirs; i++) {
		if (!dirs[i])
			continue;
		snprintf(cand, sizeof(cand), "%s/%s%s%s", self, dirs[i], dirs[i][0] ? "/" : "",
			 name);
		if (access(cand, R_OK) == 0 && realpath(cand, out) && strlen(out) < size)
			return 0;
	}
	return -ENOENT;
}

/* Resolve prog like execvp does (first executable match in PATH). */
static int resolve_prog(const char *prog, char *out, size_t size)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(prog, '/')) {
		if (strlen(prog) >= size)
			return -ENAMETOOLONG;
		strcpy(out, prog);
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	if (!path || !path[0])
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		size_t n;

		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if (snprintf(out, size, "%.*s%s%s", (int)n, p, n ? "/" : "", prog) >= (int)size)
			continue;
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* LD_PRELOAD cannot reach setuid/setgid programs (the loader ignores it):
 * refuse them before running them for real; nor programs of a loader kiln
 * has no runtime for or no valid x86-64 program at all (cli_program_kind says
 * why). *kind: musl programs preload libkiln-musl.so.
 * Statically linked programs have no loader either: they are measured from
 * the file (*is_static), which is what a process of that file maps (kiln run
 * supervises them). Scripts are allowed (their interpreter is measured,
 * documented). < 0: refused, and said so. */
static int check_preloadable(const char *prog, int *kind, bool *links_kiln)
{
	struct ev_elf_info info;
	struct stat st;
	int fd, ret;

	*kind = EV_ELF_NONE;
	*links_kiln = false;
	fd = open(prog, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		cli_error("cannot read %s: %s", prog, strerror(errno));
		ret = -1;
		goto out;
	}
	if (st.st_mode & (S_ISUID | S_ISGID)) {
		cli_error("%s is setuid/setgid: the loader ignores LD_PRELOAD for it; measure "
			  "a running instance with 'kiln measure --pid'", prog);
		ret = -1;
		goto out;
	}
	if ((ret = cli_program_kind("measure", prog, fd, &info)) < 0)
		goto out;
	*kind = info.kind;
	*links_kiln = info.links_kiln;
	fprintf(stderr, "kiln: measure: %s: %s\n", prog,
		info.kind == EV_ELF_STATIC ? "statically linked, measured from its file" :
		info.kind == EV_ELF_NONE ? "not ELF (a script: its interpreter is measured)" :
		info.links_kiln && info.kind == EV_ELF_MUSL ? "musl dynamic with the kiln "
		"runtime linked in (kiln-cc), measured before main() with nothing preloaded" :
		info.links_kiln ? "glibc dynamic with the kiln runtime linked in (kiln-cc), "
		"measured before main() with nothing preloaded" :
		info.kind == EV_ELF_MUSL ? "musl dynamic, measured before main() with "
		"libkiln-musl.so preloaded" :
		"glibc dynamic, measured before main() with the runtime preloaded");
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* The output of kiln measure: the manifest (when asked) and the measurement
 * line, into *out (malloc'd, the caller's); frees text. */
static int measurement_text(const uint8_t wm[EV_WM_SIZE], char *text, bool manifest,
			    char **out, size_t *len)
{
	char hex[2 * EV_WM_SIZE + 1];
	int n;

	kiln_hex_encode(wm, EV_WM_SIZE, hex);
	n = asprintf(out, "%s%s\n", manifest && text ? text : "", hex);
	free(text);
	if (n < 0) {
		*out = NULL;
		cli_error("out of memory");
		return CLI_EXIT_FAIL;
	}
	*len = (size_t)n;
	return CLI_EXIT_OK;
}

/* Write what measurement_text made to stdout; frees it. */
static int emit(char *text, size_t len)
{
	size_t w = fwrite(text, 1, len, stdout);

	free(text);
	return w == len && fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* A statically linked program, measured from its file: the value
 * ev_workload_measure_pid gives for a process of it, and what the supervisor
 * of `kiln run --cas` attests. */
static int measure_static(const char *path, bool manifest, char **out, size_t *len)
{
	uint8_t wm[EV_WM_SIZE], exe[32];
	char *text = NULL;
	struct kiln_err err = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0) {
		cli_error("cannot open %s: %s", path, strerror(errno));
		return CLI_EXIT_FAIL;
	}
	r = ev_workload_measure_static_fd(fd, NULL, wm, &text, exe, &err);
	close(fd);
	if (r < 0) {
		cli_error("measuring %s: %s", path, kiln_err_msg(&err, r));
		return CLI_EXIT_FAIL;
	}
	return measurement_text(wm, text, manifest, out, len);
}

/* Read the child's stdout until EOF or the deadline. */
static int read_output(int fd, char *buf, size_t cap, size_t *len, int timeout_ms)
{
	uint64_t deadline = kiln_now_ns() + (uint64_t)timeout_ms * 1000000;

	*len = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = kiln_now_ns();
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)((deadline - now) / 1000000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (*len + 1 >= cap)
			return -EMSGSIZE;
		n = read(fd, buf + *len, cap - *len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	buf[*len] = '\0';
	return 0;
}

static bool is_measurement_line(const char *s, size_t n)
{
	if (n != 2 * EV_WM_SIZE + 1 || s[n - 1] != '\n')
		return false;
	for (size_t i = 0; i + 1 < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int cli_measure_program(char **argv, bool manifest, char **text, size_t *text_len)
{
	char lib[PATH_MAX], *preload = NULL, *out = NULL, *last;
	bool links_kiln = false;
	const char *env_lib = getenv("KILN_MEASURE_LIB");
	size_t len = 0;
	int pipefd[2] = { -1, -1 }, status = 0, ret = CLI_EXIT_FAIL, r, kind;
	pid_t pid = -1;

	{
		char resolved[PATH_MAX];

		r = resolve_prog(argv[0], resolved, sizeof(resolved));
		if (r < 0) {
			cli_error("cannot run %s: %s", argv[0], kiln_strerror(r));
			return CLI_EXIT_FAIL;
		}
		if (check_preloadable(resolved, &kind, &links_kiln) < 0)
			return CLI_EXIT_FAIL;
		/* No library needed: the file is what its process maps. */
		if (kind == EV_ELF_STATIC)
			return measure_static(resolved, manifest, text, text_len);
	}
	if (links_kiln) {
		/* It measures itself with the runtime it links, as under kiln run. */
		lib[0] = '\0';
	} else if (env_lib && env_lib[0]) {
		if (!realpath(env_lib, lib)) {
			cli_error("KILN_MEASURE_LIB=%s: %s", env_lib, strerror(errno));
			return CLI_EXIT_FAIL;
		}
	} else if (kind == EV_ELF_MUSL) {
		/* The one runtime a musl program can load (libkiln-measure.so is
		 * built for glibc). */
		if (cli_find_lib("libkiln-musl.so", "src/runtime", lib, sizeof(lib)) < 0) {
			cli_error("cannot find libkiln-musl.so next to the kiln binary or in "
				  "../lib/kiln (set KILN_MEASURE_LIB): musl programs are measured "
				  "with it");
			return CLI_EXIT_FAIL;
		}
	} else if (cli_find_lib("libkiln.so", "src/runtime", lib, sizeof(lib)) == 0) {
		/* The runtime itself: the value is by construction what it measures
		 * before main() under `kiln run` (its own dependencies included). */
	} else if (cli_find_lib("libkiln-measure.so", "src/evidence", lib, sizeof(lib)) == 0) {
		fprintf(stderr, "kiln: measure: libkiln.so not found, measuring with %s: the "
			"value equals the runtime's only if libkiln.so maps no other shared "
			"object\n", lib);
	} else {
		cli_error("cannot find libkiln.so or libkiln-measure.so next to the kiln binary "
			  "or in ../lib/kiln (set KILN_MEASURE_LIB)");
		return CLI_EXIT_FAIL;
	}
	/* As `kiln run --cas` does: no loader variables from this environment, so
	 * the value is the one an attested run of PROG measures, and whatever
	 * they would load is not measured as if it belonged to PROG. */
	{
		char dropped[400];

		if (rt_env_drop_loader(dropped, sizeof(dropped)) > 0)
			fprintf(stderr, "kiln: measure: not passing %s to %s (an attested run does "
				"not either)\n", dropped, argv[0]);
	}
	preload = strdup(lib);
	out = malloc(MEASURE_OUTPUT_MAX);
	if (!preload || !out) {
		cli_error("out of memory");
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		cli_error("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		if (dup2(pipefd[1], STDOUT_FILENO) < 0)
			_exit(127);
		if (preload[0])
			setenv("LD_PRELOAD", preload, 1);
		setenv("KILN_MEASURE_ONLY", "1", 1);
		if (manifest)
			setenv("KILN_MEASURE_MANIFEST", "1", 1);
		else
			unsetenv("KILN_MEASURE_MANIFEST");
		execvp(argv[0], argv);
		fprintf(stderr, "kiln: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	r = read_output(pipefd[0], out, MEASURE_OUTPUT_MAX, &len, MEASURE_TIMEOUT_MS);
	if (r == -ETIMEDOUT || r == -EMSGSIZE) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		pid = -1;
		cli_error("%s did not load the measurement library (statically linked, setuid, "
			  "or it ignores LD_PRELOAD): it ran as a normal program", argv[0]);
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && len == 0)
		goto out; /* the child said why */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 111 && len == 0)
		goto out; /* the library said why */
	last = len > 0 ? out + len - 1 : out;
	while (last > out && last[-1] != '\n')
		last--;
	if (len == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFEXITED(status))
			cli_error("%s exited with status %d before it was measured",
				  argv[0], WEXITSTATUS(status));
		else
			cli_error("%s was killed by signal %d before it was measured", argv[0],
				  WTERMSIG(status));
		goto out;
	}
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    !is_measurement_line(last, (size_t)(out + len - last))) {
		cli_error("%s did not load the measurement library (statically linked, setuid, "
			  "or it ignores LD_PRELOAD): it ran as a normal program", argv[0]);
		goto out;
	}
	*text = out;
	*text_len = len;
	out = NULL;
	ret = CLI_EXIT_OK;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	free(preload);
	free(out);
	return ret;
}

static int measure_prog(char **argv, bool manifest)
{
	char *text = NULL;
	size_t len = 0;
	int r = cli_measure_program(argv, manifest, &text, &len);

	return r == CLI_EXIT_OK ? emit(text, len) : r;
}

int cli_runtime_digests(unsigned char (**out)[32], size_t *n_out, const char *const *extra,
			size_t n_extra)
{
	static const struct { const char *name, *subdir; } known[] = {
		{ "libkiln.so", "src/runtime" },
		{ "libkiln-musl.so", "src/runtime" },
		{ "libkiln-measure.so", "src/evidence" },
	};
	uint8_t (*d)[32] = calloc(n_extra + KILN_ARRAY_SIZE(known), 32);
	char path[PATH_MAX];
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n_extra + KILN_ARRAY_SIZE(known); i++) {
		uint8_t *data = NULL;
		size_t size = 0;
		int r;

		if (i < n_extra) {
			snprintf(path, sizeof(path), "%s", extra[i]);
		} else if (cli_find_lib(known[i - n_extra].name, known[i - n_extra].subdir, path,
					sizeof(path)) < 0) {
			continue;
		}
		r = kiln_read_file(path, 1u << 30, &data, &size);
		if (r < 0) {
			if (i < n_extra) {
				cli_error("runtime library %s: %s", path, kiln_strerror(r));
				free(d);
				return r;
			}
			continue;
		}
		r = kc_sha256(data, size, d[n]);
		free(data);
		if (r < 0) {
			free(d);
			return r;
		}
		n++;
	}
	*out = d;
	*n_out = n;
	return 0;
}

static int measure_pid(const char *arg, bool manifest)
{
	uint8_t wm[EV_WM_SIZE], (*digests)[32] = NULL;
	char *text = NULL;
	struct kiln_err err = { 0 };
	size_t n_digests = 0;
	uint64_t pid;
	int r;

	if (kiln_parse_u64(arg, &pid) < 0 || pid == 0 || pid > INT_MAX) {
		cli_error("--pid: '%s' is not a process id", arg);
		return CLI_EXIT_USAGE;
	}
	r = cli_runtime_digests(&digests, &n_digests, NULL, 0);
	if (r < 0)
		return CLI_EXIT_FAIL;
	r = ev_workload_measure_ex((pid_t)pid, (const uint8_t (*)[32])digests, n_digests, wm,
				   &text, &err);
	free(digests);
	if (r < 0) {
		cli_error("measuring pid %llu: %s", (unsigned long long)pid, kiln_err_msg(&err, r));
		return CLI_EXIT_FAIL;
	}
	{
		char *out = NULL;
		size_t len = 0;

		r = measurement_text(wm, text, manifest, &out, &len);
		return r == CLI_EXIT_OK ? emit(out, len) : r;
	}
}

int measure_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "manifest", no_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pid = NULL;
	bool manifest = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = optarg;
			break;
		case 'm':
			manifest = true;
			break;
		case 'h':
			measure_usage(stdout);
			return CLI_EXIT_OK;
		default:
			measure_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (pid && optind < argc) {
		cli_error("measure: give either --pid or -- PROG, not both");
		return CLI_EXIT_USAGE;
	}
	if (pid)
		return measure_pid(pid, manifest);
	if (optind >= argc) {
		cli_error("measure: missing -- PROG [ARGS...] or --pid PID");
		measure_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	return measure_prog(argv + optind, manifest);
}
