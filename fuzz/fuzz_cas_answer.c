/* Fuzz the client's parser and verifier of the CAS's own attestation (the
 * answer of GET /v1/attestation, ev_cas_answer_verify): strict JSON, exact keys,
 * the nonce and key fields, base64, the backend's verifier, the binding. The
 * nonce and the connection's key are fixed (bytes 0x11 and 0x22), so the seed
 * corpus holds answers that verify. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t nonce[EV_NONCE_SIZE], key[32];
	struct ev_verify_opts opts = { 0 };
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	int ret;

	memset(nonce, 0x11, sizeof(nonce));
	memset(key, 0x22, sizeof(key));
	ret = ev_cas_answer_verify((const char *)data, size, nonce, key, &opts, &claims, &err);
	if ((ret < 0) != (claims == NULL))
		abort();
	/* Accepted: the claims carry the measurement the binding covered. */
	if (ret == 0 && !json_is_string(json_object_get(claims, "workload_measurement")))
		abort();
	json_decref(claims);
	return 0;
}
