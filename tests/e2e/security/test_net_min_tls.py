"""The network shield's lowest TLS version (`network.min_tls`, docs/policy.md):
TLS 1.3 only by default, so a client limited to TLS 1.2 is refused (and the
runtime logs the peer and the reason once); a policy with min_tls "1.2"
serves it over TLS 1.2 and still gives TLS 1.3 to clients that offer it."""
import ssl
import socket
import subprocess

from netenv import PYTHON, free_port, q, wait_port

ECHO = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    c, _ = s.accept()
    with c:
        try:
            data = c.recv(100)
            if data:
                c.sendall(b"echo " + data)
        except OSError as e:
            print("reset", e.errno, flush=True)
"""


CLIENT = r"""
import errno, socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    s.sendall(b"hi")
    print("got", s.recv(100), flush=True)
except OSError as e:
    print("error", errno.errorcode.get(e.errno, e.errno), flush=True)
"""


def policy(strict, legacy, old_server):
    return f"""\
name: t/mintls
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: strict
    command: [{q(PYTHON)}, -c, {q(ECHO)}, "{strict}"]
    measurement: [any]
    network:
      listen: [{{port: {strict}, certificate: srv}}]
  - name: legacy
    command: [{q(PYTHON)}, -c, {q(ECHO)}, "{legacy}"]
    measurement: [any]
    network:
      min_tls: "1.2"
      listen: [{{port: {legacy}, certificate: srv}}]
  - name: client
    command: [{q(PYTHON)}, -c, {q(CLIENT)}, "{old_server}"]
    measurement: [any]
    network:
      connect: [{{host: 127.0.0.1, port: {old_server}, ca: ca, name: localhost}}]
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def talk(port, ca, maximum=None):
    ctx = ssl.create_default_context(cafile=str(ca))
    if maximum:
        ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"hi")
            return s.version(), s.recv(100)


def test_min_tls(net, tmp_path):
    strict, legacy, old_server = free_port(), free_port(), free_port()
    net.apply(policy(strict, legacy, old_server))
    srv = {n: net.start("t/mintls", n) for n in ("strict", "legacy")}
    wait_port(strict, srv["strict"])
    wait_port(legacy, srv["legacy"])
    ca = net.cert("t/mintls:ca")
    assert talk(strict, ca) == ("TLSv1.3", b"echo hi")
    assert talk(legacy, ca) == ("TLSv1.3", b"echo hi")
    assert talk(legacy, ca, ssl.TLSVersion.TLSv1_2) == ("TLSv1.2", b"echo hi")
    refused = False
    try:
        talk(strict, ca, ssl.TLSVersion.TLSv1_2)
    except (ssl.SSLError, ConnectionResetError):
        refused = True
    assert refused
    # Still serving after the refusal.
    assert talk(strict, ca) == ("TLSv1.3", b"echo hi")
    for n in srv:
        assert srv[n].alive(), srv[n].err()
        srv[n].stop()
    err = srv["strict"].err()
    assert f"listen {strict}: peer 127.0.0.1:" in err and "TLS handshake failed" in err, err
    assert "no TLS version in common with the peer (the policy allows TLS 1.3 and " \
        "later: network.min_tls)" in err, err
    assert "TLS handshake failed" not in srv["legacy"].err()

    # A shielded client (TLS 1.3 only) and a server that speaks only TLS 1.2:
    # the program sees its connection end; the line says why.
    key, crt = tmp_path / "old.key", tmp_path / "old.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    old = subprocess.Popen(["openssl", "s_server", "-quiet", "-tls1_2", "-accept",
                            str(old_server), "-cert", crt, "-key", key, "-naccept", "1"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_port(old_server)
        p = net.run("t/mintls", "client")
    finally:
        old.kill()
        old.wait()
    assert p.stdout.split() in (["got", "b''"], ["error", "ECONNRESET"]), p.stdout + p.stderr
    assert f"peer 127.0.0.1:{old_server}: " in p.stderr, p.stderr
    assert "no TLS version in common with the peer" in p.stderr, p.stderr
