/* The PostgreSQL driver of the SQL layer (db.h), over libpq.
 *
 * The callers' dialect is translated here: `?` becomes `$1`, `$2`, ... (outside
 * quoted literals); in DDL, BLOB becomes BYTEA and INTEGER BIGINT (the store's
 * integers are 64-bit). Parameters go as text, blobs in binary; results come
 * in binary, read by their column type.
 *
 * Transactions take one advisory lock of the store (pg_advisory_xact_lock) at
 * BEGIN: writers of every CAS process sharing the database run one at a time,
 * as on SQLite (BEGIN IMMEDIATE), so a predecessor check, a volume tag update,
 * an approval and the audit chain's append read what the previous writer
 * committed (READ COMMITTED: each statement sees every commit before it), and
 * the chain is appended in one order with no fork.
 *
 * A lost connection (the server restarted, failed over, or dropped us) is made
 * again at the next statement outside a transaction: a BEGIN or a SELECT that
 * finds it lost is run once more on a new connection (neither has changed
 * anything). Inside a transaction the transaction is gone with the connection:
 * -EAGAIN, nothing of it was committed, the caller may run it again (a COMMIT
 * not yet sent is the same). A COMMIT sent whose answer was lost is reported
 * as unknown (-EIO), never guessed; so is any other write outside a
 * transaction. */
#include "cas/db_driver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpq.so.5, loaded at the first open (db_dl.c). */
#define PG_FUNCS(X) \
	X(PQclear) \
	X(PQcmdStatus) \
	X(PQcmdTuples) \
	X(PQconnectdb) \
	X(PQdb) \
	X(PQerrorMessage) \
	X(PQexec) \
	X(PQexecParams) \
	X(PQfinish) \
	X(PQftype) \
	X(PQgetisnull) \
	X(PQgetlength) \
	X(PQgetvalue) \
	X(PQhost) \
	X(PQnfields) \
	X(PQntuples) \
	X(PQport) \
	X(PQresultErrorField) \
	X(PQresultErrorMessage) \
	X(PQresultStatus) \
	X(PQsetNoticeProcessor) \
	X(PQstatus)
CAS_DB_DL_TABLE(g_pq, PG_FUNCS);
/* The calls below go through the table. */
#define PQclear(...) (g_pq.f.PQclear(__VA_ARGS__))
#define PQcmdStatus(...) (g_pq.f.PQcmdStatus(__VA_ARGS__))
#define PQcmdTuples(...) (g_pq.f.PQcmdTuples(__VA_ARGS__))
#define PQconnectdb(...) (g_pq.f.PQconnectdb(__VA_ARGS__))
#define PQdb(...) (g_pq.f.PQdb(__VA_ARGS__))
#define PQerrorMessage(...) (g_pq.f.PQerrorMessage(__VA_ARGS__))
#define PQexec(...) (g_pq.f.PQexec(__VA_ARGS__))
#define PQexecParams(...) (g_pq.f.PQexecParams(__VA_ARGS__))
#define PQfinish(...) (g_pq.f.PQfinish(__VA_ARGS__))
#define PQftype(...) (g_pq.f.PQftype(__VA_ARGS__))
#define PQgetisnull(...) (g_pq.f.PQgetisnull(__VA_ARGS__))
#define PQgetlength(...) (g_pq.f.PQgetlength(__VA_ARGS__))
#define PQgetvalue(...) (g_pq.f.PQgetvalue(__VA_ARGS__))
#define PQhost(...) (g_pq.f.PQhost(__VA_ARGS__))
#define PQnfields(...) (g_pq.f.PQnfields(__VA_ARGS__))
#define PQntuples(...) (g_pq.f.PQntuples(__VA_ARGS__))
#define PQport(...) (g_pq.f.PQport(__VA_ARGS__))
#define PQresultErrorField(...) (g_pq.f.PQresultErrorField(__VA_ARGS__))
#define PQresultErrorMessage(...) (g_pq.f.PQresultErrorMessage(__VA_ARGS__))
#define PQresultStatus(...) (g_pq.f.PQresultStatus(__VA_ARGS__))
#define PQsetNoticeProcessor(...) (g_pq.f.PQsetNoticeProcessor(__VA_ARGS__))
#define PQstatus(...) (g_pq.f.PQstatus(__VA_ARGS__))

/* Type OIDs (pg_type.h, stable across releases). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23

#define PG_MAX_PARAMS 16

/* The advisory lock key of the store's writers ("kiln" in ASCII). */
#define PG_STORE_LOCK "1802071150"

struct pg_db {
	struct cas__db base;
	PGconn *conn;
	char *conninfo; /* owned; may hold a password: never logged */
	char *session;  /* owned, NULL: cas__db_session's SQL, run at every connect */
};

struct pg_stmt {
	struct cas__stmt base;
	char *sql;               /* translated, owned */
	int n_params;
	const char *values[PG_MAX_PARAMS];
	int lengths[PG_MAX_PARAMS];
	int formats[PG_MAX_PARAMS];
	char ints[PG_MAX_PARAMS][24];
	PGresult *res;           /* of the execution, owned */
	int row, n_rows;
};

static struct pg_db *pgdb(struct cas__db *db)
{
	return (struct pg_db *)db;
}

static struct pg_stmt *pgst(struct cas__stmt *s)
{
	return (struct pg_stmt *)s;
}

/* The first line of libpq's message (it ends in a newline, may have a DETAIL). */
static const char *first_line(const char *msg, char *buf, size_t size)
{
	size_t n = strcspn(msg, "\n");

	snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), msg);
	return buf;
}

/* The server's notices ("relation ... already exists, skipping") are not the
 * CAS's to print: the runtime and the service stay quiet. */
static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Connect (again). */
static int pg_connect(struct pg_db *db)
{
	char line[256];

	if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
		return 0;
	PQfinish(db->conn);
	db->conn = PQconnectdb(db->conninfo);
	if (!db->conn)
		return cas__db_fail(&db->base, -ENOMEM, NULL, "out of memory");
	if (PQstatus(db->conn) != CONNECTION_OK)
		return cas__db_fail(&db->base, -ECONNREFUSED, NULL,
				    first_line(PQerrorMessage(db->conn), line, sizeof(line)));
	/* The store's text is UTF-8 and its times are seconds: no server
	 * setting may change what a statement means. */
	PQsetNoticeProcessor(db->conn, quiet, NULL);
	PQclear(PQexec(db->conn, "SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'; "
		       "SET client_min_messages = warning"));
	if (db->session) {
		PGresult *res = PQexec(db->conn, db->session);
		int ret = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 :
			  cas__db_fail(&db->base, -EIO, db->session,
				       first_line(PQresultErrorMessage(res), line, sizeof(line)));

		PQclear(res);
		return ret;
	}
	return 0;
}

/* The layer's code for a failed result (or none: the connection). */
static int code_of(struct pg_db *db, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(db->conn) != CONNECTION_OK)
		return -ECONNRESET;
	if (!state)
		return -EIO;
	if (!strncmp(state, "23", 2))        /* integrity constraint violation */
		return -EEXIST;
	if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
		return -EAGAIN;               /* serialization failure, deadlock */
	if (!strncmp(state, "08", 2))        /* connection exception */
		return -ECONNRESET;
	return -EIO;
}

static int fail_res(struct pg_db *db, const char *sql, PGresult *res)
{
	char line[256];
	int code = code_of(db, res);
	const char *why = first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn),
				     line, sizeof(line));

	if (code == -ECONNRESET) {
		/* Inside a transaction nothing of it was committed: the caller may
		 * run it again from BEGIN. A COMMIT's fate is not known. Outside,
		 * the caller may retry what changed nothing (-ECONNRESET). */
		bool commit = sql && !strncmp(sql, "COMMIT", 6);

		code = commit ? -EIO : db->base.in_tx ? -EAGAIN : -ECONNRESET;
		cas__db_fail(&db->base, code, sql, commit ? "connection lost: the outcome of the "
			     "COMMIT is unknown" : why[0] ? why : "connection lost");
		return code;
	}
	return cas__db_fail(&db->base, code, sql, why[0] ? why : "failed");
}

static bool word_at(const char *s, const char *word)
{
	size_t n = strlen(word);

	return !strncmp(s, word, n) && !isalnum((unsigned char)s[n]) && s[n] != '_';
}

/* Rewrite the callers' dialect for PostgreSQL: malloc'd, NULL when out of
 * memory; *n_params gets the number of `?`. */
static char *translate(const char *sql, int *n_params)
{
	size_t len = strlen(sql), cap = len * 2 + 16, o = 0;
	char *out = malloc(cap);
	bool quoted = false;
	int n = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char c = sql[i];

		if (o + 16 >= cap) {
			char *p = realloc(out, cap *= 2);

			if (!p) {
				free(out);
				return NULL;
			}
			out = p;
		}
		if (c == '\'')
			quoted = !quoted;
		if (!quoted && c == '?') {
			o += (size_t)snprintf(out + o, cap - o, "$%d", ++n);
			continue;
		}
		/* DDL types: whole words only. */
		if (!quoted && (i == 0 || sql[i - 1] == ' ')) {
			if (word_at(sql + i, "BLOB")) {
				memcpy(out + o, "BYTEA", 5);
				o += 5;
				i += 3;
				continue;
			}
			if (word_at(sql + i, "INTEGER")) {
				memcpy(out + o, "BIGINT", 6);
				o += 6;
				i += 6;
				continue;
			}
		}
		out[o++] = c;
	}
	out[o] = 0;
	*n_params = n;
	return out;
}

static int pg_session(struct cas__db *db, const char *sql)
{
	struct pg_db *p = pgdb(db);
	char *copy = strdup(sql);

	if (!copy)
		return cas__db_fail(db, -ENOMEM, sql, "out of memory");
	free(p->session);
	p->session = copy;
	/* Connected: run it now; else the next connect does. */
	if (PQstatus(p->conn) == CONNECTION_OK) {
		PQfinish(p->conn);
		p->conn = NULL;
	}
	return pg_connect(p);
}

static void pg_close(struct cas__db *db)
{
	free(pgdb(db)->session);
	PQfinish(pgdb(db)->conn);
	if (pgdb(db)->conninfo)
		kiln_wipe(pgdb(db)->conninfo, strlen(pgdb(db)->conninfo));
	free(pgdb(db)->conninfo);
	free(db);
}

/* Changes nothing: may be run again on a new connection. */
static bool harmless(const char *sql)
{
	return !strncmp(sql, "BEGIN", 5) || !strncmp(sql, "SELECT", 6);
}

static int pg_exec(struct cas__db *db, const char *sql)
{
	struct pg_db *p = pgdb(db);
	PGresult *res;
	char *text;
	int n, ret = 0;

	if (db->in_tx && PQstatus(p->conn) != CONNECTION_OK)
		/* Known lost before this statement went out: the server rolled the
		 * transaction back, even for a COMMIT not sent. */
		return cas__db_fail(db, -EAGAIN, sql, "connection lost: the transaction was "
				    "rolled back");
	text = translate(sql, &n);
	if (!text)
		return cas__db_fail(db, -ENOMEM, sql, "out of memory");
	for (int tries = 0; tries < 2; tries++) {
		/* Outside a transaction a lost connection is made again. */
		if (!db->in_tx && (ret = pg_connect(p)) < 0)
			break;
		res = PQexec(p->conn, text);
		ret = PQresultStatus(res) == PGRES_COMMAND_OK ||
		      PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : fail_res(p, sql, res);
		/* A COMMIT of a transaction a failed statement aborted succeeds as a
		 * ROLLBACK: nothing was committed, and the caller must not answer as
		 * if it were. */
		if (ret == 0 && !strncmp(sql, "COMMIT", 6) && !strcmp(PQcmdStatus(res), "ROLLBACK"))
			ret = cas__db_fail(db, -EAGAIN, sql, "the transaction had failed and was "
					   "rolled back");
		PQclear(res);
		if (ret != -ECONNRESET || !harmless(sql))
			break;
	}
	free(text);
	return ret == -ECONNRESET ? -EIO : ret;
}

static int pg_prepare(struct cas__db *db, const char *sql, struct cas__stmt **out)
{
	struct pg_stmt *s = calloc(1, sizeof(*s));

	if (!s)
		return cas__db_fail(db, -ENOMEM, sql, "out of memory");
	s->sql = translate(sql, &s->n_params);
	if (!s->sql) {
		free(s);
		return cas__db_fail(db, -ENOMEM, sql, "out of memory");
	}
	if (s->n_params > PG_MAX_PARAMS) {
		free(s->sql);
		free(s);
		return cas__db_fail(db, -E2BIG, sql, "too many parameters");
	}
	*out = &s->base;
	return 0;
}

static int param(struct cas__stmt *s, int i)
{
	return i >= 1 && i <= pgst(s)->n_params ? i - 1 : -1;
}

static int pg_bind_int64(struct cas__stmt *s, int i, int64_t v)
{
	struct pg_stmt *p = pgst(s);
	int k = param(s, i);

	if (k < 0)
		return -ERANGE;
	snprintf(p->ints[k], sizeof(p->ints[k]), "%lld", (long long)v);
	p->values[k] = p->ints[k];
	p->lengths[k] = 0;
	p->formats[k] = 0;
	return 0;
}

static int pg_bind_text(struct cas__stmt *s, int i, const char *v)
{
	struct pg_stmt *p = pgst(s);
	int k = param(s, i);

	if (k < 0)
		return -ERANGE;
	p->values[k] = v;
	p->lengths[k] = 0;
	p->formats[k] = 0;
	return 0;
}

static int pg_bind_blob(struct cas__stmt *s, int i, const void *v, size_t size)
{
	struct pg_stmt *p = pgst(s);
	int k = param(s, i);

	if (k < 0)
		return -ERANGE;
	if (size > INT32_MAX)
		return -E2BIG;
	p->values[k] = v ? v : "";
	p->lengths[k] = (int)size;
	p->formats[k] = 1;
	return 0;
}

static int pg_bind_null(struct cas__stmt *s, int i)
{
	struct pg_stmt *p = pgst(s);
	int k = param(s, i);

	if (k < 0)
		return -ERANGE;
	p->values[k] = NULL;
	p->lengths[k] = 0;
	p->formats[k] = 0;
	return 0;
}

static int pg_step(struct cas__stmt *s)
{
	struct pg_stmt *p = pgst(s);
	struct pg_db *db = pgdb(s->db);
	ExecStatusType st;
	int ret;

	if (p->res) {
		if (++p->row < p->n_rows)
			return 1;
		return 0;
	}
	if (s->db->in_tx && PQstatus(db->conn) != CONNECTION_OK)
		return cas__db_fail(s->db, -EAGAIN, s->sql, "connection lost: the transaction "
				    "was rolled back");
	for (int tries = 0;; tries++) {
		/* Outside a transaction a lost connection is made again. */
		if (!s->db->in_tx && (ret = pg_connect(db)) < 0)
			return ret;
		p->res = PQexecParams(db->conn, p->sql, p->n_params, NULL, p->values, p->lengths,
				      p->formats, /*resultFormat=binary*/1);
		st = PQresultStatus(p->res);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
			break;
		ret = fail_res(db, s->sql, p->res);
		PQclear(p->res);
		p->res = NULL;
		if (ret != -ECONNRESET || tries || !harmless(s->sql))
			return ret == -ECONNRESET ? -EIO : ret;
	}
	if (st == PGRES_TUPLES_OK) {
		p->n_rows = PQntuples(p->res);
		p->row = 0;
		s->db->changes = atoll(PQcmdTuples(p->res));
		return p->n_rows > 0 ? 1 : 0;
	}
	s->db->changes = atoll(PQcmdTuples(p->res));
	return 0;
}

static bool in_row(struct pg_stmt *p, int i)
{
	return p->res && p->row < p->n_rows && i >= 0 && i < PQnfields(p->res);
}

static bool pg_col_null(struct cas__stmt *s, int i)
{
	struct pg_stmt *p = pgst(s);

	return !in_row(p, i) || PQgetisnull(p->res, p->row, i);
}

static int64_t pg_col_int64(struct cas__stmt *s, int i)
{
	struct pg_stmt *p = pgst(s);
	const char *v;
	int len;

	if (pg_col_null(s, i))
		return 0;
	v = PQgetvalue(p->res, p->row, i);
	len = PQgetlength(p->res, p->row, i);
	switch (PQftype(p->res, i)) {
	case OID_INT8:
		if (len == 8) {
			uint64_t u;

			memcpy(&u, v, 8);
			return (int64_t)be64toh(u);
		}
		return 0;
	case OID_INT4:
		if (len == 4) {
			uint32_t u;

			memcpy(&u, v, 4);
			return (int32_t)ntohl(u);
		}
		return 0;
	case OID_INT2:
		if (len == 2) {
			uint16_t u;

			memcpy(&u, v, 2);
			return (int16_t)ntohs(u);
		}
		return 0;
	default:
		return 0;
	}
}

static const char *pg_col_text(struct cas__stmt *s, int i)
{
	struct pg_stmt *p = pgst(s);

	/* Binary text is the text itself; libpq ends every value with a NUL. */
	if (pg_col_null(s, i))
		return NULL;
	return PQgetvalue(p->res, p->row, i);
}

static const uint8_t *pg_col_blob(struct cas__stmt *s, int i, size_t *size)
{
	struct pg_stmt *p = pgst(s);

	*size = 0;
	if (pg_col_null(s, i))
		return NULL;
	*size = (size_t)PQgetlength(p->res, p->row, i);
	return (const uint8_t *)PQgetvalue(p->res, p->row, i);
}

static void pg_finalize(struct cas__stmt *s)
{
	PQclear(pgst(s)->res);
	free(pgst(s)->sql);
	free(s);
}

static const struct cas__db_ops g_pg_ops = {
	.name = "postgresql",
	.snapshot_sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	.begin_sql = "BEGIN ISOLATION LEVEL READ COMMITTED; "
		     "SELECT pg_advisory_xact_lock(" PG_STORE_LOCK ")",
	.close = pg_close,
	.exec = pg_exec,
	.session = pg_session,
	.prepare = pg_prepare,
	.bind_int64 = pg_bind_int64,
	.bind_text = pg_bind_text,
	.bind_blob = pg_bind_blob,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.col_int64 = pg_col_int64,
	.col_text = pg_col_text,
	.col_blob = pg_col_blob,
	.col_null = pg_col_null,
	.finalize = pg_finalize,
};

int cas__db_open_pg(const char *conninfo, struct cas__db **out, struct kiln_err *err)
{
	struct pg_db *db = calloc(1, sizeof(*db));
	int ret;

	*out = NULL;
	if (!db)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	ret = CAS_DB_DL_BIND("libpq.so.5", g_pq, err);
	if (ret) {
		free(db);
		kiln_err_prefix(err, "PostgreSQL: ");
		return ret;
	}
	db->base.ops = &g_pg_ops;
	db->conninfo = strdup(conninfo);
	if (!db->conninfo) {
		free(db);
		return kiln_err_set(err, -ENOMEM, "out of memory");
	}
	ret = pg_connect(db);
	if (ret == 0)
		snprintf(db->base.where, sizeof(db->base.where), "PostgreSQL database %s on %s:%s",
			 PQdb(db->conn), PQhost(db->conn), PQport(db->conn));
	if (ret < 0) {
		ret = kiln_err_set(err, ret, "PostgreSQL: %s", db->base.err.msg);
		pg_close(&db->base);
		return ret;
	}
	*out = &db->base;
	return 0;
}
