/* kiln attestation protocol, client side (attest_proto.h): compiled into
 * libkiln.so and into the `kiln` CLI (the supervisor of statically linked
 * programs). It speaks to the CAS through casclient (HTTPS, CA pinned).
 *
 * 1. an ephemeral P-256 key and a self-signed certificate (CN=kiln-workload);
 * 2. GET /v1/nonce;
 * 3. report_data = ev_binding(SPKI, nonce, workload measurement); evidence from
 *    the backend (sim: INSECURE, for development; host: kiln-las, which
 *    measures the caller, or the passed static program; tdx, snp: this
 *    confidential VM through configfs-tsm, with the workload measurement sent
 *    beside the evidence, bound to it through report_data);
 * 4. POST /v1/attest over TLS with the ephemeral certificate as client
 *    certificate; the answer carries argv, env, pwd, files and volumes.
 * The key stays in memory for the life of the process: it authenticates the
 * volume freshness calls (prepare/commit) that the CAS allows for this grant.
 *
 * No jansson here: Debian's libjansson.a is not PIC, and a shared libjansson
 * would be mapped into every attested program and so change its workload
 * measurement against `kiln measure` and kiln-las. Answers are read with the
 * small strict reader of json.c (its strings are wiped when freed); requests
 * are written with rt_json_quote. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "casclient/casclient.h"
#include "crypto/crypto.h"
#include "evidence/evidence.h"
#include "runtime/attest_proto.h"

/* The configuration of the attestation (CAS URL, pinning, session...). */
static const struct rt_config *g_cfg;

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

static void client_init(struct cc_client *c, bool with_key)
{
	memset(c, 0, sizeof(*c));
	c->url = g_cfg->cas;
	c->ca_file = g_cfg->cas_ca[0] ? g_cfg->cas_ca : NULL;
	c->fingerprint = g_cfg->cas_fingerprint[0] ? g_cfg->cas_fingerprint : NULL;
	c->server_key = g_cfg->cas_key[0] ? g_cfg->cas_key : NULL;
	if (with_key) {
		c->key = g_key;
		c->cert = g_cert;
	}
}

/* The last CAS call failed before an HTTP answer (its message is complete). */
static bool g_unreachable;

int rt__cas_call(struct cc_conn **cn, const char *method, const char *path, const char *text,
		 struct rt_json **out, struct kiln_err *err)
{
	struct cc_client c;
	struct cc_response resp = { 0 };
	const char *ctype = text ? "application/json" : NULL;
	size_t size = text ? strlen(text) : 0;
	int ret = -ENOTCONN;

	*out = NULL;
	client_init(&c, g_key != NULL);
	if (cn && *cn) {
		ret = cc_conn_request(*cn, true, method, path, ctype, text, size, &resp, err);
		if (ret) {
			cc_conn_close(*cn);
			*cn = NULL;
			if (err)
				memset(err, 0, sizeof(*err));
		}
	}
	if (ret)
		ret = cc_request(&c, method, path, ctype, text, size, &resp, err);
	if (ret) {
		/* Transport, TLS or pinning: the one line names the CAS. */
		kiln_err_prefix(err, "cannot reach the CAS at %s: ", c.url);
		g_unreachable = true;
		return ret;
	}
	if (resp.status != 200) {
		struct rt_json *j = NULL;
		const char *e, *id;

		if (rt_json_parse(resp.body, resp.body_size, &j) < 0)
			j = NULL;
		e = rt_json_str(rt_json_get(j, "error"));
		id = rt_json_str(rt_json_get(j, "request_id"));

		if (resp.status == 403 && id && strcmp(path, "/v1/attest") == 0)
			/* The reason is in the CAS log under this id, never sent. */
			ret = kiln_err_set(err, -KILN_EDENIED, "attestation refused by the CAS "
					   "(request id %.64s)", id);
		else
			ret = kiln_err_set(err, resp.status == 403 ? -KILN_EDENIED : -EPROTO,
					   "%s %s: CAS answered %d: %.200s%s%.64s%s", method, path,
					   resp.status, e ? e : "(no message)",
					   id ? " (request id " : "", id ? id : "", id ? ")" : "");
		rt_json_free(j);
		cc_response_free(&resp);
		return ret;
	}
	if (rt_json_parse(resp.body, resp.body_size, out) < 0)
		*out = NULL;
	cc_response_free(&resp);
	if (!*out || (*out)->type != RT_JSON_OBJECT) {
		rt_json_free(*out);
		*out = NULL;
		return kiln_err_set(err, -KILN_EFORMAT, "%s %s: the CAS answer is not a JSON "
				    "object", method, path);
	}
	return 0;
}

/* The attest request body. "host" holds only the launcher variables named with
 * --host-env: the CAS does not tell which {{host.NAME}} a policy uses, and the
 * launcher's whole environment may hold the operator's own credentials, so
 * nothing else is sent. An unset variable is left out (the CAS then refuses a
 * policy that needs it). *out malloc'd, owned by the caller. */
static int attest_body(const char *ev_b64, const char *nonce_hex, const char *wm_hex,
		       char **out)
{
	const struct rt_config *cfg = g_cfg;
	char *session = NULL, *service = NULL, *tee = NULL, *host = NULL;
	size_t host_size = 3, used = 0;
	int ret = -ENOMEM;

	*out = NULL;
	for (size_t i = 0; i < cfg->n_host_env; i++) {
		const char *v = getenv(cfg->host_env[i]);

		if (v)
			host_size += 6 * (strlen(cfg->host_env[i]) + strlen(v)) + 12;
	}
	host = malloc(host_size);
	if (!host || rt_json_quote(cfg->session, &session) ||
	    rt_json_quote(cfg->service, &service) || rt_json_quote(cfg->tee, &tee))
		goto out;
	host[used++] = '{';
	for (size_t i = 0; i < cfg->n_host_env; i++) {
		const char *v = getenv(cfg->host_env[i]);
		char *qk = NULL, *qv = NULL;

		if (!v)
			continue;
		if (rt_json_quote(cfg->host_env[i], &qk) || rt_json_quote(v, &qv)) {
			free(qk);
			free(qv);
			goto out;
		}
		used += (size_t)snprintf(host + used, host_size - used, "%s%s: %s",
					 used > 1 ? ", " : "", qk, qv);
		free(qk);
		free(qv);
	}
	host[used++] = '}';
	host[used] = '\0';
	/* Hardware TEEs: the measurement the CAS checks against report_data. */
	if (asprintf(out, "{\"session\": %s, \"service\": %s, \"tee\": %s, \"evidence\": "
		     "\"%s\", \"nonce\": \"%s\", \"host\": %s%s%s%s}", session, service, tee,
		     ev_b64, nonce_hex, host, wm_hex ? ", \"workload_measurement\": \"" : "",
		     wm_hex ? wm_hex : "", wm_hex ? "\"" : "") < 0)
		*out = NULL;
	else
		ret = 0;
out:
	free(session);
	free(service);
	free(tee);
	free(host);
	return ret;
}

/* Host evidence: the kiln-las exchange (ev_las_exchange_static, shared with
 * ev_host_request; static_fd >= 0 asks kiln-las to measure that program
 * instead of the caller), classified with the runtime's own JSON reader because
 * libkiln links no jansson. socket_path NULL: $KILN_LAS_SOCKET, else the default. */
static int las_evidence(const char *socket_path, const uint8_t rd[EV_REPORT_DATA_SIZE],
			int static_fd, uint8_t **ev, size_t *size, struct kiln_err *err)
{
	struct rt_json *j = NULL;
	char *buf = NULL;
	size_t len = 0;
	int ret;

	ret = ev_las_exchange_static(socket_path, rd, static_fd, 0, &buf, &len, &socket_path, err);
	if (ret < 0)
		return ret;
	if (rt_json_parse(buf, len, &j) < 0 || j->type != RT_JSON_OBJECT) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "kiln-las at %s answered with invalid JSON",
				   socket_path);
		goto out;
	}
	if (rt_json_get(j, "error")) {
		const char *msg = rt_json_str(rt_json_get(j, "error"));

		ret = kiln_err_set(err, -KILN_EDENIED, "kiln-las at %s refused: %.200s",
				   socket_path, msg ? msg : "(no reason given)");
		goto out;
	}
	*ev = (uint8_t *)buf;
	*size = len;
	buf = NULL;
	ret = 0;
out:
	rt_json_free(j);
	free(buf);
	return ret;
}

int rt_attest_cas(const struct rt_config *cfg, const uint8_t wm[EV_WM_SIZE], int static_fd,
		  struct rt_json **grant, struct kiln_err *err)
{
	uint8_t nonce[EV_NONCE_SIZE], rd[EV_REPORT_DATA_SIZE];
	uint8_t *spki = NULL, *ev = NULL;
	char nonce_hex[2 * EV_NONCE_SIZE + 1], *ev_b64 = NULL, *body = NULL;
	char wm_hex[2 * EV_WM_SIZE + 1];
	bool hw = false;
	struct rt_json *j = NULL;
	struct cc_conn *cn = NULL;
	const char *nh;
	size_t ev_size = 0;
	int spki_size, ret;

	*grant = NULL;
	g_cfg = cfg;
	g_unreachable = false;
	ret = make_identity(err);
	if (ret)
		goto out;
	spki_size = i2d_PUBKEY(g_key, &spki);
	if (spki_size <= 0) {
		ret = kiln_err_set(err, -KILN_ECRYPTO, "cannot encode the workload key");
		goto out;
	}
	/* Nonce and attestation on one connection: one TLS handshake. If it
	 * cannot be opened, rt__cas_call says why on a connection of its own. */
	{
		struct cc_client c;
		struct kiln_err ignored = { 0 };

		client_init(&c, true);
		if (cc_conn_open(&c, &cn, &ignored))
			cn = NULL;
	}
	ret = rt__cas_call(&cn, "GET", "/v1/nonce", NULL, &j, err);
	if (ret)
		goto out;
	nh = rt_json_str(rt_json_get(j, "nonce"));
	if (!nh || kiln_hex_decode(nh, nonce, sizeof(nonce), NULL)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "GET /v1/nonce: no 64-hex nonce in the "
				   "answer");
		goto out;
	}
	kiln_hex_encode(nonce, sizeof(nonce), nonce_hex);
	ret = ev_binding(spki, (size_t)spki_size, nonce, wm, rd);
	if (ret) {
		kiln_err_set(err, ret, "binding: %s", kiln_strerror(ret));
		goto out;
	}
	if (strcmp(cfg->tee, "sim") == 0) {
		ret = ev_sim_produce(rd, wm, &ev, &ev_size);
		if (ret)
			kiln_err_set(err, ret, "sim evidence: %s", kiln_strerror(ret));
	} else if (strcmp(cfg->tee, "host") == 0) {
		ret = las_evidence(cfg->las_socket[0] ? cfg->las_socket : NULL, rd, static_fd,
				   &ev, &ev_size, err);
		if (ret)
			kiln_err_prefix(err, "host evidence (kiln-las): ");
	} else if (strcmp(cfg->tee, "tdx") == 0 || strcmp(cfg->tee, "snp") == 0) {
		hw = true;
		if (cfg->tee[0] == 't')
			ret = ev_tdx_produce(rd, &ev, &ev_size, err);
		else
			ret = ev_snp_produce(rd, &ev, &ev_size, err);
		if (ret)
			kiln_err_prefix(err, "%s evidence: ", cfg->tee);
	} else {
		ret = kiln_err_set(err, -ENOTSUP, "tee %s: not supported by kiln run",
				   cfg->tee);
	}
	if (ret)
		goto out;
	ev_b64 = kiln_b64_encode(ev, ev_size);
	if (!ev_b64) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	kiln_hex_encode(wm, EV_WM_SIZE, wm_hex);
	ret = attest_body(ev_b64, nonce_hex, hw ? wm_hex : NULL, &body);
	if (ret) {
		kiln_err_set(err, ret, "out of memory");
		goto out;
	}
	rt_json_free(j);
	j = NULL;
	ret = rt__cas_call(&cn, "POST", "/v1/attest", body, grant, err);
out:
	cc_conn_close(cn);
	/* One line: "attestation refused by the CAS (request id X)", "cannot reach
	 * the CAS at URL: ...", or "attestation: ..." for anything else. */
	if (ret && ret != -KILN_EDENIED && !g_unreachable)
		kiln_err_prefix(err, "attestation: ");
	OPENSSL_free(spki);
	free(ev);
	free(ev_b64);
	free(body);
	rt_json_free(j);
	return ret;
}

/* ---- the grant ------------------------------------------------------------ */
void rt_grant_command_free(char **block)
{
	if (!block)
		return;
	for (size_t i = 0, nulls = 0; nulls < 2; i++) {
		if (!block[i]) {
			nulls++;
			continue;
		}
		kiln_free_secret(block[i], strlen(block[i]));
	}
	free(block);
}

int rt_grant_command(const struct rt_json *grant, const struct stat *exe, char ***block,
		     int *argc, char ***env_out, struct kiln_err *err)
{
	const struct rt_json *argv = rt_json_get(grant, "argv");
	const struct rt_json *env = rt_json_get(grant, "env");
	struct stat st;
	char **b;
	const char *k;
	size_t pos = 0;

	*block = NULL;
	if (!argv || argv->type != RT_JSON_ARRAY || argv->n == 0 || !env ||
	    env->type != RT_JSON_OBJECT)
		return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: argv or env "
				    "malformed");
	/* The policy's command must name the program that was measured. */
	k = rt_json_str(argv->items[0]);
	if (!k || stat(k, &st) != 0 || st.st_dev != exe->st_dev || st.st_ino != exe->st_ino)
		return kiln_err_set(err, -KILN_EPOLICY, "the policy's command %s is not the "
				    "program that was started", k ? k : "(none)");
	if (argv->n > 65536 || env->n > 65536)
		return kiln_err_set(err, -E2BIG, "attestation answer: argv or env too large");
	b = calloc(argv->n + env->n + 2, sizeof(*b));
	if (!b)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < argv->n; i++) {
		if (argv->items[i]->type != RT_JSON_STRING) {
			rt_grant_command_free(b);
			return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: argv[%zu] "
					    "is not a string", i);
		}
		b[pos] = strdup(argv->items[i]->str);
		if (!b[pos++])
			goto nomem;
	}
	b[pos++] = NULL;
	*env_out = b + pos;
	for (size_t i = 0; i < env->n; i++) {
		const struct rt_json *val = env->items[i];
		size_t len;

		k = env->keys[i];
		if (val->type != RT_JSON_STRING || !k[0] || strchr(k, '='))
			continue;
		len = strlen(k) + val->str_len + 2;
		b[pos] = malloc(len);
		if (!b[pos])
			goto nomem;
		snprintf(b[pos++], len, "%s=%s", k, val->str);
	}
	b[pos] = NULL;
	*block = b;
	*argc = (int)argv->n;
	return 0;
nomem:
	rt_grant_command_free(b);
	return kiln_err_set(err, -ENOMEM, "out of memory");
}

int rt_grant_volumes(const struct rt_json *grant, struct rt_config *cfg, struct kiln_err *err)
{
	const struct rt_json *vols = rt_json_get(grant, "volumes");

	if (vols && vols->type != RT_JSON_ARRAY)
		return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: volumes malformed");
	for (size_t i = 0; vols && i < vols->n; i++) {
		const struct rt_json *v = vols->items[i];
		struct rt_volume_cfg *c;
		const char *name = rt_json_str(rt_json_get(v, "name"));
		const char *id = rt_json_str(rt_json_get(v, "id"));
		const char *path = rt_json_str(rt_json_get(v, "path"));
		const char *key = rt_json_str(rt_json_get(v, "key"));
		const struct rt_json *tag = rt_json_get(v, "tag");
		const struct rt_json *co = rt_json_get(tag, "committed");
		const struct rt_json *pr = rt_json_get(tag, "prepared");

		if (!(c = rt_config_add_volume(cfg)))
			return kiln_err_set(err, -E2BIG, "too many volumes");
		if (!name || !id || !path || path[0] != '/' || !key ||
		    strlen(id) >= sizeof(c->cas_id) ||
		    strspn(id, "0123456789abcdef") != strlen(id) ||
		    !co || co->type != RT_JSON_NUMBER || !co->is_int || co->num < 0 ||
		    kiln_hex_decode(key, c->key, sizeof(c->key), NULL) ||
		    rt_path_normalize(NULL, path, c->mount, sizeof(c->mount)))
			return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: volume %zu "
					    "malformed", i);
		/* The encrypted store lives at the mount path itself, unless
		 * --volume-dir NAME=DIR puts it elsewhere. */
		memcpy(c->dir, c->mount, sizeof(c->dir));
		for (size_t d = 0; d < cfg->n_volume_dirs; d++)
			if (strcmp(cfg->volume_dirs[d].name, name) == 0)
				memcpy(c->dir, cfg->volume_dirs[d].dir, sizeof(c->dir));
		memcpy(c->cas_id, id, strlen(id) + 1);
		c->committed = (uint64_t)co->num;
		c->prepared = pr && pr->type == RT_JSON_NUMBER && pr->is_int && pr->num >= 0 ?
			      (uint64_t)pr->num : c->committed;
		cfg->n_volumes++;
	}
	return 0;
}

int rt_grant_files(const struct rt_json *grant, rt_grant_file_fn add, void *ctx,
		   struct kiln_err *err)
{
	const struct rt_json *files = rt_json_get(grant, "files");
	int ret;

	if (files && files->type != RT_JSON_ARRAY)
		return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: files malformed");
	for (size_t i = 0; files && i < files->n; i++) {
		const struct rt_json *f = files->items[i];
		const char *path = rt_json_str(rt_json_get(f, "path"));
		const char *content = rt_json_str(rt_json_get(f, "content"));
		const char *mode = rt_json_str(rt_json_get(f, "mode"));
		uint8_t *data = NULL;
		size_t size = 0;
		unsigned long m = mode ? strtoul(mode, NULL, 8) : 0600;

		if (!path || path[0] != '/' || !content || kiln_b64_decode(content, &data, &size))
			return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: file %zu "
					    "malformed", i);
		ret = add(ctx, path, data, size, (mode_t)(m & 07777));
		kiln_free_secret(data, size);
		if (ret)
			return kiln_err_set(err, ret, "injected file %s: %s", path,
					    kiln_strerror(ret));
	}
	return 0;
}

const char *rt_grant_pwd(const struct rt_json *grant)
{
	const char *pwd = rt_json_str(rt_json_get(grant, "pwd"));

	return pwd && pwd[0] ? pwd : NULL;
}
