"""Statically linked programs run in-process by the static loader (the default
for them; `kiln run --static=loader` forces it, docs/runtime.md "The static
loader"; test_app_static_fallback.py: where it cannot): kiln-sload,
with libkiln preloaded, maps the program into its own process; the program's
file calls trap by seccomp (SIGSYS in-process) into libkiln's dispatcher, the
same data path as the LD_PRELOAD runtime (directories included)."""
import os
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from kilnapps import BUILD, SECRET, sqlite_on_volume

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
HELLO = BUILD / "tests" / "e2e" / "apps" / "rt_static_hello"
THREADS_SRC = Path(__file__).parent / "static_threads.c"
# Debian's busybox-static (glibc, ET_EXEC), unpacked by scripts/install-deps.sh
# (it conflicts with the busybox package, which other tests use).
BUSYBOX = Path(os.environ.get("KILN_BUSYBOX_STATIC", "/opt/kiln/busybox-static/bin/busybox"))
LOADER = ("--static=loader",)


@pytest.fixture
def prog():
    if not PROG.exists():
        pytest.fail(f"{PROG} not built")
    return str(PROG)


@pytest.fixture
def busybox():
    if not BUSYBOX.exists():
        pytest.fail(f"{BUSYBOX} missing: run scripts/install-deps.sh (busybox-static)")
    return str(BUSYBOX)


def fs(volume, *args):
    return subprocess.run([volume.kiln_bin, "fs", *args[:1], str(volume.dir), *args[1:],
                           "--key-file", str(volume.key)], capture_output=True, text=True)


def said_loader(p, prog):
    return (f"kiln: {prog} is statically linked: running it in-process under the static "
            "loader (kiln-sload; file calls trap by seccomp)") in p.stderr.splitlines()


def test_loader_writes_and_reads_protected_files(volume, prog):
    p = volume.run(prog, "write", volume.dir, SECRET, extra=LOADER, check=True)
    assert p.stdout.splitlines() == [f"read: {SECRET}", f"size: {len(SECRET)}",
                                     f"renamed: {SECRET}+more"]
    assert said_loader(p, prog), p.stderr
    assert "supervised" not in p.stderr
    c = fs(volume, "cat", "renamed.txt")
    assert c.returncode == 0 and c.stdout == SECRET + "+more", c.stderr
    assert fs(volume, "verify").returncode == 0
    volume.assert_no_plaintext()
    p = volume.run(prog, "read", volume.dir, extra=LOADER, check=True)
    assert p.stdout.splitlines() == [f"content: {SECRET}+more", f"size: {len(SECRET) + 5}"]


def test_loader_lists_protected_directories(volume, prog):
    # The supervisor refuses directory fds; in-process, libkiln lists them.
    p = volume.run(prog, "list", volume.dir, extra=LOADER, check=True)
    assert p.stdout == "entry a\n"


def test_loader_tampering_is_eio(volume, prog):
    volume.run(prog, "write", volume.dir, SECRET, extra=LOADER, check=True)
    volume.tamper_largest()
    p = volume.run(prog, "read", volume.dir, extra=LOADER)
    assert p.returncode == 1
    assert p.stdout.strip() == "open-read: errno=5", p.stdout + p.stderr
    assert f"{volume.dir}/renamed.txt" in p.stderr


def test_loader_fork_and_exit_status(volume, prog):
    p = volume.run(prog, "fork", volume.dir, extra=LOADER, check=True)
    assert p.stdout == "forked: AB\n"
    c = fs(volume, "cat", "forked.txt")
    assert c.returncode == 0 and c.stdout == "AB", c.stderr
    assert volume.run(prog, extra=LOADER).returncode == 2  # usage: the program's status


def test_loader_runs_a_glibc_thread(volume, prog):
    # Was refused ("threads are not supported by the static loader yet")
    # before the loader gave each thread a runtime TCB of its own.
    p = volume.run(prog, "thread", volume.dir, extra=LOADER, timeout=30, check=True)
    assert p.stdout == "thread ran\njoined\n"
    assert "threads are not supported" not in p.stderr, p.stderr


@pytest.fixture(scope="module")
def static_threads(tmp_path_factory):
    """static_threads.c linked statically against musl (as Alpine's are) and
    against glibc."""
    musl_gcc = shutil.which("musl-gcc")
    if not musl_gcc:
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    d = tmp_path_factory.mktemp("static_threads")
    out = {}
    for libc, cc in (("musl", musl_gcc), ("glibc", "gcc")):
        out[libc] = d / f"static_threads_{libc}"
        subprocess.run([cc, "-O1", "-static", "-pthread", "-o", str(out[libc]),
                        str(THREADS_SRC)], check=True)
    return out


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_loader_threads_write_and_read_protected_files(volume, static_threads, libc):
    """8 threads each with its own protected file and one shared file under a
    lock, a detached thread (musl: it unmaps its own stack) that exits while
    they trap, 40 threads made and joined one by one; every runtime thread
    made for them is gone at the end."""
    prog = static_threads[libc]
    p = volume.run(prog, "threads", volume.dir, 8, extra=LOADER, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["ok 8", "tasks: 1"], p.stdout + p.stderr
    assert said_loader(p, str(prog))
    c = fs(volume, "cat", "shared.txt")
    assert c.returncode == 0, c.stderr
    lines = c.stdout.splitlines()
    assert len(lines) == 8 * 20 and sorted(lines) == sorted(f"{i} {k}" for i in range(8)
                                                           for k in range(20))
    c = fs(volume, "cat", "t5.txt")
    assert c.stdout == "thread 5 wrote this, thread 5 reads it\n", c.stderr
    volume.assert_no_plaintext("wrote this")
    assert fs(volume, "verify").returncode == 0


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_loader_fork_from_a_threaded_program(volume, static_threads, libc):
    p = volume.run(static_threads[libc], "fork", volume.dir, extra=LOADER, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["child wrote: from the child", "threads ok"]
    c = fs(volume, "cat", "child.txt")
    assert c.stdout == "from the child\n", c.stderr


def test_loader_without_volumes_and_argv(kiln_bin):
    p = subprocess.run([kiln_bin, "run", "--static=loader", "--", str(HELLO), "a b", "c"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "static hello\n"
    assert said_loader(p, str(HELLO))


def test_busybox_static_in_process(volume, busybox):
    f = volume.dir / "bb.txt"
    script = (f"echo {SECRET} > {f}; cat {f}; ls {volume.dir}; sha256sum {f}")
    p = volume.run(busybox, "sh", "-c", script, extra=LOADER, timeout=30, check=True)
    lines = p.stdout.splitlines()
    assert lines[0] == SECRET
    assert "bb.txt" in lines[1:-1]
    assert lines[-1] == hashlib.sha256((SECRET + "\n").encode()).hexdigest() + f"  {f}"
    assert said_loader(p, busybox)
    volume.assert_no_plaintext()
    # A single command: busybox sh executes /proc/self/exe (kiln-sload under
    # the loader), which must mean busybox itself.
    p = volume.run(busybox, "cat", str(f), extra=LOADER, timeout=30, check=True)
    assert p.stdout == SECRET + "\n"
    p = volume.run(busybox, "sh", "-c", f"cat {f}", extra=LOADER, timeout=30, check=True)
    assert p.stdout == SECRET + "\n"


def test_loader_option_errors(kiln_bin, volume, prog):
    p = subprocess.run([kiln_bin, "run", "--static=bogus", "--", prog], capture_output=True,
                       text=True)
    assert p.returncode == 2
    assert "--static 'bogus': expected auto, loader or supervise" in p.stderr


SQLITE_STATIC = Path(os.environ.get("KILN_MUSL_SQLITE3", "/opt/kiln/musl-sqlite3")) / "bin" / \
    "sqlite3-musl-static"


@pytest.mark.stress
def test_static_musl_sqlite3_in_process_stress(volume):
    """sqlite3 linked statically against musl (scripts/build-musl-sqlite3-static.sh,
    which `make stress` runs: building it takes minutes) in-process: a database
    with a journal on a protected volume, read back by Debian's sqlite3 under
    libkiln."""
    if not os.access(SQLITE_STATIC, os.X_OK):
        pytest.fail(f"{SQLITE_STATIC} not built (scripts/build-musl-sqlite3-static.sh, run "
                    "by make stress)")
    p = sqlite_on_volume(volume, SQLITE_STATIC, extra=LOADER)
    assert said_loader(p, str(SQLITE_STATIC))


@pytest.mark.stress
def test_static_musl_sqlite3_supervised_stress(volume):
    """The same sqlite3 under the seccomp supervisor (the default path for
    static programs before the loader) (every write failed 'attempt to write a readonly database' until
    the supervisor's stat named the file fstat names)."""
    if not os.access(SQLITE_STATIC, os.X_OK):
        pytest.fail(f"{SQLITE_STATIC} not built (scripts/build-musl-sqlite3-static.sh, run "
                    "by make stress)")
    p = sqlite_on_volume(volume, SQLITE_STATIC, extra=("--static=supervise",))
    assert (f"kiln: {SQLITE_STATIC} is statically linked: running it supervised (seccomp), "
            "every file call traps") in p.stderr.splitlines(), p.stderr


@pytest.mark.stress
@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_loader_threads_stress(kiln_bin, tmp_path, static_threads, libc):
    """make stress: 64 threads at a time, 15 runs, and a fork among threads 15
    times, each on a volume of its own."""
    for i in range(15):
        key, vol = tmp_path / f"k{i}", tmp_path / f"v{i}"
        subprocess.run([kiln_bin, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                       capture_output=True)
        run = [kiln_bin, "run", "--static=loader", "--volume", f"{vol}={key}", "--",
               str(static_threads[libc])]
        p = subprocess.run(run + ["threads", str(vol), "64"], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0 and p.stdout.splitlines() == ["ok 64", "tasks: 1"], \
            f"run {i}: {p.stdout}{p.stderr}"
        p = subprocess.run(run + ["fork", str(vol)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and p.stdout.endswith("threads ok\n"), \
            f"run {i}: {p.stdout}{p.stderr}"
