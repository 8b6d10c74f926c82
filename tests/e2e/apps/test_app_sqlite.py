"""sqlite3 under kiln run: journal and WAL modes, 100,000 rows, integrity, tampering,
kill -9 mid-transaction and right after a commit."""
import os
import subprocess

from kilnapps import SECRET, need

WORKLOAD = f"""
PRAGMA journal_mode={{mode}};
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<50000)
  INSERT INTO t(v, n) SELECT '{SECRET}-' || x, x FROM c;
COMMIT;
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 50001 UNION ALL SELECT x+1 FROM c WHERE x<100000)
  INSERT INTO t(v, n) SELECT '{SECRET}-' || x, x FROM c;
COMMIT;
CREATE INDEX tn ON t(n);
SELECT count(*), sum(n) FROM t WHERE n BETWEEN 1000 AND 1999;
"""


def run_mode(volume, mode):
    sqlite = need("sqlite3")
    db = volume.dir / "app.db"
    p = volume.run(sqlite, db, input=WORKLOAD.format(mode=mode), check=True)
    assert p.stdout.split() == [mode.lower(), "1000|1499500"]
    assert "development mode: no attestation" in p.stderr
    # A second process reopens the file and checks it.
    p = volume.run(sqlite, db, input="PRAGMA integrity_check;\nSELECT count(*) FROM t;\n",
                   check=True)
    assert p.stdout.split() == ["ok", "100000"]
    volume.assert_no_plaintext()
    # Without the runtime the program sees no database at all.
    assert not db.exists()


def test_sqlite_journal(volume):
    run_mode(volume, "DELETE")


def test_sqlite_wal(volume):
    run_mode(volume, "WAL")


def test_sqlite_tamper_is_eio(volume):
    sqlite = need("sqlite3")
    db = volume.dir / "app.db"
    volume.run(sqlite, db, input=WORKLOAD.format(mode="DELETE"), check=True)
    volume.tamper_largest()
    # Chunks are verified when read: the pages before the tampered one read
    # fine, a scan that reaches it fails.
    p = volume.run(sqlite, db, input="SELECT v FROM t WHERE id = 1;\n", check=True)
    assert p.stdout.strip() == f"{SECRET}-1"
    p = volume.run(sqlite, db, input="SELECT sum(length(v)) FROM t NOT INDEXED;\n")
    assert p.returncode != 0
    # The app sees an I/O error (sqlite >= 3.39 reports EIO on a read as
    # "database disk image is malformed"); the runtime's log line names the file.
    assert "disk I/O error" in p.stderr or "disk image is malformed" in p.stderr
    assert f"{db}: " in p.stderr and "corrupt" in p.stderr


def start_sqlite(volume, db):
    """sqlite3 under kiln run reading statements from a pipe, line-buffered output."""
    return subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             "--", need("sqlite3"), str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


def wait_for(proc, marker):
    """Send `SELECT 'marker';` and read until it comes back: every statement before it ran."""
    proc.stdin.write(f"SELECT '{marker}';\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if line.strip() == marker:
            return
    raise AssertionError(f"sqlite3 exited before {marker}: {proc.stderr.read()}")


def kill9(proc):
    import signal
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()


def check_after_crash(volume, db, rows):
    p = volume.run(need("sqlite3"), db, input="PRAGMA integrity_check;\nSELECT count(*) FROM t;\n",
                   check=True)
    assert p.stdout.split() == ["ok", str(rows)]
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "0 damaged" in v.stdout


INSERT = ("WITH RECURSIVE c(x) AS (SELECT {a} UNION ALL SELECT x+1 FROM c WHERE x<{b})"
          " INSERT INTO t(v, n) SELECT '" + SECRET + "-' || x, x FROM c;\n")


def test_sqlite_kill9_mid_transaction(volume):
    """kill -9 while a transaction has spilled pages into the database (journal
    created, synced, database changed): the next open rolls it back from the hot
    journal, integrity_check is ok, and the volume verifies."""
    db = volume.dir / "app.db"
    proc = start_sqlite(volume, db)
    try:
        proc.stdin.write("PRAGMA journal_mode=DELETE;\nPRAGMA cache_size=10;\n"
                         "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);\n"
                         + INSERT.format(a=1, b=5000))
        wait_for(proc, "committed")
        # A transaction bigger than the page cache: sqlite spills pages into the
        # database file (after syncing the journal) long before COMMIT.
        proc.stdin.write("BEGIN;\n" + INSERT.format(a=5001, b=40000))
        wait_for(proc, "spilled")
        # The journal exists in the volume (published by the runtime).
        ls = subprocess.run([volume.kiln_bin, "fs", "ls", str(volume.dir), "--key-file",
                             str(volume.key)], capture_output=True, text=True)
        assert ls.returncode == 0, ls.stderr
        assert "app.db-journal" in ls.stdout, ls.stdout
    finally:
        kill9(proc)
    check_after_crash(volume, db, 5000)
    volume.assert_no_plaintext()


def test_sqlite_kill9_after_commit(volume):
    """kill -9 right after COMMIT: the journal's unlink is published but not yet
    durable (it is, on POSIX, only after a directory fsync). The volume must reopen
    with the committed rows, not rejected, and verify."""
    db = volume.dir / "app.db"
    proc = start_sqlite(volume, db)
    try:
        proc.stdin.write("PRAGMA journal_mode=DELETE;\n"
                         "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);\n"
                         "BEGIN;\n" + INSERT.format(a=1, b=3000) + "COMMIT;\n"
                         "BEGIN;\n" + INSERT.format(a=3001, b=6000) + "COMMIT;\n")
        wait_for(proc, "committed")
    finally:
        kill9(proc)
    check_after_crash(volume, db, 6000)


def test_sqlite_kill9_server_namespace_records(volume):
    """DELETE journal mode, then kill -9 of the volume server and sqlite3 (a
    crash: no last commit). Each transaction's journal create and the previous
    one's unlink are commit log records (docs/fs.md "Commit log"), not a
    metadata rewrite each: the volume is left with more records than the two
    data-only ones a transaction made before. kiln fs verify and kiln fs ls read
    it; sqlite finds every transaction committed before the last (whose journal
    unlink was never made durable, as on POSIX without a directory fsync)."""
    import re
    import signal
    from test_app_crash_stress import server_pid, wait_gone
    db = volume.dir / "app.db"
    proc = start_sqlite(volume, db)
    try:
        proc.stdin.write("PRAGMA journal_mode=DELETE;\n"
                         "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);\n"
                         + "".join("BEGIN;\n" + INSERT.format(a=i * 1000 + 1, b=(i + 1) * 1000)
                                   + "COMMIT;\n" for i in range(6)))
        wait_for(proc, "committed")
        srv = server_pid(volume)
        assert srv
        os.kill(srv, signal.SIGKILL)
        wait_gone(srv)
    finally:
        kill9(proc)
    fs = [volume.kiln_bin, "fs"]
    key = ["--key-file", str(volume.key)]
    v = subprocess.run(fs + ["verify", str(volume.dir)] + key, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    m = re.search(r"commit log: (\d+) record", v.stdout)
    assert m and int(m.group(1)) > 2, v.stdout
    ls = subprocess.run(fs + ["ls", str(volume.dir)] + key, capture_output=True, text=True)
    assert ls.returncode == 0, ls.stderr
    assert "app.db" in ls.stdout.split(), ls.stdout
    p = volume.run(need("sqlite3"), db, input="PRAGMA integrity_check;\nSELECT count(*) FROM t;\n",
                   check=True)
    assert p.stdout.split()[0] == "ok"
    assert int(p.stdout.split()[1]) in (5000, 6000), p.stdout
    v = subprocess.run(fs + ["verify", str(volume.dir)] + key, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    volume.assert_no_plaintext()
