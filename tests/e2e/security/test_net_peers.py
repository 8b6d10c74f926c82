"""Hostile and wrong peers of the network shield: mutual TLS refused without a
client certificate and with a foreign one (and accepted from a shielded client
holding the policy's certificate); plaintext, a garbage ClientHello and a peer
stalling mid-handshake at a TLS port; a server whose certificate does not carry
the name the policy asks for, and one the policy's CA did not issue. Each time
the shielded program keeps serving others, its peer sees the connection end,
and the runtime logs one line naming the peer and the reason."""
import socket
import ssl
import subprocess
import time

from netenv import PYTHON, free_port, q, wait_port

ECHO = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
def serve(c):
    with c:
        try:
            while data := c.recv(65536):
                c.sendall(b"echo " + data)
        except OSError as e:  # a failed handshake: ECONNRESET, as a reset peer
            print("reset", e.errno, flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import errno, socket, sys
for port in sys.argv[1:]:
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        s.sendall(b"hi")
        got = s.recv(100)
        print(port, "got", got.decode() if got else "EOF", flush=True)
    except OSError as e:
        print(port, "error", errno.errorcode.get(e.errno, e.errno), flush=True)
"""


def policy(mtls, plain_tls, wrong, foreign):
    return f"""\
name: t/peers
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
  - {{name: elsewhere, kind: x509, issuer: ca, dns: [elsewhere.example]}}
  - {{name: cli, kind: x509, issuer: ca, common_name: client}}
services:
  - name: mtls
    command: [{q(PYTHON)}, -c, {q(ECHO)}, "{mtls}"]
    measurement: [any]
    network:
      default: deny
      handshake_timeout: 2
      listen:
        - {{port: {mtls}, certificate: srv, client_ca: ca}}
  - name: tls
    command: [{q(PYTHON)}, -c, {q(ECHO)}, "{plain_tls}"]
    measurement: [any]
    network:
      handshake_timeout: 2
      listen:
        - {{port: {plain_tls}, certificate: srv}}
  - name: wrong
    command: [{q(PYTHON)}, -c, {q(ECHO)}, "{wrong}"]
    measurement: [any]
    network:
      listen:
        - {{port: {wrong}, certificate: elsewhere}}
  - name: client
    command: [{q(PYTHON)}, -c, {q(CLIENT)}, "{mtls}", "{wrong}", "{foreign}"]
    measurement: [any]
    network:
      default: deny
      connect:
        - {{host: 127.0.0.1, port: {mtls}, ca: ca, certificate: cli}}
        - {{host: 127.0.0.1, port: {wrong}, ca: ca}}
        - {{host: 127.0.0.1, port: {foreign}, ca: ca}}
  - name: nocert
    command: [{q(PYTHON)}, -c, {q(CLIENT)}, "{mtls}"]
    measurement: [any]
    network:
      default: deny
      connect:
        - {{host: 127.0.0.1, port: {mtls}, ca: ca}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def self_signed(tmp_path, name):
    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def ended(sock):
    """The peer ended the connection: EOF or a reset, never the program's data
    (on a raw socket a TLS alert record, type 21, may come first)."""
    sock.settimeout(30)
    got = b""
    try:
        while chunk := sock.recv(100):
            got += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return got == b"" or (isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)
                          and got[0] == 21 and b"echo" not in got)


def test_hostile_and_wrong_peers(net, tmp_path):
    mtls, plain_tls, wrong, foreign = (free_port() for _ in range(4))
    net.apply(policy(mtls, plain_tls, wrong, foreign))
    srv = {n: net.start("t/peers", n) for n in ("mtls", "tls", "wrong")}
    for port, n in ((mtls, "mtls"), (plain_tls, "tls"), (wrong, "wrong")):
        wait_port(port, srv[n])
    ca = net.cert("t/peers:ca")
    # A foreign TLS server (its own self-signed certificate) on `foreign`.
    fcrt, fkey = self_signed(tmp_path, "foreign")
    fsrv = subprocess.Popen(["openssl", "s_server", "-quiet", "-accept", str(foreign),
                             "-cert", fcrt, "-key", fkey, "-naccept", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(foreign)
        # The shielded client: mTLS with the policy's certificate works; the
        # wrong-name and foreign servers are refused (the connection ends).
        p = net.run("t/peers", "client")
        assert p.returncode == 0, p.stderr
        out = p.stdout.splitlines()
        assert out[0] == f"{mtls} got echo hi", p.stdout + p.stderr
        assert out[1].split()[1:] in (["got", "EOF"], ["error", "ECONNRESET"]), p.stdout
        assert out[2].split()[1:] in (["got", "EOF"], ["error", "ECONNRESET"]), p.stdout
        assert f"peer 127.0.0.1:{wrong}" in p.stderr and "certificate verify failed" in p.stderr
        assert f"peer 127.0.0.1:{foreign}" in p.stderr
    finally:
        fsrv.kill()
        fsrv.wait()
    # A shielded client without a certificate is refused by the mTLS server.
    p = net.run("t/peers", "nocert")
    assert p.stdout.split()[1:] in (["got", "EOF"], ["error", "ECONNRESET"]), p.stdout
    # From outside: no client certificate, a foreign one: refused.
    ctx = ssl.create_default_context(cafile=str(ca))
    for cert in (None, self_signed(tmp_path, "intruder")):
        if cert:
            ctx = ssl.create_default_context(cafile=str(ca))
            ctx.load_cert_chain(*cert)
        with socket.create_connection(("127.0.0.1", mtls)) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"hi")
                    assert ended(s)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                pass
    # Bad peers at a TLS port: plaintext, a garbage ClientHello, a stall.
    with socket.create_connection(("127.0.0.1", plain_tls)) as raw:
        raw.sendall(b"PING\r\n")
        assert ended(raw)
    with socket.create_connection(("127.0.0.1", plain_tls)) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x30" + b"\xff" * 48)
        assert ended(raw)
    stall = socket.create_connection(("127.0.0.1", plain_tls))
    stall.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello's first bytes, then nothing
    start = time.monotonic()
    # Meanwhile the server serves others.
    tctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", plain_tls)) as raw:
        with tctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ok")
            assert s.recv(100) == b"echo ok"
    assert ended(stall)
    assert time.monotonic() - start < 30
    stall.close()
    for n in srv:
        assert srv[n].alive(), srv[n].err()
    srv["mtls"].stop()
    srv["tls"].stop()
    merr, terr = srv["mtls"].err(), srv["tls"].err()
    assert "listen" in merr and "peer 127.0.0.1:" in merr
    assert "certificate" in merr, merr
    assert "wrong version number (the peer does not speak TLS: plaintext?)" in terr, terr
    assert "TLS handshake failed: unexpected message" in terr, terr
    assert "reset 104" in srv["tls"].out()
    assert "TLS handshake not finished after 2 s (the peer stalls)" in terr, terr
    assert "Traceback" not in merr + terr
