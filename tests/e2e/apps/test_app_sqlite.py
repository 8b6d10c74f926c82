"""sqlite3 under kiln run: journal and WAL modes, 100,000 rows, integrity, tampering."""
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
    p = volume.run(sqlite, db, input="SELECT count(*) FROM t;\n")
    assert p.returncode != 0
    # The app sees an I/O error; the runtime's log line names the file.
    assert "unable to open database" in p.stderr or "disk I/O error" in p.stderr
    assert f"{db}: " in p.stderr and "corrupt" in p.stderr
