"""A statically linked program (libkiln cannot be loaded into it) under
`kiln run --static=supervise --volume`: it runs supervised by a seccomp
user-notification listener in the launcher (docs/runtime.md, "Statically
linked programs"; the static loader is the default, test_app_static_loader.py,
and the supervisor its fallback, test_app_static_fallback.py)."""
import subprocess

import pytest

from kilnapps import BUILD, SECRET

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
SUPERVISE = ("--static=supervise",)


@pytest.fixture
def prog():
    if not PROG.exists():
        pytest.fail(f"{PROG} not built")
    return str(PROG)


def fs(volume, *args):
    return subprocess.run([volume.kiln_bin, "fs", *args[:1], str(volume.dir), *args[1:],
                           "--key-file", str(volume.key)], capture_output=True, text=True)


def test_static_program_writes_and_reads_protected_files(volume, prog):
    p = volume.run(prog, "write", volume.dir, SECRET, check=True, extra=SUPERVISE)
    assert p.stdout.splitlines() == [f"read: {SECRET}", f"size: {len(SECRET)}",
                                     f"renamed: {SECRET}+more"]
    assert (f"kiln: {prog} is statically linked: running it supervised (seccomp), "
            "every file call traps") in p.stderr.splitlines()
    c = fs(volume, "cat", "renamed.txt")
    assert c.returncode == 0, c.stderr
    assert c.stdout == SECRET + "+more"
    assert fs(volume, "cat", "file.txt").returncode != 0  # renamed away
    v = fs(volume, "verify")
    assert v.returncode == 0, v.stdout + v.stderr
    volume.assert_no_plaintext()
    # A second run reads what the first one wrote.
    p = volume.run(prog, "read", volume.dir, check=True, extra=SUPERVISE)
    assert p.stdout.splitlines() == [f"content: {SECRET}+more", f"size: {len(SECRET) + 5}"]


def test_static_program_tampering_is_eio(volume, prog):
    volume.run(prog, "write", volume.dir, SECRET, check=True, extra=SUPERVISE)
    volume.tamper_largest()
    p = volume.run(prog, "read", volume.dir, extra=SUPERVISE)
    assert p.returncode == 1
    assert p.stdout.strip() == "open-read: errno=5"
    assert any(line.startswith(f"kiln: openat on {volume.dir}/renamed.txt: ")
               for line in p.stderr.splitlines()), p.stderr


def test_static_program_directories(volume, prog):
    """A volume directory opened (redis's AOF directory, sqlite's database
    directory): fsync is a commit of the names, readdir lists it from the
    volume (rewinddir, and an lseek on a dup of the fd, start it again), *at
    calls with it name its entries (a name leaving the volume through it is
    refused), a forked child lists it on its inherited fd after the parent
    closed its own; O_RDWR is EISDIR. Was refused (ENOTSUP)."""
    p = volume.run(prog, "dir", volume.dir, extra=SUPERVISE)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["listed: a b c/ (2 dots)", "again: a b c/ (2 dots)",
                                     "dup-rewound: a b (2 dots)", "child: k (2 dots)",
                                     "dir ok"]
    # Only a name that leaves the volume through the directory's fd is refused.
    assert [line for line in p.stderr.splitlines() if "not supported" in line] == [
        f"kiln: openat on {volume.dir.parent}/x: not supported for statically linked "
        "programs"], p.stderr
    assert fs(volume, "verify").returncode == 0
    assert fs(volume, "ls", "-r").stdout == ""  # emptied and removed
    volume.assert_no_plaintext()


def test_static_program_file_identity_and_one_refusal_line(volume, prog):
    """stat(path) of an open file names what fstat(fd) names (sqlite took a
    difference for a moved database: 'attempt to write a readonly database'
    at the first write), files have distinct inode numbers (were all 0), and
    a refusal repeated (an O_TMPFILE open, twice) is said once."""
    p = volume.run(prog, "ident", volume.dir, extra=SUPERVISE)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == "ident ok\n"
    line = f"kiln: openat on {volume.dir}: not supported for statically linked programs"
    assert p.stderr.splitlines().count(line) == 1, p.stderr


def test_static_program_fork_child_closing_inherited_fd(volume, prog):
    # The child's close of its copy must not end the parent's tracking of the fd.
    p = volume.run(prog, "fork", volume.dir, check=True, extra=SUPERVISE)
    assert p.stdout == "forked: AB\n"
    c = fs(volume, "cat", "forked.txt")
    assert c.returncode == 0 and c.stdout == "AB", c.stderr


def test_static_program_exit_status_and_unprotected_files(volume, prog):
    # Exit status is the program's (2: usage).
    assert volume.run(prog, extra=SUPERVISE).returncode == 2
    # Calls outside the volume reach the kernel unchanged.
    volume.run(prog, "write", volume.dir, SECRET, check=True, extra=SUPERVISE)
    p = volume.run(prog, "bench", volume.dir, "3", check=True, extra=SUPERVISE)
    assert "unprotected open+close:" in p.stdout


def test_static_program_missing_key_does_not_start(volume, prog, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("00" * 32)
    p = subprocess.run([volume.kiln_bin, "run", *SUPERVISE, "--volume",
                        f"{volume.dir}={bad}", "--", prog, "read", str(volume.dir)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.strip().splitlines()[-1].startswith(f"kiln: volume {volume.dir}: ")
