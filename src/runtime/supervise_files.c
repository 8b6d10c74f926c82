/* kiln run, supervised mode: protected files (supervise_int.h). The
 * supervisor asks the volume's server (supervise_vols.c) as a libkiln
 * process does.
 *
 * An open of a protected path is the server's OPEN with the program thread's
 * credentials; the program gets a new description of the server's memfd
 * (SECCOMP_IOCTL_NOTIF_ADDFD), so data, size, O_APPEND, locks and mmap are
 * the kernel's, one inode for every process of the workload. The program's
 * reads and writes of it do not trap: the supervisor has the server fill the
 * whole file and map it (RT_OP_MAP: never evicted) while the program holds
 * it, writable opens with RT_MAP_WHOLE (the server takes every byte of the
 * memfd as written at each commit). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pf/pf.h"
#include "runtime/supervise_int.h"

/* ---- held files ------------------------------------------------------------ */
static void file_release(struct sv_file *f)
{
	struct sv_vol *v = f->vol;
	bool live = f->gen == v->gen && v->sock >= 0;

	for (; live && f->wmaps; f->wmaps--) {
		struct rt_msg m = { .op = RT_OP_UNMAP, .id = f->id,
				    .flags = RT_MAP_WRITE | RT_MAP_WHOLE };

		sv_call(v, &m, NULL, NULL, NULL, NULL);
	}
	for (; live && f->rmaps; f->rmaps--) {
		struct rt_msg m = { .op = RT_OP_UNMAP, .id = f->id };

		sv_call(v, &m, NULL, NULL, NULL, NULL);
	}
	for (; live && f->holds; f->holds--) {
		struct rt_msg m = { .op = RT_OP_RELEASE, .id = f->id };

		sv_call(v, &m, NULL, NULL, NULL, NULL);
	}
	close(f->memfd);
	free(f->rel);
	free(f);
}

static void file_unlink(struct sv *sv, struct sv_file *f)
{
	for (struct sv_file **pp = &sv->files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			return;
		}
	}
}

static struct sv_file *file_by_id(struct sv *sv, struct sv_vol *v, uint64_t id)
{
	for (struct sv_file *f = sv->files; f; f = f->next)
		if (f->vol == v && f->gen == v->gen && f->id == id)
			return f;
	return NULL;
}

bool sv_holds_files(const struct sv *sv)
{
	return sv->files != NULL || sv->dirs != NULL;
}

/* f lost its last tracked fd: kept a while for the next open (trim). */
static void kept(struct sv_file *f)
{
	struct stat st;

	f->closed_ns = kiln_now_ns();
	f->kept_bytes = fstat(f->memfd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int fd_add(struct sv *sv, pid_t tgid, int fd, bool writable, struct sv_file *f)
{
	for (size_t i = 0; i < sv->nfds; i++) {
		struct sv_fd *e = &sv->fds[i];

		if (e->tgid == tgid && e->fd == fd) {
			/* A stale entry (closed behind our back: exec with
			 * O_CLOEXEC, dup2 over it): the number is this file's now. */
			if (--e->f->nfds == 0 && e->f != f)
				kept(e->f);
			e->f = f;
			e->writable = writable;
			f->nfds++;
			return 0;
		}
	}
	if (sv->nfds == sv->cap_fds) {
		size_t cap = sv->cap_fds ? 2 * sv->cap_fds : 64;
		struct sv_fd *p = realloc(sv->fds, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		sv->fds = p;
		sv->cap_fds = cap;
	}
	sv->fds[sv->nfds++] = (struct sv_fd){ .tgid = tgid, .fd = fd, .writable = writable, .f = f };
	f->nfds++;
	return 0;
}

static void fd_drop(struct sv *sv, struct sv_fd *e)
{
	e->f->nfds--;
	*e = sv->fds[--sv->nfds];
}

struct sv_fd *sv_fd_find(struct sv *sv, pid_t tid, int fd)
{
	struct sv_cred c;
	bool looked = false;

	/* The process is looked up only when some entry has that number (the
	 * common close is not ours). */
	for (size_t i = 0; i < sv->nfds; i++) {
		if (sv->fds[i].fd != fd)
			continue;
		if (!looked && sv_cred_of(tid, &c))
			return NULL;
		looked = true;
		if (sv->fds[i].tgid == c.tgid)
			return &sv->fds[i];
	}
	return NULL;
}

/* tgid opened a file of v for writing: its exit commits v. */
static void writer(struct sv *sv, pid_t tgid, struct sv_vol *v)
{
	uint32_t bit = 1u << (v - sv->vols);
	size_t free_slot = SV_WRITERS;

	for (size_t i = 0; i < SV_WRITERS; i++) {
		if (sv->writers[i].tgid == tgid) {
			sv->writers[i].vols |= bit;
			return;
		}
		if (!sv->writers[i].tgid && free_slot == SV_WRITERS)
			free_slot = i;
	}
	/* Full: its exit does not commit; the program's end does. */
	if (free_slot < SV_WRITERS)
		sv->writers[free_slot] = (struct sv_writer){ .tgid = tgid, .vols = bit };
}

/* ---- stat answers ----------------------------------------------------------- */
/* The server's answers that hold until the namespace generation moves: a
 * name that does not exist, a directory, a file no memfd holds (its size
 * and times change only through an open, which moves the generation). */
static struct sv_lookup *lookup_slot(struct sv_vol *v, const char *rel, unsigned flags)
{
	return &v->lookups[kiln_fnv1a(KILN_FNV1A_INIT ^ flags, rel, strlen(rel)) % SV_LOOKUPS];
}

static int lookup(struct sv_vol *v, const char *rel, unsigned flags, uint64_t who,
		  uint64_t gen, int *ret, struct rt_stat_reply *r)
{
	struct sv_lookup *l = lookup_slot(v, rel, flags);

	if (gen == UINT64_MAX || l->gen != gen + 1 || l->who != who || l->flags != flags ||
	    strcmp(l->rel, rel) != 0)
		return 0;
	*ret = l->ret;
	*r = l->r;
	return 1;
}

static void lookup_put(struct sv_vol *v, const char *rel, unsigned flags, uint64_t who,
		       uint64_t gen, int ret, const struct rt_stat_reply *r)
{
	struct sv_lookup *l = lookup_slot(v, rel, flags);

	if (gen == UINT64_MAX || strlen(rel) >= sizeof(l->rel) ||
	    !(ret == -ENOENT || ret == -ENOTDIR || (ret == 0 && (r->cacheable || S_ISDIR(r->mode)))))
		return;
	l->gen = gen + 1; /* 0: empty */
	l->who = who;
	l->flags = flags;
	l->ret = ret;
	l->r = ret ? (struct rt_stat_reply){ 0 } : *r;
	snprintf(l->rel, sizeof(l->rel), "%s", rel);
}

/* ---- open ------------------------------------------------------------------ */
static int stat_reply(struct sv_vol *v, const char *rel, unsigned flags, const struct sv_cred *c,
		      struct rt_stat_reply *r);

/* MAP f (whole for writers: the program's writes leave no mark) and, the
 * first time, have the server fill all of it: the program's reads of the
 * memfd do not trap. */
static int file_map(struct sv_file *f, bool writable, char *errmsg)
{
	struct rt_msg m = { .op = RT_OP_MAP, .id = f->id,
			    .flags = writable ? RT_MAP_WRITE | RT_MAP_WHOLE : 0 };
	bool first = !f->rmaps && !f->wmaps;
	struct stat st;
	int ret;

	if (writable ? f->wmaps : f->rmaps)
		return 0;
	ret = sv_call(f->vol, &m, NULL, NULL, NULL, errmsg);
	if (ret)
		return ret;
	if (writable)
		f->wmaps++;
	else
		f->rmaps++;
	if (first && fstat(f->memfd, &st) == 0 && st.st_size > 0) {
		struct rt_msg fill = { .op = RT_OP_FILL, .id = f->id, .a = 0, .b = UINT64_MAX };

		ret = sv_call(f->vol, &fill, NULL, NULL, NULL, errmsg);
	}
	return ret;
}

/* The file an OPEN reply names: the one held, or a new one with the memfd
 * the reply passed (fds: taken). */
static int file_of_reply(struct sv *sv, struct sv_vol *v, const struct rt_stat_reply *r,
			 int fds[2], const char *abs, struct sv_file **out, bool *fresh)
{
	struct sv_file *f = file_by_id(sv, v, r->id);
	struct stat st;

	*fresh = !f;
	if (f) {
		f->holds++;
		*out = f;
		return 0;
	}
	if (fds[0] < 0 || fstat(fds[0], &st))
		return -EIO; /* the server passes the memfd with a process's first hold */
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->vol = v;
	f->gen = v->gen;
	f->id = r->id;
	f->memfd = fds[0];
	fds[0] = -1;
	f->mdev = st.st_dev;
	f->mino = st.st_ino;
	f->holds = 1;
	snprintf(f->path, sizeof(f->path), "%s", abs);
	f->next = sv->files;
	sv->files = f;
	*out = f;
	return 0;
}

/* Nothing of the program refers to f: give it back to the server. */
static void file_drop_if_unused(struct sv *sv, struct sv_file *f)
{
	if (f->nfds)
		return;
	file_unlink(sv, f);
	file_release(f);
}

static long inject(struct sv *sv, const struct seccomp_notif *n, struct sv_file *f, int flags)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", f->memfd);
	/* O_SYNC / O_DSYNC kept for F_GETFL and for supervise_sync.c, which
	 * asks the kernel about the program's fd. */
	fd = open(p, (flags & (O_ACCMODE | O_APPEND | O_SYNC)) | O_CLOEXEC);
	return fd < 0 ? -errno : sv_inject(sv, n, fd, flags);
}

/* After an OPEN by path: what the next open of rel may take without one. */
static void remember(struct sv_file *f, const char *rel, const struct rt_stat_reply *r,
		     const struct sv_cred *c, uint64_t gen)
{
	char *p = strdup(rel);

	free(f->rel);
	f->rel = p;
	f->ns_gen = p ? gen : UINT64_MAX;
	f->who = sv_cred_key(c);
	f->mode = r->mode & 07777;
	f->uid = r->uid;
	f->gid = r->gid;
}

/* A file held already that an open of rel names, with nothing for the server
 * to decide: no name changed since its OPEN (the generation moves with every
 * create, unlink, rename, chmod, chown, truncation), the same credentials,
 * and the file's mode lets them (the kernel's check at open). */
static struct sv_file *known(struct sv *sv, struct sv_vol *v, const char *rel, int flags,
			     const struct sv_cred *c, uint64_t gen)
{
	struct pf_cred pc = { .uid = c->fs.uid, .gid = c->fs.gid, .groups = c->fs.groups,
			      .ngroups = c->fs.ngroups };
	uint64_t who = sv_cred_key(c);

	if (gen == UINT64_MAX || (flags & (O_CREAT | O_TRUNC | O_NOFOLLOW | O_DIRECTORY)))
		return NULL;
	for (struct sv_file *f = sv->files; f; f = f->next) {
		struct pf_stat ps = { .type = PF_TYPE_REG };

		if (f->vol != v || f->gen != v->gen || f->ns_gen != gen || f->who != who ||
		    !f->rel || strcmp(f->rel, rel) != 0)
			continue;
		ps.mode = f->mode;
		ps.uid = f->uid;
		ps.gid = f->gid;
		return pf_permission(&pc, &ps, rt__open_may(flags)) == 0 ? f : NULL;
	}
	return NULL;
}

long sv_open(struct sv *sv, const struct seccomp_notif *n, const char *abs, struct sv_vol *v,
	     const char *rel, int flags, mode_t mode)
{
	const char *call_name = rt_syscall_name(n->data.nr);
	char errmsg[RT_ERRMSG_MAX];
	struct sv_cred c;
	struct rt_stat_reply r;
	struct rt_msg m = { .op = RT_OP_OPEN, .path = rel };
	struct sv_file *f = NULL;
	const uint8_t *body;
	size_t size;
	int fds[2] = { -1, -1 }, acc = flags & O_ACCMODE;
	bool writable = acc != O_RDONLY, fresh = false;
	uint64_t gen;
	int dret;
	long ret;

	/* O_PATH and O_TMPFILE fds would stand for things the supervisor cannot
	 * follow (fchdir, linkat are not trapped). */
	if ((flags & O_PATH) || (flags & O_TMPFILE) == O_TMPFILE)
		return sv_refuse(sv, call_name, n->data.nr, abs);
	if ((ret = sv_cred_of((pid_t)n->pid, &c)))
		return ret;
	gen = sv_ns_gen(v);
	/* A directory known as one (the volume's root is one): opened without
	 * an OPEN (supervise_dirs.c). */
	if (!rel[0] && !(ret = stat_reply(v, rel, 0, &c, &r)))
		return sv_opendir(sv, n, abs, v, rel, flags, &c, &r);
	if (!rel[0])
		return ret;
	if (!(flags & O_CREAT) && lookup(v, rel, 0, sv_cred_key(&c), gen, &dret, &r) && !dret &&
	    S_ISDIR(r.mode))
		return sv_opendir(sv, n, abs, v, rel, flags, &c, &r);
	f = known(sv, v, rel, flags, &c, gen);
	if (f) {
		ret = 0;
		goto have;
	}
	m.flags = (uint32_t)(flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW));
	m.mode = (mode & ~c.umask) & 07777;
	m.cred = &c.fs;
	ret = sv_call(v, &m, &body, &size, fds, errmsg);
	if (ret == -EXDEV)
		return sv_refuse(sv, call_name, n->data.nr, abs); /* a symlink out of the volume */
	if (ret < 0)
		return sv_failed(call_name, v, rel, (int)ret, errmsg);
	ret = size == sizeof(r) ? 0 : -EPROTO;
	if (!ret)
		memcpy(&r, body, sizeof(r));
	if (!ret && S_ISDIR(r.mode)) {
		lookup_put(v, rel, 0, sv_cred_key(&c), gen, 0, &r);
		ret = sv_opendir(sv, n, abs, v, rel, flags, &c, &r);
		goto out;
	}
	if (!ret)
		ret = file_of_reply(sv, v, &r, fds, abs, &f, &fresh);
	if (ret)
		goto out;
	if (flags & O_DIRECTORY) {
		ret = -ENOTDIR;
		goto out;
	}
	remember(f, rel, &r, &c, gen);
have:
	ret = file_map(f, writable, errmsg);
	if (ret) {
		ret = sv_failed(call_name, v, rel, (int)ret, errmsg);
		goto out;
	}
	ret = inject(sv, n, f, flags);
	if (ret >= 0 && fd_add(sv, c.tgid, (int)ret, writable, f))
		ret = -ENOMEM; /* the fd is the program's, untracked: cannot be */
	if (ret >= 0 && writable) {
		v->wrote = true;
		writer(sv, c.tgid, v);
	}
	if (ret >= 0)
		f->closed_ns = 0;
	if (ret >= 0 && (flags & O_DSYNC))
		sv->dsync_opens++;
out:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (f && ret < 0 && fresh)
		file_drop_if_unused(sv, f); /* (one held already keeps its hold) */
	return ret;
}

/* ---- stat and namespace ----------------------------------------------------- */
static void ts_of(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
}

/* The server's answer for rel with c's credentials (maybe from the cache). */
static int stat_reply(struct sv_vol *v, const char *rel, unsigned flags, const struct sv_cred *c,
		      struct rt_stat_reply *r)
{
	struct rt_msg m = { .op = RT_OP_STAT, .flags = flags, .path = rel, .cred = &c->fs };
	char errmsg[RT_ERRMSG_MAX];
	uint64_t who = sv_cred_key(c), gen = sv_ns_gen(v);
	const uint8_t *body;
	size_t size;
	int ret;

	if (lookup(v, rel, flags, who, gen, &ret, r))
		return ret;
	ret = sv_call(v, &m, &body, &size, NULL, errmsg);
	if (!ret && size != sizeof(*r))
		ret = -EPROTO;
	if (!ret)
		memcpy(r, body, sizeof(*r));
	lookup_put(v, rel, flags, who, gen, ret, r);
	return ret ? (int)sv_failed("stat", v, rel, ret, errmsg) : 0;
}

long sv_stat(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, unsigned flags,
	     struct stat *out)
{
	struct rt_stat_reply r;
	struct sv_cred c;
	struct sv_file *f;
	int ret = sv_cred_of(tid, &c);

	if (ret || (ret = stat_reply(v, rel, flags, &c, &r)))
		return ret;
	memset(out, 0, sizeof(*out));
	out->st_dev = v->dev;
	out->st_ino = r.ino;
	out->st_mode = r.mode;
	out->st_nlink = r.nlink;
	out->st_uid = r.uid;
	out->st_gid = r.gid;
	out->st_size = (off_t)r.size;
	out->st_blksize = 4096;
	out->st_blocks = (blkcnt_t)r.blocks;
	ts_of(r.atime_ns, &out->st_atim);
	ts_of(r.mtime_ns, &out->st_mtim);
	ts_of(r.ctime_ns, &out->st_ctim);
	/* A file the program holds is the memfd to its fstat (not trapped):
	 * stat(path) names the same (sqlite takes a difference for a database
	 * moved under it, "attempt to write a readonly database"). */
	f = r.id ? file_by_id(sv, v, r.id) : NULL;
	if (f) {
		out->st_dev = f->mdev;
		out->st_ino = f->mino;
	}
	return 0;
}

long sv_access(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, int mode, int flags)
{
	struct sv_cred c;
	struct stat st;
	struct pf_cred pc;
	struct pf_stat ps = { 0 };
	long ret = sv_stat(sv, tid, v, rel, 0, &st);

	if (ret || (ret = sv_cred_of(tid, &c)))
		return ret;
	/* The real ids unless AT_EACCESS (the kernel's access(2)). */
	pc = (struct pf_cred){ .uid = (flags & AT_EACCESS) ? c.fs.uid : c.ruid,
			       .gid = (flags & AT_EACCESS) ? c.fs.gid : c.rgid,
			       .groups = c.fs.groups, .ngroups = c.fs.ngroups };
	ps.type = S_ISDIR(st.st_mode) ? PF_TYPE_DIR : PF_TYPE_REG;
	ps.mode = st.st_mode & 07777;
	ps.uid = st.st_uid;
	ps.gid = st.st_gid;
	return pf_permission(&pc, &ps, mode & (R_OK | W_OK | X_OK));
}

/* A namespace change with the caller's credentials, then a commit: the
 * program cannot open a volume directory to fsync it, so the change is
 * durable when the call returns (as before the volume server). */
static long ns_call(struct sv_vol *v, pid_t tid, const char *what, struct rt_msg *m)
{
	char errmsg[RT_ERRMSG_MAX];
	struct sv_cred c;
	int ret = sv_cred_of(tid, &c);

	if (ret)
		return ret;
	m->cred = &c.fs;
	ret = sv_call(v, m, NULL, NULL, NULL, errmsg);
	if (ret)
		return sv_failed(what, v, m->path, ret, errmsg);
	sv_commit(v, RT_SYNC_NAMESPACE);
	return 0;
}

long sv_unlink(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, int flags)
{
	struct rt_msg m = { .op = RT_OP_UNLINK, .flags = (uint32_t)(flags & AT_REMOVEDIR),
			    .path = rel };

	(void)sv;
	return ns_call(v, tid, "unlink", &m);
}

long sv_mkdir(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, mode_t mode)
{
	struct rt_msg m = { .op = RT_OP_MKDIR, .path = rel };
	struct sv_cred c;
	int ret = sv_cred_of(tid, &c);

	(void)sv;
	if (ret)
		return ret;
	m.mode = (mode & ~c.umask) & 07777;
	return ns_call(v, tid, "mkdir", &m);
}

long sv_rename(struct sv *sv, pid_t tid, struct sv_vol *v, const char *from, const char *to,
	       unsigned flags)
{
	struct rt_msg m = { .op = RT_OP_RENAME, .flags = flags, .path = from, .path2 = to };

	(void)sv;
	return ns_call(v, tid, "rename", &m);
}

long sv_truncate(struct sv *sv, pid_t tid, struct sv_vol *v, const char *rel, uint64_t size)
{
	struct rt_msg m = { .op = RT_OP_TRUNCATE, .a = size, .path = rel };

	(void)sv;
	return ns_call(v, tid, "truncate", &m);
}

/* ---- fd calls and process ends ---------------------------------------------- */
long sv_fsync(struct sv *sv, struct sv_fd *e)
{
	struct rt_msg m = { .op = RT_OP_FSYNC, .id = e->f->id, .flags = RT_FSYNC_COMMIT };
	char errmsg[RT_ERRMSG_MAX];
	int ret;

	(void)sv;
	if (e->f->gen != e->f->vol->gen)
		return -EIO; /* its server is gone, and what it held with it */
	ret = sv_call(e->f->vol, &m, NULL, NULL, NULL, errmsg);
	if (ret && ret == -EIO && errmsg[0])
		sv_report("fsync", e->f->path, errmsg);
	return ret;
}

/* Files kept after the program's last close, for its next open (a reopen of
 * the memfd, no fill): at most this many, this much plaintext, this long. */
#define SV_KEEP_FILES 64
#define SV_KEEP_BYTES (64ull << 20)
#define SV_KEEP_NS (2ull * 1000000000)

/* f has no tracked fd: give it back unless something of the program still
 * refers to it (a dup, a forked child's copy: tracked from now on, their
 * closes trap; a mapping: looked at again later). */
static void let_go(struct sv *sv, struct sv_file *f)
{
	enum { MAX_REFS = 64 };
	struct sv_ref refs[MAX_REFS];
	size_t n = sv_refs(sv->pid, f->mdev, f->mino, refs, MAX_REFS);

	for (size_t k = 0; k < n; k++)
		if (refs[k].fd >= 0)
			fd_add(sv, refs[k].pid, refs[k].fd, f->wmaps > 0, f);
	if (!n) {
		file_unlink(sv, f);
		file_release(f);
	} else if (!f->nfds) {
		f->closed_ns = kiln_now_ns();
	}
}


/* The files kept after their last close within SV_KEEP_*: the oldest go. */
static void trim(struct sv *sv)
{
	uint64_t now = kiln_now_ns();

	for (size_t pass = 0; pass < SV_KEEP_FILES + 1; pass++) {
		struct sv_file *old = NULL;
		uint64_t bytes = 0;
		size_t n = 0;

		for (struct sv_file *f = sv->files; f; f = f->next) {
			if (f->nfds || !f->closed_ns)
				continue;
			n++;
			bytes += f->kept_bytes;
			if (!old || f->closed_ns < old->closed_ns)
				old = f;
		}
		if (!old || (n <= SV_KEEP_FILES && bytes <= SV_KEEP_BYTES &&
			     now - old->closed_ns < SV_KEEP_NS))
			return;
		let_go(sv, old);
	}
}

void sv_close(struct sv *sv, const struct seccomp_notif *n, struct sv_fd *e)
{
	struct seccomp_notif_addfd add = { 0 };
	struct sv_file *f = e->f;

	if (sv_fd_is(e->tgid, e->fd, f->mdev, f->mino)) {
		/* The program's fd becomes /dev/null (closing the memfd there,
		 * with the process's locks on it, as close does); the kernel
		 * then closes that. So the fd is gone now, when the holders
		 * are looked for, not at some point after the reply. */
		add.id = n->id;
		add.flags = SECCOMP_ADDFD_FLAG_SETFD;
		add.srcfd = (unsigned)sv->devnull;
		add.newfd = (unsigned)e->fd;
		(void)ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
	}
	fd_drop(sv, e);
	if (!f->nfds) {
		kept(f);
		trim(sv);
	}
}

void sv_exit(struct sv *sv, pid_t tid)
{
	struct sv_cred c;

	/* In every freshness mode a process commits what it wrote when it
	 * exits (libkiln's rule), also what it closed before. */
	if (sv_cred_of(tid, &c))
		return;
	for (size_t i = 0; i < SV_WRITERS; i++) {
		if (sv->writers[i].tgid != c.tgid)
			continue;
		for (size_t k = 0; k < sv->nvols; k++)
			if (sv->writers[i].vols & (1u << k))
				sv_commit(&sv->vols[k], 0);
		sv->writers[i].tgid = 0;
	}
	sv_sweep_soon(sv);
}

void sv_sweep(struct sv *sv)
{
	sv_dirs_sweep(sv);
	for (size_t i = 0; i < sv->nfds;) {
		struct sv_fd *e = &sv->fds[i];
		struct sv_file *f = e->f;

		if (sv_fd_is(e->tgid, e->fd, f->mdev, f->mino)) {
			i++;
			continue;
		}
		fd_drop(sv, e); /* exec (O_CLOEXEC), exit, kill */
		if (!f->nfds)
			kept(f);
	}
	trim(sv);
	sv->sweep_at = 0;
}

void sv_sweep_soon(struct sv *sv)
{
	uint64_t soon = kiln_now_ns() + 20 * 1000000ull;

	if (!sv->sweep_at || soon < sv->sweep_at)
		sv->sweep_at = soon;
}

void sv_vols_close(struct sv *sv)
{
	sv_dirs_close(sv);
	while (sv->files) {
		struct sv_file *f = sv->files;

		sv->files = f->next;
		file_release(f);
	}
	free(sv->fds);
	sv->fds = NULL;
	sv->nfds = sv->cap_fds = 0;
	for (size_t i = 0; sv->vols && i < sv->nvols; i++) {
		struct sv_vol *v = &sv->vols[i];

		/* Durable when kiln run returns (the server also commits when its
		 * last client goes, after the reply to nobody). */
		if (v->wrote && v->sock >= 0)
			sv_commit(v, 0);
		if (v->sock >= 0)
			sv_vol_leave(v);
		rt__auth_wipe(&v->keys);
	}
	if (sv->vols)
		kiln_free_secret(sv->vols, RT_MAX_VOLUMES * sizeof(*sv->vols));
	sv->vols = NULL;
	sv->nvols = 0;
}
