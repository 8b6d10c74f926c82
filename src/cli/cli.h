/* kiln CLI: one `<cmd>_main(argc, argv)` per subcommand file (WireGuard tools style).
 * argv[0] is the subcommand name. Exit codes: 0 ok, 1 failure, 2 usage error. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

struct cli_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

/* Subcommands (one file each). */
int las_main(int argc, char **argv);
int measure_main(int argc, char **argv);
int cas_main(int argc, char **argv);
/* kiln cas collateral SUB (cas_collateral.c): argv[0] is SUB; cmd names it in errors. */
int cas_collateral_main(int argc, char **argv, const char *cmd);
/* kiln cas collateral fetch (cas_fetch.c): argv[0] is "fetch". */
int cas_collateral_fetch_main(int argc, char **argv);
/* argv[*i] is --store or --master-key-file with its value next: take it (the
 * store's place for every kiln cas command; cas_store_use) and return 1; 0
 * when it is another argument, -1 (told) when the value is bad. */
int cas_store_arg(int argc, char **argv, int *i);
int policy_main(int argc, char **argv);
int identity_main(int argc, char **argv);
int audit_main(int argc, char **argv);

/* Find a kiln shared library by file name next to the kiln binary, in its build
 * subdirectory (build_subdir, e.g. "src/evidence") or in ../lib/kiln; out gets
 * the real path. -ENOENT when absent. (cli/measure.c) */
int cli_find_lib(const char *name, const char *build_subdir, char *out, size_t size);
/* The runtime library `kiln run` preloads (name: libkiln.so or
 * libkiln-musl.so, cli_runtime_name): from $env_var, else next to the kiln
 * binary (build tree), else the installed one. 0, or -ENOENT after telling the
 * user. (cli/run.c) */
int cli_find_runtime(const char *name, const char *env_var, char *out, size_t out_size);
/* The same without a word: 0, -EINVAL when $env_var names no readable
 * absolute path, -ENOENT when none is found (out is then ""). */
int cli_find_runtime_quiet(const char *name, const char *env_var, char *out, size_t out_size);
/* What `kiln measure [--manifest] -- PROG ARGS` prints (argv: PROG ARGS), into
 * *text (malloc'd, the caller's; the last line is the hex measurement):
 * CLI_EXIT_OK, or CLI_EXIT_FAIL after telling the user why. It starts the
 * program, which is stopped before its main(). (cli/measure.c) */
int cli_measure_program(char **argv, bool manifest, char **text, size_t *text_len);
/* program.c: classify the program at path (open as fd) for command cmd
 * ("run", "measure"): 0 with info filled when kiln can serve it (glibc, musl,
 * static, or not ELF: a script), -1 after telling the user why not (a corrupt
 * or foreign ELF file, an unknown loader). */
struct ev_elf_info;
int cli_program_kind(const char *cmd, const char *path, int fd, struct ev_elf_info *info);
/* The runtime library a program of that kind (enum ev_elf_kind) preloads:
 * "libkiln-musl.so" for musl's loader, else "libkiln.so". */
const char *cli_runtime_name(int kind);
/* SHA-256 digests of the kiln runtime libraries found by cli_find_lib plus the
 * files in extra; *out is malloc'd (caller frees), *n_out entries. */
int cli_runtime_digests(unsigned char (**out)[32], size_t *n_out, const char *const *extra,
			size_t n_extra);
int evidence_main(int argc, char **argv);
int fs_main(int argc, char **argv);
/* The trusted version store of a volume whose key is key_file, as `kiln fs`
 * and `kiln run --volume` use it: "KEY.version", or "KEY.tag" when only that
 * exists (its name before the rename). -ENAMETOOLONG. (cli/fs.c) */
int cli_version_file(const char *key_file, char *out, size_t size);
/* A volume key file: 32 raw bytes, or 64 hex digits with any whitespace.
 * 0, or a negative code after printing an error naming the file. (cli/fs.c) */
int cli_volume_key_read(const char *path, uint8_t key[static 32]);
int run_main(int argc, char **argv);
/* kiln-cc, kiln cc: link a program against the runtime (cli/cc.c). */
int cc_main(int argc, char **argv);
int console_main(int argc, char **argv);

/* Configuration files of long-running commands (cli/conf.c): "KEY = VALUE"
 * lines whose keys are the command's long options (opts; those named in the
 * NULL-terminated repeatable may appear more than once). cli_conf_path finds
 * --config FILE in argv (NULL: none); cli_conf_load parses FILE into
 * "--key=value" arguments (-1 after telling the user FILE:LINE and what is
 * wrong); cli_conf_argv makes argv with them before the command line's
 * (*out_argv malloc'd, its strings owned by c and argv). */
struct option;
struct cli_conf {
	char **args;
	size_t n_args;
};
const char *cli_conf_path(int argc, char **argv);
int cli_conf_load(const char *path, const struct option *opts, const char *const *repeatable,
		  struct cli_conf *c);
void cli_conf_free(struct cli_conf *c);
int cli_conf_argv(const struct cli_conf *c, int argc, char **argv, int *out_argc,
		  char ***out_argv);

/* Print "kiln: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when argv[i] is -h or --help anywhere in argv. */
bool cli_wants_help(int argc, char **argv);

/* Evidence option helpers shared by `kiln evidence verify` and `kiln policy check`
 * (cli/evidence.c). RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)) to Unix
 * seconds: 0 or -EINVAL. A certificate/CRL file, PEM or concatenated DER, as one
 * malloc'd PEM string the caller frees; err names the file. */
#include <time.h>
struct kiln_err;
int cli_parse_rfc3339(const char *s, time_t *out);
/* t as "YYYY-MM-DDTHH:MM:SSZ" (UTC), or its number when it has no such form. */
void cli_fmt_rfc3339(time_t t, char out[32]);
int cli_load_certs(const char *path, char **pem, struct kiln_err *err);

#endif
