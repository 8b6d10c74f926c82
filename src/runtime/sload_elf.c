/* kiln runtime: the ELF header checks of the static loader (sload.c), alone
 * so that the fuzz target (fuzz/fuzz_sload_elf.c) runs them and `kiln run`
 * asks them before it chooses the loader: a static x86-64 executable
 * (ET_EXEC, or ET_DYN without PT_INTERP: static-pie) whose segments fit the
 * file and the address space the loader can give them. No allocation; the
 * checks do no I/O (rt_sload_read reads the headers for them). */
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/sload_elf.h"

#define PAGE 4096ul
#define MAX_PHNUM RT_SLOAD_MAX_PHNUM
#define ADDR_TOP (1ul << 47)

static uintptr_t page_down(uintptr_t x)
{
	return x & ~(PAGE - 1);
}

static uintptr_t page_up(uintptr_t x)
{
	return (x + PAGE - 1) & ~(PAGE - 1);
}

int rt_sload_check(const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t file_size,
		   struct rt_sload_span *span, const char **why)
{
	bool have_load = false;

	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return *why = "not an ELF file", -1;
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return *why = "not a 64-bit little-endian ELF file", -1;
	if (eh->e_machine != EM_X86_64)
		return *why = "built for another architecture (not x86-64)", -1;
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
		return *why = "not an executable (ELF type is neither EXEC nor DYN)", -1;
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > MAX_PHNUM)
		return *why = "corrupt program headers (size or count)", -1;
	span->lo = UINTPTR_MAX;
	span->hi = 0;
	span->phdr = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		switch (p->p_type) {
		case PT_INTERP:
			return *why = "has a program interpreter: not a static program", -1;
		case PT_DYNAMIC:
			/* static-pie has one (its own relocations); ET_EXEC none. */
			if (eh->e_type == ET_EXEC)
				return *why = "an ET_EXEC with a dynamic section: not static", -1;
			break;
		case PT_TLS:
			/* The program's libc places its TLS from AT_PHDR; the
			 * loader only refuses what no libc could. */
			if (p->p_filesz > p->p_memsz || p->p_memsz > (64ul << 20) ||
			    (p->p_align & (p->p_align - 1)) || p->p_align > PAGE)
				return *why = "a PT_TLS segment the loader cannot place "
					      "(size or alignment)", -1;
			break;
		case PT_LOAD:
			if (p->p_filesz > p->p_memsz || p->p_memsz > ADDR_TOP ||
			    p->p_vaddr > ADDR_TOP - p->p_memsz ||
			    p->p_offset > file_size || p->p_filesz > file_size - p->p_offset)
				return *why = "corrupt PT_LOAD segment (sizes beyond the file or "
					      "the address space)", -1;
			if ((p->p_vaddr & (PAGE - 1)) != (p->p_offset & (PAGE - 1)))
				return *why = "PT_LOAD segment not congruent with its file "
					      "offset", -1;
			if (p->p_memsz == 0)
				break;
			if (page_down(p->p_vaddr) < span->lo)
				span->lo = page_down(p->p_vaddr);
			if (page_up(p->p_vaddr + p->p_memsz) > span->hi)
				span->hi = page_up(p->p_vaddr + p->p_memsz);
			have_load = true;
			if (eh->e_phoff >= p->p_offset &&
			    eh->e_phoff - p->p_offset < p->p_filesz &&
			    eh->e_phoff - p->p_offset + eh->e_phnum * sizeof(Elf64_Phdr) <=
			    p->p_filesz && !span->phdr)
				span->phdr = p->p_vaddr + (eh->e_phoff - p->p_offset);
			break;
		default:
			break;
		}
	}
	if (!have_load)
		return *why = "no loadable segment", -1;
	if (eh->e_type == ET_EXEC && span->lo < (1ul << 16))
		return *why = "segments below 64 KiB (mmap_min_addr)", -1;
	if (eh->e_type == ET_EXEC && span->hi > RT_SLOAD_KERNEL_LO)
		return *why = "its segments lie where the kernel places kiln-sload, its libraries "
			      "and stacks (0x555555554000 and up)", -1;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_PHDR)
			span->phdr = ph[i].p_vaddr;
	if (!span->phdr)
		return *why = "program headers not inside a loaded segment", -1;
	if (eh->e_entry < span->lo || eh->e_entry >= span->hi)
		return *why = "entry point outside the loaded segments", -1;
	return 0;
}


int rt_sload_read(int fd, Elf64_Ehdr *eh, Elf64_Phdr ph[RT_SLOAD_MAX_PHNUM],
		  struct rt_sload_span *span, const char **why)
{
	struct stat st;
	size_t n;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return *why = "not a regular file", -1;
	if (st.st_size < (off_t)sizeof(*eh) || pread(fd, eh, sizeof(*eh), 0) != sizeof(*eh))
		return *why = "too short for an ELF header", -1;
	n = eh->e_phnum * sizeof(Elf64_Phdr);
	if (eh->e_phnum > RT_SLOAD_MAX_PHNUM || eh->e_phoff > (uint64_t)st.st_size ||
	    n > (uint64_t)st.st_size - eh->e_phoff)
		return *why = "corrupt program headers (beyond the file)", -1;
	if (pread(fd, ph, n, (off_t)eh->e_phoff) != (ssize_t)n)
		return *why = "cannot read the program headers", -1;
	return rt_sload_check(eh, ph, (size_t)st.st_size, span, why);
}
