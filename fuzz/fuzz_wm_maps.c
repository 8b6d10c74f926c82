/* Fuzz the workload measurement's reading of /proc/PID/maps lines
 * (ev__map_parse, src/evidence/wm_maps.c) and the refusal message built from
 * them. The kernel writes these lines, but a process chooses parts of them
 * (memfd and anonymous mapping names, file paths): no input may crash, an
 * executable line is never silently skipped (it is a file, the kernel's, or
 * refused with a reason), and a refusal message never carries a double quote,
 * a backslash that is not an escape, or a control byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct ev__map m;
	char *line = malloc(size + 1);
	int kind;

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	kind = ev__map_parse(line, &m, &err);
	if (kind < 0) {
		if (kind != -KILN_EFORMAT || !err.msg[0])
			abort();
		goto out;
	}
	if (m.end <= m.start || !m.name)
		abort();
	if ((kind == EV__MAP_DATA) != (m.perms[2] != 'x'))
		abort();
	if (kind == EV__MAP_KERNEL && strcmp(m.name, "[vdso]") != 0 &&
	    strcmp(m.name, "[vsyscall]") != 0)
		abort();
	if (kind == EV__MAP_FILE && (m.name[0] != '/' || strstr(m.name, "/memfd:") == m.name))
		abort();
	if ((kind == EV__MAP_REFUSED) != (m.why != NULL))
		abort();
	if (kind == EV__MAP_REFUSED) {
		if (ev__map_refuse(&m, m.why, &err) != -KILN_EUNMEASURED ||
		    !strstr(err.msg, "cannot be measured: refused") || strchr(err.msg, '"'))
			abort();
		for (const char *p = err.msg; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
	}
out:
	free(line);
	return 0;
}
