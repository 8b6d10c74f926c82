"""Reads of a large protected file from two processes at once (issue 10): the
volume server fills one reader's chunks between the other's fills and
read-aheads (1 MiB pf reads of several batches), and a small cache
(KILN_FILE_CACHE=64:8) evicts behind both. One process reads the 64 MiB file
sequentially, the other at 1500 random offsets and lengths; every byte is
checked. A chunk tampered with in the middle (its data, or its tag in the
slot) fails only its reads (EIO), in both processes, and the log names the
file and the chunk. The guard for changes to the fill and read path (a cold
read pipeline was tried on it: docs/runtime.md, "Cold read on two threads")."""
import pytest

from kilnapps import need

CHUNK = 4096
NCHUNKS = 64 * 256  # 64 MiB
SLOT = 12 + 16 + CHUNK  # nonce, tag, data (docs/fs.md)
BAD = NCHUNKS // 2 + 3

WRITE = f"""
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(0, {NCHUNKS}, 256):
        f.write(b"".join((b"%08x" % c) * ({CHUNK} // 8) for c in range(i, i + 256)))
"""

# The parent reads in order (1 MiB reads), its child at random offsets; a read
# that fails is read again chunk by chunk, to name the chunks that fail.
READ = f"""
import errno, os, random, sys

def want(off, n):
    out = b"".join((b"%08x" % c) * ({CHUNK} // 8) for c in range(off // {CHUNK}, (off + n - 1) // {CHUNK} + 1))
    return out[off % {CHUNK}:off % {CHUNK} + n]

def check(fd, off, n, who, bad):
    try:
        data = os.pread(fd, n, off)
    except OSError as e:
        if e.errno != errno.EIO:
            raise
        for c in range(off // {CHUNK}, (off + n - 1) // {CHUNK} + 1):
            a, b = max(off, c * {CHUNK}), min(off + n, (c + 1) * {CHUNK})
            try:
                check_data(os.pread(fd, b - a, a), a, b - a, who)
            except OSError as e2:
                bad.add((c, errno.errorcode[e2.errno]))
        return
    check_data(data, off, n, who)

def check_data(data, off, n, who):
    if data != want(off, n):
        print(who, "WRONG", off, n, flush=True)
        sys.exit(1)

fd = os.open(sys.argv[1], os.O_RDONLY)
bad = set()
pid = os.fork()
if pid == 0:
    rnd = random.Random(10)
    for _ in range(1500):
        n = rnd.randrange(1, 256 * 1024)
        off = rnd.randrange(0, {NCHUNKS} * {CHUNK} - n)
        check(fd, off, n, "random", bad)
    for c in ({BAD} - 1, {BAD}, {BAD} + 1):
        check(fd, c * {CHUNK}, {CHUNK}, "random", bad)
    print("random", sorted(bad), flush=True)
    os._exit(0)
for off in range(0, {NCHUNKS} * {CHUNK}, 1 << 20):
    check(fd, off, 1 << 20, "seq", bad)
print("seq", sorted(bad), flush=True)
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
"""

ENV = {"KILN_FILE_CACHE": "64:8"}


def write_file(volume):
    py = need("python3")
    path = volume.dir / "big.bin"
    volume.run(py, "-c", WRITE, path, env=ENV, check=True, timeout=600)
    volume.wait_server_gone(10)
    return py, path


def results(p):
    return sorted(line for line in p.stdout.splitlines() if line)


def test_two_readers_every_byte(volume):
    py, path = write_file(volume)
    p = volume.run(py, "-c", READ, path, env=ENV, timeout=600)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert results(p) == ["random []", "seq []"], (p.stdout, p.stderr)


@pytest.mark.parametrize("where", ["data", "tag"])
def test_two_readers_tampered_chunk(volume, where):
    py, path = write_file(volume)
    backing = max(volume.backing_files(), key=lambda p: p.stat().st_size)
    with open(backing, "r+b") as f:
        at = 64 + BAD * SLOT + (12 + 16 + 100 if where == "data" else 12 + 3)
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 1]))
    p = volume.run(py, "-c", READ, path, env=ENV, timeout=600)
    assert p.returncode == 0, (p.stdout, p.stderr)
    # Both readers: only the tampered chunk fails, every other byte reads.
    assert results(p) == [f"random [({BAD}, 'EIO')]", f"seq [({BAD}, 'EIO')]"], (
        p.stdout, p.stderr)
    logged = [line for line in p.stderr.splitlines() if f"chunk {BAD}" in line]
    assert logged and all("big.bin" in line for line in logged), p.stderr
    assert len(logged) <= 2, p.stderr
