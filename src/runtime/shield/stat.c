/* kiln runtime, file shield: stat of volume paths and protected fds: the
 * plaintext size, the mode kept in the volume, a stable inode number. */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

/* ---- stat ----------------------------------------------------------------- */
uint64_t rt__ino_of(const char *rel)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const char *p = rel; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h | 1;
}

void rt__fill_stat(struct stat *out, struct rt_vol *vol, const char *rel,
		   const struct pf_stat *ps, const struct stat *mem)
{
	memset(out, 0, sizeof(*out));
	out->st_dev = vol ? vol->dev : 0x6b6c6e; /* injected files: a fixed device */
	out->st_ino = rt__ino_of(rel);
	out->st_mode = (ps->is_dir ? S_IFDIR : S_IFREG) | (ps->mode & 07777);
	out->st_nlink = ps->is_dir ? 2 : 1;
	out->st_uid = g_uid;
	out->st_gid = g_gid;
	out->st_blksize = 4096;
	if (mem) {
		out->st_size = mem->st_size;
		out->st_mtim = mem->st_mtim;
	} else {
		out->st_size = (off_t)ps->size;
		out->st_mtim.tv_sec = ps->mtime_ns / 1000000000;
		out->st_mtim.tv_nsec = ps->mtime_ns % 1000000000;
	}
	out->st_atim = out->st_mtim;
	out->st_ctim = out->st_mtim;
	out->st_blocks = (out->st_size + 511) / 512;
}

/* stat of a volume path: open nodes answer from their memfd. */
long rt__stat_rel(struct rt_vol *vol, const char *rel, struct stat *out)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	struct rt_node *n;
	struct stat mem;
	int ret = pf_stat(vol->pf, rel, &ps, &err);

	if (ret)
		return ret <= -KILN_EBASE ? -EIO : ret;
	n = ps.is_dir ? NULL : rt__node_find(vol, rel);
	if (n && rt__raw(SYS_fstat, n->memfd, &mem) == 0)
		rt__fill_stat(out, vol, rel, &ps, &mem);
	else
		rt__fill_stat(out, vol, rel, &ps, NULL);
	return 0;
}

long rt__stat_fd(long fd, struct stat *out)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct pf_stat ps;
	struct stat mem;

	switch (rt_fd_kind((int)fd)) {
	case RT_FD_FILE:
		/* Lock-free: the node lives as long as fd does. */
		memset(&ps, 0, sizeof(ps));
		ps.mode = o->node->mode;
		if (o->node->vol && !o->node->writable && !o->node->shared) {
			/* Never written: the memfd is as loaded (nginx fstats every
			 * file it serves). */
			mem.st_size = (off_t)o->node->synced_size;
			mem.st_mtim = o->node->mtime;
		} else if (rt__raw(SYS_fstat, o->node->memfd, &mem) < 0) {
			return -EIO;
		}
		rt__fill_stat(out, o->node->vol, o->node->rel, &ps, &mem);
		return 0;
	case RT_FD_DIR:
		return rt__stat_rel(o->vol, o->rel, out);
	default:
		return -EBADF;
	}
}

/* ---- operations ------------------------------------------------------------ */
long rt__shield_stat(struct rt_target *t, struct stat *out)
{
	struct rt_hold h;
	long r;

	rt__hold_light(&h);
	if (t->vfile)
		r = rt__vfile_stat(t->vfile, out);
	else if (rt__fast_ok(t))
		/* sqlite looks for a hot journal before every statement: stat needs
		 * neither the volume lock nor a publish while the volume is as this
		 * process last saw it. */
		r = rt__stat_rel(t->vol, t->rel, out);
	else
		r = -EAGAIN;
	rt__release_light(&h);
	if (r != -EAGAIN)
		return r;
	r = rt__hold(&h);
	if (r == 0)
		r = rt__stat_rel(t->vol, t->rel, out);
	rt__release(&h);
	return r;
}

long rt__shield_fstat(long fd, struct stat *out)
{
	struct rt_hold h;
	long r;

	/* Lock-free for files (nginx fstats every file it serves). */
	if (rt_fd_kind((int)fd) != RT_FD_DIR)
		return rt__stat_fd(fd, out);
	r = rt__hold(&h);
	if (r == 0)
		r = rt__stat_fd(fd, out);
	rt__release(&h);
	return r;
}

static long access_of(const struct stat *st, int mode)
{
	if ((mode & X_OK) && !S_ISDIR(st->st_mode) && !(st->st_mode & 0111))
		return -EACCES;
	return 0;
}

long rt__shield_access(struct rt_target *t, int mode)
{
	struct stat st;
	long r = rt__shield_stat(t, &st);

	return r < 0 ? r : access_of(&st, mode);
}
