/* The network and console shields' part of an attestation answer
 * (docs/api.md, "network" and "console"): the certificates, private keys and
 * CA certificates named by the service's network rules, resolved like any
 * other secret (generated on first use, imports followed, releases audited by
 * the caller), and the service's console key. Only an attested workload gets
 * these: a client that trusts the policy's CA therefore knows it talks to code
 * the policy admitted.
 *
 * The console key is one random 32-byte key per (policy, service), stored as a
 * secret under a name no policy secret can have (".console/SERVICE": policy
 * secret names have no '.' or '/'), so it survives policy updates. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSOLE_SPEC "console-key-v1"

static int resolve(struct cas__secret_ctx *sc, const char *name, enum pol_fmt fmt,
		   json_t *o, const char *key, struct kiln_err *err)
{
	uint8_t *v = NULL;
	size_t size = 0;
	int ret;

	if (!name)
		return 0;
	ret = cas__secret_resolve(sc, false, name, fmt, &v, &size, err);
	if (ret < 0)
		return ret;
	ret = json_object_set_new(o, key, json_stringn((const char *)v, size)) ? -ENOMEM : 0;
	kiln_free_secret(v, size);
	return ret;
}

static json_t *alpn_json(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static int listen_json(struct cas__secret_ctx *sc, const struct pol_listen *l, json_t *out,
		       struct kiln_err *err)
{
	json_t *o = json_pack("{s:I,s:b,s:o}", "port", (json_int_t)l->port, "plain", l->plain,
			      "alpn", alpn_json(l->alpn, l->n_alpn));
	int ret;

	if (!o)
		return -ENOMEM;
	ret = resolve(sc, l->certificate, POL_FMT_CHAIN, o, "cert", err);
	if (ret == 0)
		ret = resolve(sc, l->certificate, POL_FMT_KEY, o, "key", err);
	if (ret == 0)
		ret = resolve(sc, l->client_ca, POL_FMT_RAW, o, "client_ca", err);
	if (ret == 0 && json_array_append(out, o))
		ret = -ENOMEM;
	json_decref(o);
	if (ret < 0)
		kiln_err_prefix(err, "network listen %u: ", l->port);
	return ret;
}

static int connect_json(struct cas__secret_ctx *sc, const struct pol_connect *c, json_t *out,
			struct kiln_err *err)
{
	json_t *o = json_pack("{s:s,s:I,s:b,s:o}", "host", c->host, "port", (json_int_t)c->port,
			      "plain", c->plain, "alpn", alpn_json(c->alpn, c->n_alpn));
	int ret = 0;

	if (!o)
		return -ENOMEM;
	if (c->name && json_object_set_new(o, "name", json_string(c->name)))
		ret = -ENOMEM;
	if (ret == 0)
		ret = resolve(sc, c->ca, POL_FMT_RAW, o, "ca", err);
	if (ret == 0)
		ret = resolve(sc, c->certificate, POL_FMT_CHAIN, o, "cert", err);
	if (ret == 0)
		ret = resolve(sc, c->certificate, POL_FMT_KEY, o, "key", err);
	if (ret == 0 && json_array_append(out, o))
		ret = -ENOMEM;
	json_decref(o);
	if (ret < 0)
		kiln_err_prefix(err, "network connect %s:%u: ", c->host, c->port);
	return ret;
}

int cas__console_key(struct cas__store *st, const char *session, const char *service,
		     uint8_t key[static 32])
{
	char name[80], *spec = NULL;
	uint8_t *v = NULL;
	size_t size = 0;
	int ret;

	if ((size_t)snprintf(name, sizeof(name), ".console/%s", service) >= sizeof(name))
		return -ENAMETOOLONG;
	ret = cas__secret_get(st, session, name, &spec, &v, &size);
	if (ret == 0 && (strcmp(spec, CONSOLE_SPEC) || size != 32)) {
		kiln_free_secret(v, size);
		v = NULL;
		ret = -KILN_ECORRUPT;
	}
	free(spec);
	if (ret == 0) {
		memcpy(key, v, 32);
		kiln_free_secret(v, size);
		return 0;
	}
	if (ret != -ENOENT)
		return ret;
	if (kc_random(key, 32) < 0)
		return -KILN_ECRYPTO;
	ret = cas__secret_put(st, session, name, CONSOLE_SPEC, key, 32);
	if (ret < 0)
		OPENSSL_cleanse(key, 32);
	return ret;
}

int cas__net_config(struct cas__secret_ctx *sc, json_t *resp, struct kiln_err *err)
{
	const struct pol_network *net = &sc->svc->network;
	json_t *o = NULL, *la = NULL, *ca = NULL;
	int ret = -ENOMEM;

	if (sc->svc->console.protect) {
		uint8_t key[32];
		char hex[65];

		ret = cas__console_key(sc->st, sc->policy->name, sc->svc->name, key);
		if (ret < 0)
			return kiln_err_set(err, ret, "console key: %s", kiln_strerror(ret));
		kiln_hex_encode(key, sizeof(key), hex);
		OPENSSL_cleanse(key, sizeof(key));
		ret = json_object_set_new(resp, "console", json_pack("{s:s,s:s}", "mode",
								     "protected", "key", hex)) ?
		      -ENOMEM : 0;
		OPENSSL_cleanse(hex, sizeof(hex));
		if (ret < 0)
			return kiln_err_set(err, ret, "out of memory");
	}
	if (!net->set)
		return 0;
	o = json_pack("{s:s,s:s,s:I}", "default", net->deny ? "deny" : "plain", "min_tls",
		      net->tls12 ? "1.2" : "1.3", "handshake_timeout",
		      (json_int_t)net->handshake_timeout);
	la = json_array();
	ca = json_array();
	if (!o || !la || !ca)
		goto out;
	for (size_t i = 0; i < net->n_listen; i++) {
		ret = listen_json(sc, &net->listen[i], la, err);
		if (ret < 0)
			goto out;
	}
	for (size_t i = 0; i < net->n_connect; i++) {
		ret = connect_json(sc, &net->connect[i], ca, err);
		if (ret < 0)
			goto out;
	}
	ret = -ENOMEM;
	if (json_object_set(o, "listen", la) || json_object_set(o, "connect", ca) ||
	    json_object_set(resp, "network", o))
		goto out;
	ret = 0;
out:
	if (ret == -ENOMEM)
		kiln_err_set(err, ret, "out of memory");
	json_decref(o);
	json_decref(la);
	json_decref(ca);
	return ret;
}
