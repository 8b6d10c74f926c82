/* A fault-injecting storage for unit tests (SQLite's src/test_vfs.c is the
 * model): it wraps any struct pf_storage_ops (the POSIX storage of src/pf, the
 * runtime's io_uring storage, ...) and can
 *   - fail the Nth mutating call (pwrite, truncate, sync, remove, rename,
 *     sync_dir) with a chosen error, once or from then on ("the disk died"),
 *   - make writes short (the library must retry),
 *   - model power loss: every write or truncate not yet covered by a sync of
 *     its file is logged with the bytes it replaced; at the cut each file
 *     independently keeps or loses all of its unsynced changes (the reordering
 *     that matters: a journal lost while the data it protects survives).
 *     Closed files count as synced. Directory operations (a file created,
 *     removed or renamed) count as durable unless dir_loss is set: then they
 *     are durable only after a sync_dir, and at the cut the unsynced ones are
 *     all kept or all undone (FAULT_DIR_RANDOM: rng decides; FAULT_DIR_LOSE:
 *     undone), newest first, after the files' changes (a removed file is
 *     kept under a hidden name until then).
 *   - defer syncs (sync_start/sync_dir_start/sync_wait, as the runtime's
 *     storage): a started sync happens only at sync_wait, so a commit that renames before waiting
 *     leaves unsynced data for the power-loss model to drop.
 *     With deferred syncs it also has sync_all (a syncfs: every file synced),
 *     as the runtime's storage has.
 *   - count what is read (to check that an operation reads O(1) bytes, not
 *     O(file)); punch (when the inner storage has it) is a mutating call,
 *     logged for power loss as a write of zeros.
 * Every entry point takes one process-wide mutex: the library's helper thread
 * writes while the caller's thread journals. */
#ifndef KILN_TESTS_FAULT_STORAGE_H
#define KILN_TESTS_FAULT_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "pf/pf.h"

#define FAULT_DEFERRED_MAX 16

struct fault_undo;
struct fault_dirop;

enum fault_dir_loss { FAULT_DIR_DURABLE, FAULT_DIR_RANDOM, FAULT_DIR_LOSE };

/* The knobs are plain fields: tests set them between calls. */
struct fault {
	const struct pf_storage_ops *inner;
	void *ictx;
	long countdown;    /* fail the countdown-th mutating call (<= 0: never) */
	int error;         /* what it fails with: -EIO, -ENOSPC, ... */
	bool sticky;       /* after the fault every call fails (a crash) */
	bool dead;         /* the fault struck with sticky set */
	bool short_writes; /* pwrite writes half of what it is asked */
	bool power_loss;   /* log unsynced changes; a sticky fault cuts the power */
	uint64_t rng;      /* xorshift state deciding which files lose their changes */
	/* Nonzero: decides instead of rng, bit i for the i-th file decided (files
	 * in the order of their newest unsynced change, newest first). */
	uint64_t lose_bits;
	long ops;          /* mutating calls so far */
	long direct_syncs; /* deferred storage: syncs done at once (not sync_start) */
	long sync_alls;    /* deferred storage: sync_all calls */
	long pwrites;      /* pwrite calls so far */
	long reads;        /* pread and pread_direct calls so far (tests may reset it) */
	uint64_t read_bytes; /* bytes those returned */
	/* pread_direct (when the inner storage has it): nonzero fails every
	 * call with this error (a file system that refuses O_DIRECT: -EINVAL);
	 * the calls that read around the page cache so far, and those refused. */
	int direct_error;
	long direct_reads;
	long direct_refused;
	void *watch_fh;    /* a file handle whose syncs (direct or waited) are counted */
	long watch_syncs;
	struct fault_undo *undo; /* unsynced changes, newest first */
	enum fault_dir_loss dir_loss;
	struct fault_dirop *dirops; /* directory operations since sync_dir, newest first */
	long dir_stashed;   /* removed files kept under hidden names so far */
	long dir_undone;    /* directory operations a cut undid (tests check it) */
	long removes;         /* remove calls so far */
	long removes_missing; /* of them, of a name that did not exist (ENOENT) */
	void *deferred[FAULT_DEFERRED_MAX]; /* started, not yet waited syncs */
	size_t ndeferred;
};

/* What the last freed fault storage saw (the volume frees its storage, so a
 * test reads these after pf_volume_close). */
extern bool g_fault_last_dead;        /* its fault struck with sticky set */
extern size_t g_fault_last_unwaited;  /* syncs started and never waited for */

/* Wrap inner (ops and ctx, owned by the fault storage from now on); deferred
 * adds sync_start/sync_wait. The returned ops and ctx go into pf_volume_opts,
 * which owns them; the fault (the same object as ctx) stays valid until the
 * volume frees its storage. Defaults: no fault, error -EIO, power loss on. */
void fault_storage_wrap(const struct pf_storage_ops *inner, void *ictx, bool deferred,
			const struct pf_storage_ops **ops, void **ctx, struct fault **f);

/* The power goes out now: every file keeps or loses (decided by f->rng) all
 * its unsynced changes, and every later call fails with f->error. */
void fault_power_cut(struct fault *f);

#endif
