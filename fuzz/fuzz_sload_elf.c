/* Fuzz the static loader's ELF checks (rt_sload_check, src/runtime/
 * sload_elf.c): kiln-sload maps what they accept, from a file the host may
 * have written. No input may crash; a refusal carries its reason; an accepted
 * file has a page-aligned, non-empty span below 2^47 holding its entry point
 * and its program headers (an ET_EXEC's below where the kernel puts
 * kiln-sload, RT_SLOAD_KERNEL_LO). */
#include <stdlib.h>
#include <string.h>

#include "runtime/sload_elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Elf64_Phdr ph[RT_SLOAD_MAX_PHNUM];
	struct rt_sload_span span;
	const char *why = NULL;
	Elf64_Ehdr eh;
	size_t n;

	if (size < sizeof(eh))
		return 0;
	memcpy(&eh, data, sizeof(eh));
	/* As sload.c reads them: the headers must lie in the file. */
	if (eh.e_phnum > RT_SLOAD_MAX_PHNUM || eh.e_phoff > size)
		return 0;
	n = eh.e_phnum * sizeof(Elf64_Phdr);
	if (n > size - eh.e_phoff)
		return 0;
	memcpy(ph, data + eh.e_phoff, n);
	if (rt_sload_check(&eh, ph, size, &span, &why)) {
		if (!why || !why[0])
			abort();
		return 0;
	}
	if (span.lo >= span.hi || (span.lo & 4095) || (span.hi & 4095) ||
	    span.hi > (1ul << 47) || eh.e_entry < span.lo || eh.e_entry >= span.hi ||
	    !span.phdr || (eh.e_type == ET_EXEC && span.hi > RT_SLOAD_KERNEL_LO))
		abort();
	return 0;
}
