"""The host owns `.kiln/log`. Since the fifteenth session a file created with
a small first content is committed as a *data record* (docs/fs.md "Data
records"): the record carries the namespace entry (name, key, file id,
backing file) and every chunk of the new file, and nothing else is synced —
not the new backing file, not its name. Until the next checkpoint the record
is the file's only durable copy, and the replay recreates the backing file
from it. So the host can try to change or drop a created file by editing the
log, or make it vanish by removing its backing file.

The crash image is a real one: a program under `kiln run` writes and fsyncs
"f" (the open's first commit: a checkpoint), creates "j" with 3000 bytes and
fsyncs it (a data record with the create), overwrites j's first 100 bytes and
fsyncs (a data record), and waits; its volume server is killed (kill -9: no
checkpoint). Edits of the create record (a byte of its namespace entry, of
its slot, of its tag) or dropping it make `kiln fs cat`, `kiln fs verify` and
`kiln run` each refuse with "volume rolled back: found version X, expected
Y". Removing j's backing file loses nothing: an open of the volume (`kiln fs
cat` and `kiln run` open it read-write) recreates it from the records and
reads j's last content.
"""
import subprocess

import pytest

from kilnenv import (BUILD, assert_rollback_refused, copy_image, crash_image, flip_log_byte,
                     log_records)

KILN = str(BUILD / "kiln")
TAG = 16
LOG_NS, LOG_DATA = 2, 4  # header flags: namespace entries, the files' slots

APP = r"""
import os, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, "f"), os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"a" * 8192)
os.fsync(fd)
j = os.open(os.path.join(d, "j"), os.O_RDWR | os.O_CREAT, 0o600)
os.write(j, b"j" * 3000)
os.fsync(j)
os.pwrite(j, b"2" * 100, 0)
os.fsync(j)
print("ready", flush=True)
sys.stdin.readline()
"""
J_FINAL = b"2" * 100 + b"j" * 2900


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A crash image: a dir holding vol, vol.key and vol.key.version."""
    return crash_image(KILN, tmp_path_factory.mktemp("logcreate"), APP)


def log_of(img):
    log = (img / "vol" / ".kiln" / "log").read_bytes()
    return log, log_records(log)


def create_record(recs):
    made = [r for r in recs if r[3] & LOG_NS and r[3] & LOG_DATA]
    assert len(made) == 1, recs
    return made[0]


def kiln(*argv):
    return subprocess.run([KILN] + [str(a) for a in argv], capture_output=True, timeout=120)


def cat_j(img):
    return kiln("fs", "cat", img / "vol", "j", "--key-file", img / "vol.key")


def run_cat_j(img):
    return kiln("run", "--volume", f"{img / 'vol'}={img / 'vol.key'}", "--", "/bin/cat",
                img / "vol" / "j")


def verify(img):
    return kiln("fs", "verify", img / "vol", "--key-file", img / "vol.key")


def write_log(img, data):
    (img / "vol" / ".kiln" / "log").write_bytes(data)


def test_untouched_image_has_the_create_record(image, tmp_path):
    img = copy_image(tmp_path, image)
    log, recs = log_of(img)
    off, size, _, _ = create_record(recs)
    assert recs[-1][0] > off and recs[-1][3] & LOG_DATA, recs
    c = cat_j(img)
    assert c.returncode == 0, c.stderr
    assert c.stdout == J_FINAL
    v = verify(img)
    assert v.returncode == 0, v.stdout + v.stderr
    r = run_cat_j(img)
    assert r.returncode == 0, r.stderr
    assert r.stdout == J_FINAL


@pytest.mark.parametrize("where", ["entry", "slot", "tag"])
def test_altered_create_record_is_a_rollback(image, tmp_path, where):
    """A byte flipped in the create record: in its namespace entry (the
    body's start), in the new file's slot (the body's end), in its tag."""
    img = copy_image(tmp_path, image)
    log, recs = log_of(img)
    off, size, _, _ = create_record(recs)
    at = {"entry": off + 40 + 30, "slot": off + size - TAG - 100, "tag": off + size - 3}[where]
    flip_log_byte(img, at)
    assert_rollback_refused(img, "j")


def test_dropped_create_record_is_a_rollback(image, tmp_path):
    """The create record cut out (the overwrite's record after it moves up)."""
    img = copy_image(tmp_path, image)
    log, recs = log_of(img)
    off, size, _, _ = create_record(recs)
    write_log(img, log[:off] + log[off + size:] + bytes(size))
    assert_rollback_refused(img, "j")


def test_removed_backing_file_is_recreated(image, tmp_path):
    """The host removes j's backing file (the smallest one: f's holds 8 KiB,
    j's 3000 bytes): the replay recreates it from the records (its header
    from the create entry, its chunks from the slots)."""
    img = copy_image(tmp_path, image)
    kdir = img / "vol" / ".kiln"
    backing = sorted((p for p in kdir.iterdir()
                      if len(p.name) == 32 and all(c in "0123456789abcdef" for c in p.name)),
                     key=lambda p: p.stat().st_size)
    assert len(backing) == 2, [p.name for p in kdir.iterdir()]
    backing[0].unlink()
    c = cat_j(img)
    assert c.returncode == 0, c.stderr
    assert c.stdout == J_FINAL
    assert backing[0].exists()
    r = run_cat_j(img)
    assert r.returncode == 0, r.stderr
    assert r.stdout == J_FINAL
    v = verify(img)
    assert v.returncode == 0, v.stdout + v.stderr
