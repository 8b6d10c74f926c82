"""kiln cas import-store / export-store: a whole store copied between backends
(SQLite -> PostgreSQL -> SQLite, SQLite -> SQLite), row for row.

After the copy the target serves as the source did: the same policies, pending
proposals, volume tags, nonces and grants; an attestation receives the same secret
(it stayed sealed under the master key: it is nowhere in the PostgreSQL dump);
the audit log is the same, entry for entry, and verifies with the same signed
head. The refusals (wrong key, schema version, non-empty target, a failure
half-way) are in tests/e2e/security/test_cas_store_copy_attacks.py."""
import shutil
import sqlite3

from cas_fixtures import CasServer, Workload

APP = """\
name: cp/app
predecessor: null
secrets:
  - {name: pw, kind: ascii, size: 24}
volumes:
  - {name: data}
services:
  - name: app
    command: [/bin/app, "{{secret.pw}}"]
    mounts: [{volume: data, path: /data}]
    measurement: [any]
security: {tee: [sim], allow_insecure_sim: true}
"""

QUORUM = """\
name: cp/q
predecessor: {pred}
access:
  update: {{require: 2, of: [owner, {bob}]}}
secrets:
  - {{name: k, kind: binary, size: {size}}}
"""


def copy_keys(src, dst):
    """What an operator copies to serve a store from another directory."""
    dst.mkdir(mode=0o700, parents=True, exist_ok=True)
    for f in ("ca.key", "ca.pem", "master.key"):
        shutil.copy2(src / f, dst / f)


def make_store(kiln, kiln_bin, tmp_path, cas_identity):
    """A SQLite store with a policy (secret, volume at tag 1), a quorum policy
    with a pending proposal, attestations and their audit entries; stopped.
    Returns the server, alice's identity, the released secret and the workload
    (its key holds a grant for the volume)."""
    cas = CasServer(kiln_bin, tmp_path).start()
    try:
        alice, _ = cas_identity("alice")
        _, bob_id = cas_identity("bob")
        (tmp_path / "app.yaml").write_text(APP)
        kiln("policy", "apply", tmp_path / "app.yaml", env=cas.env(alice), check=True)
        (tmp_path / "q1.yaml").write_text(QUORUM.format(pred="null", bob=bob_id, size=16))
        h1 = kiln("policy", "apply", tmp_path / "q1.yaml", env=cas.env(alice),
                  check=True).stdout.split()[-1]
        (tmp_path / "q2.yaml").write_text(QUORUM.format(pred=h1, bob=bob_id, size=32))
        p = kiln("policy", "apply", tmp_path / "q2.yaml", env=cas.env(alice), check=True)
        assert p.stdout.startswith("proposed cp/q "), p.stdout
        w = Workload(cas, tmp_path)
        s, r = w.attest("cp/app", "app")
        assert s == 200, r
        vid = w.vid = r["volumes"][0]["id"]
        assert w.post(f"/v1/volumes/{vid}/prepare", {"tag": 1})[0] == 200
        assert w.post(f"/v1/volumes/{vid}/commit", {"tag": 1})[0] == 200
        # A nonce handed out and not used yet: it stays usable once.
        return cas, alice, r["argv"][1], w
    finally:
        assert cas.stop() == 0


def audit(kiln, data, *store):
    """(verify's line, every entry, the signed head) of a store."""
    v = kiln("audit", "verify", "--data", data, *store, check=True).stdout
    assert "chain and signatures verified" in v
    return v, kiln("audit", "show", "--data", data, *store, check=True).stdout


def sqlite_head(path):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bytes(c.execute("SELECT v FROM meta WHERE k = 'audit_head'").fetchone()[0])
    finally:
        c.close()


def test_sqlite_to_postgresql_and_back(kiln, kiln_bin, tmp_path, pg_server, cas_identity):
    cas, alice, secret, w = make_store(kiln, kiln_bin, tmp_path, cas_identity)
    before = audit(kiln, cas.data)
    head = sqlite_head(cas.data / "kiln.db")
    name, url = pg_server.new_store()

    p = kiln("cas", "import-store", "--from", f"sqlite:{cas.data}", "--data", cas.data,
             "--store", url, check=True)
    lines = p.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == [
        "meta", "policies", "secrets", "volumes", "las_trust", "tee_trust", "namespaces",
        "proposals", "spent_approvals", "audit", "nonces", "grants"], p.stdout
    assert "  policies         2 rows" in lines and "  proposals        1 rows" in lines
    assert lines[-1].startswith("copied ") and " in 12 tables from " in lines[-1]
    assert f"to PostgreSQL database {name} on" in lines[-1]
    assert url not in p.stdout + p.stderr

    # Sealed as it was: the secret is not in the database, not even encoded.
    dump = pg_server.dump(name)
    assert secret not in dump and secret.encode().hex() not in dump
    assert audit(kiln, cas.data, "--store", url) == before
    got = pg_server.psql(name, "SELECT encode(v, 'hex') FROM meta WHERE k = 'audit_head'")
    assert got.strip() == head.hex()

    # Served from PostgreSQL: same secret, same volume tag, the proposal pending.
    pg = CasServer(kiln_bin, tmp_path, pg=(pg_server, name)).start()
    try:
        assert pg.fingerprint == cas.fingerprint
        s, r = Workload(pg, tmp_path).attest("cp/app", "app")
        assert s == 200 and r["argv"][1] == secret, r
        assert pg.volume_committed("cp/app") == 1
        # The workload's grant came along: it goes on updating its volume.
        w.cas = pg
        assert w.post(f"/v1/volumes/{w.vid}/prepare", {"tag": 2})[0] == 200
        assert w.post(f"/v1/volumes/{w.vid}/commit", {"tag": 2})[0] == 200
        p = kiln("policy", "proposals", "cp/q", env=pg.env(alice), check=True)
        assert p.stdout.startswith("cp/q sha256:") and " pending\n" in p.stdout
    finally:
        assert pg.stop() == 0
    after_pg = audit(kiln, cas.data, "--store", url)
    assert after_pg[1].startswith(before[1]) and after_pg[1] != before[1]

    # And back: PostgreSQL -> a new SQLite directory; SQLite -> SQLite.
    back = tmp_path / "back"
    p = kiln("cas", "export-store", "--to", f"sqlite:{back}", "--data", cas.data,
             "--store", url, check=True)
    assert p.stdout.splitlines()[-1].endswith(f" to {back}/kiln.db")
    copy_keys(cas.data, back)
    assert audit(kiln, back) == after_pg
    third = tmp_path / "third"
    copy_keys(cas.data, third)
    kiln("cas", "import-store", "--from", f"sqlite:{back}", "--data", third, check=True)
    assert not (third / "kiln.db.import").exists()
    assert audit(kiln, third) == after_pg
    (tmp_path / "third-run").mkdir()
    c = CasServer(kiln_bin, tmp_path / "third-run")
    c.data = third
    c.start()
    try:
        s, r = Workload(c, tmp_path).attest("cp/app", "app")
        assert s == 200 and r["argv"][1] == secret, r
    finally:
        assert c.stop() == 0
