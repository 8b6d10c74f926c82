/* What a backend of the SQL layer (db.h) provides: db_sqlite.c, later others.
 * Only db.c and the drivers include this. */
#ifndef KILN_CAS_DB_DRIVER_H
#define KILN_CAS_DB_DRIVER_H

#include "cas/db.h"

struct cas__db_ops {
	const char *name;
	const char *begin_sql; /* the BEGIN that takes the write lock / isolation */
	const char *snapshot_sql; /* a read-only transaction on one snapshot */
	void (*close)(struct cas__db *db);
	int (*exec)(struct cas__db *db, const char *sql);
	int (*session)(struct cas__db *db, const char *sql); /* NULL: exec once */
	int (*prepare)(struct cas__db *db, const char *sql, struct cas__stmt **out);
	int (*bind_int64)(struct cas__stmt *s, int i, int64_t v);
	int (*bind_text)(struct cas__stmt *s, int i, const char *v);
	int (*bind_blob)(struct cas__stmt *s, int i, const void *v, size_t size);
	int (*bind_null)(struct cas__stmt *s, int i);
	/* 1 row, 0 done, negative as in db.h (the driver sets db->err) */
	int (*step)(struct cas__stmt *s);
	int64_t (*col_int64)(struct cas__stmt *s, int i);
	const char *(*col_text)(struct cas__stmt *s, int i); /* NULL for SQL NULL */
	const uint8_t *(*col_blob)(struct cas__stmt *s, int i, size_t *size);
	bool (*col_null)(struct cas__stmt *s, int i);
	void (*finalize)(struct cas__stmt *s);
};

/* The common head of every driver's connection and statement. */
struct cas__db {
	const struct cas__db_ops *ops;
	struct kiln_err err;  /* the last failure */
	int64_t changes;      /* rows changed by the last step (set by the driver) */
	bool in_tx, in_sp;    /* a transaction, a savepoint inside it are open */
	char where[200];      /* cas__db_where */
};

struct cas__stmt {
	struct cas__db *db;
	const char *sql;      /* the caller's text (a literal): for messages */
	int bind_rc;          /* the first bind failure, reported by the step */
};

/* Record a failure of sql (may be NULL) on db: "store: <sql>: <why>". */
int cas__db_fail(struct cas__db *db, int code, const char *sql, const char *why);

/* Fill fns[i] with names[i] of the library soname (dlopen), once: *bound is
 * set when every one was found (db_dl.c). 0, or -ENOENT with err set. */
int cas__db_dl_bind(const char *soname, const char *const *names, void **fns, size_t n,
		    bool *bound, struct kiln_err *err);

/* A driver's table of a library's functions, FUNCS(X) naming each one as
 * X(name): pointers of the functions' own types (the compiler checks every
 * call), filled by CAS_DB_DL_BIND. */
#define CAS_DB_DL_PTR(f) __typeof__(f) *f;
#define CAS_DB_DL_NAME(f) #f,
#define CAS_DB_DL_TABLE(tab, FUNCS)                                                      \
	struct tab##_fns { FUNCS(CAS_DB_DL_PTR) };                                       \
	static union {                                                                   \
		struct tab##_fns f;                                                      \
		void *v[sizeof(struct tab##_fns) / sizeof(void *)];                      \
	} tab;                                                                           \
	static const char *const tab##_names[] = { FUNCS(CAS_DB_DL_NAME) };              \
	_Static_assert(sizeof(tab##_names) / sizeof(char *) == sizeof(tab.v) / sizeof(void *), \
		       "one name per pointer");                                          \
	static bool tab##_bound
#define CAS_DB_DL_BIND(soname, tab, err)                                                 \
	cas__db_dl_bind(soname, tab##_names, tab.v, sizeof(tab.v) / sizeof(void *),     \
			&tab##_bound, err)

#endif
