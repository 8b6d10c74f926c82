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

/* kiln's own codes mean "the data is bad": EIO to applications. */
static int fuse_errno(int code)
{
	if (code >= 0)
		return code;
	return -code >= KILN_EBASE ? -EIO : code;
}

static int fm_getattr(const char *path, struct stat *stbuf, struct fuse_file_info *fi)
{
	struct pf_stat st;
	int ret;

	if (fi && fi->fh)
		ret = pf_fstat((pf_file_t *)(uintptr_t)fi->fh, &st);
	else
		ret = pf_stat(g_vol, path, &st, NULL);
	if (ret)
		return fuse_errno(ret);
	memset(stbuf, 0, sizeof(*stbuf));
	stbuf->st_mode = (st.is_dir ? S_IFDIR : S_IFREG) | (st.mode & 07777);
	stbuf->st_nlink = st.is_dir ? 2 : 1;
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
	int ret = pf_readdir(g_vol, path, &names, &count, NULL);

	if (ret)
		return fuse_errno(ret);
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	for (size_t i = 0; i < count; i++)
		filler(buf, names[i], NULL, 0, 0);
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
	pf_file_t *f;
	int ret = pf_open(g_vol, path, fm_flags(fi->flags), 0, &f, NULL);

	if (ret)
		return fuse_errno(ret);
	fi->fh = (uintptr_t)f;
	return 0;
}

static int fm_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	pf_file_t *f;
	int ret = pf_open(g_vol, path, fm_flags(fi->flags) | O_CREAT, mode, &f, NULL);

	if (ret)
		return fuse_errno(ret);
	fi->fh = (uintptr_t)f;
	return 0;
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
	if (fi && fi->fh)
		return fuse_errno(pf_ftruncate((pf_file_t *)(uintptr_t)fi->fh, (uint64_t)size,
					       NULL));
	return fuse_errno(pf_truncate(g_vol, path, (uint64_t)size, NULL));
}

static int fm_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fuse_errno(pf_fsync((pf_file_t *)(uintptr_t)fi->fh, NULL));
}

static int fm_release(const char *path, struct fuse_file_info *fi)
{
	pf_close((pf_file_t *)(uintptr_t)fi->fh);
	return 0;
}

static int fm_unlink(const char *path)
{
	return fuse_errno(pf_unlink(g_vol, path, NULL));
}

static int fm_mkdir(const char *path, mode_t mode)
{
	return fuse_errno(pf_mkdir(g_vol, path, mode, NULL));
}

static int fm_rmdir(const char *path)
{
	return fuse_errno(pf_rmdir(g_vol, path, NULL));
}

static int fm_rename(const char *from, const char *to, unsigned int flags)
{
	struct pf_stat st;

	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && pf_stat(g_vol, to, &st, NULL) == 0)
		return -EEXIST;
	return fuse_errno(pf_rename(g_vol, from, to, NULL));
}

static int fm_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return fuse_errno(pf_chmod(g_vol, path, mode, NULL));
}

static int fm_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return 0; /* ownership is not recorded: every file belongs to the mounter */
}

static int fm_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct timespec now;
	int64_t t;

	if (tv[1].tv_nsec == UTIME_OMIT)
		return 0;
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

static int fm_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fuse_errno(pf_fsync_dir(g_vol, NULL));
}

static void *fm_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 0;
	cfg->nullpath_ok = 0;
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
	fargv[fargc++] = (char *)"kiln-fs";
	fargv[fargc++] = (char *)a.pos[1];
	if (a.foreground)
		fargv[fargc++] = (char *)"-f";
	fargv[fargc++] = (char *)"-o";
	fargv[fargc++] = (char *)"fsname=kiln,subtype=kiln";
	fargv[fargc] = NULL;
	ret = fuse_main(fargc, fargv, &g_fuse_ops, NULL);
	free((char *)g_vol_dir);
	if (ret)
		cli_error("mount %s on %s failed (fuse_main returned %d)", a.pos[0], a.pos[1], ret);
	if (ret == 0) {
		struct kiln_err err = { 0 };
		int r = pf_volume_flush(g_vol, &err);

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
	cli_error("fs mount: this kiln was built without libfuse3");
	return CLI_EXIT_FAIL;
}
#endif
