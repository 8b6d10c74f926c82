"""A tampered chunk fails only the reads that touch it (issue 10): flip one byte of
chunk N of a large protected file on disk; a new process reads every chunk before N,
the read of chunk N fails with EIO (every time) and one log line names the file and
the chunk; the chunks after N read too."""
import subprocess

from kilnapps import SECRET, need

CHUNK = 4096
NCHUNKS = 96
BAD = 40
SLOT = 12 + 16 + CHUNK  # nonce, tag, data (docs/fs.md)

WRITE = f"""
import sys
with open(sys.argv[1], "wb") as f:
    for i in range({NCHUNKS}):
        f.write((("{SECRET}-%05d-" % i) * 200).encode()[:{CHUNK}])
"""

READ = f"""
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in list(range({NCHUNKS})) + [{BAD}, {BAD}]:
    try:
        data = os.pread(fd, {CHUNK}, i * {CHUNK})
        ok = data == (("{SECRET}-%05d-" % i) * 200).encode()[:{CHUNK}]
        print(i, "ok" if ok else "WRONG")
    except OSError as e:
        print(i, errno.errorcode[e.errno])
"""


def test_tampered_chunk_fails_only_its_reads(volume):
    py = need("python3")
    path = volume.dir / "big.bin"
    volume.run(py, "-c", WRITE, path, check=True)
    # The file's backing file: the largest one.
    backing = max(volume.backing_files(), key=lambda p: p.stat().st_size)
    data = bytearray(backing.read_bytes())
    data[64 + BAD * SLOT + 12 + 16 + 100] ^= 0x01
    backing.write_bytes(bytes(data))

    p = volume.run(py, "-c", READ, path)
    assert p.returncode == 0, p.stderr
    results = dict()
    lines = p.stdout.split("\n")
    for line in lines[:NCHUNKS]:
        i, what = line.split()
        results[int(i)] = what
    assert all(results[i] == "ok" for i in range(NCHUNKS) if i != BAD), p.stdout
    assert results[BAD] == "EIO"
    assert lines[NCHUNKS:NCHUNKS + 2] == [f"{BAD} EIO", f"{BAD} EIO"]
    # One line for the three failed reads, naming file and chunk.
    logged = [line for line in p.stderr.splitlines() if f"chunk {BAD}" in line]
    assert len(logged) == 1 and "big.bin" in logged[0], p.stderr
    assert "corrupt" in logged[0]
    # Nothing else is affected: another process reads another file fine.
    volume.run(py, "-c", "import sys; open(sys.argv[1], 'w').write('fine')",
               volume.dir / "other", check=True)
    assert volume.run("cat", volume.dir / "other", check=True).stdout == "fine"
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode != 0 and "big.bin" in v.stdout + v.stderr


SHRINK = f"""
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.ftruncate(fd, {CHUNK} + 904)  # mid chunk 1: the server fills it first
try:
    os.pread(fd, 10, 0)
    print("0 ok")
except OSError as e:
    print(0, errno.errorcode[e.errno])
data = os.pread(fd, 904, {CHUNK})
print(1, "ok" if data == (("{SECRET}-%05d-" % 1) * 200).encode()[:904] else "WRONG")
"""


def test_tampered_chunk_after_shrink_keeps_the_server(volume):
    """A truncation plans a read-ahead past the new end (its fill of the new
    last chunk); a fill that then fails (a corrupt chunk) must not run that
    stale plan over chunks pf no longer stores: the read fails with EIO, the
    server lives on and the same fd reads chunk 1."""
    py = need("python3")
    path = volume.dir / "big.bin"
    volume.run(py, "-c", WRITE, path, check=True)
    backing = max(volume.backing_files(), key=lambda p: p.stat().st_size)
    data = bytearray(backing.read_bytes())
    data[64 + 0 * SLOT + 12 + 16 + 100] ^= 0x01
    backing.write_bytes(bytes(data))

    p = volume.run(py, "-c", SHRINK, path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["0 EIO", "1 ok"], (p.stdout, p.stderr)
