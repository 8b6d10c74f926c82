/* File handles: pf_open (create, load, O_TRUNC), close, and the read/write
 * calls of the public API, each under the volume lock. */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

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
	e->mtime_ns = pf__now_ns();
	e->kind = pf__region_of(v, path);
	if ((ret = kc_random(e->key, PF_KEY_SIZE)) || (ret = kc_random(e->file_id,
								       PF_FILE_ID_SIZE)) ||
	    (ret = kc_random(e->backing, PF_BACKING_ID_SIZE)))
		goto out;
	n = pf__node_new(v, e);
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
	pf__header_encode(&hdr, hbuf);
	ret = pf__st_pwrite_all(v, n->fh, hbuf, sizeof(hbuf), 0);
	if (ret) {
		v->so->close(v->sctx, n->fh);
		n->fh = NULL;
		pf__remove_backing(v, n->name);
		goto out;
	}
	n->phys_size = PF_HDR_SIZE;
	n->dirty = true;
	ret = pf__ent_insert(v, e);
	if (ret) {
		v->so->close(v->sctx, n->fh);
		n->fh = NULL;
		pf__remove_backing(v, n->name);
		goto out;
	}
	*out = n;
	return 0;
out:
	if (n) {
		n->entry = NULL;
		pf__node_free(n);
	}
	kiln_err_set(err, ret, "file %s: cannot create: %s", path, kiln_strerror(ret));
	pf__ent_free(e);
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
	ret = pf__path_normalize(path, norm);
	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	if (writable(flags) && v->read_only)
		return kiln_err_set(err, -EROFS, "%s: volume is open read-only", norm);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	e = norm[0] ? pf__ent_find(v, norm) : NULL;
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
		ret = pf__check_parent(v, norm);
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
		if (!n && (ret = pf__node_load(v, e, &n, err)))
			goto out;
		if ((flags & O_TRUNC) && writable(flags) && (ret = pf__set_size(n, 0, err)))
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
			pf__node_free(n);
			pf__schedule_remove(v, name, in_meta);
			if (fresh)
				pf__schedule_remove(v, old, true);
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
	if (!ret && f->node->entry)
		f->node->entry->mtime_ns = pf__now_ns();
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
		ret = pf__commit_locked(v, n, err);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}
