"""The network shield with Python programs: a shielded echo server (an asyncio
loop: epoll) and a shielded asyncio client talk TLS without knowing it; a
client outside kiln trusts the policy's CA (kiln policy certificate); the wire
carries no plaintext; a connect the policy does not allow fails with EACCES."""
import socket
import ssl

from netenv import PYTHON, free_port, q, wait_port

SERVER = r"""
import asyncio, os, sys
async def handle(r, w):
    while data := await r.readline():
        w.write(b"echo " + data)
        await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"""

CLIENT = r"""
import asyncio, errno, socket, sys
async def main():
    r, w = await asyncio.open_connection("127.0.0.1", int(sys.argv[1]))
    for i in range(3):
        w.write(b"hello %d\n" % i)
        await w.drain()
        print((await r.readline()).decode().strip(), flush=True)
    w.close()
    await w.wait_closed()
asyncio.run(main())
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[2])))
    print("connected to a denied port")
except OSError as e:
    print("denied", errno.errorcode[e.errno])
"""


def policy(port, other):
    return f"""\
name: t/echo
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: server
    command: [{q(PYTHON)}, -c, {q(SERVER)}, "{port}"]
    measurement: [any]
    network:
      default: deny
      listen:
        - {{port: {port}, certificate: srv}}
  - name: client
    command: [{q(PYTHON)}, -c, {q(CLIENT)}, "{port}", "{other}"]
    measurement: [any]
    network:
      default: deny
      connect:
        - {{host: 127.0.0.1, port: {port}, ca: ca}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def test_echo_through_the_shield(net):
    port, other = free_port(), free_port()
    net.apply(policy(port, other))
    server = net.start("t/echo", "server")
    wait_port(port, server)
    p = net.run("t/echo", "client")
    assert p.returncode == 0, p.stdout + p.stderr + server.err()
    assert p.stdout.splitlines() == ["echo hello 0", "echo hello 1", "echo hello 2",
                                     "denied EACCES"], p.stderr
    assert f"127.0.0.1:{other}" in p.stderr  # the refusal is logged, naming the peer
    # A client outside kiln that trusts the policy's CA talks TLS to the server.
    ctx = ssl.create_default_context(cafile=str(net.cert("t/echo:ca")))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"outside\n")
            assert s.recv(100) == b"echo outside\n"
    # Plaintext gets nothing back.
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"outside\n")
        raw.settimeout(30)
        assert raw.recv(100) == b""
    assert server.alive(), server.err()
