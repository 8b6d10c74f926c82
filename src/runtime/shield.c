/* kiln runtime: the file shield.
 *
 * Design: an open protected file is a memfd holding its plaintext (a "node",
 * one per volume path, shared by every open of that path). The app's fd is a
 * separate open of that memfd (via /proc/self/fd), so it has its own offset and
 * flags, and every data call -- read, write, pread, mmap(MAP_SHARED), sendfile,
 * splice, poll -- is native and costs nothing extra. The runtime takes part
 * only where the file system is involved: open (decrypt and verify the whole
 * file through pf), stat (plaintext size and the volume's mode), fsync/close/
 * exit (write the chunks that changed since the last flush back through pf and
 * commit per --freshness), and the namespace calls (rename, unlink, mkdir,
 * readdir ...), which map 1:1 to pf.
 *
 * Trade-offs, also in docs/runtime.md: the plaintext of open files lives in
 * process memory (as it would in the page cache of a decrypted mount); a file
 * must fit in memory twice (the memfd and the copy as of the last flush, used
 * to find changed chunks without hashing); corruption is detected at open,
 * not at the read that touches the chunk.
 *
 * Closed files stay decrypted in a bounded LRU cache for the next open, used
 * only while no other process has committed to the volume (node_unref,
 * meta_unchanged; docs/runtime.md "The cache of closed files").
 *
 * Locking: one mutex, always taken inside rt_enter() (signals blocked), never
 * held while app code runs. Exceptions without it: fstat and fcntl on a
 * protected fd, and the close of an fd on a never-written file
 * (close_lockfree). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pf/pf.h"
#include "runtime/rt_int.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

struct rt_vol {
	struct rt_volume_cfg *cfg;
	pf_volume_t *pf;
	int rootfd;     /* owned: the volume directory, backs directory fds */
	int lockfd;     /* owned: "<dir>/.kiln", flock'd around every pf call */
	struct stat meta_seen; /* identity of the metadata this process last saw */
	int watchfd;    /* owned: inotify on "<dir>/.kiln" (or -1), see meta_unchanged */
	bool want_watch; /* a fast path looked: make watchfd at the next lock */
	bool watch_failed; /* no inotify (limits): identity by path */
	dev_t dev;      /* reported as st_dev of every file in the volume */
	uint32_t chunk;
	uint8_t key[PF_KEY_SIZE]; /* kept to reopen after another process commits */
	bool created;             /* CAS volume initialized by this process */
};

struct rt_node {
	struct rt_node *next;
	struct rt_vol *vol;
	char *rel;            /* volume path, malloc'd */
	pf_file_t *pf;
	int memfd;            /* owned */
	char proc[32];        /* "/proc/self/fd/<memfd>", made at the first reopen */
	uint8_t *synced;      /* plaintext as of the last flush, malloc'd, wiped */
	uint64_t synced_size;
	int refs;             /* open file descriptions using this node */
	mode_t mode;          /* permission bits, as kept in the volume */
	bool unlinked;
	atomic_bool writable; /* ever opened for writing: the memfd may differ from pf
			       * (read without the lock by close_lockfree) */
	struct timespec mtime; /* the memfd's mtime as of the last flush */
	bool cached;          /* no fd left; kept for the next open (see node_unref) */
	uint64_t cached_at;   /* g_cache_clock when it was cached (LRU order) */
	bool shared;          /* open across a fork: another process may write the
			       * memfd, so it is never cached nor its stat assumed */
};

struct rt_ofd {
	atomic_int refs;      /* fds sharing this description (dup); see close_lockfree */
	enum rt_fd_kind kind;
	struct rt_node *node; /* RT_FD_FILE */
	struct rt_vol *vol;   /* RT_FD_DIR */
	char *rel;            /* RT_FD_DIR, malloc'd */
	char **names;         /* RT_FD_DIR listing snapshot (pf_names_free) */
	size_t count;
	size_t pos;
	struct rt_ofd *next_released; /* on g_released */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
/* The working directory when it is a volume directory (see rt_vcwd_on). */
static char g_vcwd[4096];
static atomic_bool g_vcwd_set;
/* Owned: "/proc/self/fd" of this process (reopened in a forked child), so a
 * memfd reopen looks up one name instead of walking /proc/self/fd/N. */
static int g_procfd = -1;
static uid_t g_uid;
static gid_t g_gid;
/* Closed files are kept decrypted for the next open (a web server opens the
 * same files again and again), least recently closed out first, within these
 * bounds (KILN_FILE_CACHE=FILES[:MIB], see rt_shield_init). Each cached file
 * holds its plaintext once (a memfd) and two runtime-owned fds (the memfd and
 * its pf backing file). */
#define CACHE_DEFAULT_FILES 32
#define CACHE_DEFAULT_MIB 256
static size_t g_cache_max_files = CACHE_DEFAULT_FILES;
static uint64_t g_cache_max_bytes = (uint64_t)CACHE_DEFAULT_MIB << 20;
static size_t g_cache_files;
static uint64_t g_cache_bytes;
static uint64_t g_cache_clock;
/* In a forked child: the cached files' memfds are the parent's too; they are
 * dropped at the child's first call into the shield (cache_drop_inherited). */
static bool g_cache_inherited;
static struct rt_vol g_vols[RT_MAX_VOLUMES];
static size_t g_nvols;
/* Descriptions whose last fd was closed without the lock (close_lockfree),
 * released under the lock by the next call that takes it. */
static _Atomic(struct rt_ofd *) g_released;
/* Lock-free closes in progress, and a fork waiting for them (see
 * rt_shield_before_fork). */
static atomic_int g_closing;
static atomic_bool g_forking;
static RT_TLS int t_closing;

#define PATH_SIZE 4096

/* The process umask (applied to modes of created files and directories, as
 * the kernel would). Called with signals blocked under the shield lock. */
static mode_t cur_umask(void)
{
	long old = rt_sys(SYS_umask, 022);

	rt_sys(SYS_umask, old);
	return (mode_t)old;
}

/* ---- owned fds ----------------------------------------------------------- */
int rt_own_fd(int fd)
{
	long nfd = rt_sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, g_rt.owned_base);

	rt_sys(SYS_close, fd);
	if (nfd < 0)
		return (int)nfd;
	if (!rt_fd_in_range((int)nfd)) {
		rt_sys(SYS_close, nfd);
		return -EMFILE;
	}
	rt_fd_set((int)nfd, RT_FD_OWNED, NULL);
	return (int)nfd;
}

void rt_own_close(int fd)
{
	if (fd < 0)
		return;
	rt_fd_clear(fd, NULL);
	rt_sys(SYS_close, fd);
}

/* ---- resolution ---------------------------------------------------------- */
struct target {
	struct rt_node *vfile; /* an injected file at exactly this path, or NULL */
	struct rt_vol *vol;
	const char *rel;      /* points into abs */
	char abs[PATH_SIZE];  /* normalized absolute path the app used */
};

static struct rt_vol *find_vol(const char *abs, const char **rel)
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

/* Injected files (from the attestation answer): plaintext in memory only. They
 * are nodes without a volume, kept for the life of the process. */
static struct rt_node *g_vfiles;

static struct rt_node *vfile_find(const char *abs)
{
	for (struct rt_node *n = g_vfiles; n; n = n->next)
		if (strcmp(n->rel, abs) == 0)
			return n;
	return NULL;
}

/* Resolve (dirfd, path). Returns true when it names something in a volume
 * (t->vfile tells about injected files). */
static bool resolve(long dirfd, const char *path, struct target *t)
{
	char base[PATH_SIZE];

	t->vol = NULL;
	t->vfile = NULL;
	if (!path || !path[0])
		return false;
	if (path[0] == '/') {
		if (rt_path_normalize(NULL, path, t->abs, sizeof(t->abs)))
			return false;
	} else {
		if ((int)dirfd == AT_FDCWD) {
			if (atomic_load(&g_vcwd_set))
				snprintf(base, sizeof(base), "%s", g_vcwd);
			else if (rt_sys(SYS_getcwd, base, sizeof(base)) < 0)
				return false;
		} else if (rt_fd_kind((int)dirfd) == RT_FD_DIR) {
			struct rt_ofd *o = rt_fd_get((int)dirfd);

			if ((size_t)snprintf(base, sizeof(base), "%s/%s", o->vol->cfg->mount,
					     o->rel) >= sizeof(base))
				return false;
		} else {
			char link[64];
			long n;

			snprintf(link, sizeof(link), "/proc/self/fd/%d", (int)dirfd);
			n = rt_sys(SYS_readlink, link, base, sizeof(base) - 1);
			if (n <= 0 || base[0] != '/')
				return false;
			base[n] = '\0';
		}
		if (rt_path_normalize(base, path, t->abs, sizeof(t->abs)))
			return false;
	}
	t->vol = find_vol(t->abs, &t->rel);
	t->vfile = vfile_find(t->abs);
	return t->vol != NULL;
}

static bool fd_tracked(long fd)
{
	return rt_fd_kind((int)fd) != RT_FD_NONE;
}

bool rt_shield_touches(long nr, const struct rt_syscall *s, const long a[6])
{
	struct target t;

	if (nr == SYS_close_range)
		return true;
	for (int i = 0; i < 6; i++)
		if ((s->fd_mask & (1u << i)) && fd_tracked(a[i]))
			return true;
	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];

		if (p < 0)
			continue;
		if (!a[p] || !((const char *)a[p])[0]) {
			/* AT_EMPTY_PATH / NULL path: the call acts on dirfd. */
			if (d >= 0 && fd_tracked(a[d]))
				return true;
			continue;
		}
		if (resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t) || t.vfile)
			return true;
	}
	return false;
}

void rt_shield_describe(long nr, const struct rt_syscall *s, const long a[6], char *out,
			size_t out_size)
{
	struct target t;

	for (int i = 0; i < 2; i++) {
		int d = s->paths[i][0], p = s->paths[i][1];

		if (p >= 0 && a[p] && resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t)) {
			snprintf(out, out_size, "path %s", t.abs);
			return;
		}
	}
	for (int i = 0; i < 6; i++) {
		if ((s->fd_mask & (1u << i)) && fd_tracked(a[i])) {
			struct rt_ofd *o = rt_fd_get((int)a[i]);

			if (rt_fd_kind((int)a[i]) == RT_FD_FILE && !o->node->vol)
				snprintf(out, out_size, "fd %ld (%s)", a[i], o->node->rel);
			else if (rt_fd_kind((int)a[i]) == RT_FD_FILE)
				snprintf(out, out_size, "fd %ld (%s/%s)", a[i],
					 o->node->vol->cfg->mount, o->node->rel);
			else if (rt_fd_kind((int)a[i]) == RT_FD_DIR)
				snprintf(out, out_size, "fd %ld (%s/%s)", a[i], o->vol->cfg->mount,
					 o->rel);
			else
				snprintf(out, out_size, "fd %ld", a[i]);
			return;
		}
	}
	snprintf(out, out_size, "file");
}

/* ---- volumes shared between processes ------------------------------------
 * Several processes (a shell and the programs it starts, a server and its
 * forked children) may use one volume. Each holds its own pf_volume_t, so
 * every pf call runs under an exclusive flock of "<dir>/.kiln", a process
 * that finds the metadata replaced since it last looked reopens the volume
 * first, and nothing is left unpublished when the lock is released: namespace
 * changes are published at once (in the metadata, durable at the next commit,
 * see vols_unlock); file data commits per --freshness. */
static int vol_open_pf(struct rt_vol *v, struct kiln_err *err)
{
	struct pf_volume_opts opts = { 0 };
	int ret;

	ret = rt_storage_open(v->cfg->dir, &opts.storage, &opts.storage_ctx);
	if (ret)
		return kiln_err_set(err, ret, "%s (not a kiln volume? create it with "
				    "'kiln fs init')", kiln_strerror(ret));
	if (v->cfg->cas_id[0]) {
		rt_storage_no_overlap(opts.storage_ctx);
		ret = rt_fresh_cas(v->cfg, &opts.freshness, &opts.freshness_ctx);
		if (ret) {
			opts.storage->free(opts.storage_ctx);
			return kiln_err_set(err, ret, "volume %s: %s", v->cfg->cas_id,
					    kiln_strerror(ret));
		}
		/* A volume the CAS has never seen committed is created here. */
		if (v->cfg->committed == 0 && !v->created) {
			struct stat st;

			if (rt_sys(SYS_newfstatat, v->lockfd, "meta", &st, 0) == -ENOENT) {
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
		ret = rt_fresh_local(v->cfg->tag_file, &opts.freshness, &opts.freshness_ctx);
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

	if (rt_sys(SYS_newfstatat, v->lockfd, "meta", &now, 0) == 0) {
		if (rt_sys(SYS_newfstatat, v->lockfd, "meta.pub", &pub, 0) == 0) {
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
		long fd = rt_sys(SYS_inotify_init1, IN_NONBLOCK | IN_CLOEXEC);

		snprintf(path, sizeof(path), "%s/.kiln", v->cfg->dir);
		if (fd >= 0 && rt_sys(SYS_inotify_add_watch, fd, path,
				      IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
				      IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
			rt_sys(SYS_close, fd);
			fd = -1;
		}
		if (fd >= 0)
			v->watchfd = rt_own_fd((int)fd);
		v->watch_failed = v->watchfd < 0;
	}
	if (v->watchfd >= 0)
		while (rt_sys(SYS_read, v->watchfd, buf, sizeof(buf)) > 0)
			;
}

/* True when no process committed to or published in v since this one last
 * looked (the fast paths' staleness check). */
static bool meta_unchanged(struct rt_vol *v)
{
	char buf[sizeof(struct inotify_event) + NAME_MAX + 1];
	struct stat st;

	v->want_watch = true;
	if (v->watchfd >= 0)
		return rt_sys(SYS_read, v->watchfd, buf, sizeof(buf)) == -EAGAIN;
	st = v->meta_seen;
	meta_identity(v, &st);
	return same_meta(&st, &v->meta_seen);
}

static struct rt_node *g_nodes;
static void node_reopen_all(struct rt_vol *v);

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
		rt_say("volume %s: reopen after a change by another process: %s", v->cfg->dir,
		       kiln_err_msg(&err, ret));
		return ret;
	}
	node_reopen_all(v);
	return 0;
}

static struct rt_ofd *released_take(bool all);
static void released_put(struct rt_ofd *list);
static void cache_drop_inherited(void);

static int vols_lock(void)
{
	struct rt_ofd *held;
	int ret = 0;

	for (size_t i = 0; i < g_nvols; i++) {
		long r;

		do
			r = rt_sys(SYS_flock, g_vols[i].lockfd, LOCK_EX);
		while (r == -EINTR);
	}
	/* Closed read-only files go to the cache (or away) before a reload
	 * drops the cache; files with writes are saved after it, through the
	 * reopened volume, as a close under the lock would have. */
	held = released_take(false);
	cache_drop_inherited();
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
	released_put(held);
	return ret;
}

/* Namespace changes are published (other processes see them) but become
 * durable only at the next commit: an fsync of a file or directory, or exit
 * (durable), as on a POSIX file system. File data is committed by node_flush
 * before this. */
static void vols_unlock(bool durable)
{
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];
		struct kiln_err err = { 0 };
		int ret = !v->pf ? 0 : durable ? pf_volume_flush(v->pf, &err) :
			  pf_volume_publish(v->pf, &err);

		if (ret)
			rt_say("volume %s: commit: %s", v->cfg->dir, kiln_err_msg(&err, ret));
		watch_arm(v);
		meta_identity(v, &v->meta_seen);
		rt_sys(SYS_flock, v->lockfd, LOCK_UN);
	}
}

/* Around fork: the shield lock is taken first so that the child never
 * inherits it held by a thread that does not exist there. */
void rt_shield_before_fork(void)
{
	pthread_mutex_lock(&g_lock);
	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->refs > 0)
			n->shared = true;
	/* Let lock-free closes of other threads finish (new ones take the lock
	 * and wait), so the child never sees one half done. A close this thread
	 * was in when a signal handler forked is not waited for. */
	atomic_store(&g_forking, true);
	while (atomic_load(&g_closing) > t_closing)
		rt_sys0(SYS_sched_yield);
}

void rt_shield_parent_after_fork(void)
{
	atomic_store(&g_forking, false);
	pthread_mutex_unlock(&g_lock);
}

/* In the child: flock belongs to the open file description, which the child
 * shares with its parent; give the child its own. */
void rt_shield_after_fork(void)
{
	char path[4200];

	atomic_store(&g_forking, false);
	g_cache_inherited = g_cache_files > 0;
	pthread_mutex_unlock(&g_lock);
	if (g_procfd >= 0) {
		/* The inherited one lists the parent's fds. */
		long fd = rt_sys(SYS_openat, AT_FDCWD, "/proc/self/fd",
				 O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			rt_sys(SYS_dup3, fd, g_procfd, O_CLOEXEC);
			rt_sys(SYS_close, fd);
		} else {
			rt_own_close(g_procfd);
			g_procfd = -1;
		}
	}
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];
		long fd;

		/* The inotify instance is shared with the parent: events one
		 * reads the other would miss. A new one at the next lock. */
		if (v->watchfd >= 0) {
			rt_own_close(v->watchfd);
			v->watchfd = -1;
		}
		snprintf(path, sizeof(path), "%s/.kiln", v->cfg->dir);
		fd = rt_sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		rt_sys(SYS_dup3, fd, v->lockfd, O_CLOEXEC);
		rt_sys(SYS_close, fd);
	}
}

/* ---- nodes --------------------------------------------------------------- */
static void say_pf(const char *mount, const char *rel, int code, struct kiln_err *err)
{
	rt_say("%s%s%s: %s", mount, rel[0] ? "/" : "", rel, kiln_err_msg(err, code));
}

static struct rt_node *node_find(struct rt_vol *vol, const char *rel)
{
	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->vol == vol && !n->unlinked && strcmp(n->rel, rel) == 0)
			return n;
	return NULL;
}

static void cache_take(struct rt_node *n)
{
	if (!n->cached)
		return;
	n->cached = false;
	g_cache_files--;
	g_cache_bytes -= n->synced_size;
}

static void node_free(struct rt_node *n)
{
	struct rt_node **pp;

	cache_take(n);
	for (pp = &g_nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	if (n->pf)
		pf_close(n->pf);
	rt_own_close(n->memfd);
	kiln_free_secret(n->synced, n->synced_size);
	free(n->rel);
	free(n);
}

static void node_reopen_all(struct rt_vol *v)
{
	struct rt_node *next;

	for (struct rt_node *n = g_nodes; n; n = next) {
		struct kiln_err err = { 0 };

		next = n->next;
		if (n->vol != v || n->unlinked)
			continue;
		if (n->refs == 0 && (n->cached || !n->writable)) {
			/* Another process changed the volume: cached copies may be stale. */
			node_free(n);
			continue;
		}
		/* Closed but not cached: changes kept for the exit flush (on-exit, or
		 * a flush that failed). They are reopened below like an open file's,
		 * not dropped. */
		if (!n->writable) {
			/* Still open here, never written: the open fds keep this copy
			 * (a snapshot, like a file replaced by rename); the next open
			 * loads the file from the volume again, and this copy is
			 * freed, not cached, when its last fd closes. */
			n->unlinked = true;
			continue;
		}
		if (pf_open(v->pf, n->rel, O_RDWR, 0600, &n->pf, &err)) {
			/* Removed or replaced by another process: this process keeps
			 * its copy (like an unlinked file), which is no longer saved. */
			n->unlinked = true;
			n->pf = NULL;
		}
	}
}

/* Write the chunks that changed since the last flush back through pf; commit
 * (pf_fsync: data and metadata, freshness tag) when asked. */
static int node_flush(struct rt_node *n, bool commit)
{
	struct kiln_err err = { 0 };
	struct stat st;
	uint8_t *map = NULL;
	uint64_t size, chunk = n->vol->chunk;
	bool changed = false;
	int ret = 0;

	if (n->unlinked || !n->pf || !n->writable)
		return 0;
	ret = (int)rt_sys(SYS_fstat, n->memfd, &st);
	if (ret < 0)
		return ret;
	size = (uint64_t)st.st_size;
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED, n->memfd, 0);
		if (map == MAP_FAILED)
			return -errno;
	}
	if (size > n->synced_size) {
		uint8_t *p = realloc(n->synced, size);

		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		memset(p + n->synced_size, 0, size - n->synced_size);
		n->synced = p;
	}
	for (uint64_t off = 0; off < size;) {
		uint64_t end = off;

		/* Collect a run of changed chunks and write it in one call. */
		while (end < size) {
			uint64_t len = size - end < chunk ? size - end : chunk;

			if (end + len <= n->synced_size &&
			    memcmp(map + end, n->synced + end, len) == 0)
				break;
			end += len;
		}
		if (end > off) {
			ssize_t w = pf_pwrite(n->pf, map + off, end - off, off, &err);

			if (w < 0) {
				ret = (int)w;
				goto out;
			}
			memcpy(n->synced + off, map + off, end - off);
			changed = true;
			off = end;
			continue;
		}
		off += chunk;
	}
	if (size < n->synced_size) {
		ret = pf_ftruncate(n->pf, size, &err);
		if (ret)
			goto out;
		changed = true;
	}
	if (size != n->synced_size) {
		/* Shrinking keeps the allocation; only the size matters. */
		if (size < n->synced_size)
			kiln_wipe(n->synced + size, n->synced_size - size);
		n->synced_size = size;
	}
	/* A write that left the bytes as they were still modified the file. The
	 * mtime goes in before the commit so that one metadata write carries both. */
	if (st.st_mtim.tv_sec != n->mtime.tv_sec || st.st_mtim.tv_nsec != n->mtime.tv_nsec) {
		ret = pf_set_mtime(n->vol->pf, n->rel,
				   (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, &err);
		if (ret)
			goto out;
		n->mtime = st.st_mtim;
	}
	if (commit && changed)
		ret = pf_fsync(n->pf, &err);
out:
	if (map)
		munmap(map, size);
	if (ret)
		say_pf(n->vol->cfg->mount, n->rel, ret, &err);
	return ret;
}

static void cache_drop_inherited(void)
{
	struct rt_node *next;

	if (!g_cache_inherited)
		return;
	g_cache_inherited = false;
	for (struct rt_node *n = g_nodes; n; n = next) {
		next = n->next;
		if (n->cached)
			node_free(n);
	}
}

static void cache_evict_oldest(void)
{
	struct rt_node *old = NULL;

	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->cached && (!old || n->cached_at < old->cached_at))
			old = n;
	if (old)
		node_free(old);
}

/* The copy of the plaintext as of the last flush, dropped while a never
 * written file is cached (the memfd holds the same bytes): made again before
 * the file can be written. */
static int node_keep_synced(struct rt_node *n)
{
	if (n->synced || !n->synced_size)
		return 0;
	n->synced = malloc(n->synced_size);
	if (!n->synced)
		return -ENOMEM;
	for (uint64_t off = 0; off < n->synced_size;) {
		long r = rt_sys(SYS_pread64, n->memfd, n->synced + off, n->synced_size - off, off);

		if (r <= 0) {
			kiln_free_secret(n->synced, n->synced_size);
			n->synced = NULL;
			return r < 0 ? (int)r : -EIO;
		}
		off += (uint64_t)r;
	}
	return 0;
}

static void node_unref(struct rt_node *n)
{
	if (--n->refs > 0)
		return;
	/* on-exit: keep the plaintext until exit, when it is saved. */
	if (!n->unlinked && g_rt.cfg.freshness == RT_FRESH_ON_EXIT)
		return;
	/* Not saved: kept (uncached, never evicted) for the exit flush to retry. */
	if (!n->unlinked && node_flush(n, true))
		return;
	if (n->unlinked || !n->pf || n->shared || !g_cache_max_files ||
	    n->synced_size > g_cache_max_bytes) {
		node_free(n);
		return;
	}
	while (g_cache_files >= g_cache_max_files ||
	       g_cache_bytes + n->synced_size > g_cache_max_bytes)
		cache_evict_oldest();
	if (!n->writable) {
		kiln_free_secret(n->synced, n->synced_size);
		n->synced = NULL;
	}
	n->cached = true;
	n->cached_at = ++g_cache_clock;
	g_cache_files++;
	g_cache_bytes += n->synced_size;
}

static int node_open(struct rt_vol *vol, const char *rel, int flags, mode_t mode,
		     struct rt_node **out)
{
	struct kiln_err err = { 0 };
	struct rt_node *n = calloc(1, sizeof(*n));
	uint64_t size = 0;
	int ret;
	long fd;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	n->memfd = -1;
	n->vol = vol;
	n->rel = strdup(rel);
	if (!n->rel) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = pf_open(vol->pf, rel, O_RDWR | (flags & (O_CREAT | O_EXCL | O_TRUNC)),
		      mode & 07777 & ~cur_umask(),
		      &n->pf, &err);
	if (ret)
		goto fail_say;
	ret = pf_get_size(n->pf, &size);
	if (ret)
		goto fail_say;
	{
		struct pf_stat ps;

		n->mode = pf_fstat(n->pf, &ps) == 0 ? ps.mode : 0600;
	}
	fd = rt_sys(SYS_memfd_create, "kiln-plaintext", MFD_CLOEXEC);
	if (fd < 0) {
		ret = (int)fd;
		goto fail;
	}
	n->memfd = rt_own_fd((int)fd);
	if (n->memfd < 0) {
		ret = n->memfd;
		goto fail;
	}
	if (size) {
		n->synced = malloc(size);
		if (!n->synced) {
			ret = -ENOMEM;
			goto fail;
		}
		n->synced_size = size;
		for (uint64_t off = 0; off < size;) {
			ssize_t r = pf_pread(n->pf, n->synced + off, size - off, off, &err);

			if (r < 0) {
				ret = (int)r;
				goto fail_say;
			}
			if (r == 0)
				break;
			off += (uint64_t)r;
		}
		for (uint64_t off = 0; off < size;) {
			long w = rt_sys(SYS_pwrite64, n->memfd, n->synced + off, size - off, off);

			if (w < 0) {
				ret = (int)w;
				goto fail;
			}
			off += (uint64_t)w;
		}
	}
	{
		struct stat st;

		if (rt_sys(SYS_fstat, n->memfd, &st) == 0)
			n->mtime = st.st_mtim;
	}
	n->next = g_nodes;
	g_nodes = n;
	*out = n;
	return 0;
fail_say:
	say_pf(vol->cfg->mount, rel, ret, &err);
	/* Corruption and wrong keys are I/O errors for the app. */
	if (ret <= -KILN_EBASE)
		ret = -EIO;
fail:
	n->unlinked = true;
	if (n->pf)
		pf_close(n->pf);
	n->pf = NULL;
	rt_own_close(n->memfd);
	kiln_free_secret(n->synced, n->synced_size);
	free(n->rel);
	free(n);
	return ret;
}

/* ---- open file descriptions ------------------------------------------------ */
static void ofd_release(struct rt_ofd *o)
{
	if (o->kind == RT_FD_FILE)
		node_unref(o->node);
	if (o->names)
		pf_names_free(o->names, o->count);
	free(o->rel);
	free(o);
}

static void ofd_unref(struct rt_ofd *o)
{
	if (o && --o->refs == 0)
		ofd_release(o);
}

/* Take a reference on a description found in the fd table, unless its last fd
 * was closed meanwhile (close_lockfree owns it then). */
static bool ofd_tryref(struct rt_ofd *o)
{
	int r = atomic_load(&o->refs);

	while (r > 0)
		if (atomic_compare_exchange_weak(&o->refs, &r, r + 1))
			return true;
	return false;
}

/* ---- closes without the lock ----------------------------------------------
 * nginx opens, reads and closes a file per request. The close of an fd on a
 * file this process never wrote needs neither pf nor the volume lock, only
 * the fd table and the node's reference count: the fd's slot is taken with
 * one compare-and-swap, and a description whose last fd this was goes to
 * g_released, which the next caller of the lock drains (released_take). No
 * signal mask change, no mutex: signals may arrive at any point, and a
 * handler that calls into the shield finds consistent state. */
static void release_later(struct rt_ofd *o)
{
	struct rt_ofd *head = atomic_load(&g_released);

	do
		o->next_released = head;
	while (!atomic_compare_exchange_weak(&g_released, &head, o));
}

/* Under g_lock: release what close_lockfree left. With all == false, those of
 * written files (their release saves them, which needs the volume lock and a
 * current pf) are returned instead. */
static struct rt_ofd *released_take(bool all)
{
	struct rt_ofd *o = atomic_exchange(&g_released, NULL), *next, *held = NULL;

	for (; o; o = next) {
		next = o->next_released;
		if (!all && o->kind == RT_FD_FILE && o->node->vol && o->node->writable) {
			o->next_released = held;
			held = o;
			continue;
		}
		ofd_release(o);
	}
	return held;
}

static void released_put(struct rt_ofd *list)
{
	struct rt_ofd *next;

	for (; list; list = next) {
		next = list->next_released;
		ofd_release(list);
	}
}

/* Under g_lock, without the volume lock: release what needs no save; keep the
 * rest for the next vols_lock. */
static void released_drain_ro(void)
{
	struct rt_ofd *held = released_take(false), *next;

	for (; held; held = next) {
		next = held->next_released;
		release_later(held);
	}
}

static long close_lockfree(int fd)
{
	struct rt_ofd *o = rt_fd_get(fd);
	long r = -EAGAIN;

	if (rt_fd_kind(fd) != RT_FD_FILE)
		return -EAGAIN;
	atomic_fetch_add(&g_closing, 1);
	t_closing++;
	if (atomic_load(&g_forking) || !rt_fd_clear_if(fd, RT_FD_FILE, o))
		goto out;
	/* The slot's reference is ours now. */
	if (atomic_fetch_sub(&o->refs, 1) == 1) {
		if (o->node->vol && o->node->writable) {
			struct rt_guard g;

			/* Written: saved now, under the locks (--freshness on-close). */
			rt_enter(&g);
			pthread_mutex_lock(&g_lock);
			r = vols_lock();
			ofd_release(o);
			vols_unlock(false);
			pthread_mutex_unlock(&g_lock);
			rt_leave(&g);
			if (r) {
				rt_sys(SYS_close, fd);
				r = -EIO;
				goto out;
			}
		} else {
			release_later(o);
		}
	}
	r = rt_sys(SYS_close, fd);
out:
	t_closing--;
	atomic_fetch_sub(&g_closing, 1);
	return r;
}

/* Track fd as sharing o; drops whatever newfd held before. */
static void fd_attach(int fd, struct rt_ofd *o)
{
	struct rt_ofd *old;
	enum rt_fd_kind kind;

	old = rt_fd_clear(fd, &kind);
	if (old && (kind == RT_FD_FILE || kind == RT_FD_DIR))
		ofd_unref(old);
	if (o) {
		o->refs++;
		rt_fd_set(fd, o->kind, o);
	}
}

static int fd_detach(int fd)
{
	enum rt_fd_kind kind;
	struct rt_ofd *o = rt_fd_clear(fd, &kind);

	if (o && (kind == RT_FD_FILE || kind == RT_FD_DIR))
		ofd_unref(o);
	return 0;
}

static long own_or_badf(long fd)
{
	return rt_fd_kind((int)fd) == RT_FD_OWNED ? -EBADF : 0;
}

/* ---- open ----------------------------------------------------------------- */
static long open_dir(struct target *t, int flags)
{
	struct rt_ofd *o;
	long fd;

	if ((flags & O_ACCMODE) != O_RDONLY)
		return -EISDIR;
	fd = rt_sys(SYS_openat, t->vol->rootfd, ".", O_RDONLY | O_DIRECTORY |
		    (flags & O_CLOEXEC));
	if (fd < 0)
		return fd;
	if (!rt_fd_in_range((int)fd)) {
		rt_sys(SYS_close, fd);
		return -EMFILE;
	}
	o = calloc(1, sizeof(*o));
	if (!o || !(o->rel = strdup(t->rel))) {
		free(o);
		rt_sys(SYS_close, fd);
		return -ENOMEM;
	}
	o->kind = RT_FD_DIR;
	o->vol = t->vol;
	fd_attach((int)fd, o);
	return fd;
}

/* A new program fd on node n's plaintext: a reopen of its memfd through
 * /proc/self/fd, so the fd has its own offset and flags as an open of the same
 * file would. rflags are the caller's flags reduced to what applies to a memfd.
 * On success the fd holds a reference on n. */
static long ofd_open_node(struct rt_node *n, int rflags)
{
	struct rt_ofd *o;
	long fd;

	if (!n->proc[0])
		snprintf(n->proc, sizeof(n->proc), "/proc/self/fd/%d", n->memfd);
	if (g_procfd >= 0)
		fd = rt_sys(SYS_openat, g_procfd, n->proc + strlen("/proc/self/fd/"), rflags, 0);
	else
		fd = rt_sys(SYS_openat, AT_FDCWD, n->proc, rflags, 0);
	if (fd < 0)
		return fd;
	o = calloc(1, sizeof(*o));
	if (!o || !rt_fd_in_range((int)fd)) {
		free(o);
		rt_sys(SYS_close, fd);
		return o ? -EMFILE : -ENOMEM;
	}
	o->kind = RT_FD_FILE;
	o->node = n;
	n->refs++;
	fd_attach((int)fd, o);
	return fd;
}

static long do_open(long dirfd, const char *path, int flags, mode_t mode)
{
	struct kiln_err err = { 0 };
	struct target t;
	struct pf_stat st;
	struct rt_node *n;
	bool exists;
	int ret, rflags;
	long fd;

	if (!resolve(dirfd, path, &t))
		return rt_sys(SYS_openat, dirfd, path, flags, mode);
	if ((flags & __O_TMPFILE) == __O_TMPFILE) {
		rt_say("open %s with O_TMPFILE: not supported in volumes (ENOTSUP)", t.abs);
		return -ENOTSUP;
	}
	if (flags & O_PATH) /* a real descriptor does everything O_PATH allows */
		flags = (flags & ~(O_PATH | O_ACCMODE | O_CREAT | O_TRUNC)) | O_RDONLY;
	ret = pf_stat(t.vol->pf, t.rel, &st, &err);
	if (ret && ret != -ENOENT && ret != -ENOTDIR) {
		say_pf(t.vol->cfg->mount, t.rel, ret, &err);
		return ret <= -KILN_EBASE ? -EIO : ret;
	}
	exists = ret == 0;
	if (exists && (flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (exists && st.is_dir)
		return open_dir(&t, flags);
	if (!exists && !(flags & O_CREAT))
		return ret;
	if (flags & O_DIRECTORY)
		return exists ? -ENOTDIR : -ENOENT;
	n = node_find(t.vol, t.rel);
	if (!n) {
		ret = node_open(t.vol, t.rel, flags, mode, &n);
		if (ret)
			return ret;
	}
	cache_take(n);
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
		ret = node_keep_synced(n);
		if (ret) {
			n->refs++;
			node_unref(n); /* back to the cache */
			return ret;
		}
		n->writable = true;
	}
	rflags = flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_TRUNC | O_NOATIME);
	/* Hold n across the reopen: a node made just now is released (flushed,
	 * cached or freed) by this unref when the open fails. */
	n->refs++;
	fd = ofd_open_node(n, rflags);
	node_unref(n);
	return fd;
}

/* ---- stat ----------------------------------------------------------------- */
static uint64_t ino_of(const char *rel)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const char *p = rel; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h | 1;
}

static void fill_stat(struct stat *out, struct rt_vol *vol, const char *rel,
		      const struct pf_stat *ps, const struct stat *mem)
{
	memset(out, 0, sizeof(*out));
	out->st_dev = vol ? vol->dev : 0x6b6c6e; /* injected files: a fixed device */
	out->st_ino = ino_of(rel);
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
static long stat_rel(struct rt_vol *vol, const char *rel, struct stat *out)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	struct rt_node *n;
	struct stat mem;
	int ret = pf_stat(vol->pf, rel, &ps, &err);

	if (ret)
		return ret <= -KILN_EBASE ? -EIO : ret;
	n = ps.is_dir ? NULL : node_find(vol, rel);
	if (n && rt_sys(SYS_fstat, n->memfd, &mem) == 0)
		fill_stat(out, vol, rel, &ps, &mem);
	else
		fill_stat(out, vol, rel, &ps, NULL);
	return 0;
}

static long stat_fd(long fd, struct stat *out)
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
		} else if (rt_sys(SYS_fstat, o->node->memfd, &mem) < 0) {
			return -EIO;
		}
		fill_stat(out, o->node->vol, o->node->rel, &ps, &mem);
		return 0;
	case RT_FD_DIR:
		return stat_rel(o->vol, o->rel, out);
	default:
		return -EBADF;
	}
}

static long do_fstatat(long dirfd, const char *path, struct stat *st, int flags)
{
	struct target t;

	if ((!path || !path[0]) && (flags & AT_EMPTY_PATH))
		return stat_fd(dirfd, st);
	if (!resolve(dirfd, path, &t))
		return rt_sys(SYS_newfstatat, dirfd, path, st, flags);
	return stat_rel(t.vol, t.rel, st);
}

static void to_statx_ts(struct statx_timestamp *d, const struct timespec *s)
{
	d->tv_sec = s->tv_sec;
	d->tv_nsec = (uint32_t)s->tv_nsec;
}

static long do_statx(long dirfd, const char *path, int flags, struct statx *sx)
{
	struct stat st;
	long r;

	if ((!path || !path[0]) && (flags & AT_EMPTY_PATH))
		r = stat_fd(dirfd, &st);
	else
		r = do_fstatat(dirfd, path, &st, flags & AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return r;
	memset(sx, 0, sizeof(*sx));
	sx->stx_mask = STATX_BASIC_STATS;
	sx->stx_blksize = (uint32_t)st.st_blksize;
	sx->stx_nlink = (uint32_t)st.st_nlink;
	sx->stx_uid = st.st_uid;
	sx->stx_gid = st.st_gid;
	sx->stx_mode = (uint16_t)st.st_mode;
	sx->stx_ino = st.st_ino;
	sx->stx_size = (uint64_t)st.st_size;
	sx->stx_blocks = (uint64_t)st.st_blocks;
	to_statx_ts(&sx->stx_atime, &st.st_atim);
	to_statx_ts(&sx->stx_mtime, &st.st_mtim);
	to_statx_ts(&sx->stx_ctime, &st.st_ctim);
	sx->stx_dev_major = major(st.st_dev);
	sx->stx_dev_minor = minor(st.st_dev);
	return 0;
}

/* ---- namespace ------------------------------------------------------------ */
static long pf_result(struct target *t, int ret, struct kiln_err *err)
{
	if (ret <= -KILN_EBASE) {
		say_pf(t->vol->cfg->mount, t->rel, ret, err);
		return -EIO;
	}
	return ret;
}

static long do_access(long dirfd, const char *path, int mode)
{
	struct target t;
	struct stat st;
	long r;

	if (!resolve(dirfd, path, &t))
		return rt_sys(SYS_faccessat2, dirfd, path, mode, 0);
	r = stat_rel(t.vol, t.rel, &st);
	if (r < 0)
		return r;
	if ((mode & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111))
		return -EACCES;
	return 0;
}

static long do_unlink(long dirfd, const char *path, int flags)
{
	struct kiln_err err = { 0 };
	struct target t;
	struct rt_node *n;
	int ret;

	if (!resolve(dirfd, path, &t))
		return rt_sys(SYS_unlinkat, dirfd, path, flags);
	if (flags & AT_REMOVEDIR)
		return pf_result(&t, pf_rmdir(t.vol->pf, t.rel, &err), &err);
	n = node_find(t.vol, t.rel);
	ret = pf_unlink(t.vol->pf, t.rel, &err);
	if (ret == 0 && n) {
		n->unlinked = true;
		if (n->refs == 0)
			node_free(n);
	}
	return pf_result(&t, ret, &err);
}

static long do_rename(long d1, const char *from, long d2, const char *to, unsigned flags)
{
	struct kiln_err err = { 0 };
	struct target a, b;
	bool pa = resolve(d1, from, &a), pb = resolve(d2, to, &b);
	struct rt_node *na, *nb;
	int ret;

	if (!pa && !pb)
		return rt_sys(SYS_renameat2, d1, from, d2, to, flags);
	if (!pa || !pb || a.vol != b.vol)
		return -EXDEV;
	if (flags & ~RENAME_NOREPLACE) {
		rt_say("renameat2 with flags 0x%x on %s: not supported in volumes (ENOTSUP)",
		       flags, a.abs);
		return -ENOTSUP;
	}
	if (flags & RENAME_NOREPLACE) {
		struct pf_stat ps;

		if (pf_stat(b.vol->pf, b.rel, &ps, NULL) == 0)
			return -EEXIST;
	}
	if (strcmp(a.rel, b.rel) == 0)
		return 0;
	na = node_find(a.vol, a.rel);
	nb = node_find(b.vol, b.rel);
	/* Data written through open fds must be in pf before the name moves. */
	if (na && (ret = node_flush(na, true)))
		return -EIO;
	ret = pf_rename(a.vol->pf, a.rel, b.rel, &err);
	if (ret)
		return pf_result(&a, ret, &err);
	if (nb) {
		nb->unlinked = true;
		if (nb->refs == 0)
			node_free(nb);
	}
	if (na) {
		char *rel = strdup(b.rel);

		if (rel) {
			free(na->rel);
			na->rel = rel;
		}
	}
	return 0;
}

static long do_mkdir(long dirfd, const char *path, mode_t mode)
{
	struct kiln_err err = { 0 };
	struct target t;

	if (!resolve(dirfd, path, &t))
		return rt_sys(SYS_mkdirat, dirfd, path, mode);
	if (!t.rel[0])
		return -EEXIST;
	return pf_result(&t, pf_mkdir(t.vol->pf, t.rel, mode & 07777 & ~cur_umask(), &err), &err);
}

static long do_truncate(const char *path, uint64_t size)
{
	struct kiln_err err = { 0 };
	struct target t;
	struct rt_node *n;

	if (!resolve(AT_FDCWD, path, &t))
		return rt_sys(SYS_truncate, path, size);
	n = node_find(t.vol, t.rel);
	if (n) {
		long r = node_keep_synced(n);

		if (r)
			return r;
		r = rt_sys(SYS_ftruncate, n->memfd, size);
		n->writable = true;
		if (r == 0 && n->refs == 0 && node_flush(n, true))
			r = -EIO;
		return r;
	}
	return pf_result(&t, pf_truncate(t.vol->pf, t.rel, size, &err), &err);
}

static long chmod_rel(struct target *t, mode_t mode)
{
	struct kiln_err err = { 0 };
	struct rt_node *n = node_find(t->vol, t->rel);
	struct pf_stat ps;
	int ret;

	/* sqlite sets its journal's mode to the database's, which it usually
	 * already is: no metadata commit for that. */
	if (n ? n->mode == (mode & 07777) :
		(pf_stat(t->vol->pf, t->rel, &ps, NULL) == 0 && ps.mode == (mode & 07777)))
		return 0;
	ret = pf_chmod(t->vol->pf, t->rel, mode & 07777, &err);

	if (ret == 0 && n)
		n->mode = mode & 07777;
	return pf_result(t, ret, &err);
}

static long do_chmod(long dirfd, const char *path, mode_t mode)
{
	struct target t;

	if (!resolve(dirfd, path, &t))
		return rt_sys(SYS_fchmodat, dirfd, path, mode);
	return chmod_rel(&t, mode);
}

static long do_exists(long dirfd, const char *path, long if_exists)
{
	struct target t;
	struct stat st;
	long r;

	if (!resolve(dirfd, path, &t))
		return -ENOENT;
	r = stat_rel(t.vol, t.rel, &st);
	return r < 0 ? r : if_exists;
}

static long do_utimens(long dirfd, const char *path, const struct timespec *ts, int flags)
{
	struct kiln_err err = { 0 };
	struct target t;
	struct timespec now;
	int64_t ns;

	if (!path) {
		struct rt_ofd *o = rt_fd_get((int)dirfd);

		if (rt_fd_kind((int)dirfd) != RT_FD_FILE || !o->node->vol)
			return 0;
		t.vol = o->node->vol;
		t.rel = o->node->rel;
	} else if (!resolve(dirfd, path, &t)) {
		return rt_sys(SYS_utimensat, dirfd, path, ts, flags);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (ts && ts[1].tv_nsec == UTIME_OMIT)
		return 0;
	if (ts && ts[1].tv_nsec != UTIME_NOW)
		ns = (int64_t)ts[1].tv_sec * 1000000000 + ts[1].tv_nsec;
	else
		ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	return pf_result(&t, pf_set_mtime(t.vol->pf, t.rel, ns, &err), &err);
}

static long do_getdents(long fd, void *buf, size_t size)
{
	struct kiln_err err = { 0 };
	struct rt_ofd *o = rt_fd_get((int)fd);
	size_t used = 0;

	if (rt_fd_kind((int)fd) != RT_FD_DIR)
		return -ENOTDIR;
	if (!o->names && o->pos == 0) {
		int ret = pf_readdir(o->vol->pf, o->rel, &o->names, &o->count, &err);

		if (ret) {
			struct target t = { .vol = o->vol, .rel = o->rel };

			return pf_result(&t, ret, &err);
		}
	}
	while (o->pos < o->count + 2) {
		const char *name = o->pos == 0 ? "." : o->pos == 1 ? ".." : o->names[o->pos - 2];
		size_t nlen = strlen(name);
		size_t reclen = (offsetof(struct dirent64, d_name) + nlen + 1 + 7) & ~(size_t)7;
		struct dirent64 *d = (struct dirent64 *)((char *)buf + used);

		if (used + reclen > size)
			break;
		d->d_ino = o->pos < 2 ? 1 : ino_of(name);
		d->d_off = (off_t)(o->pos + 1);
		d->d_reclen = (unsigned short)reclen;
		d->d_type = o->pos < 2 ? DT_DIR : DT_UNKNOWN;
		memcpy(d->d_name, name, nlen + 1);
		used += reclen;
		o->pos++;
	}
	if (used == 0 && o->pos < o->count + 2)
		return -EINVAL;
	return (long)used;
}

static long do_dup(long nr, const long a[6])
{
	long fd;
	struct rt_ofd *o;

	if (own_or_badf(a[0]))
		return -EBADF;
	if (nr != SYS_dup && own_or_badf(a[1]))
		return -EBADF;
	if (nr == SYS_dup2 && a[0] == a[1])
		return rt_sys(SYS_dup2, a[0], a[1]);
	o = rt_fd_get((int)a[0]);
	if (rt_fd_kind((int)a[0]) == RT_FD_NONE)
		o = NULL;
	fd = rt_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (fd < 0)
		return fd;
	if (o && !rt_fd_in_range((int)fd)) {
		rt_sys(SYS_close, fd);
		return -EMFILE;
	}
	if (o && !ofd_tryref(o)) {
		/* Another thread closed a[0] (lock-free) after the kernel dup'd
		 * it: the dup lost the race, as if it came second. */
		fd_detach((int)fd);
		rt_sys(SYS_close, fd);
		return -EBADF;
	}
	fd_attach((int)fd, o);
	if (o)
		o->refs--; /* fd_attach took one more */
	return fd;
}

static long do_close_range(unsigned first, unsigned last, unsigned flags)
{
	unsigned from = first;

	if (flags & CLOSE_RANGE_CLOEXEC) {
		/* Owned fds are close-on-exec already. */
		return rt_sys(SYS_close_range, first, last, flags);
	}
	for (unsigned fd = first; fd <= last && fd < RT_FD_MAX; fd++) {
		enum rt_fd_kind k = rt_fd_kind((int)fd);

		if (k == RT_FD_OWNED) {
			if (fd > from)
				rt_sys(SYS_close_range, from, fd - 1, flags);
			from = fd + 1;
		} else if (k != RT_FD_NONE) {
			fd_detach((int)fd);
		}
		if (fd == UINT32_MAX)
			break;
	}
	if (from <= last && from >= first)
		return rt_sys(SYS_close_range, from, last, flags);
	return 0;
}

static long do_fsync(long fd)
{
	struct kiln_err err = { 0 };
	struct rt_ofd *o = rt_fd_get((int)fd);
	bool commit = g_rt.cfg.freshness == RT_FRESH_EVERY_FSYNC;

	switch (rt_fd_kind((int)fd)) {
	case RT_FD_FILE:
		/* on-close / on-exit: the data is saved later, by choice. */
		if (!commit)
			return 0;
		if (node_flush(o->node, true))
			return -EIO;
		/* Unchanged data commits nothing above, but the file's own name
		 * (its creation, a rename) may still be only published: an fsync
		 * makes it durable too. A no-op when nothing is pending. */
		if (o->node->pf && !o->node->unlinked && pf_fsync(o->node->pf, &err)) {
			say_pf(o->node->vol->cfg->mount, o->node->rel, -EIO, &err);
			return -EIO;
		}
		return 0;
	case RT_FD_DIR:
		if (commit && pf_fsync_dir(o->vol->pf, &err)) {
			say_pf(o->vol->cfg->mount, o->rel, -EIO, &err);
			return -EIO;
		}
		return 0;
	default:
		return -EBADF;
	}
}

bool rt_vcwd_on(void)
{
	return atomic_load_explicit(&g_vcwd_set, memory_order_relaxed);
}

int rt_vcwd_abs(const char *path, char *out, size_t out_size)
{
	return rt_path_normalize(g_vcwd, path, out, out_size);
}

void rt_vcwd_get(char *out, size_t out_size)
{
	snprintf(out, out_size, "%s", atomic_load(&g_vcwd_set) ? g_vcwd : "");
}

/* chdir into a volume: the root of a volume mounted at its own directory is
 * a real directory the kernel can hold; any other volume directory becomes
 * the virtual working directory (the kernel's is the volume directory). */
static long chdir_volume(struct target *t)
{
	struct stat st;
	long r = stat_rel(t->vol, t->rel, &st);

	if (r < 0)
		return r;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!t->rel[0] && strcmp(t->vol->cfg->mount, t->vol->cfg->dir) == 0) {
		r = rt_sys(SYS_fchdir, t->vol->rootfd);
		if (r == 0)
			atomic_store(&g_vcwd_set, false);
		return r;
	}
	r = rt_sys(SYS_fchdir, t->vol->rootfd);
	if (r < 0)
		return r;
	snprintf(g_vcwd, sizeof(g_vcwd), "%s", t->abs);
	atomic_store(&g_vcwd_set, true);
	return 0;
}

static long do_fchdir(long fd)
{
	struct rt_ofd *o = rt_fd_get((int)fd);
	struct target t;
	long r;

	if (rt_fd_kind((int)fd) == RT_FD_DIR) {
		if ((size_t)snprintf(t.abs, sizeof(t.abs), "%s%s%s", o->vol->cfg->mount,
				     o->rel[0] ? "/" : "", o->rel) >= sizeof(t.abs))
			return -ENAMETOOLONG;
		t.vol = o->vol;
		t.rel = t.abs + strlen(t.abs) - strlen(o->rel);
		return chdir_volume(&t);
	}
	if (own_or_badf(fd))
		return -EBADF;
	r = rt_sys(SYS_fchdir, fd);
	if (r == 0)
		atomic_store(&g_vcwd_set, false);
	return r;
}

static long do_chdir(const char *path)
{
	struct target t;
	long r;

	if (resolve(AT_FDCWD, path, &t))
		return chdir_volume(&t);
	r = rt_sys(SYS_chdir, path);
	if (r == 0)
		atomic_store(&g_vcwd_set, false);
	return r;
}

static long do_getcwd(char *buf, size_t size)
{
	size_t n;

	if (!atomic_load(&g_vcwd_set))
		return rt_sys(SYS_getcwd, buf, size);
	n = strlen(g_vcwd) + 1;
	if (n > size)
		return -ERANGE;
	memcpy(buf, g_vcwd, n);
	return (long)n;
}

/* Calls on an injected file: open, stat and access; nothing changes its name. */
static long vfile_open(struct rt_node *n, int flags)
{
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (flags & O_DIRECTORY)
		return -ENOTDIR;
	return ofd_open_node(n, flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_TRUNC));
}

static long vfile_stat(struct rt_node *n, struct stat *out)
{
	struct pf_stat ps = { .mode = n->mode };
	struct stat mem;

	if (rt_sys(SYS_fstat, n->memfd, &mem) < 0)
		return -EIO;
	fill_stat(out, NULL, n->rel, &ps, &mem);
	return 0;
}

static long vfile_call(long nr, const long a[6], struct rt_node *n)
{
	struct stat st;
	long r;

	switch (nr) {
	case SYS_open:
		return vfile_open(n, (int)a[1]);
	case SYS_creat:
		return vfile_open(n, O_CREAT | O_WRONLY | O_TRUNC);
	case SYS_openat:
		return vfile_open(n, (int)a[2]);
	case SYS_openat2:
		return vfile_open(n, (int)((const struct open_how *)a[2])->flags);
	case SYS_stat:
	case SYS_lstat:
		return vfile_stat(n, (struct stat *)a[1]);
	case SYS_newfstatat:
		return vfile_stat(n, (struct stat *)a[2]);
	case SYS_statx:
		r = vfile_stat(n, &st);
		if (r == 0) {
			/* Reuse the statx conversion through an fd-less path. */
			struct statx *sx = (struct statx *)a[4];

			memset(sx, 0, sizeof(*sx));
			sx->stx_mask = STATX_BASIC_STATS;
			sx->stx_mode = (uint16_t)st.st_mode;
			sx->stx_nlink = 1;
			sx->stx_uid = st.st_uid;
			sx->stx_gid = st.st_gid;
			sx->stx_ino = st.st_ino;
			sx->stx_size = (uint64_t)st.st_size;
			sx->stx_blksize = 4096;
		}
		return r;
	case SYS_access:
		return ((int)a[1] & X_OK) && !(n->mode & 0111) ? -EACCES : 0;
	case SYS_faccessat:
	case SYS_faccessat2:
		return ((int)a[2] & X_OK) && !(n->mode & 0111) ? -EACCES : 0;
	case SYS_readlink:
	case SYS_readlinkat:
		return -EINVAL;
	case SYS_getxattr:
	case SYS_lgetxattr:
		return -ENODATA;
	case SYS_listxattr:
	case SYS_llistxattr:
		return 0;
	default:
		rt_say("%s on injected file %s: not supported (EPERM)", rt_syscall_name(nr),
		       n->rel);
		return -EPERM;
	}
}

int rt_shield_add_file(const char *path, const void *data, size_t size, mode_t mode)
{
	struct rt_node *n = calloc(1, sizeof(*n));
	char abs[PATH_SIZE];
	long fd;
	int ret;

	if (!n)
		return -ENOMEM;
	ret = rt_path_normalize(NULL, path, abs, sizeof(abs));
	if (ret)
		goto fail;
	if (vfile_find(abs)) {
		ret = -EEXIST;
		goto fail;
	}
	n->memfd = -1;
	n->rel = strdup(abs);
	fd = rt_sys(SYS_memfd_create, "kiln-injected", MFD_CLOEXEC);
	if (!n->rel || fd < 0) {
		ret = fd < 0 ? (int)fd : -ENOMEM;
		goto fail;
	}
	n->memfd = rt_own_fd((int)fd);
	if (n->memfd < 0) {
		ret = n->memfd;
		goto fail;
	}
	for (size_t off = 0; off < size;) {
		long w = rt_sys(SYS_pwrite64, n->memfd, (const char *)data + off, size - off, off);

		if (w <= 0) {
			ret = w < 0 ? (int)w : -EIO;
			goto fail;
		}
		off += (size_t)w;
	}
	n->mode = mode;
	n->refs = 1; /* never released */
	pthread_mutex_lock(&g_lock);
	n->next = g_vfiles;
	g_vfiles = n;
	pthread_mutex_unlock(&g_lock);
	g_rt.shield_on = true;
	return 0;
fail:
	rt_own_close(n->memfd);
	free(n->rel);
	free(n);
	return ret;
}

static long shield_call(long nr, const long a[6])
{
	const struct rt_syscall *s = &g_rt_syscalls[nr];

	if (g_vfiles && s->paths[0][1] >= 0) {
		struct target t;
		int d = s->paths[0][0], p = s->paths[0][1];

		resolve(d >= 0 ? a[d] : AT_FDCWD, (const char *)a[p], &t);
		if (t.vfile)
			return vfile_call(nr, a, t.vfile);
	}
	switch (nr) {
	case SYS_open:
		return do_open(AT_FDCWD, (const char *)a[0], (int)a[1], (mode_t)a[2]);
	case SYS_creat:
		return do_open(AT_FDCWD, (const char *)a[0], O_CREAT | O_WRONLY | O_TRUNC,
			       (mode_t)a[1]);
	case SYS_openat:
		return do_open(a[0], (const char *)a[1], (int)a[2], (mode_t)a[3]);
	case SYS_openat2: {
		const struct open_how *how = (const void *)a[2];

		return do_open(a[0], (const char *)a[1], (int)how->flags, (mode_t)how->mode);
	}
	case SYS_close:
		if (own_or_badf(a[0]))
			return -EBADF;
		fd_detach((int)a[0]);
		return rt_sys(SYS_close, a[0]);
	case SYS_close_range:
		return do_close_range((unsigned)a[0], (unsigned)a[1], (unsigned)a[2]);
	case SYS_dup:
	case SYS_dup2:
	case SYS_dup3:
		return do_dup(nr, a);
	case SYS_fcntl:
		if (own_or_badf(a[0]))
			return -EBADF;
		if (a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC)
			return do_dup(nr, a);
		return rt_sys(SYS_fcntl, a[0], a[1], a[2]);
	case SYS_fstat:
		return stat_fd(a[0], (struct stat *)a[1]);
	case SYS_fsync:
	case SYS_fdatasync:
		return do_fsync(a[0]);
	case SYS_fchmod: {
		struct rt_ofd *o = rt_fd_get((int)a[0]);
		struct target t;

		if (rt_fd_kind((int)a[0]) != RT_FD_FILE)
			return 0;
		if (!o->node->vol) {
			o->node->mode = (mode_t)a[1] & 07777;
			return 0;
		}
		t.vol = o->node->vol;
		t.rel = o->node->rel;
		return chmod_rel(&t, (mode_t)a[1]);
	}
	case SYS_fchown:
		return own_or_badf(a[0]);
	case SYS_getdents64:
		return do_getdents(a[0], (void *)a[1], (size_t)a[2]);
	case SYS_fchdir:
		return do_fchdir(a[0]);
	case SYS_stat:
		return do_fstatat(AT_FDCWD, (const char *)a[0], (struct stat *)a[1], 0);
	case SYS_lstat:
		return do_fstatat(AT_FDCWD, (const char *)a[0], (struct stat *)a[1],
				  AT_SYMLINK_NOFOLLOW);
	case SYS_newfstatat:
		return do_fstatat(a[0], (const char *)a[1], (struct stat *)a[2], (int)a[3]);
	case SYS_statx:
		return do_statx(a[0], (const char *)a[1], (int)a[2], (struct statx *)a[4]);
	case SYS_access:
		return do_access(AT_FDCWD, (const char *)a[0], (int)a[1]);
	case SYS_faccessat:
	case SYS_faccessat2:
		return do_access(a[0], (const char *)a[1], (int)a[2]);
	case SYS_truncate:
		return do_truncate((const char *)a[0], (uint64_t)a[1]);
	case SYS_rename:
		return do_rename(AT_FDCWD, (const char *)a[0], AT_FDCWD, (const char *)a[1], 0);
	case SYS_renameat:
		return do_rename(a[0], (const char *)a[1], a[2], (const char *)a[3], 0);
	case SYS_renameat2:
		return do_rename(a[0], (const char *)a[1], a[2], (const char *)a[3],
				 (unsigned)a[4]);
	case SYS_mkdir:
		return do_mkdir(AT_FDCWD, (const char *)a[0], (mode_t)a[1]);
	case SYS_mkdirat:
		return do_mkdir(a[0], (const char *)a[1], (mode_t)a[2]);
	case SYS_rmdir:
		return do_unlink(AT_FDCWD, (const char *)a[0], AT_REMOVEDIR);
	case SYS_unlink:
		return do_unlink(AT_FDCWD, (const char *)a[0], 0);
	case SYS_unlinkat:
		return do_unlink(a[0], (const char *)a[1], (int)a[2]);
	case SYS_chmod:
		return do_chmod(AT_FDCWD, (const char *)a[0], (mode_t)a[1]);
	case SYS_fchmodat:
	case SYS_fchmodat2:
		return do_chmod(a[0], (const char *)a[1], (mode_t)a[2]);
	case SYS_chown:
	case SYS_lchown:
		return do_exists(AT_FDCWD, (const char *)a[0], 0);
	case SYS_fchownat:
		return do_exists(a[0], (const char *)a[1], 0);
	case SYS_readlink:
		return do_exists(AT_FDCWD, (const char *)a[0], -EINVAL);
	case SYS_readlinkat:
		return do_exists(a[0], (const char *)a[1], -EINVAL);
	case SYS_utimensat:
		return do_utimens(a[0], (const char *)a[1], (const struct timespec *)a[2],
				  (int)a[3]);
	case SYS_utime:
	case SYS_utimes:
		return do_utimens(AT_FDCWD, (const char *)a[0], NULL, 0);
	case SYS_futimesat:
		return do_utimens(a[0], (const char *)a[1], NULL, 0);
	case SYS_chdir:
		return do_chdir((const char *)a[0]);
	case SYS_getcwd:
		return do_getcwd((char *)a[0], (size_t)a[1]);
	case SYS_getxattr:
	case SYS_lgetxattr:
		return do_exists(AT_FDCWD, (const char *)a[0], -ENODATA);
	case SYS_listxattr:
	case SYS_llistxattr:
		return do_exists(AT_FDCWD, (const char *)a[0], 0);
	case SYS_fgetxattr:
		return -ENODATA;
	case SYS_flistxattr:
		return 0;
	default:
		rt_say("%s on a protected file: no shield implementation (ENOTSUP)",
		       rt_syscall_name(nr));
		return -ENOTSUP;
	}
}

/* The fast paths of rt_shield_call, under g_lock; -EAGAIN: take the full path. */
static long fast_call(long nr, const long a[6])
{
	struct target t;
	struct rt_node *n;
	long dirfd = nr == SYS_open ? AT_FDCWD : a[0];
	const char *path = (const char *)(nr == SYS_open ? a[0] : a[1]);
	int flags = (int)(nr == SYS_open ? a[1] : a[2]);
	long fd;

	released_drain_ro();
	cache_drop_inherited();
	if ((flags & O_ACCMODE) != O_RDONLY ||
	    (flags & (O_CREAT | O_TRUNC | O_DIRECTORY | O_PATH | __O_TMPFILE)))
		return -EAGAIN;
	if (!resolve(dirfd, path, &t) || t.vfile)
		return -EAGAIN;
	t.vol->want_watch = true; /* the load that follows arms the watch */
	n = node_find(t.vol, t.rel);
	if (!n || !n->pf)
		return -EAGAIN;
	if (!meta_unchanged(t.vol))
		return -EAGAIN;
	fd = ofd_open_node(n, flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOATIME));
	if (fd >= 0)
		cache_take(n);
	return fd;
}

/* stat and access of a volume path need neither the volume lock nor a
 * publish, as long as no other process changed the volume (sqlite looks for a
 * hot journal before every statement). Under g_lock; -EAGAIN: full path. */
static long fast_stat(long nr, const long a[6])
{
	long dirfd = AT_FDCWD;
	const char *path;
	struct stat *out = NULL;
	struct target t;
	int mode = 0;

	switch (nr) {
	case SYS_stat:
	case SYS_lstat:
		path = (const char *)a[0];
		out = (struct stat *)a[1];
		break;
	case SYS_newfstatat:
		dirfd = a[0];
		path = (const char *)a[1];
		out = (struct stat *)a[2];
		break;
	case SYS_access:
		path = (const char *)a[0];
		mode = (int)a[1];
		break;
	case SYS_faccessat:
	case SYS_faccessat2:
		dirfd = a[0];
		path = (const char *)a[1];
		mode = (int)a[2];
		break;
	default:
		return -EAGAIN;
	}
	released_drain_ro();
	cache_drop_inherited();
	if (g_vfiles || !path || !path[0] || !resolve(dirfd, path, &t) || !t.vol->pf)
		return -EAGAIN;
	if (!meta_unchanged(t.vol))
		return -EAGAIN;
	return out ? stat_rel(t.vol, t.rel, out) : do_access(dirfd, path, mode);
}

long rt_shield_call(long nr, const long a[6])
{
	struct rt_guard g;
	long r;

	/* Calls that need neither the volume nor the lock (sqlite issues them by
	 * the thousand: fcntl locks and fstat on its open database). */
	if (nr == SYS_fcntl && a[1] != F_DUPFD && a[1] != F_DUPFD_CLOEXEC)
		return own_or_badf(a[0]) ? -EBADF : rt_sys(SYS_fcntl, a[0], a[1], a[2]);
	if (nr == SYS_fstat && rt_fd_kind((int)a[0]) == RT_FD_FILE)
		return stat_fd(a[0], (struct stat *)a[1]);
	if (nr == SYS_close) {
		r = close_lockfree((int)a[0]);
		if (r != -EAGAIN)
			return r;
	}
	/* Reads of files this process already holds decrypted, and stat/access
	 * of volume paths, need neither the volume lock nor pf, as long as no
	 * other process changed the volume. */
	if (nr == SYS_openat || nr == SYS_open || nr == SYS_stat || nr == SYS_lstat ||
	    nr == SYS_newfstatat || nr == SYS_access || nr == SYS_faccessat ||
	    nr == SYS_faccessat2) {
		rt_enter(&g);
		pthread_mutex_lock(&g_lock);
		r = nr == SYS_openat || nr == SYS_open ? fast_call(nr, a) : fast_stat(nr, a);
		pthread_mutex_unlock(&g_lock);
		rt_leave(&g);
		if (r != -EAGAIN)
			return r;
	}

	rt_enter(&g);
	pthread_mutex_lock(&g_lock);
	r = vols_lock();
	if (r == 0)
		r = shield_call(nr, a);
	else
		r = -EIO;
	vols_unlock(false);
	pthread_mutex_unlock(&g_lock);
	rt_leave(&g);
	return r;
}

/* ---- lifecycle ------------------------------------------------------------- */
static int load_owned_base(long *limit)
{
	struct rlimit rl;
	long lim = 1024;

	if (rt_sys(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY)
		lim = (long)rl.rlim_cur;
	if (lim > RT_FD_MAX)
		lim = RT_FD_MAX;
	*limit = lim;
	/* The top quarter below the soft limit (at least 256 fds when there is
	 * room); apps allocate from the bottom. */
	if (lim >= 1024)
		return (int)(lim - (lim / 4 > 256 ? lim / 4 : 256));
	return (int)(lim / 2);
}

/* KILN_FILE_CACHE=FILES[:MIB]: bounds of the cache of closed files. */
static int load_cache_bounds(long fd_limit, struct kiln_err *err)
{
	const char *s = getenv("KILN_FILE_CACHE");
	uint64_t nfiles, mib = CACHE_DEFAULT_MIB;
	/* Two runtime fds per cached file, half the runtime's fd range at most. */
	uint64_t room = (uint64_t)(fd_limit - g_rt.owned_base) / 4;

	if (!s)
		return 0;
	if (rt_file_cache_parse(s, &nfiles, &mib) == 0) {
		g_cache_max_files = nfiles > room ? room : nfiles;
		g_cache_max_bytes = mib << 20;
		return 0;
	}
	return kiln_err_set(err, -EINVAL, "KILN_FILE_CACHE=%s: expected FILES or FILES:MIB "
			    "(default %d:%d; 0 turns the cache of closed files off)", s,
			    CACHE_DEFAULT_FILES, CACHE_DEFAULT_MIB);
}

int rt_shield_init(struct kiln_err *err)
{
	long fd_limit;
	int ret = 0;

	g_rt.owned_base = load_owned_base(&fd_limit);
	ret = load_cache_bounds(fd_limit, err);
	if (ret)
		return ret;
	if (g_rt.cfg.n_volumes) {
		long fd = rt_sys(SYS_openat, AT_FDCWD, "/proc/self/fd",
				 O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0)
			g_procfd = rt_own_fd((int)fd);
	}
	g_uid = (uid_t)rt_sys0(SYS_getuid);
	g_gid = (gid_t)rt_sys0(SYS_getgid);
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
		fd = rt_sys(SYS_openat, AT_FDCWD, c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return kiln_err_set(err, (int)fd, "volume %s: %s", c->dir,
					    kiln_strerror((int)fd));
		v->rootfd = rt_own_fd((int)fd);
		if (v->rootfd < 0)
			return kiln_err_set(err, v->rootfd, "volume %s: no fd", c->dir);
		if (rt_sys(SYS_fstat, v->rootfd, &st) == 0)
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
		fd = rt_sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return kiln_err_set(err, (int)fd, "volume %s: not a kiln volume (%s: %s); "
					    "create it with 'kiln fs init'", c->dir, path,
					    kiln_strerror((int)fd));
		v->lockfd = rt_own_fd((int)fd);
		if (v->lockfd < 0)
			return kiln_err_set(err, v->lockfd, "volume %s: no fd", c->dir);
		rt_sys(SYS_flock, v->lockfd, LOCK_EX);
		meta_identity(v, &v->meta_seen);
		ret = vol_open_pf(v, err);
		rt_sys(SYS_flock, v->lockfd, LOCK_UN);
		if (ret) {
			kiln_err_prefix(err, "volume %s: ", c->dir);
			return ret;
		}
		v->chunk = pf_volume_chunk_size(v->pf);
		g_nvols = i + 1;
	}
	g_rt.shield_on = g_nvols > 0;
	if (g_rt.cfg.cwd[0]) {
		struct target t;

		/* Inherited from the parent across exec. */
		if (!resolve(AT_FDCWD, g_rt.cfg.cwd, &t) || chdir_volume(&t) < 0)
			return kiln_err_set(err, -ENOENT, "working directory %s: not in a volume",
					    g_rt.cfg.cwd);
	}
	return 0;
}

void rt_shield_exit(void)
{
	struct rt_guard g;

	if (!g_rt.shield_on)
		return;
	rt_enter(&g);
	pthread_mutex_lock(&g_lock);
	if (vols_lock() == 0)
		for (struct rt_node *n = g_nodes; n; n = n->next)
			node_flush(n, true);
	vols_unlock(true);
	for (size_t i = 0; i < g_nvols; i++)
		kiln_wipe(g_vols[i].key, sizeof(g_vols[i].key));
	pthread_mutex_unlock(&g_lock);
	rt_leave(&g);
}
