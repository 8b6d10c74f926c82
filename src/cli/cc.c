/* kiln-cc (also `kiln cc`): a compiler driver that links a program against
 * the kiln runtime, so that `kiln run` has nothing to preload.
 *
 * The link gets the runtime (libkiln.so, the one `kiln run` would preload) as
 * the program's first DT_NEEDED, found through an absolute DT_RPATH: the
 * loader puts it ahead of libc in the lookup scope, exactly where LD_PRELOAD
 * puts it, and DT_RPATH (unlike DT_RUNPATH) is not overridden by
 * LD_LIBRARY_PATH. Nothing secret is embedded: the program gets its secrets
 * from the CAS at run time like any other. Compile-only invocations (-c, -S,
 * -E, ...) and shared libraries pass through unchanged. After a link the
 * driver prints the program's workload measurement, the value a policy pins
 * (it runs `kiln measure`, which starts the program but never its main). */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evidence/evidence.h"
#include "runtime/runtime.h"

static void cc_usage(FILE *f)
{
	fprintf(f,
		"Usage: kiln-cc [COMPILER ARGUMENTS...]\n"
		"       kiln cc [COMPILER ARGUMENTS...]\n\n"
		"Compile and link a program against the kiln runtime (libkiln.so). The\n"
		"arguments go to the C compiler unchanged; a link also gets the runtime as\n"
		"the program's first needed library (with an absolute run path), so that\n"
		"'kiln run' and 'kiln measure' use it instead of preloading one. After a\n"
		"link kiln-cc prints, on stderr, the program's workload measurement: the\n"
		"value to list under services[].measurement in a policy.\n\n"
		"Passed through without the runtime: compile-only runs (-c, -S, -E, -M,\n"
		"-MM, -fsyntax-only, -r), -shared (a library gets the runtime from the\n"
		"program that loads it) and the compiler's queries (--version,\n"
		"-dumpversion, -dumpmachine, -print-...).\n"
		"Refused: -static and -static-pie (a static program cannot load\n"
		"libkiln.so; 'kiln run' runs static programs under its supervisor).\n\n"
		"Environment:\n"
		"  KILN_CC           the compiler (default: cc); a glibc compiler: the\n"
		"                    runtime is built for glibc\n"
		"  KILN_RUNTIME_LIB  the libkiln.so to link (default: the one 'kiln run'\n"
		"                    finds: next to kiln, then the installed one)\n"
		"  KILN_CC_MEASURE   0: do not measure after linking (a program that cannot\n"
		"                    start on this machine); 'kiln measure -- PROG' later\n\n"
		"Example:\n"
		"  kiln-cc -O2 -o app app.c -lsqlite3\n"
		"  kiln run --volume data:vol.key -- ./app\n");
}

enum cc_mode { CC_LINK, CC_PASS, CC_STATIC };

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* What the compiler is asked to do, and the output file of a link. */
static enum cc_mode cc_classify(int argc, char **argv, const char **output)
{
	static const char *const pass[] = { "-c", "-S", "-E", "-M", "-MM", "-fsyntax-only",
					    "-r", "-shared", "--version", "-dumpversion",
					    "-dumpfullversion", "-dumpmachine", "-dumpspecs" };
	enum cc_mode mode = CC_LINK;

	*output = "a.out";
	if (argc == 1 && strcmp(argv[0], "-v") == 0)
		return CC_PASS;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-o") == 0 && i + 1 < argc)
			*output = argv[++i];
		else if (has_prefix(a, "-o") && a[2])
			*output = a + 2;
		else if (strcmp(a, "-static") == 0 || strcmp(a, "-static-pie") == 0)
			return CC_STATIC;
		else if (has_prefix(a, "-print-") || has_prefix(a, "--print-"))
			mode = CC_PASS;
		for (size_t k = 0; k < KILN_ARRAY_SIZE(pass); k++)
			if (strcmp(a, pass[k]) == 0)
				mode = CC_PASS;
	}
	return mode;
}

/* Run argv (a compiler, or kiln measure with stdout into out); its exit
 * status, or -1 when it could not run (said so). */
static int cc_spawn(char **argv, char *out, size_t out_size)
{
	int pipefd[2] = { -1, -1 }, status;
	size_t len = 0;
	pid_t pid;

	if (out && pipe2(pipefd, O_CLOEXEC) < 0) {
		fprintf(stderr, "kiln-cc: pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "kiln-cc: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (out && dup2(pipefd[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "kiln-cc: cannot run %s: %s%s\n", argv[0], strerror(errno),
			out ? "" : " (set KILN_CC to the compiler)");
		_exit(127);
	}
	if (out) {
		close(pipefd[1]);
		for (;;) {
			ssize_t n = read(pipefd[0], out + len, out_size - 1 - len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			if (len + 1 == out_size)
				break;
		}
		out[len] = '\0';
		close(pipefd[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "kiln-cc: %s was killed by signal %d\n", argv[0], WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/* Print the measurement of the program just linked, or say why there is none.
 * The build succeeded either way. */
static void cc_measure(const char *output)
{
	char self[PATH_MAX], prog[PATH_MAX], out[4 * EV_WM_SIZE];
	char *argv[] = { self, "measure", "--", prog, NULL };
	const char *m = getenv("KILN_CC_MEASURE");
	ssize_t n;
	int st;

	if (m && strcmp(m, "0") == 0)
		return;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0 || (size_t)snprintf(prog, sizeof(prog), "%s%s", strchr(output, '/') ? "" : "./",
				      output) >= sizeof(prog))
		goto fail;
	self[n] = '\0';
	st = cc_spawn(argv, out, sizeof(out));
	if (st != 0 || strlen(out) != 2 * EV_WM_SIZE + 1 || out[2 * EV_WM_SIZE] != '\n')
		goto fail;
	out[2 * EV_WM_SIZE] = '\0';
	fprintf(stderr, "kiln-cc: %s: measurement %s (pin it under services[].measurement)\n",
		output, out);
	return;
fail:
	fprintf(stderr, "kiln-cc: %s: linked, but not measured (see above); measure it where it "
		"runs: kiln measure -- %s\n", output, output);
}

int cc_main(int argc, char **argv)
{
	const char *compiler = getenv("KILN_CC"), *output;
	char lib[PATH_MAX], rpath[PATH_MAX + 16], **args = NULL;
	int n = 0, status = CLI_EXIT_FAIL;

	if (!compiler || !compiler[0])
		compiler = "cc";
	if (argc < 2) {
		cc_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		cc_usage(stdout);
		return CLI_EXIT_OK;
	}
	switch (cc_classify(argc - 1, argv + 1, &output)) {
	case CC_STATIC:
		fprintf(stderr, "kiln-cc: -static: a statically linked program cannot load the "
			"kiln runtime (libkiln.so); link it dynamically, or build it static without "
			"kiln-cc and run it with 'kiln run' (supervised)\n");
		return CLI_EXIT_USAGE;
	case CC_PASS:
		argv[0] = (char *)compiler;
		execvp(compiler, argv);
		fprintf(stderr, "kiln-cc: cannot run %s: %s (set KILN_CC to the compiler)\n",
			compiler, strerror(errno));
		return CLI_EXIT_FAIL;
	case CC_LINK:
		break;
	}
	if (cli_find_runtime("libkiln.so", RT_ENV_LIB, lib, sizeof(lib)) < 0)
		return CLI_EXIT_FAIL;
	if (strpbrk(lib, ",:")) {
		fprintf(stderr, "kiln-cc: %s: a runtime path with ',' or ':' cannot be passed to "
			"the linker\n", lib);
		return CLI_EXIT_FAIL;
	}
	args = calloc((size_t)argc + 8, sizeof(*args));
	if (!args) {
		cli_error("out of memory");
		return CLI_EXIT_FAIL;
	}
	snprintf(rpath, sizeof(rpath), "-Wl,-rpath,%.*s", (int)(strrchr(lib, '/') - lib), lib);
	args[n++] = (char *)compiler;
	/* First on the line: the first DT_NEEDED, whatever the program links. */
	args[n++] = "-Wl,--push-state,--no-as-needed";
	args[n++] = lib;
	args[n++] = "-Wl,--pop-state";
	args[n++] = rpath;
	args[n++] = "-Wl,--disable-new-dtags";
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	status = cc_spawn(args, NULL, 0);
	if (status < 0) {
		status = CLI_EXIT_FAIL;
		goto out;
	}
	if (status != 0)
		goto out;
	fprintf(stderr, "kiln-cc: %s: linked with the kiln runtime %s\n", output, lib);
	cc_measure(output);
out:
	free(args);
	return status;
}
