/* kiln runtime, file shield v2: internals of the volume server (server.c: the
 * process, connections and commits; srv_ops.c: the requests; srv_file.c: the open files, their
 * memfds, fills, write-back, truncation and eviction). Single-threaded: no
 * locks; the clients' side of the shared state is lock-free (chunk.c). */
#ifndef KILN_RUNTIME_SHIELD_SRV_INT_H
#define KILN_RUNTIME_SHIELD_SRV_INT_H

#include <stdarg.h>
#include <time.h>

#include "runtime/shield/server.h"

/* Read-ahead window of fills (chunks): starts small, doubles while a file is
 * read sequentially. */
#define SRV_RA_MIN 16u
#define SRV_RA_MAX 1024u
/* Files up to this size are filled whole when opened (servers read small
 * files whole; one round trip instead of one per read). */
#define SRV_FILL_AT_OPEN (64u * 1024)
/* Bytes of a chunk's digest kept (SHA-256, cut: a changed chunk is taken
 * for unchanged only if 128 bits of it collide). */
#define SRV_SUM_SIZE 16
/* A sealed-write stream's backing file is flushed in the background after
 * this many bytes recorded (docs/fs.md "Flushing a stream early"). */
#define SRV_EARLY_FLUSH ((uint64_t)64 << 20)

/* One open file: its pf handle, plaintext memfd and state memfd. Owned by
 * g_srv (files list, path index); it lives while clients hold it or it holds
 * valid or dirty chunks (a cache of closed files, bounded like the rest). */
struct sfile {
	uint64_t id;
	char *path;            /* a volume path of it, malloc'd (for messages); NULL
				* once it has no name (unlinked, O_TMPFILE) */
	pf_ino_t ino;
	pf_file_t *pf;
	int memfd, statefd;    /* owned */
	struct rt_fseg *seg;   /* shared mapping of statefd */
	size_t seg_bytes;      /* mapped */
	uint64_t holds;        /* client holds (opens, attaches) */
	uint32_t maps, wmaps;  /* client mappings (writable ones) */
	uint32_t wholes;       /* writable ones of RT_MAP_WHOLE (supervised programs) */
	/* Digests of the chunks' plaintext as pf stores it (all zero: not known),
	 * for files with writable mappings, whose write-back takes every chunk
	 * as changed: the ones whose digest did not move are not stored again
	 * (srv_file.c, sums_*). malloc'd, nsums of them. */
	uint8_t (*sums)[SRV_SUM_SIZE];
	uint64_t nsums;
	bool want_commit;      /* a client asked for a durable commit */
	/* An open RT_OP_WSTREAM reservation (pf_stream_reserve): by whom, of
	 * which chunks; lease: taken with the tags of the window before it
	 * (RT_WSTREAM_NEXT), its token in seg->wlease. Commits wait while any
	 * is open (g_srv.reserved) and cancel a lease nobody is using. */
	struct sclient *resv_by;
	uint64_t resv_first, resv_count;
	bool resv_lease;
	uint64_t unflushed;    /* bytes recorded by sealed writes since the last early flush */
	uint64_t valid_stored; /* VALID chunks below stored_size */
	/* Read-ahead: the window [ra_start, ra_end) planned at the last fill,
	 * ra_next where its filling stands (run after the fill's reply). */
	uint64_t ra_start, ra_next, ra_end, ra_win;
	uint64_t hand;         /* eviction clock within the file */
	int64_t atime_saved, mtime_saved; /* the segment's times as last given to pf */
	uint64_t idle_since;   /* kiln_now_ns() of the last hold going (0: held) */
	struct sfile *next, *hnext;
};

/* One client process (its connections share its holds: a process uses
 * several, one per thread waiting on the server). */
struct shold {
	struct sfile *f;
	uint32_t holds, maps, wmaps, wholes;
	bool reads;            /* opened for reading (RT_OP_STREAM) */
	bool writes;           /* opened for writing (RT_OP_WSTREAM) */
};

struct sclient {
	pid_t pid;
	unsigned nconns;
	struct shold *holds;   /* malloc'd */
	size_t nholds, cap;
	struct sclient *next;
};

/* One connection. */
struct sconn {
	int fd;                /* owned */
	bool authed;
	bool waiting;          /* a commit reply is due */
	bool broken;           /* its reply failed: closed after the commit */
	uint8_t nonce[RT_NONCE_SIZE];
	uint64_t deadline_ns;  /* for the handshake */
	pid_t pid;
	uid_t uid;
	struct sclient *cl;    /* once authenticated */
	struct sconn *next;
};

struct srv {
	pf_volume_t *vol;
	uint32_t cs;
	int vsegfd;
	struct rt_vseg *vseg;
	struct sfile *files;
	struct sfile **by_ino; /* files with a name, by inode */
	size_t nbuckets, nfiles;
	size_t max_files;      /* open files the fd limit allows (idle ones go first) */
	uint64_t next_id;
	struct sfile *hand;    /* eviction clock over files */
	uint8_t *buf;          /* fill / write-back buffer */
	size_t buf_size;
	size_t buf_used;       /* bytes of buf holding plaintext until sf_buf_wipe */
	int log_fd;
	int lock_fd;           /* DIR/.kiln, flocked (rt__srv_open_volume); -1: pf's own */
	bool commit_all;       /* SYNCALL pending */
	bool commit_busy;      /* a commit waits for an append lock */
	bool need_commit;      /* some FSYNC pending */
	char errmsg[RT_ERRMSG_MAX]; /* message of the last failed operation */
	/* Counters, logged at exit with KILN_SHIELD_STATS=1 in the environment
	 * of the process that started the server. */
	bool stats;
	uint64_t n_requests, n_commits, n_waiters, commit_ns, n_fills, fill_chunks, n_evicted;
	uint64_t n_op[RT_OP_MAX_]; /* requests by operation */
	uint64_t n_streams, stream_chunks; /* RT_OP_STREAM requests, tags handed out */
	uint64_t n_wstreams, wstream_chunks; /* RT_OP_WSTREAM writes recorded, their chunks */
	uint64_t n_leased;     /* of them on a lease (no reserve request) */
	uint64_t n_early;      /* early flushes started during sealed writes */
	uint32_t lease_seq;    /* the last lease's token */
	uint64_t reserved;     /* files with an open RT_OP_WSTREAM reservation */
	uint64_t n_nudges, ra_after_reply; /* background write-backs; chunks read ahead after a reply */
	uint64_t n_same;       /* chunks of mapped files not stored again: digest unmoved */
	uint64_t peak_bytes;   /* most plaintext the memfds held at once (stats only) */
};
extern struct srv g_srv;

void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Remember msg (from a pf error) as the text of the next failed reply. */
int srv_fail(int code, struct kiln_err *err);

static inline uint64_t srv_nchunks(uint64_t size)
{
	return (size + g_srv.cs - 1) / g_srv.cs;
}

/* server.c's requests (srv_ops.c): serve request m of an authenticated
 * connection; 0 when the reply is sent or deferred, else the error to reply. */
int srv_serve(struct sconn *c, const struct rt_msg *m);
/* Reply status (with the message of the last srv_fail when negative). */
int srv_reply(struct sconn *c, int status);

/* srv_cred.c: the credentials a request acts with and the checks the server
 * makes with them where it calls pf without a cred. */
void srv_cred_init(void);
/* The credentials of request m (valid until the next call), or -EPERM when
 * they claim more than the workload may be. */
int srv_cred(const struct rt_msg *m, const struct pf_cred **out);
/* Listing directory path (read permission). */
int srv_may_list(const struct pf_cred *cred, const char *path);
/* chmod, utimes of path: the owner or root (EPERM); with now (times set to
 * the current time) also a writer (EACCES). */
int srv_may_setattr(const struct pf_cred *cred, const char *path, bool now);
/* The same for a file the server holds (ps: its attributes; an O_TMPFILE or
 * unlinked file has no path). */
int srv_may_setattr_of(const struct pf_cred *cred, const struct pf_stat *ps, bool now);
/* truncate of path: write permission. */
int srv_may_write(const struct pf_cred *cred, const char *path);

/* srv_file.c */
int sf_init(void);
struct sfile *sf_by_ino(pf_ino_t ino);
/* The file a path names (symlinks followed), if the server holds it. */
struct sfile *sf_by_path(const char *path);
/* A file without a name (O_TMPFILE) got one (linkat), or one more. */
void sf_linked(struct sfile *f, const char *path);
struct sfile *sf_by_id(uint64_t id);
struct sfile *sf_by_memfd_ino(uint64_t ino);
/* Open (creating per flags) path: the file, existing or new. */
int sf_open(const char *path, int flags, mode_t mode, struct sfile **out);
/* O_TMPFILE in directory dir: a file without a name (gone with its last
 * hold unless a LINK names it; with O_EXCL, it never gets one), owned by the
 * caller cred, who must be able to write dir. */
int sf_tmpfile(const char *dir, int flags, mode_t mode, const struct pf_cred *cred,
	       struct sfile **out);
/* Fill chunks [first, first + count) and plan the read-ahead after them;
 * sf_readahead fills it (after the reply: the reader goes on meanwhile). */
int sf_fill(struct sfile *f, uint64_t first, uint64_t count);
void sf_readahead(struct sfile *f);
/* Write the file's dirty chunks back through pf (not a commit). -EAGAIN: an
 * appender holds the file (sf_writeback_held: the caller holds its lock). */
int sf_writeback(struct sfile *f);
int sf_writeback_held(struct sfile *f);
int sf_truncate(struct sfile *f, uint64_t size);
int sf_fallocate(struct sfile *f, int mode, uint64_t off, uint64_t len);
int sf_grow(struct sfile *f, uint64_t words);
/* RT_OP_WSTREAM (docs/fs.md "Large writes sealed in the program's
 * process"): reserve chunks [first, first + count) at the end of f for
 * client cl (with info and fd: the hand-over), record their tags (the file
 * then ends after them; -EAGAIN: not recorded; next: and lease the next
 * window's chunks, see lease()), or cancel. sf_wstream_drop: cl went away,
 * its reservations are cancelled. sf_wstream_unlease, with f's append lock:
 * f's reservation (a lease nobody is using) cancelled; sf_wstream_revoke:
 * the same when the lock is free, true when f has none left. */
int sf_wstream_reserve(struct sfile *f, struct sclient *cl, uint64_t first, uint64_t count,
		       struct pf_stream_info *info, int *fd);
int sf_wstream_done(struct sfile *f, struct sclient *cl, uint64_t first, uint64_t count,
		    const uint8_t *tags, bool next);
void sf_wstream_unlease(struct sfile *f);
bool sf_wstream_revoke(struct sfile *f);
int sf_wstream_cancel(struct sfile *f, struct sclient *cl);
void sf_wstream_drop(struct sclient *cl);
/* A hold (or a mapping) less; frees an unlinked file's last hold. */
void sf_unhold(struct sfile *f);
void sf_unmap(struct sfile *f, unsigned flags); /* RT_MAP_* as mapped */
/* The file's last name went away (unlink, replaced by rename); renamed
 * from -> to. */
void sf_unlinked(struct sfile *f);
void sf_renamed(const char *from, const char *to);
/* f's attributes (size from the memfd, the rest from its segment) into r
 * (every field but id, ino, cacheable and kind). */
int sf_stat(struct sfile *f, struct rt_stat_reply *r);
/* pf's view of f's inode into its segment after a change the server made
 * (chmod, link, rename...): mode, links, owner, blocks, a later ctime. */
void sf_attrs(struct sfile *f);
/* utimensat of f: the segment's and pf's times (RT_UT_* flags). */
int sf_utimes(struct sfile *f, unsigned flags, int64_t atime_ns, int64_t mtime_ns);
/* lseek SEEK_DATA / SEEK_HOLE on f's stored content (written back first). */
int sf_seek(struct sfile *f, int whence, uint64_t off, uint64_t *out);

/* Keep the cache under its bound: write back, then evict clean chunks. */
void sf_balance(bool writeback_all);
void sf_free_all(void);
/* Wipe what the fills and write-backs since the last call left in g_srv.buf:
 * once per turn of the server's loop and after the final write-back, not
 * after every window of a request (a streaming read or write-back wiped
 * 1 MiB per MiB). */
void sf_buf_wipe(void);
/* Close files nobody holds, oldest first, while there are more than the fd
 * limit allows (and, with all, every idle one older than the grace). */
void sf_reap(bool all);

/* srv_node.c: FIFOs and sockets (their kernel objects in a private
 * directory, named by inode number). */
/* The node ps (a FIFO or socket) exists in pf and cred (NULL: the server)
 * looks it up or makes it: make the directory, let cred's uid reach it, and
 * make the FIFO with the node's owner and mode. 0 or -errno. */
int sn_ready(const struct pf_stat *ps, const struct pf_cred *cred);
/* Its last name went: remove its FIFO or socket file. */
void sn_gone(pf_ino_t ino);
/* At exit: the directory and everything in it. */
void sn_cleanup(void);

#endif
