/* libFuzzer target: CAS request handling that does not belong to libevent —
 * the JSON body validators of /v1/attest, /v1/volumes, /v1/certificate and
 * /v1/console. The first input byte selects the parser. (The CAS client's response parser has its own target,
 * fuzz_casclient_response.c.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cas/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	char *text;

	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0: {
		struct cas__attest_req req;

		if (cas__attest_req_parse(text, size - 1, &req, &err) == 0)
			json_decref(req.body);
		break;
	}
	case 2: {
		/* /v1/certificate and /v1/console: two names, nothing else. */
		const char *a, *b;
		json_t *body;

		if (cas__pair_req_parse(text, size - 1, "session", "secret", &body, &a, &b,
					&err) == 0) {
			if (!a || !b || json_object_size(body) != 2)
				abort();
			json_decref(body);
		} else if (!err.msg[0] || body || a || b) {
			abort();
		}
		break;
	}
	default: {
		int64_t tag;

		(void)cas__tag_req_parse(text, size - 1, &tag);
		break;
	}
	}
	free(text);
	return 0;
}
