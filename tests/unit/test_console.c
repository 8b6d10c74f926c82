/* Unit tests for src/console: sealing and opening records, and the reader's
 * reports (gaps, late, repeated, modified and cut records, garbage, streams
 * without their end) fed in pieces of every size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"

static const uint8_t g_key[CON_KEY_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t g_id[CON_ID_SIZE] = { 0xaa, 0xbb };

/* Records appended to a capture. */
struct capture {
	uint8_t buf[1 << 16];
	size_t len;
	size_t at[64]; /* offset of each record */
	size_t n;
};

static void add(struct capture *c, struct con_stream *s, uint8_t type, uint8_t ch,
		uint64_t seq, const char *text)
{
	int n = con_seal(s, type, ch, seq, text, strlen(text), c->buf + c->len);

	assert_true(n > 0);
	c->at[c->n++] = c->len;
	c->len += (size_t)n;
}

static void add_header(struct capture *c, struct con_stream *s, uint8_t ch)
{
	struct con_info info = { .pid = 42, .start_ns = 7 };
	uint8_t p[CON_INFO_SIZE];
	int n;

	strcpy(info.program, "app");
	con_info_encode(&info, p);
	n = con_seal(s, CON_T_HEADER, ch, 0, p, sizeof(p), c->buf + c->len);
	assert_true(n > 0);
	c->at[c->n++] = c->len;
	c->len += (size_t)n;
}

static void add_end(struct capture *c, struct con_stream *s, uint8_t ch, uint64_t seq,
		    int status)
{
	uint8_t p[4] = { (uint8_t)(status >> 24), (uint8_t)(status >> 16), (uint8_t)(status >> 8),
			 (uint8_t)status };
	int n = con_seal(s, CON_T_END, ch, seq, p, 4, c->buf + c->len);

	assert_true(n > 0);
	c->at[c->n++] = c->len;
	c->len += (size_t)n;
}

/* What the reader said, as text: one line per event. */
struct seen {
	char text[8192];
	size_t len;
};

static void on_event(void *ctx, const struct con_event *ev)
{
	struct seen *s = ctx;
	char line[512];

	switch (ev->kind) {
	case CON_EV_STREAM:
		snprintf(line, sizeof(line), "stream %02x pid %u %s\n", ev->id[0], ev->info->pid,
			 ev->info->program);
		break;
	case CON_EV_DATA:
		snprintf(line, sizeof(line), "data %u %llu %.*s\n", ev->channel,
			 (unsigned long long)ev->seq, (int)ev->size, (const char *)ev->data);
		break;
	case CON_EV_END:
		snprintf(line, sizeof(line), "end %u %llu %d\n", ev->channel,
			 (unsigned long long)ev->seq, ev->status);
		break;
	case CON_EV_GAP:
	case CON_EV_DROPPED:
		snprintf(line, sizeof(line), "%s %u %llu-%llu\n",
			 ev->kind == CON_EV_GAP ? "gap" : "dropped", ev->channel,
			 (unsigned long long)ev->seq, (unsigned long long)ev->seq2);
		break;
	case CON_EV_LATE:
	case CON_EV_REPLAY:
	case CON_EV_AUTH:
	case CON_EV_AFTER_END:
		snprintf(line, sizeof(line), "%s %u %llu\n",
			 ev->kind == CON_EV_LATE ? "late" : ev->kind == CON_EV_REPLAY ? "replay" :
			 ev->kind == CON_EV_AUTH ? "auth" : "after-end", ev->channel,
			 (unsigned long long)ev->seq);
		break;
	case CON_EV_GARBAGE:
	case CON_EV_PREAMBLE:
		snprintf(line, sizeof(line), "%s %llu+%zu\n",
			 ev->kind == CON_EV_GARBAGE ? "garbage" : "preamble",
			 (unsigned long long)ev->offset, ev->size);
		break;
	case CON_EV_TRUNCATED:
		snprintf(line, sizeof(line), "truncated %u %llu @%llu\n", ev->channel,
			 (unsigned long long)ev->seq, (unsigned long long)ev->offset);
		break;
	case CON_EV_LIMIT:
		snprintf(line, sizeof(line), "limit\n");
		break;
	}
	assert_true(s->len + strlen(line) < sizeof(s->text));
	memcpy(s->text + s->len, line, strlen(line) + 1);
	s->len += strlen(line);
}

/* Read buf in pieces of `piece` bytes; returns the problem count. */
static uint64_t read_all(const uint8_t *buf, size_t len, size_t piece, struct seen *out,
			 const uint8_t *key)
{
	struct con_reader *r;
	uint64_t problems;

	memset(out, 0, sizeof(*out));
	assert_int_equal(con_reader_new(key ? key : g_key, on_event, out, &r), 0);
	for (size_t off = 0; off < len; off += piece)
		assert_int_equal(con_reader_feed(r, buf + off, len - off < piece ? len - off :
						 piece), 0);
	con_reader_finish(r);
	problems = con_reader_problems(r);
	con_reader_free(r);
	return problems;
}

static struct con_stream *stream(void)
{
	struct con_stream *s;

	assert_int_equal(con_stream_new(g_key, g_id, &s), 0);
	return s;
}

static void test_round_trip_any_pieces(void **state)
{
	struct con_stream *s = stream();
	struct capture *c = calloc(1, sizeof(*c));
	struct seen seen;

	add_header(c, s, CON_STDOUT);
	add(c, s, CON_T_DATA, CON_STDOUT, 1, "hello");
	add_header(c, s, CON_STDERR);
	add(c, s, CON_T_DATA, CON_STDERR, 1, "oops");
	add(c, s, CON_T_DATA, CON_STDOUT, 2, "world");
	add_end(c, s, CON_STDOUT, 3, 0);
	add_end(c, s, CON_STDERR, 2, 0);
	/* The plaintext is nowhere in the records. */
	assert_null(memmem(c->buf, c->len, "hello", 5));
	for (size_t piece = 1; piece <= 64; piece = piece * 2 + 1) {
		assert_int_equal(read_all(c->buf, c->len, piece, &seen, NULL), 0);
		assert_non_null(strstr(seen.text, "data 1 1 hello\n"));
		assert_non_null(strstr(seen.text, "end 2 2 0\n"));
	}
	read_all(c->buf, c->len, c->len, &seen, NULL);
	assert_string_equal(seen.text, "stream aa pid 42 app\ndata 1 1 hello\nstream aa pid 42 "
			    "app\ndata 2 1 oops\ndata 1 2 world\nend 1 3 0\nend 2 2 0\n");
	con_stream_free(s);
	free(c);
}

static void test_problems_by_number(void **state)
{
	struct con_stream *s = stream();
	struct capture *c = calloc(1, sizeof(*c)), *t = calloc(1, sizeof(*t));
	struct seen seen;
	char want[512];
	size_t junk_at;
	uint64_t n;

	add_header(c, s, CON_STDOUT);                 /* 0 */
	add(c, s, CON_T_DATA, CON_STDOUT, 1, "one");  /* 1 */
	add(c, s, CON_T_DATA, CON_STDOUT, 2, "two");  /* 2 */
	add(c, s, CON_T_DATA, CON_STDOUT, 3, "three");/* 3 */
	add(c, s, CON_T_DATA, CON_STDOUT, 4, "four"); /* 4 */
	add(c, s, CON_T_DATA, CON_STDOUT, 5, "five"); /* 5 */
	add_end(c, s, CON_STDOUT, 6, 3);              /* 6 */
	/* Build: 0, 1, 3 (2 dropped so far), 2 (late), 1 again (replay), 4
	 * modified, 6 (5 never comes), junk, end. */
#define COPY(i) (memcpy(t->buf + t->len, c->buf + c->at[i], \
			(i + 1 < c->n ? c->at[i + 1] : c->len) - c->at[i]), \
		 t->len += (i + 1 < c->n ? c->at[i + 1] : c->len) - c->at[i])
	COPY(0);
	COPY(1);
	COPY(3);
	COPY(2);
	COPY(1);
	{
		size_t at = t->len;

		COPY(4);
		t->buf[at + CON_HDR_SIZE + 1] ^= 1;
	}
	junk_at = t->len;
	memcpy(t->buf + t->len, "junk!", 5);
	t->len += 5;
	COPY(6);
	n = read_all(t->buf, t->len, 7, &seen, NULL);
	snprintf(want, sizeof(want),
			    "stream aa pid 42 app\n"
			    "data 1 1 one\n"
			    "gap 1 2-2\n"
			    "data 1 3 three\n"
			    "late 1 2\n"
			    "data 1 2 two\n"
			    "replay 1 1\n"
			    "auth 1 4\n"
			    "garbage %zu+5\n"
			    "gap 1 4-5\n"
			    "end 1 6 3\n"
			    "dropped 1 4-5\n", junk_at);
	assert_string_equal(seen.text, want);
	assert_int_equal(n, 7);
	con_stream_free(s);
	free(c);
	free(t);
}

static void test_truncated_and_wrong_key(void **state)
{
	struct con_stream *s = stream();
	struct capture *c = calloc(1, sizeof(*c));
	static const uint8_t other[CON_KEY_SIZE] = { 9 };
	struct seen seen;

	add_header(c, s, CON_STDOUT);
	add(c, s, CON_T_DATA, CON_STDOUT, 1, "cut here");
	/* The stream ends without its end record, the last record cut short. */
	read_all(c->buf, c->len - 3, 5, &seen, NULL);
	{
		char want[256];

		snprintf(want, sizeof(want), "stream aa pid 42 app\ntruncated 1 1 @%zu\n"
			 "truncated 1 1 @0\n", c->at[1]);
		assert_string_equal(seen.text, want);
	}
	/* Another console key: nothing authenticates. */
	assert_int_equal(read_all(c->buf, c->len, c->len, &seen, other), 2);
	assert_string_equal(seen.text, "auth 1 0\nauth 1 1\n");
	con_stream_free(s);
	free(c);
}

static void test_after_end_and_garbage_only(void **state)
{
	struct con_stream *s = stream();
	struct capture *c = calloc(1, sizeof(*c));
	struct seen seen;
	uint8_t junk[300];

	add_header(c, s, CON_STDERR);
	add_end(c, s, CON_STDERR, 1, 0);
	add(c, s, CON_T_DATA, CON_STDERR, 2, "late write");
	read_all(c->buf, c->len, 3, &seen, NULL);
	assert_string_equal(seen.text, "stream aa pid 42 app\nend 2 1 0\nafter-end 2 2\n");
	/* Plaintext output instead of records: all garbage, nothing shown. */
	memset(junk, 'x', sizeof(junk));
	assert_int_equal(read_all(junk, sizeof(junk), 17, &seen, NULL), 1);
	assert_string_equal(seen.text, "garbage 0+300\n");
	con_stream_free(s);
	free(c);
}

/* Plaintext before the first record (kiln's own lines before attestation)
 * is skipped without being a problem; the same bytes later are one. */
static void test_preamble(void **state)
{
	static const char pre[] = "kiln: WARNING: INSECURE simulation backend\n";
	struct con_stream *s = stream();
	struct capture *c = calloc(1, sizeof(*c));
	struct seen seen;

	memcpy(c->buf, pre, sizeof(pre) - 1);
	c->len = sizeof(pre) - 1;
	add_header(c, s, CON_STDOUT);
	add(c, s, CON_T_DATA, CON_STDOUT, 1, "hello");
	add_end(c, s, CON_STDOUT, 2, 0);
	for (size_t piece = 1; piece <= 64; piece = piece * 2 + 1) {
		assert_int_equal(read_all(c->buf, c->len, piece, &seen, NULL), 0);
		assert_non_null(strstr(seen.text, "preamble 0+43\nstream aa pid 42 app\ndata 1 1 hello\n"));
	}
	memcpy(c->buf + c->len, pre, sizeof(pre) - 1);
	c->len += sizeof(pre) - 1;
	assert_int_equal(read_all(c->buf, c->len, 7, &seen, NULL), 1);
	assert_non_null(strstr(seen.text, "end 1 2 0\ngarbage "));
	con_stream_free(s);
	free(c);
}

/* A record made by an independent implementation (Python's cryptography:
 * HKDF-SHA256 and AES-GCM as console.h describes them). */
static void test_known_answer(void **state)
{
	static const char hex[] = "4b43523144010005aabb00000000000000000000000000000000000000000"
				  "00781da5642741b4d912a0b93539f9a2281b6869b6c3b";
	struct con_stream *s = stream();
	uint8_t want[sizeof(hex) / 2], got[64], plain[8];
	struct con_hdr h;

	for (size_t i = 0; i < sizeof(want); i++)
		sscanf(hex + 2 * i, "%2hhx", &want[i]);
	assert_int_equal(con_seal(s, CON_T_DATA, CON_STDOUT, 7, "hello", 5, got), sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(con_parse_hdr(want, sizeof(want), &h), 0);
	assert_int_equal(con_open(s, want, &h, plain), 0);
	assert_memory_equal(plain, "hello", 5);
	want[sizeof(want) - 1] ^= 0x80;
	assert_int_equal(con_open(s, want, &h, plain), -KILN_EAUTH);
	con_stream_free(s);
}

static void test_parse_limits(void **state)
{
	struct con_stream *s = stream();
	uint8_t rec[CON_MAX_RECORD + 16], big[CON_MAX_PAYLOAD + 1] = { 0 };
	struct con_hdr h;

	assert_int_equal(con_seal(s, CON_T_DATA, 1, 0, big, sizeof(big), rec), -EINVAL);
	assert_int_equal(con_seal(s, 'X', 1, 0, big, 1, rec), -EINVAL);
	assert_int_equal(con_seal(s, CON_T_DATA, 3, 0, big, 1, rec), -EINVAL);
	assert_int_equal(con_seal(s, CON_T_DATA, 1, 0, big, CON_MAX_PAYLOAD, rec),
			 CON_MAX_RECORD);
	assert_true(CON_MAX_RECORD <= 4096); /* one atomic pipe write */
	assert_int_equal(con_parse_hdr(rec, 10, &h), -EAGAIN);
	assert_int_equal(con_parse_hdr(rec, CON_MAX_RECORD, &h), 0);
	assert_int_equal(h.size, CON_MAX_PAYLOAD);
	rec[6] = 0xff; /* size beyond the maximum */
	assert_int_equal(con_parse_hdr(rec, CON_MAX_RECORD, &h), -KILN_EFORMAT);
	assert_int_equal(con_parse_hdr((const uint8_t *)"KCRX", 4, &h), -KILN_EFORMAT);
	con_stream_free(s);
}

/* The relay's cutter: whole records, other bytes up to where a record could
 * start, a record cut short waits (or, at the end, is no record). */
static void test_frame_and_hello(void **state)
{
	static struct capture c;
	struct con_stream *s;
	uint8_t buf[600];
	size_t n, rec;

	(void)state;
	assert_int_equal(con_stream_new(g_key, g_id, &s), 0);
	memset(&c, 0, sizeof(c));
	add(&c, s, CON_T_DATA, 1, 1, "hello");
	rec = c.len;
	memcpy(buf, "junkKC", 6);
	memcpy(buf + 6, c.buf, rec);
	assert_int_equal(con_frame(buf, 6 + rec, false, &n), CON_FRAME_OTHER);
	assert_int_equal(n, 6); /* "junkKC": "KC" followed by "KC" starts none */
	assert_int_equal(con_frame(buf + 4, 2 + rec, false, &n), CON_FRAME_OTHER);
	assert_int_equal(n, 2); /* "KC" then a magic: not one */
	assert_int_equal(con_frame(buf + 6, rec, false, &n), CON_FRAME_RECORD);
	assert_int_equal(n, rec);
	assert_int_equal(con_frame(buf + 6, rec - 1, false, &n), -EAGAIN);
	assert_int_equal(con_frame(buf + 6, rec - 1, true, &n), CON_FRAME_OTHER);
	assert_int_equal(n, rec - 1);
	assert_int_equal(con_frame(buf, 2, false, &n), CON_FRAME_OTHER); /* "ju" */
	assert_int_equal(con_frame(buf + 4, 2, false, &n), -EAGAIN);    /* "KC" */
	assert_int_equal(con_frame(buf, 0, true, &n), -EAGAIN);
	assert_int_equal(con_hello_parse((const uint8_t *)CON_HELLO_OK "KCR1", 22, &n), 0);
	assert_int_equal(n, strlen(CON_HELLO_OK));
	assert_int_equal(con_hello_parse((const uint8_t *)CON_HELLO_BUSY, 20, &n), -EBUSY);
	assert_int_equal(con_hello_parse((const uint8_t *)"kiln-con", 8, &n), -EAGAIN);
	assert_int_equal(con_hello_parse((const uint8_t *)"HTTP/1.1 200", 12, &n),
			 -KILN_EFORMAT);
	con_stream_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_any_pieces),
		cmocka_unit_test(test_problems_by_number),
		cmocka_unit_test(test_truncated_and_wrong_key),
		cmocka_unit_test(test_after_end_and_garbage_only),
		cmocka_unit_test(test_preamble),
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_frame_and_hello),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
