/* Internal to src/cas: helpers shared by the service's files. */
#ifndef KILN_CAS_INTERNAL_H
#define KILN_CAS_INTERNAL_H

#include <jansson.h>
#include <sqlite3.h>

#include "cas/cas.h"
#include "crypto/crypto.h"
#include "policy/policy.h"

/* ---- x509.c ---- */
/* alg: "p256", "p384", "ed25519", "rsa3072". *out owned by the caller. */
int cx_keygen(const char *alg, EVP_PKEY **out);
/* Make a certificate for key, signed by issuer_key (self-signed when issuer is
 * NULL). sans: DNS names and IP addresses (detected by inet_pton). */
int cx_make_cert(EVP_PKEY *key, const char *cn, unsigned days, bool ca,
		 char *const *dns, size_t n_dns, char *const *ip, size_t n_ip, X509 *issuer,
		 EVP_PKEY *issuer_key, X509 **out);
/* PEM/DER encodings, malloc'd, owned by the caller (wipe private keys). */
int cx_key_pem(EVP_PKEY *key, bool private_part, char **out, size_t *size);
int cx_key_der(EVP_PKEY *key, uint8_t **out, size_t *size);
int cx_cert_pem(X509 *cert, char **out, size_t *size);
int cx_cert_der(X509 *cert, uint8_t **out, size_t *size);
int cx_spki_sha256(X509 *cert, uint8_t out[KC_SHA256_SIZE]);
/* DER SubjectPublicKeyInfo of a certificate (OPENSSL_free); returns its size or
 * <= 0 on failure. */
int cx_cert_spki_der(X509 *cert, unsigned char **der);
/* ECDSA/EdDSA/RSA signature over data with SHA-256 (DER), malloc'd. */
int cx_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t **sig, size_t *sig_size);
int cx_verify(EVP_PKEY *key, const void *data, size_t size, const uint8_t *sig,
	      size_t sig_size);

/* ---- store.c: SQLite (WAL, synchronous=FULL) ---- */
struct cas_store {
	sqlite3 *db;
	uint8_t master[KC_AEAD_KEY_SIZE];
	EVP_PKEY *ca_key;
	X509 *ca_cert;
	char dir[512];
};

/* Open (and create) the data dir: master key, CA, store. Never regenerates a
 * missing master key or CA when a store exists. */
int cs_open(struct cas_store *st, const char *dir, bool create, struct kiln_err *err);
void cs_close(struct cas_store *st);
/* A second, read-only connection to st's database in *rd (only rd->db and rd->dir
 * are set; cs_close releases it). In WAL mode it reads the last committed state
 * without waiting for st's open transaction or its COMMIT. */
int cs_open_reader(const struct cas_store *st, struct cas_store *rd, struct kiln_err *err);
int cs_begin(struct cas_store *st);
int cs_commit(struct cas_store *st);
void cs_rollback(struct cas_store *st);

struct cs_policy {
	char *name, *hash, *yaml, *canonical, *owner;
	int64_t version;
};
void cs_policy_free(struct cs_policy *p);
/* 0 and *out filled, -ENOENT, or another negative code. */
int cs_policy_get(struct cas_store *st, const char *name, struct cs_policy *out);
int cs_policy_put(struct cas_store *st, const struct cs_policy *p);
int cs_policy_delete(struct cas_store *st, const char *name);
/* Calls cb for every policy (name order); cb returning non-zero stops. */
int cs_policy_each(struct cas_store *st, int (*cb)(void *, const struct cs_policy *), void *ctx);

/* Secrets: plaintext value handed back malloc'd (caller wipes + frees). */
int cs_secret_get(struct cas_store *st, const char *session, const char *name, char **spec,
		  uint8_t **value, size_t *size);
int cs_secret_put(struct cas_store *st, const char *session, const char *name,
		  const char *spec, const uint8_t *value, size_t size);

struct cs_volume {
	char id[33];
	uint8_t key[32];
	int64_t committed;
	int64_t prepared; /* -1: none */
	char session[160];
	char name[80];
};
/* Get the volume (session, name), creating it (random id and key) if new. */
int cs_volume_get_or_create(struct cas_store *st, const char *session, const char *name,
			    struct cs_volume *out);
int cs_volume_by_id(struct cas_store *st, const char *id, struct cs_volume *out);
int cs_volume_set_tags(struct cas_store *st, const char *id, int64_t committed,
		       int64_t prepared);

int cs_las_add(struct cas_store *st, const char *id, const char *pem);
/* Trusted LAS certificates: *pems is a NULL-terminated malloc'd array. */
int cs_las_list(struct cas_store *st, char ***pems, size_t *n);
void cs_strv_free(char **v);
/* Hardware-TEE trust (kiln cas trust-collateral / trust-amd-chain): rows (id, tee,
 * data). sgx/tdx: id "collateral:<tee>", data = the collateral JSON (one per tee,
 * replaced); snp: id "amd:<sha256 of data>", data = PEM certificates. _list gives
 * the data of every row for tee, a NULL-terminated malloc'd array (cs_strv_free). */
int cs_tee_trust_add(struct cas_store *st, const char *id, const char *tee, const char *data);
int cs_tee_trust_list(struct cas_store *st, const char *tee, char ***items, size_t *n);

/* Namespaces (kiln cas namespace): policies named "NAME/..." may be created only
 * by the identities in owners (space-separated "sha256:<hex>"). _get: 0 with
 * *owners malloc'd (the caller frees), -ENOENT when NAME is not registered. */
int cs_namespace_set(struct cas_store *st, const char *name, const char *owners);
int cs_namespace_delete(struct cas_store *st, const char *name);
int cs_namespace_get(struct cas_store *st, const char *name, char **owners);

/* ---- audit.c ---- */
/* Append one entry (inside the caller's transaction when there is one).
 * Takes ownership of details (NULL is -ENOMEM, for json_pack failures). */
int cs_audit_append(struct cas_store *st, const char *kind, const char *actor,
		    const char *subject, json_t *details);

/* ---- secrets.c ---- */
/* A secret of another policy released through an import: audited under the
 * exporting policy too. */
struct cas_release {
	char exporter[160];
	char exporter_hash[POL_HASH_STR_SIZE];
	char secret[72];
	char importer[160]; /* the policy that imported it (the last hop) */
};

struct cas_secret_ctx {
	struct cas_store *st;
	const struct pol_policy *policy;
	const char *owner;    /* the policy's owner identity */
	const json_t *host;   /* launcher-supplied values, may be NULL */
	const struct pol_service *svc;
	const json_t *claims; /* the attestation's claims: exporters' rules apply */
	/* out */
	const char *label;    /* "export_refused" when an exporter refused */
	struct cas_release releases[64]; /* more are refused: each release is audited */
	size_t n_releases;
};
/* Resolver for pol_substitute over the store (generates on first use). */
int cas_secret_resolve(void *ctx, bool host, const char *name, enum pol_fmt fmt,
		       uint8_t **out, size_t *out_size, struct kiln_err *err);

/* Load the current parsed policy of a session; *out owned by the caller. owner
 * (may be NULL) receives its owner identity. */
int cas_policy_load(struct cas_store *st, const char *name, struct pol_policy **out,
		    char owner[CAS_ID_SIZE], struct kiln_err *err);

/* ---- request.c: validation of JSON request bodies (fuzzed) ---- */
struct cas_attest_req {
	const char *session, *service, *tee, *evidence_b64; /* borrowed from body */
	const char *workload_measurement; /* hardware TEEs only; NULL when absent */
	uint8_t nonce[32];
	bool nonce_ok;      /* false: not 64 hex digits (refused as a stale nonce) */
	const json_t *host; /* object or NULL */
	json_t *body;       /* owned: json_decref */
};
/* 0, or -KILN_EFORMAT with err naming what is wrong. */
int cas_attest_req_parse(const char *text, size_t size, struct cas_attest_req *out,
			 struct kiln_err *err);
/* {"tag": N} with 1 <= N; -KILN_EFORMAT otherwise. */
int cas_tag_req_parse(const char *text, size_t size, int64_t *tag);

#endif
