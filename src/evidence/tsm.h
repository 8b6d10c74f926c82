/* configfs-tsm evidence producer (Linux >= 6.7, drivers/virt/coco/tsm.c), shared by the
 * TDX and SNP backends, with fallbacks to the older guest device ioctls.
 *
 * configfs-tsm protocol, as the kernel documents it
 * (Documentation/ABI/testing/configfs-tsm): mkdir an entry under
 * /sys/kernel/config/tsm/report (the kernel creates its attribute files), write 64
 * bytes to `inblob` (this increments `generation`), read `outblob` (the quote or
 * report, generated on first read), `auxblob` (SNP: the certificate table; absent or
 * empty elsewhere) and `provider` ("tdx_guest", "sev_guest"), then read `generation`
 * again: if it is not exactly one more than before our write, another process wrote
 * the entry meanwhile and the outblob may not carry our inblob, so we retry with a
 * fresh entry. The entry is removed with rmdir. */
#ifndef KILN_EVIDENCE_TSM_H
#define KILN_EVIDENCE_TSM_H

#include "evidence/evidence.h"

/* EV_TSM_DEFAULT_PATH is in evidence.h (the CLI names it in its help). */
#define EV_TSM_INBLOB_SIZE 64
#define EV_TSM_MAX_BLOB (1024 * 1024)
#define EV_TSM_ATTEMPTS 4

struct ev_tsm_result {
	uint8_t *outblob;        /* malloc'd, owned by the result */
	size_t outblob_size;
	uint8_t *auxblob;        /* malloc'd or NULL when the provider has none */
	size_t auxblob_size;
	char provider[32];       /* "tdx_guest", "sev_guest", ... */
	uint64_t generation;     /* generation after our inblob write */
	unsigned attempts;       /* 1 unless a concurrent writer forced retries */
};

/* Free the blobs; accepts NULL and a zeroed result. */
void ev_tsm_result_free(struct ev_tsm_result *r);

/* File-system operations the producer uses, so tests can emulate the kernel's
 * configfs (which creates attribute files on mkdir and generates outblob) over a
 * temp dir. Each returns 0 or -errno. `read` returns a malloc'd buffer the caller
 * frees. NULL ops means the real system calls. */
struct ev_tsm_ops {
	int (*mkdir)(void *ctx, const char *path);
	int (*rmdir)(void *ctx, const char *path);
	int (*read)(void *ctx, const char *path, uint8_t **data, size_t *size);
	int (*write)(void *ctx, const char *path, const void *data, size_t size);
};

/* Test hook: the ops (and their ctx) used when a caller passes ops NULL, as the
 * backends' produce functions (ev_tdx_produce, ev_snp_produce) do. NULL restores the
 * real system calls. Process-wide and not thread-safe: for unit tests only. */
void ev_tsm_set_default_ops(const struct ev_tsm_ops *ops, void *ctx);

/* Run one configfs-tsm report request. base NULL means $KILN_TSM_PATH, else
 * EV_TSM_DEFAULT_PATH. On success *out owns the blobs (ev_tsm_result_free); on
 * failure it is zeroed. Errors: -ENODEV when base does not exist, -EBUSY when the
 * generation kept changing for EV_TSM_ATTEMPTS entries, -KILN_EFORMAT when an
 * attribute is missing or malformed; err names the path. */
int ev_tsm_report(const char *base, const uint8_t inblob[static EV_TSM_INBLOB_SIZE],
		  struct ev_tsm_result *out, struct kiln_err *err);
int ev_tsm_report_ops(const char *base, const struct ev_tsm_ops *ops, void *ctx,
		      const uint8_t inblob[static EV_TSM_INBLOB_SIZE], struct ev_tsm_result *out,
		      struct kiln_err *err);

/* Produce evidence for `provider` ("sev_guest" or "tdx_guest") through configfs-tsm
 * at base (as above). The evidence is outblob, followed by auxblob when there is one
 * (for SNP: report || certificate table, see snp.h). -ENODEV when the provider is a
 * different TEE. *evidence is malloc'd, owned by the caller. */
int ev_tsm_produce(const char *base, const struct ev_tsm_ops *ops, void *ctx,
		   const char *provider, const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		   uint8_t **evidence, size_t *size, struct kiln_err *err);

/* Which TEE this machine can produce evidence for, for `--tee auto`: writes the
 * backend name ("snp" or "tdx") to name[8]. configfs-tsm is asked first (an entry is
 * created, its `provider` read, the entry removed; no report is generated), then the
 * /dev/sev-guest and /dev/tdx_guest devices are looked for. -ENODEV, with a message,
 * when there is none; -ENOTSUP for an unknown provider. base/ops as above. */
int ev_tsm_detect(const char *base, const struct ev_tsm_ops *ops, void *ctx, char name[static 8],
		  struct kiln_err *err);

#endif
