/* The SQLite driver of the SQL layer (db.h): one file, WAL, synchronous=FULL
 * (a write is durable before the COMMIT returns), a 10 s busy timeout. */
#include "cas/db_driver.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* libsqlite3.so.0, loaded at the first open (db_dl.c). */
#define SQ_FUNCS(X) \
	X(sqlite3_bind_blob) \
	X(sqlite3_bind_int64) \
	X(sqlite3_bind_null) \
	X(sqlite3_bind_text) \
	X(sqlite3_busy_timeout) \
	X(sqlite3_changes) \
	X(sqlite3_close) \
	X(sqlite3_column_blob) \
	X(sqlite3_column_bytes) \
	X(sqlite3_column_int64) \
	X(sqlite3_column_text) \
	X(sqlite3_column_type) \
	X(sqlite3_errmsg) \
	X(sqlite3_exec) \
	X(sqlite3_finalize) \
	X(sqlite3_open_v2) \
	X(sqlite3_prepare_v2) \
	X(sqlite3_step)
CAS_DB_DL_TABLE(g_sq, SQ_FUNCS);
/* The calls below go through the table. */
#define sqlite3_bind_blob(...) (g_sq.f.sqlite3_bind_blob(__VA_ARGS__))
#define sqlite3_bind_int64(...) (g_sq.f.sqlite3_bind_int64(__VA_ARGS__))
#define sqlite3_bind_null(...) (g_sq.f.sqlite3_bind_null(__VA_ARGS__))
#define sqlite3_bind_text(...) (g_sq.f.sqlite3_bind_text(__VA_ARGS__))
#define sqlite3_busy_timeout(...) (g_sq.f.sqlite3_busy_timeout(__VA_ARGS__))
#define sqlite3_changes(...) (g_sq.f.sqlite3_changes(__VA_ARGS__))
#define sqlite3_close(...) (g_sq.f.sqlite3_close(__VA_ARGS__))
#define sqlite3_column_blob(...) (g_sq.f.sqlite3_column_blob(__VA_ARGS__))
#define sqlite3_column_bytes(...) (g_sq.f.sqlite3_column_bytes(__VA_ARGS__))
#define sqlite3_column_int64(...) (g_sq.f.sqlite3_column_int64(__VA_ARGS__))
#define sqlite3_column_text(...) (g_sq.f.sqlite3_column_text(__VA_ARGS__))
#define sqlite3_column_type(...) (g_sq.f.sqlite3_column_type(__VA_ARGS__))
#define sqlite3_errmsg(...) (g_sq.f.sqlite3_errmsg(__VA_ARGS__))
#define sqlite3_exec(...) (g_sq.f.sqlite3_exec(__VA_ARGS__))
#define sqlite3_finalize(...) (g_sq.f.sqlite3_finalize(__VA_ARGS__))
#define sqlite3_open_v2(...) (g_sq.f.sqlite3_open_v2(__VA_ARGS__))
#define sqlite3_prepare_v2(...) (g_sq.f.sqlite3_prepare_v2(__VA_ARGS__))
#define sqlite3_step(...) (g_sq.f.sqlite3_step(__VA_ARGS__))

struct sq_db {
	struct cas__db base; /* first: the layer's view */
	sqlite3 *h;
};

struct sq_stmt {
	struct cas__stmt base;
	sqlite3_stmt *h;
};

static sqlite3 *handle(struct cas__db *db)
{
	return ((struct sq_db *)db)->h;
}

static sqlite3_stmt *stmt_handle(struct cas__stmt *s)
{
	return ((struct sq_stmt *)s)->h;
}

/* SQLite's result code as the layer's: what a caller may act on. */
static int code_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void sq_close(struct cas__db *db)
{
	sqlite3_close(handle(db));
	free(db);
}

static int sq_exec(struct cas__db *db, const char *sql)
{
	int rc = sqlite3_exec(handle(db), sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	return cas__db_fail(db, code_of(rc), sql, sqlite3_errmsg(handle(db)));
}

static int sq_prepare(struct cas__db *db, const char *sql, struct cas__stmt **out)
{
	struct sq_stmt *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return cas__db_fail(db, -ENOMEM, sql, "out of memory");
	rc = sqlite3_prepare_v2(handle(db), sql, -1, &s->h, NULL);
	if (rc != SQLITE_OK) {
		int ret = cas__db_fail(db, code_of(rc), sql, sqlite3_errmsg(handle(db)));

		sqlite3_finalize(s->h);
		free(s);
		return ret;
	}
	*out = &s->base;
	return 0;
}

static int bound(int rc)
{
	return rc == SQLITE_OK ? 0 : code_of(rc);
}

static int sq_bind_int64(struct cas__stmt *s, int i, int64_t v)
{
	return bound(sqlite3_bind_int64(stmt_handle(s), i, v));
}

static int sq_bind_text(struct cas__stmt *s, int i, const char *v)
{
	return bound(sqlite3_bind_text(stmt_handle(s), i, v, -1, SQLITE_STATIC));
}

static int sq_bind_blob(struct cas__stmt *s, int i, const void *v, size_t size)
{
	if (size > INT32_MAX)
		return -E2BIG;
	/* A zero-length blob is still a blob, never NULL (NOT NULL columns). */
	return bound(sqlite3_bind_blob(stmt_handle(s), i, v ? v : "", (int)size,
				       SQLITE_STATIC));
}

static int sq_bind_null(struct cas__stmt *s, int i)
{
	return bound(sqlite3_bind_null(stmt_handle(s), i));
}

static int sq_step(struct cas__stmt *s)
{
	sqlite3 *h = handle(s->db);
	int rc = sqlite3_step(stmt_handle(s));

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE) {
		s->db->changes = sqlite3_changes(h);
		return 0;
	}
	return cas__db_fail(s->db, code_of(rc), s->sql, sqlite3_errmsg(h));
}

static int64_t sq_col_int64(struct cas__stmt *s, int i)
{
	return sqlite3_column_int64(stmt_handle(s), i);
}

static const char *sq_col_text(struct cas__stmt *s, int i)
{
	return (const char *)sqlite3_column_text(stmt_handle(s), i);
}

static const uint8_t *sq_col_blob(struct cas__stmt *s, int i, size_t *size)
{
	const uint8_t *p = sqlite3_column_blob(stmt_handle(s), i);

	*size = (size_t)sqlite3_column_bytes(stmt_handle(s), i);
	return p;
}

static bool sq_col_null(struct cas__stmt *s, int i)
{
	return sqlite3_column_type(stmt_handle(s), i) == SQLITE_NULL;
}

static void sq_finalize(struct cas__stmt *s)
{
	sqlite3_finalize(stmt_handle(s));
	free(s);
}

static const struct cas__db_ops g_sqlite_ops = {
	.name = "sqlite",
	/* The write lock at BEGIN: a writer never fails half-way on a lock it
	 * could not upgrade. */
	.begin_sql = "BEGIN IMMEDIATE",
	/* Deferred: in WAL mode the first read fixes the snapshot, and writers
	 * are not held off. */
	.snapshot_sql = "BEGIN",
	.close = sq_close,
	.exec = sq_exec,
	.prepare = sq_prepare,
	.bind_int64 = sq_bind_int64,
	.bind_text = sq_bind_text,
	.bind_blob = sq_bind_blob,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.col_int64 = sq_col_int64,
	.col_text = sq_col_text,
	.col_blob = sq_col_blob,
	.col_null = sq_col_null,
	.finalize = sq_finalize,
};

int cas__db_open_sqlite(const char *path, bool readonly, struct cas__db **out,
			struct kiln_err *err)
{
	struct sq_db *db = calloc(1, sizeof(*db));
	int ret;

	*out = NULL;
	if (!db)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	ret = CAS_DB_DL_BIND("libsqlite3.so.0", g_sq, err);
	if (ret) {
		free(db);
		return ret;
	}
	db->base.ops = &g_sqlite_ops;
	snprintf(db->base.where, sizeof(db->base.where), "%s", path);
	if (sqlite3_open_v2(path, &db->h, (readonly ? SQLITE_OPEN_READONLY :
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		ret = kiln_err_set(err, -EIO, "%s: %s", path,
				   db->h ? sqlite3_errmsg(db->h) : "cannot open");
		sq_close(&db->base);
		return ret;
	}
	sqlite3_busy_timeout(db->h, 10000);
	if (!readonly) {
		chmod(path, 0600);
		if (sq_exec(&db->base, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			    "PRAGMA foreign_keys=ON;") < 0) {
			ret = kiln_err_set(err, -EIO, "%s: %s", path, db->base.err.msg);
			sq_close(&db->base);
			return ret;
		}
	}
	*out = &db->base;
	return 0;
}
