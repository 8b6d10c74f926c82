/* libFuzzer target: the CAS's HTTP/1.1 request head parser (src/cas/http_parse.c).
 * The input is cut at its first empty line, as the server does, and must either
 * parse or be refused with a status; a parsed path stays inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cas/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cas__http_head h;
	const char *why;
	const uint8_t *end;
	char *text;
	size_t n;
	int status;

	end = memmem(data, size, "\r\n\r\n", 4);
	n = end ? (size_t)(end - data) + 4 : size;
	if (n > CAS_HTTP_MAX_HEAD)
		return 0;
	text = malloc(n + 1);
	if (!text)
		return 0;
	memcpy(text, data, n);
	text[n] = '\0';
	status = cas__http_parse_head(text, n, &h, &why);
	if (status == 0) {
		if (!h.path || h.path < text || h.path >= text + n || h.path[0] != '/')
			abort();
		if (h.method < CAS_HTTP_GET || h.method > CAS_HTTP_DELETE)
			abort();
	} else if (status < 400 || status > 505 || !why || !why[0]) {
		abort();
	}
	free(text);
	return 0;
}
