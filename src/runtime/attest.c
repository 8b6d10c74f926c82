/* kiln runtime: attestation before main (design §2, BRIEF-protocol).
 *
 * 1. an ephemeral P-256 key and a self-signed certificate (CN=kiln-workload);
 * 2. GET /v1/nonce;
 * 3. the workload measurement of this process (ev_workload_measure_pid(0),
 *    which leaves libkiln itself out, as `kiln measure` does);
 * 4. report_data = ev_binding(SPKI, nonce, measurement); evidence from the
 *    backend (sim: INSECURE, for development; host: kiln-las);
 * 5. POST /v1/attest over TLS with the ephemeral certificate as client
 *    certificate; the answer carries argv, env, pwd, files and volumes.
 * The key stays in memory for the life of the process: it authenticates the
 * volume freshness calls (prepare/commit) that the CAS allows for this grant. */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cas/cas.h"
#include "crypto/crypto.h"
#include "evidence/evidence.h"
#include "pf/pf.h"
#include "runtime/rt_int.h"

static EVP_PKEY *g_key;
static X509 *g_cert;

static int make_identity(struct kiln_err *err)
{
	X509_NAME *name;
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	int ret = -KILN_ECRYPTO;

	g_key = EVP_EC_gen("P-256");
	g_cert = X509_new();
	if (!g_key || !g_cert || kc_random(serial, sizeof(serial)))
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(g_cert)) ||
	    !X509_set_version(g_cert, 2) || !X509_gmtime_adj(X509_getm_notBefore(g_cert), -300) ||
	    !X509_gmtime_adj(X509_getm_notAfter(g_cert), 24 * 3600) ||
	    !X509_set_pubkey(g_cert, g_key))
		goto out;
	name = X509_get_subject_name(g_cert);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)"kiln-workload", -1, -1, 0) ||
	    !X509_set_issuer_name(g_cert, name) || !X509_sign(g_cert, g_key, EVP_sha256()))
		goto out;
	ret = 0;
out:
	BN_free(bn);
	if (ret)
		kiln_err_set(err, ret, "cannot make the ephemeral workload key");
	return ret;
}

static void client_init(struct cas_client *c, bool with_key)
{
	memset(c, 0, sizeof(*c));
	c->url = g_rt.cfg.cas;
	c->ca_file = g_rt.cfg.cas_ca[0] ? g_rt.cfg.cas_ca : NULL;
	c->fingerprint = g_rt.cfg.cas_fingerprint[0] ? g_rt.cfg.cas_fingerprint : NULL;
	if (with_key) {
		c->key = g_key;
		c->cert = g_cert;
	}
}

/* The last CAS call failed before an HTTP answer (its message is complete). */
static bool g_unreachable;

/* One JSON request to the CAS; *out (owned by the caller) on HTTP 200. */
static int rt_cas_call(const char *method, const char *path, json_t *body, json_t **out,
		struct kiln_err *err)
{
	struct cas_client c;
	struct cas_response resp = { 0 };
	char *text = NULL;
	json_error_t jerr;
	int ret;

	*out = NULL;
	client_init(&c, g_key != NULL);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return kiln_err_set(err, -ENOMEM, "out of memory");
	}
	ret = cas_client_request(&c, method, path, body ? "application/json" : NULL, text,
				 text ? strlen(text) : 0, &resp, err);
	if (text)
		kiln_free_secret(text, strlen(text));
	if (ret) {
		/* Transport, TLS or pinning: the one line names the CAS. */
		kiln_err_prefix(err, "cannot reach the CAS at %s: ", c.url);
		g_unreachable = true;
		return ret;
	}
	if (resp.status != 200) {
		json_t *j = json_loads(resp.body ? resp.body : "", 0, &jerr);
		const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
		const char *id = j ? json_string_value(json_object_get(j, "request_id")) : NULL;

		if (resp.status == 403 && id && strcmp(path, "/v1/attest") == 0)
			/* The reason is in the CAS log under this id, never sent. */
			ret = kiln_err_set(err, -KILN_EDENIED, "attestation refused by the CAS "
					   "(request id %.64s)", id);
		else
			ret = kiln_err_set(err, resp.status == 403 ? -KILN_EDENIED : -EPROTO,
					   "%s %s: CAS answered %d: %.200s%s%.64s%s", method, path,
					   resp.status, e ? e : "(no message)",
					   id ? " (request id " : "", id ? id : "", id ? ")" : "");
		json_decref(j);
		cas_response_free(&resp);
		return ret;
	}
	*out = json_loads(resp.body ? resp.body : "", 0, &jerr);
	cas_response_free(&resp);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return kiln_err_set(err, -KILN_EFORMAT, "%s %s: the CAS answer is not a JSON "
				    "object", method, path);
	}
	return 0;
}

/* The "host" object: only the launcher variables named with --host-env. The
 * CAS does not tell which {{host.NAME}} a policy uses, and the launcher's whole
 * environment may hold the operator's own credentials: nothing else is sent.
 * A variable that is unset (or not UTF-8) is left out; the CAS then refuses a
 * policy that needs it. */
static json_t *host_values(void)
{
	json_t *h = json_object();

	for (size_t i = 0; h && i < g_rt.cfg.n_host_env; i++) {
		const char *v = getenv(g_rt.cfg.host_env[i]);
		json_t *s = v ? json_string(v) : NULL;

		if (s)
			json_object_set_new(h, g_rt.cfg.host_env[i], s);
	}
	return h;
}

/* KILN_MEASURE_ONLY=1 (`kiln measure`): print the measurement before main and
 * _exit, exactly as libkiln-measure.so does, so the value is what this library
 * measures at run time (same mappings, libkiln's own dependencies included). */
void rt_measure_only(void)
{
	const char *only = getenv("KILN_MEASURE_ONLY");
	const char *want_manifest = getenv("KILN_MEASURE_MANIFEST");
	struct kiln_err err = { 0 };
	uint8_t wm[EV_WM_SIZE];
	char hex[2 * EV_WM_SIZE + 2];
	char *manifest = NULL;
	int ret;

	if (!only || strcmp(only, "1") != 0)
		return;
	ret = ev_workload_measure_pid(0, wm, &manifest, &err);
	if (ret < 0) {
		rt_say("measure: %s", kiln_err_msg(&err, ret));
		rt_sys(SYS_exit_group, 111);
	}
	if (want_manifest && strcmp(want_manifest, "1") == 0)
		kiln_write_all(1, manifest, strlen(manifest));
	free(manifest);
	kiln_hex_encode(wm, sizeof(wm), hex);
	hex[2 * EV_WM_SIZE] = '\n';
	kiln_write_all(1, hex, 2 * EV_WM_SIZE + 1);
	rt_sys(SYS_exit_group, 0);
}

/* The answer of a successful attestation, applied by rt_attest_apply_*. */
static json_t *g_grant;

int rt_attest(struct kiln_err *err)
{
	uint8_t nonce[EV_NONCE_SIZE], wm[EV_WM_SIZE], rd[EV_REPORT_DATA_SIZE];
	uint8_t *spki = NULL, *ev = NULL;
	char nonce_hex[2 * EV_NONCE_SIZE + 1], *ev_b64 = NULL;
	const char *nh;
	json_t *j = NULL, *body = NULL;
	size_t ev_size = 0;
	int spki_size, ret;

	ret = make_identity(err);
	if (ret)
		goto out;
	spki_size = i2d_PUBKEY(g_key, &spki);
	if (spki_size <= 0) {
		ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot encode the workload key");
		goto out;
	}
	/* The nonce request goes without a client certificate. */
	{
		EVP_PKEY *k = g_key;

		g_key = NULL;
		ret = rt_cas_call("GET", "/v1/nonce", NULL, &j, err);
		g_key = k;
	}
	if (ret)
		goto out;
	nh = json_string_value(json_object_get(j, "nonce"));
	if (!nh || kiln_hex_decode(nh, nonce, sizeof(nonce), NULL)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "GET /v1/nonce: no 64-hex nonce in the "
				   "answer");
		goto out;
	}
	kiln_hex_encode(nonce, sizeof(nonce), nonce_hex);
	ret = ev_workload_measure_pid(0, wm, NULL, err);
	if (ret) {
		kiln_err_prefix(err, "workload measurement: ");
		goto out;
	}
	ret = ev_binding(spki, (size_t)spki_size, nonce, wm, rd);
	if (ret) {
		kiln_err_set(err, ret, "binding: %s", kiln_strerror(ret));
		goto out;
	}
	if (strcmp(g_rt.cfg.tee, "sim") == 0) {
		ret = ev_sim_produce(rd, wm, &ev, &ev_size);
		if (ret)
			kiln_err_set(err, ret, "sim evidence: %s", kiln_strerror(ret));
	} else if (strcmp(g_rt.cfg.tee, "host") == 0) {
		ret = ev_host_request(g_rt.cfg.las_socket[0] ? g_rt.cfg.las_socket : NULL, rd, 0,
				      &ev, &ev_size, err);
		if (ret)
			kiln_err_prefix(err, "host evidence (kiln-las): ");
	} else {
		ret = kiln_err_set(err, -ENOTSUP, "tee %s: not supported by kiln run",
				   g_rt.cfg.tee);
	}
	if (ret)
		goto out;
	ev_b64 = kiln_b64_encode(ev, ev_size);
	if (!ev_b64) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	body = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "session", g_rt.cfg.session, "service",
			 g_rt.cfg.service, "tee", g_rt.cfg.tee, "evidence", ev_b64, "nonce",
			 nonce_hex, "host", host_values());
	if (!body) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	json_decref(j);
	j = NULL;
	ret = rt_cas_call("POST", "/v1/attest", body, &g_grant, err);
out:
	/* One line: "attestation refused by the CAS (request id X)", "cannot reach
	 * the CAS at URL: ...", or "attestation: ..." for anything else. */
	if (ret && ret != -KILN_EDENIED && !g_unreachable)
		kiln_err_prefix(err, "attestation: ");
	OPENSSL_free(spki);
	free(ev);
	free(ev_b64);
	json_decref(body);
	json_decref(j);
	return ret;
}

/* ---- applying the grant ---------------------------------------------------- */
static char **g_argv; /* argv..., NULL, env..., NULL (one block, never freed) */
static int g_argc;

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int rt_attest_apply_early(struct kiln_err *err)
{
	json_t *argv = json_object_get(g_grant, "argv"), *env = json_object_get(g_grant, "env");
	json_t *vols = json_object_get(g_grant, "volumes"), *v;
	const char *k;
	size_t i, n_env, pos = 0;
	json_t *val;

	if (!json_is_array(argv) || json_array_size(argv) == 0 || !json_is_object(env) ||
	    (vols && !json_is_array(vols)))
		return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: argv, env or "
				    "volumes malformed");
	/* The policy's command must name the program that was measured. */
	k = json_string_value(json_array_get(argv, 0));
	if (!k || !same_file(k, "/proc/self/exe"))
		return kiln_err_set(err, -KILN_EPOLICY, "the policy's command %s is not the "
				    "program that was started", k ? k : "(none)");
	g_argc = (int)json_array_size(argv);
	n_env = json_object_size(env);
	g_argv = calloc((size_t)g_argc + n_env + 2, sizeof(*g_argv));
	if (!g_argv)
		return -ENOMEM;
	json_array_foreach(argv, i, val) {
		if (!json_is_string(val))
			return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: argv[%zu] "
					    "is not a string", i);
		g_argv[pos++] = strdup(json_string_value(val));
	}
	g_argv[pos++] = NULL;
	json_object_foreach(env, k, val) {
		size_t len;
		char *e;

		if (!json_is_string(val))
			continue;
		len = strlen(k) + json_string_length(val) + 2;
		e = malloc(len);
		if (!e)
			return -ENOMEM;
		snprintf(e, len, "%s=%s", k, json_string_value(val));
		g_argv[pos++] = e;
	}
	g_argv[pos] = NULL;
	/* Volumes join the configuration; the shield opens them. */
	json_array_foreach(vols, i, v) {
		struct rt_volume_cfg *c;
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *id = json_string_value(json_object_get(v, "id"));
		const char *path = json_string_value(json_object_get(v, "path"));
		const char *key = json_string_value(json_object_get(v, "key"));
		json_t *tag = json_object_get(v, "tag");
		json_t *pr = json_object_get(tag, "prepared");

		if (g_rt.cfg.n_volumes >= RT_MAX_VOLUMES)
			return kiln_err_set(err, -E2BIG, "too many volumes");
		c = &g_rt.cfg.volumes[g_rt.cfg.n_volumes];
		if (!name || !id || !path || path[0] != '/' || !key ||
		    strlen(id) >= sizeof(c->cas_id) || strspn(id, "0123456789abcdef") != strlen(id) ||
		    !json_is_integer(json_object_get(tag, "committed")) ||
		    kiln_hex_decode(key, c->key, sizeof(c->key), NULL) ||
		    rt_path_normalize(NULL, path, c->mount, sizeof(c->mount)))
			return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: volume %zu "
					    "malformed", i);
		/* The encrypted store lives at the mount path itself, unless
		 * --volume-dir NAME=DIR puts it elsewhere. */
		memcpy(c->dir, c->mount, sizeof(c->dir));
		for (size_t d = 0; name && d < g_rt.cfg.n_volume_dirs; d++)
			if (strcmp(g_rt.cfg.volume_dirs[d].name, name) == 0)
				memcpy(c->dir, g_rt.cfg.volume_dirs[d].dir, sizeof(c->dir));
		memcpy(c->cas_id, id, strlen(id) + 1);
		c->committed = (uint64_t)json_integer_value(json_object_get(tag, "committed"));
		c->prepared = json_is_integer(pr) ? (uint64_t)json_integer_value(pr) : c->committed;
		g_rt.cfg.n_volumes++;
	}
	return 0;
}

/* After the shield is up: injected files and the working directory. */
int rt_attest_apply_late(struct kiln_err *err)
{
	json_t *files = json_object_get(g_grant, "files"), *f;
	const char *pwd = json_string_value(json_object_get(g_grant, "pwd"));
	size_t i;
	int ret;

	json_array_foreach(files, i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		const char *content = json_string_value(json_object_get(f, "content"));
		const char *mode = json_string_value(json_object_get(f, "mode"));
		uint8_t *data = NULL;
		size_t size = 0;
		unsigned long m = mode ? strtoul(mode, NULL, 8) : 0600;

		if (!path || path[0] != '/' || !content || kiln_b64_decode(content, &data, &size))
			return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: file %zu "
					    "malformed", i);
		ret = rt_shield_add_file(path, data, size, (mode_t)(m & 07777));
		kiln_free_secret(data, size);
		if (ret)
			return kiln_err_set(err, ret, "injected file %s: %s", path,
					    kiln_strerror(ret));
	}
	if (pwd && pwd[0]) {
		long a[6] = { (long)pwd };

		ret = (int)rt_dispatch(SYS_chdir, a, NULL);
		if (ret)
			return kiln_err_set(err, ret, "working directory %s: %s", pwd,
					    kiln_strerror(ret));
	}
	json_decref(g_grant);
	g_grant = NULL;
	return 0;
}

bool rt_attest_argv(int *argc, char ***argv, char ***env)
{
	if (!g_argv)
		return false;
	*argc = g_argc;
	*argv = g_argv;
	*env = g_argv + g_argc + 1;
	return true;
}

/* ---- volume freshness held by the CAS ------------------------------------ */
struct cas_fresh {
	char id[80];
	uint64_t committed, prepared; /* as granted, for the first current() */
	bool asked;
};

static int cf_post(struct cas_fresh *f, const char *op, uint64_t tag, struct kiln_err *err)
{
	char path[160];
	json_t *body = json_pack("{s:I}", "tag", (json_int_t)tag), *out = NULL;
	int ret;

	if (!body)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/v1/volumes/%s/%s", f->id, op);
	ret = rt_cas_call("POST", path, body, &out, err);
	json_decref(body);
	json_decref(out);
	return ret;
}

static int cf_prepare(void *ctx, uint64_t tag, struct kiln_err *err)
{
	return cf_post(ctx, "prepare", tag, err);
}

static int cf_commit(void *ctx, uint64_t tag, struct kiln_err *err)
{
	return cf_post(ctx, "commit", tag, err);
}

static int cf_current(void *ctx, uint64_t *committed, uint64_t *prepared, struct kiln_err *err)
{
	struct cas_fresh *f = ctx;
	char path[160];
	json_t *out = NULL, *pr;
	int ret;

	if (!f->asked) {
		/* The grant carried the tags: no extra round trip at start. */
		f->asked = true;
		*committed = f->committed;
		*prepared = f->prepared;
		return *committed ? 0 : -ENOENT;
	}
	snprintf(path, sizeof(path), "/v1/volumes/%s/tag", f->id);
	ret = rt_cas_call("GET", path, NULL, &out, err);
	if (ret)
		return ret;
	*committed = (uint64_t)json_integer_value(json_object_get(out, "committed"));
	pr = json_object_get(out, "prepared");
	*prepared = json_is_integer(pr) ? (uint64_t)json_integer_value(pr) : *committed;
	json_decref(out);
	return *committed ? 0 : -ENOENT;
}

static void cf_free(void *ctx)
{
	free(ctx);
}

static const struct pf_freshness_ops g_cas_fresh_ops = {
	.prepare = cf_prepare,
	.commit = cf_commit,
	.current = cf_current,
	.free = cf_free,
};

int rt_fresh_cas(const struct rt_volume_cfg *c, const struct pf_freshness_ops **ops, void **ctx)
{
	struct cas_fresh *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	memcpy(f->id, c->cas_id, sizeof(f->id));
	f->committed = c->committed;
	f->prepared = c->prepared;
	f->asked = c->committed == RT_TAG_ASK;
	*ops = &g_cas_fresh_ops;
	*ctx = f;
	return 0;
}
