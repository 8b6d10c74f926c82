"""A program that bypasses libc (inline syscall instructions and syscall(2)):
Syscall User Dispatch shields it; with --sud off it sees only what is on disk."""
import subprocess

import pytest

from kilnapps import BUILD, SECRET


def test_direct_syscalls_are_shielded(volume, direct_syscall_bin):
    f = volume.dir / "direct.txt"
    volume.run(direct_syscall_bin, "write", f, SECRET, check=True)
    p = volume.run(direct_syscall_bin, "read", f, check=True)
    assert p.stdout.strip() == f"size={len(SECRET)} content={SECRET}"
    p = volume.run(direct_syscall_bin, "libc-read", f, check=True)
    assert p.stdout.strip() == f"size={len(SECRET)} content={SECRET}"
    volume.assert_no_plaintext()


def test_unsupported_call_is_refused(volume, direct_syscall_bin):
    """A refused call fails as Linux fails it on a file system without the
    feature, and the refusal is said once per process, not once per call."""
    f = volume.dir / "direct.txt"
    volume.run(direct_syscall_bin, "write", f, SECRET, check=True)
    p = volume.run(direct_syscall_bin, "setxattr", f)
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["setxattr: errno=95 (Operation not supported)"] * 2
    said = [ln for ln in p.stderr.splitlines() if "setxattr" in ln]
    assert said == [f"kiln: setxattr on protected path {f}: not supported by the runtime "
                    "(ENOTSUP)"]


def test_direct_link_is_shielded(volume, direct_syscall_bin):
    """A raw link(2) inside a volume makes a hard link there (the volume server's
    LINK): the new name reads the same plaintext, nothing appears on the host."""
    f = volume.dir / "direct.txt"
    volume.run(direct_syscall_bin, "write", f, SECRET, check=True)
    volume.run(direct_syscall_bin, "link", f, volume.dir / "hard", volume.dir / "hard2",
               check=True)
    for name in ("hard", "hard2"):
        p = volume.run(direct_syscall_bin, "read", volume.dir / name, check=True)
        assert f"content={SECRET}" in p.stdout
    assert sorted(p.name for p in volume.dir.iterdir()) == [".kiln"]


def test_sud_off_never_shows_ciphertext_as_plaintext(volume, direct_syscall_bin):
    f = volume.dir / "direct.txt"
    volume.run(direct_syscall_bin, "write", f, SECRET, check=True)
    p = volume.run(direct_syscall_bin, "read", f, extra=["--sud", "off"])
    # The volume's files do not exist on disk under their names.
    assert p.returncode == 1 and "errno=2" in p.stdout


@pytest.mark.parametrize("mode,path", [
    ("auto", "in-process under the static loader (kiln-sload; file calls trap by seccomp)"),
    ("supervise", "supervised (seccomp), every file call traps")])
def test_static_binary_with_cas_attests_first(volume, mode, path):
    """A static binary cannot load libkiln: with --cas libkiln attests for it
    in the static loader, or the launcher does as its supervisor
    (test_app_static_loader_attest.py, test_app_static_attest.py); an
    unreachable CAS stops it before it runs, on either path."""
    prog = str(BUILD / "tests" / "e2e" / "apps" / "rt_static_hello")
    p = subprocess.run([volume.kiln_bin, "run", f"--static={mode}", "--cas",
                        "https://127.0.0.1:9", "--cas-ca", str(volume.key), "--session", "s",
                        "--service", "x", "--", prog], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f"kiln: {prog} is statically linked: running it {path}",
        "kiln: cannot reach the CAS at https://127.0.0.1:9: cannot connect to 127.0.0.1:9: "
        "Connection refused"]
    assert p.stdout == ""
    # Without --cas it runs (development mode, under the loader by default).
    p = subprocess.run([volume.kiln_bin, "run", "--", prog], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "static hello\n"
