/* kiln run: start a program under the kiln runtime (libkiln.so).
 *
 *   kiln run [--cas URL (--cas-ca FILE | --cas-fingerprint HEX) --session S
 *             --service N --tee sim|host|tdx|snp|auto]
 *            [--volume [MOUNT=]DIR:KEYFILE | --volume DIR=KEYFILE]...
 *            [--freshness every-fsync|on-close|on-exit] [--sud on|off|auto]
 *            [--console-listen unix:PATH|tcp:HOST:PORT] -- PROGRAM [ARGS...]
 *
 * The launcher execs PROGRAM in place (same pid) with LD_PRELOAD=libkiln.so and
 * hands the runtime its configuration, volume keys included, through an
 * inherited pipe named by KILN_CONFIG_FD: keys never appear on a command line,
 * in an environment or on disk. A statically linked PROGRAM runs under the
 * static loader (kiln-sload with libkiln.so preloaded) or, where the loader
 * cannot run it or with --static=supervise, as a child supervised by this
 * process (src/runtime/supervise.h): run_static.c chooses and says which.
 * With --console-listen the program runs as a child too, its stdio on pipes to
 * this process, which relays its console records (console_relay.h). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cas_verify.h"
#include "cli/cli.h"
#include "cli/console_relay.h"
#include "cli/run_launch.h"
#include "cli/run_static.h"
#include "common/common.h"
#include "evidence/evidence.h"
#include "runtime/runtime.h"
#include "runtime/supervise.h"
#include "runtime/attest_proto.h"

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: kiln run [OPTIONS] -- PROGRAM [ARGS...]\n\n"
		"Run an unmodified program under the kiln runtime (libkiln.so).\n\n"
		"Attestation (before main, the runtime attests to the CAS and receives the\n"
		"program's arguments, environment, files and volumes from the policy):\n"
		"  --cas URL                   https://HOST:PORT of kiln-cas [KILN_CAS]\n"
		"  --cas-ca FILE               CA certificate to pin [KILN_CAS_CA]\n"
		"  --cas-fingerprint HEX       or its SHA-256 fingerprint [KILN_CAS_FINGERPRINT]\n"
		"  --session NAME              policy (session) name\n"
		"  --service NAME              service of the policy\n"
		"  --tee sim|host|tdx|snp|auto evidence backend (default host); tdx/snp: this\n"
		"                              confidential VM, through configfs-tsm\n"
		"                              [$KILN_TSM_PATH]; auto: whichever is there\n"
		"  --las-socket PATH           kiln-las socket for --tee host\n"
		"                              (default $KILN_LAS_SOCKET or /run/kiln/las.sock)\n"
		"  --host-env NAME             send the launcher's $NAME for {{host.NAME}}\n"
		"                              (repeatable; nothing else is sent)\n"
		"  --volume-dir NAME=DIR       keep policy volume NAME's ciphertext in DIR\n"
		"                              (default: at its mount path)\n"
		"  --cas-key sha256:HEX        require this TLS key of the CAS (set from\n"
		"                              KILN_CAS_EXPECT's check, which runs first\n"
		"                              when it is set: docs/cas.md \"Attested CAS\")\n\n"
		"Options:\n"
		"  --volume MOUNT=DIR:KEYFILE  show the protected volume DIR (made by\n"
		"                              'kiln fs init') as plaintext at MOUNT\n"
		"  --volume DIR=KEYFILE        show the volume DIR as plaintext at DIR itself\n"
		"  --freshness MODE            when file changes are committed to the volume:\n"
		"                              every-fsync (default), on-close, on-exit\n"
		"  --sud on|off|auto           Syscall User Dispatch for calls that bypass\n"
		"                              libc (auto: on when a volume is mounted)\n"
		"  --console-listen ADDR       (with --cas, a service with a protected\n"
		"                              console) keep the program's stdio here and\n"
		"                              pass its console records to one 'kiln console\n"
		"                              attach --connect ADDR' at a time; ADDR is\n"
		"                              unix:PATH (made 0600) or tcp:HOST:PORT;\n"
		"                              while none is attached the last 256 KiB of\n"
		"                              output are kept\n"
		"  --static auto|loader|supervise  how a statically linked PROGRAM runs:\n"
		"                              loader maps it into kiln-sload's process,\n"
		"                              with libkiln, which attests for it with\n"
		"                              --cas; supervise under this process\n"
		"                              (seccomp); auto (default) the loader, or\n"
		"                              supervised where the loader cannot run it\n"
		"                              (said on stderr, with the reason)\n"
		"  -h, --help                  this text\n\n"
		"Without --cas the program runs in development mode (no attestation).\n"
		"With --cas the variables of the dynamic loader, libc and OpenSSL (LD_*,\n"
		"GCONV_PATH, GLIBC_TUNABLES, MALLOC_*, OPENSSL_CONF, ...) are not passed on.\n"
		"A statically linked PROGRAM cannot load libkiln: the static loader maps it\n"
		"into a process that runs libkiln (kiln-sload); supervised, this process\n"
		"traps its file calls (seccomp user notification) and with --cas measures\n"
		"the file, attests and runs that very file. Supervised without a volume or\n"
		"--cas it runs natively (nothing to shield). kiln run says which path.\n"
		"A PROGRAM linked against musl (program interpreter ld-musl-x86_64.so.1, as\n"
		"Alpine's) gets libkiln-musl.so, the same runtime built for musl; a PROGRAM\n"
		"built with kiln-cc brings its own runtime (linked in): nothing is preloaded.\n"
		"libkiln.so is taken from $%s, libkiln-musl.so from $%s, else next to\n"
		"the kiln binary.\n",
		RT_ENV_LIB, RT_ENV_LIB_MUSL);
}

static bool cas_key_valid(const char *k)
{
	return !strncmp(k, "sha256:", 7) && strlen(k) == 71 &&
	       strspn(k + 7, "0123456789abcdef") == 64;
}

/* KILN_CAS_EXPECT: check the CAS's attestation here, before the program starts,
 * and pin libkiln's connections (and a supervisor's) to the attested TLS key:
 * cfg->cas_key set from key. Unset: nothing. -1 after printing why. */
static int pin_attested_cas(struct rt_config *cfg, char key[72])
{
	struct cc_client client = {
		.url = cfg->cas,
		.ca_file = cfg->cas_ca[0] ? cfg->cas_ca : NULL,
		.fingerprint = cfg->cas_fingerprint[0] ? cfg->cas_fingerprint : NULL,
	};

	key[0] = '\0';
	if (cli_cas_expect_env(&client, "run", key) < 0)
		return -1;
	if (key[0])
		snprintf(cfg->cas_key, sizeof(cfg->cas_key), "%s", key);
	return 0;
}

/* Attested mode: the launcher's variables of the dynamic loader, libc and
 * OpenSSL (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH, GCONV_PATH, OPENSSL_CONF, ...,
 * rt_env_is_loader) could put code into the program before it is measured, or
 * after (an OpenSSL module); they are dropped, and said so once. The program's
 * main() gets the policy's environment anyway. A statically linked program is
 * run by this process, whose own loader saw them: kiln re-executes itself
 * without them first, so the supervisor that receives the program's secrets
 * maps only kiln's own libraries (kiln-las checks that). The process is made
 * non-dumpable now: it will hold the attestation answer. */
static int drop_loader_env(char **argv, bool is_static)
{
	char dropped[400];
	int n;

	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	n = rt_env_drop_loader(dropped, sizeof(dropped));
	if (n <= 0)
		return 0;
	fprintf(stderr, "kiln: attested run: not passing %s from the environment (they could "
		"load code that is not measured; the program gets the policy's environment)\n",
		dropped);
	fflush(stderr);
	if (!is_static)
		return 0;
	/* argv is main's argv + 1 ("run" first): the whole command line is one
	 * element before it (getopt with "+" permuted nothing). */
	execv("/proc/self/exe", argv - 1);
	cli_error("run: cannot re-execute kiln without those variables: %s", strerror(errno));
	return -errno;
}

/* --las-socket, --host-env, --volume-dir (docs/attestation.md): names and
 * paths only, never a value from the environment. */
static bool attest_option(struct rt_config *cfg, int opt, const char *val)
{
	char cwd[PATH_MAX];

	if (opt == OPT_HOST_ENV) {
		if (!val[0] || strlen(val) >= sizeof(cfg->host_env[0]) || strpbrk(val, "= \n")) {
			cli_error("--host-env '%s': expected an environment variable name", val);
			return false;
		}
		if (rt_env_is_loader(val, strlen(val))) {
			cli_error("--host-env %s: a variable of the dynamic loader, libc or OpenSSL "
				  "is not passed to an attested program (docs/runtime.md)", val);
			return false;
		}
		if (cfg->n_host_env >= RT_MAX_HOST_ENV) {
			cli_error("--host-env: at most %d", RT_MAX_HOST_ENV);
			return false;
		}
		strcpy(cfg->host_env[cfg->n_host_env++], val);
		return true;
	}
	if (!getcwd(cwd, sizeof(cwd))) {
		cli_error("run: cannot get the working directory: %s", strerror(errno));
		return false;
	}
	if (opt == OPT_LAS_SOCKET) {
		if (!val[0] || strchr(val, '\n') ||
		    rt_path_normalize(cwd, val, cfg->las_socket, sizeof(cfg->las_socket)) ||
		    strchr(cfg->las_socket, ' ')) {
			cli_error("--las-socket '%s': path not supported (absolute, at most %zu "
				  "bytes, no spaces)", val, sizeof(cfg->las_socket) - 1);
			return false;
		}
		return true;
	}
	{
		const char *eq = strchr(val, '=');
		size_t nl = eq ? (size_t)(eq - val) : 0;

		if (!eq || nl == 0 || nl >= sizeof(cfg->volume_dirs[0].name) || !eq[1] ||
		    memchr(val, ' ', nl) || strchr(val, '\n')) {
			cli_error("--volume-dir '%s': expected NAME=DIR", val);
			return false;
		}
		if (cfg->n_volume_dirs >= RT_MAX_VOLUMES) {
			cli_error("--volume-dir: at most %d", RT_MAX_VOLUMES);
			return false;
		}
		if (rt_path_normalize(cwd, eq + 1, cfg->volume_dirs[cfg->n_volume_dirs].dir,
				      sizeof(cfg->volume_dirs[0].dir))) {
			cli_error("--volume-dir '%s': path too long", val);
			return false;
		}
		memcpy(cfg->volume_dirs[cfg->n_volume_dirs].name, val, nl);
		cfg->volume_dirs[cfg->n_volume_dirs].name[nl] = '\0';
		cfg->n_volume_dirs++;
		return true;
	}
}

/* Attested mode: what the programs an attested program executes need, since
 * they get nothing of the launcher's environment (docs/runtime.md): this kiln
 * binary (the supervisor of a static one) and the kiln-las socket named by
 * $KILN_LAS_SOCKET. */
static bool attest_paths(struct rt_config *cfg)
{
	const char *las = getenv("KILN_LAS_SOCKET");
	char cwd[PATH_MAX], self[PATH_MAX];

	/* Unknown (a path the word-based configuration cannot carry): static
	 * programs executed by the attested one are then refused, with a line. */
	if (realpath("/proc/self/exe", self) && strlen(self) < sizeof(cfg->kiln) &&
	    !strpbrk(self, " \n"))
		strcpy(cfg->kiln, self);
	if (!cfg->las_socket[0] && las && las[0] &&
	    (!getcwd(cwd, sizeof(cwd)) ||
	     rt_path_normalize(cwd, las, cfg->las_socket, sizeof(cfg->las_socket)) ||
	     strchr(cfg->las_socket, ' ') || strchr(cfg->las_socket, '\n'))) {
		cli_error("KILN_LAS_SOCKET=%s: path not supported (absolute, at most %zu bytes, "
			  "no spaces)", las, sizeof(cfg->las_socket) - 1);
		return false;
	}
	return true;
}

/* Copy a value into a fixed config field; false (with a message) when it does
 * not fit or holds a space (the config format is word based). */
static bool set_word(char *dst, size_t size, const char *opt, const char *val)
{
	if (!val[0] || strlen(val) >= size || strchr(val, ' ') || strchr(val, '\n')) {
		cli_error("%s '%s': empty, too long or contains spaces", opt, val);
		return false;
	}
	memcpy(dst, val, strlen(val) + 1);
	return true;
}

/* --console-listen: listen, then fork. 0 in the child, whose stdin, stdout and
 * stderr are now pipes to this process; 1 here once the relay is over
 * (*status: the program's), -1 after telling the user. */
static int console_fork(const struct cli_con_addr *a, int *status)
{
	int lfd, dirfd, in[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t pid;

	*status = CLI_EXIT_FAIL;
	lfd = cli_con_listen("--console-listen", a, &dirfd);
	if (lfd < 0)
		return -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || (pid = fork()) < 0) {
		cli_error("run: --console-listen: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* stdout and stderr share one pipe: records of at most PIPE_BUF
		 * bytes go in whole, so the relay can cut them apart. */
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
			_exit(CLI_EXIT_FAIL);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(lfd);
		if (dirfd >= 0)
			close(dirfd);
		return 0;
	}
	close(in[0]);
	close(out[1]);
	*status = cli_con_relay(lfd, dirfd, a, in[1], out[0], pid);
	return 1;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	close(lfd);
	if (dirfd >= 0) {
		const char *slash = strrchr(a->path, '/');

		unlinkat(dirfd, slash ? slash + 1 : a->path, 0);
		close(dirfd);
	}
	return -1;
}

int run_main(int argc, char **argv)
{
	struct rt_config *cfg = cli_run_config_new();
	char lib[PATH_MAX];
	const char *sud = "auto";
	const char *cas = getenv("KILN_CAS"), *cas_ca = getenv("KILN_CAS_CA");
	const char *cas_fp = getenv("KILN_CAS_FINGERPRINT"), *cas_key = NULL;
	char expect_key[72];
	const char *session = NULL, *service = NULL, *tee = "host";
	char tee_auto[8];
	bool is_static = false, links_kiln = false;
	enum cli_static_mode static_mode = CLI_STATIC_AUTO;
	int static_path = -1;
	char prog[PATH_MAX], sload[PATH_MAX], why[512];
	int kind = EV_ELF_NONE;
	int status = CLI_EXIT_USAGE, c;
	struct cli_con_addr con_addr;
	bool con_listen = false;

	if (!cfg) {
		cli_error("out of memory");
		return CLI_EXIT_FAIL;
	}
	while ((c = cli_run_getopt(argc, argv, cfg, &sud)) != -1) {
		switch (c) {
		case CLI_RUN_OPT_BAD:
			goto out;
		case 'h':
			run_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		case OPT_STATIC:
			if (cli_static_mode_parse(optarg, &static_mode)) {
				cli_error("--static '%s': expected auto, loader or supervise", optarg);
				goto out;
			}
			break;
		case OPT_CAS:
			cas = optarg;
			break;
		case OPT_CAS_CA:
			cas_ca = optarg;
			break;
		case OPT_CAS_FP:
			cas_fp = optarg;
			break;
		case OPT_CAS_KEY:
			cas_key = optarg;
			break;
		case OPT_CONSOLE_LISTEN:
			if (cli_con_addr_parse("--console-listen", optarg, &con_addr) < 0)
				goto out;
			con_listen = true;
			break;
		case OPT_SESSION:
			session = optarg;
			break;
		case OPT_SERVICE:
			service = optarg;
			break;
		case OPT_TEE:
			if (strcmp(optarg, "sim") && strcmp(optarg, "host") &&
			    strcmp(optarg, "tdx") && strcmp(optarg, "snp") && strcmp(optarg, "auto")) {
				cli_error("--tee '%s': expected sim, host, tdx, snp or auto", optarg);
				goto out;
			}
			tee = optarg;
			break;
		case OPT_LAS_SOCKET:
		case OPT_HOST_ENV:
		case OPT_VOLUME_DIR:
			if (!attest_option(cfg, c, optarg))
				goto out;
			break;
		default:
			cli_error("run: unknown or incomplete option '%s' (see 'kiln run --help')",
				  argv[optind - 1]);
			goto out;
		}
	}
	if (optind >= argc) {
		cli_error("run: missing PROGRAM (usage: kiln run [OPTIONS] -- PROGRAM [ARGS...])");
		goto out;
	}
	if (cas && cas[0]) {
		char cwd[PATH_MAX];

		if (!session || !service) {
			cli_error("run: --cas needs --session and --service");
			goto out;
		}
		if ((!cas_ca || !cas_ca[0]) && (!cas_fp || !cas_fp[0])) {
			cli_error("run: --cas needs --cas-ca FILE or --cas-fingerprint HEX "
				  "(KILN_CAS_CA, KILN_CAS_FINGERPRINT) to pin the CAS");
			goto out;
		}
		if (strncmp(cas, "https://", 8) != 0) {
			cli_error("--cas '%s': expected https://HOST:PORT", cas);
			goto out;
		}
		cfg->dev = false;
		if (strcmp(tee, "auto") == 0) {
			struct kiln_err err = { 0 };
			int r = ev_tee_detect(tee_auto, &err);

			if (r < 0) {
				cli_error("--tee auto: no TEE found: use --tee host or sim (%s)",
					  kiln_err_msg(&err, r));
				status = CLI_EXIT_FAIL;
				goto out;
			}
			tee = tee_auto;
		}
		if (!set_word(cfg->cas, sizeof(cfg->cas), "--cas", cas) ||
		    !set_word(cfg->session, sizeof(cfg->session), "--session", session) ||
		    !set_word(cfg->service, sizeof(cfg->service), "--service", service) ||
		    !set_word(cfg->tee, sizeof(cfg->tee), "--tee", tee))
			goto out;
		if (cas_fp && cas_fp[0] &&
		    !set_word(cfg->cas_fingerprint, sizeof(cfg->cas_fingerprint),
			      "--cas-fingerprint", cas_fp))
			goto out;
		if (cas_ca && cas_ca[0]) {
			if (!getcwd(cwd, sizeof(cwd)) ||
			    rt_path_normalize(cwd, cas_ca, cfg->cas_ca, sizeof(cfg->cas_ca)) ||
			    strchr(cfg->cas_ca, ' ')) {
				cli_error("--cas-ca '%s': path not supported", cas_ca);
				goto out;
			}
			if (access(cfg->cas_ca, R_OK) != 0) {
				cli_error("--cas-ca %s: %s", cfg->cas_ca, strerror(errno));
				goto out;
			}
		}
		if (!cas_key && pin_attested_cas(cfg, expect_key) < 0) {
			status = CLI_EXIT_FAIL;
			goto out;
		}
		if (cas_key && !cas_key_valid(cas_key)) {
			cli_error("--cas-key '%.80s': expected sha256:<64 hex digits>", cas_key);
			goto out;
		}
		if (cas_key)
			snprintf(cfg->cas_key, sizeof(cfg->cas_key), "%s", cas_key);
	} else if (session || service || cfg->las_socket[0] || cfg->n_host_env ||
		   cfg->n_volume_dirs || con_listen) {
		cli_error("run: --session/--service/--las-socket/--host-env/--volume-dir/"
			  "--console-listen need --cas (or KILN_CAS)");
		goto out;
	}
	if (cfg->cas[0] && strcmp(sud, "off") == 0) {
		cli_error("run: --sud off with --cas: an attested program needs Syscall User "
			  "Dispatch to see every exec (a program it executes must never inherit "
			  "its secrets)");
		goto out;
	}
	if (cfg->cas[0] && !attest_paths(cfg))
		goto out;
	cfg->sud = cli_run_sud_on(sud, cfg);
	status = CLI_EXIT_FAIL;
	cli_run_which(argv[optind], lib, sizeof(lib));
	if (lib[0] && cli_run_check_program(lib, &kind, &links_kiln) < 0)
		goto out;
	is_static = kind == EV_ELF_STATIC;
	if (cfg->cas[0] && drop_loader_env(argv, is_static) < 0)
		goto out;
	/* The relay stays here; the program goes on in the child. */
	if (con_listen && console_fork(&con_addr, &status) != 0)
		goto out;
	/* Which path runs a static program, decided before it runs. */
	if (is_static) {
		snprintf(prog, sizeof(prog), "%s", lib);
		static_path = cli_static_path(cfg, static_mode, prog, lib, sizeof(lib), sload,
					      sizeof(sload), why, sizeof(why));
		if (static_path < 0)
			goto out;
	}
	if (static_path == CLI_STATIC_RUN_SUPERVISED) {
		status = cfg->cas[0] ? cli_run_supervised_attested(cfg, prog, why) :
			 cli_run_supervised(cfg, prog, argv + optind, why);
		goto out;
	}
	if (static_path == CLI_STATIC_RUN_NATIVE) {
		/* No volume, no --cas: no runtime either (it could do nothing
		 * for the program); the program as execvp runs it. */
		cli_say_mode(cfg);
		cli_static_say(prog, CLI_STATIC_RUN_NATIVE, why);
		execv(prog, argv + optind);
		cli_error("cannot execute %s: %s", prog, strerror(errno));
		status = CLI_EXIT_FAIL;
		goto out;
	}
	/* The loader: the command line becomes kiln-sload PROGRAM ARGV0 ARGS in
	 * place, in argv[optind - 2] and argv[optind - 1] (getopt's options and
	 * "--" were there, and "run" and argv[0] of kiln before them: at least
	 * two slots); libkiln (in lib) attests in kiln-sload (sload_attest.c). */
	if (static_path == CLI_STATIC_RUN_LOADER) {
		argv[optind - 2] = sload;
		argv[optind - 1] = prog;
		status = cli_run_exec(cfg, lib, sload, prog, argv + optind - 2);
	} else {
		status = cli_run_dynamic(cfg, kind, links_kiln, argv + optind);
	}
out:
	rt_config_wipe(cfg);
	free(cfg);
	return status;
}
