/* kiln runtime, file shield: calls on names in a volume (unlink, rename,
 * mkdir, truncate, chmod, times), forwarded to the volume server, which
 * applies them to pf and bumps the namespace generation (every other process
 * sees them at once; they become durable at the next commit). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/shield/internal.h"

void rt__say_vol(struct rt_vol *vol, const char *rel, const char *msg)
{
	rt__say("%s%s%s: %s", vol->cfg->mount, rel[0] ? "/" : "", rel, msg);
}

/* The kernel's generic_permission with the owner and mode the volume keeps;
 * access(2) asks with the real ids unless AT_EACCESS (fs/open.c). */
long rt__shield_access(struct rt_target *t, int mode, int flags)
{
	const struct rt_ucred *c = rt__cred();
	struct pf_cred pc = { .uid = (flags & AT_EACCESS) ? c->fs.uid : c->uid,
			      .gid = (flags & AT_EACCESS) ? c->fs.gid : c->gid,
			      .groups = c->fs.groups, .ngroups = c->fs.ngroups };
	struct pf_stat ps = { 0 };
	struct stat st;
	long r = rt__shield_stat(t, &st);

	if (r < 0)
		return r;
	ps.type = S_ISDIR(st.st_mode) ? PF_TYPE_DIR : PF_TYPE_REG;
	ps.mode = st.st_mode & 07777;
	ps.uid = st.st_uid;
	ps.gid = st.st_gid;
	return pf_permission(&pc, &ps, mode & (R_OK | W_OK | X_OK));
}

/* After a name of file id went: a node of ours whose last name it was is
 * unlinked with it (the server updated the links in the file's segment). */
static void node_gone(struct rt_vol *vol, uint64_t id)
{
	struct rt_node *n = id ? rt__node_by_id(vol, id) : NULL;

	if (!n || atomic_load(&atomic_load(&n->seg)->nlink) != 0)
		return;
	n->unlinked = true;
	if (n->cached)
		rt__node_try_free(n);
}

/* A request whose reply accounts for its own change (struct rt_own; rel as
 * rt__lookup_own's: an unlink's name, known gone). */
static long own_call(struct rt_vol *vol, struct rt_msg *m, const char *rel, struct rt_own *own)
{
	uint64_t vgen = vol->gen;
	struct rt_call call;
	long r = rt__vol_call(vol, m, &call);

	if (r == 0 && call.size == sizeof(*own))
		memcpy(own, call.body, sizeof(*own));
	rt__cl_done(vol, &call);
	if (r == 0)
		rt__lookup_own(vol, rel, own, vgen, 0, -ENOENT, NULL);
	return r;
}

static long unlink_locked(struct rt_target *t, int flags)
{
	struct rt_msg m = { .op = RT_OP_UNLINK, .flags = (uint32_t)(flags & AT_REMOVEDIR),
			    .path = t->rel };
	struct rt_own own = { 0 };
	long r = own_call(t->vol, &m, t->rel, &own);

	if (r == 0) /* the reply names the file whose name went */
		node_gone(t->vol, own.id);
	return r;
}

RT_LOCKED(rt__shield_unlink, (struct rt_target *t, int flags), unlink_locked(t, flags))

static void node_renamed(struct rt_node *n, const char *rel)
{
	char *copy = n ? strdup(rel) : NULL;

	if (copy) {
		free(n->rel);
		n->rel = copy;
	}
}

static long rename_locked(struct rt_target *a, struct rt_target *b, unsigned flags)
{
	struct rt_msg m = { .op = RT_OP_RENAME, .flags = flags, .path = a->rel,
			    .path2 = b->rel };
	struct rt_stat_reply ra, rb;
	bool exchange = flags & RENAME_EXCHANGE;
	int ret, retb;

	/* The names themselves move (a symlink is not followed). */
	ret = rt__lookup_nofollow(a->vol, a->rel, &ra);
	if (ret)
		return ret;
	retb = rt__lookup_nofollow(b->vol, b->rel, &rb);
	/* "file/" names a directory (the server sees the names without their
	 * trailing slash): at either end for the file that moves, at its own
	 * end for each one that an exchange moves. */
	if ((a->slash || (b->slash && !exchange)) && !S_ISDIR(ra.mode))
		return -ENOTDIR;
	if (exchange && b->slash && retb == 0 && !S_ISDIR(rb.mode))
		return -ENOTDIR;
	uint64_t ida = S_ISREG(ra.mode) ? ra.id : 0;
	uint64_t idb = retb == 0 && S_ISREG(rb.mode) ? rb.id : 0;

	ret = rt__vol_simple(a->vol, &m);
	/* A file replaced by the rename goes with its last name (not when both
	 * names were links of one file: rename does nothing then). */
	if (ret == 0 && !exchange && idb != ida)
		node_gone(b->vol, idb);
	if (ret == 0) {
		/* This process's nodes follow their files' names. */
		struct rt_node *na = ida ? rt__node_by_id(a->vol, ida) : NULL;
		struct rt_node *nb = exchange && idb ? rt__node_by_id(a->vol, idb) : NULL;

		node_renamed(na, b->rel);
		node_renamed(nb, a->rel);
	}
	return ret;
}

RT_LOCKED(rt__shield_rename, (struct rt_target *a, struct rt_target *b, unsigned flags),
	  rename_locked(a, b, flags))

static long mkdir_locked(struct rt_target *t, mode_t mode)
{
	struct rt_msg m = { .op = RT_OP_MKDIR, .mode = mode & 07777 & ~rt__umask(),
			    .path = t->rel };

	if (!t->rel[0])
		return -EEXIST;
	return rt__vol_simple(t->vol, &m);
}

RT_LOCKED(rt__shield_mkdir, (struct rt_target *t, mode_t mode), mkdir_locked(t, mode))

static long truncate_locked(struct rt_target *t, uint64_t size)
{
	struct rt_msg m = { .op = RT_OP_TRUNCATE, .a = size, .path = t->rel };

	if ((int64_t)size < 0)
		return -EINVAL;
	atomic_store(&t->vol->wrote, true);
	return rt__vol_simple(t->vol, &m);
}

RT_LOCKED(rt__shield_truncate, (struct rt_target *t, uint64_t size), truncate_locked(t, size))

static long ftruncate_locked(long fd, uint64_t size)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_msg m = { .op = RT_OP_TRUNCATE, .a = size, .path = "" };

	if (rt_fd_kind((int)fd) != RT_FD_FILE || !o->node->vol)
		return rt__raw(SYS_ftruncate, fd, size);
	/* Not open for writing: what the kernel says for any file. */
	if ((rt__raw(SYS_fcntl, fd, F_GETFL, 0) & O_ACCMODE) == O_RDONLY)
		return -EINVAL;
	atomic_store(&o->node->wrote, true);
	atomic_store(&o->node->vol->wrote, true);
	return rt__node_call(o->node, &m);
}

RT_LOCKED(rt__shield_ftruncate, (long fd, uint64_t size), ftruncate_locked(fd, size))

static long fallocate_locked(long fd, int mode, uint64_t off, uint64_t len)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_msg m = { .op = RT_OP_FALLOCATE, .flags = (uint32_t)mode, .a = off, .b = len };

	if (rt_fd_kind((int)fd) != RT_FD_FILE || !o->node->vol)
		return rt__raw(SYS_fallocate, fd, mode, off, len);
	/* Allocation (mode 0, KEEP_SIZE) is the memfd's own business: zeros
	 * (past the end a new size, which stat.c must not keep the old one
	 * of). */
	if (!(mode & ~FALLOC_FL_KEEP_SIZE)) {
		long r;

		/* A memfd's allocation stops for any signal (one kept by the
		 * guard, here); a file's on disk only for a fatal one. */
		do
			r = rt__raw(SYS_fallocate, fd, mode, off, len);
		while (r == -EINTR);

		if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE))
			rt__fseg_resized(atomic_load(&o->node->seg));
		return r;
	}
	atomic_store(&o->node->wrote, true);
	atomic_store(&o->node->vol->wrote, true);
	return rt__node_call(o->node, &m);
}

RT_LOCKED(rt__shield_fallocate, (long fd, int mode, uint64_t off, uint64_t len),
	  fallocate_locked(fd, mode, off, len))

static long chmod_locked(struct rt_target *t, mode_t mode)
{
	struct rt_msg m = { .op = RT_OP_CHMOD, .mode = mode & 07777, .path = t->rel };
	struct rt_stat_reply r;
	int ret = rt__lookup(t->vol, t->rel, &r);

	if (ret)
		return ret;
	/* sqlite sets its journal's mode to the database's, which it usually
	 * already is: no namespace change for that. */
	if ((r.mode & 07777) == (mode & 07777))
		return 0;
	ret = rt__vol_simple(t->vol, &m);
	if (ret == 0 && r.id) {
		struct rt_node *n = rt__node_by_id(t->vol, r.id);

		if (n)
			n->mode = mode & 07777;
	}
	return ret;
}

RT_LOCKED(rt__shield_chmod, (struct rt_target *t, mode_t mode), chmod_locked(t, mode))

static long chown_locked(struct rt_target *t, long fd, uid_t uid, gid_t gid, int flags)
{
	struct rt_msg m = { .op = RT_OP_CHOWN, .a = (uint32_t)uid, .b = (uint32_t)gid,
			    .path = t ? t->rel : "",
			    .flags = (flags & AT_SYMLINK_NOFOLLOW) ? RT_CHOWN_NOFOLLOW : 0 };
	struct rt_own own = { 0 };

	if (!t) {
		struct rt_ofd *o = rt_fd_get((int)fd);

		if (rt_fd_kind((int)fd) == RT_FD_DIR) {
			struct rt_target dt;

			if (!rt__shield_dir_target((int)fd, &dt))
				return -ENAMETOOLONG;
			m.path = dt.rel;
			return rt__vol_simple(dt.vol, &m);
		}
		if (rt_fd_kind((int)fd) != RT_FD_FILE)
			return rt__raw(SYS_fchown, fd, uid, gid);
		if (!o->node->vol) /* an injected file is never changed */
			return -EPERM;
		if (o->node->gen != o->node->vol->gen || atomic_load(&o->node->dead))
			return -EIO;
		m.id = o->node->id;
		return own_call(o->node->vol, &m, NULL, &own);
	}
	return rt__vol_simple(t->vol, &m);
}

RT_LOCKED(rt__shield_chown, (struct rt_target *t, long fd, uid_t uid, gid_t gid, int flags),
	  chown_locked(t, fd, uid, gid, flags))

static uint32_t ut_flags(const struct timespec *ts, int i, uint32_t now, uint32_t omit)
{
	if (!ts || ts[i].tv_nsec == UTIME_NOW)
		return now;
	return ts[i].tv_nsec == UTIME_OMIT ? omit : 0;
}

static long set_times_locked(struct rt_target *t, long fd, const struct timespec *ts,
			     int flags)
{
	struct rt_msg m = { .op = RT_OP_UTIMES, .path = t ? t->rel : "" };

	m.flags = ut_flags(ts, 0, RT_UT_ATIME_NOW, RT_UT_ATIME_OMIT) |
		  ut_flags(ts, 1, RT_UT_MTIME_NOW, RT_UT_MTIME_OMIT) |
		  ((t && (flags & AT_SYMLINK_NOFOLLOW)) ? RT_UT_NOFOLLOW : 0);
	if (ts) {
		m.a = (uint64_t)((int64_t)ts[0].tv_sec * 1000000000 + ts[0].tv_nsec);
		m.b = (uint64_t)((int64_t)ts[1].tv_sec * 1000000000 + ts[1].tv_nsec);
	}
	if (!t) {
		struct rt_ofd *o = rt_fd_get((int)fd);

		if (rt_fd_kind((int)fd) == RT_FD_DIR) {
			m.path = o->rel;
			return rt__vol_simple(o->vol, &m);
		}
		if (rt_fd_kind((int)fd) != RT_FD_FILE || !o->node->vol)
			return 0;
		return rt__node_call(o->node, &m);
	}
	return rt__vol_simple(t->vol, &m);
}

RT_LOCKED(rt__shield_set_times,
	  (struct rt_target *t, long fd, const struct timespec *ts, int flags),
	  set_times_locked(t, fd, ts, flags))

/* SEEK_DATA / SEEK_HOLE: the memfd's holes are chunks the server evicted, so
 * the server answers from pf's hole map (after writing the file back), and
 * the fd's offset moves to the answer. */
static long seek_locked(long fd, int whence, int64_t off)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct rt_msg m = { .op = RT_OP_SEEK, .flags = (uint32_t)whence, .a = (uint64_t)off };
	struct rt_call call;
	uint64_t out;
	int ret;

	if (rt_fd_kind((int)fd) != RT_FD_FILE || !o->node->vol)
		return rt__raw(SYS_lseek, fd, off, whence);
	if (off < 0)
		return -ENXIO;
	if (rt__node_dead(o->node))
		return -EIO;
	m.id = o->node->id;
	ret = rt__cl_call(o->node->vol, &m, &call);
	if (ret == 0 && call.size != sizeof(out))
		ret = -EPROTO;
	if (ret == 0)
		memcpy(&out, call.body, sizeof(out));
	rt__cl_done(o->node->vol, &call);
	if (ret)
		return ret;
	return rt__raw(SYS_lseek, fd, (long)out, SEEK_SET);
}

RT_LOCKED(rt__shield_seek, (long fd, int whence, int64_t off), seek_locked(fd, whence, off))

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

RT_LOCKED(rt__shield_chdir, (struct rt_target *t), chdir_locked(t))

static long link_locked(struct rt_target *a, long fd, struct rt_target *b, int flags)
{
	struct rt_msg m = { .op = RT_OP_LINK, .flags = (uint32_t)(flags & AT_SYMLINK_FOLLOW),
			    .path = a ? a->rel : "", .path2 = b->rel };
	struct rt_ofd *o;
	long r;

	if (a)
		return rt__vol_simple(b->vol, &m);
	/* By descriptor: the file it holds (an O_TMPFILE file gets its name). */
	o = rt_fd_get((int)fd);
	if (rt_fd_kind((int)fd) == RT_FD_DIR)
		return -EPERM; /* link(2) of a directory */
	if (rt_fd_kind((int)fd) != RT_FD_FILE || !o->node->vol)
		return -EXDEV;
	if (o->node->vol != b->vol)
		return -EXDEV;
	m.path = "";
	m.id = o->node->id;
	m.path2 = b->rel;
	r = rt__node_call(o->node, &m);
	if (r == 0)
		o->node->unlinked = false;
	return r;
}

RT_LOCKED(rt__shield_link, (struct rt_target *a, long fd, struct rt_target *b, int flags),
	  link_locked(a, fd, b, flags))

static long symlink_locked(const char *target, struct rt_target *t)
{
	struct rt_msg m = { .op = RT_OP_SYMLINK, .path = target, .path2 = t->rel };

	if (!target[0])
		return -ENOENT;
	return rt__vol_simple(t->vol, &m);
}

RT_LOCKED(rt__shield_symlink, (const char *target, struct rt_target *t), symlink_locked(target, t))

static long readlink_locked(struct rt_target *t, char *buf, size_t size)
{
	struct rt_msg m = { .op = RT_OP_READLINK, .path = t->rel };
	struct rt_stat_reply r;
	struct rt_call call;
	long ret;

	if (t->vfile)
		return -EINVAL;
	/* Most names are not symlinks: the (cached) lstat answers those. */
	ret = rt__lookup_nofollow(t->vol, t->rel, &r);
	if (ret)
		return ret;
	if (!S_ISLNK(r.mode))
		return -EINVAL;
	ret = rt__vol_call(t->vol, &m, &call);
	if (ret == 0) {
		ret = (long)(call.size < size ? call.size : size);
		memcpy(buf, call.body, (size_t)ret);
	}
	rt__cl_done(t->vol, &call);
	return ret;
}

RT_LOCKED(rt__shield_readlink, (struct rt_target *t, char *buf, size_t size),
	  readlink_locked(t, buf, size))

long rt__shield_escape(struct rt_target *t, int flags, char *out, size_t size)
{
	struct rt_msg m = { .op = RT_OP_ESCAPE, .path = t->rel,
			    .flags = (flags & AT_SYMLINK_NOFOLLOW) ? RT_STAT_NOFOLLOW : 0 };
	char rest[RT_PATH_SIZE];
	struct rt_call call;
	struct rt_guard g;
	int ret;

	if (t->vfile)
		return 0;
	rt__lock(&g);
	ret = rt__vol_call(t->vol, &m, &call);
	if (ret == 0 && (call.size == 0 || call.size > sizeof(rest) ||
			 call.body[call.size - 1] != '\0'))
		ret = -EPROTO;
	if (ret == 0)
		memcpy(rest, call.body, call.size);
	rt__cl_done(t->vol, &call);
	rt__unlock(&g);
	if (ret)
		return ret;
	if (!rest[0])
		return 0;
	/* Relative: from the directory the program sees the volume at. */
	if (rt_path_normalize(rest[0] == '/' ? NULL : t->vol->cfg->mount, rest, out, size))
		return -ENAMETOOLONG;
	return 1;
}
