/* Offline operations on a data directory: LAS trust, CA fingerprint. */
#include "cas/internal.h"

#include <errno.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

int cas_trust_las(const char *data_dir, const char *cert_path, char id_out[CAS_ID_SIZE],
		  struct kiln_err *err)
{
	struct cas_store st;
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
	    cx_cert_pem(cert, &pem, &pem_size) < 0) {
		X509_free(cert);
		return kiln_err_set(err, -KILN_ECRYPTO, "%s: cannot encode the certificate",
				    cert_path);
	}
	X509_free(cert);
	ret = cs_open(&st, data_dir, /*create=*/false, err);
	if (ret < 0) {
		free(pem);
		return ret;
	}
	ret = cs_begin(&st);
	if (ret == 0)
		ret = cs_las_add(&st, id_out, pem);
	if (ret == 0)
		ret = cs_audit_append(&st, "trust.las", "operator", id_out,
				      json_pack("{s:s}", "cert", cert_path));
	if (ret == 0)
		ret = cs_commit(&st);
	if (ret < 0) {
		cs_rollback(&st);
		kiln_err_set(err, ret, "%s/kiln.db: cannot store the trust: %s", data_dir,
			     kiln_strerror(ret));
	}
	cs_close(&st);
	free(pem);
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
