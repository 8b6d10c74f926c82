/* kiln-cas attestation API: GET /v1/nonce and POST /v1/attest (docs/api.md,
 * docs/attestation.md): evidence, binding, policy decision, and the release of
 * the service's configuration. */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evidence/evidence.h"

/* ---- nonces ---- */

void cas__api_nonce(struct cas__req *rc)
{
	struct cas__server *s = rc->s;
	char client[CAS_CLIENT_KEY_SIZE], hex[65];
	uint8_t nonce[32];
	int ret;

	cas__client_key(rc->peer_id[0] ? rc->peer_spki : NULL, rc->conn->addr, client);
	ret = cas__nonce_issue(&s->nonces, client, rc->peer_id[0] != '\0', kiln_now_ns(), nonce);
	if (ret == -EUSERS) {
		kiln_log(KILN_LOG_WARN, "nonce refused: client holds its limit", "client=%s "
			 "request_id=%s", client, rc->request_id);
		cas__fail(rc, -EAGAIN, "too many outstanding nonces for this client, use or let "
			    "them expire first");
		return;
	}
	if (ret == -ENOSPC) {
		kiln_log(KILN_LOG_WARN, "nonce refused: table full", "client=%s request_id=%s",
			 client, rc->request_id);
		cas__fail(rc, -EAGAIN, "too many outstanding nonces, retry later");
		return;
	}
	if (ret < 0) {
		cas__fail(rc, ret, NULL); /* -ENOMEM, -KILN_ECRYPTO: 500 */
		return;
	}
	if (cas__snonces_on(&s->snonces) &&
	    cas__snonce_add(&s->snonces, nonce, (int64_t)time(NULL) + CAS_NONCE_TTL_S) < 0) {
		(void)cas__nonce_consume(&s->nonces, nonce, kiln_now_ns());
		kiln_log(KILN_LOG_WARN, "nonce refused: the store failed", "error=\"%s\" "
			 "request_id=%s", cas__db_err(s->snonces.c.db)->msg, rc->request_id);
		cas__fail(rc, -EAGAIN, "the store is unavailable, retry later");
		return;
	}
	kiln_hex_encode(nonce, sizeof(nonce), hex);
	cas__reply_json(rc, 200, json_pack("{s:s,s:i}", "nonce", hex, "expires_in",
					   CAS_NONCE_TTL_S));
}

/* Is the nonce known and fresh (it stays)? With a PostgreSQL store it may have
 * been issued by another replica. */
static bool nonce_peek(struct cas__server *s, const uint8_t nonce[32])
{
	if (cas__nonce_peek(&s->nonces, nonce, kiln_now_ns()))
		return true;
	return cas__snonces_on(&s->snonces) &&
	       cas__snonce_peek(&s->snonces, nonce, (int64_t)time(NULL)) == 1;
}

/* Use the nonce: true for exactly one of several racing requests (at any
 * replica of a PostgreSQL store, whose row is the one that counts). */
static bool nonce_consume(struct cas__server *s, const uint8_t nonce[32])
{
	bool local = cas__nonce_consume(&s->nonces, nonce, kiln_now_ns());

	if (!cas__snonces_on(&s->snonces))
		return local;
	return cas__snonce_take(&s->snonces, nonce, (int64_t)time(NULL)) == 1;
}

/* ---- attestation ---- */

/* One attestation through its steps (cas__api_attest); everything it owns is
 * released at the end of the request. */
struct attest {
	const char *session, *service, *tee; /* borrowed from req.body */
	const char *wm; /* hardware tees: the request's workload_measurement */
	bool insecure;
	bool hw;        /* sgx, tdx, snp: the measurement comes beside the evidence */
	bool burn;      /* consume the nonce at the end (refused before the store) */
	const char *label;
	char reason[512];
	struct cas__attest_req req; /* req.body owned */
	uint8_t *evidence;         /* owned, decoded */
	size_t evidence_size;
	char **trust;              /* owned: LAS or AMD certificates for the backend */
	char amd_missing[256];     /* snp: what the store lacks for this report, or "" */
	json_t *collateral;        /* owned: the backend's collateral (sgx, tdx) */
	json_t *claims;            /* owned: what the evidence proves */
	struct pol_policy *p;      /* the session's policy: a reference (cas__policy_unref) */
	const struct pol_service *svc; /* in p */
	time_t at;                 /* the evidence was verified at (the decision's now) */
	char owner[CAS_ID_SIZE];   /* p's owner */
};

/* Escape a value for a quoted logfmt field. */
static void log_escape(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in && o + 3 < size; in++) {
		if (*in == '"' || *in == '\\')
			out[o++] = '\\';
		out[o++] = (unsigned char)*in < 0x20 ? ' ' : *in;
	}
	out[o] = '\0';
}

static void refuse_attest(struct cas__req *rc, struct attest *a, const char *label)
{
	char reason[2 * sizeof(a->reason)];

	a->label = label;
	log_escape(a->reason, reason, sizeof(reason));
	kiln_log(KILN_LOG_WARN, "attestation refused",
		 "reason=\"%s\" label=%s request_id=%s session=%s service=%s tee=%s%s%s%s",
		 reason, label, rc->request_id, a->session ? a->session : "-",
		 a->service ? a->service : "-", a->tee ? a->tee : "-",
		 a->insecure ? " INSECURE=sim" : "", a->wm ? " workload_measurement=" : "",
		 a->wm ? a->wm : "");
	cas__metrics_refused(&rc->s->m, label);
	cas__fail_json(rc, -KILN_EPOLICY, json_pack("{s:s,s:s}", "error", "attestation refused",
						    "request_id", rc->request_id));
}

/* Build the service configuration (inside the caller's transaction); sc resolves
 * the secrets and collects the releases of imported ones; the ids of the volumes
 * go to vol_ids (CAS_GRANT_MAX_VOLUMES entries), their count to *n_vols. */
static int build_config(struct cas__req *rc, struct cas__secret_ctx *sc, json_t *resp,
			char (*vol_ids)[33], size_t *n_vols, struct kiln_err *err)
{
	const struct pol_policy *p = sc->policy;
	const struct pol_service *svc = sc->svc;
	json_t *argv = json_array(), *env = json_object(), *files = json_array();
	json_t *vols = json_array();
	char *out = NULL;
	size_t size = 0;
	int ret = -ENOMEM;

	if (!argv || !env || !files || !vols)
		goto out;
	for (size_t i = 0; i < svc->n_command; i++) {
		ret = pol_substitute(svc->command[i], cas__secret_resolve, sc, false, &out, &size,
				     err);
		if (ret < 0) {
			kiln_err_prefix(err, "command[%zu]: ", i);
			goto out;
		}
		json_array_append_new(argv, json_stringn(out, size));
		kiln_free_secret(out, size);
	}
	for (size_t i = 0; i < svc->n_env; i++) {
		ret = pol_substitute(svc->env[i].value, cas__secret_resolve, sc, false, &out,
				     &size, err);
		if (ret < 0) {
			kiln_err_prefix(err, "environment %s: ", svc->env[i].name);
			goto out;
		}
		json_object_set_new(env, svc->env[i].name, json_stringn(out, size));
		kiln_free_secret(out, size);
	}
	for (size_t i = 0; i < svc->n_files; i++) {
		char mode[8], *b64;

		ret = pol_substitute(svc->files[i].content, cas__secret_resolve, sc, true, &out,
				     &size, err);
		if (ret < 0) {
			kiln_err_prefix(err, "file %s: ", svc->files[i].path);
			goto out;
		}
		b64 = kiln_b64_encode(out, size);
		kiln_free_secret(out, size);
		if (!b64) {
			ret = -ENOMEM;
			goto out;
		}
		snprintf(mode, sizeof(mode), "%04o", svc->files[i].mode);
		json_array_append_new(files, json_pack("{s:s,s:s,s:s}", "path", svc->files[i].path,
						       "content", b64, "mode", mode));
		kiln_free_secret(b64, strlen(b64));
	}
	*n_vols = 0;
	for (size_t i = 0; i < svc->n_mounts && i < CAS_GRANT_MAX_VOLUMES; i++) {
		struct cas__volume v;
		char key[65];

		ret = cas__volume_get_or_create(&rc->s->st, p->name, svc->mounts[i].volume, &v);
		if (ret < 0) {
			kiln_err_set(err, ret, "volume %s: %s", svc->mounts[i].volume,
				     kiln_strerror(ret));
			goto out;
		}
		kiln_hex_encode(v.key, sizeof(v.key), key);
		json_array_append_new(vols, json_pack("{s:s,s:s,s:s,s:s,s:o}", "name", v.name,
						      "id", v.id, "path", svc->mounts[i].path,
						      "key", key, "tag", cas__tag_json(&v)));
		memcpy(vol_ids[(*n_vols)++], v.id, sizeof(v.id));
		kiln_wipe(key, sizeof(key));
		kiln_wipe(v.key, sizeof(v.key));
	}
	ret = cas__net_config(sc, resp, err);
	if (ret < 0)
		goto out;
	json_object_set(resp, "argv", argv);
	json_object_set(resp, "env", env);
	json_object_set_new(resp, "pwd", json_string(svc->pwd));
	json_object_set(resp, "files", files);
	json_object_set(resp, "volumes", vols);
	ret = 0;
out:
	if (ret == -ENOMEM)
		kiln_err_set(err, ret, "out of memory");
	json_decref(argv);
	json_decref(env);
	json_decref(files);
	json_decref(vols);
	return ret;
}

/* The secrets of other policies that this attestation released (imports) are
 * audited and logged under each exporting policy too, so its owner sees every
 * release of its secrets (inside the caller's transaction). */
static int audit_exports(struct cas__req *rc, const struct cas__secret_ctx *sc,
			 const struct attest *a, const json_t *claims)
{
	for (size_t i = 0; i < sc->n_releases; i++) {
		const struct cas__release *r = &sc->releases[i];
		json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:s?,s:s}", "imported_by",
				      r->importer, "via_session", a->session, "service",
				      a->service, "secret", r->secret, "tee", a->tee,
				      "policy_hash", r->exporter_hash, "insecure", a->insecure,
				      "workload_measurement",
				      json_string_value(json_object_get(claims,
									"workload_measurement")),
				      "request_id", rc->request_id);

		if (cas__audit_append(&rc->s->st, "secrets.release", rc->peer_id, r->exporter,
				    d) < 0)
			return -EIO;
		kiln_log(KILN_LOG_INFO, "exported secret released",
			 "session=%s secret=%s imported_by=%s via_session=%s service=%s tee=%s "
			 "request_id=%s", r->exporter, r->secret, r->importer, a->session,
			 a->service, a->tee, rc->request_id);
	}
	return 0;
}

static int hex_field(const json_t *claims, const char *key, uint8_t *out, size_t size)
{
	const char *h = json_string_value(json_object_get(claims, key));

	return h ? kiln_hex_decode(h, out, size, NULL) : -KILN_EFORMAT;
}

/* The request: its body, and a workload_measurement exactly for hardware tees. */
static int attest_request(struct cas__req *rc, struct attest *a)
{
	struct kiln_err err = { 0 };
	size_t text_size = 0;
	char *text;
	int ret;

	if (!rc->peer) {
		cas__fail(rc, -ENOKEY, "attestation needs the workload's TLS client certificate");
		return -ENOKEY;
	}
	text = cas__read_body(rc, &text_size);
	if (!text) {
		cas__fail(rc, -ENOMEM, NULL);
		return -ENOMEM;
	}
	ret = cas__attest_req_parse(text, text_size, &a->req, &err);
	kiln_free_secret(text, text_size + 1);
	if (ret < 0) {
		cas__fail(rc, ret, kiln_err_msg(&err, ret));
		return ret;
	}
	a->session = a->req.session;
	a->service = a->req.service;
	a->tee = a->req.tee;
	a->insecure = !strcmp(a->tee, "sim");
	/* Hardware TEEs cannot carry the kiln workload measurement in their claims: it
	 * comes beside the evidence and is checked through report_data (the binding). */
	a->hw = !strcmp(a->tee, "sgx") || !strcmp(a->tee, "tdx") || !strcmp(a->tee, "snp");
	a->wm = a->hw ? a->req.workload_measurement : NULL;
	if (a->hw && !a->req.workload_measurement) {
		cas__fail(rc, -KILN_EFORMAT, "workload_measurement (96 hex) is required for a "
			  "hardware tee");
		return -KILN_EFORMAT;
	}
	if (!a->hw && a->req.workload_measurement) {
		cas__fail(rc, -KILN_EFORMAT, "workload_measurement is only for hardware tees "
			  "(sgx, tdx, snp): sim and host evidence carries it");
		return -KILN_EFORMAT;
	}
	return 0;
}

/* What the backend verifies against, read from the store through the read-only
 * connection (the store lock is not held): trusted LAS keys (host), AMD chains
 * (snp) or the collateral (sgx, tdx). */
static int attest_trust(struct cas__req *rc, struct attest *a, struct ev_verify_opts *opts)
{
	struct cas__server *s = rc->s;
	size_t n = 0;
	int ret;

	if (!strcmp(a->tee, "host") || !strcmp(a->tee, "snp")) {
		char *leaf = NULL;
		int lr = -ENOENT;

		pthread_mutex_lock(&s->reader_lock);
		ret = a->tee[0] == 'h' ? cas__las_list(&s->rd, &a->trust, &n) :
		      cas__tee_trust_list(&s->rd, a->tee, &a->trust, &n);
		/* SNP: the stored VCEK of the report's chip and TCB (or the VLEK of
		 * its TCB) goes first, so the verifier takes it among many chips'. */
		if (ret == 0 && a->tee[0] == 's')
			lr = cas__amd_leaf_for(&s->rd, a->evidence, a->evidence_size, &leaf,
					       a->amd_missing, sizeof(a->amd_missing));
		pthread_mutex_unlock(&s->reader_lock);
		if (ret == 0 && leaf) {
			char **v = realloc(a->trust, (n + 2) * sizeof(*v)); /* NULL-ended */

			if (v) {
				memmove(v + 1, v, n * sizeof(*v));
				v[0] = leaf;
				v[n + 1] = NULL;
				a->trust = v;
				n++;
				leaf = NULL;
			}
			ret = v ? 0 : -ENOMEM;
		}
		free(leaf);
		if (ret < 0 || lr == -EIO || lr == -ENOMEM) {
			cas__fail(rc, -EIO, NULL);
			return -EIO;
		}
		if (lr == 0)
			a->amd_missing[0] = '\0';
		opts->certs_pem = (const char *const *)a->trust;
		opts->n_certs = n;
	} else if (a->hw) {
		/* Intel: the collateral of the quote's platform (FMSPC). */
		char fmspc[EV_FMSPC_SIZE];
		struct kiln_err err = { 0 };

		if (ev_dcap_quote_fmspc(a->evidence, a->evidence_size, fmspc, &err) < 0) {
			snprintf(a->reason, sizeof(a->reason), "evidence does not verify: %.400s",
				 err.msg);
			refuse_attest(rc, a, "bad_evidence");
			return -KILN_EPOLICY;
		}
		pthread_mutex_lock(&s->reader_lock);
		ret = cas__collateral_for(&s->rd, a->tee, fmspc, &a->collateral);
		pthread_mutex_unlock(&s->reader_lock);
		if (ret == -ENOENT) {
			/* With --pccs the refresher fetches it now; this one is refused. */
			cas__refresher_want(&s->refresher, a->tee, fmspc);
			snprintf(a->reason, sizeof(a->reason), "no collateral for tee %s FMSPC %s "
				 "(kiln cas collateral add FILE --tee %s%s)", a->tee, fmspc, a->tee,
				 s->refresher.started ? "; asked the PCCS for it" : "");
			refuse_attest(rc, a, "no_collateral");
			return -KILN_EPOLICY;
		}
		if (ret < 0) {
			cas__fail(rc, -EIO, NULL);
			return -EIO;
		}
		opts->collateral = a->collateral;
	}
	return 0;
}

/* Step 1: the evidence verifies, for a nonce this CAS issued, into a->claims.
 * It runs without the store lock, so loops verify in parallel; the nonce is only
 * peeked at here, and burnt (a->burn) by any refusal before the store is ours:
 * no retries with it. */
static int attest_verify_evidence(struct cas__req *rc, struct attest *a)
{
	struct cas__server *s = rc->s;
	struct kiln_err err = { 0 };
	struct ev_verify_opts opts = { 0 };
	const struct ev_backend *be;
	int ret;

	if (!a->req.nonce_ok || !nonce_peek(s, a->req.nonce)) {
		snprintf(a->reason, sizeof(a->reason), "stale nonce: unknown, already used or "
			 "expired");
		refuse_attest(rc, a, "stale_nonce");
		return -KILN_ENONCE;
	}
	a->burn = true;
	be = ev_backend_find(a->tee);
	if (!be) {
		snprintf(a->reason, sizeof(a->reason), "unknown tee \"%.32s\"", a->tee);
		refuse_attest(rc, a, "unknown_tee");
		return -KILN_EPOLICY;
	}
	a->insecure = be->insecure;
	if (kiln_b64_decode(a->req.evidence_b64, &a->evidence, &a->evidence_size) < 0) {
		snprintf(a->reason, sizeof(a->reason), "evidence is not base64");
		refuse_attest(rc, a, "bad_evidence");
		return -KILN_EFORMAT;
	}
	ret = attest_trust(rc, a, &opts);
	if (ret < 0)
		return ret;
	opts.at = a->at = s->evidence_at ? s->evidence_at : time(NULL);
	ret = be->verify(a->evidence, a->evidence_size, &opts, &a->claims, &err);
	if (ret < 0) {
		/* Without the report's own certificate in the store, that is the likely
		 * cause: say which chip and what to import, then the verifier's check. */
		snprintf(a->reason, sizeof(a->reason), "%s%sevidence does not verify: %s",
			 a->amd_missing, a->amd_missing[0] ? "; " : "", kiln_err_msg(&err, ret));
		refuse_attest(rc, a, "bad_evidence");
		return ret;
	}
	return 0;
}

/* Step 2: the evidence is bound to this connection: claims.report_data is
 * SHA-512(kiln-v1 || TLS client key || nonce || workload_measurement). */
static int attest_check_binding(struct cas__req *rc, struct attest *a)
{
	uint8_t rd[EV_REPORT_DATA_SIZE], want[EV_REPORT_DATA_SIZE], wm[EV_WM_SIZE];
	uint8_t *spki = NULL;
	int spki_size, ret = 0;

	spki_size = cas__x509_cert_spki_der(rc->peer, &spki);
	/* For hardware TEEs, wm is the request's workload_measurement (validated as 96
	 * hex by cas__attest_req_parse). It is put into the claims here, but nothing
	 * uses it unless the comparison below holds, which makes it hardware-bound;
	 * otherwise the request is refused. */
	if (a->hw && json_object_set_new(a->claims, "workload_measurement",
					 json_string(a->req.workload_measurement)) < 0) {
		cas__fail(rc, -ENOMEM, NULL);
		ret = -ENOMEM;
		goto out;
	}
	if (spki_size <= 0 || hex_field(a->claims, "report_data", rd, sizeof(rd)) < 0 ||
	    hex_field(a->claims, "workload_measurement", wm, sizeof(wm)) < 0 ||
	    ev_binding(spki, (size_t)spki_size, a->req.nonce, wm, want) < 0 ||
	    !kiln_ct_equal(rd, want, sizeof(rd))) {
		snprintf(a->reason, sizeof(a->reason), "binding mismatch: claims.report_data is "
			 "not SHA-512(kiln-v1 || TLS client key || nonce || workload_measurement)");
		refuse_attest(rc, a, "binding_mismatch");
		ret = -KILN_EBINDING;
	}
out:
	OPENSSL_free(spki);
	return ret;
}

/* An attestation passed only thanks to a security.tolerate entry that ends
 * within 30 days: warn once per policy version (of the last CAS_TOL_WARNED), so
 * the operator updates the platform (or the policy) before the same workloads
 * start being refused. Store lock held. */
static void warn_tolerance_ending(struct cas__req *rc, const struct attest *a)
{
	struct cas__server *s = rc->s;
	const struct pol_tolerance *t = pol_tolerance_used(a->p, a->claims, a->at);
	unsigned n = s->n_tol_warned < CAS_TOL_WARNED ? s->n_tol_warned : CAS_TOL_WARNED;

	if (!t || t->until - a->at > CAS_TOL_WARN_SECONDS)
		return;
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(s->tol_warned[i], a->p->hash))
			return;
	memcpy(s->tol_warned[s->n_tol_warned++ % CAS_TOL_WARNED], a->p->hash,
	       sizeof(a->p->hash));
	kiln_log(KILN_LOG_WARN, "TCB tolerance ends soon",
		 "session=%s policy_hash=%s status=%s until=%s days_left=%lld request_id=%s",
		 a->p->name, a->p->hash, pol_tolerance_status_name(t), t->until_day,
		 (long long)((t->until - a->at) / 86400), rc->request_id);
}

/* Step 3 (store lock held): the nonce is consumed (of requests racing with one
 * nonce, the first here goes on), and the session's policy decides on the
 * claims for the service. */
static int attest_decide(struct cas__req *rc, struct attest *a)
{
	struct cas__server *s = rc->s;
	struct kiln_err err = { 0 };
	int ret;

	if (!nonce_consume(s, a->req.nonce)) {
		snprintf(a->reason, sizeof(a->reason), "stale nonce: unknown, already used or "
			 "expired");
		refuse_attest(rc, a, "stale_nonce");
		return -KILN_ENONCE;
	}
	if (!pol_name_valid(a->session) ||
	    cas__policy_load(&s->st, a->session, &a->p, a->owner, &err) < 0) {
		snprintf(a->reason, sizeof(a->reason), "unknown session \"%.128s\"", a->session);
		refuse_attest(rc, a, "unknown_session");
		return -KILN_EPOLICY;
	}
	a->svc = pol_find_service(a->p, a->service);
	if (!a->svc) {
		snprintf(a->reason, sizeof(a->reason), "unknown service \"%.64s\" in session %s",
			 a->service, a->p->name);
		refuse_attest(rc, a, "unknown_service");
		return -KILN_EPOLICY;
	}
	ret = pol_decide(a->p, a->svc, a->claims, a->at, a->reason, sizeof(a->reason),
			 &a->label);
	if (ret < 0) {
		refuse_attest(rc, a, a->label);
		return ret;
	}
	warn_tolerance_ending(rc, a);
	return 0;
}

/* In the release's transaction: the grant of the volumes the service mounts
 * (only such a service gets one: nothing else uses it), written with the
 * release, so both or neither commit and every CAS process of the store sees
 * it. *evicted: the policy's oldest grant made room (logged by the caller once
 * the release is kept). Negative: rolled back and answered. */
static int attest_grant(struct cas__req *rc, struct attest *a, char (*vol_ids)[33],
			size_t n_vols, bool *evicted)
{
	struct cas__server *s = rc->s;
	int ret;

	*evicted = false;
	if (!n_vols)
		return 0;
	ret = cas__grant_put(&s->st, &s->grants, rc->peer_spki, a->session, vol_ids, n_vols,
			     cas__grant_clock(), evicted);
	if (ret == -ENOSPC) {
		cas__tx_rollback(rc);
		kiln_log(KILN_LOG_WARN, "attestation refused: grant table full",
			 "session=%s limit=%zu request_id=%s", a->session, s->grants.max_total,
			 rc->request_id);
		cas__fail(rc, -EAGAIN, "too many live grants, retry later");
		return ret;
	}
	if (ret < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, ret == -EAGAIN ? -EAGAIN : -EIO, NULL);
		return ret;
	}
	return 0;
}

/* Step 4 (store lock held): the release, in one transaction: the service's
 * configuration with its secrets (an exporter's rules may still refuse one), the
 * audit under the session and under every exporter, then a grant for the
 * volumes to the attested key. */
static void attest_release(struct cas__req *rc, struct attest *a)
{
	struct cas__server *s = rc->s;
	struct kiln_err err = { 0 };
	struct cas__secret_ctx sc = { 0 };
	char vol_ids[CAS_GRANT_MAX_VOLUMES][33];
	size_t n_vols = 0;
	const char *supervised_by;
	json_t *resp, *rel;
	bool evicted;
	int ret;

	resp = json_pack("{s:s,s:b,s:s}", "request_id", rc->request_id, "insecure", a->insecure,
			 "tee", a->tee);
	if (!resp) {
		cas__fail(rc, -ENOMEM, NULL);
		return;
	}
	if (cas__tx_begin(rc) < 0) {
		cas__fail(rc, -EBUSY, NULL);
		goto out;
	}
	/* The policy was read before the transaction: another CAS process of a
	 * shared store may have changed or deleted it since (its secrets with it). */
	if (cas__tx_policy_current(rc, a->p) < 0)
		goto out;
	sc.st = &s->st;
	sc.policy = a->p;
	sc.owner = a->owner;
	sc.host = a->req.host;
	sc.svc = a->svc;
	sc.claims = a->claims;
	sc.at = a->at;
	ret = build_config(rc, &sc, resp, vol_ids, &n_vols, &err);
	if (ret < 0) {
		cas__tx_rollback(rc);
		snprintf(a->reason, sizeof(a->reason), "configuration: %s",
			 kiln_err_msg(&err, ret));
		refuse_attest(rc, a, sc.label ? sc.label : "config_error");
		goto out;
	}
	if (attest_grant(rc, a, vol_ids, n_vols, &evicted) < 0)
		goto out;
	supervised_by = json_string_value(json_object_get(a->claims, "supervised_by"));
	rel = json_pack("{s:s,s:s,s:s,s:b,s:s?,s:s}", "service", a->service, "tee", a->tee,
			"policy_hash", a->p->hash, "insecure", a->insecure, "workload_measurement",
			json_string_value(json_object_get(a->claims, "workload_measurement")),
			"request_id", rc->request_id);
	/* host evidence for a statically linked program: which kiln build runs it
	 * supervised (docs/las.md). */
	if (rel && supervised_by)
		json_object_set_new(rel, "supervised_by", json_string(supervised_by));
	if (cas__audit_append(&s->st, "secrets.release", rc->peer_id, a->session, rel) < 0 ||
	    audit_exports(rc, &sc, a, a->claims) < 0 || cas__tx_release(rc) < 0) {
		cas__tx_rollback(rc);
		cas__fail(rc, -EIO, NULL);
		goto out;
	}
	cas__metrics_attest_ok(&s->m);
	if (evicted)
		kiln_log(KILN_LOG_WARN, "grant evicted: policy holds its limit of live grants",
			 "session=%s limit=%zu request_id=%s", a->session,
			 s->grants.max_per_policy, rc->request_id);
	kiln_log(a->insecure ? KILN_LOG_WARN : KILN_LOG_INFO, a->insecure ?
		 "attestation ok (INSECURE: sim backend, no protection)" : "attestation ok",
		 "request_id=%s session=%s service=%s tee=%s insecure=%s%s%s", rc->request_id,
		 a->session, a->service, a->tee, a->insecure ? "true" : "false",
		 supervised_by ? " supervised_by=" : "", supervised_by ? supervised_by : "");
	cas__reply_json(rc, 200, resp);
	resp = NULL;
out:
	json_decref(resp);
}

/* POST /v1/attest: request -> evidence -> binding -> (store) decision -> release.
 * Each step answers its own refusal. */
void cas__api_attest(struct cas__req *rc)
{
	struct cas__server *s = rc->s;
	struct attest a = { 0 };

	if (attest_request(rc, &a) < 0 || attest_verify_evidence(rc, &a) < 0 ||
	    attest_check_binding(rc, &a) < 0)
		goto out;
	if (!cas__store_enter(rc)) {
		a.burn = false; /* parked: dispatched again later, the nonce is needed then */
		goto out;
	}
	a.burn = false; /* attest_decide consumes it */
	if (attest_decide(rc, &a) < 0)
		goto out;
	attest_release(rc, &a);
out:
	if (a.burn)
		(void)nonce_consume(s, a.req.nonce);
	json_decref(a.claims);
	json_decref(a.collateral);
	json_decref(a.req.body);
	cas__strv_free(a.trust);
	free(a.evidence);
	cas__policy_unref(&s->st, a.p);
}
