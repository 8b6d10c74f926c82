"""Programs of other kinds than glibc-linked ones (issue 13): a static musl
program runs on a protected volume under the supervisor; a musl-linked dynamic
program, and files that are no x86-64 program at all, are refused before
anything runs them, with the file and the reason named (src/evidence/elf.c)."""
import shutil
import subprocess

import pytest

from kilnapps import SECRET
from kilnenv import ROOT

SRC = ROOT / "tests" / "e2e" / "apps" / "static_files.c"
HELLO = '#include <stdio.h>\nint main(void) { puts("program ran"); return 0; }\n'


@pytest.fixture(scope="module")
def musl_gcc():
    path = shutil.which("musl-gcc")
    if not path:
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    return path


def build(musl_gcc, tmp_path, name, src, *flags):
    exe = tmp_path / name
    subprocess.run([musl_gcc, *flags, "-O1", "-o", str(exe), str(src)], check=True)
    return exe


def kiln(volume, *args):
    return subprocess.run([volume.kiln_bin, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_static_musl_program_on_a_volume(volume, musl_gcc, tmp_path):
    prog = build(musl_gcc, tmp_path, "files-musl-static", SRC, "-static")
    p = volume.run(prog, "write", volume.dir, SECRET, check=True)
    assert p.stdout.splitlines() == [f"read: {SECRET}", f"size: {len(SECRET)}",
                                     f"renamed: {SECRET}+more"]
    assert f"kiln: {prog} is statically linked: running it supervised (seccomp), " \
           "every file call traps" in p.stderr.splitlines()
    volume.assert_no_plaintext()
    p = volume.run(prog, "read", volume.dir, check=True)
    assert p.stdout.splitlines() == [f"content: {SECRET}+more", f"size: {len(SECRET) + 5}"]
    m = kiln(volume, "measure", "--", prog)
    assert m.returncode == 0, m.stderr
    assert f"kiln: measure: {prog}: statically linked, measured from its file" in m.stderr


def test_musl_dynamic_program_is_refused_before_it_runs(volume, musl_gcc, tmp_path):
    src = tmp_path / "hello.c"
    src.write_text(HELLO)
    prog = build(musl_gcc, tmp_path, "hello-musl", src)
    for args in (("run", "--", prog), ("run", "--volume", f"{volume.dir}={volume.key}", "--", prog),
                 ("measure", "--", prog)):
        p = kiln(volume, *args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "program ran" not in p.stdout
        assert f"{prog} is linked against musl (program interpreter " \
               "/lib/ld-musl-x86_64.so.1)" in p.stderr, p.stderr
        # The loader's own failure ("Error relocating ...") never shows: kiln
        # refused before exec.
        assert "Error relocating" not in p.stderr


def test_files_that_are_no_x86_64_program_are_refused(volume, tmp_path):
    true = open("/bin/true", "rb").read()
    cases = {}
    cases["aarch64"] = (true[:18] + (183).to_bytes(2, "little") + true[20:],
                        "an ELF program for another architecture (aarch64")
    cases["elf32"] = (true[:4] + b"\x01" + true[5:], "a 32-bit ELF program")
    cases["truncated"] = (true[:40], "truncated ELF header")
    cases["headers-cut"] = (true[:80], "its program headers lie beyond the end of the file")
    obj_src = tmp_path / "o.c"
    obj_src.write_text("int f(void) { return 1; }\n")
    subprocess.run(["cc", "-c", "-o", str(tmp_path / "o.o"), str(obj_src)], check=True)
    cases["object"] = ((tmp_path / "o.o").read_bytes(), "not an executable (ELF type 1")
    for name, (data, why) in cases.items():
        exe = tmp_path / name
        exe.write_bytes(data)
        exe.chmod(0o755)
        for cmd in ("run", "measure"):
            p = kiln(volume, cmd, "--", exe)
            assert p.returncode == 1, (name, cmd, p.stderr)
            assert f"kiln: {cmd}: {exe}: {why}" in p.stderr, (name, cmd, p.stderr)


def test_scripts_and_glibc_programs_still_run(volume, tmp_path):
    """The classification leaves what it does not refuse alone: a #! script
    (its interpreter runs it) and a glibc program."""
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\necho script ran\n")
    script.chmod(0o755)
    p = kiln(volume, "run", "--", script)
    assert p.returncode == 0 and p.stdout == "script ran\n", p.stderr
    p = kiln(volume, "run", "--", "/bin/echo", "glibc ran")
    assert p.returncode == 0 and p.stdout == "glibc ran\n", p.stderr
