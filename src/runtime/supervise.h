/* kiln run, supervised mode: statically linked programs (docs/runtime.md,
 * "Statically linked programs (supervised mode)").
 *
 * libkiln cannot be loaded into a static binary, so `kiln run` forks, the child
 * installs a seccomp filter that sends every path-taking file call (and fsync,
 * fdatasync, close, exit_group) to a user-notification listener, and execs the
 * program. The parent opens the volumes with pf and answers the notifications:
 * calls outside the volume mounts continue in the kernel; opens of protected
 * files get a memfd holding the plaintext (written back through pf at fsync,
 * close and exit); stat, access, unlink, rename, mkdir, rmdir and truncate are
 * answered from the volume; anything else on a protected path fails ENOTSUP. */
#ifndef KILN_RUNTIME_SUPERVISE_H
#define KILN_RUNTIME_SUPERVISE_H

#include "common/common.h"
#include "runtime/runtime.h"

/* Open cfg's volumes (development mode: local keys and tag files), run argv
 * (argv[0] looked up in PATH) supervised, and return when it has exited, every
 * tracked file written back and every volume closed. *exit_status: the
 * program's exit code, or 128 + signal. Returns 0, or a negative code with err
 * set when the program could not be started (nothing was run then). The
 * supervisor prints one line on stderr for each refused or failed call on a
 * protected path (it is the launcher's main loop, like a daemon). cfg is only
 * read (the caller wipes it). */
int rt_supervise(const struct rt_config *cfg, char *const argv[], int *exit_status,
		 struct kiln_err *err);

#endif
