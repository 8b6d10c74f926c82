/* Fuzz the classification of a program file by its ELF headers
 * (ev_elf_classify_fd, src/evidence/elf.c): kiln run, kiln measure and the
 * runtime's exec check read files the host controls with it. No input may
 * crash or read outside the file; an accepted file has a kind, a program
 * interpreter exactly when it is dynamic (one absolute, NUL-terminated path),
 * a refusal always carries its reason, and links_kiln (a kiln-cc build) is
 * only said of a dynamic program whose file holds the name of the runtime for
 * its C library (libkiln.so, or libkiln-musl.so for musl's loader). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "evidence/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct ev_elf_info info;
	const char *want;
	int fd = memfd_create("fuzz-elf", MFD_CLOEXEC), ret;
	size_t n;

	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	ret = ev_elf_classify_fd(fd, &info, &err);
	close(fd);
	if (ret < 0) {
		if (ret != -KILN_EFORMAT || !err.msg[0])
			abort();
		return 0;
	}
	if (ret != 0 || info.kind > EV_ELF_OTHER)
		abort();
	n = strnlen(info.interp, sizeof(info.interp));
	if (n == sizeof(info.interp))
		abort();
	if ((info.kind == EV_ELF_NONE) != (size < 4 || memcmp(data, "\177ELF", 4) != 0))
		abort();
	if ((info.kind == EV_ELF_NONE || info.kind == EV_ELF_STATIC) != (n == 0))
		abort();
	if (n && info.interp[0] != '/')
		abort();
	/* Only a dynamic program can name the runtime among its libraries, and
	 * only the runtime for its C library, with the name (and its NUL) in the
	 * file: no read past a string table. */
	want = info.kind == EV_ELF_MUSL ? "libkiln-musl.so" : "libkiln.so";
	if (info.links_kiln && (n == 0 || !memmem(data, size, want, strlen(want) + 1)))
		abort();
	return 0;
}
