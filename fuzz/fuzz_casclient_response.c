/* libFuzzer target: the HTTP/1.x response parser of the CAS client
 * (cc_parse_response), which reads whatever the network sends before the
 * answer's JSON is looked at. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "casclient/casclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct cc_response resp;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (cc_parse_response(text, size, &resp, &err) == 0)
		cc_response_free(&resp);
	free(text);
	return 0;
}
