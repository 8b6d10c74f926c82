/* kiln evidence: produce and verify attestation evidence, one backend per TEE kind
 * (<tee>_produce.c, <tee>_verify.c; dcap_*.c for Intel's quotes and collateral).
 * The one header of src/evidence/ for other modules.
 *
 * Every verifier turns evidence into the same normalized claims, a JSON object
 * (a jansson json_t) so policies are hardware-independent. This header names
 * the type without including <jansson.h>: the producers and libkiln, which
 * links no jansson, compile against it too. Common claim names:
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

#include <time.h>

#include "common/common.h"

#define EV_REPORT_DATA_SIZE 64

/* jansson's json_t (typedef struct json_t json_t); a verifier's claims. */
struct json_t;

struct ev_verify_opts {
	time_t at;               /* verification time; 0 means now */
	/* backend-specific (SGX/TDX: PCCS-style JSON), may be NULL */
	const struct json_t *collateral;
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
		      struct json_t **claims, struct kiln_err *err);
};

/* The backend with this name, or NULL. */
const struct ev_backend *ev_backend_find(const char *name);
/* All compiled-in backends, NULL-terminated. */
const struct ev_backend *const *ev_backends(void);

/* ---- kiln workload measurement, binding, software backends (see
 * docs/measurement.md and BRIEF-protocol) ---- */

#define EV_NONCE_SIZE 32
#define EV_WM_SIZE 48            /* workload measurement: SHA-384 of the manifest */

/* RA-TLS binding: out = SHA-512("kiln-v1" || spki_der || nonce || wm). */
int ev_binding(const uint8_t *spki_der, size_t spki_size,
	       const uint8_t nonce[static EV_NONCE_SIZE], const uint8_t wm[static EV_WM_SIZE],
	       uint8_t out[static EV_REPORT_DATA_SIZE]);

/* The CAS's own attestation (GET /v1/attestation, docs/api.md): out =
 * SHA-512("kiln-cas-v1" || SHA-256(TLS server SPKI DER) || nonce || wm), wm the
 * workload measurement of the running kiln-cas. */
int ev_cas_binding(const uint8_t key_sha256[static 32], const uint8_t nonce[static EV_NONCE_SIZE],
		   const uint8_t wm[static EV_WM_SIZE], uint8_t out[static EV_REPORT_DATA_SIZE]);

/* Verify the answer of GET /v1/attestation (cas_answer.c; format in docs/api.md)
 * as received over a TLS connection whose server key has SHA-256 key_sha256,
 * for the client's fresh nonce: the answer parses strictly, names a known tee,
 * its evidence verifies with opts (collateral, certificates), and its
 * report_data is ev_cas_binding(key_sha256, nonce, workload measurement). A
 * nonce or key that differs is named as such (a replayed answer; TLS terminated
 * by something else). On success *claims (owned by the caller, json_decref)
 * holds the backend's claims with workload_measurement set. -KILN_EFORMAT,
 * -KILN_ENONCE, -KILN_EBINDING or the backend's error, err naming it. */
int ev_cas_answer_verify(const char *text, size_t size, const uint8_t nonce[static EV_NONCE_SIZE],
			 const uint8_t key_sha256[static 32], const struct ev_verify_opts *opts,
			 struct json_t **claims, struct kiln_err *err);

/* Measure process pid (0 = the calling process) from /proc/PID/exe and
 * /proc/PID/maps into out = SHA-384(manifest). When manifest_out is non-NULL it
 * receives the manifest text, malloc'd and owned by the caller. For pid 0 the
 * shared object holding this code (libkiln, the measure preload) is left out of
 * the lib lines, see docs/measurement.md. Safe to call from a library
 * constructor: no stdio, a few mallocs. -ENOENT for a gone process or a deleted
 * mapped file, -ESTALE for a file replaced since it was mapped, other -errno for
 * /proc access failures; err names the file. */
int ev_workload_measure_pid(pid_t pid, uint8_t out[static EV_WM_SIZE], char **manifest_out,
			    struct kiln_err *err);

/* Like ev_workload_measure_pid with an explicit set of kiln runtime library
 * digests (SHA-256) to leave out of the lib lines: kiln-las passes the digests of
 * the installed libkiln.so / libkiln-measure.so so that it measures a process
 * running under the runtime exactly as the runtime measures itself. For pid 0
 * the self-exclusion applies in addition. */
int ev_workload_measure_ex(pid_t pid, const uint8_t (*exclude)[32], size_t n_exclude,
			   uint8_t out[static EV_WM_SIZE], char **manifest_out,
			   struct kiln_err *err);

/* A thread-safe cache of file digests for a long-running measurer (kiln-las),
 * keyed by device, inode, size, mtime and ctime of the opened file, and used
 * only on local filesystems whose ctime the kernel maintains (ext4, xfs,
 * btrfs, tmpfs, overlayfs, squashfs, f2fs; never FUSE or network
 * filesystems), and only for files unchanged for 2 s (timestamps are coarse).
 * max_entries 0 means 4096. Owned by the caller (_free accepts
 * NULL). */
struct ev_wm_cache;
struct ev_wm_cache *ev_wm_cache_new(size_t max_entries);
void ev_wm_cache_free(struct ev_wm_cache *cache);
/* Hits and misses so far (for logs and tests). */
void ev_wm_cache_stats(struct ev_wm_cache *cache, uint64_t *hits, uint64_t *misses);
/* ev_workload_measure_ex with an optional cache (NULL: none). */
int ev_workload_measure_cached(pid_t pid, const uint8_t (*exclude)[32], size_t n_exclude,
			       struct ev_wm_cache *cache, uint8_t out[static EV_WM_SIZE],
			       char **manifest_out, struct kiln_err *err);

/* What a program file is (elf.c), from its ELF headers. */
enum ev_elf_kind {
	EV_ELF_NONE,   /* no ELF magic: a #! script, or not a program */
	EV_ELF_STATIC, /* no program interpreter (static-pie included) */
	EV_ELF_GLIBC,  /* PT_INTERP is glibc's x86-64 loader (ld-linux-x86-64.so.N) */
	EV_ELF_MUSL,   /* PT_INTERP is musl's (ld-musl-x86_64.so.N) */
	EV_ELF_OTHER,  /* another program interpreter */
};
struct ev_elf_info {
	enum ev_elf_kind kind;
	char interp[256];      /* PT_INTERP, "" for static programs */
	bool links_kiln;       /* DT_NEEDED names the runtime for its C library
				* (libkiln.so, libkiln-musl.so: a kiln-cc build): the
				* runtime comes with the program, nothing preloads it */
};
/* Classify the regular file behind fd (read with pread: its offset is
 * unchanged). 0 with out filled (EV_ELF_NONE for a file without ELF magic),
 * -KILN_EFORMAT with err naming what is wrong for an ELF file no x86-64 Linux
 * process can be (another architecture or class, not an executable, headers
 * or PT_INTERP outside the file, no PT_LOAD), -errno on read errors. */
int ev_elf_classify_fd(int fd, struct ev_elf_info *out, struct kiln_err *err);
/* The kind of a program whose PT_INTERP is interp, from the name glibc's and
 * musl's x86-64 loaders are installed under, wherever the directory:
 * EV_ELF_GLIBC, EV_ELF_MUSL or EV_ELF_OTHER. */
enum ev_elf_kind ev_elf_loader_kind(const char *interp);
/* "statically linked", "dynamically linked (musl)", ... */
const char *ev_elf_kind_name(enum ev_elf_kind kind);
/* 1 when fd is a valid x86-64 ELF executable without a program interpreter
 * (a statically linked program, static-pie included), 0 otherwise (read
 * errors included). */
int ev_elf_is_static_fd(int fd);

/* SHA-256 of the whole file behind fd (read from offset 0; the offset moves),
 * through cache when not NULL. 0 or -errno. */
int ev_file_sha256_fd(int fd, struct ev_wm_cache *cache, uint8_t out[static 32]);

/* The workload measurement of a statically linked program from its file:
 * identical to ev_workload_measure_pid of a process running it, which maps no
 * file but its executable (docs/measurement.md). exe_sha256 receives the file's
 * SHA-256, *manifest_out (may be NULL) the manifest, malloc'd, owned by the
 * caller. -KILN_EFORMAT (err says why) when fd is not a regular file holding a
 * static ELF executable; -errno on read errors. */
int ev_workload_measure_static_fd(int fd, struct ev_wm_cache *cache,
				  uint8_t out[static EV_WM_SIZE], char **manifest_out,
				  uint8_t exe_sha256[static 32], struct kiln_err *err);

/* Sim evidence for report_data and an explicit workload measurement;
 * *ev is malloc'd, owned by the caller. */
int ev_sim_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		   const uint8_t wm[static EV_WM_SIZE], uint8_t **ev, size_t *size);

/* The kiln-las exchange without JSON parsing (libkiln has no jansson): connect,
 * send {"report_data": HEX}, read one answer line (at most EV_LAS_MAX_EVIDENCE
 * bytes, within timeout_ms; 0 = 10 s). socket_path NULL or "" means
 * $KILN_LAS_SOCKET or EV_LAS_DEFAULT_SOCKET; *used_path (may be NULL) says which.
 * *answer is malloc'd, NUL-terminated, owned by the caller; it is evidence or
 * {"error": "..."}, which the caller tells apart. */
int ev_las_exchange(const char *socket_path,
		    const uint8_t report_data[static EV_REPORT_DATA_SIZE], int timeout_ms,
		    char **answer, size_t *size, const char **used_path, struct kiln_err *err);

/* ev_las_exchange for a statically linked program that the caller (the kiln
 * supervisor) will run from exe_fd: the request says "static_exe": true and
 * carries exe_fd (SCM_RIGHTS); kiln-las measures that file instead of the
 * caller, only when the caller is the same kiln build as kiln-las itself
 * (docs/las.md). exe_fd < 0: the plain request. */
int ev_las_exchange_static(const char *socket_path,
			   const uint8_t report_data[static EV_REPORT_DATA_SIZE], int exe_fd,
			   int timeout_ms, char **answer, size_t *size, const char **used_path,
			   struct kiln_err *err);

/* Client side of the kiln-las protocol: socket_path NULL means $KILN_LAS_SOCKET
 * or /run/kiln/las.sock; timeout_ms 0 means 10 s. *ev (the evidence JSON, no
 * trailing newline) is malloc'd, owned by the caller. An error answer from the
 * daemon gives -KILN_EDENIED with its message in err. */
#define EV_LAS_DEFAULT_SOCKET "/run/kiln/las.sock"
#define EV_LAS_MAX_EVIDENCE (64 * 1024)
int ev_host_request(const char *socket_path,
		    const uint8_t report_data[static EV_REPORT_DATA_SIZE], int timeout_ms,
		    uint8_t **ev, size_t *size, struct kiln_err *err);

/* Produce TDX evidence for report_data: a TD quote (version 4/5) from
 * configfs-tsm. Without configfs-tsm, /dev/tdx_guest (TDX_CMD_GET_REPORT0) yields
 * only a TDREPORT, which no remote verifier can check without a quote generation
 * service, so that case is a named -ENOTSUP error rather than evidence.
 * *evidence is malloc'd, owned by the caller. */
int ev_tdx_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		   size_t *size, struct kiln_err *err);
/* Produce SNP evidence through configfs-tsm (fallback /dev/sev-guest): the
 * 1184-byte report, followed by the certificate table from auxblob when the host
 * provides one. *evidence is malloc'd, owned by the caller. */
int ev_snp_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		   size_t *size, struct kiln_err *err);

/* Where the TDX and SNP producers ask for evidence: configfs-tsm's report
 * directory, unless $KILN_TSM_PATH names another (tsm.c). */
#define EV_TSM_DEFAULT_PATH "/sys/kernel/config/tsm/report"

/* Which TEE this machine can produce evidence for (`kiln run --tee auto`): writes
 * "snp" or "tdx" to name. configfs-tsm is asked first, then /dev/sev-guest and
 * /dev/tdx_guest are looked for (tsm.h, ev_tsm_detect). -ENODEV, with a message,
 * when there is none; -ENOTSUP for a configfs-tsm provider kiln does not know. */
int ev_tee_detect(char name[static 8], struct kiln_err *err);

/* The backends (backends.c; also through ev_backend_find). */
extern const struct ev_backend ev_backend_sim;
extern const struct ev_backend ev_backend_host;
extern const struct ev_backend ev_backend_sgx;
extern const struct ev_backend ev_backend_tdx;
extern const struct ev_backend ev_backend_snp;

/* What can be checked of an Intel quote (SGX when !tdx, else TDX) without
 * collateral (kiln evidence inspect; dcap_verify.c): the quote's PCK chain to
 * the pinned Intel SGX Root CA and its validity at `at` (0: now; no CRLs), the
 * QE report's signature and its binding of the attestation key, the quote's
 * signature. 0 with *claims (new, the caller's) as verification gives them,
 * but "tcb_status": "not evaluated" and no claim collateral decides
 * (advisories, QE and TDX module status); -KILN_E* with err otherwise. The CAS
 * never accepts inspected-only evidence: it calls the backends' verify. */
int ev_dcap_inspect(const uint8_t *quote, size_t size, bool tdx, time_t at,
		    struct json_t **claims, struct kiln_err *err);

/* ---- Intel collateral per platform (dcap_platform.c) ---- */
#define EV_FMSPC_SIZE 13 /* 12 uppercase hex digits + NUL */
/* The FMSPC of an SGX/TDX quote's PCK certificate (which platform's collateral
 * can verify it). Nothing is verified: a verification follows. 0, or
 * -KILN_EFORMAT / -KILN_ETRUNC naming what is malformed. */
int ev_dcap_quote_fmspc(const uint8_t *quote, size_t size, char out[EV_FMSPC_SIZE],
			struct kiln_err *err);
/* What a collateral covers: parsed and authenticated as for a verification
 * (signatures, chains to the pinned Intel root). */
struct ev_collateral_info {
	char fmspc[EV_FMSPC_SIZE];
	char tcb_id[4];      /* "SGX" or "TDX": the TEE kind it verifies */
	time_t valid_from;   /* the latest start of its windows (issue dates, thisUpdate) */
	time_t valid_until;  /* the earliest end (nextUpdate, certificates' notAfter) */
	char next[96];       /* the window that ends first, e.g. "TCB Info" */
};
int ev_dcap_collateral_info(const struct json_t *collateral, struct ev_collateral_info *out,
			    struct kiln_err *err);

#endif
