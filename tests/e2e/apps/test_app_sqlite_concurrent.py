"""Several processes writing one sqlite database on a protected volume at once
(issue 10): each is its own `kiln run` (sqlite3 with a busy timeout), so they
meet only through the volume server: one plaintext page cache, and fcntl locks
the kernel arbitrates. Every row must be there and integrity_check ok, in
rollback-journal and WAL mode; the volume verifies afterwards."""
import subprocess

import pytest

from kilnapps import SECRET, need

WRITERS = 4
ROWS = 60


def writer_script(w, mode):
    lines = [".timeout 20000", f"PRAGMA journal_mode={mode};"]
    for i in range(ROWS):
        lines.append(f"INSERT INTO t(w, i, v) VALUES ({w}, {i}, '{SECRET}-{w}-{i}');")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["DELETE", "WAL"])
def test_sqlite_concurrent_writers(volume, mode):
    sqlite = need("sqlite3")
    db = volume.dir / "c.db"
    volume.run(sqlite, db, input=f"PRAGMA journal_mode={mode};\n"
               "CREATE TABLE t(w INTEGER, i INTEGER, v TEXT, UNIQUE(w, i));\n", check=True)
    procs = [subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                               "--", sqlite, str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(WRITERS)]
    # All four start, then all four get their statements: they overlap.
    for w, p in enumerate(procs):
        p.stdin.write(writer_script(w, mode))
        p.stdin.close()
    outs = [(p.stdout.read(), p.stderr.read(), p.wait(timeout=600))[:2] for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "error" not in err.lower(), err
    p = volume.run(sqlite, db, input="PRAGMA integrity_check;\n"
                   "SELECT count(*), count(DISTINCT w), min(i), max(i) FROM t;\n", check=True)
    assert p.stdout.split() == ["ok", f"{WRITERS * ROWS}|{WRITERS}|0|{ROWS - 1}"], p.stdout
    volume.assert_no_plaintext()
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_sqlite_locks_seen_across_processes(volume):
    """One process holds a write transaction open: another gets "database is
    locked" within its busy timeout (before the server, each process had its
    own lock view and both wrote)."""
    sqlite = need("sqlite3")
    db = volume.dir / "l.db"
    volume.run(sqlite, db, input="CREATE TABLE t(x);\n", check=True)
    holder = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                               "--", sqlite, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              bufsize=1)
    try:
        holder.stdin.write("BEGIN EXCLUSIVE;\nINSERT INTO t VALUES (1);\nSELECT 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"
        p = volume.run(sqlite, db, input=".timeout 300\nINSERT INTO t VALUES (2);\n")
        assert "database is locked" in p.stderr, p.stderr
        holder.stdin.write("COMMIT;\n")
        holder.stdin.flush()
    finally:
        holder.communicate(timeout=60)
    p = volume.run(sqlite, db, input="SELECT group_concat(x) FROM t;\n", check=True)
    assert p.stdout.strip() == "1"
