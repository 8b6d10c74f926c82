/* kiln console records: the reader (console.h). It takes input in pieces of
 * any size, finds records (resynchronizing on the magic after bytes that are
 * none), opens each under its stream's key and follows the numbering of every
 * (stream, channel), reporting gaps, late, repeated and modified records as it
 * goes and what is still missing at the end. Bounded: at most MAX_STREAMS
 * streams and MAX_MISSING gap ranges per channel are tracked, and input is
 * buffered only up to one record. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"

#define MAX_STREAMS 1024
#define MAX_MISSING 64

struct range {
	uint64_t a, b;
};

struct chan {
	bool seen, ended;
	uint64_t next;            /* one past the highest number seen */
	uint64_t end_seq;
	struct range missing[MAX_MISSING];
	size_t n_missing;
};

struct stream {
	uint8_t id[CON_ID_SIZE];
	struct con_stream *key;
	struct chan ch[3];
};

struct con_reader {
	uint8_t key[CON_KEY_SIZE];
	con_event_cb cb;
	void *ctx;
	struct stream *streams;
	size_t n_streams, cap_streams;
	bool limit_said;
	uint8_t first[CON_ID_SIZE];
	bool have_first;
	uint8_t *buf;             /* input not yet consumed, from offset */
	size_t len, cap;
	uint64_t offset;
	uint64_t garbage_at;      /* a run of bytes that are no record */
	size_t garbage;
	uint64_t problems;
	uint8_t plain[CON_MAX_PAYLOAD];
};

int con_reader_new(const uint8_t key[static CON_KEY_SIZE], con_event_cb cb, void *ctx,
		   struct con_reader **out)
{
	struct con_reader *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return -ENOMEM;
	memcpy(r->key, key, CON_KEY_SIZE);
	r->cb = cb;
	r->ctx = ctx;
	*out = r;
	return 0;
}

void con_reader_free(struct con_reader *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_streams; i++)
		con_stream_free(r->streams[i].key);
	free(r->streams);
	if (r->buf)
		OPENSSL_cleanse(r->buf, r->cap);
	free(r->buf);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

uint64_t con_reader_problems(const struct con_reader *r)
{
	return r->problems;
}

const uint8_t *con_reader_first_stream(const struct con_reader *r)
{
	return r->have_first ? r->first : NULL;
}

static void emit(struct con_reader *r, struct con_event *ev)
{
	if (ev->kind != CON_EV_STREAM && ev->kind != CON_EV_DATA && ev->kind != CON_EV_END &&
	    ev->kind != CON_EV_PREAMBLE)
		r->problems++;
	r->cb(r->ctx, ev);
}

static void say(struct con_reader *r, enum con_event_kind kind, const struct con_hdr *h,
		uint64_t seq, uint64_t seq2, uint64_t offset)
{
	struct con_event ev = { .kind = kind, .seq = seq, .seq2 = seq2, .offset = offset };

	if (h) {
		memcpy(ev.id, h->id, CON_ID_SIZE);
		ev.channel = h->channel;
	}
	emit(r, &ev);
}

/* record_follows: a whole record comes right after the run. */
static void flush_garbage(struct con_reader *r, bool record_follows)
{
	struct con_event ev = { .kind = CON_EV_GARBAGE };

	if (!r->garbage)
		return;
	if (record_follows && r->garbage_at == 0)
		ev.kind = CON_EV_PREAMBLE;
	ev.offset = r->garbage_at;
	ev.size = r->garbage;
	r->garbage = 0;
	emit(r, &ev);
}

static struct stream *find_stream(struct con_reader *r, const struct con_hdr *h,
				  uint64_t offset)
{
	struct stream *s;

	for (size_t i = 0; i < r->n_streams; i++)
		if (!memcmp(r->streams[i].id, h->id, CON_ID_SIZE))
			return &r->streams[i];
	if (r->n_streams == MAX_STREAMS) {
		if (!r->limit_said)
			say(r, CON_EV_LIMIT, h, h->seq, h->seq, offset);
		r->limit_said = true;
		return NULL;
	}
	if (r->n_streams == r->cap_streams) {
		size_t cap = r->cap_streams ? r->cap_streams * 2 : 8;
		struct stream *n = realloc(r->streams, cap * sizeof(*n));

		if (!n)
			return NULL;
		r->streams = n;
		r->cap_streams = cap;
	}
	s = &r->streams[r->n_streams];
	memset(s, 0, sizeof(*s));
	memcpy(s->id, h->id, CON_ID_SIZE);
	if (con_stream_new(r->key, h->id, &s->key) < 0)
		return NULL;
	r->n_streams++;
	return s;
}

/* Is seq in a missing range of c? Then take it out of it. */
static bool take_missing(struct chan *c, uint64_t seq)
{
	for (size_t i = 0; i < c->n_missing; i++) {
		struct range *m = &c->missing[i];

		if (seq < m->a || seq > m->b)
			continue;
		if (m->a == m->b) {
			*m = c->missing[--c->n_missing];
		} else if (seq == m->a) {
			m->a++;
		} else if (seq == m->b) {
			m->b--;
		} else if (c->n_missing < MAX_MISSING) {
			c->missing[c->n_missing].a = seq + 1;
			c->missing[c->n_missing++].b = m->b;
			m->b = seq - 1;
		} else {
			m->b = seq - 1; /* out of room: the rest of it is forgotten */
		}
		return true;
	}
	return false;
}

static void add_missing(struct chan *c, uint64_t a, uint64_t b)
{
	if (c->n_missing < MAX_MISSING) {
		c->missing[c->n_missing].a = a;
		c->missing[c->n_missing++].b = b;
	} else {
		c->missing[MAX_MISSING - 1].b = b; /* merged with the last one */
	}
}

static void record(struct con_reader *r, const uint8_t *rec, const struct con_hdr *h,
		   uint64_t offset)
{
	struct stream *s = find_stream(r, h, offset);
	struct con_event ev = { .channel = h->channel, .seq = h->seq, .offset = offset };
	struct con_info info;
	struct chan *c;

	if (!s)
		return;
	memcpy(ev.id, h->id, CON_ID_SIZE);
	if (con_open(s->key, rec, h, r->plain) < 0) {
		say(r, CON_EV_AUTH, h, h->seq, h->seq, offset);
		return;
	}
	c = &s->ch[h->channel];
	if (c->ended && h->seq > c->end_seq) {
		say(r, CON_EV_AFTER_END, h, h->seq, h->seq, offset);
		goto out;
	}
	if (!c->seen || h->seq >= c->next) {
		uint64_t from = c->seen ? c->next : 0;

		if (h->seq > from) {
			add_missing(c, from, h->seq - 1);
			say(r, CON_EV_GAP, h, from, h->seq - 1, offset);
		}
		c->seen = true;
		c->next = h->seq + 1;
	} else if (take_missing(c, h->seq)) {
		say(r, CON_EV_LATE, h, h->seq, h->seq, offset);
	} else {
		say(r, CON_EV_REPLAY, h, h->seq, h->seq, offset);
		goto out;
	}
	switch (h->type) {
	case CON_T_HEADER:
		if (con_info_decode(r->plain, h->size, &info) < 0)
			memset(&info, 0, sizeof(info));
		if (!r->have_first) {
			memcpy(r->first, h->id, CON_ID_SIZE);
			r->have_first = true;
		}
		ev.kind = CON_EV_STREAM;
		ev.info = &info;
		emit(r, &ev);
		break;
	case CON_T_DATA:
		ev.kind = CON_EV_DATA;
		ev.data = r->plain;
		ev.size = h->size;
		emit(r, &ev);
		break;
	case CON_T_END:
		c->ended = true;
		c->end_seq = h->seq;
		ev.kind = CON_EV_END;
		ev.status = h->size == 4 ? (int)((uint32_t)r->plain[0] << 24 |
						 (uint32_t)r->plain[1] << 16 |
						 (uint32_t)r->plain[2] << 8 | r->plain[3]) : -1;
		emit(r, &ev);
		break;
	}
out:
	OPENSSL_cleanse(r->plain, h->size);
}

static void consume(struct con_reader *r, bool at_end)
{
	size_t pos = 0;

	while (pos < r->len) {
		struct con_hdr h;
		int ret = con_parse_hdr(r->buf + pos, r->len - pos, &h);
		size_t size, skip;

		if (ret == -EAGAIN) {
			if (!at_end)
				break;
			/* A record cut short inside its header. */
			flush_garbage(r, false);
			say(r, CON_EV_TRUNCATED, NULL, 0, 0, r->offset + pos);
			pos = r->len;
			break;
		}
		if (ret == 0) {
			size = CON_HDR_SIZE + (size_t)h.size + CON_TAG_SIZE;
			if (r->len - pos < size) {
				if (!at_end)
					break;
				flush_garbage(r, false);
				say(r, CON_EV_TRUNCATED, &h, h.seq, h.seq, r->offset + pos);
				pos = r->len;
				break;
			}
			flush_garbage(r, true);
			record(r, r->buf + pos, &h, r->offset + pos);
			pos += size;
			continue;
		}
		/* No record here: skip to the next possible magic (frame.c). */
		con_frame(r->buf + pos, r->len - pos, false, &skip);
		if (!r->garbage)
			r->garbage_at = r->offset + pos;
		r->garbage += skip;
		pos += skip;
	}
	if (pos) {
		memmove(r->buf, r->buf + pos, r->len - pos);
		r->len -= pos;
		r->offset += pos;
	}
}

int con_reader_feed(struct con_reader *r, const void *data, size_t size)
{
	const uint8_t *p = data;

	/* In slices, so the buffer never holds more than one record and a slice. */
	while (size) {
		size_t n = size < CON_MAX_RECORD ? size : CON_MAX_RECORD;

		if (r->len + n > r->cap) {
			size_t cap = r->len + n;
			uint8_t *b = malloc(cap);

			if (!b)
				return -ENOMEM;
			if (r->buf) {
				memcpy(b, r->buf, r->len);
				OPENSSL_cleanse(r->buf, r->cap);
				free(r->buf);
			}
			r->buf = b;
			r->cap = cap;
		}
		memcpy(r->buf + r->len, p, n);
		r->len += n;
		p += n;
		size -= n;
		consume(r, false);
	}
	return 0;
}

void con_reader_finish(struct con_reader *r)
{
	consume(r, true);
	flush_garbage(r, false);
	for (size_t i = 0; i < r->n_streams; i++) {
		struct stream *s = &r->streams[i];

		for (uint8_t ch = 0; ch < 3; ch++) {
			struct chan *c = &s->ch[ch];
			struct con_hdr h = { .channel = ch };

			memcpy(h.id, s->id, CON_ID_SIZE);
			for (size_t k = 0; k < c->n_missing; k++)
				say(r, CON_EV_DROPPED, &h, c->missing[k].a, c->missing[k].b, 0);
			c->n_missing = 0;
			if (c->seen && !c->ended)
				say(r, CON_EV_TRUNCATED, &h, c->next, c->next, 0);
		}
	}
}
