"""`kiln fs`: protected volumes end to end (real binary, real files, real FUSE)."""
import os
import pathlib
import tempfile
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from kilnenv import BUILD
from kilnviews import fuse_usable

HDR = 64
SLOT_META = 28
CS = 4096
STRIDE = CS + SLOT_META
SECRET = b"attack at dawn: the launch code is 0000"


def shm_tmp(tmp_path):
    """tmpfs when available: crash trials only need syscall ordering, not fsync."""
    if os.access("/dev/shm", os.W_OK):
        # Unique: several checkouts (and aborted runs) share /dev/shm.
        return pathlib.Path(tempfile.mkdtemp(prefix="kiln-test-", dir="/dev/shm"))
    return tmp_path


@pytest.fixture
def vol(tmp_path, kiln):
    """An initialized volume: (dir, keyfile, run) where run(cmd, ...) adds --key-file."""
    d = tmp_path / "vol"
    key = tmp_path / "key"
    p = kiln("fs", "init", d, "--key-file", key)
    assert p.returncode == 0, p.stderr
    assert "initialized volume" in p.stdout

    def run(cmd, *args, **kw):
        return kiln("fs", cmd, d, *args, "--key-file", key, **kw)

    return d, key, run


def backing_files(d):
    return sorted(p for p in (d / ".kiln").iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name))


def put(run, path, data):
    p = run("put", path, input=data)
    assert p.returncode == 0, p.stderr


def new_backing(d, before):
    after = backing_files(d)
    new = [p for p in after if p not in before]
    assert len(new) == 1
    return new[0]


def cat(run, path):
    """Binary stdout, text stderr."""
    p = run("cat", path, input=b"")
    p.stderr = p.stderr.decode(errors="replace")
    return p


def flip(path, off):
    data = bytearray(path.read_bytes())
    data[off] ^= 0x01
    path.write_bytes(bytes(data))


# ---- basics -------------------------------------------------------------------------------

def test_help_for_every_subcommand(kiln):
    for sub in ["init", "put", "cat", "ls", "rm", "verify", "rekey", "mount"]:
        p = kiln("fs", sub, "--help")
        assert p.returncode == 0, sub
        assert "Usage: kiln fs" in p.stdout
    assert kiln("fs", "--help").returncode == 0
    p = kiln("fs", "frob")
    assert p.returncode == 2 and "unknown command 'frob'" in p.stderr


def test_usage_errors(kiln, vol):
    d, key, run = vol
    p = kiln("fs", "ls", d, env={"KILN_KEY_FILE": ""})
    assert p.returncode == 1 and "--key-file" in p.stderr
    p = run("cat")
    assert p.returncode == 2 and "missing arguments" in p.stderr
    p = run("ls", "--bogus")
    assert p.returncode == 2 and "unknown option '--bogus'" in p.stderr
    # An option of another subcommand is named, not its value (said "option '6'").
    p = run("cat", "f", "--expect-version", "6")
    assert p.returncode == 2, p.stderr
    assert "option '--expect-version' does not apply to 'kiln fs cat'" in p.stderr, p.stderr
    p = run("ls", "-f")
    assert p.returncode == 2 and "option '-f' does not apply to 'kiln fs ls'" in p.stderr
    p = kiln("fs", "init", d / "x", "--key-file", key, "--region", "a=weird")
    assert p.returncode == 2 and "unknown kind 'weird'" in p.stderr


def test_round_trip_ls_rm_verify(vol, tmp_path, kiln):
    d, key, run = vol
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert len(key.read_bytes()) == 32
    big = os.urandom(3 * CS + 123)
    put(run, "docs/secret.txt", SECRET)
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    assert run("put", "big.bin", "--from", src).returncode == 0
    assert cat(run, "docs/secret.txt").stdout == SECRET
    assert cat(run, "big.bin").stdout == big
    # No plaintext and no plaintext names on disk.
    for f in (d / ".kiln").iterdir():
        raw = f.read_bytes()
        assert SECRET not in raw and b"secret.txt" not in raw and b"docs" not in raw
    p = run("ls", "-r")
    assert p.returncode == 0
    assert re.search(r"^d0755 +0 encrypted +docs/$", p.stdout, re.M)
    assert re.search(r"^-0644 +%d encrypted +big.bin$" % len(big), p.stdout, re.M)
    assert "docs/secret.txt" in p.stdout
    p = run("verify")
    assert p.returncode == 0, p.stderr
    assert "2 file(s) intact, 0 damaged" in p.stdout
    version = int(re.search(r"volume version: (\d+)", p.stdout).group(1))
    assert version >= 3
    assert run("verify", "--expect-version", str(version)).returncode == 0
    # The old flag still works, with a warning naming the new one.
    p = run("verify", "--tag", str(version))
    assert p.returncode == 0 and "--tag is deprecated; use --expect-version" in p.stderr
    assert run("rm", "big.bin").returncode == 0
    p = cat(run, "big.bin")
    assert p.returncode == 1 and "big.bin: no such file" in p.stderr
    assert len(backing_files(d)) == 1
    p = run("rm", "docs")
    assert p.returncode == 1 and "not empty" in p.stderr
    # Overwrite keeps working (journal path), and KILN_KEY_FILE works.
    put(run, "docs/secret.txt", b"v2")
    p = kiln("fs", "cat", d, "docs/secret.txt", env={"KILN_KEY_FILE": str(key)})
    assert p.returncode == 0 and p.stdout == "v2"


def test_rekey(vol, tmp_path, kiln):
    d, key, run = vol
    put(run, "a", SECRET)
    k2 = tmp_path / "k2"
    p = run("rekey", "--new-key-file", k2)
    assert p.returncode == 0, p.stderr
    p = kiln("fs", "cat", d, "a", "--key-file", k2)
    assert p.returncode == 0 and p.stdout == SECRET.decode()
    p = cat(run, "a")
    assert p.returncode == 1 and "wrong volume key" in p.stderr


def test_regions(kiln, tmp_path):
    d, key = tmp_path / "v", tmp_path / "k"
    p = kiln("fs", "init", d, "--key-file", key, "--chunk-size", "1024",
             "--region", "pub=plain", "--region", "pub/signed=authenticated")
    assert p.returncode == 0, p.stderr
    assert "chunk size 1024" in p.stdout

    def run(*a, **kw):
        return kiln("fs", *a, "--key-file", key, **kw)

    before = backing_files(d)
    assert run("put", d, "pub/signed/x", input=SECRET).returncode == 0
    signed = new_backing(d, before)
    assert run("put", d, "pub/open", input=b"hello plain").returncode == 0
    assert run("put", d, "hidden", input=SECRET + b"!").returncode == 0
    p = run("ls", d, "-r")
    assert re.search(r"authenticated +pub/signed/x", p.stdout)
    assert re.search(r"plain +pub/open", p.stdout)
    assert re.search(r"encrypted +hidden", p.stdout)
    raw = b"".join(f.read_bytes() for f in backing_files(d))
    assert SECRET in raw            # authenticated: readable on disk
    assert b"hello plain" in raw
    assert SECRET + b"!" not in raw  # encrypted
    data = bytearray(signed.read_bytes())
    i = data.index(SECRET)
    data[i] ^= 0x20
    signed.write_bytes(bytes(data))
    p = run("cat", d, "pub/signed/x")
    assert p.returncode == 1 and "pub/signed/x: chunk 0 is corrupt" in p.stderr


# ---- errors and tampering ------------------------------------------------------------------

def test_wrong_key_missing_metadata_not_a_volume(vol, tmp_path, kiln):
    d, key, run = vol
    put(run, "a", SECRET)
    bad = tmp_path / "bad"
    bad.write_bytes(os.urandom(32))
    p = kiln("fs", "cat", d, "a", "--key-file", bad, "--trust")
    assert p.returncode == 1 and "wrong volume key" in p.stderr
    p = kiln("fs", "ls", tmp_path, "--key-file", key)
    assert p.returncode == 1 and "not a kiln volume" in p.stderr
    p = kiln("fs", "ls", tmp_path / "nope", "--key-file", key)
    assert p.returncode == 1 and "no such directory" in p.stderr
    (d / ".kiln" / "meta").unlink()
    p = run("ls")
    assert p.returncode == 1 and "missing metadata" in p.stderr
    p = kiln("fs", "init", d, "--key-file", key)
    assert p.returncode == 0  # re-init of an empty shell is allowed


@pytest.mark.parametrize("where", ["magic", "file-id", "nonce", "tag", "ciphertext",
                                   "last-byte"])
def test_flip_byte_in_data_file(vol, where):
    d, key, run = vol
    put(run, "f", os.urandom(2 * CS + 100))
    b = backing_files(d)[0]
    off = {"magic": 0, "file-id": 30, "nonce": HDR + STRIDE + 3,
           "tag": HDR + STRIDE + 12 + 5, "ciphertext": HDR + STRIDE + SLOT_META + 7,
           "last-byte": b.stat().st_size - 1}[where]
    flip(b, off)
    p = cat(run, "f")
    assert p.returncode == 1
    assert "file f:" in p.stderr
    if where in ("nonce", "ciphertext"):
        assert "chunk 1 is corrupt" in p.stderr
    p = run("verify")
    assert p.returncode == 1 and "FAILED  f:" in p.stdout
    assert "0 file(s) intact, 1 damaged" in p.stdout


def test_flip_byte_in_metadata(vol):
    d, key, run = vol
    put(run, "f", SECRET)
    meta = d / ".kiln" / "meta"
    size = meta.stat().st_size
    for off in [0, 9, 17, 30, 45, 60, 70, size // 2, size - 1]:
        orig = meta.read_bytes()
        flip(meta, off)
        p = run("verify")
        assert p.returncode == 1, off
        assert "metadata" in p.stderr or "rolled back" in p.stderr or "version" in p.stderr, \
            (off, p.stderr)
        meta.write_bytes(orig)
    assert run("verify").returncode == 0


def test_swap_chunks_within_file(vol):
    d, key, run = vol
    put(run, "f", os.urandom(16 * CS))  # large enough to have a tag sidecar
    b = backing_files(d)[0]
    data = bytearray(b.read_bytes())
    c0 = data[HDR:HDR + STRIDE]
    data[HDR:HDR + STRIDE] = data[HDR + STRIDE:HDR + 2 * STRIDE]
    data[HDR + STRIDE:HDR + 2 * STRIDE] = c0
    b.write_bytes(bytes(data))
    p = cat(run, "f")
    assert p.returncode == 1 and "file f: chunk 0 is corrupt" in p.stderr
    # Without the tag sidecar (a hint), the block of tags comes from the slots:
    # it fails its hash at the first read of one of its chunks.
    pathlib.Path(str(b) + ".t").unlink()
    p = cat(run, "f")
    assert p.returncode == 1 and "file f: chunks 0..15 do not match the metadata" in p.stderr
    # Without the block hashes either, opening scans the slots: the root fails.
    pathlib.Path(str(b) + ".h").unlink()
    p = cat(run, "f")
    assert p.returncode == 1 and "file f: content does not match" in p.stderr


def test_tag_sidecar_is_only_a_hint(vol):
    d, key, run = vol
    data = os.urandom(16 * CS)
    put(run, "f", data)
    side = pathlib.Path(str(backing_files(d)[0]) + ".t")
    hashes = pathlib.Path(str(backing_files(d)[0]) + ".h")
    assert side.stat().st_size == 16 * 16
    assert hashes.stat().st_size == 32  # one block of tags
    flip(side, 20)
    assert cat(run, "f").stdout == data
    flip(hashes, 5)
    assert cat(run, "f").stdout == data
    side.unlink()
    assert cat(run, "f").stdout == data
    hashes.unlink()
    assert cat(run, "f").stdout == data
    assert run("verify").returncode == 0


def disk_bytes(d):
    return sum(p.stat().st_blocks * 512 for p in (d / ".kiln").iterdir() if p.is_file())


def test_put_keeps_holes_and_tamper_in_sparse_file(vol, tmp_path):
    """A sparse source file stays sparse in the volume (kiln fs put follows
    SEEK_DATA/SEEK_HOLE); its holes read as zeros, and tampering with a data chunk
    past the holes is still caught, naming the file and the chunk."""
    d, key, run = vol
    src = tmp_path / "sparse.img"
    size = 48 << 20
    parts = {0: b"head" * 100, (20 << 20) + 5: os.urandom(3 * CS), size - 7: b"tail!!!"}
    with open(src, "wb") as f:
        f.truncate(size)
        for off, data in parts.items():
            f.seek(off)
            f.write(data)
    before = disk_bytes(d)
    p = run("put", "img", "--from", src)
    assert p.returncode == 0, p.stderr
    # Five chunks hold data; 48 MiB of holes take nothing (the backing file, its
    # tags and block hashes stay under 256 KiB in all).
    assert disk_bytes(d) - before < 256 << 10
    want = bytearray(size)
    for off, data in parts.items():
        want[off:off + len(data)] = data
    assert cat(run, "img").stdout == bytes(want)
    assert run("verify").returncode == 0
    # The chunk holding offset 20 MiB + 5 + CS: chunk 5121.
    (b,) = backing_files(d)
    with open(b, "r+b") as f:
        f.seek(HDR + 5121 * STRIDE + SLOT_META + 9)
        c = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([c[0] ^ 0x20]))
    p = cat(run, "img")
    assert p.returncode == 1 and "file img: chunk 5121 is corrupt" in p.stderr
    p = run("verify")
    assert p.returncode == 1 and "img" in p.stdout + p.stderr


def test_swap_chunks_between_files(vol):
    d, key, run = vol
    put(run, "a", os.urandom(2 * CS))
    ba = backing_files(d)[0]
    put(run, "b", os.urandom(2 * CS))
    bb = new_backing(d, [ba])
    da, db = bytearray(ba.read_bytes()), bytearray(bb.read_bytes())
    da[HDR:HDR + STRIDE] = db[HDR:HDR + STRIDE]
    ba.write_bytes(bytes(da))
    p = cat(run, "a")
    assert p.returncode == 1 and "file a:" in p.stderr
    assert cat(run, "b").returncode == 0
    # Whole files swapped: the header's file id does not match.
    shutil.copy(bb, ba)
    p = cat(run, "a")
    assert p.returncode == 1 and "file a: header is corrupt or belongs to another file" in p.stderr


@pytest.mark.parametrize("how", ["truncate-chunk", "truncate-byte", "extend", "missing"])
def test_truncate_extend_remove(vol, how):
    d, key, run = vol
    put(run, "f", os.urandom(2 * CS + 10))
    b = backing_files(d)[0]
    size = b.stat().st_size
    if how == "truncate-chunk":
        os.truncate(b, HDR + STRIDE)
    elif how == "truncate-byte":
        os.truncate(b, size - 1)
    elif how == "extend":
        with open(b, "ab") as f:
            f.write(b"\0" * 100)
    else:
        b.unlink()
    p = cat(run, "f")
    assert p.returncode == 1 and "file f:" in p.stderr
    assert run("verify").returncode == 1


def test_replace_file_with_older_copy(vol, tmp_path):
    d, key, run = vol
    put(run, "f", b"version one" * 5000)
    b = backing_files(d)[0]
    shutil.copy(b, tmp_path / "old")
    shutil.copy(pathlib.Path(str(b) + ".t"), tmp_path / "old.t")
    put(run, "f", b"version two" * 5000)
    # A rewrite from size 0 goes to a new backing file; the old one is gone.
    (b,) = backing_files(d)
    side = pathlib.Path(str(b) + ".t")
    shutil.copy(tmp_path / "old", b)
    p = cat(run, "f")
    assert p.returncode == 1 and "file f: chunk 0 is corrupt" in p.stderr
    # With its old tag sidecar too: the sidecar fails the root, the scan as well.
    shutil.copy(tmp_path / "old.t", side)
    p = cat(run, "f")
    assert p.returncode == 1
    assert re.search(r"file f: chunks 0\.\.\d+ do not match the metadata", p.stderr)


def test_replace_metadata_with_older_copy_is_rollback(vol, tmp_path):
    d, key, run = vol
    put(run, "f", b"one")
    meta = d / ".kiln" / "meta"
    old = meta.read_bytes()
    p = run("verify")
    old_version = int(re.search(r"volume version: (\d+)", p.stdout).group(1))
    put(run, "f", b"two")
    p = run("verify")
    version = int(re.search(r"volume version: (\d+)", p.stdout).group(1))
    assert version > old_version
    meta.write_bytes(old)
    p = cat(run, "f")
    assert p.returncode == 1
    assert f"rolled back: found version {old_version}, expected {version}" in p.stderr
    # Without the version file, --expect-version does the same job.
    p = run("verify", "--expect-version", str(version))
    assert p.returncode == 1
    assert f"found version {old_version}, expected {version}" in p.stderr
    # And a lost version file is not silently trusted.
    os.unlink(str(key) + ".version")
    p = cat(run, "f")
    assert p.returncode == 1 and "no trusted volume version" in p.stderr


def test_legacy_tag_file_is_used(vol):
    """A volume made before the rename keeps its trusted store in KEY.tag: with no
    KEY.version beside it, that file is read and advanced."""
    d, key, run = vol
    put(run, "f", b"one")
    vfile, legacy = str(key) + ".version", str(key) + ".tag"
    os.rename(vfile, legacy)
    put(run, "f", b"two")
    assert not os.path.exists(vfile)
    committed = int(open(legacy).read().split()[0])
    p = run("verify")
    assert p.returncode == 0, p.stderr
    assert f"volume version: {committed}" in p.stdout


# ---- crash trials ----------------------------------------------------------------------------

def crash_trials(kiln, tmp_path, trials, seed):
    child = BUILD / "tests" / "e2e" / "apps" / "pf_crash_child"
    if not child.exists():
        pytest.fail(f"{child} not built")
    base = shm_tmp(tmp_path)
    d, key, log = base / "vol", base / "key", base / "log"
    try:
        assert kiln("fs", "init", d, "--key-file", key).returncode == 0
        rng = random.Random(seed)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")
        fsyncs = 0
        for t in range(trials):
            p = subprocess.Popen([str(child), "run", d, key, log, str(rng.randrange(1, 2**62))],
                                 stderr=subprocess.PIPE, env=env)
            # Wait until the child has done some work, then kill it at a random point.
            deadline = time.monotonic() + 30
            target = fsyncs + rng.randrange(1, 40)
            while time.monotonic() < deadline and p.poll() is None:
                if log.exists() and log.read_bytes().count(b"\nD ") >= target:
                    break
                time.sleep(0.001)
            time.sleep(rng.random() * 0.01)
            assert p.poll() is None, p.stderr.read().decode()
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.stderr.close()
            fsyncs = log.read_bytes().count(b"\nD ")
            c = subprocess.run([str(child), "check", d, key, log], capture_output=True,
                               text=True, env=env)
            assert c.returncode == 0, f"trial {t}: {c.stderr}"
            if t % 50 == 0:
                v = kiln("fs", "verify", d, "--key-file", key)
                assert v.returncode == 0, f"trial {t}: {v.stdout}{v.stderr}"
        assert fsyncs >= trials
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)


def test_crash_trials(kiln, tmp_path):
    crash_trials(kiln, tmp_path, 200, seed=20261126)


@pytest.mark.stress
def test_crash_trials_stress(kiln, tmp_path):
    crash_trials(kiln, tmp_path, 2000, seed=int(os.environ.get("KILN_SEED", "7")))


# ---- FUSE mount ------------------------------------------------------------------------------

def test_mount_with_real_tools(vol, tmp_path, kiln_bin):
    why = fuse_usable()
    if why:
        pytest.skip(why)
    if not shutil.which("sqlite3"):
        pytest.skip("sqlite3 not installed")
    d, key, run = vol
    put(run, "pre.txt", SECRET)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    p = subprocess.Popen([kiln_bin, "fs", "mount", str(d), str(mnt), "-f", "--key-file",
                          str(key)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mnt):
            if p.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mount did not come up: " + p.stderr.read().decode())
            time.sleep(0.02)
        assert (mnt / "pre.txt").read_bytes() == SECRET
        busy = run("verify")
        assert busy.returncode == 1 and "volume is in use by another process" in busy.stderr
        src = tmp_path / "src.bin"
        src.write_bytes(os.urandom(1_000_003))
        subprocess.run(["cp", str(src), str(mnt / "copy.bin")], check=True)
        out = subprocess.run(["cat", str(mnt / "copy.bin")], check=True, capture_output=True)
        assert out.stdout == src.read_bytes()
        os.mkdir(mnt / "db")
        subprocess.run(["sqlite3", str(mnt / "db" / "app.db"),
                        "create table t(x); insert into t values ('kiln'),('fs');"
                        "insert into t select x||x from t;"], check=True)
        out = subprocess.run(["sqlite3", str(mnt / "db" / "app.db"),
                              "select count(*), group_concat(x) from t;"],
                             check=True, capture_output=True, text=True)
        assert out.stdout.strip() == "4|kiln,fs,kilnkiln,fsfs"
        os.rename(mnt / "copy.bin", mnt / "moved.bin")
        with open(mnt / "moved.bin", "r+b") as f:
            f.seek(10)
            f.write(b"XYZ")
            f.truncate(5000)
            os.fsync(f.fileno())
        # O_APPEND and write-only handles (the kernel's writeback cache reads
        # partial pages of write-only files and applies O_APPEND itself).
        for line in (b"one\n", b"two\n"):
            with open(mnt / "log.txt", "ab") as f:
                f.write(line)
        fd = os.open(mnt / "log.txt", os.O_WRONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # partial page: read back
            assert os.pwrite(fd, b"T", 4) == 1
            assert os.pwrite(fd, b"!", 9000) == 1
            os.fsync(fd)
        finally:
            os.close(fd)
        want_log = b"one\nTwo\n" + bytes(9000 - 8) + b"!"
        assert (mnt / "log.txt").read_bytes() == want_log
        assert sorted(os.listdir(mnt)) == ["db", "log.txt", "moved.bin", "pre.txt"]
        assert os.stat(mnt / "moved.bin").st_size == 5000
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == 0
    v = run("verify")
    assert v.returncode == 0, v.stdout + v.stderr
    assert "4 file(s) intact" in v.stdout
    assert cat(run, "log.txt").stdout == want_log
    want = bytearray(src.read_bytes()[:5000])
    want[10:13] = b"XYZ"
    assert cat(run, "moved.bin").stdout == bytes(want)
    out = subprocess.run(["bash", "-c", f"'{kiln_bin}' fs cat '{d}' db/app.db --key-file "
                          f"'{key}' > '{tmp_path}/out.db' && sqlite3 '{tmp_path}/out.db' "
                          "'select count(*) from t'"], capture_output=True, text=True)
    assert out.stdout.strip() == "4", out.stderr


# ---- memory ----------------------------------------------------------------------------------

@pytest.mark.stress
def test_write_10gib_within_64mib(kiln, tmp_path):
    """Stream 10 GiB into one file (chunk data dropped by the test's storage wrapper, so
    no disk is needed): the library's peak RSS stays under 64 MiB."""
    child = BUILD / "tests" / "e2e" / "apps" / "pf_crash_child"
    d, key = tmp_path / "v", tmp_path / "k"
    assert kiln("fs", "init", d, "--key-file", key).returncode == 0
    p = subprocess.run([str(child), "memtest", d, key, "10"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    rss_kib = int(p.stdout.strip())
    assert rss_kib < 64 * 1024, f"peak RSS {rss_kib} KiB"
