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
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char req[2 * EV_REPORT_DATA_SIZE + 32];
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
	memcpy(req + 17 + 2 * EV_REPORT_DATA_SIZE, "\"}\n", 4);
	ret = kiln_send_all_deadline(fd, req, strlen(req), deadline);
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
