/* RA-TLS bindings: the report_data that ties evidence to the TLS key of the
 * workload, a CAS nonce and the workload measurement (BRIEF-protocol "Binding"),
 * and the one that ties the CAS's own evidence to its TLS server key and a
 * client's nonce (docs/api.md "The CAS's own attestation"). */
#include "evidence/evidence.h"

#include <errno.h>

#include "crypto/crypto.h"

/* SHA-512(label || key || nonce || wm), the label without its NUL. Distinct
 * labels keep a workload's evidence from ever passing as the CAS's and back. */
static int binding(const char *label, size_t label_size, const uint8_t *spki_der,
		   size_t spki_size, const uint8_t nonce[static EV_NONCE_SIZE],
		   const uint8_t wm[static EV_WM_SIZE], uint8_t out[static EV_REPORT_DATA_SIZE])
{
	kc_hash_t *h;
	size_t out_size = 0;
	int ret;

	if (!spki_der || spki_size == 0)
		return -EINVAL;
	h = kc_hash_new("SHA512");
	if (!h)
		return -KILN_ECRYPTO;
	ret = kc_hash_update(h, label, label_size);
	if (ret == 0)
		ret = kc_hash_update(h, spki_der, spki_size);
	if (ret == 0)
		ret = kc_hash_update(h, nonce, EV_NONCE_SIZE);
	if (ret == 0)
		ret = kc_hash_update(h, wm, EV_WM_SIZE);
	if (ret == 0)
		ret = kc_hash_final(h, out, &out_size);
	if (ret == 0 && out_size != EV_REPORT_DATA_SIZE)
		ret = -KILN_ECRYPTO;
	kc_hash_free(h);
	return ret;
}

int ev_binding(const uint8_t *spki_der, size_t spki_size,
	       const uint8_t nonce[static EV_NONCE_SIZE], const uint8_t wm[static EV_WM_SIZE],
	       uint8_t out[static EV_REPORT_DATA_SIZE])
{
	static const char label[] = "kiln-v1";

	return binding(label, sizeof(label) - 1, spki_der, spki_size, nonce, wm, out);
}

int ev_cas_binding(const uint8_t key_sha256[static 32], const uint8_t nonce[static EV_NONCE_SIZE],
		   const uint8_t wm[static EV_WM_SIZE], uint8_t out[static EV_REPORT_DATA_SIZE])
{
	static const char label[] = "kiln-cas-v1";

	return binding(label, sizeof(label) - 1, key_sha256, 32, nonce, wm, out);
}
