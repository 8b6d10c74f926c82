"""Cold reads decrypted in the program's process (issue 10, docs/fs.md "Cold reads
in the program's process"): a large read of chunks nobody holds, from a backing
file not in the page cache, reads and opens the slots itself with the tags the
volume server hands out (KILN_SHIELD_STATS=1: "N streams of M chunks" in
.kiln/server.log) instead of asking for fills. The result is the plaintext, also
while another process writes the file; a tampered chunk fails the read that
touches it with EIO (the server's fill decides and logs), the others read."""
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from kilnapps import need

MIB = 48
CHUNK = 4096
SLOT = 12 + 16 + CHUNK  # nonce, tag, data (docs/fs.md)

WRITE = r"""
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2]) * 256):
        f.write((b"orig%08d" % i) * 341 + b"....")
    f.flush()
    os.fsync(f.fileno())
"""

# Reads the file in 1 MiB reads: the digest, and per read "ok" or the errno name.
READ = r"""
import errno, hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h = hashlib.sha256()
res = []
off = 0
size = os.fstat(fd).st_size
while off < size:
    try:
        b = os.pread(fd, 1 << 20, off)
        h.update(b)
        res.append("ok")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
    off += 1 << 20
print(h.hexdigest(), " ".join(res))
"""

# One writer (chunks 7, 7 + 64, ... rewritten, fsync now and then) and one
# reader in another process: every chunk the reader sees is the old or the
# new version of that chunk, never anything else.
BOTH = r"""
import os, subprocess, sys
path, mib = sys.argv[1], int(sys.argv[2])
writer = subprocess.Popen([sys.executable, "-c", '''
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for rnd in range(3):
    for i in range(7, int(sys.argv[2]) * 256, 64):
        os.pwrite(fd, (b"new%d%08d" % (rnd, i)) * 341 + b"....", i * 4096)
    os.fsync(fd)
''', path, str(mib)])
bad = 0
passes = 0
while True:
    done = writer.poll() is not None
    fd = os.open(path, os.O_RDONLY)
    off = 0
    while off < mib << 20:
        b = os.pread(fd, 1 << 20, off)
        for k in range(0, len(b), 4096):
            i = (off + k) // 4096
            c = b[k:k + 4096]
            if c != (b"orig%08d" % i) * 341 + b"...." and not any(
                    c == (b"new%d%08d" % (r, i)) * 341 + b"...." for r in range(3)):
                bad += 1
        off += 1 << 20
    os.close(fd)
    passes += 1
    if done:
        break
print(writer.returncode, passes, bad)
"""


def drop_cache(volume):
    """The backing files leave the page cache (clean pages: no root needed)."""
    for p in volume.backing_files():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def counters(volume):
    lines = (volume.dir / ".kiln" / "server.log").read_text().splitlines()
    line = [ln for ln in lines if "plaintext peak" in ln][-1]
    fills = re.search(r"(\d+) fills of (\d+) chunks", line)
    streams = re.search(r"(\d+) streams of (\d+) chunks", line)
    assert streams, line
    return int(fills.group(2)), int(streams.group(2))


def expected(mib):
    h = hashlib.sha256()
    for i in range(mib * 256):
        h.update((b"orig%08d" % i) * 341 + b"....")
    return h.hexdigest()


ENV = {"KILN_SHIELD_STATS": "1", "KILN_FILE_CACHE": "64:16"}


def cold_file(volume, mib, tamper=None):
    """big.bin of mib MiB (chunk i: "orig%08d" % i), chunk tamper's data
    altered on disk, out of the page cache; (python3, its path)."""
    py = need("python3")
    path = volume.dir / "big.bin"
    volume.run(py, "-c", WRITE, path, mib, env=ENV, check=True)
    volume.wait_server_gone(10)
    if tamper is not None:
        backing = max(volume.backing_files(), key=lambda p: p.stat().st_size)
        with open(backing, "r+b") as f:
            f.seek(64 + tamper * SLOT + 12 + 16 + 100)
            b = f.read(1)
            f.seek(64 + tamper * SLOT + 12 + 16 + 100)
            f.write(bytes([b[0] ^ 1]))
    drop_cache(volume)
    return py, path


def test_cold_read_decrypted_by_the_program(volume):
    py, path = cold_file(volume, MIB)
    p = volume.run(py, "-c", READ, path, env=ENV, check=True)
    digest, res = p.stdout.split(" ", 1)
    assert digest == expected(MIB) and set(res.split()) == {"ok"}, p.stdout
    assert [ln for ln in p.stderr.splitlines() if "development mode" not in ln] == [], p.stderr
    volume.wait_server_gone(10)
    fills, streamed = counters(volume)
    # Nearly every chunk was opened by the reader; the server filled only the
    # tail it holds at the open (and nothing else).
    assert streamed >= MIB * 256 - 256, (fills, streamed)
    assert fills <= 64, (fills, streamed)


def test_cold_read_with_a_concurrent_writer(volume):
    py, path = cold_file(volume, MIB)
    p = volume.run(py, "-c", BOTH, path, MIB, env=ENV, check=True, timeout=600)
    rc, passes, bad = map(int, p.stdout.split())
    assert rc == 0 and passes >= 1 and bad == 0, (p.stdout, p.stderr)
    volume.wait_server_gone(10)
    _, streamed = counters(volume)
    assert streamed > 0
    # Afterwards, cold again: the rewritten chunks (their new slots and tags)
    # read as the last version, the others as before.
    drop_cache(volume)
    check = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
wrong = 0
for off in range(0, int(sys.argv[2]) << 20, 1 << 20):
    b = os.pread(fd, 1 << 20, off)
    for k in range(0, len(b), 4096):
        i = (off + k) // 4096
        want = (b"new2%08d" % i) if i % 64 == 7 else (b"orig%08d" % i)
        wrong += b[k:k + 4096] != want * 341 + b"...."
print(wrong)
"""
    p = volume.run(py, "-c", check, path, MIB, env=ENV, check=True)
    assert p.stdout.strip() == "0", p.stdout
    volume.wait_server_gone(10)
    _, streamed = counters(volume)
    assert streamed >= MIB * 256 // 2, streamed


def test_cold_read_of_a_tampered_chunk(volume):
    bad = 3 * 256 + 100  # in the fourth MiB
    py, path = cold_file(volume, 8, tamper=bad)
    p = volume.run(py, "-c", READ, path, env=ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1:] == ["ok"] * 3 + ["EIO"] + ["ok"] * 4, p.stdout
    logged = [ln for ln in p.stderr.splitlines() if f"chunk {bad}" in ln]
    assert len(logged) == 1 and "big.bin" in logged[0] and "corrupt" in logged[0], p.stderr
    volume.wait_server_gone(10)
    _, streamed = counters(volume)
    assert streamed >= 6 * 256, streamed


def test_cold_read_reads_ahead(volume, tmp_path):
    """The reader's slot batches go out with io_submit, the next three before
    it waits for the first (strace of the whole run: the volume server uses
    neither call): the disk reads ahead while the program decrypts. Every
    batch is one request (a 1 MiB read used to take two preads)."""
    if not shutil.which("strace"):
        pytest.fail("strace is needed (scripts/install-deps.sh installs it)")
    py, path = cold_file(volume, MIB)
    log = tmp_path / "trace"
    env = dict(os.environ, **ENV)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=io_submit,io_getevents",
                        volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}", "--",
                        py, "-c", READ, path], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    digest, res = p.stdout.split(" ", 1)
    assert digest == expected(MIB) and set(res.split()) == {"ok"}, p.stdout
    calls = re.findall(r"(io_submit|io_getevents)\(", log.read_text())
    assert calls[:4] == ["io_submit"] * 4, calls[:8]
    batches = MIB * 256 // ((4096 * 256) // SLOT)  # 254 slots a batch
    assert batches <= calls.count("io_submit") <= batches + 2, calls.count("io_submit")
