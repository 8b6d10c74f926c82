/* Unit tests for the CAS's HTTP/1.1 request head parser (src/cas/http_parse.c):
 * what it accepts, and that every ambiguous framing is refused with its status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas/internal.h"

static int parse(const char *head, struct cas__http_head *h, const char **why,
		 char **text)
{
	size_t n = strlen(head);

	*text = strdup(head);
	assert_non_null(*text);
	return cas__http_parse_head(*text, n, h, why);
}

static void test_http_head_accepts_get_post_delete(void **state)
{
	struct cas__http_head h;
	const char *why;
	char *t;

	assert_int_equal(parse("GET /v1/nonce?x=1 HTTP/1.1\r\nHost: cas\r\n\r\n", &h, &why,
			       &t), 0);
	assert_int_equal(h.method, CAS_HTTP_GET);
	assert_string_equal(h.path, "/v1/nonce");
	assert_true(h.keep_alive);
	assert_false(h.has_length);
	free(t);
	assert_int_equal(parse("POST /v1/policies HTTP/1.1\r\ncontent-length:  42 \r\n"
			       "Connection: keep-alive, close\r\nExpect: 100-continue\r\n\r\n",
			       &h, &why, &t), 0);
	assert_int_equal(h.method, CAS_HTTP_POST);
	assert_int_equal(h.content_length, 42);
	assert_false(h.keep_alive);
	assert_true(h.expect_continue);
	free(t);
	assert_int_equal(parse("DELETE /v1/policies/acme/db HTTP/1.0\r\n\r\n", &h, &why, &t), 0);
	assert_false(h.keep_alive); /* HTTP/1.0 closes unless asked */
	free(t);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &why, &t),
			 0);
	assert_true(h.keep_alive);
	free(t);
}

static void test_http_head_refuses_ambiguous_framing(void **state)
{
	static const struct {
		const char *head;
		int status;
		const char *why;
	} bad[] = {
		{ "GARBAGE\r\n\r\n", 400, "malformed request line" },
		{ "GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
		  "Transfer-Encoding is not accepted: send Content-Length" },
		{ "POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400,
		  "more than one Content-Length" },
		{ "POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400,
		  "malformed Content-Length" },
		{ "POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
		  "malformed Content-Length" },
		{ "GET /a HTTP/1.1\r\nX: 1\r\n continued\r\n\r\n", 400,
		  "obsolete header line folding" },
		{ "GET /a HTTP/1.1\r\nX : 1\r\n\r\n", 400, "malformed header name" },
		{ "GET /a HTTP/1.1\nHost: x\r\n\r\n", 400, "bare CR or LF in the request head" },
		{ "GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "bare CR or LF in the request head" },
		{ "GET /a HTTP/1.1\r\nX: a\x01\r\n\r\n", 400,
		  "control character in a header value" },
		{ "GET http://cas/a HTTP/1.1\r\n\r\n", 400, "bad request target (expected /path)" },
		{ "GET /a b HTTP/1.1\r\n\r\n", 400, "malformed request line" },
		{ "PUT /a HTTP/1.1\r\n\r\n", 501, "method not implemented (GET, POST, DELETE)" },
		{ "GET /a HTTP/2.0\r\n\r\n", 505, "HTTP version not supported (HTTP/1.1 only)" },
		{ "GET /a HTTP/1.1\r\nExpect: gold\r\n\r\n", 417,
		  "only 'Expect: 100-continue' is understood" },
		{ "GET /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 400,
		  "a body is only accepted with POST" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cas__http_head h;
		const char *why;
		char *t;
		int status = parse(bad[i].head, &h, &why, &t);

		if (status != bad[i].status || strcmp(why, bad[i].why))
			fail_msg("case %zu: got %d '%s', expected %d '%s'", i, status, why,
				 bad[i].status, bad[i].why);
		free(t);
	}
}

static void test_http_head_refuses_too_many_fields(void **state)
{
	char head[8192] = "GET / HTTP/1.1\r\n";
	struct cas__http_head h;
	const char *why;
	char *t;

	for (int i = 0; i <= CAS_HTTP_MAX_FIELDS; i++)
		snprintf(head + strlen(head), sizeof(head) - strlen(head), "X%d: 1\r\n", i);
	strcat(head, "\r\n");
	assert_int_equal(parse(head, &h, &why, &t), 431);
	assert_string_equal(why, "too many header fields");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_head_accepts_get_post_delete),
		cmocka_unit_test(test_http_head_refuses_ambiguous_framing),
		cmocka_unit_test(test_http_head_refuses_too_many_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
