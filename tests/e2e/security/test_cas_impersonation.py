"""Attacks on the CAS's own attestation (docs/cas.md "Attested CAS").

The attacker owns the host, so it can read the CAS's data directory, ca.key
included: it can make a certificate of the pinned CA for a key of its own and
put a TLS-terminating proxy in front of the real CAS. The CA pin then passes;
only the attestation, bound to the real CAS's TLS key and the client's nonce,
tells the two apart. Each attack is done with a small python proxy holding such
a certificate; every client check must refuse it with a reason naming it, send
nothing, while the same check straight to the CAS passes."""
import base64
import datetime
import hashlib
import ipaddress
import json
import secrets
import socket
import ssl
import threading
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def ca_signed_cert(cas, tmp_path):
    """A server certificate for 127.0.0.1 of the attacker's own key, signed with
    the CAS's CA key read from its data directory."""
    ca_key = serialization.load_pem_private_key((cas.data / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((cas.data / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiln-cas")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = tmp_path / "evil.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) +
                    cert.public_bytes(serialization.Encoding.PEM) +
                    ca_cert.public_bytes(serialization.Encoding.PEM))
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, hashlib.sha256(spki).digest()


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def http_answer(status, body):
    body = body.encode() if isinstance(body, str) else body
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class EvilProxy:
    """TLS with a certificate of the CAS's CA (the attacker's key) in front of the
    real CAS. mode: "forward" passes requests on; "replay" answers
    /v1/attestation with an answer the CAS gave for a nonce of the attacker's;
    "rewrite" does the same with its nonce and key fields set to the client's;
    "forge" answers sim evidence of its own, correctly bound to its key and the
    client's nonce, with the real CAS's measurement."""

    def __init__(self, cas, tmp_path, mode):
        self.cas, self.mode = cas, mode
        self.pem, self.key_sha256 = ca_signed_cert(cas, tmp_path)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.pem)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.requests = []
        _, self.recorded = cas.request("GET", "/v1/attestation?nonce=" + secrets.token_hex(32))
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as conn:
                    req = read_request(conn)
                    if req:
                        conn.sendall(self.answer(*req))
            except (OSError, ssl.SSLError):
                pass

    def answer(self, head, body):
        line = head.split(b"\r\n")[0].decode()
        method, target = line.split()[0], line.split()[1]
        self.requests.append(line)
        url = urlparse(target)
        if url.path == "/v1/attestation" and self.mode != "forward":
            nonce = parse_qs(url.query).get("nonce", [""])[0]
            a = dict(self.recorded)
            if self.mode == "rewrite":
                a["nonce"] = nonce
                a["server_key"] = "sha256:" + self.key_sha256.hex()
            elif self.mode == "forge":
                wm = bytes.fromhex(a["workload_measurement"])
                rd = hashlib.sha512(b"kiln-cas-v1" + self.key_sha256 + bytes.fromhex(nonce) +
                                    wm).digest()
                ev = json.dumps({"tee": "sim", "report_data": rd.hex(),
                                 "workload_measurement": wm.hex()})
                a.update(nonce=nonce, server_key="sha256:" + self.key_sha256.hex(),
                         evidence=base64.b64encode(ev.encode()).decode())
            return http_answer(200, json.dumps(a))
        # forward: the real CAS, over TLS verified against its CA
        headers = {}
        for h in head.split(b"\r\n")[1:]:
            name, _, value = h.decode().partition(":")
            if name.lower() not in ("host", "connection", "content-length"):
                headers[name] = value.strip()
        status, answer = self.cas.request(method, target, body=body or None, headers=headers)
        return http_answer(status, answer if isinstance(answer, str) else json.dumps(answer))

    def close(self):
        self.sock.close()


@pytest.fixture
def acas(attested_cas):
    return attested_cas


def expected(kiln, cas):
    return cas.workload_measurement()


def verify(kiln, cas, url, *args):
    return kiln("cas", "verify", "--cas", url, "--cas-fingerprint", cas.fingerprint,
                "--allow-sim", *args)


def test_tls_terminating_proxy_refused(kiln, acas, cas_identity, tmp_path):
    m = expected(kiln, acas)
    proxy = EvilProxy(acas, tmp_path, "forward")
    try:
        # the honest path passes
        assert verify(kiln, acas, acas.url, "--expect-measurement", m).returncode == 0
        p = verify(kiln, acas, proxy.url, "--expect-measurement", m)
        assert p.returncode == 1, p.stdout
        assert "terminates TLS" in p.stderr
        assert f"this connection's server key is sha256:{proxy.key_sha256.hex()}" in p.stderr
        # KILN_CAS_EXPECT: kiln policy sends nothing through the proxy
        alice, _ = cas_identity("alice")
        good = tmp_path / "expect.yaml"
        good.write_text("name: e/cas\nservices:\n  - {name: kiln-cas, command: [kiln], "
                        f"measurement: [{m}]}}\nsecurity: {{tee: [sim], "
                        "allow_insecure_sim: true}\n")
        policy = tmp_path / "p.yaml"
        policy.write_text("name: acme/x\nservices:\n  - {name: a, command: [/bin/true], "
                          "measurement: [any]}\nsecurity: {tee: [sim], "
                          "allow_insecure_sim: true}\n")
        env = {**acas.env(alice), "KILN_CAS": proxy.url, "KILN_CAS_EXPECT": str(good)}
        n = len(proxy.requests)
        p = kiln("policy", "apply", policy, env=env)
        assert p.returncode == 1
        assert "does not meet KILN_CAS_EXPECT" in p.stderr and "terminates TLS" in p.stderr
        assert [r for r in proxy.requests[n:] if not r.startswith("GET /v1/attestation")] == []
        p = kiln("policy", "list", env=acas.env(alice), check=True)
        assert "acme/x" not in p.stdout
        # straight to the CAS the same expectation passes, and pins the key
        p = kiln("policy", "apply", policy, env={**env, "KILN_CAS": acas.url})
        assert p.returncode == 0, p.stderr
    finally:
        proxy.close()


@pytest.mark.parametrize("mode,why", [
    # an answer the CAS gave for a nonce of the attacker's
    ("replay", "for another nonce than the one this client sent: a replayed"),
    # the same with its nonce and key fields set to the client's and the proxy's:
    # the evidence binds neither
    ("rewrite", "not bound to this connection"),
])
def test_recorded_answer_refused(kiln, acas, tmp_path, mode, why):
    m = expected(kiln, acas)
    proxy = EvilProxy(acas, tmp_path, mode)
    try:
        p = verify(kiln, acas, proxy.url, "--expect-measurement", m)
        assert p.returncode == 1
        assert why in p.stderr
    finally:
        proxy.close()


def test_forged_sim_evidence(kiln, acas, tmp_path):
    """sim evidence is anybody's to make: a forgery bound to the attacker's own
    key passes every binding check, so only refusing sim protects. Without
    --allow-sim it is refused; with it, the output says it is INSECURE."""
    m = expected(kiln, acas)
    proxy = EvilProxy(acas, tmp_path, "forge")
    try:
        p = kiln("cas", "verify", "--cas", proxy.url, "--cas-fingerprint", acas.fingerprint,
                 "--expect-measurement", m)
        assert p.returncode == 1
        assert "sim evidence (INSECURE" in p.stderr and "refused without --allow-sim" in p.stderr
        p = verify(kiln, acas, proxy.url, "--expect-measurement", m)
        assert p.returncode == 0
        assert "INSECURE" in p.stdout and "proves nothing" in p.stdout
    finally:
        proxy.close()
