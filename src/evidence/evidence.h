/* kiln evidence: produce and verify attestation evidence, one backend per TEE kind.
 * The one header of src/evidence/.
 *
 * Every verifier turns evidence into the same normalized claims, a JSON object
 * (jansson) so policies are hardware-independent. Common claim names:
 *   tee                  "sim" | "host" | "sgx" | "tdx" | "snp"
 *   insecure             true only for "sim"
 *   debug                bool: a debugger can read the TEE's memory
 *   report_data          hex, 64 bytes: the binding value chosen by the producer
 *   tcb_status           "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
 *                        "ConfigurationAndSWHardeningNeeded", "OutOfDate",
 *                        "OutOfDateConfigurationNeeded", "Revoked" (hardware TEEs)
 *   advisories           array of advisory ids ("INTEL-SA-00615")
 *   platform_measurement hex: what the hardware measured (MRENCLAVE, MRTD, SNP
 *                        measurement, or the host attestor's key id)
 *   workload_measurement hex, SHA-384 of the kiln workload manifest when the
 *                        backend carries it (sim, host); for CVMs it travels in
 *                        report_data (see docs/architecture.md §2)
 * plus backend-specific claims (mrenclave, mrsigner, rtmr0..3, measurement, ...)
 * documented in docs/evidence.md. */
#ifndef KILN_EVIDENCE_H
#define KILN_EVIDENCE_H

#include <jansson.h>
#include <time.h>

#include "common/common.h"

#define EV_REPORT_DATA_SIZE 64

struct ev_verify_opts {
	time_t at;               /* verification time; 0 means now */
	const json_t *collateral; /* backend-specific (SGX/TDX: PCCS-style JSON), may be NULL */
	/* PEM certificates the verifier may use: the AMD ASK/ARK or VCEK for SNP, the
	 * trusted kiln-las certificates for "host". May be NULL/0. */
	const char *const *certs_pem;
	size_t n_certs;
};

struct ev_backend {
	const char *name;  /* "sim", "host", "sgx", "tdx", "snp" */
	bool insecure;     /* true for "sim": says so everywhere it is used */
	/* Produce evidence carrying report_data. *evidence is malloc'd, owned by the
	 * caller. NULL when this backend cannot produce here (e.g. sgx without a
	 * device). */
	int (*produce)(const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		       uint8_t **evidence, size_t *size, struct kiln_err *err);
	/* Verify evidence; on success *claims is a new JSON object owned by the
	 * caller (json_decref). On failure *claims is NULL and err names the failing
	 * check (which certificate/field, expected vs found). */
	int (*verify)(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		      json_t **claims, struct kiln_err *err);
};

/* The backend with this name, or NULL. */
const struct ev_backend *ev_backend_find(const char *name);
/* All compiled-in backends, NULL-terminated. */
const struct ev_backend *const *ev_backends(void);

#endif
