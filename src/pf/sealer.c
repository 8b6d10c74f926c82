/* The volume's helper thread (pf_volume_opts.seal_thread): seals the whole
 * chunks of a large write batch next to the writing thread, and writes one
 * sealed batch to the backing file while the next is sealed (the write
 * pipeline of data.c) -- and then helps seal that next batch. A forked child
 * has no helper and seals alone. */
#include "pf/internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

/* Bumped in every child of fork (pthread_atfork): a sealer started under an
 * earlier value belongs to an ancestor, its thread is not in this process.
 * Compared instead of getpid() on every batch (a system call per large write
 * batch: 581 of them per 64 MiB written by dd). Only libc's fork runs the
 * handler; the runtime's fork wrapper and the volume server use it. */
static atomic_uint g_fork_gen;
static pthread_once_t g_fork_once = PTHREAD_ONCE_INIT;

static void fork_child(void)
{
	atomic_fetch_add(&g_fork_gen, 1);
}

static void fork_watch(void)
{
	(void)pthread_atfork(NULL, NULL, fork_child);
}

/* Seal whole chunk k of a batch (encrypted region) with context aead. Safe to
 * run on two threads at once for different k: no volume scratch is used. */
static int seal_whole(struct pf_seal_job *job, kc_aead_t *aead, uint64_t k)
{
	struct pf_node *n = job->n;
	pf_volume_t *v = n->vol;
	uint32_t len = pf__chunk_len(v, job->new_size, k);
	const uint8_t *pt = job->buf + (k * v->cs - job->off);
	uint8_t *slot = job->iobuf + (k - job->i) * v->stride;
	const uint8_t *nonce = v->nonces + (k - job->i) * PF_NONCE_SIZE;
	uint8_t aad[32];
	int ret;

	if (n->kind != PF_REGION_ENCRYPTED) /* never shared: volume scratch is fine */
		return pf__seal_chunk(n, k, pt, len, nonce, slot);
	memcpy(slot, nonce, PF_NONCE_SIZE);
	pf__make_aad(n, k, len, aad);
	for (;;) {
		ret = kc_aead_seal(aead, slot, aad, sizeof(aad), pt, len, slot + PF_SLOT_META,
				   slot + PF_NONCE_SIZE);
		/* A real tag of all zeros would read as a hole (see pf__seal_chunk). */
		if (ret || !pf__tag_is_zero(slot + PF_NONCE_SIZE))
			return ret;
		if ((ret = kc_random(slot, PF_NONCE_SIZE)) != 0)
			return ret;
	}
}

/* Claim and seal chunks of job until none is left. */
static void seal_claim(struct pf_seal_job *job, kc_aead_t *aead)
{
	for (;;) {
		uint64_t k = atomic_fetch_add(&job->next, 1);
		int ret;

		if (k >= job->hi)
			return;
		ret = seal_whole(job, aead, k);
		if (ret) {
			int zero = 0;

			atomic_compare_exchange_strong(&job->err, &zero, ret);
		}
	}
}

static void *sealer_main(void *arg)
{
	struct pf_sealer *s = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct pf_job *job;

		while (!s->quit && (!s->job || s->gen == seen))
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		seen = s->gen;
		job = s->job;
		job->taken = true;
		s->job = NULL;
		s->busy = true;
		pthread_mutex_unlock(&s->mu);
		job->run(job);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* The sealer thread of this process, started on first use; false if there is
 * none (a forked child, or it could not be started): seal alone then. */
static bool sealer_ready(pf_volume_t *v)
{
	struct pf_sealer *s = &v->sealer;
	sigset_t all, old;
	int ret;

	if (s->started)
		return s->fork_gen == atomic_load(&g_fork_gen);
	pthread_once(&g_fork_once, fork_watch);
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		return false;
	if (pthread_cond_init(&s->cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mu);
		return false;
	}
	/* The thread takes no signals (the library may run inside an application
	 * through the runtime: its signals belong to its own threads). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->thread, NULL, sealer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		return false;
	}
	s->fork_gen = atomic_load(&g_fork_gen);
	s->started = true;
	return true;
}

void pf__sealer_stop(pf_volume_t *v)
{
	struct pf_sealer *s = &v->sealer;

	if (!s->started || s->fork_gen != atomic_load(&g_fork_gen))
		return; /* a forked child's copy: the thread is not ours */
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	s->started = false;
}

/* Hand job to the helper thread (which must be idle: one job at a time). */
static void job_post(pf_volume_t *v, struct pf_job *job)
{
	struct pf_sealer *s = &v->sealer;

	job->taken = false;
	pthread_mutex_lock(&s->mu);
	s->job = job;
	s->gen++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Wait until job is done: withdraw it if the helper has not taken it, and
 * then run it here. */
void pf__job_finish(pf_volume_t *v, struct pf_job *job)
{
	struct pf_sealer *s = &v->sealer;
	bool taken;

	pthread_mutex_lock(&s->mu);
	if (s->job == job)
		s->job = NULL;
	while (s->busy)
		pthread_cond_wait(&s->cv, &s->mu);
	taken = job->taken;
	pthread_mutex_unlock(&s->mu);
	if (!taken)
		job->run(job);
	job->taken = true; /* done: a second wait (pf__seal_batch's, then the writer's) runs nothing */
}

static void seal_job_run(struct pf_job *job)
{
	struct pf_seal_job *sj = (struct pf_seal_job *)job;

	seal_claim(sj, sj->n->aead2);
}

/* A write job's `follow` once its writer has looked: no seal job joins later. */
static struct pf_seal_job g_follow_closed;

static void write_job_run(struct pf_job *job)
{
	struct pf_write_job *wj = (struct pf_write_job *)job;
	struct pf_seal_job *sj;

	wj->ret = pf__st_pwrite_all(wj->v, wj->fh, wj->buf, wj->len, wj->off);
	/* The write of a batch takes a fraction of the sealing of the next one
	 * (a 256 KiB pwrite into the page cache against AES-GCM over 256 KiB):
	 * seal the rest of that one beside the writing thread instead of
	 * idling (it was one core sealing while the helper slept: 0.6 s of one
	 * thread's CPU per 512 MiB written back, the helper's 0.09 s). */
	sj = atomic_exchange(&wj->follow, &g_follow_closed);
	if (sj)
		seal_claim(sj, sj->n->aead2);
	/* Off the writer's path: start the write-back now, so that the fsync
	 * that ends a long sequential write mostly finds it done. */
	if (wj->ret == 0 && wj->v->so->writeback)
		(void)wj->v->so->writeback(wj->v->sctx, wj->fh, wj->off, wj->len);
}

/* Seal the whole chunks [lo, hi) of the batch starting at chunk i into iobuf,
 * on this thread and, for encrypted files when worth it, on the helper thread:
 * at once when it is free (running NULL), else once it has written the
 * previous batch (running, the write job it is on). Nonces come from
 * v->nonces. Every chunk is sealed when this returns. */
int pf__seal_batch(struct pf_node *n, const uint8_t *buf, uint64_t off, uint64_t new_size,
		      uint64_t i, uint64_t lo, uint64_t hi, uint8_t *iobuf,
		      struct pf_write_job *running)
{
	pf_volume_t *v = n->vol;
	struct pf_seal_job job = {
		.base.run = seal_job_run,
		.n = n, .buf = buf, .off = off, .new_size = new_size,
		.i = i, .lo = lo, .hi = hi, .iobuf = iobuf,
	};
	bool shared = false, joined = false;

	atomic_init(&job.next, lo);
	atomic_init(&job.err, 0);
	if (v->seal_thread && hi - lo >= PF_PAR_MIN_CHUNKS && n->kind == PF_REGION_ENCRYPTED) {
		if (!n->aead2)
			n->aead2 = kc_aead_new(n->inode->key);
		if (n->aead2 && running) {
			struct pf_seal_job *none = NULL;

			/* Fails once the helper is past its write (it looked). */
			joined = atomic_compare_exchange_strong(&running->follow, &none, &job);
		} else {
			shared = n->aead2 && sealer_ready(v);
		}
	}
	if (shared)
		job_post(v, &job.base);
	seal_claim(&job, n->aead);
	/* Every chunk is claimed: the helper may still be sealing its last
	 * ones (nothing is left to run here). A joined write job is then done
	 * too: the caller's own wait for it returns at once. */
	if (shared)
		pf__job_finish(v, &job.base);
	else if (joined)
		pf__job_finish(v, &running->base);
	return atomic_load(&job.err);
}

/* Start writing data[len] at offset `at` of the backing file on the helper
 * thread (true), or return false: no helper (seal_thread off, a forked child)
 * or too little data to be worth a hand-off. */
bool pf__write_async(struct pf_node *n, struct pf_write_job *wj, const uint8_t *data,
			size_t len, uint64_t at)
{
	pf_volume_t *v = n->vol;

	if (!v->seal_thread || len < PF_PAR_MIN_CHUNKS * v->stride || !sealer_ready(v))
		return false;
	if (!v->iobuf2 && !(v->iobuf2 = malloc(v->batch * v->stride)))
		return false;
	*wj = (struct pf_write_job){
		.base.run = write_job_run, .v = v, .fh = n->fh, .buf = data, .len = len,
		.off = at,
	};
	atomic_init(&wj->follow, NULL);
	job_post(v, &wj->base);
	return true;
}
