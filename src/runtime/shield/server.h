/* kiln runtime, file shield v2: the volume server (server.c, srv_file.c).
 *
 * One process per volume per host owns the pf volume; every process of the
 * workload is its client (proto.h). It is started on demand by the first
 * process that needs the volume (rt__srv_spawn: double fork, setsid, so it is
 * never the program's child) and exits, after a final commit, when its last
 * client has gone. It runs single-threaded: requests are served in arrival
 * order, and the fsyncs that arrive while a commit runs are answered together
 * by the next one (group commit).
 *
 * The server uses plain libc calls (it runs without Syscall User Dispatch), so
 * the same sources serve libkiln, the kiln CLI (supervised static programs)
 * and the unit tests. */
#ifndef KILN_RUNTIME_SHIELD_SERVER_H
#define KILN_RUNTIME_SHIELD_SERVER_H

#include <string.h>
#include <sys/stat.h>

#include "pf/pf.h"
#include "runtime/shield/proto.h"

struct rt_srv_config {
	char dir[4096];             /* the volume directory (its store is DIR/.kiln) */
	uint8_t key[RT_KEY_SIZE];   /* volume key (secret; wiped by the server) */
	/* Open the pf volume in the server process (storage and freshness of
	 * the caller's choosing), holding the volume exclusively (an flock of
	 * DIR/.kiln, as pf_storage_posix takes) until the volume is closed. *vol
	 * is owned by the server afterwards. */
	int (*open_volume)(void *arg, const uint8_t key[static RT_KEY_SIZE], pf_volume_t **vol,
			   struct kiln_err *err);
	void *arg;
	/* Called first in the server process (libkiln: leave Syscall User
	 * Dispatch and the app's state behind); may be NULL. */
	void (*enter)(void);
	uint64_t cache_limit;       /* bytes of plaintext kept in memfds */
	/* rt__srv_sock_name's answer when the caller knows it already; "":
	 * rt__srv_connect finds it. */
	char sock_name[RT_SOCK_NAME_MAX];
};

/* The socket name of the volume in dir for key: 0 and name, or -errno when
 * DIR/.kiln cannot be looked at. */
int rt__srv_sock_name(const char *dir, const struct rt_auth_keys *k,
		      char name[static RT_SOCK_NAME_MAX]);

/* Start a server for c->dir in a new session (double fork with forkfn, the
 * caller's fork: libkiln passes libc's). Returns once the server has opened
 * the volume and listens: 0, or an error with err saying why (wrong key,
 * corrupt or rolled-back volume, volume locked by another process). -EEXIST:
 * another server took the name first (connect to it). */
int rt__srv_spawn(const struct rt_srv_config *c, pid_t (*forkfn)(void), struct kiln_err *err);

/* Connect to the volume's server (starting one with forkfn when none
 * answers) and authenticate: the connected socket (owned by the caller) and
 * *vseg_fd, or an error with err saying why. With forkfn NULL: -ENOENT when
 * no server runs (kiln fs then opens the volume itself). */
int rt__srv_connect(const struct rt_srv_config *c, const struct rt_auth_keys *k,
		    pid_t (*forkfn)(void), uint32_t pid, int *vseg_fd, struct kiln_err *err);

/* What differs between the server's starters when it opens its volume: the
 * pf storage over the store directory storefd (borrowed, checked and locked),
 * the local freshness provider of a tag file, the CAS's (rt_fresh_cas), and
 * (may be NULL) the storage's switch to one sync at a time, for volumes whose
 * freshness prepare is a CAS request. */
struct rt_volume_cfg;
struct rt_srv_open_ops {
	int (*storage)(int storefd, const struct pf_storage_ops **ops, void **ctx);
	int (*fresh_local)(const char *path, const struct pf_freshness_ops **ops, void **ctx);
	/* Or (may be NULL) one whose prepares may ride the commit log's flush
	 * on device ride (0: never; srv_open.c's ride_dev decides). */
	int (*fresh_local_ride)(const char *path, dev_t ride, const struct pf_freshness_ops **ops,
				void **ctx);
	int (*fresh_cas)(const struct rt_volume_cfg *c, const struct pf_freshness_ops **ops,
			 void **ctx);
	void (*no_overlap)(void *storage_ctx);
};

/* The server's open of volume c (its open_volume calls this): DIR/.kiln
 * never through a symlink (-KILN_EUNSAFE), its flock taken (waiting up to 10 s
 * for a previous server's last commit, then -EBUSY: in use), the freshness
 * provider c names (a tag file, or the CAS's tag: a CAS volume never committed
 * is created here), pf_volume_open. The lock is held until the server has
 * closed the volume. 0 and *out (owned by the server), or an error with err
 * saying why. */
int rt__srv_open_volume(const struct rt_volume_cfg *c, const struct rt_srv_open_ops *ops,
			const uint8_t key[static RT_KEY_SIZE], pf_volume_t **out,
			struct kiln_err *err);

/* Build a default cache limit from KILN_FILE_CACHE's meaning (bytes). */
#define RT_CACHE_DEFAULT (256ull << 20)

/* What the server and the program ask of a plaintext memfd: its size, inode
 * and blocks, by statx of those fields only (rt_mstat_fill makes the struct
 * stat). Never its times: a stat asking for them makes the kernel
 * (multigrain timestamps, Linux 6.13 on) stamp the memfd's next write with a
 * fine-grained time, which moves the floor every file's coarse mtime
 * follows -- so the next write of the commit log or the version file
 * changed its inode, and the commit's fdatasync wrote the inode table block
 * before its flush (docs/fs.md "One-file commits"). */
#define RT_MSTAT_MASK (STATX_SIZE | STATX_INO | STATX_BLOCKS)

static inline void rt_mstat_fill(const struct statx *sx, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_size = (off_t)sx->stx_size;
	st->st_ino = sx->stx_ino;
	st->st_blocks = (blkcnt_t)sx->stx_blocks;
}

#endif
