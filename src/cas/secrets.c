/* Secrets: generated on first use, stored encrypted, then stable.
 *
 * Stored values: ascii/binary = the bytes; key = PKCS#8 private key PEM;
 * x509/x509-ca = private key PEM followed by the certificate PEM. Each row also
 * keeps the secret's spec (its canonical definition, plus the issuer's
 * certificate fingerprint for x509): when the definition changes, the secret is
 * generated again. Imports are followed to the exporting policy, which must
 * export to this policy (bound to its owner or its hash) and have the pinned
 * hash, and whose security rules must accept the attestation's claims. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMPORT_DEPTH 4

struct secret_val {
	enum pol_secret_kind kind;
	uint8_t *raw;       /* ascii/binary bytes, or the stored PEM text */
	size_t raw_size;
	EVP_PKEY *key;      /* key, x509, x509-ca */
	X509 *cert;         /* x509, x509-ca */
	char *chain_pem;    /* x509: issuer chain (PEM), may be NULL */
	size_t chain_size;
};

static void secret_val_clear(struct secret_val *v)
{
	if (v->raw)
		kiln_free_secret(v->raw, v->raw_size);
	EVP_PKEY_free(v->key);
	X509_free(v->cert);
	free(v->chain_pem);
	memset(v, 0, sizeof(*v));
}

static int gen_ascii(const struct pol_secret *s, uint8_t **out, size_t *size)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789";
	const char *cs = s->charset ? s->charset : alnum;
	size_t n = strlen(cs);
	/* Rejection sampling keeps every character equally likely. */
	unsigned limit = 256 - 256 % (unsigned)n;
	uint8_t *v = malloc(s->size + 1);

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->size;) {
		uint8_t r[64];

		if (kc_random(r, sizeof(r)) < 0) {
			kiln_free_secret(v, s->size + 1);
			return -KILN_ECRYPTO;
		}
		for (size_t j = 0; j < sizeof(r) && i < s->size; j++)
			if (r[j] < limit)
				v[i++] = (uint8_t)cs[r[j] % n];
		kiln_wipe(r, sizeof(r));
	}
	v[s->size] = 0;
	*out = v;
	*size = s->size;
	return 0;
}

static int parse_pem_pair(const uint8_t *data, size_t size, bool with_cert, EVP_PKEY **key,
			  X509 **cert)
{
	BIO *b = BIO_new_mem_buf(data, (int)size);
	int ret = -KILN_ECORRUPT;

	*key = NULL;
	*cert = NULL;
	if (!b)
		return -ENOMEM;
	*key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	if (*key && with_cert)
		*cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (*key && (!with_cert || *cert))
		ret = 0;
	BIO_free(b);
	if (ret < 0) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		*key = NULL;
		*cert = NULL;
	}
	return ret;
}

static int get_secret(struct cas__secret_ctx *ctx, const struct pol_policy *p,
		      const char *owner, const char *name, unsigned depth,
		      struct secret_val *out, struct kiln_err *err);

/* Note the release of an exported secret (for the exporter's audit entry); the
 * same secret referenced twice is noted once. A release that could not be
 * audited is refused (-E2BIG beyond the table's size). */
static int note_release(struct cas__secret_ctx *ctx, const struct pol_policy *src,
			const char *secret, const struct pol_policy *importer)
{
	struct cas__release *r;

	for (size_t i = 0; i < ctx->n_releases; i++) {
		r = &ctx->releases[i];
		if (!strcmp(r->exporter, src->name) && !strcmp(r->secret, secret) &&
		    !strcmp(r->importer, importer->name))
			return 0;
	}
	if (ctx->n_releases == KILN_ARRAY_SIZE(ctx->releases))
		return -E2BIG;
	r = &ctx->releases[ctx->n_releases++];
	snprintf(r->exporter, sizeof(r->exporter), "%s", src->name);
	snprintf(r->exporter_hash, sizeof(r->exporter_hash), "%s", src->hash);
	snprintf(r->secret, sizeof(r->secret), "%s", secret);
	snprintf(r->importer, sizeof(r->importer), "%s", importer->name);
	return 0;
}

/* The importing policy p (owned by owner) takes secret s from another policy:
 * that policy must export it to p (by owner or by version, never by name alone),
 * have the pinned hash, and its own security rules (and the export's measurement
 * list) must accept this attestation's claims. */
static int import_secret(struct cas__secret_ctx *ctx, const struct pol_policy *p,
			 const char *owner, const struct pol_secret *s, unsigned depth,
			 struct secret_val *out, struct kiln_err *err)
{
	struct pol_policy *src = NULL;
	const struct pol_secret *xs;
	const struct pol_export *ex;
	char src_owner[CAS_ID_SIZE], reason[512];
	const char *label = NULL;
	int ret;

	ret = cas__policy_load(ctx->st, s->import->session, &src, src_owner, err);
	if (ret < 0) {
		kiln_err_prefix(err, "secret '%s' imports from '%s': ", s->name,
				s->import->session);
		return -KILN_EDENIED;
	}
	if (strcmp(src->hash, s->import->policy_hash)) {
		ret = kiln_err_set(err, -KILN_EDENIED, "secret '%s': policy '%s' has hash %s, not "
				   "the pinned %s", s->name, src->name, src->hash,
				   s->import->policy_hash);
		goto out;
	}
	xs = pol_find_secret(src, s->import->secret);
	if (!xs) {
		ret = kiln_err_set(err, -KILN_EDENIED, "secret '%s': policy '%s' has no secret "
				   "'%s'", s->name, src->name, s->import->secret);
		goto out;
	}
	ex = pol_export_find(xs, p->name, p->hash, owner);
	if (!ex) {
		ret = kiln_err_set(err, -KILN_EDENIED, "secret '%s': policy '%s' does not export "
				   "'%s' to '%s' owned by %s at hash %s (an export names the "
				   "importer and binds its owner or its policy_hash)", s->name,
				   src->name, xs->name, p->name, owner ? owner : "-", p->hash);
		ctx->label = "export_refused";
		goto out;
	}
	if (s->kind != POL_SECRET_NONE && s->kind != xs->kind) {
		ret = kiln_err_set(err, -KILN_EDENIED, "secret '%s': declared kind %s but '%s' "
				   "in '%s' is %s", s->name, pol_kind_name(s->kind), xs->name,
				   src->name, pol_kind_name(xs->kind));
		goto out;
	}
	/* The exporter's rules follow its secrets: an importer that accepts weaker
	 * evidence (sim, another tee, any program) cannot widen who receives them. */
	ret = ctx->claims ? pol_decide_export(src, ex, ctx->claims, ctx->at, reason,
					      sizeof(reason), &label) :
			    -KILN_EPOLICY;
	if (ret < 0) {
		ret = kiln_err_set(err, -KILN_EDENIED, "secret '%s' imported from '%s': %s",
				   s->name, src->name, ctx->claims ? reason : "no claims");
		ctx->label = "export_refused";
		goto out;
	}
	ret = note_release(ctx, src, xs->name, p);
	if (ret < 0) {
		kiln_err_set(err, ret, "secret '%s': more than %zu imported secrets in one "
			     "attestation", s->name, KILN_ARRAY_SIZE(ctx->releases));
		goto out;
	}
	ret = get_secret(ctx, src, src_owner, xs->name, depth + 1, out, err);
out:
	cas__policy_unref(ctx->st, src);
	return ret;
}

static int generate(struct cas__store *st, const struct pol_secret *s, struct secret_val *iss,
		    uint8_t **value, size_t *size)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char *kpem = NULL, *cpem = NULL;
	size_t ks = 0, csz = 0;
	int ret;

	switch (s->kind) {
	case POL_SECRET_ASCII:
		return gen_ascii(s, value, size);
	case POL_SECRET_BINARY:
		*value = malloc(s->size);
		if (!*value)
			return -ENOMEM;
		*size = s->size;
		return kc_random(*value, s->size) < 0 ? -KILN_ECRYPTO : 0;
	default:
		break;
	}
	ret = cas__x509_keygen(pol_alg_name(s->algorithm), &key);
	if (ret < 0)
		return ret;
	if (s->kind == POL_SECRET_X509 || s->kind == POL_SECRET_X509_CA)
		ret = cas__x509_make_cert(key, s->common_name ? s->common_name : s->name,
				   s->validity_days, s->kind == POL_SECRET_X509_CA, s->dns,
				   s->n_dns, s->ip, s->n_ip, iss ? iss->cert : NULL,
				   iss ? iss->key : NULL, &cert);
	if (ret == 0)
		ret = cas__x509_key_pem(key, true, &kpem, &ks);
	if (ret == 0 && cert)
		ret = cas__x509_cert_pem(cert, &cpem, &csz);
	if (ret == 0) {
		*value = malloc(ks + csz + 1);
		if (*value) {
			memcpy(*value, kpem, ks);
			if (cpem)
				memcpy(*value + ks, cpem, csz);
			(*value)[ks + csz] = 0;
			*size = ks + csz;
		} else {
			ret = -ENOMEM;
		}
	}
	if (kpem)
		kiln_free_secret(kpem, ks);
	free(cpem);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}

static int get_secret(struct cas__secret_ctx *ctx, const struct pol_policy *p,
		      const char *owner, const char *name, unsigned depth,
		      struct secret_val *out, struct kiln_err *err)
{
	struct cas__store *st = ctx->st;
	const struct pol_secret *s = pol_find_secret(p, name);
	struct secret_val iss = { 0 };
	char *spec = NULL, *want = NULL, *stored_spec = NULL;
	uint8_t *value = NULL;
	size_t size = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	if (depth > MAX_IMPORT_DEPTH)
		return kiln_err_set(err, -KILN_EDENIED, "secret '%s': imports nested too deeply",
				    name);
	if (!s)
		return kiln_err_set(err, -ENOENT, "policy '%s' has no secret '%s'", p->name, name);
	if (s->import)
		return import_secret(ctx, p, owner, s, depth, out, err);
	spec = pol_secret_spec(s);
	if (!spec)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	if (s->kind == POL_SECRET_X509 && s->issuer) {
		char fp[65];

		ret = get_secret(ctx, p, owner, s->issuer, depth + 1, &iss, err);
		if (ret < 0)
			goto out;
		if (cas_cert_fingerprint(iss.cert, fp) < 0 ||
		    asprintf(&want, "%s issuer=%s", spec, fp) < 0) {
			want = NULL;
			ret = kiln_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	} else {
		want = strdup(spec);
		if (!want) {
			ret = kiln_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	ret = cas__secret_get(st, p->name, name, &stored_spec, &value, &size);
	if (ret == 0 && strcmp(stored_spec, want)) {
		/* The definition changed: generate a new value. */
		kiln_free_secret(value, size);
		value = NULL;
		ret = -ENOENT;
	}
	if (ret == -ENOENT) {
		ret = generate(st, s, iss.cert ? &iss : NULL, &value, &size);
		if (ret == 0)
			ret = cas__secret_put(st, p->name, name, want, value, size);
	}
	if (ret < 0) {
		kiln_err_set(err, ret, "secret '%s' of '%s': %s", name, p->name,
			     kiln_strerror(ret));
		goto out;
	}
	out->kind = s->kind;
	out->raw = value;
	out->raw_size = size;
	value = NULL;
	if (s->kind == POL_SECRET_KEY || s->kind == POL_SECRET_X509 ||
	    s->kind == POL_SECRET_X509_CA) {
		ret = parse_pem_pair(out->raw, out->raw_size, s->kind != POL_SECRET_KEY, &out->key,
				     &out->cert);
		if (ret < 0) {
			kiln_err_set(err, ret, "secret '%s' of '%s': stored value is corrupt", name,
				     p->name);
			goto out;
		}
	}
	if (iss.cert) {
		char *ipem = NULL;
		size_t isz = 0;

		ret = cas__x509_cert_pem(iss.cert, &ipem, &isz);
		if (ret < 0) {
			kiln_err_set(err, ret, "cannot encode a certificate");
			goto out;
		}
		out->chain_pem = malloc(isz + iss.chain_size + 1);
		if (!out->chain_pem) {
			free(ipem);
			ret = kiln_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		memcpy(out->chain_pem, ipem, isz);
		if (iss.chain_pem)
			memcpy(out->chain_pem + isz, iss.chain_pem, iss.chain_size);
		out->chain_size = isz + iss.chain_size;
		out->chain_pem[out->chain_size] = 0;
		free(ipem);
	}
	ret = 0;
out:
	if (ret < 0)
		secret_val_clear(out);
	if (value)
		kiln_free_secret(value, size);
	secret_val_clear(&iss);
	free(spec);
	free(want);
	free(stored_spec);
	return ret;
}

static int dup_bytes(const void *p, size_t n, uint8_t **out, size_t *size)
{
	*out = malloc(n + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, p, n);
	(*out)[n] = 0;
	*size = n;
	return 0;
}

static int encode(const uint8_t *p, size_t n, enum pol_fmt fmt, uint8_t **out, size_t *size)
{
	if (fmt == POL_FMT_HEX) {
		char *h = malloc(2 * n + 1);

		if (!h)
			return -ENOMEM;
		kiln_hex_encode(p, n, h);
		*out = (uint8_t *)h;
		*size = 2 * n;
		return 0;
	}
	if (fmt == POL_FMT_BASE64) {
		char *b = kiln_b64_encode(p, n);

		if (!b)
			return -ENOMEM;
		*out = (uint8_t *)b;
		*size = strlen(b);
		return 0;
	}
	return dup_bytes(p, n, out, size);
}

static int format_value(const struct secret_val *v, enum pol_fmt fmt, uint8_t **out,
			size_t *size)
{
	uint8_t *der = NULL;
	size_t der_size = 0;
	char *pem = NULL;
	size_t pem_size = 0;
	int ret;

	switch (v->kind) {
	case POL_SECRET_ASCII:
	case POL_SECRET_BINARY:
		if (fmt != POL_FMT_RAW && fmt != POL_FMT_HEX && fmt != POL_FMT_BASE64)
			return -EINVAL;
		return encode(v->raw, v->raw_size, fmt, out, size);
	case POL_SECRET_KEY:
		if (fmt == POL_FMT_RAW || fmt == POL_FMT_KEY)
			return cas__x509_key_pem(v->key, true, (char **)out, size);
		if (fmt == POL_FMT_PEM)
			return cas__x509_key_pem(v->key, false, (char **)out, size);
		if (fmt == POL_FMT_CHAIN)
			return -EINVAL;
		ret = cas__x509_key_der(v->key, &der, &der_size);
		if (ret < 0)
			return ret;
		ret = encode(der, der_size, fmt, out, size);
		OPENSSL_clear_free(der, der_size);
		return ret;
	case POL_SECRET_X509:
	case POL_SECRET_X509_CA:
		if (fmt == POL_FMT_KEY)
			return cas__x509_key_pem(v->key, true, (char **)out, size);
		if (fmt == POL_FMT_RAW || fmt == POL_FMT_PEM)
			return cas__x509_cert_pem(v->cert, (char **)out, size);
		if (fmt == POL_FMT_CHAIN) {
			ret = cas__x509_cert_pem(v->cert, &pem, &pem_size);
			if (ret < 0)
				return ret;
			*out = malloc(pem_size + v->chain_size + 1);
			if (!*out) {
				free(pem);
				return -ENOMEM;
			}
			memcpy(*out, pem, pem_size);
			if (v->chain_pem)
				memcpy(*out + pem_size, v->chain_pem, v->chain_size);
			*size = pem_size + v->chain_size;
			(*out)[*size] = 0;
			free(pem);
			return 0;
		}
		ret = cas__x509_cert_der(v->cert, &der, &der_size);
		if (ret < 0)
			return ret;
		ret = encode(der, der_size, fmt, out, size);
		OPENSSL_free(der);
		return ret;
	case POL_SECRET_NONE:
		break;
	}
	return -EINVAL;
}

int cas__secret_resolve(void *vctx, bool host, const char *name, enum pol_fmt fmt,
		       uint8_t **out, size_t *out_size, struct kiln_err *err)
{
	struct cas__secret_ctx *ctx = vctx;
	struct secret_val v;
	int ret;

	*out = NULL;
	if (host) {
		const char *val = json_string_value(json_object_get(ctx->host, name));
		bool listed = false;

		for (size_t i = 0; ctx->svc && i < ctx->svc->n_host_env; i++)
			if (!strcmp(ctx->svc->host_env[i], name))
				listed = true;
		if (!listed)
			return kiln_err_set(err, -KILN_EDENIED, "host value '%s' is not in "
					    "host_env", name);
		if (!val)
			return kiln_err_set(err, -ENOENT, "host value '%s' was not supplied by "
					    "the launcher", name);
		if (strlen(val) > 4096)
			return kiln_err_set(err, -E2BIG, "host value '%s' is too long", name);
		ret = dup_bytes(val, strlen(val), out, out_size);
		return ret < 0 ? kiln_err_set(err, ret, "out of memory") : 0;
	}
	ret = get_secret(ctx, ctx->policy, ctx->owner, name, 0, &v, err);
	if (ret < 0)
		return ret;
	ret = format_value(&v, fmt, out, out_size);
	if (ret == -EINVAL)
		kiln_err_set(err, -KILN_EFORMAT, "format %d does not apply to secret '%s' of "
			     "kind %s", (int)fmt, name, pol_kind_name(v.kind));
	else if (ret < 0)
		kiln_err_set(err, ret, "secret '%s': %s", name, kiln_strerror(ret));
	secret_val_clear(&v);
	return ret < 0 ? (ret == -EINVAL ? -KILN_EFORMAT : ret) : 0;
}
