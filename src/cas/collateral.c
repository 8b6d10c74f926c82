/* Intel verification collateral per platform (docs/cas.md "Collateral per
 * platform"): the operator adds one collateral per TEE kind and FMSPC (PCK CRL,
 * Root CA CRL, TCB Info, QE/TD identity and their chains); an attestation uses
 * the one of its quote's FMSPC. Rows of the store's tee_trust table with id
 * "collateral:TEE:FMSPC"; "collateral:TEE" is the one collateral per TEE an
 * older kiln stored (trust-collateral), used for an FMSPC without its own. */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evidence/evidence.h"

void cas__fmt_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%lld", (long long)t);
}

static bool tee_ok(const char *tee)
{
	return !strcmp(tee, "sgx") || !strcmp(tee, "tdx");
}

static bool fmspc_ok(const char *f)
{
	return strlen(f) == 12 && strspn(f, "0123456789ABCDEF") == 12;
}

/* The collateral text of id (malloc'd) or NULL: -ENOENT / -EIO in *ret. */
static char *row_get(struct cas__store *st, const char *id, int *ret)
{
	struct cas__stmt *s = NULL;
	char *data = NULL;
	int rc;

	*ret = -EIO;
	if (cas__db_query(st->db, &s, "SELECT data FROM tee_trust WHERE id = ?", "t", id) < 0)
		return NULL;
	rc = cas__db_step(s);
	if (rc == 1) {
		data = cas__db_col_strdup(s, 0);
		*ret = data ? 0 : -ENOMEM;
	} else if (rc == 0) {
		*ret = -ENOENT;
	}
	cas__db_finalize(s);
	return data;
}

int cas__collateral_for(struct cas__store *st, const char *tee, const char *fmspc,
			json_t **out)
{
	char id[48], *text;
	int ret;

	*out = NULL;
	snprintf(id, sizeof(id), "collateral:%s:%s", tee, fmspc);
	text = row_get(st, id, &ret);
	if (ret == -ENOENT) {
		snprintf(id, sizeof(id), "collateral:%s", tee);
		text = row_get(st, id, &ret);
	}
	if (ret < 0)
		return ret;
	*out = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	return *out ? 0 : -EIO;
}

/* Authenticated collateral j for tee (taken: released here) into the store
 * under its FMSPC. source names it in messages and the audit ("FILE", or the
 * PCCS URL when fetched). A fetched one must be the FMSPC asked for
 * (want_fmspc), valid at `at`, and not older than the one it replaces (a PCCS
 * serving stale collateral cannot roll the TCB evaluation back); *changed is
 * false when it is the one stored already (nothing written). */
static int collateral_store(const char *data_dir, json_t *j, const char *tee,
			    const char *source, const char *want_fmspc, time_t at,
			    struct cas_collateral *out, bool *changed, struct kiln_err *err)
{
	struct ev_collateral_info info, old_info;
	struct cas__store st;
	char id[48], t1[32], t2[32], *text = NULL, *old_text = NULL;
	bool fetched = want_fmspc != NULL;
	json_t *old = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (changed)
		*changed = false;
	/* Authenticated now (signatures, chains to the pinned Intel root), so a
	 * wrong file is named here, not at the first attestation. */
	ret = ev_dcap_collateral_info(j, &info, err);
	if (ret < 0) {
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		json_decref(j);
		return kiln_err_set(err, ret, "%s: collateral does not verify: %s", source, msg);
	}
	if (strcasecmp(info.tcb_id, tee)) {
		json_decref(j);
		return kiln_err_set(err, -KILN_EFORMAT, "%s: this is %s collateral (TCB Info id "
				    "'%s', FMSPC %s), not %s", source, info.tcb_id, info.tcb_id,
				    info.fmspc, tee);
	}
	if (fetched && strcmp(info.fmspc, want_fmspc)) {
		json_decref(j);
		return kiln_err_set(err, -KILN_EFORMAT, "%s: answered the collateral of FMSPC %s, "
				    "not of %s", source, info.fmspc, want_fmspc);
	}
	cas__fmt_time(info.valid_from, t1);
	cas__fmt_time(info.valid_until, t2);
	if (fetched && (at >= info.valid_until || at < info.valid_from)) {
		json_decref(j);
		return kiln_err_set(err, -KILN_EEXPIRED, "%s: the collateral of tee %s FMSPC %s is "
				    "%s (valid from %s until %s, first to end: %s): not stored",
				    source, tee, info.fmspc, at >= info.valid_until ? "expired" :
				    "not yet valid", t1, t2, info.next);
	}
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	snprintf(id, sizeof(id), "collateral:%s:%s", tee, info.fmspc);
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		goto out;
	ret = cas__store_begin(&st);
	if (ret == 0 && fetched) {
		old_text = row_get(&st, id, &ret);
		if (ret == -ENOENT)
			ret = 0;
		else if (ret == 0 && !strcmp(old_text, text))
			ret = 1; /* unchanged */
		else if (ret == 0 && (old = json_loads(old_text, 0, NULL)) &&
			 ev_dcap_collateral_info(old, &old_info, NULL) == 0 &&
			 old_info.valid_from > info.valid_from) {
			char t0[32];

			cas__fmt_time(old_info.valid_from, t0);
			ret = kiln_err_set(err, -KILN_EROLLBACK, "%s: the collateral of tee %s "
					   "FMSPC %s was issued %s, before the stored one (%s): not "
					   "stored (a PCCS serving stale collateral?)", source, tee,
					   info.fmspc, t1, t0);
		}
	}
	if (ret == 0)
		ret = cas__tee_trust_add(&st, id, tee, text);
	if (ret == 0)
		ret = cas__audit_append(&st, "trust.collateral", "operator", id,
					json_pack("{s:s,s:s,s:s,s:I,s:s}", "tee", tee, "fmspc",
						  info.fmspc, fetched ? "pccs" : "file", source,
						  "valid_until", (json_int_t)info.valid_until,
						  "first_to_end", info.next));
	if (ret == 0) {
		ret = cas__store_commit(&st);
		if (ret == 0 && changed)
			*changed = true;
	}
	if (ret == 1) {
		cas__store_rollback(&st); /* unchanged: nothing to write */
		ret = 0;
	}
	if (ret < 0) {
		cas__store_rollback(&st);
		if (!err || !err->msg[0] || err->code != ret)
			kiln_err_set(err, ret, "%s/kiln.db: cannot store the collateral: %s",
				     data_dir, kiln_strerror(ret));
	}
	cas__store_close(&st);
	snprintf(out->tee, sizeof(out->tee), "%s", tee);
	snprintf(out->fmspc, sizeof(out->fmspc), "%s", info.fmspc);
	out->valid_from = info.valid_from;
	out->valid_until = info.valid_until;
	snprintf(out->next, sizeof(out->next), "%s", info.next);
out:
	json_decref(old);
	free(old_text);
	free(text);
	return ret;
}

int cas_collateral_add(const char *data_dir, const char *path, const char *tee,
		       struct cas_collateral *out, struct kiln_err *err)
{
	json_error_t jerr;
	json_t *j;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!tee_ok(tee))
		return kiln_err_set(err, -EINVAL, "--tee must be sgx or tdx, not '%.16s'", tee);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s:%d:%d: %s", path, jerr.line,
				   jerr.column, j ? "collateral must be a JSON object" : jerr.text);
		json_decref(j);
		return ret;
	}
	return collateral_store(data_dir, j, tee, path, NULL, 0, out, NULL, err);
}

int cas_collateral_fetch_one(const char *data_dir, const struct cas_pccs *p, const char *tee,
			     const char *fmspc, struct cas_collateral *out, bool *changed,
			     struct kiln_err *err)
{
	json_t *j = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	*changed = false;
	if (!tee_ok(tee))
		return kiln_err_set(err, -EINVAL, "--tee must be sgx or tdx, not '%.16s'", tee);
	if (!fmspc_ok(fmspc))
		return kiln_err_set(err, -EINVAL, "FMSPC '%.16s': expected 12 uppercase hex "
				    "digits", fmspc);
	ret = cas__pccs_fetch(p, tee, fmspc, &j, err);
	if (ret == 0)
		ret = collateral_store(data_dir, j, tee, p->url, fmspc, p->at ? p->at : time(NULL),
				       out, changed, err);
	if (ret < 0)
		kiln_err_prefix(err, "tee %s FMSPC %s: ", tee, fmspc);
	return ret;
}

int cas_collateral_stored(const char *data_dir, struct cas_collateral **out, size_t *n,
			  struct kiln_err *err)
{
	struct cas__store st;
	struct cas__stmt *s = NULL;
	struct cas_collateral *v = NULL;
	size_t cap = 0;
	int ret, rc;

	*out = NULL;
	*n = 0;
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	if (cas__db_query(st.db, &s, "SELECT tee, data FROM tee_trust WHERE id LIKE "
			  "'collateral:%:%' ORDER BY id", "") < 0) {
		ret = kiln_err_set(err, -EIO, "%s/kiln.db: %s", data_dir, cas__db_err(st.db)->msg);
		cas__store_close(&st);
		return ret;
	}
	while ((rc = cas__db_step(s)) == 1) {
		json_t *j = json_loads(cas__db_col_text(s, 1), 0, NULL);
		struct ev_collateral_info info;

		if (!j || ev_dcap_collateral_info(j, &info, NULL) < 0) {
			json_decref(j);
			continue; /* listed as unusable by collateral list */
		}
		json_decref(j);
		if (*n == cap) {
			struct cas_collateral *nv = realloc(v, (cap = cap ? 2 * cap : 8) *
							    sizeof(*v));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		memset(&v[*n], 0, sizeof(v[*n]));
		snprintf(v[*n].tee, sizeof(v[*n].tee), "%s", cas__db_col_text(s, 0));
		snprintf(v[*n].fmspc, sizeof(v[*n].fmspc), "%s", info.fmspc);
		v[*n].valid_from = info.valid_from;
		v[*n].valid_until = info.valid_until;
		snprintf(v[*n].next, sizeof(v[*n].next), "%s", info.next);
		(*n)++;
	}
	ret = rc == 0 ? 0 : kiln_err_set(err, rc == -ENOMEM ? -ENOMEM : -EIO, "%s/kiln.db: "
					 "cannot list the collateral", data_dir);
	cas__db_finalize(s);
	cas__store_close(&st);
	if (ret < 0) {
		free(v);
		*n = 0;
		return ret;
	}
	*out = v;
	return 0;
}

int cas_collateral_remove(const char *data_dir, const char *tee, const char *fmspc,
			  struct kiln_err *err)
{
	struct cas__store st;
	char id[48];
	int ret;

	if (!tee_ok(tee))
		return kiln_err_set(err, -EINVAL, "--tee must be sgx or tdx, not '%.16s'", tee);
	if (!fmspc_ok(fmspc))
		return kiln_err_set(err, -EINVAL, "FMSPC '%.16s': expected 12 uppercase hex "
				    "digits (as 'kiln cas collateral list' prints)", fmspc);
	snprintf(id, sizeof(id), "collateral:%s:%s", tee, fmspc);
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	ret = cas__store_begin(&st);
	if (ret == 0)
		ret = cas__db_run(st.db, "DELETE FROM tee_trust WHERE id = ?", "t", id) < 0 ? -EIO :
		      cas__db_changes(st.db) ? 0 : -ENOENT;
	if (ret == 0)
		ret = cas__audit_append(&st, "trust.collateral.remove", "operator", id,
					json_pack("{s:s,s:s}", "tee", tee, "fmspc", fmspc));
	if (ret == 0)
		ret = cas__store_commit(&st);
	if (ret < 0) {
		cas__store_rollback(&st);
		if (ret == -ENOENT)
			kiln_err_set(err, ret, "no collateral for tee %s FMSPC %s", tee, fmspc);
		else
			kiln_err_set(err, ret, "%s/kiln.db: cannot remove the collateral: %s",
				     data_dir, kiln_strerror(ret));
	}
	cas__store_close(&st);
	return ret;
}

int cas_collateral_list(const char *data_dir, FILE *out, time_t now, struct kiln_err *err)
{
	struct cas__store st;
	struct cas__stmt *s = NULL;
	char from[32], until[32], best_what[200] = "";
	time_t best = 0;
	size_t n = 0;
	int ret, rc;

	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	if (cas__db_query(st.db, &s, "SELECT id, tee, data FROM tee_trust WHERE id LIKE "
			  "'collateral:%' ORDER BY id", "") < 0) {
		ret = kiln_err_set(err, -EIO, "%s/kiln.db: %s", data_dir, cas__db_err(st.db)->msg);
		cas__store_close(&st);
		return ret;
	}
	while ((rc = cas__db_step(s)) == 1) {
		const char *id = cas__db_col_text(s, 0);
		const char *tee = cas__db_col_text(s, 1);
		json_t *j = json_loads(cas__db_col_text(s, 2), 0, NULL);
		struct ev_collateral_info info;
		struct kiln_err perr = { 0 };
		bool legacy = !strchr(id + strlen("collateral:"), ':');

		n++;
		if (!j || ev_dcap_collateral_info(j, &info, &perr) < 0) {
			fprintf(out, "%s ? unusable: %s\n", tee, perr.msg[0] ? perr.msg : "not JSON");
			json_decref(j);
			continue;
		}
		json_decref(j);
		cas__fmt_time(info.valid_from, from);
		cas__fmt_time(info.valid_until, until);
		fprintf(out, "%s %s %s from %s until %s (first to end: %s)%s\n", tee, info.fmspc,
			now >= info.valid_until ? "EXPIRED" : now < info.valid_from ?
			"NOT YET VALID" : "valid", from, until, info.next,
			legacy ? " [added by trust-collateral of an older kiln: used for every "
			"FMSPC without its own]" : "");
		if (now < info.valid_until && (!best || info.valid_until < best)) {
			best = info.valid_until;
			snprintf(best_what, sizeof(best_what), "%s %s %s at %s", tee, info.fmspc,
				 info.next, until);
		}
	}
	ret = rc == 0 ? 0 : kiln_err_set(err, -EIO, "%s/kiln.db: %s", data_dir,
					    cas__db_err(st.db)->msg);
	cas__db_finalize(s);
	cas__store_close(&st);
	if (ret == 0 && !n)
		fprintf(out, "no collateral (kiln cas collateral add FILE --tee sgx|tdx)\n");
	else if (ret == 0 && best)
		fprintf(out, "next to expire: %s\n", best_what);
	return ret;
}
