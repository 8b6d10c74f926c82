/* The "host" evidence producer: ask kiln-las, the root daemon on this host, to
 * measure the calling process and sign a statement (docs/las.md). The
 * exchange itself is las_client.c (no JSON library, shared with libkiln); this
 * file tells the daemon's refusal from evidence, with jansson, for the CLI's
 * `kiln evidence` and the backend table. libkiln classifies the answer with its
 * own JSON reader (src/runtime/attest_proto.c). */
#include "evidence/internal.h"

#include <jansson.h>
#include <stdlib.h>

int ev_host_request(const char *socket_path,
		    const uint8_t report_data[static EV_REPORT_DATA_SIZE], int timeout_ms,
		    uint8_t **ev, size_t *size, struct kiln_err *err)
{
	char *line = NULL;
	size_t line_size = 0;
	json_t *j = NULL;
	int ret;

	*ev = NULL;
	*size = 0;
	ret = ev_las_exchange(socket_path, report_data, timeout_ms, &line, &line_size,
			      &socket_path, err);
	if (ret < 0)
		return ret;
	j = json_loadb(line, line_size, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "kiln-las at %s answered with invalid JSON",
				   socket_path);
		goto out;
	}
	if (json_object_get(j, "error")) {
		const char *msg = json_string_value(json_object_get(j, "error"));

		ret = kiln_err_set(err, -KILN_EDENIED, "kiln-las at %s refused: %.200s",
				   socket_path, msg ? msg : "(no reason given)");
		goto out;
	}
	*ev = (uint8_t *)line;
	*size = line_size;
	line = NULL;
	ret = 0;
out:
	json_decref(j);
	free(line);
	return ret;
}

int ev__host_produce(const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		     uint8_t **evidence, size_t *size, struct kiln_err *err)
{
	return ev_host_request(NULL, report_data, 0, evidence, size, err);
}
