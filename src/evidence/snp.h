/* AMD SEV-SNP attestation reports: parser, verifier internals exposed for the fuzz
 * target, the benchmark and the unit tests. Other modules use evidence.h
 * (ev_backend_snp, ev_snp_produce).
 *
 * Layout: AMD SEV-SNP ABI specification, table "ATTESTATION_REPORT" (versions 2-5,
 * 0x4A0 = 1184 bytes, little-endian). The signed region is [0, 0x2A0). */
#ifndef KILN_EVIDENCE_SNP_H
#define KILN_EVIDENCE_SNP_H

#include <openssl/types.h>

#include "evidence/evidence.h"

#define EV_SNP_REPORT_SIZE 0x4A0
#define EV_SNP_SIGNED_SIZE 0x2A0
#define EV_SNP_CHIP_ID_SIZE 64

/* Signing key kinds (report flags bits 4:2). */
enum ev_snp_signing_key { EV_SNP_KEY_VCEK = 0, EV_SNP_KEY_VLEK = 1, EV_SNP_KEY_NONE = 7 };

/* A parsed report. Byte arrays point into the caller's buffer (not copied): the
 * struct is valid only while that buffer is. */
struct ev_snp_report {
	uint32_t version;
	uint32_t guest_svn;
	uint64_t policy;
	const uint8_t *family_id;       /* 16 */
	const uint8_t *image_id;        /* 16 */
	uint32_t vmpl;
	uint32_t signature_algo;        /* 1 = ECDSA P-384 with SHA-384 */
	uint64_t current_tcb;
	uint64_t platform_info;
	uint32_t flags;                 /* bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, 4:2 key */
	const uint8_t *report_data;     /* 64 @0x50 */
	const uint8_t *measurement;     /* 48 @0x90 */
	const uint8_t *host_data;       /* 32 @0xC0 */
	const uint8_t *id_key_digest;   /* 48 @0xE0 */
	const uint8_t *author_key_digest; /* 48 @0x110 */
	const uint8_t *report_id;       /* 32 @0x140 */
	const uint8_t *report_id_ma;    /* 32 @0x160 */
	uint64_t reported_tcb;          /* @0x180 */
	uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step; /* v3+, @0x188; 0 in v2 */
	const uint8_t *chip_id;         /* 64 @0x1A0 */
	uint64_t committed_tcb;         /* @0x1E0 */
	uint8_t current_build, current_minor, current_major;       /* @0x1E8 */
	uint8_t committed_build, committed_minor, committed_major; /* @0x1EC */
	uint64_t launch_tcb;            /* @0x1F0 */
	const uint8_t *sig_r;           /* 72, little-endian @0x2A0 */
	const uint8_t *sig_s;           /* 72, little-endian @0x2E8 */
	enum ev_snp_signing_key signing_key;
};

/* Parse and bounds-check exactly one report at buf[0, size). A shorter buffer gives
 * -KILN_ETRUNC naming the first incomplete field; more bytes than a report give
 * -KILN_ETRAILING (the verifier accepts a certificate table there, see below);
 * unknown versions, algorithms, non-zero signature padding give -KILN_EFORMAT. */
int ev_snp_report_parse(const uint8_t *buf, size_t size, struct ev_snp_report *r,
			struct kiln_err *err);

/* Split the bytes after a report as a SEV-SNP certificate table (GHCB "extended
 * report" format: 24-byte entries {GUID, offset u32, length u32} ending with an all-zero
 * entry; offsets relative to the table). Each certificate with a known GUID (VCEK,
 * VLEK, ASK, ARK) is appended to *ders as a malloc'd DER copy (caller frees each and
 * the array). Returns -KILN_EFORMAT when the bytes are not such a table. */
int ev_snp_cert_table_parse(const uint8_t *buf, size_t size, uint8_t ***ders, size_t **sizes,
			    size_t *n, struct kiln_err *err);

/* Reported TCB split into its security patch levels. `turin` selects the Turin
 * (family 1Ah) layout, which adds an FMC level and moves the others. */
struct ev_snp_tcb {
	uint8_t fmc, bootloader, tee, snp, microcode;
};
void ev_snp_tcb_decode(uint64_t raw, bool turin, struct ev_snp_tcb *out);

/* The report checks that follow the chain, against a leaf certificate the caller has
 * already trusted: the report signature by leaf's key, then (VCEK) hwID == chip_id and
 * the TCB extensions == reported_tcb, using the `product`'s TCB layout ("Milan",
 * "Genoa", "Turin"). No chain or validity check: the verifier runs those first. For
 * tests and tools that hold a leaf certificate of their own; leaf is borrowed. */
int ev_snp_check_report(const uint8_t *report, size_t size, X509 *leaf, const char *product,
			struct kiln_err *err);

/* Check an AMD CRL (as served by KDS per product: issued and signed by the ARK, listing
 * revoked ASKs/ASVKs) for the given chain certificates, matched by issuer and serial:
 * -KILN_ECHAIN when it is not the ARK's, -KILN_EREVOKED naming a revoked certificate.
 * Sets its thisUpdate/nextUpdate window; whether `at` is inside it is the caller's
 * check. All pointers are borrowed. The verifier calls this for every CRL among
 * opts->certs_pem (PEM "X509 CRL" blocks). */
int ev_snp_check_crl(X509_CRL *crl, X509 *ark, X509 *const *certs, size_t n_certs,
		     time_t *this_update, time_t *next_update, struct kiln_err *err);

/* ---- AMD certificates for a store of them (snp_certs.c; kiln cas collateral
 * import). Each stored item has a key a report finds it under:
 *   chain:PRODUCT:vcek|vlek      an ASK (or ASVK) with its ARK, the ARK pinned
 *   vcek:CHIPID:TCB              a chip's VCEK for one reported TCB
 *   vlek:TCB:PRODUCT             a VLEK (one per cloud provider and TCB)
 * with CHIPID the 128 hex digits of the chip ID (hwID) and TCB like
 * "bl2.tee0.snp5.uc68" (".fmc" first on Turin). */
#define EV_AMD_KEY_SIZE 192
enum ev_amd_kind { EV_AMD_CHAIN_VCEK, EV_AMD_CHAIN_VLEK, EV_AMD_VCEK, EV_AMD_VLEK };
struct ev_amd_item {
	enum ev_amd_kind kind;
	const char *product;           /* "Milan", "Genoa", "Turin" (static) */
	char key[EV_AMD_KEY_SIZE];
	char tcb[48];                  /* leaves: the TCB part of key */
	time_t not_before, not_after;  /* the overlap of its certificates' validity */
	char *pem;                     /* the certificates as PEM; owned (free) */
};
/* "ASK/ARK chain (VCEK)", "VLEK" ... for messages. */
const char *ev_amd_kind_name(enum ev_amd_kind kind);
/* Parse one import file (PEM or DER) into *out: an ASK or ASVK with its ARK (the
 * ARK pinned, the ASK signed by it), or one VCEK/VLEK certificate, which must chain
 * to one of `chains` (the PEM of stored chains) under a pinned ARK. Errors name
 * what is wrong (-KILN_EFORMAT, -KILN_ECHAIN, -KILN_EROOT). */
int ev_amd_import(const uint8_t *data, size_t size, const char *const *chains,
		  size_t n_chains, struct ev_amd_item *out, struct kiln_err *err);
/* The store key of the certificate a report (evidence: a report, maybe followed
 * by a certificate table) is signed with: "vcek:CHIPID:TCB" (exact) or
 * "vlek:TCB:" (a prefix: the product is not in a v2 report). *kind its signing
 * key; chip (may be NULL) the chip ID's first 16 hex digits for messages. */
int ev_amd_report_key(const uint8_t *evidence, size_t size, char key[EV_AMD_KEY_SIZE],
		      enum ev_snp_signing_key *kind, char chip[17], struct kiln_err *err);

/* Cache of verified certificate chains (VCEK/VLEK public key plus the chain's
 * validity window and extensions), keyed by SHA-256 over the certificate inputs, so
 * a hit skips PEM parsing and the three RSA-PSS verifications. Validity at
 * opts->at and every report check still run on a hit. Thread-safe. Enabled by
 * default; disabling also clears it. */
void ev_snp_cache_set_enabled(bool enabled);
void ev_snp_cache_clear(void);

#endif
