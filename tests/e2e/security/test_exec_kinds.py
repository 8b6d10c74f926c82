"""An attested program may execute only what the kiln runtime can follow
(issue 13, bad input): a program linked against musl would start without
libkiln (glibc's library cannot be loaded into it) and so without attestation
and without the file shield. The runtime's exec check (src/runtime/sys/exec.c,
classified by src/evidence/elf.c) refuses it with EACCES and one line naming
the program and the reason; the musl program never runs."""
import shutil
import subprocess

import pytest

from secenv import measure

EXEC_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    char *args[] = { argv[1], NULL };
    printf("parent secret=%zu\n", getenv("SECRET") ? (size_t)snprintf(NULL, 0, "%s", getenv("SECRET")) : 0);
    fflush(stdout);
    execv(argv[1], args);
    printf("exec failed errno=%d\n", errno);
    return 0;
}
"""
HELLO_C = '#include <stdio.h>\nint main(void) { puts("musl program ran"); return 0; }\n'


def test_attested_program_cannot_exec_a_musl_program(host_attest, cbuild, tmp_path):
    musl_gcc = shutil.which("musl-gcc")
    if not musl_gcc:
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    h = host_attest
    src = tmp_path / "hello.c"
    src.write_text(HELLO_C)
    musl = tmp_path / "hello-musl"
    subprocess.run([musl_gcc, "-o", str(musl), str(src)], check=True)
    parent = cbuild("exec_musl", EXEC_C)
    m = measure(parent)
    assert m.returncode == 0, m.stderr
    h.apply({"app": ([parent, musl], m.stdout.strip())})
    p = h.run(parent)
    assert p.returncode == 0, p.stderr + h.cas.log()[-3000:]
    assert "parent secret=24\n" in p.stdout, p.stdout + p.stderr
    assert "exec failed errno=13\n" in p.stdout, p.stdout + p.stderr
    assert "musl program ran" not in p.stdout
    assert (f"attested program: not executing {musl}: linked against musl: the kiln runtime "
            "(built for glibc) cannot be loaded into it") in p.stderr, p.stderr
