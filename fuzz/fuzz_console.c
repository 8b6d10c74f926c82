/* Fuzz the console record reader (src/console/reader.c), which `kiln console
 * read|attach` runs over captured or live bytes an attacker may have written:
 * no input may crash, hang or leak, and what it reports must not depend on
 * how the input is cut into pieces. The first byte picks the piece size; the
 * key is all zeros (the seeds in fuzz/corpus/console are records under it). */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t whole[KC_SHA256_SIZE], pieces[KC_SHA256_SIZE];

	if (size < 1)
		return 0;
	run(data + 1, size - 1, size, whole);
	run(data + 1, size - 1, (size_t)(data[0] % 97) + 1, pieces);
	if (memcmp(whole, pieces, sizeof(whole)))
		abort();
	return 0;
}
