/* Fuzz the kiln-las request line parser (las_request_parse, src/las/server.c):
 * the plain {"report_data": HEX} and the static_exe variant that comes with a
 * passed program. No input may crash or leak; a refusal always says why and
 * leaves nothing set; an accepted request round-trips through its own text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "las/las.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct las_request req, again;
	const char *why = NULL;
	char *line = malloc(size + 1), hex[129], text[256];
	static const uint8_t zero[64];

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	if (las_request_parse(line, &req, &why) != 0) {
		if (!why || req.static_exe || memcmp(req.report_data, zero, sizeof(zero)) != 0)
			abort();
	} else {
		kiln_hex_encode(req.report_data, sizeof(req.report_data), hex);
		snprintf(text, sizeof(text), "{\"report_data\": \"%s\"%s}", hex,
			 req.static_exe ? ", \"static_exe\": true" : "");
		if (las_request_parse(text, &again, &why) != 0 ||
		    memcmp(&again, &req, sizeof(req)) != 0)
			abort();
	}
	free(line);
	return 0;
}
