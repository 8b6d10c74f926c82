/* kiln runtime: the local freshness provider, in the same file format as pf's
 * pf_freshness_local ("COMMITTED PREPARED\n", the `kiln fs` KEY.version),
 * written more cheaply (docs/runtime.md, "--volume"): commit() does not sync
 * (a metadata or record at the prepared version is accepted and committed on
 * open); an existing file is overwritten in place, one write of a fixed-size
 * line (TAG_LINE bytes, padded with spaces) at offset 0, then fdatasync for
 * prepare() -- one sector written at offset 0 taken as atomic on power loss,
 * as PostgreSQL does for pg_control; a missing file is created through a
 * temporary file and rename, fully synced. The file is kept open with what it
 * holds remembered, under the volume lock the volume server holds from open
 * to close (`kiln fs`, the other writer, takes it first); each prepare checks
 * that the kept file still has a name (fr_check), else it is opened (or made)
 * by name again. A write that fails closes the fd and forgets the values. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "pf/pf.h"
#include "runtime/internal.h"

struct rt_fresh {
	char path[4096];
	char tmp[4200];
	char dir[4096];
	long fd;               /* the tag file, open for writing, or -1 */
	dev_t ride;            /* the volume's device if prepares may ride its log's flush */
	bool known;            /* committed, prepared: what the file holds */
	uint64_t committed, prepared;
};

static void fr_remember(struct rt_fresh *f, uint64_t committed, uint64_t prepared)
{
	f->known = true;
	f->committed = committed;
	f->prepared = prepared;
}

static void fr_forget(struct rt_fresh *f)
{
	if (f->fd >= 0)
		rt__own_close((int)f->fd);
	f->fd = -1;
	f->known = false;
}

static int fr_read(struct rt_fresh *f, uint64_t *committed, uint64_t *prepared,
		   struct kiln_err *err)
{
	char buf[128], c[32], p[32];
	long fd = rt__open_own(AT_FDCWD, f->path, O_RDONLY, 0);
	long n;

	if (fd == -ENOENT)
		return -ENOENT;
	if (fd < 0)
		return kiln_err_set(err, (int)fd, "tag file %s: %s", f->path,
				    kiln_strerror((int)fd));
	n = rt__raw(SYS_read, fd, buf, sizeof(buf) - 1);
	rt__raw(SYS_close, fd);
	if (n < 0)
		return kiln_err_set(err, (int)n, "tag file %s: %s", f->path, kiln_strerror((int)n));
	buf[n] = '\0';
	if (sscanf(buf, "%31s %31s", c, p) != 2 || kiln_parse_u64(c, committed) ||
	    kiln_parse_u64(p, prepared))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "tag file %s: malformed (expected \"COMMITTED PREPARED\")",
				    f->path);
	fr_remember(f, *committed, *prepared);
	return 0;
}

#define TAG_LINE 48 /* > "%llu %llu\n" of two 20-digit numbers; < one sector */

/* durable: 0 no sync, 1 fdatasync, 2 written through the device, no flush. */
static int fr_write(struct rt_fresh *f, uint64_t committed, uint64_t prepared, int durable,
		    struct kiln_err *err)
{
	char buf[TAG_LINE + 1];
	int n = snprintf(buf, sizeof(buf), "%llu %llu", (unsigned long long)committed,
			 (unsigned long long)prepared);
	/* kiln's own file: written in place only when it is a regular file
	 * reached without a symlink (never into a symlink's target). */
	long fd = f->fd >= 0 ? f->fd : rt__open_own(AT_FDCWD, f->path, O_WRONLY, 0);
	long r;

	memset(buf + n, ' ', TAG_LINE - 1 - (size_t)n);
	buf[TAG_LINE - 1] = '\n';
	n = TAG_LINE;
	if (fd >= 0 && f->fd < 0) {
		fd = rt__own_fd((int)fd); /* closed on failure */
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		f->fd = fd;
	}
	if (fd >= 0) {
		do
			r = rt__raw(SYS_pwrite64, fd, buf, n, 0);
		while (r == -EINTR);
		if (r == n && durable) /* 7: WAIT_BEFORE | WRITE | WAIT_AFTER */
			r = durable > 1 ? rt__raw(SYS_sync_file_range, fd, 0, n, 7) :
					  rt__raw(SYS_fdatasync, fd);
		else if (r >= 0)
			r = r == n ? 0 : -EIO;
		if (r < 0)
			goto fail;
		fr_remember(f, committed, prepared);
		return 0;
	}
	if (fd != -ENOENT) {
		r = fd;
		goto fail;
	}
	fd = rt__open_own(AT_FDCWD, f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	r = rt__raw(SYS_write, fd, buf, n);
	if (r == n)
		r = rt__raw(SYS_fsync, fd);
	else if (r >= 0)
		r = -EIO;
	rt__raw(SYS_close, fd);
	if (r < 0)
		goto fail;
	r = rt__raw(SYS_rename, f->tmp, f->path);
	if (r < 0)
		goto fail;
	fd = rt__raw(SYS_openat, AT_FDCWD, f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		r = rt__raw(SYS_fsync, fd);
		rt__raw(SYS_close, fd);
		if (r < 0)
			goto fail;
	}
	/* The next write opens the new file by name (and keeps it). */
	fr_remember(f, committed, prepared);
	return 0;
fail:
	fr_forget(f);
	return kiln_err_set(err, (int)r, "tag file %s: cannot write: %s", f->path,
			    kiln_strerror((int)r));
}

/* The kept file is still the one its name reaches, as far as one statx can
 * tell (a file removed or replaced by rename has no link left). Its link
 * count only: asking for the times (fstat) makes the kernel (multigrain
 * timestamps, Linux 6.13 on) stamp the next write finely, and each prepare's
 * fdatasync then wrote the inode too (docs/fs.md "One-file commits"). True
 * when a prepare may ride the log's flush: the file on the volume's device,
 * its whole line in a block of its own (not inline in the inode, no hole). */
static bool fr_check(struct rt_fresh *f)
{
	struct statx sx;

	if (f->fd >= 0 && (rt__raw(SYS_statx, f->fd, "", AT_EMPTY_PATH, STATX_NLINK | STATX_SIZE |
				   STATX_BLOCKS, &sx) < 0 || sx.stx_nlink == 0))
		fr_forget(f);
	return f->fd >= 0 && makedev(sx.stx_dev_major, sx.stx_dev_minor) == f->ride &&
	       sx.stx_size == TAG_LINE && sx.stx_blocks > 0;
}

static int fr_prepare(void *ctx, uint64_t tag, struct kiln_err *err)
{
	struct rt_fresh *f = ctx;
	uint64_t c, p;
	int ret;

	fr_check(f);
	c = f->committed;
	p = f->prepared;
	ret = f->known ? 0 : fr_read(f, &c, &p, err);

	if (ret == -ENOENT)
		c = tag;
	else if (ret)
		return ret;
	return fr_write(ctx, c, tag, /*durable=*/1, err);
}

/* Where the server's ride_dev and fr_check allow it (the file kept open: its
 * values known); docs/fs.md "One flush per commit". */
static int fr_prepare_unflushed(void *ctx, uint64_t tag, struct kiln_err *err)
{
	struct rt_fresh *f = ctx;

	return f->ride && fr_check(f) ? fr_write(f, f->committed, tag, 2, err) : -EOPNOTSUPP;
}

/* No fr_check: the prepare before it, in the same commit under the volume
 * lock, checked the kept file (one fstat less per commit). */
static int fr_commit(void *ctx, uint64_t tag, struct kiln_err *err)
{
	return fr_write(ctx, tag, tag, /*durable=*/0, err);
}

static int fr_current(void *ctx, uint64_t *committed, uint64_t *prepared, struct kiln_err *err)
{
	return fr_read(ctx, committed, prepared, err);
}

static void fr_free(void *ctx)
{
	fr_forget(ctx);
	free(ctx);
}

static const struct pf_freshness_ops g_fresh_ops = {
	.prepare = fr_prepare,
	.prepare_unflushed = fr_prepare_unflushed,
	.commit = fr_commit,
	.current = fr_current,
	.free = fr_free,
};

int rt__fresh_local(const char *path, dev_t ride, const struct pf_freshness_ops **ops, void **ctx)
{
	struct rt_fresh *f = calloc(1, sizeof(*f));
	char *slash;

	*ops = NULL;
	*ctx = NULL;
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	f->ride = ride;
	if ((size_t)snprintf(f->path, sizeof(f->path), "%s", path) >= sizeof(f->path) ||
	    (size_t)snprintf(f->tmp, sizeof(f->tmp), "%s.kiln-tmp", path) >= sizeof(f->tmp) ||
	    path[0] != '/') {
		free(f);
		return -ENAMETOOLONG;
	}
	snprintf(f->dir, sizeof(f->dir), "%s", path);
	slash = strrchr(f->dir, '/');
	if (slash == f->dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	*ops = &g_fresh_ops;
	*ctx = f;
	return 0;
}
