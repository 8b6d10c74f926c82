"""Large writes sealed in the program's process (issue 10, docs/fs.md "Large
writes sealed in the program's process"): a write of >= 256 KiB of whole chunks
at the end of a file the process opened for writing is sealed by the program
with pf's chunk crypto and written into the backing file by it; the volume
server records the tags (KILN_SHIELD_STATS=1: "N sealed writes of M chunks" in
.kiln/server.log). What another process reads, `kiln fs cat` and `kiln fs
verify` see is the plaintext; a reader during the write sees each chunk whole;
a kill -9 leaves the last fsynced state (server killed too) or a prefix of what
was written (writer alone), with nothing past the end of the backing file; an
inherited fd (fork after open) writes the usual way."""
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import kilnenv
from kilnapps import need
from kilnviews import verify_volume

CHUNK = 4096
SLOT = 12 + 16 + CHUNK  # nonce, tag, data (docs/fs.md)
HDR = 64
ENV = {"KILN_SHIELD_STATS": "1"}


def blk(i):
    """Chunk i of the test stream: 4096 bytes naming i."""
    return (b"blk%09d" % i) * 341 + b"...."


def stream(first, count):
    return b"".join(blk(i) for i in range(first, first + count))


GEN = r"""
import sys
with open(sys.argv[1], "wb") as f:
    for m in range(int(sys.argv[2])):
        f.write(b"".join((b"blk%09d" % i) * 341 + b"...." for i in range(m * 256, m * 256 + 256)))
"""


def stats_search(volume, pattern):
    """The groups of pattern, as ints, in the last server's counters line."""
    volume.wait_server_gone(30)
    lines = (volume.dir / ".kiln" / "server.log").read_text().splitlines()
    line = [ln for ln in lines if "plaintext peak" in ln][-1]
    m = re.search(pattern, line)
    assert m, line
    return tuple(map(int, m.groups()))


def sealed_stats(volume):
    """(windows, chunks, windows on a lease) of the programs' sealed writes
    ("N sealed writes of M chunks (L on a lease)")."""
    return stats_search(volume, r"(\d+) sealed writes of (\d+) chunks \((\d+) on a lease\)")


def sealed(volume):
    return sealed_stats(volume)[1]


def fs(volume, *args):
    return subprocess.run([volume.kiln_bin, "fs", args[0], str(volume.dir), *args[1:],
                           "--key-file", str(volume.key)], capture_output=True, timeout=600)


def digest_in_run(volume, name):
    p = volume.run("sha256sum", volume.dir / name, check=True)
    return p.stdout.split()[0]


def test_dd_sealed_by_the_program(volume, tmp_path):
    mib = 64
    src = tmp_path / "src"
    subprocess.run([sys.executable, "-c", GEN, src, str(mib)], check=True)
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    # 4 MiB writes: each two requests of RT_WSTREAM_MAX chunks (whose tags fill
    # a request; 1024 of them once did not fit and left the reservation open).
    p = volume.run("dd", f"if={src}", f"of={volume.dir}/f", "bs=4M", "conv=fsync",
                   "status=none", env=ENV, check=True)
    assert [ln for ln in p.stderr.splitlines() if "development mode" not in ln] == [], p.stderr
    # Every chunk was sealed by dd's process, none went through the memfd.
    assert sealed(volume) == mib * 256
    assert digest_in_run(volume, "f") == want
    cat = fs(volume, "cat", "f")
    assert cat.returncode == 0 and hashlib.sha256(cat.stdout).hexdigest() == want
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None
    # Nothing past the last slot: exactly mib MiB of slots behind the header.
    backing = max(volume.backing_files(), key=lambda q: q.stat().st_size)
    assert backing.stat().st_size == HDR + mib * 256 * SLOT
    volume.assert_no_plaintext(marker="blk000001000")


def test_windows_on_a_lease(volume):
    """dd's 1 MiB writes: the tags of each window also reserve the next one (a
    lease), so a window after the first needs no reservation request of its
    own; the lease dd's fsync finds open is cut (nothing past the last slot)."""
    mib = 32
    volume.run("dd", "if=/dev/zero", f"of={volume.dir}/f", "bs=1M", f"count={mib}",
               "conv=fsync", "status=none", env=ENV, check=True)
    windows, chunks, leased = sealed_stats(volume)
    assert (windows, chunks) == (mib, mib * 256)
    # Not on a lease: the first window, and one where the file's chunk state
    # had no room for the next window yet (it doubles).
    assert leased >= mib - 6, (windows, leased)
    backing = max(volume.backing_files(), key=lambda q: q.stat().st_size)
    assert backing.stat().st_size == HDR + mib * 256 * SLOT
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None


def test_interrupted_slot_write_is_tried_again(volume, tmp_path):
    """The first pwrite of the windows' slots into the backing file fails
    with EINTR (strace injects it: a signal on a backing store on NFS or
    FUSE): it is tried again, and every window is still sealed by dd's
    process (before, that window went the usual way)."""
    if not shutil.which("strace"):
        pytest.fail("strace is needed (scripts/install-deps.sh installs it)")
    volume.run("touch", volume.dir / "f", check=True)
    volume.wait_server_gone(30)
    (backing,) = volume.backing_files()
    log = tmp_path / "trace"
    env = dict(os.environ, **ENV)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # no LSan under ptrace
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-P", str(backing),
                        "-e", "trace=pwrite64", "-e", "inject=pwrite64:error=EINTR:when=1",
                        volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}", "--",
                        "dd", "if=/dev/zero", f"of={volume.dir}/f", "bs=1M", "count=8",
                        "conv=fsync,notrunc", "status=none"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert "EINTR (Interrupted system call) (INJECTED)" in log.read_text(), log.read_text()
    assert sealed_stats(volume)[:2] == (8, 8 * 256)
    assert digest_in_run(volume, "f") == hashlib.sha256(bytes(8 << 20)).hexdigest()


def test_stream_flushed_early(volume):
    """A 256 MiB dd: the server starts a background fdatasync of the backing
    file every 64 MiB of recorded windows, one at a time ("N early flushes";
    docs/fs.md "Flushing a stream early"), so the final fsync has only the
    rest left to flush; the file is exact and the volume verifies."""
    mib = 256
    volume.run("dd", "if=/dev/zero", f"of={volume.dir}/f", "bs=1M", f"count={mib}",
               "conv=fsync", "status=none", env=ENV, check=True)
    (early,) = stats_search(volume, r"(\d+) early flushes")
    assert 1 <= early <= mib // 64, early
    assert sealed_stats(volume)[1] == mib * 256
    backing = max(volume.backing_files(), key=lambda q: q.stat().st_size)
    assert backing.stat().st_size == HDR + mib * 256 * SLOT
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None


LEASE_PAUSE = r"""
import os, subprocess, sys
def blk(i):
    return (b"blk%09d" % i) * 341 + b"...."
path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
for m in range(2):
    os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
other = subprocess.run([sys.executable, "-c", "\n".join([
    "import os, sys",
    "fd = os.open(sys.argv[1] + '.g', os.O_WRONLY | os.O_CREAT, 0o600)",
    "os.write(fd, b'g' * 8192)",
    "os.fsync(fd)",
    "print(os.stat(sys.argv[1]).st_size)"]), path], capture_output=True, text=True, timeout=60)
print(other.returncode, other.stdout.strip())
for m in range(2, 4):
    os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
os.fsync(fd)
"""


def test_a_lease_does_not_hold_up_other_commits(volume):
    """A writer pauses between two sealed writes, its lease open: another
    process's fsync (a commit) still completes (the server cancels the unused
    lease), and so do the writer's next writes and its fsync."""
    py = need("python3")
    p = volume.run(py, "-c", LEASE_PAUSE, volume.dir / "f", env=ENV, check=True, timeout=300)
    assert p.stdout.split() == ["0", str(2 << 20)], (p.stdout, p.stderr)
    windows, chunks, leased = sealed_stats(volume)
    assert chunks == 4 * 256 and leased <= 2, (windows, chunks, leased)
    cat = fs(volume, "cat", "f")
    assert cat.returncode == 0 and cat.stdout == stream(0, 4 * 256)
    assert fs(volume, "cat", "f.g").stdout == b"g" * 8192
    backing = max(volume.backing_files(), key=lambda q: q.stat().st_size)
    assert backing.stat().st_size == HDR + 4 * 256 * SLOT
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None


def test_append_after_small_writes_and_overwrite(volume):
    """Small writes first (the memfd path), then large ones at the end (sealed),
    then an overwrite of sealed chunks and a write past the end (the memfd path
    again): the file reads as written, in this run and the next."""
    py = need("python3")
    prog = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"head" * 1024)                     # 4 KiB: chunk 0, the memfd
os.write(fd, b"".join(b"%04d" % i * 1024 for i in range(1, 257)))  # 1 MiB, sealed
os.pwrite(fd, b"X" * 10000, 4096 * 7 + 5)        # into sealed chunks 7..9
os.pwrite(fd, b"Y" * 300000, 4096 * 300)         # past the end: a gap of holes
os.fsync(fd)
st = os.fstat(fd)
print(st.st_size)
fd2 = os.open(sys.argv[1], os.O_RDONLY)
print(os.pread(fd2, 20, 4096 * 7), os.pread(fd2, 8, 4096 * 10 - 8 + 4096 * 0))
"""
    p = volume.run(py, "-c", prog, volume.dir / "f", env=ENV, check=True)
    size = 4096 * 300 + 300000
    assert p.stdout.splitlines()[0] == str(size), p.stdout
    want = bytearray(b"head" * 1024 + b"".join(b"%04d" % i * 1024 for i in range(1, 257)))
    want[4096 * 7 + 5:4096 * 7 + 5 + 10000] = b"X" * 10000
    want += bytes(4096 * 300 - len(want)) + b"Y" * 300000
    assert sealed(volume) == 256
    cat = fs(volume, "cat", "f")
    assert cat.returncode == 0 and cat.stdout == bytes(want)
    p = volume.run(py, "-c", "import sys, hashlib; print(hashlib.sha256(open(sys.argv[1], 'rb')"
                   ".read()).hexdigest())", volume.dir / "f", check=True)
    assert p.stdout.strip() == hashlib.sha256(want).hexdigest()
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None


def test_reader_during_the_write(volume):
    """A reader in another process while a writer appends 1 MiB at a time past
    8 committed MiB: every chunk it sees within the size it sees is the old or
    the new one (here: the one written), never zeros or a mix."""
    py = need("python3")
    prog = r"""
import os, subprocess, sys
path, mib = sys.argv[1], int(sys.argv[2])
def blk(i):
    return (b"blk%09d" % i) * 341 + b"...."
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
for m in range(8):
    os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
os.fsync(fd)
reader = subprocess.Popen([sys.executable, "-c", '''
import os, sys
def blk(i):
    return (b"blk%09d" % i) * 341 + b"...."
path, mib = sys.argv[1], int(sys.argv[2])
bad = passes = 0
while True:
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    for off in range(0, size, 1 << 20):
        b = os.pread(fd, min(1 << 20, size - off), off)
        for k in range(0, len(b) - 4095, 4096):
            bad += b[k:k + 4096] != blk((off + k) // 4096)
    os.close(fd)
    passes += 1
    if size >= mib << 20:
        break
print(passes, bad)
''', path, str(mib)], stdout=subprocess.PIPE, text=True)
for m in range(8, mib):
    os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
os.fsync(fd)
out = reader.communicate()[0]
print(reader.returncode, out)
"""
    mib = 48
    p = volume.run(py, "-c", prog, volume.dir / "f", mib, env=ENV, check=True, timeout=600)
    rc, passes, bad = map(int, p.stdout.split())
    assert rc == 0 and passes >= 1 and bad == 0, (p.stdout, p.stderr)
    assert sealed(volume) >= (mib - 8) * 256
    cat = fs(volume, "cat", "f")
    assert cat.returncode == 0 and cat.stdout == stream(0, mib * 256)
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None


def test_inherited_fd_writes_the_usual_way(volume):
    """A forked child writing through the fd its parent opened (ATTACH: the
    server cannot tell it was opened for writing) is refused the hand-over and
    writes through the memfd; the parent's own writes are sealed."""
    py = need("python3")
    prog = r"""
import os, sys
def blk(i):
    return (b"blk%09d" % i) * 341 + b"...."
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
pid = os.fork()
if pid == 0:
    for m in range(8):
        os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
    os._exit(0)
os.waitpid(pid, 0)
os.lseek(fd, 0, os.SEEK_END)
for m in range(8, 12):
    os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
os.fsync(fd)
"""
    volume.run(py, "-c", prog, volume.dir / "f", env=ENV, check=True)
    assert sealed(volume) == 4 * 256
    cat = fs(volume, "cat", "f")
    assert cat.returncode == 0 and cat.stdout == stream(0, 12 * 256)


# Writes 1 MiB blocks of the test stream from block argv[2] on, fsyncs every
# 4 MiB and reports it ("synced N": N MiB durable), forever.
WRITER = r"""
import os, sys
def blk(i):
    return (b"blk%09d" % i) * 341 + b"...."
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
m = os.lseek(fd, 0, os.SEEK_END) >> 20
print("pid", os.getpid(), flush=True)
while m < 100000:
    os.write(fd, b"".join(blk(i) for i in range(m * 256, m * 256 + 256)))
    m += 1
    if m % 4 == 0:
        os.fsync(fd)
        print("synced", m, flush=True)
"""


def kill_trial(volume, rng, server_too):
    """One writer run killed with SIGKILL at a random moment after its first
    fsync (and its volume server with it when server_too). Returns the MiB
    acknowledged durable."""
    proc = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             "--", sys.executable, "-c", WRITER, str(volume.dir / "f")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, **ENV))
    os.set_blocking(proc.stdout.fileno(), False)
    buf, deadline, started = b"", None, time.monotonic()
    while proc.poll() is None and time.monotonic() - started < 120:
        try:
            buf += proc.stdout.read() or b""
        except BlockingIOError:
            pass
        if deadline is None and b"synced" in buf:
            deadline = time.monotonic() + rng.uniform(0.0, 0.4)
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    srv = kilnenv.server_pid(volume.dir)
    if server_too and srv:
        os.kill(srv, signal.SIGKILL)
    pid = [int(ln.split()[1]) for ln in buf.decode().splitlines() if ln.startswith("pid ")]
    if server_too:
        os.killpg(proc.pid, signal.SIGKILL)
    elif pid:
        os.kill(pid[0], signal.SIGKILL)
    buf, err = kilnenv.finish_killed(proc, buf, srv)
    # The server dies first (so that it commits nothing after the writer's
    # last fsync): a write in between fails with EIO, as for any program whose
    # volume server is gone (the kill may cut its traceback short, after
    # "OSError"). Nothing else may go wrong.
    tb = err[err.find("Traceback"):] if "Traceback" in err else ""
    last = tb.rstrip().splitlines()[-1] if tb.strip() else ""
    assert not tb or (server_too and last.startswith("OSError") and
                      "OSError: [Errno 5] Input/output error".startswith(last)), err
    synced = [int(ln.split()[1]) for ln in buf.decode().splitlines() if ln.startswith("synced")]
    assert synced, f"nothing acknowledged: {err[-2000:]}"
    return synced[-1]


def check_prefix(volume, at_least, fsynced=False):
    """The file is a prefix of the test stream of whole chunks, at least
    at_least MiB (with fsynced: a state an fsync made, a multiple of 4 MiB),
    it reopens (recovered by a read-write open), the volume verifies and the
    backing file holds nothing past its last slot."""
    volume.run("cat", volume.dir / "f", check=True)
    volume.wait_server_gone(30)
    assert verify_volume(volume.kiln_bin, volume.dir, volume.key) is None
    cat = fs(volume, "cat", "f")
    assert cat.returncode == 0, cat.stderr
    data = cat.stdout
    n = len(data) // CHUNK
    assert len(data) % CHUNK == 0 and len(data) >= at_least << 20, (len(data), at_least)
    if fsynced:
        assert len(data) % (4 << 20) == 0, len(data)
    assert data == stream(0, n), "a chunk is not what was written"
    backing = max(volume.backing_files(), key=lambda q: q.stat().st_size)
    assert backing.stat().st_size == HDR + n * SLOT, (backing.stat().st_size, n)
    return n


def test_kill9_of_writer_and_server_leaves_the_last_fsync(volume):
    """The server dies too (a crash): the file reopens as its last fsync,
    whatever the writer had written past it (slots, or a reservation) cut."""
    rng = random.Random(7)
    durable = kill_trial(volume, rng, server_too=True)
    # The next open recovers (journal header durable: debris cut).
    check_prefix(volume, durable, fsynced=True)
    durable = kill_trial(volume, rng, server_too=True)
    check_prefix(volume, durable, fsynced=True)


def test_kill9_of_the_writer_alone(volume):
    """The writer dies mid-window: its reservation is cancelled (what it wrote
    past the end is cut), the server commits what was recorded: a prefix."""
    rng = random.Random(11)
    durable = kill_trial(volume, rng, server_too=False)
    check_prefix(volume, durable)
    # And the file goes on: a second run appends the rest.
    durable = kill_trial(volume, rng, server_too=False)
    check_prefix(volume, durable)


@pytest.mark.parametrize("trials", [pytest.param(200, marks=pytest.mark.stress), 3])
def test_kill9_trials_of_a_large_writer(volume, trials):
    """make stress: trials of kill -9 of a writer of 1 MiB blocks (with its
    server in every other one): never a torn or foreign chunk, never less than
    the last fsync, nothing past the last slot, the volume verifies."""
    rng = random.Random(int(os.environ.get("KILN_SEED", "4321")))
    sealed_total = 0
    for t in range(trials):
        server_too = t % 2 == 0
        durable = kill_trial(volume, rng, server_too)
        if not server_too:  # its server logged its counters at its exit
            sealed_total += sealed(volume)
        check_prefix(volume, durable, fsynced=server_too)
        # Keep the file small: start again from nothing now and then.
        if t % 10 == 9:
            p = volume.run("rm", "-f", volume.dir / "f")
            assert p.returncode == 0, p.stderr
    assert trials < 2 or sealed_total > 0
