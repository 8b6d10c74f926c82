/* kiln runtime, file shield v2: the volume server's requests (one handler
 * per operation of proto.h, chosen by srv_serve from a table), with the
 * caller's credentials. A handler returns 0 once its reply is sent (or
 * deferred: FSYNC and SYNCALL wait for server.c's next commit), or an error
 * for srv_serve's caller to send as the reply. pf checks the caller on every
 * call given a cred; the server's own looks pass none. */
#include "runtime/shield/srv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

/* ---- holds: what each client process has open or mapped -------------------- */
static struct shold *hold_of(struct sconn *c, struct sfile *f, bool add)
{
	struct sclient *cl = c->cl;

	for (size_t i = 0; i < cl->nholds; i++)
		if (cl->holds[i].f == f)
			return &cl->holds[i];
	if (!add)
		return NULL;
	if (cl->nholds == cl->cap) {
		size_t cap = cl->cap ? 2 * cl->cap : 8;
		struct shold *p = realloc(cl->holds, cap * sizeof(*p));

		if (!p)
			return NULL;
		cl->holds = p;
		cl->cap = cap;
	}
	cl->holds[cl->nholds] = (struct shold){ .f = f };
	return &cl->holds[cl->nholds++];
}

static void hold_drop_empty(struct sconn *c, struct shold *h)
{
	if (h->holds || h->maps)
		return;
	*h = c->cl->holds[--c->cl->nholds];
}


/* ---- requests ----------------------------------------------------------------- */
int srv_reply(struct sconn *c, int status)
{
	size_t len = status < 0 ? strlen(g_srv.errmsg) : 0;
	int ret = rt__reply_send(c->fd, status, g_srv.errmsg, len, NULL, 0);

	g_srv.errmsg[0] = '\0';
	return ret;
}

/* cred: the caller's (search permission on the way), NULL for the server's
 * own look at a file it holds. */
static int stat_path(const char *path, const struct pf_cred *cred, unsigned flags,
		     struct rt_stat_reply *r)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	struct sfile *f;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = pf_statat(g_srv.vol, PF_ROOT_INO, path,
			(flags & RT_STAT_NOFOLLOW) ? PF_AT_NOFOLLOW : 0, cred, &ps, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	f = ps.type == PF_TYPE_REG ? sf_by_ino(ps.ino) : NULL;
	/* A FIFO's kernel object, for the open that usually follows (a new
	 * server has none yet); the way to a socket's, for a connect. */
	if ((ps.type == PF_TYPE_FIFO || ps.type == PF_TYPE_SOCK) && (ret = sn_ready(&ps, cred)))
		return ret;
	r->ino = ps.ino;
	r->mode = pf_type_mode(ps.type) | (ps.mode & 07777);
	r->nlink = ps.nlink;
	r->uid = ps.uid;
	r->gid = ps.gid;
	r->size = ps.size;
	r->atime_ns = ps.atime_ns;
	r->mtime_ns = ps.mtime_ns;
	r->ctime_ns = ps.ctime_ns;
	r->blocks = ps.blocks;
	r->kind = ps.kind;
	r->cacheable = !f;
	r->id = f ? f->id : 0;
	return f ? sf_stat(f, r) : 0;
}

/* utimensat's checks: both times omitted, none; both now, the owner or a
 * writer; any explicit time, the owner. f: a file the server holds (path
 * NULL: one without a name). */
static int may_set_times(const struct pf_cred *cred, const char *path, struct sfile *f,
			 unsigned flags)
{
	unsigned ut = flags & RT_UT_ALL;
	bool now = ut == (RT_UT_ATIME_NOW | RT_UT_MTIME_NOW);
	struct pf_stat ps;
	int ret;

	if (ut == (RT_UT_ATIME_OMIT | RT_UT_MTIME_OMIT))
		return 0;
	if (path)
		return srv_may_setattr(cred, path, now);
	if ((ret = pf_fstat(f->pf, &ps)))
		return ret;
	return srv_may_setattr_of(cred, &ps, now);
}

/* utimensat of a path whose file the server does not hold (pf checks the
 * caller again). */
static struct pf_setattr times_of(unsigned flags, int64_t atime_ns, int64_t mtime_ns)
{
	struct pf_setattr sa = { .atime_ns = atime_ns, .mtime_ns = mtime_ns };

	if (!(flags & RT_UT_ATIME_OMIT))
		sa.valid |= (flags & RT_UT_ATIME_NOW) ? PF_SET_ATIME_NOW : PF_SET_ATIME;
	if (!(flags & RT_UT_MTIME_OMIT))
		sa.valid |= (flags & RT_UT_MTIME_NOW) ? PF_SET_MTIME_NOW : PF_SET_MTIME;
	return sa;
}

static int set_times(const char *path, const struct pf_cred *cred, unsigned flags,
		     int64_t atime_ns, int64_t mtime_ns)
{
	struct kiln_err err = { 0 };
	struct pf_setattr sa = times_of(flags, atime_ns, mtime_ns);
	int ret = pf_setattrat(g_srv.vol, PF_ROOT_INO, path, 0, &sa, cred, &err);

	return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
}

/* utimensat(AT_SYMLINK_NOFOLLOW) and lchown by path: when the last component
 * is a symlink, the link's own attributes change (pf checks the caller as for
 * any inode; a symlink is never a file the server holds). 1 when path names
 * something else: the caller goes on as for a followed path. */
static int link_setattr(const char *path, const struct pf_cred *cred,
			const struct pf_setattr *sa)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	int ret = pf_statat(g_srv.vol, PF_ROOT_INO, path, PF_AT_NOFOLLOW, cred, &ps, &err);

	if (!ret && ps.type != PF_TYPE_LNK)
		return 1;
	if (!ret)
		ret = pf_setattrat(g_srv.vol, PF_ROOT_INO, path, PF_AT_NOFOLLOW, sa, cred, &err);
	return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
}

static void ns_changed(void)
{
	atomic_fetch_add(&g_srv.vseg->ns_gen, 1);
}

/* The reply's account of this request's own change, which began at
 * generation from (the server does one request at a time: whatever moved
 * the generation since is this request's). A volume with symlinks is not
 * vouched for: a path there may name a node another path names too. */
static void own_change(struct rt_own *o, const char *path, uint64_t from, uint64_t ino,
		       uint64_t id)
{
	const char *last = path ? strrchr(path, '/') : NULL;

	last = last ? last + 1 : path;
	o->from = from;
	o->to = atomic_load(&g_srv.vseg->ns_gen);
	o->ino = ino;
	o->id = id;
	/* The client matches a name by its string: only a plain one. */
	o->vouched = pf_volume_symlinks(g_srv.vol) == 0 &&
		     (!path || (last[0] && strcmp(last, ".") && strcmp(last, "..")));
}

/* The attributes of a file the server holds (named or not). */
static int file_reply(struct sfile *f, struct rt_stat_reply *r)
{
	struct pf_stat ps;

	memset(r, 0, sizeof(*r));
	if (pf_fstat(f->pf, &ps) == 0) {
		r->ino = ps.ino;
		r->kind = ps.kind;
	}
	r->id = f->id;
	return sf_stat(f, r);
}

/* OPEN: flags as open(2) (O_NOFOLLOW, O_TMPFILE: path is the directory),
 * with the caller's credentials. */
static int do_open(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct rt_stat_reply r;
	struct sfile *f = NULL;
	struct shold *h = NULL;
	unsigned sflags = (m->flags & O_NOFOLLOW) ? RT_STAT_NOFOLLOW : 0;
	int ret, fds[2], flags = (int)m->flags;
	uint64_t from = atomic_load(&g_srv.vseg->ns_gen);
	bool first;

	if ((m->flags & O_TMPFILE) == O_TMPFILE) {
		if ((m->flags & O_ACCMODE) == O_RDONLY)
			return -EINVAL;
		ret = sf_tmpfile(m->path, (int)m->flags, m->mode & 07777, cred, &f);
		if (!ret)
			ret = file_reply(f, &r);
		goto hold;
	}
	/* O_EXCL: a name that exists, symlink or not, is EEXIST. */
	if ((m->flags & O_CREAT) && (m->flags & O_EXCL))
		sflags = RT_STAT_NOFOLLOW;
	ret = stat_path(m->path, cred, sflags, &r);
	if (ret == 0 && (m->flags & O_CREAT) && (m->flags & O_EXCL))
		return -EEXIST;
	if (ret == 0 && S_ISLNK(r.mode))
		return -ELOOP; /* O_NOFOLLOW */
	if (ret == 0 && S_ISDIR(r.mode)) {
		struct pf_stat ps = { .type = PF_TYPE_DIR, .mode = r.mode & 07777, .uid = r.uid,
				      .gid = r.gid };

		if ((m->flags & O_ACCMODE) == O_RDONLY && !(m->flags & O_CREAT) &&
		    (ret = pf_permission(cred, &ps, PF_MAY_READ)))
			return ret;
		return (m->flags & O_ACCMODE) != O_RDONLY || (m->flags & O_CREAT) ? -EISDIR :
		       rt__reply_send(c->fd, 0, &r, sizeof(r), NULL, 0);
	}
	if (ret == 0 && !S_ISREG(r.mode))
		return -ENXIO; /* a FIFO or socket node: the client's business */
	if (ret && ret != -ENOENT)
		return ret;
	if (ret == -ENOENT && !(m->flags & O_CREAT))
		return ret;
	if (ret == 0) {
		struct pf_stat ps = { .type = PF_TYPE_REG, .mode = r.mode & 07777, .uid = r.uid,
				      .gid = r.gid };

		if ((flags & O_CREAT) && (flags & O_EXCL))
			return -EEXIST;
		if ((ret = pf_permission(cred, &ps, rt__open_may(flags))))
			return ret;
	} else {
		/* A new file belongs to the caller (with the group of a
		 * set-group-ID directory), if the caller may write the
		 * directory: pf makes it so. Its name is where the path leads:
		 * through a dangling symlink, the symlink's target. */
		struct pf_resolved rs = { 0 };

		ret = pf_resolve(g_srv.vol, PF_ROOT_INO, m->path, PF_AT_PARENT, cred, &rs, &err);
		free(rs.rest);
		if (ret == PF_RESOLVE_ESCAPED)
			return -EXDEV;
		if (ret == 0 && !rs.ino)
			ret = pf_mknodat(g_srv.vol, rs.parent, rs.name, S_IFREG | (m->mode & 07777),
					 cred, &err);
		if (ret)
			return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
		if (!rs.ino) { /* made here (else made meanwhile: open it as asked) */
			flags &= ~(O_CREAT | O_EXCL | O_TRUNC);
			ns_changed();
		}
	}
	ret = sf_open(m->path, flags, m->mode, &f);
	if (!ret)
		ret = file_reply(f, &r);
	if (!ret)
		own_change(&r.own, m->path, from, r.ino, 0);
hold:
	if (!ret && !(h = hold_of(c, f, true)))
		ret = -ENOMEM;
	if (ret) {
		if (f) {
			f->holds++;
			sf_unhold(f); /* frees it if nobody else holds it and it is gone */
		}
		return ret;
	}
	first = !h->holds && !h->maps;
	h->holds++;
	h->reads |= (flags & O_ACCMODE) != O_WRONLY;
	h->writes |= (flags & O_ACCMODE) != O_RDONLY;
	f->holds++;
	fds[0] = f->memfd;
	fds[1] = f->statefd;
	return rt__reply_send(c->fd, 0, &r, sizeof(r), fds, first ? 2 : 0);
}

static struct sfile *file_of(struct sconn *c, uint64_t id);

/* LINK: path2 names the inode of path (PF_AT_FOLLOW with AT_SYMLINK_FOLLOW),
 * or of the file the client holds as id (AT_EMPTY_PATH, /proc/self/fd/N, an
 * O_TMPFILE file). */
static int do_link(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct sfile *f = NULL;
	int ret;

	if (m->id) {
		struct pf_stat ps;

		if (!(f = file_of(c, m->id)))
			return -EBADF;
		if ((ret = pf_fstat(f->pf, &ps)))
			return ret;
		ret = pf_link_ino(g_srv.vol, ps.ino, PF_ROOT_INO, m->path2, cred, &err);
	} else {
		ret = pf_linkat(g_srv.vol, PF_ROOT_INO, m->path, PF_ROOT_INO, m->path2,
				(m->flags & AT_SYMLINK_FOLLOW) ? PF_AT_FOLLOW : 0, cred, &err);
		f = sf_by_path(m->path2);
	}
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	if (f)
		sf_linked(f, m->path2);
	ns_changed();
	return srv_reply(c, 0);
}

/* After the name of a node went: a FIFO or socket with no name left loses its
 * kernel object (ps: its attributes before; zeros when there was none). */
static void special_gone(const struct pf_stat *ps)
{
	struct pf_stat now;

	if ((ps->type == PF_TYPE_FIFO || ps->type == PF_TYPE_SOCK) &&
	    pf_getattr(g_srv.vol, ps->ino, &now) == -ENOENT)
		sn_gone(ps->ino);
}

/* MKNOD: a FIFO or socket node; its inode number in the reply. Devices are
 * refused (a volume has no device support, as a nodev file system). */
static int do_mknod(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	uint64_t ino;
	int ret;

	if ((m->mode & S_IFMT) != S_IFIFO && (m->mode & S_IFMT) != S_IFSOCK)
		return (m->mode & S_IFMT) == S_IFCHR || (m->mode & S_IFMT) == S_IFBLK ? -EPERM : -EINVAL;
	ret = pf_mknodat(g_srv.vol, PF_ROOT_INO, m->path, (mode_t)m->mode, cred, &err);
	if (!ret)
		ret = pf_statat(g_srv.vol, PF_ROOT_INO, m->path, PF_AT_NOFOLLOW, NULL, &ps, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	ns_changed();
	ret = sn_ready(&ps, cred);
	if (ret) {
		pf_unlinkat(g_srv.vol, PF_ROOT_INO, m->path, 0, NULL, NULL);
		return ret;
	}
	ino = ps.ino;
	return rt__reply_send(c->fd, 0, &ino, sizeof(ino), NULL, 0);
}

/* ESCAPE: a path whose walk leaves the volume through a symlink (pf answers
 * EXDEV to every other call on it): the rest of the path, for the client to
 * continue on the host. */
static int do_escape(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct pf_resolved out = { 0 };
	int ret = pf_resolve(g_srv.vol, PF_ROOT_INO, m->path,
			     (m->flags & RT_STAT_NOFOLLOW) ? PF_AT_NOFOLLOW : 0, cred, &out, &err);

	if (ret == PF_RESOLVE_ESCAPED) {
		size_t n = strlen(out.rest);

		ret = n >= RT_MSG_PATH_MAX ? -ENAMETOOLONG :
		      rt__reply_send(c->fd, 0, out.rest, n + 1, NULL, 0);
		free(out.rest);
		return ret;
	}
	free(out.rest);
	if (ret < 0)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	return rt__reply_send(c->fd, 0, "", 1, NULL, 0);
}

static int do_readlink(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	char buf[PF_MAX_PATH];
	ssize_t n = pf_readlinkat(g_srv.vol, PF_ROOT_INO, m->path, buf, sizeof(buf), cred, &err);

	if (n < 0)
		return n > -KILN_EBASE ? (int)n : srv_fail((int)n, &err);
	return rt__reply_send(c->fd, 0, buf, (size_t)n, NULL, 0);
}

/* After a name went (unlink, rename over it): a file the server holds whose
 * last name it was lives on without one. */
static void name_gone(struct sfile *f)
{
	if (!f)
		return;
	sf_attrs(f);
	if (atomic_load(&f->seg->nlink) == 0)
		sf_unlinked(f);
}

/* Entries of a directory from cookie m->a (pf's cookies: "." and ".." are
 * left out, the client makes its own). */
static int do_readdir(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	enum { BATCH = 64 };
	struct kiln_err err = { 0 };
	struct pf_dirent *ents = NULL;
	struct pf_stat ps;
	size_t used = 8, n;
	uint8_t *out = NULL;
	uint64_t cookie = m->a, next = 0;
	bool full = false;
	int ret = srv_may_list(cred, m->path);

	if (ret)
		return ret;
	ret = pf_statat(g_srv.vol, PF_ROOT_INO, m->path, 0, cred, &ps, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	if (ps.type != PF_TYPE_DIR)
		return -ENOTDIR;
	out = malloc(RT_MSG_MAX - RT_MSG_HDR);
	ents = calloc(BATCH, sizeof(*ents));
	if (!out || !ents) {
		ret = -ENOMEM;
		goto out;
	}
	while (!full) {
		ret = pf_readdir_ino(g_srv.vol, ps.ino, cookie, ents, BATCH, &n, &err);
		if (ret) {
			ret = ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
			goto out;
		}
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			size_t nlen = strlen(ents[i].name);

			if (strcmp(ents[i].name, ".") == 0 || strcmp(ents[i].name, "..") == 0) {
				cookie = ents[i].cookie;
				continue;
			}
			if (used + 9 + nlen + 1 > RT_MSG_MAX - RT_MSG_HDR) {
				next = cookie;
				full = true;
				break;
			}
			memcpy(out + used, &ents[i].ino, 8);
			out[used + 8] = (uint8_t)IFTODT(pf_type_mode(ents[i].type));
			memcpy(out + used + 9, ents[i].name, nlen + 1);
			used += 9 + nlen + 1;
			cookie = ents[i].cookie;
		}
	}
	memcpy(out, &next, 8);
	ret = rt__reply_send(c->fd, 0, out, used, NULL, 0);
out:
	free(ents);
	free(out);
	return ret;
}

static struct sfile *file_of(struct sconn *c, uint64_t id)
{
	struct sfile *f = sf_by_id(id);

	/* A client may only name files it holds. */
	return f && hold_of(c, f, false) ? f : NULL;
}

static const char *path_or_file(struct sconn *c, const struct rt_msg *m, struct sfile **f)
{
	*f = NULL;
	if (m->id == 0)
		return m->path;
	*f = file_of(c, m->id);
	return *f ? (*f)->path : NULL;
}

static int do_stat(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct rt_stat_reply r;
	int ret = stat_path(m->path, cred, m->flags, &r);

	return ret ? ret : rt__reply_send(c->fd, 0, &r, sizeof(r), NULL, 0);
}

/* ATTACH: a forked or exec'd process that holds the file already (named by
 * id, or by the inode of its memfd). */
static int do_attach(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct rt_stat_reply r;
	struct sfile *f = m->id ? sf_by_id(m->id) : sf_by_memfd_ino(m->a);
	struct shold *h;
	int ret, fds[2];
	bool first;

	(void)cred;
	if (!m->id && !f)
		return -ENOENT;
	if (!f || !(h = hold_of(c, f, true)))
		return -ESTALE;
	if ((ret = file_reply(f, &r)))
		return ret;
	first = !h->holds && !h->maps;
	h->holds++;
	f->holds++;
	r.id = f->id;
	fds[0] = f->memfd;
	fds[1] = f->statefd;
	return rt__reply_send(c->fd, 0, &r, sizeof(r), fds,
			      (m->flags & RT_ATTACH_HAVE) ? 0 :
			      first || (m->flags & RT_ATTACH_FDS) ? 2 : 0);
}

static int do_release(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	struct shold *h;

	(void)cred;
	if (!(f = file_of(c, m->id)) || !(h = hold_of(c, f, false)) || !h->holds)
		return -EBADF;
	h->holds--;
	hold_drop_empty(c, h);
	sf_unhold(f);
	return srv_reply(c, 0);
}

static int do_fill(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	int ret;

	(void)cred;
	if (!(f = file_of(c, m->id)))
		return -EBADF;
	ret = sf_fill(f, m->a, m->b);
	if (!ret)
		ret = srv_reply(c, 0);
	/* The client reads what it asked for while the read-ahead runs. */
	sf_readahead(f);
	sf_balance(false);
	return ret;
}

/* STREAM: tags for the program's own decrypt of clean chunks, with the
 * hand-over first (docs/runtime.md "What each process holds"). Failures are
 * not logged: the client then asks for a fill, which decides and logs. */
static int do_stream(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct pf_stream_info info;
	struct sfile *f = file_of(c, m->id);
	size_t hdr = (m->flags & RT_STREAM_KEY) ? sizeof(info) : 0;
	int ret = 0, fd = -1;

	(void)cred;
	if (!f)
		return -EBADF;
	if (!hold_of(c, f, false)->reads || f->wmaps || m->b > RT_STREAM_MAX)
		return -EACCES;
	if (hdr && (ret = pf_stream_key(f->pf, &info, &fd)))
		return ret;
	memcpy(g_srv.buf, &info, hdr);
	kiln_wipe(&info, sizeof(info));
	ret = pf_stream_tags(f->pf, m->a, (size_t)m->b, g_srv.buf + hdr, NULL);
	if (!ret) {
		g_srv.n_streams++;
		g_srv.stream_chunks += m->b;
		ret = rt__reply_send(c->fd, 0, g_srv.buf, hdr + m->b * PF_STREAM_TAG, &fd,
				     fd >= 0);
	}
	kiln_wipe(g_srv.buf, hdr);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* WSTREAM: the program seals and writes whole chunks at the end of the file
 * itself (docs/runtime.md "What each process holds"): reserve, then the tags
 * (DONE) or CANCEL. Not logged: -EAGAIN and the refusals send the client
 * the usual way, which decides and logs. */
static int do_wstream(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct pf_stream_info info;
	struct sfile *f = file_of(c, m->id);
	bool key = m->flags & RT_STREAM_KEY;
	int ret, fd = -1;

	(void)cred;
	if (!f)
		return -EBADF;
	if (m->flags & RT_WSTREAM_CANCEL)
		return (ret = sf_wstream_cancel(f, c->cl)) ? ret : srv_reply(c, 0);
	if (m->flags & RT_WSTREAM_DONE)
		return (ret = sf_wstream_done(f, c->cl, m->a, m->b, m->tags,
					      m->flags & RT_WSTREAM_NEXT)) < 0 ? ret :
		       srv_reply(c, ret);
	if (!hold_of(c, f, false)->writes)
		return -EACCES;
	if (m->b == 0 || m->b > RT_WSTREAM_MAX)
		return -EINVAL;
	ret = sf_wstream_reserve(f, c->cl, m->a, m->b, key ? &info : NULL, key ? &fd : NULL);
	if (ret)
		return ret;
	if (key)
		memcpy(g_srv.buf, &info, sizeof(info));
	kiln_wipe(&info, sizeof(info));
	ret = rt__reply_send(c->fd, 0, g_srv.buf, key ? sizeof(info) : 0, &fd, fd >= 0);
	kiln_wipe(g_srv.buf, key ? sizeof(info) : 0);
	if (fd >= 0)
		close(fd);
	if (ret)
		sf_wstream_cancel(f, c->cl);
	return ret;
}

/* FSYNC with RT_FSYNC_COMMIT and SYNCALL: the reply waits for the commit
 * after this batch of requests (server.c), shared by every waiter. */
static int do_fsync(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	int ret;

	(void)cred;
	if (!(f = file_of(c, m->id)))
		return -EBADF;
	if (!(m->flags & RT_FSYNC_COMMIT)) {
		ret = sf_writeback(f);
		return ret ? ret : srv_reply(c, 0);
	}
	f->want_commit = true;
	g_srv.need_commit = true;
	c->waiting = true;
	return 0;
}

static int do_syncall(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	(void)cred;
	/* The names only: pf's commit takes the namespace; no file's data has
	 * to be written back for it (that costs a whole file's sealing for a
	 * file mapped writable, or held by a supervised program). */
	if (!(m->flags & RT_SYNC_NAMESPACE))
		g_srv.commit_all = true;
	g_srv.need_commit = true;
	c->waiting = true;
	return 0;
}

static int do_writeback(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	int ret = 0;

	(void)cred;
	if (m->flags & RT_WB_NUDGE) {
		ret = srv_reply(c, 0);
		g_srv.n_nudges++;
	}
	sf_balance(true);
	/* Nudges are welcome again (also after a nudger died before asking). */
	atomic_store(&g_srv.vseg->wb_nudged, 0);
	return ret ? ret : m->flags & RT_WB_NUDGE ? 0 : srv_reply(c, 0);
}

/* GROW: the state memfd, holding at least m->a words: clients map it and
 * close it (one fd less per open file in every process). */
static int do_grow(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	int ret;

	(void)cred;
	if (!(f = file_of(c, m->id)))
		return -EBADF;
	ret = sf_grow(f, m->a);
	return ret ? ret : rt__reply_send(c->fd, 0, NULL, 0, &f->statefd, 1);
}

static int do_truncate(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct sfile *f;
	const char *path = path_or_file(c, m, &f);
	int ret;

	if (!path && !f)
		return -EBADF;
	/* By path: the caller must be able to write the file (by fd: the fd
	 * was opened for writing). */
	if (!f && (ret = srv_may_write(cred, path)))
		return ret;
	if (!f && (f = sf_by_path(path)) == NULL) {
		ret = pf_truncate(g_srv.vol, path, m->a, &err);
		ret = ret ? srv_fail(ret, &err) : 0;
	} else {
		ret = sf_truncate(f, m->a);
	}
	if (!ret)
		ns_changed();
	return ret ? ret : srv_reply(c, 0);
}

static int do_fallocate(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	int ret;

	(void)cred;
	if (!(f = file_of(c, m->id)))
		return -EBADF;
	ret = sf_fallocate(f, (int)m->flags, m->a, m->b);
	return ret ? ret : srv_reply(c, 0);
}

/* MAP and UNMAP (m->flags: RT_MAP_*): a mapped file's chunks are never
 * evicted; writable mappings are written back when they go. */
static int do_map(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	bool w = m->flags & RT_MAP_WRITE, whole = w && (m->flags & RT_MAP_WHOLE);
	struct sfile *f;
	struct shold *h;

	(void)cred;
	if (m->flags & ~(RT_MAP_WRITE | RT_MAP_WHOLE))
		return -EINVAL;
	if (!(f = file_of(c, m->id)) || !(h = hold_of(c, f, false)))
		return -EBADF;
	if (m->op == RT_OP_MAP) {
		h->maps++;
		h->wmaps += w;
		h->wholes += whole;
		f->maps++;
		f->wmaps += w;
		f->wholes += whole;
		atomic_fetch_or(&f->seg->flags, RT_FS_NOEVICT);
	} else {
		if (!h->maps || (w && !h->wmaps) || (whole && !h->wholes))
			return -EINVAL;
		h->maps--;
		h->wmaps -= w;
		h->wholes -= whole;
		sf_unmap(f, m->flags);
	}
	return srv_reply(c, 0);
}

static int do_unlink(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps = { 0 };
	struct sfile *f = NULL;
	struct rt_own own = { 0 };
	uint64_t from = atomic_load(&g_srv.vseg->ns_gen);
	int ret;

	/* The server's own look (no cred): pf_unlinkat checks the caller. */
	if (pf_statat(g_srv.vol, PF_ROOT_INO, m->path, PF_AT_NOFOLLOW, NULL, &ps, NULL) == 0 &&
	    ps.type == PF_TYPE_REG)
		f = sf_by_ino(ps.ino);
	ret = pf_unlinkat(g_srv.vol, PF_ROOT_INO, m->path,
			  m->flags & AT_REMOVEDIR ? PF_AT_REMOVEDIR : 0, cred, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	if (!(m->flags & AT_REMOVEDIR))
		name_gone(f);
	special_gone(&ps);
	ns_changed();
	own_change(&own, m->path, from, ps.ino, f ? f->id : 0);
	return rt__reply_send(c->fd, 0, &own, sizeof(own), NULL, 0);
}

static int do_mkdir(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	int ret = pf_mkdirat(g_srv.vol, PF_ROOT_INO, m->path, m->mode & 07777, cred, &err);

	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	ns_changed();
	return srv_reply(c, 0);
}

static int do_rename(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	struct sfile *f, *to = NULL;
	bool exchange = m->flags & RENAME_EXCHANGE;
	int ret;

	if (m->flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if (strcmp(m->path, m->path2) == 0 && !exchange)
		return srv_reply(c, 0);
	memset(&ps, 0, sizeof(ps));
	if (pf_statat(g_srv.vol, PF_ROOT_INO, m->path2, PF_AT_NOFOLLOW, NULL, &ps, NULL) == 0 &&
	    ps.type == PF_TYPE_REG)
		to = sf_by_ino(ps.ino);
	ret = pf_renameat2(g_srv.vol, PF_ROOT_INO, m->path, PF_ROOT_INO, m->path2,
			   ((m->flags & RENAME_NOREPLACE) ? PF_RENAME_NOREPLACE : 0) |
			   (exchange ? PF_RENAME_EXCHANGE : 0), cred, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	if (exchange) {
		/* The two names swap: open files follow (a volume path never
		 * starts with '/', so the middle name is free). */
		sf_renamed(m->path, "/exchange");
		sf_renamed(m->path2, m->path);
		sf_renamed("/exchange", m->path2);
		if ((f = sf_by_path(m->path)))
			sf_attrs(f);
	} else {
		name_gone(to);
		special_gone(&ps);
		sf_renamed(m->path, m->path2);
	}
	if ((f = sf_by_path(m->path2)))
		sf_attrs(f);
	ns_changed();
	return srv_reply(c, 0);
}

/* CHMOD and CHOWN by path or by a file the client holds. */
static int do_setattr(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	struct pf_setattr sa = { 0 };
	struct sfile *f;
	const char *path = path_or_file(c, m, &f);
	uint64_t from = atomic_load(&g_srv.vseg->ns_gen);
	struct rt_own own = { 0 };
	struct pf_stat ps;
	int ret;

	if (!path && !f)
		return -EBADF;
	if (m->op == RT_OP_CHMOD) {
		sa.valid = PF_SET_MODE;
		sa.mode = m->mode & 07777;
		if (path && (ret = srv_may_setattr(cred, path, false)))
			return ret;
	} else {
		sa.uid = (uid_t)m->a;
		sa.gid = (gid_t)m->b;
		sa.valid = (m->a != (uint32_t)-1 ? PF_SET_UID : 0) |
			   (m->b != (uint32_t)-1 ? PF_SET_GID : 0);
		if (!f && (m->flags & RT_CHOWN_NOFOLLOW) &&
		    (ret = link_setattr(path, cred, &sa)) <= 0) {
			if (!ret)
				ns_changed();
			return ret ? ret : srv_reply(c, 0);
		}
	}
	/* pf checks the caller (again for a chmod by path: it also drops
	 * S_ISGID for an owner outside the file's group, as Linux does; a new
	 * owner takes root, a new group the owner and a member of it). */
	ret = f ? pf_fsetattr(f->pf, &sa, cred, &err) :
	      pf_setattrat(g_srv.vol, PF_ROOT_INO, path, 0, &sa, cred, &err);
	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	if (f || (f = sf_by_path(path)))
		sf_attrs(f);
	ns_changed();
	/* A regular file's attributes: only its inode's answers change. */
	if (f && pf_fstat(f->pf, &ps) == 0)
		own_change(&own, NULL, from, ps.ino, 0);
	return rt__reply_send(c->fd, 0, &own, sizeof(own), NULL, 0);
}

static int do_utimes(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	const char *path = path_or_file(c, m, &f);
	int ret;

	if (!path && !f)
		return -EBADF;
	if (!f && (m->flags & RT_UT_NOFOLLOW) &&
	    (m->flags & RT_UT_ALL) != (RT_UT_ATIME_OMIT | RT_UT_MTIME_OMIT)) {
		struct pf_setattr sa = times_of(m->flags, (int64_t)m->a, (int64_t)m->b);

		if ((ret = link_setattr(path, cred, &sa)) <= 0) {
			if (!ret)
				ns_changed();
			return ret ? ret : srv_reply(c, 0);
		}
	}
	if ((ret = may_set_times(cred, path, f, m->flags)))
		return ret;
	if (!f)
		f = sf_by_path(path);
	ret = f ? sf_utimes(f, m->flags, (int64_t)m->a, (int64_t)m->b) :
	      set_times(path, cred, m->flags, (int64_t)m->a, (int64_t)m->b);
	if (ret)
		return ret;
	ns_changed();
	return srv_reply(c, 0);
}

static int do_seek(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct sfile *f;
	uint64_t out;
	int ret;

	(void)cred;
	if (!(f = file_of(c, m->id)))
		return -EBADF;
	if (m->flags != SEEK_DATA && m->flags != SEEK_HOLE)
		return -EINVAL;
	ret = sf_seek(f, (int)m->flags, m->a, &out);
	return ret ? ret : rt__reply_send(c->fd, 0, &out, sizeof(out), NULL, 0);
}

static int do_symlink(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred)
{
	struct kiln_err err = { 0 };
	int ret = pf_symlinkat(g_srv.vol, m->path, PF_ROOT_INO, m->path2, cred, &err);

	if (ret)
		return ret > -KILN_EBASE ? ret : srv_fail(ret, &err);
	ns_changed();
	return srv_reply(c, 0);
}

typedef int (*srv_op_fn)(struct sconn *c, const struct rt_msg *m, const struct pf_cred *cred);

static const srv_op_fn g_ops[RT_OP_MAX_] = {
	[RT_OP_OPEN] = do_open,         [RT_OP_STAT] = do_stat,
	[RT_OP_ATTACH] = do_attach,     [RT_OP_RELEASE] = do_release,
	[RT_OP_FILL] = do_fill,         [RT_OP_FSYNC] = do_fsync,
	[RT_OP_SYNCALL] = do_syncall,   [RT_OP_WRITEBACK] = do_writeback,
	[RT_OP_GROW] = do_grow,         [RT_OP_TRUNCATE] = do_truncate,
	[RT_OP_FALLOCATE] = do_fallocate, [RT_OP_MAP] = do_map,
	[RT_OP_UNMAP] = do_map,         [RT_OP_UNLINK] = do_unlink,
	[RT_OP_MKDIR] = do_mkdir,       [RT_OP_RENAME] = do_rename,
	[RT_OP_CHMOD] = do_setattr,     [RT_OP_CHOWN] = do_setattr,
	[RT_OP_UTIMES] = do_utimes,     [RT_OP_SEEK] = do_seek,
	[RT_OP_READDIR] = do_readdir,   [RT_OP_LINK] = do_link,
	[RT_OP_SYMLINK] = do_symlink,   [RT_OP_READLINK] = do_readlink,
	[RT_OP_MKNOD] = do_mknod,       [RT_OP_ESCAPE] = do_escape,
	[RT_OP_STREAM] = do_stream,
	[RT_OP_WSTREAM] = do_wstream,
};

int srv_serve(struct sconn *c, const struct rt_msg *m)
{
	const struct pf_cred *cred = NULL;
	int ret;

	g_srv.n_requests++;
	if (m->op >= RT_OP_MAX_ || !g_ops[m->op])
		return -EPROTO;
	g_srv.n_op[m->op]++;
	/* Requests about paths act with their caller's credentials. */
	if (rt__msg_has_cred(m->op) && (ret = srv_cred(m, &cred)))
		return ret;
	return g_ops[m->op](c, m, cred);
}
