/* The tag tree of a file: its chunk tags in blocks of PF_TREE_FANOUT, a hash
 * per block, and the root over the block hashes (docs/fs.md "Tag tree").
 * Opening a file reads and checks only the block hashes; a block of tags is
 * read (from the sidecar "<id>.t", else from the chunk slots) and checked
 * against its hash the first time a chunk of it is touched. So open costs
 * 32 bytes per block (4 MiB of file at 4 KiB chunks), whatever the size.
 *
 * Node state: tblk[b] is block b's tags once loaded (NULL before); bhash[b]
 * the hash of block b in the committed state (nbase blocks, checked against
 * the committed root); bdirty[b] has BLK_CHANGED when a tag of b changed
 * since, BLK_SIDECAR when the sidecar's copy of b is older than the committed
 * state (a commit by a record defers the sidecars' rewrite). A block
 * past the committed state holds nothing committed: it loads as holes, and so
 * do chunks from base_cut on (cut by a truncate since the commit). */
#include "pf/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define BLK_CHANGED 1
#define BLK_SIDECAR 2

static const char g_blk_domain[16] = "kiln-pf-blk-v2";
static const char g_root_domain[16] = "kiln-pf-root-v2";
static const char g_flat_domain[16] = "kiln-pf-root-v1";

static uint64_t nblocks(pf_volume_t *v, uint64_t size)
{
	return (pf__nchunks(v, size) + PF_TREE_FANOUT - 1) / PF_TREE_FANOUT;
}

/* Tags of block b in a file of size bytes. */
static uint32_t blk_count(pf_volume_t *v, uint64_t size, uint64_t b)
{
	uint64_t n = pf__nchunks(v, size), start = b * PF_TREE_FANOUT;

	if (start >= n)
		return 0;
	return n - start >= PF_TREE_FANOUT ? PF_TREE_FANOUT : (uint32_t)(n - start);
}

static bool all_zero(const void *p, size_t size)
{
	const uint8_t *b = p;
	uint8_t acc = 0;

	for (size_t i = 0; i < size; i++)
		acc |= b[i];
	return acc == 0;
}

/* The hash of count tags of block b: zeros for a block of holes only. */
static int blk_hash(const struct pf_node *n, uint64_t b, const uint8_t (*tags)[PF_TAG_SIZE],
		    uint32_t count, uint8_t out[PF_BLK_HASH])
{
	uint8_t hdr[12];
	kc_hash_t *h;
	size_t len;
	int ret;

	if (all_zero(tags, (size_t)count * PF_TAG_SIZE)) {
		memset(out, 0, PF_BLK_HASH);
		return 0;
	}
	h = kc_hash_new("SHA256");
	if (!h)
		return -ENOMEM;
	pf__put_u64(hdr, b);
	pf__put_u32(hdr + 8, count);
	ret = kc_hash_update(h, g_blk_domain, sizeof(g_blk_domain));
	if (!ret)
		ret = kc_hash_update(h, n->file_id, PF_FILE_ID_SIZE);
	if (!ret)
		ret = kc_hash_update(h, hdr, sizeof(hdr));
	if (!ret)
		ret = kc_hash_update(h, tags, (size_t)count * PF_TAG_SIZE);
	if (!ret)
		ret = kc_hash_final(h, out, &len);
	kc_hash_free(h);
	return ret;
}

/* Root over m block hashes. */
static int root_of(const struct pf_node *n, uint64_t size, const uint8_t (*bh)[PF_BLK_HASH],
		   uint64_t m, uint8_t out[PF_ROOT_SIZE])
{
	uint8_t hdr[12];
	kc_hash_t *h = kc_hash_new("SHA256");
	size_t len;
	int ret;

	if (!h)
		return -ENOMEM;
	pf__put_u64(hdr, size);
	pf__put_u32(hdr + 8, PF_TREE_FANOUT);
	ret = kc_hash_update(h, g_root_domain, sizeof(g_root_domain));
	if (!ret)
		ret = kc_hash_update(h, n->file_id, PF_FILE_ID_SIZE);
	if (!ret)
		ret = kc_hash_update(h, hdr, sizeof(hdr));
	if (!ret && m)
		ret = kc_hash_update(h, bh, m * PF_BLK_HASH);
	if (!ret)
		ret = kc_hash_final(h, out, &len);
	kc_hash_free(h);
	return ret;
}

/* The format 1 root: one hash over the whole tag list (taken block by
 * block, which hashes the same bytes). */
static int flat_root(struct pf_node *n, uint64_t size, uint8_t out[PF_ROOT_SIZE])
{
	uint64_t cnt = pf__nchunks(n->vol, size);
	kc_hash_t *h = kc_hash_new("SHA256");
	uint8_t len[8];
	size_t out_size;
	int ret;

	if (!h)
		return -ENOMEM;
	pf__put_u64(len, size);
	ret = kc_hash_update(h, g_flat_domain, sizeof(g_flat_domain));
	if (!ret)
		ret = kc_hash_update(h, n->file_id, PF_FILE_ID_SIZE);
	if (!ret)
		ret = kc_hash_update(h, len, sizeof(len));
	for (uint64_t b = 0; !ret && b * PF_TREE_FANOUT < cnt; b++)
		ret = kc_hash_update(h, n->tblk[b], (size_t)blk_count(n->vol, size, b) *
				     PF_TAG_SIZE);
	if (!ret)
		ret = kc_hash_final(h, out, &out_size);
	kc_hash_free(h);
	return ret;
}

/* Room for m blocks in the per-block arrays. */
static int tree_reserve(struct pf_node *n, uint64_t m)
{
	uint64_t cap = n->blk_cap;

	if (m <= cap)
		return 0;
	cap = cap ? cap : 4;
	while (cap < m)
		cap *= 2;
	if (cap > SIZE_MAX / PF_BLK_HASH)
		return -EFBIG;
	{
		void *a = realloc(n->tblk, cap * sizeof(*n->tblk));

		if (!a)
			return -ENOMEM;
		n->tblk = a;
		a = realloc(n->bhash, cap * PF_BLK_HASH);
		if (!a)
			return -ENOMEM;
		n->bhash = a;
		a = realloc(n->bdirty, cap);
		if (!a)
			return -ENOMEM;
		n->bdirty = a;
	}
	memset(n->tblk + n->blk_cap, 0, (cap - n->blk_cap) * sizeof(*n->tblk));
	memset(n->bhash + n->blk_cap, 0, (cap - n->blk_cap) * PF_BLK_HASH);
	memset(n->bdirty + n->blk_cap, 0, cap - n->blk_cap);
	n->blk_cap = cap;
	return 0;
}

static struct pf_tblock *blk_alloc(void)
{
	return calloc(1, sizeof(struct pf_tblock));
}

void pf__tree_free(struct pf_node *n)
{
	for (uint64_t b = 0; b < n->blk_cap; b++)
		free(n->tblk[b]);
	free(n->tblk);
	free(n->bhash);
	free(n->bdirty);
	n->tblk = NULL;
	n->bhash = NULL;
	n->bdirty = NULL;
	n->blk_cap = n->nbase = 0;
}

void pf__tree_reset(struct pf_node *n)
{
	/* Nothing committed lives in this backing file: every block is new. */
	for (uint64_t b = 0; b < n->blk_cap; b++) {
		free(n->tblk[b]);
		n->tblk[b] = NULL;
		n->bdirty[b] = BLK_CHANGED;
	}
	if (n->bhash)
		memset(n->bhash, 0, n->blk_cap * PF_BLK_HASH);
	n->nbase = 0;
	n->base_count = 0;
	n->base_cut = 0;
	n->t_valid = false;
	n->side_due = false; /* the old backing file's sidecars go with it */
}

/* Read block b's count tags from the chunk slots (the authoritative copy). */
static int blk_scan(struct pf_node *n, uint64_t b, uint32_t count, struct pf_tblock *t)
{
	pf_volume_t *v = n->vol;
	uint64_t first = b * PF_TREE_FANOUT;

	for (uint64_t i = 0; i < count;) {
		uint64_t j = i + v->batch < count ? i + v->batch : count;
		uint64_t start = pf__slot_off(v, first + i);
		uint64_t end = pf__slot_off(v, first + j - 1) + PF_SLOT_META;
		int ret = pf__st_pread_pad(v, n->fh, v->iobuf, end - start, start);

		if (ret)
			return ret;
		for (uint64_t k = i; k < j; k++)
			memcpy(t->tags[k], v->iobuf + (k - i) * v->stride + PF_NONCE_SIZE,
			       PF_TAG_SIZE);
		i = j;
	}
	return 0;
}

/* Block b holds nothing committed (past the committed state, holes only, or
 * cut since the commit): when not loaded, it is all holes. */
static bool blk_holes(const struct pf_node *n, uint64_t b)
{
	return b >= n->nbase || all_zero(n->bhash[b], PF_BLK_HASH) ||
	       b * PF_TREE_FANOUT >= n->base_cut;
}

/* Load block b of the committed state and check it against its hash. */
static int blk_load(struct pf_node *n, uint64_t b, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint32_t count = b + 1 < n->nbase ? PF_TREE_FANOUT : n->base_count;
	struct pf_tblock *t = blk_alloc();
	uint8_t h[PF_BLK_HASH];
	int ret;

	if (!t)
		return -ENOMEM;
	if (blk_holes(n, b)) {
		n->tblk[b] = t;
		return 0;
	}
	/* The sidecar first: one read of 16 KiB. */
	if (n->tfh && pf__st_pread_pad(v, n->tfh, t->tags, (size_t)count * PF_TAG_SIZE,
				       b * PF_TREE_FANOUT * PF_TAG_SIZE) == 0 &&
	    blk_hash(n, b, (const uint8_t (*)[PF_TAG_SIZE])t->tags, count, h) == 0 &&
	    kiln_ct_equal(h, n->bhash[b], PF_BLK_HASH)) {
		n->tblk[b] = t;
		goto cut;
	}
	/* Stale, torn or altered sidecar: the slots decide. */
	memset(t, 0, sizeof(*t));
	ret = blk_scan(n, b, count, t);
	if (ret) {
		free(t);
		return kiln_err_set(err, ret, "file %s: read: %s", pf__node_path(n),
				    kiln_strerror(ret));
	}
	ret = blk_hash(n, b, (const uint8_t (*)[PF_TAG_SIZE])t->tags, count, h);
	if (ret || !kiln_ct_equal(h, n->bhash[b], PF_BLK_HASH)) {
		free(t);
		return kiln_err_set(err, ret ? ret : -KILN_EAUTH, "file %s: chunks %llu..%llu "
				    "do not match the metadata (tag block %llu swapped, replaced or "
				    "from an older version)", pf__node_path(n),
				    (unsigned long long)(b * PF_TREE_FANOUT),
				    (unsigned long long)(b * PF_TREE_FANOUT + count - 1),
				    (unsigned long long)b);
	}
	n->tblk[b] = t;
cut:
	/* Chunks cut since the commit read as holes when the file grows back. */
	for (uint64_t k = b * PF_TREE_FANOUT; k < b * PF_TREE_FANOUT + count; k++)
		if (k >= n->base_cut)
			memset(t->tags[k - b * PF_TREE_FANOUT], 0, PF_TAG_SIZE);
	return 0;
}

int pf__tags_need(struct pf_node *n, uint64_t lo, uint64_t hi, struct kiln_err *err)
{
	uint64_t bhi;
	int ret;

	if (lo >= hi)
		return 0;
	bhi = (hi - 1) / PF_TREE_FANOUT + 1;
	if ((ret = tree_reserve(n, bhi)))
		return ret;
	for (uint64_t b = lo / PF_TREE_FANOUT; b < bhi; b++)
		if (!n->tblk[b] && (ret = blk_load(n, b, err)))
			return ret;
	return 0;
}

void pf__tag_set(struct pf_node *n, uint64_t k, const uint8_t *tag)
{
	uint64_t b = k / PF_TREE_FANOUT;

	memcpy(n->tblk[b]->tags[k % PF_TREE_FANOUT], tag, PF_TAG_SIZE);
	n->bdirty[b] |= BLK_CHANGED;
}

bool pf__tag_hole(const struct pf_node *n, uint64_t k, bool *known)
{
	uint64_t b = k / PF_TREE_FANOUT;

	*known = true;
	if (b < n->blk_cap && n->tblk[b])
		return pf__tag_is_zero(n->tblk[b]->tags[k % PF_TREE_FANOUT]);
	if (blk_holes(n, b))
		return true;
	*known = false;
	return false;
}

int pf__tree_resize(struct pf_node *n, uint64_t old_size, uint64_t new_size,
		    struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t oc = pf__nchunks(v, old_size), nc = pf__nchunks(v, new_size);
	int ret;

	/* The block holding the old end and the new end change their counts:
	 * they are loaded (and so rehashed at the commit). */
	if (oc && (ret = pf__tags_need(n, oc - 1, oc, err)))
		return ret;
	if (nc && (ret = pf__tags_need(n, nc - 1, nc, err)))
		return ret;
	/* Cut tags read as holes if the file grows back: in the blocks loaded
	 * now, and (base_cut) in committed blocks loaded later. */
	for (uint64_t b = nc / PF_TREE_FANOUT; nc < oc && b * PF_TREE_FANOUT < oc; b++) {
		uint64_t from = nc > b * PF_TREE_FANOUT ? nc : b * PF_TREE_FANOUT;
		uint64_t to = oc < (b + 1) * PF_TREE_FANOUT ? oc : (b + 1) * PF_TREE_FANOUT;

		if (b >= n->blk_cap)
			break;
		if (n->tblk[b])
			memset(n->tblk[b]->tags[from % PF_TREE_FANOUT], 0,
			       (to - from) * PF_TAG_SIZE);
		n->bdirty[b] |= BLK_CHANGED;
	}
	if (nc < n->base_cut)
		n->base_cut = nc;
	if (nc != oc && nc)
		n->bdirty[(nc - 1) / PF_TREE_FANOUT] |= BLK_CHANGED;
	if (nc != oc && oc)
		n->bdirty[(oc - 1) / PF_TREE_FANOUT] |= BLK_CHANGED;
	return 0;
}

int pf__tree_root(struct pf_node *n, uint64_t size, uint8_t out[PF_ROOT_SIZE],
		  struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t m = nblocks(v, size);
	uint8_t (*bh)[PF_BLK_HASH] = NULL;
	int ret = 0;

	if (m && (ret = tree_reserve(n, m)))
		return ret;
	bh = malloc(m ? m * PF_BLK_HASH : 1);
	if (!bh)
		return -ENOMEM;
	for (uint64_t b = 0; b < m && !ret; b++) {
		uint32_t count = blk_count(v, size, b);
		uint32_t bcount = b + 1 < n->nbase ? PF_TREE_FANOUT :
				  b + 1 == n->nbase ? n->base_count : 0;

		if (b < n->nbase && !(n->bdirty[b] & BLK_CHANGED) && count == bcount) {
			memcpy(bh[b], n->bhash[b], PF_BLK_HASH);
			continue;
		}
		if (!n->tblk[b] && blk_holes(n, b)) {
			/* Never loaded and holes only: no need to hold 16 KiB of
			 * zeros for it (a sparse file's commit stays small). */
			memset(bh[b], 0, PF_BLK_HASH);
			continue;
		}
		if (!n->tblk[b] && (ret = pf__tags_need(n, b * PF_TREE_FANOUT,
							b * PF_TREE_FANOUT + 1, err)))
			break;
		ret = blk_hash(n, b, (const uint8_t (*)[PF_TAG_SIZE])n->tblk[b]->tags, count,
			       bh[b]);
	}
	if (!ret)
		ret = root_of(n, size, (const uint8_t (*)[PF_BLK_HASH])bh, m, out);
	if (!ret) {
		free(n->new_bhash);
		n->new_bhash = bh; /* becomes bhash when the commit lands */
		bh = NULL;
	}
	free(bh);
	return ret;
}

/* The sidecars: "<id>.t" the tags, "<id>.h" the block hashes, of the
 * committed state. Hints only (never synced): the root decides. A missing or
 * unreadable one costs a scan; something planted at the name (a symlink,
 * FIFO, directory: -KILN_EUNSAFE from the storage) is refused naming it. */
static int sidecar_open(struct pf_node *n, void **fh, const char *ext, bool create,
			struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	char name[PF_BNAME_MAX + 2];
	int ret;

	if (*fh)
		return 0;
	snprintf(name, sizeof(name), "%s.%s", n->name, ext);
	if (create && n->inode)
		n->inode->bare = false;
	ret = v->so->open(v->sctx, name, v->read_only ? PF_SO_RDONLY : create ? PF_SO_CREATE : 0,
			  fh);
	if (!ret)
		return 0;
	*fh = NULL;
	if (ret != -KILN_EUNSAFE)
		return 0;
	return kiln_err_set(err, ret, "file %s: %s .kiln/%s: %s", pf__node_path(n),
			    ext[0] == 't' ? "tag list" : "tag block hashes", name,
			    kiln_strerror(ret));
}

static void clear_dirty(struct pf_node *n)
{
	if (n->blk_cap) /* else bdirty is NULL */
		memset(n->bdirty, 0, n->blk_cap);
}

/* Bring the sidecars to the committed state of size bytes: the blocks
 * changed since they were last written (every loaded one when they were not
 * valid), then the block hashes. */
static int sidecars_write(struct pf_node *n, uint64_t size, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t m = nblocks(v, size), cnt = pf__nchunks(v, size);
	bool ok = true;
	int ret;

	n->side_due = false;
	ret = sidecar_open(n, &n->tfh, "t", true, err);
	if (!ret)
		ret = sidecar_open(n, &n->hfh, "h", true, err);
	if (ret || !n->tfh || !n->hfh) {
		n->t_valid = false;
		clear_dirty(n);
		return ret;
	}
	for (uint64_t b = 0; b < m && ok; b++) {
		if ((n->t_valid && !n->bdirty[b]) || !n->tblk[b])
			continue;
		ok = pf__st_pwrite_all(v, n->tfh, n->tblk[b]->tags,
				       (size_t)blk_count(v, size, b) * PF_TAG_SIZE,
				       b * PF_TREE_FANOUT * PF_TAG_SIZE) == 0;
	}
	/* A block never loaded is unchanged: the sidecar keeps it only when it
	 * was valid before (else its hash check fails and the slots decide). */
	ok = ok && pf__st_set_size(v, n->tfh, cnt * PF_TAG_SIZE) == 0 &&
	     pf__st_pwrite_all(v, n->hfh, n->bhash, m * PF_BLK_HASH, 0) == 0 &&
	     pf__st_set_size(v, n->hfh, m * PF_BLK_HASH) == 0;
	n->t_valid = ok;
	clear_dirty(n);
	return 0;
}

int pf__tree_committed(struct pf_node *n, uint64_t size, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t m = nblocks(v, size), cnt = pf__nchunks(v, size);

	if (n->new_bhash) {
		if (m)
			memcpy(n->bhash, n->new_bhash, m * PF_BLK_HASH);
		free(n->new_bhash);
		n->new_bhash = NULL;
	}
	n->nbase = m;
	n->base_count = m ? blk_count(v, size, m - 1) : 0;
	n->base_cut = cnt;
	if (n->kind == PF_REGION_PLAIN || cnt < PF_SIDECAR_MIN_CHUNKS || v->read_only) {
		n->side_due = false;
		clear_dirty(n);
		return 0;
	}
	/* A commit by a record: the sidecars wait for the checkpoint that
	 * spends the log, or for the node to go (pf__tree_sidecars), as hints
	 * may; the blocks changed stay marked for them. Four system calls less
	 * per commit (docs/fs.md "One-file commits"). */
	if (v->log_records) {
		for (uint64_t b = 0; b < n->blk_cap; b++)
			n->bdirty[b] = n->bdirty[b] ? BLK_SIDECAR : 0;
		n->side_due = true;
		n->side_size = size;
		return 0;
	}
	return sidecars_write(n, size, err);
}

int pf__tree_sidecars(struct pf_node *n, struct kiln_err *err)
{
	/* A file written since holds tags of no committed state: its own next
	 * commit writes them. */
	if (!n->side_due || n->dirty || n->failed || n->vol->read_only || !n->fh)
		return 0;
	return sidecars_write(n, n->side_size, err);
}

/* Load every block now (small files, format 1 roots, broken sidecars) from the
 * sidecar if it holds the whole list, else from the slots. */
static int load_all(struct pf_node *n, uint64_t size, bool use_sidecar)
{
	pf_volume_t *v = n->vol;
	uint64_t m = nblocks(v, size);
	int ret = tree_reserve(n, m);

	for (uint64_t b = 0; !ret && b < m; b++) {
		uint32_t count = blk_count(v, size, b);

		free(n->tblk[b]);
		n->tblk[b] = blk_alloc();
		if (!n->tblk[b])
			return -ENOMEM;
		if (use_sidecar && n->tfh)
			ret = pf__st_pread_pad(v, n->tfh, n->tblk[b]->tags,
					       (size_t)count * PF_TAG_SIZE,
					       b * PF_TREE_FANOUT * PF_TAG_SIZE);
		else
			ret = blk_scan(n, b, count, n->tblk[b]);
	}
	return ret;
}

/* With every block loaded: the committed hashes, and whether they make root. */
static int check_all(struct pf_node *n, const struct pf_inode *e, bool *match)
{
	uint64_t m = nblocks(n->vol, e->size);
	uint8_t root[PF_ROOT_SIZE];
	int ret = 0;

	for (uint64_t b = 0; b < m && !ret; b++)
		ret = blk_hash(n, b, (const uint8_t (*)[PF_TAG_SIZE])n->tblk[b]->tags,
			       blk_count(n->vol, e->size, b), n->bhash[b]);
	if (!ret)
		ret = e->root_fmt == PF_ROOT_FLAT ?
		      flat_root(n, e->size, root) :
		      root_of(n, e->size, (const uint8_t (*)[PF_BLK_HASH])n->bhash, m, root);
	*match = !ret && kiln_ct_equal(root, e->root, PF_ROOT_SIZE);
	return ret;
}

/* Does n's backing file hold the state e names, whole: every tag from the
 * slots, making e's root, and every chunk that is not a hole authentic under
 * them? Nothing is kept or repaired (pf__node_vouches). */
int pf__tree_vouch(struct pf_node *n, const struct pf_inode *e, bool *yes)
{
	pf_volume_t *v = n->vol;
	uint64_t cnt = pf__nchunks(v, e->size);
	bool match = false;
	int ret = load_all(n, e->size, false);

	*yes = false;
	if (!ret)
		ret = check_all(n, e, &match);
	if (ret || !match || n->kind == PF_REGION_PLAIN)
		return ret; /* a plain file's tags do not tell its contents apart */
	for (uint64_t i = 0; i < cnt;) {
		uint64_t j = i + v->batch < cnt ? i + v->batch : cnt;
		uint64_t start = pf__slot_off(v, i), end = pf__slot_off(v, j - 1) + v->stride;

		if ((ret = pf__st_pread_pad(v, n->fh, v->iobuf, end - start, start)))
			return ret;
		for (uint64_t k = i; k < j; k++)
			if (!pf__tag_is_zero(pf__tag(n, k)) &&
			    pf__open_chunk(n, k, v->iobuf + (k - i) * v->stride,
					   pf__chunk_len(v, e->size, k), v->pt, NULL) != 0)
				return 0;
		i = j;
	}
	*yes = true;
	return 0;
}

int pf__tree_load(struct pf_node *n, const struct pf_inode *e, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t m = nblocks(v, e->size), cnt = pf__nchunks(v, e->size), hsize = 0;
	bool match = false, sidecars = n->kind != PF_REGION_PLAIN &&
				       cnt >= PF_SIDECAR_MIN_CHUNKS;
	uint8_t root[PF_ROOT_SIZE];
	int ret = tree_reserve(n, m);

	if (ret)
		return ret;
	n->nbase = m;
	n->base_count = m ? blk_count(v, e->size, m - 1) : 0;
	n->base_cut = cnt;
	if (sidecars && ((ret = sidecar_open(n, &n->tfh, "t", false, err)) ||
			 (ret = sidecar_open(n, &n->hfh, "h", false, err))))
		return ret;
	/* The lazy way: the block hashes from "<id>.h", checked against the root. */
	if (e->root_fmt == PF_ROOT_TREE && n->hfh &&
	    v->so->get_size(v->sctx, n->hfh, &hsize) == 0 && hsize == m * PF_BLK_HASH &&
	    pf__st_pread_pad(v, n->hfh, n->bhash, m * PF_BLK_HASH, 0) == 0 &&
	    root_of(n, e->size, (const uint8_t (*)[PF_BLK_HASH])n->bhash, m, root) == 0 &&
	    kiln_ct_equal(root, e->root, PF_ROOT_SIZE)) {
		n->t_valid = true;
		return 0;
	}
	/* Else every tag: from the tag sidecar, then from the slots. */
	if (sidecars && n->tfh && v->so->get_size(v->sctx, n->tfh, &hsize) == 0 &&
	    hsize == cnt * PF_TAG_SIZE && load_all(n, e->size, true) == 0 &&
	    check_all(n, e, &match) == 0 && match) {
		n->t_valid = false; /* the hashes ("<id>.h") are written at the next commit */
		return 0;
	}
	ret = load_all(n, e->size, false);
	if (!ret)
		ret = check_all(n, e, &match);
	if (ret)
		return kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
	if (!match && n->kind != PF_REGION_PLAIN)
		return kiln_err_set(err, -KILN_EAUTH, "file %s: content does not match the "
				    "metadata (chunks swapped, replaced, truncated or from an "
				    "older version)", pf__node_path(n));
	/* Next time from the sidecars (they were missing, stale or altered). */
	n->t_valid = false;
	return v->read_only ? 0 : pf__tree_committed(n, e->size, err);
}

uint64_t pf__tree_held(const struct pf_node *n, uint64_t size)
{
	pf_volume_t *v = n->vol;
	uint64_t m = nblocks(v, size), held = 0;

	for (uint64_t b = 0; b < m; b++) {
		uint32_t count = blk_count(v, size, b);

		if (b < n->blk_cap && n->tblk[b]) {
			for (uint32_t i = 0; i < count; i++)
				held += !pf__tag_is_zero(n->tblk[b]->tags[i]);
		} else if (b < n->nbase && !all_zero(n->bhash[b], PF_BLK_HASH) &&
			   b * PF_TREE_FANOUT < n->base_cut) {
			held += count; /* not loaded: counted as stored */
		}
	}
	return held;
}
