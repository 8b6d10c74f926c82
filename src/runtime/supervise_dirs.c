/* kiln run, supervised mode: protected directories the program opens
 * (supervise_int.h). redis opens its AOF directory to fsync it, sqlite a
 * database's directory, and readdir lists one.
 *
 * The program's fd is a new open file description of one empty directory
 * that the supervisor made and removed at once: fstat says a directory, and
 * no name can ever be made in it (the kernel refuses ENOENT in a removed
 * directory), so a call the supervisor does not trap leaves nothing on the
 * host. The supervisor keeps a duplicate of each description, so the
 * listing's position is the description's offset: the program's lseek
 * (rewinddir, seekdir) is untrapped and still moves it, for every fd, dup and
 * forked copy of it. Trapped: getdents64 (the server's listing, by position),
 * fsync/fdatasync (a commit of the names, as libkiln's directory fsync),
 * close, and the *at calls with the fd as their directory (resolve() takes the
 * directory's path). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pf/pf.h"
#include "runtime/supervise_int.h"

/* One getdents64 answers at most this much (the program asks again). */
#define SV_DENTS_MAX ((size_t)64 << 10)

/* The empty, removed directory every directory fd of the program is a
 * description of (made at the first directory open). */
static int dead_dir(struct sv *sv)
{
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (sv->deadfd >= 0)
		return 0;
	snprintf(path, sizeof(path), "%s/kiln-dir.XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
	if (!mkdtemp(path))
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || rmdir(path) || fstat(fd, &st)) {
		int ret = -errno;

		if (fd < 0)
			rmdir(path);
		else
			close(fd);
		return ret;
	}
	sv->deadfd = fd;
	sv->dead_dev = st.st_dev;
	sv->dead_ino = st.st_ino;
	return 0;
}

/* Track the program's (tgid, fd) as a description of d; NULL: no memory. */
static struct sv_dfd *dfd_add(struct sv *sv, pid_t tgid, int fd, struct sv_dir *d)
{
	for (size_t i = 0; i < sv->ndfds; i++) {
		struct sv_dfd *e = &sv->dfds[i];

		if (e->tgid == tgid && e->fd == fd) {
			/* A stale entry (closed behind our back): the number is d's
			 * now (the other directory goes at the end, or at a sweep). */
			e->d->nfds--;
			e->d = d;
			d->nfds++;
			return e;
		}
	}
	if (sv->ndfds == sv->cap_dfds) {
		size_t cap = sv->cap_dfds ? 2 * sv->cap_dfds : 16;
		struct sv_dfd *p = realloc(sv->dfds, cap * sizeof(*p));

		if (!p)
			return NULL;
		sv->dfds = p;
		sv->cap_dfds = cap;
	}
	sv->dfds[sv->ndfds] = (struct sv_dfd){ .tgid = tgid, .fd = fd, .d = d };
	d->nfds++;
	return &sv->dfds[sv->ndfds++];
}

static void dir_free(struct sv *sv, struct sv_dir *d)
{
	for (struct sv_dir **pp = &sv->dirs; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	close(d->fd);
	free(d->list);
	free(d->offs);
	free(d);
}

/* Is the program's (pid, fd) the description d holds? */
static bool same_description(pid_t pid, int fd, const struct sv_dir *d)
{
	return syscall(SYS_kcmp, (pid_t)getpid(), pid, KCMP_FILE, d->fd, fd) == 0;
}

/* d has no tracked fd: forget it unless a process of the program still has
 * its description (a dup, a forked copy: tracked from now on) other than
 * (tgid, fd), which the kernel is about to close. */
static void dir_let_go(struct sv *sv, struct sv_dir *d, pid_t tgid, int fd)
{
	enum { MAX_REFS = 64 };
	struct sv_ref refs[MAX_REFS];
	size_t n = sv_refs(sv->pid, sv->dead_dev, sv->dead_ino, refs, MAX_REFS);

	for (size_t k = 0; k < n; k++)
		if (refs[k].fd >= 0 && !(refs[k].pid == tgid && refs[k].fd == fd) &&
		    same_description(refs[k].pid, refs[k].fd, d))
			dfd_add(sv, refs[k].pid, refs[k].fd, d);
	if (!d->nfds)
		dir_free(sv, d);
}

struct sv_dfd *sv_dfd_find(struct sv *sv, pid_t tid, int fd, bool adopt)
{
	struct sv_cred c;
	bool numbered = false;

	/* The process is looked up only when it may matter (the common close
	 * is not ours). */
	for (size_t i = 0; i < sv->ndfds && !numbered; i++)
		numbered = sv->dfds[i].fd == fd;
	if (!sv->dirs || (!numbered && !adopt) || sv_cred_of(tid, &c))
		return NULL;
	for (size_t i = 0; i < sv->ndfds; i++) {
		if (sv->dfds[i].fd != fd || sv->dfds[i].tgid != c.tgid)
			continue;
		/* A close goes on in the kernel either way; anything else acts
		 * on the directory only while the number is still its
		 * description (close_range and dup2 over it do not trap). */
		if (!adopt || same_description(c.tgid, fd, sv->dfds[i].d))
			return &sv->dfds[i];
		sv_dir_close(sv, &sv->dfds[i]);
		break;
	}
	/* An fd the program got without an open (dup, fork): one of ours? */
	if (!adopt || !sv_fd_is(c.tgid, fd, sv->dead_dev, sv->dead_ino))
		return NULL;
	for (struct sv_dir *d = sv->dirs; d; d = d->next)
		if (same_description(c.tgid, fd, d))
			return dfd_add(sv, c.tgid, fd, d);
	return NULL;
}

const char *sv_dir_path(struct sv *sv, pid_t tid, int fd)
{
	struct sv_dfd *e = sv_dfd_find(sv, tid, fd, true);

	return e ? e->d->path : NULL;
}

long sv_opendir(struct sv *sv, const struct seccomp_notif *n, const char *abs, struct sv_vol *v,
		const char *rel, int flags, const struct sv_cred *c, const struct rt_stat_reply *r)
{
	struct pf_cred pc = { .uid = c->fs.uid, .gid = c->fs.gid, .groups = c->fs.groups,
			      .ngroups = c->fs.ngroups };
	struct pf_stat ps = { .type = PF_TYPE_DIR, .mode = r->mode & 07777, .uid = r->uid,
			      .gid = r->gid };
	struct sv_dir *d;
	long ret;
	int fd;

	/* The kernel's answers: a directory is opened for reading only. */
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT) || (flags & O_TRUNC))
		return -EISDIR;
	ret = pf_permission(&pc, &ps, R_OK);
	if (ret)
		return ret;
	ret = dead_dir(sv);
	if (ret)
		return ret;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	fd = openat(sv->deadfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d->fd = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d->fd < 0) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		free(d);
		return ret;
	}
	d->vol = v;
	d->ino = r->ino;
	snprintf(d->rel, sizeof(d->rel), "%s", rel);
	snprintf(d->path, sizeof(d->path), "%s", abs);
	d->next = sv->dirs;
	sv->dirs = d;
	ret = sv_inject(sv, n, fd, flags); /* closes fd; d->fd is the same description */
	if (ret >= 0 && !dfd_add(sv, c->tgid, (int)ret, d))
		ret = -ENOMEM; /* the fd is the program's, untracked: cannot be */
	if (!d->nfds)
		dir_free(sv, d);
	return ret;
}

/* The listing of d from the server, whole: entries of (ino u64, type u8,
 * name, NUL) and where each one starts. */
static int dir_list(struct sv_dir *d, const struct sv_cred *c)
{
	uint64_t cookie = 0;
	int ret = 0;

	free(d->list);
	free(d->offs);
	d->list = NULL;
	d->offs = NULL;
	d->list_size = d->count = 0;
	do {
		struct rt_msg m = { .op = RT_OP_READDIR, .a = cookie, .path = d->rel,
				    .cred = &c->fs };
		char errmsg[RT_ERRMSG_MAX];
		const uint8_t *body;
		size_t size, pos = 8;
		uint8_t *p;

		ret = sv_call(d->vol, &m, &body, &size, NULL, errmsg);
		if (ret)
			return (int)sv_failed("getdents64", d->vol, d->rel, ret, errmsg);
		if (size < 8)
			return -EPROTO;
		memcpy(&cookie, body, 8);
		p = realloc(d->list, d->list_size + size - 8 + 1);
		if (!p)
			return -ENOMEM;
		d->list = p;
		while (pos < size) {
			size_t *o;
			const uint8_t *nul = size - pos > 9 ? memchr(body + pos + 9, '\0',
								   size - pos - 9) : NULL;

			if (!nul)
				return -EPROTO;
			o = realloc(d->offs, (d->count + 1) * sizeof(*o));
			if (!o)
				return -ENOMEM;
			d->offs = o;
			d->offs[d->count++] = d->list_size;
			memcpy(d->list + d->list_size, body + pos, (size_t)(nul - body) + 1 - pos);
			d->list_size += (size_t)(nul - body) + 1 - pos;
			pos = (size_t)(nul - body) + 1;
		}
	} while (cookie);
	return ret;
}

/* One entry into buf at used (its d_off is the position after it); 0 when it
 * does not fit. */
static size_t put_entry(uint8_t *buf, size_t size, size_t used, uint64_t ino, uint8_t type,
			const char *name, uint64_t next)
{
	size_t nlen = strlen(name);
	size_t reclen = (offsetof(struct dirent64, d_name) + nlen + 1 + 7) & ~(size_t)7;
	struct dirent64 e = { .d_ino = ino, .d_off = (off_t)next, .d_type = type };

	if (used + reclen > size)
		return 0;
	e.d_reclen = (unsigned short)reclen;
	memset(buf + used, 0, reclen);
	memcpy(buf + used, &e, offsetof(struct dirent64, d_name));
	memcpy(buf + used + offsetof(struct dirent64, d_name), name, nlen + 1);
	return reclen;
}

long sv_getdents(struct sv *sv, pid_t tid, struct sv_dfd *e, uint64_t addr, size_t count)
{
	struct sv_dir *d = e->d;
	off_t pos = lseek(d->fd, 0, SEEK_CUR);
	size_t size = count < SV_DENTS_MAX ? count : SV_DENTS_MAX, used = 0;
	struct sv_cred c;
	uint8_t *buf;
	long ret = 0;

	(void)sv;
	if (pos < 0)
		return -errno;
	/* From the start (opendir, rewinddir): the names as they are now. */
	if (pos == 0 || !d->list) {
		ret = sv_cred_of(tid, &c);
		if (!ret)
			ret = dir_list(d, &c);
		if (ret)
			return ret;
	}
	buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	for (;; pos++) {
		size_t k;

		if (pos < 2) {
			k = put_entry(buf, size, used, pos ? 1 : d->ino, DT_DIR, pos ? ".." : ".",
				      (uint64_t)pos + 1);
		} else if ((uint64_t)pos - 2 < d->count) {
			const uint8_t *ent = d->list + d->offs[pos - 2];
			uint64_t ino;

			memcpy(&ino, ent, 8);
			k = put_entry(buf, size, used, ino, ent[8], (const char *)ent + 9,
				      (uint64_t)pos + 1);
		} else {
			break;
		}
		if (!k)
			break;
		used += k;
	}
	if (!used && (uint64_t)pos < d->count + 2)
		ret = -EINVAL; /* the next entry does not fit the buffer */
	else if (used && sv_write_mem(tid, addr, buf, used))
		ret = -EFAULT;
	else if (lseek(d->fd, pos, SEEK_SET) < 0)
		ret = -errno;
	else
		ret = (long)used;
	free(buf);
	return ret;
}

long sv_dir_fsync(struct sv_dfd *e)
{
	struct rt_msg m = { .op = RT_OP_SYNCALL, .flags = RT_SYNC_NAMESPACE };
	char errmsg[RT_ERRMSG_MAX];
	int ret = sv_call(e->d->vol, &m, NULL, NULL, NULL, errmsg);

	if (ret)
		sv_report("fsync", e->d->path, errmsg[0] ? errmsg : kiln_strerror(ret));
	return ret;
}

void sv_dir_close(struct sv *sv, struct sv_dfd *e)
{
	struct sv_dir *d = e->d;
	pid_t tgid = e->tgid;
	int fd = e->fd;

	d->nfds--;
	*e = sv->dfds[--sv->ndfds];
	if (!d->nfds)
		dir_let_go(sv, d, tgid, fd);
}

void sv_dirs_sweep(struct sv *sv)
{
	for (size_t i = 0; i < sv->ndfds;) {
		struct sv_dfd *e = &sv->dfds[i];

		if (sv_fd_is(e->tgid, e->fd, sv->dead_dev, sv->dead_ino))
			i++;
		else
			sv_dir_close(sv, e); /* exec (O_CLOEXEC), exit, kill */
	}
}

void sv_dirs_close(struct sv *sv)
{
	while (sv->dirs)
		dir_free(sv, sv->dirs);
	free(sv->dfds);
	sv->dfds = NULL;
	sv->ndfds = sv->cap_dfds = 0;
	if (sv->deadfd >= 0)
		close(sv->deadfd);
	sv->deadfd = -1;
}
