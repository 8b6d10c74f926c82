"""The host owns `.kiln/log`. Since the fourteenth session a small commit's
record carries the commit's new chunks (a *data record*, docs/fs.md "Data
records"): the record alone is the commit's durable copy until the next
checkpoint, and the replay writes its slots in place. So the host can try to
change a file's *contents* by editing the log: flip a byte of a slot inside a
record, cut a record short, swap two records, drop the last one.

The crash image is a real one: a program under `kiln run` writes a file and
fsyncs it, then overwrites its first 4 KiB three times, each with an fsync
(data records: the file's whole generation, a few chunks), and waits; its
volume server is killed (kill -9: no checkpoint, so the overwrites live in
the log's data records). Each attack starts from a copy of the image beside
the trusted version file as the crash left it, edits the log, and then
`kiln fs cat`, `kiln fs verify` and `kiln run` each exit non-zero naming the
rollback ("volume rolled back: found version X, expected Y"): never the
file's older or altered content.

The untouched image opens with the last overwrite, and its log holds data
records: the attacks exercise what they claim to.
"""
import subprocess

import pytest

from kilnenv import (BUILD, assert_rollback_refused, copy_image, crash_image, flip_log_byte,
                     log_records)

KILN = str(BUILD / "kiln")
HDR = 40  # magic[8] version u64 body_size u32 flags u32 iv[12] reserved u32
TAG = 16
LOG_DATA = 4  # header flag: the record carries its files' new slots

APP = r"""
import os, sys
p = os.path.join(sys.argv[1], "f")
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"a" * 8192)
os.fsync(fd)
for c in b"123":
    os.pwrite(fd, bytes([c]) * 4096, 0)
    os.fsync(fd)
print("ready", flush=True)
sys.stdin.readline()
"""
FINAL = b"3" * 4096 + b"a" * 4096


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, timeout=120, **kw)


records = log_records


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A crash image: a dir holding vol, vol.key and vol.key.version."""
    return crash_image(KILN, tmp_path_factory.mktemp("logdata"), APP)


def data_records(img):
    log = (img / "vol" / ".kiln" / "log").read_bytes()
    return log, [r for r in records(log) if r[3] & LOG_DATA]


def write_log(img, data):
    (img / "vol" / ".kiln" / "log").write_bytes(data)


def test_untouched_image_opens_with_data_records(image, tmp_path):
    img = copy_image(tmp_path, image)
    log, recs = data_records(img)
    assert len(recs) >= 2, records(log)
    c = run([KILN, "fs", "cat", img / "vol", "f", "--key-file", img / "vol.key"])
    assert c.returncode == 0, c.stderr
    assert c.stdout == FINAL
    v = run([KILN, "fs", "verify", img / "vol", "--key-file", img / "vol.key"])
    assert v.returncode == 0, v.stdout + v.stderr
    r = run([KILN, "run", "--volume", f"{img / 'vol'}={img / 'vol.key'}", "--", "/bin/cat",
             img / "vol" / "f"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == FINAL


@pytest.mark.parametrize("where", ["slot", "header", "tag"])
def test_altered_data_record_is_a_rollback(image, tmp_path, where):
    """A byte flipped in the last data record: inside a slot's ciphertext
    (the body's end), its header, or its GCM tag."""
    img = copy_image(tmp_path, image)
    log, recs = data_records(img)
    off, size, _, _ = recs[-1]
    at = {"slot": off + size - TAG - 100, "header": off + 9, "tag": off + size - 3}[where]
    flip_log_byte(img, at)
    assert_rollback_refused(img, "f")


def test_cut_data_record_is_a_rollback(image, tmp_path):
    """The last data record cut in half (zeros after it, as a torn write)."""
    img = copy_image(tmp_path, image)
    log, recs = data_records(img)
    off, size, _, _ = recs[-1]
    cut = off + size // 2
    write_log(img, log[:cut] + bytes(len(log) - cut))
    assert_rollback_refused(img, "f")


def test_dropped_data_record_is_a_rollback(image, tmp_path):
    """The last data record dropped: the file would read the one before."""
    img = copy_image(tmp_path, image)
    log, recs = data_records(img)
    off, size, _, _ = recs[-1]
    write_log(img, log[:off] + log[off + size:])
    assert_rollback_refused(img, "f")


def test_swapped_data_records_are_a_rollback(image, tmp_path):
    """The last two data records swapped."""
    img = copy_image(tmp_path, image)
    log, recs = data_records(img)
    a, b = recs[-2], recs[-1]
    assert a[0] + a[1] == b[0]
    swapped = log[:a[0]] + log[b[0]:b[0] + b[1]] + log[a[0]:a[0] + a[1]] + log[b[0] + b[1]:]
    assert len(swapped) == len(log)
    write_log(img, swapped)
    assert_rollback_refused(img, "f")
