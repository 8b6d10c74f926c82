/* The program kiln run or kiln measure is given: which path serves it, or a
 * refusal naming the file and the reason before anything runs it. */
#include "cli/cli.h"

#include <stdio.h>

#include "evidence/evidence.h"

int cli_program_kind(const char *cmd, const char *path, int fd, struct ev_elf_info *info)
{
	struct kiln_err err = { 0 };
	int r = ev_elf_classify_fd(fd, info, &err);

	if (r < 0) {
		cli_error("%s: %s: %s", cmd, path, kiln_err_msg(&err, r));
		return -1;
	}
	if (info->kind == EV_ELF_OTHER) {
		cli_error("%s: %s has a program interpreter kiln has no runtime for (%s); "
			  "kiln runs programs linked against glibc or musl, and static programs",
			  cmd, path, info->interp);
		return -1;
	}
	return 0;
}

const char *cli_runtime_name(int kind)
{
	return kind == EV_ELF_MUSL ? "libkiln-musl.so" : "libkiln.so";
}
