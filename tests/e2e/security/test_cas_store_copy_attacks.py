"""Attacks on kiln cas import-store / export-store: a source store that is not
what it claims, or a target that is not empty, from whoever controls the
databases or the files. Each is refused with a message naming what is wrong, a
non-zero exit, and the target unchanged (no tables, no file).

- a data directory with another master key or CA than the store's;
- a source at another schema version, or with a table or column this kiln
  does not know (it would be left behind silently);
- a target that already holds a store, a SQLite target file that exists;
- a row the target refuses half-way (text PostgreSQL rejects): nothing of the
  tables before it stays;
- a location that is neither sqlite:DIR nor a PostgreSQL connection string."""
import shutil
import sqlite3

import pytest

from cas_fixtures import CasServer

POLICY = """\
name: atk/app
secrets:
  - {name: pw, kind: ascii, size: 24}
services:
  - name: app
    command: [/bin/app, "{{secret.pw}}"]
    measurement: [any]
security: {tee: [sim], allow_insecure_sim: true}
"""


@pytest.fixture
def source(kiln, kiln_bin, tmp_path, cas_identity):
    """A stopped SQLite store with a policy and its audit entries."""
    (tmp_path / "src").mkdir()
    cas = CasServer(kiln_bin, tmp_path / "src").start()
    try:
        alice, _ = cas_identity("alice")
        (tmp_path / "p.yaml").write_text(POLICY)
        kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(alice), check=True)
    finally:
        assert cas.stop() == 0
    return cas.data


def sql(data, *statements):
    c = sqlite3.connect(str(data / "kiln.db"))
    try:
        for s in statements:
            c.execute(s)
        c.commit()
    finally:
        c.close()


def dump(pg_server, name):
    """The database's content (without pg_dump's random \\restrict key)."""
    return [ln for ln in pg_server.dump(name).splitlines()
            if not ln.startswith(("\\restrict", "\\unrestrict"))]


def tables(pg_server, name):
    return pg_server.psql(name, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")


def refused(kiln, *args, want):
    p = kiln("cas", *args)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "nothing copied (the target is unchanged): " in p.stderr, p.stderr
    assert want in p.stderr, p.stderr
    return p


def test_other_master_key_or_ca(kiln, kiln_bin, tmp_path, source, pg_server):
    (tmp_path / "other").mkdir()
    other = CasServer(kiln_bin, tmp_path / "other").start()
    assert other.stop() == 0
    name, url = pg_server.new_store()
    refused(kiln, "import-store", "--from", f"sqlite:{source}", "--data", other.data,
            "--store", url, want=f"{other.data}/master.key is not the master key of "
            f"{source}/kiln.db")
    assert tables(pg_server, name) == "0\n"
    # The right key with another CA (a directory assembled from two stores).
    mixed = tmp_path / "mixed"
    mixed.mkdir(mode=0o700)
    shutil.copy2(source / "master.key", mixed)
    shutil.copy2(other.data / "ca.key", mixed)
    shutil.copy2(other.data / "ca.pem", mixed)
    refused(kiln, "import-store", "--from", f"sqlite:{source}", "--data", mixed, "--store",
            url, want=f"{mixed}/ca.pem is not the CA of {source}/kiln.db")
    # --master-key-file names the key that is checked.
    refused(kiln, "export-store", "--to", url, "--data", source, "--master-key-file",
            other.data / "master.key", want=f"{other.data}/master.key is not the master key")
    assert tables(pg_server, name) == "0\n"
    # No key at all: named, nothing made.
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(kiln, "import-store", "--from", f"sqlite:{source}", "--data", empty, "--store",
            url, want=f"{empty}/master.key is missing")
    assert sorted(p.name for p in empty.iterdir()) == []


def test_schema_version_and_unknown_tables(kiln, tmp_path, source):
    target = tmp_path / "t"
    target.mkdir(mode=0o700)
    for f in ("ca.key", "ca.pem", "master.key"):
        shutil.copy2(source / f, target / f)
    args = ("import-store", "--from", f"sqlite:{source}", "--data", target)
    sql(source, "UPDATE schema_version SET version = 1")
    refused(kiln, *args, want=f"{source}/kiln.db is at schema version 1, this kiln copies "
            "version 3: run 'kiln cas migrate' on it first")
    sql(source, "UPDATE schema_version SET version = 7")
    refused(kiln, *args, want="is at schema version 7, this kiln copies version 3: use the "
            "kiln that made it")
    sql(source, "DROP TABLE schema_version")
    refused(kiln, *args, want="holds no versioned kiln store (no schema_version table)")
    assert kiln("cas", "migrate", "--data", source, check=True).stdout == \
        "schema 0 -> 3\n"
    sql(source, "CREATE TABLE planted(x TEXT)")
    refused(kiln, *args, want="has a table 'planted' this kiln does not know")
    sql(source, "DROP TABLE planted", "ALTER TABLE secrets ADD COLUMN extra TEXT")
    refused(kiln, *args, want="table secrets has 5 columns, this kiln copies 4")
    sql(source, "ALTER TABLE secrets DROP COLUMN extra",
        "ALTER TABLE grants ADD COLUMN extra TEXT")
    refused(kiln, *args, want="table grants has 6 columns, this kiln copies 5")
    assert sorted(p.name for p in target.iterdir()) == ["ca.key", "ca.pem", "master.key"]


def test_target_not_empty(kiln, kiln_bin, tmp_path, source, pg_server):
    name, url = pg_server.new_store()
    args = ("import-store", "--from", f"sqlite:{source}", "--data", source, "--store", url)
    assert kiln("cas", *args).returncode == 0
    before = dump(pg_server, name)
    refused(kiln, *args, want=f"the target PostgreSQL database {name} on")
    p = refused(kiln, *args, want="is not empty (table meta has 2 rows)")
    assert url not in p.stderr
    assert dump(pg_server, name) == before
    # A database where kiln cas serve started once (only the key checks): fine.
    name2, url2 = pg_server.new_store()
    (tmp_path / "pg2").mkdir()
    shutil.copytree(source, tmp_path / "pg2" / "cas-data")
    (tmp_path / "pg2" / "cas-data" / "kiln.db").unlink()
    for f in ("kiln.db-wal", "kiln.db-shm"):
        (tmp_path / "pg2" / "cas-data" / f).unlink(missing_ok=True)
    cas = CasServer(kiln_bin, tmp_path / "pg2", pg=(pg_server, name2)).start()
    assert cas.stop() == 0
    kiln("cas", "import-store", "--from", f"sqlite:{source}", "--data", source, "--store",
         url2, check=True)
    # SQLite: an existing file is never replaced, not even by an empty copy.
    refused(kiln, "export-store", "--to", f"sqlite:{source}", "--data", source, "--store",
            url2, want=f"{source}/kiln.db exists: the target must be a new store")
    refused(kiln, "import-store", "--from", f"sqlite:{source}", "--data", source,
            want=f"the source and the target are both {source}/kiln.db")


def test_failure_half_way_leaves_target_unchanged(kiln, tmp_path, source, pg_server):
    # Text PostgreSQL refuses (not UTF-8), in a table copied after policies and
    # secrets: the copy fails there, and the rows before it go too.
    sql(source, "INSERT INTO namespaces VALUES(CAST(X'ff41' AS TEXT), 'x', 1)")
    name, url = pg_server.new_store()
    p = refused(kiln, "import-store", "--from", f"sqlite:{source}", "--data", source,
                "--store", url, want="INSERT INTO namespaces")
    assert "  policies         1 rows\n" in p.stdout
    assert not p.stdout.splitlines()[-1].startswith("copied")
    assert tables(pg_server, name) == "0\n"
    # Into SQLite the row copies as it is (SQLite keeps the bytes): the copy
    # is whole, no FILE.import is left.
    target = tmp_path / "t"
    target.mkdir(mode=0o700)
    for f in ("ca.key", "ca.pem", "master.key"):
        shutil.copy2(source / f, target / f)
    kiln("cas", "import-store", "--from", f"sqlite:{source}", "--data", target, check=True)
    assert sorted(p.name for p in target.iterdir()) == ["ca.key", "ca.pem", "kiln.db",
                                                        "master.key"]


def test_bad_locations(kiln, tmp_path, source):
    p = kiln("cas", "import-store", "--from", str(source), "--data", source)
    assert p.returncode == 1 and f"'{source}' is no store: expected sqlite:DIR or a " \
        "PostgreSQL connection URI" in p.stderr
    p = kiln("cas", "import-store", "--from", f"sqlite:{tmp_path / 'nothing'}", "--data",
             source, "--store", "postgresql:///x?host=/nonexistent")
    assert p.returncode == 1 and f"{tmp_path}/nothing/kiln.db: no store to copy" in p.stderr
    for args in (("import-store", "--data", source), ("export-store", "--from", "x",
                                                       "--data", source),
                 ("import-store", "--from", "sqlite:x")):
        assert kiln("cas", *args).returncode == 2, args
