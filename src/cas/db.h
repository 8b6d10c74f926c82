/* The CAS's SQL layer: one interface over the store's database (SQLite today,
 * db_sqlite.c), so store.c, audit.c, proposals.c and collateral.c hold no
 * backend calls and one SQL text serves every backend.
 *
 * The dialect the callers write: positional parameters as `?` (a driver that
 * numbers them, like PostgreSQL's `$n`, translates), `INSERT ... ON CONFLICT
 * (key) DO UPDATE SET ... = excluded....` (never `INSERT OR REPLACE`), BLOB
 * columns (a driver maps the type), INTEGER holding 64 bits.
 *
 * Ownership: a struct cas__db belongs to whoever opened it (cas__db_close); a
 * struct cas__stmt to whoever prepared it (cas__db_finalize, NULL allowed).
 * Text and blobs bound to a statement are not copied: they must stay valid
 * until the statement is stepped. Column values returned by the getters are
 * valid until the next step or the finalize.
 *
 * Errors: negative codes (-EEXIST for a unique-constraint violation, -EAGAIN
 * for a busy database or a serialization failure that a new transaction may
 * not meet, -EIO otherwise); the connection keeps the last failure in
 * cas__db_err(db), a message naming the statement and the backend's reason. */
#ifndef KILN_CAS_DB_H
#define KILN_CAS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct cas__db;
struct cas__stmt;

/* Open the SQLite database at path (created 0600 when create), WAL and
 * synchronous=FULL for a writer; readonly: a reader connection. */
int cas__db_open_sqlite(const char *path, bool readonly, struct cas__db **out,
			struct kiln_err *err);
/* Connect to PostgreSQL (conninfo: a postgresql:// URI or key=value string,
 * as libpq takes it; it may hold a password, so it is never logged). */
int cas__db_open_pg(const char *conninfo, struct cas__db **out, struct kiln_err *err);
void cas__db_close(struct cas__db *db);
/* "sqlite" or "postgresql": for the few statements that differ (PRAGMAs). */
const char *cas__db_backend(const struct cas__db *db);
/* What the connection is, for messages: the SQLite file, or "PostgreSQL
 * database NAME on HOST:PORT" (never a password). */
const char *cas__db_where(const struct cas__db *db);
/* The last failure on this connection (code 0 when none). */
const struct kiln_err *cas__db_err(const struct cas__db *db);

/* Settings of this connection (SQL without rows), kept: run now and again
 * whenever the driver makes the connection again. */
int cas__db_session(struct cas__db *db, const char *sql);
/* Run SQL without parameters or rows (several statements allowed). */
int cas__db_exec(struct cas__db *db, const char *sql);

int cas__db_prepare(struct cas__db *db, const char *sql, struct cas__stmt **out);
/* Binds (i from 1): a failure is kept and reported by the next step. */
void cas__db_bind_int64(struct cas__stmt *s, int i, int64_t v);
void cas__db_bind_text(struct cas__stmt *s, int i, const char *v);
void cas__db_bind_blob(struct cas__stmt *s, int i, const void *v, size_t size);
void cas__db_bind_null(struct cas__stmt *s, int i);
/* 1: a row is ready, 0: done, negative: failed (see above). */
int cas__db_step(struct cas__stmt *s);
int64_t cas__db_col_int64(struct cas__stmt *s, int i);
/* Never NULL: "" for SQL NULL. */
const char *cas__db_col_text(struct cas__stmt *s, int i);
const uint8_t *cas__db_col_blob(struct cas__stmt *s, int i, size_t *size);
bool cas__db_col_null(struct cas__stmt *s, int i);
/* A malloc'd copy of a text column (NULL when out of memory). */
char *cas__db_col_strdup(struct cas__stmt *s, int i);
void cas__db_finalize(struct cas__stmt *s);
/* Rows changed by the last INSERT/UPDATE/DELETE stepped on db. */
int64_t cas__db_changes(struct cas__db *db);

/* Prepare sql and bind one parameter per letter of types: 't' const char *,
 * 'i' int64_t, 'b' const void * then size_t, 'n' (none: NULL). *out ready to
 * step (cas__db_finalize). */
int cas__db_query(struct cas__db *db, struct cas__stmt **out, const char *sql,
		  const char *types, ...);
/* The same, stepped to the end and finalized: 0, -EEXIST, -EAGAIN or -EIO. */
int cas__db_run(struct cas__db *db, const char *sql, const char *types, ...);

/* Transactions. begin takes the write lock at once (SQLite: BEGIN IMMEDIATE,
 * so two writers never meet half-way). Savepoints nest one level inside. */
int cas__db_begin(struct cas__db *db);
/* A transaction that only reads, all of it from one snapshot (other writers
 * go on); end it with cas__db_rollback. */
int cas__db_begin_snapshot(struct cas__db *db);
int cas__db_commit(struct cas__db *db);
void cas__db_rollback(struct cas__db *db);
bool cas__db_in_tx(struct cas__db *db);
int cas__db_savepoint(struct cas__db *db);
void cas__db_savepoint_rollback(struct cas__db *db);
int cas__db_savepoint_release(struct cas__db *db);

/* Run fn(db, ctx) in a transaction and commit it. fn returning -EAGAIN, or the
 * COMMIT failing with -EAGAIN (busy, serialization failure), rolls back and
 * runs fn again, at most CAS_DB_TX_TRIES times; any other failure rolls back
 * and is returned. fn must have no effect outside the database. */
#define CAS_DB_TX_TRIES 5
int cas__db_tx(struct cas__db *db, int (*fn)(struct cas__db *db, void *ctx), void *ctx);

#endif
