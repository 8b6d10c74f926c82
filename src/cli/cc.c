/* kiln-cc (also `kiln cc`): a compiler driver that links a program against
 * the kiln runtime, so that `kiln run` has nothing to preload.
 *
 * The link gets the runtime (libkiln.so, the one `kiln run` would preload) as
 * the program's first DT_NEEDED, found through an absolute DT_RPATH: the
 * loader puts it ahead of libc in the lookup scope, exactly where LD_PRELOAD
 * puts it, and DT_RPATH (unlike DT_RUNPATH) is not overridden by
 * LD_LIBRARY_PATH. Nothing secret is embedded: the program gets its secrets
 * from the CAS at run time like any other. Compile-only invocations (-c, -S,
 * -E, ...) and shared libraries pass through unchanged. The runtime is the
 * one for the C library the compiler links (libkiln-musl.so for musl-gcc),
 * told by the dynamic linker the compiler's driver passes to the linker.
 * After a link the driver prints the program's workload measurement, the
 * value a policy pins (as `kiln measure` does: the program starts but never
 * reaches its main). */
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
		"Compile and link a program against the kiln runtime (libkiln.so, or\n"
		"libkiln-musl.so when the compiler links musl, as musl-gcc does). The\n"
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
		"  KILN_CC           the compiler (default: cc; musl-gcc for musl programs)\n"
		"  KILN_RUNTIME_LIB  the libkiln.so to link (default: the one 'kiln run'\n"
		"                    finds: next to kiln, then the installed one)\n"
		"  KILN_RUNTIME_MUSL_LIB  the same for libkiln-musl.so\n"
		"  KILN_CC_MEASURE   0: do not measure after linking (a program that cannot\n"
		"                    start on this machine); 'kiln measure -- PROG' later\n\n"
		"Example:\n"
		"  kiln-cc -O2 -o app app.c -lsqlite3\n"
		"  kiln run --volume data:vol.key -- ./app\n"
		"  KILN_CC=musl-gcc kiln-cc -O2 -o app-musl app.c\n");
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

/* Run argv (a compiler); its exit status, or -1 when it could not run (said
 * so). With err, the compiler's stderr is read into it (NUL-terminated,
 * cut at err_size) instead of reaching the user. */
static int cc_spawn(char **argv, char *err, size_t err_size)
{
	int pipefd[2] = { -1, -1 }, status;
	size_t len = 0;
	pid_t pid;

	if (err && pipe2(pipefd, O_CLOEXEC) < 0) {
		fprintf(stderr, "kiln-cc: pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "kiln-cc: fork: %s\n", strerror(errno));
		if (err) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		return -1;
	}
	if (pid == 0) {
		if (err && dup2(pipefd[1], STDERR_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(err ? pipefd[1] : STDERR_FILENO, "kiln-cc: cannot run %s: %s (set KILN_CC "
			"to the compiler)\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (err) {
		close(pipefd[1]);
		for (;;) {
			ssize_t n = read(pipefd[0], err + len, err_size - 1 - len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || (len += (size_t)n) + 1 == err_size)
				break;
		}
		err[len] = '\0';
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

/* The C library the compiler links programs against, from the dynamic linker
 * its driver hands the linker (`-###` prints the commands without running
 * them; gcc writes -dynamic-linker PATH, clang "-dynamic-linker" "PATH"):
 * EV_ELF_GLIBC or EV_ELF_MUSL, or -1 after saying why neither. */
static int cc_libc_kind(const char *compiler)
{
	char *argv[] = { (char *)compiler, "-###", "-x", "c", "/dev/null", "-o", "/dev/null",
			 NULL };
	char out[16384], interp[256];
	const char *p;
	size_t n;
	int kind, st = cc_spawn(argv, out, sizeof(out));

	if (st < 0)
		return -1;
	p = strstr(out, "-dynamic-linker");
	if (st != 0)
		fputs(out, stderr); /* the compiler's own reason */
	if (st != 0 || !p) {
		fprintf(stderr, "kiln-cc: %s -### named no dynamic linker%s: cannot tell which "
			"C library it links (set KILN_CC to gcc, clang or musl-gcc)\n", compiler,
			st ? " (it failed)" : "");
		return -1;
	}
	p += strlen("-dynamic-linker");
	p += strspn(p, "\" ");
	n = strcspn(p, "\" \n");
	if (n == 0 || n >= sizeof(interp))
		goto unknown;
	memcpy(interp, p, n);
	interp[n] = '\0';
	kind = ev_elf_loader_kind(interp);
	if (kind == EV_ELF_GLIBC || kind == EV_ELF_MUSL)
		return kind;
unknown:
	fprintf(stderr, "kiln-cc: %s links programs for the dynamic linker %.*s, for which "
		"kiln has no runtime (glibc's ld-linux-x86-64.so.2 and musl's "
		"ld-musl-x86_64.so.1 have one)\n", compiler, (int)(n < 200 ? n : 200), p);
	return -1;
}

/* Print the measurement of the program just linked, or say why there is none.
 * The build succeeded either way. */
static void cc_measure(const char *output)
{
	char prog[PATH_MAX], *argv[] = { prog, NULL }, *text = NULL;
	const char *m = getenv("KILN_CC_MEASURE");
	size_t len = 0;

	if (m && strcmp(m, "0") == 0)
		return;
	if ((size_t)snprintf(prog, sizeof(prog), "%s%s", strchr(output, '/') ? "" : "./",
			     output) >= sizeof(prog) ||
	    cli_measure_program(argv, false, &text, &len) != CLI_EXIT_OK)
		goto fail;
	if (len != 2 * EV_WM_SIZE + 1 || text[len - 1] != '\n')
		goto fail;
	fprintf(stderr, "kiln-cc: %s: measurement %.*s (pin it under services[].measurement)\n",
		output, 2 * EV_WM_SIZE, text);
	free(text);
	return;
fail:
	free(text);
	fprintf(stderr, "kiln-cc: %s: linked, but not measured (see above); measure it where it "
		"runs: kiln measure -- %s\n", output, output);
}

int cc_main(int argc, char **argv)
{
	const char *compiler = getenv("KILN_CC"), *output;
	char lib[PATH_MAX], rpath[PATH_MAX + 16], **args = NULL;
	int n = 0, status = CLI_EXIT_FAIL, kind;

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
	kind = cc_libc_kind(compiler);
	if (kind < 0 ||
	    cli_find_runtime(cli_runtime_name(kind), kind == EV_ELF_MUSL ? RT_ENV_LIB_MUSL :
			     RT_ENV_LIB, lib, sizeof(lib)) < 0)
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
