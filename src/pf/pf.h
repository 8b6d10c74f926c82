/* kiln protected files: the one header of src/pf/.
 *
 * A volume is a directory whose files are stored encrypted (or authenticated, or
 * plain) in chunks, with one AEAD-encrypted metadata file that maps volume paths
 * to per-file keys, ids and roots (design §4, on-disk format in docs/fs.md).
 * The library does no I/O of its own: storage, and freshness of the metadata
 * (its version, a counter advanced by every commit), are callbacks
 * (pf_storage_ops, pf_freshness_ops) with POSIX and local-file defaults, so
 * unit tests inject faults and the CAS can hold the trusted version.
 *
 * Paths are volume-relative ("a/b.txt"; a leading '/' is accepted; "" or "/" is
 * the root directory); no "." or ".." components, no empty components.
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
	/* Optional hint (NULL: none): start writing [off, off+len) of fh back to
	 * stable storage without waiting (sync_file_range WRITE), so that the
	 * next sync has less left to do. Guarantees nothing; errors are ignored
	 * (the sync reports them). */
	int (*writeback)(void *ctx, void *fh, uint64_t off, uint64_t len);
};

/* Default storage: POSIX files in `dir` (created with 0700 when `create`),
 * holding an exclusive flock on `dir` until freed (-EBUSY when another process
 * holds it). On success *ops points to static ops and *ctx is owned by the
 * volume once passed to pf_volume_open/init (or freed with ops->free on the
 * caller's error path). */
int pf_storage_posix(const char *dir, bool create, const struct pf_storage_ops **ops,
		     void **ctx, struct kiln_err *err);

/* ---- freshness provider ------------------------------------------------------
 * Holds the trusted metadata version (a counter, 0 = none yet). Protocol per
 * metadata update: prepare(N+1) -> atomic rename of the new metadata ->
 * commit(N+1). On open, a metadata version equal to the committed or the
 * prepared version is accepted (a prepared one is then committed); older is a
 * rollback (pf__check_freshness in freshness.c). */
struct pf_freshness_ops {
	int (*prepare)(void *ctx, uint64_t version, struct kiln_err *err);
	int (*commit)(void *ctx, uint64_t version, struct kiln_err *err);
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

/* The version (freshness counter) of the last committed metadata. */
uint64_t pf_volume_version(pf_volume_t *vol);
uint32_t pf_volume_chunk_size(pf_volume_t *vol);
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

/* ---- namespace -------------------------------------------------------------- */
struct pf_stat {
	bool is_dir;
	mode_t mode;       /* permission bits only */
	uint64_t size;     /* plaintext size (0 for directories) */
	int64_t mtime_ns;  /* CLOCK_REALTIME nanoseconds */
	enum pf_region_kind kind;
};

int pf_stat(pf_volume_t *vol, const char *path, struct pf_stat *st, struct kiln_err *err);
int pf_fstat(pf_file_t *file, struct pf_stat *st);
int pf_chmod(pf_volume_t *vol, const char *path, mode_t mode, struct kiln_err *err);
int pf_set_mtime(pf_volume_t *vol, const char *path, int64_t mtime_ns, struct kiln_err *err);
/* Truncate by path (opens, truncates, closes). */
int pf_truncate(pf_volume_t *vol, const char *path, uint64_t size, struct kiln_err *err);
/* Open handles keep working after unlink (POSIX); the data is freed when the
 * last handle closes and the metadata without the file is committed. */
int pf_unlink(pf_volume_t *vol, const char *path, struct kiln_err *err);
/* Atomic rename, replacing an existing file (or empty directory). -EXDEV when
 * the file (or a file under the directory) would change region kind. */
int pf_rename(pf_volume_t *vol, const char *from, const char *to, struct kiln_err *err);
int pf_mkdir(pf_volume_t *vol, const char *path, mode_t mode, struct kiln_err *err);
int pf_rmdir(pf_volume_t *vol, const char *path, struct kiln_err *err);
/* Make namespace changes durable (commits the metadata). */
int pf_fsync_dir(pf_volume_t *vol, struct kiln_err *err);

/* List the direct children of directory path: *names is a malloc'd array of
 * *count malloc'd names (no "." / ".."), sorted; free with pf_names_free. */
int pf_readdir(pf_volume_t *vol, const char *path, char ***names, size_t *count,
	       struct kiln_err *err);
void pf_names_free(char **names, size_t count);

#endif
