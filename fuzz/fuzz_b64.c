/* Fuzz the base64 and hex decoders: no input may crash or over-read. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	uint8_t *out = NULL, hex[64];
	size_t out_size, hex_len;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (kiln_b64_decode(s, &out, &out_size) == 0) {
		char *again = kiln_b64_encode(out, out_size);
		uint8_t *back = NULL;
		size_t back_size;

		/* Decoding what we encoded must give the same bytes. */
		if (!again || kiln_b64_decode(again, &back, &back_size) != 0 ||
		    back_size != out_size || memcmp(back, out, out_size) != 0)
			abort();
		free(again);
		free(back);
	}
	kiln_hex_decode(s, hex, sizeof(hex), &hex_len);
	free(out);
	free(s);
	return 0;
}
