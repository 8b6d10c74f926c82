/* kiln fs: what the subcommands in fs.c share with the FUSE view in fs_mount.c. */
#ifndef KILN_CLI_FS_H
#define KILN_CLI_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "pf/pf.h"

/* Parsed arguments of one `kiln fs` subcommand (strings point into argv). */
struct fs_args {
	const char *pos[3];
	int npos;
	const char *chunk_size;
	struct pf_region regions[PF_MAX_REGIONS];
	size_t nregions;
	const char *from;
	const char *new_key;
	bool recursive;
	bool foreground;
};

/* Parse argv (argv[0] = subcommand; allowed lists the subcommand's own options:
 * R region, C chunk-size, F from, N new-key-file, T expect-version, r, f) into *a.
 * Returns -1 to continue, else the exit code to return (usage printed or usage
 * error). */
int cli_fs_parse(int argc, char **argv, const char *allowed, int min_pos, int max_pos,
		 struct fs_args *a);
/* Open the volume in dir with the key and freshness options given on the command
 * line; *vol is the caller's (cli_fs_close_volume). On failure the error has been
 * printed, *vol is NULL and a negative code is returned. */
int cli_fs_open_volume(const char *dir, pf_volume_t **vol);
/* Close v (committing); returns status, or CLI_EXIT_FAIL when the close failed
 * (printed). */
int cli_fs_close_volume(pf_volume_t *v, int status);

/* kiln fs mount DIR MOUNTPOINT (fs_mount.c; a message when built without libfuse3). */
int cli_fs_mount(int argc, char **argv);

#endif
