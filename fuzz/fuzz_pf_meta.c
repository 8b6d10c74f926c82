/* Fuzz the volume metadata: the envelope (opened with a fixed test key, so seeds
 * made with that key reach the body parser) and the body parser directly.
 * Inputs starting with "KILNMETA" go through the envelope; others are bodies. */
#include <stdlib.h>
#include <string.h>

#include "pf/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key of the seed volume in fuzz/corpus/pf_meta: 32 bytes of 0x11. */
static uint8_t g_key[PF_KEY_SIZE];

static void parse_body(const uint8_t *body, size_t size)
{
	struct pf_meta m;
	struct kiln_err err = { 0 };

	if (pf__meta_parse(body, size, &m, &err) == 0) {
		/* Every accepted path is normalized and bounded. */
		for (size_t i = 0; i < m.files_len; i++)
			if (strlen(m.files[i].path) >= PF_MAX_PATH || m.files[i].path[0] == '/')
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

	if (!ready) {
		memset(g_key, 0x11, sizeof(g_key));
		if (pf__meta_keys_derive(g_key, &keys) != 0)
			abort();
		ready = 1;
	}
	if (size >= 8 && memcmp(data, PF_META_MAGIC, 8) == 0) {
		if (pf__meta_unseal(&keys, data, size, &version, &body, &body_size, NULL) == 0) {
			parse_body(body, body_size);
			free(body);
		}
		return 0;
	}
	parse_body(data, size);
	return 0;
}
