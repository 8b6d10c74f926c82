"""The network shield keeps socket semantics: a Python server (an edge-triggered
epoll loop, non-blocking) and a Python client, both under kiln run, talk TLS
without knowing it. The client checks blocking and non-blocking I/O, records of
every size, half-close, MSG_PEEK and MSG_WAITALL, vectored I/O, poll, select,
edge-triggered epoll with 1-byte reads, non-blocking connect with SO_ERROR
(also refused), sendfile and splice, a thousand connections at once and IPv6;
the server runs as one process, as forked workers sharing the listening socket
(nginx's model) and as a parent that forks a child per connection.
(net_probe.py says what each check does.)"""
import os
import pathlib
import socket
import ssl

import pytest

from netenv import PYTHON, free_port, q, wait_port

PROBE = pathlib.Path(__file__).with_name("net_probe.py")


def policy(port, refused, mode, many):
    return f"""\
name: t/probe
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1, "::1"]}}
services:
  - name: server
    command: [{q(PYTHON)}, {q(PROBE)}, server, "{port}", {mode}]
    environment: {{PROBE_ADDR: "::"}}
    measurement: [any]
    network:
      default: deny
      listen:
        - {{port: {port}, certificate: srv}}
  - name: client
    command: [{q(PYTHON)}, {q(PROBE)}, client, "{port}", "{refused}"]
    environment: {{PROBE_V6: "1", PROBE_MANY: "{many}"}}
    measurement: [any]
    network:
      default: deny
      connect:
        - {{host: 127.0.0.1, port: {port}, ca: ca}}
        - {{host: "::1", port: {port}, ca: ca}}
        - {{host: 127.0.0.1, port: {refused}, ca: ca}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


# One process in make check; the forked models (a minute or two each on 2
# cores, a thousand connections each) in make stress.
@pytest.mark.parametrize("mode", ["single",
                                  pytest.param("prefork", marks=pytest.mark.stress),
                                  pytest.param("forkeach", marks=pytest.mark.stress)])
def test_socket_semantics_through_the_shield(net, mode):
    port, refused = free_port(), free_port()
    # Many connections at once: 1000 in make stress, 200 in make check.
    net.apply(policy(port, refused, mode, 1000 if os.environ.get("KILN_STRESS") else 200))
    server = net.start("t/probe", "server")
    wait_port(port, server)
    p = net.run("t/probe", "client", timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr + server.err()
    oks = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("ok ")]
    assert oks == ["sha-1", "sha-16383", "sha-16384", "sha-16385", "sha-1048576",
                   "big-small-reads", "peek", "waitall", "vectors", "poll-none-then-in",
                   "poll-data", "select-in", "epoll-et-1-byte-reads", "nb-connect",
                   "nb-connect-writable", "nb-connect-use", "so-error-refused", "sendfile",
                   "splice-out", "splice-in", "splice-in-data", "many-connections", "ipv6"]
    assert p.stdout.endswith("done\n")
    assert server.alive(), server.err()
    # The wire carries TLS: a client with the policy's CA talks to the server;
    # a plaintext one gets nothing back, and the server says why, once.
    ctx = ssl.create_default_context(cafile=str(net.cert("t/probe:ca")))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"pid\n")
            assert s.recv(100).strip().isdigit()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert raw.recv(100) == b""
    server.stop()
    assert "the peer speaks plaintext HTTP, not TLS" in server.err()
    assert "Traceback" not in server.err()
