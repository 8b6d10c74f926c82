/* kiln runtime: the static loader's ELF checks (sload_elf.c). */
#ifndef KILN_RUNTIME_SLOAD_ELF_H
#define KILN_RUNTIME_SLOAD_ELF_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>

#define RT_SLOAD_MAX_PHNUM 64

/* The link-time span of the loadable segments and where the program headers
 * are (addresses before any bias). */
struct rt_sload_span {
	uintptr_t lo, hi, phdr;
};

/* The header checks (no mapping, no I/O): 0, or -1 with a reason (a static
 * string) in *why. ph holds eh->e_phnum entries (at most RT_SLOAD_MAX_PHNUM:
 * more is refused before ph is read); file_size bounds every segment. */
int rt_sload_check(const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t file_size,
		   struct rt_sload_span *span, const char **why);

#endif
