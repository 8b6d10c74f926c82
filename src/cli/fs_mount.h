/* kiln fs mount: what fs_mount.c (the FUSE operations on a volume) and
 * fs_mount_loop.c (the session loop) share. */
#ifndef KILN_CLI_FS_MOUNT_H
#define KILN_CLI_FS_MOUNT_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdbool.h>

/* A FUSE_TMPFILE request (open(O_TMPFILE) in directory parent), which libfuse
 * 3.14 does not know: the handler answers it exactly once, with
 * fm_reply_tmpfile (the new node's entry and the open file, as for create) or
 * fm_reply_tmpfile_err (a positive errno). Both return 0 or -errno (-ENOENT:
 * the caller was interrupted and no release will come for the file). */
struct fm_tmpfile_req;
typedef void (*fm_tmpfile_fn)(struct fm_tmpfile_req *r, fuse_ino_t parent, mode_t mode,
			      int flags);
int fm_reply_tmpfile(struct fm_tmpfile_req *r, const struct fuse_entry_param *e,
		     const struct fuse_file_info *fi);
int fm_reply_tmpfile_err(struct fm_tmpfile_req *r, int error);
/* The caller's uid and gid. */
uid_t fm_tmpfile_uid(const struct fm_tmpfile_req *r);
gid_t fm_tmpfile_gid(const struct fm_tmpfile_req *r);

/* Serve se on nthreads threads until it is unmounted or a signal caught by
 * fuse_set_signal_handlers ends it; FUSE_TMPFILE goes to tmpfile, every other
 * request to libfuse. Returns 0 or -errno (the first receive error). */
int fm_session_loop(struct fuse_session *se, unsigned nthreads, fm_tmpfile_fn tmpfile);

#endif
