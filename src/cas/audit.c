/* Append-only, hash-chained, signed audit log.
 *
 * Entry n: text_n = canonical JSON {seq, time, kind, actor, subject, details,
 * prev = hash_{n-1}}; hash_n = "sha256:" hex(SHA-256(text_n)); sig_n = the CA
 * key's signature over hash_n. The head (last seq and hash) is signed too and
 * kept in meta, so dropping the newest entries is detected as well; what cannot
 * be detected without an outside anchor is rolling back the whole store,
 * head included, to an older copy (docs/cas.md). */
#include "cas/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GENESIS "sha256:0000000000000000000000000000000000000000000000000000000000000000"

static char *entry_text(int64_t seq, int64_t t, const char *kind, const char *actor,
			const char *subject, json_t *details, const char *prev)
{
	json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:s,s:O,s:s}", "seq", (json_int_t)seq, "time",
			      (json_int_t)t, "kind", kind, "actor", actor, "subject", subject,
			      "details", details, "prev", prev);
	char *text;

	if (!o)
		return NULL;
	text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(o);
	return text;
}

static int hash_text(const char *text, char out[CAS_ID_SIZE])
{
	uint8_t d[KC_SHA256_SIZE];
	int ret = kc_sha256(text, strlen(text), d);

	if (ret < 0)
		return ret;
	memcpy(out, "sha256:", 7);
	kiln_hex_encode(d, sizeof(d), out + 7);
	return 0;
}

static char *head_text(int64_t seq, const char *hash)
{
	char *text = NULL;

	if (asprintf(&text, "kiln-audit-head-v1 %" PRId64 " %s", seq, hash) < 0)
		return NULL;
	return text;
}

/* The signed head: both rows in one statement (one round trip to a database
 * server). */
static int head_put(struct cas__store *st, const char *head, const uint8_t *sig,
		    size_t sig_size)
{
	return cas__db_run(st->db, "INSERT INTO meta(k, v) VALUES('audit_head', ?), "
			   "('audit_head_sig', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
			   "bb", head, strlen(head), sig, sig_size) < 0 ? -EIO : 0;
}

/* *v malloc'd (NUL-terminated), -ENOENT when absent. */
static int meta_get(struct cas__store *st, const char *k, uint8_t **v, size_t *size)
{
	struct cas__stmt *s = NULL;
	int ret;

	*v = NULL;
	if (cas__db_query(st->db, &s, "SELECT v FROM meta WHERE k = ?", "t", k) < 0)
		return -EIO;
	ret = cas__db_step(s);
	if (ret == 1) {
		size_t n = 0;
		const uint8_t *p = cas__db_col_blob(s, 0, &n);

		*v = malloc(n + 1);
		if (*v) {
			if (n)
				memcpy(*v, p, n);
			(*v)[n] = 0;
			*size = n;
			ret = 0;
		} else {
			ret = -ENOMEM;
		}
	} else {
		ret = ret == 0 ? -ENOENT : -EIO;
	}
	cas__db_finalize(s);
	return ret;
}

int cas__audit_append(struct cas__store *st, const char *kind, const char *actor,
		    const char *subject, json_t *details)
{
	struct cas__stmt *s = NULL;
	char prev[CAS_ID_SIZE] = GENESIS, hash[CAS_ID_SIZE];
	int64_t seq = 1, t = (int64_t)time(NULL);
	char *text = NULL, *head = NULL, *dtext = NULL;
	uint8_t *sig = NULL, *hsig = NULL;
	size_t sig_size = 0, hsig_size = 0;
	bool own_tx = !cas__db_in_tx(st->db);
	int ret = -EIO, rc;

	if (!details)
		return -ENOMEM;
	if (own_tx && cas__store_begin(st) < 0) {
		json_decref(details);
		return -EIO;
	}
	/* The previous hash is read inside the write transaction: two appends
	 * never chain to the same entry. */
	if (cas__db_query(st->db, &s, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
			  "") < 0)
		goto out;
	rc = cas__db_step(s);
	if (rc == 1) {
		seq = cas__db_col_int64(s, 0) + 1;
		snprintf(prev, sizeof(prev), "%s", cas__db_col_text(s, 1));
	} else if (rc < 0) {
		goto out;
	}
	cas__db_finalize(s);
	s = NULL;
	text = entry_text(seq, t, kind, actor, subject, details, prev);
	dtext = json_dumps(details, JSON_SORT_KEYS | JSON_COMPACT);
	if (!text || !dtext) {
		ret = -ENOMEM;
		goto out;
	}
	if ((ret = hash_text(text, hash)) < 0 ||
	    (ret = cas__x509_sign(st->ca_key, hash, strlen(hash), &sig, &sig_size)) < 0)
		goto out;
	ret = -EIO;
	if (cas__db_run(st->db, "INSERT INTO audit(seq, time, kind, actor, subject, details, "
			"prev, hash, sig) VALUES(?,?,?,?,?,?,?,?,?)", "iittttttb", seq, t, kind,
			actor, subject, dtext, prev, hash, sig, sig_size) < 0)
		goto out;
	head = head_text(seq, hash);
	if (!head) {
		ret = -ENOMEM;
		goto out;
	}
	if ((ret = cas__x509_sign(st->ca_key, head, strlen(head), &hsig, &hsig_size)) < 0 ||
	    (ret = head_put(st, head, hsig, hsig_size)) < 0)
		goto out;
	ret = 0;
out:
	cas__db_finalize(s);
	if (own_tx) {
		if (ret == 0 && cas__store_commit(st) < 0)
			ret = -EIO;
		if (ret < 0)
			cas__store_rollback(st);
	}
	free(text);
	free(dtext);
	free(head);
	free(sig);
	free(hsig);
	json_decref(details);
	return ret;
}

int cas_audit_show(const char *data_dir, FILE *out, struct kiln_err *err)
{
	struct cas__store st;
	struct cas__stmt *s = NULL;
	int ret, rc;

	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	ret = -EIO;
	if (cas__db_query(st.db, &s, "SELECT seq, time, kind, actor, subject, details, hash "
			  "FROM audit ORDER BY seq", "") < 0) {
		kiln_err_set(err, ret, "%s", cas__db_err(st.db)->msg);
		goto out;
	}
	while ((rc = cas__db_step(s)) == 1) {
		time_t t = (time_t)cas__db_col_int64(s, 1);
		struct tm tm;
		char ts[32];

		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(out, "%lld %s %s actor=%s subject=%s %s %.19s\n",
			(long long)cas__db_col_int64(s, 0), ts, cas__db_col_text(s, 2),
			cas__db_col_text(s, 3), cas__db_col_text(s, 4), cas__db_col_text(s, 5),
			cas__db_col_text(s, 6));
	}
	if (rc < 0) {
		kiln_err_set(err, ret, "%s", cas__db_err(st.db)->msg);
		goto out;
	}
	ret = 0;
out:
	cas__db_finalize(s);
	cas__store_close(&st);
	return ret;
}

int cas_audit_verify(const char *data_dir, size_t *count, struct kiln_err *err)
{
	struct cas__store st;
	struct cas__stmt *s = NULL;
	char prev[CAS_ID_SIZE] = GENESIS, hash[CAS_ID_SIZE];
	EVP_PKEY *pub;
	int64_t expect = 1;
	uint8_t *head = NULL, *hsig = NULL;
	size_t head_size = 0, hsig_size = 0;
	char *want_head = NULL;
	int ret, rc;

	*count = 0;
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	pub = X509_get0_pubkey(st.ca_cert);
	/* The entries and the signed head from one snapshot: a CAS process
	 * appending meanwhile must not make the head look ahead of the log. */
	ret = cas__db_begin_snapshot(st.db);
	if (ret < 0) {
		kiln_err_set(err, ret, "%s", cas__db_err(st.db)->msg);
		goto out;
	}
	ret = -EIO;
	if (cas__db_query(st.db, &s, "SELECT seq, time, kind, actor, subject, details, prev, "
			  "hash, sig FROM audit ORDER BY seq", "") < 0) {
		kiln_err_set(err, ret, "%s", cas__db_err(st.db)->msg);
		goto out;
	}
	while ((rc = cas__db_step(s)) == 1) {
		int64_t seq = cas__db_col_int64(s, 0);
		const char *row_prev = cas__db_col_text(s, 6);
		const char *row_hash = cas__db_col_text(s, 7);
		json_t *details = json_loads(cas__db_col_text(s, 5), 0, NULL);
		const uint8_t *sig;
		size_t sig_size = 0;
		char *text;

		if (seq != expect) {
			json_decref(details);
			ret = kiln_err_set(err, -KILN_ECORRUPT, "audit entry %lld: expected "
					   "sequence number %lld (an entry was removed or "
					   "reordered)", (long long)seq, (long long)expect);
			goto out;
		}
		if (!details) {
			ret = kiln_err_set(err, -KILN_ECORRUPT, "audit entry %lld: details are not "
					   "JSON (edited)", (long long)seq);
			goto out;
		}
		if (strcmp(row_prev, prev)) {
			json_decref(details);
			ret = kiln_err_set(err, -KILN_ECORRUPT, "audit entry %lld: prev %.20s... "
					   "does not match the hash of entry %lld (removed or "
					   "reordered entries)", (long long)seq, row_prev,
					   (long long)seq - 1);
			goto out;
		}
		text = entry_text(seq, cas__db_col_int64(s, 1), cas__db_col_text(s, 2),
				  cas__db_col_text(s, 3), cas__db_col_text(s, 4), details, row_prev);
		json_decref(details);
		if (!text || hash_text(text, hash) < 0) {
			free(text);
			ret = kiln_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		free(text);
		if (strcmp(hash, row_hash)) {
			ret = kiln_err_set(err, -KILN_ECORRUPT, "audit entry %lld: content does "
					   "not match its hash (edited)", (long long)seq);
			goto out;
		}
		sig = cas__db_col_blob(s, 8, &sig_size);
		if (cas__x509_verify(pub, row_hash, strlen(row_hash), sig, sig_size) < 0) {
			ret = kiln_err_set(err, -KILN_ESIG, "audit entry %lld: signature does not "
					   "verify with the CAS key", (long long)seq);
			goto out;
		}
		snprintf(prev, sizeof(prev), "%s", row_hash);
		expect++;
		(*count)++;
	}
	if (rc < 0) {
		kiln_err_set(err, ret, "%s", cas__db_err(st.db)->msg);
		goto out;
	}
	ret = meta_get(&st, "audit_head", &head, &head_size);
	if (ret == -ENOENT && *count == 0) {
		ret = 0;
		goto out;
	}
	if (ret == 0)
		ret = meta_get(&st, "audit_head_sig", &hsig, &hsig_size);
	if (ret < 0) {
		ret = kiln_err_set(err, -KILN_ECORRUPT, "audit head is missing");
		goto out;
	}
	if (cas__x509_verify(pub, head, head_size, hsig, hsig_size) < 0) {
		ret = kiln_err_set(err, -KILN_ESIG, "audit head signature does not verify");
		goto out;
	}
	want_head = head_text(expect - 1, prev);
	if (!want_head || strcmp(want_head, (const char *)head)) {
		ret = kiln_err_set(err, -KILN_ECORRUPT, "audit log ends at entry %lld but the "
				   "signed head says '%s' (entries were removed from the end)",
				   (long long)expect - 1, (const char *)head);
		goto out;
	}
	ret = 0;
out:
	free(want_head);
	free(head);
	free(hsig);
	cas__db_finalize(s);
	if (cas__db_in_tx(st.db))
		cas__db_rollback(st.db);
	cas__store_close(&st);
	return ret;
}
