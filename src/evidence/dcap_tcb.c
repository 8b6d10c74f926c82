/* TCB evaluation for DCAP quotes, following Intel's QVL (TcbLevelCheck, TdxModuleCheck,
 * QE identity check) and dcap-qvl:
 *   platform: the first TCB level whose 16 SGX component SVNs and PCESVN are all <= the
 *             PCK certificate's (TDX: from that level on, the first whose 16 TDX
 *             component SVNs are <= TEE_TCB_SVN);
 *   TDX module: identity "TDX_%02X" of TEE_TCB_SVN[1], MRSIGNERSEAM and SEAM attributes
 *             must match, first module level with isvsvn <= TEE_TCB_SVN[0];
 *   QE: MRSIGNER, ISVPRODID, MISCSELECT/mask, ATTRIBUTES/mask, first level with
 *             isvsvn <= the QE's ISVSVN;
 *   TD 1.5: when the TD is OutOfDate only because it was launched on an older TDX
 *             module and TEE_TCB_SVN2 (the module now running) meets the latest level,
 *             relaunch is advised (Intel QVL TDRelaunchCheck; its status
 *             TD_RELAUNCH_ADVISED becomes OutOfDate + relaunch_advised here);
 * then the statuses converge (an OutOfDate QE or module makes the result OutOfDate,
 * or OutOfDateConfigurationNeeded when the platform needs configuration; Revoked wins)
 * and the advisory IDs of every matched level are merged. */
#include "evidence/dcap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const g_status_names[EV_DCAP_STATUS_COUNT] = {
	[EV_DCAP_UP_TO_DATE] = "UpToDate",
	[EV_DCAP_SW_HARDENING_NEEDED] = "SWHardeningNeeded",
	[EV_DCAP_CONFIGURATION_NEEDED] = "ConfigurationNeeded",
	[EV_DCAP_CONFIGURATION_AND_SW_HARDENING_NEEDED] = "ConfigurationAndSWHardeningNeeded",
	[EV_DCAP_OUT_OF_DATE] = "OutOfDate",
	[EV_DCAP_OUT_OF_DATE_CONFIGURATION_NEEDED] = "OutOfDateConfigurationNeeded",
	[EV_DCAP_REVOKED] = "Revoked",
};

const char *ev_dcap_status_name(enum ev_dcap_status s)
{
	return (unsigned)s < EV_DCAP_STATUS_COUNT ? g_status_names[s] : "Unknown";
}

int ev_dcap_status_parse(const char *s, enum ev_dcap_status *out)
{
	for (int i = 0; s && i < EV_DCAP_STATUS_COUNT; i++)
		if (strcmp(s, g_status_names[i]) == 0) {
			*out = (enum ev_dcap_status)i;
			return 0;
		}
	return -KILN_EFORMAT;
}

void ev_dcap_tcb_result_clear(struct ev_dcap_tcb_result *r)
{
	json_decref(r->advisories);
	memset(r, 0, sizeof(*r));
}

/* Platform status combined with the QE's or the TDX module's. */
static enum ev_dcap_status converge(enum ev_dcap_status platform, enum ev_dcap_status other)
{
	if (other == EV_DCAP_REVOKED || platform == EV_DCAP_REVOKED)
		return EV_DCAP_REVOKED;
	if (other != EV_DCAP_OUT_OF_DATE && other != EV_DCAP_OUT_OF_DATE_CONFIGURATION_NEEDED)
		return platform;
	switch (platform) {
	case EV_DCAP_UP_TO_DATE:
	case EV_DCAP_SW_HARDENING_NEEDED:
		return EV_DCAP_OUT_OF_DATE;
	case EV_DCAP_CONFIGURATION_NEEDED:
	case EV_DCAP_CONFIGURATION_AND_SW_HARDENING_NEEDED:
		return EV_DCAP_OUT_OF_DATE_CONFIGURATION_NEEDED;
	default:
		return platform;
	}
}

static int add_advisories(struct ev_dcap_tcb_result *r, const json_t *level, const char *doc,
			  struct kiln_err *err)
{
	const json_t *ids = json_object_get(level, "advisoryIDs"), *id;
	size_t i, k;

	if (!r->advisories && !(r->advisories = json_array()))
		return kiln_err_set(err, -ENOMEM, "out of memory");
	if (!ids)
		return 0;
	if (!json_is_array(ids))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: advisoryIDs is not an array", doc);
	json_array_foreach(ids, i, id) {
		const json_t *have;
		bool dup = false;

		if (!json_is_string(id))
			return kiln_err_set(err, -KILN_EFORMAT, "%s: advisory ID is not a string",
					    doc);
		json_array_foreach(r->advisories, k, have)
			if (json_equal(have, id))
				dup = true;
		if (!dup && json_array_append_new(r->advisories, json_copy((json_t *)id)))
			return kiln_err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int level_status(const json_t *level, const char *doc, enum ev_dcap_status *s,
			struct kiln_err *err)
{
	const char *name = json_string_value(json_object_get(level, "tcbStatus"));

	if (ev_dcap_status_parse(name, s))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: unknown tcbStatus \"%s\"", doc,
				    name ? name : "(missing)");
	return 0;
}

static int svn_of(const json_t *v, int64_t max, int64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* The first level (searching `levels`) whose "isvsvn" is <= svn. -1 when none. */
static int isvsvn_level(const json_t *levels, unsigned svn, const char *doc, size_t *index,
			struct kiln_err *err)
{
	const json_t *level;
	size_t i;
	int64_t v;

	if (!json_is_array(levels))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: tcbLevels is not an array", doc);
	json_array_foreach(levels, i, level) {
		if (svn_of(json_object_get(json_object_get(level, "tcb"), "isvsvn"), 65535, &v))
			return kiln_err_set(err, -KILN_EFORMAT, "%s: level %zu: bad tcb.isvsvn",
					    doc, i);
		if (svn >= v) {
			*index = i;
			return 0;
		}
	}
	return 1;
}

static int hex_eq_masked(const char *hex, const char *mask_hex, const uint8_t *actual,
			 size_t size, bool *equal)
{
	uint8_t want[48], mask[48];

	if (size > sizeof(want) || !hex || strlen(hex) != 2 * size ||
	    kiln_hex_decode(hex, want, size, NULL) ||
	    (mask_hex && (strlen(mask_hex) != 2 * size ||
			  kiln_hex_decode(mask_hex, mask, size, NULL))))
		return -KILN_EFORMAT;
	if (!mask_hex)
		memset(mask, 0xff, size);
	*equal = true;
	for (size_t i = 0; i < size; i++)
		if ((actual[i] & mask[i]) != (want[i] & mask[i]))
			*equal = false;
	return 0;
}

int ev_dcap_eval_qe(const ev_dcap_collateral_t *c, const uint8_t *rep, struct ev_dcap_tcb_result *r,
		    struct kiln_err *err)
{
	const json_t *id = c->qe_identity, *level;
	const char *doc = "QE Identity";
	uint8_t misc_be[4];
	bool eq;
	size_t idx;
	int64_t prodid;
	unsigned isvsvn = (unsigned)(rep[SGXR_ISVSVN] | (rep[SGXR_ISVSVN + 1] << 8));
	unsigned isvprodid = (unsigned)(rep[SGXR_ISVPRODID] | (rep[SGXR_ISVPRODID + 1] << 8));
	int ret;

	if (hex_eq_masked(json_string_value(json_object_get(id, "mrsigner")), NULL,
			  rep + SGXR_MRSIGNER, 32, &eq))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad mrsigner", doc);
	if (!eq)
		return kiln_err_set(err, -KILN_EMEASUREMENT,
				    "QE report MRSIGNER does not match the QE Identity");
	if (svn_of(json_object_get(id, "isvprodid"), 65535, &prodid))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad isvprodid", doc);
	if (prodid != isvprodid)
		return kiln_err_set(err, -KILN_EMEASUREMENT,
				    "QE report ISVPRODID: expected %lld, found %u",
				    (long long)prodid, isvprodid);
	/* MISCSELECT is a little-endian u32 in the report, a big-endian hex number in the
	 * identity. */
	for (int i = 0; i < 4; i++)
		misc_be[i] = rep[SGXR_MISCSELECT + 3 - i];
	if (hex_eq_masked(json_string_value(json_object_get(id, "miscselect")),
			  json_string_value(json_object_get(id, "miscselectMask")), misc_be, 4,
			  &eq))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad miscselect/miscselectMask", doc);
	if (!eq)
		return kiln_err_set(err, -KILN_EMEASUREMENT,
				    "QE report MISCSELECT does not match the QE Identity");
	if (hex_eq_masked(json_string_value(json_object_get(id, "attributes")),
			  json_string_value(json_object_get(id, "attributesMask")),
			  rep + SGXR_ATTRIBUTES, 16, &eq))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad attributes/attributesMask", doc);
	if (!eq)
		return kiln_err_set(err, -KILN_EMEASUREMENT,
				    "QE report ATTRIBUTES do not match the QE Identity");
	ret = isvsvn_level(json_object_get(id, "tcbLevels"), isvsvn, doc, &idx, err);
	if (ret < 0)
		return ret;
	if (ret > 0)
		return kiln_err_set(err, -KILN_ETCB,
				    "TCB level not supported: QE ISVSVN %u is below every QE "
				    "Identity TCB level", isvsvn);
	level = json_array_get(json_object_get(id, "tcbLevels"), idx);
	if ((ret = level_status(level, doc, &r->qe, err)))
		return ret;
	return add_advisories(r, level, doc, err);
}

/* Read 16 component SVNs of a TCB level: v3 "sgxtcbcomponents"/"tdxtcbcomponents"
 * arrays of {"svn": n}, or v2 "sgxtcbcompNNsvn" keys. */
static int components(const json_t *tcb, const char *kind, int version, uint8_t out[16])
{
	int64_t v;

	if (version == 2 && strcmp(kind, "sgx") == 0) {
		char key[32];

		for (int i = 0; i < 16; i++) {
			snprintf(key, sizeof(key), "sgxtcbcomp%02dsvn", i + 1);
			if (svn_of(json_object_get(tcb, key), 255, &v))
				return -1;
			out[i] = (uint8_t)v;
		}
		return 0;
	}
	char key[32];
	const json_t *arr;

	snprintf(key, sizeof(key), "%stcbcomponents", kind);
	arr = json_object_get(tcb, key);
	if (!json_is_array(arr) || json_array_size(arr) != 16)
		return -1;
	for (int i = 0; i < 16; i++) {
		if (svn_of(json_object_get(json_array_get(arr, (size_t)i), "svn"), 255, &v))
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* Index of the first component below its level, or -1 when all are >=. */
static int first_short(const uint8_t *have, const uint8_t *need)
{
	for (int i = 0; i < 16; i++)
		if (have[i] < need[i])
			return i;
	return -1;
}

static bool all_ge(const uint8_t *have, const uint8_t *need)
{
	return first_short(have, need) < 0;
}

static int eval_module(const ev_dcap_collateral_t *c, const uint8_t *body,
		       struct ev_dcap_tcb_result *r, struct kiln_err *err)
{
	const char *doc = "TCB Info tdxModuleIdentities";
	const uint8_t *svn = body + TDR_TEE_TCB_SVN;
	const json_t *ids = json_object_get(c->tcb_info, "tdxModuleIdentities"), *id = NULL;
	const json_t *it, *level;
	char name[16];
	size_t i, idx;
	bool eq;
	int ret;

	if (svn[1] == 0) {
		/* TDX module major version 0: only the generic tdxModule identity applies. */
		id = json_object_get(c->tcb_info, "tdxModule");
		if (!id)
			return 0;
	} else {
		snprintf(name, sizeof(name), "TDX_%02X", svn[1]);
		json_array_foreach(ids, i, it)
			if (json_is_string(json_object_get(it, "id")) &&
			    strcmp(json_string_value(json_object_get(it, "id")), name) == 0)
				id = it;
		if (!id)
			return kiln_err_set(err, -KILN_ETCB,
					    "TCB level not supported: TDX module identity %s "
					    "(TEE_TCB_SVN[1] = %u) is not in the TCB Info", name,
					    svn[1]);
	}
	if (hex_eq_masked(json_string_value(json_object_get(id, "mrsigner")), NULL,
			  body + TDR_MRSIGNERSEAM, 48, &eq))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad mrsigner", doc);
	if (!eq)
		return kiln_err_set(err, -KILN_EMEASUREMENT,
				    "TD report MRSIGNERSEAM does not match the TDX module "
				    "identity");
	if (hex_eq_masked(json_string_value(json_object_get(id, "attributes")),
			  json_string_value(json_object_get(id, "attributesMask")),
			  body + TDR_SEAM_ATTRIBUTES, 8, &eq))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: bad attributes", doc);
	if (!eq)
		return kiln_err_set(err, -KILN_EMEASUREMENT,
				    "TD report SEAMATTRIBUTES do not match the TDX module "
				    "identity");
	if (svn[1] == 0)
		return 0;
	ret = isvsvn_level(json_object_get(id, "tcbLevels"), svn[0], doc, &idx, err);
	if (ret < 0)
		return ret;
	if (ret > 0)
		return kiln_err_set(err, -KILN_ETCB,
				    "TCB level not supported: TDX module %s SVN %u is below every "
				    "module TCB level", name, svn[0]);
	level = json_array_get(json_object_get(id, "tcbLevels"), idx);
	if ((ret = level_status(level, doc, &r->module, err)))
		return ret;
	r->has_module = 1;
	return add_advisories(r, level, doc, err);
}

/* TD 1.5 relaunch advice (Intel QVL TDRelaunchCheck): the SGX side and the QE are
 * fine, the TD is OutOfDate together with its TDX module, but TEE_TCB_SVN2 — the module
 * the platform runs now — meets the latest TCB level (and module level). */
static int relaunch_check(const ev_dcap_collateral_t *c, const uint8_t *body,
			  struct ev_dcap_tcb_result *r, struct kiln_err *err)
{
	const uint8_t *svn2 = body + TDR_TEE_TCB_SVN2;
	const json_t *latest = json_array_get(json_object_get(c->tcb_info, "tcbLevels"), 0);
	uint8_t need[16];
	int64_t module_svn;
	bool current;

	if (r->qe == EV_DCAP_OUT_OF_DATE || r->qe == EV_DCAP_REVOKED ||
	    r->sgx_level > EV_DCAP_CONFIGURATION_AND_SW_HARDENING_NEEDED ||
	    (r->status != EV_DCAP_OUT_OF_DATE && r->status != EV_DCAP_OUT_OF_DATE_CONFIGURATION_NEEDED) ||
	    !r->has_module || r->module != EV_DCAP_OUT_OF_DATE)
		return 0;
	if (components(json_object_get(latest, "tcb"), "tdx", 3, need))
		return kiln_err_set(err, -KILN_EFORMAT, "TCB Info: level 0: bad TDX components");
	if (svn2[1] == 0) {
		current = svn2[0] >= need[0] && svn2[2] >= need[2];
	} else {
		const json_t *ids = json_object_get(c->tcb_info, "tdxModuleIdentities"), *it;
		const json_t *id = NULL;
		char name[16];
		size_t i;

		snprintf(name, sizeof(name), "TDX_%02X", svn2[1]);
		json_array_foreach(ids, i, it)
			if (json_is_string(json_object_get(it, "id")) &&
			    strcmp(json_string_value(json_object_get(it, "id")), name) == 0)
				id = it;
		if (!id)
			return kiln_err_set(err, -KILN_ETCB,
					    "TCB level not supported: TDX module identity %s "
					    "(TEE_TCB_SVN2[1]) is not in the TCB Info", name);
		if (svn_of(json_object_get(json_object_get(json_array_get(
				json_object_get(id, "tcbLevels"), 0), "tcb"), "isvsvn"), 255,
			   &module_svn))
			return kiln_err_set(err, -KILN_ETCB, "TCB level not supported: TDX module "
					    "%s has no TCB level", name);
		current = svn2[0] >= module_svn && svn2[2] >= need[2];
	}
	r->relaunch_advised = current;
	return 0;
}

static void hex6(const uint8_t *b, size_t n, char *out)
{
	kiln_hex_encode(b, n, out);
}

int ev_dcap_eval_tcb(const ev_dcap_collateral_t *c, const struct ev_dcap_pck_ext *ext,
		     const struct ev_dcap_quote *q, struct ev_dcap_tcb_result *r, struct kiln_err *err)
{
	const char *doc = "TCB Info";
	const json_t *levels = json_object_get(c->tcb_info, "tcbLevels"), *level;
	bool tdx = q->tee_type == EV_DCAP_TEE_TDX, sgx_found = false;
	uint8_t need[16];
	char a[16], b[16], why[128] = "no TCB levels";
	size_t i;
	int64_t pcesvn;
	int ret, match = -1;

	if (strcmp(c->tcb_id, tdx ? "TDX" : "SGX") != 0 ||
	    strcmp(c->qe_id, tdx ? "TD_QE" : "QE") != 0)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "collateral is for %s (TCB Info id %s, QE Identity id %s) but "
				    "the quote is %s", c->tcb_id, c->tcb_id, c->qe_id,
				    tdx ? "TDX" : "SGX");
	if (memcmp(c->fmspc, ext->fmspc, 6) != 0) {
		hex6(c->fmspc, 6, a);
		hex6(ext->fmspc, 6, b);
		return kiln_err_set(err, -KILN_ETCB, "TCB Info FMSPC %s does not match the PCK "
				    "certificate FMSPC %s", a, b);
	}
	if (memcmp(c->pceid, ext->pceid, 2) != 0) {
		hex6(c->pceid, 2, a);
		hex6(ext->pceid, 2, b);
		return kiln_err_set(err, -KILN_ETCB, "TCB Info PCE-ID %s does not match the PCK "
				    "certificate PCE-ID %s", a, b);
	}
	if (!json_is_array(levels))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: tcbLevels is not an array", doc);
	json_array_foreach(levels, i, level) {
		const json_t *tcb = json_object_get(level, "tcb");

		if (!sgx_found) {
			if (components(tcb, "sgx", c->tcb_version, need) ||
			    svn_of(json_object_get(tcb, "pcesvn"), 65535, &pcesvn))
				return kiln_err_set(err, -KILN_EFORMAT,
						    "%s: level %zu: bad SGX components or pcesvn",
						    doc, i);
			if (!all_ge(ext->comp_svn, need) || ext->pcesvn < pcesvn) {
				int k = first_short(ext->comp_svn, need);

				/* Kept for the last (most permissive) level examined. */
				if (k >= 0)
					snprintf(why, sizeof(why),
						 "level %zu needs SGX TCB component %d SVN >= %u, "
						 "the PCK certificate has %u",
						 i, k + 1, need[k], ext->comp_svn[k]);
				else
					snprintf(why, sizeof(why),
						 "level %zu needs PCESVN >= %lld, the PCK "
						 "certificate has %u", i, (long long)pcesvn,
						 ext->pcesvn);
				continue;
			}
			sgx_found = true;
			if (!tdx) {
				match = (int)i;
				break;
			}
			enum ev_dcap_status st;

			if ((ret = level_status(level, doc, &st, err)))
				return ret;
			r->sgx_level = st;
			if (st == EV_DCAP_REVOKED) {
				match = (int)i;
				break;
			}
		}
		if (components(tcb, "tdx", 3, need))
			return kiln_err_set(err, -KILN_EFORMAT,
					    "%s: level %zu: bad TDX components", doc, i);
		if (all_ge(q->body + TDR_TEE_TCB_SVN, need)) {
			match = (int)i;
			break;
		}
		{
			int k = first_short(q->body + TDR_TEE_TCB_SVN, need);

			snprintf(why, sizeof(why),
				 "level %zu needs TDX TCB component %d SVN >= %u, "
				 "TEE_TCB_SVN has %u", i, k + 1, need[k],
				 q->body[TDR_TEE_TCB_SVN + k]);
		}
	}
	if (match < 0) {
		hex6(c->fmspc, 6, a);
		return kiln_err_set(err, -KILN_ETCB,
				    "TCB level not supported: no level of the TCB Info (FMSPC %s) "
				    "matches the platform (%s)", a, why);
	}
	level = json_array_get(levels, (size_t)match);
	r->level_index = match;
	if ((ret = level_status(level, doc, &r->platform, err)) ||
	    (ret = add_advisories(r, level, doc, err)))
		return ret;
	r->status = r->platform;
	if (tdx) {
		if ((ret = eval_module(c, q->body, r, err)))
			return ret;
		if (r->has_module)
			r->status = converge(r->status, r->module);
		if (q->body_type == 3 && (ret = relaunch_check(c, q->body, r, err)))
			return ret;
	}
	r->status = converge(r->status, r->qe);
	return 0;
}
