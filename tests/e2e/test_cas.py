"""kiln-cas end to end: identities, policies and access rules, predecessor
conflicts, secrets and substitution (checked with the openssl CLI), sim
attestation and every refusal, volumes, export/import, restarts, audit."""
import base64
import hashlib
import json
import os
import re
import socket
import sqlite3
import ssl
import stat
import subprocess
import time

import pytest

from cas_fixtures import STORES, CasServer, Workload, assert_refused, refusal

WM = hashlib.sha384(b"test workload").digest()


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def apply(kiln, cas, ident, path, check=True):
    return kiln("policy", "apply", path, env=cas.env(ident), check=check)


SIM_POLICY = """\
name: {name}
predecessor: {pred}
access: {{read: [owner], update: [owner]}}
secrets:
  - {{name: pw, kind: ascii, size: 24}}
  - {{name: pin, kind: ascii, size: 20, charset: "0123456789"}}
  - {{name: blob, kind: binary, size: 16}}
  - {{name: sig, kind: key, algorithm: ed25519}}
  - {{name: rsa, kind: key, algorithm: rsa3072}}
  - {{name: ca, kind: x509-ca, common_name: "Acme CA"}}
  - {{name: tls, kind: x509, issuer: ca, dns: [db.acme.internal], ip: [10.0.0.7]}}
volumes:
  - {{name: data}}
services:
  - name: db
    command: [/usr/bin/db, "--password={{{{secret.pw}}}}", "{{{{host.PORT}}}}"]
    host_env: [PORT]
    environment:
      PW: "{{{{secret.pw}}}}"
      PIN: "{{{{secret.pin}}}}"
      BLOB_HEX: "{{{{secret.blob.hex}}}}"
      BLOB_B64: "{{{{secret.blob.base64}}}}"
      SIG_PUB: "{{{{secret.sig.pem}}}}"
    pwd: /srv
    files:
      - {{path: /etc/tls.pem, content: "{{{{secret.tls.pem}}}}", mode: "0640"}}
      - {{path: /etc/tls.key, content: "{{{{secret.tls.key}}}}"}}
      - {{path: /etc/chain.pem, content: "{{{{secret.tls.chain}}}}"}}
      - {{path: /etc/ca.pem, content: "{{{{secret.ca}}}}"}}
      - {{path: /etc/rsa.key, content: "{{{{secret.rsa.key}}}}"}}
      - {{path: /etc/blob, content: "{{{{secret.blob}}}}"}}
    mounts:
      - {{volume: data, path: /data}}
    measurement: [{meas}]
  - name: pinned
    command: [/bin/true]
    measurement: [{other}]
security:
  tee: [{tee}]
  allow_insecure_sim: {sim}
"""


def sim_policy(name="acme/db", pred="null", tee="sim", sim="true", meas="any"):
    return SIM_POLICY.format(name=name, pred=pred, tee=tee, sim=sim, meas=meas,
                             other="0" * 96)


def test_identity_create_and_show(kiln, tmp_path):
    path = tmp_path / "id.pem"
    p = kiln("identity", "create", "--out", path, check=True)
    ident = p.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ident)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert kiln("identity", "show", path, check=True).stdout.strip() == ident
    p = kiln("identity", "create", "--out", path)
    assert p.returncode == 1 and "File exists" in p.stderr
    p = kiln("identity", "create", "--out", tmp_path / "x.pem", "--algorithm", "p521")
    assert p.returncode == 2 and "unknown algorithm 'p521'" in p.stderr
    (tmp_path / "junk.pem").write_text("junk")
    (tmp_path / "junk.pem").chmod(0o600)
    p = kiln("identity", "show", tmp_path / "junk.pem")
    assert p.returncode == 1 and "no PEM private key" in p.stderr


def test_validate_reports_file_line_col(kiln, tmp_path):
    path = write(tmp_path, "bad.yaml", "name: x\nservices:\n  - name: s\n    comand: [x]\n")
    p = kiln("policy", "validate", path)
    assert p.returncode == 1
    assert p.stderr == (f"kiln: {path}:4:5: unknown key 'comand' in service "
                        "(did you mean 'command'?)\n")
    good = write(tmp_path, "good.yaml", sim_policy())
    p = kiln("policy", "validate", good, check=True)
    assert re.fullmatch(r".*: ok, sha256:[0-9a-f]{64}\n", p.stdout)


@pytest.mark.parametrize("cas_store", STORES)
def test_owner_vs_stranger(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    path = write(tmp_path, "p.yaml", sim_policy())
    p = apply(kiln, cas, alice, path)
    assert p.stdout.startswith("created acme/db version 1 sha256:")
    # Bob sees the same answer for an existing and a missing policy.
    p1 = kiln("policy", "get", "acme/db", env=cas.env(bob))
    p2 = kiln("policy", "get", "acme/nothing", env=cas.env(bob))
    assert p1.returncode == p2.returncode == 1
    assert "403: not allowed or not found" in p1.stderr
    assert p1.stderr == p2.stderr.replace("acme/nothing", "acme/db")
    assert kiln("policy", "list", env=cas.env(bob), check=True).stdout == ""
    assert kiln("policy", "delete", "acme/db", env=cas.env(bob)).returncode == 1
    # Bob cannot overwrite it either, even naming the right predecessor.
    h = p.stdout.split()[-1]
    upd = write(tmp_path, "u.yaml", sim_policy(pred=h))
    p = apply(kiln, cas, bob, upd, check=False)
    assert p.returncode == 1 and "403: not allowed or not found" in p.stderr
    # Alice reads it back verbatim and lists it.
    assert kiln("policy", "get", "acme/db", env=cas.env(alice), check=True).stdout == \
        open(path).read()
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == \
        f"acme/db 1 {h}\n"
    # Without an identity the API answers 401.
    status, body = cas.request("GET", "/v1/policies")
    assert status == 401
    # Granting Bob read access makes it visible to him, not writable.
    shared = sim_policy(pred=h).replace("read: [owner]", f"read: [owner, {bob_id}]")
    p = apply(kiln, cas, alice, write(tmp_path, "s.yaml", shared))
    assert p.stdout.startswith("updated acme/db version 2")
    assert "name: acme/db" in kiln("policy", "get", "acme/db", env=cas.env(bob),
                                   check=True).stdout
    h2 = p.stdout.split()[-1]
    p = apply(kiln, cas, bob, write(tmp_path, "b.yaml", sim_policy(pred=h2)), check=False)
    assert "403" in p.stderr
    p = kiln("policy", "delete", "acme/db", env=cas.env(alice), check=True)
    assert p.stdout == "deleted acme/db\n"
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == ""


@pytest.mark.parametrize("cas_store", STORES)
def test_predecessor_conflict(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    h1 = apply(kiln, cas, alice, write(tmp_path, "1.yaml", sim_policy())).stdout.split()[-1]
    h2 = apply(kiln, cas, alice, write(tmp_path, "2.yaml", sim_policy(pred=h1))) \
        .stdout.split()[-1]
    assert h1 != h2
    # A second writer still based on h1 loses: both hashes are named.
    p = apply(kiln, cas, alice, write(tmp_path, "3.yaml", sim_policy(pred=h1, meas="any\n")),
              check=False)
    assert p.returncode == 1
    assert f"409: predecessor {h1} does not match the current hash {h2}" in p.stderr
    p = apply(kiln, cas, alice, write(tmp_path, "4.yaml", sim_policy()), check=False)
    assert f"predecessor null does not match the current hash {h2}" in p.stderr
    p = apply(kiln, cas, alice, write(tmp_path, "5.yaml", sim_policy(name="new", pred=h1)),
              check=False)
    assert "does not exist" in p.stderr


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], input=input, capture_output=True, text=True)


@pytest.mark.parametrize("cas_store", STORES)
def test_sim_attestation_and_substitution(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    apply(kiln, cas, alice, write(tmp_path, "p.yaml", sim_policy()))
    w = Workload(cas, tmp_path)
    status, r = w.attest("acme/db", "db", host={"PORT": "5432"})
    assert status == 200, (r, cas.log())
    assert r["insecure"] is True and r["tee"] == "sim"
    env = r["env"]
    pw = env["PW"]
    assert re.fullmatch(r"[A-Za-z0-9]{24}", pw)
    assert r["argv"] == ["/usr/bin/db", f"--password={pw}", "5432"]
    assert r["pwd"] == "/srv"
    assert re.fullmatch(r"[0-9]{20}", env["PIN"])
    files = {f["path"]: f for f in r["files"]}
    blob = base64.b64decode(files["/etc/blob"]["content"])
    assert len(blob) == 16 and env["BLOB_HEX"] == blob.hex()
    assert base64.b64decode(env["BLOB_B64"]) == blob
    assert files["/etc/tls.pem"]["mode"] == "0640" and files["/etc/tls.key"]["mode"] == "0600"
    for path in ("/etc/tls.pem", "/etc/tls.key", "/etc/chain.pem", "/etc/ca.pem",
                 "/etc/rsa.key"):
        (tmp_path / path.split("/")[-1]).write_bytes(base64.b64decode(files[path]["content"]))
    # The leaf parses, carries the SANs and chains to the CA secret.
    p = openssl("x509", "-in", tmp_path / "tls.pem", "-noout", "-text")
    assert p.returncode == 0, p.stderr
    assert "DNS:db.acme.internal" in p.stdout and "IP Address:10.0.0.7" in p.stdout
    assert "Issuer: CN = Acme CA" in p.stdout
    p = openssl("verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "tls.pem")
    assert p.returncode == 0 and ": OK" in p.stdout, p.stdout + p.stderr
    assert (tmp_path / "chain.pem").read_text().count("BEGIN CERTIFICATE") == 2
    # The key matches the certificate.
    pub_cert = openssl("x509", "-in", tmp_path / "tls.pem", "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", tmp_path / "tls.key", "-pubout").stdout
    assert pub_cert and pub_cert == pub_key
    p = openssl("pkey", "-in", tmp_path / "rsa.key", "-noout", "-text")
    assert "3072 bit" in p.stdout
    p = openssl("pkey", "-pubin", "-noout", "-text", input=env["SIG_PUB"])
    assert p.returncode == 0 and "ED25519" in p.stdout
    # Volumes: a key and a fresh tag.
    (vol,) = r["volumes"]
    assert vol["name"] == "data" and vol["path"] == "/data"
    assert re.fullmatch(r"[0-9a-f]{64}", vol["key"])
    assert vol["tag"] == {"committed": 0, "prepared": None}
    # Every log line about it says INSECURE.
    assert "attestation ok (INSECURE: sim backend" in cas.log()
    # Secrets are stable: a second attestation gets the same values.
    status, r2 = Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})
    assert status == 200
    assert r2["env"] == env and r2["files"] == r["files"] and r2["volumes"] == r["volumes"]
    # A host value the launcher did not supply refuses (it would be empty).
    status, _ = Workload(cas, tmp_path).attest("acme/db", "db")
    assert status == 403
    assert 'reason="configuration: command[2]: host value \'PORT\' was not supplied' in \
        cas.log()


@pytest.mark.parametrize("cas_store", STORES)
def test_secrets_stable_across_restart(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    apply(kiln, cas, alice, write(tmp_path, "p.yaml", sim_policy()))
    status, r1 = Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})
    assert status == 200
    cas.restart()
    status, r2 = Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})
    assert status == 200
    assert r1["env"] == r2["env"] and r1["files"] == r2["files"]
    assert r1["volumes"] == r2["volumes"]
    # Secrets are encrypted at rest: the password is nowhere in the store (nor
    # in a dump of the PostgreSQL database).
    pw = r1["env"]["PW"].encode()
    for f in os.listdir(cas.data):
        assert pw not in (cas.data / f).read_bytes(), f
    if cas.pg:
        dump = cas.pg[0].dump(cas.pg[1])
        assert "acme/db" in dump and r1["env"]["PW"] not in dump
        assert r1["env"]["PIN"] not in dump and r1["env"]["BLOB_HEX"] not in dump
    # A policy update that leaves a secret's definition alone keeps its value;
    # changing the definition generates a new one.
    h = kiln("policy", "get", "acme/db", "--json", env=cas.env(alice), check=True).stdout
    h = json.loads(h)["hash"]
    upd = sim_policy(pred=h).replace("command: [/bin/true]", "command: [/bin/false]")
    h2 = apply(kiln, cas, alice, write(tmp_path, "u.yaml", upd)).stdout.split()[-1]
    status, r3 = Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})
    assert status == 200 and r3["env"] == r1["env"]
    upd = sim_policy(pred=h2).replace("size: 24}", "size: 30}")
    apply(kiln, cas, alice, write(tmp_path, "v.yaml", upd))
    status, r4 = Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})
    assert status == 200 and len(r4["env"]["PW"]) == 30
    assert r4["env"]["PIN"] == r1["env"]["PIN"]


def test_attestation_refusals(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    apply(kiln, cas, alice, write(tmp_path, "a.yaml", sim_policy()))
    apply(kiln, cas, alice, write(tmp_path, "b.yaml", sim_policy(name="nosim", sim="false")))
    apply(kiln, cas, alice, write(tmp_path, "c.yaml", sim_policy(name="hostonly", tee="host")))
    apply(kiln, cas, alice, write(tmp_path, "d.yaml",
                                  sim_policy(name="pinned", meas=WM.hex())))
    w = Workload(cas, tmp_path)
    host = {"PORT": "1"}
    s, b = w.attest("nosim", "db", host=host)
    assert_refused(cas, s, b, "sim_not_allowed", "security.allow_insecure_sim is false")
    s, b = w.attest("hostonly", "db", host=host)
    assert_refused(cas, s, b, "tee_not_allowed", 'tee \\"sim\\" not in security.tee [host]')
    s, b = w.attest("acme/db", "pinned", host=host)
    assert_refused(cas, s, b, "wrong_measurement", "not in service 'pinned' measurement")
    s, b = w.attest("acme/db", "nope", host=host)
    assert_refused(cas, s, b, "unknown_service", 'unknown service \\"nope\\"')
    s, b = w.attest("acme/none", "db", host=host)
    assert_refused(cas, s, b, "unknown_session", 'unknown session \\"acme/none\\"')
    # A pinned measurement that matches is accepted.
    s, b = w.attest("pinned", "db", host=host)
    assert s == 200, cas.log()
    # Nonces: never issued, then replayed.
    s, b = w.attest("acme/db", "db", nonce="ab" * 32, host=host)
    assert_refused(cas, s, b, "stale_nonce", "stale nonce")
    n = w.nonce()
    s, b = w.attest("acme/db", "db", nonce=n, host=host)
    assert s == 200
    s, b = w.attest("acme/db", "db", nonce=n, host=host)
    assert_refused(cas, s, b, "stale_nonce", "stale nonce")
    # Evidence bound to another key (stolen evidence replayed on a new channel).
    other = Workload(cas, tmp_path)
    n = w.nonce()
    s, b = w.attest("acme/db", "db", nonce=n, evidence=other.evidence(n), host=host)
    assert_refused(cas, s, b, "binding_mismatch", "binding mismatch")
    # Evidence that claims another measurement than the one it was bound with.
    n = w.nonce()
    ev = base64.b64decode(w.evidence(n)).replace(WM.hex().encode(), b"1" * 96)
    s, b = w.attest("acme/db", "db", nonce=n, evidence=base64.b64encode(ev).decode(),
                    host=host)
    assert_refused(cas, s, b, "binding_mismatch", "binding mismatch")
    s, b = w.attest("acme/db", "db", evidence="not base64!", host=host)
    assert_refused(cas, s, b, "bad_evidence", "evidence is not base64")
    s, b = w.attest("acme/db", "db", tee="sgx9", host=host)
    assert_refused(cas, s, b, "unknown_tee", 'unknown tee \\"sgx9\\"')
    n = w.nonce()
    s, b = w.attest("acme/db", "db", nonce=n,
                    evidence=base64.b64encode(b'{"tee": "sim"}').decode(), host=host)
    assert_refused(cas, s, b, "bad_evidence", "evidence does not verify")
    # Without a client certificate: 401; malformed body: 400.
    s, b = cas.request("POST", "/v1/attest", {"session": "acme/db"})
    assert s == 401
    s, b = w.post("/v1/attest", {"session": "acme/db"})
    assert s == 400
    # The secret values never appear in the refusal answers or the log.
    assert "attestation ok" in cas.log()


@pytest.mark.parametrize("cas_store", STORES)
def test_volumes_prepare_commit(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    apply(kiln, cas, alice, write(tmp_path, "a.yaml", sim_policy()))
    w = Workload(cas, tmp_path)
    s, r = w.attest("acme/db", "db", host={"PORT": "1"})
    assert s == 200
    vid = r["volumes"][0]["id"]
    base = f"/v1/volumes/{vid}"
    assert w.get(base + "/tag") == (200, {"committed": 0, "prepared": None})
    assert w.post(base + "/commit", {"tag": 1})[0] == 409
    assert w.post(base + "/prepare", {"tag": 1}) == (200, {"committed": 0, "prepared": 1})
    assert w.post(base + "/prepare", {"tag": 1})[0] == 200  # retried
    # 1's commit never came: 1 is abandoned, the next prepare goes above it and
    # 1 is never prepared or committed again (a version names one content).
    assert w.post(base + "/prepare", {"tag": 2}) == (200, {"committed": 0, "prepared": 2})
    assert w.post(base + "/prepare", {"tag": 1})[0] == 409
    assert w.post(base + "/commit", {"tag": 1})[0] == 409
    assert w.post(base + "/commit", {"tag": 2}) == (200, {"committed": 2, "prepared": None})
    s, b = w.post(base + "/prepare", {"tag": 2})
    assert s == 409 and b["committed"] == 2
    assert w.post(base + "/prepare", {"tag": "x"})[0] == 400
    # A key that holds no grant (never attested) is refused, so is no key.
    stranger = Workload(cas, tmp_path)
    assert stranger.post(base + "/prepare", {"tag": 2})[0] == 403
    assert cas.request("GET", base + "/tag")[0] == 401
    assert w.get("/v1/volumes/" + "0" * 32 + "/tag")[0] == 403
    # The next attestation sees the committed tag; tags survive a restart, and
    # so does the grant (a row of the store).
    cas.restart()
    s, r = Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})
    assert r["volumes"][0]["tag"] == {"committed": 2, "prepared": None}
    assert w.post(base + "/prepare", {"tag": 3}) == (200, {"committed": 2, "prepared": 3})


def test_export_import(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    exporter = f"""\
name: acme/keys
secrets:
  - {{name: api, kind: ascii, export: [{{session: beta/app, owner: "{bob_id}"}}]}}
  - {{name: private, kind: ascii}}
services:
  - {{name: s, command: ["{{{{secret.api}}}}"], measurement: [any]}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""
    h = apply(kiln, cas, alice, write(tmp_path, "e.yaml", exporter)).stdout.split()[-1]

    def importer(name, secret, pinned):
        return f"""\
name: {name}
secrets:
  - {{name: k, import: {{session: acme/keys, secret: {secret}, policy_hash: "{pinned}"}}}}
services:
  - {{name: s, command: ["{{{{secret.k}}}}"], measurement: [any]}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""
    apply(kiln, cas, bob, write(tmp_path, "i1.yaml", importer("beta/app", "api", h)))
    apply(kiln, cas, bob, write(tmp_path, "i2.yaml", importer("beta/other", "api", h)))
    apply(kiln, cas, bob, write(tmp_path, "i3.yaml", importer("beta/app2", "private", h)))
    apply(kiln, cas, bob, write(tmp_path, "i4.yaml",
                                importer("beta/app3", "api", "sha256:" + "1" * 64)))
    s, a = Workload(cas, tmp_path).attest("acme/keys", "s")
    s2, b = Workload(cas, tmp_path).attest("beta/app", "s")
    assert s == s2 == 200
    assert a["argv"] == b["argv"] and len(a["argv"][0]) == 32
    for name, label, why in (
            ("beta/other", "export_refused", "does not export 'api' to 'beta/other'"),
            ("beta/app2", "export_refused", "does not export 'private'"),
            ("beta/app3", "config_error", "not the pinned sha256:1111")):
        s, body = Workload(cas, tmp_path).attest(name, "s")
        assert_refused(cas, s, body, label, why)


@pytest.mark.parametrize("cas_store", STORES)
def test_audit_chain_and_tamper(kiln, kiln_bin, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    h = apply(kiln, cas, alice, write(tmp_path, "p.yaml", sim_policy())).stdout.split()[-1]
    apply(kiln, cas, alice, write(tmp_path, "q.yaml", sim_policy(pred=h)))
    assert Workload(cas, tmp_path).attest("acme/db", "db", host={"PORT": "1"})[0] == 200
    las_key, las_cert = Workload(cas, tmp_path).key, Workload(cas, tmp_path).cert
    from cryptography.hazmat.primitives import serialization
    (tmp_path / "las.pem").write_bytes(las_cert.public_bytes(serialization.Encoding.PEM))
    p = kiln("cas", "trust-las", tmp_path / "las.pem", "--data", cas.data, *cas.store_args,
             check=True)
    assert p.stdout.startswith("trusted kiln-las sha256:")
    kiln("policy", "delete", "acme/db", env=cas.env(alice), check=True)
    cas.stop()
    p = kiln("audit", "show", "--data", cas.data, *cas.store_args, check=True)
    kinds = [ln.split()[2] for ln in p.stdout.splitlines()]
    assert kinds == ["policy.create", "policy.update", "secrets.release", "trust.las",
                     "policy.delete"]
    assert f"actor={alice_id}" in p.stdout
    p = kiln("audit", "verify", "--data", cas.data, *cas.store_args, check=True)
    assert p.stdout == "audit log ok: 5 entries, chain and signatures verified\n"

    db = str(cas.data / "kiln.db")

    def tamper(sql):
        if cas.pg:
            cas.pg[0].psql(cas.pg[1], sql)
            return
        c = sqlite3.connect(db)
        c.executescript(sql)
        c.commit()
        c.close()

    def verify():
        return kiln("audit", "verify", "--data", cas.data, *cas.store_args)

    def restore():
        if cas.pg:
            tamper("DELETE FROM audit; INSERT INTO audit SELECT * FROM audit_copy;")
        else:
            for suffix in ("-wal", "-shm"):
                if (cas.data / ("kiln.db" + suffix)).exists():
                    (cas.data / ("kiln.db" + suffix)).unlink()
            (cas.data / "kiln.db").write_bytes(backup)
        assert verify().returncode == 0

    if cas.pg:
        tamper("CREATE TABLE audit_copy AS SELECT * FROM audit;")
    else:
        # Checkpoint so the backup holds everything.
        tamper("PRAGMA wal_checkpoint(TRUNCATE);")
        backup = (cas.data / "kiln.db").read_bytes()
    tamper("UPDATE audit SET actor = 'sha256:" + "0" * 64 + "' WHERE seq = 2;")
    p = verify()
    assert p.returncode == 1 and "audit entry 2: content does not match its hash" in p.stderr
    restore()
    tamper("DELETE FROM audit WHERE seq = 3;")
    p = verify()
    assert p.returncode == 1 and "audit entry 4: expected sequence number 3" in p.stderr
    restore()
    # Reordering: swap entries 2 and 3 (with their hashes and signatures).
    tamper("UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;"
           "UPDATE audit SET seq = 3 WHERE seq = 100;")
    p = verify()
    assert p.returncode == 1 and "audit entry 2: prev" in p.stderr
    restore()
    tamper("DELETE FROM audit WHERE seq = 5;")
    p = verify()
    assert p.returncode == 1 and "entries were removed from the end" in p.stderr
    restore()
    # Re-hashing an edited entry does not help: the signature is the CAS key's.
    tamper("UPDATE audit SET details = '{}' WHERE seq = 1;")
    assert verify().returncode == 1


def test_master_key_missing_or_corrupt(kiln_bin, cas, tmp_path):
    cas.stop()
    key = cas.data / "master.key"
    good = key.read_bytes()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    key.unlink()
    rc = cas.start(expect_fail=True)
    assert rc == 1
    assert "master.key is missing but the store" in cas.log()
    assert not key.exists()  # never regenerated
    key.write_bytes(good[:10])
    key.chmod(0o600)  # a key file others may read is refused first
    assert cas.start(expect_fail=True) == 1
    assert "master.key is corrupt: 10 bytes, expected 32" in cas.log()
    key.write_bytes(bytes(32))
    assert cas.start(expect_fail=True) == 1
    assert "master.key does not belong to the store" in cas.log()
    key.write_bytes(good)
    cas.start()
    assert cas.request("GET", "/v1/nonce")[0] == 200


def test_hostile_http(cas, tmp_path):
    ctx = cas.ssl_context()

    def raw(data, read=True):
        with socket.create_connection(("127.0.0.1", cas.port), timeout=30) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(data)
                out = b""
                # The status line and headers are enough; the server may keep
                # the connection open after an early error answer.
                while read and b"\r\n\r\n" not in out:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                return out

    assert raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    big = b"POST /v1/policies HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n" + \
        b"a" * 100
    assert raw(big).startswith(b"HTTP/1.1 413")
    hdr = b"GET /v1/nonce HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
    # Oversized headers: a 4xx answer or the connection closed mid-request.
    try:
        out = raw(hdr)
        assert out == b"" or out.startswith(b"HTTP/1.1 4"), out[:40]
    except (ssl.SSLError, ConnectionError):
        pass
    # Methods outside GET/POST/DELETE: 501.
    assert raw(b"PUT /v1/nonce HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 501")
    assert raw(b"POST /v1/nonce HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert raw(b"GET /v1/volumes/zz/tag HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.1 404")
    # Plain HTTP on the TLS port, and a half-open TLS handshake: no crash.
    with socket.create_connection(("127.0.0.1", cas.port), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        s.settimeout(5)
        try:
            s.recv(100)
        except (socket.timeout, ConnectionError):
            pass
    with socket.create_connection(("127.0.0.1", cas.port), timeout=30) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
    # Not TLS 1.3: refused.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(cafile=cas.ca_file)
    with socket.create_connection(("127.0.0.1", cas.port), timeout=30) as s:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(s, server_hostname="127.0.0.1")
    assert cas.request("GET", "/v1/nonce")[0] == 200
    assert cas.proc.poll() is None


def test_metrics_and_client_pinning(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    path = write(tmp_path, "p.yaml", sim_policy())
    # Pin by CA file instead of fingerprint.
    p = kiln("policy", "apply", path, "--cas", cas.url, "--identity", alice, "--cas-ca",
             cas.ca_file, check=True)
    assert p.stdout.startswith("created")
    # A wrong pin is refused before anything is sent.
    p = kiln("policy", "list", "--cas", cas.url, "--identity", alice, "--cas-fingerprint",
             "00" * 32)
    assert p.returncode == 1 and "does not contain the pinned CA" in p.stderr
    other = CasServer(cas.kiln_bin, tmp_path / "other")
    (tmp_path / "other").mkdir()
    other.start()
    try:
        p = kiln("policy", "list", "--cas", cas.url, "--identity", alice, "--cas-ca",
                 other.ca_file)
        assert p.returncode == 1 and "does not chain to the pinned CA" in p.stderr
    finally:
        other.stop()
    p = kiln("policy", "list", "--identity", alice, env={"KILN_CAS": ""})
    assert p.returncode == 2
    m = cas.metrics()
    assert 'kiln_cas_requests_total{path="/v1/policies",code="201"} 1' in m
    assert "kiln_cas_request_duration_seconds_bucket{le=\"+Inf\"}" in m
    assert re.search(r"kiln_cas_request_duration_seconds_count \d+", m)


def test_cas_cli_usage(kiln, tmp_path):
    assert kiln("cas", "--help").returncode == 0
    assert kiln("cas", "serve").returncode == 2
    assert kiln("cas", "bogus").returncode == 2
    assert kiln("policy", "bogus").returncode == 2
    assert kiln("audit", "verify").returncode == 2
    p = kiln("audit", "verify", "--data", tmp_path / "none")
    assert p.returncode == 1 and "no such data directory" in p.stderr
    p = kiln("cas", "serve", "--data", tmp_path / "d", "--listen", "nonsense")
    assert p.returncode == 1 and "expected HOST:PORT" in p.stderr


def test_clients_that_leave_early(kiln, cas, cas_identity, tmp_path):
    """Writers that close their connection before the answer (which waits for
    the group commit) must not crash the CAS, and their writes still land."""
    import threading
    alice, _ = cas_identity("alice")
    ctx = cas.ssl_context(alice)

    def hit(i):
        body = f"name: early/p{i}\nsecrets: [{{name: s, kind: ascii}}]\n".encode()
        req = (b"POST /v1/policies HTTP/1.1\r\nHost: x\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\n\r\n" + body)
        with socket.create_connection(("127.0.0.1", cas.port), timeout=30) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(req)
        # closed without reading the answer

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every request was complete when sent: each policy ends up stored. The
    # server may still be reading some of them: poll (bounded, not timed).
    names = set()
    for _ in range(300):
        out = kiln("policy", "list", env=cas.env(alice), check=True).stdout
        names = {ln.split()[0] for ln in out.splitlines()}
        if len(names) == 24:
            break
        time.sleep(0.1)
    assert names == {f"early/p{i}" for i in range(24)}
    assert cas.proc.poll() is None


def test_fingerprint_san_and_sigint(kiln, kiln_bin, tmp_path):
    (tmp_path / "w").mkdir()
    server = CasServer(kiln_bin, tmp_path / "w", ["--san", "cas.example.internal",
                                                   "--san", "10.1.2.3"]).start()
    try:
        p = kiln("cas", "fingerprint", "--data", server.data, check=True)
        assert p.stdout.strip() == server.fingerprint
        der = ssl.PEM_cert_to_DER_cert(open(server.ca_file).read())
        assert hashlib.sha256(der).hexdigest() == server.fingerprint
        pem = ssl.get_server_certificate(("127.0.0.1", server.port))
        (tmp_path / "srv.pem").write_text(pem)
        text = openssl("x509", "-in", tmp_path / "srv.pem", "-noout", "-text").stdout
        for san in ("DNS:localhost", "DNS:cas.example.internal", "IP Address:127.0.0.1",
                    "IP Address:10.1.2.3"):
            assert san in text, text
    finally:
        import signal as _signal
        assert server.stop(_signal.SIGINT) == 0
    assert "shutting down" in server.log()
