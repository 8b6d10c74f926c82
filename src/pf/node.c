/* In-memory state of an open file (struct pf_node): creation, and loading a
 * committed file (header check, journal recovery, the tag tree's root check:
 * tree.c). */
#include "pf/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

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
	/* Sidecars a record's commit deferred (hints: a failure costs a scan). */
	if (n->inode && n->inode->names)
		(void)pf__tree_sidecars(n, NULL);
	if (n->inode)
		n->inode->node = NULL;
	pf__journal_close(n);
	if (n->fh)
		v->so->close(v->sctx, n->fh);
	if (n->jfh)
		v->so->close(v->sctx, n->jfh);
	if (n->jfh_alt)
		v->so->close(v->sctx, n->jfh_alt);
	if (n->tfh)
		v->so->close(v->sctx, n->tfh);
	if (n->hfh)
		v->so->close(v->sctx, n->hfh);
	kc_aead_free(n->aead);
	kc_aead_free(n->aead2);
	pf__tree_free(n);
	free(n->new_bhash);
	free(n->jmap);
	/* Sealed slots only (nonce, tag, ciphertext): nothing to wipe. Wiping
	 * the whole 1 MiB made the allocator's untouched pages real, 258 page
	 * faults at each close of a file that had held a few slots. */
	free(n->wb);
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
	uint8_t buf[PF_HDR_SIZE];
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
	return pf__tree_load(n, e, err); /* the root of no tags */
fail:
	return kiln_err_set(err, ret, "file %s: %s", pf__node_path(n), kiln_strerror(ret));
}

/* Open a committed file: recover, then check the root (tree.c). */
int pf__node_load(pf_volume_t *v, struct pf_inode *e, struct pf_node **out,
		     struct kiln_err *err)
{
	struct pf_node *n = pf__node_new(v, e);
	uint8_t hdr_buf[PF_HDR_SIZE];
	struct pf_header hdr;
	uint64_t phys, expect;
	bool had_journal;
	int ret;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	n->base_in_meta = n->was_in_meta = true;
	n->base_size = n->size = e->size;
	memcpy(n->base_root, e->root, PF_ROOT_SIZE);
	if (e->log_unplaced) {
		/* Read-only: a data record's slots are not in its backing file. */
		ret = kiln_err_set(err, -EROFS, "file %s: interrupted write needs recovery; "
				   "open the volume read-write", pf__node_path(n));
		goto out;
	}
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
	if (phys > expect && !had_journal && !e->log_data) {
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
	/* Only the block hashes now; each block of tags at its first use. */
	ret = pf__tree_load(n, e, err);
	if (ret)
		goto out;
done:
	*out = n;
	n = NULL;
out:
	pf__node_free(n);
	return ret;
}

int pf__node_vouches(pf_volume_t *v, const struct pf_inode *e, bool *yes)
{
	struct pf_inode tmp = *e;
	struct pf_node *n;
	uint8_t hdr_buf[PF_HDR_SIZE];
	struct pf_header hdr;
	int ret;

	*yes = e->size == 0; /* nothing of it is read: rule 7 of "Crash consistency" */
	if (*yes)
		return 0;
	tmp.node = NULL;
	n = pf__node_new(v, &tmp);
	if (!n)
		return -ENOMEM;
	ret = v->so->open(v->sctx, n->name, PF_SO_RDONLY, &n->fh);
	if (ret == -ENOENT) {
		ret = 0; /* its name was lost with the directory's sync */
		goto out;
	}
	if (!ret)
		ret = pf__st_pread_pad(v, n->fh, hdr_buf, sizeof(hdr_buf), 0);
	if (ret || pf__header_decode(hdr_buf, sizeof(hdr_buf), &hdr) != 0 ||
	    hdr.kind != e->kind || hdr.chunk_size != v->cs ||
	    memcmp(hdr.file_id, e->file_id, PF_FILE_ID_SIZE) != 0)
		goto out;
	ret = pf__tree_vouch(n, &tmp, yes);
out:
	pf__node_free(n);
	kiln_wipe(tmp.key, sizeof(tmp.key));
	return ret;
}

uint64_t pf__node_blocks(pf_volume_t *v, const struct pf_inode *in)
{
	const struct pf_node *n = in->node;

	/* What the slots take, holes excepted (a file not open: all of it). */
	if (n)
		return (pf__tree_held(n, n->size) * v->stride + 511) / 512;
	return (pf__expected_phys(v, in->size) + 511) / 512;
}
