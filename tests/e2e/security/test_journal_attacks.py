"""The host owns the disk under a volume, so it owns the journals (`<id>.j`,
`<id>.k`, format 3: docs/fs.md "Journals"). It can hand kiln a crash image it
made up: a live journal copied from a running program, a journal with a byte
flipped, an older generation's journal, garbage.

The crash image here is a real one: a program under `kiln run` overwrites
two chunks of a file and fsyncs (the commit point has passed, the new slots
are in the journal as redo entries and placed in the backing file without a
sync); while it waits, the store is copied. The image puts that copy's
metadata, version and journals beside the backing file from *before* the
write: a power cut that lost the in-place writes. Then:

- intact: `kiln run` and `kiln fs cat` recover (the redo entries) and read
  the new content;
- a byte flipped anywhere in the live journal: never wrong bytes; the chunks
  the journal held fail their read with EIO and a line naming the file and
  the chunk, the chunks before them read; `kiln fs verify` reports the file
  damaged, exit 1;
- an older generation's journal, or garbage, planted over the live one: the
  same, never the old or mixed content;
- a live journal planted over a volume at rest whose slots are in place (the
  copy's data file): the content is the committed one.
"""
import glob
import os
import shutil
import subprocess

import pytest

from kilnenv import BUILD, wait_server_gone

KILN = str(BUILD / "kiln")
PY = "/usr/bin/python3"
CHUNK = 4096
SIZE = 300_000
# Chunks 10 and 11 are overwritten (5,000 bytes at 10 * 4096).
WRITE_AT, WRITE_LEN = 10 * CHUNK, 5000
WRITER = r"""
import os, sys
f = open(sys.argv[1], "r+b")
f.seek(int(sys.argv[2])); f.write(b"N" * int(sys.argv[3])); f.flush()
os.fsync(f.fileno())
print("ready", flush=True)
sys.stdin.readline()
f.close()
"""
READER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
out = bytearray()
while True:
    try:
        b = os.read(fd, 4096)
    except OSError as e:
        print("EIO" if e.errno == 5 else "err %d" % e.errno, len(out), flush=True)
        break
    if not b:
        print("EOF", len(out), flush=True)
        break
    out += b
open(sys.argv[2], "wb").write(out)
"""


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(old, new, pre, live): the file's old and new plaintext, the store
    before the write, the store and version copied at the commit point."""
    d = tmp_path_factory.mktemp("jattack")
    vol, key = d / "vol", d / "vol.key"
    old = os.urandom(SIZE)
    (d / "src").write_bytes(old)
    assert run([KILN, "fs", "init", str(vol), "--key-file", str(key)]).returncode == 0
    assert run([KILN, "fs", "put", str(vol), "/big", "--from", str(d / "src"),
                "--key-file", str(key)]).returncode == 0
    pre = d / "pre"
    shutil.copytree(vol / ".kiln", pre / ".kiln")
    shutil.copy(f"{key}.version", pre / "version")
    p = subprocess.Popen([KILN, "run", "--volume", f"{vol}={key}", "--", PY, "-c", WRITER,
                          str(vol / "big"), str(WRITE_AT), str(WRITE_LEN)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        live = d / "live"
        shutil.copytree(vol / ".kiln", live / ".kiln",
                        ignore=shutil.ignore_patterns("server", "server.log"))
        shutil.copy(f"{key}.version", live / "version")
    finally:
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(timeout=60)
    wait_server_gone(vol)
    new = bytearray(old)
    new[WRITE_AT:WRITE_AT + WRITE_LEN] = b"N" * WRITE_LEN
    data = [n for n in os.listdir(live / ".kiln") if len(n) == 32]
    assert len(data) == 1, os.listdir(live / ".kiln")
    journals = sorted(glob.glob(str(live / ".kiln" / "*.[jk]")))
    magic = {j: open(j, "rb").read(8) for j in journals}
    livej = [j for j, m in magic.items() if m == b"KILNPFJ3"]
    assert livej, magic  # the copy holds the generation's live journal
    return dict(dir=d, key=key, old=old, new=bytes(new), pre=pre, live=live,
                data=data[0], livej=[os.path.basename(j) for j in livej])


def crash_image(im, tmp, keep_data=False, journal_edit=None):
    """A volume in tmp/vol: the live copy's store and version with the
    backing file from before the write (unless keep_data)."""
    vol = tmp / "vol"
    shutil.rmtree(vol, ignore_errors=True)
    shutil.copytree(im["live"] / ".kiln", vol / ".kiln")
    if not keep_data:
        shutil.copy(im["pre"] / ".kiln" / im["data"], vol / ".kiln" / im["data"])
    key = tmp / "vol.key"
    shutil.copy(im["key"], key)
    shutil.copy(im["live"] / "version", f"{key}.version")
    if journal_edit:
        for j in im["livej"]:
            path = vol / ".kiln" / j
            path.write_bytes(journal_edit(path.read_bytes(), j))
    return vol, key


def read_under_run(vol, key, tmp):
    out = tmp / "out.bin"
    p = run([KILN, "run", "--volume", f"{vol}={key}", "--", PY, "-c", READER,
             str(vol / "big"), str(out)], text=True)
    status = p.stdout.strip().split()
    return p, status, out.read_bytes() if out.exists() else b""


def test_intact_live_journal_is_recovered(images, tmp_path):
    vol, key = crash_image(images, tmp_path)
    p, status, got = read_under_run(vol, key, tmp_path)
    assert status == ["EOF", str(SIZE)], (status, p.stderr)
    assert got == images["new"]
    assert run([KILN, "fs", "verify", str(vol), "--key-file", str(key)]).returncode == 0
    # kiln fs recovers the same image the same way
    vol, key = crash_image(images, tmp_path)
    c = run([KILN, "fs", "cat", str(vol), "/big", "--key-file", str(key)])
    assert c.returncode == 0 and c.stdout == images["new"], c.stderr


def flip(at):
    def edit(b, _name):
        b = bytearray(b)
        b[at(len(b))] ^= 0x01
        return bytes(b)
    return edit


@pytest.mark.parametrize("where", [
    "header", "first-entry", "redo-entry", "end-record", "garbage", "older", "truncated"])
def test_hostile_journal_never_gives_wrong_bytes(images, tmp_path, where):
    older = {j: (images["pre"] / ".kiln" / j) for j in images["livej"]}
    edits = {
        "header": flip(lambda n: 20),
        "first-entry": flip(lambda n: 72 + 100),
        # redo entries follow the two undo entries: ~4.1 KiB each
        "redo-entry": flip(lambda n: n - 76 - 2000),
        "end-record": flip(lambda n: n - 40),
        "garbage": lambda b, _n: b"KILNPFJ3" + os.urandom(len(b) - 8),
        # the journal this file had before the write (spent, or another generation's)
        "older": lambda b, n: older[n].read_bytes() if older[n].exists() else b"",
        "truncated": lambda b, _n: b[:len(b) - 100],
    }
    vol, key = crash_image(images, tmp_path, journal_edit=edits[where])
    p, status, got = read_under_run(vol, key, tmp_path)
    new = images["new"]
    if status == ["EOF", str(SIZE)]:
        # Only a journal kiln can still trust may be applied: then it is the new content.
        assert got == new, f"{where}: read {len(got)} bytes that are not the committed content"
        return
    # Otherwise the chunks the journal held fail, loudly, and nothing read is wrong.
    assert status[0] == "EIO", (where, status, p.stderr)
    n = int(status[1])
    assert n <= WRITE_AT and got == new[:n], (where, n)
    assert "corrupt" in p.stderr or "authentication" in p.stderr, p.stderr
    v = run([KILN, "fs", "verify", str(vol), "--key-file", str(key)], text=True)
    assert v.returncode != 0 and "damaged" in v.stdout + v.stderr, (v.stdout, v.stderr)


def test_live_journal_over_data_in_place(images, tmp_path):
    """No crash: the slots are in place (the copy's own data file), the
    journal is live. kiln fs and kiln run give the new content."""
    vol, key = crash_image(images, tmp_path, keep_data=True)
    c = run([KILN, "fs", "cat", str(vol), "/big", "--key-file", str(key)])
    assert c.returncode == 0 and c.stdout == images["new"], c.stderr
    vol, key = crash_image(images, tmp_path, keep_data=True)
    p, status, got = read_under_run(vol, key, tmp_path)
    assert status == ["EOF", str(SIZE)] and got == images["new"], (status, p.stderr)
