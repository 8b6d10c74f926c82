/* Nonces shared by the CAS processes of one PostgreSQL store.
 *
 * Behind a load balancer a workload may fetch its nonce from one replica and
 * attest at another. With a PostgreSQL store each nonce is therefore also a row
 * of the table nonces: issued with an INSERT, used with DELETE ... RETURNING, so
 * of several requests racing with one nonce, at one replica or at several,
 * exactly one gets the row. The local table (nonces.c) still bounds what each
 * client holds at this replica. A SQLite store has one CAS process: the local
 * table is the whole truth and nothing here is used (sn->c.db is NULL). */
#include "cas/internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int cas__snonces_open(struct cas__shared_nonces *sn, const struct cas__store *st,
		      struct kiln_err *err)
{
	int ret;

	memset(sn, 0, sizeof(*sn));
	pthread_mutex_init(&sn->lock, NULL);
	if (strcmp(cas__db_backend(st->db), "postgresql"))
		return 0;
	/* A connection of its own: nonces are issued and peeked at without the
	 * store lock, by every loop. */
	ret = cas__store_open_reader(st, &sn->c, err);
	/* A nonce's row is seen by every session as soon as it is written; only
	 * its durability waits for the WAL's flush, and nonces need none: after
	 * a crash of PostgreSQL a nonce issued just before is unknown (the client
	 * asks again), and one used just before may be used once more within its
	 * 20 s, by whoever holds the evidence, which is bound to the workload's
	 * TLS key. Without this every nonce cost two fsyncs in a row. */
	if (ret == 0 && (ret = cas__db_session(sn->c.db, "SET synchronous_commit = off")) < 0)
		ret = kiln_err_set(err, ret, "%s", cas__db_err(sn->c.db)->msg);
	return ret;
}

void cas__snonces_close(struct cas__shared_nonces *sn)
{
	cas__store_close(&sn->c);
	pthread_mutex_destroy(&sn->lock);
}

bool cas__snonces_on(const struct cas__shared_nonces *sn)
{
	return sn->c.db != NULL;
}

int cas__snonce_add(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t expires)
{
	int ret;

	pthread_mutex_lock(&sn->lock);
	for (int tries = 0; tries < 2; tries++) {
		ret = cas__db_run(sn->c.db, "INSERT INTO nonces(nonce, expires) VALUES(?, ?)",
				  "bi", nonce, (size_t)32, expires);
		/* The connection may have been lost (the server restarted) and is
		 * made again on the second try; the nonce being there then means
		 * the first try got through. */
		if (tries && ret == -EEXIST)
			ret = 0;
		if (ret != -EIO)
			break;
	}
	pthread_mutex_unlock(&sn->lock);
	return ret;
}

/* take: DELETE ... RETURNING (the one use); else SELECT (a look). */
static int lookup(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t now,
		  bool take)
{
	struct cas__stmt *s = NULL;
	int ret;

	pthread_mutex_lock(&sn->lock);
	/* A second try on a new connection when the first was lost: a DELETE
	 * that got through then finds nothing, so a nonce is never used twice. */
	for (int tries = 0; tries < 2; tries++) {
		ret = cas__db_query(sn->c.db, &s, take ?
				    "DELETE FROM nonces WHERE nonce = ? RETURNING expires" :
				    "SELECT expires FROM nonces WHERE nonce = ?", "b", nonce,
				    (size_t)32);
		if (ret == 0)
			ret = cas__db_step(s);
		if (ret == 1)
			ret = cas__db_col_int64(s, 0) > now ? 1 : 0;
		cas__db_finalize(s);
		s = NULL;
		if (ret != -EIO)
			break;
	}
	pthread_mutex_unlock(&sn->lock);
	return ret;
}

int cas__snonce_take(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t now)
{
	return lookup(sn, nonce, now, true);
}

int cas__snonce_peek(struct cas__shared_nonces *sn, const uint8_t nonce[32], int64_t now)
{
	return lookup(sn, nonce, now, false);
}

void cas__snonces_sweep(struct cas__shared_nonces *sn, int64_t now)
{
	if (!cas__snonces_on(sn))
		return;
	pthread_mutex_lock(&sn->lock);
	(void)cas__db_run(sn->c.db, "DELETE FROM nonces WHERE expires <= ?", "i", now);
	pthread_mutex_unlock(&sn->lock);
}
