/* In-memory state of an open file (struct pf_node): creation, loading a
 * committed file (header check, journal recovery, tag list from the sidecar
 * or a scan, root check), and the tag sidecar "<id>.t". */
#include "pf/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int pf__ensure_tags(struct pf_node *n, uint64_t count)
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

void pf__tag_touch(struct pf_node *n, uint64_t k)
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
 * only cost the next open a full scan -- except something planted at the
 * sidecar's name, which is refused: -KILN_EUNSAFE, err naming it. */
int pf__sidecar_update(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t cnt = pf__nchunks(v, n->size), lo = n->t_lo, hi = n->t_hi;
	char name[PF_BNAME_MAX + 2];
	int ret;

	if (n->kind == PF_REGION_PLAIN || cnt < PF_SIDECAR_MIN_CHUNKS)
		return 0;
	if (!n->tfh) {
		snprintf(name, sizeof(name), "%s.t", n->name);
		ret = v->so->open(v->sctx, name, PF_SO_CREATE, &n->tfh);
		if (ret) {
			n->tfh = NULL;
			if (ret != -KILN_EUNSAFE)
				return 0;
			return kiln_err_set(err, ret, "file %s: tag list .kiln/%s: %s",
					    pf__node_path(n), name, kiln_strerror(ret));
		}
	}
	if (!n->t_valid) {
		lo = 0;
		hi = cnt;
	}
	if (hi > cnt)
		hi = cnt;
	n->t_valid = false;
	if (lo < hi && pf__st_pwrite_all(v, n->tfh, n->tags[lo], (hi - lo) * PF_TAG_SIZE,
				     lo * PF_TAG_SIZE) != 0)
		return 0;
	if (v->so->truncate(v->sctx, n->tfh, cnt * PF_TAG_SIZE) != 0)
		return 0;
	n->t_valid = true;
	n->t_lo = n->t_hi = 0;
	return 0;
}

/* On load: take the tag list from the sidecar if it hashes to the root (1;
 * 0 when not; -KILN_EUNSAFE naming it when something was planted there). */
static int sidecar_load(struct pf_node *n, const struct pf_inode *e, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint64_t cnt = pf__nchunks(v, e->size), size;
	uint8_t root[PF_ROOT_SIZE];
	char name[PF_BNAME_MAX + 2];
	void *fh = NULL;
	ssize_t r;
	int ret;

	if (n->kind == PF_REGION_PLAIN || cnt < PF_SIDECAR_MIN_CHUNKS)
		return 0;
	snprintf(name, sizeof(name), "%s.t", n->name);
	ret = v->so->open(v->sctx, name, v->read_only ? PF_SO_RDONLY : 0, &fh);
	if (ret == -KILN_EUNSAFE)
		return kiln_err_set(err, ret, "file %s: tag list .kiln/%s: %s", pf__node_path(n),
				    name, kiln_strerror(ret));
	if (ret)
		return 0;
	if (v->so->get_size(v->sctx, fh, &size) != 0 || size != cnt * PF_TAG_SIZE)
		goto no;
	r = v->so->pread(v->sctx, fh, n->tags, size, 0);
	if (r != (ssize_t)size || pf__compute_root(n, e->size, root) != 0 ||
	    !kiln_ct_equal(root, e->root, PF_ROOT_SIZE))
		goto no;
	if (v->read_only)
		v->so->close(v->sctx, fh);
	else
		n->tfh = fh;
	n->t_valid = true;
	return 1;
no:
	v->so->close(v->sctx, fh);
	return 0;
}

void pf__node_free(struct pf_node *n)
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
	if (n->inode)
		n->inode->node = NULL;
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

struct pf_node *pf__node_new(pf_volume_t *v, struct pf_inode *e)
{
	struct pf_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->vol = v;
	n->inode = e;
	n->kind = e->kind;
	memcpy(n->file_id, e->file_id, PF_FILE_ID_SIZE);
	pf__backing_name(e->backing, n->name);
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
 * journal, see pf__has_base), or be short or missing: its creation becomes durable
 * with the metadata only (pf_volume_publish, docs/fs.md). Either is repaired
 * in a read-write volume and ignored in a read-only one (n->fh may stay NULL). */
static int load_empty(struct pf_node *n, const struct pf_inode *e, struct kiln_err *err)
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
	if (phys >= PF_HDR_SIZE && pf__st_pread_pad(v, n->fh, buf, sizeof(buf), 0) == 0 &&
	    pf__header_decode(buf, sizeof(buf), &hdr) == 0 && hdr.kind == e->kind &&
	    hdr.chunk_size == v->cs && memcmp(hdr.file_id, e->file_id, PF_FILE_ID_SIZE) == 0)
		ok = true;
	if (!v->read_only && !ok) {
		memset(&hdr, 0, sizeof(hdr));
		hdr.version = PF_HDR_VERSION;
		hdr.kind = e->kind;
		hdr.chunk_size = v->cs;
		memcpy(hdr.file_id, e->file_id, PF_FILE_ID_SIZE);
		pf__header_encode(&hdr, buf);
		ret = v->so->truncate(v->sctx, n->fh, 0);
		if (!ret)
			ret = pf__st_pwrite_all(v, n->fh, buf, sizeof(buf), 0);
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
	ret = pf__compute_root(n, 0, root);
	if (ret)
		goto fail;
	if (n->kind != PF_REGION_PLAIN && !kiln_ct_equal(root, e->root, PF_ROOT_SIZE))
		return kiln_err_set(err, -KILN_EAUTH, "file %s: content does not match the "
				    "metadata (chunks swapped, replaced, truncated or from an "
				    "older version)", pf__node_path(n));
	return 0;
fail:
	return kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
}

/* Open a committed file: recover, then read all tags and check the root. */
int pf__node_load(pf_volume_t *v, struct pf_inode *e, struct pf_node **out,
		     struct kiln_err *err)
{
	struct pf_node *n = pf__node_new(v, e);
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
				   pf__node_path(n), n->name);
		goto out;
	}
	if (ret) {
		kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
		goto out;
	}
	ret = pf__st_pread_pad(v, n->fh, hdr_buf, sizeof(hdr_buf), 0);
	if (ret) {
		kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
		goto out;
	}
	ret = pf__header_decode(hdr_buf, sizeof(hdr_buf), &hdr);
	if (ret || hdr.kind != e->kind || hdr.chunk_size != v->cs ||
	    memcmp(hdr.file_id, e->file_id, PF_FILE_ID_SIZE) != 0) {
		ret = kiln_err_set(err, -KILN_EAUTH, "file %s: header is corrupt or belongs to "
				   "another file", pf__node_path(n));
		goto out;
	}
	ret = pf__journal_recover(n, e, &had_journal, err);
	if (ret)
		goto out;
	ret = v->so->get_size(v->sctx, n->fh, &phys);
	if (ret) {
		kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
		goto out;
	}
	expect = pf__expected_phys(v, e->size);
	if (phys > expect && !had_journal) {
		ret = kiln_err_set(err, -KILN_EAUTH, "file %s: backing file is %llu bytes, "
				   "expected at most %llu (extended or tampered)", pf__node_path(n),
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
	cnt = pf__nchunks(v, e->size);
	ret = pf__ensure_tags(n, cnt);
	if (ret)
		goto out;
	ret = sidecar_load(n, e, err);
	if (ret < 0)
		goto out;
	if (ret) {
		ret = 0;
		goto done;
	}
	/* No usable sidecar: read every tag, one pass over the file in large
	 * batches. */
	for (uint64_t i = 0; i < cnt;) {
		uint64_t j = i + v->batch < cnt ? i + v->batch : cnt;
		uint64_t start = pf__slot_off(v, i);
		uint64_t end = pf__slot_off(v, j - 1) + PF_SLOT_META;

		ret = pf__st_pread_pad(v, n->fh, v->iobuf, end - start, start);
		if (ret) {
			kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
			goto out;
		}
		for (uint64_t k = i; k < j; k++)
			memcpy(n->tags[k], v->iobuf + (k - i) * v->stride + PF_NONCE_SIZE,
			       PF_TAG_SIZE);
		i = j;
	}
	ret = pf__compute_root(n, e->size, root);
	if (ret)
		goto out;
	if (n->kind != PF_REGION_PLAIN && !kiln_ct_equal(root, e->root, PF_ROOT_SIZE)) {
		ret = kiln_err_set(err, -KILN_EAUTH, "file %s: content does not match the "
				   "metadata (chunks swapped, replaced, truncated or from an "
				   "older version)", pf__node_path(n));
		goto out;
	}
	/* Next time, open from the sidecar. */
	if (!v->read_only && (ret = pf__sidecar_update(n, err)))
		goto out;
done:
	*out = n;
	n = NULL;
out:
	pf__node_free(n);
	return ret;
}

uint64_t pf__node_blocks(pf_volume_t *v, const struct pf_inode *in)
{
	const struct pf_node *n = in->node;
	uint64_t size = n ? n->size : in->size, held = 0;

	/* What the slots take, holes excepted when their tags are at hand. */
	if (n && n->tags) {
		uint64_t cnt = pf__nchunks(v, size);

		for (uint64_t k = 0; k < cnt; k++)
			held += !pf__tag_is_zero(n->tags[k]);
		return (held * v->stride + 511) / 512;
	}
	return (pf__expected_phys(v, size) + 511) / 512;
}
