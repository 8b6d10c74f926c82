/* Fuzz the volume metadata: the envelope (opened with a fixed test key, so seeds
 * made with that key reach the body parser) and the body parser directly.
 * Inputs starting with "KILNMETA" go through the envelope; others are a byte
 * choosing the body format (even: 1, odd: 2) and a body. */
#include <stdlib.h>
#include <string.h>

#include "pf/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key of the seed volume in fuzz/corpus/pf_meta: 32 bytes of 0x11. */
static uint8_t g_key[PF_KEY_SIZE];

static void parse_body(const uint8_t *body, size_t size, uint32_t format)
{
	struct pf_meta m;
	struct kiln_err err = { 0 };

	if (pf__meta_parse(body, size, format, &m, &err) == 0) {
		/* What is accepted is one tree of valid names. */
		if (m.ninodes == 0 || m.next_ino <= 1)
			abort();
		for (size_t i = 0; i < m.ninodes; i++)
			for (size_t j = 0; j < m.inodes[i].nents; j++)
				if (!pf__name_ok(m.inodes[i].ents[j].name,
						 strlen(m.inodes[i].ents[j].name)))
					abort();
		pf__meta_clear(&m);
	} else if (err.msg[0] == '\0') {
		abort(); /* every failure explains itself */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pf_meta_keys keys;
	static int ready;
	uint8_t *body = NULL;
	size_t body_size = 0;
	uint64_t version;
	uint32_t format;

	if (!ready) {
		memset(g_key, 0x11, sizeof(g_key));
		if (pf__meta_keys_derive(g_key, &keys) != 0)
			abort();
		ready = 1;
	}
	if (size >= 8 && memcmp(data, PF_META_MAGIC, 8) == 0) {
		if (pf__meta_unseal(&keys, data, size, &version, &format, &body, &body_size,
				    NULL) == 0) {
			parse_body(body, body_size, format);
			free(body);
		}
		return 0;
	}
	/* A bare body: the first byte picks the format (1 or 2). */
	if (size >= 1)
		parse_body(data + 1, size - 1, 1 + (data[0] & 1));
	return 0;
}
