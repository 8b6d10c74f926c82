/* kiln attestation protocol, client side (docs/attestation.md): the ephemeral
 * identity, nonce, binding, evidence (sim, host through kiln-las, tdx/snp
 * through configfs-tsm), POST /v1/attest and the grant (attest_proto.c), and
 * the CAS freshness provider for granted volumes (fresh_cas.c). Both speak to
 * the CAS through the casclient module, never the service's own code.
 *
 * Two source files compiled twice: into libkiln.so (hidden visibility, no
 * jansson, no sanitizers), which attests before main, and into the `kiln` CLI,
 * whose supervisor attests for a statically linked program before it runs it
 * (src/runtime/supervise.h). One process attests once: the
 * ephemeral key is module state, kept for the volume freshness calls. */
#ifndef KILN_RUNTIME_ATTEST_PROTO_H
#define KILN_RUNTIME_ATTEST_PROTO_H

#include <sys/stat.h>

#include "runtime/runtime.h"

struct cc_conn;
struct pf_freshness_ops;

/* Attest to the CAS named in cfg for the workload measurement wm. cfg is kept
 * by pointer (CAS URL and pinning) for the freshness calls: it must outlive
 * them. static_fd: -1 when the caller is the measured process itself (libkiln);
 * else the opened statically linked program the caller will run, which kiln-las
 * measures for --tee host (ev_las_exchange_static). On success *grant is the
 * CAS answer, owned by the caller (rt_json_free wipes its strings). Errors are
 * one line: "attestation refused by the CAS (request id X)" (-KILN_EDENIED),
 * "cannot reach the CAS at URL: ...", or "attestation: ...". */
int rt_attest_cas(const struct rt_config *cfg, const uint8_t wm[48], int static_fd,
		  struct rt_json **grant, struct kiln_err *err);

/* The grant's argv and env as one malloc'd block: argv[0..argc-1], NULL,
 * "K=V"..., NULL; *env points at the first "K=V". The policy's command must name
 * the measured program: its argv[0] must be the file exe (same device and
 * inode), else -KILN_EPOLICY. Free with rt_grant_command_free (wipes). */
int rt_grant_command(const struct rt_json *grant, const struct stat *exe, char ***block,
		     int *argc, char ***env, struct kiln_err *err);
void rt_grant_command_free(char **block);

/* Append the grant's volumes to cfg->volumes (key, CAS id, tags; ciphertext
 * at the mount path unless cfg->volume_dirs names another directory). */
int rt_grant_volumes(const struct rt_json *grant, struct rt_config *cfg,
		     struct kiln_err *err);

/* Call add for every injected file of the grant (absolute path, decoded
 * content, mode). The content is wiped and freed after add returns. A failed
 * add stops the walk: its code, with err naming the file. */
typedef int (*rt_grant_file_fn)(void *ctx, const char *path, const void *data, size_t size,
				mode_t mode);
int rt_grant_files(const struct rt_json *grant, rt_grant_file_fn add, void *ctx,
		   struct kiln_err *err);

/* The policy's working directory, or NULL when it sets none. */
const char *rt_grant_pwd(const struct rt_json *grant);

/* Freshness provider over /v1/volumes/{id}/prepare|commit|tag, authenticated
 * with the key of the last rt_attest_cas (fresh_cas.c). *ctx is owned by pf
 * once the volume is open (ops->free). */
int rt_fresh_cas(const struct rt_volume_cfg *c, const struct pf_freshness_ops **ops,
		 void **ctx);

/* Shared by attest_proto.c and fresh_cas.c, not for other callers: one JSON
 * request to the CAS of the last rt_attest_cas (text: the JSON body or NULL),
 * with its workload key as client certificate once there is one. *out (owned
 * by the caller, rt_json_free) on HTTP 200; any other status is an error naming
 * the CAS's message and request id (403: -KILN_EDENIED). On *cn when there is
 * one (kept open); if that connection fails (the CAS may have closed it while
 * idle), once more on a connection of its own, and *cn is closed. cn may be
 * NULL. */
int rt__cas_call(struct cc_conn **cn, const char *method, const char *path, const char *text,
		 struct rt_json **out, struct kiln_err *err);

#endif
