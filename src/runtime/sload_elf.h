/* kiln runtime: the static loader's ELF checks (sload_elf.c), used by
 * kiln-sload before it maps a program and by `kiln run` before it chooses the
 * loader for one (src/cli/run_static.c). */
#ifndef KILN_RUNTIME_SLOAD_ELF_H
#define KILN_RUNTIME_SLOAD_ELF_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>

#define RT_SLOAD_MAX_PHNUM 64

/* ELF_ET_DYN_BASE on x86-64 (2/3 of the 47-bit address space, page aligned):
 * the kernel puts a PIE (kiln-sload) there plus up to 1 TiB of randomization,
 * its heap after it, and ld.so, libraries, stacks and mappings from the top
 * of the address space down. An ET_EXEC is mapped at its link address after
 * all of those exist: a segment at or above this address may land on one of
 * them, so the loader refuses it before anything runs. */
#define RT_SLOAD_KERNEL_LO 0x555555554000ul

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

/* Read the ELF header and program headers of the file fd (pread, the file
 * offset untouched) and check them (rt_sload_check): 0, or -1 with a reason
 * (a static string) in *why. */
int rt_sload_read(int fd, Elf64_Ehdr *eh, Elf64_Phdr ph[RT_SLOAD_MAX_PHNUM],
		  struct rt_sload_span *span, const char **why);

#endif
