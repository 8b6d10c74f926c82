/* kiln runtime: the file shield's internals, shared by the files of
 * src/runtime/shield/ (the system-call handlers in src/runtime/sys/ use
 * shield.h only).
 *
 * Design (file shield v2, docs/runtime.md "The volume server"): one volume
 * server per volume per host owns the pf volume (server.c, srv_file.c: a
 * double-forked copy of the first process that needed it); every process of
 * the workload is its client (client.c). An open protected file is the
 * server's sparse memfd: the program's fd is an open of it (through
 * /proc/self/fd), so data, size, O_APPEND, mmap(MAP_SHARED) and fcntl/flock
 * locks are the kernel's and coherent across processes. Beside it a state
 * memfd holds a word per chunk (chunk.c): the data path (data.c) pins chunks,
 * has missing ones filled by the server (decrypt + verify), reads and writes
 * natively and marks written chunks dirty; the server writes dirty chunks
 * back and commits (fsync: group commit), and evicts clean chunks to keep
 * the plaintext within KILN_FILE_CACHE.
 *
 * A node (node.c) is this process's handle on one server file: the memfd,
 * the state mapping, the file id. Nodes stay after their last close (cache.c)
 * so the next open of the same path is a reopen of the memfd; the lookup
 * cache (stat.c) answers stat and those opens without a round trip while the
 * volume's namespace generation (bumped by the server on every change) is
 * the one the answer was made under.
 *
 * Locking: one mutex (g_shield_lock), taken inside a guard (rt__enter: no
 * handler of the program runs) around changes to nodes, descriptions and caches; never held
 * while app code runs. The data path (reads, writes) takes no lock: atomic
 * chunk words, and a reference on the fd's description. Neither do the close
 * of an fd and the open of a file this process holds (fast.c): node
 * references are atomic, -1 once a node is claimed for freeing. A round trip to the
 * server needs no shield lock (client.c keeps a pool of connections).
 *
 * Files: shield.c (entry, init, exit, fork, exec), client.c, volume.c (the
 * mounted volumes), node.c, cache.c, file.c (open file descriptions), fast.c
 * (the lock-free open of a known file), data.c, stream.c (large cold reads
 * decrypted in this process), mmap.c, stat.c, namespace.c, inject.c (files
 * injected by the attestation answer). */
#ifndef KILN_RUNTIME_SHIELD_INTERNAL_H
#define KILN_RUNTIME_SHIELD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "pf/pf.h"
#include "runtime/shield/proto.h"
#include "runtime/shield/server.h"
#include "runtime/shield/shield.h"

struct rt_conn;

/* A lookup answered by the server, valid while the namespace generation is
 * `gen` (stat.c). */
struct rt_lookup {
	uint64_t gen;          /* 0: empty */
	uint64_t who;          /* the credentials it was asked with (rt_ucred.key) */
	char *rel;             /* malloc'd */
	unsigned flags;        /* RT_STAT_NOFOLLOW: an lstat answer */
	int ret;               /* 0, -ENOENT, -ENOTDIR */
	struct rt_stat_reply st;
};
#define RT_LOOKUPS 256

/* A path this process opened lately, for the lock-free open (fast.c). Written
 * under g_shield_lock; read lock-free through seq (odd while written). */
#define RT_FAST_SLOTS 64
#define RT_FAST_REL 192
struct rt_fast_slot {
	_Atomic uint32_t seq;
	_Atomic uint32_t mode;            /* permission bits */
	_Atomic uint32_t uid, gid;        /* the file's owner */
	_Atomic uint64_t who;             /* the credentials it was opened with */
	_Atomic uint64_t gen;             /* rt__vol_gen when the answer was made */
	_Atomic(struct rt_node *) node;   /* NULL: empty */
	char rel[RT_FAST_REL];
};

struct rt_vol {
	struct rt_volume_cfg *cfg;
	int rootfd;            /* owned: the volume directory, backs directory fds */
	dev_t dev;             /* the volume directory's device (with dir_ino: its identity) */
	dev_t st_dev;          /* reported as st_dev of every file in the volume (volume.c) */
	ino_t dir_ino;         /* the volume directory's inode (with dev: its identity) */
	uint32_t chunk;
	uint8_t key[PF_KEY_SIZE]; /* kept: a restarted server needs it */
	struct rt_auth_keys keys;
	/* The server's socket name, found at the first connection: a process
	 * that dropped its privileges since (fork, then setuid, as nginx's
	 * workers) may no longer look at DIR/.kiln to find it again. */
	char sock_name[RT_SOCK_NAME_MAX];
	_Atomic(struct rt_vseg *) vseg; /* the current server's segment (old ones stay mapped) */
	uint64_t gen;          /* bumped per server this process talked to */
	pid_t pid;             /* the process the connections belong to */
	pthread_mutex_t pool_lock;
	struct rt_conn *pool;  /* idle connections */
	unsigned nconns;       /* this process's connections, idle or not (pool_lock) */
	bool said_gone;
	atomic_bool wrote;     /* this process wrote to the volume (exit commit) */
	struct rt_lookup lookups[RT_LOOKUPS]; /* under g_shield_lock */
	struct rt_fast_slot fast[RT_FAST_SLOTS];
};

/* This process's handle on one server file (or, with vol NULL, an injected
 * file: a memfd of its own). */
struct rt_node {
	struct rt_node *next;
	struct rt_vol *vol;
	uint64_t id;           /* the server's file id */
	uint64_t gen;          /* vol->gen it belongs to */
	char *rel;             /* volume path as last known, malloc'd */
	int memfd;             /* owned: the plaintext */
	_Atomic(struct rt_fseg *) seg;   /* mapping of the server's state memfd */
	_Atomic uint64_t seg_words;      /* words it covers */
	struct rt_oldmap *old; /* superseded mappings, unmapped with the node */
	char proc[32];         /* "/proc/self/fd/<memfd>" */
	/* Descriptions and mappings; -1 once claimed for freeing (a lock-free
	 * open takes a reference only while it is >= 0). Changed under
	 * g_shield_lock, and without it by lock-free opens and closes. */
	atomic_int refs;
	mode_t mode;           /* permission bits */
	uint64_t ino;
	bool unlinked;
	atomic_bool wrote;     /* written by this process (exit and on-close commits) */
	atomic_bool dead;      /* its server is gone, or it could not be re-attached */
	atomic_bool cached;    /* kept for the next open (cache.c); a lock-free open may
				* use it meanwhile (refs > 0) */
	atomic_bool settle;    /* refs reached 0 without the lock: cache or free it */
	uint64_t cached_at;
	void *_Atomic stream;  /* stream.c's struct rt_stream, or NULL */
	void *_Atomic wstream; /* wstream.c's struct rt_wstream, or NULL */
	/* The memfd's size and blocks as last read (rt__stat_node), good while
	 * the file's size_seq is st_seq: a sequence count, odd while written
	 * (a writer that finds it taken does not store; a reader that sees it
	 * move does the fstat). */
	atomic_uint st_lock;
	atomic_bool st_ok;
	_Atomic uint32_t st_seq;
	_Atomic int64_t st_size;
	_Atomic int64_t st_blocks;
	_Atomic uint64_t spare; /* fast.c: an idle description of the memfd, or 0 */
};

struct rt_oldmap {
	void *addr;
	size_t size;
	struct rt_oldmap *next;
};

struct rt_ofd {
	atomic_int refs;       /* fds sharing this description (dup), data calls in progress */
	enum rt_fd_kind kind;
	bool append;           /* O_APPEND (kept current by fcntl F_SETFL) */
	bool dsync;            /* O_DSYNC or O_SYNC (fixed at open: F_SETFL cannot
				* change them): every write commits as fdatasync */
	struct rt_node *node;  /* RT_FD_FILE */
	struct rt_vol *vol;    /* RT_FD_DIR */
	char *rel;             /* RT_FD_DIR, malloc'd */
	bool link;             /* RT_FD_DIR: O_PATH|O_NOFOLLOW of a symlink (fstat
				* answers for the link itself) */
	uint8_t *list;         /* RT_FD_DIR: entries read from the server, malloc'd */
	size_t list_size, list_pos;
	uint64_t cookie;       /* the server's cookie for the next entries */
	uint64_t pos;          /* entries returned so far (d_off) */
	uint64_t seek_to;      /* lseek: entries before this one are skipped */
	bool eof;
	struct rt_ofd *next_released; /* on g_released */
	uint64_t spare;        /* fast.c: the spare description it shares, or 0 */
	atomic_bool used;      /* a call that may have changed that description */
};

/* shield.c: the lock of an operation: a guard and g_shield_lock
 * (after what a forked child owes the server first, and the releases the
 * lock-free paths left). Lock-free paths call rt__child_check. */
void rt__lock(struct rt_guard *g) RT_HIDDEN;
void rt__unlock(struct rt_guard *g) RT_HIDDEN;
/* Defines `long name params`, which returns call (a *_locked function) made
 * in a guard under g_shield_lock (rt__lock). */
#define RT_LOCKED(name, params, call) \
	long name params \
	{ \
		struct rt_guard g; \
		long r; \
\
		rt__lock(&g); \
		r = call; \
		rt__unlock(&g); \
		return r; \
	}
void rt__child_check(void) RT_HIDDEN;
extern pthread_mutex_t g_shield_lock RT_HIDDEN;
/* Owned: "/proc/self/fd" of this process (reopened in a forked child), so a
 * memfd reopen looks up one name instead of walking /proc/self/fd/N. */
extern int g_procfd RT_HIDDEN;
extern uid_t g_uid RT_HIDDEN;
extern gid_t g_gid RT_HIDDEN;
extern uint64_t g_cache_limit RT_HIDDEN;

/* client.c: connections to the volume server. */
struct rt_call {
	struct rt_conn *c;     /* held until rt__cl_done */
	const uint8_t *body;   /* the reply's body (in c) */
	size_t size;
	int fds[2];            /* passed fds (owned until rt__cl_done, unless taken: -1) */
	char errmsg[RT_ERRMSG_MAX];
};
int rt__cl_connect(struct rt_vol *v, struct kiln_err *err) RT_HIDDEN;
/* One request (in a guard of its own). Status >= 0 or -errno; -EIO
 * when the server is gone (logged once). */
int rt__cl_call(struct rt_vol *v, const struct rt_msg *m, struct rt_call *call) RT_HIDDEN;
void rt__cl_done(struct rt_vol *v, struct rt_call *call) RT_HIDDEN;
/* A request without a body to read: status; errmsg (may be NULL) gets the
 * server's message. */
int rt__cl_simple(struct rt_vol *v, const struct rt_msg *m, char *errmsg) RT_HIDDEN;
bool rt__cl_dead(const struct rt_vol *v) RT_HIDDEN;
void rt__cl_after_fork(struct rt_vol *v) RT_HIDDEN;
/* This process is leaving (exit): if it is the volume's last client, close
 * its connections and wait (bounded) for the server's last commit and close. */
void rt__cl_leave(struct rt_vol *v) RT_HIDDEN;

/* volume.c: the mounted volumes. */
extern struct rt_vol g_vols[RT_MAX_VOLUMES] RT_HIDDEN;
extern size_t g_nvols RT_HIDDEN;
int rt__vols_init(struct kiln_err *err) RT_HIDDEN;
/* Before exit: commit what this process wrote, wipe the keys. */
void rt__vols_exit(void) RT_HIDDEN;
/* A request about a path (no file id); logs a server message once. */
int rt__vol_call(struct rt_vol *v, struct rt_msg *m, struct rt_call *call) RT_HIDDEN;
int rt__vol_simple(struct rt_vol *v, struct rt_msg *m) RT_HIDDEN;
uint64_t rt__vol_gen(struct rt_vol *v) RT_HIDDEN;

/* node.c: handles on server files. Under g_shield_lock unless said. */
extern struct rt_node *g_nodes RT_HIDDEN;
mode_t rt__umask(void) RT_HIDDEN;
struct rt_node *rt__node_by_id(struct rt_vol *vol, uint64_t id) RT_HIDDEN;
/* The node for the file an OPEN/ATTACH reply names (call->fds taken when a
 * new node is made). */
int rt__node_from_reply(struct rt_vol *vol, const char *rel, struct rt_call *call,
			struct rt_node **out) RT_HIDDEN;
void rt__node_free(struct rt_node *n) RT_HIDDEN;
/* Map the state memfd anew, at least `words` words (the server grows it when
 * it is smaller). Lock-free: a data call may need it. */
int rt__node_remap(struct rt_node *n, uint64_t words) RT_HIDDEN;
/* A round trip naming n's file (lock-free); -EIO when n's server is gone. */
int rt__node_call(struct rt_node *n, struct rt_msg *m) RT_HIDDEN;
bool rt__node_dead(struct rt_node *n) RT_HIDDEN;
/* Commit n's data durably (group commit in the server). */
int rt__node_commit(struct rt_node *n) RT_HIDDEN;

/* cache.c: closed files kept for the next open. */
int rt__cache_init(long fd_limit, struct kiln_err *err) RT_HIDDEN;
void rt__cache_take(struct rt_node *n) RT_HIDDEN;
/* Free every cached node (out of fds); true when there was one. */
bool rt__cache_shrink(void) RT_HIDDEN;
/* Drop a reference on n; the last one caches it or frees it. */
void rt__node_unref(struct rt_node *n) RT_HIDDEN;
/* The same without the lock: the last one leaves n to the next locked call. */
void rt__node_unref_lockfree(struct rt_node *n) RT_HIDDEN;
/* Under the lock: nodes whose last reference went without it. */
void rt__cache_settle(void) RT_HIDDEN;
/* Free n unless a lock-free open holds it (then its last close settles it). */
bool rt__node_try_free(struct rt_node *n) RT_HIDDEN;
/* Under the lock: free the memory of freed nodes no lock-free call can use. */
void rt__node_reap(void) RT_HIDDEN;

/* file.c: open file descriptions. */
long rt__memfd_reopen(const struct rt_node *n, int rflags) RT_HIDDEN;
long rt__ofd_open_node(struct rt_node *n, int rflags) RT_HIDDEN;
/* fsync's durable commit of a file description the caller holds a reference
 * on (nothing under the on-close and on-exit freshness); -EIO when it fails. */
long rt__ofd_sync(struct rt_ofd *o) RT_HIDDEN;
void rt__ofd_unref(struct rt_ofd *o) RT_HIDDEN;
bool rt__ofd_tryref(struct rt_ofd *o) RT_HIDDEN;
/* Lock-free unref (data calls): the last reference is released later. */
void rt__ofd_unref_lockfree(struct rt_ofd *o) RT_HIDDEN;
void rt__fd_attach(int fd, struct rt_ofd *o) RT_HIDDEN;
long rt__close_lockfree(int fd) RT_HIDDEN;
void rt__released_drain(void) RT_HIDDEN;
/* Fork: wait for lock-free closes in progress (rt__shield_before_fork). */
void rt__closes_quiesce(void) RT_HIDDEN;
void rt__closes_resume(void) RT_HIDDEN;
/* A lock-free fd operation (close, fast open): false when a fork is waiting
 * for them (take the lock instead); rt__lockfree_end after. */
bool rt__lockfree_begin(void) RT_HIDDEN;
void rt__lockfree_end(void) RT_HIDDEN;
/* No lock-free fd operation in progress in any thread. */
bool rt__lockfree_idle(void) RT_HIDDEN;
void rt__release_later(struct rt_ofd *o) RT_HIDDEN;

/* fast.c: the lock-free open of a file this process holds. */
long rt__fast_open(struct rt_target *t, int flags, int rflags) RT_HIDDEN;
/* Under the lock: rel names n under gen (after an open of it). */
void rt__fast_put(struct rt_vol *vol, const char *rel, uint64_t gen, struct rt_node *n,
		  const struct rt_stat_reply *r) RT_HIDDEN;
/* file.c: what the file's mode and owner refuse the caller's credentials. */
bool rt__open_denied(const struct rt_stat_reply *r, int flags) RT_HIDDEN;
/* Under the lock: n goes; no slot may name it. */
void rt__fast_forget(struct rt_node *n) RT_HIDDEN;
bool rt__fast_pool_put(struct rt_ofd *o) RT_HIDDEN;
/* o's last fd is gone: its spare goes back to its node (or is closed). */
void rt__spare_back(struct rt_ofd *o) RT_HIDDEN;
void rt__spare_drop(uint64_t v) RT_HIDDEN;
void rt__fast_pool_fill(void) RT_HIDDEN;
/* shield.c: a forked child that has not attached its inherited files yet. */
bool rt__shield_in_child(void) RT_HIDDEN;


/* data.c: large transfers go in windows of RT_WINDOW bytes. Pin chunks
 * [c0, c1] and have the missing ones filled (0, or -EIO: unpinned again);
 * read one window [at, at + len) the usual way (bytes read or an error). */
#define RT_WINDOW ((uint64_t)4 << 20)
int rt__pin_fill(struct rt_node *n, uint64_t c0, uint64_t c1) RT_HIDDEN;
long rt__read_window(struct rt_node *n, int fd, char *buf, uint64_t at, uint64_t len) RT_HIDDEN;

/* stream.c: a large read of clean chunks decrypted in this process: the bytes
 * read, an error, or -EAGAIN (nothing read: take the usual path). */
long rt__stream_read(struct rt_node *n, int fd, char *buf, uint64_t len, uint64_t off) RT_HIDDEN;
/* Every page of buf[len] takes a write (out) or reads: else -EFAULT (the
 * kernel's answer, given by the usual path), not a fault in the runtime. */
int rt__probe(char *buf, uint64_t len, bool out) RT_HIDDEN;
/* The last close (unmap: the node goes): wipe the hand-overs (stream.c's
 * and wstream.c's). */
void rt__stream_drop(struct rt_node *n, bool unmap) RT_HIDDEN;
/* What the server hands over for the program's own crypto of a file's
 * chunks (a streaming read, a sealed write): the AES-GCM context of its key,
 * its id and layout, a descriptor of its backing file. Kept in pages of their
 * own: rt__handover_lock makes them (*slot, at the first call; bytes a
 * multiple of the page size) with MADV_DONTDUMP and MADV_WIPEONFORK (a
 * forked child finds zeros: not ready) and returns them locked, with buf
 * (buf_bytes) mapped; NULL when busy, off or out of memory. rt__handover_take: the hand-over of a reply
 * (body: struct pf_stream_info, fds[0]), its raw key wiped: 0 or -ENOMEM.
 * rt__handover_forget: the context freed, the descriptor closed, wiped. */
#define RT_HANDOVER_RQ 4u
struct rt_handover {
	pthread_mutex_t lock; /* one user at a time; the others go the usual way */
	bool ready;
	bool off;             /* never again for this node (the user's reasons) */
	int fd;
	struct kc_aead *aead;
	struct pf_stream_info info;
	uint8_t *buf;         /* slots, page-aligned, buf_bytes mapped */
	size_t buf_bytes;
	/* Reads into parts of buf in flight (stream.c's io_submit of slot
	 * batches): rt__handover_drop ends them (io_destroy waits) before buf
	 * goes. ctx 0: none yet (zeros in a forked child: the parent's). */
	unsigned long ctx;
	struct rt_rq {        /* part i of buf: bytes [a, a + len) of the backing file */
		uint64_t a, len;
		long r;       /* once read: the bytes, or -errno */
		bool busy;    /* being read */
	} q[RT_HANDOVER_RQ];
};
void *rt__handover_lock(void *_Atomic *slot, size_t bytes, size_t buf_bytes) RT_HIDDEN;
/* The last close: forgotten, buf unmapped (unmap: the pages too). The
 * struct at *slot begins with its struct rt_handover. */
void rt__handover_drop(void *_Atomic *slot, size_t bytes, bool unmap) RT_HIDDEN;
extern const size_t rt__wstream_bytes RT_HIDDEN; /* of wstream.c's hand-over */
int rt__handover_take(struct rt_handover *h, struct rt_call *call) RT_HIDDEN;
void rt__handover_forget(struct rt_handover *h) RT_HIDDEN;
/* wstream.c: a large write of whole chunks at the end of a file this
 * process opened for writing, sealed here and written into the backing file
 * (docs/fs.md "Large writes sealed in the program's process"): the bytes
 * written from the start of buf (0: none, write them the usual way; fewer
 * than len: write the rest the usual way). */
long rt__wstream_write(struct rt_node *n, int fd, const char *buf, uint64_t len, uint64_t off)
	RT_HIDDEN;
/* data.c: make the state mapping cover chunk c (0 or -errno). */
int rt__node_words(struct rt_node *n, uint64_t c) RT_HIDDEN;

/* mmap.c */
bool rt__maps_any(void) RT_HIDDEN;
void rt__maps_after_fork(void) RT_HIDDEN;

/* stat.c */
void rt__fill_stat(struct stat *out, struct rt_vol *vol, const struct rt_stat_reply *r,
		   const struct stat *mem) RT_HIDDEN;
/* The server's answer for vol:rel, from the lookup cache when still valid. */
int rt__lookup(struct rt_vol *vol, const char *rel, struct rt_stat_reply *out) RT_HIDDEN;
/* The same, not following a symlink in the last component (lstat). */
int rt__lookup_nofollow(struct rt_vol *vol, const char *rel, struct rt_stat_reply *out) RT_HIDDEN;
/* Only from the cache: 1 when it had a valid answer (*ret set), else 0. */
int rt__lookup_cached(struct rt_vol *vol, const char *rel, int *ret,
		      struct rt_stat_reply *out) RT_HIDDEN;
void rt__lookup_own(struct rt_vol *vol, const char *rel, const struct rt_own *own,
		    uint64_t vgen, uint64_t gen, int ret, const struct rt_stat_reply *r) RT_HIDDEN;
long rt__stat_node(struct rt_node *n, struct stat *out) RT_HIDDEN;
long rt__mstat(int fd, struct stat *st) RT_HIDDEN;
/* stat of vol:rel (under the lock). */
long rt__stat_rel(struct rt_vol *vol, const char *rel, struct stat *out) RT_HIDDEN;

/* namespace.c */
void rt__say_vol(struct rt_vol *vol, const char *rel, const char *msg) RT_HIDDEN;

/* inject.c: calls on an injected file (under g_shield_lock). */
extern struct rt_node *g_vfiles RT_HIDDEN;
long rt__vfile_open(struct rt_node *n, int flags) RT_HIDDEN;
long rt__vfile_stat(struct rt_node *n, struct stat *out) RT_HIDDEN;

#endif
