/* Internal to src/pf/ (and its unit tests and fuzz targets): the in-memory
 * structures shared by the files of the module, on-disk formats (layouts byte
 * by byte in docs/fs.md), and the internal functions (pf__*), grouped by the
 * file that defines them. Which file does what:
 *   volume.c    init, open, flush/close, rekey, verify
 *   namespace.c path -> entry table, regions, stat/chmod/unlink/mkdir/rename/readdir
 *   file.c      pf_open/pf_close and the read/write calls of the API
 *   node.c      in-memory file state: create, load (recovery, root check), tag sidecar
 *   data.c      read/write/resize of one file's chunks
 *   chunk.c     seal/open one chunk, file root
 *   sealer.c    the optional helper thread (parallel sealing, write pipeline)
 *   journal.c   per-file undo journal and the write-back of journaled overwrites
 *   commit.c    metadata serialization and commits (durable, publish)
 *   freshness.c the rollback check and the freshness providers
 *   format.c    header, metadata body and envelope codecs, path rules
 *   backing.c   helpers over the storage callbacks
 *   storage.c   the default POSIX storage
 *
 * Layout and protocols are in docs/fs.md. In short: a backing file is a 64-byte
 * header followed by fixed-stride slots, one per chunk: nonce(12) tag(16)
 * data(len). The file's authenticated state is its list of tags plus its size,
 * hashed into a root that the encrypted metadata records. Writes go to the
 * backing file in place; before the first overwrite of a chunk that belongs to
 * the last committed state, its old slot is appended to a per-file undo journal
 * that is synced first. pf_fsync syncs the data, then commits a new metadata
 * (with the new root) through the freshness protocol. A crash before that
 * commit is undone from the journal when the file is next opened. */
#ifndef KILN_PF_INTERNAL_H
#define KILN_PF_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "pf/pf.h"

#define PF_HDR_SIZE 64
#define PF_HDR_MAGIC "KILNPF01"
#define PF_HDR_VERSION 1      /* of backing file headers */
#define PF_META_FORMAT 2      /* of the metadata written (1 is read and converted) */
#define PF_FILE_ID_SIZE 16
#define PF_BACKING_ID_SIZE 16 /* random; its 32 hex digits name the backing file */
#define PF_NONCE_SIZE 12
#define PF_TAG_SIZE 16
#define PF_SLOT_META (PF_NONCE_SIZE + PF_TAG_SIZE) /* per chunk: nonce, tag, data */
#define PF_ROOT_SIZE 32
/* 1 TiB: the per-file arrays of the tag tree (a pointer, a flag and a hash
 * per block of 1024 chunks: 4 MiB of file at 4 KiB chunks) stay under 12 MiB
 * even for a sparse file of that size (96 MiB at the smallest chunk, 512). */
#define PF_MAX_FILE_SIZE (1ull << 40)

#define PF_META_MAGIC "KILNMETA"
#define PF_META_HDR_SIZE 64
#define PF_META_MAX_SIZE (256u * 1024 * 1024)
#define PF_KCV_SIZE 16

/* Journal format 2 binds each entry to its generation's header (the entry's
 * checksum covers the header's), so a journal is rewritten in place, never
 * truncated; format 1 journals (unbound entries, emptied by truncation) are
 * still recovered. */
#define PF_JOURNAL_MAGIC "KILNPFJ3"
#define PF_JOURNAL_MAGIC_V2 "KILNPFJ2"
#define PF_JOURNAL_MAGIC_V1 "KILNPFJ1"
/* Format 3 adds redo entries (bit 31 of an entry's length) after the undo
 * entries and an end record (chunk index PF_JOURNAL_END) naming the new state
 * (docs/fs.md "Journals"); a file has two, "<id>.j" and "<id>.k", used by
 * alternate generations. */
#define PF_JOURNAL_REDO 0x80000000u
#define PF_JOURNAL_END UINT64_MAX
#define PF_JOURNAL_END_SIZE (12 + PF_ROOT_SIZE + 8 + 8 + 8)
/* End record flag (its u64 after the redo offset): the generation is whole,
 * its new state is the state its header names plus its redo entries (nothing
 * of it was written in place before the commit). */
#define PF_JOURNAL_END_WHOLE 1u
#define PF_JOURNAL_KEEP (1u << 20) /* a spent journal up to this size keeps its size */
#define PF_JOURNAL_HDR_SIZE 72

struct pf_header {
	uint32_t version;
	uint32_t kind;
	uint32_t chunk_size;
	uint8_t file_id[PF_FILE_ID_SIZE];
};

void pf__header_encode(const struct pf_header *h, uint8_t out[static PF_HDR_SIZE]);
/* -KILN_ETRUNC short, -KILN_EFORMAT bad magic/version/fields. */
int pf__header_decode(const uint8_t *buf, size_t size, struct pf_header *h);

/* Decoded metadata body (format 2: an inode table; format 1, a path list, is
 * converted to it on parse). Strings and arrays are malloc'd, owned by the
 * struct (pf__meta_clear frees them and wipes the keys). */
struct pf_meta_region {
	char *prefix;
	uint32_t kind;
};
struct pf_meta_dirent {
	char *name;
	uint64_t ino;
};
struct pf_meta_inode {
	uint64_t ino;
	uint32_t type; /* enum pf_type */
	uint32_t mode, uid, gid;
	int64_t atime_ns, mtime_ns, ctime_ns;
	/* regular files */
	uint32_t kind;
	uint32_t root_fmt; /* PF_ROOT_FLAT (format 1 volumes) or PF_ROOT_TREE */
	uint64_t size;
	uint8_t key[PF_KEY_SIZE];
	uint8_t file_id[PF_FILE_ID_SIZE];
	uint8_t root[PF_ROOT_SIZE];
	uint8_t backing[PF_BACKING_ID_SIZE];
	/* symlinks */
	char *target;
	/* directories */
	struct pf_meta_dirent *ents;
	size_t nents;
};
struct pf_meta {
	uint32_t format; /* of the body parsed (1 or 2) */
	uint32_t chunk_size;
	struct pf_meta_region *regions;
	size_t regions_len;
	uint64_t next_ino;
	struct pf_meta_inode *inodes;
	size_t ninodes;
};

/* Parse a decrypted body of the given format (1 or 2) into m (zeroed first),
 * checking that it describes one tree: unique inode numbers, the root (inode
 * 1) a directory, every entry naming an existing inode by a valid name, every
 * directory named once (the root never), every other inode at least once, all
 * reachable from the root. Format 1 (a path list) is converted: root 1, then
 * directories and files numbered in order, owner 0 (the caller sets it).
 * -KILN_EFORMAT / -KILN_ETRUNC / -KILN_ETRAILING with a message in err; m is
 * cleared on failure. */
int pf__meta_parse(const uint8_t *body, size_t size, uint32_t format, struct pf_meta *m,
		   struct kiln_err *err);
void pf__meta_clear(struct pf_meta *m);
/* Checks a volume path: returns 0 and writes the normalized form (no leading
 * '/') to out[PF_MAX_PATH], or -EINVAL / -ENAMETOOLONG. */
int pf__path_normalize(const char *path, char *out);
/* A valid directory entry name: 1..PF_NAME_MAX bytes, no '/' or NUL, not "."
 * or "..". */
bool pf__name_ok(const char *name, size_t len);
bool pf__chunk_size_ok(uint32_t cs);
bool pf__kind_ok(uint32_t kind);

/* A growing buffer for encodings (meta.c); the bytes are wiped when freed.
 * Calls after a failed one do nothing; err holds the first error. */
struct pf_buf {
	uint8_t *p;
	size_t len, cap;
	int err;
};
void pf__buf_put(struct pf_buf *b, const void *data, size_t size);
void pf__buf_u8(struct pf_buf *b, uint32_t v);
void pf__buf_u16(struct pf_buf *b, uint32_t v);
void pf__buf_u32(struct pf_buf *b, uint32_t v);
void pf__buf_u64(struct pf_buf *b, uint64_t v);
void pf__buf_free(struct pf_buf *b);
/* Does the metadata record in (linked, and committed once if a file)? */
struct pf_inode;
bool pf__inode_persisted(const pf_volume_t *v, const struct pf_inode *in);
/* One inode record of format 2 (its entries naming persisted inodes only). */
void pf__encode_inode(const pf_volume_t *v, struct pf_buf *b, const struct pf_inode *in);
/* The whole body of format 2 for v's namespace. */
int pf__meta_encode(const pf_volume_t *v, struct pf_buf *b);

/* Metadata envelope. Keys derived from the volume key with HKDF-SHA256. */
struct pf_meta_keys {
	uint8_t enc[PF_KEY_SIZE];
	uint8_t kcv[PF_KCV_SIZE];
	uint8_t log[PF_KEY_SIZE]; /* the commit log's records (log.c) */
};
int pf__meta_keys_derive(const uint8_t key[static PF_KEY_SIZE], struct pf_meta_keys *k);
/* Seal a body of format PF_META_FORMAT into a malloc'd envelope (*out owned by
 * the caller). */
int pf__meta_seal(const struct pf_meta_keys *k, uint64_t version, const uint8_t *body,
		  size_t size, uint8_t **out, size_t *out_size);
/* Open an envelope: *body malloc'd (caller wipes+frees), *format the body's
 * format (1 or 2). -KILN_EFORMAT not a metadata file or an unknown format,
 * -KILN_EKEY wrong key, -KILN_EAUTH corrupt, -KILN_ETRUNC. */
int pf__meta_unseal(const struct pf_meta_keys *k, const uint8_t *buf, size_t size,
		    uint64_t *version, uint32_t *format, uint8_t **body, size_t *body_size,
		    struct kiln_err *err);

/* Little-endian helpers. */
static inline void pf__put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void pf__put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t pf__get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t pf__get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define PF_BNAME_MAX (2 * PF_BACKING_ID_SIZE + 3) /* backing file name + ".j" + NUL */
#define PF_IO_BATCH_BYTES (256 * 1024)
/* Per file with overwrites in flight: one journal sync per this many bytes of
 * distinct committed chunks overwritten (see pf_node.wb). */
#define PF_WB_BYTES (1024 * 1024)
/* Plaintext bytes per batch of a streaming read (rbuf): one O_DIRECT
 * request of 1 MiB reads 1.5-2x faster than four of 256 KiB here, and the
 * volume server fills 1 MiB at a time. */
#define PF_RBATCH_BYTES (1024 * 1024)
/* A write batch with at least this many whole chunks to seal is shared with
 * the volume's sealer thread. */
#define PF_PAR_MIN_CHUNKS 8
/* Files of at most this many chunks have no tag sidecar: scanning their slots
 * is one small read, and a sidecar would double the files per create. */
#define PF_SIDECAR_MIN_CHUNKS 9

struct pf_node;

#define PF_TREE_FANOUT 1024 /* tags per block of the tag tree (16 KiB) */
#define PF_BLK_HASH 32

struct pf_tblock {
	uint8_t tags[PF_TREE_FANOUT][PF_TAG_SIZE];
};

#define PF_ROOT_FLAT 1 /* root over the whole tag list (format 1 volumes) */
#define PF_ROOT_TREE 2 /* root over tag block hashes */
#define PF_MAX_LINKS 65000

struct pf_dent;

/* One inode; owned by the volume's inode table (v->ibuckets) while it has a
 * name or an open handle (its node), freed with the last of both. */
struct pf_inode {
	pf_ino_t ino;
	enum pf_type type;
	uint32_t mode; /* 07777 */
	uint32_t uid, gid;
	uint32_t nlink; /* names, plus "." and the ".." of subdirectories for a dir */
	int64_t atime_ns, mtime_ns, ctime_ns;
	struct pf_dent *names; /* the entries naming it (nnext list) */
	/* regular files */
	uint32_t kind;
	uint32_t root_fmt;
	uint8_t key[PF_KEY_SIZE];
	uint8_t file_id[PF_FILE_ID_SIZE];
	uint8_t backing[PF_BACKING_ID_SIZE];
	uint8_t root[PF_ROOT_SIZE]; /* as committed in the metadata */
	uint64_t size;              /* as committed in the metadata */
	bool in_meta;               /* committed at least once */
	bool linkable;              /* made by pf_tmpfile without O_EXCL, no name yet */
	/* A read-only open found slots of a data record of the log not yet in
	 * its backing file (pf__log_place): the file needs a read-write open. */
	bool log_unplaced;
	/* Named by a data record of the replayed log: its backing file may be
	 * longer than its size with no journal to say so (a writer killed after
	 * a record that shrank the file, before it cut the file): debris. */
	bool log_data;
	/* Created by this open, and no journal or tag sidecar of it ever asked
	 * for: its backing file goes alone (pf__remove_backing's sides false). */
	bool bare;
	struct pf_node *node;       /* open state, or NULL */
	/* symlinks: the target, owned */
	char *target;
	/* directories: entries in creation order (slots of removed ones are
	 * NULL until compacted); seq numbers only grow, so a readdir cookie is a
	 * seq and resuming is a binary search. */
	struct pf_dent **ents;
	uint64_t *eseq;   /* seq of each slot, kept for removed ones (binary search) */
	size_t nents, ents_cap, nlive;
	uint64_t next_seq;
	struct pf_inode *parent; /* ".." (the root's is itself) */
	struct pf_inode *hnext;  /* inode table chain */
};

/* A name in a directory; owned by the directory's entry list. */
struct pf_dent {
	struct pf_inode *dir;
	struct pf_inode *inode;
	uint64_t seq;              /* position in the listing, from 1 */
	size_t slot;               /* index in dir->ents */
	struct pf_dent *hnext;   /* (dir, name) table chain */
	struct pf_dent *nnext;   /* next name of the same inode */
	uint8_t len;
	char name[];               /* len bytes + NUL */
};

/* The result of walking a path (namespace.c). */
struct pf_walk {
	struct pf_inode *dir;    /* directory holding the last name */
	struct pf_inode *inode;  /* what it names, NULL when missing */
	struct pf_dent *dent;  /* the entry (NULL for ".", ".." and the root) */
	char name[PF_NAME_MAX + 1];
	bool dot;                /* the last component is "." or ".." (or the root) */
	bool trailing_slash;     /* the path ends in '/' after the last name */
	char *rest;              /* escaped: the path left to resolve outside (owned) */
	char link[PF_NAME_MAX + 1]; /* escaped: the symlink (or "..") that left */
};

/* In-memory state of one open (or dirty) file, shared by its handles. */
struct pf_node {
	pf_volume_t *vol;
	struct pf_inode *inode; /* kept while the node lives, even when unlinked */
	struct pf_node *next, *prev;
	char name[PF_BNAME_MAX]; /* backing file name */
	uint8_t file_id[PF_FILE_ID_SIZE];
	uint32_t kind;
	kc_aead_t *aead;
	kc_aead_t *aead2; /* the sealer thread's context (same key), lazily; owned */
	void *fh;
	unsigned refs;
	bool failed; /* an I/O error left disk and memory apart: refuse until reopened */
	bool dirty;
	bool was_in_meta;
	uint64_t size;                 /* current plaintext size */
	/* The tag tree (tree.c): blocks of tags loaded on first use, the hashes
	 * of the committed blocks, and which blocks changed since. All owned. */
	struct pf_tblock **tblk;
	uint8_t (*bhash)[PF_BLK_HASH];
	uint8_t *bdirty;
	uint64_t blk_cap;
	uint64_t nbase;      /* committed blocks */
	uint32_t base_count; /* tags in the last committed block */
	uint64_t base_cut;   /* chunks from here read as holes (cut since the commit) */
	uint8_t (*new_bhash)[PF_BLK_HASH]; /* computed by the commit in flight */
	uint64_t phys_size; /* upper bound of the backing file's size */
	uint8_t backing[PF_BACKING_ID_SIZE]; /* id of name */
	/* Truncated to zero since the last commit: writes go to a new backing
	 * file (name) while the committed one (old_name) stays untouched, so no
	 * journaling is needed; the commit switches the metadata over. */
	bool fresh;
	char old_name[PF_BNAME_MAX];
	uint8_t save_backing[PF_BACKING_ID_SIZE];
	/* Last committed state (what a crash returns to). */
	bool base_in_meta;
	uint64_t base_size;
	uint8_t base_root[PF_ROOT_SIZE];
	/* Undo journal of the current generation. */
	bool gen_open;
	void *jfh;
	/* The other journal ("<id>.j" and "<id>.k" alternate, jpar is jfh's:
	 * 0 = .j). With jlive it holds the redo entries of the last commit,
	 * whose slots were written in place without a sync: the only durable
	 * copy until the next data sync (the next commit, or pf__node_free). */
	void *jfh_alt;
	uint8_t jpar;
	bool jlive;
	/* Closed (no handle left) with jlive while the log held records: kept
	 * loaded, its live journal unspent (it may vouch for the log's last
	 * record), until the next checkpoint frees it (pf__commit_locked). */
	bool kept;
	/* A data record placed slots of it in the backing file without a sync
	 * (docs/fs.md "Data records"): the log's copy is the durable one until
	 * its data sync, which a checkpoint does first (pf__write_meta); a
	 * record that is not a data record waits for that sync (two phases). */
	bool dplaced;
	bool redo; /* scratch: this commit writes redo entries (journal_end) */
	bool data; /* scratch: this commit is a data record (its slots in the log) */
	/* Scratch: a data record that creates the file: its slots (written in
	 * place at once, unsynced) are read back into the record. */
	bool dnew;
	/* Scratch: this commit's generation is whole (PF_JOURNAL_END_WHOLE): no
	 * journal sync before its commit, so every slot of it is held and goes
	 * into the redo entries; its commit may be a one-phase record. */
	bool whole;
	uint64_t jend;
	uint8_t jsum[8];        /* the current generation's header check (entries bind it) */
	uint8_t *jmap; /* one bit per base chunk: already saved this generation */
	bool j_unsynced; /* journal header or entries written but not yet synced */
	/* The header of this generation is not durable yet (nor, with j_dir, the
	 * journal's directory entry): no byte of the backing file may move, so
	 * every write is held in the write-back until the first journal sync. */
	bool j_hdr;
	bool j_dir;
	/* The generation's journal is not written yet: its header and the undo
	 * entries of the chunks jmap marks wait for its first sync or the
	 * commit's redo entries (journal_write); a data record needs neither. */
	bool j_lazy;
	/* An open reservation of pf_stream_reserve: chunks from sres_first,
	 * slots up to sres_end (0: none) of backing file sres_fh. */
	uint64_t sres_first, sres_end;
	void *sres_fh;
	/* Write-back of overwrites of committed chunks whose journal entries are
	 * not synced yet: they reach the backing file only after the journal sync,
	 * so a batch of page writes costs one journal sync instead of one each.
	 * Up to vol->wb_cap slots (1 MiB), allocated on first use; reads look
	 * here first. */
	uint8_t *wb;        /* wb_cap * stride, owned */
	uint64_t *wb_idx;   /* chunk index of each slot, owned */
	uint32_t *wb_len;   /* bytes of each slot, owned */
	size_t wb_count;
	/* Sidecars "<id>.t" (the committed tags) and "<id>.h" (the committed
	 * block hashes): hints, the root decides; a stale or torn copy falls back
	 * to the slots. */
	void *tfh, *hfh;
	bool t_valid; /* the sidecars hold the committed state */
	bool side_due;      /* their rewrite deferred (a record), to this size */
	uint64_t side_size;
	/* Scratch during a commit. */
	bool committing;
	bool synced; /* covered by this commit's sync_all */
	uint8_t new_root[PF_ROOT_SIZE];
	uint8_t save_root[PF_ROOT_SIZE];
	uint64_t save_size;
	uint32_t save_root_fmt;
	bool save_in_meta;
};

struct pf_file {
	struct pf_node *node;
	int flags;
	struct pf_file *next, *prev;
};

struct pf_pending {
	char name[PF_BNAME_MAX];
	bool sides; /* its journals and tag sidecars may exist */
	struct pf_pending *next;
};

/* Work handed to the volume's helper thread. If the helper has not taken it
 * by the time the poster needs it done, the poster runs it itself. */
struct pf_job {
	void (*run)(struct pf_job *job);
	bool taken; /* by the helper (under pf_sealer.mu) */
};

/* Whole chunks [lo, hi) of one pf__node_write batch to seal, shared by the writing
 * thread and the sealer thread: each claims chunks through `next` and seals
 * into its own slots of v->iobuf with its own AES context. */
struct pf_seal_job {
	struct pf_job base;
	struct pf_node *n;
	const uint8_t *buf;
	uint64_t off, new_size, i, lo, hi;
	uint8_t *iobuf;
	atomic_uint_fast64_t next;
	atomic_int err;
};

/* One batch of sealed slots past the committed end, written to the backing
 * file by the helper while the next batch is being sealed (see pf__node_write).
 * The helper then joins that sealing: `follow` is the seal job posted while
 * the write ran (sealer.c). */
struct pf_write_job {
	struct pf_job base;
	pf_volume_t *v;
	void *fh;
	const uint8_t *buf;
	size_t len;
	uint64_t off;
	int ret;
	_Atomic(struct pf_seal_job *) follow;
};

/* The volume's sealer thread (started at the first large write). A forked
 * child has no such thread: it seals alone (fork generation check, sealer.c). */
struct pf_sealer {
	bool started;
	bool quit;
	bool busy;  /* the thread is working on `job` */
	unsigned fork_gen; /* sealer.c's fork count in the process that started it */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pf_job *job; /* posted, or NULL */
	uint64_t gen;       /* bumped per posted job */
};

struct pf_volume {
	pthread_mutex_t lock;
	struct pf_sealer sealer;
	const struct pf_storage_ops *so;
	void *sctx;
	const struct pf_freshness_ops *fo;
	void *fctx;
	bool read_only;
	bool seal_thread; /* opts.seal_thread */
	bool ns_dirty; /* namespace changed since the last metadata write */
	/* The metadata file was last written by pf_volume_publish (not synced,
	 * same version): the next commit makes it durable. */
	bool lazy;
	bool syncs_started; /* sync_start called since the last sync_wait */
	bool syncs_failed;  /* ... and that sync_wait failed: the data is unknown */
	/* pf_volume_on_durable: called at a record's commit point. */
	void (*on_durable)(void *arg);
	void *on_durable_arg;
	uint8_t key[PF_KEY_SIZE];
	struct pf_meta_keys mk;
	uint64_t version; /* freshness counter of the last metadata written */
	/* Versions and the freshness provider (commit.c, next_version): the
	 * highest version the provider is known to hold (committed or prepared),
	 * and the highest one anything sealed may carry on storage (written
	 * here, or possibly by a run a crash cut: at open, trusted + 1). The
	 * next commit goes above both: no version ever names two contents. */
	uint64_t trusted;
	uint64_t burned;
	uint64_t rides; /* pf_volume_rides */
	uint32_t cs;
	uint64_t stride;
	struct pf_meta_region *regions; /* owned, prefixes owned */
	size_t regions_len;
	struct pf_inode **ibuckets; /* inode table by number */
	size_t nibuckets, ninodes;
	size_t nsymlinks; /* symlink inodes in the table (pf_volume_symlinks) */
	struct pf_dent **dbuckets; /* entry table by (directory, name) */
	size_t ndbuckets, ndents;
	struct pf_inode *root;
	pf_ino_t next_ino;
	uid_t euid;   /* owner of nodes made without a cred */
	gid_t egid;
	char pathbuf[PF_MAX_PATH]; /* pf__node_path's answer */
	struct pf_node *nodes;
	struct pf_file *files;
	struct pf_pending *pending; /* backing files to remove after the next commit */
	/* Scratch buffers (the volume lock serializes their use). */
	uint8_t *iobuf; /* batch * stride */
	size_t batch;
	size_t wb_cap;  /* slots a file may hold in its write-back (PF_WB_BYTES) */
	uint8_t *slot;  /* stride */
	uint8_t *pt;    /* chunk size */
	uint8_t *aad;   /* 32 + chunk size */
	uint8_t *jbuf;  /* journal entry */
	uint8_t *nonces; /* batch * PF_NONCE_SIZE, drawn per batch of chunks sealed */
	uint8_t *iobuf2; /* batch * stride: the second buffer of the write pipeline */
	/* Reads of whole batches (data.c, read_slots), PF_DIO_ALIGN-aligned:
	 * rbatch * stride + 2 * PF_DIO_ALIGN; made at the first such read. */
	uint8_t *rbuf;
	size_t rbatch;
	uint8_t *zeros;  /* 2 * chunk size of zeros (zero range, never written to) */
	/* The commit log (log.c): its handle (opened at the first record, owned),
	 * where the next record goes, the records since the last checkpoint, and
	 * whether the next commit must write the whole metadata (a record failed
	 * to be written, or the namespace came from meta.pub). */
	void *log_fh;
	uint64_t log_off;
	uint64_t log_size; /* the log file's size (zeros past the records, PF_LOG_AHEAD) */
	uint32_t log_records;
	bool log_broken;
	uint32_t log_data_max; /* opts.log_data_max: 0 no data records */
	/* A node with slots a data record placed was freed and its data sync
	 * failed: no checkpoint may spend the log (reopen the volume). */
	bool dplaced_lost;
	/* Namespace changes since the last durable commit a record can carry
	 * (log.c, pf__nsop_*), in order; owned. */
	struct pf_log_ns *nsops;
	size_t nnsops, nsops_cap;
};

static inline int64_t pf__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A path of n's inode for messages ("(unlinked file)" when it has no name);
 * valid until the next call on the volume (one buffer per volume). */
const char *pf__node_path(const struct pf_node *n);

static inline uint64_t pf__nchunks(pf_volume_t *v, uint64_t size)
{
	return (size + v->cs - 1) / v->cs;
}

static inline uint32_t pf__chunk_len(pf_volume_t *v, uint64_t size, uint64_t i)
{
	uint64_t start = i * v->cs;

	if (start >= size)
		return 0;
	return size - start >= v->cs ? v->cs : (uint32_t)(size - start);
}

static inline uint64_t pf__slot_off(pf_volume_t *v, uint64_t i)
{
	return PF_HDR_SIZE + i * v->stride;
}

static inline uint64_t pf__expected_phys(pf_volume_t *v, uint64_t size)
{
	uint64_t n = pf__nchunks(v, size);

	if (n == 0)
		return PF_HDR_SIZE;
	return pf__slot_off(v, n - 1) + PF_SLOT_META + pf__chunk_len(v, size, n - 1);
}

static inline bool pf__tag_is_zero(const uint8_t *t)
{
	uint8_t acc = 0;

	for (int i = 0; i < PF_TAG_SIZE; i++)
		acc |= t[i];
	return acc == 0;
}

/* Node n's file is unlinked and cannot get a name again (not an O_TMPFILE
 * that may be linked): no metadata will name it, its data and journals are
 * debris removed with its backing file, and a crash before that commit
 * replays from the log what data records placed in it. Nothing of it needs
 * a sync (pf__journal_close, a checkpoint's group). */
static inline bool pf__node_gone(const struct pf_node *n)
{
	return n->inode && !n->inode->names && !n->inode->linkable;
}

/* True when the backing file holds a committed state that must survive a crash
 * (so modifications are journaled first). A file committed empty has nothing to
 * restore: after a crash, pf__node_load cuts whatever follows its header. */
static inline bool pf__has_base(const struct pf_node *n)
{
	return n->base_in_meta && !n->fresh && n->base_size > 0;
}

/* inode.c: the tables. An inode is created by pf__inode_alloc, entered with
 * pf__ino_insert, named with pf__dent_add; pf__dent_del removes a name and
 * pf__inode_release frees the inode once it has no name and no node. */
struct pf_inode *pf__ino_find(pf_volume_t *v, pf_ino_t ino);
int pf__ino_insert(pf_volume_t *v, struct pf_inode *in);
struct pf_inode *pf__inode_alloc(pf_volume_t *v, pf_ino_t ino, enum pf_type type);
void pf__inode_free(struct pf_inode *in);
void pf__inode_release(pf_volume_t *v, struct pf_inode *in);
struct pf_dent *pf__dent_find(pf_volume_t *v, const struct pf_inode *dir, const char *name,
				size_t len);
int pf__dent_add(pf_volume_t *v, struct pf_inode *dir, const char *name, size_t len,
		 struct pf_inode *in, struct pf_dent **out);
void pf__dent_del(pf_volume_t *v, struct pf_dent *d);
/* The volume path of in ("" for the root) into out; -ENOENT without a name. */
int pf__inode_path(pf_volume_t *v, const struct pf_inode *in, char *out, size_t size);
/* Region kind of name in dir (name NULL: of dir itself). */
enum pf_region_kind pf__region_at(pf_volume_t *v, const struct pf_inode *dir,
				  const char *name);
void pf__fill_stat(pf_volume_t *v, const struct pf_inode *in, struct pf_stat *st);
#define PF_TOUCH_A 1u
#define PF_TOUCH_M 2u
#define PF_TOUCH_C 4u
void pf__touch(struct pf_inode *in, unsigned what);
/* atime after a read, with relatime semantics (docs/fs.md). */
void pf__touch_atime(struct pf_inode *in);

/* resolve.c */
/* A walk for a call that acts on the last name itself (create, unlink,
 * rename, link's new name): a symlink there is never followed, not even with
 * a trailing '/' (the kernel's LOOKUP_PARENT). */
#define PF__WALK_PARENT 0x100u
enum pf_region_kind pf__region_of(pf_volume_t *v, const char *path);
/* Walk path from at (see pf_resolve); 0, PF_RESOLVE_ESCAPED (w->rest set:
 * pf__walk_done frees it) or an error with a message. pf__walk_in turns an
 * escape into -EXDEV. The volume lock is held. */
int pf__walk(pf_volume_t *v, struct pf_inode *at, const char *path, unsigned flags,
	     const struct pf_cred *cred, struct pf_walk *w, struct kiln_err *err);
int pf__walk_in(pf_volume_t *v, struct pf_inode *at, const char *path, unsigned flags,
		const struct pf_cred *cred, struct pf_walk *w, struct kiln_err *err);
void pf__walk_done(struct pf_walk *w);
/* pf__walk_in for a lookup: -ENOENT when the last name is missing, -ENOTDIR
 * for a non-directory named with a trailing '/'. */
int pf__walk_lookup(pf_volume_t *v, struct pf_inode *at, const char *path, unsigned flags,
		    const struct pf_cred *cred, struct pf_walk *w, struct kiln_err *err);
/* The live directory inode numbered at; NULL with *ret -ENOENT/-ENOTDIR. */
struct pf_inode *pf__at(pf_volume_t *v, pf_ino_t at, int *ret);

/* perm.c: the rules on inodes (pf_permission and pf_may_delete on stats). */
int pf__may(const struct pf_cred *cred, const struct pf_inode *in, int mask);
int pf__may_delete(const struct pf_cred *cred, const struct pf_inode *dir,
		   const struct pf_inode *victim);
/* 0, -EPERM or -EACCES for sa on in; may clear S_ISGID in sa->mode. */
int pf__may_setattr(const struct pf_cred *cred, const struct pf_inode *in,
		    struct pf_setattr *sa);

/* file.c: free node n of an unlinked or replaced file (and a backing file it
 * started since the last commit); the caller then releases the inode. */
void pf__node_drop(pf_volume_t *v, struct pf_node *n);

/* namespace.c: a new inode of type named name in dir (numbered, owned, timed,
 * entered; dir's times move), the volume lock held. */
int pf__new_inode(pf_volume_t *v, struct pf_inode *dir, const char *name, enum pf_type type,
		  mode_t mode, const struct pf_cred *cred, struct pf_inode **out);

/* backing.c */
int pf__st_pwrite_all(pf_volume_t *v, void *fh, const void *buf, size_t size, uint64_t off);
int pf__st_pread_pad(pf_volume_t *v, void *fh, void *buf, size_t size, uint64_t off);
int pf__st_set_size(pf_volume_t *v, void *fh, uint64_t size);
void pf__backing_name(const uint8_t id[static PF_BACKING_ID_SIZE], char out[PF_BNAME_MAX]);
void pf__remove_backing(pf_volume_t *v, const char *name, bool sides);
void pf__schedule_remove(pf_volume_t *v, const char *name, bool in_meta, bool sides);

/* chunk.c */
void pf__make_aad(struct pf_node *n, uint64_t i, uint32_t len, uint8_t aad[32]);
/* count nonces (12 random bytes each), from a pool a forked child never
 * shares (chunk.c). */
int pf__nonces(uint8_t *out, size_t count);
int pf__seal_chunk(struct pf_node *n, uint64_t i, const uint8_t *pt, uint32_t len,
		      const uint8_t *nonce, uint8_t *slot);
int pf__open_chunk(struct pf_node *n, uint64_t i, const uint8_t *slot, uint32_t len,
		      uint8_t *out, struct kiln_err *err);

/* sealer.c */
void pf__sealer_stop(pf_volume_t *v);
void pf__job_finish(pf_volume_t *v, struct pf_job *job);
int pf__seal_batch(struct pf_node *n, const uint8_t *buf, uint64_t off, uint64_t new_size,
		      uint64_t i, uint64_t lo, uint64_t hi, uint8_t *iobuf,
		      struct pf_write_job *running);
bool pf__write_async(struct pf_node *n, struct pf_write_job *wj, const uint8_t *data,
			size_t len, uint64_t at);

/* journal.c */
/* The header of a journal generation restoring the committed state (root,
 * size) of file_id: magic, the state, and 8 bytes of SHA-256 over them. */
void pf__journal_header(const uint8_t root[PF_ROOT_SIZE], uint64_t size,
			const uint8_t file_id[PF_FILE_ID_SIZE], const char *magic,
			uint8_t hdr[PF_JOURNAL_HDR_SIZE]);
/* The check of entry[size] (first 8 bytes of out): bound to its generation
 * through hdr_sum (the header's check; NULL for format 1). */
void pf__journal_entry_sum(const uint8_t *hdr_sum, const uint8_t *entry, size_t size,
			   uint8_t out[KC_SHA256_SIZE]);
int pf__journal_begin(struct pf_node *n, struct kiln_err *err);
int pf__journal_spend(struct pf_node *n);
/* Commit of a generation (docs/fs.md): write the held slots as redo entries
 * and the end record naming (root, size); the caller syncs the journal with
 * the data. pf__journal_placed, after the commit point: write the held slots
 * in place (no sync) and switch to the other journal for the next generation. */
int pf__journal_end(struct pf_node *n, const uint8_t root[PF_ROOT_SIZE], uint64_t size,
		    bool whole);
int pf__journal_placed(struct pf_node *n);
/* After a data record's commit point: the held slots in place, no sync
 * (n->dplaced until the next data sync). */
int pf__journal_data_placed(struct pf_node *n);
/* Last close of a node with a live redo journal: sync the data, spend it. */
void pf__journal_close(struct pf_node *n);
int pf__journal_save(struct pf_node *n, uint64_t from, uint64_t to, bool sync,
			struct kiln_err *err);
const uint8_t *pf__wb_find(struct pf_node *n, uint64_t k);
int pf__wb_drain(struct pf_node *n, struct kiln_err *err);
int pf__wb_hold(struct pf_node *n, uint64_t k, const uint8_t *slot, size_t len,
		   struct kiln_err *err);
int pf__journal_recover(struct pf_node *n, const struct pf_inode *e, bool *had_journal,
			struct kiln_err *err);
/* Does a journal of backing file name (file_id) vouch for a one-phase
 * record's (root, size) of it: an end record naming them, every redo entry it
 * counts whole? A spent journal counts (its data was synced before). */
int pf__journal_vouches(pf_volume_t *v, const char *name, const uint8_t file_id[PF_FILE_ID_SIZE],
			const uint8_t root[PF_ROOT_SIZE], uint64_t size, bool *yes);
/* Does a journal of backing file name (file_id), live or spent, have a header
 * naming (root, size): a generation began on that state, so the commit that
 * made it completed? */
int pf__journal_names(pf_volume_t *v, const char *name, const uint8_t file_id[PF_FILE_ID_SIZE],
		      const uint8_t root[PF_ROOT_SIZE], uint64_t size, bool *yes);

/* tree.c: the tag tree (see there). pf__tags_need loads the blocks holding
 * chunks [lo, hi) (checked against the committed hashes: -KILN_EAUTH names
 * the block); only then may pf__tag and pf__tag_set touch those chunks. */
int pf__tree_load(struct pf_node *n, const struct pf_inode *e, struct kiln_err *err);
/* Does n's backing file (n->fh) hold e's state whole: tags making its root,
 * every chunk authentic? Read only. */
int pf__tree_vouch(struct pf_node *n, const struct pf_inode *e, bool *yes);
int pf__tags_need(struct pf_node *n, uint64_t lo, uint64_t hi, struct kiln_err *err);
static inline uint8_t *pf__tag(const struct pf_node *n, uint64_t k)
{
	return n->tblk[k / PF_TREE_FANOUT]->tags[k % PF_TREE_FANOUT];
}
void pf__tag_set(struct pf_node *n, uint64_t k, const uint8_t *tag);
/* Is chunk k a hole? *known is false when its block is not loaded and may
 * hold data. */
bool pf__tag_hole(const struct pf_node *n, uint64_t k, bool *known);
/* Before the size changes from old_size to new_size. */
int pf__tree_resize(struct pf_node *n, uint64_t old_size, uint64_t new_size,
		    struct kiln_err *err);
/* The root of the current tags for size (keeps the block hashes for
 * pf__tree_committed, called once that root is the committed one). */
int pf__tree_root(struct pf_node *n, uint64_t size, uint8_t out[PF_ROOT_SIZE],
		  struct kiln_err *err);
/* Then: the committed state, and the sidecars brought to it. Errors writing
 * them only cost the next open a scan -- except something planted at a
 * sidecar's name, which is refused: -KILN_EUNSAFE, err naming it. */
int pf__tree_committed(struct pf_node *n, uint64_t size, struct kiln_err *err);
/* The sidecars a record's commit left to rewrite (side_due), now: at a
 * checkpoint, and when the node goes. Not for a file written since. */
int pf__tree_sidecars(struct pf_node *n, struct kiln_err *err);
/* A new backing file (truncate to 0): nothing committed in it. */
void pf__tree_reset(struct pf_node *n);
void pf__tree_free(struct pf_node *n);
/* Chunks stored (not holes; unloaded blocks with data count whole). */
uint64_t pf__tree_held(const struct pf_node *n, uint64_t size);

/* node.c */
void pf__node_free(struct pf_node *n);
struct pf_node *pf__node_new(pf_volume_t *v, struct pf_inode *e);
int pf__node_load(pf_volume_t *v, struct pf_inode *e, struct pf_node **out,
		  struct kiln_err *err);
/* Does the backing file of e (a file a one-phase record created, not loaded)
 * hold e's root and size (pf__log_vouch)? *yes false when it is missing,
 * short, another file's or altered; a size of 0 needs nothing. */
int pf__node_vouches(pf_volume_t *v, const struct pf_inode *e, bool *yes);
/* 512-byte blocks stored for a regular file (st_blocks). */
uint64_t pf__node_blocks(pf_volume_t *v, const struct pf_inode *in);

/* data.c */
int pf__set_size(struct pf_node *n, uint64_t new_size, struct kiln_err *err);
ssize_t pf__node_write(struct pf_node *n, const uint8_t *buf, size_t size, uint64_t off,
			  struct kiln_err *err);
ssize_t pf__node_read(struct pf_node *n, uint8_t *buf, size_t size, uint64_t off,
			 struct kiln_err *err);
/* pf_read_chunks on a node (see pf.h). */
ssize_t pf__node_read_chunks(struct pf_node *n, uint64_t first, size_t count, uint8_t *buf,
			     int *results, struct kiln_err *err);
/* Bytes [a, b) (clipped to the size) read as zeros: whole chunks become holes. */
int pf__zero_range(struct pf_node *n, uint64_t a, uint64_t b, struct kiln_err *err);
/* SEEK_DATA (data) or SEEK_HOLE from off: -ENXIO at or past the end, and for
 * SEEK_DATA with no data after off. */
int pf__seek(struct pf_node *n, uint64_t off, bool data, uint64_t *out,
	     struct kiln_err *err);

/* file.c: truncate a regular file's inode (loading its node when no handle
 * is open; the node stays until committed), the volume lock held. */
int pf__inode_truncate(pf_volume_t *v, struct pf_inode *in, uint64_t size,
		       struct kiln_err *err);

/* commit.c */
int pf__write_meta(pf_volume_t *v, bool durable, struct kiln_err *err);
bool pf__node_needs_commit(const struct pf_node *n);
int pf__commit_locked(pf_volume_t *v, struct pf_node *only, struct kiln_err *err);

/* log.c: the commit log ".kiln/log" (docs/fs.md "Commit log"). */
#define PF_LOG_NAME "log"
#define PF_LOG_MAGIC "KILNLOG1"
#define PF_LOG_HDR_SIZE 40
#define PF_LOG_ENTRY_SIZE (8 + 8 + 3 * 8 + PF_ROOT_SIZE)
#define PF_LOG_MAX_FILES 4096u /* per record; a commit of more files checkpoints */
/* Namespace entries (header flag PF_LOG_NS): op u8, name length u8,
 * reserved u16, parent u64, ino u64, the parent's mtime and ctime (i64 ns),
 * then for a create mode u32 uid u32 gid u32 region kind u32, key, file id,
 * backing id; then the name. */
#define PF_LOG_NS_FIXED (4 + 8 + 8 + 8 + 8)
#define PF_LOG_NS_CREATE_EXTRA (4 * 4 + PF_KEY_SIZE + PF_FILE_ID_SIZE + PF_BACKING_ID_SIZE)
#define PF_LOG_NS_MAX_SIZE (PF_LOG_NS_FIXED + PF_LOG_NS_CREATE_EXTRA + PF_NAME_MAX)
#define PF_LOG_MAX_NS 1024u /* per record; more namespace changes checkpoint */
#define PF_LOG_NS_CREATE 1u /* a new regular file, its contents in the same record */
#define PF_LOG_NS_UNLINK 2u /* a name of a regular file removed */
/* Data (header flag PF_LOG_DATA), after the file entries: slot count u32,
 * reserved u32, then per slot ino u64, chunk index u64, data length u32,
 * reserved u32, the sealed slot (nonce, tag, data[length]) as the backing
 * file holds it. At most PF_LOG_DATA_MAX bytes of slots (nonce, tag and data)
 * in one record: the write-back's I/O batch (a commit holding more is not a
 * data record). */
#define PF_LOG_SLOT_FIXED (8 + 8 + 4 + 4)
#define PF_LOG_DATA_MAX (256u * 1024)
#define PF_LOG_MAX_SLOTS (PF_LOG_DATA_MAX / (PF_SLOT_META + 16))
#define PF_LOG_REC_MAX (PF_LOG_HDR_SIZE + 16 + PF_LOG_MAX_FILES * PF_LOG_ENTRY_SIZE + \
			PF_LOG_MAX_NS * PF_LOG_NS_MAX_SIZE + 8 + \
			PF_LOG_MAX_SLOTS * PF_LOG_SLOT_FIXED + PF_LOG_DATA_MAX + PF_TAG_SIZE)
#define PF_LOG_MAX_RECORDS 64u           /* records between checkpoints */
#define PF_LOG_MAX_BYTES (1024u * 1024)  /* log bytes between checkpoints */
/* A record that would pass the log's end writes zeros after itself up to the
 * next multiple of this: the records after it then keep the file's size, and
 * their fdatasync writes no inode (docs/fs.md "Commit log"). */
#define PF_LOG_AHEAD (64u * 1024)
/* Header flag (bytes 20..23): written in its commit's sync group, before its
 * data was durable; replayed last only when the journals vouch for it, and
 * the content of the files it creates (pf__log_vouch). */
#define PF_LOG_ONEPHASE 1u
/* Header flag: the body carries namespace entries (create and unlink of
 * regular files) before the file entries; with PF_LOG_ONEPHASE too. An
 * older kiln refuses the flag: its replay stops there (a rollback). */
#define PF_LOG_NS 2u
/* Header flag: the body carries, after the file entries, the new slots of
 * its files (a redo log for small commits, docs/fs.md "Data records"): the
 * record vouches for itself (GCM over all of it), no journal or data sync
 * takes part in its commit; replay puts the slots in place. Not with
 * PF_LOG_ONEPHASE; with PF_LOG_NS too. An older kiln refuses the flag. */
#define PF_LOG_DATA 4u
/* One new slot a data record carries. */
struct pf_log_slot {
	uint64_t ino, idx;
	uint32_t len;        /* data bytes (the slot is PF_SLOT_META + len) */
	const uint8_t *slot; /* nonce, tag, data: into pf_log_rec.dbuf, or the writer's */
};
/* One namespace change of a record, applied in order before its files. */
struct pf_log_ns {
	uint8_t op; /* PF_LOG_NS_CREATE, PF_LOG_NS_UNLINK */
	uint8_t len;
	uint64_t parent, ino;
	int64_t pmtime_ns, pctime_ns; /* the parent directory's times after it */
	/* create */
	uint32_t mode, uid, gid, kind;
	uint8_t key[PF_KEY_SIZE];
	uint8_t file_id[PF_FILE_ID_SIZE];
	uint8_t backing[PF_BACKING_ID_SIZE];
	char name[PF_NAME_MAX + 1];
};
/* What one record sets of one file. */
struct pf_log_entry {
	uint64_t ino, size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint8_t root[PF_ROOT_SIZE];
};
/* A decoded record: ents malloc'd, owned (pf__log_rec_clear frees). */
struct pf_log_rec {
	uint64_t version;
	size_t count;
	struct pf_log_entry *ents;
	size_t size; /* bytes of the record in the log */
	uint64_t end; /* offset after it (set by pf__log_parse) */
	uint32_t flags; /* PF_LOG_ONEPHASE, PF_LOG_NS */
	/* PF_LOG_NS: the namespace changes (malloc'd, owned; keys wiped by
	 * pf__log_rec_clear) and the next inode number after them. */
	struct pf_log_ns *ns;
	size_t nns;
	uint64_t next_ino;
	/* PF_LOG_DATA: the slots (malloc'd, owned), pointing into dbuf (owned;
	 * NULL when the writer's slots are its own). */
	struct pf_log_slot *slots;
	size_t nslots;
	uint8_t *dbuf;
};
/* The records a replay applies, in order (owned; pf__log_scan_clear), the
 * version they reach, and the offset after the last one. */
struct pf_log_scan {
	struct pf_log_rec *recs;
	size_t count;
	uint64_t version;
	uint64_t end;
	/* The freshness provider's answer pf__log_scan got (asked only when
	 * the log holds records): pf__check_freshness takes it instead of
	 * asking again (for a CAS, a round trip). */
	bool asked;
	int fresh_ret; /* 0 or -ENOENT */
	uint64_t fresh_c, fresh_p;
};
/* Seal rec (its version, flags, ents[count] and, with PF_LOG_NS, ns[nns]
 * and next_ino) into a malloc'd buffer (*out owned by the caller). */
int pf__log_seal(const struct pf_meta_keys *k, const struct pf_log_rec *rec, uint8_t **out,
		 size_t *out_size);
/* Open the record at the start of buf[size] (bytes after it are ignored):
 * -KILN_ETRUNC cut, -KILN_EFORMAT malformed, -KILN_EAUTH not sealed with this
 * key or altered; a message in err. rec is owned by the caller on success. */
int pf__log_open_rec(const struct pf_meta_keys *k, const uint8_t *buf, size_t size,
		     struct pf_log_rec *rec, struct kiln_err *err);
/* The body alone (after authentication; the fuzz target calls it directly);
 * flags are the header's (PF_LOG_NS: namespace entries first). */
int pf__log_body_decode(const uint8_t *body, size_t size, uint32_t flags,
			struct pf_log_rec *rec, struct kiln_err *err);
void pf__log_rec_clear(struct pf_log_rec *rec);
/* The records of log[size] a replay from metadata version base applies:
 * records at or below the version reached are skipped (spent); the next must
 * have the next version and at most admit (the trusted store's newest); the
 * first that does not open, or does not follow, ends the log. Only -ENOMEM. */
int pf__log_parse(const struct pf_meta_keys *k, const uint8_t *buf, size_t size, uint64_t base,
		  uint64_t admit, struct pf_log_scan *s);
/* pf__log_parse over v's log file (none: no records), the records beyond
 * the freshness provider's newest version dropped. */
int pf__log_scan(pf_volume_t *v, uint64_t base, struct pf_log_scan *s, struct kiln_err *err);
void pf__log_scan_clear(struct pf_log_scan *s);
/* A one-phase last record whose journals (found through m, the metadata the
 * scan started from) do not vouch for it is dropped: its commit never
 * completed. v's chunk size must be m's. */
int pf__log_vouch(pf_volume_t *v, const struct pf_meta *m, struct pf_log_scan *s);
/* Apply the scanned records to v's inode table (loaded from the metadata the
 * scan started from) and place the next record after them. -KILN_ECORRUPT
 * when a record names an inode that is not a committed file, or a namespace
 * entry does not apply (name taken or missing, parent not a directory, inode
 * number reused). */
int pf__log_replay(pf_volume_t *v, const struct pf_log_scan *s, struct kiln_err *err);
/* After pf__log_replay: put the slots of the data records in the backing
 * files (docs/fs.md "Data records"): for each file, the newest slot of each
 * chunk among the data records after the last record that names the file
 * without carrying its data; written and synced on a read-write volume, on a
 * read-only one compared (a file whose slots are not there is marked
 * log_unplaced). -KILN_ECORRUPT when a slot does not fit the file's replayed
 * size. */
int pf__log_place(pf_volume_t *v, const struct pf_log_scan *s, struct kiln_err *err);
/* Write the record of version (flags) for the nodes being committed
 * (n->committing; their inodes hold the new state) at the log's end; the
 * caller syncs v->log_fh and then counts it (*size bytes) in. */
int pf__log_append(pf_volume_t *v, uint64_t version, uint32_t flags, size_t *size,
		   struct kiln_err *err);
/* Namespace changes since the last durable commit that a record can carry
 * (v->nsops): a regular file created (pf__nsop_create, after its backing file
 * was made) or a regular file's name removed (pf__nsop_unlink, before the
 * entry goes). A change they cannot record marks v->ns_dirty (checkpoint). */
void pf__nsop_create(pf_volume_t *v, struct pf_inode *dir, struct pf_inode *in);
void pf__nsop_unlink(pf_volume_t *v, struct pf_dent *d);
void pf__nsops_clear(pf_volume_t *v);
bool pf__nsop_created(const pf_volume_t *v, pf_ino_t ino);

/* freshness.c */
/* The rollback check: accept the metadata's version when it equals the
 * provider's committed or prepared version (committing a prepared one),
 * -KILN_EROLLBACK when older, -KILN_ECONFLICT when newer; with trust_first a
 * provider that holds nothing yet takes this version. */
/* commit.c: what the provider holds (at open): the versions up to trusted,
 * and the one after it, count as used. */
void pf__versions_known(pf_volume_t *v, uint64_t trusted);
/* The provider's committed and prepared versions, asked twice when the
 * first answer (maybe a snapshot) does not admit version. */
int pf__fresh_current(pf_volume_t *v, uint64_t version, uint64_t *c, uint64_t *p,
		      struct kiln_err *err);
int pf__check_freshness(pf_volume_t *v, uint64_t version, bool trust_first,
			const struct pf_log_scan *known, struct kiln_err *err);

#endif
