/* The data path of one file: read and write chunks (merging partial chunks,
 * sealing whole ones on two threads when worth it, holding journaled
 * overwrites in the write-back) and changing its size. */
#include "pf/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

static const uint8_t g_zero_tag[PF_TAG_SIZE];

/* Plaintext of chunk i under size `size` into out[cs], zero-padded. */
static int load_plain(struct pf_node *n, uint64_t i, uint64_t size, uint8_t *out,
		      struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint32_t len = pf__chunk_len(v, size, i);
	int ret;

	memset(out, 0, v->cs);
	if (len == 0)
		return 0;
	if ((ret = pf__tags_need(n, i, i + 1, err)))
		return ret;
	if (pf__tag_is_zero(pf__tag(n, i)))
		return 0;
	if (pf__wb_find(n, i))
		return pf__open_chunk(n, i, pf__wb_find(n, i), len, out, err);
	ret = pf__st_pread_pad(v, n->fh, v->slot, PF_SLOT_META + len, pf__slot_off(v, i));
	if (ret)
		return kiln_err_set(err, ret, "file %s: read: %s", pf__node_path(n),
				    kiln_strerror(ret));
	return pf__open_chunk(n, i, v->slot, len, out, err);
}

/* Give chunk k (currently old_len bytes) the length new_len, zero-padded. */
static int reseal(struct pf_node *n, uint64_t k, uint64_t old_size, uint32_t new_len,
		  struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	int ret;

	if ((ret = pf__tags_need(n, k, k + 1, err)))
		return ret;
	if (pf__tag_is_zero(pf__tag(n, k)))
		return 0; /* holes have no length */
	ret = pf__wb_drain(n, err);
	if (!ret)
		ret = load_plain(n, k, old_size, v->pt, err);
	if (ret)
		return ret;
	ret = pf__journal_save(n, k, k + 1, true, err);
	if (ret)
		goto out;
	ret = pf__seal_chunk(n, k, v->pt, new_len, NULL, v->slot);
	if (ret)
		goto out;
	ret = pf__st_pwrite_all(v, n->fh, v->slot, PF_SLOT_META + new_len, pf__slot_off(v, k));
	if (ret) {
		n->failed = true;
		kiln_err_set(err, ret, "file %s: write: %s", pf__node_path(n), kiln_strerror(ret));
		goto out;
	}
	pf__tag_set(n, k, v->slot + PF_NONCE_SIZE);
	if (pf__slot_off(v, k) + PF_SLOT_META + new_len > n->phys_size)
		n->phys_size = pf__slot_off(v, k) + PF_SLOT_META + new_len;
out:
	kiln_wipe(v->pt, v->cs);
	return ret;
}

/* Chunks [from, to) become holes: zero tags (those past the current end are
 * zero already), and zero slots on disk where slots exist -- punched when the
 * storage can, else zero headers -- so that a scan of the slots (tree.c, when
 * the sidecar is stale) finds the holes. Committed slots are journaled first.
 * cut (the file grows over them): slots past the committed end hold nothing
 * to keep, and the backing file is cut there instead. */
static int make_holes(struct pf_node *n, uint64_t from, uint64_t to, bool cut,
		      struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t tags_to = to < pf__nchunks(v, n->size) ? to : pf__nchunks(v, n->size);
	uint64_t base_n = pf__has_base(n) ? pf__nchunks(v, n->base_size) : 0;
	uint64_t nphys, stop;
	int ret = 0;

	if (from < tags_to && (ret = pf__tags_need(n, from, tags_to, err)))
		return ret;
	/* Held slots first: they count in phys_size only once written. */
	if ((ret = pf__wb_drain(n, err)))
		return ret;
	nphys = n->phys_size > PF_HDR_SIZE ?
		(n->phys_size - PF_HDR_SIZE + v->stride - 1) / v->stride : 0;
	stop = to < nphys ? to : nphys;
	for (uint64_t k = from; k < tags_to; k++)
		if (!pf__tag_is_zero(pf__tag(n, k)))
			pf__tag_set(n, k, g_zero_tag);
	if (cut && stop > (from > base_n ? from : base_n)) {
		uint64_t at = from > base_n ? from : base_n;

		/* Nothing committed lives at or after this slot: cut it off. */
		ret = v->so->truncate(v->sctx, n->fh, pf__slot_off(v, at));
		if (ret)
			goto fail;
		n->phys_size = pf__slot_off(v, at);
		stop = at;
	}
	if (from >= stop)
		return 0;
	ret = pf__journal_save(n, from, stop, /*sync=*/true, err);
	if (ret)
		return ret;
	ret = v->so->punch ? v->so->punch(v->sctx, n->fh, pf__slot_off(v, from),
					   pf__slot_off(v, stop) - pf__slot_off(v, from)) :
			     -EOPNOTSUPP;
	if (ret == -EOPNOTSUPP || ret == -ENOSYS) {
		ret = 0;
		for (uint64_t k = from; k < stop && !ret; k++) {
			ret = pf__st_pwrite_all(v, n->fh, g_zero_tag, PF_NONCE_SIZE,
						pf__slot_off(v, k));
			if (!ret)
				ret = pf__st_pwrite_all(v, n->fh, g_zero_tag, PF_TAG_SIZE,
							pf__slot_off(v, k) + PF_NONCE_SIZE);
		}
	}
	if (ret)
		goto fail;
	return 0;
fail:
	n->failed = true;
	return kiln_err_set(err, ret, "file %s: write: %s", pf__node_path(n), kiln_strerror(ret));
}

/* Truncate to zero by starting a new backing file (see pf_node.fresh): an
 * O_TRUNC rewrite then costs no journal copy of the old content. */
static int switch_backing(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t id[PF_BACKING_ID_SIZE], hbuf[PF_HDR_SIZE];
	struct pf_header hdr = { 0 };
	char name[PF_BNAME_MAX];
	void *fh = NULL;
	int ret;

	ret = kc_random(id, sizeof(id));
	if (ret)
		return ret;
	pf__backing_name(id, name);
	ret = v->so->open(v->sctx, name, PF_SO_CREATE | PF_SO_EXCL, &fh);
	if (ret)
		goto fail;
	hdr.version = PF_HDR_VERSION;
	hdr.kind = n->kind;
	hdr.chunk_size = v->cs;
	memcpy(hdr.file_id, n->file_id, PF_FILE_ID_SIZE);
	pf__header_encode(&hdr, hbuf);
	ret = pf__st_pwrite_all(v, fh, hbuf, sizeof(hbuf), 0);
	if (ret) {
		v->so->close(v->sctx, fh);
		pf__remove_backing(v, name, true);
		goto fail;
	}
	v->so->close(v->sctx, n->fh);
	/* The old file's journals stay as they are (a live redo journal is
	 * needed until the commit switches over); removed with it. */
	if (n->jfh)
		v->so->close(v->sctx, n->jfh);
	if (n->jfh_alt)
		v->so->close(v->sctx, n->jfh_alt);
	if (n->tfh)
		v->so->close(v->sctx, n->tfh);
	if (n->hfh)
		v->so->close(v->sctx, n->hfh);
	n->jfh = n->jfh_alt = n->tfh = n->hfh = NULL;
	n->jlive = false;
	n->jpar = 0;
	n->fh = fh;
	memcpy(n->old_name, n->name, sizeof(n->old_name));
	memcpy(n->name, name, sizeof(n->name));
	memcpy(n->backing, id, sizeof(id));
	/* Held overwrites were for the old backing file, which must stay as
	 * committed: drop them. */
	n->wb_count = 0;
	n->j_unsynced = n->j_hdr = n->j_dir = false;
	n->fresh = true;
	n->gen_open = n->j_lazy = false;
	pf__tree_reset(n);
	n->phys_size = PF_HDR_SIZE;
	n->size = 0;
	n->dirty = true;
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: truncate: %s", pf__node_path(n),
			    kiln_strerror(ret));
}

int pf__set_size(struct pf_node *n, uint64_t new_size, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t old_size = n->size, old_n = pf__nchunks(v, old_size), new_n;
	int ret;

	if (new_size == old_size)
		return 0;
	if (new_size > PF_MAX_FILE_SIZE)
		return -EFBIG;
	if (new_size == 0 && pf__has_base(n) && n->inode->names)
		return switch_backing(n, err);
	ret = pf__wb_drain(n, err);
	if (ret)
		return ret;
	new_n = pf__nchunks(v, new_size);
	ret = pf__tree_resize(n, old_size, new_size, err);
	/* Open the generation even when no committed byte changes: the
	 * journal header then marks debris past the committed end as expected. */
	if (!ret)
		ret = pf__journal_begin(n, err);
	if (ret)
		return ret;
	n->dirty = true;
	if (new_size < old_size) {
		if (new_size % v->cs)
			ret = reseal(n, new_n - 1, old_size,
				     pf__chunk_len(v, new_size, new_n - 1), err);
	} else {
		if (old_size % v->cs)
			ret = reseal(n, old_n - 1, old_size,
				     pf__chunk_len(v, new_size, old_n - 1), err);
		if (!ret)
			ret = make_holes(n, old_n, new_n, /*cut=*/true, err);
	}
	if (ret)
		return ret;
	n->size = new_size;
	return 0;
}

ssize_t pf__node_write(struct pf_node *n, const uint8_t *buf, size_t size, uint64_t off,
			  struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t end, old_size = n->size, new_size, first, last, old_n, lo, hi;
	/* Write pipeline: while the helper writes one batch (wj) from one buffer,
	 * this thread seals the next batch into the other. At most one write is
	 * in flight, and it is finished before this call returns. */
	uint8_t *bufs[2] = { v->iobuf, NULL };
	size_t used[2] = { 0, 0 };
	struct pf_write_job wj;
	bool pending = false;
	int cur = 0, ret;

	if (n->failed)
		return kiln_err_set(err, -EIO, "file %s: earlier write failed; reopen the volume",
				    pf__node_path(n));
	if (size == 0)
		return 0;
	if (off > PF_MAX_FILE_SIZE || size > PF_MAX_FILE_SIZE - off)
		return -EFBIG;
	end = off + size;
	new_size = end > old_size ? end : old_size;
	first = off / v->cs;
	last = (end - 1) / v->cs;
	old_n = pf__nchunks(v, old_size);
	ret = new_size > old_size ? pf__tree_resize(n, old_size, new_size, err) : 0;
	if (!ret)
		ret = pf__tags_need(n, first, last + 1, err);
	if (!ret)
		ret = pf__journal_begin(n, err);
	if (ret)
		return ret;
	n->dirty = true;
	if (new_size > old_size) {
		/* The old last chunk grows (unless this write rewrites it anyway). */
		if (old_size % v->cs && old_n - 1 < first)
			ret = reseal(n, old_n - 1, old_size, pf__chunk_len(v, new_size, old_n - 1),
				     err);
		if (!ret && old_n < first)
			ret = make_holes(n, old_n, first, /*cut=*/true, err);
		if (ret)
			return ret;
	}
	for (uint64_t i = first; i <= last;) {
		uint64_t j = i + v->batch <= last + 1 ? i + v->batch : last + 1;
		uint64_t wlen, split = i;
		uint8_t *io = bufs[cur];

		if ((j - i) * v->stride > used[cur])
			used[cur] = (j - i) * v->stride;
		ret = pf__journal_save(n, i, j, /*sync=*/false, err);
		if (ret)
			goto out;
		/* The nonces of the whole batch at once rather than one call per
		 * chunk (it was ~28% of the CPU of a sequential write); a small
		 * batch's from the pool (pf__nonces: a fork never shares them). */
		if (n->kind != PF_REGION_PLAIN && (ret = pf__nonces(v->nonces, j - i)))
			goto out;
		/* Partial chunks (at most the first and the last of the write) are
		 * merged with the old plaintext here; whole chunks are sealed
		 * straight from buf by pf__seal_batch, on two threads when worth it. */
		lo = i;
		hi = j;
		for (uint64_t k = i; k < j; k++) {
			uint32_t lnew = pf__chunk_len(v, new_size, k);
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
			ret = pf__seal_chunk(n, k, v->pt, lnew, v->nonces + (k - i) * PF_NONCE_SIZE,
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
		    (ret = pf__seal_batch(n, buf, off, new_size, i, lo, hi, io,
						 pending ? &wj : NULL)))
			goto out;
		/* Committed chunks whose journal entries are not synced yet wait
		 * in the write-back; the rest (past the committed end) go now. */
		if (pf__has_base(n) && n->j_hdr) {
			split = j; /* nothing moves before the journal header is durable */
		} else if (pf__has_base(n) && n->j_unsynced) {
			uint64_t base_n = pf__nchunks(v, n->base_size);

			split = base_n < i ? i : base_n > j ? j : base_n;
		}
		for (uint64_t k = i; k < split; k++) {
			ret = pf__wb_hold(n, k, io + (k - i) * v->stride,
				      PF_SLOT_META + pf__chunk_len(v, new_size, k), err);
			if (ret) {
				n->failed = true;
				goto out;
			}
		}
		for (uint64_t k = i; k < j; k++)
			pf__tag_set(n, k, io + (k - i) * v->stride + PF_NONCE_SIZE);
		wlen = 0;
		if (split < j) {
			wlen = (j - 1 - split) * v->stride + PF_SLOT_META +
			       pf__chunk_len(v, new_size, j - 1);
			if (pending) { /* the previous batch's write, from the other buffer */
				pf__job_finish(v, &wj.base);
				pending = false;
				if ((ret = wj.ret))
					goto write_failed;
			}
			if (pf__write_async(n, &wj, io + (split - i) * v->stride, wlen,
					pf__slot_off(v, split))) {
				pending = true;
				bufs[1] = v->iobuf2;
				cur ^= 1;
			} else if ((ret = pf__st_pwrite_all(v, n->fh, io + (split - i) * v->stride,
							wlen, pf__slot_off(v, split)))) {
				goto write_failed;
			}
		}
		/* Counted as soon as the write is issued: a failure fails the file. */
		if (wlen && pf__slot_off(v, split) + wlen > n->phys_size)
			n->phys_size = pf__slot_off(v, split) + wlen;
		i = j;
	}
	if (pending) {
		pf__job_finish(v, &wj.base);
		pending = false;
		if ((ret = wj.ret))
			goto write_failed;
	}
	n->size = new_size;
	ret = 0;
	goto out;
write_failed:
	n->failed = true;
	kiln_err_set(err, ret, "file %s: write: %s", pf__node_path(n), kiln_strerror(ret));
out:
	if (pending) {
		pf__job_finish(v, &wj.base);
		if (wj.ret)
			n->failed = true;
	}
	/* The sealed slots of an encrypted file are what goes to disk: nothing
	 * secret to wipe (half of the volume server's wiping per MiB written
	 * back). Authenticated and plain slots hold plaintext. */
	if (n->kind != PF_REGION_ENCRYPTED) {
		kiln_wipe(bufs[0], used[0]);
		if (bufs[1])
			kiln_wipe(bufs[1], used[1]);
	}
	if (ret)
		return ret;
	pf__touch(n->inode, PF_TOUCH_M | PF_TOUCH_C);
	return (ssize_t)size;
}

/* Reads of at least this many bytes are streaming reads (read_slots). */
#define PF_DIRECT_MIN_BYTES (256 * 1024)

/* The volume's read buffer for read_slots, made at its first use. */
static bool rbuf_ready(pf_volume_t *v)
{
	void *p;

	if (v->rbuf)
		return true;
	v->rbatch = PF_RBATCH_BYTES / v->cs ? PF_RBATCH_BYTES / v->cs : 1;
	if (posix_memalign(&p, PF_DIO_ALIGN, v->rbatch * v->stride + 2 * PF_DIO_ALIGN))
		return false;
	v->rbuf = p;
	return true;
}

/* Bytes [start, end) of n's backing file into v->rbuf; *at is where start's
 * byte lands (past EOF: zeros). A range none of which is in the page cache
 * is read around it (pread_direct: the whole pages around the range in one
 * request, no copy out of the page cache, no page allocated per byte); a
 * cached range, or one the file system will not read that way, by pread. */
static int read_slots(struct pf_node *n, uint64_t start, uint64_t end, const uint8_t **at)
{
	pf_volume_t *v = n->vol;
	uint64_t a = start / PF_DIO_ALIGN * PF_DIO_ALIGN;
	uint64_t b = (end + PF_DIO_ALIGN - 1) / PF_DIO_ALIGN * PF_DIO_ALIGN;
	ssize_t r = v->so->pread_direct(v->sctx, n->fh, v->rbuf, b - a, a);

	*at = v->rbuf + (start - a);
	if (r < 0)
		return pf__st_pread_pad(v, n->fh, v->rbuf + (start - a), end - start, start);
	if ((uint64_t)r < end - a) { /* EOF inside the range */
		uint64_t z = (uint64_t)r > start - a ? (uint64_t)r : start - a;

		memset(v->rbuf + z, 0, end - a - z);
	}
	return 0;
}

ssize_t pf__node_read(struct pf_node *n, uint8_t *buf, size_t size, uint64_t off,
			 struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t end, first, last, batch = v->batch;
	bool direct = false;
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
	if (size >= PF_DIRECT_MIN_BYTES && v->so->pread_direct && rbuf_ready(v)) {
		direct = true;
		batch = v->rbatch;
	}
	for (uint64_t i = first; i <= last;) {
		uint64_t j = i + batch <= last + 1 ? i + batch : last + 1;
		uint64_t start = pf__slot_off(v, i);
		const uint8_t *slots = v->iobuf;
		uint64_t rend = pf__slot_off(v, j - 1) + PF_SLOT_META +
				pf__chunk_len(v, n->size, j - 1);
		bool holes = true;

		/* Tags first: a tampered tag block fails the reads that touch it. */
		if ((ret = pf__tags_need(n, i, j, err)))
			return ret;
		for (uint64_t k = i; k < j && holes; k++)
			holes = pf__tag_is_zero(pf__tag(n, k)) && !pf__wb_find(n, k);
		if (holes) { /* a sparse stretch: nothing to read */
			uint64_t rs = off > i * v->cs ? off : i * v->cs;
			uint64_t re = end < j * v->cs ? end : j * v->cs;

			memset(buf + (rs - off), 0, re - rs);
			i = j;
			continue;
		}
		ret = direct ? read_slots(n, start, rend, &slots) :
			       pf__st_pread_pad(v, n->fh, v->iobuf, rend - start, start);
		if (ret)
			return kiln_err_set(err, ret, "file %s: read: %s", pf__node_path(n),
					    kiln_strerror(ret));
		for (uint64_t k = i; k < j; k++) {
			uint32_t len = pf__chunk_len(v, n->size, k);
			uint64_t cstart = k * v->cs;
			uint64_t rs = off > cstart ? off : cstart;
			uint64_t re = end < cstart + len ? end : cstart + len;
			const uint8_t *slot = pf__wb_find(n, k);

			if (!slot)
				slot = slots + (k - i) * v->stride;
			if (pf__tag_is_zero(pf__tag(n, k))) {
				memset(buf + (rs - off), 0, re - rs);
				continue;
			}
			if (rs == cstart && re == cstart + len) {
				ret = pf__open_chunk(n, k, slot, len, buf + (rs - off), err);
			} else {
				ret = pf__open_chunk(n, k, slot, len, v->pt, err);
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

ssize_t pf__node_read_chunks(struct pf_node *n, uint64_t first, size_t count, uint8_t *buf,
			     int *results, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t nch = pf__nchunks(v, n->size);
	bool reported = false;

	if (first >= nch)
		return 0;
	if (count > nch - first)
		count = (size_t)(nch - first);
	for (size_t i = 0; i < count;) {
		uint64_t k = first + i;
		/* One batch of slots, never across a tag block (its own result). */
		uint64_t bend = (k / PF_TREE_FANOUT + 1) * PF_TREE_FANOUT;
		uint64_t j = k + v->batch < first + count ? k + v->batch : first + count;
		struct kiln_err e1 = { 0 };
		uint64_t start, rend;
		int ret;

		j = j < bend ? j : bend;
		ret = pf__tags_need(n, k, j, &e1);
		start = pf__slot_off(v, k);
		rend = pf__slot_off(v, j - 1) + PF_SLOT_META + pf__chunk_len(v, n->size, j - 1);
		if (!ret)
			ret = pf__st_pread_pad(v, n->fh, v->iobuf, rend - start, start);
		for (uint64_t c = k; c < j; c++) {
			uint8_t *out = buf + (c - first) * v->cs;
			uint32_t len = pf__chunk_len(v, n->size, c);
			const uint8_t *slot = pf__wb_find(n, c);
			int r = ret;

			memset(out, 0, v->cs);
			if (!r && !pf__tag_is_zero(pf__tag(n, c)))
				r = pf__open_chunk(n, c, slot ? slot : v->iobuf + (c - k) * v->stride,
						   len, out, &e1);
			results[c - first] = r;
			if (r) {
				memset(out, 0, v->cs);
				if (!reported && err) {
					*err = e1;
					if (!err->code)
						kiln_err_set(err, r, "file %s: chunk %llu: %s",
							     pf__node_path(n), (unsigned long long)c,
							     kiln_strerror(r));
				}
				reported = true;
			}
		}
		i += (size_t)(j - k);
	}
	return (ssize_t)count;
}

int pf__zero_range(struct pf_node *n, uint64_t a, uint64_t b, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t ka, kb;
	int ret;

	if (b > n->size)
		b = n->size;
	if (a >= b)
		return 0;
	ret = pf__journal_begin(n, err);
	if (ret)
		return ret;
	n->dirty = true;
	/* Whole chunks become holes (the last chunk is whole when the range
	 * reaches the end of the file); the partial ones at the edges get zeros
	 * written (at most one chunk each: v->zeros holds two). */
	ka = (a + v->cs - 1) / v->cs;
	kb = b == n->size ? pf__nchunks(v, b) : b / v->cs;
	if (ka >= kb)
		return pf__node_write(n, v->zeros, b - a, a, err) < 0 ? -EIO : 0;
	ret = make_holes(n, ka, kb, /*cut=*/false, err);
	if (!ret && a < ka * v->cs && pf__node_write(n, v->zeros, ka * v->cs - a, a, err) < 0)
		ret = -EIO;
	if (!ret && kb * v->cs < b &&
	    pf__node_write(n, v->zeros, b - kb * v->cs, kb * v->cs, err) < 0)
		ret = -EIO;
	return ret;
}

int pf__seek(struct pf_node *n, uint64_t off, bool data, uint64_t *out,
	     struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t nch = pf__nchunks(v, n->size);

	if (off >= n->size)
		return -ENXIO;
	for (uint64_t k = off / v->cs; k < nch;) {
		bool known, hole = pf__tag_hole(n, k, &known);
		int ret;

		if (!known) {
			if ((ret = pf__tags_need(n, k, k + 1, err)))
				return ret;
			hole = pf__tag_is_zero(pf__tag(n, k));
		}
		if (hole != data) {
			*out = k * v->cs > off ? k * v->cs : off;
			return 0;
		}
		/* A block of holes not loaded: skip it whole. */
		if (hole && !(k < n->blk_cap * PF_TREE_FANOUT && n->tblk[k / PF_TREE_FANOUT]))
			k = (k / PF_TREE_FANOUT + 1) * PF_TREE_FANOUT;
		else
			k++;
	}
	if (data)
		return -ENXIO;
	*out = n->size; /* the hole at the end of every file */
	return 0;
}
