/* kiln runtime: the system-call handlers, one file per family (Gramine's
 * libos/src/sys/ model): open.c, stat.c, namespace.c (names: rename, unlink,
 * mkdir...), attr.c (mode, owner, times, xattrs), dir.c (listings, working
 * directory), fd.c (close, dup, fcntl, fsync, the runtime's own fds), signal.c,
 * process.c, exec.c; resolve.c turns the program's (dirfd, path) into a
 * struct rt_target. The table in ../syscalls.def names the handler of every
 * x86-64 system call; dispatch.c calls it.
 *
 * A handler decodes the call's arguments, resolves its paths, issues the call
 * unchanged when nothing protected is involved, and otherwise asks the file
 * shield (../shield/shield.h), deciding the errno the program sees. Handlers
 * of SHIELD calls run inside rt__shield_call (the shield's locks held). */
#ifndef KILN_RUNTIME_SYS_H
#define KILN_RUNTIME_SYS_H

#include "runtime/internal.h"
#include "runtime/shield/shield.h"

/* Every handler named in the table. */
#define RT_SYSCALL(nr, name, action, handler, fds, d0, p0, d1, p1, sv, note) \
	long handler(long, const long[6]) RT_HIDDEN;
#include "runtime/syscalls.def"
#undef RT_SYSCALL

/* ---- resolve.c --------------------------------------------------------------- */
/* Resolve (dirfd, path) as the program means it. Returns true when it names
 * something in a volume (t->vfile tells about injected files, which lie
 * outside every volume). */
bool rt__resolve(long dirfd, const char *path, struct rt_target *t) RT_HIDDEN;
/* 0 when every ancestor of volume path t is a directory, else -ENOENT or
 * -ENOTDIR for the first one that is not. */
long rt__ancestors(struct rt_target *t) RT_HIDDEN;
/* An operation on volume path t answered -ENOENT: -ENOTDIR when the path
 * runs through something that is not a directory (pf knows only "missing"). */
long rt__enoent(struct rt_target *t) RT_HIDDEN;
/* A call that would change an injected file (nothing does): -EPERM and a line. */
long rt__vfile_refuse(long nr, const struct rt_target *t) RT_HIDDEN;
/* A call whose paths name nothing protected may still reach a volume through
 * a symlink outside it. Before the kernel creates a name: when its directory
 * is the store directory of a volume mounted there, rewrite the argument (in
 * paths, the call's copies) to the volume path. After the kernel answered
 * ENOENT/ENOTDIR: follow each path as the kernel does; one that enters a
 * volume is rewritten. True when an argument now names a volume path. */
bool rt__reroute_create(long nr, const struct rt_syscall *s, long a[6],
			char paths[2][RT_PATH_SIZE]) RT_HIDDEN;
bool rt__reroute_missing(long nr, const struct rt_syscall *s, long a[6],
			 char paths[2][RT_PATH_SIZE]) RT_HIDDEN;
/* How many times one call may leave a volume through a symlink and go on
 * from the host path (open, stat, the others): then ELOOP. */
#define RT_ESCAPES_MAX 8
/* A call on a volume path answered -EXDEV: each path argument whose walk
 * leaves its volume through a symlink is rewritten to the host path the walk
 * reaches (which may be in a volume again). True when one was; never for
 * rename and link (their EXDEV: two file systems). */
bool rt__reroute_escape(long nr, const struct rt_syscall *s, long a[6],
			char paths[2][RT_PATH_SIZE]) RT_HIDDEN;
/* Whether the call touches a protected path or fd. */
bool rt__touches(long nr, const struct rt_syscall *s, const long a[6]) RT_HIDDEN;
/* Name of the first protected path/fd the call touches (for refusal lines). */
void rt__describe(long nr, const struct rt_syscall *s, const long a[6], char *out,
		  size_t out_size) RT_HIDDEN;

/* ---- stat.c ------------------------------------------------------------------ */
/* if_exists when (dirfd, path) names something in a volume, else its error
 * (-ENOENT outside every volume). flags: AT_SYMLINK_NOFOLLOW (a symlink in
 * the last component is what is named). */
long rt__exists(long dirfd, const char *path, int flags, long if_exists) RT_HIDDEN;

/* ---- dir.c: the virtual working directory -------------------------------- */
/* Enter the working directory inherited across exec (g_rt.cfg.cwd). */
int rt__vcwd_init(struct kiln_err *err) RT_HIDDEN;

#endif
