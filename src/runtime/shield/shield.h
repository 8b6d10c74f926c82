/* kiln runtime: the file shield's entry points for the system-call handlers
 * (src/runtime/sys/). The handlers decode arguments (copying the program's
 * memory in and out with the fault-safe routines of uaccess.c), resolve paths
 * (a struct rt_target names a path in a volume or an injected file), decide
 * what passes to the kernel and which errno the program sees; the shield keeps
 * the state behind protected paths and fds (volumes, open files, the cache of
 * closed files) and runs pf.
 *
 * Every operation below takes the locks it needs itself (in a guard while it
 * holds them: no handler of the program runs) and only ever sees runtime memory: no pointer of the program
 * reaches it. Results are 0 / a value, or -errno; integrity failures are
 * logged once here and reported as -EIO. */
#ifndef KILN_RUNTIME_SHIELD_H
#define KILN_RUNTIME_SHIELD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "runtime/internal.h"

#define RT_PATH_SIZE 4096

struct rt_vol;
struct rt_node;

/* /proc/self/fd (also /proc/<own pid>/fd, /proc/thread-self/fd, task
 * directories, /dev/fd) and the entries in it: the runtime hides its own fds
 * there. */
enum rt_proc { RT_PROC_NONE, RT_PROC_DIR, RT_PROC_ENTRY };

/* A path the program named, resolved (sys/resolve.c). */
struct rt_target {
	struct rt_node *vfile; /* an injected file at exactly this path, or NULL */
	struct rt_vol *vol;    /* the volume the path lies in, or NULL */
	const char *rel;       /* path inside vol (points into abs) */
	int err;               /* what the call must answer: -ENAMETOOLONG, -ENOTDIR... */
	uint8_t proc;          /* enum rt_proc: a /proc/<self>/fd path */
	int procfd;            /* RT_PROC_ENTRY: the fd number it names */
	bool slash;            /* written with a trailing '/': must be a directory */
	uint8_t last;          /* enum rt_path_last of the path as written */
	char abs[RT_PATH_SIZE]; /* normalized absolute path the app used */
};

/* ---- lookups for path resolution ------------------------------------------ */
/* The volume whose mount point is the longest prefix of abs (rel: the rest). */
struct rt_vol *rt__shield_find_vol(const char *abs, const char **rel) RT_HIDDEN;
/* When (dev, ino) is the directory of a volume mounted at its own store
 * directory, its mount path: a name created there by the kernel would be
 * plaintext beside .kiln. */
bool rt__shield_store_mount(dev_t dev, ino_t ino, char *out, size_t out_size) RT_HIDDEN;
/* The injected file at abs, or NULL. */
struct rt_node *rt__shield_vfile_find(const char *abs) RT_HIDDEN;
/* The absolute path the program sees for a protected fd (file or directory);
 * false when fd is not one (or the path does not fit). */
bool rt__shield_fd_path(int fd, char *out, size_t out_size) RT_HIDDEN;
/* The target a protected directory fd names; false when fd is not one (or
 * its path does not fit). */
bool rt__shield_dir_target(int fd, struct rt_target *t) RT_HIDDEN;
/* "fd N (path)" for refusal lines. */
void rt__shield_fd_describe(int fd, char *out, size_t out_size) RT_HIDDEN;

/* ---- operations ------------------------------------------------------------ */
/* Open t (a volume path or an injected file) for the program: a new fd. */
long rt__shield_open(struct rt_target *t, int flags, mode_t mode) RT_HIDDEN;
/* open(O_PATH|O_NOFOLLOW) of a symlink in a volume: an fd that stands for
 * the link itself (fstat: S_IFLNK; glibc's fchmodat(AT_SYMLINK_NOFOLLOW)
 * then answers EOPNOTSUPP, as on Linux). */
long rt__shield_open_link(struct rt_target *t, int flags) RT_HIDDEN;
/* stat of t (a volume path or an injected file) / of a protected fd. */
long rt__shield_stat(struct rt_target *t, struct stat *out) RT_HIDDEN;
/* flags: AT_SYMLINK_NOFOLLOW (lstat: a symlink's own attributes). */
long rt__shield_stat_flags(struct rt_target *t, int flags, struct stat *out) RT_HIDDEN;
long rt__shield_fstat(long fd, struct stat *out) RT_HIDDEN;
/* statfs of a volume path / of a protected fd (1: not the volume's, an
 * injected file: the caller asks the kernel). */
struct statfs;
long rt__shield_statfs(struct rt_target *t, struct statfs *out) RT_HIDDEN;
long rt__shield_fstatfs(long fd, struct statfs *out) RT_HIDDEN;
/* access(2) of t: with the real ids, or the effective ones with AT_EACCESS
 * in flags. */
long rt__shield_access(struct rt_target *t, int mode, int flags) RT_HIDDEN;
long rt__shield_unlink(struct rt_target *t, int flags) RT_HIDDEN;
/* Both ends in one volume (the handler checks). */
long rt__shield_rename(struct rt_target *a, struct rt_target *b, unsigned flags) RT_HIDDEN;
long rt__shield_mkdir(struct rt_target *t, mode_t mode) RT_HIDDEN;
/* linkat: b names the file a names (flags: AT_SYMLINK_FOLLOW), or with a
 * NULL, the file behind protected fd (AT_EMPTY_PATH, /proc/self/fd/N: an
 * O_TMPFILE file gets its name). a and b in one volume (the handler checks). */
long rt__shield_link(struct rt_target *a, long fd, struct rt_target *b, int flags) RT_HIDDEN;
/* After a call on t failed with EXDEV: when its walk leaves the volume
 * through a symlink (absolute target, or ".." above the root), 1 with out =
 * the host path to continue with (not protected there); 0 when it does not
 * (the EXDEV stands); -errno. flags: AT_SYMLINK_NOFOLLOW. */
long rt__shield_escape(struct rt_target *t, int flags, char *out, size_t size) RT_HIDDEN;
/* symlink: t becomes a symlink holding target (runtime memory). */
long rt__shield_symlink(const char *target, struct rt_target *t) RT_HIDDEN;
/* readlink of t into buf (runtime memory, not NUL-terminated): the length,
 * -EINVAL when t is not a symlink. */
long rt__shield_readlink(struct rt_target *t, char *buf, size_t size) RT_HIDDEN;
long rt__shield_truncate(struct rt_target *t, uint64_t size) RT_HIDDEN;
long rt__shield_chmod(struct rt_target *t, mode_t mode) RT_HIDDEN;
long rt__shield_fchmod(long fd, mode_t mode) RT_HIDDEN;
/* chown of t, or of the file behind fd when t is NULL ((uid_t)-1 and
 * (gid_t)-1: unchanged). An fd that is not a volume file: the kernel's.
 * flags: AT_SYMLINK_NOFOLLOW (lchown: a symlink t is changed itself). */
long rt__shield_chown(struct rt_target *t, long fd, uid_t uid, gid_t gid, int flags) RT_HIDDEN;
/* utimensat of t, or of the file or directory behind fd when t is NULL: ts
 * in runtime memory as utimensat takes it (UTIME_NOW, UTIME_OMIT; NULL: both
 * now), already checked. flags: AT_SYMLINK_NOFOLLOW (a symlink t itself). */
long rt__shield_set_times(struct rt_target *t, long fd, const struct timespec *ts,
			  int flags) RT_HIDDEN;
/* lseek SEEK_DATA / SEEK_HOLE on a protected fd (answered from the volume's
 * holes); other fds pass to the kernel. */
long rt__shield_seek(long fd, int whence, int64_t off) RT_HIDDEN;
/* lseek on a protected directory fd (SEEK_SET, SEEK_CUR): the listing's
 * position; 0 rereads the directory. */
long rt__shield_seekdir(long fd, int64_t off, int whence) RT_HIDDEN;
/* getdents64 on a protected directory fd, into buf (runtime memory). */
long rt__shield_getdents(long fd, void *buf, size_t size) RT_HIDDEN;
/* Make t the kernel's working directory as far as it can be: 1 when the
 * kernel's cwd now is t itself (a volume mounted at its own directory), 0
 * when the caller must keep t as the virtual working directory. */
long rt__shield_chdir(struct rt_target *t) RT_HIDDEN;
/* fd bookkeeping for close, close_range, dup*, F_DUPFD* (a: the call's
 * arguments, no pointers), fsync. */
long rt__shield_close(long fd) RT_HIDDEN;
/* fast.c: a call on fds that may leave a trace on a lent spare description;
 * moved by a fork or exec, after which no spare made before is lent again. */
void rt__spare_use(long nr, const struct rt_syscall *s, const long a[6]) RT_HIDDEN;
extern atomic_uint g_spare_epoch RT_HIDDEN;
long rt__shield_close_range(unsigned first, unsigned last, unsigned flags) RT_HIDDEN;
long rt__shield_dup(long nr, const long a[6]) RT_HIDDEN;
long rt__shield_fsync(long fd) RT_HIDDEN;
/* fcntl(F_SETFL) succeeded on fd: the shield keeps O_APPEND. */
void rt__shield_setfl(long fd, long flags) RT_HIDDEN;

/* ---- FIFOs and AF_UNIX sockets in volumes (special.c) ---------------------
 * The node is in the volume; its kernel object in the volume server's
 * private directory, at real (RT_NODE_PATH_MAX bytes: "<dir>/<inode>"). */
#define RT_SPECIAL_PATH_MAX 64
/* mkfifo / mknod(S_IFIFO, S_IFSOCK) of t (mode: type | bits, umask applied
 * here). Devices: -EPERM. */
long rt__shield_mknod(struct rt_target *t, mode_t mode) RT_HIDDEN;
/* The kernel object of the node t names (symlinks followed), when it is of
 * that type (S_IFIFO, S_IFSOCK): 0 with real set; the node's S_IFMT type when
 * it is another; -errno (-ENOENT). */
long rt__shield_special(struct rt_target *t, mode_t type, char real[static RT_SPECIAL_PATH_MAX])
	RT_HIDDEN;
/* bind(2) of an AF_UNIX socket at t (given: the path as the program wrote it):
 * a socket node is made (-EADDRINUSE when the name exists) and real is where
 * to bind; given is remembered for getsockname. */
long rt__shield_bind_node(struct rt_target *t, const char *given, mode_t mode,
			  char real[static RT_SPECIAL_PATH_MAX]) RT_HIDDEN;
/* getsockname/getpeername: the program's path of a socket this process bound
 * at real; false when it is not one. */
bool rt__shield_socket_name(const char *real, char *out, size_t size) RT_HIDDEN;

/* ---- the data path (no lock: see shield/data.c) ------------------------------
 * read, write, pread64, pwrite64, readv, writev, preadv(2), pwritev(2) on a
 * protected fd; sendfile, splice, copy_file_range with a protected end. */
long rt__shield_data(long nr, const long a[6]) RT_HIDDEN;
long rt__shield_transfer(long nr, const long a[6]) RT_HIDDEN;
long rt__shield_ftruncate(long fd, uint64_t size) RT_HIDDEN;
long rt__shield_fallocate(long fd, int mode, uint64_t off, uint64_t len) RT_HIDDEN;
/* mmap of a protected fd (under the lock); munmap, mremap, msync of any
 * range (they take the lock when this process has protected mappings). */
long rt__shield_mmap(const long a[6]) RT_HIDDEN;
long rt__shield_maps(long nr, const long a[6]) RT_HIDDEN;
/* syncfs on a protected fd: commit the volume. */
long rt__shield_syncfs(long fd) RT_HIDDEN;

/* ---- exec ------------------------------------------------------------------- */
/* Config lines ("fd N VOLUME ID") naming the protected fds the new program
 * inherits (not close-on-exec): written into buf, their length. */
size_t rt__shield_exec_lines(char *buf, size_t size) RT_HIDDEN;

#endif
