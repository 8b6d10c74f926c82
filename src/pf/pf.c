/* Protected volumes: namespace, file state, chunk I/O, journal, commits.
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
#include "pf/pf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define PF_NAME_MAX (2 * PF_BACKING_ID_SIZE + 3)
#define PF_IO_BATCH_BYTES (256 * 1024)
/* Per file with overwrites in flight: one journal sync per this many bytes of
 * distinct committed chunks overwritten (see pf_node.wb). */
#define PF_WB_BYTES (1024 * 1024)
/* A write batch with at least this many whole chunks to seal is shared with
 * the volume's sealer thread. */
#define PF_PAR_MIN_CHUNKS 8
/* Files of at most this many chunks have no tag sidecar: scanning their slots
 * is one small read, and a sidecar would double the files per create. */
#define PF_SIDECAR_MIN_CHUNKS 9

struct pf_node;

/* One namespace entry (file or directory); owned by the volume's hash table. */
struct pf_entry {
	char *path; /* owned */
	bool is_dir;
	uint32_t mode;
	int64_t mtime_ns;
	/* files only */
	uint32_t kind;
	uint8_t key[PF_KEY_SIZE];
	uint8_t file_id[PF_FILE_ID_SIZE];
	uint8_t backing[PF_BACKING_ID_SIZE];
	uint8_t root[PF_ROOT_SIZE]; /* as committed in the metadata */
	uint64_t size;              /* as committed in the metadata */
	bool in_meta;               /* committed at least once */
	struct pf_node *node;       /* open state, or NULL */
	struct pf_entry *hnext;
};

/* In-memory state of one open (or dirty) file, shared by its handles. */
struct pf_node {
	pf_volume_t *vol;
	struct pf_entry *entry; /* NULL once unlinked */
	struct pf_node *next, *prev;
	char name[PF_NAME_MAX]; /* backing file name */
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
	uint8_t (*tags)[PF_TAG_SIZE];  /* current tags, nchunks(size) valid; owned */
	uint64_t tags_cap;
	uint64_t phys_size; /* upper bound of the backing file's size */
	uint8_t backing[PF_BACKING_ID_SIZE]; /* id of name */
	/* Truncated to zero since the last commit: writes go to a new backing
	 * file (name) while the committed one (old_name) stays untouched, so no
	 * journaling is needed; the commit switches the metadata over. */
	bool fresh;
	char old_name[PF_NAME_MAX];
	uint8_t save_backing[PF_BACKING_ID_SIZE];
	/* Last committed state (what a crash returns to). */
	bool base_in_meta;
	uint64_t base_size;
	uint8_t base_root[PF_ROOT_SIZE];
	/* Undo journal of the current generation. */
	bool gen_open;
	void *jfh;
	uint64_t jend;
	uint8_t *jmap; /* one bit per base chunk: already saved this generation */
	bool j_unsynced; /* journal header or entries written but not yet synced */
	/* The header of this generation is not durable yet (nor, with j_dir, the
	 * journal's directory entry): no byte of the backing file may move, so
	 * every write is held in the write-back until the first journal sync. */
	bool j_hdr;
	bool j_dir;
	/* Write-back of overwrites of committed chunks whose journal entries are
	 * not synced yet: they reach the backing file only after the journal sync,
	 * so a batch of page writes costs one journal sync instead of one each.
	 * Up to vol->wb_cap slots (1 MiB), allocated on first use; reads look
	 * here first. */
	uint8_t *wb;        /* wb_cap * stride, owned */
	uint64_t *wb_idx;   /* chunk index of each slot, owned */
	uint32_t *wb_len;   /* bytes of each slot, owned */
	size_t wb_count;
	/* Tag sidecar "<id>.t": a copy of the committed tag list, so opening a
	 * file reads 16 bytes per chunk instead of the whole file. It is a hint:
	 * the root decides, and a stale or torn copy falls back to a scan. */
	void *tfh;
	bool t_valid;          /* the sidecar holds the base tag list */
	uint64_t t_lo, t_hi;   /* tags changed since (chunk index range) */
	/* Scratch during a commit. */
	bool committing;
	bool synced; /* covered by this commit's sync_all */
	uint8_t new_root[PF_ROOT_SIZE];
	uint8_t save_root[PF_ROOT_SIZE];
	uint64_t save_size;
	bool save_in_meta;
};

struct pf_file {
	struct pf_node *node;
	int flags;
	struct pf_file *next, *prev;
};

struct pf_pending {
	char name[PF_NAME_MAX];
	struct pf_pending *next;
};

/* Work handed to the volume's helper thread. If the helper has not taken it
 * by the time the poster needs it done, the poster runs it itself. */
struct pf_job {
	void (*run)(struct pf_job *job);
	bool taken; /* by the helper (under pf_sealer.mu) */
};

/* Whole chunks [lo, hi) of one node_write batch to seal, shared by the writing
 * thread and the sealer thread: each claims chunks through `next` and seals
 * into its own slots of v->iobuf with its own AES context. */
struct seal_job {
	struct pf_job base;
	struct pf_node *n;
	const uint8_t *buf;
	uint64_t off, new_size, i, lo, hi;
	uint8_t *iobuf;
	atomic_uint_fast64_t next;
	atomic_int err;
};

/* One batch of sealed slots past the committed end, written to the backing
 * file by the helper while the next batch is being sealed (see node_write). */
struct write_job {
	struct pf_job base;
	pf_volume_t *v;
	void *fh;
	const uint8_t *buf;
	size_t len;
	uint64_t off;
	int ret;
};

/* The volume's sealer thread (started at the first large write). A forked
 * child has no such thread: it seals alone (pid check). */
struct pf_sealer {
	bool started;
	bool quit;
	bool busy;  /* the thread is working on `job` */
	pid_t pid;  /* the process that started the thread */
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
	 * same tag): the next commit makes it durable. */
	bool lazy;
	bool syncs_started; /* sync_start called since the last sync_wait */
	bool syncs_failed;  /* ... and that sync_wait failed: the data is unknown */
	uint8_t key[PF_KEY_SIZE];
	struct pf_meta_keys mk;
	uint64_t tag;
	uint32_t cs;
	uint64_t stride;
	struct pf_meta_region *regions; /* owned, prefixes owned */
	size_t regions_len;
	struct pf_entry **buckets;
	size_t nbuckets, nentries;
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
};

static const uint8_t g_zero_tag[PF_TAG_SIZE];
static const uint8_t g_plain_tag[PF_TAG_SIZE] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *node_path(const struct pf_node *n)
{
	return n->entry ? n->entry->path : "(unlinked file)";
}

/* ---- namespace hash table ---- */

static uint64_t path_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

static struct pf_entry *ent_find(pf_volume_t *v, const char *path)
{
	struct pf_entry *e = v->buckets[path_hash(path) % v->nbuckets];

	while (e && strcmp(e->path, path) != 0)
		e = e->hnext;
	return e;
}

static void ent_link(pf_volume_t *v, struct pf_entry *e)
{
	size_t b = path_hash(e->path) % v->nbuckets;

	e->hnext = v->buckets[b];
	v->buckets[b] = e;
}

static void ent_unlink(pf_volume_t *v, struct pf_entry *e)
{
	struct pf_entry **pp = &v->buckets[path_hash(e->path) % v->nbuckets];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
}

static int ent_insert(pf_volume_t *v, struct pf_entry *e)
{
	if (v->nentries + 1 > v->nbuckets) {
		size_t nb = v->nbuckets * 2;
		struct pf_entry **nbk = calloc(nb, sizeof(*nbk));

		if (!nbk)
			return -ENOMEM;
		for (size_t i = 0; i < v->nbuckets; i++) {
			struct pf_entry *x = v->buckets[i], *nx;

			for (; x; x = nx) {
				size_t b = path_hash(x->path) % nb;

				nx = x->hnext;
				x->hnext = nbk[b];
				nbk[b] = x;
			}
		}
		free(v->buckets);
		v->buckets = nbk;
		v->nbuckets = nb;
	}
	ent_link(v, e);
	v->nentries++;
	return 0;
}

static void ent_free(struct pf_entry *e)
{
	if (!e)
		return;
	free(e->path);
	kiln_wipe(e, sizeof(*e));
	free(e);
}

static void ent_remove(pf_volume_t *v, struct pf_entry *e)
{
	ent_unlink(v, e);
	v->nentries--;
}

/* The directory part of path ("" for top level), in out. */
static void parent_of(const char *path, char *out)
{
	const char *s = strrchr(path, '/');
	size_t len = s ? (size_t)(s - path) : 0;

	memcpy(out, path, len);
	out[len] = '\0';
}

static bool dir_exists(pf_volume_t *v, const char *path)
{
	struct pf_entry *e;

	if (path[0] == '\0')
		return true;
	e = ent_find(v, path);
	return e && e->is_dir;
}

/* 0, -ENOENT or -ENOTDIR for the parent of path. */
static int check_parent(pf_volume_t *v, const char *path)
{
	char parent[PF_MAX_PATH];
	struct pf_entry *e;

	parent_of(path, parent);
	if (parent[0] == '\0')
		return 0;
	e = ent_find(v, parent);
	if (!e)
		return -ENOENT;
	return e->is_dir ? 0 : -ENOTDIR;
}

static bool under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 0)
		return true;
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static enum pf_region_kind region_of(pf_volume_t *v, const char *path)
{
	enum pf_region_kind kind = PF_REGION_ENCRYPTED;
	size_t best = 0;
	bool found = false;

	for (size_t i = 0; i < v->regions_len; i++) {
		size_t n = strlen(v->regions[i].prefix);

		if (under(path, v->regions[i].prefix) && (!found || n >= best)) {
			best = n;
			found = true;
			kind = (enum pf_region_kind)v->regions[i].kind;
		}
	}
	return kind;
}

/* ---- storage helpers ---- */

static int st_pwrite_all(pf_volume_t *v, void *fh, const void *buf, size_t size, uint64_t off)
{
	const uint8_t *p = buf;

	while (size) {
		ssize_t n = v->so->pwrite(v->sctx, fh, p, size, off);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		size -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Reads up to size bytes; zero-fills what lies past EOF. */
static int st_pread_pad(pf_volume_t *v, void *fh, void *buf, size_t size, uint64_t off)
{
	ssize_t n = v->so->pread(v->sctx, fh, buf, size, off);

	if (n < 0)
		return (int)n;
	if ((size_t)n < size)
		memset((uint8_t *)buf + n, 0, size - (size_t)n);
	return 0;
}

static void backing_name(const uint8_t id[static PF_BACKING_ID_SIZE], char out[PF_NAME_MAX])
{
	kiln_hex_encode(id, PF_BACKING_ID_SIZE, out);
}

static void remove_backing(pf_volume_t *v, const char *name)
{
	char j[PF_NAME_MAX];

	/* Failures leave an orphan that the next read-write open collects. */
	(void)v->so->remove(v->sctx, name);
	snprintf(j, sizeof(j), "%s.j", name);
	(void)v->so->remove(v->sctx, j);
	snprintf(j, sizeof(j), "%s.t", name);
	(void)v->so->remove(v->sctx, j);
}

static void schedule_remove(pf_volume_t *v, const char *name, bool in_meta)
{
	struct pf_pending *p;

	if (!in_meta) {
		remove_backing(v, name);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return; /* orphan, collected on the next open */
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->next = v->pending;
	v->pending = p;
}

/* ---- chunk geometry ---- */

static uint64_t nchunks(pf_volume_t *v, uint64_t size)
{
	return (size + v->cs - 1) / v->cs;
}

static uint32_t chunk_len(pf_volume_t *v, uint64_t size, uint64_t i)
{
	uint64_t start = i * v->cs;

	if (start >= size)
		return 0;
	return size - start >= v->cs ? v->cs : (uint32_t)(size - start);
}

static uint64_t slot_off(pf_volume_t *v, uint64_t i)
{
	return PF_HDR_SIZE + i * v->stride;
}

static uint64_t expected_phys(pf_volume_t *v, uint64_t size)
{
	uint64_t n = nchunks(v, size);

	if (n == 0)
		return PF_HDR_SIZE;
	return slot_off(v, n - 1) + PF_SLOT_META + chunk_len(v, size, n - 1);
}

static bool tag_is_zero(const uint8_t *t)
{
	return memcmp(t, g_zero_tag, PF_TAG_SIZE) == 0;
}

static void make_aad(struct pf_node *n, uint64_t i, uint32_t len, uint8_t aad[32])
{
	memcpy(aad, n->file_id, PF_FILE_ID_SIZE);
	pf_put_u64(aad + 16, i);
	pf_put_u32(aad + 24, len);
	pf_put_u32(aad + 28, n->kind);
}

/* Seal plaintext pt[len] as chunk i into slot (nonce, tag, data). nonce: 12
 * fresh random bytes drawn by the caller for this seal only, or NULL to draw
 * them here (one RAND_bytes call per chunk). */
static int seal_chunk(struct pf_node *n, uint64_t i, const uint8_t *pt, uint32_t len,
		      const uint8_t *nonce, uint8_t *slot)
{
	pf_volume_t *v = n->vol;
	uint8_t aad[32];
	int ret;

	if (n->kind == PF_REGION_PLAIN) {
		memset(slot, 0, PF_NONCE_SIZE);
		memcpy(slot + PF_NONCE_SIZE, g_plain_tag, PF_TAG_SIZE);
		memmove(slot + PF_SLOT_META, pt, len);
		return 0;
	}
	/* Random 96-bit nonces: no counter to persist across crashes; with a key
	 * per file the birthday bound (2^32 writes per file) is far away. */
	if (nonce)
		memcpy(slot, nonce, PF_NONCE_SIZE);
	else if ((ret = kc_random(slot, PF_NONCE_SIZE)) != 0)
		return ret;
	make_aad(n, i, len, aad);
	if (n->kind == PF_REGION_ENCRYPTED) {
		ret = kc_aead_seal(n->aead, slot, aad, sizeof(aad), pt, len, slot + PF_SLOT_META,
				   slot + PF_NONCE_SIZE);
	} else {
		memcpy(v->aad, aad, sizeof(aad));
		memcpy(v->aad + sizeof(aad), pt, len);
		ret = kc_aead_seal(n->aead, slot, v->aad, sizeof(aad) + len, NULL, 0,
				   slot + PF_SLOT_META, slot + PF_NONCE_SIZE);
		memmove(slot + PF_SLOT_META, pt, len);
	}
	/* A real tag of all zeros would read as a hole; 2^-128, but be exact. */
	if (ret == 0 && tag_is_zero(slot + PF_NONCE_SIZE))
		return seal_chunk(n, i, pt, len, NULL, slot);
	return ret;
}

/* Seal whole chunk k of a batch (encrypted region) with context aead. Safe to
 * run on two threads at once for different k: no volume scratch is used. */
static int seal_whole(struct seal_job *job, kc_aead_t *aead, uint64_t k)
{
	struct pf_node *n = job->n;
	pf_volume_t *v = n->vol;
	uint32_t len = chunk_len(v, job->new_size, k);
	const uint8_t *pt = job->buf + (k * v->cs - job->off);
	uint8_t *slot = job->iobuf + (k - job->i) * v->stride;
	const uint8_t *nonce = v->nonces + (k - job->i) * PF_NONCE_SIZE;
	uint8_t aad[32];
	int ret;

	if (n->kind != PF_REGION_ENCRYPTED) /* never shared: volume scratch is fine */
		return seal_chunk(n, k, pt, len, nonce, slot);
	memcpy(slot, nonce, PF_NONCE_SIZE);
	make_aad(n, k, len, aad);
	for (;;) {
		ret = kc_aead_seal(aead, slot, aad, sizeof(aad), pt, len, slot + PF_SLOT_META,
				   slot + PF_NONCE_SIZE);
		/* A real tag of all zeros would read as a hole (see seal_chunk). */
		if (ret || !tag_is_zero(slot + PF_NONCE_SIZE))
			return ret;
		if ((ret = kc_random(slot, PF_NONCE_SIZE)) != 0)
			return ret;
	}
}

/* Claim and seal chunks of job until none is left. */
static void seal_claim(struct seal_job *job, kc_aead_t *aead)
{
	for (;;) {
		uint64_t k = atomic_fetch_add(&job->next, 1);
		int ret;

		if (k >= job->hi)
			return;
		ret = seal_whole(job, aead, k);
		if (ret) {
			int zero = 0;

			atomic_compare_exchange_strong(&job->err, &zero, ret);
		}
	}
}

static void *sealer_main(void *arg)
{
	struct pf_sealer *s = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct pf_job *job;

		while (!s->quit && (!s->job || s->gen == seen))
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		seen = s->gen;
		job = s->job;
		job->taken = true;
		s->job = NULL;
		s->busy = true;
		pthread_mutex_unlock(&s->mu);
		job->run(job);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* The sealer thread of this process, started on first use; false if there is
 * none (a forked child, or it could not be started): seal alone then. */
static bool sealer_ready(pf_volume_t *v)
{
	struct pf_sealer *s = &v->sealer;
	sigset_t all, old;
	int ret;

	if (s->started)
		return s->pid == getpid();
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		return false;
	if (pthread_cond_init(&s->cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mu);
		return false;
	}
	/* The thread takes no signals (the library may run inside an application
	 * through the runtime: its signals belong to its own threads). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->thread, NULL, sealer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		return false;
	}
	s->pid = getpid();
	s->started = true;
	return true;
}

static void sealer_stop(pf_volume_t *v)
{
	struct pf_sealer *s = &v->sealer;

	if (!s->started || s->pid != getpid())
		return; /* a forked child's copy: the thread is not ours */
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	s->started = false;
}

/* Hand job to the helper thread (which must be idle: one job at a time). */
static void job_post(pf_volume_t *v, struct pf_job *job)
{
	struct pf_sealer *s = &v->sealer;

	job->taken = false;
	pthread_mutex_lock(&s->mu);
	s->job = job;
	s->gen++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Wait until job is done: withdraw it if the helper has not taken it, and
 * then run it here. */
static void job_finish(pf_volume_t *v, struct pf_job *job)
{
	struct pf_sealer *s = &v->sealer;
	bool taken;

	pthread_mutex_lock(&s->mu);
	if (s->job == job)
		s->job = NULL;
	while (s->busy)
		pthread_cond_wait(&s->cv, &s->mu);
	taken = job->taken;
	pthread_mutex_unlock(&s->mu);
	if (!taken)
		job->run(job);
}

static void seal_job_run(struct pf_job *job)
{
	struct seal_job *sj = (struct seal_job *)job;

	seal_claim(sj, sj->n->aead2);
}

static void write_job_run(struct pf_job *job)
{
	struct write_job *wj = (struct write_job *)job;

	wj->ret = st_pwrite_all(wj->v, wj->fh, wj->buf, wj->len, wj->off);
	/* Off the writer's path: start the write-back now, so that the fsync
	 * that ends a long sequential write mostly finds it done. */
	if (wj->ret == 0 && wj->v->so->writeback)
		(void)wj->v->so->writeback(wj->v->sctx, wj->fh, wj->off, wj->len);
}

/* Seal the whole chunks [lo, hi) of the batch starting at chunk i into iobuf,
 * on this thread and, for encrypted files when worth it and the helper is
 * free (share), on the helper thread at once. Nonces come from v->nonces. */
static int seal_batch(struct pf_node *n, const uint8_t *buf, uint64_t off, uint64_t new_size,
		      uint64_t i, uint64_t lo, uint64_t hi, uint8_t *iobuf, bool share)
{
	pf_volume_t *v = n->vol;
	struct seal_job job = {
		.base.run = seal_job_run,
		.n = n, .buf = buf, .off = off, .new_size = new_size,
		.i = i, .lo = lo, .hi = hi, .iobuf = iobuf,
	};
	bool shared = false;

	atomic_init(&job.next, lo);
	atomic_init(&job.err, 0);
	if (share && v->seal_thread && hi - lo >= PF_PAR_MIN_CHUNKS &&
	    n->kind == PF_REGION_ENCRYPTED && n->entry) {
		if (!n->aead2)
			n->aead2 = kc_aead_new(n->entry->key);
		shared = n->aead2 && sealer_ready(v);
	}
	if (shared)
		job_post(v, &job.base);
	seal_claim(&job, n->aead);
	if (shared)
		job_finish(v, &job.base); /* every chunk is claimed: nothing left to run */
	return atomic_load(&job.err);
}

/* Authenticate and decrypt slot of chunk i (len plaintext bytes) into out. */
static int open_chunk(struct pf_node *n, uint64_t i, const uint8_t *slot, uint32_t len,
		      uint8_t *out, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t aad[32];
	int ret;

	if (!kiln_ct_equal(slot + PF_NONCE_SIZE, n->tags[i], PF_TAG_SIZE)) {
		ret = -KILN_EAUTH;
		goto fail;
	}
	if (n->kind == PF_REGION_PLAIN) {
		memmove(out, slot + PF_SLOT_META, len);
		return 0;
	}
	make_aad(n, i, len, aad);
	if (n->kind == PF_REGION_ENCRYPTED) {
		ret = kc_aead_open(n->aead, slot, aad, sizeof(aad), slot + PF_SLOT_META, len, out,
				   slot + PF_NONCE_SIZE);
	} else {
		uint8_t dummy[1];

		memcpy(v->aad, aad, sizeof(aad));
		memcpy(v->aad + sizeof(aad), slot + PF_SLOT_META, len);
		ret = kc_aead_open(n->aead, slot, v->aad, sizeof(aad) + len, NULL, 0, dummy,
				   slot + PF_NONCE_SIZE);
		if (ret == 0)
			memmove(out, slot + PF_SLOT_META, len);
	}
	if (ret == 0)
		return 0;
fail:
	if (ret == -KILN_EAUTH)
		return kiln_err_set(err, ret, "file %s: chunk %llu is corrupt (authentication "
				    "failed)", node_path(n), (unsigned long long)i);
	return kiln_err_set(err, ret, "file %s: chunk %llu: %s", node_path(n),
			    (unsigned long long)i, kiln_strerror(ret));
}

/* The held (not yet written) slot of chunk k, or NULL; see pf_node.wb. */
static const uint8_t *wb_find(struct pf_node *n, uint64_t k)
{
	for (size_t i = 0; i < n->wb_count; i++)
		if (n->wb_idx[i] == k)
			return n->wb + i * n->vol->stride;
	return NULL;
}

/* Plaintext of chunk i under size `size` into out[cs], zero-padded. */
static int load_plain(struct pf_node *n, uint64_t i, uint64_t size, uint8_t *out,
		      struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint32_t len = chunk_len(v, size, i);
	int ret;

	memset(out, 0, v->cs);
	if (len == 0 || tag_is_zero(n->tags[i]))
		return 0;
	if (wb_find(n, i))
		return open_chunk(n, i, wb_find(n, i), len, out, err);
	ret = st_pread_pad(v, n->fh, v->slot, PF_SLOT_META + len, slot_off(v, i));
	if (ret)
		return kiln_err_set(err, ret, "file %s: read: %s", node_path(n),
				    kiln_strerror(ret));
	return open_chunk(n, i, v->slot, len, out, err);
}

static int ensure_tags(struct pf_node *n, uint64_t count)
{
	uint8_t (*t)[PF_TAG_SIZE];
	uint64_t cap;

	if (count <= n->tags_cap)
		return 0;
	cap = n->tags_cap ? n->tags_cap : 16;
	while (cap < count)
		cap += cap / 2 + 16;
	if (cap > SIZE_MAX / PF_TAG_SIZE)
		return -EFBIG;
	t = realloc(n->tags, cap * PF_TAG_SIZE);
	if (!t)
		return -ENOMEM;
	memset(t + n->tags_cap, 0, (cap - n->tags_cap) * PF_TAG_SIZE);
	n->tags = t;
	n->tags_cap = cap;
	return 0;
}

static int compute_root(struct pf_node *n, uint64_t size, uint8_t out[PF_ROOT_SIZE])
{
	static const char domain[16] = "kiln-pf-root-v1";
	kc_hash_t *h = kc_hash_new("SHA256");
	uint8_t len[8];
	uint64_t cnt = nchunks(n->vol, size);
	size_t out_size;
	int ret;

	if (!h)
		return -ENOMEM;
	pf_put_u64(len, size);
	ret = kc_hash_update(h, domain, sizeof(domain));
	if (!ret)
		ret = kc_hash_update(h, n->file_id, PF_FILE_ID_SIZE);
	if (!ret)
		ret = kc_hash_update(h, len, sizeof(len));
	if (!ret && cnt)
		ret = kc_hash_update(h, n->tags, cnt * PF_TAG_SIZE);
	if (!ret)
		ret = kc_hash_final(h, out, &out_size);
	kc_hash_free(h);
	return ret;
}

/* True when the backing file holds a committed state that must survive a crash
 * (so modifications are journaled first). A file committed empty has nothing to
 * restore: after a crash, node_load cuts whatever follows its header. */
static bool has_base(const struct pf_node *n)
{
	return n->base_in_meta && !n->fresh && n->base_size > 0;
}

/* ---- tag sidecar ---- */

static void tag_touch(struct pf_node *n, uint64_t k)
{
	if (n->t_lo >= n->t_hi) {
		n->t_lo = k;
		n->t_hi = k + 1;
	} else {
		n->t_lo = k < n->t_lo ? k : n->t_lo;
		n->t_hi = k + 1 > n->t_hi ? k + 1 : n->t_hi;
	}
}

/* After a commit: bring the sidecar to the new committed tag list. Errors
 * only cost the next open a full scan. */
static void sidecar_update(struct pf_node *n)
{
	pf_volume_t *v = n->vol;
	uint64_t cnt = nchunks(v, n->size), lo = n->t_lo, hi = n->t_hi;
	char name[PF_NAME_MAX + 2];

	if (n->kind == PF_REGION_PLAIN || cnt < PF_SIDECAR_MIN_CHUNKS)
		return;
	if (!n->tfh) {
		snprintf(name, sizeof(name), "%s.t", n->name);
		if (v->so->open(v->sctx, name, PF_SO_CREATE, &n->tfh) != 0) {
			n->tfh = NULL;
			return;
		}
	}
	if (!n->t_valid) {
		lo = 0;
		hi = cnt;
	}
	if (hi > cnt)
		hi = cnt;
	n->t_valid = false;
	if (lo < hi && st_pwrite_all(v, n->tfh, n->tags[lo], (hi - lo) * PF_TAG_SIZE,
				     lo * PF_TAG_SIZE) != 0)
		return;
	if (v->so->truncate(v->sctx, n->tfh, cnt * PF_TAG_SIZE) != 0)
		return;
	n->t_valid = true;
	n->t_lo = n->t_hi = 0;
}

/* On load: take the tag list from the sidecar if it hashes to the root. */
static bool sidecar_load(struct pf_node *n, const struct pf_entry *e)
{
	pf_volume_t *v = n->vol;
	uint64_t cnt = nchunks(v, e->size), size;
	uint8_t root[PF_ROOT_SIZE];
	char name[PF_NAME_MAX + 2];
	void *fh = NULL;
	ssize_t r;

	if (n->kind == PF_REGION_PLAIN || cnt < PF_SIDECAR_MIN_CHUNKS)
		return false;
	snprintf(name, sizeof(name), "%s.t", n->name);
	if (v->so->open(v->sctx, name, v->read_only ? PF_SO_RDONLY : 0, &fh) != 0)
		return false;
	if (v->so->get_size(v->sctx, fh, &size) != 0 || size != cnt * PF_TAG_SIZE)
		goto no;
	r = v->so->pread(v->sctx, fh, n->tags, size, 0);
	if (r != (ssize_t)size || compute_root(n, e->size, root) != 0 ||
	    !kiln_ct_equal(root, e->root, PF_ROOT_SIZE))
		goto no;
	if (v->read_only)
		v->so->close(v->sctx, fh);
	else
		n->tfh = fh;
	n->t_valid = true;
	return true;
no:
	v->so->close(v->sctx, fh);
	return false;
}

/* ---- journal ---- */

static void journal_header(struct pf_node *n, uint8_t hdr[PF_JOURNAL_HDR_SIZE])
{
	uint8_t sum[KC_SHA256_SIZE];

	memcpy(hdr, PF_JOURNAL_MAGIC, 8);
	memcpy(hdr + 8, n->base_root, PF_ROOT_SIZE);
	pf_put_u64(hdr + 40, n->base_size);
	memcpy(hdr + 48, n->file_id, PF_FILE_ID_SIZE);
	kc_sha256(hdr, 64, sum);
	memcpy(hdr + 64, sum, 8);
}

/* Start a new generation: the journal names the committed state it restores. */
static int journal_begin(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t hdr[PF_JOURNAL_HDR_SIZE];
	char jname[PF_NAME_MAX + 2];
	bool created = false;
	uint64_t bits;
	int ret;

	if (!has_base(n) || n->gen_open)
		return 0;
	if (!n->jfh) {
		snprintf(jname, sizeof(jname), "%s.j", n->name);
		ret = v->so->open(v->sctx, jname, 0, &n->jfh);
		if (ret == -ENOENT) {
			ret = v->so->open(v->sctx, jname, PF_SO_CREATE, &n->jfh);
			created = true;
		}
		if (ret)
			goto fail;
	}
	bits = nchunks(v, n->base_size);
	free(n->jmap);
	n->jmap = calloc(bits / 8 + 1, 1);
	if (!n->jmap)
		return -ENOMEM;
	journal_header(n, hdr);
	ret = st_pwrite_all(v, n->jfh, hdr, sizeof(hdr), 0);
	if (!ret)
		ret = v->so->truncate(v->sctx, n->jfh, sizeof(hdr));
	if (ret)
		goto fail;
	/* Synced with the first entries (journal_sync), before any data moves. */
	n->jend = sizeof(hdr);
	n->gen_open = true;
	n->j_unsynced = n->j_hdr = true;
	n->j_dir = n->j_dir || created;
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: journal: %s", node_path(n), kiln_strerror(ret));
}

/* Make the journal (header, entries, its directory entry) durable. */
static int journal_sync(struct pf_node *n)
{
	pf_volume_t *v = n->vol;
	int ret = v->so->sync(v->sctx, n->jfh);

	if (!ret && n->j_dir)
		ret = v->so->sync_dir(v->sctx);
	if (ret)
		return ret;
	n->j_unsynced = n->j_hdr = n->j_dir = false;
	return 0;
}

/* Save the committed slots of chunks [from, to) not yet saved, then sync. */
static int journal_save(struct pf_node *n, uint64_t from, uint64_t to, bool sync,
			struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t base_n = nchunks(v, n->base_size);
	bool wrote = false;
	int ret = 0;

	if (!has_base(n))
		return 0;
	ret = journal_begin(n, err);
	if (ret)
		return ret;
	if (to > base_n)
		to = base_n;
	for (uint64_t i = from; i < to; i++) {
		uint32_t len = chunk_len(v, n->base_size, i);
		uint8_t sum[KC_SHA256_SIZE];
		size_t esize = 12 + PF_SLOT_META + len;

		if (n->jmap[i / 8] & (1u << (i % 8)))
			continue;
		pf_put_u64(v->jbuf, i);
		pf_put_u32(v->jbuf + 8, len);
		ret = st_pread_pad(v, n->fh, v->jbuf + 12, PF_SLOT_META + len, slot_off(v, i));
		if (ret)
			goto fail;
		kc_sha256(v->jbuf, esize, sum);
		memcpy(v->jbuf + esize, sum, 8);
		ret = st_pwrite_all(v, n->jfh, v->jbuf, esize + 8, n->jend);
		if (ret)
			goto fail;
		n->jend += esize + 8;
		n->jmap[i / 8] |= (uint8_t)(1u << (i % 8));
		wrote = true;
	}
	if (wrote)
		n->j_unsynced = true;
	if (sync && n->j_unsynced && (ret = journal_sync(n)))
		goto fail;
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: journal: %s", node_path(n), kiln_strerror(ret));
}

/* ---- write-back of journaled overwrites ---- */

/* Sync the journal, then write every held slot in place. */
static int wb_drain(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	int ret = 0;

	if (n->j_unsynced && (ret = journal_sync(n)))
		goto fail;
	for (size_t i = 0; i < n->wb_count; i++) {
		uint64_t k = n->wb_idx[i];
		uint64_t len = n->wb_len[i];

		ret = st_pwrite_all(v, n->fh, n->wb + i * v->stride, len, slot_off(v, k));
		if (ret)
			goto fail;
		if (slot_off(v, k) + len > n->phys_size)
			n->phys_size = slot_off(v, k) + len;
	}
	n->wb_count = 0;
	return 0;
fail:
	n->failed = true;
	return kiln_err_set(err, ret, "file %s: write: %s", node_path(n), kiln_strerror(ret));
}

/* Hold slot (of chunk k) until the journal is synced. */
static int wb_hold(struct pf_node *n, uint64_t k, const uint8_t *slot, size_t len,
		   struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t *dst = (uint8_t *)wb_find(n, k);
	int ret;

	if (dst) {
		n->wb_len[(size_t)(dst - n->wb) / v->stride] = (uint32_t)len;
	} else {
		if (!n->wb) {
			n->wb = malloc(v->wb_cap * v->stride);
			n->wb_idx = malloc(v->wb_cap * sizeof(*n->wb_idx));
			n->wb_len = malloc(v->wb_cap * sizeof(*n->wb_len));
			if (!n->wb || !n->wb_idx || !n->wb_len)
				return -ENOMEM;
		}
		if (n->wb_count == v->wb_cap && (ret = wb_drain(n, err)))
			return ret;
		n->wb_idx[n->wb_count] = k;
		n->wb_len[n->wb_count] = (uint32_t)len;
		dst = n->wb + n->wb_count * v->stride;
		n->wb_count++;
	}
	memcpy(dst, slot, len);
	return 0;
}

/* On load: if a journal for the committed state exists, put the saved slots
 * back and cut the file to the committed length. *had_journal tells whether
 * any journal file exists (then extra trailing bytes are expected debris). */
static int journal_recover(struct pf_node *n, const struct pf_entry *e, bool *had_journal,
			   struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t hdr[PF_JOURNAL_HDR_SIZE], want[PF_JOURNAL_HDR_SIZE];
	char jname[PF_NAME_MAX + 2];
	uint64_t jsize, off;
	void *jfh = NULL;
	int ret;

	*had_journal = false;
	snprintf(jname, sizeof(jname), "%s.j", n->name);
	ret = v->so->open(v->sctx, jname, v->read_only ? PF_SO_RDONLY : 0, &jfh);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		goto fail;
	ret = v->so->get_size(v->sctx, jfh, &jsize);
	if (ret)
		goto fail;
	*had_journal = jsize > 0;
	memcpy(n->base_root, e->root, PF_ROOT_SIZE);
	n->base_size = e->size;
	journal_header(n, want);
	if (jsize < sizeof(hdr) || st_pread_pad(v, jfh, hdr, sizeof(hdr), 0) != 0 ||
	    memcmp(hdr, want, sizeof(hdr)) != 0) {
		ret = 0; /* stale (the state it protected was superseded) or never completed */
		goto out;
	}
	if (v->read_only) {
		ret = kiln_err_set(err, -EROFS, "file %s: interrupted write needs recovery; "
				   "open the volume read-write", e->path);
		goto out;
	}
	off = sizeof(hdr);
	while (off + 12 <= jsize) {
		uint8_t sum[KC_SHA256_SIZE];
		uint64_t i;
		uint32_t len;
		size_t esize;

		if ((ret = st_pread_pad(v, jfh, v->jbuf, 12, off)))
			goto fail;
		i = pf_get_u64(v->jbuf);
		len = pf_get_u32(v->jbuf + 8);
		if (len > v->cs || i >= nchunks(v, e->size) || len != chunk_len(v, e->size, i))
			break; /* torn tail */
		esize = 12 + PF_SLOT_META + len;
		if (off + esize + 8 > jsize)
			break;
		if ((ret = st_pread_pad(v, jfh, v->jbuf, esize + 8, off)))
			goto fail;
		kc_sha256(v->jbuf, esize, sum);
		if (memcmp(sum, v->jbuf + esize, 8) != 0)
			break;
		ret = st_pwrite_all(v, n->fh, v->jbuf + 12, PF_SLOT_META + len, slot_off(v, i));
		if (ret)
			goto fail;
		off += esize + 8;
	}
	ret = v->so->truncate(v->sctx, n->fh, expected_phys(v, e->size));
	if (!ret)
		ret = v->so->sync(v->sctx, n->fh);
	/* The restored state equals the committed one: the journal is spent. */
	if (!ret)
		ret = v->so->truncate(v->sctx, jfh, 0);
	if (!ret)
		ret = v->so->sync(v->sctx, jfh);
	if (ret)
		goto fail;
	goto out;
fail:
	kiln_err_set(err, ret, "file %s: journal recovery: %s", e->path, kiln_strerror(ret));
out:
	if (jfh)
		v->so->close(v->sctx, jfh);
	return ret;
}

/* ---- nodes ---- */

static void node_free(struct pf_node *n)
{
	pf_volume_t *v;

	if (!n)
		return;
	v = n->vol;
	if (n->prev)
		n->prev->next = n->next;
	else if (v->nodes == n)
		v->nodes = n->next;
	if (n->next)
		n->next->prev = n->prev;
	if (n->entry)
		n->entry->node = NULL;
	if (n->fh)
		v->so->close(v->sctx, n->fh);
	if (n->jfh)
		v->so->close(v->sctx, n->jfh);
	if (n->tfh)
		v->so->close(v->sctx, n->tfh);
	kc_aead_free(n->aead);
	kc_aead_free(n->aead2);
	free(n->tags);
	free(n->jmap);
	if (n->wb)
		kiln_free_secret(n->wb, v->wb_cap * v->stride);
	free(n->wb_idx);
	free(n->wb_len);
	kiln_wipe(n, sizeof(*n));
	free(n);
}

static struct pf_node *node_new(pf_volume_t *v, struct pf_entry *e)
{
	struct pf_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->vol = v;
	n->entry = e;
	n->kind = e->kind;
	memcpy(n->file_id, e->file_id, PF_FILE_ID_SIZE);
	backing_name(e->backing, n->name);
	memcpy(n->backing, e->backing, PF_BACKING_ID_SIZE);
	n->aead = kc_aead_new(e->key);
	if (!n->aead) {
		free(n);
		return NULL;
	}
	n->next = v->nodes;
	if (v->nodes)
		v->nodes->prev = n;
	v->nodes = n;
	e->node = n;
	return n;
}

/* Open a file committed empty. Nothing in its backing file is ever read, so
 * the backing file only has to exist with a header for later writes. After a
 * crash it may hold debris of uncommitted writes (empty files keep no undo
 * journal, see has_base), or be short or missing: its creation becomes durable
 * with the metadata only (pf_volume_publish, docs/fs.md). Either is repaired
 * in a read-write volume and ignored in a read-only one (n->fh may stay NULL). */
static int load_empty(struct pf_node *n, const struct pf_entry *e, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t buf[PF_HDR_SIZE], root[PF_ROOT_SIZE];
	struct pf_header hdr = { 0 };
	uint64_t phys = 0;
	bool ok = false;
	int ret;

	ret = v->so->open(v->sctx, n->name, v->read_only ? PF_SO_RDONLY : PF_SO_CREATE, &n->fh);
	if (ret == -ENOENT && v->read_only)
		ret = 0;
	if (!ret && n->fh)
		ret = v->so->get_size(v->sctx, n->fh, &phys);
	if (ret)
		goto fail;
	if (phys >= PF_HDR_SIZE && st_pread_pad(v, n->fh, buf, sizeof(buf), 0) == 0 &&
	    pf_header_decode(buf, sizeof(buf), &hdr) == 0 && hdr.kind == e->kind &&
	    hdr.chunk_size == v->cs && memcmp(hdr.file_id, e->file_id, PF_FILE_ID_SIZE) == 0)
		ok = true;
	if (!v->read_only && !ok) {
		memset(&hdr, 0, sizeof(hdr));
		hdr.version = PF_FORMAT_VERSION;
		hdr.kind = e->kind;
		hdr.chunk_size = v->cs;
		memcpy(hdr.file_id, e->file_id, PF_FILE_ID_SIZE);
		pf_header_encode(&hdr, buf);
		ret = v->so->truncate(v->sctx, n->fh, 0);
		if (!ret)
			ret = st_pwrite_all(v, n->fh, buf, sizeof(buf), 0);
		if (ret)
			goto fail;
		phys = PF_HDR_SIZE;
	} else if (!v->read_only && phys > PF_HDR_SIZE) {
		ret = v->so->truncate(v->sctx, n->fh, PF_HDR_SIZE);
		if (ret)
			goto fail;
		phys = PF_HDR_SIZE;
	}
	n->phys_size = phys;
	ret = compute_root(n, 0, root);
	if (ret)
		goto fail;
	if (n->kind != PF_REGION_PLAIN && !kiln_ct_equal(root, e->root, PF_ROOT_SIZE))
		return kiln_err_set(err, -KILN_EAUTH, "file %s: content does not match the "
				    "metadata (chunks swapped, replaced, truncated or from an "
				    "older version)", e->path);
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: %s", e->path, kiln_strerror(ret));
}

/* Open a committed file: recover, then read all tags and check the root. */
static int node_load(pf_volume_t *v, struct pf_entry *e, struct pf_node **out,
		     struct kiln_err *err)
{
	struct pf_node *n = node_new(v, e);
	uint8_t hdr_buf[PF_HDR_SIZE], root[PF_ROOT_SIZE];
	struct pf_header hdr;
	uint64_t phys, cnt, expect;
	bool had_journal;
	int ret;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	n->base_in_meta = n->was_in_meta = true;
	n->base_size = n->size = e->size;
	memcpy(n->base_root, e->root, PF_ROOT_SIZE);
	if (e->size == 0) {
		ret = load_empty(n, e, err);
		if (ret)
			goto out;
		goto done;
	}
	ret = v->so->open(v->sctx, n->name, v->read_only ? PF_SO_RDONLY : 0, &n->fh);
	if (ret == -ENOENT) {
		ret = kiln_err_set(err, -KILN_ECORRUPT, "file %s: backing file %s is missing",
				   e->path, n->name);
		goto out;
	}
	if (ret) {
		kiln_err_set(err, ret, "file %s: %s", e->path, kiln_strerror(ret));
		goto out;
	}
	ret = st_pread_pad(v, n->fh, hdr_buf, sizeof(hdr_buf), 0);
	if (ret) {
		kiln_err_set(err, ret, "file %s: %s", e->path, kiln_strerror(ret));
		goto out;
	}
	ret = pf_header_decode(hdr_buf, sizeof(hdr_buf), &hdr);
	if (ret || hdr.kind != e->kind || hdr.chunk_size != v->cs ||
	    memcmp(hdr.file_id, e->file_id, PF_FILE_ID_SIZE) != 0) {
		ret = kiln_err_set(err, -KILN_EAUTH, "file %s: header is corrupt or belongs to "
				   "another file", e->path);
		goto out;
	}
	ret = journal_recover(n, e, &had_journal, err);
	if (ret)
		goto out;
	ret = v->so->get_size(v->sctx, n->fh, &phys);
	if (ret) {
		kiln_err_set(err, ret, "file %s: %s", e->path, kiln_strerror(ret));
		goto out;
	}
	expect = expected_phys(v, e->size);
	if (phys > expect && !had_journal) {
		ret = kiln_err_set(err, -KILN_EAUTH, "file %s: backing file is %llu bytes, "
				   "expected at most %llu (extended or tampered)", e->path,
				   (unsigned long long)phys, (unsigned long long)expect);
		goto out;
	}
	if (phys > expect && !v->read_only) {
		/* Debris of writes after the last commit. */
		ret = v->so->truncate(v->sctx, n->fh, expect);
		if (ret)
			goto out;
		phys = expect;
	}
	n->phys_size = phys;
	cnt = nchunks(v, e->size);
	ret = ensure_tags(n, cnt);
	if (ret)
		goto out;
	if (sidecar_load(n, e))
		goto done;
	/* No usable sidecar: read every tag, one pass over the file in large
	 * batches. */
	for (uint64_t i = 0; i < cnt;) {
		uint64_t j = i + v->batch < cnt ? i + v->batch : cnt;
		uint64_t start = slot_off(v, i);
		uint64_t end = slot_off(v, j - 1) + PF_SLOT_META;

		ret = st_pread_pad(v, n->fh, v->iobuf, end - start, start);
		if (ret) {
			kiln_err_set(err, ret, "file %s: %s", e->path, kiln_strerror(ret));
			goto out;
		}
		for (uint64_t k = i; k < j; k++)
			memcpy(n->tags[k], v->iobuf + (k - i) * v->stride + PF_NONCE_SIZE,
			       PF_TAG_SIZE);
		i = j;
	}
	ret = compute_root(n, e->size, root);
	if (ret)
		goto out;
	if (n->kind != PF_REGION_PLAIN && !kiln_ct_equal(root, e->root, PF_ROOT_SIZE)) {
		ret = kiln_err_set(err, -KILN_EAUTH, "file %s: content does not match the "
				   "metadata (chunks swapped, replaced, truncated or from an "
				   "older version)", e->path);
		goto out;
	}
	if (!v->read_only)
		sidecar_update(n); /* next time, open from the sidecar */
done:
	*out = n;
	n = NULL;
out:
	node_free(n);
	return ret;
}

/* Give chunk k (currently old_len bytes) the length new_len, zero-padded. */
static int reseal(struct pf_node *n, uint64_t k, uint64_t old_size, uint32_t new_len,
		  struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	int ret;

	if (tag_is_zero(n->tags[k]))
		return 0; /* holes have no length */
	ret = wb_drain(n, err);
	if (!ret)
		ret = load_plain(n, k, old_size, v->pt, err);
	if (ret)
		return ret;
	ret = journal_save(n, k, k + 1, true, err);
	if (ret)
		goto out;
	ret = seal_chunk(n, k, v->pt, new_len, NULL, v->slot);
	if (ret)
		goto out;
	ret = st_pwrite_all(v, n->fh, v->slot, PF_SLOT_META + new_len, slot_off(v, k));
	if (ret) {
		n->failed = true;
		kiln_err_set(err, ret, "file %s: write: %s", node_path(n), kiln_strerror(ret));
		goto out;
	}
	memcpy(n->tags[k], v->slot + PF_NONCE_SIZE, PF_TAG_SIZE);
	tag_touch(n, k);
	if (slot_off(v, k) + PF_SLOT_META + new_len > n->phys_size)
		n->phys_size = slot_off(v, k) + PF_SLOT_META + new_len;
out:
	kiln_wipe(v->pt, v->cs);
	return ret;
}

/* Chunks [from, to) become holes: zero tags, on disk too where slots exist. */
static int make_holes(struct pf_node *n, uint64_t from, uint64_t to, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t base_end = has_base(n) ? expected_phys(v, n->base_size) : PF_HDR_SIZE;
	int ret;

	for (uint64_t k = from; k < to; k++) {
		memset(n->tags[k], 0, PF_TAG_SIZE);
		tag_touch(n, k);
		if (slot_off(v, k) >= n->phys_size)
			continue;
		if (slot_off(v, k) >= base_end) {
			/* Nothing committed lives here or after: cut it off. */
			ret = v->so->truncate(v->sctx, n->fh, slot_off(v, k));
			if (ret)
				goto fail;
			n->phys_size = slot_off(v, k);
			continue;
		}
		ret = wb_drain(n, err);
		if (!ret)
			ret = journal_save(n, k, k + 1, true, err);
		if (ret)
			return ret;
		ret = st_pwrite_all(v, n->fh, g_zero_tag, PF_NONCE_SIZE, slot_off(v, k));
		if (!ret)
			ret = st_pwrite_all(v, n->fh, g_zero_tag, PF_TAG_SIZE,
					    slot_off(v, k) + PF_NONCE_SIZE);
		if (ret)
			goto fail;
	}
	return 0;
fail:
	n->failed = true;
	return kiln_err_set(err, ret, "file %s: write: %s", node_path(n), kiln_strerror(ret));
}

/* Truncate to zero by starting a new backing file (see pf_node.fresh): an
 * O_TRUNC rewrite then costs no journal copy of the old content. */
static int switch_backing(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t id[PF_BACKING_ID_SIZE], hbuf[PF_HDR_SIZE];
	struct pf_header hdr = { 0 };
	char name[PF_NAME_MAX];
	void *fh = NULL;
	int ret;

	ret = kc_random(id, sizeof(id));
	if (ret)
		return ret;
	backing_name(id, name);
	ret = v->so->open(v->sctx, name, PF_SO_CREATE | PF_SO_EXCL, &fh);
	if (ret)
		goto fail;
	hdr.version = PF_FORMAT_VERSION;
	hdr.kind = n->kind;
	hdr.chunk_size = v->cs;
	memcpy(hdr.file_id, n->file_id, PF_FILE_ID_SIZE);
	pf_header_encode(&hdr, hbuf);
	ret = st_pwrite_all(v, fh, hbuf, sizeof(hbuf), 0);
	if (ret) {
		v->so->close(v->sctx, fh);
		remove_backing(v, name);
		goto fail;
	}
	v->so->close(v->sctx, n->fh);
	if (n->jfh)
		v->so->close(v->sctx, n->jfh);
	if (n->tfh)
		v->so->close(v->sctx, n->tfh);
	n->jfh = n->tfh = NULL;
	n->fh = fh;
	memcpy(n->old_name, n->name, sizeof(n->old_name));
	memcpy(n->name, name, sizeof(n->name));
	memcpy(n->backing, id, sizeof(id));
	/* Held overwrites were for the old backing file, which must stay as
	 * committed: drop them. */
	n->wb_count = 0;
	n->j_unsynced = n->j_hdr = n->j_dir = false;
	n->fresh = true;
	n->gen_open = false;
	n->t_valid = false;
	n->t_lo = n->t_hi = 0;
	n->phys_size = PF_HDR_SIZE;
	n->size = 0;
	n->dirty = true;
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: truncate: %s", node_path(n), kiln_strerror(ret));
}

static int set_size(struct pf_node *n, uint64_t new_size, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t old_size = n->size, old_n = nchunks(v, old_size), new_n;
	int ret;

	if (new_size == old_size)
		return 0;
	if (new_size > PF_MAX_FILE_SIZE)
		return -EFBIG;
	if (new_size == 0 && has_base(n) && n->entry)
		return switch_backing(n, err);
	ret = wb_drain(n, err);
	if (ret)
		return ret;
	new_n = nchunks(v, new_size);
	ret = ensure_tags(n, new_n);
	/* Open the generation even when no committed byte changes: the
	 * journal header then marks debris past the committed end as expected. */
	if (!ret)
		ret = journal_begin(n, err);
	if (ret)
		return ret;
	n->dirty = true;
	if (new_size < old_size) {
		if (new_size % v->cs)
			ret = reseal(n, new_n - 1, old_size,
				     chunk_len(v, new_size, new_n - 1), err);
	} else {
		if (old_size % v->cs)
			ret = reseal(n, old_n - 1, old_size,
				     chunk_len(v, new_size, old_n - 1), err);
		if (!ret)
			ret = make_holes(n, old_n, new_n, err);
	}
	if (ret)
		return ret;
	n->size = new_size;
	return 0;
}

/* Start writing data[len] at offset `at` of the backing file on the helper
 * thread (true), or return false: no helper (seal_thread off, a forked child)
 * or too little data to be worth a hand-off. */
static bool write_async(struct pf_node *n, struct write_job *wj, const uint8_t *data,
			size_t len, uint64_t at)
{
	pf_volume_t *v = n->vol;

	if (!v->seal_thread || len < PF_PAR_MIN_CHUNKS * v->stride || !sealer_ready(v))
		return false;
	if (!v->iobuf2 && !(v->iobuf2 = malloc(v->batch * v->stride)))
		return false;
	*wj = (struct write_job){
		.base.run = write_job_run, .v = v, .fh = n->fh, .buf = data, .len = len,
		.off = at,
	};
	job_post(v, &wj->base);
	return true;
}

static ssize_t node_write(struct pf_node *n, const uint8_t *buf, size_t size, uint64_t off,
			  struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t end, old_size = n->size, new_size, first, last, old_n, lo, hi;
	/* Write pipeline: while the helper writes one batch (wj) from one buffer,
	 * this thread seals the next batch into the other. At most one write is
	 * in flight, and it is finished before this call returns. */
	uint8_t *bufs[2] = { v->iobuf, NULL };
	size_t used[2] = { 0, 0 };
	struct write_job wj;
	bool pending = false;
	int cur = 0, ret;

	if (n->failed)
		return kiln_err_set(err, -EIO, "file %s: earlier write failed; reopen the volume",
				    node_path(n));
	if (size == 0)
		return 0;
	if (off > PF_MAX_FILE_SIZE || size > PF_MAX_FILE_SIZE - off)
		return -EFBIG;
	end = off + size;
	new_size = end > old_size ? end : old_size;
	first = off / v->cs;
	last = (end - 1) / v->cs;
	old_n = nchunks(v, old_size);
	ret = ensure_tags(n, nchunks(v, new_size));
	if (!ret)
		ret = journal_begin(n, err);
	if (ret)
		return ret;
	n->dirty = true;
	if (new_size > old_size) {
		/* The old last chunk grows (unless this write rewrites it anyway). */
		if (old_size % v->cs && old_n - 1 < first)
			ret = reseal(n, old_n - 1, old_size, chunk_len(v, new_size, old_n - 1),
				     err);
		if (!ret && old_n < first)
			ret = make_holes(n, old_n, first, err);
		if (ret)
			return ret;
	}
	for (uint64_t i = first; i <= last;) {
		uint64_t j = i + v->batch <= last + 1 ? i + v->batch : last + 1;
		uint64_t wlen, split = i;
		uint8_t *io = bufs[cur];

		if ((j - i) * v->stride > used[cur])
			used[cur] = (j - i) * v->stride;
		ret = journal_save(n, i, j, /*sync=*/false, err);
		if (ret)
			goto out;
		/* One RAND_bytes call for the nonces of the whole batch rather than
		 * one per chunk (it was ~28% of the CPU of a sequential write). The
		 * bytes live only for this call, under the volume lock: nothing is
		 * buffered across calls, so a fork cannot hand them to two processes. */
		if (n->kind != PF_REGION_PLAIN && (ret = kc_random(v->nonces,
								(j - i) * PF_NONCE_SIZE)))
			goto out;
		/* Partial chunks (at most the first and the last of the write) are
		 * merged with the old plaintext here; whole chunks are sealed
		 * straight from buf by seal_batch, on two threads when worth it. */
		lo = i;
		hi = j;
		for (uint64_t k = i; k < j; k++) {
			uint32_t lnew = chunk_len(v, new_size, k);
			uint64_t cstart = k * v->cs;
			uint64_t ws = off > cstart ? off : cstart;
			uint64_t we = end < cstart + lnew ? end : cstart + lnew;
			uint8_t *slot = io + (k - i) * v->stride;

			if (ws == cstart && we == cstart + lnew)
				continue;
			/* Partial chunk: merge with what is there (old length). */
			memset(v->pt, 0, v->cs);
			if (k < old_n)
				ret = load_plain(n, k, old_size, v->pt, err);
			if (ret)
				goto out;
			memcpy(v->pt + (ws - cstart), buf + (ws - off), we - ws);
			ret = seal_chunk(n, k, v->pt, lnew, v->nonces + (k - i) * PF_NONCE_SIZE,
					 slot);
			kiln_wipe(v->pt, v->cs);
			if (ret)
				goto out;
			if (k == lo)
				lo++;
			else
				hi = k; /* the last chunk of the write */
		}
		if (lo < hi &&
		    (ret = seal_batch(n, buf, off, new_size, i, lo, hi, io, !pending)))
			goto out;
		/* Committed chunks whose journal entries are not synced yet wait
		 * in the write-back; the rest (past the committed end) go now. */
		if (has_base(n) && n->j_hdr) {
			split = j; /* nothing moves before the journal header is durable */
		} else if (has_base(n) && n->j_unsynced) {
			uint64_t base_n = nchunks(v, n->base_size);

			split = base_n < i ? i : base_n > j ? j : base_n;
		}
		for (uint64_t k = i; k < split; k++) {
			ret = wb_hold(n, k, io + (k - i) * v->stride,
				      PF_SLOT_META + chunk_len(v, new_size, k), err);
			if (ret) {
				n->failed = true;
				goto out;
			}
		}
		for (uint64_t k = i; k < j; k++)
			memcpy(n->tags[k], io + (k - i) * v->stride + PF_NONCE_SIZE, PF_TAG_SIZE);
		tag_touch(n, i);
		tag_touch(n, j - 1);
		wlen = 0;
		if (split < j) {
			wlen = (j - 1 - split) * v->stride + PF_SLOT_META +
			       chunk_len(v, new_size, j - 1);
			if (pending) { /* the previous batch's write, from the other buffer */
				job_finish(v, &wj.base);
				pending = false;
				if ((ret = wj.ret))
					goto write_failed;
			}
			if (write_async(n, &wj, io + (split - i) * v->stride, wlen,
					slot_off(v, split))) {
				pending = true;
				bufs[1] = v->iobuf2;
				cur ^= 1;
			} else if ((ret = st_pwrite_all(v, n->fh, io + (split - i) * v->stride,
							wlen, slot_off(v, split)))) {
				goto write_failed;
			}
		}
		/* Counted as soon as the write is issued: a failure fails the file. */
		if (wlen && slot_off(v, split) + wlen > n->phys_size)
			n->phys_size = slot_off(v, split) + wlen;
		i = j;
	}
	if (pending) {
		job_finish(v, &wj.base);
		pending = false;
		if ((ret = wj.ret))
			goto write_failed;
	}
	n->size = new_size;
	ret = 0;
	goto out;
write_failed:
	n->failed = true;
	kiln_err_set(err, ret, "file %s: write: %s", node_path(n), kiln_strerror(ret));
out:
	if (pending) {
		job_finish(v, &wj.base);
		if (wj.ret)
			n->failed = true;
	}
	kiln_wipe(bufs[0], used[0]);
	if (bufs[1])
		kiln_wipe(bufs[1], used[1]);
	if (ret)
		return ret;
	if (n->entry)
		n->entry->mtime_ns = now_ns();
	return (ssize_t)size;
}

static ssize_t node_read(struct pf_node *n, uint8_t *buf, size_t size, uint64_t off,
			 struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t end, first, last;
	int ret;

	if (off >= n->size || size == 0)
		return 0;
	if (size > n->size - off)
		size = n->size - off;
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;
	end = off + size;
	first = off / v->cs;
	last = (end - 1) / v->cs;
	for (uint64_t i = first; i <= last;) {
		uint64_t j = i + v->batch <= last + 1 ? i + v->batch : last + 1;
		uint64_t start = slot_off(v, i);
		uint64_t rend = slot_off(v, j - 1) + PF_SLOT_META + chunk_len(v, n->size, j - 1);

		ret = st_pread_pad(v, n->fh, v->iobuf, rend - start, start);
		if (ret)
			return kiln_err_set(err, ret, "file %s: read: %s", node_path(n),
					    kiln_strerror(ret));
		for (uint64_t k = i; k < j; k++) {
			uint32_t len = chunk_len(v, n->size, k);
			uint64_t cstart = k * v->cs;
			uint64_t rs = off > cstart ? off : cstart;
			uint64_t re = end < cstart + len ? end : cstart + len;
			const uint8_t *slot = wb_find(n, k);

			if (!slot)
				slot = v->iobuf + (k - i) * v->stride;
			if (tag_is_zero(n->tags[k])) {
				memset(buf + (rs - off), 0, re - rs);
				continue;
			}
			if (rs == cstart && re == cstart + len) {
				ret = open_chunk(n, k, slot, len, buf + (rs - off), err);
			} else {
				ret = open_chunk(n, k, slot, len, v->pt, err);
				if (ret == 0)
					memcpy(buf + (rs - off), v->pt + (rs - cstart), re - rs);
				kiln_wipe(v->pt, v->cs);
			}
			if (ret)
				return ret;
		}
		i = j;
	}
	return (ssize_t)size;
}

/* ---- metadata commit ---- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void wb_put(struct wbuf *w, const void *data, size_t size)
{
	if (w->err)
		return;
	if (w->len + size > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		uint8_t *np;

		while (cap < w->len + size)
			cap *= 2;
		np = malloc(cap);
		if (!np) {
			w->err = -ENOMEM;
			return;
		}
		if (w->p) {
			memcpy(np, w->p, w->len);
			kiln_free_secret(w->p, w->cap);
		}
		w->p = np;
		w->cap = cap;
	}
	memcpy(w->p + w->len, data, size);
	w->len += size;
}

static void wb_u16(struct wbuf *w, uint32_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	wb_put(w, b, 2);
}

static void wb_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	pf_put_u32(b, v);
	wb_put(w, b, 4);
}

static void wb_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	pf_put_u64(b, v);
	wb_put(w, b, 8);
}

static void wb_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);

	wb_u16(w, (uint32_t)n);
	wb_put(w, s, n);
}

static int serialize_meta(pf_volume_t *v, struct wbuf *w)
{
	uint32_t ndirs = 0, nfiles = 0;

	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext) {
			if (e->is_dir)
				ndirs++;
			else if (e->in_meta)
				nfiles++;
		}
	wb_u32(w, v->cs);
	wb_u32(w, (uint32_t)v->regions_len);
	for (size_t i = 0; i < v->regions_len; i++) {
		wb_u32(w, v->regions[i].kind);
		wb_str(w, v->regions[i].prefix);
	}
	wb_u32(w, ndirs);
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext) {
			if (!e->is_dir)
				continue;
			wb_str(w, e->path);
			wb_u32(w, e->mode);
			wb_u64(w, (uint64_t)e->mtime_ns);
		}
	wb_u32(w, nfiles);
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext) {
			if (e->is_dir || !e->in_meta)
				continue;
			wb_str(w, e->path);
			wb_u32(w, e->kind);
			wb_u32(w, e->mode);
			wb_u64(w, (uint64_t)e->mtime_ns);
			wb_u64(w, e->size);
			wb_put(w, e->key, PF_KEY_SIZE);
			wb_put(w, e->file_id, PF_FILE_ID_SIZE);
			wb_put(w, e->root, PF_ROOT_SIZE);
			wb_put(w, e->backing, PF_BACKING_ID_SIZE);
		}
	return w->err;
}

/* Start a sync (storage sync_start) or do it now; syncs_settle waits. */
static int sync_begin(pf_volume_t *v, void *fh)
{
	int ret;

	if (!v->so->sync_start || !v->so->sync_wait)
		return v->so->sync(v->sctx, fh);
	ret = v->so->sync_start(v->sctx, fh);
	if (!ret)
		v->syncs_started = true;
	return ret;
}

static int syncs_settle(pf_volume_t *v)
{
	int ret = 0;

	if (v->syncs_started) {
		ret = v->so->sync_wait(v->sctx);
		v->syncs_started = false;
		if (ret)
			v->syncs_failed = true;
	}
	return ret;
}

/* Put tmp in place of name atomically. Swapping the two names (when the
 * storage can) reuses both files on the next write instead of creating one
 * and deleting the other every time; tmp then holds the previous content,
 * which nothing reads. */
static int replace(pf_volume_t *v, const char *tmp, const char *name)
{
	int ret = v->so->exchange ? v->so->exchange(v->sctx, tmp, name) : -ENOSYS;

	if (ret == -ENOENT || ret == -EINVAL || ret == -ENOSYS || ret == -ENOTSUP)
		ret = v->so->rename(v->sctx, tmp, name);
	return ret;
}

/* Durable: write the metadata as tag+1 to meta.tmp and sync it (overlapped
 * with the prepare of tag+1 and the data syncs commit_locked started), put it
 * in place of meta, sync the directory, commit; then remove the backing files
 * it no longer refers to. Not durable (pf_volume_publish): the same tag
 * into meta.pub (through meta.pub.tmp, so readers see it whole), no sync at
 * all, no freshness provider; meta stays as it is, so a crash that tears or
 * loses meta.pub falls back to it (see load_published). Pending removals wait
 * for a durable write. */
static int write_meta(pf_volume_t *v, bool durable, struct kiln_err *err)
{
	struct wbuf w = { 0 };
	uint8_t *env = NULL;
	size_t env_size = 0;
	uint64_t tag = durable ? v->tag + 1 : v->tag;
	void *fh = NULL;
	int ret;

	ret = serialize_meta(v, &w);
	if (!ret)
		ret = pf_meta_seal(&v->mk, tag, w.p, w.len, &env, &env_size);
	if (ret) {
		kiln_err_set(err, ret, "metadata: %s", kiln_strerror(ret));
		goto out;
	}
	/* meta.tmp is written and its sync started before the prepare: nothing
	 * reads it before the rename, which waits for all three (and for the
	 * data syncs commit_locked started). */
	ret = v->so->open(v->sctx, durable ? "meta.tmp" : "meta.pub.tmp",
			  PF_SO_CREATE | PF_SO_TRUNC, &fh);
	if (!ret)
		ret = st_pwrite_all(v, fh, env, env_size, 0);
	if (!ret && durable)
		ret = sync_begin(v, fh);
	if (!ret && durable && v->fo)
		ret = v->fo->prepare(v->fctx, tag, err);
	if (syncs_settle(v) && !ret)
		ret = -EIO;
	if (fh) {
		int r = v->so->close(v->sctx, fh);

		ret = ret ? ret : r;
	}
	if (ret && err && err->code)
		goto out; /* the provider's message */
	if (!ret)
		ret = durable ? replace(v, "meta.tmp", "meta") :
		      replace(v, "meta.pub.tmp", "meta.pub");
	if (ret) {
		kiln_err_set(err, ret, "metadata: cannot write: %s", kiln_strerror(ret));
		goto out;
	}
	if (!durable) {
		v->lazy = true;
		goto out;
	}
	ret = v->so->sync_dir(v->sctx);
	v->tag = tag;
	v->lazy = false;
	if (ret) {
		/* Renamed but maybe not durable: the next commit or open settles it. */
		kiln_err_set(err, ret, "metadata: cannot sync directory: %s", kiln_strerror(ret));
		goto out;
	}
	/* A failed commit leaves the tag prepared, which open accepts. meta.pub,
	 * if any, now has an older tag: it is ignored, and reused by the next
	 * publish. */
	if (v->fo)
		(void)v->fo->commit(v->fctx, tag, NULL);
	while (v->pending) {
		struct pf_pending *p = v->pending;

		v->pending = p->next;
		remove_backing(v, p->name);
		free(p);
	}
out:
	kiln_free_secret(w.p, w.cap);
	free(env);
	return ret;
}

static bool node_needs_commit(const struct pf_node *n)
{
	return n->entry && (n->dirty || !n->base_in_meta);
}

/* Commit one node (or every node needing it when only == NULL) and the
 * namespace in one metadata write. */
static int commit_locked(pf_volume_t *v, struct pf_node *only, struct kiln_err *err)
{
	uint64_t old_tag = v->tag;
	bool any = v->ns_dirty || v->pending || v->lazy, failed = false;
	int ret = 0;

	if (v->read_only)
		return 0;
	/* Many files in one commit (a flush): one syncfs instead of a sync each. */
	if (!only && v->so->sync_all) {
		size_t count = 0;

		for (struct pf_node *n = v->nodes; n && count < 2; n = n->next)
			count += !n->failed && node_needs_commit(n);
		if (count >= 2) {
			for (struct pf_node *n = v->nodes; n; n = n->next)
				if (!n->failed && node_needs_commit(n) && wb_drain(n, NULL) == 0)
					n->synced = true;
			if (v->so->sync_all(v->sctx) != 0)
				for (struct pf_node *n = v->nodes; n; n = n->next)
					n->synced = false;
		}
	}
	v->syncs_failed = false;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (only && n != only)
			continue;
		if (n->failed) {
			/* Its journal restores it on the next open; commit the others. */
			if (!failed)
				kiln_err_set(err, -EIO, "file %s: earlier write failed; reopen "
					     "the volume", node_path(n));
			failed = true;
			continue;
		}
		if (!node_needs_commit(n))
			continue;
		ret = n->synced ? 0 : wb_drain(n, NULL);
		/* Nothing committed lies past the new end of a file without a base:
		 * cut it before the sync, which then covers both. */
		if (!ret && !has_base(n) && n->phys_size > expected_phys(v, n->size)) {
			ret = v->so->truncate(v->sctx, n->fh, expected_phys(v, n->size));
			if (!ret && n->synced)
				ret = v->so->sync(v->sctx, n->fh);
			if (!ret)
				n->phys_size = expected_phys(v, n->size);
		}
		if (!ret && !n->synced)
			ret = sync_begin(v, n->fh);
		n->synced = false;
		if (!ret)
			ret = compute_root(n, n->size, n->new_root);
		if (ret) {
			/* After a failed sync the data on disk is unknown (Linux
			 * forgets the error): treat the file as failed, like a write. */
			if (!failed)
				kiln_err_set(err, ret, "file %s: sync: %s", node_path(n),
					     kiln_strerror(ret));
			n->failed = true;
			failed = true;
			ret = 0;
			continue;
		}
		n->committing = true;
		memcpy(n->save_root, n->entry->root, PF_ROOT_SIZE);
		n->save_size = n->entry->size;
		n->save_in_meta = n->entry->in_meta;
		memcpy(n->save_backing, n->entry->backing, PF_BACKING_ID_SIZE);
		memcpy(n->entry->backing, n->backing, PF_BACKING_ID_SIZE);
		memcpy(n->entry->root, n->new_root, PF_ROOT_SIZE);
		n->entry->size = n->size;
		n->entry->in_meta = true;
		any = true;
	}
	if (!any) {
		ret = syncs_settle(v);
		return failed || ret ? -EIO : 0;
	}
	ret = write_meta(v, true, err);
	(void)syncs_settle(v); /* write_meta settled them, unless it failed early */
	if (v->tag != old_tag)
		v->ns_dirty = false;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!n->committing)
			continue;
		n->committing = false;
		if (v->syncs_failed) {
			/* Its data sync may be among those that failed: unknown data,
			 * restored from the journal at the next open. */
			n->failed = true;
		}
		if (v->tag == old_tag && n->entry) {
			/* Not renamed into place: the old metadata still rules. */
			memcpy(n->entry->root, n->save_root, PF_ROOT_SIZE);
			n->entry->size = n->save_size;
			n->entry->in_meta = n->save_in_meta;
			memcpy(n->entry->backing, n->save_backing, PF_BACKING_ID_SIZE);
			continue;
		}
		if (n->fresh) {
			/* The metadata no longer refers to the old backing file. */
			remove_backing(v, n->old_name);
			n->fresh = false;
		}
		n->base_in_meta = n->was_in_meta = true;
		n->base_size = n->size;
		memcpy(n->base_root, n->new_root, PF_ROOT_SIZE);
		n->gen_open = false;
		n->dirty = false;
		/* Cut debris, make that durable, and only then empty the journal:
		 * an empty journal means "no trailing bytes expected" on open. */
		if (n->phys_size > expected_phys(v, n->size) &&
		    v->so->truncate(v->sctx, n->fh, expected_phys(v, n->size)) == 0 &&
		    v->so->sync(v->sctx, n->fh) == 0)
			n->phys_size = expected_phys(v, n->size);
		if (n->jfh && n->phys_size <= expected_phys(v, n->size))
			(void)v->so->truncate(v->sctx, n->jfh, 0);
		sidecar_update(n);
	}
	return ret ? ret : failed ? -EIO : 0;
}

/* ---- volume ---- */

static int vol_alloc(const struct pf_volume_opts *opts, pf_volume_t **out)
{
	pf_volume_t *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	v->nbuckets = 64;
	v->buckets = calloc(v->nbuckets, sizeof(*v->buckets));
	if (!v->buckets) {
		free(v);
		return -ENOMEM;
	}
	if (opts) {
		v->so = opts->storage;
		v->sctx = opts->storage_ctx;
		v->fo = opts->freshness;
		v->fctx = opts->freshness_ctx;
		v->read_only = opts->read_only;
		v->seal_thread = opts->seal_thread;
	}
	*out = v;
	return 0;
}

static int vol_set_chunk_size(pf_volume_t *v, uint32_t cs)
{
	v->cs = cs;
	v->stride = (uint64_t)cs + PF_SLOT_META;
	v->batch = PF_IO_BATCH_BYTES / v->stride;
	if (v->batch < 1)
		v->batch = 1;
	v->wb_cap = PF_WB_BYTES / v->stride;
	if (v->wb_cap < 1)
		v->wb_cap = 1;
	v->iobuf = malloc(v->batch * v->stride);
	v->slot = malloc(v->stride);
	v->pt = malloc(cs);
	v->aad = malloc(32 + (size_t)cs);
	v->jbuf = malloc(12 + v->stride + 8);
	v->nonces = malloc(v->batch * PF_NONCE_SIZE);
	if (!v->iobuf || !v->slot || !v->pt || !v->aad || !v->jbuf || !v->nonces)
		return -ENOMEM;
	return 0;
}

static void vol_free(pf_volume_t *v)
{
	if (!v)
		return;
	sealer_stop(v);
	while (v->files) {
		struct pf_file *f = v->files;

		v->files = f->next;
		free(f);
	}
	while (v->nodes)
		node_free(v->nodes);
	for (size_t b = 0; b < v->nbuckets; b++) {
		struct pf_entry *e = v->buckets[b], *ne;

		for (; e; e = ne) {
			ne = e->hnext;
			ent_free(e);
		}
	}
	while (v->pending) {
		struct pf_pending *p = v->pending;

		v->pending = p->next;
		free(p);
	}
	for (size_t i = 0; i < v->regions_len; i++)
		free(v->regions[i].prefix);
	free(v->regions);
	free(v->buckets);
	if (v->iobuf)
		kiln_free_secret(v->iobuf, v->batch * v->stride);
	if (v->slot)
		kiln_free_secret(v->slot, v->stride);
	if (v->pt)
		kiln_free_secret(v->pt, v->cs);
	if (v->aad)
		kiln_free_secret(v->aad, 32 + (size_t)v->cs);
	if (v->jbuf)
		kiln_free_secret(v->jbuf, 12 + v->stride + 8);
	free(v->nonces);
	if (v->iobuf2)
		kiln_free_secret(v->iobuf2, v->batch * v->stride);
	if (v->so && v->so->free)
		v->so->free(v->sctx);
	if (v->fo && v->fo->free)
		v->fo->free(v->fctx);
	pthread_mutex_destroy(&v->lock);
	kiln_wipe(v, sizeof(*v));
	free(v);
}

static int vol_storage(pf_volume_t *v, const char *dir, bool create, struct kiln_err *err)
{
	char path[PF_MAX_PATH + 16];

	if (v->so)
		return 0;
	if (snprintf(path, sizeof(path), "%s/.kiln", dir) >= (int)sizeof(path))
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", dir);
	return pf_storage_posix(path, create, &v->so, &v->sctx, err);
}

static int vol_keys(pf_volume_t *v, const uint8_t key[static PF_KEY_SIZE])
{
	memcpy(v->key, key, PF_KEY_SIZE);
	return pf_meta_keys_derive(key, &v->mk);
}

int pf_volume_init(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err)
{
	uint32_t cs = opts && opts->chunk_size ? opts->chunk_size : PF_DEFAULT_CHUNK_SIZE;
	pf_volume_t *v;
	void *fh = NULL;
	int ret;

	*vol = NULL;
	ret = vol_alloc(opts, &v);
	if (ret) {
		if (opts && opts->storage && opts->storage->free)
			opts->storage->free(opts->storage_ctx);
		if (opts && opts->freshness && opts->freshness->free)
			opts->freshness->free(opts->freshness_ctx);
		return ret;
	}
	v->read_only = false;
	if (cs < PF_MIN_CHUNK_SIZE || cs > PF_MAX_CHUNK_SIZE || cs % 16) {
		ret = kiln_err_set(err, -EINVAL, "chunk size %u: must be a multiple of 16 in "
				   "[%u, %u]", cs, PF_MIN_CHUNK_SIZE, PF_MAX_CHUNK_SIZE);
		goto out;
	}
	if ((ret = vol_storage(v, dir, true, err)))
		goto out;
	if ((ret = vol_set_chunk_size(v, cs)) || (ret = vol_keys(v, key)))
		goto out;
	ret = v->so->open(v->sctx, "meta", PF_SO_RDONLY, &fh);
	if (ret == 0) {
		v->so->close(v->sctx, fh);
		ret = kiln_err_set(err, -EEXIST, "%s: already holds a kiln volume", dir);
		goto out;
	}
	if (opts && opts->regions_len > PF_MAX_REGIONS) {
		ret = kiln_err_set(err, -EINVAL, "too many regions (max %d)", PF_MAX_REGIONS);
		goto out;
	}
	if (opts && opts->regions_len) {
		v->regions = calloc(opts->regions_len, sizeof(*v->regions));
		if (!v->regions) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < opts->regions_len; i++) {
			char norm[PF_MAX_PATH];
			enum pf_region_kind k = opts->regions[i].kind;

			if (pf_path_normalize(opts->regions[i].prefix, norm) != 0 ||
			    (k != PF_REGION_ENCRYPTED && k != PF_REGION_AUTHENTICATED &&
			     k != PF_REGION_PLAIN)) {
				ret = kiln_err_set(err, -EINVAL, "region '%s': invalid",
						   opts->regions[i].prefix);
				goto out;
			}
			v->regions[i].kind = k;
			v->regions[i].prefix = strdup(norm);
			v->regions_len++;
			if (!v->regions[i].prefix) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	ret = write_meta(v, true, err);
	if (ret)
		goto out;
	*vol = v;
	v = NULL;
out:
	vol_free(v);
	return ret;
}

static int load_entries(pf_volume_t *v, struct pf_meta *m, struct kiln_err *err)
{
	int ret;

	v->regions = m->regions;
	v->regions_len = m->regions_len;
	m->regions = NULL;
	m->regions_len = 0;
	for (size_t i = 0; i < m->dirs_len + m->files_len; i++) {
		struct pf_entry *e = calloc(1, sizeof(*e));
		const char *path;

		if (!e)
			return -ENOMEM;
		if (i < m->dirs_len) {
			struct pf_meta_dir *d = &m->dirs[i];

			e->is_dir = true;
			e->mode = d->mode;
			e->mtime_ns = d->mtime_ns;
			e->path = d->path;
			d->path = NULL;
		} else {
			struct pf_meta_file *f = &m->files[i - m->dirs_len];

			e->kind = f->kind;
			e->mode = f->mode;
			e->mtime_ns = f->mtime_ns;
			e->size = f->size;
			memcpy(e->key, f->key, PF_KEY_SIZE);
			memcpy(e->file_id, f->file_id, PF_FILE_ID_SIZE);
			memcpy(e->root, f->root, PF_ROOT_SIZE);
			memcpy(e->backing, f->backing, PF_BACKING_ID_SIZE);
			e->in_meta = true;
			e->path = f->path;
			f->path = NULL;
		}
		path = e->path;
		if (ent_find(v, path)) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "metadata: duplicate path '%s'",
					   path);
			ent_free(e);
			return ret;
		}
		if ((ret = ent_insert(v, e))) {
			ent_free(e);
			return ret;
		}
	}
	/* Every entry's parent must be a directory. */
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (check_parent(v, e->path) != 0)
				return kiln_err_set(err, -KILN_EFORMAT, "metadata: '%s' has no "
						    "parent directory", e->path);
	return 0;
}

struct gc_ctx {
	pf_volume_t *v;
	char **names;
	size_t len, cap;
};

static int gc_collect(void *arg, const char *name)
{
	struct gc_ctx *g = arg;
	size_t n = strlen(name);
	uint8_t id[PF_BACKING_ID_SIZE];
	char hex[2 * PF_BACKING_ID_SIZE + 1];
	struct pf_entry *e = NULL;
	bool used = false;

	if (strcmp(name, "meta.tmp") == 0) {
		(void)g->v->so->remove(g->v->sctx, name);
		return 0;
	}
	if (n != 32 && !(n == 34 && (strcmp(name + 32, ".j") == 0 ||
				      strcmp(name + 32, ".t") == 0)))
		return 0;
	memcpy(hex, name, 32);
	hex[32] = '\0';
	if (kiln_hex_decode(hex, id, sizeof(id), NULL) != 0)
		return 0;
	for (size_t b = 0; b < g->v->nbuckets && !used; b++)
		for (e = g->v->buckets[b]; e && !used; e = e->hnext)
			used = !e->is_dir && memcmp(e->backing, id, sizeof(id)) == 0;
	if (used)
		return 0;
	if (g->len == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		char **nn = realloc(g->names, cap * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		g->names = nn;
		g->cap = cap;
	}
	g->names[g->len] = strdup(name);
	if (!g->names[g->len])
		return -ENOMEM;
	g->len++;
	return 0;
}

/* Remove backing files no committed entry refers to (left by crashes). */
static void collect_orphans(pf_volume_t *v)
{
	struct gc_ctx g = { v, NULL, 0, 0 };

	if (!v->so->list)
		return;
	/* O(files x entries); fine for the volumes this serves, see docs/fs.md. */
	(void)v->so->list(v->sctx, gc_collect, &g);
	for (size_t i = 0; i < g.len; i++) {
		(void)v->so->remove(v->sctx, g.names[i]);
		free(g.names[i]);
	}
	free(g.names);
}

static int check_fresh(pf_volume_t *v, uint64_t tag, bool trust_first, struct kiln_err *err)
{
	uint64_t c = 0, p = 0;
	int ret;

	if (!v->fo)
		return 0;
	ret = v->fo->current(v->fctx, &c, &p, err);
	if (ret == -ENOENT && trust_first) {
		if (v->read_only)
			return 0;
		ret = v->fo->prepare(v->fctx, tag, err);
		if (!ret)
			ret = v->fo->commit(v->fctx, tag, err);
		return ret;
	}
	if (ret == -ENOENT)
		return kiln_err_set(err, -KILN_EROLLBACK, "no trusted volume tag is available "
				    "(found tag %llu)", (unsigned long long)tag);
	if (ret)
		return ret;
	if (tag == c || tag == p) {
		if (tag != c && !v->read_only)
			return v->fo->commit(v->fctx, tag, err);
		return 0;
	}
	if (tag < c)
		return kiln_err_set(err, -KILN_EROLLBACK, "volume rolled back: found tag %llu, "
				    "expected %llu", (unsigned long long)tag,
				    (unsigned long long)c);
	if (tag < p)
		return kiln_err_set(err, -KILN_EROLLBACK, "volume rolled back: found tag %llu, "
				    "expected %llu or %llu", (unsigned long long)tag,
				    (unsigned long long)c, (unsigned long long)p);
	return kiln_err_set(err, -KILN_ECONFLICT, "volume tag %llu is newer than the trusted "
			    "tag %llu (stale tag store?)", (unsigned long long)tag,
			    (unsigned long long)p);
}

/* meta.pub (pf_volume_publish) holds the namespace published since the last
 * durable commit, under that commit's tag. It is used when it is whole and
 * carries the tag of meta; a torn, missing or older one is ignored: that is
 * the crash losing changes that were never durable. On success *body is
 * replaced (the old one wiped and freed). */
static bool load_published(pf_volume_t *v, uint64_t tag, uint8_t **body, size_t *body_size)
{
	uint8_t *env = NULL, *pbody = NULL;
	size_t pbody_size = 0;
	uint64_t size = 0, ptag = 0;
	void *fh = NULL;
	bool ok = false;
	ssize_t n;

	if (v->so->open(v->sctx, "meta.pub", PF_SO_RDONLY, &fh) != 0)
		return false;
	if (v->so->get_size(v->sctx, fh, &size) != 0 || size < PF_META_HDR_SIZE ||
	    size > PF_META_MAX_SIZE + PF_META_HDR_SIZE + PF_TAG_SIZE || !(env = malloc(size)))
		goto out;
	n = v->so->pread(v->sctx, fh, env, size, 0);
	if (n != (ssize_t)size ||
	    pf_meta_unseal(&v->mk, env, size, &ptag, &pbody, &pbody_size, NULL) != 0)
		goto out;
	if (ptag != tag) {
		kiln_free_secret(pbody, pbody_size);
		goto out;
	}
	kiln_free_secret(*body, *body_size);
	*body = pbody;
	*body_size = pbody_size;
	ok = true;
out:
	v->so->close(v->sctx, fh);
	free(env);
	return ok;
}

int pf_volume_open(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err)
{
	bool published;
	struct pf_meta m = { 0 };
	uint8_t *env = NULL, *body = NULL;
	size_t body_size = 0;
	uint64_t env_size = 0, tag;
	pf_volume_t *v;
	void *fh = NULL;
	ssize_t n;
	int ret;

	*vol = NULL;
	ret = vol_alloc(opts, &v);
	if (ret) {
		if (opts && opts->storage && opts->storage->free)
			opts->storage->free(opts->storage_ctx);
		if (opts && opts->freshness && opts->freshness->free)
			opts->freshness->free(opts->freshness_ctx);
		return ret;
	}
	if ((ret = vol_storage(v, dir, false, err)))
		goto out;
	if ((ret = vol_keys(v, key)))
		goto out;
	ret = v->so->open(v->sctx, "meta", PF_SO_RDONLY, &fh);
	if (ret) {
		if (ret == -ENOENT)
			kiln_err_set(err, ret, "%s: missing metadata (.kiln/meta)", dir);
		else
			kiln_err_set(err, ret, "%s: metadata: %s", dir, kiln_strerror(ret));
		goto out;
	}
	ret = v->so->get_size(v->sctx, fh, &env_size);
	if (!ret && env_size > PF_META_MAX_SIZE + PF_META_HDR_SIZE + PF_TAG_SIZE)
		ret = -EFBIG;
	if (ret) {
		kiln_err_set(err, ret, "%s: metadata: %s", dir, kiln_strerror(ret));
		goto out;
	}
	env = malloc(env_size ? env_size : 1);
	if (!env) {
		ret = -ENOMEM;
		goto out;
	}
	n = v->so->pread(v->sctx, fh, env, env_size, 0);
	v->so->close(v->sctx, fh);
	fh = NULL;
	if (n < 0) {
		ret = kiln_err_set(err, (int)n, "%s: metadata: %s", dir, kiln_strerror((int)n));
		goto out;
	}
	ret = pf_meta_unseal(&v->mk, env, (size_t)n, &tag, &body, &body_size, err);
	if (ret)
		goto out;
	published = load_published(v, tag, &body, &body_size);
	ret = pf_meta_parse(body, body_size, &m, err);
	if (ret)
		goto out;
	if ((ret = vol_set_chunk_size(v, m.chunk_size)))
		goto out;
	if ((ret = load_entries(v, &m, err)))
		goto out;
	v->tag = tag;
	ret = check_fresh(v, tag, opts && opts->trust_first, err);
	if (ret)
		goto out;
	/* Published metadata is not durable: files it no longer names may be
	 * named by the durable one. Orphans wait for an open after a commit. */
	if (!v->read_only && !published)
		collect_orphans(v);
	*vol = v;
	v = NULL;
out:
	if (ret && err && err->code == 0)
		kiln_err_set(err, ret, "%s: %s", dir, kiln_strerror(ret));
	if (fh)
		v->so->close(v->sctx, fh);
	pf_meta_clear(&m);
	if (body)
		kiln_free_secret(body, body_size);
	free(env);
	vol_free(v);
	return ret;
}

int pf_volume_flush(pf_volume_t *v, struct kiln_err *err)
{
	int ret;

	pthread_mutex_lock(&v->lock);
	ret = commit_locked(v, NULL, err);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* A node pf_volume_publish may put into the metadata without syncing it: a file
 * created since the last commit and still empty, whose committed state is the
 * empty file (see load_empty for what a crash may leave of its backing file). */
static bool publishable(const struct pf_node *n)
{
	return !n->failed && !n->base_in_meta && !n->fresh && n->size == 0 &&
	       n->wb_count == 0 && n->phys_size <= PF_HDR_SIZE;
}

int pf_volume_publish(pf_volume_t *v, struct kiln_err *err)
{
	bool data = false, any;
	int ret = 0;

	pthread_mutex_lock(&v->lock);
	if (v->read_only)
		goto out;
	any = v->ns_dirty;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!node_needs_commit(n))
			continue;
		if (publishable(n))
			any = true;
		else
			data = true;
	}
	if (data) {
		/* File content to commit: that is a durable commit anyway. */
		ret = commit_locked(v, NULL, err);
		goto out;
	}
	if (!any)
		goto out;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!node_needs_commit(n))
			continue;
		ret = compute_root(n, 0, n->new_root);
		if (ret)
			goto undo;
		n->committing = true;
		n->save_in_meta = n->entry->in_meta;
		memcpy(n->save_root, n->entry->root, PF_ROOT_SIZE);
		memcpy(n->entry->root, n->new_root, PF_ROOT_SIZE);
		memcpy(n->entry->backing, n->backing, PF_BACKING_ID_SIZE);
		n->entry->size = 0;
		n->entry->in_meta = true;
	}
	ret = write_meta(v, false, err);
undo:
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!n->committing)
			continue;
		n->committing = false;
		if (ret) {
			n->entry->in_meta = n->save_in_meta;
			memcpy(n->entry->root, n->save_root, PF_ROOT_SIZE);
			continue;
		}
		n->base_in_meta = n->was_in_meta = true;
		n->base_size = 0;
		memcpy(n->base_root, n->new_root, PF_ROOT_SIZE);
		n->dirty = false;
	}
	if (!ret)
		v->ns_dirty = false;
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

void pf_volume_discard(pf_volume_t *v)
{
	if (!v)
		return;
	/* A read-only volume writes nothing when closed. */
	pthread_mutex_lock(&v->lock);
	v->read_only = true;
	pthread_mutex_unlock(&v->lock);
	(void)pf_volume_close(v, NULL);
}

int pf_volume_close(pf_volume_t *v, struct kiln_err *err)
{
	int ret = 0;

	if (!v)
		return 0;
	if (!v->read_only)
		ret = pf_volume_flush(v, err);
	vol_free(v);
	return ret;
}

uint64_t pf_volume_tag(pf_volume_t *v)
{
	uint64_t t;

	pthread_mutex_lock(&v->lock);
	t = v->tag;
	pthread_mutex_unlock(&v->lock);
	return t;
}

uint32_t pf_volume_chunk_size(pf_volume_t *v)
{
	return v->cs;
}

enum pf_region_kind pf_volume_region(pf_volume_t *v, const char *path)
{
	char norm[PF_MAX_PATH];
	enum pf_region_kind k;

	if (pf_path_normalize(path, norm) != 0)
		return PF_REGION_ENCRYPTED;
	pthread_mutex_lock(&v->lock);
	k = region_of(v, norm);
	pthread_mutex_unlock(&v->lock);
	return k;
}

int pf_volume_rekey(pf_volume_t *v, const uint8_t new_key[static PF_KEY_SIZE],
		    struct kiln_err *err)
{
	struct pf_meta_keys old = v->mk;
	uint8_t old_key[PF_KEY_SIZE];
	int ret;

	if (v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	pthread_mutex_lock(&v->lock);
	memcpy(old_key, v->key, PF_KEY_SIZE);
	ret = vol_keys(v, new_key);
	if (!ret)
		ret = write_meta(v, true, err);
	if (ret) {
		v->mk = old;
		memcpy(v->key, old_key, PF_KEY_SIZE);
	}
	pthread_mutex_unlock(&v->lock);
	kiln_wipe(&old, sizeof(old));
	kiln_wipe(old_key, sizeof(old_key));
	return ret;
}

/* Read every chunk of node n (to check each tag). */
static int verify_node(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	size_t bsize = v->batch * v->cs;
	uint8_t *buf = malloc(bsize);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < n->size; off += bsize) {
		ssize_t r = node_read(n, buf, bsize, off, err);

		if (r < 0) {
			ret = (int)r;
			break;
		}
	}
	kiln_free_secret(buf, bsize);
	return ret;
}

int pf_volume_verify(pf_volume_t *v, pf_verify_cb cb, void *arg, struct kiln_err *err)
{
	struct pf_entry **list = NULL;
	size_t count = 0;
	int first = 0;

	pthread_mutex_lock(&v->lock);
	list = calloc(v->nentries ? v->nentries : 1, sizeof(*list));
	if (!list) {
		pthread_mutex_unlock(&v->lock);
		return -ENOMEM;
	}
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (!e->is_dir)
				list[count++] = e;
	for (size_t i = 0; i < count; i++) {
		struct pf_entry *e = list[i];
		struct kiln_err fe = { 0 };
		struct pf_node *n = e->node;
		bool temp = false;
		int ret = 0;

		if (!n) {
			ret = node_load(v, e, &n, &fe);
			temp = ret == 0;
		}
		if (!ret)
			ret = verify_node(n, &fe);
		if (temp)
			node_free(n);
		if (cb)
			cb(arg, e->path, ret, ret ? kiln_err_msg(&fe, ret) : "ok");
		if (ret && !first) {
			first = ret;
			if (err)
				*err = fe;
		}
	}
	free(list);
	pthread_mutex_unlock(&v->lock);
	if (first && first != -KILN_EAUTH && first != -KILN_ECORRUPT)
		return first;
	return first ? -KILN_EAUTH : 0;
}

/* ---- files ---- */

static bool writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

static int create_file(pf_volume_t *v, const char *path, mode_t mode, struct pf_node **out,
		       struct kiln_err *err)
{
	struct pf_entry *e = calloc(1, sizeof(*e));
	struct pf_header hdr = { 0 };
	uint8_t hbuf[PF_HDR_SIZE];
	struct pf_node *n = NULL;
	int ret;

	*out = NULL;
	if (!e || !(e->path = strdup(path))) {
		free(e);
		return -ENOMEM;
	}
	e->mode = mode & 07777;
	e->mtime_ns = now_ns();
	e->kind = region_of(v, path);
	if ((ret = kc_random(e->key, PF_KEY_SIZE)) || (ret = kc_random(e->file_id,
								       PF_FILE_ID_SIZE)) ||
	    (ret = kc_random(e->backing, PF_BACKING_ID_SIZE)))
		goto out;
	n = node_new(v, e);
	if (!n) {
		ret = -ENOMEM;
		goto out;
	}
	ret = v->so->open(v->sctx, n->name, PF_SO_CREATE | PF_SO_EXCL, &n->fh);
	if (ret)
		goto out;
	hdr.version = PF_FORMAT_VERSION;
	hdr.kind = e->kind;
	hdr.chunk_size = v->cs;
	memcpy(hdr.file_id, e->file_id, PF_FILE_ID_SIZE);
	pf_header_encode(&hdr, hbuf);
	ret = st_pwrite_all(v, n->fh, hbuf, sizeof(hbuf), 0);
	if (ret) {
		v->so->close(v->sctx, n->fh);
		n->fh = NULL;
		remove_backing(v, n->name);
		goto out;
	}
	n->phys_size = PF_HDR_SIZE;
	n->dirty = true;
	ret = ent_insert(v, e);
	if (ret) {
		v->so->close(v->sctx, n->fh);
		n->fh = NULL;
		remove_backing(v, n->name);
		goto out;
	}
	*out = n;
	return 0;
out:
	if (n) {
		n->entry = NULL;
		node_free(n);
	}
	kiln_err_set(err, ret, "file %s: cannot create: %s", path, kiln_strerror(ret));
	ent_free(e);
	return ret;
}

int pf_open(pf_volume_t *v, const char *path, int flags, mode_t mode, pf_file_t **file,
	    struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	struct pf_node *n = NULL;
	struct pf_file *f;
	int ret;

	*file = NULL;
	ret = pf_path_normalize(path, norm);
	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	if (writable(flags) && v->read_only)
		return kiln_err_set(err, -EROFS, "%s: volume is open read-only", norm);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	e = norm[0] ? ent_find(v, norm) : NULL;
	if (!norm[0] || (e && e->is_dir)) {
		ret = kiln_err_set(err, -EISDIR, "%s: is a directory", norm[0] ? norm : "/");
		goto out;
	}
	if (!e) {
		if (!(flags & O_CREAT)) {
			ret = kiln_err_set(err, -ENOENT, "%s: no such file", norm);
			goto out;
		}
		if (v->read_only) {
			ret = kiln_err_set(err, -EROFS, "%s: volume is open read-only", norm);
			goto out;
		}
		ret = check_parent(v, norm);
		if (ret) {
			kiln_err_set(err, ret, "%s: parent directory: %s", norm,
				     kiln_strerror(ret));
			goto out;
		}
		ret = create_file(v, norm, mode, &n, err);
		if (ret)
			goto out;
	} else {
		if ((flags & O_CREAT) && (flags & O_EXCL)) {
			ret = kiln_err_set(err, -EEXIST, "%s: exists", norm);
			goto out;
		}
		n = e->node;
		if (!n && (ret = node_load(v, e, &n, err)))
			goto out;
		if ((flags & O_TRUNC) && writable(flags) && (ret = set_size(n, 0, err)))
			goto out;
	}
	n->refs++;
	f->node = n;
	f->flags = flags;
	f->next = v->files;
	if (v->files)
		v->files->prev = f;
	v->files = f;
	*file = f;
	f = NULL;
	ret = 0;
out:
	pthread_mutex_unlock(&v->lock);
	free(f);
	return ret;
}

int pf_close(pf_file_t *f)
{
	pf_volume_t *v;
	struct pf_node *n;

	if (!f)
		return 0;
	n = f->node;
	v = n->vol;
	pthread_mutex_lock(&v->lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		v->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	free(f);
	if (--n->refs == 0) {
		if (!n->entry) {
			char name[PF_NAME_MAX], old[PF_NAME_MAX];
			bool in_meta = n->was_in_meta, fresh = n->fresh;

			memcpy(name, n->name, sizeof(name));
			memcpy(old, n->old_name, sizeof(old));
			node_free(n);
			schedule_remove(v, name, in_meta);
			if (fresh)
				schedule_remove(v, old, true);
		} else if (!node_needs_commit(n)) {
			node_free(n);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

ssize_t pf_pread(pf_file_t *f, void *buf, size_t size, uint64_t off, struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	ssize_t r;

	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	pthread_mutex_lock(&v->lock);
	r = node_read(f->node, buf, size, off, err);
	pthread_mutex_unlock(&v->lock);
	return r;
}

ssize_t pf_pwrite(pf_file_t *f, const void *buf, size_t size, uint64_t off,
		  struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	ssize_t r;

	if (!writable(f->flags))
		return -EBADF;
	pthread_mutex_lock(&v->lock);
	if (f->flags & O_APPEND)
		off = f->node->size;
	r = node_write(f->node, buf, size, off, err);
	pthread_mutex_unlock(&v->lock);
	return r;
}

ssize_t pf_append(pf_file_t *f, const void *buf, size_t size, uint64_t *end_off,
		  struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	ssize_t r;

	if (!writable(f->flags))
		return -EBADF;
	pthread_mutex_lock(&v->lock);
	r = node_write(f->node, buf, size, f->node->size, err);
	if (end_off)
		*end_off = f->node->size;
	pthread_mutex_unlock(&v->lock);
	return r;
}

int pf_get_size(pf_file_t *f, uint64_t *size)
{
	pf_volume_t *v = f->node->vol;

	pthread_mutex_lock(&v->lock);
	*size = f->node->size;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int pf_ftruncate(pf_file_t *f, uint64_t size, struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	int ret;

	if (!writable(f->flags))
		return -EBADF;
	pthread_mutex_lock(&v->lock);
	if (f->node->failed)
		ret = -EIO;
	else
		ret = set_size(f->node, size, err);
	if (!ret && f->node->entry)
		f->node->entry->mtime_ns = now_ns();
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fsync(pf_file_t *f, struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	int ret;

	pthread_mutex_lock(&v->lock);
	if (!n->entry) {
		/* Unlinked: nothing will ever read it back; just sync. */
		ret = v->so->sync(v->sctx, n->fh);
	} else {
		ret = commit_locked(v, n, err);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- namespace ---- */

static void fill_stat(pf_volume_t *v, const struct pf_entry *e, struct pf_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->is_dir = e->is_dir;
	st->mode = e->mode;
	st->mtime_ns = e->mtime_ns;
	st->kind = e->is_dir ? region_of(v, e->path) : (enum pf_region_kind)e->kind;
	if (!e->is_dir)
		st->size = e->node ? e->node->size : e->size;
}

/* The root directory has no metadata entry; like any directory its mtime follows
 * its entries, so report the newest of its direct children (now when empty).
 * O(entries) per stat of the root. Opening the root (sqlite fsyncs its directory
 * once per transaction) pays it: a pointer walk, small beside that transaction's
 * syncs. A stored root mtime would need a metadata format change. */
static int64_t root_mtime_ns(pf_volume_t *v)
{
	int64_t newest = 0;
	struct timespec now;

	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (!strchr(e->path, '/') && e->mtime_ns > newest)
				newest = e->mtime_ns;
	if (newest)
		return newest;
	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int pf_stat(pf_volume_t *v, const char *path, struct pf_stat *st, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = pf_path_normalize(path, norm);

	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	pthread_mutex_lock(&v->lock);
	if (!norm[0]) {
		memset(st, 0, sizeof(*st));
		st->is_dir = true;
		st->mode = 0755;
		st->mtime_ns = root_mtime_ns(v);
		st->kind = region_of(v, "");
	} else if ((e = ent_find(v, norm))) {
		fill_stat(v, e, st);
	} else {
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", norm);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fstat(pf_file_t *f, struct pf_stat *st)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;

	pthread_mutex_lock(&v->lock);
	if (n->entry) {
		fill_stat(v, n->entry, st);
	} else {
		memset(st, 0, sizeof(*st));
		st->size = n->size;
		st->kind = (enum pf_region_kind)n->kind;
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* Look up path for a namespace change; locks on success. */
static int ns_lookup(pf_volume_t *v, const char *path, char *norm, struct pf_entry **e,
		     struct kiln_err *err)
{
	int ret = pf_path_normalize(path, norm);

	*e = NULL;
	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	if (v->read_only)
		return kiln_err_set(err, -EROFS, "%s: volume is open read-only", norm);
	pthread_mutex_lock(&v->lock);
	*e = norm[0] ? ent_find(v, norm) : NULL;
	return 0;
}

int pf_chmod(pf_volume_t *v, const char *path, mode_t mode, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (e) {
		e->mode = mode & 07777;
		v->ns_dirty = true;
	}
	else if (norm[0])
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", norm);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_set_mtime(pf_volume_t *v, const char *path, int64_t mtime_ns, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (e) {
		e->mtime_ns = mtime_ns;
		v->ns_dirty = true;
	}
	else if (norm[0])
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", norm);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_truncate(pf_volume_t *v, const char *path, uint64_t size, struct kiln_err *err)
{
	pf_file_t *f;
	int ret = pf_open(v, path, O_WRONLY, 0, &f, err);

	if (ret)
		return ret;
	ret = pf_ftruncate(f, size, err);
	pf_close(f);
	return ret;
}

/* Remove file entry e from the namespace (lock held). */
static void drop_file(pf_volume_t *v, struct pf_entry *e)
{
	struct pf_node *n = e->node;
	char name[PF_NAME_MAX];

	ent_remove(v, e);
	v->ns_dirty = true;
	if (n) {
		n->entry = NULL;
		e->node = NULL;
		if (n->refs == 0) {
			char old[PF_NAME_MAX];
			bool fresh = n->fresh;

			memcpy(name, n->name, sizeof(name));
			memcpy(old, n->old_name, sizeof(old));
			node_free(n);
			schedule_remove(v, name, e->in_meta);
			if (fresh)
				schedule_remove(v, old, true);
		}
	} else {
		backing_name(e->backing, name);
		schedule_remove(v, name, e->in_meta);
	}
	ent_free(e);
}

int pf_unlink(pf_volume_t *v, const char *path, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (!e)
		ret = kiln_err_set(err, norm[0] ? -ENOENT : -EISDIR, "%s: no such file",
				   norm[0] ? norm : "/");
	else if (e->is_dir)
		ret = kiln_err_set(err, -EISDIR, "%s: is a directory", norm);
	else
		drop_file(v, e);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static bool dir_empty(pf_volume_t *v, const char *path)
{
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (strcmp(e->path, path) != 0 && under(e->path, path))
				return false;
	return true;
}

int pf_mkdir(pf_volume_t *v, const char *path, mode_t mode, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (!norm[0] || e) {
		ret = kiln_err_set(err, -EEXIST, "%s: exists", norm[0] ? norm : "/");
		goto out;
	}
	ret = check_parent(v, norm);
	if (ret) {
		kiln_err_set(err, ret, "%s: parent directory: %s", norm, kiln_strerror(ret));
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->path = strdup(norm))) {
		free(e);
		ret = -ENOMEM;
		goto out;
	}
	e->is_dir = true;
	e->mode = mode & 07777;
	e->mtime_ns = now_ns();
	ret = ent_insert(v, e);
	if (ret)
		ent_free(e);
	else
		v->ns_dirty = true;
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_rmdir(pf_volume_t *v, const char *path, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (!norm[0])
		ret = kiln_err_set(err, -EBUSY, "cannot remove the root directory");
	else if (!e)
		ret = kiln_err_set(err, -ENOENT, "%s: no such directory", norm);
	else if (!e->is_dir)
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", norm);
	else if (!dir_empty(v, norm))
		ret = kiln_err_set(err, -ENOTEMPTY, "%s: directory not empty", norm);
	else {
		ent_remove(v, e);
		ent_free(e);
		v->ns_dirty = true;
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static int set_path(struct pf_entry *e, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), rest = strlen(e->path) - fl;
	char *p;

	if (tl + rest >= PF_MAX_PATH)
		return -ENAMETOOLONG;
	p = malloc(tl + rest + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, to, tl);
	memcpy(p + tl, e->path + fl, rest + 1);
	free(e->path);
	e->path = p;
	return 0;
}

int pf_rename(pf_volume_t *v, const char *from, const char *to, struct kiln_err *err)
{
	char nfrom[PF_MAX_PATH], nto[PF_MAX_PATH];
	struct pf_entry *e, *t, **moved = NULL;
	size_t nmoved = 0;
	int ret = pf_path_normalize(to, nto);

	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", to);
	ret = ns_lookup(v, from, nfrom, &e, err);
	if (ret)
		return ret;
	if (!e) {
		ret = kiln_err_set(err, nfrom[0] ? -ENOENT : -EBUSY, "%s: no such file or "
				   "directory", nfrom[0] ? nfrom : "/");
		goto out;
	}
	if (strcmp(nfrom, nto) == 0)
		goto out;
	if (!nto[0] || (e->is_dir && under(nto, nfrom))) {
		ret = kiln_err_set(err, -EINVAL, "cannot move %s into itself", nfrom);
		goto out;
	}
	ret = check_parent(v, nto);
	if (ret) {
		kiln_err_set(err, ret, "%s: parent directory: %s", nto, kiln_strerror(ret));
		goto out;
	}
	t = ent_find(v, nto);
	if (t && e->is_dir && !t->is_dir) {
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", nto);
		goto out;
	}
	if (t && !e->is_dir && t->is_dir) {
		ret = kiln_err_set(err, -EISDIR, "%s: is a directory", nto);
		goto out;
	}
	if (t && t->is_dir && !dir_empty(v, nto)) {
		ret = kiln_err_set(err, -ENOTEMPTY, "%s: directory not empty", nto);
		goto out;
	}
	/* Collect e and everything under it; check regions. */
	moved = calloc(v->nentries, sizeof(*moved));
	if (!moved) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *x = v->buckets[b]; x; x = x->hnext)
			if (x == e || (e->is_dir && under(x->path, nfrom)))
				moved[nmoved++] = x;
	for (size_t i = 0; i < nmoved; i++) {
		char np[PF_MAX_PATH];
		size_t rest = strlen(moved[i]->path) - strlen(nfrom);

		if (moved[i]->is_dir)
			continue;
		if (strlen(nto) + rest >= PF_MAX_PATH) {
			ret = kiln_err_set(err, -ENAMETOOLONG, "%s: name too long", nto);
			goto out;
		}
		snprintf(np, sizeof(np), "%s%s", nto, moved[i]->path + strlen(nfrom));
		if (region_of(v, np) != moved[i]->kind) {
			ret = kiln_err_set(err, -EXDEV,
					   "%s: would move %s into another region kind",
					   nto, moved[i]->path);
			goto out;
		}
	}
	if (t) {
		if (t->is_dir) {
			ent_remove(v, t);
			ent_free(t);
		} else {
			drop_file(v, t);
		}
	}
	for (size_t i = 0; i < nmoved; i++) {
		ent_unlink(v, moved[i]);
		ret = set_path(moved[i], nfrom, nto);
		ent_link(v, moved[i]);
		if (ret) /* unreachable after the length check above, but keep state sane */
			goto out;
	}
	e->mtime_ns = now_ns();
	v->ns_dirty = true;
out:
	free(moved);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fsync_dir(pf_volume_t *v, struct kiln_err *err)
{
	return pf_volume_flush(v, err);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pf_names_free(char **names, size_t count)
{
	if (!names)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int pf_readdir(pf_volume_t *v, const char *path, char ***names, size_t *count,
	       struct kiln_err *err)
{
	char norm[PF_MAX_PATH], parent[PF_MAX_PATH];
	char **list = NULL;
	size_t n = 0;
	int ret = pf_path_normalize(path, norm);

	*names = NULL;
	*count = 0;
	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	pthread_mutex_lock(&v->lock);
	if (!dir_exists(v, norm)) {
		struct pf_entry *e = ent_find(v, norm);

		ret = kiln_err_set(err, e ? -ENOTDIR : -ENOENT, "%s: %s", norm,
				   e ? "not a directory" : "no such directory");
		goto out;
	}
	list = calloc(v->nentries + 1, sizeof(*list));
	if (!list) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext) {
			const char *base;

			parent_of(e->path, parent);
			if (strcmp(parent, norm) != 0)
				continue;
			base = strrchr(e->path, '/');
			base = base ? base + 1 : e->path;
			list[n] = strdup(base);
			if (!list[n]) {
				ret = -ENOMEM;
				goto out;
			}
			n++;
		}
	qsort(list, n, sizeof(*list), cmp_names);
	*names = list;
	*count = n;
	list = NULL;
out:
	pthread_mutex_unlock(&v->lock);
	pf_names_free(list, n);
	return ret;
}
