/* kiln run, supervised mode: what the supervisor's files share
 * (supervise.c: the program, its seccomp filter and the notification loop;
 * supervise_vols.c: the volumes' servers; supervise_files.c: protected
 * files through them; supervise_dirs.c: protected directories;
 * supervise_procs.c: which program processes still hold a file). */
#ifndef KILN_RUNTIME_SUPERVISE_INT_H
#define KILN_RUNTIME_SUPERVISE_INT_H

#include <linux/seccomp.h>
#include <sys/stat.h>

#include "runtime/runtime.h"
#include "runtime/shield/proto.h"
#include "runtime/supervise.h"

#define SV_PATH 4096

/* A stat answer kept while the namespace generation is gen (supervise_files.c). */
#define SV_LOOKUPS 64
struct sv_lookup {
	uint64_t gen;              /* the generation + 1; 0: empty */
	uint64_t who;              /* the credentials it was asked with (sv_cred_key) */
	unsigned flags;            /* RT_STAT_NOFOLLOW */
	int ret;
	struct rt_stat_reply r;
	char rel[192];
};

/* A volume: the supervisor is one more client of its volume server (the same
 * server as libkiln's processes on that volume), started here when none runs. */
struct sv_vol {
	struct rt_volume_cfg cfg;  /* a copy (the server's open reads it; key wiped at the end) */
	struct rt_auth_keys keys;  /* secret */
	char sock_name[RT_SOCK_NAME_MAX];
	int sock;                  /* the authenticated connection, -1 */
	struct rt_vseg *vseg;      /* its server's volume segment (read-only), or NULL */
	uint64_t gen;              /* bumped per server (files of an old one are gone) */
	dev_t dev;                 /* st_dev of its files */
	bool wrote;                /* a program wrote to it (commit at the end) */
	bool said_gone;
	struct sv_lookup lookups[SV_LOOKUPS];
	uint8_t reply[RT_MSG_MAX];
};

/* A server file the program holds: the supervisor holds it once for all the
 * program's fds (holds: one per open), mapped whole (never evicted) so that
 * the program's untrapped reads and writes of the memfd are the file. */
struct sv_file {
	struct sv_file *next;
	struct sv_vol *vol;
	uint64_t gen;              /* vol->gen it belongs to */
	uint64_t id;               /* the server's file id */
	int memfd;                 /* owned: the server's plaintext memfd */
	dev_t mdev;                /* its identity (what the program's fstat sees) */
	ino_t mino;
	uint32_t holds;            /* OPENs not yet released */
	uint32_t rmaps, wmaps;     /* MAPs: read-only, writable whole */
	uint32_t nfds;             /* program fds tracked on it */
	uint64_t closed_ns;        /* when nfds went to 0 (kept for the next open), or 0 */
	uint64_t kept_bytes;       /* its size then */
	/* What the last OPEN by path answered, for the next open of the same
	 * path while the namespace has not moved (no round trip): */
	char *rel;                 /* malloc'd */
	uint64_t ns_gen;           /* sv_ns_gen before that OPEN */
	uint64_t who;              /* the credentials it was asked with (sv_cred_key) */
	uint32_t mode, uid, gid;   /* the file's permission bits and owner */
	char path[SV_PATH];        /* the path of its first open, for messages */
};

/* A protected directory the program opened (supervise_dirs.c): the program's
 * fds are descriptions of an empty, removed directory, fd the same one. */
struct sv_dir {
	struct sv_dir *next;
	struct sv_vol *vol;
	int fd;                    /* owned: the program's description (its offset:
				    * the listing's position) */
	uint32_t nfds;             /* program fds tracked on it */
	uint64_t ino;              /* pf's inode number (".") */
	uint8_t *list;             /* the listing: (ino u64, type u8, name NUL)... */
	size_t list_size, count;
	size_t *offs;              /* where entry i starts in list */
	char rel[SV_PATH];
	char path[SV_PATH];        /* absolute: the base of *at calls on it */
};

/* A program fd on a protected directory. */
struct sv_dfd {
	pid_t tgid;
	int fd;
	struct sv_dir *d;
};

/* A program fd on a held file. */
struct sv_fd {
	pid_t tgid;
	int fd;
	bool writable;
	struct sv_file *f;
};

/* A process of the program that opened files for writing: the volumes
 * (bit per index) its exit commits. */
#define SV_WRITERS 64
struct sv_writer {
	pid_t tgid;                /* 0: free */
	uint32_t vols;
};

struct sv {
	pid_t pid;
	int listener;
	int devnull;                   /* owned: what a closed fd is replaced with */
	bool attested;                 /* the program holds a grant (kiln run --cas) */
	bool started;                  /* the program itself was executed (first exec) */
	uint64_t sweep_at;             /* kiln_now_ns() of the next sv_sweep (0: none due) */
	const struct rt_sv_files *inj; /* injected files, may be NULL */
	size_t nvols;
	struct sv_vol *vols;           /* owned, RT_MAX_VOLUMES */
	struct sv_file *files;         /* owned */
	size_t nfds, cap_fds;
	struct sv_fd *fds;             /* owned */
	struct sv_writer writers[SV_WRITERS];
	int deadfd;                    /* owned: the empty removed directory, or -1 */
	dev_t dead_dev;
	ino_t dead_ino;
	struct sv_dir *dirs;           /* owned */
	size_t ndfds, cap_dfds;
	struct sv_dfd *dfds;           /* owned */
	uint64_t dsync_opens;          /* protected opens with O_DSYNC / O_SYNC so far */
	uint8_t refused[(RT_SYSCALL_COUNT + 7) / 8]; /* calls already refused with a line */
};

/* The calling thread's credentials, from /proc/TID/status. */
struct sv_cred {
	pid_t tgid;
	mode_t umask;
	uid_t ruid;
	gid_t rgid;
	struct rt_cred fs;         /* fsuid, fsgid, groups: what a path request acts with */
};
int sv_cred_of(pid_t tid, struct sv_cred *out);
/* A hash of c->fs: two answers were made for the same credentials. */
uint64_t sv_cred_key(const struct sv_cred *c);

/* supervise_vols.c: connect to (or start) each volume's server. */
int sv_vols_open(struct sv *sv, const struct rt_config *cfg, struct kiln_err *err);
struct sv_vol *sv_find_vol(struct sv *sv, const char *abs, const char **rel);
/* One request to v's server; a server that went away is replaced for
 * requests about paths, not for file ids of the old one (-EIO). body, size,
 * fds, errmsg (RT_ERRMSG_MAX: the server's message of a failure) may be NULL;
 * passed fds are the caller's. */
int sv_call(struct sv_vol *v, struct rt_msg *m, const uint8_t **body, size_t *size, int fds[2],
	    char *errmsg);
/* ret, after saying the server's message (integrity, I/O) with the path. */
long sv_failed(const char *what, struct sv_vol *v, const char *rel, int ret, const char *errmsg);
/* Commit v (SYNCALL; flags RT_SYNC_NAMESPACE: the names only), saying why
 * when it fails. */
void sv_commit(struct sv_vol *v, unsigned flags);
/* The supervisor is done with v (the program has exited): close its
 * connection; when it was the server's last, wait (bounded) for the server's
 * last commit and close, so kiln run returns with the volume closed. */
void sv_vol_leave(struct sv_vol *v);
/* The server's namespace generation (moves with every change of a name and
 * whenever a file gets a memfd); UINT64_MAX when unknown. */
uint64_t sv_ns_gen(const struct sv_vol *v);

/* supervise_files.c */
/* Release every file, commit what the program wrote, disconnect, wipe keys. */
void sv_vols_close(struct sv *sv);
/* open on a protected path: the program's new fd (answered with ADDFD) or
 * -errno; refused calls say so once (sv_refuse). */
long sv_open(struct sv *sv, const struct seccomp_notif *n, const char *abs, struct sv_vol *v,
	     const char *rel, int flags, mode_t mode);
/* stat family: flags RT_STAT_NOFOLLOW; *out in the kernel's layout. */
long sv_stat(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, unsigned flags,
	     struct stat *out);
long sv_access(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, int mode, int flags);
/* unlink, rmdir (AT_REMOVEDIR), mkdir, rename (flags of renameat2),
 * truncate: applied by the server and committed (durable at once: the
 * program cannot open the directory to fsync it). */
long sv_unlink(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, int flags);
long sv_mkdir(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, mode_t mode);
long sv_rename(struct sv *sv, pid_t tid, struct sv_vol *v, const char *from, const char *to,
	       unsigned flags);
long sv_truncate(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, uint64_t size);
/* fd calls: the tracked fd of (tid's process, fd), or NULL. */
struct sv_fd *sv_fd_find(struct sv *sv, pid_t tid, int fd);
long sv_fsync(struct sv *sv, struct sv_fd *e);

/* supervise_sync.c: durable writes (O_DSYNC, O_SYNC, RWF_DSYNC, RWF_SYNC). */
/* The write family, sendfile, splice, copy_file_range: trapped so that those
 * can be. */
bool sv_traps_write(long nr);
/* A trapped write: when it must be durable, done here with fsync's commit
 * before the reply (*val: its result; true); false: let the kernel run it. */
bool sv_sync_write(struct sv *sv, const struct seccomp_notif *n, long *val);
/* close of a tracked fd: replaced by /dev/null in the program (so the memfd
 * is closed when this returns, locks released), forgotten; the caller lets
 * the kernel close the replacement. A file's last one keeps the file for the
 * next open a while (SV_KEEP_*), then it goes when nothing refers to it. */
void sv_close(struct sv *sv, const struct seccomp_notif *n, struct sv_fd *e);
/* exit_group of tid's process: commit what it wrote. */
void sv_exit(struct sv *sv, pid_t tid);
/* Drop tracked fds the program no longer has (exec, exit, kill); of the
 * files kept after their last close, give back the old ones nothing of the
 * program refers to. */
void sv_sweep(struct sv *sv);
bool sv_holds_files(const struct sv *sv);
/* A process exited or executed: sweep soon (its fds went without a close). */
void sv_sweep_soon(struct sv *sv);

/* supervise_procs.c: which processes of the program refer to a memfd. */
struct sv_ref {
	pid_t pid;
	int fd;                    /* -1: a mapping */
};
/* References to (dev, ino) in the program's processes (the first one and its
 * descendants): up to max into out, their count. */
size_t sv_refs(pid_t root, dev_t dev, ino_t ino, struct sv_ref *out, size_t max);
/* Whether process tgid's fd is (dev, ino). */
bool sv_fd_is(pid_t tgid, int fd, dev_t dev, ino_t ino);

/* supervise_dirs.c: protected directories the program opens. */
/* open of rel, a directory (r: the server's answer, c: the caller's
 * credentials): the program's new fd or -errno. */
long sv_opendir(struct sv *sv, const struct seccomp_notif *n, const char *abs, struct sv_vol *v,
		const char *rel, int flags, const struct sv_cred *c, const struct rt_stat_reply *r);
/* The tracked directory fd of (tid's process, fd), or NULL; adopt: also one
 * the program got by dup or fork (then tracked). */
struct sv_dfd *sv_dfd_find(struct sv *sv, pid_t tid, int fd, bool adopt);
/* The absolute path of the directory fd is, or NULL when it is none of ours. */
const char *sv_dir_path(struct sv *sv, pid_t tid, int fd);
/* getdents64 into the program's buffer at addr. */
long sv_getdents(struct sv *sv, pid_t tid, struct sv_dfd *e, uint64_t addr, size_t count);
/* fsync/fdatasync: a commit of the names (SYNCALL RT_SYNC_NAMESPACE). */
long sv_dir_fsync(struct sv_dfd *e);
/* close: forgotten (the kernel closes the fd). */
void sv_dir_close(struct sv *sv, struct sv_dfd *e);
/* Drop directory fds the program no longer has. */
void sv_dirs_sweep(struct sv *sv);
void sv_dirs_close(struct sv *sv);

/* supervise.c */
/* The program's memory: 0 or -errno (-EFAULT when short). */
int sv_read_mem(pid_t pid, uint64_t addr, void *buf, size_t size);
int sv_write_mem(pid_t pid, uint64_t addr, const void *buf, size_t size);
/* Receive and answer one notification (a call waiting for the supervisor is
 * served meanwhile: supervise_sync.c's splice). 0, or -errno when the listener
 * failed. */
int sv_serve_one(struct sv *sv);
/* Answer open notification n with fd (closed here) as the program's new fd
 * (O_CLOEXEC of flags): the fd number, or -errno. */
long sv_inject(struct sv *sv, const struct seccomp_notif *n, int fd, int flags);
long sv_refuse(struct sv *sv, const char *call, long nr, const char *abs);
void sv_report(const char *call, const char *path, const char *msg);

#endif
