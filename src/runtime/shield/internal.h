/* kiln runtime: the file shield's internals, shared by the files of
 * src/runtime/shield/ (the system-call handlers in src/runtime/sys/ use
 * shield.h only).
 *
 * Design: an open protected file is a memfd holding its plaintext (a "node",
 * one per volume path, shared by every open of that path). The app's fd is a
 * separate open of that memfd (via /proc/self/fd), so it has its own offset and
 * flags, and every data call -- read, write, pread, mmap(MAP_SHARED), sendfile,
 * splice, poll -- is native and costs nothing extra. The runtime takes part
 * only where the file system is involved: open (decrypt and verify the whole
 * file through pf), stat (plaintext size and the volume's mode), fsync/close/
 * exit (write the chunks that changed since the last flush back through pf and
 * commit per --freshness), and the namespace calls (rename, unlink, mkdir,
 * readdir ...), which map 1:1 to pf.
 *
 * Trade-offs, also in docs/runtime.md: the plaintext of open files lives in
 * process memory (as it would in the page cache of a decrypted mount); a file
 * must fit in memory twice (the memfd and the copy as of the last flush, used
 * to find changed chunks without hashing); corruption is detected at open,
 * not at the read that touches the chunk.
 *
 * Closed files stay decrypted in a bounded LRU cache for the next open, used
 * only while no other process has committed to the volume (cache.c,
 * rt__vol_unchanged; docs/runtime.md "The cache of closed files").
 *
 * Locking: every operation of shield.h takes what it needs (rt__hold): one
 * mutex (g_shield_lock), always taken inside rt__enter() (signals blocked),
 * never held while app code runs, and the volumes' flocks. Exceptions without
 * them: fstat on a protected file fd, and the close of an fd on a
 * never-written file (rt__close_lockfree). Opens of cached files and stat of
 * volume paths take only the mutex while no other process changed the volume
 * (rt__fast_ok).
 *
 * Files: shield.c (the locks, init, exit, fork),
 * volume.c (volumes shared between processes), node.c (a file's plaintext),
 * cache.c (closed files kept for the next open), file.c (open file
 * descriptions behind the program's fds), stat.c, namespace.c (pf calls on
 * names), inject.c (files injected by the attestation answer). */
#ifndef KILN_RUNTIME_SHIELD_INTERNAL_H
#define KILN_RUNTIME_SHIELD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "pf/pf.h"
#include "runtime/shield/shield.h"

struct rt_vol {
	struct rt_volume_cfg *cfg;
	pf_volume_t *pf;
	int rootfd;     /* owned: the volume directory, backs directory fds */
	int lockfd;     /* owned: "<dir>/.kiln", flock'd around every pf call */
	struct stat meta_seen; /* identity of the metadata this process last saw */
	int watchfd;    /* owned: inotify on "<dir>/.kiln" (or -1), see rt__vol_unchanged */
	bool want_watch; /* a fast path looked: make watchfd at the next lock */
	bool watch_failed; /* no inotify (limits): identity by path */
	dev_t dev;      /* reported as st_dev of every file in the volume */
	uint32_t chunk;
	uint8_t key[PF_KEY_SIZE]; /* kept to reopen after another process commits */
	bool created;             /* CAS volume initialized by this process */
};

struct rt_node {
	struct rt_node *next;
	struct rt_vol *vol;
	char *rel;            /* volume path, malloc'd */
	pf_file_t *pf;
	int memfd;            /* owned */
	char proc[32];        /* "/proc/self/fd/<memfd>", made at the first reopen */
	uint8_t *synced;      /* plaintext as of the last flush, malloc'd, wiped */
	uint64_t synced_size;
	int refs;             /* open file descriptions using this node */
	mode_t mode;          /* permission bits, as kept in the volume */
	bool unlinked;
	atomic_bool writable; /* ever opened for writing: the memfd may differ from pf
			       * (read without the lock by rt__close_lockfree) */
	struct timespec mtime; /* the memfd's mtime as of the last flush */
	bool cached;          /* no fd left; kept for the next open (see rt__node_unref) */
	uint64_t cached_at;   /* g_cache_clock when it was cached (LRU order) */
	bool shared;          /* open across a fork: another process may write the
			       * memfd, so it is never cached nor its stat assumed */
};

struct rt_ofd {
	atomic_int refs;      /* fds sharing this description (dup); see rt__close_lockfree */
	enum rt_fd_kind kind;
	struct rt_node *node; /* RT_FD_FILE */
	struct rt_vol *vol;   /* RT_FD_DIR */
	char *rel;            /* RT_FD_DIR, malloc'd */
	char **names;         /* RT_FD_DIR listing snapshot (pf_names_free) */
	size_t count;
	size_t pos;
	struct rt_ofd *next_released; /* on g_released */
};

/* shield.c: the locks of an operation. rt__hold blocks signals, takes
 * g_shield_lock and every volume's flock (reloading volumes another process
 * changed); -EIO when a reload failed (release anyway). rt__hold_light takes
 * only the first two (for what needs no volume). */
struct rt_hold {
	struct rt_guard g;
};
int rt__hold(struct rt_hold *h) RT_HIDDEN;
void rt__release(struct rt_hold *h) RT_HIDDEN;
void rt__hold_light(struct rt_hold *h) RT_HIDDEN;
void rt__release_light(struct rt_hold *h) RT_HIDDEN;
/* Under g_shield_lock: the volume of t is as this process last saw it, so
 * the fast paths may answer from what this process holds. */
bool rt__fast_ok(struct rt_target *t) RT_HIDDEN;
extern pthread_mutex_t g_shield_lock RT_HIDDEN;
/* Owned: "/proc/self/fd" of this process (reopened in a forked child), so a
 * memfd reopen looks up one name instead of walking /proc/self/fd/N. */
extern int g_procfd RT_HIDDEN;
extern uid_t g_uid RT_HIDDEN;
extern gid_t g_gid RT_HIDDEN;

/* volume.c: the mounted volumes. */
extern struct rt_vol g_vols[RT_MAX_VOLUMES] RT_HIDDEN;
extern size_t g_nvols RT_HIDDEN;
/* Open every configured volume (rt__shield_init). */
int rt__vols_init(struct kiln_err *err) RT_HIDDEN;
/* Take every volume's flock, reload volumes another process changed. */
int rt__vols_lock(void) RT_HIDDEN;
/* Publish (or, durable, commit) and release every volume's flock. */
void rt__vols_unlock(bool durable) RT_HIDDEN;
/* True when no process committed to or published in v since this one last
 * looked (the fast paths' staleness check). */
bool rt__vol_unchanged(struct rt_vol *v) RT_HIDDEN;
/* In a forked child: its own flock descriptions and inotify watches. */
void rt__vols_after_fork(void) RT_HIDDEN;
/* Before exit: commit everything, wipe the keys. */
void rt__vols_exit(void) RT_HIDDEN;

/* node.c: the plaintext of one volume file. All under g_shield_lock. */
extern struct rt_node *g_nodes RT_HIDDEN;
mode_t rt__umask(void) RT_HIDDEN;
void rt__say_pf(const char *mount, const char *rel, int code, struct kiln_err *err) RT_HIDDEN;
struct rt_node *rt__node_find(struct rt_vol *vol, const char *rel) RT_HIDDEN;
/* Load (vol, rel) through pf into a new node (owned by g_nodes). */
int rt__node_open(struct rt_vol *vol, const char *rel, int flags, mode_t mode,
		  struct rt_node **out) RT_HIDDEN;
void rt__node_free(struct rt_node *n) RT_HIDDEN;
void rt__node_reopen_all(struct rt_vol *v) RT_HIDDEN;
int rt__node_flush(struct rt_node *n, bool commit) RT_HIDDEN;
int rt__node_keep_synced(struct rt_node *n) RT_HIDDEN;

/* cache.c: closed files kept for the next open. */
int rt__cache_init(long fd_limit, struct kiln_err *err) RT_HIDDEN;
void rt__cache_take(struct rt_node *n) RT_HIDDEN;
void rt__cache_drop_inherited(void) RT_HIDDEN;
/* The fork child's flag: the cached files' memfds are the parent's too. */
void rt__cache_after_fork(void) RT_HIDDEN;
/* Drop a reference on n; the last one saves it and caches or frees it. */
void rt__node_unref(struct rt_node *n) RT_HIDDEN;

/* file.c: open file descriptions. */
long rt__ofd_open_node(struct rt_node *n, int rflags) RT_HIDDEN;
void rt__ofd_unref(struct rt_ofd *o) RT_HIDDEN;
void rt__fd_attach(int fd, struct rt_ofd *o) RT_HIDDEN;
long rt__close_lockfree(int fd) RT_HIDDEN;
struct rt_ofd *rt__released_take(bool all) RT_HIDDEN;
void rt__released_put(struct rt_ofd *list) RT_HIDDEN;
void rt__released_drain_ro(void) RT_HIDDEN;
/* Fork: wait for lock-free closes in progress (rt__shield_before_fork). */
void rt__closes_quiesce(void) RT_HIDDEN;
void rt__closes_resume(void) RT_HIDDEN;

/* stat.c: stat of a volume path / a protected fd, under the locks (a file
 * fd's also without). */
long rt__stat_rel(struct rt_vol *vol, const char *rel, struct stat *out) RT_HIDDEN;
long rt__stat_fd(long fd, struct stat *out) RT_HIDDEN;
uint64_t rt__ino_of(const char *rel) RT_HIDDEN;
void rt__fill_stat(struct stat *out, struct rt_vol *vol, const char *rel,
		   const struct pf_stat *ps, const struct stat *mem) RT_HIDDEN;

/* namespace.c */
long rt__pf_result(struct rt_target *t, int ret, struct kiln_err *err) RT_HIDDEN;
long rt__chmod_locked(struct rt_target *t, mode_t mode) RT_HIDDEN;

/* inject.c: calls on an injected file (under g_shield_lock). */
extern struct rt_node *g_vfiles RT_HIDDEN;
long rt__vfile_open(struct rt_node *n, int flags) RT_HIDDEN;
long rt__vfile_stat(struct rt_node *n, struct stat *out) RT_HIDDEN;

#endif
