"""Attacks on a PostgreSQL store (`kiln cas serve --store URL`), by whoever
administers the database or holds the command line.

- a secret's ciphertext moved to another row: the CAS refuses to release it
  (it is bound to its row), and says so;
- a CAS process given another master key or another CA: refuses to start,
  naming the file, and changes nothing;
- a password in --store: never printed, not even when the connection fails;
- a --store value that is no connection string: a usage error."""
import shutil

from cas_fixtures import CasServer, Workload

POLICY = """\
name: {name}
secrets:
  - {{name: pw, kind: ascii, size: 24}}
services:
  - name: app
    command: [/bin/app, "{{{{secret.pw}}}}"]
    measurement: [any]
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def dump(pg_server, name):
    """The database's content (without pg_dump's random \\restrict key)."""
    return [ln for ln in pg_server.dump(name).splitlines()
            if not ln.startswith(("\\restrict", "\\unrestrict"))]


def test_moved_ciphertext_refused(kiln, kiln_bin, tmp_path, pg_server, cas_identity):
    name, _ = pg_server.new_store()
    cas = CasServer(kiln_bin, tmp_path, pg=(pg_server, name)).start()
    try:
        alice, _ = cas_identity("alice")
        for n in ("x/a", "x/b"):
            (tmp_path / "p.yaml").write_text(POLICY.format(name=n))
            kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(alice), check=True)
            s, _ = Workload(cas, tmp_path).attest(n, "app")
            assert s == 200
        # The database's administrator gives x/b the ciphertext of x/a's secret.
        pg_server.psql(name, "UPDATE secrets SET value = (SELECT value FROM secrets WHERE "
                       "session = 'x/a') WHERE session = 'x/b'")
        s, body = Workload(cas, tmp_path).attest("x/b", "app")
        assert s == 403 and body["error"] == "attestation refused", body
        line = [ln for ln in cas.log().splitlines() if body["request_id"] in ln]
        assert line and "configuration" in line[-1], line
        assert Workload(cas, tmp_path).attest("x/a", "app")[0] == 200
    finally:
        assert cas.stop() == 0


def test_other_key_or_ca_refused(kiln, kiln_bin, tmp_path, pg_server):
    name, _ = pg_server.new_store()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = CasServer(kiln_bin, tmp_path / "a", pg=(pg_server, name)).start()
    assert a.stop() == 0
    before = dump(pg_server, name)
    # A second process with no key of its own does not make one.
    b = CasServer(kiln_bin, tmp_path / "b", pg=(pg_server, name))
    assert b.start(expect_fail=True) == 1
    assert "master.key is missing but the store PostgreSQL database" in b.log()
    assert not (b.data / "master.key").exists()
    # A directory of its own (its master key and CA, made for another store).
    b.pg = (pg_server, pg_server.new_store()[0])
    b.start()
    assert b.stop() == 0
    b.pg = (pg_server, name)
    assert b.start(expect_fail=True) == 1
    assert "master.key does not belong to the store PostgreSQL database" in b.log()
    # The right master key, but its own CA.
    shutil.copy2(a.data / "master.key", b.data / "master.key")
    assert b.start(expect_fail=True) == 1
    assert "ca.pem is not the CA of the store PostgreSQL database" in b.log()
    assert dump(pg_server, name) == before
    # --master-key-file names the key wherever it is.
    shutil.copy2(a.data / "ca.key", b.data / "ca.key")
    shutil.copy2(a.data / "ca.pem", b.data / "ca.pem")
    (b.data / "master.key").unlink()
    b.extra_args = ["--master-key-file", str(a.data / "master.key")]
    b.start()
    assert b.fingerprint
    assert b.stop() == 0
    assert not (b.data / "master.key").exists()


def test_password_never_shown(kiln, tmp_path):
    secret = "Pw-ShouldNeverShow-8c1f"
    url = f"postgresql://kiln:{secret}@127.0.0.1:1/kiln?connect_timeout=2"
    for args in (("cas", "serve", "--data", tmp_path / "d", "--listen", "127.0.0.1:0",
                  "--store", url),
                 ("cas", "migrate", "--data", tmp_path, "--store", url),
                 ("audit", "verify", "--data", tmp_path, "--store", url)):
        p = kiln(*args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert secret not in p.stdout + p.stderr, p.stderr
        assert "127.0.0.1" in p.stderr or "no such data directory" in p.stderr, p.stderr
    p = kiln("cas", "serve", "--data", tmp_path / "d", "--store", "/var/lib/kiln.db")
    assert p.returncode == 2 and "expected a PostgreSQL connection URI" in p.stderr
