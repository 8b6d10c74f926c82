/* File handles: pf_open (create, load, O_TRUNC), close, and the read/write
 * calls of the public API, each under the volume lock. */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

static bool writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* Create regular file name in dir with a new backing file (name NULL: an
 * unnamed one, O_TMPFILE, of dir's region kind); the volume lock is held. */
static int create_file(pf_volume_t *v, struct pf_inode *dir, const char *name, mode_t mode,
		       const struct pf_cred *cred, struct pf_node **out, struct kiln_err *err)
{
	struct pf_header hdr = { 0 };
	uint8_t hbuf[PF_HDR_SIZE];
	struct pf_inode *in = NULL;
	struct pf_node *n = NULL;
	bool ns_dirty = v->ns_dirty;
	int ret;

	*out = NULL;
	ret = pf__new_inode(v, dir, name, PF_TYPE_REG, mode, cred, &in);
	if (ret)
		goto fail;
	in->kind = pf__region_at(v, dir, name);
	in->root_fmt = PF_ROOT_TREE;
	if ((ret = kc_random(in->key, PF_KEY_SIZE)) ||
	    (ret = kc_random(in->file_id, PF_FILE_ID_SIZE)) ||
	    (ret = kc_random(in->backing, PF_BACKING_ID_SIZE)))
		goto fail;
	in->bare = true;
	n = pf__node_new(v, in);
	if (!n) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = v->so->open(v->sctx, n->name, PF_SO_CREATE | PF_SO_EXCL, &n->fh);
	if (ret)
		goto fail;
	hdr.version = PF_HDR_VERSION;
	hdr.kind = in->kind;
	hdr.chunk_size = v->cs;
	memcpy(hdr.file_id, in->file_id, PF_FILE_ID_SIZE);
	pf__header_encode(&hdr, hbuf);
	ret = pf__st_pwrite_all(v, n->fh, hbuf, sizeof(hbuf), 0);
	if (ret) {
		v->so->close(v->sctx, n->fh);
		n->fh = NULL;
		pf__remove_backing(v, n->name, true);
		goto fail;
	}
	n->phys_size = PF_HDR_SIZE;
	n->dirty = true;
	/* A named file can be a commit log record's entry (pf__new_inode
	 * marked the namespace dirty for a checkpoint). */
	if (name) {
		v->ns_dirty = ns_dirty;
		pf__nsop_create(v, dir, in);
	}
	*out = n;
	return 0;
fail:
	kiln_err_set(err, ret, "file %s: cannot create: %s", name ? name : "(O_TMPFILE)",
		     kiln_strerror(ret));
	if (n)
		pf__node_free(n);
	if (in) {
		if (in->names)
			pf__dent_del(v, in->names);
		pf__inode_release(v, in); /* nothing committed: no backing file kept */
	}
	return ret;
}

void pf__node_drop(pf_volume_t *v, struct pf_node *n)
{
	char name[PF_BNAME_MAX];
	bool fresh = memcmp(n->backing, n->inode->backing, PF_BACKING_ID_SIZE) != 0;

	memcpy(name, n->name, sizeof(name));
	pf__node_free(n);
	/* A backing file started since the last commit (O_TRUNC) is named by no
	 * metadata: it goes now; the committed one waits for the next commit. */
	if (fresh)
		pf__remove_backing(v, name, true);
}

/* The checks of open(2) on the existing inode in, then its node (loaded if
 * needed) with O_TRUNC applied; the volume lock is held. what names it in
 * messages. */
static int open_existing(pf_volume_t *v, struct pf_inode *in, int flags,
			 const struct pf_cred *cred, const char *what, struct pf_node **out,
			 struct kiln_err *err)
{
	bool wr = writable(flags) || (flags & O_TRUNC);
	struct pf_node *n;
	int ret, mask = 0;

	if (in->type == PF_TYPE_LNK)
		return kiln_err_set(err, -ELOOP, "%s: is a symlink (O_NOFOLLOW)", what);
	if ((flags & O_DIRECTORY) && in->type != PF_TYPE_DIR)
		return kiln_err_set(err, -ENOTDIR, "%s: not a directory", what);
	if (in->type == PF_TYPE_DIR)
		return kiln_err_set(err, -EISDIR, "%s: is a directory", what);
	if (in->type != PF_TYPE_REG)
		return kiln_err_set(err, -ENXIO, "%s: is a %s node", what,
				    in->type == PF_TYPE_FIFO ? "FIFO" : "socket");
	if ((flags & O_ACCMODE) != O_WRONLY)
		mask |= PF_MAY_READ;
	if (wr)
		mask |= PF_MAY_WRITE;
	if ((ret = pf__may(cred, in, mask)))
		return kiln_err_set(err, ret, "%s: permission denied", what);
	n = in->node;
	if (!n && (ret = pf__node_load(v, in, &n, err)))
		return ret;
	if ((flags & O_TRUNC) && wr) {
		ret = n->failed ? -EIO : pf__set_size(n, 0, err);
		if (ret) {
			if (n->refs == 0 && !pf__node_needs_commit(n))
				pf__node_free(n);
			return ret;
		}
		pf__touch(in, PF_TOUCH_M | PF_TOUCH_C);
	}
	*out = n;
	return 0;
}

/* A new handle f on node n (the volume lock is held). */
static void attach(pf_volume_t *v, struct pf_file *f, struct pf_node *n, int flags)
{
	n->refs++;
	f->node = n;
	f->flags = flags;
	f->next = v->files;
	if (v->files)
		v->files->prev = f;
	v->files = f;
}

int pf_openat(pf_volume_t *v, pf_ino_t at, const char *path, int flags, mode_t mode,
	      const struct pf_cred *cred, pf_file_t **file, struct kiln_err *err)
{
	bool wr = writable(flags) || (flags & O_TRUNC);
	struct pf_inode *start, *in;
	struct pf_node *n = NULL;
	struct pf_walk w;
	struct pf_file *f;
	int ret;

	*file = NULL;
	if (wr && v->read_only)
		return kiln_err_set(err, -EROFS, "%s: volume is open read-only", path);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	start = pf__at(v, at, &ret);
	if (!start) {
		kiln_err_set(err, ret, "directory inode %llu: %s", (unsigned long long)at,
			     kiln_strerror(ret));
		goto out;
	}
	/* O_CREAT|O_EXCL never follows a symlink in the last component; with
	 * O_CREAT a trailing '/' is EISDIR before anything is followed. */
	ret = pf__walk_in(v, start, path, ((flags & O_CREAT) && path[0] &&
					  path[strlen(path) - 1] == '/') ? PF__WALK_PARENT :
			  ((flags & O_NOFOLLOW) || ((flags & O_CREAT) && (flags & O_EXCL))) ?
			  PF_AT_NOFOLLOW : 0, cred, &w, err);
	if (ret)
		goto out;
	in = w.inode;
	if ((flags & O_CREAT) && w.trailing_slash) {
		ret = kiln_err_set(err, -EISDIR, "%s: is a directory", path);
		goto out;
	}
	if (in && w.trailing_slash && in->type != PF_TYPE_DIR) {
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
		goto out;
	}
	if (!in) {
		if (!(flags & O_CREAT)) {
			ret = kiln_err_set(err, -ENOENT, "%s: no such file", path);
			goto out;
		}
		if (w.trailing_slash) {
			ret = kiln_err_set(err, -EISDIR, "%s: is a directory", path);
			goto out;
		}
		if (v->read_only) {
			ret = kiln_err_set(err, -EROFS, "%s: volume is open read-only", path);
			goto out;
		}
		if (!w.dir->names && w.dir != v->root) {
			ret = kiln_err_set(err, -ENOENT, "%s: parent directory was removed", path);
			goto out;
		}
		if ((ret = pf__may(cred, w.dir, PF_MAY_WRITE | PF_MAY_EXEC))) {
			kiln_err_set(err, ret, "%s: permission denied", path);
			goto out;
		}
		ret = create_file(v, w.dir, w.name, mode, cred, &n, err);
	} else if ((flags & O_CREAT) && (flags & O_EXCL)) {
		ret = kiln_err_set(err, -EEXIST, "%s: exists", path);
	} else {
		ret = open_existing(v, in, flags, cred, path, &n, err);
	}
	if (ret)
		goto out;
	attach(v, f, n, flags);
	*file = f;
	f = NULL;
out:
	pthread_mutex_unlock(&v->lock);
	free(f);
	return ret;
}

int pf_open_ino(pf_volume_t *v, pf_ino_t ino, int flags, const struct pf_cred *cred,
		pf_file_t **file, struct kiln_err *err)
{
	bool wr = writable(flags) || (flags & O_TRUNC);
	struct pf_inode *in;
	struct pf_node *n = NULL;
	struct pf_file *f;
	char what[40];
	int ret;

	*file = NULL;
	snprintf(what, sizeof(what), "inode %llu", (unsigned long long)ino);
	if (wr && v->read_only)
		return kiln_err_set(err, -EROFS, "%s: volume is open read-only", what);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	in = pf__ino_find(v, ino);
	ret = in ? open_existing(v, in, flags & ~O_CREAT, cred, what, &n, err) :
		   kiln_err_set(err, -ENOENT, "%s: no such inode", what);
	if (!ret) {
		attach(v, f, n, flags);
		*file = f;
		f = NULL;
	}
	pthread_mutex_unlock(&v->lock);
	free(f);
	return ret;
}

int pf_tmpfile(pf_volume_t *v, pf_ino_t dir, int flags, mode_t mode, const struct pf_cred *cred,
	       pf_file_t **file, struct kiln_err *err)
{
	struct pf_inode *d;
	struct pf_node *n = NULL;
	struct pf_file *f;
	int ret;

	*file = NULL;
	if (!writable(flags))
		return kiln_err_set(err, -EINVAL, "O_TMPFILE needs O_WRONLY or O_RDWR");
	if (v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	d = pf__at(v, dir, &ret);
	if (!d) {
		kiln_err_set(err, ret, "directory inode %llu: %s", (unsigned long long)dir,
			     kiln_strerror(ret));
		goto out;
	}
	if ((ret = pf__may(cred, d, PF_MAY_WRITE | PF_MAY_EXEC))) {
		kiln_err_set(err, ret, "O_TMPFILE in directory inode %llu: permission denied",
			     (unsigned long long)dir);
		goto out;
	}
	ret = create_file(v, d, NULL, mode, cred, &n, err);
	if (ret)
		goto out;
	/* Linkable by pf_link_ino unless O_EXCL, as Linux's I_LINKABLE. */
	n->inode->linkable = !(flags & O_EXCL);
	attach(v, f, n, flags & ~(O_CREAT | O_EXCL | O_TRUNC));
	*file = f;
	f = NULL;
out:
	pthread_mutex_unlock(&v->lock);
	free(f);
	return ret;
}

int pf_open(pf_volume_t *v, const char *path, int flags, mode_t mode, pf_file_t **file,
	    struct kiln_err *err)
{
	return pf_openat(v, PF_ROOT_INO, path, flags, mode, NULL, file, err);
}

int pf__inode_truncate(pf_volume_t *v, struct pf_inode *in, uint64_t size, struct kiln_err *err)
{
	struct pf_node *n = in->node;
	int ret;

	if (v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	if (!n && (ret = pf__node_load(v, in, &n, err)))
		return ret;
	ret = n->failed ? -EIO : pf__set_size(n, size, err);
	if (!ret)
		pf__touch(in, PF_TOUCH_M | PF_TOUCH_C);
	/* A loaded node stays while it has something to commit. */
	if (n->refs == 0 && !pf__node_needs_commit(n))
		pf__node_free(n);
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
		struct pf_inode *in = n->inode;

		if (!in->names) {
			/* The last handle of an unlinked file: it goes now. */
			pf__node_drop(v, n);
			pf__inode_release(v, in);
		} else if ((n->jlive || n->dplaced) && v->log_records > 0 &&
			   !pf__node_needs_commit(n)) {
			/* Its journal may vouch for the last record; or a data
			 * record placed slots the checkpoint must sync. */
			n->kept = true;
		} else if (!pf__node_needs_commit(n)) {
			pf__node_free(n);
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
	r = pf__node_read(f->node, buf, size, off, err);
	if (r > 0)
		pf__touch_atime(f->node->inode);
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
	r = pf__node_write(f->node, buf, size, off, err);
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
	r = pf__node_write(f->node, buf, size, f->node->size, err);
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
		ret = pf__set_size(f->node, size, err);
	if (!ret)
		pf__touch(f->node->inode, PF_TOUCH_M | PF_TOUCH_C);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fsync(pf_file_t *f, struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	int ret;

	pthread_mutex_lock(&v->lock);
	if (!n->inode->names) {
		/* Unlinked: nothing will ever read it back; just sync. */
		ret = v->so->sync(v->sctx, n->fh);
	} else {
		ret = pf__commit_locked(v, n, err);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

ssize_t pf_read_chunks(pf_file_t *f, uint64_t first, size_t count, void *buf, int *results,
		       struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	ssize_t r;

	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	pthread_mutex_lock(&v->lock);
	r = pf__node_read_chunks(f->node, first, count, buf, results, err);
	if (r > 0)
		pf__touch_atime(f->node->inode);
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* The hand-over of a streaming read or a sealed write (pf.h). */
static void stream_info(struct pf_node *n, struct pf_stream_info *out)
{
	memcpy(out->key, n->inode->key, PF_KEY_SIZE);
	memcpy(out->file_id, n->file_id, PF_FILE_ID_SIZE);
	out->kind = n->kind;
	out->slot0 = PF_HDR_SIZE;
	out->stride = n->vol->stride;
}

int pf_stream_key(pf_file_t *f, struct pf_stream_info *out, int *fd)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	int ret = -EOPNOTSUPP;

	pthread_mutex_lock(&v->lock);
	if (n->kind == PF_REGION_ENCRYPTED && v->so->direct_fd && !n->failed &&
	    (ret = v->so->direct_fd(v->sctx, n->fh)) >= 0) {
		*fd = ret;
		ret = 0;
		stream_info(n, out);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_stream_tags(pf_file_t *f, uint64_t first, size_t count, uint8_t *tags,
		   struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	uint64_t nch = pf__nchunks(v, n->size);
	int ret = -EINVAL;

	pthread_mutex_lock(&v->lock);
	if (first < nch && count <= nch - first && count &&
	    !(ret = pf__tags_need(n, first, first + count, err))) {
		for (uint64_t k = first; k < first + count; k++) {
			uint8_t *t = tags + (k - first) * PF_TAG_SIZE;

			if (pf__wb_find(n, k))
				memset(t, 0xff, PF_TAG_SIZE);
			else
				memcpy(t, pf__tag(n, k), PF_TAG_SIZE);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- sealed writes outside pf (pf.h, pf_stream_reserve) ---------------- */
int pf_stream_reserve(pf_file_t *f, uint64_t first, size_t count, struct pf_stream_info *info,
		      int *fd, struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	uint64_t end;
	int ret = -EAGAIN;

	if (!writable(f->flags))
		return -EBADF;
	if (count == 0 || first > PF_MAX_FILE_SIZE / v->cs ||
	    count > PF_MAX_FILE_SIZE / v->cs - first)
		return -EFBIG;
	pthread_mutex_lock(&v->lock);
	end = pf__slot_off(v, first + count - 1) + PF_SLOT_META + v->cs;
	if (n->kind != PF_REGION_ENCRYPTED || (info && !v->so->write_fd))
		ret = -EOPNOTSUPP;
	else if (n->failed)
		ret = -EIO;
	/* At the end, past the committed chunks (which would need the undo
	 * journal), no other reservation open. */
	else if (n->size != first * v->cs || n->sres_end ||
		 (pf__has_base(n) && first < pf__nchunks(v, n->base_size)))
		ret = -EAGAIN;
	else {
		/* The generation's journal header durable before any slot past
		 * the committed end moves (docs/fs.md "Crash consistency"). */
		ret = pf__journal_begin(n, err);
		if (!ret)
			ret = pf__wb_drain(n, err);
		if (!ret && info && (ret = v->so->write_fd(v->sctx, n->fh)) >= 0) {
			*fd = ret;
			ret = 0;
			stream_info(n, info);
		}
	}
	if (!ret) {
		n->dirty = true;
		if (end > n->phys_size)
			n->phys_size = end; /* a commit cuts what is never recorded */
		n->sres_first = first;
		n->sres_end = end;
		n->sres_fh = n->fh;
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_stream_record(pf_file_t *f, uint64_t first, size_t count, const uint8_t *tags,
		     struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	uint64_t new_size = (first + count) * v->cs;
	int ret = -EAGAIN;

	pthread_mutex_lock(&v->lock);
	/* Nothing moved since the reservation: the same backing file, not cut
	 * below the slots, the file still ending where they begin, the
	 * generation (and its durable header) the same. The slots may be the
	 * first of those reserved (the rest are cut as never recorded). */
	if (n->sres_end && n->sres_first == first && count &&
	    n->sres_end >= pf__slot_off(v, first + count - 1) + PF_SLOT_META + v->cs &&
	    n->sres_fh == n->fh && n->phys_size >= n->sres_end && n->size == first * v->cs &&
	    !n->failed && (!pf__has_base(n) || (n->gen_open && !n->j_hdr))) {
		ret = pf__tree_resize(n, n->size, new_size, err);
		if (!ret)
			ret = pf__tags_need(n, first, first + count, err);
		if (!ret) {
			for (size_t i = 0; i < count; i++)
				pf__tag_set(n, first + i, tags + i * PF_STREAM_TAG);
			n->size = new_size;
			n->dirty = true;
			n->sres_end = 0;
			n->sres_fh = NULL;
			pf__touch(n->inode, PF_TOUCH_M | PF_TOUCH_C);
			/* The slots' write-back started (as for pf's own writes),
			 * off the writer's thread: the sync finds them on their way. */
			if (v->so->writeback)
				(void)v->so->writeback(v->sctx, n->fh, pf__slot_off(v, first),
						       count * v->stride);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_stream_flush(pf_file_t *f)
{
	pf_volume_t *v = f->node->vol;
	int ret = 0;

	pthread_mutex_lock(&v->lock);
	if (v->so->flush_start && !f->node->failed)
		ret = v->so->flush_start(v->sctx, f->node->fh) == 1;
	pthread_mutex_unlock(&v->lock);
	return ret;
}

void pf_stream_cancel(pf_file_t *f)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	uint64_t at;

	pthread_mutex_lock(&v->lock);
	at = pf__slot_off(v, n->sres_first);
	/* Nothing of the file lives at or past the reserved slots: cut them
	 * now (else the next commit does, phys_size counting them). */
	if (n->sres_end && n->sres_fh == n->fh && n->size <= n->sres_first * v->cs &&
	    n->phys_size > at && v->so->truncate(v->sctx, n->fh, at) == 0)
		n->phys_size = at;
	n->sres_end = 0;
	n->sres_fh = NULL;
	pthread_mutex_unlock(&v->lock);
}

int pf_write_chunks(pf_file_t *f, uint64_t first, size_t count, const void *buf,
		    uint64_t new_size, struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	uint64_t off, len;
	int ret = 0;

	if (!writable(f->flags))
		return -EBADF;
	if (count == 0 || new_size > PF_MAX_FILE_SIZE || first >= pf__nchunks(v, new_size) ||
	    count > pf__nchunks(v, new_size) - first)
		return kiln_err_set(err, -EINVAL, "write chunks %llu+%zu: past the size %llu",
				    (unsigned long long)first, count,
				    (unsigned long long)new_size);
	off = first * v->cs;
	len = (first + count) * v->cs < new_size ? count * v->cs : new_size - off;
	pthread_mutex_lock(&v->lock);
	if (n->failed)
		ret = -EIO;
	/* Cut first when the file shrinks, so the write seals only whole chunks. */
	if (!ret && new_size < n->size)
		ret = pf__set_size(n, new_size, err);
	if (!ret && pf__node_write(n, buf, len, off, err) < 0)
		ret = err && err->code ? err->code : -EIO;
	if (!ret && new_size > n->size)
		ret = pf__set_size(n, new_size, err);
	if (!ret)
		pf__touch(n->inode, PF_TOUCH_M | PF_TOUCH_C);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static int seek(pf_file_t *f, uint64_t off, bool data, uint64_t *out, struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	int ret;

	pthread_mutex_lock(&v->lock);
	ret = pf__seek(f->node, off, data, out, err);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_seek_data(pf_file_t *f, uint64_t off, uint64_t *out, struct kiln_err *err)
{
	return seek(f, off, /*data=*/true, out, err);
}

int pf_seek_hole(pf_file_t *f, uint64_t off, uint64_t *out, struct kiln_err *err)
{
	return seek(f, off, /*data=*/false, out, err);
}

int pf_fallocate(pf_file_t *f, int mode, uint64_t off, uint64_t len, struct kiln_err *err)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;
	bool keep = mode & PF_FALLOC_KEEP_SIZE;
	uint64_t end;
	int ret = 0;

	if (!writable(f->flags))
		return -EBADF;
	if (mode & ~(PF_FALLOC_KEEP_SIZE | PF_FALLOC_PUNCH_HOLE | PF_FALLOC_ZERO_RANGE))
		return kiln_err_set(err, -EOPNOTSUPP, "fallocate mode 0x%x is not supported",
				    (unsigned)mode);
	if (((mode & PF_FALLOC_PUNCH_HOLE) && !keep) ||
	    ((mode & PF_FALLOC_PUNCH_HOLE) && (mode & PF_FALLOC_ZERO_RANGE)))
		return kiln_err_set(err, -EOPNOTSUPP, "fallocate: punching a hole needs "
				    "KEEP_SIZE, and not ZERO_RANGE");
	if (len == 0)
		return kiln_err_set(err, -EINVAL, "fallocate: length 0");
	if (off > PF_MAX_FILE_SIZE || len > PF_MAX_FILE_SIZE - off)
		return kiln_err_set(err, -EFBIG, "fallocate: past the largest file size");
	end = off + len;
	pthread_mutex_lock(&v->lock);
	if (n->failed)
		ret = -EIO;
	if (!ret && (mode & (PF_FALLOC_PUNCH_HOLE | PF_FALLOC_ZERO_RANGE)))
		ret = pf__zero_range(n, off, end, err);
	/* Nothing is reserved (a write later may meet ENOSPC); what lies past
	 * the end reads as zeros, which is what the caller asked for. */
	if (!ret && !keep && end > n->size)
		ret = pf__set_size(n, end, err);
	if (!ret)
		pf__touch(n->inode, PF_TOUCH_M | PF_TOUCH_C);
	pthread_mutex_unlock(&v->lock);
	return ret;
}
