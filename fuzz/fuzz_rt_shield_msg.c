/* Fuzz the file shield's message parsers (src/runtime/shield/proto.c): the
 * volume server parses every packet a peer sends (before and after the key
 * proof), clients parse the server's replies. No input may crash or leak;
 * whatever parses must encode back to the same bytes, and its credentials
 * decode within their bounds. Seeds: one per op (scripts/shield-msg-seeds.py;
 * tests/unit/test_shield.c checks that every op has one). */
#include <stdlib.h>
#include <string.h>

#include "runtime/shield/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[RT_MSG_MAX];
	static struct rt_cred cred;
	struct rt_msg m;
	const uint8_t *body;
	size_t body_size;
	int32_t status;

	if (rt__msg_parse(data, size, &m) == 0) {
		ssize_t n = rt__msg_encode(&m, out, sizeof(out));

		if (n != (ssize_t)size || memcmp(out, data, size) != 0)
			abort();
		rt__msg_cred(&m, &cred);
		if (cred.ngroups != m.ngroups)
			abort();
	}
	if (rt__reply_parse(data, size, &status, &body, &body_size) == 0 &&
	    (body < data || body + body_size != data + size))
		abort();
	return 0;
}
