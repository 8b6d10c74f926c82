"""A shielded server writing to a peer that is gone, as without the shield:
after the peer's reset the first write fails with ECONNRESET and the next with
EPIPE; SIGPIPE comes with EPIPE (a program that keeps its default action dies
of it, as natively) unless it ignores the signal; the server goes on serving
the next client. The native run of the same program is the reference."""
import socket
import ssl
import struct
import subprocess

from netenv import PYTHON, free_port, q, wait_port

SERVER = r"""
import errno, signal, socket, sys, time
port, mode, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if mode == "default":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores it by default
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4)
for r in range(rounds):
    c, _ = s.accept()
    c.recv(100)
    c.sendall(b"ok")
    time.sleep(0.5)  # meanwhile the client resets the connection
    errs = []
    for i in range(100):
        try:
            c.send(b"x" * 65536)
        except OSError as e:
            errs.append(errno.errorcode[e.errno])
            if e.errno == errno.EPIPE or len(errs) > 3:
                break
        time.sleep(0.01)
    print("round", r, errs, flush=True)
    c.close()
"""


def policy(port_ign, port_dfl):
    return f"""\
name: t/epipe
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: ignore
    command: [{q(PYTHON)}, -c, {q(SERVER)}, "{port_ign}", ignore, "2"]
    measurement: [any]
    network: {{listen: [{{port: {port_ign}, certificate: srv}}]}}
  - name: default
    command: [{q(PYTHON)}, -c, {q(SERVER)}, "{port_dfl}", default, "1"]
    measurement: [any]
    network: {{listen: [{{port: {port_dfl}, certificate: srv}}]}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def hello_then_reset(port, ctx=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    s.sendall(b"hi")
    assert s.recv(2) == b"ok"
    # SO_LINGER 0: close sends a reset, not a FIN.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def native(mode, rounds):
    port = free_port()
    p = subprocess.Popen([PYTHON, "-c", SERVER, str(port), mode, str(rounds)],
                         stdout=subprocess.PIPE, text=True)
    wait_port(port)
    for _ in range(rounds):
        hello_then_reset(port)
    out, _ = p.communicate(timeout=60)
    return p.returncode, out


def test_writes_to_a_reset_peer(net):
    ign, dfl = free_port(), free_port()
    net.apply(policy(ign, dfl))
    ca = net.cert("t/epipe:ca")
    ctx = ssl.create_default_context(cafile=str(ca))
    srv = net.start("t/epipe", "ignore")
    wait_port(ign, srv)
    for _ in range(2):
        hello_then_reset(ign, ctx)
    assert srv.p.wait(timeout=60) == 0, srv.err()
    rc, ref = native("ignore", 2)
    assert rc == 0 and ref == "round 0 ['ECONNRESET', 'EPIPE']\nround 1 ['ECONNRESET', 'EPIPE']\n"
    assert srv.out() == ref, srv.out() + srv.err()
    # A peer's reset is an ordinary end, returned and not logged.
    assert "kiln: network" not in srv.err(), srv.err()
    # SIGPIPE's default action: the program dies of it, as natively.
    srv = net.start("t/epipe", "default")
    wait_port(dfl, srv)
    hello_then_reset(dfl, ctx)
    assert srv.p.wait(timeout=60) == -13, srv.err()
    assert native("default", 1) == (-13, "")
    assert srv.out() == ""
