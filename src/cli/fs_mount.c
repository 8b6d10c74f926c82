/* kiln fs mount: a protected volume as a plain directory, through FUSE (libfuse3's
 * high-level, path-based API). Every operation maps to one pf call on the volume,
 * which this process holds open (and locked) until unmount. docs/fs.md. */
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
#define FUSE_USE_VERSION 35
#include <fuse.h>
#include <sys/statvfs.h>

static pf_volume_t *g_vol;
static const char *g_vol_dir;
/* The kernel's writeback cache is on (set in fm_init): writes land in the page
 * cache and reach pf_pwrite in large batches at writeback or fsync. */
static bool g_writeback;

/* The open pf handle of a FUSE file (set by fm_open/fm_create). */
static pf_file_t *fm_file(const struct fuse_file_info *fi)
{
	return (pf_file_t *)(uintptr_t)fi->fh;
}

/* Now on the clock the kernel stamps files with (current_time(): the coarse
 * realtime clock). With the writeback cache the kernel sends `touch` as explicit
 * times from that clock, so a file created with a finer clock could see its mtime
 * move back (CPython test_pathlib test_touch_common). */
static int64_t fm_now_coarse(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* kiln's own codes mean "the data is bad": EIO to applications. */
static int fuse_errno(int code)
{
	if (code >= 0)
		return code;
	return -code >= KILN_EBASE ? -EIO : code;
}

/*
 * Files unlinked while open. libfuse renames such a file to
 * DIR/.fuse_hiddenXXXXXXXXYYYYYYYY and removes that name at its last release (a
 * path-based file system cannot reach a file without a name; with hard_remove the
 * kernel's fstat of it fails with ESTALE). Left in DIR, that name showed in
 * listings and kept DIR from being removed (ENOTEMPTY: CPython's test_shutil
 * could not even load). So the mount keeps those names in one directory of its
 * own at the volume's root, FM_UNLINKED, which the kernel never sees; it is
 * emptied at mount (after a crash it holds only unlinked files) and removed at
 * unmount. A file in a region of another kind than the root's stays in DIR
 * (pf renames only within a region kind) but is still left out of listings.
 * FIXME(pf v2): with inodes that live until their last handle the mount moves to
 * libfuse's low-level (inode) API and needs none of this.
 */
#define FM_UNLINKED ".kiln-fuse-unlinked"
#define FM_HIDDEN_PREFIX ".fuse_hidden"

static bool fm_is_hidden_name(const char *name)
{
	return strncmp(name, FM_HIDDEN_PREFIX, strlen(FM_HIDDEN_PREFIX)) == 0;
}

/* The volume path for a kernel path: *out is path itself, or buf holding the
 * FM_UNLINKED place of a hidden name (then *moved is set, if given). FM_UNLINKED
 * and what is below it do not exist for the kernel: -ENOENT. libfuse passes a
 * NULL path for a handle whose file has no path any more (unlinked while open,
 * then its directory removed): -ESTALE, as libfuse answers itself. */
static int fm_path(const char *path, char buf[static PF_MAX_PATH], const char **out,
		   bool *moved)
{
	const char *base;
	size_t n = strlen("/" FM_UNLINKED);

	*out = path;
	if (moved)
		*moved = false;
	if (!path)
		return -ESTALE;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strncmp(path, "/" FM_UNLINKED, n) == 0 && (path[n] == '\0' || path[n] == '/'))
		return -ENOENT;
	if (!fm_is_hidden_name(base))
		return 0;
	if (snprintf(buf, PF_MAX_PATH, "/" FM_UNLINKED "/%s", base) >= PF_MAX_PATH)
		return -ENAMETOOLONG;
	if (pf_volume_region(g_vol, buf) != pf_volume_region(g_vol, path))
		return 0;
	*out = buf;
	if (moved)
		*moved = true;
	return 0;
}

/* Empty and remove FM_UNLINKED (at mount: leftovers of a crash; at unmount). */
static void fm_clear_unlinked(void)
{
	char **names, path[PF_MAX_PATH];
	size_t count;

	if (pf_readdir(g_vol, "/" FM_UNLINKED, &names, &count, NULL))
		return;
	for (size_t i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "/" FM_UNLINKED "/%s", names[i]);
		pf_unlink(g_vol, path, NULL);
	}
	pf_names_free(names, count);
	pf_rmdir(g_vol, "/" FM_UNLINKED, NULL);
}

/* A directory's link count as Linux file systems give it: 2 plus one per
 * subdirectory (GNU find and others rely on it). O(entries) of in-memory lookups;
 * the kernel caches the answer. FIXME(pf v2): pf keeps the count in the inode. */
static nlink_t fm_dir_nlink(const char *path)
{
	char **names, sub[PF_MAX_PATH];
	struct pf_stat st;
	size_t count;
	nlink_t n = 2;
	bool root = strcmp(path, "/") == 0;

	if (pf_readdir(g_vol, path, &names, &count, NULL))
		return n;
	for (size_t i = 0; i < count; i++) {
		if (root && strcmp(names[i], FM_UNLINKED) == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", root ? "" : path, names[i]) >=
		    (int)sizeof(sub))
			continue;
		if (pf_stat(g_vol, sub, &st, NULL) == 0 && st.is_dir)
			n++;
	}
	pf_names_free(names, count);
	return n;
}

static int fm_getattr(const char *path, struct stat *stbuf, struct fuse_file_info *fi)
{
	char buf[PF_MAX_PATH];
	struct pf_stat st;
	bool unlinked = false;
	int ret;

	if (fi && fi->fh) {
		ret = pf_fstat(fm_file(fi), &st);
	} else {
		ret = fm_path(path, buf, &path, &unlinked);
		if (!ret)
			ret = pf_stat(g_vol, path, &st, NULL);
	}
	if (ret)
		return fuse_errno(ret);
	memset(stbuf, 0, sizeof(*stbuf));
	stbuf->st_mode = (st.is_dir ? S_IFDIR : S_IFREG) | (st.mode & 07777);
	if (st.is_dir)
		stbuf->st_nlink = path ? fm_dir_nlink(path) : 2;
	else
		stbuf->st_nlink = unlinked ? 0 : 1;
	stbuf->st_size = (off_t)st.size;
	stbuf->st_blocks = (blkcnt_t)((st.size + 511) / 512);
	stbuf->st_uid = getuid();
	stbuf->st_gid = getgid();
	stbuf->st_mtim.tv_sec = st.mtime_ns / 1000000000;
	stbuf->st_mtim.tv_nsec = st.mtime_ns % 1000000000;
	stbuf->st_ctim = stbuf->st_atim = stbuf->st_mtim;
	return 0;
}

static int fm_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	char **names;
	size_t count;
	bool root = strcmp(path, "/") == 0;
	int ret = pf_readdir(g_vol, path, &names, &count, NULL);

	if (ret)
		return fuse_errno(ret);
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	for (size_t i = 0; i < count; i++) {
		if (fm_is_hidden_name(names[i]) || (root && strcmp(names[i], FM_UNLINKED) == 0))
			continue;
		filler(buf, names[i], NULL, 0, 0);
	}
	pf_names_free(names, count);
	return 0;
}

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

static int fm_open(const char *path, struct fuse_file_info *fi)
{
	char buf[PF_MAX_PATH];
	pf_file_t *f;
	int ret = fm_path(path, buf, &path, NULL);

	if (!ret)
		ret = pf_open(g_vol, path, fm_flags(fi->flags), 0, &f, NULL);
	if (ret)
		return fuse_errno(ret);
	fi->fh = (uintptr_t)f;
	return 0;
}

static int fm_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	char buf[PF_MAX_PATH];
	pf_file_t *f;
	int ret = fm_path(path, buf, &path, NULL);

	if (!ret)
		ret = pf_open(g_vol, path, fm_flags(fi->flags) | O_CREAT, mode, &f, NULL);
	if (ret)
		return fuse_errno(ret);
	ret = pf_set_mtime(g_vol, path, fm_now_coarse(), NULL);
	if (ret) {
		pf_close(f);
		return fuse_errno(ret);
	}
	fi->fh = (uintptr_t)f;
	return 0;
}

/* mknod(2) of a regular file (FIFOs, sockets and devices are refused below). */
static int fm_mknod(const char *path, mode_t mode, dev_t rdev)
{
	char buf[PF_MAX_PATH];
	pf_file_t *f;
	int ret = fm_path(path, buf, &path, NULL);

	/* FIXME(pf v2): FIFO and socket nodes need pf's special nodes; until then
	 * EPERM, what mknod(2) answers on a file system without them. Device nodes
	 * stay refused (docs/conformance.md). */
	if (ret)
		return ret;
	if (!S_ISREG(mode))
		return -EPERM;
	ret = pf_open(g_vol, path, O_RDWR | O_CREAT | O_EXCL, mode & 07777, &f, NULL);
	if (ret)
		return fuse_errno(ret);
	ret = pf_set_mtime(g_vol, path, fm_now_coarse(), NULL);
	pf_close(f);
	return fuse_errno(ret);
}

/* FIXME(pf v2): hard links and symlinks need pf's inode namespace (pf_link,
 * pf_symlink, pf_readlink). Until then EPERM, what link(2) and symlink(2) answer
 * on a file system that does not support them (programs test for it). */
static int fm_link(const char *from, const char *to)
{
	return -EPERM;
}

static int fm_symlink(const char *target, const char *path)
{
	return -EPERM;
}

static int fm_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	ssize_t n = pf_pread((pf_file_t *)(uintptr_t)fi->fh, buf, size, (uint64_t)off, NULL);

	return n < 0 ? fuse_errno((int)n) : (int)n;
}

static int fm_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ssize_t n = pf_pwrite((pf_file_t *)(uintptr_t)fi->fh, buf, size, (uint64_t)off, NULL);

	return n < 0 ? fuse_errno((int)n) : (int)n;
}

static int fm_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	char buf[PF_MAX_PATH];
	int ret;

	if (fi && fi->fh)
		return fuse_errno(pf_ftruncate(fm_file(fi), (uint64_t)size, NULL));
	ret = fm_path(path, buf, &path, NULL);
	return ret ? ret : fuse_errno(pf_truncate(g_vol, path, (uint64_t)size, NULL));
}

static int fm_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fuse_errno(pf_fsync(fm_file(fi), NULL));
}

static int fm_release(const char *path, struct fuse_file_info *fi)
{
	pf_close(fm_file(fi));
	return 0;
}

static int fm_unlink(const char *path)
{
	char buf[PF_MAX_PATH];
	int ret = fm_path(path, buf, &path, NULL);

	return ret ? ret : fuse_errno(pf_unlink(g_vol, path, NULL));
}

static int fm_mkdir(const char *path, mode_t mode)
{
	char buf[PF_MAX_PATH];
	int ret = fm_path(path, buf, &path, NULL);

	if (!ret)
		ret = pf_mkdir(g_vol, path, mode, NULL);
	if (!ret)
		ret = pf_set_mtime(g_vol, path, fm_now_coarse(), NULL);
	return fuse_errno(ret);
}

static int fm_rmdir(const char *path)
{
	char buf[PF_MAX_PATH];
	int ret = fm_path(path, buf, &path, NULL);

	return ret ? ret : fuse_errno(pf_rmdir(g_vol, path, NULL));
}

static int fm_rename(const char *from, const char *to, unsigned int flags)
{
	char fbuf[PF_MAX_PATH], tbuf[PF_MAX_PATH];
	struct pf_stat st;
	bool hiding;
	int ret;

	/* FIXME(pf v2): RENAME_EXCHANGE needs an atomic exchange in pf; EINVAL is
	 * what renameat2(2) answers on a file system without it. */
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if ((ret = fm_path(from, fbuf, &from, NULL)) || (ret = fm_path(to, tbuf, &to, &hiding)))
		return ret;
	if ((flags & RENAME_NOREPLACE) && pf_stat(g_vol, to, &st, NULL) == 0)
		return -EEXIST;
	if (hiding) { /* libfuse hides a file unlinked while open */
		ret = pf_mkdir(g_vol, "/" FM_UNLINKED, 0700, NULL);
		if (ret && ret != -EEXIST)
			return fuse_errno(ret);
	}
	return fuse_errno(pf_rename(g_vol, from, to, NULL));
}

static int fm_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	char buf[PF_MAX_PATH];
	int ret = fm_path(path, buf, &path, NULL);

	return ret ? ret : fuse_errno(pf_chmod(g_vol, path, mode, NULL));
}

/* Ownership is not recorded yet: every file belongs to the mounter and chown has
 * no effect. FIXME(pf v2: uid/gid stored). Failing it with EPERM (what vfat does)
 * was tried and is worse: tar, cp -a and CPython's tarfile chown first and then
 * skip the file's mode and times (test_tarfile: 16 failures). */
static int fm_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return 0;
}

static int fm_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	char buf[PF_MAX_PATH];
	struct timespec now;
	int64_t t;
	int ret;

	if (tv[1].tv_nsec == UTIME_OMIT)
		return 0;
	/* The kernel stamps mtime at the close of a file it cached writes for; a file
	 * unlinked while open and without a path (see fm_path) keeps its times until
	 * its last handle goes. FIXME(pf v2): times through the handle. */
	if (!path && fi)
		return 0;
	if ((ret = fm_path(path, buf, &path, NULL)))
		return ret;
	if (tv[1].tv_nsec == UTIME_NOW) {
		clock_gettime(CLOCK_REALTIME, &now);
		t = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	} else {
		t = (int64_t)tv[1].tv_sec * 1000000000 + tv[1].tv_nsec;
	}
	return fuse_errno(pf_set_mtime(g_vol, path, t, NULL));
}

static int fm_statfs(const char *path, struct statvfs *st)
{
	return statvfs(g_vol_dir, st) == 0 ? 0 : -errno;
}

/* Zeros over [off, off + len) of the file, cut at its end (the size is kept). */
static int fm_zero_range(pf_file_t *f, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 * 1024];
	uint64_t size;
	int ret = pf_get_size(f, &size);

	if (ret)
		return fuse_errno(ret);
	if (off >= size)
		return 0;
	if (len > size - off)
		len = size - off;
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		ssize_t w = pf_pwrite(f, zeros, n, off, NULL);

		if (w < 0)
			return fuse_errno((int)w);
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* fallocate(2): mode 0 extends the size (the range reads as zeros; nothing can be
 * reserved ahead on the host's disk, so a later write may still meet ENOSPC),
 * KEEP_SIZE alone does nothing, PUNCH_HOLE|KEEP_SIZE zeroes the range. FIXME(pf
 * v2 holes): punch a real hole (no chunk stored) instead of writing zeros. Other
 * modes: EOPNOTSUPP, as Linux answers for modes a file system lacks. */
static int fm_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	pf_file_t *f = fm_file(fi);
	uint64_t size, end;
	int ret;

	if (off < 0 || len <= 0)
		return -EINVAL;
	if ((uint64_t)off > UINT64_MAX - (uint64_t)len || (uint64_t)(off + len) > INT64_MAX)
		return -EFBIG;
	end = (uint64_t)off + (uint64_t)len;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (!(mode & FALLOC_FL_KEEP_SIZE))
			return -EOPNOTSUPP; /* Linux requires KEEP_SIZE with PUNCH_HOLE */
		return fm_zero_range(f, (uint64_t)off, (uint64_t)len);
	}
	if (mode & FALLOC_FL_KEEP_SIZE)
		return 0;
	ret = pf_get_size(f, &size);
	if (!ret && end > size)
		ret = pf_ftruncate(f, end, NULL);
	return fuse_errno(ret);
}

static int fm_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fuse_errno(pf_fsync_dir(g_vol, NULL));
}

static void *fm_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 0;
	cfg->nullpath_ok = 0;
	/* Files unlinked while open: libfuse's hiding, moved out of the way (see
	 * FM_UNLINKED). */
	cfg->hard_remove = 0;
	/* Every change goes through this process, so the kernel's page cache
	 * stays valid across opens; large requests amortize the round trips. */
	cfg->kernel_cache = 1;
	conn->max_write = 1024 * 1024;
	conn->max_readahead = 1024 * 1024;
	/* Writeback cache: write() completes in the page cache, and the kernel
	 * sends dirty pages in large, sorted batches (random 4 KiB writes to one
	 * chunk coalesce); fsync flushes them before fm_fsync commits. */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		g_writeback = true;
	}
	return NULL;
}

static const struct fuse_operations g_fuse_ops = {
	.init = fm_init,
	.getattr = fm_getattr,
	.readdir = fm_readdir,
	.open = fm_open,
	.create = fm_create,
	.read = fm_read,
	.write = fm_write,
	.truncate = fm_truncate,
	.fsync = fm_fsync,
	.release = fm_release,
	.unlink = fm_unlink,
	.mkdir = fm_mkdir,
	.rmdir = fm_rmdir,
	.rename = fm_rename,
	.mknod = fm_mknod,
	.link = fm_link,
	.symlink = fm_symlink,
	.fallocate = fm_fallocate,
	.chmod = fm_chmod,
	.chown = fm_chown,
	.utimens = fm_utimens,
	.statfs = fm_statfs,
	.fsyncdir = fm_fsyncdir,
};

int cli_fs_mount(int argc, char **argv)
{
	struct fs_args a;
	char *fargv[8];
	int fargc = 0, ret = cli_fs_parse(argc, argv, "Tf", 2, 2, &a);

	if (ret >= 0)
		return ret;
	if (cli_fs_open_volume(a.pos[0], &g_vol))
		return CLI_EXIT_FAIL;
	g_vol_dir = realpath(a.pos[0], NULL); /* freed at exit; see the daemonize note */
	if (!g_vol_dir) {
		cli_error("%s: %s", a.pos[0], strerror(errno));
		return cli_fs_close_volume(g_vol, CLI_EXIT_FAIL);
	}
	fm_clear_unlinked();
	fargv[fargc++] = (char *)"kiln-fs";
	fargv[fargc++] = (char *)a.pos[1];
	if (a.foreground)
		fargv[fargc++] = (char *)"-f";
	fargv[fargc++] = (char *)"-o";
	/* Who may use the mount: the kernel checks mode bits and owners as for any
	 * file system (default_permissions). Mounted by root, every user of the host
	 * may (allow_other), as for a disk root mounts; mounted by another user, only
	 * that user (allow_other would need user_allow_other in /etc/fuse.conf).
	 * docs/fs.md "Who may use a mount". */
	fargv[fargc++] = geteuid() == 0 ?
		(char *)"fsname=kiln,subtype=kiln,default_permissions,allow_other" :
		(char *)"fsname=kiln,subtype=kiln,default_permissions";
	fargv[fargc] = NULL;
	ret = fuse_main(fargc, fargv, &g_fuse_ops, NULL);
	free((char *)g_vol_dir);
	if (ret)
		cli_error("mount %s on %s failed (fuse_main returned %d)", a.pos[0], a.pos[1], ret);
	if (ret == 0) {
		struct kiln_err err = { 0 };
		int r;

		fm_clear_unlinked();
		r = pf_volume_flush(g_vol, &err);

		if (r)
			cli_error("%s", kiln_err_msg(&err, r));
		/* With --expect-version nothing stores the new version: whoever
		 * holds it needs it. */
		printf("volume version: %llu\n", (unsigned long long)pf_volume_version(g_vol));
		ret = r;
	}
	return cli_fs_close_volume(g_vol, ret ? CLI_EXIT_FAIL : CLI_EXIT_OK);
}
#else
int cli_fs_mount(int argc, char **argv)
{
	cli_error("fs mount: this kiln was built without FUSE (meson -Dfuse=disabled); "
		  "rebuild with libfuse3-dev and -Dfuse=enabled, the default");
	return CLI_EXIT_FAIL;
}
#endif
