/* kiln console records: cutting a live byte stream into whole records, and the
 * greeting of a console relay (console.h). Used by `kiln run --console-listen`
 * (which passes only whole records between the program and one attach client,
 * and keeps whole records while none is attached) and by `kiln console attach
 * --connect`; fuzzed (fuzz/fuzz_console_frame.c). */
#include <errno.h>
#include <string.h>

#include "console/console.h"

/* The first position at or after from where a record could start (a magic,
 * or the start of one cut by the end of the buffer). */
static size_t con__next_magic(const uint8_t *b, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++) {
		size_t n = len - i < 4 ? len - i : 4;

		if (!memcmp(b + i, "KCR1", n))
			return i;
	}
	return len;
}

int con_frame(const uint8_t *buf, size_t len, bool at_end, size_t *n)
{
	struct con_hdr h;
	int ret;

	*n = 0;
	if (!len)
		return -EAGAIN;
	ret = con_parse_hdr(buf, len, &h);
	if (ret == 0) {
		size_t size = CON_HDR_SIZE + (size_t)h.size + CON_TAG_SIZE;

		if (len >= size) {
			*n = size;
			return CON_FRAME_RECORD;
		}
	}
	if (ret == 0 || ret == -EAGAIN) {
		if (!at_end)
			return -EAGAIN;
		*n = len; /* a record cut short by the end: no record */
		return CON_FRAME_OTHER;
	}
	*n = con__next_magic(buf, 1, len);
	return CON_FRAME_OTHER;
}

static const char *const g_hello[] = { CON_HELLO_OK, CON_HELLO_BUSY };

int con_hello_parse(const uint8_t *buf, size_t len, size_t *used)
{
	bool prefix = false;

	*used = 0;
	for (size_t i = 0; i < sizeof(g_hello) / sizeof(g_hello[0]); i++) {
		size_t n = strlen(g_hello[i]);

		if (len >= n && !memcmp(buf, g_hello[i], n)) {
			*used = n;
			return i == 0 ? 0 : -EBUSY;
		}
		if (len < n && !memcmp(buf, g_hello[i], len))
			prefix = true;
	}
	return prefix ? -EAGAIN : -KILN_EFORMAT;
}
