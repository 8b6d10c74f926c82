/* kiln-cas group commit and transactions: the requests that write share one
 * store transaction, a SAVEPOINT each, committed by a committer thread; their
 * answers wait for the COMMIT, and requests that need the store while it runs
 * are parked. The locks are listed in internal.h. */
#include "cas/internal.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* ---- group commit ----
 *
 * With synchronous=FULL every COMMIT waits for the disk (an fsync of the WAL).
 * Requests that write therefore join one open transaction (a SAVEPOINT each,
 * so a failing request undoes only its own writes); the batch commits at the
 * next turn of the event loop, after every request that arrived meanwhile,
 * and only then are their answers sent. One fsync serves many requests, and
 * nothing is acknowledged before it is durable. */

/* Send (or drop, for clients that left) a list of answers whose batch ended; on
 * their loop's thread. */
static void answer_list(struct cas__conn *c)
{
	struct cas__conn *next;

	for (; c; c = next) {
		next = c->wait_next;
		c->wait_next = NULL;
		c->rc.queued = false;
		c->rc.deferred = false;
		if (c->dead)
			cas__http_drop(c);
		else
			cas__send_stashed(&c->rc, c->rc.batch_ok);
	}
}

/* The batch ended (store_lock held; commit_busy still set, so the caller owns the
 * store connection): hand every loop its answers and its parked requests. All
 * pending answers belong to this batch: none are added while commit_busy. */
static void end_batch(struct cas__server *s, int commit_rc)
{
	if (commit_rc < 0) {
		kiln_log(KILN_LOG_ERROR, "store commit failed", "error=\"%s\"",
			 cas__db_err(s->st.db)->msg);
		cas__store_rollback(&s->st);
	}
	for (size_t i = 0; i < s->n_loops; i++) {
		struct cas__loop *l = &s->loops[i];
		bool work = l->pending || l->parked;

		for (struct cas__conn *c = l->pending; c; c = c->wait_next)
			c->rc.batch_ok = commit_rc == 0;
		if (l->pending) {
			*l->done_tail = l->pending;
			l->done_tail = l->pending_tail;
			l->pending = NULL;
			l->pending_tail = &l->pending;
		}
		/* Requests that arrived during the COMMIT: dispatched again by their
		 * loop, they form the next batch. */
		if (l->parked) {
			*l->resume_tail = l->parked;
			l->resume_tail = l->parked_tail;
			l->parked = NULL;
			l->parked_tail = &l->parked;
		}
		if (work && l->wake_ev)
			event_active(l->wake_ev, EV_TIMEOUT, 1);
	}
	s->batch_open = false;
	s->commit_busy = false;
	pthread_cond_broadcast(&s->commit_cond);
}

/* The committer made this loop's answers and parked requests ready. */
void cas__on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct cas__loop *l = arg;
	struct cas__server *s = l->s;
	struct cas__conn *done, *c, *next;

	pthread_mutex_lock(&s->store_lock);
	done = l->done;
	l->done = NULL;
	l->done_tail = &l->done;
	c = l->resume;
	l->resume = NULL;
	l->resume_tail = &l->resume;
	pthread_mutex_unlock(&s->store_lock);
	answer_list(done);
	for (; c; c = next) {
		next = c->wait_next;
		c->wait_next = NULL;
		if (c->dead)
			cas__http_drop(c);
		else
			cas__handle(c);
	}
}

/* The COMMIT (and its fsync) runs on its own thread so the event loops keep
 * doing TLS handshakes meanwhile; requests that need the store wait (parked). */
void *cas__committer(void *arg)
{
	struct cas__server *s = arg;

	pthread_mutex_lock(&s->store_lock);
	for (;;) {
		while (!s->commit_requested && !s->commit_quit)
			pthread_cond_wait(&s->commit_cond, &s->store_lock);
		if (s->commit_quit)
			break;
		s->commit_requested = false;
		pthread_mutex_unlock(&s->store_lock);
		int rc = cas__store_commit(&s->st); /* commit_busy: the connection is ours */

		pthread_mutex_lock(&s->store_lock);
		end_batch(s, rc);
	}
	pthread_mutex_unlock(&s->store_lock);
	return NULL;
}

/* Zero timer of the loop that opened the batch: every request that was ready
 * on that turn of its loop (and on the other loops meanwhile) is in the batch. */
void cas__on_commit(evutil_socket_t fd, short what, void *arg)
{
	struct cas__loop *l = arg;
	struct cas__server *s = l->s;

	pthread_mutex_lock(&s->store_lock);
	if (s->batch_open && !s->commit_busy) {
		s->commit_busy = true;
		s->commit_requested = true;
		pthread_cond_broadcast(&s->commit_cond);
	}
	pthread_mutex_unlock(&s->store_lock);
}

/* At shutdown, once the loops have stopped: let the COMMIT in flight end, commit
 * the open batch here, and queue the answers (best effort: the connections are
 * freed next). */
void cas__flush_batch(struct cas__server *s)
{
	pthread_mutex_lock(&s->store_lock);
	while (s->commit_busy && s->committer_started)
		pthread_cond_wait(&s->commit_cond, &s->store_lock);
	if (s->batch_open) {
		s->commit_busy = true;
		end_batch(s, cas__store_commit(&s->st));
	}
	s->commit_quit = true;
	pthread_cond_broadcast(&s->commit_cond);
	pthread_mutex_unlock(&s->store_lock);
	if (s->committer_started) {
		pthread_join(s->committer, NULL);
		s->committer_started = false;
	}
	for (size_t i = 0; i < s->n_loops; i++) {
		struct cas__loop *l = &s->loops[i];

		answer_list(l->done);
		l->done = NULL;
		l->done_tail = &l->done;
		/* Parked requests are not run: their connections are freed with the
		 * loop's. */
		l->resume = NULL;
		l->resume_tail = &l->resume;
	}
}

/* Park the connection's request on its loop until the running COMMIT ends
 * (store_lock held). */
void cas__park_locked(struct cas__loop *l, struct cas__conn *c)
{
	c->wait_next = NULL;
	*l->parked_tail = c;
	l->parked_tail = &c->wait_next;
}

/* For a handler that starts without the store: take store_lock for the rest of
 * the request (true; cas__handle releases it), or park the request while a
 * COMMIT runs (false: it is dispatched again from the start when the COMMIT
 * ends). */
bool cas__store_enter(struct cas__req *rc)
{
	struct cas__server *s = rc->s;

	pthread_mutex_lock(&s->store_lock);
	if (!s->commit_busy) {
		rc->store = true;
		return true;
	}
	cas__park_locked(rc->loop, rc->conn);
	rc->queued = true;
	pthread_mutex_unlock(&s->store_lock);
	return false;
}

int cas__tx_begin(struct cas__req *rc)
{
	struct cas__server *s = rc->s;
	struct timeval zero = { 0, 0 };

	if (!s->batch_open) {
		if (cas__store_begin(&s->st) < 0)
			return -EIO;
		s->batch_open = true;
		evtimer_add(rc->loop->commit_ev, &zero);
	}
	if (cas__db_savepoint(s->st.db) < 0)
		return -EIO;
	return 0;
}

void cas__tx_rollback(struct cas__req *rc)
{
	cas__db_savepoint_rollback(rc->s->st.db);
}

/* Keep this request's writes in the batch; its answer waits for the COMMIT. */
int cas__tx_release(struct cas__req *rc)
{
	if (cas__db_savepoint_release(rc->s->st.db) < 0)
		return -EIO;
	rc->deferred = true;
	return 0;
}

int cas__tx_policy_current(struct cas__req *rc, const struct pol_policy *p)
{
	int ret = cas__policy_current(&rc->s->st, p->name, p->hash);

	if (ret == 0)
		return 0;
	cas__tx_rollback(rc);
	cas__fail(rc, ret == -ESTALE ? -EAGAIN : -EIO, ret == -ESTALE ? "the policy changed "
		  "during the request, ask again" : NULL);
	return ret;
}
