/* What the files of src/evidence/ share (not a public header: other modules
 * use evidence.h). Prefix ev__.
 *
 * No JSON library here either: the producers (sim_produce.c, tdx_produce.c,
 * snp_produce.c, tsm.c, las_client.c) include this header and are compiled
 * into libkiln, which links no jansson; the verifiers include <jansson.h>
 * themselves. */
#ifndef KILN_EVIDENCE_INTERNAL_H
#define KILN_EVIDENCE_INTERNAL_H

#include <time.h>

#include "evidence/evidence.h"
#include "evidence/snp.h"

struct json_t;

/* ---- the backends' halves, put together by backends.c --------------------- */

/* sim_produce.c: measure the calling process, then ev_sim_produce. */
int ev__sim_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		    size_t *size, struct kiln_err *err);
/* host_produce.c: ev_host_request to the default kiln-las socket. */
int ev__host_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		     size_t *size, struct kiln_err *err);
/* The verifiers: sim_verify.c, host_verify.c, sgx_verify.c, tdx_verify.c,
 * snp_verify.c (struct ev_backend's verify). */
int ev__sim_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   struct json_t **claims, struct kiln_err *err);
int ev__host_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		    struct json_t **claims, struct kiln_err *err);
int ev__sgx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   struct json_t **claims, struct kiln_err *err);
int ev__tdx_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   struct json_t **claims, struct kiln_err *err);
int ev__snp_verify(const uint8_t *evidence, size_t size, const struct ev_verify_opts *opts,
		   struct json_t **claims, struct kiln_err *err);

/* Sim evidence is a small JSON object; anything larger is refused unread. */
#define EV__SIM_MAX_SIZE 4096

/* ---- configfs-tsm (tsm.c), for the TDX and SNP producers ------------------ */

/* base, else $KILN_TSM_PATH, else EV_TSM_DEFAULT_PATH (a static string or base). */
const char *ev__tsm_base(const char *base);
/* Whether the configfs-tsm report directory exists. */
bool ev__tsm_present(void);

/* ---- JSON helpers of the verifiers (json.c) -------------------------------- */

/* Parse data as exactly one JSON object (duplicate keys, trailing bytes, NUL
 * bytes and non-objects are -KILN_EFORMAT). *out is a new reference owned by
 * the caller. what names the input in messages ("sim evidence"). */
int ev__json_object(const uint8_t *data, size_t size, const char *what, struct json_t **out,
		    struct kiln_err *err);
/* The object must have exactly these keys (-KILN_EFORMAT naming the unknown or
 * missing key). */
int ev__json_keys(const struct json_t *obj, const char *const *keys, size_t n_keys,
		  const char *what, struct kiln_err *err);
/* obj[key] must be a string of exactly 2*size lowercase hex digits. */
int ev__json_hex(const struct json_t *obj, const char *key, uint8_t *out, size_t size,
		 const char *what, struct kiln_err *err);
/* obj[key] must be a string; *out points into obj (borrowed). */
int ev__json_str(const struct json_t *obj, const char *key, const char **out, const char *what,
		 struct kiln_err *err);

/* ---- SEV-SNP (snp_report.c, snp_chain.c, snp_verify.c) ------------------- */

#define EV__SNP_SIG_COMPONENT_SIZE 72 /* r and s, little-endian, zero-padded */
#define EV__SNP_P384_SIZE 48
#define EV__SNP_OID_PRODUCT "1.3.6.1.4.1.3704.1.2" /* VCEK productName */
#define EV__SNP_OID_HWID "1.3.6.1.4.1.3704.1.4"    /* VCEK hwID: the chip_id */

/* Whether p[0..size) is all zero bytes (snp_report.c). */
bool ev__all_zero(const uint8_t *p, size_t size);

/* The TCB extensions of VCEK/VLEK certificates (snp_chain.c), in reported_tcb's
 * order; the FMC one exists on Turin only. */
struct ev__snp_tcb_ext {
	const char *name;  /* extension name in AMD's VCEK specification */
	const char *oid;
	const char *field; /* reported_tcb field */
};
#define EV__SNP_N_TCB_EXTS 5
#define EV__SNP_TCB_FMC 4
extern const struct ev__snp_tcb_ext ev__snp_tcb_exts[EV__SNP_N_TCB_EXTS];

/* A verified chain: everything the report checks need; what the cache holds. */
struct ev__snp_chain {
	EVP_PKEY *leaf_key;     /* owned (one reference): ev__snp_chain_release */
	const char *product;    /* static string ("Milan", "Genoa", "Turin") */
	char product_name[32];  /* VCEK productName extension, "" if absent */
	bool has_hwid;
	uint8_t hwid[EV_SNP_CHIP_ID_SIZE];
	int tcb[EV__SNP_N_TCB_EXTS]; /* -1 when the extension is absent */
	struct {
		char name[64];
		time_t not_before, not_after;
	} certs[3];             /* leaf, intermediate, root */
	unsigned n_crls;        /* AMD CRLs checked (0: none given) */
	time_t crl_this_update, crl_next_update; /* the narrowest window of those */
};

/* The chain for a report signed by a key of this kind, from opts->certs_pem and
 * the report's certificate table (ders, parsed from table[0..table_size)),
 * through the cache of verified chains. On success *c holds a key reference
 * (ev__snp_chain_release); on failure err names the certificate at fault. */
int ev__snp_chain_get(const struct ev_verify_opts *opts, const uint8_t *table, size_t table_size,
		      uint8_t *const *ders, const size_t *der_sizes, size_t n_ders,
		      enum ev_snp_signing_key kind, struct ev__snp_chain *c, struct kiln_err *err);
void ev__snp_chain_release(struct ev__snp_chain *c);
/* The leaf's product name, hwID and TCB extensions into c; kind names the leaf
 * in messages ("VCEK", "VLEK"). */
int ev__snp_leaf_extensions(X509 *leaf, const char *kind, struct ev__snp_chain *c,
			    struct kiln_err *err);
/* The chain from PEM inputs alone (no cache, no report): for an import. */
int ev__snp_chain_build(const char *const *pems, size_t n, enum ev_snp_signing_key kind,
			struct ev__snp_chain *c, struct kiln_err *err);
/* "Milan", "Genoa" or "Turin" when ark is a pinned AMD root; else NULL. */
const char *ev__snp_ark_product(X509 *ark);
/* "YYYY-MM-DDTHH:MM:SSZ" for messages. */
void ev__snp_fmt_time(time_t t, char out[static 32]);

/* ---- the workload measurement's view of /proc/PID/maps (wm_maps.c) ---- */

enum ev__map_kind {
	EV__MAP_DATA,    /* not executable: not measured */
	EV__MAP_KERNEL,  /* [vdso] or [vsyscall]: the kernel's code, not a file */
	EV__MAP_FILE,    /* an executable mapping of a file that exists: hashed */
	EV__MAP_REFUSED, /* executable and not measurable: the measurement fails */
};

struct ev__map {
	unsigned long start, end, dev_major, dev_minor, ino;
	char perms[5];
	const char *name; /* into the parsed line: a path, "[vdso]", "" (anonymous) */
	const char *why;  /* EV__MAP_REFUSED: why (a static string) */
};

/* Parse one line of /proc/PID/maps (NUL-terminated, without its newline; not
 * modified) into m and classify it: returns an enum ev__map_kind, or
 * -KILN_EFORMAT naming the line. */
int ev__map_parse(char *line, struct ev__map *m, struct kiln_err *err);
/* -KILN_EUNMEASURED with "executable mapping START-END 'NAME' (why) cannot be
 * measured: refused" (the name quoted safely for logs). */
int ev__map_refuse(const struct ev__map *m, const char *why, struct kiln_err *err);
/* Every page of mapping m in the process whose /proc/PID/pagemap is open on
 * pagemap_fd is the mapped file's own page (or not loaded yet): 0, or
 * -KILN_EUNMEASURED naming the mapping and the first page that is a private
 * copy (written after it was mapped). -errno when the map cannot be read. */
int ev__map_check_pages(int pagemap_fd, const struct ev__map *m, struct kiln_err *err);
/* 0 when the process at proc ("/proc/self", "/proc/PID") has no tracer;
 * -KILN_EUNMEASURED naming the tracer's pid otherwise. */
int ev__check_tracer(const char *proc, struct kiln_err *err);

#endif
