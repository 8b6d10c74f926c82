"""Helpers for the tests of the network and console shields (docs/runtime.md,
"Network shield", "Console shield"): a running kiln-cas (the `cas` fixture), an
owner identity, policies applied from text, the CA certificates clients
trust (`kiln policy certificate`), and programs started under
`kiln run --cas ... --tee sim` (INSECURE simulation backend, as every CAS
test here). Imported by the conftest.py of tests/e2e/apps and
tests/e2e/security, which re-export the `net` fixture."""
import json
import os
import resource
import socket
import subprocess
import time

import pytest

PYTHON = os.path.realpath("/usr/bin/python3")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def more_fds(n=8192):
    """preexec_fn: a higher soft limit of open files (thousands of connections)."""
    def raise_limit():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return raise_limit


def q(s):
    """A YAML scalar for any string (JSON is YAML)."""
    return json.dumps(str(s))


def listen_policy(name, service, argv, port):
    """A policy NAME whose one service runs argv behind a shielded listen port:
    TLS with a certificate (secret srv) of the policy's own CA (secret ca, the
    client's trust: net.cert("NAME:ca")), every other connection denied."""
    return f"""\
name: {name}
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: {service}
    command: [{", ".join(q(a) for a in argv)}]
    measurement: [any]
    network:
      default: deny
      listen:
        - {{port: {port}, certificate: srv}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


class Proc:
    """A program started under kiln run; its output goes to files."""

    def __init__(self, popen, out, err):
        self.p = popen
        self.out_path, self.err_path = out, err

    @property
    def pid(self):
        return self.p.pid

    def out(self):
        return self.out_path.read_text(errors="replace")

    def err(self):
        return self.err_path.read_text(errors="replace")

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=timeout)
        return self.p.returncode

    def wait(self, timeout=60):
        return self.p.wait(timeout=timeout)


class NetEnv:
    def __init__(self, kiln_bin, cas, identity, tmp):
        self.kiln_bin, self.cas, self.identity, self.tmp = kiln_bin, cas, identity, tmp
        self.procs = []
        self.n = 0

    def env(self, extra=None):
        e = dict(os.environ, **self.cas.env(self.identity))
        e.update(extra or {})
        return e

    def kiln(self, *args, check=True, input=None, timeout=120):
        p = subprocess.run([self.kiln_bin, *map(str, args)], capture_output=True, text=True,
                           env=self.env(), input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kiln {args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def apply(self, text):
        self.n += 1
        path = self.tmp / f"policy{self.n}.yaml"
        path.write_text(text)
        return self.kiln("policy", "apply", path).stdout

    def cert(self, ref):
        """The certificate chain of SESSION:SECRET, written to a file."""
        self.n += 1
        path = self.tmp / f"cert{self.n}.pem"
        path.write_text(self.kiln("policy", "certificate", ref).stdout)
        return path

    def argv(self, session, service, program):
        return [self.kiln_bin, "run", "--cas", self.cas.url, "--cas-ca", self.cas.ca_file,
                "--session", session, "--service", service, "--tee", "sim", "--",
                str(program)]

    def start(self, session, service, program=PYTHON, stdin=subprocess.DEVNULL, env=None):
        self.n += 1
        out = self.tmp / f"proc{self.n}.out"
        err = self.tmp / f"proc{self.n}.err"
        p = subprocess.Popen(self.argv(session, service, program), stdin=stdin,
                             stdout=open(out, "wb"), stderr=open(err, "wb"),
                             env=self.env(env), preexec_fn=more_fds())
        proc = Proc(p, out, err)
        self.procs.append(proc)
        return proc

    def run(self, session, service, program=PYTHON, input=None, timeout=120, env=None,
            text=True):
        return subprocess.run(self.argv(session, service, program), input=input,
                              capture_output=True, text=text, timeout=timeout,
                              env=self.env(env), preexec_fn=more_fds())

    def stop_all(self):
        for p in self.procs:
            p.stop()


def listening(port):
    """Is a TCP socket listening on port? (From /proc/net: a probe connection
    would be a failed handshake in the shielded server's log.)"""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_port(port, proc=None, timeout=60):
    """Until something listens on port (the program is up)."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and not proc.alive():
            raise AssertionError(f"the program exited ({proc.p.returncode}):\n{proc.err()}")
        if listening(port):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}" +
                         (f":\n{proc.err()}" if proc else ""))


@pytest.fixture
def net(kiln_bin, cas, cas_identity, tmp_path):
    identity, _ = cas_identity("owner")
    env = NetEnv(kiln_bin, cas, identity, tmp_path)
    yield env
    env.stop_all()


class TlsRecords:
    """A TLS client that sees the records: it reads the raw stream, splits it
    into records itself and decrypts them one at a time (ssl.MemoryBIO), so a
    test can say how many records an answer came in. TLS 1.3's session
    tickets (records that decrypt to nothing) are not counted."""

    def __init__(self, port, ca, host="127.0.0.1", name="localhost", timeout=30):
        import ssl
        ctx = ssl.create_default_context(cafile=str(ca))
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=name)
        self.raw = b""
        self.plain = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._push()
                self.inc.write(self._recv())
        self._push()

    def _push(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        return d

    def send(self, data):
        self.tls.write(data)
        self._push()

    def record(self):
        """The next record that carries data: its plaintext."""
        import ssl
        while True:
            while len(self.raw) < 5 or len(self.raw) < 5 + int.from_bytes(self.raw[3:5], "big"):
                self.raw += self._recv()
            n = 5 + int.from_bytes(self.raw[3:5], "big")
            self.inc.write(self.raw[:n])
            self.raw = self.raw[n:]
            out = b""
            try:
                while True:
                    out += self.tls.read(65536)
            except ssl.SSLWantReadError:
                pass
            self._push()
            if out:
                return out

    def recv_exactly(self, n):
        """n bytes of plaintext, and the sizes of the records they came in."""
        sizes = []
        got = self.plain
        while len(got) < n:
            r = self.record()
            sizes.append(len(r))
            got += r
        self.plain = got[n:]
        return got[:n], sizes

    def close(self):
        self.sock.close()
