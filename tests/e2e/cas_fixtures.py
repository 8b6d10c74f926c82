"""Reusable helpers for tests that need a running kiln-cas.

`CasServer` starts `kiln cas serve` on a free port in a temp dir and stops it;
the `cas` fixture (tests/e2e/conftest.py) yields one. `Workload` is a tiny
attesting client written with Python's ssl module: it makes an ephemeral P-256
key and certificate, fetches a nonce, builds `sim` evidence bound to its key per
BRIEF-protocol (report_data = SHA-512("kiln-v1" || SPKI || nonce || wm)) and
posts /v1/attest over mutual TLS.
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import pathlib
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


# Parametrize a CAS test with these to run it on both stores (the cas fixture,
# tests/e2e/conftest.py): @pytest.mark.parametrize("cas_store", STORES)
STORES = ("sqlite", "postgresql")


class CasServer:
    """A kiln-cas process on 127.0.0.1:<free port> with its data in `data`."""

    def __init__(self, kiln_bin, workdir, extra_args=(), preexec_fn=None, pg=None):
        """pg: (PgServer, database name): the store is that PostgreSQL database."""
        self.kiln_bin = str(kiln_bin)
        self.pg = pg
        self.preexec_fn = preexec_fn
        self.workdir = pathlib.Path(workdir)
        self.data = self.workdir / "cas-data"
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None
        self.fingerprint = None
        self.port = 0
        self.log_path = self.workdir / "cas.log"
        self._log = None

    @property
    def store_args(self):
        """What every kiln cas / kiln audit command on this CAS's store needs."""
        return ["--store", self.pg[0].url(self.pg[1])] if self.pg else []

    @property
    def ca_file(self):
        return str(self.data / "ca.pem")

    def start(self, expect_fail=False, timeout=30):
        self._log = open(self.log_path, "ab")
        listen = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [self.kiln_bin, "cas", "serve", "--data", str(self.data), "--listen", listen,
             *self.store_args, *self.extra_args],
            stdout=subprocess.PIPE, stderr=self._log, text=True, preexec_fn=self.preexec_fn)
        for line in self.proc.stdout:
            if line.startswith("ca-fingerprint "):
                self.fingerprint = line.split()[1]
            elif line.startswith("listening "):
                self.url = line.split()[1]
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        if expect_fail:
            return rc
        raise AssertionError(f"kiln cas serve exited {rc}:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        self.proc = None
        self._log.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"kiln cas serve exited {rc}:\n{self.log()[-4000:]}"
        return self.start()

    def env(self, identity=None):
        """Environment for `kiln policy ...` against this CAS."""
        e = {"KILN_CAS": self.url, "KILN_CAS_FINGERPRINT": self.fingerprint}
        if identity:
            e["KILN_IDENTITY"] = str(identity)
        return e

    def ssl_context(self, certfile=None, keyfile=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(cafile=self.ca_file)
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        return ctx

    def request(self, method, path, body=None, certfile=None, keyfile=None, headers=None):
        """One HTTPS request; returns (status, parsed JSON or text)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                           context=self.ssl_context(certfile, keyfile))
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                r = conn.getresponse()
                data = r.read().decode()
            except (OSError, http.client.HTTPException) as e:
                # Say what the CAS said: a dropped connection is a CAS-side
                # story, and its log is gone with the temp dir afterwards.
                # Same exception (callers retry on ConnectionError), with a note.
                e.add_note(f"{method} {path}: the CAS's log ends:\n{self.log()[-3000:]}")
                raise
            try:
                return r.status, json.loads(data)
            except ValueError:
                return r.status, data
        finally:
            conn.close()

    def volume_committed(self, session):
        """The committed freshness tag of the session's (first) volume, read from
        the store (read-only) while the CAS runs."""
        if self.pg:
            return int(self.pg[0].psql(self.pg[1], "SELECT committed FROM volumes WHERE "
                                       f"session = '{session}'").split()[0])
        c = sqlite3.connect(f"file:{self.data / 'kiln.db'}?mode=ro", uri=True)
        try:
            return c.execute("SELECT committed FROM volumes WHERE session = ?",
                             (session,)).fetchone()[0]
        finally:
            c.close()

    def workload_measurement(self):
        """What `kiln measure --pid` says of the running CAS: how a user learns
        the value `kiln cas verify --expect-measurement` expects."""
        p = subprocess.run([self.kiln_bin, "measure", "--pid", str(self.proc.pid)],
                           capture_output=True, text=True, timeout=60, check=True)
        m = p.stdout.split()[-1]
        assert len(m) == 96, p.stdout
        return m

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        assert status == 200
        return text


def make_key_cert(cn="kiln-workload"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, cert


class Workload:
    """An attesting workload with an ephemeral key (sim backend evidence)."""

    def __init__(self, cas, workdir, wm=None):
        self.cas = cas
        self.key, self.cert = make_key_cert()
        fd, self.pem = tempfile.mkstemp(dir=workdir, suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(self.key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.wm = wm if wm is not None else hashlib.sha384(b"test workload").digest()

    def nonce(self):
        status, body = self.cas.request("GET", "/v1/nonce")
        assert status == 200, body
        return body["nonce"]

    def evidence(self, nonce_hex, spki=None, wm=None):
        wm = self.wm if wm is None else wm
        rd = hashlib.sha512(b"kiln-v1" + (spki or self.spki) + bytes.fromhex(nonce_hex) +
                            wm).digest()
        ev = json.dumps({"tee": "sim", "report_data": rd.hex(),
                         "workload_measurement": wm.hex()})
        return base64.b64encode(ev.encode()).decode()

    def attest(self, session, service, tee="sim", nonce=None, evidence=None, host=None):
        nonce = nonce or self.nonce()
        body = {"session": session, "service": service, "tee": tee,
                "evidence": evidence if evidence is not None else self.evidence(nonce),
                "nonce": nonce}
        if host is not None:
            body["host"] = host
        return self.cas.request("POST", "/v1/attest", body, certfile=self.pem)

    def post(self, path, body):
        return self.cas.request("POST", path, body, certfile=self.pem)

    def get(self, path):
        return self.cas.request("GET", path, certfile=self.pem)


def refusal(cas, label):
    """How many attestations /metrics counts as refused with this label."""
    m = re.search(r'kiln_cas_attestations_total\{result="refused",reason="%s"\} (\d+)' % label,
                  cas.metrics())
    return int(m.group(1)) if m else 0


def assert_refused(cas, status, body, label, reason):
    """An attestation answered 403 without details, counted under label, and logged
    with reason (a substring of the logged line of its request)."""
    assert status == 403
    assert body["error"] == "attestation refused" and set(body) == {"error", "request_id"}
    assert refusal(cas, label) >= 1, cas.metrics()
    line = [ln for ln in cas.log().splitlines() if body["request_id"] in ln]
    assert line and "attestation refused" in line[-1] and reason in line[-1], line


# The time the real evidence in testdata/evidence was captured; a CAS judging it
# runs with --insecure-evidence-time at this time (its collateral is old).
EVIDENCE_TIME = "2025-07-01T00:00:00Z"


def post_evidence(w, tee, evidence, wm, nonce=None):
    """POST /v1/attest with hardware evidence: a Path, raw bytes or base64 text, and
    the workload measurement as bytes or hex (None leaves the field out)."""
    if isinstance(evidence, os.PathLike):
        evidence = evidence.read_bytes()
    if isinstance(evidence, bytes):
        evidence = base64.b64encode(evidence).decode()
    body = {"session": "acme/app", "service": "app", "tee": tee, "evidence": evidence,
            "nonce": nonce or w.nonce()}
    if wm is not None:
        body["workload_measurement"] = wm.hex() if isinstance(wm, bytes) else wm
    return w.cas.request("POST", "/v1/attest", body, certfile=w.pem)


def refusal_reason(cas, body):
    """The reason the CAS logged, once, for the refused attestation answered with body."""
    lines = [ln for ln in cas.log().splitlines()
             if body["request_id"] in ln and 'msg="attestation refused"' in ln]
    assert len(lines) == 1, cas.log()[-3000:]
    return re.search(r'reason="((?:[^"\\]|\\.)*)"', lines[0]).group(1)


def las_evidence(sock, report_data):
    """host evidence from the kiln-las on unix socket sock, about this process."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock))
        s.sendall(json.dumps({"report_data": report_data.hex()}).encode() + b"\n")
        out = b""
        while not out.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    ev = json.loads(out)
    assert "error" not in ev, ev
    return ev
