/* Fault-injecting storage for unit tests: see fault_storage.h. */
#include "fault_storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One write or truncate not yet covered by a sync of its file: the bytes it
 * replaced and the size before it. */
struct fault_undo {
	void *fh;
	uint64_t old_size, off;
	size_t len;
	uint8_t *old;
	struct fault_undo *next;
};

/* A directory operation not yet covered by a sync_dir (dir_loss set). A
 * create: name. A remove: name, kept as stash. A rename: from name to `to`,
 * the file `to` replaced kept as stash (empty: there was none). */
enum { DIROP_CREATE, DIROP_REMOVE, DIROP_RENAME };
struct fault_dirop {
	int op;
	char name[256], to[256], stash[64];
	struct fault_dirop *next;
};

bool g_fault_last_dead;
size_t g_fault_last_unwaited;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* The fixture's own bookkeeping failed: the test cannot go on. */
static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fault_storage: %s\n", what);
		abort();
	}
}

static void undo_log(struct fault *f, void *fh, uint64_t off, uint64_t end)
{
	struct fault_undo *u = calloc(1, sizeof(*u));

	must(u != NULL, "out of memory");
	u->fh = fh;
	must(f->inner->get_size(f->ictx, fh, &u->old_size) == 0, "get_size for the undo log");
	if (end > u->old_size)
		end = u->old_size;
	u->off = off;
	if (end > off) {
		u->len = end - off;
		u->old = malloc(u->len);
		must(u->old != NULL, "out of memory");
		must(f->inner->pread(f->ictx, fh, u->old, u->len, off) == (ssize_t)u->len,
		     "pread for the undo log");
	}
	u->next = f->undo;
	f->undo = u;
}

/* Forget fh's unsynced changes (synced or closed); fh NULL: nothing. */
static void undo_forget(struct fault *f, void *fh)
{
	struct fault_undo **pp = &f->undo;

	while (*pp) {
		struct fault_undo *u = *pp;

		if (u->fh == fh) {
			*pp = u->next;
			free(u->old);
			free(u);
		} else {
			pp = &u->next;
		}
	}
}

static uint64_t frnd(struct fault *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

static struct fault_dirop *dirop_add(struct fault *f, int op, const char *name, const char *to)
{
	struct fault_dirop *d = calloc(1, sizeof(*d));

	must(d != NULL, "out of memory");
	must(strlen(name) < sizeof(d->name) && (!to || strlen(to) < sizeof(d->to)),
	     "name too long for the directory log");
	d->op = op;
	strcpy(d->name, name);
	if (to)
		strcpy(d->to, to);
	d->next = f->dirops;
	f->dirops = d;
	return d;
}

static bool exists(struct fault *f, const char *name)
{
	void *fh;

	if (f->inner->open(f->ictx, name, PF_SO_RDONLY, &fh) != 0)
		return false;
	f->inner->close(f->ictx, fh);
	return true;
}

/* Keep name under a hidden name in d->stash (a remove not yet durable). */
static void stash(struct fault *f, struct fault_dirop *d, const char *name)
{
	snprintf(d->stash, sizeof(d->stash), ".fault-stash-%ld", f->dir_stashed++);
	must(f->inner->rename(f->ictx, name, d->stash) == 0, "rename to the stash");
}

/* The directory's operations became durable (sync_dir) or are kept at a
 * cut (keep), or are undone, newest first. */
static void dirops_settle(struct fault *f, bool keep)
{
	while (f->dirops) {
		struct fault_dirop *d = f->dirops;

		f->dirops = d->next;
		if (keep) {
			if (d->stash[0])
				must(f->inner->remove(f->ictx, d->stash) == 0, "remove the stash");
		} else if (d->op == DIROP_CREATE) {
			must(f->inner->remove(f->ictx, d->name) == 0, "undo a create");
			f->dir_undone++;
		} else if (d->op == DIROP_REMOVE) {
			must(f->inner->rename(f->ictx, d->stash, d->name) == 0, "undo a remove");
			f->dir_undone++;
		} else {
			must(f->inner->rename(f->ictx, d->to, d->name) == 0, "undo a rename");
			if (d->stash[0])
				must(f->inner->rename(f->ictx, d->stash, d->to) == 0,
				     "undo a rename's replace");
			f->dir_undone++;
		}
		free(d);
	}
}

static void power_cut_locked(struct fault *f)
{
	for (unsigned i = 0; f->undo; i++) {
		void *fh = f->undo->fh;
		bool lose = f->lose_bits ? (f->lose_bits >> (i % 64)) & 1 : frnd(f) & 1;
		struct fault_undo **pp = &f->undo;

		while (*pp) {
			struct fault_undo *u = *pp;

			if (u->fh != fh) {
				pp = &u->next;
				continue;
			}
			/* Newest first: undoing in list order restores the oldest state. */
			if (lose) {
				ssize_t n = u->len ? f->inner->pwrite(f->ictx, fh, u->old, u->len,
								     u->off) : 0;

				must(n == (ssize_t)u->len, "pwrite undoing a lost write");
				must(f->inner->truncate(f->ictx, fh, u->old_size) == 0,
				     "truncate undoing a lost write");
			}
			*pp = u->next;
			free(u->old);
			free(u);
		}
	}
	dirops_settle(f, f->dir_loss == FAULT_DIR_DURABLE ||
			 (f->dir_loss == FAULT_DIR_RANDOM && (frnd(f) & 1)));
	f->dead = true;
}

void fault_power_cut(struct fault *f)
{
	pthread_mutex_lock(&g_mu);
	power_cut_locked(f);
	pthread_mutex_unlock(&g_mu);
}

/* Count a mutating call; its error when it is the one that fails. */
static int fault_hit(struct fault *f)
{
	f->ops++;
	if (f->dead)
		return f->error;
	if (f->countdown > 0 && --f->countdown == 0) {
		if (f->sticky && f->power_loss)
			power_cut_locked(f);
		else if (f->sticky)
			f->dead = true;
		return f->error;
	}
	return 0;
}

static int fo_open(void *ctx, const char *name, unsigned flags, void **fh)
{
	struct fault *f = ctx;
	bool made;
	int r;

	if (f->dead)
		return f->error;
	made = f->dir_loss != FAULT_DIR_DURABLE && (flags & PF_SO_CREATE) && !exists(f, name);
	r = f->inner->open(f->ictx, name, flags, fh);
	if (r == 0 && made)
		dirop_add(f, DIROP_CREATE, name, NULL);
	return r;
}

static ssize_t fo_pread(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	struct fault *f = ctx;
	ssize_t r;

	if (f->dead)
		return f->error;
	r = f->inner->pread(f->ictx, fh, buf, size, off);
	f->reads++;
	if (r > 0)
		f->read_bytes += (uint64_t)r;
	return r;
}

/* Without a pread_direct inside, -EOPNOTSUPP: the library reads with pread. */
static ssize_t fo_pread_direct(void *ctx, void *fh, void *buf, size_t size, uint64_t off)
{
	struct fault *f = ctx;
	ssize_t r;

	if (f->dead)
		return f->error;
	if (!f->inner->pread_direct)
		return -EOPNOTSUPP;
	if (f->direct_error) {
		f->direct_refused++;
		return f->direct_error;
	}
	r = f->inner->pread_direct(f->ictx, fh, buf, size, off);
	f->reads++;
	if (r >= 0)
		f->direct_reads++;
	if (r > 0)
		f->read_bytes += (uint64_t)r;
	return r;
}

static ssize_t fo_pwrite(void *ctx, void *fh, const void *buf, size_t size, uint64_t off)
{
	struct fault *f = ctx;
	int r;

	f->pwrites++;
	r = fault_hit(f);
	if (r)
		return r;
	if (f->short_writes && size > 1)
		size = size / 2;
	if (f->power_loss)
		undo_log(f, fh, off, off + size);
	return f->inner->pwrite(f->ictx, fh, buf, size, off);
}

static int fo_get_size(void *ctx, void *fh, uint64_t *size)
{
	struct fault *f = ctx;

	return f->dead ? f->error : f->inner->get_size(f->ictx, fh, size);
}

static int fo_truncate(void *ctx, void *fh, uint64_t size)
{
	struct fault *f = ctx;
	int r = fault_hit(f);

	if (r)
		return r;
	if (f->power_loss)
		undo_log(f, fh, size, UINT64_MAX);
	return f->inner->truncate(f->ictx, fh, size);
}

/* Without a punch inside, -EOPNOTSUPP: the library writes zeros instead. */
static int fo_punch(void *ctx, void *fh, uint64_t off, uint64_t len)
{
	struct fault *f = ctx;
	int r;

	if (!f->inner->punch)
		return -EOPNOTSUPP;
	r = fault_hit(f);
	if (r)
		return r;
	if (f->power_loss)
		undo_log(f, fh, off, off + len);
	return f->inner->punch(f->ictx, fh, off, len);
}

static int fo_sync(void *ctx, void *fh)
{
	struct fault *f = ctx;
	int r = fault_hit(f);

	if (r)
		return r;
	if (fh == f->watch_fh)
		f->watch_syncs++;
	r = f->inner->sync(f->ictx, fh);
	if (r == 0)
		undo_forget(f, fh);
	return r;
}

/* A syncfs: every file's changes become durable. */
static int fo_sync_all(void *ctx)
{
	struct fault *f = ctx;
	int r;

	f->sync_alls++;
	r = fault_hit(f);
	if (r)
		return r;
	r = f->inner->sync_all ? f->inner->sync_all(f->ictx) : -ENOSYS;
	while (r == 0 && f->undo) {
		struct fault_undo *u = f->undo;

		f->undo = u->next;
		free(u->old);
		free(u);
	}
	return r;
}

static int fo_close(void *ctx, void *fh)
{
	struct fault *f = ctx;

	undo_forget(f, fh);
	return f->inner->close(f->ictx, fh);
}

static int fo_remove(void *ctx, const char *name)
{
	struct fault *f = ctx;
	int r = fault_hit(f);

	if (r)
		return r;
	f->removes++;
	if (f->dir_loss == FAULT_DIR_DURABLE || !exists(f, name)) {
		r = f->inner->remove(f->ictx, name);
		f->removes_missing += r == -ENOENT;
		return r;
	}
	stash(f, dirop_add(f, DIROP_REMOVE, name, NULL), name);
	return 0;
}

static int fo_rename(void *ctx, const char *from, const char *to)
{
	struct fault *f = ctx;
	struct fault_dirop *d;
	int r = fault_hit(f);

	if (r)
		return r;
	if (f->dir_loss == FAULT_DIR_DURABLE || !exists(f, from))
		return f->inner->rename(f->ictx, from, to);
	d = dirop_add(f, DIROP_RENAME, from, to);
	if (exists(f, to))
		stash(f, d, to);
	r = f->inner->rename(f->ictx, from, to);
	if (r) {
		/* Nothing happened: put back what was stashed, forget it. */
		if (d->stash[0])
			must(f->inner->rename(f->ictx, d->stash, to) == 0, "unstash");
		f->dirops = d->next;
		free(d);
	}
	return r;
}

static int fo_sync_dir(void *ctx)
{
	struct fault *f = ctx;
	int r = fault_hit(f);

	if (!r)
		r = f->inner->sync_dir(f->ictx);
	if (!r)
		dirops_settle(f, true);
	return r;
}

static int fo_sync_start(void *ctx, void *fh)
{
	struct fault *f = ctx;

	if (f->ndeferred == FAULT_DEFERRED_MAX)
		return fo_sync(ctx, fh);
	f->deferred[f->ndeferred++] = fh;
	return 0;
}

/* A started directory sync, in f->deferred (not a file handle). */
static char g_dir_marker;

static int fo_sync_dir_start(void *ctx)
{
	struct fault *f = ctx;

	if (f->ndeferred == FAULT_DEFERRED_MAX)
		return fo_sync_dir(ctx);
	f->deferred[f->ndeferred++] = &g_dir_marker;
	return 0;
}

static int fo_sync_wait(void *ctx)
{
	struct fault *f = ctx;
	int ret = 0;

	for (size_t i = 0; i < f->ndeferred; i++) {
		int r = f->deferred[i] == &g_dir_marker ? fo_sync_dir(ctx) :
			fo_sync(ctx, f->deferred[i]);

		ret = ret ? ret : r;
	}
	f->ndeferred = 0;
	return ret;
}

static void fo_free(void *ctx)
{
	struct fault *f = ctx;

	g_fault_last_dead = f->dead;
	g_fault_last_unwaited = f->ndeferred;
	dirops_settle(f, true); /* no cut: the process just ends */
	while (f->undo) {
		struct fault_undo *u = f->undo;

		f->undo = u->next;
		free(u->old);
		free(u);
	}
	f->inner->free(f->ictx);
	free(f);
}

/* Every entry point under g_mu (free runs once, after the volume's threads). */
#define LOCKED(ret_t, name, params, args)                                                  \
	static ret_t name##_l params                                                       \
	{                                                                                  \
		ret_t r;                                                                   \
		pthread_mutex_lock(&g_mu);                                                 \
		r = name args;                                                             \
		pthread_mutex_unlock(&g_mu);                                               \
		return r;                                                                  \
	}
LOCKED(int, fo_open, (void *c, const char *name, unsigned fl, void **fh), (c, name, fl, fh))
LOCKED(ssize_t, fo_pread, (void *c, void *fh, void *b, size_t n, uint64_t o), (c, fh, b, n, o))
LOCKED(ssize_t, fo_pread_direct, (void *c, void *fh, void *b, size_t n, uint64_t o),
       (c, fh, b, n, o))
LOCKED(ssize_t, fo_pwrite, (void *c, void *fh, const void *b, size_t n, uint64_t o),
       (c, fh, b, n, o))
LOCKED(int, fo_get_size, (void *c, void *fh, uint64_t *size), (c, fh, size))
LOCKED(int, fo_truncate, (void *c, void *fh, uint64_t size), (c, fh, size))
LOCKED(int, fo_sync, (void *c, void *fh), (c, fh))
LOCKED(int, fo_punch, (void *c, void *fh, uint64_t o, uint64_t n), (c, fh, o, n))
LOCKED(int, fo_close, (void *c, void *fh), (c, fh))
LOCKED(int, fo_remove, (void *c, const char *name), (c, name))
LOCKED(int, fo_rename, (void *c, const char *from, const char *to), (c, from, to))
LOCKED(int, fo_sync_dir, (void *c), (c))
LOCKED(int, fo_sync_start, (void *c, void *fh), (c, fh))
LOCKED(int, fo_sync_wait, (void *c), (c))
LOCKED(int, fo_sync_dir_start, (void *c), (c))
LOCKED(int, fo_sync_all, (void *c), (c))

/* The deferred storage's sync: counted, then as fo_sync. */
static int fo_sync_direct_l(void *ctx, void *fh)
{
	struct fault *f = ctx;

	pthread_mutex_lock(&g_mu);
	f->direct_syncs++;
	pthread_mutex_unlock(&g_mu);
	return fo_sync_l(ctx, fh);
}

static const struct pf_storage_ops g_ops = {
	.open = fo_open_l, .pread = fo_pread_l, .pwrite = fo_pwrite_l,
	.get_size = fo_get_size_l, .truncate = fo_truncate_l, .sync = fo_sync_l,
	.close = fo_close_l, .remove = fo_remove_l, .rename = fo_rename_l,
	.sync_dir = fo_sync_dir_l, .list = NULL, .free = fo_free, .punch = fo_punch_l,
	.pread_direct = fo_pread_direct_l,
};

static const struct pf_storage_ops g_ops_deferred = {
	.open = fo_open_l, .pread = fo_pread_l, .pwrite = fo_pwrite_l,
	.get_size = fo_get_size_l, .truncate = fo_truncate_l, .sync = fo_sync_direct_l,
	.close = fo_close_l, .remove = fo_remove_l, .rename = fo_rename_l,
	.sync_dir = fo_sync_dir_l, .list = NULL, .free = fo_free,
	.sync_start = fo_sync_start_l, .sync_wait = fo_sync_wait_l, .punch = fo_punch_l,
	.sync_all = fo_sync_all_l, .pread_direct = fo_pread_direct_l,
	.sync_dir_start = fo_sync_dir_start_l,
};

void fault_storage_wrap(const struct pf_storage_ops *inner, void *ictx, bool deferred,
			const struct pf_storage_ops **ops, void **ctx, struct fault **out)
{
	struct fault *f = calloc(1, sizeof(*f));

	must(f != NULL, "out of memory");
	f->inner = inner;
	f->ictx = ictx;
	f->countdown = -1;
	f->error = -EIO;
	f->power_loss = true;
	f->rng = 0x9e3779b97f4a7c15ull;
	*ops = deferred ? &g_ops_deferred : &g_ops;
	*ctx = f;
	*out = f;
}
