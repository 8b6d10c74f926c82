/* AMD certificates in the store, per product and per chip (docs/cas.md "AMD
 * certificates"): `kiln cas collateral import` stores ASK/ARK and ASVK/ARK
 * chains and each chip's VCEK (or a VLEK), checked against the pinned ARKs;
 * an SNP attestation is given the leaf its report names (chip ID and reported
 * TCB, or the VLEK of that TCB) besides the chains. Rows of tee_trust with id
 * "amd-cert:KEY" (ev_amd_import's keys); chains have tee "snp", so every SNP
 * verification gets them, leaves "snp-leaf", so only their chip's does. No
 * fetching from the AMD KDS: the operator imports what the KDS serves. */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evidence/snp.h"

#define ID_PREFIX "amd-cert:"

int cas_amd_import(const char *data_dir, const char *path, struct cas_amd_cert *out,
		   struct kiln_err *err)
{
	struct cas__store st;
	struct ev_amd_item item = { 0 };
	uint8_t *data = NULL;
	char **chains = NULL, id[EV_AMD_KEY_SIZE + 16];
	size_t size = 0, n_chains = 0;
	bool leaf;
	int ret;

	ret = kiln_read_file(path, 1 << 20, &data, &size);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		goto out_free;
	/* A leaf must chain to a stored chain: read them first. */
	if (cas__tee_trust_list(&st, "snp", &chains, &n_chains) < 0) {
		ret = kiln_err_set(err, -EIO, "%s: cannot read the stored AMD chains", st.where);
		goto out;
	}
	ret = ev_amd_import(data, size, (const char *const *)chains, n_chains, &item, err);
	if (ret < 0) {
		kiln_err_prefix(err, "%s: ", path);
		goto out;
	}
	leaf = item.kind == EV_AMD_VCEK || item.kind == EV_AMD_VLEK;
	snprintf(id, sizeof(id), ID_PREFIX "%s", item.key);
	ret = cas__store_begin(&st);
	if (ret == 0)
		ret = cas__tee_trust_add(&st, id, leaf ? "snp-leaf" : "snp", item.pem);
	if (ret == 0)
		ret = cas__audit_append(&st, "trust.amd", "operator", id,
					json_pack("{s:s,s:s,s:s}", "kind",
						  ev_amd_kind_name(item.kind), "product",
						  item.product, "file", path));
	if (ret == 0)
		ret = cas__store_commit(&st);
	if (ret < 0) {
		cas__store_rollback(&st);
		kiln_err_set(err, ret, "%s: cannot store the certificate: %s", st.where,
			     kiln_strerror(ret));
		goto out;
	}
	snprintf(out->kind, sizeof(out->kind), "%s", ev_amd_kind_name(item.kind));
	snprintf(out->product, sizeof(out->product), "%s", item.product);
	snprintf(out->key, sizeof(out->key), "%s", item.key);
	out->not_before = item.not_before;
	out->not_after = item.not_after;
out:
	for (size_t i = 0; i < n_chains; i++)
		free(chains[i]);
	free(chains);
	cas__store_close(&st);
out_free:
	free(item.pem);
	free(data);
	return ret;
}

int cas_amd_list(const char *data_dir, FILE *out, time_t now, struct kiln_err *err)
{
	struct cas__store st;
	struct cas__stmt *s = NULL;
	char **chains = NULL;
	size_t n_chains = 0;
	int ret, rc;

	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	if (cas__tee_trust_list(&st, "snp", &chains, &n_chains) < 0 ||
	    cas__db_query(st.db, &s, "SELECT id, data FROM tee_trust WHERE id LIKE '"
			  ID_PREFIX "%' ORDER BY id", "") < 0) {
		ret = kiln_err_set(err, -EIO, "%s: %s", st.where, cas__db_err(st.db)->msg);
		goto out;
	}
	while ((rc = cas__db_step(s)) == 1) {
		const char *id = cas__db_col_text(s, 0), *pem = cas__db_col_text(s, 1);
		struct ev_amd_item item;
		struct kiln_err perr = { 0 };
		char from[32], until[32];

		/* Checked again as at import: a leaf against the stored chains. */
		if (ev_amd_import((const uint8_t *)pem, strlen(pem), (const char *const *)chains,
				  n_chains, &item, &perr) < 0) {
			fprintf(out, "snp %s unusable: %s\n", id + strlen(ID_PREFIX), perr.msg);
			continue;
		}
		cas__fmt_time(item.not_before, from);
		cas__fmt_time(item.not_after, until);
		fprintf(out, "snp %s %s %s %s from %s until %s\n", ev_amd_kind_name(item.kind),
			item.product, item.key, now >= item.not_after ? "EXPIRED" :
			now < item.not_before ? "NOT YET VALID" : "valid", from, until);
		free(item.pem);
	}
	ret = rc == 0 ? 0 : kiln_err_set(err, -EIO, "%s: %s", st.where,
					    cas__db_err(st.db)->msg);
out:
	cas__db_finalize(s);
	for (size_t i = 0; i < n_chains; i++)
		free(chains[i]);
	free(chains);
	cas__store_close(&st);
	return ret;
}

int cas__amd_leaf_for(struct cas__store *st, const uint8_t *evidence, size_t size,
		      char **pem, char *what, size_t what_size)
{
	struct cas__stmt *s = NULL;
	enum ev_snp_signing_key kind;
	struct kiln_err err = { 0 };
	char key[EV_AMD_KEY_SIZE], chip[17], pattern[EV_AMD_KEY_SIZE + 16];
	int rc;

	*pem = NULL;
	if (ev_amd_report_key(evidence, size, key, &kind, chip, &err) < 0)
		return -KILN_EFORMAT; /* the verifier names what is wrong with it */
	if (kind == EV_SNP_KEY_VLEK) {
		snprintf(what, what_size, "no VLEK for reported TCB %.*s in the store (kiln "
			 "cas collateral import VLEK.pem)", (int)strlen(key) - 6,
			 key + strlen("vlek:"));
		snprintf(pattern, sizeof(pattern), ID_PREFIX "%s%%", key);
	} else {
		snprintf(what, what_size, "no VCEK for chip_id %s... reported TCB %s in the "
			 "store (kiln cas collateral import VCEK.der; the AMD KDS serves it)",
			 chip, strrchr(key, ':') + 1);
		snprintf(pattern, sizeof(pattern), ID_PREFIX "%s", key);
	}
	if (cas__db_query(st->db, &s, "SELECT data FROM tee_trust WHERE tee = 'snp-leaf' AND "
			  "id LIKE ? ORDER BY id", "t", pattern) < 0)
		return -EIO;
	rc = cas__db_step(s);
	if (rc == 1)
		*pem = cas__db_col_strdup(s, 0);
	cas__db_finalize(s);
	if (rc < 0 || (rc == 1 && !*pem))
		return rc < 0 ? -EIO : -ENOMEM;
	return rc == 1 ? 0 : -ENOENT;
}
