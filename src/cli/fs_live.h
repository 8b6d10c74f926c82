/* kiln fs on a volume in use by a running workload: ls and cat through its
 * volume server (fs_live.c). */
#ifndef KILN_CLI_FS_LIVE_H
#define KILN_CLI_FS_LIVE_H

#include <stdbool.h>
#include <stdint.h>

struct fs_live;

/* Connect to the volume server of dir (key proof): 0 and *out (owned by the
 * caller, fs_live_close), -ENOENT when no server runs (use the volume
 * directly), or another error (printed). */
int fs_live_connect(const char *dir, const uint8_t key[static 32], struct fs_live **out);
void fs_live_close(struct fs_live *l);
/* As `kiln fs ls` / `kiln fs cat` print them; errors are printed. */
int fs_live_ls(struct fs_live *l, const char *dir, bool recursive);
int fs_live_cat(struct fs_live *l, const char *path);

#endif
