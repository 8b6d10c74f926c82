"""kill -9 trials during multi-process writes (issue 10, make stress: 200 trials;
make check: a few). Each trial runs three writer processes under one kiln run (a
forked family): each appends numbered, checksummed records to its own file and to
one shared O_APPEND file, fsyncs, and reports the record as acknowledged. At a
random moment the whole family and its volume server are killed with SIGKILL (a
crash: the server holds the data not yet committed). The volume must then open and
verify, every acknowledged record must be there, and every record present must be
whole and in order: nothing torn, nothing silently wrong.

The random moment is counted from the first acknowledgement of the trial, so
that every trial kills writers that are writing: counted from the start, a
trial whose interpreter had not started yet (kiln run's start, or a pyenv shim
on PATH, which takes seconds under kiln run) killed nothing but start-up, and
200 such trials passed having tested nothing."""
import os
import random
import re
import signal
import subprocess
import sys
import time
import zlib

import pytest

import kilnenv
from kilnviews import verify_volume

WRITERS = 3
START_TIMEOUT = 60  # seconds for kiln run and the writers to acknowledge a first write

# The start of each program: argv (volume dir, writers, first seq) and the
# fork into writers numbered w.
FORK_WRITERS = r"""
import os, sys
d, w = sys.argv[1], int(sys.argv[2])
start = int(sys.argv[3])
for k in range(1, w):
    if os.fork() == 0:
        w = k
        break
else:
    w = 0
"""

PROGRAM = FORK_WRITERS + r"""
import zlib
own = os.open(os.path.join(d, f"w{w}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
shared = os.open(os.path.join(d, "shared"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
seq = start
while True:
    body = (f"{w}:{seq}:" + "x" * (seq % 700)).encode()
    rec = b"%s:%08x\n" % (body, zlib.crc32(body))
    os.write(own, rec)
    os.write(shared, rec)
    if seq % 3 == 0:
        os.fsync(own)
        os.fsync(shared)
        print(f"ack {w} {seq}", flush=True)
    seq += 1
"""

REC = re.compile(rb"^(\d+):(\d+):x*:([0-9a-f]{8})$")


def records(data):
    """Every line must be a whole record with a good checksum (the last one may be
    missing entirely, never half there)."""
    out = []
    if not data:
        return out  # created (and the creation committed), no record yet
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        m = REC.match(line)
        assert m, f"torn or foreign record {line[:80]!r}"
        body, crc = line.rsplit(b":", 1)
        assert int(crc, 16) == zlib.crc32(body), f"bad checksum {line[:80]!r}"
        out.append((int(m.group(1)), int(m.group(2))))
    assert data.endswith(b"\n") or not data, "a record without its end"
    return out


def fs(volume, *args):
    return subprocess.run([volume.kiln_bin, "fs", args[0], str(volume.dir), *args[1:],
                           "--key-file", str(volume.key)], capture_output=True)


def cat(volume, name):
    p = fs(volume, "cat", name)
    assert p.returncode == 0, f"kiln fs cat {name}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def server_pid(volume):
    return kilnenv.server_pid(volume.dir)




wait_gone = kilnenv.wait_pid_gone  # test_app_dsync, test_app_sqlite


def trial(volume, py, rng, start, acked, program=PROGRAM):
    proc = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             "--", py, "-c", program, str(volume.dir), str(WRITERS), str(start)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    delay = rng.uniform(0.0, 0.5)
    started = time.monotonic()
    deadline = None
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while proc.poll() is None:
        now = time.monotonic()
        if deadline is None and b"ack " in buf:
            deadline = now + delay  # writers are writing: kill them within delay
        if deadline is not None and now >= deadline:
            break
        if deadline is None and now - started > START_TIMEOUT:
            break
        try:
            chunk = proc.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
        time.sleep(0.01)
    srv = server_pid(volume)
    os.killpg(proc.pid, signal.SIGKILL)
    if srv:
        try:
            os.kill(srv, signal.SIGKILL)
        except ProcessLookupError:
            pass
    buf, err = kilnenv.finish_killed(proc, buf, srv)
    # Acknowledged before the kill (a line not yet read was acknowledged too,
    # but only what we saw counts as a promise).
    seen = 0
    for line in buf.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":
            w, seq = int(parts[1]), int(parts[2])
            acked[w] = max(acked.get(w, -1), seq)
            seen += 1
    assert "Traceback" not in err, err
    assert seen, (f"no write acknowledged within {START_TIMEOUT} s of the start: "
                  f"the trial would test nothing; stderr: {err[-2000:]}")
    return seen


LOG_RECORDS = re.compile(r"commit log: (\d+) record")


def verify_replayed(volume):
    """kiln fs verify of the volume the kill left; the commit log records it
    replayed (data-only commits since the last checkpoint: docs/fs.md).
    A server the family started just before the kill (its pid not yet in
    .kiln/server) was not killed: it makes its last commit and exits once
    its clients are gone; verify waits for that."""
    out = []
    err = verify_volume(volume.kiln_bin, volume.dir, volume.key, output=out)
    assert err is None, err
    m = LOG_RECORDS.search(out[0])
    return int(m.group(1)) if m else 0


def check(volume, acked, starts):
    replayed = verify_replayed(volume)
    ls = fs(volume, "ls").stdout.decode()
    shared = set()
    if "shared" in ls.split():
        shared = set(records(cat(volume, "shared")))
    for w in range(WRITERS):
        got = records(cat(volume, f"w{w}")) if f"w{w}" in ls.split() else []
        seqs = [s for k, s in got]
        assert all(k == w for k, s in got)
        # In order, no duplicates, no gaps except where a new run started.
        for a, b in zip(seqs, seqs[1:]):
            assert b == a + 1 or b in starts, (w, a, b)
        if w in acked:
            assert acked[w] in seqs, f"writer {w}: acknowledged record {acked[w]} lost"
            assert (w, acked[w]) in shared, f"writer {w}: {acked[w]} lost from shared"
    return replayed


@pytest.mark.parametrize("trials", [pytest.param(200, marks=pytest.mark.stress), 4])
def test_kill9_trials(volume, trials):
    # The interpreter running the tests: a real binary (a pyenv shim first on
    # PATH takes seconds to start under kiln run).
    py = sys.executable
    rng = random.Random(int(os.environ.get("KILN_SEED", "1234")))
    acked, starts = {}, {0}
    acks = replayed = 0
    for t in range(trials):
        start = t * 100000
        starts.add(start)
        acks += trial(volume, py, rng, start, acked)
        replayed += check(volume, acked, starts)
    print(f"{trials} kill -9 trials, {acks} acknowledged fsyncs seen before the kills, "
          f"{replayed} commit log records replayed")
    # The writers' fsyncs of files already committed are log records: the
    # kills left volumes whose state was partly in the log.
    assert replayed > 0


# Writer processes of one sqlite database (WAL, busy timeout), each inserting
# rows (writer, seq) one transaction at a time and acknowledging each commit.
SQLITE_PROGRAM = FORK_WRITERS + r"""
import sqlite3
db = sqlite3.connect(os.path.join(d, "app.db"), timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS t(w INTEGER, seq INTEGER, v TEXT, PRIMARY KEY(w, seq))")
seq = start
while True:
    db.execute("INSERT INTO t VALUES(?, ?, ?)", (w, seq, "x" * (seq % 300)))
    print(f"ack {w} {seq}", flush=True)
    seq += 1
"""

SQLITE_CHECK = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
print(db.execute("PRAGMA integrity_check").fetchone()[0])
for w, seq in db.execute("SELECT w, seq FROM t"):
    print(w, seq)
"""


@pytest.mark.parametrize("trials", [pytest.param(50, marks=pytest.mark.stress), 2])
def test_kill9_sqlite_writers(volume, trials):
    """kill -9 of sqlite writers (and their volume server) in the middle of
    their commits: the database reopens, integrity_check is ok, every
    acknowledged row is there."""
    py = sys.executable
    rng = random.Random(int(os.environ.get("KILN_SEED", "1234")))
    acked, replayed = {}, 0
    for t in range(trials):
        trial(volume, py, rng, t * 100000, acked, program=SQLITE_PROGRAM)
        replayed += verify_replayed(volume)
        p = volume.run(py, "-c", SQLITE_CHECK, volume.dir / "app.db", check=True)
        lines = p.stdout.split("\n")
        assert lines[0] == "ok", p.stdout[:500]
        rows = {tuple(int(x) for x in ln.split()) for ln in lines[1:] if ln}
        for w, seq in acked.items():
            assert (w, seq) in rows, f"writer {w}: acknowledged row {seq} lost"
    print(f"{trials} kill -9 trials of sqlite writers, {replayed} commit log records replayed")
    assert replayed > 0
