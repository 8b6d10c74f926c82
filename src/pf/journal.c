/* Per-file journals "<id>.j"/"<id>.k" and the write-back of journaled
 * overwrites: before a slot of the committed state is overwritten its old
 * bytes go to the journal (undo), which is synced before the new slot reaches
 * the backing file; at a commit the held new slots go to the journal too
 * (redo), synced with the data in one phase, and reach the backing file after
 * the commit point. Opening a file after a crash replays what the committed
 * state needs (docs/fs.md "Crash consistency"). */
#include "pf/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

void pf__journal_header(const uint8_t root[PF_ROOT_SIZE], uint64_t size,
			const uint8_t file_id[PF_FILE_ID_SIZE], const char *magic,
			uint8_t hdr[PF_JOURNAL_HDR_SIZE])
{
	uint8_t sum[KC_SHA256_SIZE];

	memcpy(hdr, magic, 8);
	memcpy(hdr + 8, root, PF_ROOT_SIZE);
	pf__put_u64(hdr + 40, size);
	memcpy(hdr + 48, file_id, PF_FILE_ID_SIZE);
	kc_sha256(hdr, 64, sum);
	memcpy(hdr + 64, sum, 8);
}

static void journal_header(struct pf_node *n, const char *magic,
			   uint8_t hdr[PF_JOURNAL_HDR_SIZE])
{
	pf__journal_header(n->base_root, n->base_size, n->file_id, magic, hdr);
}

/* The 8-byte check of an entry: format 2 binds it to its generation (the
 * header's own check, hdr + 64), so entries of an earlier generation that
 * follow the current ones in the file are never taken for its own. */
void pf__journal_entry_sum(const uint8_t *hdr_sum, const uint8_t *entry, size_t size,
			   uint8_t out[KC_SHA256_SIZE])
{
	uint8_t bound[8 + KC_SHA256_SIZE];

	kc_sha256(entry, size, out);
	if (!hdr_sum)
		return;
	/* SHA-256(header check ‖ SHA-256(entry)) */
	memcpy(bound, hdr_sum, 8);
	memcpy(bound + 8, out, KC_SHA256_SIZE);
	kc_sha256(bound, sizeof(bound), out);
}

/* Append the entry in v->jbuf[0, esize) with its check (bound to this
 * generation) at the journal's end. */
/* The entry in v->jbuf[0, esize) gets its 8-byte sum after it: the size of
 * the framed entry. */
static size_t journal_frame(struct pf_node *n, size_t esize)
{
	uint8_t sum[KC_SHA256_SIZE];

	pf__journal_entry_sum(n->jsum, n->vol->jbuf, esize, sum);
	memcpy(n->vol->jbuf + esize, sum, 8);
	return esize + 8;
}

static int journal_append(struct pf_node *n, size_t esize)
{
	size_t size = journal_frame(n, esize);
	int ret = pf__st_pwrite_all(n->vol, n->jfh, n->vol->jbuf, size, n->jend);

	if (!ret)
		n->jend += size;
	return ret;
}

/* Start a new generation. Nothing is written yet (j_lazy): while the
 * generation is whole every new slot is held and no committed byte moves, so
 * a data record (docs/fs.md "Data records") needs neither its header nor its
 * undo entries; pf__journal_save only marks the chunks to save. The first
 * journal sync, or a commit's redo entries, writes them (journal_write). */
int pf__journal_begin(struct pf_node *n, struct kiln_err *err)
{
	uint64_t bits;

	(void)err;
	if (!pf__has_base(n) || n->gen_open)
		return 0;
	bits = pf__nchunks(n->vol, n->base_size);
	free(n->jmap);
	n->jmap = calloc(bits / 8 + 1, 1);
	if (!n->jmap)
		return -ENOMEM;
	n->gen_open = true;
	n->j_lazy = n->j_unsynced = n->j_hdr = true;
	return 0;
}

/* Append the undo entry of chunk i (its committed slot, read from the
 * backing file, where nothing of this generation moved before the journal's
 * first sync). */
static int save_chunk(struct pf_node *n, uint64_t i)
{
	pf_volume_t *v = n->vol;
	uint32_t len = pf__chunk_len(v, n->base_size, i);
	int ret;

	pf__put_u64(v->jbuf, i);
	pf__put_u32(v->jbuf + 8, len);
	ret = pf__st_pread_pad(v, n->fh, v->jbuf + 12, PF_SLOT_META + len, pf__slot_off(v, i));
	return ret ? ret : journal_append(n, 12 + PF_SLOT_META + len);
}

/* Write what a lazy generation deferred: the journal (opened, or created),
 * its header naming the committed state, and the undo entries of the chunks
 * pf__journal_save marked. Before its first sync: the header is synced with
 * the entries before any data moves (journal_sync). */
static int journal_write(struct pf_node *n)
{
	pf_volume_t *v = n->vol;
	uint8_t hdr[PF_JOURNAL_HDR_SIZE];
	char jname[PF_BNAME_MAX + 2];
	uint64_t base_n = pf__nchunks(v, n->base_size);
	int ret = 0;

	if (!n->j_lazy)
		return 0;
	if (!n->jfh) {
		snprintf(jname, sizeof(jname), "%s.%c", n->name, n->jpar ? 'k' : 'j');
		ret = v->so->open(v->sctx, jname, 0, &n->jfh);
		if (ret == -ENOENT) {
			if (n->inode)
				n->inode->bare = false;
			ret = v->so->open(v->sctx, jname, PF_SO_CREATE, &n->jfh);
			n->j_dir = n->j_dir || ret == 0;
		}
		if (ret)
			return ret;
	}
	journal_header(n, PF_JOURNAL_MAGIC, hdr);
	/* Over the previous generation, in place: a journal that keeps its size
	 * is synced without a journal commit of the file system (fdatasync of
	 * its data alone), and what follows the new entries fails their check. */
	ret = pf__st_pwrite_all(v, n->jfh, hdr, sizeof(hdr), 0);
	if (ret)
		return ret;
	memcpy(n->jsum, hdr + 64, 8);
	n->jend = sizeof(hdr);
	for (uint64_t i = 0; i < base_n && !ret; i++)
		if (n->jmap[i / 8] & (1u << (i % 8)))
			ret = save_chunk(n, i);
	/* Written whole, or (an error) written again from the header the next
	 * time: no marked chunk is left without its entry. */
	n->j_lazy = ret != 0;
	return ret;
}

/* Mark a journal spent (its state committed): its magic zeroed in place, or
 * (format 1, or a journal that grew past PF_JOURNAL_KEEP: the disk space of a
 * large rewrite is given back) truncated. */
static int spend(pf_volume_t *v, void *jfh, uint64_t size, bool v1)
{
	static const uint8_t zero[8];

	if (v1 || size > PF_JOURNAL_KEEP)
		return v->so->truncate(v->sctx, jfh, 0);
	return pf__st_pwrite_all(v, jfh, zero, sizeof(zero), 0);
}

int pf__journal_spend(struct pf_node *n)
{
	return spend(n->vol, n->jfh, n->jend, false);
}

/* Make the journal (header, entries, its directory entry) durable. */
static int journal_sync(struct pf_node *n)
{
	pf_volume_t *v = n->vol;
	int ret = journal_write(n);

	if (!ret)
		ret = v->so->sync(v->sctx, n->jfh);
	if (!ret && n->j_dir)
		ret = v->so->sync_dir(v->sctx);
	if (ret)
		return ret;
	n->j_unsynced = n->j_hdr = n->j_dir = false;
	return 0;
}

/* Save the committed slots of chunks [from, to) not yet saved, then sync. */
int pf__journal_save(struct pf_node *n, uint64_t from, uint64_t to, bool sync,
			struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t base_n = pf__nchunks(v, n->base_size);
	bool wrote = false;
	int ret = 0;

	if (!pf__has_base(n))
		return 0;
	ret = pf__journal_begin(n, err);
	if (ret)
		return ret;
	if (to > base_n)
		to = base_n;
	for (uint64_t i = from; i < to; i++) {
		if (n->jmap[i / 8] & (1u << (i % 8)))
			continue;
		/* Lazy: marked, written with the header (journal_write). */
		if (!n->j_lazy && (ret = save_chunk(n, i)))
			goto fail;
		n->jmap[i / 8] |= (uint8_t)(1u << (i % 8));
		wrote = true;
	}
	if (wrote)
		n->j_unsynced = true;
	if (sync && n->j_unsynced && (ret = journal_sync(n)))
		goto fail;
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: journal: %s", pf__node_path(n), kiln_strerror(ret));
}

/* The held (not yet written) slot of chunk k, or NULL; see pf_node.wb. */
const uint8_t *pf__wb_find(struct pf_node *n, uint64_t k)
{
	for (size_t i = 0; i < n->wb_count; i++)
		if (n->wb_idx[i] == k)
			return n->wb + i * n->vol->stride;
	return NULL;
}

/* Write every held slot in place (its journal entries are durable). Slots
 * of consecutive chunks held one after the other, each whole but the last,
 * lie next to each other in n->wb and in the file: one write for the run. */
static int wb_place(struct pf_node *n)
{
	pf_volume_t *v = n->vol;

	for (size_t i = 0, j; i < n->wb_count; i = j) {
		uint64_t k = n->wb_idx[i], len = n->wb_len[i];
		int ret;

		for (j = i + 1; j < n->wb_count && n->wb_idx[j] == n->wb_idx[j - 1] + 1 &&
				n->wb_len[j - 1] == v->stride; j++)
			len = (j - i) * v->stride + n->wb_len[j];
		ret = pf__st_pwrite_all(v, n->fh, n->wb + i * v->stride, len, pf__slot_off(v, k));
		if (ret)
			return ret;
		if (pf__slot_off(v, k) + len > n->phys_size)
			n->phys_size = pf__slot_off(v, k) + len;
	}
	n->wb_count = 0;
	return 0;
}

/* Sync the journal, then write every held slot in place. */
int pf__wb_drain(struct pf_node *n, struct kiln_err *err)
{
	int ret = 0;

	if (n->j_unsynced && (ret = journal_sync(n)))
		goto fail;
	if ((ret = wb_place(n)))
		goto fail;
	return 0;
fail:
	n->failed = true;
	return kiln_err_set(err, ret, "file %s: write: %s", pf__node_path(n), kiln_strerror(ret));
}

/* Hold slot (of chunk k) until the journal is synced. */
int pf__wb_hold(struct pf_node *n, uint64_t k, const uint8_t *slot, size_t len,
		   struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t *dst = (uint8_t *)pf__wb_find(n, k);
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
		if (n->wb_count == v->wb_cap && (ret = pf__wb_drain(n, err)))
			return ret;
		n->wb_idx[n->wb_count] = k;
		n->wb_len[n->wb_count] = (uint32_t)len;
		dst = n->wb + n->wb_count * v->stride;
		n->wb_count++;
	}
	memcpy(dst, slot, len);
	return 0;
}

/* The redo entries and the end record of a commit, written together: the
 * bytes journal_append would write entry by entry, in writes of up to
 * PF_JOURNAL_BATCH bytes (a WAL commit's few entries: one write instead of
 * one each). Without the buffer (out of memory), entry by entry. */
#define PF_JOURNAL_BATCH (256u << 10)

struct jbatch {
	uint8_t *buf;
	size_t cap, used;
};

static int jbatch_flush(struct pf_node *n, struct jbatch *b)
{
	int ret;

	if (!b->used)
		return 0;
	ret = pf__st_pwrite_all(n->vol, n->jfh, b->buf, b->used, n->jend);
	if (!ret)
		n->jend += b->used;
	b->used = 0;
	return ret;
}

/* journal_append of the entry in v->jbuf[0, esize), into b. */
static int jbatch_append(struct pf_node *n, struct jbatch *b, size_t esize)
{
	size_t size;
	int ret;

	if (!b->buf || esize + 8 > b->cap) {
		ret = jbatch_flush(n, b);
		return ret ? ret : journal_append(n, esize);
	}
	if (b->used + esize + 8 > b->cap && (ret = jbatch_flush(n, b)))
		return ret;
	size = journal_frame(n, esize);
	memcpy(b->buf + b->used, n->vol->jbuf, size);
	b->used += size;
	return 0;
}

/* Append the held slots as redo entries and the end record naming the new
 * state (root, size), bound to this generation like its undo entries. Nothing
 * is synced here: the commit syncs the journal with the data, and the held
 * slots move only after its commit point (pf__journal_placed). */
int pf__journal_end(struct pf_node *n, const uint8_t root[PF_ROOT_SIZE], uint64_t size,
		    bool whole)
{
	pf_volume_t *v = n->vol;
	uint64_t redo_off;
	struct jbatch b = { 0 };
	int ret = journal_write(n);

	if (ret)
		return ret;
	redo_off = n->jend;
	for (size_t i = 0; i < n->wb_count; i++)
		b.cap += 12 + n->wb_len[i] + 8;
	b.cap += PF_JOURNAL_END_SIZE + 8;
	if (b.cap > PF_JOURNAL_BATCH)
		b.cap = PF_JOURNAL_BATCH;
	b.buf = malloc(b.cap);
	for (size_t i = 0; i < n->wb_count; i++) {
		size_t esize = 12 + n->wb_len[i];

		pf__put_u64(v->jbuf, n->wb_idx[i]);
		pf__put_u32(v->jbuf + 8, (n->wb_len[i] - PF_SLOT_META) | PF_JOURNAL_REDO);
		memcpy(v->jbuf + 12, n->wb + i * v->stride, n->wb_len[i]);
		if ((ret = jbatch_append(n, &b, esize)))
			goto out;
	}
	pf__put_u64(v->jbuf, PF_JOURNAL_END);
	pf__put_u32(v->jbuf + 8, (uint32_t)n->wb_count);
	memcpy(v->jbuf + 12, root, PF_ROOT_SIZE);
	pf__put_u64(v->jbuf + 12 + PF_ROOT_SIZE, size);
	pf__put_u64(v->jbuf + 20 + PF_ROOT_SIZE, redo_off);
	pf__put_u64(v->jbuf + 28 + PF_ROOT_SIZE, whole ? PF_JOURNAL_END_WHOLE : 0);
	ret = jbatch_append(n, &b, PF_JOURNAL_END_SIZE);
	if (!ret)
		ret = jbatch_flush(n, &b);
out:
	if (b.buf)
		kiln_free_secret(b.buf, b.cap);
	return ret;
}

/* After the commit point: the held slots go in place without a sync (the
 * journal just synced holds them), and the next generation writes the other
 * journal, so this one stays whole until the next commit's data sync. */
int pf__journal_placed(struct pf_node *n)
{
	void *t;
	int ret;

	n->j_unsynced = n->j_hdr = n->j_dir = false;
	/* Nothing held (all of it written in place before, under the undo
	 * entries): no redo is needed; the caller spends the journal as in
	 * format 2, once debris past the end is cut. */
	if (n->wb_count == 0)
		return 0;
	if ((ret = wb_place(n)))
		return ret;
	t = n->jfh;
	n->jfh = n->jfh_alt;
	n->jfh_alt = t;
	n->jpar ^= 1;
	n->jlive = true;
	return 0;
}

/* After a data record's commit point: the held slots go in place without a
 * sync (the record holds them until the checkpoint syncs the file). The
 * journal took no part: its generation's header names a state no longer
 * committed (spent by the caller). */
int pf__journal_data_placed(struct pf_node *n)
{
	/* j_dir stays: a journal this generation created has a name no sync
	 * made durable; the next journal sync syncs the directory too. */
	n->j_unsynced = n->j_hdr = false;
	n->dplaced = true;
	return wb_place(n);
}

void pf__journal_close(struct pf_node *n)
{
	pf_volume_t *v = n->vol;
	uint64_t size;

	if (pf__node_gone(n)) {
		n->jlive = n->dplaced = false;
		return;
	}
	/* The slots placed after the last commit become durable; its redo
	 * entries are then spent (unsynced: replaying them again is harmless),
	 * so a volume at rest has no live journal. Not while the log holds
	 * records: the journal may vouch for the last one (a one-phase record
	 * is replayed only so, docs/fs.md "Commit log"); the checkpoint at the
	 * volume's close spends it, or the next recovery. */
	if (n->jlive && n->jfh_alt && n->fh && !n->failed && !v->read_only && !n->dirty &&
	    n->phys_size <= pf__expected_phys(v, n->size) &&
	    v->so->sync(v->sctx, n->fh) == 0 && v->log_records == 0 &&
	    v->so->get_size(v->sctx, n->jfh_alt, &size) == 0)
		(void)spend(v, n->jfh_alt, size, false);
	n->jlive = false;
	/* Slots a data record placed: the log holds them until a checkpoint,
	 * which syncs the nodes it finds; this one goes, so its sync is now. */
	if (n->dplaced && n->fh && !v->read_only &&
	    (n->failed || v->so->sync(v->sctx, n->fh) != 0))
		v->dplaced_lost = true;
	n->dplaced = false;
}

/* One journal file of a node being loaded, as found. */
struct jfile {
	void *fh;
	char name[PF_BNAME_MAX + 2];
	uint64_t size;
	uint8_t hdr[PF_JOURNAL_HDR_SIZE];
	int fmt;           /* 1-3, or 0: absent, spent or not a journal */
	bool names_base;   /* its header names the committed state: undo */
	bool ends_base;    /* its end record names the committed state: redo */
	bool has_end;      /* an end record (format 3) was found: */
	bool whole;        /* flagged PF_JOURNAL_END_WHOLE */
	uint8_t end_root[PF_ROOT_SIZE]; /* the state it names */
	uint64_t end_size;
	uint64_t redo_off; /* the end record's: first redo entry */
	uint32_t nredo;
};

/* Read the entry at off into v->jbuf and check it (bound by bind; NULL:
 * format 1). Returns its total size (entry and check), 0 when it fails its
 * check or does not fit (a torn tail, or another generation's), or -errno.
 * *idx and *len as recorded (len with its redo bit). */
static int64_t entry_at(pf_volume_t *v, const struct jfile *j, const uint8_t *bind,
			uint64_t off, uint64_t *idx, uint32_t *len)
{
	uint8_t sum[KC_SHA256_SIZE];
	size_t esize;
	int ret;

	if (off + 12 > j->size)
		return 0;
	if ((ret = pf__st_pread_pad(v, j->fh, v->jbuf, 12, off)))
		return ret;
	*idx = pf__get_u64(v->jbuf);
	*len = pf__get_u32(v->jbuf + 8);
	if (*idx == PF_JOURNAL_END) {
		if (j->fmt != 3)
			return 0;
		esize = PF_JOURNAL_END_SIZE;
	} else {
		if ((*len & ~PF_JOURNAL_REDO) > v->cs || ((*len & PF_JOURNAL_REDO) && j->fmt != 3))
			return 0;
		esize = 12 + PF_SLOT_META + (*len & ~PF_JOURNAL_REDO);
	}
	if (off + esize + 8 > j->size)
		return 0;
	if ((ret = pf__st_pread_pad(v, j->fh, v->jbuf, esize + 8, off)))
		return ret;
	pf__journal_entry_sum(bind, v->jbuf, esize, sum);
	if (memcmp(sum, v->jbuf + esize, 8) != 0)
		return 0;
	return (int64_t)(esize + 8);
}

/* Open and classify journal j (".j" or ".k") of backing file bname against
 * committed state e (NULL: none known). spent: a spent format 3 journal (its
 * magic zeroed, its header check intact) is read too, read-only: it can
 * vouch for a record (pf__journal_vouches), never restore anything. */
static int jfile_scan(pf_volume_t *v, const char *bname, const uint8_t file_id[PF_FILE_ID_SIZE],
		      const struct pf_inode *e, char par, bool spent, struct jfile *j)
{
	static const uint8_t zero[8];
	uint8_t want[PF_JOURNAL_HDR_SIZE];
	static const char *const magic[] = { PF_JOURNAL_MAGIC_V1, PF_JOURNAL_MAGIC_V2,
					     PF_JOURNAL_MAGIC };
	uint64_t off, idx;
	uint32_t len = 0;
	int64_t got;
	int ret;

	snprintf(j->name, sizeof(j->name), "%s.%c", bname, par);
	ret = v->so->open(v->sctx, j->name, v->read_only || spent ? PF_SO_RDONLY : 0, &j->fh);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if ((ret = v->so->get_size(v->sctx, j->fh, &j->size)))
		return ret;
	if ((ret = pf__st_pread_pad(v, j->fh, j->hdr, sizeof(j->hdr), 0)))
		return ret;
	for (int f = 0; f < 3; f++)
		if (j->size >= sizeof(j->hdr) && memcmp(j->hdr, magic[f], 8) == 0)
			j->fmt = f + 1;
	if (!j->fmt && spent && j->size >= sizeof(j->hdr) && memcmp(j->hdr, zero, 8) == 0) {
		pf__journal_header(j->hdr + 8, pf__get_u64(j->hdr + 40), j->hdr + 48,
				   PF_JOURNAL_MAGIC, want);
		if (memcmp(want + 64, j->hdr + 64, 8) == 0)
			j->fmt = 3;
	}
	if (!j->fmt)
		return 0;
	if (e) {
		pf__journal_header(e->root, e->size, file_id, magic[j->fmt - 1], want);
		j->names_base = memcmp(j->hdr, want, sizeof(want)) == 0;
	}
	if (j->fmt != 3 || memcmp(j->hdr + 48, file_id, PF_FILE_ID_SIZE) != 0)
		return 0;
	/* Find the end record: a commit's (whole only if the sync group was). */
	for (off = sizeof(j->hdr);; off += (uint64_t)got) {
		got = entry_at(v, j, j->hdr + 64, off, &idx, &len);
		if (got <= 0)
			return (int)got;
		if (idx == PF_JOURNAL_END)
			break;
	}
	j->redo_off = pf__get_u64(v->jbuf + 20 + PF_ROOT_SIZE);
	j->nredo = len;
	j->has_end = true;
	memcpy(j->end_root, v->jbuf + 12, PF_ROOT_SIZE);
	j->end_size = pf__get_u64(v->jbuf + 12 + PF_ROOT_SIZE);
	j->whole = (pf__get_u64(v->jbuf + 28 + PF_ROOT_SIZE) & PF_JOURNAL_END_WHOLE) != 0;
	j->ends_base = e && memcmp(j->end_root, e->root, PF_ROOT_SIZE) == 0 &&
		       j->end_size == e->size;
	return 0;
}

enum jmode {
	J_WRITE, /* put the entries in place */
	J_CHECK, /* compare them with the backing file */
	J_COUNT, /* only check that the redo entries are whole */
};

/* Walk j's entries: undo (from the header to the first redo entry or the
 * end) or redo (from redo_off, exactly nredo of them, each a chunk of the
 * state of the given size). Applied to n's backing file, or compared with it
 * (*same cleared at the first difference), or only counted (n may be NULL). */
static int jfile_apply(pf_volume_t *v, struct pf_node *n, uint64_t size, struct jfile *j,
		       bool redo, enum jmode mode, bool *same, struct kiln_err *err)
{
	const uint8_t *bind = j->fmt == 1 ? NULL : j->hdr + 64;
	uint64_t off = redo ? j->redo_off : sizeof(j->hdr), idx = 0, cnt = 0;
	uint32_t len = 0;
	int64_t got;
	int ret;

	for (;; off += (uint64_t)got) {
		got = entry_at(v, j, bind, off, &idx, &len);
		if (got < 0)
			return (int)got;
		if (got == 0 || idx == PF_JOURNAL_END || !(len & PF_JOURNAL_REDO) == redo)
			break;
		len &= ~PF_JOURNAL_REDO;
		/* Redo: counted below. Undo: past the committed end, a torn tail. */
		if (idx >= pf__nchunks(v, size) || len != pf__chunk_len(v, size, idx))
			break;
		cnt++;
		if (mode == J_COUNT)
			continue;
		if (mode == J_CHECK) {
			ret = pf__st_pread_pad(v, n->fh, v->slot, PF_SLOT_META + len,
					       pf__slot_off(v, idx));
			if (ret)
				return ret;
			if (memcmp(v->slot, v->jbuf + 12, PF_SLOT_META + len) != 0)
				*same = false;
			continue;
		}
		ret = pf__st_pwrite_all(v, n->fh, v->jbuf + 12, PF_SLOT_META + len,
					pf__slot_off(v, idx));
		if (ret)
			return ret;
	}
	if (redo && (cnt != j->nredo || idx != PF_JOURNAL_END || got == 0)) {
		if (!n)
			return -KILN_ECORRUPT;
		return kiln_err_set(err, -KILN_ECORRUPT, "file %s: journal %s: its end record "
				    "names the committed state but %llu of its %u redo entries "
				    "are whole (corrupt or tampered); nothing was changed",
				    pf__node_path(n), j->name, (unsigned long long)cnt, j->nredo);
	}
	return 0;
}

int pf__journal_vouches(pf_volume_t *v, const char *name, const uint8_t file_id[PF_FILE_ID_SIZE],
			const uint8_t root[PF_ROOT_SIZE], uint64_t size, bool *yes)
{
	int ret = 0;

	*yes = false;
	for (int k = 0; k < 2 && !ret && !*yes; k++) {
		struct jfile j = { 0 };

		ret = jfile_scan(v, name, file_id, NULL, k ? 'k' : 'j', true, &j);
		if (!ret && j.has_end && j.end_size == size &&
		    memcmp(j.end_root, root, PF_ROOT_SIZE) == 0) {
			ret = jfile_apply(v, NULL, size, &j, true, J_COUNT, NULL, NULL);
			*yes = ret == 0;
			if (ret == -KILN_ECORRUPT)
				ret = 0;
		}
		if (j.fh)
			v->so->close(v->sctx, j.fh);
	}
	return ret;
}

int pf__journal_names(pf_volume_t *v, const char *name, const uint8_t file_id[PF_FILE_ID_SIZE],
		      const uint8_t root[PF_ROOT_SIZE], uint64_t size, bool *yes)
{
	uint8_t want[PF_JOURNAL_HDR_SIZE];
	int ret = 0;

	*yes = false;
	/* Bytes 8.. with the check: the same for a live and a spent header. */
	pf__journal_header(root, size, file_id, PF_JOURNAL_MAGIC, want);
	for (int k = 0; k < 2 && !ret && !*yes; k++) {
		struct jfile j = { 0 };

		ret = jfile_scan(v, name, file_id, NULL, k ? 'k' : 'j', true, &j);
		*yes = !ret && j.fmt == 3 && memcmp(j.hdr + 8, want + 8, sizeof(want) - 8) == 0;
		if (j.fh)
			v->so->close(v->sctx, j.fh);
	}
	return ret;
}

/* On load: replay what the committed state needs from the journals (".j",
 * ".k"): the redo entries of the one whose end record names it (a crash after
 * the commit point, before its slots were durable in place), then the undo
 * entries of the one whose header names it (a crash during a generation, or
 * in its commit's sync group); where both touch a chunk they hold the same
 * bytes. A whole generation's redo (PF_JOURNAL_END_WHOLE) comes after that of
 * the previous commit, when the other journal's end record names the state
 * its header does: those slots went in place without a sync, and a one-phase
 * record is the commit point before the data sync that made them durable.
 * Then cut the file to the committed length, sync it, spend both (a journal
 * naming the committed state stays while the log holds records: it vouches
 * for a one-phase record, pf__journal_vouches). *had_journal tells whether any
 * live journal exists (then extra trailing bytes are expected debris). */
int pf__journal_recover(struct pf_node *n, const struct pf_inode *e, bool *had_journal,
			struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	struct jfile js[2] = { 0 };
	bool undo = false, redo = false, same = true;
	int ret = 0, prev = -1;

	*had_journal = false;
	memcpy(n->base_root, e->root, PF_ROOT_SIZE);
	n->base_size = e->size;
	for (int k = 0; k < 2 && !ret; k++) {
		ret = jfile_scan(v, n->name, n->file_id, e, k ? 'k' : 'j', false, &js[k]);
		*had_journal = *had_journal || js[k].fmt;
		undo = undo || js[k].names_base;
		redo = redo || js[k].ends_base;
	}
	if (ret)
		goto fail;
	if (!undo && !redo)
		goto out; /* stale (the state it protected was superseded) or never completed */
	if (v->read_only) {
		/* A running server placed its last commit's slots in the page
		 * cache: a live redo journal whose slots are all there is done. */
		for (int k = 0; k < 2 && !undo && !ret; k++)
			if (js[k].ends_base)
				ret = jfile_apply(v, n, e->size, &js[k], true, J_CHECK, &same, err);
		if (ret)
			goto out;
		if (undo || !same)
			ret = kiln_err_set(err, -EROFS, "file %s: interrupted write needs recovery; "
					   "open the volume read-write", pf__node_path(n));
		goto out;
	}
	for (int k = 0; k < 2; k++) {
		const struct jfile *o = &js[1 - k];

		if (js[k].ends_base && js[k].whole && o->has_end && !o->ends_base &&
		    o->end_size == pf__get_u64(js[k].hdr + 40) &&
		    memcmp(o->end_root, js[k].hdr + 8, PF_ROOT_SIZE) == 0)
			prev = 1 - k;
	}
	/* Check every redo journal whole before the first write. */
	if (prev >= 0)
		ret = jfile_apply(v, n, js[prev].end_size, &js[prev], true, J_CHECK, &same, err);
	for (int k = 0; k < 2 && !ret; k++)
		if (js[k].ends_base)
			ret = jfile_apply(v, n, e->size, &js[k], true, J_CHECK, &same, err);
	if (!ret && prev >= 0)
		ret = jfile_apply(v, n, js[prev].end_size, &js[prev], true, J_WRITE, NULL, err);
	for (int k = 0; k < 2 && !ret; k++)
		if (js[k].ends_base)
			ret = jfile_apply(v, n, e->size, &js[k], true, J_WRITE, NULL, err);
	for (int k = 0; k < 2 && !ret; k++)
		if (js[k].names_base)
			ret = jfile_apply(v, n, e->size, &js[k], false, J_WRITE, NULL, err);
	if (ret)
		goto out_err;
	ret = v->so->truncate(v->sctx, n->fh, pf__expected_phys(v, e->size));
	if (!ret)
		ret = v->so->sync(v->sctx, n->fh);
	/* The restored state equals the committed one: the journals are spent
	 * (but one the log's last record may need; the next generation writes
	 * the other). */
	for (int k = 0; k < 2 && !ret; k++) {
		if (!js[k].fmt)
			continue;
		if (js[k].ends_base && !js[k].names_base && v->log_records > 0 &&
		    n->kind != PF_REGION_PLAIN) {
			n->jpar = k == 0;
			continue;
		}
		ret = spend(v, js[k].fh, js[k].size, js[k].fmt == 1);
		if (!ret)
			ret = v->so->sync(v->sctx, js[k].fh);
	}
	if (ret)
		goto fail;
	goto out;
out_err:
	if (err && err->code)
		goto out;
fail:
	kiln_err_set(err, ret, "file %s: journal recovery: %s", pf__node_path(n),
		     kiln_strerror(ret));
out:
	for (int k = 0; k < 2; k++)
		if (js[k].fh)
			v->so->close(v->sctx, js[k].fh);
	return ret;
}
