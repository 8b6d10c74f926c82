/* The namespace calls of the public API: stat, mkdir, mknod, symlink,
 * readlink, link, unlink/rmdir, rename (with RENAME_NOREPLACE/EXCHANGE),
 * setattr, readdir, statfs, and the v1 path calls as wrappers. Each takes the
 * volume lock, resolves its paths (resolve.c), checks permissions for a cred
 * (perm.c), changes the inode tables (inode.c) in memory and marks the
 * namespace dirty: it becomes durable at the next commit (commit.c). */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Lock v, check that it may change, and find the start directory. */
static int begin(pf_volume_t *v, pf_ino_t at, bool change, struct pf_inode **start,
		 struct kiln_err *err)
{
	int ret;

	if (change && v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	pthread_mutex_lock(&v->lock);
	*start = pf__at(v, at, &ret);
	if (!*start) {
		pthread_mutex_unlock(&v->lock);
		return kiln_err_set(err, ret, "directory inode %llu: %s", (unsigned long long)at,
				    kiln_strerror(ret));
	}
	return 0;
}

static void owner_for(pf_volume_t *v, const struct pf_cred *cred, const struct pf_inode *dir,
		      uint32_t *uid, uint32_t *gid)
{
	*uid = cred ? cred->uid : v->euid;
	/* BSD group semantics under a set-group-ID directory, as Linux. */
	*gid = (dir->mode & S_ISGID) ? dir->gid : cred ? cred->gid : v->egid;
}

int pf__new_inode(pf_volume_t *v, struct pf_inode *dir, const char *name, enum pf_type type,
		  mode_t mode, const struct pf_cred *cred, struct pf_inode **out)
{
	struct pf_inode *in;
	int ret;

	*out = NULL;
	if (v->next_ino == 0 || v->next_ino == UINT64_MAX)
		return -ENOSPC;
	in = pf__inode_alloc(v, v->next_ino, type);
	if (!in)
		return -ENOMEM;
	in->mode = mode & 07777;
	owner_for(v, cred, dir, &in->uid, &in->gid);
	if (type == PF_TYPE_DIR && (dir->mode & S_ISGID))
		in->mode |= S_ISGID;
	pf__touch(in, PF_TOUCH_A | PF_TOUCH_M | PF_TOUCH_C);
	if ((ret = pf__ino_insert(v, in))) {
		pf__inode_free(in);
		return ret;
	}
	if (!name) { /* O_TMPFILE: no name, the directory is unchanged */
		v->next_ino++;
		*out = in;
		return 0;
	}
	ret = pf__dent_add(v, dir, name, strlen(name), in, NULL);
	if (ret) {
		pf__inode_release(v, in);
		return ret;
	}
	v->next_ino++;
	pf__touch(dir, PF_TOUCH_M | PF_TOUCH_C);
	v->ns_dirty = true;
	*out = in;
	return 0;
}

/* For a call creating path's last name: 0 when it is free and cred may
 * create there; the Linux errors otherwise. */
static int may_create(pf_volume_t *v, const struct pf_walk *w, const char *path, bool dir,
		      const struct pf_cred *cred, struct kiln_err *err)
{
	int ret;

	if (w->inode || w->dot)
		return kiln_err_set(err, -EEXIST, "%s: exists", path);
	if (w->trailing_slash && !dir)
		return kiln_err_set(err, -ENOENT, "%s: no such directory", path);
	if (!w->dir->names && w->dir != v->root)
		return kiln_err_set(err, -ENOENT, "%s: parent directory was removed", path);
	if ((ret = pf__may(cred, w->dir, PF_MAY_WRITE | PF_MAY_EXEC)))
		return kiln_err_set(err, ret, "%s: permission denied", path);
	return 0;
}

/* ---- stat ---- */

int pf_statat(pf_volume_t *v, pf_ino_t at, const char *path, unsigned flags,
	      const struct pf_cred *cred, struct pf_stat *st, struct kiln_err *err)
{
	struct pf_inode *start;
	struct pf_walk w;
	int ret = begin(v, at, false, &start, err);

	if (ret)
		return ret;
	ret = pf__walk_lookup(v, start, path, flags & PF_AT_NOFOLLOW, cred, &w, err);
	if (!ret)
		pf__fill_stat(v, w.inode, st);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_getattr(pf_volume_t *v, pf_ino_t ino, struct pf_stat *st)
{
	struct pf_inode *in;
	int ret = 0;

	pthread_mutex_lock(&v->lock);
	in = ino == PF_ROOT_INO ? v->root : pf__ino_find(v, ino);
	if (in)
		pf__fill_stat(v, in, st);
	else
		ret = -ENOENT;
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- creating names ---- */

int pf_mkdirat(pf_volume_t *v, pf_ino_t at, const char *path, mode_t mode,
	       const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *start, *in;
	struct pf_walk w;
	int ret = begin(v, at, true, &start, err);

	if (ret)
		return ret;
	ret = pf__walk_in(v, start, path, PF__WALK_PARENT, cred, &w, err);
	if (!ret)
		ret = may_create(v, &w, path, /*dir=*/true, cred, err);
	if (!ret && (ret = pf__new_inode(v, w.dir, w.name, PF_TYPE_DIR, mode, cred, &in)))
		kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_mknodat(pf_volume_t *v, pf_ino_t at, const char *path, mode_t mode,
	       const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *start, *in;
	enum pf_type type;
	struct pf_walk w;
	int ret;

	bool slash = path[0] && path[strlen(path) - 1] == '/';

	switch (mode & S_IFMT) {
	case 0:
	case S_IFREG: {
		pf_file_t *f;

		/* "name/": EEXIST or ENOENT from the generic checks below. */
		if (slash) {
			type = PF_TYPE_REG;
			break;
		}

		ret = pf_openat(v, at, path, O_WRONLY | O_CREAT | O_EXCL, mode & 07777, cred,
				&f, err);
		return ret ? ret : pf_close(f);
	}
	case S_IFIFO:
		type = PF_TYPE_FIFO;
		break;
	case S_IFSOCK:
		type = PF_TYPE_SOCK;
		break;
	case S_IFCHR:
	case S_IFBLK:
		return kiln_err_set(err, -EPERM, "%s: device nodes are not supported in a "
				    "volume", path);
	default:
		return kiln_err_set(err, -EPERM, "%s: cannot make a node of type 0%o", path,
				    (unsigned)(mode & S_IFMT));
	}
	ret = begin(v, at, true, &start, err);
	if (ret)
		return ret;
	ret = pf__walk_in(v, start, path, PF__WALK_PARENT, cred, &w, err);
	if (!ret)
		ret = may_create(v, &w, path, /*dir=*/false, cred, err);
	if (!ret && (ret = pf__new_inode(v, w.dir, w.name, type, mode, cred, &in)))
		kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_symlinkat(pf_volume_t *v, const char *target, pf_ino_t at, const char *path,
		 const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *start, *in;
	struct pf_walk w;
	size_t tlen = strlen(target);
	char *copy;
	int ret;

	if (tlen == 0)
		return kiln_err_set(err, -ENOENT, "%s: empty symlink target", path);
	if (tlen >= PF_MAX_PATH)
		return kiln_err_set(err, -ENAMETOOLONG, "%s: symlink target too long", path);
	copy = strdup(target);
	if (!copy)
		return -ENOMEM;
	ret = begin(v, at, true, &start, err);
	if (ret) {
		free(copy);
		return ret;
	}
	ret = pf__walk_in(v, start, path, PF__WALK_PARENT, cred, &w, err);
	if (!ret)
		ret = may_create(v, &w, path, /*dir=*/false, cred, err);
	if (!ret && (ret = pf__new_inode(v, w.dir, w.name, PF_TYPE_LNK, 0777, cred, &in)))
		kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	if (!ret) {
		in->target = copy;
		copy = NULL;
	}
	pthread_mutex_unlock(&v->lock);
	free(copy);
	return ret;
}

/* Copy in's target (a symlink's) to buf as readlink(2); the lock is held. */
static ssize_t readlink_locked(const struct pf_inode *in, char *buf, size_t size,
			       const char *what, struct kiln_err *err)
{
	size_t len;

	if (in->type != PF_TYPE_LNK)
		return kiln_err_set(err, -EINVAL, "%s: not a symlink", what);
	len = strlen(in->target);
	len = len < size ? len : size;
	memcpy(buf, in->target, len);
	return (ssize_t)len;
}

ssize_t pf_readlinkat(pf_volume_t *v, pf_ino_t at, const char *path, char *buf, size_t size,
		      const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *start;
	struct pf_walk w;
	ssize_t n = 0;
	int ret = begin(v, at, false, &start, err);

	if (ret)
		return ret;
	ret = pf__walk_lookup(v, start, path, PF_AT_NOFOLLOW, cred, &w, err);
	if (!ret)
		n = readlink_locked(w.inode, buf, size, path, err);
	pthread_mutex_unlock(&v->lock);
	return ret ? ret : n;
}

ssize_t pf_readlink_ino(pf_volume_t *v, pf_ino_t ino, char *buf, size_t size,
			struct kiln_err *err)
{
	struct pf_inode *in;
	ssize_t n;

	pthread_mutex_lock(&v->lock);
	in = pf__ino_find(v, ino);
	n = in ? readlink_locked(in, buf, size, "inode", err) :
		 kiln_err_set(err, -ENOENT, "inode %llu: no such inode", (unsigned long long)ino);
	pthread_mutex_unlock(&v->lock);
	return n;
}

/* Give in the name newpath (from nstart): the checks of link(2) past the
 * lookup of the old name, which what names in messages; the lock is held. */
static int link_locked(pf_volume_t *v, struct pf_inode *in, struct pf_inode *nstart,
		       const char *newpath, const struct pf_cred *cred, const char *what,
		       struct kiln_err *err)
{
	struct pf_walk nw;
	int ret;

	/* The kernel looks at the new name first (EEXIST before EPERM). */
	ret = pf__walk_in(v, nstart, newpath, PF__WALK_PARENT, cred, &nw, err);
	if (!ret)
		ret = may_create(v, &nw, newpath, /*dir=*/false, cred, err);
	if (ret)
		return ret;
	if (in->type == PF_TYPE_DIR)
		return kiln_err_set(err, -EPERM, "%s: is a directory (no hard links to "
				    "directories)", what);
	/* An inode without a name comes back only from O_TMPFILE (I_LINKABLE). */
	if (!in->names && !in->linkable)
		return kiln_err_set(err, -ENOENT, "%s: was removed", what);
	if (in->nlink >= PF_MAX_LINKS)
		return kiln_err_set(err, -EMLINK, "%s: too many links", what);
	if (in->type == PF_TYPE_REG && pf__region_at(v, nw.dir, nw.name) != in->kind)
		return kiln_err_set(err, -EXDEV, "%s: would link %s into another region kind",
				    newpath, what);
	ret = pf__dent_add(v, nw.dir, nw.name, strlen(nw.name), in, NULL);
	if (ret)
		return kiln_err_set(err, ret, "%s: %s", newpath, kiln_strerror(ret));
	in->linkable = false;
	pf__touch(in, PF_TOUCH_C);
	pf__touch(nw.dir, PF_TOUCH_M | PF_TOUCH_C);
	v->ns_dirty = true;
	return 0;
}

int pf_linkat(pf_volume_t *v, pf_ino_t oldat, const char *oldpath, pf_ino_t newat,
	      const char *newpath, unsigned flags, const struct pf_cred *cred,
	      struct kiln_err *err)
{
	struct pf_inode *ostart, *nstart;
	struct pf_walk ow;
	int ret = begin(v, oldat, true, &ostart, err);

	if (ret)
		return ret;
	nstart = pf__at(v, newat, &ret);
	if (!nstart) {
		kiln_err_set(err, ret, "directory inode %llu: %s", (unsigned long long)newat,
			     kiln_strerror(ret));
		goto out;
	}
	ret = pf__walk_lookup(v, ostart, oldpath, (flags & PF_AT_FOLLOW) ? 0 : PF_AT_NOFOLLOW,
			      cred, &ow, err);
	if (!ret)
		ret = link_locked(v, ow.inode, nstart, newpath, cred, oldpath, err);
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_link_ino(pf_volume_t *v, pf_ino_t ino, pf_ino_t newat, const char *newpath,
		const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *nstart, *in;
	char what[40];
	int ret = begin(v, newat, true, &nstart, err);

	if (ret)
		return ret;
	snprintf(what, sizeof(what), "inode %llu", (unsigned long long)ino);
	in = pf__ino_find(v, ino);
	ret = in ? link_locked(v, in, nstart, newpath, cred, what, err) :
		   kiln_err_set(err, -ENOENT, "%s: no such inode", what);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- removing names ---- */

/* Remove entry d; its inode goes with its last name and handle. An unlink
 * of a regular file (logged) can be a commit log record's entry. */
static void drop_name(pf_volume_t *v, struct pf_dent *d, bool logged)
{
	struct pf_inode *in = d->inode, *dir = d->dir;

	pf__touch(dir, PF_TOUCH_M | PF_TOUCH_C);
	if (logged && in->type == PF_TYPE_REG)
		pf__nsop_unlink(v, d);
	else
		v->ns_dirty = true;
	pf__dent_del(v, d);
	pf__touch(in, PF_TOUCH_C);
	if (in->names)
		return;
	if (in->node && in->node->refs == 0)
		pf__node_drop(v, in->node); /* dirty but unopened: nothing commits it */
	pf__inode_release(v, in);
}

/* May victim (entry d) be removed: the Linux checks of unlink/rmdir. */
static int check_remove(pf_volume_t *v, const struct pf_walk *w, const char *path,
			bool rmdir, const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *in = w->inode;
	int ret;

	if (rmdir && w->dot && in == v->root && !strcmp(w->name, "."))
		return kiln_err_set(err, -EBUSY, "cannot remove the root directory");
	if (rmdir && w->dot)
		return kiln_err_set(err, strcmp(w->name, ".") == 0 ? -EINVAL : -ENOTEMPTY,
				    "%s: cannot remove '%s'", path, w->name);
	if (!in)
		return kiln_err_set(err, -ENOENT, "%s: no such file or directory", path);
	if (!rmdir && (in->type == PF_TYPE_DIR || w->dot))
		return kiln_err_set(err, -EISDIR, "%s: is a directory", path);
	if (!rmdir && w->trailing_slash)
		return kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
	if (rmdir && in->type != PF_TYPE_DIR)
		return kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
	if (rmdir && in == v->root)
		return kiln_err_set(err, -EBUSY, "cannot remove the root directory");
	if ((ret = pf__may_delete(cred, w->dir, in)))
		return kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	if (rmdir && in->nlive)
		return kiln_err_set(err, -ENOTEMPTY, "%s: directory not empty", path);
	return 0;
}

int pf_unlinkat(pf_volume_t *v, pf_ino_t at, const char *path, unsigned flags,
		const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *start;
	struct pf_walk w;
	int ret = begin(v, at, true, &start, err);

	if (ret)
		return ret;
	ret = pf__walk_in(v, start, path, PF__WALK_PARENT, cred, &w, err);
	if (!ret)
		ret = check_remove(v, &w, path, flags & PF_AT_REMOVEDIR, cred, err);
	if (!ret)
		drop_name(v, w.dent, true);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- rename ---- */

static bool is_ancestor(const struct pf_inode *a, const struct pf_inode *d)
{
	for (;;) {
		if (d == a)
			return true;
		if (d->parent == d)
			return false;
		d = d->parent;
	}
}

/* Would moving in (a file, or every file under a directory) to newdir/name
 * change the region kind of a file? Only when the volume has regions; the
 * walk is over the moved subtree, which is not rewritten either way. */
static bool region_changes(pf_volume_t *v, struct pf_inode *in, struct pf_inode *newdir,
			   const char *name)
{
	char base[PF_MAX_PATH], path[PF_MAX_PATH], inpath[PF_MAX_PATH];
	struct pf_inode **stack = NULL;
	size_t n = 0, cap = 0;
	bool changes = false;

	if (v->regions_len == 0)
		return false;
	if (in->type == PF_TYPE_REG)
		return pf__region_at(v, newdir, name) != in->kind;
	if (in->type != PF_TYPE_DIR)
		return false;
	if (pf__inode_path(v, newdir, base, sizeof(base)) != 0 ||
	    pf__inode_path(v, in, inpath, sizeof(inpath)) != 0)
		return true;
	if (snprintf(path, sizeof(path), "%s%s%s", base, base[0] ? "/" : "", name) >=
	    (int)sizeof(path))
		return true;
	memcpy(base, path, sizeof(base));
	cap = 16;
	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return true;
	stack[n++] = in;
	while (n && !changes) {
		struct pf_inode *dir = stack[--n];

		for (size_t i = 0; i < dir->nents && !changes; i++) {
			struct pf_dent *d = dir->ents[i];
			char rel[PF_MAX_PATH];
			struct pf_inode *x;

			if (!d)
				continue;
			x = d->inode;
			if (x->type == PF_TYPE_DIR) {
				if (n == cap) {
					struct pf_inode **ns = realloc(stack, 2 * cap *
								       sizeof(*ns));

					if (!ns) {
						changes = true;
						break;
					}
					stack = ns;
					cap *= 2;
				}
				stack[n++] = x;
				continue;
			}
			if (x->type != PF_TYPE_REG)
				continue;
			/* x's path relative to in, under the new base. */
			if (pf__inode_path(v, x, path, sizeof(path)) != 0 ||
			    snprintf(rel, sizeof(rel), "%s%s", base, path + strlen(inpath)) >=
			    (int)sizeof(rel)) {
				changes = true;
				break;
			}
			changes = pf__region_of(v, rel) != x->kind;
		}
	}
	free(stack);
	return changes;
}

int pf_renameat2(pf_volume_t *v, pf_ino_t oldat, const char *oldpath, pf_ino_t newat,
		 const char *newpath, unsigned flags, const struct pf_cred *cred,
		 struct kiln_err *err)
{
	struct pf_inode *ostart, *nstart, *in, *victim;
	struct pf_walk ow, nw;
	int ret;

	if ((flags & ~(PF_RENAME_NOREPLACE | PF_RENAME_EXCHANGE)) ||
	    ((flags & PF_RENAME_NOREPLACE) && (flags & PF_RENAME_EXCHANGE)))
		return kiln_err_set(err, -EINVAL, "rename: invalid flags 0x%x", flags);
	ret = begin(v, oldat, true, &ostart, err);
	if (ret)
		return ret;
	nstart = pf__at(v, newat, &ret);
	if (!nstart) {
		kiln_err_set(err, ret, "directory inode %llu: %s", (unsigned long long)newat,
			     kiln_strerror(ret));
		goto out;
	}
	if ((ret = pf__walk_in(v, ostart, oldpath, PF__WALK_PARENT, cred, &ow, err)) ||
	    (ret = pf__walk_in(v, nstart, newpath, PF__WALK_PARENT, cred, &nw, err)))
		goto out;
	in = ow.inode;
	victim = nw.inode;
	if (ow.dot || nw.dot) {
		ret = kiln_err_set(err, (nw.dot && (flags & PF_RENAME_NOREPLACE)) ? -EEXIST :
				   -EBUSY, "rename %s to %s: '.', '..' or the root", oldpath,
				   newpath);
		goto out;
	}
	if (!in) {
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", oldpath);
		goto out;
	}
	if ((flags & PF_RENAME_EXCHANGE) && !victim) {
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", newpath);
		goto out;
	}
	if (victim && (flags & PF_RENAME_NOREPLACE)) {
		ret = kiln_err_set(err, -EEXIST, "%s: exists", newpath);
		goto out;
	}
	if ((flags & PF_RENAME_EXCHANGE) && victim->type != PF_TYPE_DIR && nw.trailing_slash) {
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", newpath);
		goto out;
	}
	if (in->type != PF_TYPE_DIR && (ow.trailing_slash ||
					(nw.trailing_slash && !(flags & PF_RENAME_EXCHANGE)))) {
		ret = kiln_err_set(err, -ENOTDIR, "rename %s to %s: not a directory", oldpath,
				   newpath);
		goto out;
	}
	/* The kernel's order (do_renameat2, vfs_rename): a directory moved under
	 * itself, a target that contains the source, then permissions, then
	 * the types of the two, then a target directory that is not empty. */
	if (in->type == PF_TYPE_DIR && is_ancestor(in, nw.dir)) {
		ret = kiln_err_set(err, -EINVAL, "cannot move %s under itself", oldpath);
		goto out;
	}
	if (victim && victim->type == PF_TYPE_DIR && is_ancestor(victim, ow.dir)) {
		ret = kiln_err_set(err, (flags & PF_RENAME_EXCHANGE) ? -EINVAL : -ENOTEMPTY,
				   "%s: contains %s", newpath, oldpath);
		goto out;
	}
	if (victim == in) {
		ret = 0; /* two names of one inode (or one name): nothing to do (POSIX) */
		goto out;
	}
	/* Permissions: remove from the old directory, add to (or replace in) the
	 * new one; a directory changing parent has its ".." rewritten. */
	if ((ret = pf__may_delete(cred, ow.dir, in)) ||
	    (victim && (ret = pf__may_delete(cred, nw.dir, victim))) ||
	    (!victim && (ret = pf__may(cred, nw.dir, PF_MAY_WRITE | PF_MAY_EXEC))) ||
	    (in->type == PF_TYPE_DIR && ow.dir != nw.dir &&
	     (ret = pf__may(cred, in, PF_MAY_WRITE))) ||
	    ((flags & PF_RENAME_EXCHANGE) && victim->type == PF_TYPE_DIR && ow.dir != nw.dir &&
	     (ret = pf__may(cred, victim, PF_MAY_WRITE)))) {
		kiln_err_set(err, ret, "rename %s to %s: %s", oldpath, newpath,
			     kiln_strerror(ret));
		goto out;
	}
	if (!(flags & PF_RENAME_EXCHANGE) && victim) {
		if (in->type == PF_TYPE_DIR && victim->type != PF_TYPE_DIR) {
			ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", newpath);
			goto out;
		}
		if (in->type != PF_TYPE_DIR && victim->type == PF_TYPE_DIR) {
			ret = kiln_err_set(err, -EISDIR, "%s: is a directory", newpath);
			goto out;
		}
		if (victim->type == PF_TYPE_DIR && victim->nlive) {
			ret = kiln_err_set(err, -ENOTEMPTY, "%s: directory not empty", newpath);
			goto out;
		}
	}
	if (region_changes(v, in, nw.dir, nw.name) ||
	    ((flags & PF_RENAME_EXCHANGE) && region_changes(v, victim, ow.dir, ow.name))) {
		ret = kiln_err_set(err, -EXDEV, "%s: would move %s into another region kind",
				   newpath, oldpath);
		goto out;
	}
	if (flags & PF_RENAME_EXCHANGE) {
		pf__dent_del(v, ow.dent);
		pf__dent_del(v, nw.dent);
		if ((ret = pf__dent_add(v, nw.dir, nw.name, strlen(nw.name), in, NULL)) ||
		    (ret = pf__dent_add(v, ow.dir, ow.name, strlen(ow.name), victim, NULL))) {
			/* Out of memory half way: the names are lost from memory (the
			 * volume on disk still has both); make that loud. */
			kiln_err_set(err, ret, "rename %s to %s: %s", oldpath, newpath,
				     kiln_strerror(ret));
			goto out;
		}
		pf__touch(victim, PF_TOUCH_C);
	} else {
		if (nw.dent)
			drop_name(v, nw.dent, false);
		pf__dent_del(v, ow.dent);
		ret = pf__dent_add(v, nw.dir, nw.name, strlen(nw.name), in, NULL);
		if (ret) {
			kiln_err_set(err, ret, "rename %s to %s: %s", oldpath, newpath,
				     kiln_strerror(ret));
			goto out;
		}
	}
	pf__touch(in, PF_TOUCH_C);
	pf__touch(ow.dir, PF_TOUCH_M | PF_TOUCH_C);
	pf__touch(nw.dir, PF_TOUCH_M | PF_TOUCH_C);
	v->ns_dirty = true;
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- attributes ---- */

static int setattr_locked(pf_volume_t *v, struct pf_inode *in, const struct pf_setattr *sa0,
			  const struct pf_cred *cred, const char *what, struct kiln_err *err)
{
	struct pf_setattr sa = *sa0;
	int64_t now = pf__now_ns();
	int ret;

	if ((ret = pf__may_setattr(cred, in, &sa)))
		return kiln_err_set(err, ret, "%s: %s", what, kiln_strerror(ret));
	if (sa.valid & PF_SET_SIZE) {
		if (in->type == PF_TYPE_DIR)
			return kiln_err_set(err, -EISDIR, "%s: is a directory", what);
		if (in->type != PF_TYPE_REG)
			return kiln_err_set(err, -EINVAL, "%s: not a regular file", what);
		if (sa.size > PF_MAX_FILE_SIZE)
			return kiln_err_set(err, -EFBIG, "%s: size too large", what);
		if ((ret = pf__inode_truncate(v, in, sa.size, err)))
			return ret;
		in->mtime_ns = now;
	}
	if (sa.valid & PF_SET_MODE)
		in->mode = sa.mode & 07777;
	if (sa.valid & (PF_SET_UID | PF_SET_GID)) {
		if (sa.valid & PF_SET_UID)
			in->uid = sa.uid;
		if (sa.valid & PF_SET_GID)
			in->gid = sa.gid;
		/* chown drops set-user-ID, and set-group-ID of a group-executable
		 * file, of anything but a directory (Linux, whoever calls). */
		if (in->type != PF_TYPE_DIR) {
			in->mode &= ~(uint32_t)S_ISUID;
			if (in->mode & S_IXGRP)
				in->mode &= ~(uint32_t)S_ISGID;
		}
	}
	if (sa.valid & PF_SET_ATIME)
		in->atime_ns = sa.atime_ns;
	else if (sa.valid & PF_SET_ATIME_NOW)
		in->atime_ns = now;
	if (sa.valid & PF_SET_MTIME)
		in->mtime_ns = sa.mtime_ns;
	else if (sa.valid & PF_SET_MTIME_NOW)
		in->mtime_ns = now;
	in->ctime_ns = (sa.valid & PF_SET_CTIME) ? sa.ctime_ns : now;
	/* The times alone of an open file already committed go with its
	 * content: its next commit carries them, as a commit log record can
	 * (the volume server stores the times of every file it writes). */
	if (!(sa.valid & ~(PF_SET_ATIME | PF_SET_MTIME | PF_SET_ATIME_NOW | PF_SET_MTIME_NOW |
			   PF_SET_CTIME)) &&
	    in->type == PF_TYPE_REG && in->node && in->in_meta)
		in->node->dirty = true;
	/* A file created since the last durable commit: its create entry takes
	 * the attributes it has at the commit (sqlite, as root, chowns its new
	 * journal to the database's owner). */
	else if (in->type == PF_TYPE_REG && in->node && !in->in_meta &&
		 pf__nsop_created(v, in->ino))
		in->node->dirty = true;
	else
		v->ns_dirty = true;
	return 0;
}

int pf_setattrat(pf_volume_t *v, pf_ino_t at, const char *path, unsigned flags,
		 const struct pf_setattr *sa, const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *start;
	struct pf_walk w;
	int ret = begin(v, at, true, &start, err);

	if (ret)
		return ret;
	ret = pf__walk_lookup(v, start, path, flags & PF_AT_NOFOLLOW, cred, &w, err);
	if (!ret)
		ret = setattr_locked(v, w.inode, sa, cred, path, err);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_setattr_ino(pf_volume_t *v, pf_ino_t ino, const struct pf_setattr *sa,
		   const struct pf_cred *cred, struct kiln_err *err)
{
	struct pf_inode *in;
	char what[40];
	int ret;

	if (v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	snprintf(what, sizeof(what), "inode %llu", (unsigned long long)ino);
	pthread_mutex_lock(&v->lock);
	in = pf__ino_find(v, ino);
	ret = in ? setattr_locked(v, in, sa, cred, what, err) :
		   kiln_err_set(err, -ENOENT, "%s: no such inode", what);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fsetattr(pf_file_t *f, const struct pf_setattr *sa, const struct pf_cred *cred,
		struct kiln_err *err)
{
	pf_volume_t *v = f->node->vol;
	int ret;

	if (v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	/* ftruncate needs the fd open for writing, not write permission. */
	if ((sa->valid & PF_SET_SIZE) && (f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	pthread_mutex_lock(&v->lock);
	if (sa->valid & PF_SET_SIZE) {
		struct pf_setattr rest = *sa;

		rest.valid &= ~PF_SET_SIZE;
		ret = f->node->failed ? -EIO : pf__inode_truncate(v, f->node->inode, sa->size,
								   err);
		if (!ret) {
			f->node->inode->mtime_ns = pf__now_ns();
			ret = setattr_locked(v, f->node->inode, &rest, cred, pf__node_path(f->node),
					     err);
		}
	} else {
		ret = setattr_locked(v, f->node->inode, sa, cred, pf__node_path(f->node), err);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- listing ---- */

int pf_readdir_ino(pf_volume_t *v, pf_ino_t dino, uint64_t cookie, struct pf_dirent *ents,
		   size_t max, size_t *count, struct kiln_err *err)
{
	struct pf_inode *dir;
	size_t n = 0, lo, hi;
	int ret = 0;

	*count = 0;
	pthread_mutex_lock(&v->lock);
	dir = dino == PF_ROOT_INO ? v->root : pf__ino_find(v, dino);
	if (!dir || (dir != v->root && !dir->names)) {
		ret = kiln_err_set(err, -ENOENT, "directory inode %llu is gone",
				   (unsigned long long)dino);
		goto out;
	}
	if (dir->type != PF_TYPE_DIR) {
		ret = kiln_err_set(err, -ENOTDIR, "inode %llu: not a directory",
				   (unsigned long long)dino);
		goto out;
	}
	/* Cookies: 1 after ".", 2 after "..", seq + 2 after an entry. */
	if (cookie < 1 && n < max)
		ents[n++] = (struct pf_dirent){ dir->ino, PF_TYPE_DIR, 1, "." };
	if (cookie < 2 && n < max)
		ents[n++] = (struct pf_dirent){ dir->parent->ino, PF_TYPE_DIR, 2, ".." };
	lo = 0;
	hi = dir->nents;
	while (lo < hi) { /* first slot with seq > cookie - 2 */
		size_t mid = lo + (hi - lo) / 2;

		if (cookie >= 2 && dir->eseq[mid] <= cookie - 2)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < dir->nents && n < max; i++) {
		struct pf_dent *d = dir->ents[i];

		if (!d)
			continue;
		ents[n].ino = d->inode->ino;
		ents[n].type = d->inode->type;
		ents[n].cookie = d->seq + 2;
		memcpy(ents[n].name, d->name, (size_t)d->len + 1);
		n++;
	}
	*count = n;
	pf__touch_atime(dir);
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_statfs(pf_volume_t *v, struct pf_statfs *out, struct kiln_err *err)
{
	uint64_t total = 0, free_b = 0, avail = 0;

	memset(out, 0, sizeof(*out));
	if (v->so->space) {
		int ret = v->so->space(v->sctx, &total, &free_b, &avail);

		if (ret)
			return kiln_err_set(err, ret, "statfs: %s", kiln_strerror(ret));
	}
	pthread_mutex_lock(&v->lock);
	out->bsize = v->cs;
	/* Each chunk takes its slot overhead too: count what fits as data. */
	out->blocks = total / v->stride;
	out->bfree = free_b / v->stride;
	out->bavail = avail / v->stride;
	out->files = v->ninodes;
	out->ffree = UINT32_MAX > v->ninodes ? UINT32_MAX - v->ninodes : 0;
	out->namemax = PF_NAME_MAX;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* ---- the v1 path calls ---- */

int pf_stat(pf_volume_t *v, const char *path, struct pf_stat *st, struct kiln_err *err)
{
	return pf_statat(v, PF_ROOT_INO, path, 0, NULL, st, err);
}

int pf_fstat(pf_file_t *f, struct pf_stat *st)
{
	pf_volume_t *v = f->node->vol;

	pthread_mutex_lock(&v->lock);
	pf__fill_stat(v, f->node->inode, st);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int pf_chmod(pf_volume_t *v, const char *path, mode_t mode, struct kiln_err *err)
{
	struct pf_setattr sa = { .valid = PF_SET_MODE, .mode = mode };

	return pf_setattrat(v, PF_ROOT_INO, path, 0, &sa, NULL, err);
}

int pf_set_mtime(pf_volume_t *v, const char *path, int64_t mtime_ns, struct kiln_err *err)
{
	struct pf_setattr sa = { .valid = PF_SET_MTIME, .mtime_ns = mtime_ns };

	return pf_setattrat(v, PF_ROOT_INO, path, 0, &sa, NULL, err);
}

int pf_truncate(pf_volume_t *v, const char *path, uint64_t size, struct kiln_err *err)
{
	struct pf_setattr sa = { .valid = PF_SET_SIZE, .size = size };

	return pf_setattrat(v, PF_ROOT_INO, path, 0, &sa, NULL, err);
}

int pf_unlink(pf_volume_t *v, const char *path, struct kiln_err *err)
{
	return pf_unlinkat(v, PF_ROOT_INO, path, 0, NULL, err);
}

int pf_rmdir(pf_volume_t *v, const char *path, struct kiln_err *err)
{
	return pf_unlinkat(v, PF_ROOT_INO, path, PF_AT_REMOVEDIR, NULL, err);
}

int pf_mkdir(pf_volume_t *v, const char *path, mode_t mode, struct kiln_err *err)
{
	return pf_mkdirat(v, PF_ROOT_INO, path, mode, NULL, err);
}

int pf_rename(pf_volume_t *v, const char *from, const char *to, struct kiln_err *err)
{
	return pf_renameat2(v, PF_ROOT_INO, from, PF_ROOT_INO, to, 0, NULL, err);
}

int pf_fsync_dir(pf_volume_t *v, struct kiln_err *err)
{
	return pf_volume_flush(v, err);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pf_names_free(char **names, size_t count)
{
	if (!names)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int pf_readdir(pf_volume_t *v, const char *path, char ***names, size_t *count,
	       struct kiln_err *err)
{
	struct pf_inode *dir;
	struct pf_walk w;
	char **list = NULL;
	size_t n = 0;
	int ret;

	*names = NULL;
	*count = 0;
	pthread_mutex_lock(&v->lock);
	ret = pf__walk_in(v, v->root, path, 0, NULL, &w, err);
	if (!ret && !w.inode)
		ret = kiln_err_set(err, -ENOENT, "%s: no such directory", path);
	if (!ret && w.inode->type != PF_TYPE_DIR)
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
	if (ret)
		goto out;
	dir = w.inode;
	list = calloc(dir->nlive + 1, sizeof(*list));
	if (!list) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < dir->nents; i++) {
		if (!dir->ents[i])
			continue;
		list[n] = strdup(dir->ents[i]->name);
		if (!list[n]) {
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	qsort(list, n, sizeof(*list), cmp_names);
	*names = list;
	*count = n;
	list = NULL;
out:
	pthread_mutex_unlock(&v->lock);
	pf_names_free(list, n);
	return ret;
}
