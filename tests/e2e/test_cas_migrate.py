"""kiln cas migrate: the store's schema version and its forward migrations.

A store made before schema versions existed (no schema_version table, a
proposals table without id and action) is brought to the current version by
`kiln cas migrate` and by `kiln cas serve` alike, keeping every row; a store
newer than this kiln is refused by both, untouched."""
import sqlite3

from cas_fixtures import CasServer

POLICY = """\
name: mig/app
predecessor: null
secrets:
  - {name: s, kind: ascii, size: 16}
services:
  - name: app
    command: [/bin/true, "{{secret.s}}"]
    measurement: [any]
security: {tee: [sim], allow_insecure_sim: true}
"""

OLD_PROPOSALS = (
    "CREATE TABLE proposals(name TEXT NOT NULL, hash TEXT NOT NULL,"
    " predecessor TEXT NOT NULL, yaml TEXT NOT NULL, proposer TEXT NOT NULL,"
    " created INTEGER NOT NULL, expires INTEGER NOT NULL, approvals TEXT NOT NULL,"
    " PRIMARY KEY(name, hash))")


def sql(data, *statements):
    c = sqlite3.connect(str(data / "kiln.db"))
    try:
        rows = [c.execute(s).fetchall() for s in statements]
        c.commit()
        return rows
    finally:
        c.close()


def make_store(kiln, kiln_bin, tmp_path, cas_identity):
    """A store with one policy, its secret and audit entries; the server stopped."""
    cas = CasServer(kiln_bin, tmp_path).start()
    alice, _ = cas_identity("alice")
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    kiln("policy", "apply", path, env=cas.env(alice), check=True)
    got = kiln("policy", "get", "mig/app", env=cas.env(alice), check=True).stdout
    assert cas.stop() == 0
    return cas, alice, got


def test_migrate_old_store(kiln, kiln_bin, tmp_path, cas_identity):
    cas, alice, before = make_store(kiln, kiln_bin, tmp_path, cas_identity)
    p = kiln("cas", "migrate", "--data", cas.data, check=True)
    assert p.stdout == "schema 3 (current: nothing to do)\n"
    # Back to how an older kiln left it: no version table, old proposals.
    sql(cas.data, "DROP TABLE schema_version", "DROP TABLE proposals", OLD_PROPOSALS,
        "INSERT INTO proposals VALUES('mig/app', 'sha256:ab', 'sha256:cd', 'y', 'p', 1, 2,"
        " '[]')")
    p = kiln("cas", "migrate", "--data", cas.data, check=True)
    assert p.stdout == "schema 0 -> 3\n"
    (ver,), = sql(cas.data, "SELECT version FROM schema_version")[0]
    assert ver == 3
    (pid, action), = sql(cas.data, "SELECT id, action FROM proposals")[0]
    assert len(pid) == 32 and action == "update"
    assert kiln("cas", "migrate", "--data", cas.data, check=True).stdout == \
        "schema 3 (current: nothing to do)\n"
    # Serving an unmigrated store migrates it too, and the rows are all there.
    sql(cas.data, "DROP TABLE schema_version")
    cas.start()
    try:
        assert kiln("policy", "get", "mig/app", env=cas.env(alice),
                    check=True).stdout == before
    finally:
        assert cas.stop() == 0
    assert sql(cas.data, "SELECT version FROM schema_version")[0] == [(3,)]
    # A version 1 store (before the shared nonces table) gets it.
    sql(cas.data, "UPDATE schema_version SET version = 1", "DROP TABLE nonces",
        "DROP TABLE grants")
    assert kiln("cas", "migrate", "--data", cas.data, check=True).stdout == "schema 1 -> 3\n"
    assert sql(cas.data, "SELECT count(*) FROM nonces")[0] == [(0,)]
    # A version 2 store (grants in each process's memory) gets the grants table.
    sql(cas.data, "UPDATE schema_version SET version = 2", "DROP TABLE grants")
    assert kiln("cas", "migrate", "--data", cas.data, check=True).stdout == "schema 2 -> 3\n"
    assert sql(cas.data, "SELECT count(*) FROM grants")[0] == [(0,)]
    p = kiln("audit", "verify", "--data", cas.data, check=True)
    assert p.stdout.startswith("audit log ok: ")


def test_newer_store_refused(kiln, kiln_bin, tmp_path, cas_identity):
    cas, _, _ = make_store(kiln, kiln_bin, tmp_path, cas_identity)
    sql(cas.data, "UPDATE schema_version SET version = 99")
    for args in (("cas", "migrate", "--data", cas.data),
                 ("cas", "serve", "--data", cas.data, "--listen", "127.0.0.1:0")):
        p = kiln(*args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "schema is version 99, newer than this kiln knows (3)" in p.stderr
    assert sql(cas.data, "SELECT version FROM schema_version")[0] == [(99,)]
    sql(cas.data, "UPDATE schema_version SET version = -3")
    p = kiln("cas", "migrate", "--data", cas.data)
    assert p.returncode == 1 and "schema_version holds a negative number, not a version" in p.stderr


def test_migrate_usage(kiln, tmp_path):
    assert kiln("cas", "migrate").returncode == 2
    p = kiln("cas", "migrate", "--data", tmp_path / "nothing")
    assert p.returncode == 1 and "no such data directory" in p.stderr


def test_migrate_postgresql(kiln, kiln_bin, tmp_path, pg_server):
    name, _ = pg_server.new_store()
    cas = CasServer(kiln_bin, tmp_path, pg=(pg_server, name)).start()
    assert cas.stop() == 0
    migrate = ("cas", "migrate", "--data", cas.data, *cas.store_args)
    assert kiln(*migrate, check=True).stdout == "schema 3 (current: nothing to do)\n"
    pg_server.psql(name, "UPDATE schema_version SET version = 1; DROP TABLE nonces; "
                   "DROP TABLE grants")
    assert kiln(*migrate, check=True).stdout == "schema 1 -> 3\n"
    assert pg_server.psql(name, "SELECT count(*) FROM nonces") == "0\n"
    pg_server.psql(name, "UPDATE schema_version SET version = 2; DROP TABLE grants")
    assert kiln(*migrate, check=True).stdout == "schema 2 -> 3\n"
    assert pg_server.psql(name, "SELECT count(*) FROM grants") == "0\n"
    # A database that holds no store is named, not created by migrate.
    other, _ = pg_server.new_store()
    p = kiln("cas", "migrate", "--data", cas.data, "--store", pg_server.url(other))
    assert p.returncode == 1 and f"PostgreSQL database {other} on" in p.stderr
    assert "holds no kiln store" in p.stderr
    assert pg_server.psql(other, "SELECT count(*) FROM pg_tables WHERE schemaname = "
                          "'public'") == "0\n"
