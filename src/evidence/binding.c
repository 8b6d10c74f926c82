/* RA-TLS binding: the report_data that ties evidence to the TLS key of the
 * workload, a CAS nonce and the workload measurement (BRIEF-protocol "Binding"). */
#include "evidence/evidence.h"

#include <errno.h>

#include "crypto/crypto.h"

static const char g_binding_label[] = "kiln-v1";

int ev_binding(const uint8_t *spki_der, size_t spki_size,
	       const uint8_t nonce[static EV_NONCE_SIZE], const uint8_t wm[static EV_WM_SIZE],
	       uint8_t out[static EV_REPORT_DATA_SIZE])
{
	kc_hash_t *h;
	size_t out_size = 0;
	int ret;

	if (!spki_der || spki_size == 0)
		return -EINVAL;
	h = kc_hash_new("SHA512");
	if (!h)
		return -KILN_ECRYPTO;
	/* The label without its NUL: exactly the 7 bytes "kiln-v1". */
	ret = kc_hash_update(h, g_binding_label, sizeof(g_binding_label) - 1);
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
