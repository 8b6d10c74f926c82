"""What an attested program executes (issue 13, bad input): a program linked
against musl is re-launched under libkiln-musl.so, the same runtime built for
musl (src/runtime/sys/exec.c picks it from the program interpreter), and so
attests for itself before its main; one of a loader kiln has no runtime for
would start without any runtime, without attestation and without the file
shield: the exec check (classified by src/evidence/elf.c) refuses it with EACCES
and one line naming the program and the reason, and it never runs."""
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


def musl_gcc():
    path = shutil.which("musl-gcc")
    if not path:
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    return path


def test_attested_program_execs_a_musl_program_under_its_runtime(host_attest, cbuild, tmp_path):
    """The musl child attests for itself (kiln-las issues evidence for it): the
    CAS refuses it (the policy's program is the parent), so it never runs and
    gets nothing of the parent's secrets; the exec itself went through."""
    h = host_attest
    src = tmp_path / "hello.c"
    src.write_text(HELLO_C)
    musl = tmp_path / "hello-musl"
    subprocess.run([musl_gcc(), "-o", str(musl), str(src)], check=True)
    parent = cbuild("exec_musl", EXEC_C)
    m = measure(parent)
    assert m.returncode == 0, m.stderr
    h.apply({"app": ([parent, musl], m.stdout.strip())})
    p = h.run(parent)
    assert "parent secret=24\n" in p.stdout, p.stdout + p.stderr + h.cas.log()[-3000:]
    assert "exec failed" not in p.stdout, p.stdout + p.stderr
    assert "musl program ran" not in p.stdout
    assert p.returncode == 1, p.stdout + p.stderr
    assert "kiln: attestation refused by the CAS" in p.stderr, p.stderr
    ev = h.las_lines("evidence issued", f'exe="{musl}"')
    assert len(ev) == 1, h.las_log()[-3000:]
    assert "label=wrong_measurement" in h.cas.log(), h.cas.log()[-3000:]


def test_attested_program_cannot_exec_an_unknown_loader(host_attest, cbuild, tmp_path):
    h = host_attest
    src = tmp_path / "hello.c"
    src.write_text(HELLO_C)
    other = tmp_path / "hello-other"
    subprocess.run([musl_gcc(), "-Wl,--dynamic-linker=/lib/ld-kiln-unknown.so.1", "-o",
                    str(other), str(src)], check=True)
    parent = cbuild("exec_other", EXEC_C)
    m = measure(parent)
    assert m.returncode == 0, m.stderr
    h.apply({"app": ([parent, other], m.stdout.strip())})
    p = h.run(parent)
    assert p.returncode == 0, p.stderr + h.cas.log()[-3000:]
    assert "parent secret=24\n" in p.stdout, p.stdout + p.stderr
    assert "exec failed errno=13\n" in p.stdout, p.stdout + p.stderr
    assert "musl program ran" not in p.stdout
    assert (f"attested program: not executing {other}: its program interpreter is neither "
            "glibc's nor musl's: no kiln runtime can be loaded into it") in p.stderr, p.stderr
