"""A shielded client refuses a server whose certificate has expired, even when
the policy's CA issued it: the connection ends (the program sees EOF or
ECONNRESET) and the runtime logs the peer and "certificate has expired". The
same server with a certificate inside its validity is accepted (the control).
The expired certificate is signed with the policy's own CA key, which a service
of the test policy hands out ({{secret.ca.key}})."""
import datetime
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netenv import PYTHON, free_port, q, wait_port

SIGNER = r"""
import os
print(os.environ["CA_KEY"] + os.environ["CA_CRT"], end="")
"""

CLIENT = r"""
import errno, socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    s.sendall(b"hi")
    print("got", s.recv(100).decode() or "EOF", flush=True)
except OSError as e:
    print("error", errno.errorcode.get(e.errno, e.errno), flush=True)
"""


def policy(port):
    return f"""\
name: t/expired
secrets:
  - {{name: ca, kind: x509-ca}}
services:
  - name: signer
    command: [{q(PYTHON)}, -c, {q(SIGNER)}]
    environment: {{CA_KEY: "{{{{secret.ca.key}}}}", CA_CRT: "{{{{secret.ca}}}}"}}
    measurement: [any]
  - name: client
    command: [{q(PYTHON)}, -c, {q(CLIENT)}, "{port}"]
    measurement: [any]
    network:
      default: deny
      connect: [{{host: 127.0.0.1, port: {port}, ca: ca, name: localhost}}]
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def server_cert(tmp_path, ca_pem, not_before, not_after, tag):
    ca_key = serialization.load_pem_private_key(ca_pem.encode(), None)
    ca_crt = x509.load_pem_x509_certificate(ca_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    crt = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_crt.subject)
           .public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(not_before)
           .not_valid_after(not_after)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                          critical=False)
           .sign(ca_key, hashes.SHA256()))
    kp, cp = tmp_path / f"{tag}.key", tmp_path / f"{tag}.pem"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    cp.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    return cp, kp


def echo_once(port, cert, key):
    """A TLS echo server outside kiln for one connection (which may fail)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lsock = socket.create_server(("127.0.0.1", port))

    def serve():
        with lsock:
            c, _ = lsock.accept()
            try:
                with ctx.wrap_socket(c, server_side=True) as s:
                    s.sendall(b"echo " + s.recv(100))
            except (ssl.SSLError, OSError):
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_expired_server_certificate_refused(net, tmp_path):
    port = free_port()
    net.apply(policy(port))
    p = net.run("t/expired", "signer")
    assert p.returncode == 0 and "PRIVATE KEY" in p.stdout, p.stderr
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    for tag, nb, na, want in (("valid", now - day, now + day, ["got", "echo", "hi"]),
                              ("expired", now - 10 * day, now - day, None)):
        cert, key = server_cert(tmp_path, p.stdout, nb, na, tag)
        t = echo_once(port, cert, key)
        wait_port(port)
        r = net.run("t/expired", "client")
        t.join(30)
        if want:
            assert r.stdout.split() == want, r.stdout + r.stderr
            assert "certificate" not in r.stderr
        else:
            assert r.stdout.split() in (["got", "EOF"], ["error", "ECONNRESET"]), r.stdout
            assert f"peer 127.0.0.1:{port}" in r.stderr, r.stderr
            assert "certificate verify failed: certificate has expired" in r.stderr, r.stderr
