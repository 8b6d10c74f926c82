/* kiln fs mount: a protected volume as a plain directory, through FUSE (libfuse3's
 * low-level, inode-based API). FUSE node ids are pf's inode numbers (both name
 * the root 1), so every operation is one pf call by inode number or by
 * (directory inode, name): nothing is kept per node, links, unlink-while-open
 * and renames need no bookkeeping here, and st_ino is pf's stable number. This
 * process holds the volume open (and locked) until unmount. docs/fs.md. */
#include "cli/cli.h"
#include "cli/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "pf/pf.h"

#ifdef KILN_HAVE_FUSE
#include <sys/statvfs.h>

#include "cli/fs_mount.h"

static pf_volume_t *g_vol;
/* The kernel's writeback cache is on (set in fm_init): writes land in the page
 * cache and reach pf_pwrite in large batches at writeback or fsync, and the
 * kernel keeps a regular file's size, mtime and ctime itself, sending them
 * back with setattr. */
static bool g_writeback;
/* Who mounted: a request by this uid and gid creates nodes as pf does without a
 * cred (the fast path); see fm_cred. */
static uid_t g_uid;
static gid_t g_gid;

/* How long the kernel may trust a name or attributes. Every change reaches the
 * volume through this mount (the volume is locked by this process) and the
 * kernel invalidates what its own requests change, so staleness can only come
 * from pf's own atime updates on reads. */
#define FM_TIMEOUT 1.0

/* The open pf handle of a FUSE file (set by fm_open/fm_create). */
static pf_file_t *fm_file(const struct fuse_file_info *fi)
{
	return (pf_file_t *)(uintptr_t)fi->fh;
}

/* kiln's own codes mean "the data is bad": EIO to applications. Positive, for
 * fuse_reply_err. */
static int fm_errno(int code)
{
	if (code >= 0)
		return 0;
	return -code >= KILN_EBASE ? EIO : -code;
}

static void fm_reply_status(fuse_req_t req, int code)
{
	fuse_reply_err(req, fm_errno(code));
}

/* The answer to a request on inode ino that failed with code. An inode gone
 * since the kernel looked its name up (the last name removed by a racing
 * unlink, no handle open) is ESTALE, not ENOENT: for ESTALE the kernel walks the
 * path again with a fresh lookup (open(O_CREAT) then creates the file, as on a
 * local file system, where the dentry would have kept the inode alive);
 * ENOENT would reach the program (CPython test_logging HandlerTest.test_race). */
static void fm_reply_ino_status(fuse_req_t req, int code)
{
	fuse_reply_err(req, code == -ENOENT ? ESTALE : fm_errno(code));
}

static void fm_fill_stat(const struct pf_stat *st, struct stat *out)
{
	memset(out, 0, sizeof(*out));
	out->st_ino = st->ino;
	out->st_mode = pf_type_mode(st->type) | (st->mode & 07777);
	out->st_nlink = st->nlink;
	out->st_uid = st->uid;
	out->st_gid = st->gid;
	out->st_size = (off_t)st->size;
	out->st_blocks = (blkcnt_t)st->blocks;
	out->st_blksize = (blksize_t)st->blksize;
	out->st_atim.tv_sec = st->atime_ns / 1000000000;
	out->st_atim.tv_nsec = st->atime_ns % 1000000000;
	out->st_mtim.tv_sec = st->mtime_ns / 1000000000;
	out->st_mtim.tv_nsec = st->mtime_ns % 1000000000;
	out->st_ctim.tv_sec = st->ctime_ns / 1000000000;
	out->st_ctim.tv_nsec = st->ctime_ns % 1000000000;
}

static void fm_entry(const struct pf_stat *st, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->ino;
	e->generation = 0; /* pf never reuses an inode number */
	fm_fill_stat(st, &e->attr);
	e->attr_timeout = FM_TIMEOUT;
	e->entry_timeout = FM_TIMEOUT;
}

/* Reply to a request that made or named ino: its entry, or the error. */
static void fm_reply_ino(fuse_req_t req, int ret, pf_ino_t ino)
{
	struct fuse_entry_param e;
	struct pf_stat st;

	if (!ret)
		ret = pf_getattr(g_vol, ino, &st);
	if (ret) {
		fm_reply_status(req, ret);
		return;
	}
	fm_entry(&st, &e);
	fuse_reply_entry(req, &e);
}

/* The credentials a create acts with, so the new node belongs to the caller
 * (the kernel has already checked permissions: default_permissions). The
 * mounter's own requests pass NULL, which pf treats as its owner: new nodes
 * belong to this process's euid and egid, the same. Another user's (a mount made
 * by root) carries that user's uid, gid and groups, and pf applies the same
 * rules as the kernel. NULL also when the groups cannot be read. */
static const struct pf_cred *fm_cred(fuse_req_t req, struct pf_cred *cred, gid_t *groups,
				     size_t max)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int n;

	if (ctx->uid == g_uid && ctx->gid == g_gid)
		return NULL;
	n = fuse_req_getgroups(req, (int)max, groups);
	if (n < 0 || (size_t)n > max)
		n = 0;
	cred->uid = ctx->uid;
	cred->gid = ctx->gid;
	cred->groups = groups;
	cred->ngroups = (size_t)n;
	return cred;
}

#define FM_MAX_GROUPS 64

/* Now on the clock the kernel stamps files with (current_time(): the coarse
 * realtime clock). */
static int64_t fm_now_coarse(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A new regular file's times on the kernel's clock. With the writeback cache
 * the kernel stamps the file's later changes itself (`touch` arrives as
 * explicit times from current_time()), so a creation time from pf's finer clock
 * could come after them: mtime would move back (CPython test_pathlib
 * test_touch_common). */
static int fm_stamp_new_file(pf_ino_t ino)
{
	int64_t now = fm_now_coarse();
	struct pf_setattr sa = {
		.valid = PF_SET_ATIME | PF_SET_MTIME | PF_SET_CTIME,
		.atime_ns = now, .mtime_ns = now, .ctime_ns = now,
	};

	return g_writeback ? pf_setattr_ino(g_vol, ino, &sa, NULL, NULL) : 0;
}

/* ---- names ---- */

static void fm_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct pf_stat st;
	int ret = pf_statat(g_vol, parent, name, PF_AT_NOFOLLOW, NULL, &st, NULL);

	if (ret) {
		fm_reply_status(req, ret);
		return;
	}
	fm_entry(&st, &e);
	fuse_reply_entry(req, &e);
}

/* Nothing is kept per node: pf keeps an inode while it has a name or an open
 * handle, and a node the kernel still knows after that answers ENOENT. */
static void fm_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void fm_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void fm_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	gid_t groups[FM_MAX_GROUPS];
	struct pf_cred c;
	struct pf_stat st;
	int ret = pf_mknodat(g_vol, parent, name, mode, fm_cred(req, &c, groups, FM_MAX_GROUPS),
			     NULL);

	if (!ret)
		ret = pf_statat(g_vol, parent, name, PF_AT_NOFOLLOW, NULL, &st, NULL);
	if (!ret && st.type == PF_TYPE_REG)
		ret = fm_stamp_new_file(st.ino);
	fm_reply_ino(req, ret, ret ? 0 : st.ino);
}

static void fm_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	gid_t groups[FM_MAX_GROUPS];
	struct pf_cred c;
	struct pf_stat st;
	int ret = pf_mkdirat(g_vol, parent, name, mode, fm_cred(req, &c, groups, FM_MAX_GROUPS),
			     NULL);

	if (!ret)
		ret = pf_statat(g_vol, parent, name, PF_AT_NOFOLLOW, NULL, &st, NULL);
	fm_reply_ino(req, ret, ret ? 0 : st.ino);
}

static void fm_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	gid_t groups[FM_MAX_GROUPS];
	struct pf_cred c;
	struct pf_stat st;
	int ret = pf_symlinkat(g_vol, target, parent, name,
			       fm_cred(req, &c, groups, FM_MAX_GROUPS), NULL);

	if (!ret)
		ret = pf_statat(g_vol, parent, name, PF_AT_NOFOLLOW, NULL, &st, NULL);
	fm_reply_ino(req, ret, ret ? 0 : st.ino);
}

static void fm_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fm_reply_ino(req, pf_link_ino(g_vol, ino, newparent, newname, NULL, NULL), ino);
}

static void fm_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fm_reply_status(req, pf_unlinkat(g_vol, parent, name, 0, NULL, NULL));
}

static void fm_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fm_reply_status(req, pf_unlinkat(g_vol, parent, name, PF_AT_REMOVEDIR, NULL, NULL));
}

static void fm_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	unsigned pflags = 0;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT: no overlay support */
		return;
	}
	if (flags & RENAME_NOREPLACE)
		pflags |= PF_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		pflags |= PF_RENAME_EXCHANGE;
	fm_reply_status(req, pf_renameat2(g_vol, parent, name, newparent, newname, pflags, NULL,
					  NULL));
}

static void fm_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PF_MAX_PATH];
	ssize_t n = pf_readlink_ino(g_vol, ino, buf, sizeof(buf) - 1, NULL);

	if (n < 0) {
		fm_reply_ino_status(req, (int)n);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- attributes ---- */

static void fm_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pf_stat st;
	struct stat out;
	int ret = fi && fi->fh ? pf_fstat(fm_file(fi), &st) : pf_getattr(g_vol, ino, &st);

	if (ret) {
		fm_reply_ino_status(req, ret);
		return;
	}
	fm_fill_stat(&st, &out);
	fuse_reply_attr(req, &out, FM_TIMEOUT);
}

static int64_t fm_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* chmod, chown, truncate, utimensat, and the kernel's own times of a cached
 * file (FUSE_SET_ATTR_CTIME with the writeback cache). Permissions were checked
 * by the kernel (default_permissions). */
static void fm_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct pf_setattr sa = { 0 };
	int ret;

	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= PF_SET_MODE;
		sa.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= PF_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= PF_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		sa.valid |= PF_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	/* A file whose times the kernel keeps (it sends ctime) gets "now" on the
	 * kernel's clock, the value it sent and used for mtime and ctime: `touch`
	 * leaves atime equal to mtime, as on ext4. */
	if ((to_set & FUSE_SET_ATTR_ATIME_NOW) && !(to_set & FUSE_SET_ATTR_CTIME)) {
		sa.valid |= PF_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa.valid |= PF_SET_ATIME;
		sa.atime_ns = fm_ns(&attr->st_atim);
	}
	if ((to_set & FUSE_SET_ATTR_MTIME_NOW) && !(to_set & FUSE_SET_ATTR_CTIME)) {
		sa.valid |= PF_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa.valid |= PF_SET_MTIME;
		sa.mtime_ns = fm_ns(&attr->st_mtim);
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		sa.valid |= PF_SET_CTIME;
		sa.ctime_ns = fm_ns(&attr->st_ctim);
	}
	if (fi && fi->fh)
		ret = pf_fsetattr(fm_file(fi), &sa, NULL, NULL);
	else
		ret = pf_setattr_ino(g_vol, ino, &sa, NULL, NULL);
	if (ret) {
		fm_reply_ino_status(req, ret);
		return;
	}
	fm_getattr(req, ino, fi);
}

static void fm_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct pf_statfs sf;
	struct statvfs out = { 0 };
	int ret = pf_statfs(g_vol, &sf, NULL);

	if (ret) {
		fm_reply_status(req, ret);
		return;
	}
	out.f_bsize = sf.bsize;
	out.f_frsize = sf.bsize;
	out.f_blocks = sf.blocks;
	out.f_bfree = sf.bfree;
	out.f_bavail = sf.bavail;
	out.f_files = sf.files;
	out.f_ffree = sf.ffree;
	out.f_favail = sf.ffree;
	out.f_namemax = sf.namemax;
	fuse_reply_statfs(req, &out);
}

/* ---- files ---- */

/* With the writeback cache the kernel reads pages of write-only files (to fill
 * partial pages) and applies O_APPEND itself, sending plain writes at offsets. */
static int fm_flags(int flags)
{
	if (!g_writeback)
		return flags;
	if ((flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags & ~O_APPEND;
}

static void fm_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	pf_file_t *f;
	int ret = pf_open_ino(g_vol, ino, fm_flags(fi->flags), NULL, &f, NULL);

	if (ret) {
		fm_reply_ino_status(req, ret);
		return;
	}
	fi->fh = (uintptr_t)f;
	/* Every change goes through this process, so the kernel's page cache stays
	 * valid across opens. */
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		pf_close(f); /* the opener was interrupted: no release will come */
}

static void fm_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	gid_t groups[FM_MAX_GROUPS];
	struct pf_cred c;
	struct pf_stat st;
	pf_file_t *f;
	int ret = pf_openat(g_vol, parent, name, fm_flags(fi->flags) | O_CREAT, mode & 07777,
			    fm_cred(req, &c, groups, FM_MAX_GROUPS), &f, NULL);

	if (ret) {
		fm_reply_status(req, ret);
		return;
	}
	ret = pf_fstat(f, &st);
	if (!ret && (ret = fm_stamp_new_file(st.ino)) == 0)
		ret = pf_fstat(f, &st);
	if (ret) {
		pf_close(f);
		fm_reply_status(req, ret);
		return;
	}
	fm_entry(&st, &e);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		pf_close(f);
}

/* open(O_TMPFILE): a file without a name that linkat(2) may name later
 * (fm_link). Called by the session loop (fs_mount_loop.c). The kernel checked
 * write and search permission on the directory; the file belongs to the caller,
 * with the group of a set-group-ID directory, as pf_tmpfile would give it. */
static void fm_tmpfile(struct fm_tmpfile_req *r, fuse_ino_t parent, mode_t mode, int flags)
{
	struct fuse_file_info fi = { .keep_cache = 1 };
	struct pf_setattr sa = { .valid = PF_SET_UID | PF_SET_GID };
	struct fuse_entry_param e;
	struct pf_stat st, dir;
	pf_file_t *f;
	int ret = pf_getattr(g_vol, parent, &dir);

	if (!ret)
		ret = pf_tmpfile(g_vol, parent, fm_flags(flags), mode & 07777, NULL, &f, NULL);
	if (ret) {
		fm_reply_tmpfile_err(r, fm_errno(ret));
		return;
	}
	ret = pf_fstat(f, &st);
	sa.uid = fm_tmpfile_uid(r);
	sa.gid = (dir.mode & S_ISGID) ? dir.gid : fm_tmpfile_gid(r);
	if (!ret && (sa.uid != st.uid || sa.gid != st.gid))
		ret = pf_fsetattr(f, &sa, NULL, NULL);
	if (!ret && (ret = fm_stamp_new_file(st.ino)) == 0)
		ret = pf_fstat(f, &st);
	if (ret) {
		pf_close(f);
		fm_reply_tmpfile_err(r, fm_errno(ret));
		return;
	}
	fm_entry(&st, &e);
	fi.fh = (uintptr_t)f;
	if (fm_reply_tmpfile(r, &e, &fi) == -ENOENT)
		pf_close(f);
}

static void fm_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pf_pread(fm_file(fi), buf, size, (uint64_t)off, NULL);
	if (n < 0)
		fm_reply_status(req, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void fm_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n = pf_pwrite(fm_file(fi), buf, size, (uint64_t)off, NULL);

	if (n < 0)
		fm_reply_status(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fm_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	pf_close(fm_file(fi));
	fuse_reply_err(req, 0);
}

static void fm_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fm_reply_status(req, pf_fsync(fm_file(fi), NULL));
}

/* fallocate(2): mode 0 extends the size (the range reads as zeros; nothing can be
 * reserved ahead on the host's disk, so a later write may still meet ENOSPC),
 * KEEP_SIZE alone does nothing, PUNCH_HOLE|KEEP_SIZE punches a hole (pf stores
 * no chunk for it). Other modes: EOPNOTSUPP, as Linux answers for modes a file
 * system lacks. */
static void fm_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	pf_file_t *f = fm_file(fi);
	uint64_t size, end;
	int ret;

	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off + (uint64_t)len > INT64_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	end = (uint64_t)off + (uint64_t)len;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		/* Linux requires KEEP_SIZE with PUNCH_HOLE. Whole chunks become
		 * holes in pf (nothing stored); partial ones get zeros. */
		ret = (mode & FALLOC_FL_KEEP_SIZE) ?
		      pf_fallocate(f, PF_FALLOC_PUNCH_HOLE | PF_FALLOC_KEEP_SIZE, (uint64_t)off,
				   (uint64_t)len, NULL) : -EOPNOTSUPP;
	} else if (mode & FALLOC_FL_KEEP_SIZE) {
		ret = 0;
	} else {
		ret = pf_get_size(f, &size);
		if (!ret && end > size)
			ret = pf_ftruncate(f, end, NULL);
	}
	fm_reply_status(req, ret);
}

/* ---- directories ---- */

/* getdents64 offsets are pf's readdir cookies: a listing resumes where it
 * stopped whatever was created or removed meanwhile. plus: readdirplus, which
 * hands the kernel each entry's attributes (the lookup that `ls -l` or
 * os.scandir + stat would make next); "." and ".." carry no entry. */
static void fm_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      bool plus)
{
	struct pf_dirent ents[32];
	char *buf = malloc(size ? size : 1);
	size_t used = 0, n = 0;
	uint64_t cookie = (uint64_t)off;
	int ret = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (;;) {
		size_t i;

		ret = pf_readdir_ino(g_vol, ino, cookie, ents, KILN_ARRAY_SIZE(ents), &n, NULL);
		if (ret || n == 0)
			break;
		for (i = 0; i < n; i++) {
			struct fuse_entry_param e = { 0 };
			bool dot = !strcmp(ents[i].name, ".") || !strcmp(ents[i].name, "..");
			size_t len;

			e.attr.st_ino = ents[i].ino;
			e.attr.st_mode = pf_type_mode(ents[i].type);
			if (plus && !dot) {
				struct pf_stat st;

				/* Gone since the listing: left out, as removed entries are. */
				if (pf_getattr(g_vol, ents[i].ino, &st))
					continue;
				fm_entry(&st, &e);
			}
			len = plus ? fuse_add_direntry_plus(req, buf + used, size - used,
							    ents[i].name, &e, (off_t)ents[i].cookie)
				   : fuse_add_direntry(req, buf + used, size - used, ents[i].name,
						       &e.attr, (off_t)ents[i].cookie);
			if (len > size - used)
				break;
			used += len;
		}
		if (i < n)
			break;
		cookie = ents[n - 1].cookie;
	}
	/* An error after some entries: hand those over; the next call reports it. */
	if (ret && used == 0)
		fm_reply_status(req, ret);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fm_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	fm_readdir_common(req, ino, size, off, false);
}

static void fm_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	fm_readdir_common(req, ino, size, off, true);
}

static void fm_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fm_reply_status(req, pf_fsync_dir(g_vol, NULL));
}

static void fm_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_write = 1024 * 1024;
	conn->max_readahead = 1024 * 1024;
	/* Set-user-ID and set-group-ID are cleared by the kernel (it sends the mode
	 * change) on a write or truncate by another user: pf's writes carry no
	 * cred to do it. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Writeback cache: write() completes in the page cache, and the kernel
	 * sends dirty pages in large, sorted batches (random 4 KiB writes to one
	 * chunk coalesce); fsync flushes them before fm_fsync commits. */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		g_writeback = true;
	}
}

/* SEEK_DATA / SEEK_HOLE from pf's holes (the kernel answers SEEK_SET/CUR/END
 * itself; without this op it would see the file as all data). */
static void fm_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	uint64_t out;
	int ret;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	ret = whence == SEEK_DATA ? pf_seek_data(fm_file(fi), (uint64_t)off, &out, NULL) :
	      pf_seek_hole(fm_file(fi), (uint64_t)off, &out, NULL);
	if (ret)
		fm_reply_status(req, ret);
	else
		fuse_reply_lseek(req, (off_t)out);
}

static const struct fuse_lowlevel_ops g_fuse_ops = {
	.init = fm_init,
	.lookup = fm_lookup,
	.forget = fm_forget,
	.forget_multi = fm_forget_multi,
	.getattr = fm_getattr,
	.setattr = fm_setattr,
	.readlink = fm_readlink,
	.mknod = fm_mknod,
	.mkdir = fm_mkdir,
	.unlink = fm_unlink,
	.rmdir = fm_rmdir,
	.symlink = fm_symlink,
	.rename = fm_rename,
	.link = fm_link,
	.open = fm_open,
	.read = fm_read,
	.write = fm_write,
	/* No flush: writes reach pf as they arrive and close commits nothing (as on
	 * Linux, only fsync makes data durable); the first FUSE_FLUSH answered
	 * ENOSYS spares every later close a round trip (the kernel still writes
	 * back its dirty pages at close). */
	.release = fm_release,
	.fsync = fm_fsync,
	.readdir = fm_readdir,
	.readdirplus = fm_readdirplus,
	.fsyncdir = fm_fsyncdir,
	.statfs = fm_statfs,
	.create = fm_create,
	.fallocate = fm_fallocate,
	.lseek = fm_lseek,
};

/*
 * The mount made by an earlier kiln (before pf had inodes that outlive their
 * names) kept files unlinked while open under the root directory
 * ".kiln-fuse-unlinked", named ".fuse_hidden*", and removed them at unmount; a
 * mount killed meanwhile left them there. Remove such leftovers (only those
 * names), and the directory once empty.
 */
#define FM_OLD_UNLINKED ".kiln-fuse-unlinked"

static void fm_clear_old_unlinked(void)
{
	char **names, path[PF_MAX_PATH];
	size_t count;

	if (pf_readdir(g_vol, FM_OLD_UNLINKED, &names, &count, NULL))
		return;
	for (size_t i = 0; i < count; i++) {
		if (strncmp(names[i], ".fuse_hidden", strlen(".fuse_hidden")) != 0)
			continue;
		snprintf(path, sizeof(path), FM_OLD_UNLINKED "/%s", names[i]);
		pf_unlink(g_vol, path, NULL);
	}
	pf_names_free(names, count);
	pf_rmdir(g_vol, FM_OLD_UNLINKED, NULL); /* ENOTEMPTY: the user's files stay */
}

/* Requests served at once. pf serializes each call on its volume lock, so more
 * threads only overlap the kernel's side of requests (copies, waits for a
 * reply slot); libfuse's own loop kept up to 10 idle. */
#define FM_THREADS 8

/* Serve the mounted session until unmount (or SIGINT/SIGTERM/SIGHUP); 0 or
 * CLI_EXIT_FAIL with the error printed. */
static int fm_serve(const char *mnt, bool foreground)
{
	/* Who may use the mount: the kernel checks mode bits and owners as for any
	 * file system (default_permissions). Mounted by root, every user of the host
	 * may (allow_other), as for a disk root mounts; mounted by another user, only
	 * that user (allow_other would need user_allow_other in /etc/fuse.conf).
	 * docs/fs.md "Who may use a mount". */
	char *fargv[] = {
		(char *)"kiln-fs", (char *)"-o",
		geteuid() == 0 ? (char *)"fsname=kiln,subtype=kiln,default_permissions,allow_other"
			       : (char *)"fsname=kiln,subtype=kiln,default_permissions",
		NULL,
	};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se;
	int ret = CLI_EXIT_FAIL;

	se = fuse_session_new(&args, &g_fuse_ops, sizeof(g_fuse_ops), NULL);
	if (!se) {
		cli_error("mount on %s: cannot start a FUSE session", mnt);
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		cli_error("mount on %s: cannot install signal handlers", mnt);
		goto out_session;
	}
	if (fuse_session_mount(se, mnt) != 0) {
		cli_error("mount on %s failed (is /dev/fuse usable, is %s a directory?)", mnt,
			  mnt);
		goto out_signals;
	}
	if (fuse_daemonize(foreground) != 0) {
		cli_error("mount on %s: cannot go to the background", mnt);
		goto out_unmount;
	}
	ret = fm_session_loop(se, FM_THREADS, fm_tmpfile) < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (ret)
		cli_error("mount on %s: the FUSE session failed", mnt);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	fuse_opt_free_args(&args);
	return ret;
}

int cli_fs_mount(int argc, char **argv)
{
	struct kiln_err err = { 0 };
	struct fs_args a;
	int r, ret = cli_fs_parse(argc, argv, "Tf", 2, 2, &a);

	if (ret >= 0)
		return ret;
	if (cli_fs_open_volume(a.pos[0], &g_vol))
		return CLI_EXIT_FAIL;
	g_uid = geteuid();
	g_gid = getegid();
	fm_clear_old_unlinked();
	ret = fm_serve(a.pos[1], a.foreground);
	if (ret)
		return cli_fs_close_volume(g_vol, ret);
	r = pf_volume_flush(g_vol, &err);
	if (r)
		cli_error("%s", kiln_err_msg(&err, r));
	/* With --expect-version nothing stores the new version: whoever holds it
	 * needs it. */
	printf("volume version: %llu\n", (unsigned long long)pf_volume_version(g_vol));
	return cli_fs_close_volume(g_vol, r ? CLI_EXIT_FAIL : CLI_EXIT_OK);
}
#else
int cli_fs_mount(int argc, char **argv)
{
	cli_error("fs mount: this kiln was built without FUSE (meson -Dfuse=disabled); "
		  "rebuild with libfuse3-dev and -Dfuse=enabled, the default");
	return CLI_EXIT_FAIL;
}
#endif
