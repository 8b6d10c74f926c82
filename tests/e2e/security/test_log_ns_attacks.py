"""The host owns `.kiln/log`, the volume's commit log (docs/fs.md "Commit
log"). Since the eleventh session its records also carry namespace entries:
the create and the unlink of a regular file are entries of a record, not a
rewrite of the whole metadata. So the host can now try to change the volume's
*names* by editing the log: drop the record that unlinked a file (the file
comes back), drop or reorder records in the middle, put back an older log
that still ends at a create, or alter a record's bytes.

The crash image here is a real one: a program under `kiln run` creates four
files and fsyncs each with its directory, unlinks one and fsyncs the
directory; then it and its volume server are killed (kill -9: no final
checkpoint, so the creates and the unlink live only in log records). A first
image is copied after the first two creates. Each attack starts from a copy
of the image beside the trusted version file as the crash left it (the host
cannot roll that back), edits the log, and then:

- `kiln fs ls` and `kiln fs verify` exit non-zero naming the rollback (the
  version the log reaches against the one the version file holds);
- `kiln run` refuses to start the program, with the same reason;
- never a listing with the unlinked file back or a created one missing.

The untouched image opens, shows b, c, d (not a), and its log holds
namespace records: the attacks exercise what they claim to.
"""
import subprocess

import pytest

from kilnenv import (BUILD, app_on_new_volume, copy_image, kill_server, log_records,
                     snapshot_volume)

KILN = str(BUILD / "kiln")
HDR = 40  # magic[8] version u64 body_size u32 flags u32 iv[12] reserved u32
TAG = 16
LOG_NS = 2  # header flag: the record carries namespace entries

APP = r"""
import os, sys
d = sys.argv[1]

def fsync_dir():
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)

def create(name):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, name.encode() * 100)
    os.fsync(fd)
    os.close(fd)
    fsync_dir()

create("a"); create("b")
print("first", flush=True)
sys.stdin.readline()
create("c"); create("d")
os.unlink(os.path.join(d, "a"))
fsync_dir()
print("second", flush=True)
sys.stdin.readline()
"""


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          **kw)


records = log_records


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(first, second): crash images after the first two creates and after
    all of it (each a dir holding vol, vol.key and vol.key.version)."""
    d = tmp_path_factory.mktemp("logns")
    vol, key, proc = app_on_new_volume(KILN, d, APP)
    first, second = d / "first", d / "second"
    first.mkdir()
    second.mkdir()
    try:
        assert proc.stdout.readline().strip() == "first", proc.stderr.read()
        snapshot_volume(vol, key, first)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "second", proc.stderr.read()
        kill_server(vol)
    finally:
        proc.kill()
        proc.wait()
    snapshot_volume(vol, key, second)
    return first, second


def listing(img):
    p = run([KILN, "fs", "ls", img / "vol", "--key-file", img / "vol.key"])
    names = sorted(line.split()[-1] for line in p.stdout.splitlines() if line.strip())
    return p, names if p.returncode == 0 else None


def assert_refused(img):
    """Every way in refuses, naming the rollback; nothing is listed."""
    key = img / "vol.key"
    p, names = listing(img)
    assert p.returncode != 0, f"tampered log accepted: {names}"
    assert "rolled back" in p.stderr or "rollback" in p.stderr, p.stderr
    v = run([KILN, "fs", "verify", img / "vol", "--key-file", key])
    assert v.returncode != 0, v.stdout
    assert "rolled back" in v.stdout + v.stderr or "rollback" in v.stdout + v.stderr, \
        v.stdout + v.stderr
    r = run([KILN, "run", "--volume", f"{img / 'vol'}={key}", "--", "/bin/ls", img / "vol"])
    assert r.returncode != 0, r.stdout
    assert "rolled back" in r.stderr or "rollback" in r.stderr, r.stderr
    assert r.stdout.strip() == ""


def ns_records(img):
    log = (img / "vol" / ".kiln" / "log").read_bytes()
    return log, records(log)


def test_untouched_image_opens_with_namespace_records(images, tmp_path):
    img = copy_image(tmp_path, images[1])
    log, recs = ns_records(img)
    assert sum(1 for r in recs if r[3] & LOG_NS) >= 3, recs
    p, names = listing(img)
    assert p.returncode == 0, p.stderr
    assert names == ["b", "c", "d"]
    v = run([KILN, "fs", "verify", img / "vol", "--key-file", img / "vol.key"])
    assert v.returncode == 0, v.stdout + v.stderr
    r = run([KILN, "run", "--volume", f"{img / 'vol'}={img / 'vol.key'}", "--", "/bin/cat",
             img / "vol" / "d"])
    assert r.returncode == 0 and r.stdout == "d" * 100, r.stderr


def test_dropped_unlink_record_is_a_rollback(images, tmp_path):
    """Cut the log before the record that unlinked a: it would come back."""
    img = copy_image(tmp_path, images[1])
    log, recs = ns_records(img)
    last = recs[-1]
    assert last[3] & LOG_NS
    (img / "vol" / ".kiln" / "log").write_bytes(log[:last[0]])
    assert_refused(img)


def test_dropped_middle_record_is_a_rollback(images, tmp_path):
    """Cut one record out of the middle (a create), keep the later ones."""
    img = copy_image(tmp_path, images[1])
    log, recs = ns_records(img)
    assert len(recs) >= 3
    mid = recs[len(recs) // 2]
    (img / "vol" / ".kiln" / "log").write_bytes(log[:mid[0]] + log[mid[0] + mid[1]:])
    assert_refused(img)


def test_reordered_records_are_a_rollback(images, tmp_path):
    """Swap the last two records (the unlink before the create of d)."""
    img = copy_image(tmp_path, images[1])
    log, recs = ns_records(img)
    a, b = recs[-2], recs[-1]
    swapped = log[:a[0]] + log[b[0]:b[0] + b[1]] + log[a[0]:a[0] + a[1]] + log[b[0] + b[1]:]
    assert len(swapped) == len(log)
    (img / "vol" / ".kiln" / "log").write_bytes(swapped)
    assert_refused(img)


def test_older_log_ending_at_a_create_is_a_rollback(images, tmp_path):
    """Put back the log of the first image (it ends with the create of b, a
    still there) under the second image's store and version."""
    img = copy_image(tmp_path, images[1])
    old = (images[0] / "vol" / ".kiln" / "log").read_bytes()
    recs = records(old)
    assert recs and recs[-1][3] & LOG_NS, recs
    (img / "vol" / ".kiln" / "log").write_bytes(old)
    assert_refused(img)


@pytest.mark.parametrize("where", ["header", "body", "tag"])
def test_altered_namespace_record_is_a_rollback(images, tmp_path, where):
    """A byte flipped in the last namespace record: it does not authenticate,
    so the log ends before it."""
    img = copy_image(tmp_path, images[1])
    log, recs = ns_records(img)
    off, size, _, flags = [r for r in recs if r[3] & LOG_NS][-1]
    at = {"header": off + 9, "body": off + HDR + 20, "tag": off + size - 3}[where]
    bad = bytearray(log)
    bad[at] ^= 0x40
    (img / "vol" / ".kiln" / "log").write_bytes(bytes(bad))
    assert_refused(img)
