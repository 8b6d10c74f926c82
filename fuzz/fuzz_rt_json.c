/* Fuzz the runtime's JSON reader (src/runtime/json.c), which parses the CAS
 * and kiln-las answers inside attested programs: no input may crash or leak,
 * and every string it returns must survive a quote/parse round trip. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct rt_json *j)
{
	if (j->type == RT_JSON_STRING) {
		struct rt_json *back = NULL;
		char *q = NULL;

		if (strlen(j->str) != j->str_len || rt_json_quote(j->str, &q) != 0 ||
		    rt_json_parse(q, strlen(q), &back) != 0 || back->type != RT_JSON_STRING ||
		    strcmp(back->str, j->str) != 0)
			abort();
		rt_json_free(back);
		free(q);
	}
	for (size_t i = 0; i < j->n; i++) {
		if (j->type == RT_JSON_OBJECT && rt_json_get(j, j->keys[i]) != j->items[i])
			abort(); /* keys are unique */
		walk(j->items[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rt_json *j = NULL;

	if (rt_json_parse((const char *)data, size, &j) == 0)
		walk(j);
	rt_json_free(j);
	return 0;
}
