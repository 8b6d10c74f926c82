"""A PCCS-shaped HTTP server for the tests (Intel PCCS API v4, the paths and
headers `kiln cas collateral fetch` and `kiln cas serve --pccs` use), serving the
real collateral of ../shared/testdata/evidence: sgx FMSPC 00A067110000 (PCK
Processor CA) and tdx FMSPC B0C06F000000 (PCK Platform CA).

`faults` maps a path (without query) to what goes wrong there: "404",
"garbage", "slow" (waits 30 s before answering), "drip" (one byte a second),
"huge" (a 5 MiB answer), "tamper" (the TCB Info's tcbStatus edited, signature
kept), "other_fmspc" (the tdx TCB Info for the sgx FMSPC), "no_chain" (no issuer
chain header). `hits` counts requests per path."""
import http.server
import json
import threading
import time
from urllib.parse import parse_qs, quote, urlparse

from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
SGX = json.loads((EV / "sgx" / "collateral.json").read_text())
TDX = json.loads((EV / "tdx" / "quote_v4_collateral.json").read_text())
SGX_FMSPC, TDX_FMSPC = "00A067110000", "B0C06F000000"
# inside both windows (EXPECTED.md), and past half of each: due for a refresh
AT = "2025-07-10T00:00:00Z"


def signed(member, doc, sig):
    return ('{"%s":%s,"signature":"%s"}' % (member, doc, sig)).encode()


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, one PEM file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pccs")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "pccs.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) +
                    cert.public_bytes(serialization.Encoding.PEM))
    return pem


class Pccs:
    def __init__(self, tls_pem=None):
        self.faults = {}
        self.hits = {}
        pccs = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                pccs.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls_pem:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_pem)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path, q):
        """(status, body, headers) of the real PCCS for path."""
        tee = path.split("/")[1]
        c = SGX if tee == "sgx" else TDX
        if path.endswith("/pckcrl"):
            ca = q.get("ca", [""])[0]
            c = SGX if ca == "processor" else TDX if ca == "platform" else None
            if c is None or q.get("encoding", ["pem"])[0] != "der":
                return 400, b"bad ca or encoding", {}
            return 200, bytes.fromhex(c["pck_crl"]), {
                "SGX-PCK-CRL-Issuer-Chain": quote(c["pck_crl_issuer_chain"])}
        if path.endswith("/rootcacrl"):
            return 200, SGX["root_ca_crl"].encode(), {}
        if path.endswith("/tcb"):
            fmspc = q.get("fmspc", [""])[0]
            want = {"sgx": SGX_FMSPC, "tdx": TDX_FMSPC}.get(tee)
            if fmspc.upper() != want:
                return 404, b"", {}
            return 200, signed("tcbInfo", c["tcb_info"], c["tcb_info_signature"]), {
                "TCB-Info-Issuer-Chain": quote(c["tcb_info_issuer_chain"])}
        if path.endswith("/qe/identity"):
            return 200, signed("enclaveIdentity", c["qe_identity"],
                               c["qe_identity_signature"]), {
                "SGX-Enclave-Identity-Issuer-Chain": quote(c["qe_identity_issuer_chain"])}
        return 404, b"", {}

    def handle(self, h):
        u = urlparse(h.path)
        path, q = u.path, parse_qs(u.query)
        self.hits[path] = self.hits.get(path, 0) + 1
        status, body, headers = self.answer(path, q)
        fault = self.faults.get(path)
        if fault == "404":
            status, body, headers = 404, b'{"error": "not found"}', {}
        elif fault == "garbage":
            body = b"<html>PCCS is down</html>"
        elif fault == "tamper":
            body = body.replace(b'"tcbStatus":"ConfigurationAndSWHardeningNeeded"',
                                b'"tcbStatus":"UpToDate"', 1)
            assert b'"UpToDate"' in body
        elif fault == "other_fmspc":
            status, body, headers = self.answer("/tdx/certification/v4/tcb",
                                                {"fmspc": [TDX_FMSPC]})
        elif fault == "no_chain":
            headers = {}
        elif fault == "slow":
            time.sleep(30)
        elif fault == "huge":
            body = b"0" * (5 << 20)
        try:
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if fault == "drip":
                for b in body:
                    h.wfile.write(bytes([b]))
                    h.wfile.flush()
                    time.sleep(1)
            else:
                h.wfile.write(body)
        except OSError:
            pass
