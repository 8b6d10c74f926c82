/* The CAS data directory and its store (SQLite in DIR, or PostgreSQL).
 *
 * DIR/master.key  32 random bytes, 0600: encrypts secrets and volume keys
 *                 (--master-key-file FILE: there instead)
 * DIR/ca.key      CA private key (PEM, 0600): issues the server certificate and
 *                 signs the audit log
 * DIR/ca.pem      CA certificate: what clients pin
 * DIR/kiln.db     SQLite, WAL, synchronous=FULL: a write is durable before the
 *                 HTTP answer that acknowledges it (through the SQL layer,
 *                 db.h; the schema and its versions are schema.c's)
 *
 * --store postgresql://...: the rows live in that database instead of
 *                 DIR/kiln.db; DIR keeps the CA. Every CAS process sharing the
 *                 database needs the same master key and CA (the store checks
 *                 both: an HMAC of the key and the CA's key hash in meta).
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

static const char g_key_check_label[] = "kiln-cas master key check v1";

/* Where the process's store is (cas_store_use; set before any other call). */
static struct {
	const char *url;          /* NULL: DIR/kiln.db */
	const char *master_file;  /* NULL: DIR/master.key */
} g_use;

void cas_store_use(const char *url, const char *master_key_file)
{
	g_use.url = url;
	g_use.master_file = master_key_file;
}

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
	const char *path = st->master_path;
	uint8_t *data = NULL;
	size_t size = 0;
	int ret;

	if (!exists(path)) {
		if (store_exists || !create)
			return kiln_err_set(err, -ENOENT, "%s is missing but the store %s "
					    "exists: refusing to create a new master key (every "
					    "stored secret would be lost); restore the key file",
					    path, st->where);
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

/* meta[k] must hold want (size bytes); a store without it gets it (the first
 * open, or a store of an older kiln). -KILN_EKEY when it differs. */
static int meta_check(struct cas__store *st, const char *k, const uint8_t *want, size_t size)
{
	struct cas__stmt *s = NULL;
	int ret, rc;

	ret = cas__db_query(st->db, &s, "SELECT v FROM meta WHERE k = ?", "t", k);
	rc = ret < 0 ? ret : cas__db_step(s);
	if (rc == 1) {
		size_t n = 0;
		const uint8_t *v = cas__db_col_blob(s, 0, &n);

		ret = n == size && kiln_ct_equal(v, want, size) ? 0 : -KILN_EKEY;
		cas__db_finalize(s);
		return ret;
	}
	cas__db_finalize(s);
	if (rc == 0)
		rc = cas__db_run(st->db, "INSERT INTO meta(k, v) VALUES(?, ?)", "tb", k, want, size);
	return rc < 0 ? rc : 0;
}

int cas__store_key_checks(const struct cas__store *st, uint8_t mac[KC_SHA256_SIZE],
			  uint8_t ca[KC_SHA256_SIZE])
{
	int ret = kc_hmac_sha256(st->master, sizeof(st->master), g_key_check_label,
				 strlen(g_key_check_label), mac);

	return ret < 0 ? ret : cas__x509_spki_sha256(st->ca_cert, ca);
}

/* The master key and the CA are the store's: a CAS process given others (a
 * replica set up with a copy of the wrong directory) must not start. */
static int check_keys(struct cas__store *st, struct kiln_err *err)
{
	uint8_t mac[KC_SHA256_SIZE], ca[KC_SHA256_SIZE];
	int ret;

	ret = cas__store_key_checks(st, mac, ca);
	if (ret < 0)
		return kiln_err_set(err, ret, "cannot hash the master key or CA");
	ret = meta_check(st, "key_check", mac, sizeof(mac));
	if (ret == -KILN_EKEY)
		return kiln_err_set(err, ret, "%s does not belong to the store %s (wrong or "
				    "replaced key file)", st->master_path, st->where);
	if (ret == 0)
		ret = meta_check(st, "ca_check", ca, sizeof(ca));
	if (ret == -KILN_EKEY)
		return kiln_err_set(err, ret, "%s/ca.pem is not the CA of the store %s (every "
				    "kiln-cas of one store needs the same ca.key and ca.pem)",
				    st->dir, st->where);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s", cas__db_err(st->db)->msg);
	return 0;
}

/* A damaged SQLite file must stop us before we write to it. */
static int sqlite_check(struct cas__store *st, struct kiln_err *err)
{
	struct cas__stmt *s = NULL;
	const char *res = NULL;
	int ret;

	if (cas__db_query(st->db, &s, "PRAGMA quick_check", "") == 0 && cas__db_step(s) == 1)
		res = cas__db_col_text(s, 0);
	ret = res && !strcmp(res, "ok") ? 0 :
	      kiln_err_set(err, -KILN_ECORRUPT, "%s: integrity check failed: %s", st->where,
			   res ? res : cas__db_err(st->db)->msg);
	cas__db_finalize(s);
	return ret;
}

static int open_db(bool readonly, const char *dbpath, struct cas__db **db,
		   struct kiln_err *err)
{
	return g_use.url ? cas__db_open_pg(g_use.url, db, err) :
	       cas__db_open_sqlite(dbpath, readonly, db, err);
}

/* Whether the (PostgreSQL) store was made: its master key check is there. */
static int pg_store_exists(struct cas__store *st, bool *out, struct kiln_err *err)
{
	struct cas__stmt *s = NULL;
	int ret;

	ret = cas__db_query(st->db, &s, "SELECT count(*) FROM meta WHERE k = 'key_check'", "");
	if (ret == 0)
		ret = cas__db_step(s);
	*out = ret == 1 && cas__db_col_int64(s, 0) > 0;
	cas__db_finalize(s);
	return ret < 0 ? kiln_err_set(err, ret, "%s", cas__db_err(st->db)->msg) : 0;
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
	if (path_in(st, "kiln.db", dbpath, sizeof(dbpath)) < 0)
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", dir);
	if (snprintf(st->master_path, sizeof(st->master_path), "%s%s%s",
		     g_use.master_file ? "" : dir, g_use.master_file ? "" : "/",
		     g_use.master_file ? g_use.master_file : "master.key") >=
	    (int)sizeof(st->master_path))
		return kiln_err_set(err, -ENAMETOOLONG, "master key path too long");
	if (g_use.url) {
		/* The database says whether the store exists, so it comes first. */
		ret = open_db(false, dbpath, &st->db, err);
		if (ret < 0)
			goto fail;
		snprintf(st->where, sizeof(st->where), "%s", cas__db_where(st->db));
		/* No meta table (an empty database) is no store either; nothing is
		 * made in a database unless asked to (create). */
		if (pg_store_exists(st, &store_exists, NULL) < 0)
			store_exists = false;
		if (!store_exists && !create) {
			ret = kiln_err_set(err, -ENOENT, "%s holds no kiln store (start 'kiln cas "
					   "serve --store URL' once)", st->where);
			goto fail;
		}
		ret = cas__schema_upgrade(st->db, &st->schema_from, &st->schema_to, err);
		if (ret < 0) {
			kiln_err_prefix(err, "%s: ", st->where);
			goto fail;
		}
		ret = load_master(st, store_exists, create, err);
		if (ret == 0)
			ret = load_ca(st, store_exists, create, err);
		if (ret == 0)
			ret = check_keys(st, err);
		if (ret < 0)
			goto fail;
		return 0;
	}
	snprintf(st->where, sizeof(st->where), "%s", dbpath);
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
	ret = open_db(false, dbpath, &st->db, err);
	if (ret < 0)
		goto fail;
	ret = cas__schema_upgrade(st->db, &st->schema_from, &st->schema_to, err);
	if (ret < 0) {
		kiln_err_prefix(err, "%s: ", dbpath);
		goto fail;
	}
	ret = sqlite_check(st, err);
	if (ret < 0)
		goto fail;
	ret = check_keys(st, err);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	cas__store_close(st);
	return ret;
}

int cas__store_load_keys(struct cas__store *st, const char *dir, struct kiln_err *err)
{
	char kpath[600];
	int ret;

	memset(st, 0, sizeof(*st));
	if (snprintf(st->dir, sizeof(st->dir), "%s", dir) >= (int)sizeof(st->dir) ||
	    snprintf(st->master_path, sizeof(st->master_path), "%s%s%s",
		     g_use.master_file ? "" : dir, g_use.master_file ? "" : "/",
		     g_use.master_file ? g_use.master_file : "master.key") >=
	    (int)sizeof(st->master_path) || path_in(st, "ca.key", kpath, sizeof(kpath)) < 0)
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", dir);
	snprintf(st->where, sizeof(st->where), "%s", dir);
	if (!exists(st->master_path))
		return kiln_err_set(err, -ENOENT, "%s is missing: the store's master key is "
				    "needed (its secrets stay encrypted under it)",
				    st->master_path);
	if (!exists(kpath))
		return kiln_err_set(err, -ENOENT, "%s is missing: the store's CA is needed (it "
				    "signs the audit log)", kpath);
	ret = load_master(st, true, false, err);
	if (ret == 0)
		ret = load_ca(st, true, false, err);
	if (ret < 0)
		cas__store_close(st);
	return ret;
}

const char *cas__store_url(void)
{
	return g_use.url;
}

int cas_migrate(const char *data_dir, int *from, int *to, struct kiln_err *err)
{
	struct cas__store st;
	int ret;

	/* Opening the store migrates it (serve does the same at start). */
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	*from = st.schema_from;
	*to = st.schema_to;
	cas__store_close(&st);
	return 0;
}

int cas__store_open_reader(const struct cas__store *st, struct cas__store *rd, struct kiln_err *err)
{
	char dbpath[600];

	memset(rd, 0, sizeof(*rd));
	snprintf(rd->dir, sizeof(rd->dir), "%s", st->dir);
	snprintf(rd->where, sizeof(rd->where), "%s", st->where);
	path_in(st, "kiln.db", dbpath, sizeof(dbpath));
	return open_db(/*readonly=*/true, dbpath, &rd->db, err);
}

void cas__store_close(struct cas__store *st)
{
	cas__polcache_free(st);
	cas__db_close(st->db);
	st->db = NULL;
	EVP_PKEY_free(st->ca_key);
	X509_free(st->ca_cert);
	st->ca_key = NULL;
	st->ca_cert = NULL;
	kiln_wipe(st->master, sizeof(st->master));
}

int cas__store_begin(struct cas__store *st)
{
	return cas__db_begin(st->db);
}

int cas__store_commit(struct cas__store *st)
{
	return cas__db_commit(st->db);
}

void cas__store_rollback(struct cas__store *st)
{
	cas__db_rollback(st->db);
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

static int fill_policy(struct cas__stmt *s, struct cas__policy *out)
{
	out->name = cas__db_col_strdup(s, 0);
	out->hash = cas__db_col_strdup(s, 1);
	out->yaml = cas__db_col_strdup(s, 2);
	out->canonical = cas__db_col_strdup(s, 3);
	out->owner = cas__db_col_strdup(s, 4);
	out->version = cas__db_col_int64(s, 5);
	if (!out->name || !out->hash || !out->yaml || !out->canonical || !out->owner) {
		cas__policy_free(out);
		return -ENOMEM;
	}
	return 0;
}

/* The layer's step result as the store's: -EIO for every failure but
 * -ENOMEM (the callers' contract predates the layer). */
static int io(int rc)
{
	return rc == -ENOMEM ? rc : -EIO;
}

int cas__policy_get(struct cas__store *st, const char *name, struct cas__policy *out)
{
	struct cas__stmt *s = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (cas__db_query(st->db, &s, "SELECT name, hash, yaml, canonical, owner, version "
			  "FROM policies WHERE name = ?", "t", name) < 0)
		return -EIO;
	ret = cas__db_step(s);
	ret = ret == 1 ? fill_policy(s, out) : ret == 0 ? -ENOENT : io(ret);
	cas__db_finalize(s);
	return ret;
}

int cas__policy_current(struct cas__store *st, const char *name, const char *hash)
{
	struct cas__stmt *s = NULL;
	int ret;

	if (cas__db_query(st->db, &s, "SELECT hash FROM policies WHERE name = ?", "t", name) < 0)
		return -EIO;
	ret = cas__db_step(s);
	ret = ret == 1 ? (strcmp(cas__db_col_text(s, 0), hash) ? -ESTALE : 0) :
	      ret == 0 ? -ESTALE : -EIO;
	cas__db_finalize(s);
	return ret;
}

int cas__policy_put(struct cas__store *st, const struct cas__policy *p)
{
	return cas__db_run(st->db, "INSERT INTO policies(name, hash, yaml, canonical, owner, "
			   "version, updated) VALUES(?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE "
			   "SET hash = excluded.hash, yaml = excluded.yaml, canonical = "
			   "excluded.canonical, owner = excluded.owner, version = excluded.version,"
			   " updated = excluded.updated", "tttttii", p->name, p->hash, p->yaml,
			   p->canonical, p->owner, p->version, (int64_t)time(NULL)) < 0 ? -EIO : 0;
}

int cas__policy_delete(struct cas__store *st, const char *name)
{
	/* The secrets, volumes and grants go with the policy: a later policy of
	 * the same name (maybe someone else's) must not inherit them. */
	if (cas__db_run(st->db, "DELETE FROM policies WHERE name = ?", "t", name) < 0 ||
	    cas__db_run(st->db, "DELETE FROM secrets WHERE session = ?", "t", name) < 0 ||
	    cas__db_run(st->db, "DELETE FROM volumes WHERE session = ?", "t", name) < 0 ||
	    cas__db_run(st->db, "DELETE FROM grants WHERE session = ?", "t", name) < 0 ||
	    cas__db_run(st->db, "DELETE FROM proposals WHERE name = ?", "t", name) < 0)
		return -EIO;
	return 0;
}

int cas__policy_each(struct cas__store *st, int (*cb)(void *, const struct cas__policy *),
		     void *ctx)
{
	struct cas__stmt *s = NULL;
	int ret = 0, rc;

	if (cas__db_query(st->db, &s, "SELECT name, hash, yaml, canonical, owner, version "
			  "FROM policies ORDER BY name", "") < 0)
		return -EIO;
	while ((rc = cas__db_step(s)) == 1) {
		struct cas__policy p;

		ret = fill_policy(s, &p);
		if (ret < 0)
			break;
		ret = cb(ctx, &p);
		cas__policy_free(&p);
		if (ret)
			break;
	}
	if (rc < 0)
		ret = -EIO;
	cas__db_finalize(s);
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
	struct cas__stmt *s = NULL;
	char aad[300];
	int ret, n;

	*spec = NULL;
	*value = NULL;
	n = make_aad(aad, sizeof(aad), "secret:", session, name);
	if (n < 0)
		return n;
	if (cas__db_query(st->db, &s, "SELECT spec, value FROM secrets WHERE session = ? AND "
			  "name = ?", "tt", session, name) < 0)
		return -EIO;
	ret = cas__db_step(s);
	if (ret == 0) {
		ret = -ENOENT;
	} else if (ret == 1) {
		size_t blob_size = 0;
		const uint8_t *blob = cas__db_col_blob(s, 1, &blob_size);

		ret = kc_aead_open_blob(st->master, aad, (size_t)n, blob, blob_size, value, size);
		if (ret == 0) {
			*spec = cas__db_col_strdup(s, 0);
			if (!*spec) {
				kiln_free_secret(*value, *size);
				*value = NULL;
				ret = -ENOMEM;
			}
		}
	} else {
		ret = io(ret);
	}
	cas__db_finalize(s);
	return ret;
}

int cas__secret_put(struct cas__store *st, const char *session, const char *name,
		  const char *spec, const uint8_t *value, size_t size)
{
	uint8_t *blob = NULL;
	size_t blob_size = 0;
	char aad[300];
	int ret, n;

	n = make_aad(aad, sizeof(aad), "secret:", session, name);
	if (n < 0)
		return n;
	ret = kc_aead_seal_blob(st->master, aad, (size_t)n, value, size, &blob, &blob_size);
	if (ret < 0)
		return ret;
	ret = cas__db_run(st->db, "INSERT INTO secrets(session, name, spec, value) "
			  "VALUES(?,?,?,?) ON CONFLICT(session, name) DO UPDATE SET spec = "
			  "excluded.spec, value = excluded.value", "tttb", session, name, spec,
			  blob, blob_size) < 0 ? -EIO : 0;
	free(blob);
	return ret;
}

static int fill_volume(struct cas__store *st, struct cas__stmt *s, struct cas__volume *out)
{
	char aad[64];
	uint8_t *key = NULL;
	size_t key_size = 0, blob_size = 0;
	const uint8_t *blob;
	int ret, n;

	snprintf(out->id, sizeof(out->id), "%s", cas__db_col_text(s, 0));
	snprintf(out->session, sizeof(out->session), "%s", cas__db_col_text(s, 1));
	snprintf(out->name, sizeof(out->name), "%s", cas__db_col_text(s, 2));
	out->committed = cas__db_col_int64(s, 4);
	out->prepared = cas__db_col_null(s, 5) ? -1 : cas__db_col_int64(s, 5);
	n = make_aad(aad, sizeof(aad), "volume:", out->id, NULL);
	if (n < 0)
		return n;
	blob = cas__db_col_blob(s, 3, &blob_size);
	ret = kc_aead_open_blob(st->master, aad, (size_t)n, blob, blob_size, &key, &key_size);
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

#define VOLUME_COLUMNS "SELECT id, session, name, key, committed, prepared FROM volumes "

/* b NULL: the query has one parameter. */
static int volume_query(struct cas__store *st, const char *sql, const char *a, const char *b,
			struct cas__volume *out)
{
	struct cas__stmt *s = NULL;
	int ret;

	if (cas__db_query(st->db, &s, sql, b ? "tt" : "t", a, b) < 0)
		return -EIO;
	ret = cas__db_step(s);
	ret = ret == 1 ? fill_volume(st, s, out) : ret == 0 ? -ENOENT : io(ret);
	cas__db_finalize(s);
	return ret;
}

int cas__volume_by_id(struct cas__store *st, const char *id, struct cas__volume *out)
{
	return volume_query(st, VOLUME_COLUMNS "WHERE id = ?", id, NULL, out);
}

int cas__volume_get_or_create(struct cas__store *st, const char *session, const char *name,
			    struct cas__volume *out)
{
	uint8_t rid[16];
	uint8_t *blob = NULL;
	size_t blob_size = 0;
	char aad[64];
	int ret, n;

	ret = volume_query(st, VOLUME_COLUMNS "WHERE session = ? AND name = ?", session, name,
			   out);
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
	ret = cas__db_run(st->db, "INSERT INTO volumes(id, session, name, key, committed, "
			  "prepared) VALUES(?,?,?,?,0,NULL)", "tttb", out->id, session, name,
			  blob, blob_size) < 0 ? -EIO : 0;
	free(blob);
	return ret;
}

int cas__volume_set_tags(struct cas__store *st, const char *id, int64_t committed,
		       int64_t prepared)
{
	int rc;

	if (prepared < 0)
		rc = cas__db_run(st->db, "UPDATE volumes SET committed = ?, prepared = NULL "
				 "WHERE id = ?", "it", committed, id);
	else
		rc = cas__db_run(st->db, "UPDATE volumes SET committed = ?, prepared = ? WHERE "
				 "id = ?", "iit", committed, prepared, id);
	return rc == 0 && cas__db_changes(st->db) == 1 ? 0 : -EIO;
}

int cas__las_add(struct cas__store *st, const char *id, const char *pem)
{
	return cas__db_run(st->db, "INSERT INTO las_trust(id, pem, added) VALUES(?,?,?) ON "
			   "CONFLICT(id) DO UPDATE SET pem = excluded.pem, added = excluded.added",
			   "tti", id, pem, (int64_t)time(NULL)) < 0 ? -EIO : 0;
}

void cas__strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Step s to the end, collecting column 0 of every row into a NULL-terminated
 * vector (*out, owned by the caller: cas__strv_free); finalizes s. */
static int step_strings(struct cas__stmt *s, char ***out, size_t *n)
{
	char **v = NULL;
	size_t count = 0;
	int rc;

	while ((rc = cas__db_step(s)) == 1) {
		char **nv = realloc(v, (count + 2) * sizeof(*v));

		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		v = nv;
		v[count] = cas__db_col_strdup(s, 0);
		v[++count] = NULL;
	}
	cas__db_finalize(s);
	if (rc != 0) {
		cas__strv_free(v);
		return -EIO;
	}
	*out = v;
	*n = count;
	return 0;
}

int cas__las_list(struct cas__store *st, char ***pems, size_t *n)
{
	struct cas__stmt *s = NULL;

	*pems = NULL;
	*n = 0;
	if (cas__db_query(st->db, &s, "SELECT pem FROM las_trust ORDER BY id", "") < 0)
		return -EIO;
	return step_strings(s, pems, n);
}

int cas__tee_trust_add(struct cas__store *st, const char *id, const char *tee, const char *data)
{
	return cas__db_run(st->db, "INSERT INTO tee_trust(id, tee, data, added) VALUES(?,?,?,?) "
			   "ON CONFLICT(id) DO UPDATE SET tee = excluded.tee, data = "
			   "excluded.data, added = excluded.added", "ttti", id, tee, data,
			   (int64_t)time(NULL)) < 0 ? -EIO : 0;
}

int cas__tee_trust_list(struct cas__store *st, const char *tee, char ***items, size_t *n)
{
	struct cas__stmt *s = NULL;

	*items = NULL;
	*n = 0;
	if (cas__db_query(st->db, &s, "SELECT data FROM tee_trust WHERE tee = ? ORDER BY id",
			  "t", tee) < 0)
		return -EIO;
	return step_strings(s, items, n);
}

int cas__namespace_set(struct cas__store *st, const char *name, const char *owners)
{
	return cas__db_run(st->db, "INSERT INTO namespaces(name, owners, added) VALUES(?,?,?) "
			   "ON CONFLICT(name) DO UPDATE SET owners = excluded.owners, added = "
			   "excluded.added", "tti", name, owners, (int64_t)time(NULL)) < 0 ?
	       -EIO : 0;
}

int cas__namespace_delete(struct cas__store *st, const char *name)
{
	return cas__db_run(st->db, "DELETE FROM namespaces WHERE name = ?", "t", name) < 0 ?
	       -EIO : 0;
}

int cas__namespace_get(struct cas__store *st, const char *name, char **owners)
{
	struct cas__stmt *s = NULL;
	int ret;

	*owners = NULL;
	if (cas__db_query(st->db, &s, "SELECT owners FROM namespaces WHERE name = ?", "t",
			  name) < 0)
		return -EIO;
	ret = cas__db_step(s);
	if (ret == 1) {
		*owners = cas__db_col_strdup(s, 0);
		ret = *owners ? 0 : -ENOMEM;
	} else {
		ret = ret == 0 ? -ENOENT : io(ret);
	}
	cas__db_finalize(s);
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
