/* Fuzz the console record reader (src/console/reader.c), which `kiln console
 * read|attach` runs over captured or live bytes an attacker may have written,
 * and the live-stream cutter and greeting parser (src/console/frame.c), which
 * the console relay of `kiln run --console-listen` and `attach --connect` run
 * over what the program, a client or the relay sent: no input may crash,
 * hang or leak, and what they find must not depend on how the input is cut
 * into pieces. The first byte picks the piece size; the key is all zeros (the
 * seeds in fuzz/corpus/console are records under it, one after a greeting).
 * One target for both: the same inputs reach both, and the fuzz smoke of
 * make check is paid per target. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"
#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
	kc_hash_t *h;
	uint64_t events;
};

static void on_event(void *ctx, const struct con_event *ev)
{
	struct digest *d = ctx;
	uint64_t v[6] = { (uint64_t)ev->kind, ev->channel, ev->seq, ev->seq2, ev->size,
			  ev->offset };

	if (ev->kind == CON_EV_DATA && (ev->size > CON_MAX_PAYLOAD || !ev->data))
		abort();
	kc_hash_update(d->h, v, sizeof(v));
	kc_hash_update(d->h, ev->id, sizeof(ev->id));
	if (ev->data)
		kc_hash_update(d->h, ev->data, ev->size);
	d->events++;
}

static void run(const uint8_t *data, size_t size, size_t piece, uint8_t out[KC_SHA256_SIZE])
{
	static const uint8_t key[CON_KEY_SIZE];
	struct digest d = { kc_hash_new("SHA256"), 0 };
	struct con_reader *r = NULL;
	size_t n = 0;

	if (!d.h || con_reader_new(key, on_event, &d, &r) < 0)
		abort();
	for (size_t off = 0; off < size; off += piece)
		if (con_reader_feed(r, data + off, size - off < piece ? size - off : piece) < 0)
			abort();
	con_reader_finish(r);
	kc_hash_update(d.h, &d.events, sizeof(d.events));
	if (kc_hash_final(d.h, out, &n) < 0)
		abort();
	kc_hash_free(d.h);
	con_reader_free(r);
}

/* Cut data as the relay does (a buffer of two records, filled piece by piece):
 * the records and the other bytes, each kind hashed in order. */
static void frame(const uint8_t *data, size_t size, size_t piece, uint8_t out[KC_SHA256_SIZE])
{
	static uint8_t buf[2 * CON_MAX_RECORD];
	kc_hash_t *h = kc_hash_new("SHA256");
	size_t len = 0, off = 0, n, done = 0;

	if (!h)
		abort();
	for (bool end = false; !end;) {
		size_t take = size - off < piece ? size - off : piece;
		size_t pos = 0;
		int k;

		take = take < sizeof(buf) - len ? take : sizeof(buf) - len;
		memcpy(buf + len, data + off, take);
		len += take;
		off += take;
		end = off == size;
		while ((k = con_frame(buf + pos, len - pos, end, &n)) >= 0) {
			struct con_hdr hd;
			uint8_t tag = (uint8_t)k;

			if (!n || n > len - pos)
				abort();
			if (k == CON_FRAME_RECORD && (con_parse_hdr(buf + pos, n, &hd) ||
						      n != CON_HDR_SIZE + hd.size + CON_TAG_SIZE))
				abort();
			if (k == CON_FRAME_RECORD)
				kc_hash_update(h, &tag, 1);
			kc_hash_update(h, buf + pos, n);
			pos += n;
			done += n;
		}
		if (end && pos != len)
			abort(); /* at the end everything is cut */
		if (!end && !take && !pos)
			abort(); /* a full buffer that cannot be cut: the relay would stall */
		memmove(buf, buf + pos, len - pos);
		len -= pos;
	}
	if (done != size || kc_hash_final(h, out, &n) < 0)
		abort();
	kc_hash_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t whole[KC_SHA256_SIZE], pieces[KC_SHA256_SIZE];

	if (size < 1)
		return 0;
	run(data + 1, size - 1, size, whole);
	run(data + 1, size - 1, (size_t)(data[0] % 97) + 1, pieces);
	if (memcmp(whole, pieces, sizeof(whole)))
		abort();
	{
		size_t used;
		int ret = con_hello_parse(data + 1, size - 1, &used);

		if ((ret == 0 || ret == -EBUSY) != (used > 0) || used > size - 1)
			abort();
		/* What follows the greeting is cut like the rest. */
		frame(data + 1 + used, size - 1 - used, size, whole);
		frame(data + 1 + used, size - 1 - used, (size_t)(data[0] % 97) + 1, pieces);
	}
	if (memcmp(whole, pieces, sizeof(whole)))
		abort();
	return 0;
}
