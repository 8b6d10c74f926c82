/* kiln runtime, file shield v2: the volume server's open of its volume
 * (server.h, rt__srv_open_volume). One open for both of the server's
 * starters, libkiln (dynamic programs) and the supervisor of static programs:
 * they differ only in the storage and local freshness providers they pass
 * (libkiln's issue their calls from the runtime's own region and fds). */
#include "runtime/shield/srv_int.h"
#include "runtime/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* How long a new server waits for the volume's lock: the previous server's
 * last commit, or a `kiln fs` command, takes far less. */
#define LOCK_WAIT_MS 10000
#define LOCK_POLL_MS 10

/* DIR/.kiln, never through a symlink, locked exclusively: the fd, or an
 * error with err saying why. */
static int lock_store(const char *dir, struct kiln_err *err)
{
	char path[4200];
	int rootfd, fd;

	snprintf(path, sizeof(path), "%s/.kiln", dir);
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return kiln_err_set(err, -errno, "%s: %s", dir, strerror(errno));
	/* A planted symlink would move the volume. */
	fd = kiln_open_own_dir(rootfd, ".kiln", /*create=*/false, 0);
	close(rootfd);
	if (fd == -KILN_EUNSAFE)
		return kiln_err_set(err, fd, "%s: %s", path, kiln_strerror(fd));
	if (fd < 0)
		return kiln_err_set(err, fd, "not a kiln volume (%s: %s); create it with "
				    "'kiln fs init'", path, kiln_strerror(fd));
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += LOCK_POLL_MS) {
		struct timespec ts = { 0, LOCK_POLL_MS * 1000 * 1000 };

		if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS) {
			close(fd);
			return kiln_err_set(err, -EBUSY, "volume is in use by another process (a "
					    "kiln fs mount, or a workload with another key)");
		}
		nanosleep(&ts, NULL);
	}
	return fd;
}

/* The store's device when the local tag's prepares may ride the commit
 * log's flush (docs/fs.md "One flush per commit"), else 0: the tag file is
 * on that device, a regular file whose data is not journalled (ext4's
 * chattr +j), and the file system is ext4 not mounted data=journal, or XFS:
 * there an overwrite of the tag's allocated block goes in place (fr_check
 * checks the block before each prepare), sync_file_range puts it on the
 * device, and the log's fdatasync then flushes the device's cache. These
 * are the host kernel's answers (fstatfs, mountinfo), as the tag's
 * durability always rested on its fdatasync: a host that lies here can only
 * drop what it always could (docs/threat-model.md, local freshness). */
static dev_t ride_dev(int storefd, const char *tag)
{
	char line[8192], want[32], *opts;
	struct stat s, t;
	struct statfs fs;
	int flags = 0, fd = open(tag, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	bool ok;
	FILE *mi;

	if (fd < 0)
		return 0;
	ok = fstat(storefd, &s) == 0 && fstat(fd, &t) == 0 && S_ISREG(t.st_mode) &&
	     t.st_dev == s.st_dev && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
	     !(flags & FS_JOURNAL_DATA_FL) && fstatfs(storefd, &fs) == 0;
	close(fd);
	if (!ok || fs.f_type == XFS_SUPER_MAGIC)
		return ok ? s.st_dev : 0;
	if (fs.f_type != EXT4_SUPER_MAGIC || !(mi = fopen("/proc/self/mountinfo", "re")))
		return 0;
	/* "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - TYPE SOURCE SUPER_OPTS" */
	snprintf(want, sizeof(want), " %u:%u ", major(s.st_dev), minor(s.st_dev));
	ok = false;
	while (fgets(line, sizeof(line), mi)) {
		if (!strstr(line, want) || !(opts = strstr(line, " - ")))
			continue;
		ok = !strstr(opts, "data=journal");
		break;
	}
	fclose(mi);
	return ok ? s.st_dev : 0;
}

int rt__srv_open_volume(const struct rt_volume_cfg *c, const struct rt_srv_open_ops *ops,
			const uint8_t key[static RT_KEY_SIZE], pf_volume_t **out,
			struct kiln_err *err)
{
	struct pf_volume_opts opts = { 0 };
	char path[4200];
	struct stat st;
	bool create = false;
	int ret, lockfd;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/.kiln", c->dir);
	lockfd = lock_store(c->dir, err);
	if (lockfd < 0)
		return lockfd;
	ret = ops->storage(lockfd, &opts.storage, &opts.storage_ctx);
	if (ret) {
		kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
		goto out;
	}
	if (c->cas_id[0]) {
		/* The freshness prepare is a CAS request: no syncs in flight
		 * around it (they would interrupt it). */
		if (ops->no_overlap)
			ops->no_overlap(opts.storage_ctx);
		ret = ops->fresh_cas(c, &opts.freshness, &opts.freshness_ctx);
		if (ret) {
			kiln_err_set(err, ret, "volume %s: %s", c->cas_id, kiln_strerror(ret));
			goto out;
		}
		/* A volume the CAS has never seen committed is created here. */
		create = c->committed == 0 && fstatat(lockfd, "meta", &st, AT_SYMLINK_NOFOLLOW) < 0 &&
			 errno == ENOENT;
	} else if (c->tag_file[0]) {
		ret = ops->fresh_local_ride ?
		      ops->fresh_local_ride(c->tag_file, ride_dev(lockfd, c->tag_file),
					    &opts.freshness, &opts.freshness_ctx) :
		      ops->fresh_local(c->tag_file, &opts.freshness, &opts.freshness_ctx);
		if (ret) {
			kiln_err_set(err, ret, "tag file %s: %s", c->tag_file, kiln_strerror(ret));
			goto out;
		}
	}
	/* The server may seal on two threads: it is not the program. */
	opts.seal_thread = true;
	/* pf owns the storage and the freshness provider from here, on failure
	 * too. */
	ret = create ? pf_volume_init(c->dir, key, &opts, out, err) :
	      pf_volume_open(c->dir, key, &opts, out, err);
	opts.storage = NULL;
	opts.freshness = NULL;
out:
	if (opts.freshness && opts.freshness->free)
		opts.freshness->free(opts.freshness_ctx);
	if (opts.storage)
		opts.storage->free(opts.storage_ctx);
	if (ret) {
		close(lockfd);
		return ret;
	}
	/* Held for the server's life: released after its last commit and
	 * close (server.c), so whoever waits for the server waits for it. */
	g_srv.lock_fd = lockfd;
	return 0;
}
