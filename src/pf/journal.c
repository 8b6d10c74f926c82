/* Per-file undo journal "<id>.j" and the write-back of journaled overwrites:
 * before a slot of the committed state is overwritten its old bytes go to the
 * journal, which is synced before the new slot reaches the backing file;
 * opening a file after a crash puts the saved slots back (docs/fs.md "Crash
 * consistency"). */
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

/* Start a new generation: the journal names the committed state it restores. */
int pf__journal_begin(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t hdr[PF_JOURNAL_HDR_SIZE];
	char jname[PF_BNAME_MAX + 2];
	bool created = false;
	uint64_t bits;
	int ret;

	if (!pf__has_base(n) || n->gen_open)
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
	bits = pf__nchunks(v, n->base_size);
	free(n->jmap);
	n->jmap = calloc(bits / 8 + 1, 1);
	if (!n->jmap)
		return -ENOMEM;
	journal_header(n, PF_JOURNAL_MAGIC, hdr);
	/* Over the previous generation, in place: a journal that keeps its size
	 * is synced without a journal commit of the file system (fdatasync of
	 * its data alone), and what follows the new entries fails their check. */
	ret = pf__st_pwrite_all(v, n->jfh, hdr, sizeof(hdr), 0);
	if (ret)
		goto fail;
	memcpy(n->jsum, hdr + 64, 8);
	/* Synced with the first entries (journal_sync), before any data moves. */
	n->jend = sizeof(hdr);
	n->gen_open = true;
	n->j_unsynced = n->j_hdr = true;
	n->j_dir = n->j_dir || created;
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: journal: %s", pf__node_path(n), kiln_strerror(ret));
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
	int ret = v->so->sync(v->sctx, n->jfh);

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
		uint32_t len = pf__chunk_len(v, n->base_size, i);
		uint8_t sum[KC_SHA256_SIZE];
		size_t esize = 12 + PF_SLOT_META + len;

		if (n->jmap[i / 8] & (1u << (i % 8)))
			continue;
		pf__put_u64(v->jbuf, i);
		pf__put_u32(v->jbuf + 8, len);
		ret = pf__st_pread_pad(v, n->fh, v->jbuf + 12, PF_SLOT_META + len,
				       pf__slot_off(v, i));
		if (ret)
			goto fail;
		pf__journal_entry_sum(n->jsum, v->jbuf, esize, sum);
		memcpy(v->jbuf + esize, sum, 8);
		ret = pf__st_pwrite_all(v, n->jfh, v->jbuf, esize + 8, n->jend);
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

/* Sync the journal, then write every held slot in place. */
int pf__wb_drain(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	int ret = 0;

	if (n->j_unsynced && (ret = journal_sync(n)))
		goto fail;
	for (size_t i = 0; i < n->wb_count; i++) {
		uint64_t k = n->wb_idx[i];
		uint64_t len = n->wb_len[i];

		ret = pf__st_pwrite_all(v, n->fh, n->wb + i * v->stride, len, pf__slot_off(v, k));
		if (ret)
			goto fail;
		if (pf__slot_off(v, k) + len > n->phys_size)
			n->phys_size = pf__slot_off(v, k) + len;
	}
	n->wb_count = 0;
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

/* On load: if a journal for the committed state exists, put the saved slots
 * back and cut the file to the committed length. *had_journal tells whether
 * any journal file exists (then extra trailing bytes are expected debris). */
int pf__journal_recover(struct pf_node *n, const struct pf_inode *e, bool *had_journal,
			struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t hdr[PF_JOURNAL_HDR_SIZE], want[PF_JOURNAL_HDR_SIZE], zero[8] = { 0 };
	const uint8_t *bind;
	char jname[PF_BNAME_MAX + 2];
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
	memcpy(n->base_root, e->root, PF_ROOT_SIZE);
	n->base_size = e->size;
	ret = pf__st_pread_pad(v, jfh, hdr, sizeof(hdr), 0);
	if (ret)
		goto fail;
	/* A journal emptied after its commit (format 1: truncated; format 2: its
	 * magic zeroed) expects no debris; any other one may have left some. */
	*had_journal = jsize > 0 && memcmp(hdr, zero, sizeof(zero)) != 0;
	journal_header(n, memcmp(hdr, PF_JOURNAL_MAGIC_V1, 8) == 0 ? PF_JOURNAL_MAGIC_V1 :
			  PF_JOURNAL_MAGIC, want);
	bind = memcmp(hdr, PF_JOURNAL_MAGIC_V1, 8) == 0 ? NULL : want + 64;
	if (jsize < sizeof(hdr) || memcmp(hdr, want, sizeof(hdr)) != 0) {
		ret = 0; /* stale (the state it protected was superseded) or never completed */
		goto out;
	}
	if (v->read_only) {
		ret = kiln_err_set(err, -EROFS, "file %s: interrupted write needs recovery; "
				   "open the volume read-write", pf__node_path(n));
		goto out;
	}
	off = sizeof(hdr);
	while (off + 12 <= jsize) {
		uint8_t sum[KC_SHA256_SIZE];
		uint64_t i;
		uint32_t len;
		size_t esize;

		if ((ret = pf__st_pread_pad(v, jfh, v->jbuf, 12, off)))
			goto fail;
		i = pf__get_u64(v->jbuf);
		len = pf__get_u32(v->jbuf + 8);
		if (len > v->cs || i >= pf__nchunks(v, e->size) ||
		    len != pf__chunk_len(v, e->size, i))
			break; /* torn tail */
		esize = 12 + PF_SLOT_META + len;
		if (off + esize + 8 > jsize)
			break;
		if ((ret = pf__st_pread_pad(v, jfh, v->jbuf, esize + 8, off)))
			goto fail;
		pf__journal_entry_sum(bind, v->jbuf, esize, sum);
		if (memcmp(sum, v->jbuf + esize, 8) != 0)
			break; /* torn, or of an earlier generation */
		ret = pf__st_pwrite_all(v, n->fh, v->jbuf + 12, PF_SLOT_META + len,
					pf__slot_off(v, i));
		if (ret)
			goto fail;
		off += esize + 8;
	}
	ret = v->so->truncate(v->sctx, n->fh, pf__expected_phys(v, e->size));
	if (!ret)
		ret = v->so->sync(v->sctx, n->fh);
	/* The restored state equals the committed one: the journal is spent. */
	if (!ret)
		ret = spend(v, jfh, jsize, bind == NULL);
	if (!ret)
		ret = v->so->sync(v->sctx, jfh);
	if (ret)
		goto fail;
	goto out;
fail:
	kiln_err_set(err, ret, "file %s: journal recovery: %s", pf__node_path(n),
		     kiln_strerror(ret));
out:
	if (jfh)
		v->so->close(v->sctx, jfh);
	return ret;
}
