/* kiln runtime, file shield: volumes shared between processes.
 *
 * Several processes (a shell and the programs it starts, a server and its
 * forked children) may use one volume. Each holds its own pf_volume_t, so
 * every pf call runs under an exclusive flock of "<dir>/.kiln", a process
 * that finds the metadata replaced since it last looked reopens the volume
 * first, and nothing is left unpublished when the lock is released: namespace
 * changes are published at once (in the metadata, durable at the next commit,
 * see rt__vols_unlock); file data commits per --freshness. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

struct rt_vol g_vols[RT_MAX_VOLUMES];
size_t g_nvols;

struct rt_vol *rt__shield_find_vol(const char *abs, const char **rel)
{
	struct rt_vol *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < g_nvols; i++) {
		const char *r = rt_path_under(abs, g_vols[i].cfg->mount);
		size_t len = strlen(g_vols[i].cfg->mount);

		if (r && (!best || len > best_len)) {
			best = &g_vols[i];
			best_len = len;
			*rel = r;
		}
	}
	return best;
}

static int vol_open_pf(struct rt_vol *v, struct kiln_err *err)
{
	struct pf_volume_opts opts = { 0 };
	int ret;

	ret = rt__storage_open(v->cfg->dir, &opts.storage, &opts.storage_ctx);
	if (ret == -KILN_EUNSAFE)
		return kiln_err_set(err, ret, "%s/.kiln: %s", v->cfg->dir, kiln_strerror(ret));
	if (ret)
		return kiln_err_set(err, ret, "%s (not a kiln volume? create it with "
				    "'kiln fs init')", kiln_strerror(ret));
	if (v->cfg->cas_id[0]) {
		rt__storage_no_overlap(opts.storage_ctx);
		ret = rt_fresh_cas(v->cfg, &opts.freshness, &opts.freshness_ctx);
		if (ret) {
			opts.storage->free(opts.storage_ctx);
			return kiln_err_set(err, ret, "volume %s: %s", v->cfg->cas_id,
					    kiln_strerror(ret));
		}
		/* A volume the CAS has never seen committed is created here. */
		if (v->cfg->committed == 0 && !v->created) {
			struct stat st;

			if (rt__raw(SYS_newfstatat, v->lockfd, "meta", &st, 0) == -ENOENT) {
				v->created = true;
				ret = pf_volume_init(v->cfg->dir, v->key, &opts, &v->pf, err);
				goto cas_out;
			}
		}
		ret = pf_volume_open(v->cfg->dir, v->key, &opts, &v->pf, err);
cas_out:
		/* The grant's tags were good for the first open only: later opens
		 * (after another process committed) ask the CAS. */
		v->cfg->committed = RT_TAG_ASK;
		return ret;
	} else if (v->cfg->tag_file[0]) {
		ret = rt__fresh_local(v->cfg->tag_file, &opts.freshness, &opts.freshness_ctx);
		if (ret) {
			opts.storage->free(opts.storage_ctx);
			return kiln_err_set(err, ret, "tag file %s: %s", v->cfg->tag_file,
					    kiln_strerror(ret));
		}
	}
	return pf_volume_open(v->cfg->dir, v->key, &opts, &v->pf, err);
}

/* When the metadata cannot be looked at (e.g. after the process dropped its
 * privileges), the last identity stands: no reload is attempted. The identity
 * covers meta and, when present, meta.pub (namespace changes published by
 * pf_volume_publish): its inode and size are folded in, and the newer mtime
 * stands for both. */
static void meta_identity(struct rt_vol *v, struct stat *st)
{
	struct stat now, pub;

	if (rt__raw(SYS_newfstatat, v->lockfd, "meta", &now, 0) == 0) {
		if (rt__raw(SYS_newfstatat, v->lockfd, "meta.pub", &pub, 0) == 0) {
			now.st_ino ^= pub.st_ino * 0x9e3779b97f4a7c15ull;
			now.st_size += pub.st_size << 32;
			if (pub.st_mtim.tv_sec > now.st_mtim.tv_sec ||
			    (pub.st_mtim.tv_sec == now.st_mtim.tv_sec &&
			     pub.st_mtim.tv_nsec > now.st_mtim.tv_nsec))
				now.st_mtim = pub.st_mtim;
		}
		*st = now;
	} else if (st != &v->meta_seen) {
		*st = v->meta_seen;
	}
}

static bool same_meta(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Change detection for the fast paths, which take no volume lock. pf puts
 * new metadata in place by renaming or swapping (RENAME_EXCHANGE) a file into
 * "meta" (a commit) or "meta.pub" (a publish), so an inotify watch on .kiln
 * reports every change by any process as IN_MOVED_TO. The watch is drained
 * under the volume's flock right before meta_seen is taken (nothing changes
 * the volume without that lock), so an empty queue means "unchanged since".
 * It is made only for processes that use the fast paths (one inotify instance
 * per volume); without it the identity is looked up by path (two stats). */
static void watch_arm(struct rt_vol *v)
{
	char buf[sizeof(struct inotify_event) + NAME_MAX + 1];
	char path[4200];

	if (v->watchfd < 0 && v->want_watch && !v->watch_failed) {
		long fd = rt__raw(SYS_inotify_init1, IN_NONBLOCK | IN_CLOEXEC);

		snprintf(path, sizeof(path), "%s/.kiln", v->cfg->dir);
		if (fd >= 0 && rt__raw(SYS_inotify_add_watch, fd, path,
				       IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
				      IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
				      IN_DONT_FOLLOW) < 0) {
			rt__raw(SYS_close, fd);
			fd = -1;
		}
		if (fd >= 0)
			v->watchfd = rt__own_fd((int)fd);
		v->watch_failed = v->watchfd < 0;
	}
	if (v->watchfd >= 0)
		while (rt__raw(SYS_read, v->watchfd, buf, sizeof(buf)) > 0)
			;
}

/* True when no process committed to or published in v since this one last
 * looked (the fast paths' staleness check). */
bool rt__vol_unchanged(struct rt_vol *v)
{
	char buf[sizeof(struct inotify_event) + NAME_MAX + 1];
	struct stat st;

	v->want_watch = true;
	if (v->watchfd >= 0)
		return rt__raw(SYS_read, v->watchfd, buf, sizeof(buf)) == -EAGAIN;
	st = v->meta_seen;
	meta_identity(v, &st);
	return same_meta(&st, &v->meta_seen);
}

/* Reopen v->pf because another process changed the metadata. Everything this
 * process changed was published before (see above), and the old instance is
 * discarded without writing (its pending removals are left to the orphan
 * collection of a later open). */
static int vol_reload(struct rt_vol *v)
{
	struct kiln_err err = { 0 };
	pf_volume_t *old = v->pf;
	int ret;

	for (struct rt_node *n = g_nodes; n; n = n->next) {
		if (n->vol == v && n->pf) {
			pf_close(n->pf);
			n->pf = NULL;
		}
	}
	/* Its last state is in the metadata it replaced: write nothing. */
	pf_volume_discard(old);
	v->pf = NULL;
	ret = vol_open_pf(v, &err);
	if (ret) {
		rt__say("volume %s: reopen after a change by another process: %s", v->cfg->dir,
			kiln_err_msg(&err, ret));
		return ret;
	}
	rt__node_reopen_all(v);
	return 0;
}

int rt__vols_lock(void)
{
	struct rt_ofd *held;
	int ret = 0;

	for (size_t i = 0; i < g_nvols; i++) {
		long r;

		do
			r = rt__raw(SYS_flock, g_vols[i].lockfd, LOCK_EX);
		while (r == -EINTR);
	}
	/* Closed read-only files go to the cache (or away) before a reload
	 * drops the cache; files with writes are saved after it, through the
	 * reopened volume, as a close under the lock would have. */
	held = rt__released_take(false);
	rt__cache_drop_inherited();
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];
		struct stat st;
		long r;

		watch_arm(v);
		st = v->meta_seen;
		meta_identity(v, &st);
		if (!v->pf || !same_meta(&st, &v->meta_seen)) {
			r = vol_reload(v);
			if (r && !ret)
				ret = (int)r;
			v->meta_seen = st;
		}
	}
	rt__released_put(held);
	return ret;
}

/* Namespace changes are published (other processes see them) but become
 * durable only at the next commit: an fsync of a file or directory, or exit
 * (durable), as on a POSIX file system. File data is committed by rt__node_flush
 * before this. */
void rt__vols_unlock(bool durable)
{
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];
		struct kiln_err err = { 0 };
		int ret = !v->pf ? 0 : durable ? pf_volume_flush(v->pf, &err) :
			  pf_volume_publish(v->pf, &err);

		if (ret)
			rt__say("volume %s: commit: %s", v->cfg->dir, kiln_err_msg(&err, ret));
		watch_arm(v);
		meta_identity(v, &v->meta_seen);
		rt__raw(SYS_flock, v->lockfd, LOCK_UN);
	}
}

/* In the child: flock belongs to the open file description, which the child
 * shares with its parent; give the child its own. */
void rt__vols_after_fork(void)
{
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];
		long fd;

		/* The inotify instance is shared with the parent: events one
		 * reads the other would miss. A new one at the next lock. */
		if (v->watchfd >= 0) {
			rt__own_close(v->watchfd);
			v->watchfd = -1;
		}
		fd = rt__raw(SYS_openat, v->rootfd, ".kiln", O_RDONLY | O_DIRECTORY | KILN_O_OWN);
		if (fd < 0)
			continue;
		rt__raw(SYS_dup3, fd, v->lockfd, O_CLOEXEC);
		rt__raw(SYS_close, fd);
	}
}

int rt__vols_init(struct kiln_err *err)
{
	int ret;

	for (size_t i = 0; i < g_rt.cfg.n_volumes; i++) {
		struct rt_volume_cfg *c = &g_rt.cfg.volumes[i];
		struct rt_vol *v = &g_vols[i];
		char path[4200];
		struct stat st;
		long fd;

		v->cfg = c;
		v->rootfd = -1;
		v->lockfd = -1;
		v->watchfd = -1;
		if (c->cas_id[0] && c->committed == 0) {
			ret = kiln_mkdir_p(c->dir, 0700);
			if (ret)
				return kiln_err_set(err, ret, "volume %s: cannot create %s: %s",
						    c->cas_id, c->dir, kiln_strerror(ret));
		}
		fd = rt__raw(SYS_openat, AT_FDCWD, c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return kiln_err_set(err, (int)fd, "volume %s: %s", c->dir,
					    kiln_strerror((int)fd));
		v->rootfd = rt__own_fd((int)fd);
		if (v->rootfd < 0)
			return kiln_err_set(err, v->rootfd, "volume %s: no fd", c->dir);
		if (rt__raw(SYS_fstat, v->rootfd, &st) == 0)
			v->dev = st.st_dev;
		memcpy(v->key, c->key, sizeof(v->key));
		kiln_wipe(c->key, sizeof(c->key));
		snprintf(path, sizeof(path), "%s/.kiln", c->dir);
		if (c->cas_id[0] && c->committed == 0) {
			/* First use of a CAS volume: make its store (0700). */
			ret = kiln_mkdir_p(path, 0700);
			if (ret)
				return kiln_err_set(err, ret, "volume %s: cannot create %s: %s",
						    c->cas_id, path, kiln_strerror(ret));
		}
		/* The lock and the store: ".kiln" under the volume root, never
		 * through a symlink (a planted one would move the volume). */
		fd = rt__raw(SYS_openat, v->rootfd, ".kiln", O_RDONLY | O_DIRECTORY | KILN_O_OWN);
		if (fd == -ELOOP || fd == -ENOTDIR)
			return kiln_err_set(err, -KILN_EUNSAFE, "volume %s: %s: %s", c->dir, path,
					    kiln_strerror(-KILN_EUNSAFE));
		if (fd < 0)
			return kiln_err_set(err, (int)fd, "volume %s: not a kiln volume (%s: %s); "
					    "create it with 'kiln fs init'", c->dir, path,
					    kiln_strerror((int)fd));
		v->lockfd = rt__own_fd((int)fd);
		if (v->lockfd < 0)
			return kiln_err_set(err, v->lockfd, "volume %s: no fd", c->dir);
		rt__raw(SYS_flock, v->lockfd, LOCK_EX);
		meta_identity(v, &v->meta_seen);
		ret = vol_open_pf(v, err);
		rt__raw(SYS_flock, v->lockfd, LOCK_UN);
		if (ret) {
			kiln_err_prefix(err, "volume %s: ", c->dir);
			return ret;
		}
		v->chunk = pf_volume_chunk_size(v->pf);
		g_nvols = i + 1;
	}
	return 0;
}

void rt__vols_exit(void)
{
	if (rt__vols_lock() == 0)
		for (struct rt_node *n = g_nodes; n; n = n->next)
			rt__node_flush(n, true);
	rt__vols_unlock(true);
	for (size_t i = 0; i < g_nvols; i++)
		kiln_wipe(g_vols[i].key, sizeof(g_vols[i].key));
}
