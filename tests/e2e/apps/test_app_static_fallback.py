"""Which path `kiln run` takes for a statically linked program (issue 13,
docs/runtime.md "Statically linked programs: which path"): the static loader
by default; the seccomp supervisor where the loader cannot run the program,
decided before anything of it runs and said on one line with the reason;
`--static=loader` refuses instead of falling back; without a volume or
--cas a program the loader cannot run runs natively (nothing to shield).

static_high.c is a static program without libc linked (non-PIE) at
0x560000000000, where the kernel puts kiln-sload (a PIE) and its libraries:
the loader cannot reserve its addresses, the kernel's exec (the supervisor's
path) maps it first."""
import shutil
import subprocess
from pathlib import Path

import pytest

from kilnapps import BUILD, SECRET

HIGH_SRC = Path(__file__).parent / "static_high.c"
HELLO = BUILD / "tests" / "e2e" / "apps" / "rt_static_hello"
RANGE = ("not under the static loader: its segments lie where the kernel places kiln-sload, "
         "its libraries and stacks (0x555555554000 and up): 0x560000000000-0x560000003000")
LOADER_LINE = ("is statically linked: running it in-process under the static loader "
               "(kiln-sload; file calls trap by seccomp)")
SUPERVISED_LINE = "is statically linked: running it supervised (seccomp), every file call traps"
NATIVE_LINE = ("is statically linked: running it natively (no volume and no --cas: nothing "
               "to shield)")


@pytest.fixture(scope="module")
def high(tmp_path_factory):
    exe = tmp_path_factory.mktemp("static_high") / "static_high"
    subprocess.run(["gcc", "-O1", "-static", "-nostdlib", "-no-pie", "-fno-pic",
                    "-fno-stack-protector", "-mcmodel=large",
                    "-Wl,-Ttext-segment=0x560000000000", "-o", str(exe), str(HIGH_SRC)],
                   check=True)
    return str(exe)


def run(kiln_bin, *args, env=None):
    return subprocess.run([kiln_bin, "run", *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env)


def fs_cat(volume, name):
    return subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), name, "--key-file",
                           str(volume.key)], capture_output=True, text=True)


def test_default_is_the_loader(volume):
    prog = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
    p = volume.run(prog, "write", volume.dir, SECRET, check=True)
    assert f"kiln: {prog} {LOADER_LINE}" in p.stderr.splitlines(), p.stderr
    assert "supervised" not in p.stderr
    # What only the loader does: a volume directory is listed.
    p = volume.run(prog, "list", volume.dir, check=True)
    assert p.stdout == "entry a\n"


def test_unloadable_program_falls_back_to_the_supervisor(volume, high):
    f = volume.dir / "high.txt"
    p = volume.run(high, f, SECRET)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "high\n"
    assert p.stderr.splitlines() == ["kiln: development mode: no attestation",
                                     f"kiln: {high} {SUPERVISED_LINE}; {RANGE}"]
    # Supervised, it was shielded: the volume keeps the file, encrypted.
    c = fs_cat(volume, "high.txt")
    assert c.returncode == 0 and c.stdout == SECRET, c.stderr
    volume.assert_no_plaintext()


def test_forced_loader_refuses_an_unloadable_program(volume, high):
    p = volume.run(high, volume.dir / "high.txt", SECRET, extra=["--static=loader"])
    assert p.returncode == 1
    assert p.stdout == ""          # nothing of it ran
    assert p.stderr.splitlines() == [
        f"kiln: run: {high}: the static loader cannot run it (--static=loader): "
        + RANGE.removeprefix("not under the static loader: ")]
    assert fs_cat(volume, "high.txt").returncode != 0


def test_without_volume_nothing_to_shield(kiln_bin, high):
    # The loader cannot: the program runs natively, and says so and why.
    p = run(kiln_bin, "--", high)
    assert p.returncode == 0 and p.stdout == "high\n", p.stderr
    assert f"kiln: {high} {NATIVE_LINE}; {RANGE}" in p.stderr.splitlines(), p.stderr
    # --static=supervise without a volume: natively too, no reason to give.
    p = run(kiln_bin, "--static=supervise", "--", HELLO)
    assert p.returncode == 0 and p.stdout == "static hello\n", p.stderr
    assert f"kiln: {HELLO} {NATIVE_LINE}" in p.stderr.splitlines(), p.stderr
    # The default: the loader, as a dynamic program gets libkiln.
    p = run(kiln_bin, "--", HELLO)
    assert p.returncode == 0 and p.stdout == "static hello\n", p.stderr
    assert f"kiln: {HELLO} {LOADER_LINE}" in p.stderr.splitlines(), p.stderr


def test_missing_kiln_sload_falls_back(volume, tmp_path):
    """A libkiln.so installed without kiln-sload beside it: supervised, said
    why; --static=loader refuses."""
    lib = tmp_path / "lib" / "libkiln.so"
    lib.parent.mkdir()
    shutil.copy(BUILD / "src" / "runtime" / "libkiln.so", lib)
    env = {"KILN_RUNTIME_LIB": str(lib)}
    prog = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
    p = volume.run(prog, "write", volume.dir, SECRET, env=env, check=True)
    why = f"not under the static loader: {lib.parent}/kiln-sload: No such file or directory " \
          "(installed next to libkiln.so)"
    assert f"kiln: {prog} {SUPERVISED_LINE}; {why}" in p.stderr.splitlines(), p.stderr
    p = volume.run(prog, "read", volume.dir, extra=["--static=loader"], env=env)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == [
        f"kiln: run: {prog}: the static loader cannot run it (--static=loader): "
        + why.removeprefix("not under the static loader: ")]


def test_measure_is_the_same_on_every_path(kiln_bin, high):
    # kiln measure has no path to choose: a static program is measured from
    # its file, whichever path kiln run would take.
    for prog in (high, HELLO):
        m = subprocess.run([kiln_bin, "measure", "--", str(prog)], capture_output=True,
                           text=True)
        assert m.returncode == 0, m.stderr
        assert f"kiln: measure: {prog}: statically linked, measured from its file" in m.stderr
        assert len(m.stdout.splitlines()) == 1 and m.stdout.strip(), m.stdout
