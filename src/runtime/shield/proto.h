/* kiln runtime, file shield v2: what the volume server and its clients share.
 *
 * One volume server per volume per host owns the pf volume (keys, metadata,
 * sealing, commits); every process of the workload is a client (docs/runtime.md
 * "The volume server"). They share:
 *
 *  - a Unix socket (SOCK_SEQPACKET, abstract name derived from the volume key
 *    and the identity of DIR/.kiln) carrying the messages below, mutually
 *    authenticated by proof of the volume key (auth.c) plus SO_PEERCRED;
 *  - the volume segment (struct rt_vseg): a small memfd mapped by everyone,
 *    with the server's liveness word (a robust futex: the kernel marks it
 *    FUTEX_OWNER_DIED when the server dies), the namespace generation and the
 *    cache counters;
 *  - per open regular file, a sparse memfd with its plaintext (every app fd on
 *    the file is an open of it, so data, size, O_APPEND, mmap and locks are
 *    the kernel's) and a state memfd (struct rt_fseg): one 32-bit word per
 *    chunk (valid, dirty, busy, pin count), the size pf stores, the eviction
 *    sequence.
 *
 * Chunk words (chunk.c): a client pins the chunks it reads or writes (pins
 * forbid eviction), asks the server to fill those not VALID (decrypt and
 * verify into the memfd), does the native read or write, marks written chunks
 * VALID|DIRTY and unpins. Only the server clears VALID (eviction: claim with
 * BUSY when unpinned and clean, punch a hole, clear) and DIRTY (write-back:
 * clear, then read the chunk and seal it; a write that lands meanwhile marks
 * it again). Chunks at or past stored_size hold no data in pf: a chunk there
 * that is not VALID reads as zeros and needs no fill.
 *
 * Everything here is plain data and pure functions (no libkiln state), so the
 * unit tests, the fuzz target, the CLI and libkiln build the same sources. */
#ifndef KILN_RUNTIME_SHIELD_PROTO_H
#define KILN_RUNTIME_SHIELD_PROTO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

#define RT_SHIELD_VERSION 1u
#define RT_KEY_SIZE 32

/* ---- shared memory ---------------------------------------------------------- */
#define RT_VSEG_MAGIC 0x3130677365736b6bull /* "kksesg01" */
#define RT_FSEG_MAGIC 0x3130676573666b6bull /* "kkfseg01" */

/* rt_vseg.server: the server thread's tid while it runs (a robust futex: on
 * its death the kernel sets RT_FUTEX_OWNER_DIED); RT_VSEG_CLOSED after a clean
 * exit. Either way the server's memfds are no longer backed by a volume. */
#define RT_FUTEX_OWNER_DIED 0x40000000u
#define RT_VSEG_CLOSED 0x80000000u

struct rt_robust_entry {
	struct rt_robust_entry *next; /* the server's robust list (its addresses) */
};

struct rt_vseg {
	uint64_t magic;
	uint32_t version;
	uint32_t chunk_size;
	_Atomic uint32_t server;      /* see above */
	_Atomic uint32_t wb_nudged;   /* a writer asked for a background write-back
				       * and the server has not run it yet */
	_Atomic uint64_t ns_gen;      /* bumped by the server on every namespace change */
	_Atomic uint64_t cache_bytes; /* plaintext chunks held in memfds (VALID) */
	_Atomic uint64_t dirty_bytes; /* of which not yet written back */
	uint64_t cache_limit;         /* KILN_FILE_CACHE */
	uint64_t dirty_limit;         /* writers wait for write-back above this */
	uint64_t dirty_background;    /* writers nudge the server above this */
	struct rt_robust_entry robust; /* the server's robust-list entry; the futex
					* word is `server` (futex_offset below) */
	/* The private directory (0700) where the kernel objects of the volume's
	 * FIFOs and sockets live, named by inode number ("" until the first):
	 * set once by the server before it answers the request that needed it. */
	char nodes_dir[40];
	/* The connections the server holds now (proved or not) and has ever
	 * accepted: a client leaving (exit) is the last when every connection is
	 * its own, and stops waiting for the server's close when another came
	 * (rt__srv_wait_closed). Appended: a server without them leaves zeros
	 * (the memfd's), and its clients never wait. */
	_Atomic uint32_t conns;
	_Atomic uint32_t accepts;
};
/* "<nodes_dir>/<inode number>" (an AF_UNIX sun_path holds 108 bytes). */
#define RT_NODE_PATH_MAX 64

/* Chunk words. */
#define RT_CK_VALID 0x1u  /* the memfd holds this chunk's plaintext */
#define RT_CK_DIRTY 0x2u  /* written since the last write-back */
#define RT_CK_BUSY 0x4u   /* being evicted by the server */
#define RT_CK_PIN 0x100u  /* one pin (a read or write in progress) */
#define RT_CK_PINS 0xffffff00u

/* Flags of RT_OP_MAP and RT_OP_UNMAP. */
#define RT_MAP_WRITE 0x1u /* a writable shared mapping */
/* With RT_MAP_WRITE: the supervisor of a static program (whose reads and
 * writes of the memfd do not trap) holds the file: every byte below the
 * memfd's size is the file's, also past the size pf stores (a write there
 * left no mark). */
#define RT_MAP_WHOLE 0x2u

/* RT_OP_WRITEBACK's flags */
#define RT_WB_NUDGE 0x1u

/* rt_fseg.flags */
#define RT_FS_FAILED 0x1u   /* write-back failed: the file refuses writes */
#define RT_FS_NOEVICT 0x2u  /* mapped or supervised: never evicted */
#define RT_FS_SIZESEQ 0x4u  /* the server keeps size_seq (a client may trust it) */

struct rt_fseg {
	uint64_t magic;
	uint32_t chunk_size;
	_Atomic uint32_t flags;
	_Atomic uint64_t evict_seq;   /* odd while chunks are being evicted */
	_Atomic uint64_t stored_size; /* the file's size in pf (see above) */
	_Atomic uint64_t nwords;      /* chunk words the state memfd holds */
	_Atomic uint32_t all_valid;   /* every chunk below stored_size is VALID */
	/* Bumped after every change of the memfd's size made through the
	 * shield: a client's write (rt__ck_mark), the server's truncate,
	 * fallocate, and the end of a whole mapping (a supervised program's
	 * writes do not trap; while it is mapped, RT_FS_NOEVICT, nobody trusts
	 * it). A client that saw the same value before and after its own fstat
	 * of the memfd may answer later fstats with that size while the value
	 * stays (stat.c): nginx's fstat of every file it serves costs no
	 * system call. */
	_Atomic uint32_t size_seq;
	/* The inode's attributes while the server holds the file (stat of an
	 * open file reads them here, without a round trip; the memfd's own
	 * times move with the server's fills and evictions and mean nothing).
	 * The server sets them from pf when it opens the file and after every
	 * change it makes (chmod, utimes, link, rename...); a client's write
	 * sets mtime and ctime (rt__ck_mark); the server stores atime and
	 * mtime back into pf at write-back. Each field is read and written
	 * whole (a stat may see one change and not the next, as with the
	 * kernel's). blocks: 512-byte units pf stores. */
	_Atomic int64_t atime_ns, mtime_ns, ctime_ns;
	_Atomic uint64_t blocks;
	_Atomic uint32_t mode;        /* type bits | permission bits */
	_Atomic uint32_t nlink, uid, gid;
	/* The append lock: a robust, process-shared mutex (its owner's death
	 * releases it: EOWNERDEAD for the next one, even if the owner is a
	 * zombie nobody reaps). Initialized by the server. */
	pthread_mutex_t append_lock;
	/* The token of the open RT_OP_WSTREAM lease (srv_file.c, lease()), 0:
	 * none. Changed by the server with the append lock held, or in the
	 * request whose client holds it. */
	_Atomic uint32_t wlease;
	_Atomic uint32_t w[];         /* one per chunk */
};
#define RT_FSEG_HDR ((size_t)offsetof(struct rt_fseg, w))

static inline size_t rt_fseg_bytes(uint64_t nwords)
{
	return RT_FSEG_HDR + (size_t)nwords * sizeof(uint32_t);
}

/* ---- chunk words (chunk.c) -------------------------------------------------- */
/* Client: pin chunks [c0, c1] (c1 < nwords). Returns how many need a fill
 * (not VALID, or BUSY, below stored_size) and their first and last index. */
uint64_t rt__ck_pin(struct rt_fseg *f, uint64_t c0, uint64_t c1, uint64_t *lo, uint64_t *hi);
/* Re-check pinned chunks after a fill: the count still missing. */
uint64_t rt__ck_missing(struct rt_fseg *f, uint64_t c0, uint64_t c1, uint64_t *lo,
			uint64_t *hi);
void rt__ck_unpin(struct rt_fseg *f, uint64_t c0, uint64_t c1);
/* Client, after a completed write of pinned chunks: VALID|DIRTY, counted;
 * the file's mtime and ctime become now. */
void rt__ck_mark(struct rt_fseg *f, struct rt_vseg *v, uint64_t c0, uint64_t c1);
/* The file's content changed (a write, a truncation): mtime = ctime = now,
 * and size_seq moves. */
void rt__fseg_touch(struct rt_fseg *f);
/* The memfd's size may have changed without a mark on the times: size_seq
 * moves. */
void rt__fseg_resized(struct rt_fseg *f);
/* Server: fill done (the memfd holds chunk c). True when it was not VALID. */
bool rt__ck_set_valid(struct rt_fseg *f, uint64_t c);
/* Server: claim c for eviction (VALID, clean, unpinned, not busy -> BUSY). */
bool rt__ck_claim(struct rt_fseg *f, uint64_t c);
/* Server: eviction of a claimed chunk done (clears VALID and BUSY). */
void rt__ck_evicted(struct rt_fseg *f, uint64_t c);
/* Server: take the DIRTY bit (write-back); true when it was set. */
bool rt__ck_take_dirty(struct rt_fseg *f, uint64_t c);
/* The file's append lock: an appender holds it from finding the end of the
 * file to marking what it wrote; the evictor only tries it. A holder that
 * died is taken over. */
int rt__ck_lock_init(struct rt_fseg *f);
bool rt__ck_trylock(struct rt_fseg *f);
void rt__ck_lock(struct rt_fseg *f);
void rt__ck_unlock(struct rt_fseg *f);

/* ---- messages ------------------------------------------------------------------
 * One SOCK_SEQPACKET packet per message: a header and a body whose layout the
 * op fixes (little-endian integers, then NUL-terminated strings). A client
 * has at most one request outstanding per connection; the server answers each
 * with a reply (status 0 / -errno, a body, maybe fds). */
#define RT_MSG_MAX (64 * 1024)
#define RT_MSG_HDR 8
#define RT_MSG_PATH_MAX 4096
#define RT_ERRMSG_MAX 512

enum rt_op {
	RT_OP_HELLO = 1,   /* server -> client on accept: version, nonce */
	RT_OP_AUTH,        /* client proof: version, pid, nonce, mac */
	RT_OP_OPEN,        /* flags, mode, path -> file (or dir) + fds; O_NOFOLLOW;
			    * O_TMPFILE: path is the directory */
	RT_OP_ATTACH,      /* file id: this connection holds it too (fork, exec) */
	RT_OP_RELEASE,     /* file id: one hold less */
	RT_OP_FILL,        /* file id, first chunk, count */
	RT_OP_FSYNC,       /* file id, flags */
	RT_OP_SYNCALL,     /* commit everything (exit, syncfs), or flags RT_SYNC_NAMESPACE:
			    * the names (directory fsync) */
	RT_OP_TRUNCATE,    /* file id (0: by path), size, path */
	RT_OP_FALLOCATE,   /* file id, mode, offset, length */
	RT_OP_STAT,        /* path -> attributes */
	RT_OP_UNLINK,      /* flags (AT_REMOVEDIR), path -> struct rt_own */
	RT_OP_MKDIR,       /* mode, path */
	RT_OP_RENAME,      /* flags, from, to */
	RT_OP_CHMOD,       /* file id (0: by path), mode, path */
	RT_OP_UTIMES,      /* file id (0: by path), flags RT_UT_*, atime ns, mtime ns, path */
	RT_OP_READDIR,     /* cookie, path -> entries */
	RT_OP_MAP,         /* file id, flags RT_MAP_*: mapped (never evicted) */
	RT_OP_UNMAP,       /* file id, flags as at the MAP */
	RT_OP_WRITEBACK,   /* wait until dirty data is under the limit; flags
			    * RT_WB_NUDGE: answered first, written back after */
	RT_OP_GROW,        /* file id, words: make the state memfd hold them */
	RT_OP_CHOWN,       /* file id (0: by path), flags, uid, gid ((u32)-1: unchanged), path */
	RT_OP_SEEK,        /* file id, whence (SEEK_DATA/SEEK_HOLE), offset -> u64 offset */
	RT_OP_LINK,        /* file id (0: by path), flags AT_SYMLINK_FOLLOW, from, to */
	RT_OP_SYMLINK,     /* target, path */
	RT_OP_READLINK,    /* path -> the target's bytes */
	RT_OP_MKNOD,       /* mode (S_IFIFO/S_IFSOCK | bits), path -> u64 inode */
	RT_OP_ESCAPE,      /* flags RT_STAT_NOFOLLOW, path -> where it leaves the volume
			    * through a symlink: the rest of the path (absolute, or
			    * relative to the mount point); empty when it does not */
	RT_OP_STREAM,      /* file id, first chunk, count (<= RT_STREAM_MAX), flags
			    * RT_STREAM_KEY: the tags reads of those chunks check
			    * (16 bytes each: pf_stream_tags), after, with
			    * RT_STREAM_KEY, the hand-over (struct pf_stream_info)
			    * and its backing file's O_DIRECT fd; only for a file
			    * this process opened for reading (docs/runtime.md) */
	RT_OP_WSTREAM,     /* file id, first chunk, count (<= RT_WSTREAM_MAX), flags:
			    * none: reserve whole chunks [first, first + count) at
			    * the end of the file for the program's own sealed
			    * write (pf_stream_reserve); with RT_STREAM_KEY the
			    * reply brings the hand-over (struct pf_stream_info)
			    * and a descriptor of the backing file open for
			    * writing. RT_WSTREAM_DONE: the slots are written,
			    * their tags (16 bytes each) follow (pf_stream_record;
			    * -EAGAIN: not recorded, write the range again the
			    * usual way); RT_WSTREAM_CANCEL: nothing recorded.
			    * Only for a file this process opened for writing
			    * (docs/runtime.md) */
	RT_OP_MAX_
};
#define RT_STREAM_KEY 0x1u
#define RT_STREAM_MAX 2048u
#define RT_WSTREAM_DONE 0x2u
#define RT_WSTREAM_CANCEL 0x4u
/* With RT_WSTREAM_DONE: also reserve the next RT_WSTREAM_MAX chunks (a
 * lease, docs/fs.md); the reply's status is its token, 0: none. */
#define RT_WSTREAM_NEXT 0x8u
/* Chunks of one RT_OP_WSTREAM: their tags fit a request (rt__request's
 * buffer holds two paths and the credentials, 9 KiB). */
#define RT_WSTREAM_MAX 512u

/* Flags of RT_OP_UTIMES (utimensat's UTIME_NOW and UTIME_OMIT per time).
 * Both now (utimensat with NULL times): the owner or a writer may set them;
 * any explicit time: the owner; both omitted: nothing to check. */
#define RT_UT_ATIME_NOW 0x1u
#define RT_UT_ATIME_OMIT 0x2u
#define RT_UT_MTIME_NOW 0x4u
#define RT_UT_MTIME_OMIT 0x8u
#define RT_UT_ALL 0xfu
/* utimensat with AT_SYMLINK_NOFOLLOW (RT_OP_UTIMES, with the RT_UT_* bits)
 * and lchown (RT_OP_CHOWN's flags): a symlink in the last component is the
 * one changed. */
#define RT_UT_NOFOLLOW 0x10u
#define RT_CHOWN_NOFOLLOW 0x1u

/* Flags of RT_OP_STAT. */
#define RT_STAT_NOFOLLOW 0x1u /* lstat: a symlink in the last component is the answer */

/* Flags of RT_OP_SYNCALL. */
#define RT_SYNC_NAMESPACE 0x1u /* the names only (fsync of a directory): a commit
				* that writes no file's data back */

/* Flags of RT_OP_FSYNC. */
#define RT_FSYNC_COMMIT 0x1u /* durable commit (else: written back only) */
/* Flags of RT_OP_ATTACH: send the file's fds even if this process holds it
 * already. Otherwise OPEN and ATTACH pass fds only with a process's first
 * hold: a process that holds the file has them, and closing a duplicate would
 * drop the POSIX locks the process holds on the file (fcntl(2)). */
#define RT_ATTACH_FDS 0x1u
#define RT_ATTACH_HAVE 0x2u /* never send them: this process has them (a fork) */

/* The credentials a request acts with (ops that name a path): the calling
 * thread's fsuid, fsgid and supplementary groups (the first RT_CRED_GROUPS:
 * a check may then deny what the kernel would allow, never the reverse). The
 * server checks them against pf's modes and owners (pf_permission), never
 * for more than the workload's own uid may do (server.c). */
#define RT_CRED_GROUPS 256
struct rt_cred {
	uid_t uid;
	gid_t gid;
	uint32_t ngroups;
	gid_t groups[RT_CRED_GROUPS];
};

struct rt_msg {
	uint32_t op;
	uint32_t flags;  /* op-specific (open flags, unlink flags, ...) */
	uint32_t mode;
	uint32_t pid;
	uint64_t id;     /* file id */
	uint64_t a, b;   /* op-specific numbers (chunk/count, size, cookie, ...) */
	const char *path;  /* points into the parsed buffer */
	const char *path2;
	const uint8_t *nonce; /* RT_NONCE_SIZE bytes */
	const uint8_t *mac;   /* RT_MAC_SIZE bytes */
	/* RT_OP_WSTREAM with RT_WSTREAM_DONE: b * 16 bytes of tags. */
	const uint8_t *tags;
	/* Ops that name a path (strings) carry credentials after the strings:
	 * uid u32, gid u32, ngroups u32, groups u32 each. Encode takes them from
	 * cred, or (cred NULL) from uid, gid, ngroups, groups_le as a parse left
	 * them; parse sets those (groups_le: ngroups little-endian u32 in the
	 * packet, read with rt__msg_cred). */
	const struct rt_cred *cred;
	uint32_t uid, gid, ngroups;
	const uint8_t *groups_le;
};

/* Serialize m (fields per m->op) into buf[RT_MSG_MAX]: the packet size, or
 * -ENAMETOOLONG / -EINVAL. */
ssize_t rt__msg_encode(const struct rt_msg *m, uint8_t *buf, size_t size);
/* Parse one packet of a peer: 0 with *m filled (pointers into buf), or
 * -EPROTO for anything malformed (unknown op, wrong length, a string without
 * its NUL, a path longer than RT_MSG_PATH_MAX). */
int rt__msg_parse(const uint8_t *buf, size_t size, struct rt_msg *m);
/* What opening an existing file with open(2) flags needs: R_OK | W_OK (the
 * values of PF_MAY_READ, PF_MAY_WRITE); O_TRUNC writes. */
int rt__open_may(int flags);
/* Whether messages of op carry credentials (the ops that name a path). */
bool rt__msg_has_cred(uint32_t op);
/* The credentials of a parsed message (zeros for an op without them). */
void rt__msg_cred(const struct rt_msg *m, struct rt_cred *out);

/* Replies: status (int32), body length, body. */
/* A request's own namespace change, in the OPEN reply (rt_stat_reply.own)
 * and as the UNLINK reply's body: the namespace generation before and after
 * it. vouched: the generation moved from `from` to `to` by this request alone
 * and the volume has no symlinks (one walk per node), so the client keeps the
 * answers the change leaves true (stat.c, docs/runtime.md "The lookup cache
 * and a process's own changes"). to: the generation the reply is of. ino, id:
 * the inode changed and the server's file id of an unlinked file (0: none). */
struct rt_own {
	uint64_t from, to, ino, id;
	uint32_t vouched, pad;
};

struct rt_stat_reply {
	uint64_t id;        /* file id when the reply opened a file, else 0 */
	uint64_t ino;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint32_t mode;      /* type bits (S_IFREG, S_IFDIR, ...) | permission bits */
	uint32_t nlink;
	uint32_t uid, gid;
	uint32_t cacheable; /* no memfd holds the file: size and mtime hold until ns_gen moves */
	uint32_t kind;      /* enum pf_region_kind */
	int64_t atime_ns;
	uint64_t blocks;    /* 512-byte units stored (holes take none) */
	struct rt_own own;  /* OPEN only (else zeros) */
};

/* Directory entries in a READDIR reply: next cookie (0: end), then per entry
 * ino (u64), type (u8, DT_*), name (NUL-terminated). */

/* ---- transport (proto.c) ------------------------------------------------------- */
/* Send one packet with up to 2 fds (nfds), MSG_NOSIGNAL; dontwait: MSG_DONTWAIT
 * (the server never blocks on a client). 0 or -errno. */
int rt__pkt_send(int sock, const void *buf, size_t size, const int *fds, int nfds,
		 bool dontwait);
/* Receive one packet (fds close-on-exec, at most 2, *nfds set; extra ones
 * closed). The size (0 at EOF), -EMSGSIZE when truncated, or -errno. */
ssize_t rt__pkt_recv(int sock, void *buf, size_t size, int *fds, int *nfds, bool dontwait);

/* A reply: status, body (may be NULL/0), fds. */
int rt__reply_send(int sock, int32_t status, const void *body, size_t size, const int *fds,
		   int nfds);
/* Parse a reply packet: status and body within buf. -EPROTO if malformed. */
int rt__reply_parse(const uint8_t *buf, size_t size, int32_t *status, const uint8_t **body,
		    size_t *body_size);

/* The last client of a volume leaving (its own connections closed, the server
 * then holding none: accepts was seg->accepts before they closed): wait until
 * the server has committed, closed the volume and let its lock go (or died):
 * 0; until another connection came, which keeps it running: 1; at most
 * timeout_ms: -ETIMEDOUT. So `kiln run` returns with the volume closed. */
#define RT_CLOSE_WAIT_MS 10000
int rt__srv_wait_closed(struct rt_vseg *seg, uint32_t accepts, unsigned timeout_ms);

/* ---- authentication (auth.c) --------------------------------------------------
 * Keys derived from the volume key with HKDF-SHA256: one for the socket name,
 * one for the challenge. The client proves the key over (server nonce, client
 * nonce, client pid), the server over (client nonce, server nonce); each side
 * checks the other's MAC in constant time. A peer without the key learns
 * nothing but two random nonces. */
#define RT_NONCE_SIZE 32
#define RT_MAC_SIZE 32
#define RT_SOCK_NAME_MAX 64

struct rt_auth_keys {
	uint8_t name[RT_KEY_SIZE];
	uint8_t mac[RT_KEY_SIZE];
};
int rt__auth_derive(const uint8_t key[static RT_KEY_SIZE], struct rt_auth_keys *k);
void rt__auth_wipe(struct rt_auth_keys *k);
/* The abstract socket name (without the leading NUL): "kiln-shield-<hex>" from
 * the name key and the device and inode of DIR/.kiln. */
void rt__auth_sock_name(const struct rt_auth_keys *k, uint64_t dev, uint64_t ino,
			char out[static RT_SOCK_NAME_MAX]);
int rt__auth_client_mac(const struct rt_auth_keys *k, const uint8_t *ns, const uint8_t *nc,
			uint32_t pid, uint8_t out[static RT_MAC_SIZE]);
int rt__auth_server_mac(const struct rt_auth_keys *k, const uint8_t *nc, const uint8_t *ns,
			uint8_t out[static RT_MAC_SIZE]);

/* Client side of the handshake on a connected socket: HELLO, AUTH, reply.
 * On success *vseg_fd is the volume segment (owned by the caller). Errors:
 * -KILN_EAUTH the peer does not hold the key (an impostor on the name, or a
 * different key), -EPROTO garbage, -ECONNRESET the server went away. */
int rt__auth_client(int sock, const struct rt_auth_keys *k, uint32_t pid, int *vseg_fd);

/* ---- requests (proto.c) -------------------------------------------------------
 * One request and its reply on a connected, authenticated socket (blocking).
 * reply[RT_MSG_MAX] receives the reply packet; *body points into it. fds
 * (may be NULL) receive up to 2 passed fds (owned by the caller), -1 else.
 * Returns the reply's status (>= 0 or -errno), -ECONNRESET when the server is
 * gone, -EPROTO for a malformed reply. errmsg (may be NULL, RT_ERRMSG_MAX)
 * receives the server's message of a failed request. */
int rt__request(int sock, const struct rt_msg *m, uint8_t *reply, const uint8_t **body,
		size_t *body_size, int fds[2], char *errmsg);

#endif
