"""Signals under the network shield. Its guards do not mask the program's
signals (two rt_sigprocmask per call were most of a small request's cost): the
program's handlers are installed as the runtime's, which hold a signal that
arrives while the runtime works and deliver it when the runtime is done
(docs/runtime.md, "The network shield"). A shielded client under a 1 ms
interval timer makes round trips over TLS: every reply is right and the
handler ran; the handler the program installed is the one sigaction reports;
SA_RESETHAND resets after one delivery; a real-time signal's handler still
works (those guards mask again). A C program's new threads, signalled with
sigqueue while they echo over TLS, get every signal once, with its siginfo,
some of them kept inside a guard and sent again after it, with SA_RESTART and
without (apps/net_signals.c)."""
from kilnenv import BUILD
from netenv import PYTHON, free_port, q, wait_port

SIGNALER = BUILD / "tests" / "e2e" / "apps" / "rt_net_signals"

SERVER = r"""
import socket, sys
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    c, _ = s.accept()
    with c:
        while data := c.recv(65536):
            c.sendall(data)
"""

# Counts what a connection sends until it half-closes, then answers the count.
SINK = r"""
import socket, sys
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    c, _ = s.accept()
    with c:
        n = 0
        while data := c.recv(1 << 20):
            n += len(data)
        c.sendall(b"%d" % n)
"""

CLIENT = r"""
import ctypes, os, signal, socket, sys
libc = ctypes.CDLL(None, use_errno=True)

class SigAction(ctypes.Structure):  # glibc's struct sigaction on x86-64
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

SA_RESETHAND = 0x80000000
ticks = 0
def tick(sig, frame):
    global ticks
    ticks += 1
signal.signal(signal.SIGALRM, tick)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
bad = 0
for i in range(2000):
    msg = b"%06d" % i * 40
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += s.recv(len(msg) - len(got))
    bad += got != msg
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print("round trips bad", bad, "ticks", "some" if ticks > 0 else 0, flush=True)

# The program's own handler (a C function: getpid) is what sigaction reports,
# and SA_RESETHAND gives SIG_DFL back after one delivery.
getpid = ctypes.cast(libc.getpid, ctypes.c_void_p).value
act, old = SigAction(), SigAction()
act.handler = getpid
act.flags = SA_RESETHAND
assert libc.sigaction(signal.SIGUSR2, ctypes.byref(act), None) == 0
assert libc.sigaction(signal.SIGUSR2, None, ctypes.byref(old)) == 0
print("reported", "own" if old.handler == getpid else hex(old.handler or 0), flush=True)
os.kill(os.getpid(), signal.SIGUSR2)
s.sendall(b"x")
s.recv(1)
assert libc.sigaction(signal.SIGUSR2, None, ctypes.byref(old)) == 0
print("after one", "SIG_DFL" if not old.handler else hex(old.handler), flush=True)

# A real-time signal's handler: delivered, and the connection still works.
rt = []
signal.signal(signal.SIGRTMIN, lambda sig, frame: rt.append(sig))
os.kill(os.getpid(), signal.SIGRTMIN)
s.sendall(b"after rt")
print("rt", len(rt), s.recv(64).decode(), flush=True)
"""


def policy(port, sink):
    return f"""\
name: t/sig
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: server
    command: [{q(PYTHON)}, -c, {q(SERVER)}, "{port}"]
    measurement: [any]
    network:
      listen:
        - {{port: {port}, certificate: srv}}
  - name: client
    command: [{q(PYTHON)}, -c, {q(CLIENT)}, "{port}"]
    measurement: [any]
    network:
      connect:
        - {{host: 127.0.0.1, port: {port}, ca: ca}}
  - name: sink
    command: [{q(PYTHON)}, -c, {q(SINK)}, "{sink}"]
    measurement: [any]
    network:
      listen:
        - {{port: {sink}, certificate: srv}}
  - name: signaled
    command: [{q(SIGNALER)}, "{sink}", "400"]
    measurement: [any]
    network:
      connect:
        - {{host: 127.0.0.1, port: {sink}, ca: ca}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def test_signals_during_shielded_io(net):
    port = free_port()
    net.apply(policy(port, free_port()))
    server = net.start("t/sig", "server")
    wait_port(port, server)
    p = net.run("t/sig", "client")
    assert p.returncode == 0, p.stdout + p.stderr + server.err()
    assert p.stdout.splitlines() == ["round trips bad 0 ticks some", "reported own",
                                     "after one SIG_DFL", "rt 1 after rt"], p.stderr


def test_signals_kept_inside_guards_come_once_with_their_siginfo(net):
    port = free_port()
    net.apply(policy(free_port(), sink=port))
    server = net.start("t/sig", "sink")
    wait_port(port, server)
    p = net.run("t/sig", "signaled", program=SIGNALER, timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr + server.err()
    lines = p.stdout.splitlines()
    assert lines[0] == ("restart: sender 0, delivered once 400/400, bad siginfo 0, "
                        "deferred some, eintr none, bytes right"), p.stdout + p.stderr
    # Without SA_RESTART a signal during a wait may end a call with EINTR.
    assert lines[1].replace("eintr some", "eintr none") == (
        "no-restart: sender 0, delivered once 400/400, bad siginfo 0, deferred some, "
        "eintr none, bytes right"), p.stdout + p.stderr
