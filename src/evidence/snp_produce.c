/* The SEV-SNP evidence producer: an attestation report (with the certificate
 * table when the host provides one) for report_data, from configfs-tsm, or
 * without it from /dev/sev-guest (SNP_GET_REPORT). The format is what
 * snp_verify.c checks. Linked into libkiln for kiln run --tee snp. */
#include "evidence/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/sev-guest.h>

#include "evidence/snp.h"
#include "evidence/tsm.h"

/* SNP_GET_REPORT response (SEV-SNP ABI "MSG_REPORT_RSP"): status, size, report. */
#define SNP_RSP_STATUS 0
#define SNP_RSP_SIZE 4
#define SNP_RSP_REPORT 32

static int sev_guest_report(const uint8_t report_data[static EV_REPORT_DATA_SIZE],
			    uint8_t **evidence, size_t *size, struct kiln_err *err)
{
	struct snp_report_req req;
	struct snp_report_resp resp;
	struct snp_guest_request_ioctl io;
	uint32_t status, rsize;
	int fd, ret;

	fd = open("/dev/sev-guest", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			return kiln_err_set(err, -ENODEV,
					    "no SEV-SNP guest interface: neither %s nor "
					    "/dev/sev-guest exists (not running in an SEV-SNP VM?)",
					    ev__tsm_base(NULL));
		return kiln_err_set(err, ret, "cannot open /dev/sev-guest: %s",
				    kiln_strerror(ret));
	}
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	memset(&io, 0, sizeof(io));
	memcpy(req.user_data, report_data, EV_REPORT_DATA_SIZE);
	req.vmpl = 0;
	io.msg_version = 1;
	io.req_data = (uint64_t)(uintptr_t)&req;
	io.resp_data = (uint64_t)(uintptr_t)&resp;
	if (ioctl(fd, SNP_GET_REPORT, &io) != 0) {
		ret = -errno;
		kiln_err_set(err, ret, "/dev/sev-guest SNP_GET_REPORT failed: %s "
			     "(firmware/VMM error 0x%llx)", kiln_strerror(ret),
			     (unsigned long long)io.exitinfo2);
		goto out;
	}
	memcpy(&status, resp.data + SNP_RSP_STATUS, 4);
	memcpy(&rsize, resp.data + SNP_RSP_SIZE, 4);
	if (status != 0 || rsize < EV_SNP_REPORT_SIZE ||
	    rsize > sizeof(resp.data) - SNP_RSP_REPORT) {
		ret = kiln_err_set(err, -KILN_EFORMAT,
				   "/dev/sev-guest: report status %u, size %u", status, rsize);
		goto out;
	}
	*evidence = malloc(EV_SNP_REPORT_SIZE);
	if (!*evidence) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(*evidence, resp.data + SNP_RSP_REPORT, EV_SNP_REPORT_SIZE);
	*size = EV_SNP_REPORT_SIZE;
	ret = 0;
out:
	close(fd);
	return ret;
}

int ev_snp_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		   size_t *size, struct kiln_err *err)
{
	*evidence = NULL;
	*size = 0;
	if (ev__tsm_present() || secure_getenv("KILN_TSM_PATH"))
		return ev_tsm_produce(NULL, NULL, NULL, "sev_guest", report_data, evidence, size,
				      err);
	return sev_guest_report(report_data, evidence, size, err);
}
