/* kiln runtime, file shield: nodes. A node is one volume file's plaintext in
 * a memfd, shared by every open of that path in this process; "synced" is the
 * plaintext as of the last flush, used to find the chunks that changed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

struct rt_node *g_nodes;

/* The process umask (applied to modes of created files and directories, as
 * the kernel would). Called with signals blocked under the shield lock. */
mode_t rt__umask(void)
{
	long old = rt__raw(SYS_umask, 022);

	rt__raw(SYS_umask, old);
	return (mode_t)old;
}

/* ---- nodes --------------------------------------------------------------- */
void rt__say_pf(const char *mount, const char *rel, int code, struct kiln_err *err)
{
	rt__say("%s%s%s: %s", mount, rel[0] ? "/" : "", rel, kiln_err_msg(err, code));
}

struct rt_node *rt__node_find(struct rt_vol *vol, const char *rel)
{
	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->vol == vol && !n->unlinked && strcmp(n->rel, rel) == 0)
			return n;
	return NULL;
}

void rt__node_free(struct rt_node *n)
{
	struct rt_node **pp;

	rt__cache_take(n);
	for (pp = &g_nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	if (n->pf)
		pf_close(n->pf);
	rt__own_close(n->memfd);
	kiln_free_secret(n->synced, n->synced_size);
	free(n->rel);
	free(n);
}

void rt__node_reopen_all(struct rt_vol *v)
{
	struct rt_node *next;

	for (struct rt_node *n = g_nodes; n; n = next) {
		struct kiln_err err = { 0 };

		next = n->next;
		if (n->vol != v || n->unlinked)
			continue;
		if (n->refs == 0 && (n->cached || !n->writable)) {
			/* Another process changed the volume: cached copies may be stale. */
			rt__node_free(n);
			continue;
		}
		/* Closed but not cached: changes kept for the exit flush (on-exit, or
		 * a flush that failed). They are reopened below like an open file's,
		 * not dropped. */
		if (!n->writable) {
			/* Still open here, never written: the open fds keep this copy
			 * (a snapshot, like a file replaced by rename); the next open
			 * loads the file from the volume again, and this copy is
			 * freed, not cached, when its last fd closes. */
			n->unlinked = true;
			continue;
		}
		if (pf_open(v->pf, n->rel, O_RDWR, 0600, &n->pf, &err)) {
			/* Removed or replaced by another process: this process keeps
			 * its copy (like an unlinked file), which is no longer saved. */
			n->unlinked = true;
			n->pf = NULL;
		}
	}
}

/* Write the chunks that changed since the last flush back through pf; commit
 * (pf_fsync: data and metadata, freshness tag) when asked. */
int rt__node_flush(struct rt_node *n, bool commit)
{
	struct kiln_err err = { 0 };
	struct stat st;
	uint8_t *map = NULL;
	uint64_t size, chunk = n->vol->chunk;
	bool changed = false;
	int ret = 0;

	if (n->unlinked || !n->pf || !n->writable)
		return 0;
	ret = (int)rt__raw(SYS_fstat, n->memfd, &st);
	if (ret < 0)
		return ret;
	size = (uint64_t)st.st_size;
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED, n->memfd, 0);
		if (map == MAP_FAILED)
			return -errno;
	}
	if (size > n->synced_size) {
		uint8_t *p = realloc(n->synced, size);

		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		memset(p + n->synced_size, 0, size - n->synced_size);
		n->synced = p;
	}
	for (uint64_t off = 0; off < size;) {
		uint64_t end = off;

		/* Collect a run of changed chunks and write it in one call. */
		while (end < size) {
			uint64_t len = size - end < chunk ? size - end : chunk;

			if (end + len <= n->synced_size &&
			    memcmp(map + end, n->synced + end, len) == 0)
				break;
			end += len;
		}
		if (end > off) {
			ssize_t w = pf_pwrite(n->pf, map + off, end - off, off, &err);

			if (w < 0) {
				ret = (int)w;
				goto out;
			}
			memcpy(n->synced + off, map + off, end - off);
			changed = true;
			off = end;
			continue;
		}
		off += chunk;
	}
	if (size < n->synced_size) {
		ret = pf_ftruncate(n->pf, size, &err);
		if (ret)
			goto out;
		changed = true;
	}
	if (size != n->synced_size) {
		/* Shrinking keeps the allocation; only the size matters. */
		if (size < n->synced_size)
			kiln_wipe(n->synced + size, n->synced_size - size);
		n->synced_size = size;
	}
	/* A write that left the bytes as they were still modified the file. The
	 * mtime goes in before the commit so that one metadata write carries both. */
	if (st.st_mtim.tv_sec != n->mtime.tv_sec || st.st_mtim.tv_nsec != n->mtime.tv_nsec) {
		ret = pf_set_mtime(n->vol->pf, n->rel,
				   (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, &err);
		if (ret)
			goto out;
		n->mtime = st.st_mtim;
	}
	if (commit && changed)
		ret = pf_fsync(n->pf, &err);
out:
	if (map)
		munmap(map, size);
	if (ret)
		rt__say_pf(n->vol->cfg->mount, n->rel, ret, &err);
	return ret;
}

/* The copy of the plaintext as of the last flush, dropped while a never
 * written file is cached (the memfd holds the same bytes): made again before
 * the file can be written. */
int rt__node_keep_synced(struct rt_node *n)
{
	if (n->synced || !n->synced_size)
		return 0;
	n->synced = malloc(n->synced_size);
	if (!n->synced)
		return -ENOMEM;
	for (uint64_t off = 0; off < n->synced_size;) {
		long r = rt__raw(SYS_pread64, n->memfd, n->synced + off, n->synced_size - off, off);

		if (r <= 0) {
			kiln_free_secret(n->synced, n->synced_size);
			n->synced = NULL;
			return r < 0 ? (int)r : -EIO;
		}
		off += (uint64_t)r;
	}
	return 0;
}

int rt__node_open(struct rt_vol *vol, const char *rel, int flags, mode_t mode,
		  struct rt_node **out)
{
	struct kiln_err err = { 0 };
	struct rt_node *n = calloc(1, sizeof(*n));
	uint64_t size = 0;
	int ret;
	long fd;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	n->memfd = -1;
	n->vol = vol;
	n->rel = strdup(rel);
	if (!n->rel) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = pf_open(vol->pf, rel, O_RDWR | (flags & (O_CREAT | O_EXCL | O_TRUNC)),
		      mode & 07777 & ~rt__umask(),
		      &n->pf, &err);
	if (ret)
		goto fail_say;
	ret = pf_get_size(n->pf, &size);
	if (ret)
		goto fail_say;
	{
		struct pf_stat ps;

		n->mode = pf_fstat(n->pf, &ps) == 0 ? ps.mode : 0600;
	}
	fd = rt__raw(SYS_memfd_create, "kiln-plaintext", MFD_CLOEXEC);
	if (fd < 0) {
		ret = (int)fd;
		goto fail;
	}
	n->memfd = rt__own_fd((int)fd);
	if (n->memfd < 0) {
		ret = n->memfd;
		goto fail;
	}
	if (size) {
		n->synced = malloc(size);
		if (!n->synced) {
			ret = -ENOMEM;
			goto fail;
		}
		n->synced_size = size;
		for (uint64_t off = 0; off < size;) {
			ssize_t r = pf_pread(n->pf, n->synced + off, size - off, off, &err);

			if (r < 0) {
				ret = (int)r;
				goto fail_say;
			}
			if (r == 0)
				break;
			off += (uint64_t)r;
		}
		for (uint64_t off = 0; off < size;) {
			long w = rt__raw(SYS_pwrite64, n->memfd, n->synced + off, size - off, off);

			if (w < 0) {
				ret = (int)w;
				goto fail;
			}
			off += (uint64_t)w;
		}
	}
	{
		struct stat st;

		if (rt__raw(SYS_fstat, n->memfd, &st) == 0)
			n->mtime = st.st_mtim;
	}
	n->next = g_nodes;
	g_nodes = n;
	*out = n;
	return 0;
fail_say:
	rt__say_pf(vol->cfg->mount, rel, ret, &err);
	/* Corruption and wrong keys are I/O errors for the app. */
	if (ret <= -KILN_EBASE)
		ret = -EIO;
fail:
	n->unlinked = true;
	if (n->pf)
		pf_close(n->pf);
	n->pf = NULL;
	rt__own_close(n->memfd);
	kiln_free_secret(n->synced, n->synced_size);
	free(n->rel);
	free(n);
	return ret;
}
