/* kiln runtime: the in-process loader of statically linked programs
 * (`kiln run --static=loader`, docs/runtime.md "The static loader").
 *
 * kiln-sload is a small glibc program started by `kiln run` with libkiln.so
 * preloaded, so libkiln's constructor has read the configuration, opened the
 * program (sload_attest.c), attested for it with --cas and opened the volumes
 * before kiln-sload's main calls kiln_sload_main here (this file is kiln-sload's
 * own: it reaches the runtime through libkiln's table, sload_host.h). This file maps the
 * static program into this same process, builds the stack a kernel exec would
 * have built (argv, envp, auxv), and jumps to the program's entry with FS
 * zeroed, as after execve.
 * sload_trap.c then sees the program's file calls (seccomp SECCOMP_RET_TRAP
 * for calls made outside the runtime's code) and runs them through the same
 * dispatcher as the LD_PRELOAD path.
 *
 * Everything the program could trip over is refused before it runs, naming
 * the file: not ELF, not x86-64, not static, segments that overlap what the
 * runtime has mapped, an impossible PT_TLS. Memory: the image, the stack and
 * the brk reservation belong to the program for the rest of the process. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/sload.h"

#define PAGE 4096ul
#define STACK_SIZE (8ul << 20)
#define MAX_ARGS 4096
#define PIE_BASE (0x1000ul << 24) /* 64 GiB */

static uintptr_t page_down(uintptr_t x)
{
	return x & ~(PAGE - 1);
}

static uintptr_t page_up(uintptr_t x)
{
	return (x + PAGE - 1) & ~(PAGE - 1);
}

static int prot_of(uint32_t f)
{
	return ((f & PF_R) ? PROT_READ : 0) | ((f & PF_W) ? PROT_WRITE : 0) |
	       ((f & PF_X) ? PROT_EXEC : 0);
}

static int map_segment(int fd, const Elf64_Phdr *p, uintptr_t bias, const char **why)
{
	uintptr_t start = bias + page_down(p->p_vaddr);
	uintptr_t file_end = bias + p->p_vaddr + p->p_filesz;
	uintptr_t mem_end = bias + p->p_vaddr + p->p_memsz;
	int prot = prot_of(p->p_flags);

	if (p->p_filesz) {
		void *m = mmap((void *)start, page_up(file_end) - start, prot,
			       MAP_PRIVATE | MAP_FIXED, fd, (off_t)page_down(p->p_offset));

		if (m == MAP_FAILED)
			return *why = "cannot map a segment", -1;
	}
	if (p->p_memsz > p->p_filesz) {
		uintptr_t zero_end = page_up(file_end) < mem_end ? page_up(file_end) : mem_end;

		/* The rest of the file's last page is bss: zero it. */
		if (p->p_filesz && (file_end & (PAGE - 1))) {
			if (!(prot & PROT_WRITE) &&
			    mprotect((void *)page_down(file_end), PAGE, prot | PROT_WRITE))
				return *why = "cannot zero the bss", -1;
			memset((void *)file_end, 0, zero_end - file_end);
			if (!(prot & PROT_WRITE))
				mprotect((void *)page_down(file_end), PAGE, prot);
		}
		if (page_up(mem_end) > page_up(file_end)) {
			uintptr_t a = p->p_filesz ? page_up(file_end) : start;
			void *m = mmap((void *)a, page_up(mem_end) - a, prot,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

			if (m == MAP_FAILED)
				return *why = "cannot map the bss", -1;
		}
	}
	return 0;
}

/* Map the program from fd: 0, or -1 with the reason in *why. */
static int map_image(int fd, struct rt_sload_image *im, const char **why)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[RT_SLOAD_MAX_PHNUM];
	struct rt_sload_span span;
	uintptr_t bias = 0;
	void *r;

	if (rt_sload_read(fd, &eh, ph, &span, why))
		return -1;
	if (eh.e_type == ET_EXEC) {
		/* Its fixed addresses, or nothing: never over the runtime. */
		r = mmap((void *)span.lo, span.hi - span.lo, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (r != (void *)span.lo) {
			if (r != MAP_FAILED)
				munmap(r, span.hi - span.lo);
			return *why = "its segments overlap memory the runtime uses", -1;
		}
	} else {
		/* static-pie: at PIE_BASE when free (the filter's range must not
		 * hold the mappings of a program this one executes: the kernel
		 * maps those near 0x55.. and 0x7f..), anywhere otherwise. */
		r = mmap((void *)PIE_BASE, span.hi - span.lo, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (r == MAP_FAILED)
			r = mmap(NULL, span.hi - span.lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
		if (r == MAP_FAILED)
			return *why = "no room for its segments", -1;
		bias = (uintptr_t)r - span.lo;
	}
	for (int i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_memsz &&
		    map_segment(fd, &ph[i], bias, why))
			return -1;
	im->lo = bias + span.lo;
	im->hi = bias + span.hi;
	im->entry = bias + eh.e_entry;
	im->phdr = bias + span.phdr;
	im->phnum = eh.e_phnum;
	return 0;
}

/* A stack as execve leaves it: argc, argv, envp, auxv, then the strings. */
static uintptr_t build_stack(const struct rt_sload_image *im, const char *execfn,
			     char **argv, char **envp, const char **why)
{
	size_t argc = 0, envc = 0, strs = 0;
	uint8_t rnd[16];
	char *base, *top, *s;
	uint64_t *sp, *v;

	while (argv[argc])
		strs += strlen(argv[argc++]) + 1;
	while (envp[envc])
		strs += strlen(envp[envc++]) + 1;
	strs += strlen(execfn) + 1 + sizeof("x86_64") + sizeof(rnd);
	if (argc > MAX_ARGS || envc > MAX_ARGS || strs > STACK_SIZE / 4)
		return *why = "argument list too long", 0;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return *why = "no random bytes for AT_RANDOM", 0;
	base = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return *why = "cannot map its stack", 0;
	mprotect(base, PAGE, PROT_NONE); /* guard */
	top = base + STACK_SIZE;
	s = top - 16;
#define PUSH_STR(str) (s -= strlen(str) + 1, memcpy(s, (str), strlen(str) + 1), s)
	char *x_execfn = PUSH_STR(execfn), *x_plat = PUSH_STR("x86_64");
	char *x_rnd = (s -= sizeof(rnd), memcpy(s, rnd, sizeof(rnd)), s);
	uint64_t aux[][2] = {
		{ AT_PHDR, im->phdr }, { AT_PHENT, sizeof(Elf64_Phdr) }, { AT_PHNUM, im->phnum },
		{ AT_PAGESZ, PAGE }, { AT_BASE, 0 }, { AT_FLAGS, 0 }, { AT_ENTRY, im->entry },
		{ AT_UID, getauxval(AT_UID) }, { AT_EUID, getauxval(AT_EUID) },
		{ AT_GID, getauxval(AT_GID) }, { AT_EGID, getauxval(AT_EGID) },
		{ AT_SECURE, getauxval(AT_SECURE) }, { AT_RANDOM, (uintptr_t)x_rnd },
		{ AT_HWCAP, getauxval(AT_HWCAP) }, { AT_HWCAP2, getauxval(AT_HWCAP2) },
		{ AT_CLKTCK, getauxval(AT_CLKTCK) }, { AT_PLATFORM, (uintptr_t)x_plat },
		{ AT_EXECFN, (uintptr_t)x_execfn }, { AT_MINSIGSTKSZ, getauxval(AT_MINSIGSTKSZ) },
		{ AT_SYSINFO_EHDR, getauxval(AT_SYSINFO_EHDR) },
	};
	size_t naux = sizeof(aux) / sizeof(aux[0]);
	char *ptrs[2 * MAX_ARGS + 2];

	for (size_t i = 0; i < argc; i++)
		ptrs[i] = PUSH_STR(argv[i]);
	for (size_t i = 0; i < envc; i++)
		ptrs[argc + i] = PUSH_STR(envp[i]);
#undef PUSH_STR
	sp = (uint64_t *)(((uintptr_t)s - (1 + argc + 1 + envc + 1 + 2 * (naux + 1)) * 8) &
			  ~15ul);
	v = sp;
	*v++ = argc;
	for (size_t i = 0; i < argc; i++)
		*v++ = (uintptr_t)ptrs[i];
	*v++ = 0;
	for (size_t i = 0; i < envc; i++)
		*v++ = (uintptr_t)ptrs[argc + i];
	*v++ = 0;
	for (size_t i = 0; i < naux; i++) {
		if (aux[i][0] == AT_SYSINFO_EHDR && !aux[i][1])
			continue;
		*v++ = aux[i][0];
		*v++ = aux[i][1];
	}
	*v++ = AT_NULL;
	*v++ = 0;
	return (uintptr_t)sp;
}

int kiln_sload_main(int argc, char **argv)
{
	struct rt_sload_image im = { 0 };
	const char *why = NULL;
	extern char **environ;
	char **prog_argv = argv + 2, **prog_env = environ;
	int prog_argc, fd, err = 0;
	uintptr_t sp;

	if (argc < 3) {
		fprintf(stderr, "kiln-sload: usage: kiln-sload PROGRAM ARGV0 [ARGS...] "
			"(started by kiln run --static=loader)\n");
		return 2;
	}
	if (!rt__initialized()) {
		fprintf(stderr, "kiln-sload: the runtime is not configured (start programs "
			"with kiln run --static=loader)\n");
		return 1;
	}
	/* The descriptor libkiln's constructor opened (and, attested, measured):
	 * never the path again. */
	fd = rt__sload_take_program(&err);
	if (fd < 0) {
		fprintf(stderr, "kiln: %s: %s\n", argv[1], strerror(err));
		return 127;
	}
	/* Attested: the grant's argv and environment (kiln-sload's own argv
	 * and the launcher's environment never reach the program). */
	rt__attest_argv(&prog_argc, &prog_argv, &prog_env);
	im.path = argv[1];
	if (map_image(fd, &im, &why) || rt__sload_brk_init(im.hi, &why) ||
	    !(sp = build_stack(&im, argv[1], prog_argv, prog_env, &why)) ||
	    rt__sload_trap_init(&im, &why)) {
		fprintf(stderr, "kiln: %s: cannot run it in-process (static loader): %s\n",
			argv[1], why);
		return 1;
	}
	close(fd);
	rt__sload_jump(sp, im.entry);
}
