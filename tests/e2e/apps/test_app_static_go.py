"""A static Go program (CGO_ENABLED=0: the Go runtime's own raw clone per
thread, arch_prctl(ARCH_SET_FS) per thread, a handler on every signal) on a
protected volume: in-process under the static loader (the default for static
programs, docs/runtime.md "The static loader") and supervised
(--static=supervise)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).parent / "static_go"
LOADER = ("--static=loader",)
SUPERVISE = ("--static=supervise",)


@pytest.fixture(scope="module")
def go_prog(tmp_path_factory):
    go = shutil.which("go")
    if not go:
        pytest.fail("go not installed (scripts/install-deps.sh installs golang-go)")
    d = tmp_path_factory.mktemp("static_go")
    src = d / "src"
    shutil.copytree(SRC, src)
    (src / "go.mod").write_text("module kilntest\n\ngo 1.19\n")
    env = dict(os.environ, CGO_ENABLED="0", HOME=str(d), GOCACHE=str(d / "cache"),
               GOPATH=str(d / "gopath"), GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    exe = d / "static_go"
    subprocess.run([go, "build", "-o", str(exe), "."], cwd=src, env=env, check=True,
                   timeout=600)
    return exe


def fs_cat(volume, name):
    return subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), name, "--key-file",
                           str(volume.key)], capture_output=True, text=True)


def check_files(volume):
    for i in (0, 7, 15):
        c = fs_cat(volume, f"g{i:02d}.txt")
        assert c.returncode == 0 and c.stdout == f"goroutine {i} " * 100, c.stderr
    volume.assert_no_plaintext("goroutine 7 ")


def test_static_go_in_process(volume, go_prog):
    # No --static: the loader is the default.
    p = volume.run(go_prog, volume.dir, "list", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["threads: 16", "files: 16",
                                     "listed: 16 g00.txt g15.txt"], p.stdout + p.stderr
    assert (f"kiln: {go_prog} is statically linked: running it in-process under the static "
            "loader (kiln-sload; file calls trap by seccomp)") in p.stderr.splitlines()
    # Go installs a handler on every signal: SIGSYS's is recorded, said once.
    assert p.stderr.count("a handler for SIGSYS: recorded, never called") == 1, p.stderr
    check_files(volume)


def test_static_go_supervised(volume, go_prog):
    p = volume.run(go_prog, volume.dir, extra=SUPERVISE, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["threads: 16", "files: 16"]
    assert (f"kiln: {go_prog} is statically linked: running it supervised (seccomp), every "
            "file call traps") in p.stderr.splitlines()
    check_files(volume)
    # Supervised, a volume directory is listed too (was refused: ENOTSUP).
    p = volume.run(go_prog, volume.dir, "list", extra=SUPERVISE, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["threads: 16", "files: 16",
                                     "listed: 16 g00.txt g15.txt"], p.stdout + p.stderr
