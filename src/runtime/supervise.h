/* kiln run, supervised mode: statically linked programs (docs/runtime.md,
 * "Statically linked programs (supervised mode)").
 *
 * libkiln cannot be loaded into a static binary, so `kiln run` forks, the child
 * installs a seccomp filter that sends every path-taking file call (and fsync,
 * fdatasync, close, getdents64, exit_group, execve, and the write family with
 * sendfile, splice and copy_file_range: continued at once unless O_DSYNC /
 * O_SYNC / RWF_DSYNC asks for a durable write, supervise_sync.c) to a user-notification listener, and
 * execs the program. The parent is a client of each volume's server (the
 * one libkiln's processes use, started here when none runs) and answers the
 * notifications: calls outside the volume mounts continue in the kernel;
 * opens of protected files get a new description of the server's memfd
 * (filled whole and never evicted while the program holds it: its reads and
 * writes do not trap, but as said above); stat, access, unlink, rename, mkdir, rmdir, truncate
 * and fsync are the server's; a protected directory opens as a removed empty
 * one whose listing (getdents64) and fsync are the server's
 * (supervise_dirs.c); anything else on a protected path fails ENOTSUP. */
#ifndef KILN_RUNTIME_SUPERVISE_H
#define KILN_RUNTIME_SUPERVISE_H

#include "common/common.h"
#include "runtime/runtime.h"

/* Connect to cfg's volumes (development mode: local keys and tag files), run
 * argv (argv[0] looked up in PATH) supervised, and return when it has exited,
 * every file it held released and what it wrote committed. *exit_status: the
 * program's exit code, or 128 + signal. Returns 0, or a negative code with err
 * set when the program could not be started (nothing was run then). The
 * supervisor prints one line on stderr for each refused or failed call on a
 * protected path (it is the launcher's main loop, like a daemon). cfg is only
 * read (the caller wipes it). */
int rt_supervise(const struct rt_config *cfg, char *const argv[], int *exit_status,
		 struct kiln_err *err);

/* Files injected by the policy: the supervisor serves them from memfds at their
 * absolute paths (open, stat, access), never on disk. */
#define RT_SV_MAX_INJECTED 64
struct rt_sv_files {
	size_t n;
	struct {
		char path[4096];
		int memfd;  /* owned; holds the content, mode set with fchmod */
	} f[RT_SV_MAX_INJECTED];
};
/* Add one file (an rt_grant_file_fn: set is a struct rt_sv_files *). 0 or
 * -errno (-E2BIG: too many, -ENAMETOOLONG). */
int rt_sv_file_add(void *set, const char *path, const void *data, size_t size, mode_t mode);
/* Close every memfd of set (accepts NULL). */
void rt_sv_files_close(struct rt_sv_files *set);

struct rt_sv_opts {
	/* >= 0: run this opened program (execveat AT_EMPTY_PATH, the very file
	 * that was measured) with argv as given; -1: execvp(argv[0]). */
	int exe_fd;
	char *const *envp;               /* NULL: the launcher's environment */
	const char *pwd;                 /* working directory, NULL: unchanged */
	const struct rt_sv_files *files; /* injected files, may be NULL */
};

/* rt_supervise with options; volumes granted by the CAS (cas_id set) keep
 * their freshness tag in the CAS (rt_fresh_cas, attest_proto.h) and are
 * created at first use, as libkiln does. */
int rt_supervise_ex(const struct rt_config *cfg, const struct rt_sv_opts *opts,
		    char *const argv[], int *exit_status, struct kiln_err *err);

#endif
