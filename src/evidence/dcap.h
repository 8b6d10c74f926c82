/* Intel DCAP (SGX and TDX ECDSA quotes): internal interface of the evidence module,
 * also used by tests/unit/test_evidence_dcap.c, the fuzz targets and bench/evidence.
 *
 * Split:
 *   dcap_quote.c       bounds-checked quote parser (v3, v4, v5)
 *   dcap_x509.c        pinned Intel SGX Root CA, PEM chains, CRLs, ECDSA helpers,
 *                      PCK certificate SGX extensions
 *   dcap_collateral.c  collateral JSON -> ev_dcap_collateral_t (signatures checked once)
 *   dcap_tcb.c         TCB Info / QE Identity / TDX module evaluation
 *   dcap_verify.c      the verification pipeline and the claims
 *   sgx_verify.c, tdx_verify.c  the backends' verify (backends.c has the structs)
 *
 * Nothing here prints or logs; every failure is a negative code plus a kiln_err. */
#ifndef KILN_EVIDENCE_DCAP_H
#define KILN_EVIDENCE_DCAP_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/common.h"
#include "evidence/evidence.h"

/* ---- quote layout ---------------------------------------------------------- */

#define EV_DCAP_HEADER_SIZE 48
#define EV_DCAP_SGX_BODY_SIZE 384
#define EV_DCAP_TD10_BODY_SIZE 584
#define EV_DCAP_TD15_BODY_SIZE 648
#define EV_DCAP_QE_REPORT_SIZE 384
#define EV_DCAP_SIG_SIZE 64
#define EV_DCAP_KEY_SIZE 64
#define EV_DCAP_TEE_SGX 0x00000000u
#define EV_DCAP_TEE_TDX 0x00000081u
#define EV_DCAP_ATT_KEY_ECDSA_P256 2
#define EV_DCAP_CERT_PCK_CHAIN 5
#define EV_DCAP_CERT_QE_REPORT 6

/* A parsed quote: every pointer points into the caller's buffer, which must outlive
 * the struct. Sizes were all checked against the buffer by ev_dcap_quote_parse. */
struct ev_dcap_quote {
	uint16_t version;        /* 3, 4 or 5 */
	uint16_t att_key_type;   /* 2 */
	uint32_t tee_type;       /* EV_DCAP_TEE_SGX or EV_DCAP_TEE_TDX */
	uint16_t body_type;      /* 1 SGX, 2 TD 1.0, 3 TD 1.5 (v5 descriptor; derived for v3/v4) */
	const uint8_t *header;   /* EV_DCAP_HEADER_SIZE bytes */
	const uint8_t *body;     /* body_size bytes */
	size_t body_size;
	size_t body_off;         /* offset of body in the quote */
	size_t signed_size;      /* the quote signature covers quote[0, signed_size) */
	size_t sig_data_off;
	uint32_t sig_data_size;
	const uint8_t *signature;  /* 64 bytes r||s */
	const uint8_t *att_key;    /* 64 bytes x||y */
	const uint8_t *qe_report;  /* 384 bytes */
	const uint8_t *qe_report_sig; /* 64 bytes */
	const uint8_t *qe_auth;
	uint16_t qe_auth_size;
	const char *pck_pem;       /* PEM chain, not NUL-terminated */
	uint32_t pck_pem_size;
	size_t pck_pem_off;
	size_t trailing;           /* bytes after the quote (reported, not signed) */
};

/* Parse a quote. -KILN_ETRUNC names the field that does not fit, -KILN_EFORMAT the
 * field with an unsupported value; offsets in the message are decimal. */
int ev_dcap_quote_parse(const uint8_t *data, size_t size, struct ev_dcap_quote *q,
			struct kiln_err *err);

/* Report-body field offsets (relative to the body). */
#define SGXR_CPUSVN 0
#define SGXR_MISCSELECT 16
#define SGXR_ATTRIBUTES 48
#define SGXR_MRENCLAVE 64
#define SGXR_MRSIGNER 128
#define SGXR_ISVPRODID 256
#define SGXR_ISVSVN 258
#define SGXR_REPORT_DATA 320
#define TDR_TEE_TCB_SVN 0
#define TDR_MRSEAM 16
#define TDR_MRSIGNERSEAM 64
#define TDR_SEAM_ATTRIBUTES 112
#define TDR_TD_ATTRIBUTES 120
#define TDR_XFAM 128
#define TDR_MRTD 136
#define TDR_MRCONFIGID 184
#define TDR_MROWNER 232
#define TDR_MROWNERCONFIG 280
#define TDR_RTMR0 328
#define TDR_REPORT_DATA 520
#define TDR_TEE_TCB_SVN2 584
#define TDR_MRSERVICETD 600

/* ---- X.509 helpers (dcap_x509.c) -------------------------------------------- */

/* The pinned Intel SGX Root CA (parsed once, checked against its SHA-256 pin).
 * Borrowed; never free it. NULL with -KILN_EROOT in err if the pin fails. */
X509 *ev_dcap_root_ca(struct kiln_err *err);
/* True when cert is byte-identical to the pinned root. */
bool ev_dcap_is_root(const X509 *cert);

/* True when der is byte-identical to the pinned root's DER. */
bool ev_dcap_is_root_der(const uint8_t *der, size_t size);

/* PEM certificate blocks decoded to DER, strictly (only whitespace or NUL between the
 * blocks). ders[0..*n) are malloc'd, freed with ev_dcap_der_free. */
#define EV_DCAP_MAX_CHAIN 8
struct ev_dcap_der {
	uint8_t *data;
	size_t size;
};
int ev_dcap_pem_split(const char *pem, size_t size, const char *what, struct ev_dcap_der *ders,
		      int max, int *n, struct kiln_err *err);
void ev_dcap_der_free(struct ev_dcap_der *ders, int n);
/* One DER certificate (the whole buffer); NULL with -KILN_EFORMAT in err. Owned by the
 * caller. index is 1-based, for messages. */
X509 *ev_dcap_der_cert(const struct ev_dcap_der *der, const char *what, int index,
		       struct kiln_err *err);

/* Parse a PEM chain (size bytes, no NUL needed). *chain is new, owned by the caller
 * (sk_X509_pop_free(…, X509_free)). what names the chain in errors. */
int ev_dcap_pem_chain(const char *pem, size_t size, const char *what, STACK_OF(X509) **chain,
		      struct kiln_err *err);
/* Parse a CRL given as hex DER or PEM. *crl owned by the caller. */
int ev_dcap_crl_parse(const char *text, size_t size, const char *what, X509_CRL **crl,
		      struct kiln_err *err);

/* ECDSA-P256/SHA-256 verification of a raw 64-byte r||s signature.
 * Returns 0, -KILN_ESIG or -KILN_ECRYPTO. */
int ev_dcap_ecdsa_verify(EVP_PKEY *key, const void *msg, size_t size, const uint8_t sig[64]);
/* The P-256 public key from 64 bytes x||y. Owned by the caller. */
EVP_PKEY *ev_dcap_p256_key(const uint8_t xy[64]);

/* Intel's DCAP chains have fixed roles, told apart by subject CN (as Intel's QVL does):
 * a TCB Info signed by a PCK CA, say, must not pass. -KILN_ECHAIN unless the CN is in
 * the NULL-terminated list. */
int ev_dcap_check_cn(const X509 *cert, const char *const *allowed, const char *what,
		     struct kiln_err *err);
extern const char *const ev_dcap_cn_pck_ca[];       /* PCK Processor CA, PCK Platform CA */
extern const char *const ev_dcap_cn_pck[];          /* Intel SGX PCK Certificate */
extern const char *const ev_dcap_cn_tcb_signing[];  /* Intel SGX TCB Signing */

/* A certificate's name for messages: its CN, or "certificate". */
const char *ev_dcap_cert_name(const X509 *cert, char *buf, size_t size);
/* "YYYY-MM-DDTHH:MM:SSZ" of t into buf (>= 21 bytes). */
const char *ev_dcap_fmt_time(time_t t, char *buf, size_t size);
/* Strict "YYYY-MM-DDTHH:MM:SSZ" (fractional seconds accepted, ignored). */
int ev_dcap_parse_time(const char *s, time_t *out);
/* notBefore / notAfter as time_t. */
int ev_dcap_asn1_time(const ASN1_TIME *t, time_t *out);

/* The SGX extension (OID 1.2.840.113741.1.13.1) of a PCK certificate. */
struct ev_dcap_pck_ext {
	uint8_t comp_svn[16];   /* .2.1 .. .2.16 */
	uint16_t pcesvn;        /* .2.17 */
	uint8_t cpusvn[16];     /* .2.18 */
	uint8_t pceid[2];       /* .3 */
	uint8_t fmspc[6];       /* .4 */
	int sgx_type;           /* .5: 0 standard, 1 scalable, 2 scalable with integrity */
};
/* All of .2.1-.2.18, .3 and .4 must be present, once each; -KILN_EFORMAT otherwise. */
int ev_dcap_pck_ext_parse(X509 *pck, struct ev_dcap_pck_ext *ext, struct kiln_err *err);

/* Check that `child` was issued and signed by `issuer` (names, key usage, CA flag,
 * signature). what names the child in errors. 0 or -KILN_ECHAIN. */
int ev_dcap_check_issued(X509 *issuer, X509 *child, const char *what, struct kiln_err *err);

/* -KILN_EREVOKED (naming the certificate, its serial and the CRL) when crl lists
 * cert (same issuer name and serial); 0 otherwise. */
int ev_dcap_check_revoked(X509_CRL *crl, X509 *cert, const char *what, const char *crl_name,
			  struct kiln_err *err);

/* ---- collateral (dcap_collateral.c) ----------------------------------------- */

enum ev_dcap_status {
	EV_DCAP_UP_TO_DATE,
	EV_DCAP_SW_HARDENING_NEEDED,
	EV_DCAP_CONFIGURATION_NEEDED,
	EV_DCAP_CONFIGURATION_AND_SW_HARDENING_NEEDED,
	EV_DCAP_OUT_OF_DATE,
	EV_DCAP_OUT_OF_DATE_CONFIGURATION_NEEDED,
	EV_DCAP_REVOKED,
	EV_DCAP_STATUS_COUNT
};
const char *ev_dcap_status_name(enum ev_dcap_status s);
int ev_dcap_status_parse(const char *s, enum ev_dcap_status *out);

/* One validity window of the collateral, checked at every verification. */
struct ev_dcap_window {
	char what[96];
	time_t not_before, not_after;
};

typedef struct ev_dcap_collateral ev_dcap_collateral_t;

/* Parse and authenticate collateral in the format of
 * testdata/evidence/sgx/collateral.json (see docs/evidence-intel.md):
 * PEM issuer chains must end at the pinned root, the TCB Info and QE Identity
 * signatures are verified over their exact JSON bytes, the CRLs' signatures are
 * verified and the issuer chains checked against the Root CA CRL. Everything that
 * does not depend on the verification time is done here, once; the time windows
 * are kept and checked by every verification.
 * *out is new, owned by the caller (ev_dcap_collateral_free). Thread-safe to share
 * read-only between concurrent verifications. */
int ev_dcap_collateral_parse(const json_t *collateral, ev_dcap_collateral_t **out,
			     struct kiln_err *err);
void ev_dcap_collateral_free(ev_dcap_collateral_t *c);
/* PCK certificate memo (on by default): a PCK certificate whose exact DER was already
 * proved to be signed by the collateral's PCK CA is not parsed and signature-checked
 * again; its validity window and the PCK CRL are still checked at every verification.
 * Off: every verification parses and checks the whole chain (bench comparisons). */
void ev_dcap_collateral_set_pck_memo(ev_dcap_collateral_t *c, bool on);
/* Earliest end of every window of the collateral (what collateral_valid_until says). */
time_t ev_dcap_collateral_valid_until(const ev_dcap_collateral_t *c);

/* Internal view of a parsed collateral, used by dcap_verify.c and dcap_tcb.c. */
#define EV_DCAP_MAX_WINDOWS 16
#define EV_DCAP_PCK_MEMO 16
struct ev_dcap_pck_memo {
	uint8_t hash[32];            /* SHA-256 of the PCK certificate DER */
	X509 *cert;                  /* NULL when the slot is empty */
	struct ev_dcap_pck_ext ext;
};
struct ev_dcap_collateral {
	uint8_t *pck_ca_der;            /* DER of pck_crl_issuer */
	size_t pck_ca_der_size;
	pthread_mutex_t memo_lock;      /* guards memo[], memo_next */
	bool memo_enabled;
	struct ev_dcap_pck_memo memo[EV_DCAP_PCK_MEMO];
	size_t memo_next;
	X509_CRL *root_crl;             /* signed by the pinned root */
	X509_CRL *pck_crl;              /* signed by pck_crl_issuer */
	X509 *pck_crl_issuer;           /* PCK Processor/Platform CA, checked to root */
	json_t *tcb_info;               /* the parsed tcbInfo object (signature verified) */
	json_t *qe_identity;            /* the parsed enclaveIdentity object (verified) */
	const char *tcb_id;             /* "SGX" or "TDX" (borrowed from tcb_info) */
	int tcb_version;                /* 2 or 3 */
	uint8_t fmspc[6];
	uint8_t pceid[2];
	const char *qe_id;              /* "QE" or "TD_QE" */
	struct ev_dcap_window windows[EV_DCAP_MAX_WINDOWS];
	size_t n_windows;
};

/* ---- TCB evaluation (dcap_tcb.c) -------------------------------------------- */

struct ev_dcap_tcb_result {
	enum ev_dcap_status status;     /* final, after QE and TDX module convergence */
	enum ev_dcap_status platform;   /* matched platform TCB level */
	enum ev_dcap_status sgx_level;  /* TDX: the first level matching the SGX components */
	/* TD 1.5 only: OutOfDate because the TDX module was updated under the running TD
	 * (TEE_TCB_SVN2 is current, TEE_TCB_SVN is not); relaunching the TD fixes it. Intel
	 * QVL reports this as the status TD_RELAUNCH_ADVISED[_CONFIGURATION_NEEDED]; kiln
	 * keeps tcb_status within the common list and says it in this flag. */
	bool relaunch_advised;
	enum ev_dcap_status qe;         /* QE identity TCB level */
	int has_module;              /* TDX: module identity evaluated */
	enum ev_dcap_status module;
	int level_index;
	json_t *advisories;          /* new array, owned by the result */
};
void ev_dcap_tcb_result_clear(struct ev_dcap_tcb_result *r);

/* QE identity: MRSIGNER, ISVPRODID, MISCSELECT/mask, ATTRIBUTES/mask, ISVSVN levels.
 * Call before ev_dcap_eval_tcb (which converges the QE status into the final one). r is
 * zero-initialized by the caller and cleared with ev_dcap_tcb_result_clear. */
int ev_dcap_eval_qe(const ev_dcap_collateral_t *c, const uint8_t *qe_report,
		    struct ev_dcap_tcb_result *r, struct kiln_err *err);
/* Platform TCB level from the PCK extension (and, for TDX, the TD body). */
int ev_dcap_eval_tcb(const ev_dcap_collateral_t *c, const struct ev_dcap_pck_ext *ext,
		     const struct ev_dcap_quote *q, struct ev_dcap_tcb_result *r, struct kiln_err *err);

/* ---- verification (dcap_verify.c) ------------------------------------------- */

/* Verify a quote with pre-parsed collateral at time `at` (0 = now). expect_tee is
 * EV_DCAP_TEE_SGX or EV_DCAP_TEE_TDX. On success *claims is new, owned by the caller.
 * The collateral is not modified except for its internal, locked PCK memo, so one
 * collateral may serve concurrent verifications. */
int ev_dcap_verify(const uint8_t *quote, size_t size, uint32_t expect_tee,
		   ev_dcap_collateral_t *collateral, time_t at, json_t **claims,
		   struct kiln_err *err);

/* The backends' verify: parses opts->collateral, then ev_dcap_verify. */
int ev_dcap_backend_verify(const uint8_t *quote, size_t size, uint32_t expect_tee,
			   const struct ev_verify_opts *opts, json_t **claims,
			   struct kiln_err *err);


#endif
