"""Since the sixteenth session a one-file commit's tag sidecars (`<id>.t`,
`<id>.h`, docs/fs.md "Tag sidecars") are written at the checkpoint, not per
log record. So a crash between a record and its checkpoint leaves sidecars
that are older than the committed state, and they are consistent with the
older slots and with the last checkpoint's root in `.kiln/meta`: a pair the
host can keep or put back. They are hints; the root the log's records give
decides.

The image is a real crash: a 6 MiB file (two blocks of tags) is written and
checkpointed by one `kiln run`; a second one overwrites chunk 0 (the first
commit of its generation: a journal commit, sidecars written) and then two
chunks of the second block, each with an fsync (data records), and its
volume server is killed (no checkpoint). The host then puts back the first
run's slots of those two chunks in place (as a power cut that lost the
records' unsynced in-place writes would). Every way in — `kiln fs cat`, `kiln fs verify`, `kiln run` — reads
the committed content, never the old one, and a clean run afterwards leaves
sidecars that are no longer the old ones."""
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from kilnenv import BUILD, crash_running, log_records, wait_server_gone

KILN = str(BUILD / "kiln")
LOG_DATA = 4  # a log record's header flag: it carries its files' new slots
CS = 4096
SIZE = 6 << 20
SECOND = 1030  # a chunk of the second block of tags (1024 chunks per block)
HDR, SLOT = 64, CS + 28  # the backing file's header; a slot: nonce, tag, data

WRITE = r"""
import os, sys
fd = os.open(os.path.join(sys.argv[1], "f"), os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, bytes(range(256)) * (%d // 256))
os.fsync(fd)
os.close(fd)
""" % SIZE

OVERWRITE = r"""
import os, sys
fd = os.open(os.path.join(sys.argv[1], "f"), os.O_RDWR)
os.pwrite(fd, b"N" * %d, 0)
os.fsync(fd)
os.pwrite(fd, b"M" * %d, %d)
os.fsync(fd)
os.pwrite(fd, b"L" * %d, %d)
os.fsync(fd)
print("ready", flush=True)
sys.stdin.readline()
""" % (CS, CS, SECOND * CS, CS, (SECOND + 1) * CS)


def expected():
    data = bytearray(bytes(range(256)) * (SIZE // 256))
    data[0:CS] = b"N" * CS
    data[SECOND * CS:(SECOND + 1) * CS] = b"M" * CS
    data[(SECOND + 1) * CS:(SECOND + 2) * CS] = b"L" * CS
    return bytes(data)


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, timeout=120, **kw)


def backing(vol):
    (b,) = [p for p in (vol / ".kiln").iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)]
    return b


def side(b, ext):
    return b.with_name(b.name + ext)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A crash image dir (vol, vol.key, vol.key.version) and the first run's
    copies of the backing file and its sidecars (old, old.t, old.h)."""
    d = tmp_path_factory.mktemp("sidecar")
    vol, key = d / "vol", d / "vol.key"
    p = run([KILN, "fs", "init", vol, "--key-file", key])
    assert p.returncode == 0, p.stderr
    (d / "write.py").write_text(WRITE)
    p = run([KILN, "run", "--volume", f"{vol}={key}", "--", sys.executable, d / "write.py", vol])
    assert p.returncode == 0, p.stderr
    wait_server_gone(vol)
    b = backing(vol)
    for ext in ("", ".t", ".h"):
        shutil.copy(side(b, ext), d / ("old" + ext))
    (d / "over.py").write_text(OVERWRITE)
    proc = subprocess.Popen([KILN, "run", "--volume", f"{vol}={key}", "--", sys.executable,
                             str(d / "over.py"), str(vol)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    crash_running(vol, key, proc, d)
    return d


def slots(b, first, n=2):
    with open(b, "rb") as f:
        f.seek(HDR + first * SLOT)
        return f.read(n * SLOT)


def attacked_copy(tmp_path, image):
    """The crash image with the first run's slots of the records' chunks put
    back in place, beside the old sidecars the crash left."""
    img = tmp_path / "img"
    shutil.copytree(image / "img", img, symlinks=True)
    with open(backing(img / "vol"), "r+b") as f:
        f.seek(HDR + SECOND * SLOT)
        f.write(slots(image / "old", SECOND))
    return img


def test_crash_leaves_old_sidecars(image):
    """What the attacks below build on: the crash left the first run's
    sidecars beside records of newer content (else this file tests nothing)."""
    vol = image / "img" / "vol"
    b = backing(vol)
    old_t = (image / "old.t").read_bytes()
    t = side(b, ".t").read_bytes()
    assert t[SECOND * 16:(SECOND + 2) * 16] == old_t[SECOND * 16:(SECOND + 2) * 16]
    assert t[:16] != old_t[:16]  # chunk 0's journal commit wrote its block
    # the records' slots went in place, and the records are in the log
    assert slots(b, SECOND) != slots(image / "old", SECOND)
    recs = [r for r in log_records((vol / ".kiln" / "log").read_bytes()) if r[3] & LOG_DATA]
    assert len(recs) == 2, recs


def test_old_slots_and_sidecars_read_as_committed(image, tmp_path):
    img = attacked_copy(tmp_path, image)
    vol, key = img / "vol", img / "vol.key"
    want = hashlib.sha256(expected()).hexdigest()
    c = run([KILN, "fs", "cat", vol, "f", "--key-file", key])
    assert c.returncode == 0, c.stderr
    assert hashlib.sha256(c.stdout).hexdigest() == want
    v = run([KILN, "fs", "verify", vol, "--key-file", key])
    assert v.returncode == 0, v.stdout + v.stderr
    r = run([KILN, "run", "--volume", f"{vol}={key}", "--", "/usr/bin/sha256sum", vol / "f"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].decode() == want
    wait_server_gone(vol)
    # The run's checkpoint rewrote the sidecars of both changed blocks.
    b = backing(vol)
    t = side(b, ".t").read_bytes()
    old_t = (image / "old.t").read_bytes()
    for c in (SECOND, SECOND + 1):
        assert t[c * 16:(c + 1) * 16] != old_t[c * 16:(c + 1) * 16], c
    c = run([KILN, "fs", "cat", vol, "f", "--key-file", key])
    assert c.returncode == 0 and hashlib.sha256(c.stdout).hexdigest() == want


def test_dropped_log_with_old_slots_and_sidecars_is_a_rollback(image, tmp_path):
    """Without the records, the old slots, sidecars and meta agree with each
    other: only the trusted version tells, and it refuses."""
    img = attacked_copy(tmp_path, image)
    vol, key = img / "vol", img / "vol.key"
    os.truncate(vol / ".kiln" / "log", 0)
    for argv in ([KILN, "fs", "cat", vol, "f", "--key-file", key],
                 [KILN, "fs", "verify", vol, "--key-file", key],
                 [KILN, "run", "--volume", f"{vol}={key}", "--", "/bin/cat", vol / "f"]):
        p = run(argv)
        assert p.returncode != 0, argv
        assert b"rolled back" in p.stderr, (argv, p.stderr)
        assert not p.stdout.startswith(bytes(range(16))), argv
