/* The store's schema and its forward migrations (one SQL text for every
 * backend of db.h).
 *
 * schema_version holds one row: the version the tables are at. A store made
 * before versions existed has tables and no row: version 0. Each migration
 * takes the store from version n to n + 1 inside one write transaction, so two
 * CAS processes opening one store at once migrate it once; a store newer than
 * this kiln is refused (its tables may mean what this kiln does not know). */
#include "cas/internal.h"

#include <errno.h>
#include <string.h>

/* Version 1: the tables as they were when versions began. Older stores may
 * miss the proposals columns id and action (added in place before then). */
static const char g_v1[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS policies(name TEXT PRIMARY KEY, hash TEXT NOT NULL,"
	" yaml TEXT NOT NULL, canonical TEXT NOT NULL, owner TEXT NOT NULL,"
	" version INTEGER NOT NULL, updated INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS secrets(session TEXT NOT NULL, name TEXT NOT NULL,"
	" spec TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(session, name));"
	"CREATE TABLE IF NOT EXISTS volumes(id TEXT PRIMARY KEY, session TEXT NOT NULL,"
	" name TEXT NOT NULL, key BLOB NOT NULL, committed INTEGER NOT NULL,"
	" prepared INTEGER, UNIQUE(session, name));"
	"CREATE TABLE IF NOT EXISTS las_trust(id TEXT PRIMARY KEY, pem TEXT NOT NULL,"
	" added INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS tee_trust(id TEXT PRIMARY KEY, tee TEXT NOT NULL,"
	" data TEXT NOT NULL, added INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS namespaces(name TEXT PRIMARY KEY, owners TEXT NOT NULL,"
	" added INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS proposals(name TEXT NOT NULL, hash TEXT NOT NULL,"
	" predecessor TEXT NOT NULL, yaml TEXT NOT NULL, proposer TEXT NOT NULL,"
	" created INTEGER NOT NULL, expires INTEGER NOT NULL, approvals TEXT NOT NULL,"
	" id TEXT NOT NULL DEFAULT '', action TEXT NOT NULL DEFAULT 'update',"
	" PRIMARY KEY(name, hash));"
	"CREATE TABLE IF NOT EXISTS spent_approvals(digest TEXT PRIMARY KEY,"
	" not_after INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" kind TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL,"
	" details TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, sig BLOB NOT NULL);";

/* 0 -> 1: the tables; a proposals table of an older kiln gets id and action
 * (a proposal from before gets a fresh id). Only SQLite stores are that old. */
static int to_v1(struct cas__db *db)
{
	struct cas__stmt *s = NULL;
	int ret = cas__db_exec(db, g_v1);

	if (ret < 0 || strcmp(cas__db_backend(db), "sqlite"))
		return ret;
	if (cas__db_query(db, &s, "SELECT count(*) FROM pragma_table_info('proposals') WHERE "
			  "name = 'action'", "") < 0 || cas__db_step(s) != 1) {
		cas__db_finalize(s);
		return -EIO;
	}
	ret = cas__db_col_int64(s, 0);
	cas__db_finalize(s);
	if (ret == 1)
		return 0;
	return cas__db_exec(db, "ALTER TABLE proposals ADD COLUMN id TEXT NOT NULL DEFAULT '';"
			    "ALTER TABLE proposals ADD COLUMN action TEXT NOT NULL DEFAULT "
			    "'update';"
			    "UPDATE proposals SET id = lower(hex(randomblob(16))) WHERE id = '';");
}

/* 1 -> 2: nonces shared by the replicas of one store (nonces_db.c). */
static int to_v2(struct cas__db *db)
{
	return cas__db_exec(db, "CREATE TABLE IF NOT EXISTS nonces(nonce BLOB PRIMARY KEY,"
			    " expires INTEGER NOT NULL)");
}

/* 2 -> 3: the grants of attested workload keys (grants.c), shared by the
 * replicas of one store and kept across restarts (they were in each process's
 * memory). Nothing to carry over: grants of before the migration are gone, as
 * at any restart of an older kiln; a workload attests again. */
static int to_v3(struct cas__db *db)
{
	return cas__db_exec(db, "CREATE TABLE IF NOT EXISTS grants(spki BLOB PRIMARY KEY,"
			    " session TEXT NOT NULL, volumes TEXT NOT NULL,"
			    " created_ns INTEGER NOT NULL, expires_ns INTEGER NOT NULL);"
			    "CREATE INDEX IF NOT EXISTS grants_by_session ON grants(session,"
			    " created_ns);"
			    "CREATE INDEX IF NOT EXISTS grants_by_expiry ON grants(expires_ns)");
}

static int (*const g_migrations[CAS_SCHEMA_VERSION])(struct cas__db *db) = {
	to_v1,
	to_v2,
	to_v3,
};

struct upgrade {
	int from, to;
};

int cas__schema_version(struct cas__db *db, int *version)
{
	struct cas__stmt *s = NULL;
	int64_t v;
	int ret;

	ret = cas__db_query(db, &s, "SELECT version FROM schema_version", "");
	if (ret == 0)
		ret = cas__db_step(s);
	v = ret == 1 ? cas__db_col_int64(s, 0) : 0;
	cas__db_finalize(s);
	if (ret < 0)
		return ret;
	*version = v < 0 ? -1 : v > 1000000 ? 1000000 : (int)v;
	return *version < 0 ? -KILN_ECORRUPT : 0;
}

static int upgrade_tx(struct cas__db *db, void *ctx)
{
	struct upgrade *u = ctx;
	int ret;

	/* Inside the write transaction: a second process waits here, then sees
	 * the version the first one wrote. */
	ret = cas__db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT "
			   "NULL)");
	if (ret == 0)
		ret = cas__schema_version(db, &u->from);
	if (ret < 0)
		return ret;
	if (u->from > CAS_SCHEMA_VERSION)
		return -KILN_EFORMAT;
	for (u->to = u->from; u->to < CAS_SCHEMA_VERSION; u->to++) {
		ret = g_migrations[u->to](db);
		if (ret < 0)
			return ret;
	}
	if (u->to == u->from)
		return 0;
	ret = cas__db_run(db, "DELETE FROM schema_version", "");
	if (ret == 0)
		ret = cas__db_run(db, "INSERT INTO schema_version(version) VALUES(?)", "i",
				  (int64_t)u->to);
	return ret;
}

int cas__schema_upgrade_in_tx(struct cas__db *db, int *from, int *to)
{
	struct upgrade u = { 0, 0 };
	int ret = upgrade_tx(db, &u);

	*from = u.from;
	*to = u.to;
	return ret;
}

int cas__schema_upgrade(struct cas__db *db, int *from, int *to, struct kiln_err *err)
{
	struct upgrade u = { 0, 0 };
	int ret;

	ret = cas__db_tx(db, upgrade_tx, &u);
	if (ret == -KILN_EFORMAT)
		return kiln_err_set(err, ret, "the store's schema is version %d, newer than this "
				    "kiln knows (%d): upgrade kiln (never downgrade a store)",
				    u.from, CAS_SCHEMA_VERSION);
	if (ret == -KILN_ECORRUPT)
		return kiln_err_set(err, ret, "schema_version holds a negative number, not a "
				    "version (the store was edited)");
	if (ret < 0)
		return kiln_err_set(err, ret, "schema migration %d -> %d failed: %s", u.from,
				    u.to + 1, cas__db_err(db)->msg);
	if (from)
		*from = u.from;
	if (to)
		*to = u.to;
	return 0;
}
