/* The TDX evidence producer: a TD quote (version 4/5) for report_data from
 * configfs-tsm (the quote generation service is the kernel's and the host's
 * business). Without configfs-tsm, /dev/tdx_guest gives only a TDREPORT, which
 * no remote verifier can check: a named -ENOTSUP. The format is what
 * tdx_verify.c / dcap_verify.c check. Linked into libkiln for kiln run --tee tdx. */
#include "evidence/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "evidence/tsm.h"

/* <linux/tdx-guest.h> is not in every distribution's headers; the ABI is fixed. */
struct kiln_tdx_report_req {
	uint8_t reportdata[64];
	uint8_t tdreport[1024];
};
#define KILN_TDX_CMD_GET_REPORT0 _IOWR('T', 1, struct kiln_tdx_report_req)

int ev_tdx_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE], uint8_t **evidence,
		   size_t *size, struct kiln_err *err)
{
	struct kiln_tdx_report_req req;
	int fd, ret;

	*evidence = NULL;
	*size = 0;
	if (ev__tsm_present() || secure_getenv("KILN_TSM_PATH"))
		return ev_tsm_produce(NULL, NULL, NULL, "tdx_guest", report_data, evidence, size,
				      err);
	fd = open("/dev/tdx_guest", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			return kiln_err_set(err, -ENODEV,
					    "no TDX guest interface: neither %s nor /dev/tdx_guest "
					    "exists (not running in a TDX VM?)", ev__tsm_base(NULL));
		return kiln_err_set(err, ret, "cannot open /dev/tdx_guest: %s",
				    kiln_strerror(ret));
	}
	memset(&req, 0, sizeof(req));
	memcpy(req.reportdata, report_data, EV_REPORT_DATA_SIZE);
	if (ioctl(fd, KILN_TDX_CMD_GET_REPORT0, &req) != 0) {
		ret = -errno;
		kiln_err_set(err, ret, "/dev/tdx_guest TDX_CMD_GET_REPORT0 failed: %s",
			     kiln_strerror(ret));
	} else {
		/* FIXME(no QGS client): turning the TDREPORT into a quote needs the quote
		 * generation service over vsock; only configfs-tsm does that for us. */
		ret = kiln_err_set(err, -ENOTSUP,
				   "/dev/tdx_guest gave a TDREPORT (1024 bytes, MAC'd for "
				   "this CPU only), but a verifiable TDX quote needs configfs-tsm "
				   "with a quote generation service; not supported");
	}
	kiln_wipe(&req, sizeof(req));
	close(fd);
	return ret;
}
