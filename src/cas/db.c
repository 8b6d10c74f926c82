/* The SQL layer's backend-independent part (db.h): dispatch to the driver,
 * the query/run shorthands, transactions and their bounded retry. */
#include "cas/db_driver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cas__db_fail(struct cas__db *db, int code, const char *sql, const char *why)
{
	if (!sql)
		return kiln_err_set(&db->err, code, "store: %s", why);
	/* The statement's start names it well enough; its parameters are never
	 * shown (they may be secret). */
	return kiln_err_set(&db->err, code, "store: %.*s%s: %s", 72, sql,
			    strlen(sql) > 72 ? "..." : "", why);
}

void cas__db_close(struct cas__db *db)
{
	if (db)
		db->ops->close(db);
}

const char *cas__db_backend(const struct cas__db *db)
{
	return db->ops->name;
}

const char *cas__db_where(const struct cas__db *db)
{
	return db->where;
}

const struct kiln_err *cas__db_err(const struct cas__db *db)
{
	return &db->err;
}

int cas__db_session(struct cas__db *db, const char *sql)
{
	return db->ops->session ? db->ops->session(db, sql) : db->ops->exec(db, sql);
}

int cas__db_exec(struct cas__db *db, const char *sql)
{
	return db->ops->exec(db, sql);
}

int cas__db_prepare(struct cas__db *db, const char *sql, struct cas__stmt **out)
{
	int ret;

	*out = NULL;
	ret = db->ops->prepare(db, sql, out);
	if (ret < 0)
		return ret;
	(*out)->db = db;
	(*out)->sql = sql;
	(*out)->bind_rc = 0;
	return 0;
}

static void bind_result(struct cas__stmt *s, int rc)
{
	if (rc < 0 && s->bind_rc == 0)
		s->bind_rc = rc;
}

void cas__db_bind_int64(struct cas__stmt *s, int i, int64_t v)
{
	bind_result(s, s->db->ops->bind_int64(s, i, v));
}

void cas__db_bind_text(struct cas__stmt *s, int i, const char *v)
{
	bind_result(s, v ? s->db->ops->bind_text(s, i, v) : s->db->ops->bind_null(s, i));
}

void cas__db_bind_blob(struct cas__stmt *s, int i, const void *v, size_t size)
{
	bind_result(s, s->db->ops->bind_blob(s, i, v, size));
}

void cas__db_bind_null(struct cas__stmt *s, int i)
{
	bind_result(s, s->db->ops->bind_null(s, i));
}

int cas__db_step(struct cas__stmt *s)
{
	if (s->bind_rc < 0)
		return cas__db_fail(s->db, s->bind_rc, s->sql, "cannot bind a parameter");
	return s->db->ops->step(s);
}

int64_t cas__db_col_int64(struct cas__stmt *s, int i)
{
	return s->db->ops->col_int64(s, i);
}

const char *cas__db_col_text(struct cas__stmt *s, int i)
{
	const char *t = s->db->ops->col_text(s, i);

	return t ? t : "";
}

const uint8_t *cas__db_col_blob(struct cas__stmt *s, int i, size_t *size)
{
	return s->db->ops->col_blob(s, i, size);
}

bool cas__db_col_null(struct cas__stmt *s, int i)
{
	return s->db->ops->col_null(s, i);
}

char *cas__db_col_strdup(struct cas__stmt *s, int i)
{
	return strdup(cas__db_col_text(s, i));
}

void cas__db_finalize(struct cas__stmt *s)
{
	if (s)
		s->db->ops->finalize(s);
}

int64_t cas__db_changes(struct cas__db *db)
{
	return db->changes;
}

static int bind_va(struct cas__stmt *s, const char *types, va_list ap)
{
	for (int i = 1; *types; types++, i++) {
		switch (*types) {
		case 't':
			cas__db_bind_text(s, i, va_arg(ap, const char *));
			break;
		case 'i':
			cas__db_bind_int64(s, i, va_arg(ap, int64_t));
			break;
		case 'b': {
			const void *p = va_arg(ap, const void *);

			cas__db_bind_blob(s, i, p, va_arg(ap, size_t));
			break;
		}
		case 'n':
			cas__db_bind_null(s, i);
			break;
		default:
			return cas__db_fail(s->db, -EINVAL, s->sql, "bad parameter type letter");
		}
	}
	return 0;
}

int cas__db_query(struct cas__db *db, struct cas__stmt **out, const char *sql,
		  const char *types, ...)
{
	va_list ap;
	int ret;

	ret = cas__db_prepare(db, sql, out);
	if (ret < 0)
		return ret;
	va_start(ap, types);
	ret = bind_va(*out, types, ap);
	va_end(ap);
	if (ret < 0) {
		cas__db_finalize(*out);
		*out = NULL;
	}
	return ret;
}

int cas__db_run(struct cas__db *db, const char *sql, const char *types, ...)
{
	struct cas__stmt *s = NULL;
	va_list ap;
	int ret;

	ret = cas__db_prepare(db, sql, &s);
	if (ret < 0)
		return ret;
	va_start(ap, types);
	ret = bind_va(s, types, ap);
	va_end(ap);
	while (ret == 0 && (ret = cas__db_step(s)) == 1)
		ret = 0; /* rows (a RETURNING) are not wanted here */
	cas__db_finalize(s);
	return ret;
}

int cas__db_begin(struct cas__db *db)
{
	int ret = db->ops->exec(db, db->ops->begin_sql);

	if (ret == 0)
		db->in_tx = true;
	return ret;
}

int cas__db_begin_snapshot(struct cas__db *db)
{
	int ret = db->ops->exec(db, db->ops->snapshot_sql);

	if (ret == 0)
		db->in_tx = true;
	return ret;
}

int cas__db_commit(struct cas__db *db)
{
	int ret = db->ops->exec(db, "COMMIT");

	/* A failed COMMIT leaves the transaction open on SQLite (busy) and
	 * closes it on others: the caller rolls back either way. */
	if (ret == 0)
		db->in_tx = db->in_sp = false;
	return ret;
}

void cas__db_rollback(struct cas__db *db)
{
	(void)db->ops->exec(db, "ROLLBACK");
	db->in_tx = db->in_sp = false;
}

bool cas__db_in_tx(struct cas__db *db)
{
	return db->in_tx;
}

int cas__db_savepoint(struct cas__db *db)
{
	int ret = db->ops->exec(db, "SAVEPOINT req");

	if (ret == 0)
		db->in_sp = true;
	return ret;
}

void cas__db_savepoint_rollback(struct cas__db *db)
{
	(void)db->ops->exec(db, "ROLLBACK TO SAVEPOINT req");
	(void)db->ops->exec(db, "RELEASE SAVEPOINT req");
	db->in_sp = false;
}

int cas__db_savepoint_release(struct cas__db *db)
{
	int ret = db->ops->exec(db, "RELEASE SAVEPOINT req");

	if (ret == 0)
		db->in_sp = false;
	return ret;
}

int cas__db_tx(struct cas__db *db, int (*fn)(struct cas__db *db, void *ctx), void *ctx)
{
	int ret = -EAGAIN;

	for (int i = 0; i < CAS_DB_TX_TRIES && ret == -EAGAIN; i++) {
		ret = cas__db_begin(db);
		if (ret == 0)
			ret = fn(db, ctx);
		if (ret == 0)
			ret = cas__db_commit(db);
		if (ret < 0 && db->in_tx)
			cas__db_rollback(db);
	}
	return ret;
}
