/* The head of an HTTP/1.1 request, parsed strictly (RFC 9112), for the CAS's
 * own HTTP server (http.c). Only what the API needs is accepted: origin-form
 * targets, GET/POST/DELETE, bodies framed by Content-Length. Anything ambiguous
 * is refused rather than guessed, so no two readers of one request can disagree
 * about where it ends (request smuggling): obsolete line folding, a bare LF, a
 * Transfer-Encoding, duplicate or malformed Content-Length. Pure: no I/O, so the
 * libFuzzer target (fuzz/fuzz_http_request.c) reaches it directly. */
#include "cas/internal.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int refuse(const char **why, int status, const char *msg)
{
	*why = msg;
	return status;
}

/* Does the comma-separated header value list hold token (case-insensitive)? */
static bool has_token(const char *value, const char *token)
{
	size_t n = strlen(token);

	for (const char *p = value; *p;) {
		p += strspn(p, " \t,");
		if (!strncasecmp(p, token, n) && (!p[n] || strchr(" \t,", p[n])))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

static int parse_request_line(char *line, struct cas__http_head *h, const char **why)
{
	char *sp1 = strchr(line, ' '), *sp2, *q;

	if (!sp1)
		return refuse(why, 400, "malformed request line");
	*sp1 = '\0';
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || strchr(sp2 + 1, ' '))
		return refuse(why, 400, "malformed request line");
	*sp2 = '\0';
	if (!strcmp(sp2 + 1, "HTTP/1.1"))
		h->minor = 1;
	else if (!strcmp(sp2 + 1, "HTTP/1.0"))
		h->minor = 0;
	else if (!strncmp(sp2 + 1, "HTTP/", 5))
		return refuse(why, 505, "HTTP version not supported (HTTP/1.1 only)");
	else
		return refuse(why, 400, "malformed request line");
	if (!strcmp(line, "GET"))
		h->method = CAS_HTTP_GET;
	else if (!strcmp(line, "POST"))
		h->method = CAS_HTTP_POST;
	else if (!strcmp(line, "DELETE"))
		h->method = CAS_HTTP_DELETE;
	else if (line[0] && strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(line))
		return refuse(why, 501, "method not implemented (GET, POST, DELETE)");
	else
		return refuse(why, 400, "malformed request line");
	/* origin-form only: "/path[?query]"; the query is kept apart (only
	 * GET /v1/attestation reads one) */
	h->path = sp1 + 1;
	if (h->path[0] != '/')
		return refuse(why, 400, "bad request target (expected /path)");
	for (q = h->path; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return refuse(why, 400, "bad request target");
	h->query = NULL;
	q = h->path + strcspn(h->path, "?#");
	if (*q == '?') {
		h->query = q + 1;
		h->query[strcspn(h->query, "#")] = '\0';
	}
	*q = '\0';
	return 0;
}

static int parse_field(char *line, struct cas__http_head *h, const char **why)
{
	char *colon = strchr(line, ':'), *value, *end;

	if (line[0] == ' ' || line[0] == '\t')
		return refuse(why, 400, "obsolete header line folding");
	if (!colon || colon == line)
		return refuse(why, 400, "malformed header line");
	for (char *p = line; p < colon; p++)
		if (!is_tchar(*p))
			return refuse(why, 400, "malformed header name");
	*colon = '\0';
	value = colon + 1 + strspn(colon + 1, " \t");
	end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	for (char *p = value; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return refuse(why, 400, "control character in a header value");
	if (!strcasecmp(line, "Content-Length")) {
		size_t len = strlen(value);
		uint64_t n;

		if (h->has_length)
			return refuse(why, 400, "more than one Content-Length");
		if (!len || len > 19 || strspn(value, "0123456789") != len ||
		    kiln_parse_u64(value, &n) < 0)
			return refuse(why, 400, "malformed Content-Length");
		h->content_length = n;
		h->has_length = true;
	} else if (!strcasecmp(line, "Transfer-Encoding")) {
		return refuse(why, 411, "Transfer-Encoding is not accepted: send Content-Length");
	} else if (!strcasecmp(line, "Connection")) {
		if (has_token(value, "close"))
			h->close = true;
		if (has_token(value, "keep-alive"))
			h->keep_alive_10 = true;
	} else if (!strcasecmp(line, "Expect")) {
		if (strcasecmp(value, "100-continue"))
			return refuse(why, 417, "only 'Expect: 100-continue' is understood");
		h->expect_continue = true;
	}
	return 0;
}

int cas__http_parse_head(char *text, size_t size, struct cas__http_head *h, const char **why)
{
	char *line = text, *end = text + size;
	unsigned fields = 0;
	int ret;

	memset(h, 0, sizeof(*h));
	*why = "";
	if (size < 4 || memcmp(end - 4, "\r\n\r\n", 4))
		return refuse(why, 400, "incomplete request head");
	if (memchr(text, '\0', size))
		return refuse(why, 400, "NUL byte in the request head");
	for (bool first = true;; first = false) {
		/* crlf exists: the head ends with CRLF CRLF */
		char *crlf = strstr(line, "\r\n");
		size_t len = (size_t)(crlf - line);

		*crlf = '\0';
		if (memchr(line, '\n', len) || memchr(line, '\r', len))
			return refuse(why, 400, "bare CR or LF in the request head");
		if (!first && !line[0])
			break;
		if (first)
			ret = parse_request_line(line, h, why);
		else if (++fields > CAS_HTTP_MAX_FIELDS)
			ret = refuse(why, 431, "too many header fields");
		else
			ret = parse_field(line, h, why);
		if (ret)
			return ret;
		line = crlf + 2;
		if (line >= end)
			return refuse(why, 400, "incomplete request head");
	}
	if (line + 2 != end)
		return refuse(why, 400, "bytes after the end of the request head");
	/* HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes unless told. */
	h->keep_alive = h->minor == 1 ? !h->close : (h->keep_alive_10 && !h->close);
	if (h->method != CAS_HTTP_POST && h->content_length)
		return refuse(why, 400, "a body is only accepted with POST");
	return 0;
}
