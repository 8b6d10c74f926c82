/* casclient: the HTTP/1.x response parser (also run by fuzz/fuzz_casclient_response.c).
 * Strict on what it needs: a status line, the end of the head, a body no longer
 * than what arrived; chunked transfer encoding is refused (the CAS never sends
 * it). */
#include "casclient/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cc_response_free(struct cc_response *resp)
{
	if (!resp)
		return;
	if (resp->body)
		kiln_free_secret(resp->body, resp->body_size + 1);
	resp->body = NULL;
	resp->body_size = 0;
}

size_t cc__content_length(const char *raw, const char *hdr_end, bool *chunked)
{
	size_t content_length = (size_t)-1;

	*chunked = false;
	for (const char *line = raw; line && line < hdr_end;) {
		line = memchr(line, '\n', (size_t)(hdr_end - line));
		if (!line)
			break;
		line++;
		if ((size_t)(hdr_end - line) > 15 && !strncasecmp(line, "Content-Length:", 15)) {
			const char *p = line + 15;
			unsigned long long v = 0;
			bool digits = false;

			while (*p == ' ')
				p++;
			for (; p < hdr_end && *p >= '0' && *p <= '9' && v < (1ull << 40); p++) {
				v = v * 10 + (unsigned)(*p - '0');
				digits = true;
			}
			if (digits)
				content_length = (size_t)v;
		} else if ((size_t)(hdr_end - line) > 18 &&
			   !strncasecmp(line, "Transfer-Encoding:", 18)) {
			*chunked = true;
		}
	}
	return content_length;
}

char *cc__head_end(const char *raw, size_t size)
{
	return memmem(raw, size, "\r\n\r\n", 4);
}

int cc_parse_response(char *raw, size_t size, struct cc_response *resp, struct kiln_err *err)
{
	char *hdr_end = cc__head_end(raw, size);
	size_t body_off, content_length;
	bool chunked;
	int status;

	if (!hdr_end || sscanf(raw, "HTTP/1.%*1[01] %3d", &status) != 1)
		return kiln_err_set(err, -KILN_EFORMAT, "malformed HTTP response from the CAS");
	content_length = cc__content_length(raw, hdr_end, &chunked);
	if (chunked)
		return kiln_err_set(err, -KILN_EFORMAT, "chunked responses are not supported");
	body_off = (size_t)(hdr_end - raw) + 4;
	if (content_length == (size_t)-1)
		content_length = size - body_off;
	if (content_length > size - body_off)
		return kiln_err_set(err, -KILN_ETRUNC, "truncated HTTP response from the CAS");
	resp->status = status;
	resp->body = malloc(content_length + 1);
	if (!resp->body)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	memcpy(resp->body, raw + body_off, content_length);
	resp->body[content_length] = '\0';
	resp->body_size = content_length;
	return 0;
}
