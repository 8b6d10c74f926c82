/* Fuzz the KILN_FILE_CACHE parser of the runtime (rt_file_cache_parse, read
 * from the environment of every program under kiln run): no input may crash,
 * a rejected input leaves the outputs alone, and an accepted one survives a
 * format/parse round trip. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t files = 1, mib = 2, f2 = 0, m2 = 0;
	char *s = malloc(size + 1), text[64];

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (rt_file_cache_parse(s, &files, &mib) != 0) {
		if (files != 1 || mib != 2)
			abort();
	} else {
		snprintf(text, sizeof(text), "%" PRIu64 ":%" PRIu64, files, mib);
		if (rt_file_cache_parse(text, &f2, &m2) != 0 || f2 != files || m2 != mib)
			abort();
	}
	free(s);
	return 0;
}
