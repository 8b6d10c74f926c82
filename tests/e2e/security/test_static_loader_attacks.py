"""The static loader (`kiln run --static=loader`) against a hostile program
file and a program that reaches for the loader's own machinery: an ELF file
the loader cannot place is refused before anything of it runs, naming the file
and the reason; the program can neither take SIGSYS nor, by blocking it, make
its file calls escape (or kill itself through) the seccomp trap."""
import struct
import subprocess

import pytest

from kilnenv import BUILD

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"


def static_elf(path, vaddr=0x400000, tls=None):
    """A static ET_EXEC with one PT_LOAD (and a PT_TLS): nothing runnable in it."""
    phs = [struct.pack("<IIQQQQQQ", 1, 5, 0, vaddr, vaddr, 8192, 8192, 4096)]
    if tls:
        phs.append(struct.pack("<IIQQQQQQ", 7, 4, 0x300, vaddr + 0x300, vaddr + 0x300, 16,
                               tls[0], tls[1]))
    eh = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) +
          struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, vaddr + 0x1000, 64, 0, 0, 64, 56, len(phs),
                      64, 0, 0))
    data = eh + b"".join(phs)
    path.write_bytes(data + bytes(8192 - len(data)))
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("name,kw,reason", [
    ("low", {"vaddr": 0x1000}, "segments below 64 KiB (mmap_min_addr)"),
    ("tls", {"tls": (64, 1 << 20)},
     "a PT_TLS segment the loader cannot place (size or alignment)"),
])
def test_unplaceable_elf_is_refused(kiln_bin, tmp_path, name, kw, reason):
    prog = static_elf(tmp_path / name, **kw)
    p = subprocess.run([kiln_bin, "run", "--static=loader", "--", str(prog)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    # kiln run asks the loader's checks before it starts anything
    # (kiln-sload asks them again, with its own line).
    assert p.stderr.splitlines() == [
        f"kiln: run: {prog}: the static loader cannot run it (--static=loader): {reason}"]


def test_truncated_elf_is_refused(kiln_bin, tmp_path):
    prog = tmp_path / "trunc"
    prog.write_bytes(PROG.read_bytes()[:100])
    prog.chmod(0o755)
    p = subprocess.run([kiln_bin, "run", "--static=loader", "--", str(prog)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert str(prog) in p.stderr and "truncated or corrupt" in p.stderr


def test_program_cannot_take_or_block_sigsys(kiln_bin, tmp_path):
    key, vol = tmp_path / "k", tmp_path / "vol"
    subprocess.run([kiln_bin, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                   capture_output=True)
    run = [kiln_bin, "run", "--static=loader", "--volume", f"{vol}={key}", "--", str(PROG)]
    w = subprocess.run(run + ["write", str(vol), "s3cret"], capture_output=True, text=True,
                       timeout=30)
    assert w.returncode == 0, w.stderr
    p = subprocess.run(run + ["signals", str(vol)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    # Recorded for the program to read back (Go's runtime stops when it is
    # refused), never installed: SIGSYS stays the loader's.
    assert p.stdout.splitlines() == ["sigaction SIGSYS: 0 errno=0",
                                     "blocked read: s3cret+more", "handler read: ok"]
    assert (f"kiln: {PROG}: a handler for SIGSYS: recorded, never called (SIGSYS is the "
            "static loader's)"
            in p.stderr.splitlines())
