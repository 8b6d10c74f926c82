/* kiln runtime, file shield: calls on names in a volume (unlink, rename,
 * mkdir, truncate, chmod, times), mapped 1:1 to pf and published at once
 * (rt__vols_unlock). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/shield/internal.h"

long rt__pf_result(struct rt_target *t, int ret, struct kiln_err *err)
{
	if (ret <= -KILN_EBASE) {
		rt__say_pf(t->vol->cfg->mount, t->rel, ret, err);
		return -EIO;
	}
	return ret;
}

static long unlink_locked(struct rt_target *t, int flags)
{
	struct kiln_err err = { 0 };
	struct rt_node *n;
	int ret;

	if (flags & AT_REMOVEDIR)
		return rt__pf_result(t, pf_rmdir(t->vol->pf, t->rel, &err), &err);
	n = rt__node_find(t->vol, t->rel);
	ret = pf_unlink(t->vol->pf, t->rel, &err);
	if (ret == 0 && n) {
		n->unlinked = true;
		if (n->refs == 0)
			rt__node_free(n);
	}
	return rt__pf_result(t, ret, &err);
}

static long rename_locked(struct rt_target *a, struct rt_target *b, unsigned flags)
{
	struct kiln_err err = { 0 };
	struct rt_node *na, *nb;
	int ret;

	if (flags & RENAME_NOREPLACE) {
		struct pf_stat ps;

		if (pf_stat(b->vol->pf, b->rel, &ps, NULL) == 0)
			return -EEXIST;
	}
	if (strcmp(a->rel, b->rel) == 0)
		return 0;
	na = rt__node_find(a->vol, a->rel);
	nb = rt__node_find(b->vol, b->rel);
	/* Data written through open fds must be in pf before the name moves. */
	if (na && (ret = rt__node_flush(na, true)))
		return -EIO;
	ret = pf_rename(a->vol->pf, a->rel, b->rel, &err);
	if (ret)
		return rt__pf_result(a, ret, &err);
	if (nb) {
		nb->unlinked = true;
		if (nb->refs == 0)
			rt__node_free(nb);
	}
	if (na) {
		char *rel = strdup(b->rel);

		if (rel) {
			free(na->rel);
			na->rel = rel;
		}
	}
	return 0;
}

static long mkdir_locked(struct rt_target *t, mode_t mode)
{
	struct kiln_err err = { 0 };

	if (!t->rel[0])
		return -EEXIST;
	return rt__pf_result(t, pf_mkdir(t->vol->pf, t->rel, mode & 07777 & ~rt__umask(), &err),
			     &err);
}

static long truncate_locked(struct rt_target *t, uint64_t size)
{
	struct kiln_err err = { 0 };
	struct rt_node *n = rt__node_find(t->vol, t->rel);

	if (n) {
		long r = rt__node_keep_synced(n);

		if (r)
			return r;
		r = rt__raw(SYS_ftruncate, n->memfd, size);
		n->writable = true;
		if (r == 0 && n->refs == 0 && rt__node_flush(n, true))
			r = -EIO;
		return r;
	}
	return rt__pf_result(t, pf_truncate(t->vol->pf, t->rel, size, &err), &err);
}

long rt__chmod_locked(struct rt_target *t, mode_t mode)
{
	struct kiln_err err = { 0 };
	struct rt_node *n = rt__node_find(t->vol, t->rel);
	struct pf_stat ps;
	int ret;

	/* sqlite sets its journal's mode to the database's, which it usually
	 * already is: no metadata commit for that. */
	if (n ? n->mode == (mode & 07777) :
		(pf_stat(t->vol->pf, t->rel, &ps, NULL) == 0 && ps.mode == (mode & 07777)))
		return 0;
	ret = pf_chmod(t->vol->pf, t->rel, mode & 07777, &err);

	if (ret == 0 && n)
		n->mode = mode & 07777;
	return rt__pf_result(t, ret, &err);
}

static long set_mtime_locked(struct rt_target *t, long fd, int64_t ns)
{
	struct kiln_err err = { 0 };
	struct rt_target ft;

	if (!t) {
		struct rt_ofd *o = rt_fd_get((int)fd);

		if (rt_fd_kind((int)fd) != RT_FD_FILE || !o->node->vol)
			return 0;
		ft.vol = o->node->vol;
		ft.rel = o->node->rel;
		t = &ft;
	}
	return rt__pf_result(t, pf_set_mtime(t->vol->pf, t->rel, ns, &err), &err);
}

static long chdir_locked(struct rt_target *t)
{
	struct stat st;
	long r = rt__stat_rel(t->vol, t->rel, &st);

	if (r < 0)
		return r;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	r = rt__raw(SYS_fchdir, t->vol->rootfd);
	if (r < 0)
		return r;
	return !t->rel[0] && strcmp(t->vol->cfg->mount, t->vol->cfg->dir) == 0;
}

/* ---- operations: each under the shield's locks --------------------------- */
long rt__shield_unlink(struct rt_target *t, int flags)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = unlink_locked(t, flags);
	rt__release(&h);
	return r;
}

long rt__shield_rename(struct rt_target *a, struct rt_target *b, unsigned flags)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = rename_locked(a, b, flags);
	rt__release(&h);
	return r;
}

long rt__shield_mkdir(struct rt_target *t, mode_t mode)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = mkdir_locked(t, mode);
	rt__release(&h);
	return r;
}

long rt__shield_truncate(struct rt_target *t, uint64_t size)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = truncate_locked(t, size);
	rt__release(&h);
	return r;
}

long rt__shield_set_mtime(struct rt_target *t, long fd, int64_t ns)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = set_mtime_locked(t, fd, ns);
	rt__release(&h);
	return r;
}

long rt__shield_chdir(struct rt_target *t)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = chdir_locked(t);
	rt__release(&h);
	return r;
}

long rt__shield_chmod(struct rt_target *t, mode_t mode)
{
	struct rt_hold h;
	long r = rt__hold(&h);

	if (r == 0)
		r = rt__chmod_locked(t, mode);
	rt__release(&h);
	return r;
}
