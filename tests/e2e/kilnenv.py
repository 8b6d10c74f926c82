"""Paths shared by the e2e tests. Import from here, not from conftest: pytest loads
several conftest.py files (tests/e2e, tests/e2e/apps) and `import conftest` picks
whichever came first on sys.path."""
import os
import pathlib
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("KILN_BUILD", ROOT / "build")).resolve()
TESTDATA = (ROOT / ".." / "shared" / "testdata").resolve()


def wait_server_gone(voldir, seconds=30):
    """Until the volume server of the volume at voldir has exited. It exits
    after its last client (and its last commit, and its counters in
    .kiln/server.log), removing .kiln/server last: a test that lists or
    copies the store waits for that first (the listing raced the removal:
    FileNotFoundError)."""
    info = pathlib.Path(voldir) / ".kiln" / "server"
    for _ in range(int(seconds * 50)):
        if not info.exists():
            return
        time.sleep(0.02)


def server_pid(voldir):
    """The pid of the volume server of the volume at voldir, or None."""
    try:
        return int((pathlib.Path(voldir) / ".kiln" / "server").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_pid_gone(pid, seconds=6):
    """Until process pid has exited (or is a zombie: a double-forked volume
    server is reaped by whoever adopted it)."""
    for _ in range(int(seconds * 50)):
        try:
            os.kill(pid, 0)
            stat = open(f"/proc/{pid}/stat").read()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.02)


def log_records(log):
    """(offset, size, version, flags) of each record of a commit log
    (`.kiln/log`, docs/fs.md "Commit log") that parses by size: header
    magic[8] version u64 body_size u32 flags u32 iv[12] reserved u32, the
    body, the GCM tag. Authentication is kiln's job, not the test's."""
    import struct
    out, off = [], 0
    while off + 40 <= len(log) and log[off:off + 8] == b"KILNLOG1":
        version, bsize, flags = struct.unpack_from("<QII", log, off + 8)
        size = 40 + bsize + 16
        if off + size > len(log):
            break
        out.append((off, size, version, flags))
        off += size
    return out


def app_on_new_volume(kiln, d, app):
    """A new volume d/vol (key d/vol.key) and the Python program app (its
    source) started under `kiln run --volume` on it with the volume's path as
    its argument, stdin and stdout piped (text): (vol, key, proc)."""
    import subprocess
    import sys
    vol, key = d / "vol", d / "vol.key"
    p = subprocess.run([str(kiln), "fs", "init", str(vol), "--key-file", str(key)],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (d / "app.py").write_text(app)
    proc = subprocess.Popen([str(kiln), "run", "--volume", f"{vol}={key}", "--", sys.executable,
                             str(d / "app.py"), str(vol)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return vol, key, proc


def snapshot_volume(vol, key, dest):
    """Copy the volume's store (dest/vol) and its key and trusted version file
    (dest/vol.key, dest/vol.key.version) as they are now: a crash image."""
    import shutil
    shutil.copytree(vol, dest / "vol", symlinks=True,
                    ignore=shutil.ignore_patterns("server", "server.*"))
    shutil.copy(key, dest / "vol.key")
    shutil.copy(str(key) + ".version", dest / "vol.key.version")


def kill_server(vol):
    """A crash: SIGKILL the volume server of vol (so it cannot checkpoint at
    its program's exit) and wait until it is gone."""
    import os
    import signal
    srv = server_pid(vol)
    assert srv, "no volume server"
    os.kill(srv, signal.SIGKILL)
    wait_pid_gone(srv)


def crash_image(kiln, d, app, ready="ready"):
    """The program app (its source) on a new volume under d, run until it
    prints ready; then its volume server is killed, then the program. The
    crash image is d/img (vol, vol.key, vol.key.version)."""
    vol, key, proc = app_on_new_volume(kiln, d, app)
    return crash_running(vol, key, proc, d, ready)


def crash_running(vol, key, proc, d, ready="ready"):
    """proc, a program under `kiln run` on vol, read until it prints ready;
    then vol's server is killed, then proc: the crash image d/img."""
    try:
        assert proc.stdout.readline().strip() == ready, proc.stderr.read()
        kill_server(vol)
    finally:
        proc.kill()
        proc.wait()
    img = d / "img"
    img.mkdir()
    snapshot_volume(vol, key, img)
    return img


def copy_image(tmp_path, image):
    """A copy of a crash image to attack (tmp_path/img)."""
    import shutil
    dest = tmp_path / "img"
    shutil.copytree(image, dest, symlinks=True)
    return dest


def flip_log_byte(img, at):
    """The host's edit: one bit of byte at of the crash image's commit log
    flipped."""
    log = img / "vol" / ".kiln" / "log"
    bad = bytearray(log.read_bytes())
    bad[at] ^= 0x40
    log.write_bytes(bytes(bad))


def assert_rollback_refused(img, name):
    """Every way into the crash image img (its log edited) refuses, naming
    the rollback ("volume rolled back: found version X, expected Y"): `kiln
    fs cat` of the file name, `kiln fs verify` and `kiln run` reading it; no
    content comes out."""
    import subprocess
    kiln, key = str(BUILD / "kiln"), str(img / "vol.key")
    vol = str(img / "vol")

    def run(argv):
        return subprocess.run(argv, capture_output=True, timeout=120)
    c = run([kiln, "fs", "cat", vol, name, "--key-file", key])
    assert c.returncode != 0, c.stdout[:64]
    assert c.stdout == b""
    assert b"rolled back" in c.stderr, c.stderr
    v = run([kiln, "fs", "verify", vol, "--key-file", key])
    assert v.returncode != 0, v.stdout
    assert b"rolled back" in v.stdout + v.stderr, v.stdout + v.stderr
    r = run([kiln, "run", "--volume", f"{vol}={key}", "--", "/bin/cat", f"{vol}/{name}"])
    assert r.returncode != 0, r.stdout[:64]
    assert b"rolled back" in r.stderr, r.stderr
    assert r.stdout == b""


def finish_killed(proc, buf, srv=None):
    """After a SIGKILL of proc (a kiln run whose stdout is piped and
    non-blocking, stderr piped): wait for it, append the rest of its stdout to
    buf, read its stderr, then wait for the killed volume server srv to be
    gone. Returns (buf, stderr as text)."""
    proc.wait(timeout=120)
    try:
        buf += proc.stdout.read() or b""
    except BlockingIOError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    if srv:
        wait_pid_gone(srv, 30)
    return buf, err
