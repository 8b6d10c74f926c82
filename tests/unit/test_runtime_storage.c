/* Unit tests for the runtime's pf storage (src/runtime/storage.c): the syncs
 * one commit overlaps go through an io_uring, queued by sync_start and
 * submitted together by one io_uring_enter (sync_submit, or sync_wait, which
 * then also waits); a sync that fails in the ring is reported by sync_wait.
 * The system calls are counted here (rt__raw_syscall is the test's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pf/pf.h"
#include "runtime/internal.h"

/* io_uring_enter calls that submitted entries, and those that only waited. */
static long g_submits, g_waits;
static bool g_ring; /* io_uring_setup worked */
/* The next this many submissions are refused (-EAGAIN, nothing taken). */
static int g_refuse;

long rt__raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long r;

	if (nr == SYS_io_uring_enter) {
		if (a1 > 0)
			g_submits++;
		else
			g_waits++;
		if (a1 > 0 && g_refuse > 0) {
			g_refuse--;
			return -EAGAIN;
		}
	}
	r = syscall(nr, a0, a1, a2, a3, a4, a5);
	if (nr == SYS_io_uring_setup && r >= 0)
		g_ring = true;
	return r == -1 ? -errno : r;
}

/* What libkiln's fdtable.c provides: the test owns every fd. */
int rt__own_fd(int fd)
{
	return fd;
}

void rt__own_close(int fd)
{
	close(fd);
}

struct store_env {
	char dir[64];
	const struct pf_storage_ops *so;
	void *ctx;
	void *fh[3];
};

static void store_init(struct store_env *e)
{
	int dfd;

	snprintf(e->dir, sizeof(e->dir), "/tmp/kiln-test-storage-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	dfd = open(e->dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(rt__storage_open(dfd, &e->so, &e->ctx), 0);
	close(dfd);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(e->so->open(e->ctx, name, PF_SO_CREATE, &e->fh[i]), 0);
		assert_int_equal(e->so->pwrite(e->ctx, e->fh[i], "data", 4, 0), 4);
	}
}

static void store_free(struct store_env *e)
{
	char path[128];

	for (int i = 0; i < 3; i++) {
		e->so->close(e->ctx, e->fh[i]);
		snprintf(path, sizeof(path), "%s/f%d", e->dir, i);
		unlink(path);
	}
	e->so->free(e->ctx);
	rmdir(e->dir);
}

/* store_init, then one sync: the ring is made at the first sync_start.
 * false (store freed) when there is no io_uring here: every sync is then
 * done at once. */
static bool store_ring(struct store_env *e)
{
	store_init(e);
	assert_int_equal(e->so->sync_start(e->ctx, e->fh[0]), 0);
	assert_int_equal(e->so->sync_wait(e->ctx), 0);
	if (!g_ring)
		store_free(e);
	return g_ring;
}

/* Close fh[i]'s fd, so that a sync of it fails with EBADF; the returned copy
 * puts it back (fd_back). struct store_fh starts with its fd. */
static int fd_away(struct store_env *e, int i)
{
	int saved = dup(*(int *)e->fh[i]);

	assert_true(saved >= 0);
	close(*(int *)e->fh[i]);
	return saved;
}

static void fd_back(struct store_env *e, int i, int saved)
{
	assert_int_equal(dup2(saved, *(int *)e->fh[i]), *(int *)e->fh[i]);
	close(saved);
}

/* Three syncs started, submitted before the prepare, waited for: one
 * submission (it was one io_uring_enter per sync_start). */
static void test_syncs_one_submission(void **state)
{
	struct store_env e;

	if (!store_ring(&e))
		skip();
	for (int round = 0; round < 3; round++) {
		g_submits = g_waits = 0;
		for (int i = 0; i < 3; i++)
			assert_int_equal(e.so->sync_start(e.ctx, e.fh[i]), 0);
		assert_non_null(e.so->sync_submit);
		assert_int_equal(e.so->sync_submit(e.ctx), 0);
		assert_int_equal(g_submits, 1);
		assert_int_equal(e.so->sync_wait(e.ctx), 0);
		assert_int_equal(g_submits, 1);
		assert_true(g_waits <= 1);
		/* Without sync_submit: submitted and waited for in one call. */
		g_submits = g_waits = 0;
		for (int i = 0; i < 3; i++)
			assert_int_equal(e.so->sync_start(e.ctx, e.fh[i]), 0);
		assert_int_equal(e.so->sync_wait(e.ctx), 0);
		assert_int_equal(g_submits, 1);
		assert_int_equal(g_waits, 0);
		/* Nothing left in flight. */
		assert_int_equal(e.so->sync_wait(e.ctx), 0);
		assert_int_equal(g_submits + g_waits, 1);
	}
	store_free(&e);
}

/* A sync that fails in the ring (its fd closed before the submission) fails
 * sync_wait; the others are waited for, and the next wait is clean. */
static void test_sync_error_reported(void **state)
{
	struct store_env e;
	int saved;

	if (!store_ring(&e))
		skip();
	assert_int_equal(e.so->sync_start(e.ctx, e.fh[0]), 0);
	assert_int_equal(e.so->sync_start(e.ctx, e.fh[1]), 0);
	assert_int_equal(e.so->sync_start(e.ctx, e.fh[2]), 0);
	saved = fd_away(&e, 1);
	assert_int_equal(e.so->sync_wait(e.ctx), -EBADF);
	fd_back(&e, 1, saved);
	g_submits = g_waits = 0;
	assert_int_equal(e.so->sync_wait(e.ctx), 0);
	assert_int_equal(g_submits + g_waits, 0);
	store_free(&e);
}

/* A submission the kernel refuses while a sync is in flight: the refused
 * sync is done at once, and sync_wait still waits for the one submitted
 * before (its error is reported; it stopped waiting for it). The ring takes
 * no new syncs after that. */
static void test_refused_submission_waits(void **state)
{
	struct store_env e;
	int saved;

	if (!store_ring(&e))
		skip();
	/* In flight: a sync that fails (its fd closed until it is reaped: the
	 * kernel's worker may look the fd up after the submission). */
	assert_int_equal(e.so->sync_start(e.ctx, e.fh[1]), 0);
	saved = fd_away(&e, 1);
	if (e.so->sync_submit)
		assert_int_equal(e.so->sync_submit(e.ctx), 0);
	/* The next submission is refused: fh[2]'s sync is done here. */
	g_refuse = 1;
	g_submits = g_waits = 0;
	assert_int_equal(e.so->sync_start(e.ctx, e.fh[2]), 0);
	assert_int_equal(e.so->sync_wait(e.ctx), -EBADF);
	assert_int_equal(g_submits, 1);
	assert_int_equal(g_refuse, 0);
	fd_back(&e, 1, saved);
	/* Nothing goes through the ring any more; every sync still works. */
	g_submits = g_waits = 0;
	assert_int_equal(e.so->sync_start(e.ctx, e.fh[0]), 0);
	assert_int_equal(e.so->sync_wait(e.ctx), 0);
	assert_int_equal(g_submits, 0);
	assert_int_equal(g_waits, 0);
	store_free(&e);
}

/* An early sync (flush_start, never waited for) that fails is reported by
 * the next sync of its file, once, whether it goes through the ring
 * (sync_start) or not (sync), and not by another file's: the kernel reports a
 * sync's error once per file description, so the early one may have taken
 * it from the commit's. */
static void test_early_sync_error_reported(void **state)
{
	struct store_env e;
	int saved;

	if (!store_ring(&e))
		skip();
	assert_non_null(e.so->flush_start);
	/* One that works (the ring made), waited for by the sync. */
	assert_int_equal(e.so->flush_start(e.ctx, e.fh[0]), 1);
	assert_int_equal(e.so->sync(e.ctx, e.fh[0]), 0);
	/* Its fd closed until it is reaped (the kernel's worker looks it up):
	 * it fails (EBADF) in the ring; the sync that waits for it says so,
	 * plain (fh[1]) or through the commit's ring (fh[2]). */
	for (int k = 1; k <= 2; k++) {
		int (*sync)(void *, void *) = k == 1 ? e.so->sync : e.so->sync_start;

		saved = fd_away(&e, k);
		assert_int_equal(e.so->flush_start(e.ctx, e.fh[k]), 1);
		assert_int_equal(sync(e.ctx, e.fh[0]), 0);
		assert_int_equal(sync(e.ctx, e.fh[k]), -EBADF);
		fd_back(&e, k, saved);
		assert_int_equal(sync(e.ctx, e.fh[k]), 0);
		assert_int_equal(e.so->sync_wait(e.ctx), 0);
	}
	store_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syncs_one_submission),
		cmocka_unit_test(test_sync_error_reported),
		cmocka_unit_test(test_refused_submission_waits),
		cmocka_unit_test(test_early_sync_error_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
