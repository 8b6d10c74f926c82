/* Offline operations on a data directory: LAS trust, CA fingerprint. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

int cas_trust_las(const char *data_dir, const char *cert_path, char id_out[CAS_ID_SIZE],
		  struct kiln_err *err)
{
	struct cas__store st;
	uint8_t *data = NULL;
	size_t size = 0;
	X509 *cert = NULL;
	char *pem = NULL;
	size_t pem_size = 0;
	BIO *b;
	int ret;

	ret = kiln_read_file(cert_path, 1 << 20, &data, &size);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: %s", cert_path, kiln_strerror(ret));
	b = BIO_new_mem_buf(data, (int)size);
	cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	free(data);
	if (!cert)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: no PEM certificate found", cert_path);
	if (cas_key_id(X509_get0_pubkey(cert), id_out) < 0 ||
	    cas__x509_cert_pem(cert, &pem, &pem_size) < 0) {
		X509_free(cert);
		return kiln_err_set(err, -KILN_ECRYPTO, "%s: cannot encode the certificate",
				    cert_path);
	}
	X509_free(cert);
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0) {
		free(pem);
		return ret;
	}
	ret = cas__store_begin(&st);
	if (ret == 0)
		ret = cas__las_add(&st, id_out, pem);
	if (ret == 0)
		ret = cas__audit_append(&st, "trust.las", "operator", id_out,
				      json_pack("{s:s}", "cert", cert_path));
	if (ret == 0)
		ret = cas__store_commit(&st);
	if (ret < 0) {
		cas__store_rollback(&st);
		kiln_err_set(err, ret, "%s: cannot store the trust: %s", st.where,
			     kiln_strerror(ret));
	}
	cas__store_close(&st);
	free(pem);
	return ret;
}

/* Store one tee_trust row and its audit entry in one transaction. */
static int trust_store(const char *data_dir, const char *id, const char *tee, const char *data,
		       const char *kind, const char *file, struct kiln_err *err)
{
	struct cas__store st;
	int ret;

	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0)
		return ret;
	ret = cas__store_begin(&st);
	if (ret == 0)
		ret = cas__tee_trust_add(&st, id, tee, data);
	if (ret == 0)
		ret = cas__audit_append(&st, kind, "operator", id,
				      json_pack("{s:s,s:s}", "tee", tee, "file", file));
	if (ret == 0)
		ret = cas__store_commit(&st);
	if (ret < 0) {
		cas__store_rollback(&st);
		kiln_err_set(err, ret, "%s: cannot store the trust: %s", st.where,
			     kiln_strerror(ret));
	}
	cas__store_close(&st);
	return ret;
}

int cas_trust_amd_chain(const char *data_dir, const char *path, char id_out[80],
			struct kiln_err *err)
{
	uint8_t *data = NULL, digest[KC_SHA256_SIZE];
	size_t size = 0;
	BIO *in = NULL, *out = NULL;
	X509 *x;
	char *pem = NULL, hex[2 * KC_SHA256_SIZE + 1];
	size_t len;
	int n = 0, ret;

	ret = kiln_read_file(path, 1 << 20, &data, &size);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: %s", path, kiln_strerror(ret));
	out = BIO_new(BIO_s_mem());
	ret = -ENOMEM;
	if (!out)
		goto out;
	if (strstr((char *)data, "-----BEGIN CERTIFICATE-----")) {
		in = BIO_new_mem_buf(data, (int)size);
		while (in && (x = PEM_read_bio_X509(in, NULL, NULL, NULL))) {
			ret = PEM_write_bio_X509(out, x) == 1 ? 0 : -KILN_ECRYPTO;
			X509_free(x);
			if (ret < 0)
				goto out;
			n++;
		}
	} else {
		const unsigned char *p = data, *end = data + size;

		while (p < end && (x = d2i_X509(NULL, &p, end - p))) {
			ret = PEM_write_bio_X509(out, x) == 1 ? 0 : -KILN_ECRYPTO;
			X509_free(x);
			if (ret < 0)
				goto out;
			n++;
		}
		if (p != end)
			n = 0;
	}
	if (n == 0) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "%s: no certificate found (expected PEM, "
				   "or DER certificates such as a VCEK from the AMD KDS)", path);
		goto out;
	}
	ret = kc_bio_take(out, &pem, &len);
	if (ret < 0)
		goto out;
	ret = kc_sha256(pem, len, digest);
	if (ret < 0)
		goto out;
	kiln_hex_encode(digest, sizeof(digest), hex);
	snprintf(id_out, 80, "amd:%s", hex);
	ret = trust_store(data_dir, id_out, "snp", pem, "trust.amd", path, err);
out:
	if (ret == -ENOMEM)
		kiln_err_set(err, ret, "out of memory");
	ERR_clear_error();
	BIO_free(in);
	BIO_free(out);
	free(pem);
	free(data);
	return ret;
}

int cas_ca_fingerprint(const char *data_dir, char out[65], struct kiln_err *err)
{
	char path[600];
	FILE *f;
	X509 *cert;
	int ret;

	snprintf(path, sizeof(path), "%s/ca.pem", data_dir);
	f = fopen(path, "re");
	if (!f)
		return kiln_err_set(err, -errno, "%s: %s", path, strerror(errno));
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cert)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: not a PEM certificate", path);
	ret = cas_cert_fingerprint(cert, out);
	X509_free(cert);
	return ret;
}

struct ns_scan {
	const char *name;
	const char *owners; /* space-separated, with a leading and a trailing space */
	FILE *notes;
};

static int ns_scan_cb(void *ctx, const struct cas__policy *row)
{
	struct ns_scan *sc = ctx;
	size_t n = strlen(sc->name);
	char needle[CAS_ID_SIZE + 2];

	if (strncmp(row->name, sc->name, n) || row->name[n] != '/')
		return 0;
	snprintf(needle, sizeof(needle), " %s ", row->owner);
	if (!strstr(sc->owners, needle) && sc->notes)
		fprintf(sc->notes, "%s %s\n", row->name, row->owner);
	return 0;
}

int cas_namespace_set(const char *data_dir, const char *name, const char *const *owners,
		      size_t n, FILE *notes, struct kiln_err *err)
{
	struct cas__store st;
	char *list = NULL;
	size_t size = 2;
	json_t *ids;
	int ret;

	if (!pol_name_valid(name) || strchr(name, '/'))
		return kiln_err_set(err, -EINVAL, "namespace '%.128s': expected one policy name "
				    "segment (letters, digits, '.', '_', '-'), such as 'alice'",
				    name);
	for (size_t i = 0; i < n; i++) {
		if (!pol_hash_valid(owners[i]))
			return kiln_err_set(err, -EINVAL, "--owner '%.80s': expected an identity "
					    "'sha256:<64 hex>' (kiln identity show FILE)",
					    owners[i]);
		size += strlen(owners[i]) + 1;
	}
	list = calloc(1, size);
	ids = json_array();
	if (!list || !ids) {
		free(list);
		json_decref(ids);
		return kiln_err_set(err, -ENOMEM, "out of memory");
	}
	strcat(list, " ");
	for (size_t i = 0; i < n; i++) {
		strcat(list, owners[i]);
		strcat(list, " ");
		json_array_append_new(ids, json_string(owners[i]));
	}
	ret = cas__store_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0) {
		free(list);
		json_decref(ids);
		return ret;
	}
	ret = cas__store_begin(&st);
	if (ret == 0)
		ret = n ? cas__namespace_set(&st, name, list) : cas__namespace_delete(&st, name);
	if (ret == 0) {
		ret = cas__audit_append(&st, n ? "namespace.set" : "namespace.remove", "operator",
				      name, json_pack("{s:O}", "owners", ids));
	}
	if (ret == 0)
		ret = cas__store_commit(&st);
	if (ret < 0) {
		cas__store_rollback(&st);
		kiln_err_set(err, ret, "%s: cannot store the namespace: %s", st.where,
			     kiln_strerror(ret));
	} else if (n) {
		struct ns_scan sc = { name, list, notes };

		(void)cas__policy_each(&st, ns_scan_cb, &sc);
	}
	cas__store_close(&st);
	json_decref(ids);
	free(list);
	return ret;
}
