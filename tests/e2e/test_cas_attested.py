"""The attested CAS (docs/cas.md "Attested CAS"): `kiln cas serve --tee T` serves
its own evidence at GET /v1/attestation?nonce=HEX, bound to its TLS key and the
client's nonce; `kiln cas verify` checks it as a user would, and KILN_CAS_EXPECT
makes `kiln policy` check it before sending anything. The attacks (a TLS
terminating proxy, a replayed answer, forged sim evidence) are in
security/test_cas_impersonation.py."""
import hashlib
import os
import secrets
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cas_fixtures import CasServer


@pytest.fixture
def acas(attested_cas):
    return attested_cas


def measurement(kiln, server):
    return server.workload_measurement()


def server_key_sha256(server):
    """SHA-256 of the SPKI DER of the CAS's TLS server certificate, as seen here."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        with server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as t:
            der = t.getpeercert(binary_form=True)
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def verify(kiln, server, *args):
    return kiln("cas", "verify", "--cas", server.url, "--cas-fingerprint", server.fingerprint,
                *args)


def test_verify_ok_sim_insecure(kiln, acas):
    m = measurement(kiln, acas)
    assert f"workload_measurement={m}" in acas.log()
    assert "attestation of the CAS is INSECURE" in acas.log()
    p = verify(kiln, acas, "--allow-sim", "--expect-measurement", m)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "tee sim: INSECURE" in out
    assert f"workload_measurement {m}: as expected" in out
    assert "bound by the evidence, and the key of this connection" in out
    assert "trusted (INSECURE)" in out
    # the key printed is the server certificate's key of that CAS
    key = [ln.split()[1] for ln in out.splitlines() if ln.startswith("tls_key ")][0]
    assert key == f"sha256:{server_key_sha256(acas)}:"


def test_sim_refused_without_allow_sim(kiln, acas):
    m = measurement(kiln, acas)
    p = verify(kiln, acas, "--expect-measurement", m)
    assert p.returncode == 1
    assert "NOT trusted" in p.stderr
    assert "sim evidence (INSECURE" in p.stderr and "--allow-sim" in p.stderr
    assert p.stdout == ""


def test_wrong_measurement(kiln, acas):
    m = measurement(kiln, acas)
    wrong = hashlib.sha384(b"another kiln-cas").hexdigest()
    p = verify(kiln, acas, "--allow-sim", "--expect-measurement", wrong)
    assert p.returncode == 1
    assert f"runs workload measurement {m}, not the expected {wrong}" in p.stderr
    p = verify(kiln, acas, "--allow-sim", "--expect-measurement", "12ab")
    assert p.returncode == 1 and "not 96 hex digits" in p.stderr


def test_no_expectation_prints_not_checked(kiln, acas):
    p = verify(kiln, acas, "--allow-sim")
    assert p.returncode == 0, p.stderr
    assert "NOT CHECKED" in p.stdout and "not trusted" in p.stdout


EXPECT = """\
name: expect/kiln-cas
services:
  - {{name: kiln-cas, command: [kiln, cas, serve], measurement: [{m}]}}
security: {{tee: [{tee}], allow_insecure_sim: {sim}}}
"""


def test_expect_policy_file(kiln, acas, tmp_path):
    m = measurement(kiln, acas)
    good = tmp_path / "good.yaml"
    good.write_text(EXPECT.format(m=m, tee="sim", sim="true"))
    p = verify(kiln, acas, "--allow-sim", "--expect", good)
    assert p.returncode == 0, p.stderr
    assert "allowed by the --expect policy" in p.stdout
    host_only = tmp_path / "host.yaml"
    host_only.write_text(EXPECT.format(m=m, tee="host", sim="false"))
    p = verify(kiln, acas, "--allow-sim", "--expect", host_only)
    assert p.returncode == 1
    assert "tee" in p.stderr and "sim" in p.stderr and "NOT trusted" in p.stderr
    other = tmp_path / "other.yaml"
    other.write_text(EXPECT.format(m=hashlib.sha384(b"x").hexdigest(), tee="sim", sim="true"))
    p = verify(kiln, acas, "--allow-sim", "--expect", other)
    assert p.returncode == 1 and "measurement" in p.stderr


def test_cas_without_tee(kiln, cas):
    s, body = cas.request("GET", "/v1/attestation?nonce=" + "00" * 32)
    assert s == 404
    assert "serves no attestation of itself" in body["error"]
    p = verify(kiln, cas, "--allow-sim")
    assert p.returncode == 1
    assert "answers 404" in p.stderr and "--tee" in p.stderr


def test_bad_nonce_query(acas):
    for q in ["", "?nonce=", "?nonce=abc", "?nonce=" + "zz" * 32, "?nonce=" + "00" * 33,
              "?x=1&nonce=" + "00" * 32]:
        s, body = acas.request("GET", "/v1/attestation" + q)
        assert s == 400, (q, body)
        assert "nonce" in body["error"]
    n = secrets.token_hex(32)
    s, body = acas.request("GET", "/v1/attestation?nonce=" + n)
    assert s == 200 and body["nonce"] == n and body["insecure"] is True
    assert "INSECURE" in body["warning"]


def test_serve_tee_without_hardware(kiln_bin, tmp_path):
    # KILN_TSM_PATH: no configfs-tsm there, even when the tests run in a CVM
    for tee, what in [("tdx", "cannot produce the CAS's evidence"),
                      ("snp", "cannot produce the CAS's evidence"), ("sgx", "SGX enclave"),
                      ("bogus", "sim (INSECURE), host, tdx or snp")]:
        server = CasServer(kiln_bin, tmp_path / tee, extra_args=["--tee", tee])
        (tmp_path / tee).mkdir()
        env_before = os.environ.get("KILN_TSM_PATH")
        os.environ["KILN_TSM_PATH"] = str(tmp_path / "no-tsm")
        try:
            rc = server.start(expect_fail=True)
        finally:
            if env_before is None:
                del os.environ["KILN_TSM_PATH"]
            else:
                os.environ["KILN_TSM_PATH"] = env_before
        assert rc == 1, server.log()
        assert f"--tee {tee}" in server.log()
        assert what in server.log(), server.log()


def test_host_backend(kiln, kiln_bin, las, tmp_path, monkeypatch):
    """host: kiln-las measures the CAS process and signs; the client trusts the
    kiln-las certificate (--trust) and nothing about it is INSECURE."""
    monkeypatch.setenv("KILN_LAS_SOCKET", str(las.sock))
    server = CasServer(kiln_bin, tmp_path, extra_args=["--tee", "host"]).start()
    try:
        m = measurement(kiln, server)
        p = verify(kiln, server, "--trust", las.cert, "--expect-measurement", m)
        assert p.returncode == 0, p.stderr
        assert "tee host: evidence verified" in p.stdout and "INSECURE" not in p.stdout
        assert "trusted: this CAS runs the expected kiln-cas" in p.stdout
        # without the kiln-las certificate nothing verifies
        p = verify(kiln, server, "--expect-measurement", m)
        assert p.returncode == 1 and "host evidence does not verify" in p.stderr
    finally:
        assert server.stop() == 0, server.log()


POLICY = """\
name: acme/app
services:
  - {name: app, command: [/bin/true], measurement: [any]}
security: {tee: [sim], allow_insecure_sim: true}
"""


def test_kiln_cas_expect_policy_apply(kiln, acas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    m = measurement(kiln, acas)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    env = acas.env(alice)
    # a bare measurement refuses sim: there is no opt-in in it
    p = kiln("policy", "apply", policy, env={**env, "KILN_CAS_EXPECT": m})
    assert p.returncode == 1
    assert "does not meet KILN_CAS_EXPECT" in p.stderr and "nothing was sent" in p.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(EXPECT.format(m=hashlib.sha384(b"x").hexdigest(), tee="sim", sim="true"))
    p = kiln("policy", "apply", policy, env={**env, "KILN_CAS_EXPECT": str(wrong)})
    assert p.returncode == 1
    assert "does not meet KILN_CAS_EXPECT" in p.stderr and "measurement" in p.stderr
    # nothing reached the CAS
    p = kiln("policy", "list", env=env, check=True)
    assert "acme/app" not in p.stdout
    good = tmp_path / "good.yaml"
    good.write_text(EXPECT.format(m=m, tee="sim", sim="true"))
    p = kiln("policy", "apply", policy, env={**env, "KILN_CAS_EXPECT": str(good)})
    assert p.returncode == 0, p.stderr
    assert "created acme/app" in p.stdout
    p = kiln("policy", "get", "acme/app", env={**env, "KILN_CAS_EXPECT": str(good)})
    assert p.returncode == 0, p.stderr


RUN_POLICY = """\
name: acme/run
services:
  - {name: app, command: [/bin/echo, "{{secret.pw}}"], measurement: [any]}
secrets:
  - {name: pw, kind: ascii, size: 16}
security: {tee: [sim], allow_insecure_sim: true}
"""


def test_kiln_cas_expect_run(kiln, acas, cas_identity, tmp_path):
    """kiln run checks the CAS before the program starts, and libkiln's own
    connections are pinned to the attested key (--cas-key, set from the check)."""
    alice, _ = cas_identity("alice")
    policy = tmp_path / "run.yaml"
    policy.write_text(RUN_POLICY)
    kiln("policy", "apply", policy, env=acas.env(alice), check=True)
    m = measurement(kiln, acas)
    good = tmp_path / "good.yaml"
    good.write_text(EXPECT.format(m=m, tee="sim", sim="true"))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(EXPECT.format(m=hashlib.sha384(b"x").hexdigest(), tee="sim", sim="true"))
    run = ["run", "--cas", acas.url, "--cas-fingerprint", acas.fingerprint, "--session",
           "acme/run", "--service", "app", "--tee", "sim", "--", "/bin/echo", "launcher"]
    p = kiln(*run, env={"KILN_CAS_EXPECT": str(good)})
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip()) == 16 and "launcher" not in p.stdout
    p = kiln(*run, env={"KILN_CAS_EXPECT": str(wrong)})
    assert p.returncode == 1
    assert "run: the CAS does not meet KILN_CAS_EXPECT" in p.stderr and p.stdout == ""
    # the pin reaches libkiln: another key than the CAS's is refused there
    p = kiln(*run[:1], "--cas-key", "sha256:" + "ab" * 32, *run[1:])
    assert p.returncode != 0 and p.stdout == ""
    assert "not the attested key sha256:" + "ab" * 32 in p.stderr, p.stderr
    p = kiln(*run[:1], "--cas-key", "sha256:" + server_key_sha256(acas), *run[1:])
    assert p.returncode == 0, p.stderr
