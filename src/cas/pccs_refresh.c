/* kiln cas serve --pccs URL: a thread that keeps the stored collateral fresh
 * (docs/cas.md "Collateral from a PCCS"). Every interval it fetches the
 * collateral of each stored platform once half of its validity window has
 * passed (well before its nextUpdate), and at once the platform of an
 * attestation refused for want of collateral (cas__refresher_want). Writes go
 * through a connection of its own, as `kiln cas collateral fetch` does; a failed
 * fetch keeps what is stored and is logged. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static time_t now_for(const struct cas__refresher *r)
{
	return r->pccs.at ? r->pccs.at : time(NULL);
}

static void fetch_logged(struct cas__refresher *r, const char *tee, const char *fmspc,
			 const char *why)
{
	struct kiln_err err = { 0 };
	struct cas_collateral c;
	bool changed = false;
	int ret = cas_collateral_fetch_one(r->data_dir, &r->pccs, tee, fmspc, &c, &changed,
					   &err);

	if (ret < 0)
		kiln_log(KILN_LOG_WARN, "collateral refresh failed: the stored collateral is kept",
			 "tee=%s fmspc=%s why=%s reason=\"%s\"", tee, fmspc, why,
			 kiln_err_msg(&err, ret));
	else
		kiln_log(KILN_LOG_INFO, changed ? "collateral refreshed" : "collateral unchanged",
			 "tee=%s fmspc=%s why=%s valid_until=%lld first_to_end=\"%s\"", tee,
			 c.fmspc, why, (long long)c.valid_until, c.next);
}

/* One pass: the platforms asked for, then the stored ones that are due. */
static void pass(struct cas__refresher *r)
{
	struct cas_collateral *v = NULL;
	struct kiln_err err = { 0 };
	char want[CAS_REFRESH_WANT][2][16];
	size_t n = 0, n_want;
	time_t now = now_for(r);

	pthread_mutex_lock(&r->lock);
	n_want = r->n_want;
	memcpy(want, r->want, sizeof(want));
	r->n_want = 0;
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n_want; i++)
		fetch_logged(r, want[i][0], want[i][1], "missing");
	if (cas_collateral_stored(r->data_dir, &v, &n, &err) < 0) {
		kiln_log(KILN_LOG_WARN, "collateral refresh: cannot list the stored collateral",
			 "reason=\"%s\"", err.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		time_t half = v[i].valid_from + (v[i].valid_until - v[i].valid_from) / 2;

		if (now >= half)
			fetch_logged(r, v[i].tee, v[i].fmspc, now >= v[i].valid_until ? "expired" :
				     "half of its window passed");
	}
	free(v);
}

static void *refresher_main(void *arg)
{
	struct cas__refresher *r = arg;

	for (;;) {
		struct timespec until;

		pass(r);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += r->interval_s;
		pthread_mutex_lock(&r->lock);
		while (!r->quit && !r->n_want &&
		       pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
			;
		if (r->quit) {
			pthread_mutex_unlock(&r->lock);
			return NULL;
		}
		pthread_mutex_unlock(&r->lock);
	}
}

int cas__refresher_start(struct cas__refresher *r, const char *data_dir,
			 const struct cas_pccs *p, unsigned interval_s, struct kiln_err *err)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->inited = true;
	if (!p || !p->url)
		return 0;
	r->pccs = *p;
	r->interval_s = interval_s ? interval_s : CAS_REFRESH_INTERVAL_S;
	snprintf(r->data_dir, sizeof(r->data_dir), "%s", data_dir);
	if (pthread_create(&r->thread, NULL, refresher_main, r) != 0)
		return kiln_err_set(err, -ENOMEM, "cannot start the collateral refresher");
	r->started = true;
	kiln_log(KILN_LOG_INFO, "collateral refresher started", "pccs=%s interval_s=%u",
		 p->url, r->interval_s);
	return 0;
}

void cas__refresher_want(struct cas__refresher *r, const char *tee, const char *fmspc)
{
	if (!r->started)
		return;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n_want; i++)
		if (!strcmp(r->want[i][0], tee) && !strcmp(r->want[i][1], fmspc))
			goto out; /* asked for already */
	/* A flood of unknown platforms fills the queue; the rest wait for the next
	 * pass (they are refused meanwhile, as without a PCCS). */
	if (r->n_want < CAS_REFRESH_WANT) {
		snprintf(r->want[r->n_want][0], sizeof(r->want[0][0]), "%s", tee);
		snprintf(r->want[r->n_want][1], sizeof(r->want[0][1]), "%s", fmspc);
		r->n_want++;
		pthread_cond_signal(&r->cond);
	}
out:
	pthread_mutex_unlock(&r->lock);
}

void cas__refresher_stop(struct cas__refresher *r)
{
	if (r->started) {
		pthread_mutex_lock(&r->lock);
		r->quit = true;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);
		r->started = false;
	}
	if (r->inited) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->cond);
		r->inited = false;
	}
}
