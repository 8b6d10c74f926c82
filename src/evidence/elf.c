/* What kind of program a file is, read from its ELF headers before anything
 * runs it: statically linked, dynamic with glibc's loader, dynamic with
 * musl's, or dynamic with some other loader. kiln run, kiln measure and the
 * runtime's exec check choose their path with it, and refuse what no path
 * can serve (another architecture, a corrupt or truncated file) with the
 * reason, instead of letting the loader fail halfway with its own words.
 *
 * The file is the host's: every offset and size in it is checked against the
 * file's length before it is read. No common/file.c here: this file also goes
 * into libkiln-measure.so, which links only err.c and encoding.c. */
#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/evidence.h"

#define ELF_MAX_PHNUM 4096

/* pread until size bytes; false at EOF or on an error (errno says which). */
static bool elf__pread(int fd, void *buf, size_t size, off_t off)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = pread(fd, (char *)buf + got, size - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return false;
		}
		got += (size_t)n;
	}
	return true;
}

static const char *elf__machine(unsigned m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_ARM: return "arm";
	case EM_AARCH64: return "aarch64";
	case EM_PPC64: return "ppc64";
	case EM_S390: return "s390x";
	case EM_RISCV: return "riscv";
	case EM_MIPS: return "mips";
	default: return NULL;
	}
}

const char *ev_elf_kind_name(enum ev_elf_kind kind)
{
	switch (kind) {
	case EV_ELF_NONE: return "not an ELF file";
	case EV_ELF_STATIC: return "statically linked";
	case EV_ELF_GLIBC: return "dynamically linked (glibc)";
	case EV_ELF_MUSL: return "dynamically linked (musl)";
	case EV_ELF_OTHER: return "dynamically linked (unknown loader)";
	}
	return "?";
}

enum ev_elf_kind ev_elf_loader_kind(const char *interp)
{
	const char *base = strrchr(interp, '/');

	base = base ? base + 1 : interp;
	if (strncmp(base, "ld-linux-x86-64.so.", 19) == 0)
		return EV_ELF_GLIBC;
	if (strncmp(base, "ld-musl-x86_64.so.", 18) == 0)
		return EV_ELF_MUSL;
	return EV_ELF_OTHER;
}

static int elf__interp(int fd, const Elf64_Phdr *ph, uint64_t file_size,
		       struct ev_elf_info *out, struct kiln_err *err)
{
	if (ph->p_filesz < 2 || ph->p_filesz > sizeof(out->interp) ||
	    ph->p_offset > file_size || ph->p_filesz > file_size - ph->p_offset)
		return kiln_err_set(err, -KILN_EFORMAT, "its program interpreter (PT_INTERP) "
				    "lies outside the file or is %llu bytes long",
				    (unsigned long long)ph->p_filesz);
	if (!elf__pread(fd, out->interp, (size_t)ph->p_filesz, (off_t)ph->p_offset))
		return errno ? -errno : kiln_err_set(err, -KILN_EFORMAT, "truncated PT_INTERP");
	if (out->interp[ph->p_filesz - 1] != '\0' ||
	    strlen(out->interp) != ph->p_filesz - 1 || out->interp[0] != '/')
		return kiln_err_set(err, -KILN_EFORMAT, "its program interpreter (PT_INTERP) "
				    "is not one absolute path");
	return 0;
}

/* The PT_LOAD headers classify read, kept so that mapping an address to a
 * file offset needs no second read of the program headers. A program with
 * more loadable segments than this (none the linkers make) just reads as not
 * linking the runtime, which is advisory. */
struct elf__loads {
	Elf64_Phdr ph[16];
	unsigned n;
};

/* The file offset of virtual address va, through the PT_LOAD that maps it
 * from the file; false when none does. */
static bool elf__va_offset(const struct elf__loads *loads, uint64_t va, uint64_t *off)
{
	for (unsigned i = 0; i < loads->n; i++) {
		const Elf64_Phdr *ph = &loads->ph[i];

		if (va >= ph->p_vaddr && va - ph->p_vaddr < ph->p_filesz) {
			*off = ph->p_offset + (va - ph->p_vaddr);
			return true;
		}
	}
	return false;
}

/* Whether the dynamic section names the kiln runtime built for the program's
 * C library among the libraries the loader maps (DT_NEEDED "libkiln.so" or
 * "libkiln-musl.so": the runtimes' SONAMEs; a runtime for the other C library
 * could not load). Advisory: a dynamic section that cannot be read says no,
 * and the loader reports it. */
static bool elf__links_kiln(int fd, const struct elf__loads *loads, const Elf64_Phdr *dyn,
			    uint64_t file_size, enum ev_elf_kind kind)
{
	const char *want = kind == EV_ELF_MUSL ? "libkiln-musl.so" : "libkiln.so";
	size_t want_size = strlen(want) + 1;
	uint64_t needed[64], strtab = 0, strsz = 0, str_off = 0, n_needed = 0;
	size_t n = (size_t)(dyn->p_filesz / sizeof(Elf64_Dyn));

	if (dyn->p_offset > file_size || dyn->p_filesz > file_size - dyn->p_offset ||
	    n > 4096)
		return false;
	for (size_t i = 0; i < n; i++) {
		Elf64_Dyn d;

		if (!elf__pread(fd, &d, sizeof(d), (off_t)(dyn->p_offset + i * sizeof(d))) ||
		    d.d_tag == DT_NULL)
			break;
		if (d.d_tag == DT_STRTAB)
			strtab = d.d_un.d_ptr;
		else if (d.d_tag == DT_STRSZ)
			strsz = d.d_un.d_val;
		else if (d.d_tag == DT_NEEDED && n_needed < KILN_ARRAY_SIZE(needed))
			needed[n_needed++] = d.d_un.d_val;
	}
	if (!strtab || !strsz || !elf__va_offset(loads, strtab, &str_off) ||
	    str_off > file_size || strsz > file_size - str_off)
		return false;
	for (uint64_t i = 0; i < n_needed; i++) {
		char name[sizeof("libkiln-musl.so")];

		if (needed[i] >= strsz || strsz - needed[i] < want_size ||
		    !elf__pread(fd, name, want_size, (off_t)(str_off + needed[i])))
			continue;
		if (memcmp(name, want, want_size) == 0)
			return true;
	}
	return false;
}

int ev_elf_classify_fd(int fd, struct ev_elf_info *out, struct kiln_err *err)
{
	Elf64_Phdr dyn = { 0 };
	struct elf__loads loads = { .n = 0 };
	unsigned char ident[EI_NIDENT];
	Elf64_Ehdr eh;
	struct stat st;
	bool have_interp = false, have_load = false;
	const char *mach;
	int ret;

	memset(out, 0, sizeof(*out));
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return kiln_err_set(err, -KILN_EFORMAT, "not a regular file");
	if (!elf__pread(fd, ident, SELFMAG, 0)) {
		if (errno)
			return -errno;
		out->kind = EV_ELF_NONE; /* shorter than the magic */
		return 0;
	}
	if (memcmp(ident, ELFMAG, SELFMAG) != 0) {
		out->kind = EV_ELF_NONE; /* a script, or nothing the kernel runs as ELF */
		return 0;
	}
	if (!elf__pread(fd, &eh, sizeof(eh), 0))
		return errno ? -errno : kiln_err_set(err, -KILN_EFORMAT, "truncated ELF header");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return kiln_err_set(err, -KILN_EFORMAT, "a 32-bit ELF program (kiln runs x86-64 "
				    "programs)");
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return kiln_err_set(err, -KILN_EFORMAT, "not a little-endian ELF program (kiln runs "
				    "x86-64 programs)");
	if (eh.e_machine != EM_X86_64) {
		mach = elf__machine(eh.e_machine);
		return mach ? kiln_err_set(err, -KILN_EFORMAT, "an ELF program for another "
					   "architecture (%s; kiln runs x86-64 programs)", mach) :
		       kiln_err_set(err, -KILN_EFORMAT, "an ELF program for another "
				    "architecture (machine %u; kiln runs x86-64 programs)",
				    (unsigned)eh.e_machine);
	}
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		return kiln_err_set(err, -KILN_EFORMAT, "not an executable (ELF type %u: an "
				    "object or core file)", (unsigned)eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > ELF_MAX_PHNUM)
		return kiln_err_set(err, -KILN_EFORMAT, "corrupt ELF header (%u program headers "
				    "of %u bytes)", (unsigned)eh.e_phnum, (unsigned)eh.e_phentsize);
	if (eh.e_phoff > (uint64_t)st.st_size ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size - eh.e_phoff)
		return kiln_err_set(err, -KILN_EFORMAT, "its program headers lie beyond the end "
				    "of the file (truncated or corrupt)");
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (!elf__pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))))
			return errno ? -errno : kiln_err_set(err, -KILN_EFORMAT, "truncated "
							     "program header");
		if (ph.p_type == PT_LOAD) {
			have_load = true;
			if (loads.n < KILN_ARRAY_SIZE(loads.ph))
				loads.ph[loads.n++] = ph;
		}
		if (ph.p_type == PT_DYNAMIC)
			dyn = ph;
		if (ph.p_type != PT_INTERP)
			continue;
		if (have_interp)
			return kiln_err_set(err, -KILN_EFORMAT, "two program interpreters "
					    "(PT_INTERP)");
		have_interp = true;
		if ((ret = elf__interp(fd, &ph, (uint64_t)st.st_size, out, err)))
			return ret;
	}
	if (!have_load)
		return kiln_err_set(err, -KILN_EFORMAT, "no loadable segment (PT_LOAD)");
	out->kind = have_interp ? ev_elf_loader_kind(out->interp) : EV_ELF_STATIC;
	out->links_kiln = have_interp && dyn.p_type == PT_DYNAMIC &&
			  elf__links_kiln(fd, &loads, &dyn, (uint64_t)st.st_size, out->kind);
	return 0;
}

int ev_elf_is_static_fd(int fd)
{
	struct kiln_err err = { 0 };
	struct ev_elf_info info;

	return ev_elf_classify_fd(fd, &info, &err) == 0 && info.kind == EV_ELF_STATIC;
}
