/* kiln cas export-store / import-store: copy a whole store between databases
 * (SQLite <-> PostgreSQL, SQLite -> SQLite), row for row.
 *
 * Store to store, no dump file: nothing new to parse. Rows are copied as they
 * are: secrets and volume keys stay sealed under the master key (never
 * decrypted here), the audit chain keeps its hashes and CA signatures, so
 * `kiln audit verify` on the copy gives the same head. What makes that
 * correct is checked first:
 *   - the source is read in one snapshot (a CAS may keep serving it);
 *   - its schema is this kiln's version (else: migrate it first);
 *   - its meta key_check / ca_check are those of the master key and CA of
 *     the data dir given (the key is never taken from the source);
 *   - it holds no table this kiln does not know, and each known table has the
 *     columns copied (a later migration that adds one must add it here);
 *   - the target is empty: a new SQLite file, or a database with no store
 *     rows (a `kiln cas serve` started on it once leaves only the key checks).
 * The target is written in one transaction: a failure half-way leaves it as
 * it was. A SQLite target is built as FILE.import and renamed into place
 * after its COMMIT, so a failure leaves no file either. */
#include "cas/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every table of CAS_SCHEMA_VERSION but schema_version, in an order that
 * satisfies no constraint in particular (there are no foreign keys); the
 * types as cas__db_query's letters ('b' blob, 'i' integer, 't' text). */
static const struct table {
	const char *name, *cols, *types;
} g_tables[] = {
	{ "meta", "k, v", "tb" },
	{ "policies", "name, hash, yaml, canonical, owner, version, updated", "tttttii" },
	{ "secrets", "session, name, spec, value", "tttb" },
	{ "volumes", "id, session, name, key, committed, prepared", "tttbii" },
	{ "las_trust", "id, pem, added", "tti" },
	{ "tee_trust", "id, tee, data, added", "ttti" },
	{ "namespaces", "name, owners, added", "tti" },
	{ "proposals", "name, hash, predecessor, yaml, proposer, created, expires, approvals, "
	  "id, action", "tttttiittt" },
	{ "spent_approvals", "digest, not_after", "ti" },
	{ "audit", "seq, time, kind, actor, subject, details, prev, hash, sig", "iittttttb" },
	{ "nonces", "nonce, expires", "bi" },
	{ "grants", "spki, session, volumes, created_ns, expires_ns", "bttii" },
};
#define N_TABLES (sizeof(g_tables) / sizeof(g_tables[0]))

/* One end of the copy. */
struct end {
	struct cas__db *db;
	char path[600];   /* SQLite: the final file (kiln.db) */
	char tmp[620];    /* SQLite target: what is written, renamed to path */
	bool sqlite;
};

static bool known(const char *name)
{
	for (size_t i = 0; i < N_TABLES; i++)
		if (!strcmp(g_tables[i].name, name))
			return true;
	return !strcmp(name, "schema_version");
}

/* loc: NULL (the process's store: --store URL or DIR/kiln.db), a PostgreSQL
 * URI or key=value string, or sqlite:DIR (DIR/kiln.db). */
static int end_path(struct end *e, const char *loc, const char *dir, struct kiln_err *err)
{
	const char *url = loc ? loc : cas__store_url();
	const char *sdir = dir;

	if (loc && !strncmp(loc, "sqlite:", 7)) {
		url = NULL;
		sdir = loc + 7;
		if (!*sdir)
			return kiln_err_set(err, -EINVAL, "'sqlite:' needs a data directory "
					    "(sqlite:DIR)");
	} else if (loc && strncmp(loc, "postgresql://", 13) && strncmp(loc, "postgres://", 11) &&
		   !strchr(loc, '=')) {
		return kiln_err_set(err, -EINVAL, "'%s' is no store: expected sqlite:DIR or a "
				    "PostgreSQL connection URI (postgresql://...)", loc);
	}
	e->sqlite = !url;
	if (e->sqlite && snprintf(e->path, sizeof(e->path), "%s/kiln.db", sdir) >=
	    (int)sizeof(e->path))
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", sdir);
	/* The URL itself (it may hold a password) is kept out of messages: the
	 * driver's cas__db_where names the database once connected. */
	if (!e->sqlite)
		snprintf(e->path, sizeof(e->path), "%s", url);
	return 0;
}

static int open_source(struct end *e, struct kiln_err *err)
{
	struct stat sb;
	int ret;

	if (e->sqlite && stat(e->path, &sb) < 0)
		return kiln_err_set(err, -ENOENT, "%s: no store to copy", e->path);
	ret = e->sqlite ? cas__db_open_sqlite(e->path, /*readonly=*/true, &e->db, err) :
	      cas__db_open_pg(e->path, &e->db, err);
	if (ret < 0)
		return ret;
	ret = cas__db_begin_snapshot(e->db);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s", cas__db_err(e->db)->msg);
	return 0;
}

static int open_target(struct end *e, struct kiln_err *err)
{
	struct stat sb;
	int ret;

	if (e->sqlite) {
		char *slash;

		if (lstat(e->path, &sb) == 0)
			return kiln_err_set(err, -EEXIST, "%s exists: the target must be a new "
					    "store (move the file away, or copy into another "
					    "directory)", e->path);
		snprintf(e->tmp, sizeof(e->tmp), "%s.import", e->path);
		slash = strrchr(e->path, '/');
		*slash = '\0';
		ret = kiln_mkdir_p(e->path, 0700);
		*slash = '/';
		if (ret < 0)
			return kiln_err_set(err, ret, "%s: %s", e->path, kiln_strerror(ret));
		/* A FILE.import left by a crashed copy is ours to replace. */
		unlink(e->tmp);
		ret = cas__db_open_sqlite(e->tmp, /*readonly=*/false, &e->db, err);
	} else {
		ret = cas__db_open_pg(e->path, &e->db, err);
	}
	if (ret < 0)
		return ret;
	ret = cas__db_begin(e->db);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s", cas__db_err(e->db)->msg);
	return 0;
}

static void end_close(struct end *e, bool keep)
{
	char aux[640];

	cas__db_close(e->db);
	e->db = NULL;
	if (!*e->tmp || keep)
		return;
	unlink(e->tmp);
	snprintf(aux, sizeof(aux), "%s-wal", e->tmp);
	unlink(aux);
	snprintf(aux, sizeof(aux), "%s-shm", e->tmp);
	unlink(aux);
}

static int64_t count_rows(struct cas__db *db, const char *sql, int *rc)
{
	struct cas__stmt *s = NULL;
	int64_t n = 0;

	*rc = cas__db_query(db, &s, sql, "");
	if (*rc == 0)
		*rc = cas__db_step(s);
	if (*rc == 1) {
		n = cas__db_col_int64(s, 0);
		*rc = 0;
	} else if (*rc == 0) {
		*rc = -EIO;
	}
	cas__db_finalize(s);
	return n;
}

/* The source is a store of this kiln's schema, under our master key and CA,
 * with no table or column we would leave behind. */
static int check_source(struct end *src, const struct cas__store *keys, struct kiln_err *err)
{
	static const char *const checks[2] = { "key_check", "ca_check" };
	uint8_t want[2][KC_SHA256_SIZE];
	struct cas__stmt *s = NULL;
	const char *where = cas__db_where(src->db);
	int version = 0, ret, rc;

	ret = cas__schema_version(src->db, &version);
	if (ret < 0 && ret != -KILN_ECORRUPT)
		return kiln_err_set(err, -KILN_EFORMAT, "%s holds no versioned kiln store (no "
				    "schema_version table): run 'kiln cas migrate' on it first",
				    where);
	if (ret < 0 || version != CAS_SCHEMA_VERSION)
		return kiln_err_set(err, -KILN_EFORMAT, "%s is at schema version %d, this kiln "
				    "copies version %d: %s", where, version, CAS_SCHEMA_VERSION,
				    version < CAS_SCHEMA_VERSION ? "run 'kiln cas migrate' on it "
				    "first" : "use the kiln that made it");
	if (cas__store_key_checks(keys, want[0], want[1]) < 0)
		return kiln_err_set(err, -KILN_ECRYPTO, "cannot hash the master key or CA");
	for (int i = 0; i < 2; i++) {
		size_t n = 0;
		const uint8_t *v;

		ret = cas__db_query(src->db, &s, "SELECT v FROM meta WHERE k = ?", "t", checks[i]);
		rc = ret < 0 ? ret : cas__db_step(s);
		v = rc == 1 ? cas__db_col_blob(s, 0, &n) : NULL;
		ret = rc < 0 ? kiln_err_set(err, rc, "%s", cas__db_err(src->db)->msg) :
		      rc == 0 ? kiln_err_set(err, -KILN_EFORMAT, "%s holds no kiln store (no %s "
					     "in meta)", where, checks[i]) :
		      n == KC_SHA256_SIZE && kiln_ct_equal(v, want[i], n) ? 0 :
		      i == 0 ? kiln_err_set(err, -KILN_EKEY, "%s is not the master key of %s (its "
					    "secrets are sealed under another key; give the "
					    "store's key with --master-key-file or its --data "
					    "DIR)", keys->master_path, where) :
		      kiln_err_set(err, -KILN_EKEY, "%s/ca.pem is not the CA of %s (its audit log "
				   "is signed by another CA; use the store's data directory)",
				   keys->dir, where);
		cas__db_finalize(s);
		s = NULL;
		if (ret < 0)
			return ret;
	}
	ret = cas__db_query(src->db, &s, src->sqlite ?
			    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
			    "LIKE 'sqlite\\_%' ESCAPE '\\'" :
			    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
			    "");
	while (ret == 0 && (rc = cas__db_step(s)) == 1)
		if (!known(cas__db_col_text(s, 0)))
			ret = kiln_err_set(err, -KILN_EFORMAT, "%s has a table '%s' this kiln does "
					   "not know: refusing to copy the store without it",
					   where, cas__db_col_text(s, 0));
	if (ret == 0 && rc < 0)
		ret = kiln_err_set(err, rc, "%s", cas__db_err(src->db)->msg);
	cas__db_finalize(s);
	s = NULL;
	for (size_t t = 0; ret == 0 && t < N_TABLES; t++) {
		int64_t have = 0, copied = (int64_t)strlen(g_tables[t].types);

		ret = cas__db_query(src->db, &s, src->sqlite ?
				    "SELECT count(*) FROM pragma_table_info(?)" :
				    "SELECT count(*) FROM information_schema.columns WHERE "
				    "table_schema = current_schema() AND table_name = ?", "t",
				    g_tables[t].name);
		rc = ret < 0 ? ret : cas__db_step(s);
		if (rc == 1)
			have = cas__db_col_int64(s, 0);
		if (rc < 0)
			ret = kiln_err_set(err, rc, "%s", cas__db_err(src->db)->msg);
		else if (have != copied)
			ret = kiln_err_set(err, -KILN_EFORMAT, "%s: table %s has %lld columns, this "
					   "kiln copies %lld: refusing to copy part of it", where,
					   g_tables[t].name, (long long)have, (long long)copied);
		cas__db_finalize(s);
		s = NULL;
	}
	return ret;
}

/* In the target's transaction: its tables at this kiln's version and empty
 * but for the key checks a `kiln cas serve` writes on its first start. */
static int prepare_target(struct end *dst, struct kiln_err *err)
{
	const char *where = cas__db_where(dst->db);
	char sql[200];
	int from = 0, to = 0, ret, rc = 0;

	ret = cas__schema_upgrade_in_tx(dst->db, &from, &to);
	if (ret == 0 && from != 0 && from != to)
		ret = -KILN_EFORMAT;
	if (ret == -KILN_EFORMAT)
		return kiln_err_set(err, ret, "the target %s is at schema version %d, this kiln's "
				    "is %d: run 'kiln cas migrate' on it first (or copy into an "
				    "empty database)", where, from, CAS_SCHEMA_VERSION);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: %s", where, cas__db_err(dst->db)->msg);
	for (size_t t = 0; t < N_TABLES; t++) {
		int64_t n;

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s%s", g_tables[t].name,
			 t == 0 ? " WHERE k NOT IN ('key_check', 'ca_check')" : "");
		n = count_rows(dst->db, sql, &rc);
		if (rc < 0)
			return kiln_err_set(err, rc, "%s", cas__db_err(dst->db)->msg);
		if (n > 0)
			return kiln_err_set(err, -EEXIST, "the target %s is not empty (table %s "
					    "has %lld rows): a store is copied only into an empty "
					    "one", where, g_tables[t].name, (long long)n);
	}
	/* The key checks come from the source (the same values when the target
	 * was made with this master key and CA; replaced when it was not). */
	rc = cas__db_run(dst->db, "DELETE FROM meta", "");
	return rc < 0 ? kiln_err_set(err, rc, "%s", cas__db_err(dst->db)->msg) : 0;
}

static int copy_table(struct end *src, struct end *dst, const struct table *t, int64_t *rows,
		      struct kiln_err *err)
{
	char sel[300], ins[400];
	struct cas__stmt *s = NULL, *w = NULL;
	size_t n = strlen(t->types);
	int ret, rc, len;

	*rows = 0;
	snprintf(sel, sizeof(sel), "SELECT %s FROM %s", t->cols, t->name);
	len = snprintf(ins, sizeof(ins), "INSERT INTO %s(%s) VALUES(", t->name, t->cols);
	for (size_t i = 0; i < n; i++)
		len += snprintf(ins + len, sizeof(ins) - (size_t)len, i ? ",?" : "?");
	snprintf(ins + len, sizeof(ins) - (size_t)len, ")");
	ret = cas__db_query(src->db, &s, sel, "");
	if (ret < 0)
		return kiln_err_set(err, ret, "%s", cas__db_err(src->db)->msg);
	while ((rc = cas__db_step(s)) == 1) {
		ret = cas__db_prepare(dst->db, ins, &w);
		for (size_t i = 0; ret == 0 && i < n; i++) {
			int c = (int)i;
			size_t size = 0;
			const uint8_t *b;

			if (cas__db_col_null(s, c)) {
				cas__db_bind_null(w, c + 1);
			} else if (t->types[i] == 'i') {
				cas__db_bind_int64(w, c + 1, cas__db_col_int64(s, c));
			} else if (t->types[i] == 't') {
				cas__db_bind_text(w, c + 1, cas__db_col_text(s, c));
			} else {
				b = cas__db_col_blob(s, c, &size);
				cas__db_bind_blob(w, c + 1, b ? b : (const uint8_t *)"", size);
			}
		}
		if (ret == 0)
			ret = cas__db_step(w);
		cas__db_finalize(w);
		w = NULL;
		if (ret < 0) {
			ret = kiln_err_set(err, ret, "%s", cas__db_err(dst->db)->msg);
			goto out;
		}
		++*rows;
	}
	ret = rc < 0 ? kiln_err_set(err, rc, "%s", cas__db_err(src->db)->msg) : 0;
out:
	cas__db_finalize(s);
	return ret;
}

/* Make the SQLite copy the store: FILE.import closed (its WAL folded in by
 * the close), synced, renamed to FILE, the directory synced. */
static int publish(struct end *dst, struct kiln_err *err)
{
	char dir[600], *slash;
	int fd, ret = 0;

	cas__db_close(dst->db);
	dst->db = NULL;
	fd = open(dst->tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	if (ret == 0 && link(dst->tmp, dst->path) < 0)
		ret = -errno; /* never rename over a kiln.db made meanwhile */
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: %s", ret == -EEXIST ? dst->path : dst->tmp,
				    ret == -EEXIST ? "appeared during the copy: left alone" :
				    kiln_strerror(ret));
	unlink(dst->tmp);
	snprintf(dir, sizeof(dir), "%s", dst->path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	*dst->tmp = '\0';
	return 0;
}

int cas_store_copy(const char *data_dir, const char *from, const char *to,
		   void (*progress)(void *ctx, const char *table, int64_t rows), void *ctx,
		   struct cas_copy_result *res, struct kiln_err *err)
{
	struct end src = { 0 }, dst = { 0 };
	struct cas__store keys;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = cas__store_load_keys(&keys, data_dir, err);
	if (ret == 0)
		ret = end_path(&src, from, data_dir, err);
	if (ret == 0)
		ret = end_path(&dst, to, data_dir, err);
	if (ret == 0 && src.sqlite && dst.sqlite && !strcmp(src.path, dst.path))
		ret = kiln_err_set(err, -EINVAL, "the source and the target are both %s",
				   src.path);
	if (ret == 0)
		ret = open_source(&src, err);
	if (ret == 0)
		ret = check_source(&src, &keys, err);
	if (ret == 0)
		ret = open_target(&dst, err);
	if (ret == 0)
		ret = prepare_target(&dst, err);
	if (ret < 0)
		goto out;
	snprintf(res->from, sizeof(res->from), "%s", cas__db_where(src.db));
	snprintf(res->to, sizeof(res->to), "%s", dst.sqlite ? dst.path : cas__db_where(dst.db));
	for (size_t t = 0; t < N_TABLES; t++) {
		int64_t rows = 0;

		ret = copy_table(&src, &dst, &g_tables[t], &rows, err);
		if (ret < 0)
			goto out;
		res->rows += rows;
		res->tables++;
		if (progress)
			progress(ctx, g_tables[t].name, rows);
	}
	ret = cas__db_commit(dst.db);
	if (ret < 0) {
		ret = kiln_err_set(err, ret, "%s", cas__db_err(dst.db)->msg);
		goto out;
	}
	if (dst.sqlite)
		ret = publish(&dst, err);
out:
	if (ret < 0 && dst.db)
		cas__db_rollback(dst.db);
	if (src.db)
		cas__db_rollback(src.db);
	end_close(&src, true);
	end_close(&dst, false);
	cas__store_close(&keys);
	if (ret < 0)
		kiln_err_prefix(err, "nothing copied (the target is unchanged): ");
	return ret;
}
