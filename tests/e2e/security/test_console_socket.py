"""The live console over a socket (docs/runtime.md, "The console shield"):
`kiln run --console-listen ADDR` keeps a protected program's stdio and passes
only records to one `kiln console attach --connect ADDR` at a time. Attacks:
the host reads the socket (ciphertext only), tampers with records between the
relay and attach (reported by number), a stranger attaches (403), a second
client pushes in (refused), a planted symlink or a bad address (refused,
naming the argument)."""
import os
import select
import socket
import subprocess
import threading
import time

from netenv import PYTHON, free_port, listening, q

SECRET = "sekrit-7f3a"

APP = f"""
import os, sys, time
print("{SECRET}", flush=True)
for line in sys.stdin:
    w = line.split()
    if w and w[0] == "later":  # later N OUT GATE: once GATE exists, N lines
        open(w[3] + ".got", "w").close()
        while not os.path.exists(w[3]):
            time.sleep(0.01)
        for i in range(int(w[1])):
            print("later", i, "x" * 90, flush=True)
        open(w[2], "w").close()
    elif w and w[0] == "fork":  # fork N: N children, a stream each
        for i in range(int(w[1])):
            pid = os.fork()
            if pid == 0:
                print("child", i, flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
        print("forked", flush=True)
    else:
        print("echo", line.strip(), flush=True)
print("bye", file=sys.stderr, flush=True)
"""


def policy(net, cas_identity):
    reader, reader_id = cas_identity("reader")
    net.apply(f"""\
name: t/csock
services:
  - name: app
    command: [{q(PYTHON)}, -c, {q(APP)}]
    measurement: [any]
    console: {{mode: protected, readers: [owner, {q(reader_id)}]}}
security: {{tee: [sim], allow_insecure_sim: true}}
""")
    return reader


def run_argv(net, addr):
    argv = net.argv("t/csock", "app", PYTHON)
    i = argv.index("--")
    return argv[:i] + ["--console-listen", addr] + argv[i:]


def start_run(net, addr, tmp):
    err = open(tmp / "run.err", "wb")
    return subprocess.Popen(run_argv(net, addr), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, env=net.env())


def wait_path(path, proc=None):
    for _ in range(400):
        if os.path.exists(path):
            return
        assert proc is None or proc.poll() is None, "kiln run ended early"
        time.sleep(0.025)
    raise AssertionError(f"{path} never appeared")


class Attach:
    """kiln console attach --connect ADDR, its output read as it comes."""

    def __init__(self, net, addr, identity=None):
        env = net.env({"KILN_IDENTITY": str(identity)} if identity else None)
        self.p = subprocess.Popen([net.kiln_bin, "console", "attach", "--session", "t/csock",
                                   "--service", "app", "--connect", addr],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.out = b""

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def wait_for(self, text, limit=30):
        """Read stdout until text appears (limit: a guard against hangs only)."""
        end = time.monotonic() + limit
        while text.encode() not in self.out:
            assert time.monotonic() < end, f"never saw {text!r}: {self.out[-300:]!r}"
            r, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, f"attach ended before {text!r}: {self.stderr()}"
                self.out += chunk

    def detach(self):
        self.p.terminate()
        self.p.wait(timeout=30)

    def finish(self):
        out, err = self.p.communicate(timeout=60)  # closes stdin first
        self.out += out
        return self.p.returncode, err.decode(errors="replace")

    def stderr(self):
        if self.p.poll() is None:
            return ""
        return self.p.stderr.read().decode(errors="replace")


class Proxy:
    """A unix socket proxy to the relay that records every byte both ways and,
    with tamper=True, flips one payload byte of the first data record the
    relay sends (its number kept in .tampered)."""

    def __init__(self, path, target, tamper=False):
        self.path, self.target, self.tamper = str(path), str(target), tamper
        self.seen = bytearray()
        self.up = bytearray()  # client -> relay
        self.tampered = None
        self.ls = socket.socket(socket.AF_UNIX)
        self.ls.bind(self.path)
        self.ls.listen(1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        c, _ = self.ls.accept()
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.target)
        down = bytearray()
        while True:
            r, _, _ = select.select([c, s], [], [])
            if c in r:
                d = c.recv(65536)
                if not d:
                    break
                self.seen += d
                self.up += d
                s.sendall(d)
            if s in r:
                d = s.recv(65536)
                if not d:
                    break
                self.seen += d
                if not self.tamper:
                    c.sendall(d)
                    continue
                down += d
                c.sendall(self._cut(down))
        c.close()
        s.close()

    def _cut(self, buf):
        """Whole records (after the greeting line) out of buf, one tampered."""
        out = bytearray()
        if not buf.startswith(b"KCR1") and b"\n" in buf:
            n = buf.index(b"\n") + 1
            out += buf[:n]
            del buf[:n]
        while len(buf) >= 32:
            n = 32 + int.from_bytes(buf[6:8], "big") + 16
            if len(buf) < n:
                break
            rec = bytearray(buf[:n])
            del buf[:n]
            if self.tampered is None and rec[4:5] == b"D" and rec[5] == 1:
                rec[40] ^= 1
                self.tampered = int.from_bytes(rec[24:32], "big")
            out += rec
        return bytes(out)


def later(net, sock, tmp, n):
    """Have the program print n lines while no client is attached; attach
    again (returned)."""
    gate = tmp / f"gate{n}"
    a = Attach(net, f"unix:{sock}")
    a.send(f"later {n} {tmp / f'done{n}'} {gate}\n")
    wait_path(f"{gate}.got")
    a.detach()
    gate.touch()
    wait_path(tmp / f"done{n}")
    return Attach(net, f"unix:{sock}")


def connect_when_free(sock, timeout=30):
    """A raw connection the relay accepted: right after a detach the relay may
    not have seen the last client go yet and answers busy (then closes)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = socket.socket(socket.AF_UNIX)
        raw.connect(str(sock))
        hello = b""
        while not hello.endswith(b"\n") and len(hello) < 32:
            c = raw.recv(1)
            if not c:
                break
            hello += c
        if hello == b"kiln-console 1 ok\n":
            return raw
        raw.close()
        assert hello == b"kiln-console 1 busy\n" and time.monotonic() < deadline, hello
        time.sleep(0.05)


def test_console_socket_live(net, cas_identity, tmp_path):
    reader = policy(net, cas_identity)
    sock = tmp_path / "c.sock"
    run = start_run(net, f"unix:{sock}", tmp_path)
    wait_path(sock, run)
    assert os.stat(sock).st_mode & 0o777 == 0o600
    # Through a recording proxy: output seen live, input echoed, no plaintext
    # on the socket either way.
    proxy = Proxy(tmp_path / "p.sock", sock)
    a = Attach(net, f"unix:{tmp_path / 'p.sock'}", reader)
    a.wait_for(SECRET)
    a.send("typed-word\n")
    a.wait_for("echo typed-word")
    # A second client while one is attached: refused, the first one unharmed.
    b = Attach(net, f"unix:{sock}")
    rc, err = b.finish()
    assert rc == 1 and "another client is attached" in err, err
    a.detach()
    assert SECRET.encode() not in proxy.seen and b"typed-word" not in proxy.seen
    assert b"KCR1" in proxy.seen
    # 8 children with a stream each: more stream headers than the relay keeps
    # aside; the program's own stay, so the next attaches still bind their
    # input to the program's stream.
    a = Attach(net, f"unix:{sock}")
    a.send("fork 8\n")
    a.wait_for("forked")
    a.detach()
    # Detached, the program goes on printing; the next attach gets what was
    # kept, names by number what it did not get, and its input (a third
    # input session, numbered past the others) is read.
    a = later(net, sock, tmp_path, 5)
    a.wait_for("later 4")
    a.send("again\n")
    a.wait_for("echo again")
    a.detach()
    err = a.stderr()
    assert "missing (before this attach" in err, err
    assert "echo again" in a.out.decode() and SECRET not in a.out.decode()
    # The host replays the first attach's input (its session header and
    # "typed-word") into the relay: the program's read fails, nothing typed
    # twice.
    assert b"KCR1" in proxy.up
    raw = connect_when_free(sock)
    raw.sendall(bytes(proxy.up))
    assert run.wait(timeout=60) != 0
    err = (tmp_path / "run.err").read_text()
    assert "stdin: record" in err and "came again (replayed or reordered)" in err, err
    assert not sock.exists()


def test_console_socket_overflow_and_tamper(net, cas_identity, tmp_path):
    policy(net, cas_identity)
    sock = tmp_path / "c.sock"
    run = start_run(net, f"unix:{sock}", tmp_path)
    wait_path(sock, run)
    # Tampering between the relay and attach: reported by record number.
    proxy = Proxy(tmp_path / "p.sock", sock, tamper=True)
    a = Attach(net, f"unix:{tmp_path / 'p.sock'}")
    a.send("one\n")
    a.wait_for("echo one")
    a.detach()
    err = a.stderr()
    assert proxy.tampered is not None
    assert f"stdout: record {proxy.tampered} (byte" in err, err
    assert "does not authenticate" in err and SECRET not in a.out.decode(), err
    # 3000 records (about 450 KiB) while none is attached: the relay keeps
    # 256 KiB; the next attach reports the oldest as missing by number and
    # shows the newest. The program never blocked.
    a = later(net, sock, tmp_path, 3000)
    a.wait_for("later 2999")
    rc, err = a.finish()
    assert rc == 1 and "later 0 " not in a.out.decode()
    assert "stdout: records " in err and "missing (before this attach" in err, err
    assert run.wait(timeout=60) == 0
    assert "oldest records are dropped" in (tmp_path / "run.err").read_text()


def test_console_socket_stranger_and_tcp(net, cas_identity, tmp_path):
    policy(net, cas_identity)
    stranger, _ = cas_identity("stranger")
    port = free_port()
    run = start_run(net, f"tcp:127.0.0.1:{port}", tmp_path)
    for _ in range(400):
        if listening(port) or run.poll() is not None:
            break
        time.sleep(0.025)
    a = Attach(net, f"tcp:127.0.0.1:{port}", stranger)
    rc, err = a.finish()
    assert rc == 1 and "403" in err and SECRET.encode() not in a.out, err
    a = Attach(net, f"tcp:127.0.0.1:{port}")
    a.wait_for(SECRET)
    rc, err = a.finish()
    assert "bye" in err, err
    assert run.wait(timeout=60) == 0


def test_console_socket_bad_addresses(net, cas_identity, tmp_path):
    policy(net, cas_identity)
    k = net.kiln_bin
    for addr, msg in (("tcp:127.0.0.1", "expected tcp:HOST:PORT"),
                      ("tcp:127.0.0.1:99999", "expected tcp:HOST:PORT"),
                      ("tcp::80", "expected tcp:HOST:PORT"),
                      ("udp:1.2.3.4:5", "expected unix:PATH or tcp:HOST:PORT"),
                      ("unix:", "expected unix:PATH")):
        p = subprocess.run([k, "run", "--console-listen", addr, "--", "true"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and f"--console-listen '{addr}'" in p.stderr, p.stderr
        assert msg in p.stderr, p.stderr
    for addr in ("tcp:127.0.0.1", "udp:1.2.3.4:5"):  # the same parser
        p = subprocess.run([k, "console", "attach", "--session", "s", "--service", "n",
                            "--connect", addr], capture_output=True, text=True,
                           timeout=30, env=net.env())
        assert p.returncode == 2 and f"--connect '{addr}'" in p.stderr, p.stderr
    p = subprocess.run([k, "run", "--console-listen", f"unix:{tmp_path}/x", "--", "true"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "need --cas" in p.stderr, p.stderr
    # A directory that is a symlink another user planted, one others may
    # write to, a name that exists (a planted symlink): refused, nothing run.
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.lchown(tmp_path / "link", 65534, 65534)
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)
    os.symlink("/etc/passwd", tmp_path / "real" / "taken")
    for path, msg in ((tmp_path / "link" / "c.sock", "is a symlink owned by uid 65534"),
                      (tmp_path / "open" / "c.sock", "writable by others"),
                      (tmp_path / "real" / "taken", "exists: refused"),
                      (tmp_path / "none" / "c.sock", "No such file")):
        p = subprocess.run(run_argv(net, f"unix:{path}"), capture_output=True, text=True,
                           timeout=60, env=net.env())
        assert p.returncode == 1 and f"--console-listen 'unix:{path}'" in p.stderr, p.stderr
        assert msg in p.stderr and SECRET not in p.stdout + p.stderr, p.stderr
    assert os.readlink(tmp_path / "real" / "taken") == "/etc/passwd"
    assert not os.path.exists(tmp_path / "real" / "c.sock")
