/* kiln protected files: the one header of src/pf/.
 *
 * A volume is a directory whose files are stored encrypted (or authenticated, or
 * plain) in chunks, with one AEAD-encrypted metadata file holding the namespace
 * (an inode table: directories name inodes; a regular file's inode holds its
 * key, id and root) (design §4, on-disk format in docs/fs.md).
 * The library does no I/O of its own: storage, and freshness of the metadata
 * (its version, a counter advanced by every commit), are callbacks
 * (pf_storage_ops, pf_freshness_ops) with POSIX and local-file defaults, so
 * unit tests inject faults and the CAS can hold the trusted version.
 *
 * Paths are volume-relative ("a/b.txt"; a leading '/' is accepted; "" or "/" is
 * the root directory), resolved as the kernel resolves them ("Library API v2"
 * below): symlinks inside the volume are followed, "." and ".." work, a path
 * that leaves the volume gives -EXDEV.
 *
 * Concurrency: every function taking a pf_volume_t or a pf_file_t of that volume
 * is thread-safe (one mutex per volume). Two handles on one path share one
 * in-memory file state, so a write through one is seen by a read through the
 * other, as with POSIX fds.
 *
 * Durability: writes reach the backing files immediately, but become the file's
 * committed content only at pf_fsync (or pf_volume_flush / pf_volume_close).
 * After a crash at any moment, each file reopens with the content of its last
 * completed fsync (or a later one); namespace changes (create, rename, unlink,
 * mkdir) become durable with the next fsync of any file, pf_fsync_dir or
 * pf_volume_flush. A file created and never fsync'd does not survive a crash
 * (unless pf_volume_publish put it in the metadata: then it may come back
 * empty).
 *
 * Errors: 0 / byte counts on success, negative -errno or -KILN_E* (common.h):
 * -KILN_EKEY wrong volume key, -KILN_EAUTH a chunk/header/metadata fails
 * authentication, -KILN_EROLLBACK metadata older than the trusted version,
 * -KILN_ECONFLICT metadata newer than the trusted version, -KILN_EFORMAT not a kiln
 * volume / malformed, -ENOENT missing metadata or path. The `err` argument (may
 * be NULL) receives a one-line message naming the file and chunk. */
#ifndef KILN_PF_H
#define KILN_PF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

#define PF_KEY_SIZE 32
#define PF_DEFAULT_CHUNK_SIZE 4096
#define PF_MIN_CHUNK_SIZE 512
#define PF_MAX_CHUNK_SIZE (1024 * 1024)
#define PF_MAX_PATH 4096
#define PF_MAX_REGIONS 64

typedef struct pf_volume pf_volume_t;
typedef struct pf_file pf_file_t;

/* ---- storage callbacks (SQLite VFS / Gramine pf_set_callbacks style) ----------
 * Names are flat, relative to the storage root ("meta", "meta.tmp",
 * "<32 hex>" backing file, "<32 hex>.j" journal, "<32 hex>.t" tag sidecar); no
 * '/' in them. Every function returns 0 (or a byte
 * count) or -errno. Short reads happen only at EOF; pwrite may be short (the
 * library retries). `fh` is an opaque per-open handle owned by the storage. */
#define PF_SO_CREATE 1u   /* create if missing */
#define PF_SO_EXCL 2u     /* with CREATE: fail with -EEXIST if it exists */
#define PF_SO_TRUNC 4u    /* truncate to 0 */
#define PF_SO_RDONLY 8u   /* open for reading only */

struct pf_storage_ops {
	int (*open)(void *ctx, const char *name, unsigned flags, void **fh);
	ssize_t (*pread)(void *ctx, void *fh, void *buf, size_t size, uint64_t off);
	ssize_t (*pwrite)(void *ctx, void *fh, const void *buf, size_t size, uint64_t off);
	int (*get_size)(void *ctx, void *fh, uint64_t *size);
	int (*truncate)(void *ctx, void *fh, uint64_t size);
	int (*sync)(void *ctx, void *fh);          /* fdatasync-like */
	int (*close)(void *ctx, void *fh);
	int (*remove)(void *ctx, const char *name); /* -ENOENT if missing */
	int (*rename)(void *ctx, const char *from, const char *to); /* atomic replace */
	int (*sync_dir)(void *ctx);                /* make creates/renames/removes durable */
	/* Call cb for each name in the storage root; optional (NULL: no orphan GC). */
	int (*list)(void *ctx, int (*cb)(void *arg, const char *name), void *arg);
	/* Release ctx (called by pf_volume_close); may be NULL. */
	void (*free)(void *ctx);
	/* Optional (NULL: one sync per file): make every file of the storage
	 * durable at once (syncfs), used when one commit covers many files. */
	int (*sync_all)(void *ctx);
	/* Optional (NULL, or -ENOENT/-EINVAL/-ENOSYS: rename is used): swap two
	 * names atomically (renameat2 RENAME_EXCHANGE). The metadata is replaced
	 * this way so that its two files are reused instead of created and
	 * deleted on every commit. */
	int (*exchange)(void *ctx, const char *a, const char *b);
	/* Optional (NULL: sync, one after the other): start making fh durable
	 * and return at once; sync_wait waits for every sync started since the
	 * last sync_wait and returns 0 or the first error. A commit overlaps the
	 * syncs of its files' data, of the new metadata and the freshness
	 * prepare this way. fh stays open until sync_wait returns. */
	int (*sync_start)(void *ctx, void *fh);
	int (*sync_wait)(void *ctx);
	/* Optional (NULL: sync_start starts each sync at once): a storage may
	 * queue what sync_start asks and start the queue together here, or in
	 * sync_wait at the latest. pf calls it before work the syncs overlap
	 * outside the storage (the freshness prepare). An error is reported by
	 * sync_wait too. */
	int (*sync_submit)(void *ctx);
	/* Optional hint (NULL: none): start writing [off, off+len) of fh back to
	 * stable storage without waiting (sync_file_range WRITE), so that the
	 * next sync has less left to do. Guarantees nothing; errors are ignored
	 * (the sync reports them). len 0: from off to the end, at once (a
	 * storage may batch other hints). */
	int (*writeback)(void *ctx, void *fh, uint64_t off, uint64_t len);
	/* Optional (NULL: unknown, reported as 0): bytes of the file system that
	 * holds the storage, in total, free, and available to this user. */
	int (*space)(void *ctx, uint64_t *total, uint64_t *free, uint64_t *avail);
	/* Optional (NULL: zeros are written instead): deallocate [off, off+len)
	 * of fh so it reads as zeros and takes no space
	 * (fallocate PUNCH_HOLE|KEEP_SIZE). -EOPNOTSUPP falls back too. */
	int (*punch)(void *ctx, void *fh, uint64_t off, uint64_t len);
	/* Optional (NULL: every read is pread): read [off, off+size) of fh
	 * around the page cache (O_DIRECT) into buf, unless that range is all
	 * in the page cache or has pages not yet written back; buf, off and
	 * size are multiples of PF_DIO_ALIGN. Returns the bytes read (short
	 * only at EOF), -EAGAIN in those two cases (pread is cheaper then, and
	 * does not force the write-back), or another
	 * -errno (no O_DIRECT here: the file system refused it, EINVAL). On
	 * any error the library reads the range with pread instead. Used for
	 * the batches of sequential reads: a cold read then costs no copy out
	 * of the page cache and no page allocation per byte. */
	ssize_t (*pread_direct)(void *ctx, void *fh, void *buf, size_t size, uint64_t off);
	/* Optional (NULL: sync_dir at once): start a sync_dir and return at
	 * once, with sync_start; sync_wait waits for it too. A commit log
	 * record syncs the names its commit created in its group this way. */
	int (*sync_dir_start)(void *ctx);
	/* Optional (NULL: no streaming reads outside pf): a new read-only
	 * O_DIRECT descriptor of fh's file (close-on-exec), or -errno. */
	int (*direct_fd)(void *ctx, void *fh);
	/* Optional (NULL: no sealed writes outside pf): a new descriptor of
	 * fh's file open for writing (buffered, close-on-exec), or -errno. */
	int (*write_fd)(void *ctx, void *fh);
	/* Optional (NULL: none): start making fh durable in the background
	 * (fdatasync) and return at once, never waited for here: 1 started, 0
	 * not (one is still in flight, or none can be started). An error of
	 * that sync is returned by the next sync or sync_start of fh, which
	 * also waits for it to end first. Guarantees nothing: the commit's own
	 * sync still covers everything. */
	int (*flush_start)(void *ctx, void *fh);
};

/* The alignment pread_direct asks of buffer, offset and length: the page
 * size, a multiple of every logical block size O_DIRECT asks for. */
#define PF_DIO_ALIGN 4096u

/* Default storage: POSIX files in `dir` (created with 0700 when `create`),
 * holding an exclusive flock on `dir` until freed (-EBUSY when another process
 * holds it). On success *ops points to static ops and *ctx is owned by the
 * volume once passed to pf_volume_open/init (or freed with ops->free on the
 * caller's error path). */
int pf_storage_posix(const char *dir, bool create, const struct pf_storage_ops **ops,
		     void **ctx, struct kiln_err *err);
/* The same storage over an open storage directory dirfd (borrowed: the storage
 * keeps a copy), which the caller has checked (kiln_open_own_dir) and locked:
 * no lock is taken here, and the caller's lock is released by the caller. */
int pf_storage_posix_fd(int dirfd, const struct pf_storage_ops **ops, void **ctx);

/* ---- freshness provider ------------------------------------------------------
 * Holds the trusted metadata version (a counter, 0 = none yet). Protocol per
 * metadata update: prepare(N+1) -> atomic rename of the new metadata ->
 * commit(N+1). On open, a metadata version equal to the committed or the
 * prepared version is accepted (a prepared one is then committed); older is a
 * rollback (pf__check_freshness in freshness.c). */
struct pf_freshness_ops {
	int (*prepare)(void *ctx, uint64_t version, struct kiln_err *err);
	int (*commit)(void *ctx, uint64_t version, struct kiln_err *err);
	/* Optional (NULL, or -EOPNOTSUPP having done nothing: prepare is
	 * used): prepare's write without its device flush, waited for until
	 * the device has it (sync_file_range WAIT_AFTER), maybe in its
	 * volatile cache only. pf calls it only where a sync of the commit log
	 * follows, started after it returns and awaited before the commit is
	 * acknowledged: that sync's flush covers both (docs/fs.md "One flush
	 * per commit"). A provider offers it only where that holds: its file
	 * on the volume's device, overwritten in place (ext4, XFS). */
	int (*prepare_unflushed)(void *ctx, uint64_t version, struct kiln_err *err);
	/* -ENOENT when the provider holds no version yet (see pf_volume_opts.trust_first). */
	int (*current)(void *ctx, uint64_t *committed, uint64_t *prepared, struct kiln_err *err);
	void (*free)(void *ctx); /* may be NULL */
};

/* Local provider: the version lives in `path` (outside the volume; text
 * "committed prepared\n", replaced atomically). *ctx is owned by the volume once
 * passed to it, else free with ops->free. */
int pf_freshness_local(const char *path, const struct pf_freshness_ops **ops, void **ctx);
/* Fixed provider: committed = prepared = version; prepare/commit succeed
 * without storing anything (for `kiln fs verify --expect-version` and read-only
 * opens). Same ownership. */
int pf_freshness_fixed(uint64_t version, const struct pf_freshness_ops **ops, void **ctx);

/* ---- regions -------------------------------------------------------------- */
enum pf_region_kind {
	PF_REGION_ENCRYPTED = 1,     /* AES-256-GCM per chunk */
	PF_REGION_AUTHENTICATED = 2, /* plaintext chunks, GCM tag over them (GMAC) */
	PF_REGION_PLAIN = 3,         /* plaintext chunks, no integrity */
};

struct pf_region {
	const char *prefix; /* volume path prefix, "" = everything; longest wins */
	enum pf_region_kind kind;
};

/* ---- volume -------------------------------------------------------------- */
struct pf_volume_opts {
	/* Storage; NULL ops = POSIX storage in "<dir>/.kiln". */
	const struct pf_storage_ops *storage;
	void *storage_ctx;
	/* Freshness; NULL ops = no rollback protection beyond the metadata version
	 * itself (the CLI always passes one). */
	const struct pf_freshness_ops *freshness;
	void *freshness_ctx;
	/* Accept the metadata's version when the provider has none (-ENOENT), and
	 * store it (trust on first use). */
	bool trust_first;
	bool read_only;
	/* Seal large writes on two threads: the volume starts one helper thread
	 * (all signals blocked) at its first write of >= 8 whole chunks, and
	 * joins it at close. Off by default: a caller that must not gain threads
	 * (the runtime's shield, which runs under Syscall User Dispatch inside
	 * the application) leaves it off. A forked child seals alone. */
	bool seal_thread;
	/* Data records (docs/fs.md): a commit holding at most this many bytes
	 * of new slots carries them in its log record, and syncs nothing else.
	 * 0: the default and most, 256 KiB; negative: never (every commit
	 * syncs its journals and data, as before the fourteenth session). */
	int32_t log_data_max;
	/* pf_volume_init only: chunk size (0 = PF_DEFAULT_CHUNK_SIZE, multiple of 16
	 * in [PF_MIN_CHUNK_SIZE, PF_MAX_CHUNK_SIZE]) and regions (default: all
	 * encrypted). Recorded in the metadata; ignored by pf_volume_open. */
	uint32_t chunk_size;
	const struct pf_region *regions;
	size_t regions_len;
};

/* Create a new, empty volume in dir (which may exist but must not hold a
 * volume: -EEXIST). The key is copied. On success *vol is owned by the caller
 * (pf_volume_close). Storage/freshness ctxs in opts are owned by the volume from
 * this call on, success or failure. */
int pf_volume_init(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err);

/* Open an existing volume: authenticates the metadata (-KILN_EKEY wrong key,
 * -KILN_EAUTH corrupt, -ENOENT missing, -KILN_EFORMAT not a volume), checks its
 * version with the freshness provider, recovers files interrupted by a crash (unless
 * read_only) and verifies each file's root when the file is first opened. Same
 * ownership rules as pf_volume_init. */
int pf_volume_open(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err);

/* Commit every file's written data and the namespace (like syncfs). */
int pf_volume_flush(pf_volume_t *vol, struct kiln_err *err);
/* fn(arg) is called (under the volume's lock: it must not call pf) by a
 * commit written as a log record once it is durable -- the record synced,
 * its version prepared and then committed, every file of it committed -- and
 * before the work that follows (the held slots put in place, the journal
 * spent, the sidecars): the volume server answers the fsyncs waiting for the
 * commit there. Not for a checkpoint, nor for a commit that fails before that
 * point; a failure after it (a slot that cannot go in place) is returned as
 * before, and fails the file's later calls. fn NULL: none. */
void pf_volume_on_durable(pf_volume_t *vol, void (*fn)(void *arg), void *arg);
/* Make the namespace changes since the last metadata write (create, unlink,
 * rename, mkdir, rmdir, chmod, mtime) visible -- to other processes that
 * reopen the volume -- without making them durable: they are written to
 * "meta.pub" under the version of the last durable commit, with no sync and no
 * call to the freshness provider ("meta" is not touched; an open uses a whole
 * meta.pub of the same version as meta). Files created since the last commit go
 * in empty.
 * A crash may then lose these changes (the volume reopens as of the last
 * durable commit or of any publish since); the next durable commit
 * (pf_fsync of any file, pf_fsync_dir, pf_volume_flush/close) makes them
 * durable. Backing files of removed files are deleted only after that commit.
 * When a file has uncommitted data, this is pf_volume_flush. */
int pf_volume_publish(pf_volume_t *vol, struct kiln_err *err);
/* Free the volume without writing anything (uncommitted changes are dropped,
 * as a crash would drop them): for an instance whose metadata another process
 * has replaced. Accepts NULL. */
void pf_volume_discard(pf_volume_t *vol);
/* Flush, close every handle still open (their pf_file_t become invalid), wipe
 * keys, free. Accepts NULL. Returns the flush result; vol is freed regardless. */
int pf_volume_close(pf_volume_t *vol, struct kiln_err *err);

/* The version (freshness counter) of the last commit: of the metadata, or of
 * the last record of the commit log after it (docs/fs.md "Commit log"). */
uint64_t pf_volume_version(pf_volume_t *vol);
/* Commits since the open whose freshness prepare rode the commit log's
 * flush (prepare_unflushed; KILN_SHIELD_STATS reports them). */
uint64_t pf_volume_rides(pf_volume_t *vol);
/* Records in the commit log since the last checkpoint (replayed at open, or
 * written since): 0 for a volume closed cleanly. */
uint32_t pf_volume_log_records(pf_volume_t *vol);
uint32_t pf_volume_chunk_size(pf_volume_t *vol);
/* Symlinks in the namespace: with none, a path names one node by one walk
 * (the volume server vouches for its own changes: docs/runtime.md). */
size_t pf_volume_symlinks(pf_volume_t *vol);
/* Region kind that applies to path (longest prefix). */
enum pf_region_kind pf_volume_region(pf_volume_t *vol, const char *path);

/* Re-encrypt the metadata under new_key (file keys are kept: see docs/fs.md).
 * The volume then uses new_key; the version advances as for any commit. */
int pf_volume_rekey(pf_volume_t *vol, const uint8_t new_key[static PF_KEY_SIZE],
		    struct kiln_err *err);

/* Check every file completely (root, every chunk's tag). cb (may be NULL) is
 * called for each file with 0 or its error code and message. Returns 0 when all
 * files are intact, -KILN_EAUTH (or the first other error) otherwise. */
typedef void (*pf_verify_cb)(void *arg, const char *path, int code, const char *msg);
int pf_volume_verify(pf_volume_t *vol, pf_verify_cb cb, void *arg, struct kiln_err *err);

/* ---- files ------------------------------------------------------------- */
/* flags: O_RDONLY / O_WRONLY / O_RDWR with O_CREAT, O_EXCL, O_TRUNC, O_APPEND
 * (others ignored). mode applies when created. The parent directory must exist.
 * On success *file is owned by the caller (pf_close). Opening a file whose
 * content fails verification gives -KILN_EAUTH. -EISDIR for directories. */
int pf_open(pf_volume_t *vol, const char *path, int flags, mode_t mode, pf_file_t **file,
	    struct kiln_err *err);
/* Close the handle (does not fsync; the data stays pending until the next
 * commit of the file or volume). Accepts NULL. */
int pf_close(pf_file_t *file);

/* Read up to size bytes at off; returns bytes read (0 at EOF), holes read as
 * zeros. -KILN_EAUTH names the chunk in err. */
ssize_t pf_pread(pf_file_t *file, void *buf, size_t size, uint64_t off, struct kiln_err *err);
/* Write size bytes at off (any offset, past EOF leaves a hole). With O_APPEND the
 * write goes to the end, as Linux pwrite does. Returns size or an error (no
 * short writes: on error the file may hold part of the write, like POSIX). */
ssize_t pf_pwrite(pf_file_t *file, const void *buf, size_t size, uint64_t off,
		  struct kiln_err *err);
/* Append atomically at the current end; *end_off (may be NULL) = new size. */
ssize_t pf_append(pf_file_t *file, const void *buf, size_t size, uint64_t *end_off,
		  struct kiln_err *err);
int pf_get_size(pf_file_t *file, uint64_t *size);
int pf_ftruncate(pf_file_t *file, uint64_t size, struct kiln_err *err);
/* Make this file's content durable and committed (writes the metadata). */
int pf_fsync(pf_file_t *file, struct kiln_err *err);

/* ---- chunk-granular data, holes (Library API v2) --------------------------
 * For a cache of plaintext chunks (the runtime's volume server). Chunk k holds
 * bytes [k * cs, (k + 1) * cs) (cs = pf_volume_chunk_size); the last chunk of
 * a file may be short. A hole (a chunk never written, or punched) has no
 * stored slot and reads as zeros. */

/* Read count chunks from first into buf (count * cs bytes; bytes past the end
 * of the file and of holes are zeros), each checked on its own: results[i] is
 * 0 or its error (-KILN_EAUTH: tampered; the other chunks still read), and err
 * tells the first failure. Returns the number of chunks read (count clipped
 * at the end of the file), or an error for the whole call (-EBADF). */
ssize_t pf_read_chunks(pf_file_t *file, uint64_t first, size_t count, void *buf,
		       int *results, struct kiln_err *err);
/* Streaming reads outside pf (the runtime's program-side cold read,
 * docs/fs.md "Cold reads in the program's process"). pf_stream_key: the
 * file's data key, file id and layout (slot k of the backing file is at
 * slot0 + k * stride: nonce, tag, data) and a read-only O_DIRECT descriptor
 * of its backing file (owned by the caller); -EOPNOTSUPP unless the file is
 * encrypted and the storage gives such descriptors. pf_stream_tags: the tags
 * (PF_STREAM_TAG bytes each) the reads of chunks [first, first + count) check,
 * loaded and verified as a read would; all zeros for a hole, PF_STREAM_ASK
 * (all 0xff) for a chunk whose slot on disk is not the one to read (held in
 * the write-back). pf_stream_open: authenticate and decrypt one slot of such
 * a file (len plaintext bytes of chunk k) against tag into out: 0, or
 * -KILN_EAUTH (out wiped). */
#define PF_STREAM_TAG 16
#define PF_STREAM_ID 16
struct pf_stream_info {
	uint8_t key[PF_KEY_SIZE];
	uint8_t file_id[PF_STREAM_ID];
	uint32_t kind;
	uint32_t slot0;
	uint64_t stride;
};
int pf_stream_key(pf_file_t *file, struct pf_stream_info *out, int *fd);
int pf_stream_tags(pf_file_t *file, uint64_t first, size_t count, uint8_t *tags,
		   struct kiln_err *err);
bool pf_stream_ask(const uint8_t tag[PF_STREAM_TAG]);
struct kc_aead;
int pf_stream_open(struct kc_aead *a, const struct pf_stream_info *info, uint64_t k,
		   const uint8_t *slot, uint32_t len, const uint8_t tag[PF_STREAM_TAG],
		   uint8_t *out);
/* Sealed writes outside pf (the runtime's program-side large appends,
 * docs/fs.md "Large writes sealed in the program's process"): whole chunks
 * [first, first + count) appended at the end of a file (first * cs is its
 * size) past its committed end, sealed and written into the backing file by
 * someone else, then recorded here.
 * pf_stream_reserve: the file's generation is opened and its journal header
 * made durable (a crash leaves whatever is written past the end as debris
 * that recovery cuts), the slots' bytes count as the backing file's (a
 * commit cuts what is never recorded); with info, the hand-over (key, id,
 * layout) and a descriptor of the backing file open for writing (owned by
 * the caller). -EAGAIN when the file is not at that end, the range would
 * overwrite committed chunks or a reservation is open; -EOPNOTSUPP unless
 * the file is encrypted and the storage gives such descriptors; -EBADF for
 * a read-only handle. Then exactly one of:
 * pf_stream_record: the tags (PF_STREAM_TAG bytes each) of the slots written
 * (the first count reserved, or all of them)
 * (slot k at slot0 + k * stride), which become the chunks' (committed with
 * the file's next commit; its data sync covers the slots); the file is then
 * (first + count) * cs bytes long. -EAGAIN when the file changed meanwhile
 * (truncated, cut, written past): nothing recorded, cancel it.
 * pf_stream_cancel: nothing recorded; what was written past the end is cut.
 * pf_stream_flush: start the storage's flush_start of the backing file (a
 * long stream then leaves its final sync less to write): 1 started, else 0.
 * pf_stream_seal: seal len plaintext bytes of chunk k of such a file into
 * slot (nonce, tag, data), the nonce drawn by the caller (12 fresh random
 * bytes, used once) or, when it is NULL or gives an all-zero tag, here. */
int pf_stream_reserve(pf_file_t *file, uint64_t first, size_t count,
		      struct pf_stream_info *info, int *fd, struct kiln_err *err);
int pf_stream_record(pf_file_t *file, uint64_t first, size_t count, const uint8_t *tags,
		     struct kiln_err *err);
void pf_stream_cancel(pf_file_t *file);
int pf_stream_flush(pf_file_t *file);
int pf_stream_seal(struct kc_aead *a, const struct pf_stream_info *info, uint64_t k,
		   const uint8_t *pt, uint32_t len, const uint8_t *nonce, uint8_t *slot);
/* Write count whole chunks from first (chunk first + i from buf + i * cs) and
 * make the file new_size bytes long: only these chunks are sealed (and the
 * last one's length follows new_size; chunks between the old end and first
 * become holes). -EINVAL when a chunk lies wholly past new_size. */
int pf_write_chunks(pf_file_t *file, uint64_t first, size_t count, const void *buf,
		    uint64_t new_size, struct kiln_err *err);
/* lseek SEEK_DATA / SEEK_HOLE, chunk-granular: *out = the first offset >= off
 * in data (or in a hole; the end of the file counts as a hole). -ENXIO when
 * off is at or past the end, or no data follows it (SEEK_DATA). */
int pf_seek_data(pf_file_t *file, uint64_t off, uint64_t *out, struct kiln_err *err);
int pf_seek_hole(pf_file_t *file, uint64_t off, uint64_t *out, struct kiln_err *err);
/* fallocate(2) modes (the Linux values): 0 extends the size to off + len if
 * larger (nothing is reserved: the new range is a hole), KEEP_SIZE alone does
 * nothing, PUNCH_HOLE | KEEP_SIZE and ZERO_RANGE make [off, off + len) read as
 * zeros (whole chunks become holes; partial ones get zeros written), ZERO_RANGE
 * without KEEP_SIZE also extends. Other modes: -EOPNOTSUPP. */
#define PF_FALLOC_KEEP_SIZE 0x01
#define PF_FALLOC_PUNCH_HOLE 0x02
#define PF_FALLOC_ZERO_RANGE 0x10
int pf_fallocate(pf_file_t *file, int mode, uint64_t off, uint64_t len, struct kiln_err *err);

/* ---- namespace -------------------------------------------------------------- */
typedef uint64_t pf_ino_t;

enum pf_type {
	PF_TYPE_REG = 1,
	PF_TYPE_DIR = 2,
	PF_TYPE_LNK = 3,
	PF_TYPE_FIFO = 4,
	PF_TYPE_SOCK = 5,
};
/* The S_IF* type bits of a node type (st_mode's; IFTODT gives d_type). */
mode_t pf_type_mode(enum pf_type t);

struct pf_stat {
	bool is_dir;
	mode_t mode;       /* permission bits only (07777) */
	uint64_t size;     /* plaintext size; a symlink's target length; 0 otherwise */
	int64_t mtime_ns;  /* CLOCK_REALTIME nanoseconds */
	enum pf_region_kind kind;
	pf_ino_t ino;      /* stable for the life of the volume */
	enum pf_type type;
	uint32_t nlink;    /* names; a directory: 2 + its subdirectories */
	uid_t uid;
	gid_t gid;
	int64_t atime_ns;
	int64_t ctime_ns;
	uint64_t blocks;   /* 512-byte units stored (holes take none) */
	uint32_t blksize;  /* the chunk size */
};

/* stat(2): follows a symlink in the last component. */
int pf_stat(pf_volume_t *vol, const char *path, struct pf_stat *st, struct kiln_err *err);
int pf_fstat(pf_file_t *file, struct pf_stat *st);
int pf_chmod(pf_volume_t *vol, const char *path, mode_t mode, struct kiln_err *err);
/* Sets mtime (and ctime to now), as utimensat with UTIME_OMIT for atime. */
int pf_set_mtime(pf_volume_t *vol, const char *path, int64_t mtime_ns, struct kiln_err *err);
/* Truncate by path (opens, truncates, closes). */
int pf_truncate(pf_volume_t *vol, const char *path, uint64_t size, struct kiln_err *err);
/* Open handles keep working after unlink (POSIX); the data is freed when the
 * last handle closes and the metadata without the file is committed. */
int pf_unlink(pf_volume_t *vol, const char *path, struct kiln_err *err);
/* Atomic rename, replacing an existing file (or empty directory). -EXDEV when
 * the file (or a file under the directory) would change region kind. A symlink
 * is moved, not followed. */
int pf_rename(pf_volume_t *vol, const char *from, const char *to, struct kiln_err *err);
int pf_mkdir(pf_volume_t *vol, const char *path, mode_t mode, struct kiln_err *err);
int pf_rmdir(pf_volume_t *vol, const char *path, struct kiln_err *err);
/* Make namespace changes durable (commits the metadata). */
int pf_fsync_dir(pf_volume_t *vol, struct kiln_err *err);

/* List the direct children of directory path: *names is a malloc'd array of
 * *count malloc'd names (no "." / ".."), sorted; free with pf_names_free.
 * (pf_readdir_ino lists with inode numbers, types and resume cookies.) */
int pf_readdir(pf_volume_t *vol, const char *path, char ***names, size_t *count,
	       struct kiln_err *err);
void pf_names_free(char **names, size_t count);

/* ==== Library API v2 (docs/fs.md "Library API v2") ===========================
 * An inode namespace: directory entries name inodes; an inode is a regular
 * file, a directory, a symlink, a FIFO or a socket node, with a full mode,
 * owner, group, link count and three timestamps. Inode numbers are stable for
 * the life of the volume (across rename, reopen and commits) and never reused.
 * Every v1 path call above keeps working: it is the v2 call with at =
 * PF_ROOT_INO and cred = NULL. */

#define PF_ROOT_INO ((pf_ino_t)1)
#define PF_NAME_MAX 255 /* bytes per path component */
#define PF_SYMLOOP_MAX 40

/* The credentials a call acts with (the runtime passes its caller's fsuid,
 * fsgid and supplementary groups). A NULL cred is the volume's owner acting
 * without any permission check (kiln fs, a trusted caller): new nodes then
 * belong to the process's effective uid and gid. groups (not owned) lists
 * ngroups supplementary groups. */
struct pf_cred {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t ngroups;
};

/* ---- permissions: the kernel's rules (fs/namei.c, fs/attr.c) -----------------
 * mask: PF_MAY_READ | PF_MAY_WRITE | PF_MAY_EXEC (the values of R_OK, W_OK,
 * X_OK). Owner class if cred->uid owns the node, else group class if st->gid
 * is cred->gid or one of the groups, else other. uid 0 may read and write
 * anything, may search any directory, and may execute a non-directory only
 * when some execute bit is set. Returns 0 or -EACCES. A NULL cred passes. */
#define PF_MAY_EXEC 1
#define PF_MAY_WRITE 2
#define PF_MAY_READ 4
int pf_permission(const struct pf_cred *cred, const struct pf_stat *st, int mask);
/* May cred remove (or rename away) victim from directory dir? Write and search
 * on dir (-EACCES); in a sticky directory only the owner of the victim, the
 * owner of the directory or root (-EPERM). */
int pf_may_delete(const struct pf_cred *cred, const struct pf_stat *dir,
		  const struct pf_stat *victim);
/* Does cred belong to group gid (primary or supplementary)? */
bool pf_cred_in_group(const struct pf_cred *cred, gid_t gid);

/* ---- attributes ------------------------------------------------------------ */
/* pf_setattr: which fields to change. Times follow utimensat: PF_SET_ATIME /
 * PF_SET_MTIME take the given value, the _NOW forms the current time. Size is
 * a truncate (regular files only). ctime is always advanced to now, as Linux
 * does for any attribute change. */
#define PF_SET_MODE 0x01u
#define PF_SET_UID 0x02u
#define PF_SET_GID 0x04u
#define PF_SET_SIZE 0x08u
#define PF_SET_ATIME 0x10u
#define PF_SET_MTIME 0x20u
#define PF_SET_ATIME_NOW 0x40u
#define PF_SET_MTIME_NOW 0x80u
/* ctime takes the given value instead of now: for a server whose kernel keeps
 * the times of cached files itself (a FUSE writeback cache) and sends them
 * back. Only without a cred (-EPERM with one: no user sets ctime). */
#define PF_SET_CTIME 0x100u

struct pf_setattr {
	unsigned valid;   /* PF_SET_* */
	mode_t mode;      /* permission bits (07777) */
	uid_t uid;
	gid_t gid;
	uint64_t size;
	int64_t atime_ns;
	int64_t mtime_ns;
	int64_t ctime_ns; /* PF_SET_CTIME */
};

/* ---- resolution --------------------------------------------------------------
 * Paths of v2 calls are resolved component by component from the directory
 * inode `at` (PF_ROOT_INO: the volume root; a leading '/' also starts at the
 * root). "." and ".." are followed physically; empty components are skipped.
 * Symlinks are followed in every component but the last, and in the last
 * unless PF_AT_NOFOLLOW (lstat, O_NOFOLLOW, unlink, rename...). Errors as
 * Linux: -ENOENT, -ENOTDIR (a non-directory in the middle, or a trailing '/'
 * after a non-directory), -ELOOP (more than PF_SYMLOOP_MAX symlinks),
 * -ENAMETOOLONG (a component over PF_NAME_MAX, a path or a symlink expansion
 * of PF_MAX_PATH bytes or more), -EACCES (no search permission for cred on a
 * directory on the way). A path that leaves the volume -- through ".." at the
 * root or a symlink whose target is absolute or climbs above the root -- is not
 * resolved inside it: pf_resolve returns PF_RESOLVE_ESCAPED with the rest, and
 * every other call -EXDEV with a message naming the symlink. */
#define PF_AT_NOFOLLOW 0x1u   /* do not follow a symlink in the last component */
#define PF_AT_REMOVEDIR 0x2u  /* pf_unlinkat: remove a directory (rmdir) */
#define PF_AT_FOLLOW 0x4u     /* pf_linkat: follow a symlink in the old path */
#define PF_AT_PARENT 0x8u     /* pf_resolve: stop at the parent of the last name */

#define PF_RESOLVE_ESCAPED 1

struct pf_resolved {
	pf_ino_t ino;     /* the node reached; 0 when only the last name is missing */
	pf_ino_t parent;  /* directory holding the last name (its parent dir for ".") */
	enum pf_type type; /* of ino (0 when ino is 0) */
	char name[PF_NAME_MAX + 1]; /* last component ("" for the root itself) */
	/* PF_RESOLVE_ESCAPED only: the path still to resolve outside the volume,
	 * malloc'd, owned by the caller (free). Absolute ("/etc/x/rest") when a
	 * symlink target was absolute, else relative to the directory the volume
	 * is mounted at ("../x/rest": resolve it from the mount point). */
	char *rest;
};

/* Resolve path from at. Returns 0 (out->ino is the node; 0 with out->parent
 * and out->name set when only the last component is missing and -ENOENT is
 * not returned because PF_AT_PARENT was given), PF_RESOLVE_ESCAPED, or a
 * negative error. out->rest must be freed by the caller when set. */
int pf_resolve(pf_volume_t *vol, pf_ino_t at, const char *path, unsigned flags,
	       const struct pf_cred *cred, struct pf_resolved *out, struct kiln_err *err);

/* ---- namespace v2 -----------------------------------------------------------
 * Each returns 0 or a negative error as the Linux call it is named after
 * (EEXIST, ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL, EBUSY, EPERM, EACCES,
 * EXDEV, EMLINK, ENAMETOOLONG, ELOOP). With a non-NULL cred the kernel's
 * permission rules apply (search on every directory, write and search on the
 * directories changed, sticky directories, ownership for setattr). New nodes
 * belong to cred (or the process's euid/egid) with the group of a set-group-ID
 * parent directory, as Linux does; mode is masked with 07777 (the caller
 * applies its umask). Timestamps move as Linux moves them: a new name or a
 * removed one sets mtime and ctime of its directory; link, unlink, rename,
 * chmod, chown, truncate and write set ctime of the inode. */

int pf_statat(pf_volume_t *vol, pf_ino_t at, const char *path, unsigned flags,
	      const struct pf_cred *cred, struct pf_stat *st, struct kiln_err *err);
/* Attributes of an inode by number (-ENOENT once it is gone: unlinked and no
 * handle open). */
int pf_getattr(pf_volume_t *vol, pf_ino_t ino, struct pf_stat *st);
/* Open a regular file (flags: O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND
 * | O_NOFOLLOW | O_DIRECTORY; others ignored). -EISDIR for a directory (or
 * O_DIRECTORY: -ENOTDIR for a non-directory, -EISDIR otherwise: directories are
 * read with pf_readdir_ino), -ELOOP for a symlink with O_NOFOLLOW, -ENXIO for a
 * FIFO or socket node (its I/O is the caller's). With cred, open checks read
 * and/or write permission, and O_CREAT write permission on the directory. */
int pf_openat(pf_volume_t *vol, pf_ino_t at, const char *path, int flags, mode_t mode,
	      const struct pf_cred *cred, pf_file_t **file, struct kiln_err *err);
/* mknod: mode carries the type (S_IFREG: an empty file; S_IFIFO; S_IFSOCK) and
 * the permission bits. Character and block devices: -EPERM (a volume has no
 * device support, as a nodev file system answers). */
int pf_mknodat(pf_volume_t *vol, pf_ino_t at, const char *path, mode_t mode,
	       const struct pf_cred *cred, struct kiln_err *err);
int pf_mkdirat(pf_volume_t *vol, pf_ino_t at, const char *path, mode_t mode,
	       const struct pf_cred *cred, struct kiln_err *err);
/* Create a symlink at path holding target (any bytes but NUL, 1 ..
 * PF_MAX_PATH - 1 bytes; it is stored, not checked). */
int pf_symlinkat(pf_volume_t *vol, const char *target, pf_ino_t at, const char *path,
		 const struct pf_cred *cred, struct kiln_err *err);
/* Copy a symlink's target to buf (not NUL-terminated, truncated to size, as
 * readlink(2)); returns its length or -EINVAL when path is not a symlink. */
ssize_t pf_readlinkat(pf_volume_t *vol, pf_ino_t at, const char *path, char *buf,
		      size_t size, const struct pf_cred *cred, struct kiln_err *err);
/* Hard link: newpath names the inode of oldpath (not followed unless
 * PF_AT_FOLLOW). -EPERM for a directory, -EXDEV when newpath lies in another
 * region kind, -EMLINK past 65000 links. */
int pf_linkat(pf_volume_t *vol, pf_ino_t oldat, const char *oldpath, pf_ino_t newat,
	      const char *newpath, unsigned flags, const struct pf_cred *cred,
	      struct kiln_err *err);
/* unlink(2), or rmdir(2) with PF_AT_REMOVEDIR. An inode whose last name goes
 * lives on while handles are open (pf_fstat, reads and writes keep working;
 * it has no name and is not listed); its data goes with the last close. */
int pf_unlinkat(pf_volume_t *vol, pf_ino_t at, const char *path, unsigned flags,
		const struct pf_cred *cred, struct kiln_err *err);
/* renameat2: flags 0, PF_RENAME_NOREPLACE (-EEXIST if newpath exists) or
 * PF_RENAME_EXCHANGE (swap the two; both must exist). A directory moves in
 * O(1) (its inode moves, nothing under it is rewritten). -EINVAL for "." or
 * ".." as a last component or a directory moved under itself, -EBUSY for the
 * root, -EXDEV when a file would change region kind. */
#define PF_RENAME_NOREPLACE 1u
#define PF_RENAME_EXCHANGE 2u
int pf_renameat2(pf_volume_t *vol, pf_ino_t oldat, const char *oldpath, pf_ino_t newat,
		 const char *newpath, unsigned flags, const struct pf_cred *cred,
		 struct kiln_err *err);
/* Change attributes (chmod, chown, utimensat, truncate). With cred: chmod and
 * explicit times only by the owner or root (-EPERM); chown of the owner only by
 * root, of the group by the owner to one of its groups or by root (-EPERM);
 * times set to now also by anyone with write permission (-EACCES); size needs
 * write permission. A chmod by a non-root owner not in the file's group drops
 * S_ISGID; a chown by non-root clears S_ISUID and S_ISGID, as Linux does. */
int pf_setattrat(pf_volume_t *vol, pf_ino_t at, const char *path, unsigned flags,
		 const struct pf_setattr *sa, const struct pf_cred *cred, struct kiln_err *err);
int pf_fsetattr(pf_file_t *file, const struct pf_setattr *sa, const struct pf_cred *cred,
		struct kiln_err *err);

/* ---- calls by inode number ---------------------------------------------------
 * For a server that holds inodes rather than paths (kiln fs mount's FUSE
 * low-level server). ino is any inode still alive: one with a name, or one
 * without (unlinked, or made by pf_tmpfile) while a handle on it is open;
 * -ENOENT once it is gone. Checks as the path calls with the same cred. */

/* Open regular file ino (flags as pf_openat but O_CREAT and O_EXCL ignored;
 * -ELOOP, -EISDIR, -ENXIO for other types). */
int pf_open_ino(pf_volume_t *vol, pf_ino_t ino, int flags, const struct pf_cred *cred,
		pf_file_t **file, struct kiln_err *err);
/* O_TMPFILE: a new regular file without a name in directory dir (flags need
 * O_WRONLY or O_RDWR: -EINVAL), of dir's region kind, gone with its last
 * handle unless pf_link_ino names it first (refused, -ENOENT, after O_EXCL). The
 * directory does not change. */
int pf_tmpfile(pf_volume_t *vol, pf_ino_t dir, int flags, mode_t mode,
	       const struct pf_cred *cred, pf_file_t **file, struct kiln_err *err);
int pf_setattr_ino(pf_volume_t *vol, pf_ino_t ino, const struct pf_setattr *sa,
		   const struct pf_cred *cred, struct kiln_err *err);
ssize_t pf_readlink_ino(pf_volume_t *vol, pf_ino_t ino, char *buf, size_t size,
			struct kiln_err *err);
/* linkat(2) of an inode (AT_EMPTY_PATH): newpath (from directory newat) names
 * ino. An inode without a name: -ENOENT, but for one of pf_tmpfile. */
int pf_link_ino(pf_volume_t *vol, pf_ino_t ino, pf_ino_t newat, const char *newpath,
		const struct pf_cred *cred, struct kiln_err *err);

/* One directory entry; cookie resumes the listing after this entry. */
struct pf_dirent {
	pf_ino_t ino;
	enum pf_type type;
	uint64_t cookie;
	char name[PF_NAME_MAX + 1];
};
/* List directory dir from cookie (0: from the start): "." and ".." first, then
 * the entries in creation order. Fills at most max entries into ents, sets
 * *count (0 at the end). A cookie stays valid while the volume is open,
 * whatever is created or removed meanwhile: entries created after the listing
 * started may or may not appear, removed ones do not, none appears twice
 * (POSIX readdir). -ENOTDIR, -ENOENT for an inode that is gone. */
int pf_readdir_ino(pf_volume_t *vol, pf_ino_t dir, uint64_t cookie, struct pf_dirent *ents,
		   size_t max, size_t *count, struct kiln_err *err);

/* statvfs of a volume: sizes in units of bsize (the chunk size) taken from the
 * storage's file system when the storage can say (else 0), files = inodes in
 * use, namemax = PF_NAME_MAX. */
struct pf_statfs {
	uint32_t bsize;
	uint64_t blocks, bfree, bavail;
	uint64_t files, ffree;
	uint32_t namemax;
};
int pf_statfs(pf_volume_t *vol, struct pf_statfs *out, struct kiln_err *err);

#endif
