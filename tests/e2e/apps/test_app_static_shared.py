"""A supervised static program is a client of the volume server like every
libkiln process (docs/runtime.md, "Statically linked programs"): one file is
one memfd for all of them, so writes, O_APPEND and fcntl locks are shared
without close or fsync, also between two processes of a supervised program.
(Before, the supervisor decrypted a private copy per open and wrote it back at
close: none of this held.) The static program runs with --static=supervise (the
loader, the default, is libkiln in-process: test_app_static_loader.py)."""
import subprocess
import time

import pytest

from kilnapps import BUILD, SECRET

APPS = BUILD / "tests" / "e2e" / "apps"
STATIC = APPS / "rt_static_files"
DYNAMIC = APPS / "rt_dyn_files"
SUPERVISE = ("--static=supervise",)  # ignored for DYNAMIC


class Shell:
    """rt_*_files shell DIR under kiln run, driven line by line."""

    def __init__(self, volume, prog):
        if not prog.exists():
            pytest.fail(f"{prog} not built")
        self.p = subprocess.Popen(
            [volume.kiln_bin, "run", *SUPERVISE, "--volume", f"{volume.dir}={volume.key}", "--",
             str(prog), "shell", str(volume.dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, f"{cmd}: no answer; stderr:\n{self.p.stderr.read()}"
        return line.rstrip("\n")

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return self.p.stderr.read()


def cat(volume, name, text=True):
    """kiln fs cat of a volume file (after the workload: what the volume keeps)."""
    c = subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), name, "--key-file",
                        str(volume.key)], capture_output=True, text=text)
    assert c.returncode == 0, c.stderr
    return c.stdout


@pytest.fixture
def pair(volume):
    shells = []

    def make():
        s, d = Shell(volume, STATIC), Shell(volume, DYNAMIC)
        shells.extend([s, d])
        return s, d
    yield make
    for s in shells:
        s.close()


def test_static_and_dynamic_see_each_others_writes(volume, pair):
    s, d = pair()
    assert s("open shared.txt w") == "ok"
    assert d("open shared.txt w") == "ok"
    # A write by one is the other's next read: no close, no fsync.
    assert s("pwrite 0 from-static") == "ok"
    assert d("pread 0 11") == "data from-static"
    assert d("pwrite 11 +from-dynamic") == "ok"
    assert s("pread 0 24") == "data from-static+from-dynamic"
    assert s("size") == "size 24"
    # The static program extends the file past what the volume stores; the
    # dynamic one sees it, and it is what the volume keeps.
    assert s(f"pwrite 100000 {SECRET}") == "ok"
    assert d(f"pread 100000 {len(SECRET)}") == f"data {SECRET}"
    s.close()
    d.close()
    data = cat(volume, "shared.txt", text=False)
    assert data[:24] == b"from-static+from-dynamic"
    assert data[100000:] == SECRET.encode()
    assert data[24:100000] == bytes(100000 - 24)
    volume.assert_no_plaintext()


def test_static_and_dynamic_append_and_lock(volume, pair):
    s, d = pair()
    assert s("open log.txt a") == "ok"
    assert d("open log.txt a") == "ok"
    # fcntl locks between them: one inode.
    assert s("lock") == "ok"
    assert d("lock") == "busy"
    assert s("unlock") == "ok"
    assert d("lock") == "ok"
    assert s("lock") == "busy"
    assert d("unlock") == "ok"
    # O_APPEND from both, interleaved: every record, none torn or lost.
    for _ in range(5):
        assert s("append static-record 200") == "ok"
        assert d("append dynamic-record 200") == "ok"
    assert s("size") == d("size") == f"size {1000 * 14 + 1000 * 15}"
    s.close()
    d.close()
    lines = cat(volume, "log.txt").splitlines()
    assert lines.count("static-record") == 1000
    assert lines.count("dynamic-record") == 1000
    assert len(lines) == 2000


def test_static_program_dup_outlives_close(volume, pair):
    """A dup of a protected fd keeps the file after the original's close: the
    supervisor finds it (its writes are saved, its reads are the file)."""
    s, d = pair()
    assert s("open dup.txt w") == "ok"
    assert s("pwrite 0 first") == "ok"
    assert s("dup") == "ok"
    # Past the time the supervisor keeps a closed file anyway (2 s): it looks
    # for other holders then, and finds the dup.
    time.sleep(3.5)
    # A commit in between: what the dup writes next is the supervised
    # program's, after it (saved only if the file is still its own).
    assert d("open dup.txt w") == "ok"
    assert d("fsync") == "ok"
    assert s(f"pwrite 5 +{SECRET}") == "ok"
    assert d(f"pread 0 {6 + len(SECRET)}") == f"data first+{SECRET}"
    s.close()
    d.close()
    assert cat(volume, "dup.txt") == f"first+{SECRET}"


def test_static_program_fork_one_view(volume):
    p = volume.run(STATIC, "forkview", volume.dir, extra=SUPERVISE, check=True)
    assert p.stdout == "child read: P1\nparent read: P1C1\n", p.stdout + p.stderr
    assert cat(volume, "view.txt") == "P1C1"


def test_static_program_reads_the_head_of_a_big_file(volume):
    """A file larger than one fill window, written by a libkiln program: the
    supervised reader gets its first bytes (the supervisor has the server fill
    the whole file at open: its reads do not trap)."""
    size = 48 << 20
    w = volume.run("dd", "if=/dev/zero", f"of={volume.dir}/big.bin", "bs=1M",
                   f"count={size >> 20}", "status=none", check=True)
    assert w.returncode == 0
    w = volume.run("dd", f"of={volume.dir}/big.bin", "conv=notrunc", "status=none",
                   input=SECRET.encode(), check=True)
    p = volume.run(STATIC, "head", f"{volume.dir}/big.bin", "10", extra=SUPERVISE, check=True)
    assert p.stdout == SECRET[:10], p.stderr
    volume.assert_no_plaintext()


def test_dynamic_size_follows_static_growth(volume, pair):
    """A libkiln process keeps a file's size between its fstats while nothing
    changed it (stat.c, size_seq); a supervised program's writes leave no mark
    (they do not trap), so its size is asked while it holds the file and is
    not the kept one after it let go."""
    s, d = pair()
    assert d("open grow.txt w") == "ok"
    assert d("pwrite 0 1234") == "ok"
    assert d("size") == "size 4"
    assert d("size") == "size 4"  # kept
    assert s("open grow.txt w") == "ok"
    assert s("pwrite 10 abcdef") == "ok"
    assert d("size") == "size 16"  # while the static program holds it
    assert s("pwrite 100 x") == "ok"
    assert s("close") == "ok"
    assert d("size") == "size 101"  # after it let go
    assert d("pwrite 200 y") == "ok"
    assert d("size") == "size 201"
    assert s("open grow.txt w") == "ok"
    assert s("size") == "size 201"
