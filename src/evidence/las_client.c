/* Client side of the kiln-las socket protocol, without a JSON library so that
 * libkiln (which links no jansson) and ev_host_request share it: one request
 * line out, one answer line back. Classifying the answer (evidence or
 * {"error": ...}) is the caller's, with its own JSON reader. */
#include "evidence/evidence.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EV_LAS_DEFAULT_TIMEOUT_MS 10000

int ev_las_exchange(const char *socket_path,
		    const uint8_t report_data[static EV_REPORT_DATA_SIZE], int timeout_ms,
		    char **answer, size_t *size, const char **used_path, struct kiln_err *err)
{
	return ev_las_exchange_static(socket_path, report_data, -1, timeout_ms, answer, size,
				      used_path, err);
}

int ev_las_exchange_static(const char *socket_path,
			   const uint8_t report_data[static EV_REPORT_DATA_SIZE], int exe_fd,
			   int timeout_ms, char **answer, size_t *size, const char **used_path,
			   struct kiln_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char req[2 * EV_REPORT_DATA_SIZE + 64];
	size_t len;
	uint64_t deadline;
	int fd = -1, ret;

	*answer = NULL;
	*size = 0;
	if (!socket_path || !socket_path[0])
		socket_path = secure_getenv("KILN_LAS_SOCKET");
	if (!socket_path || !socket_path[0])
		socket_path = EV_LAS_DEFAULT_SOCKET;
	if (used_path)
		*used_path = socket_path;
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return kiln_err_set(err, -ENAMETOOLONG, "kiln-las socket path %s is too long",
				    socket_path);
	strcpy(addr.sun_path, socket_path);
	deadline = kiln_now_ns() +
		   (uint64_t)(timeout_ms > 0 ? timeout_ms : EV_LAS_DEFAULT_TIMEOUT_MS) * 1000000;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kiln_err_set(err, -errno, "socket: %s", kiln_strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = kiln_err_set(err, -errno, "cannot reach kiln-las at %s: %s "
				   "(is 'kiln las serve' running?)", socket_path,
				   kiln_strerror(errno));
		goto out;
	}
	memcpy(req, "{\"report_data\": \"", 17);
	kiln_hex_encode(report_data, EV_REPORT_DATA_SIZE, req + 17);
	len = 17 + 2 * EV_REPORT_DATA_SIZE;
	if (exe_fd >= 0) {
		/* The static variant (docs/las.md): measure the passed program. */
		static const char flag[] = "\", \"static_exe\": true";

		memcpy(req + len, flag, sizeof(flag) - 1);
		len += sizeof(flag) - 1;
	} else {
		req[len++] = '"';
	}
	memcpy(req + len, "}\n", 3);
	len += 2;
	/* The static variant passes the program with the request's first byte. */
	ret = exe_fd >= 0 ? kiln_send_fd_deadline(fd, req, len, exe_fd, deadline)
			  : kiln_send_all_deadline(fd, req, len, deadline);
	if (ret < 0) {
		kiln_err_set(err, ret, "kiln-las at %s: sending the request: %s", socket_path,
			     kiln_strerror(ret));
		goto out;
	}
	ret = kiln_recv_line_deadline(fd, EV_LAS_MAX_EVIDENCE, deadline, answer, size);
	if (ret < 0)
		kiln_err_set(err, ret, "kiln-las at %s: reading the answer: %s", socket_path,
			     kiln_strerror(ret));
out:
	close(fd);
	return ret;
}
