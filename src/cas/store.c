/* The CAS data directory and its SQLite store.
 *
 * DIR/master.key  32 random bytes, 0600: encrypts secrets and volume keys
 * DIR/ca.key      CA private key (PEM, 0600): issues the server certificate and
 *                 signs the audit log
 * DIR/ca.pem      CA certificate: what clients pin
 * DIR/kiln.db     SQLite, WAL, synchronous=FULL: a write is durable before the
 *                 HTTP answer that acknowledges it
 *
 * A missing or damaged master key or CA key with an existing store is fatal:
 * regenerating either would silently orphan every stored secret. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char g_schema[] =
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

static const char g_key_check_label[] = "kiln-cas master key check v1";

static int path_in(const struct cas__store *st, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", st->dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static int load_master(struct cas__store *st, bool store_exists, bool create,
		       struct kiln_err *err)
{
	char path[600];
	uint8_t *data = NULL;
	size_t size = 0;
	int ret;

	if ((ret = path_in(st, "master.key", path, sizeof(path))) < 0)
		return kiln_err_set(err, ret, "%s: path too long", st->dir);
	if (!exists(path)) {
		if (store_exists || !create)
			return kiln_err_set(err, -ENOENT, "%s is missing but the store %s/kiln.db "
					    "exists: refusing to create a new master key (every "
					    "stored secret would be lost); restore the key file",
					    path, st->dir);
		if (kc_random(st->master, sizeof(st->master)) < 0)
			return kiln_err_set(err, -KILN_ECRYPTO, "no randomness");
		ret = kiln_write_file_atomic(path, st->master, sizeof(st->master), 0600);
		if (ret < 0)
			return kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
		return 0;
	}
	ret = kiln_read_private_file(path, 4096, &data, &size, err);
	if (ret < 0)
		return ret;
	if (size != sizeof(st->master)) {
		kiln_free_secret(data, size);
		return kiln_err_set(err, -KILN_ECORRUPT, "%s is corrupt: %zu bytes, expected %zu",
				    path, size, sizeof(st->master));
	}
	memcpy(st->master, data, sizeof(st->master));
	kiln_free_secret(data, size);
	return 0;
}

static int load_ca(struct cas__store *st, bool store_exists, bool create, struct kiln_err *err)
{
	char kpath[600], cpath[600];
	uint8_t *kdata = NULL;
	size_t ksize = 0;
	BIO *b;
	FILE *f;
	int ret;

	if (path_in(st, "ca.key", kpath, sizeof(kpath)) < 0 ||
	    path_in(st, "ca.pem", cpath, sizeof(cpath)) < 0)
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", st->dir);
	if (!exists(kpath) && !exists(cpath)) {
		char *kpem = NULL, *cpem = NULL;
		size_t ks = 0, csz = 0;

		if (store_exists || !create)
			return kiln_err_set(err, -ENOENT, "%s is missing but the store exists: "
					    "refusing to create a new CA (clients pin the old "
					    "one and the audit log is signed by it)", kpath);
		ret = cas__x509_keygen("p256", &st->ca_key);
		if (ret == 0)
			ret = cas__x509_make_cert(st->ca_key, "kiln-cas CA", 3650, true, NULL,
						  0, NULL, 0, NULL, NULL, &st->ca_cert);
		if (ret == 0)
			ret = cas__x509_key_pem(st->ca_key, true, &kpem, &ks);
		if (ret == 0)
			ret = cas__x509_cert_pem(st->ca_cert, &cpem, &csz);
		if (ret == 0)
			ret = kiln_write_file_atomic(kpath, kpem, ks, 0600);
		if (ret == 0)
			ret = kiln_write_file_atomic(cpath, cpem, csz, 0644);
		if (kpem)
			kiln_free_secret(kpem, ks);
		free(cpem);
		if (ret < 0)
			return kiln_err_set(err, ret, "cannot create the CA in %s: %s", st->dir,
					    kiln_strerror(ret));
		return 0;
	}
	ret = kiln_read_private_file(kpath, 1 << 20, &kdata, &ksize, err);
	if (ret < 0)
		return ret;
	b = BIO_new_mem_buf(kdata, (int)ksize);
	st->ca_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	kiln_free_secret(kdata, ksize);
	f = fopen(cpath, "re");
	if (!f)
		return kiln_err_set(err, -errno, "%s: %s", cpath, strerror(errno));
	st->ca_cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!st->ca_key || !st->ca_cert || X509_check_private_key(st->ca_cert, st->ca_key) != 1)
		return kiln_err_set(err, -KILN_ECORRUPT, "%s or %s is corrupt (or they do not "
				    "match)", kpath, cpath);
	return 0;
}

static int exec_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* Columns added since a table was first made (a store of an older kiln gets
 * them when opened): proposals.id and .action (approvals bound to a proposal
 * instance, proposals of deletes). A proposal from before gets a fresh id. */
static int migrate(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db, "SELECT id, action FROM proposals LIMIT 0", -1, &s,
			       NULL) == SQLITE_OK) {
		sqlite3_finalize(s);
		return 0;
	}
	return exec_sql(db, "ALTER TABLE proposals ADD COLUMN id TEXT NOT NULL DEFAULT '';"
			"ALTER TABLE proposals ADD COLUMN action TEXT NOT NULL DEFAULT 'update';"
			"UPDATE proposals SET id = lower(hex(randomblob(16))) WHERE id = '';");
}

static int check_master(struct cas__store *st, struct kiln_err *err)
{
	uint8_t mac[KC_SHA256_SIZE];
	sqlite3_stmt *s = NULL;
	int ret, rc;

	ret = kc_hmac_sha256(st->master, sizeof(st->master), g_key_check_label,
			     strlen(g_key_check_label), mac);
	if (ret < 0)
		return kiln_err_set(err, ret, "HMAC failed");
	if (sqlite3_prepare_v2(st->db, "SELECT v FROM meta WHERE k = 'key_check'", -1, &s,
			       NULL) != SQLITE_OK)
		return kiln_err_set(err, -EIO, "store: %s", sqlite3_errmsg(st->db));
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(s, 0);
		int n = sqlite3_column_bytes(s, 0);

		if (n != (int)sizeof(mac) || !kiln_ct_equal(v, mac, sizeof(mac)))
			ret = kiln_err_set(err, -KILN_EKEY, "%s/master.key does not belong to "
					   "the store %s/kiln.db (wrong or replaced key file)",
					   st->dir, st->dir);
		sqlite3_finalize(s);
		return ret;
	}
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(st->db, "INSERT INTO meta(k, v) VALUES('key_check', ?)", -1, &s,
			       NULL) != SQLITE_OK)
		return kiln_err_set(err, -EIO, "store: %s", sqlite3_errmsg(st->db));
	sqlite3_bind_blob(s, 1, mac, sizeof(mac), SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return kiln_err_set(err, -EIO, "store: %s", sqlite3_errmsg(st->db));
	return 0;
}

int cas__store_open(struct cas__store *st, const char *dir, bool create, struct kiln_err *err)
{
	char dbpath[600];
	bool store_exists;
	int ret;

	memset(st, 0, sizeof(*st));
	if (snprintf(st->dir, sizeof(st->dir), "%s", dir) >= (int)sizeof(st->dir))
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", dir);
	if (create) {
		ret = kiln_mkdir_p(dir, 0700);
		if (ret < 0)
			return kiln_err_set(err, ret, "%s: %s", dir, kiln_strerror(ret));
	} else if (!exists(dir)) {
		return kiln_err_set(err, -ENOENT, "%s: no such data directory", dir);
	}
	path_in(st, "kiln.db", dbpath, sizeof(dbpath));
	store_exists = exists(dbpath);
	if (!store_exists && !create)
		return kiln_err_set(err, -ENOENT, "%s: no store (start 'kiln cas serve --data "
				    "%s' once)", dbpath, dir);
	ret = load_master(st, store_exists, create, err);
	if (ret < 0)
		goto fail;
	ret = load_ca(st, store_exists, create, err);
	if (ret < 0)
		goto fail;
	if (sqlite3_open_v2(dbpath, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		ret = kiln_err_set(err, -EIO, "%s: %s", dbpath,
				   st->db ? sqlite3_errmsg(st->db) : "cannot open");
		goto fail;
	}
	chmod(dbpath, 0600);
	sqlite3_busy_timeout(st->db, 10000);
	if (exec_sql(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		     "PRAGMA foreign_keys=ON;") < 0 || exec_sql(st->db, g_schema) < 0 ||
	    migrate(st->db) < 0) {
		ret = kiln_err_set(err, -EIO, "%s: %s", dbpath, sqlite3_errmsg(st->db));
		goto fail;
	}
	{
		/* A damaged database file must stop us before we write to it. */
		sqlite3_stmt *s = NULL;
		const char *res = NULL;

		if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL) == SQLITE_OK &&
		    sqlite3_step(s) == SQLITE_ROW)
			res = (const char *)sqlite3_column_text(s, 0);
		if (!res || strcmp(res, "ok")) {
			ret = kiln_err_set(err, -KILN_ECORRUPT, "%s: integrity check failed: %s",
					   dbpath, res ? res : sqlite3_errmsg(st->db));
			sqlite3_finalize(s);
			goto fail;
		}
		sqlite3_finalize(s);
	}
	ret = check_master(st, err);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	cas__store_close(st);
	return ret;
}

int cas__store_open_reader(const struct cas__store *st, struct cas__store *rd, struct kiln_err *err)
{
	char dbpath[600];

	memset(rd, 0, sizeof(*rd));
	snprintf(rd->dir, sizeof(rd->dir), "%s", st->dir);
	path_in(st, "kiln.db", dbpath, sizeof(dbpath));
	if (sqlite3_open_v2(dbpath, &rd->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		int ret = kiln_err_set(err, -EIO, "%s: %s", dbpath,
				       rd->db ? sqlite3_errmsg(rd->db) : "cannot open");

		cas__store_close(rd);
		return ret;
	}
	sqlite3_busy_timeout(rd->db, 10000);
	return 0;
}

void cas__store_close(struct cas__store *st)
{
	cas__polcache_free(st);
	if (st->db)
		sqlite3_close(st->db);
	st->db = NULL;
	EVP_PKEY_free(st->ca_key);
	X509_free(st->ca_cert);
	st->ca_key = NULL;
	st->ca_cert = NULL;
	kiln_wipe(st->master, sizeof(st->master));
}

int cas__store_begin(struct cas__store *st)
{
	return exec_sql(st->db, "BEGIN IMMEDIATE");
}

int cas__store_commit(struct cas__store *st)
{
	return exec_sql(st->db, "COMMIT");
}

void cas__store_rollback(struct cas__store *st)
{
	(void)exec_sql(st->db, "ROLLBACK");
}

static char *col_strdup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return strdup(t ? (const char *)t : "");
}

void cas__policy_free(struct cas__policy *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->hash);
	free(p->yaml);
	free(p->canonical);
	free(p->owner);
	memset(p, 0, sizeof(*p));
}

static int fill_policy(sqlite3_stmt *s, struct cas__policy *out)
{
	out->name = col_strdup(s, 0);
	out->hash = col_strdup(s, 1);
	out->yaml = col_strdup(s, 2);
	out->canonical = col_strdup(s, 3);
	out->owner = col_strdup(s, 4);
	out->version = sqlite3_column_int64(s, 5);
	if (!out->name || !out->hash || !out->yaml || !out->canonical || !out->owner) {
		cas__policy_free(out);
		return -ENOMEM;
	}
	return 0;
}

int cas__policy_get(struct cas__store *st, const char *name, struct cas__policy *out)
{
	sqlite3_stmt *s = NULL;
	int ret = -EIO, rc;

	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(st->db, "SELECT name, hash, yaml, canonical, owner, version "
			       "FROM policies WHERE name = ?", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		ret = fill_policy(s, out);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	sqlite3_finalize(s);
	return ret;
}

int cas__policy_put(struct cas__store *st, const struct cas__policy *p)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO policies(name, hash, yaml, "
			       "canonical, owner, version, updated) VALUES(?,?,?,?,?,?,?)", -1,
			       &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, p->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, p->yaml, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, p->canonical, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, p->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, p->version);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int exec_bind1(struct cas__store *st, const char *sql, const char *arg)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int cas__policy_delete(struct cas__store *st, const char *name)
{
	/* The secrets and volumes go with the policy: a later policy of the same
	 * name (maybe someone else's) must not inherit them. */
	if (exec_bind1(st, "DELETE FROM policies WHERE name = ?", name) < 0 ||
	    exec_bind1(st, "DELETE FROM secrets WHERE session = ?", name) < 0 ||
	    exec_bind1(st, "DELETE FROM volumes WHERE session = ?", name) < 0 ||
	    exec_bind1(st, "DELETE FROM proposals WHERE name = ?", name) < 0)
		return -EIO;
	return 0;
}

int cas__policy_each(struct cas__store *st, int (*cb)(void *, const struct cas__policy *),
		     void *ctx)
{
	sqlite3_stmt *s = NULL;
	int ret = 0, rc;

	if (sqlite3_prepare_v2(st->db, "SELECT name, hash, yaml, canonical, owner, version "
			       "FROM policies ORDER BY name", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct cas__policy p;

		ret = fill_policy(s, &p);
		if (ret < 0)
			break;
		ret = cb(ctx, &p);
		cas__policy_free(&p);
		if (ret)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_finalize(s);
	return ret < 0 ? ret : 0;
}

static int make_aad(char *aad, size_t size, const char *prefix, const char *a, const char *b)
{
	int n = snprintf(aad, size, "%s%s%s%s", prefix, a, b ? "/" : "", b ? b : "");

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
}

int cas__secret_get(struct cas__store *st, const char *session, const char *name, char **spec,
		  uint8_t **value, size_t *size)
{
	sqlite3_stmt *s = NULL;
	char aad[300];
	int ret = -EIO, rc, n;

	*spec = NULL;
	*value = NULL;
	n = make_aad(aad, sizeof(aad), "secret:", session, name);
	if (n < 0)
		return n;
	if (sqlite3_prepare_v2(st->db, "SELECT spec, value FROM secrets WHERE session = ? AND "
			       "name = ?", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else if (rc == SQLITE_ROW) {
		ret = kc_aead_open_blob(st->master, aad, (size_t)n, sqlite3_column_blob(s, 1),
					(size_t)sqlite3_column_bytes(s, 1), value, size);
		if (ret == 0) {
			*spec = col_strdup(s, 0);
			if (!*spec) {
				kiln_free_secret(*value, *size);
				*value = NULL;
				ret = -ENOMEM;
			}
		}
	}
	sqlite3_finalize(s);
	return ret;
}

int cas__secret_put(struct cas__store *st, const char *session, const char *name,
		  const char *spec, const uint8_t *value, size_t size)
{
	sqlite3_stmt *s = NULL;
	uint8_t *blob = NULL;
	size_t blob_size = 0;
	char aad[300];
	int ret, rc, n;

	n = make_aad(aad, sizeof(aad), "secret:", session, name);
	if (n < 0)
		return n;
	ret = kc_aead_seal_blob(st->master, aad, (size_t)n, value, size, &blob, &blob_size);
	if (ret < 0)
		return ret;
	ret = -EIO;
	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO secrets(session, name, spec, "
			       "value) VALUES(?,?,?,?)", -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, spec, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 4, blob, (int)blob_size, SQLITE_STATIC);
		rc = sqlite3_step(s);
		ret = rc == SQLITE_DONE ? 0 : -EIO;
	}
	sqlite3_finalize(s);
	free(blob);
	return ret;
}

static int fill_volume(struct cas__store *st, sqlite3_stmt *s, struct cas__volume *out)
{
	char aad[64];
	uint8_t *key = NULL;
	size_t key_size = 0;
	int ret, n;

	snprintf(out->id, sizeof(out->id), "%s", (const char *)sqlite3_column_text(s, 0));
	snprintf(out->session, sizeof(out->session), "%s", (const char *)sqlite3_column_text(s, 1));
	snprintf(out->name, sizeof(out->name), "%s", (const char *)sqlite3_column_text(s, 2));
	out->committed = sqlite3_column_int64(s, 4);
	out->prepared = sqlite3_column_type(s, 5) == SQLITE_NULL ? -1 :
			sqlite3_column_int64(s, 5);
	n = make_aad(aad, sizeof(aad), "volume:", out->id, NULL);
	if (n < 0)
		return n;
	ret = kc_aead_open_blob(st->master, aad, (size_t)n, sqlite3_column_blob(s, 3),
				(size_t)sqlite3_column_bytes(s, 3), &key, &key_size);
	if (ret < 0)
		return ret;
	if (key_size != sizeof(out->key)) {
		kiln_free_secret(key, key_size);
		return -KILN_ECORRUPT;
	}
	memcpy(out->key, key, sizeof(out->key));
	kiln_free_secret(key, key_size);
	return 0;
}

static int volume_query(struct cas__store *st, const char *sql, const char *a, const char *b,
			struct cas__volume *out)
{
	sqlite3_stmt *s = NULL;
	int ret = -EIO, rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		ret = fill_volume(st, s, out);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	sqlite3_finalize(s);
	return ret;
}

int cas__volume_by_id(struct cas__store *st, const char *id, struct cas__volume *out)
{
	return volume_query(st, "SELECT id, session, name, key, committed, prepared FROM "
			    "volumes WHERE id = ?", id, NULL, out);
}

int cas__volume_get_or_create(struct cas__store *st, const char *session, const char *name,
			    struct cas__volume *out)
{
	uint8_t rid[16];
	uint8_t *blob = NULL;
	size_t blob_size = 0;
	sqlite3_stmt *s = NULL;
	char aad[64];
	int ret, rc, n;

	ret = volume_query(st, "SELECT id, session, name, key, committed, prepared FROM "
			   "volumes WHERE session = ? AND name = ?", session, name, out);
	if (ret != -ENOENT)
		return ret;
	memset(out, 0, sizeof(*out));
	if (kc_random(rid, sizeof(rid)) < 0 || kc_random(out->key, sizeof(out->key)) < 0)
		return -KILN_ECRYPTO;
	kiln_hex_encode(rid, sizeof(rid), out->id);
	snprintf(out->session, sizeof(out->session), "%s", session);
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->committed = 0;
	out->prepared = -1;
	n = make_aad(aad, sizeof(aad), "volume:", out->id, NULL);
	if (n < 0)
		return n;
	ret = kc_aead_seal_blob(st->master, aad, (size_t)n, out->key, sizeof(out->key), &blob,
				&blob_size);
	if (ret < 0)
		return ret;
	ret = -EIO;
	if (sqlite3_prepare_v2(st->db, "INSERT INTO volumes(id, session, name, key, committed, "
			       "prepared) VALUES(?,?,?,?,0,NULL)", -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, out->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, session, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 4, blob, (int)blob_size, SQLITE_STATIC);
		rc = sqlite3_step(s);
		ret = rc == SQLITE_DONE ? 0 : -EIO;
	}
	sqlite3_finalize(s);
	free(blob);
	return ret;
}

int cas__volume_set_tags(struct cas__store *st, const char *id, int64_t committed,
		       int64_t prepared)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "UPDATE volumes SET committed = ?, prepared = ? WHERE "
			       "id = ?", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(s, 1, committed);
	if (prepared < 0)
		sqlite3_bind_null(s, 2);
	else
		sqlite3_bind_int64(s, 2, prepared);
	sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE && sqlite3_changes(st->db) == 1 ? 0 : -EIO;
}

int cas__las_add(struct cas__store *st, const char *id, const char *pem)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO las_trust(id, pem, added) "
			       "VALUES(?,?,?)", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

void cas__strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Step s to the end, collecting column 0 of every row into a NULL-terminated
 * vector (*out, owned by the caller: cas__strv_free); finalizes s. */
static int step_strings(sqlite3_stmt *s, char ***out, size_t *n)
{
	char **v = NULL;
	size_t count = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char **nv = realloc(v, (count + 2) * sizeof(*v));

		if (!nv) {
			rc = SQLITE_NOMEM;
			break;
		}
		v = nv;
		v[count] = col_strdup(s, 0);
		v[++count] = NULL;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		cas__strv_free(v);
		return -EIO;
	}
	*out = v;
	*n = count;
	return 0;
}

int cas__las_list(struct cas__store *st, char ***pems, size_t *n)
{
	sqlite3_stmt *s = NULL;

	*pems = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(st->db, "SELECT pem FROM las_trust ORDER BY id", -1, &s, NULL) !=
	    SQLITE_OK)
		return -EIO;
	return step_strings(s, pems, n);
}

int cas__tee_trust_add(struct cas__store *st, const char *id, const char *tee, const char *data)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO tee_trust(id, tee, data, added) "
			       "VALUES(?,?,?,?)", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, tee, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, data, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int cas__tee_trust_list(struct cas__store *st, const char *tee, char ***items, size_t *n)
{
	sqlite3_stmt *s = NULL;

	*items = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(st->db, "SELECT data FROM tee_trust WHERE tee = ? ORDER BY id",
			       -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, tee, -1, SQLITE_STATIC);
	return step_strings(s, items, n);
}

int cas__namespace_set(struct cas__store *st, const char *name, const char *owners)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO namespaces(name, owners, added) "
			       "VALUES(?,?,?)", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, owners, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int cas__namespace_delete(struct cas__store *st, const char *name)
{
	return exec_bind1(st, "DELETE FROM namespaces WHERE name = ?", name);
}

int cas__namespace_get(struct cas__store *st, const char *name, char **owners)
{
	sqlite3_stmt *s = NULL;
	int ret = -EIO, rc;

	*owners = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT owners FROM namespaces WHERE name = ?", -1, &s,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*owners = col_strdup(s, 0);
		ret = *owners ? 0 : -ENOMEM;
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	}
	sqlite3_finalize(s);
	return ret;
}

int cas__policy_load(struct cas__store *st, const char *name, struct pol_policy **out,
		    char owner[CAS_ID_SIZE], struct kiln_err *err)
{
	struct cas__policy row;
	int ret;

	*out = NULL;
	ret = cas__policy_get(st, name, &row);
	if (ret < 0)
		return kiln_err_set(err, ret, "policy '%s': %s", name,
				    ret == -ENOENT ? "not found" : kiln_strerror(ret));
	ret = cas__policy_parse(st, &row, out, err);
	if (ret == 0 && owner)
		snprintf(owner, CAS_ID_SIZE, "%s", row.owner);
	cas__policy_free(&row);
	return ret;
}
