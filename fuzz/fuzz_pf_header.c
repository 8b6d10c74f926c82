/* Fuzz the protected-file header decoder: no input may crash; whatever decodes
 * must encode back to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "pf/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pf_header h;
	uint8_t again[PF_HDR_SIZE];

	if (pf__header_decode(data, size, &h) == 0) {
		pf__header_encode(&h, again);
		if (memcmp(again, data, PF_HDR_SIZE) != 0)
			abort();
	}
	return 0;
}
