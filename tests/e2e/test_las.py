"""kiln-las (host attestor), host evidence and `kiln measure`, end to end.

Each test starts its own `kiln las serve` on a socket in a temp dir and stops it
with SIGTERM. The measured programs are small C clients compiled here, so that
their mapped libraries are the same when kiln-las measures them over the socket
and when `kiln measure` measures them before main().
"""
import hashlib
import json
import os
import pathlib
import queue
import signal
import socket
import stat
import subprocess
import threading

import pytest

from kilnenv import BUILD

CLIENT_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Ask kiln-las (argv[1]) for evidence over report_data argv[2]; print it. */
int main(int argc, char **argv)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    char buf[65536];
    ssize_t n;
    size_t len = 0;
    int fd;

    if (argc != 3)
        return 2;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[1]);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 3;
    dprintf(fd, "{\"report_data\": \"%s\"}\n", argv[2]);
    while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    fwrite(buf, 1, len, stdout);
    return VARIANT;
}
"""

RD = "ab" * 64
RD2 = "0123456789abcdef" * 8


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """Two builds of the client that differ only in their exit code."""
    d = tmp_path_factory.mktemp("clients")
    src = d / "client.c"
    src.write_text(CLIENT_C)
    out = {}
    for name, variant in (("client", 0), ("client2", 0x20)):
        exe = d / name
        subprocess.run(["cc", "-O1", f"-DVARIANT={variant}", "-o", str(exe), str(src)],
                       check=True)
        out[name] = str(exe)
    return out


class Las:
    def __init__(self, kiln_bin, tmp, name="las", extra=()):
        self.sock = tmp / f"{name}.sock"
        self.key = tmp / f"{name}.key"
        self.pem = tmp / f"{name}.pem"
        self.proc = subprocess.Popen(
            [kiln_bin, "las", "serve", "--socket", str(self.sock), "--key", str(self.key),
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out = queue.Queue()
        self.log = []
        self._err = queue.Queue()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self._err),
                                          daemon=True)]
        for t in self._threads:
            t.start()
        self.header = [self._get(self.out) for _ in range(3)]
        self.id = self.header[2].split("id: ")[1]
        # The socket exists once the daemon logs that it serves.
        line = self._get(self._err)
        assert "kiln-las serving" in line, line

    def _pump(self, f, q):
        for line in f:
            if q is self._err:
                self.log.append(line)
            q.put(line.rstrip("\n"))
        q.put(None)

    def _get(self, q):
        line = q.get(timeout=60)
        assert line is not None, "kiln las serve exited:\n" + "".join(self.log)
        return line

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        for t in self._threads:
            t.join(timeout=10)
        if rc != 0:
            print("kiln las serve log:\n" + "".join(self.log))
        return rc


@pytest.fixture
def las(kiln_bin, tmp_path):
    d = Las(kiln_bin, tmp_path)
    yield d
    if d.proc.poll() is None:
        assert d.stop() == 0
        assert not d.sock.exists()


def runtime_env():
    """The environment of a program started by `kiln run`: the runtime preloaded
    (it passes through without a configuration). kiln-las then sees the same
    mappings libkiln measures before main(), libkiln's own dependencies included,
    and leaves libkiln itself out by digest. Without a runtime build, the
    stand-in measurement library plays its part."""
    lib = BUILD / "src" / "runtime" / "libkiln.so"
    if not lib.exists():
        lib = BUILD / "src" / "evidence" / "libkiln-measure.so"
    env = dict(os.environ, LD_PRELOAD=str(lib))
    env.pop("KILN_MEASURE_ONLY", None)
    return env


def request(client, las_, rd=RD, env=None):
    p = subprocess.run([client, str(las_.sock), rd], capture_output=True, timeout=60, env=env)
    return p.stdout.decode()


def raw(sock_path, data, shut=True):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(str(sock_path))
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def verify(kiln, ev_text, tmp_path, *certs, at=None):
    f = tmp_path / "ev.json"
    f.write_text(ev_text)
    args = ["las", "verify", f]
    for c in certs:
        args += ["--cert", c]
    if at is not None:
        args += ["--at", at]
    return kiln(*args)


def measure(kiln, *prog):
    p = kiln("measure", "--", *prog, check=True)
    line = p.stdout.strip()
    assert len(line) == 96 and all(c in "0123456789abcdef" for c in line), p.stdout
    return line


def test_serve_creates_identity_once(kiln, kiln_bin, las, tmp_path):
    assert las.header[0] == f"created LAS key {las.key}"
    assert las.header[1] == f"certificate: {las.pem}"
    assert stat.S_IMODE(os.stat(las.key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(las.sock).st_mode) == 0o666
    pem = kiln("las", "cert", "--key", las.key, check=True).stdout
    assert pem == las.pem.read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert kiln("las", "cert", "--key", las.key, "--id", check=True).stdout.strip() == las.id
    # Same id as `openssl` computes: sha256 of the SPKI DER.
    spki = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem.encode(),
                          capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=spki,
                         capture_output=True, check=True).stdout
    assert las.id == "sha256:" + hashlib.sha256(der).hexdigest()
    subj = subprocess.run(["openssl", "x509", "-subject", "-noout"], input=pem,
                          capture_output=True, check=True, text=True).stdout
    assert "kiln-las " in subj
    # A second daemon on the same socket is refused; a restart keeps the key.
    p = kiln("las", "serve", "--socket", las.sock, "--key", las.key)
    assert p.returncode == 1 and "another kiln-las is serving" in p.stderr
    assert las.stop() == 0
    again = Las(kiln_bin, tmp_path)
    try:
        assert again.header[0] == f"loaded LAS key {las.key}"
        assert again.id == las.id
    finally:
        assert again.stop() == 0


def test_host_evidence_round_trip(kiln, las, clients, tmp_path):
    ev = request(clients["client"], las, env=runtime_env())
    assert ev.endswith("\n") and ev.count("\n") == 1
    p = verify(kiln, ev, tmp_path, las.pem)
    assert p.returncode == 0, p.stderr
    claims = json.loads(p.stdout)
    assert claims["tee"] == "host"
    assert claims["insecure"] is False and claims["debug"] is False
    assert claims["report_data"] == RD
    assert claims["platform_measurement"] == las.id
    assert claims["exe"] == clients["client"]
    exe_digest = hashlib.sha256(pathlib.Path(clients["client"]).read_bytes()).hexdigest()
    assert claims["exe_sha256"] == exe_digest
    assert claims["uid"] == os.getuid()
    # The generic evidence CLI verifies it the same way.
    (tmp_path / "ev2.json").write_text(ev)
    p = kiln("evidence", "verify", tmp_path / "ev2.json", "--tee", "host", "--cert-chain",
             las.pem)
    assert p.returncode == 0, p.stderr
    assert claims["workload_measurement"] in p.stdout
    # The same value `kiln measure` prints for policies: kiln-las measuring a
    # program under the runtime agrees with the runtime's pre-main measurement.
    assert claims["workload_measurement"] == measure(kiln, clients["client"], "x", "y")
    manifest = kiln("measure", "--manifest", "--", clients["client"], check=True).stdout
    assert manifest.startswith("kiln-manifest-v1\nruntime kiln-")
    assert f"\nexe {exe_digest}\n" in manifest
    assert hashlib.sha384(manifest[:-97].encode()).hexdigest() == manifest[-97:-1]
    # The request is logged with the peer and its measurement.
    las.stop()
    assert any("evidence issued" in line and claims["workload_measurement"] in line
               for line in las.log)


def test_different_binary_different_measurement(kiln, las, clients, tmp_path):
    env = runtime_env()
    c1 = json.loads(verify(kiln, request(clients["client"], las, env=env), tmp_path,
                           las.pem).stdout)
    c2 = json.loads(verify(kiln, request(clients["client2"], las, RD2, env=env), tmp_path,
                           las.pem).stdout)
    assert c2["report_data"] == RD2
    assert c1["workload_measurement"] != c2["workload_measurement"]
    assert c2["workload_measurement"] == measure(kiln, clients["client2"])
    assert measure(kiln, clients["client"]) != measure(kiln, clients["client2"])


def test_measure_library_is_left_out(kiln, las, clients, tmp_path):
    """kiln-las leaves a kiln measuring library out by digest: a process with
    libkiln-measure.so loaded (it maps nothing else) measures the same as the
    plain process."""
    lib = BUILD / "src" / "evidence" / "libkiln-measure.so"
    env = dict(os.environ, LD_PRELOAD=str(lib))
    env.pop("KILN_MEASURE_ONLY", None)
    p = subprocess.run([clients["client"], str(las.sock), RD], capture_output=True, env=env,
                       timeout=60, text=True)
    with_lib = json.loads(verify(kiln, p.stdout, tmp_path, las.pem).stdout)
    plain = json.loads(verify(kiln, request(clients["client"], las), tmp_path,
                              las.pem).stdout)
    assert with_lib["workload_measurement"] == plain["workload_measurement"]


def test_verify_refusals(kiln, kiln_bin, las, clients, tmp_path):
    ev = request(clients["client"], las)
    other = Las(kiln_bin, tmp_path, name="other")
    try:
        p = verify(kiln, ev, tmp_path, other.pem)
        assert p.returncode == 1
        assert f"kiln-las certificate {las.id} is not one of the 1 trusted" in p.stderr
        # Trusting both works.
        assert verify(kiln, ev, tmp_path, other.pem, las.pem).returncode == 0
    finally:
        assert other.stop() == 0
    t = json.loads(verify(kiln, ev, tmp_path, las.pem).stdout)["time"]
    p = verify(kiln, ev, tmp_path, las.pem, at=t + 301)
    assert p.returncode == 1 and "more than 300 s apart" in p.stderr
    assert verify(kiln, ev, tmp_path, las.pem, at=t + 300).returncode == 0
    # A flipped payload byte breaks the signature.
    j = json.loads(ev)
    import base64
    payload = bytearray(base64.b64decode(j["payload"]))
    payload[payload.index(b'"uid":') + 6] ^= 1
    j["payload"] = base64.b64encode(bytes(payload)).decode()
    p = verify(kiln, json.dumps(j), tmp_path, las.pem)
    assert p.returncode == 1 and "does not verify" in p.stderr
    p = verify(kiln, "{}", tmp_path, las.pem)
    assert p.returncode == 1 and "missing key" in p.stderr


def test_hostile_input_keeps_serving(kiln, las, clients, tmp_path):
    def err(answer):
        j = json.loads(answer)
        assert list(j) == ["error"], answer
        return j["error"]

    assert err(raw(las.sock, b"garbage\n")) == "request is not a JSON object"
    assert "request too large" == err(raw(las.sock, b"{" + b"x" * 100000, shut=False))
    assert err(raw(las.sock, b'{"report_data": "%s"}\n' % (b"AB" * 64))) == \
        "report_data must be lowercase hex"
    assert err(raw(las.sock, b'{"report_data": "abc"}\n')) == \
        "report_data must be 128 hex digits"
    assert err(raw(las.sock, b'{"report_data": "%s", "x": 1}\n' % (b"ab" * 64))).startswith(
        "request must be")
    assert err(raw(las.sock, b'{"report_data": "%s"}\n{}\n' % (b"ab" * 64))) == \
        "one request per connection"
    assert err(raw(las.sock, b'{"report_data": "ab')) == \
        "connection closed before a complete request"
    raw_nul = raw(las.sock, b'{"report_data": "\\u0000"}\n')
    assert "error" in json.loads(raw_nul)

    # Slowloris: a client that never finishes its line holds one slot until the
    # deadline, while everyone else is served.
    slow = socket.socket(socket.AF_UNIX)
    slow.settimeout(60)
    slow.connect(str(las.sock))
    slow.sendall(b'{"report_d')
    ev = request(clients["client"], las)
    assert verify(kiln, ev, tmp_path, las.pem).returncode == 0
    assert err(slow.recv(65536)) == "request timed out"
    slow.close()
    assert verify(kiln, request(clients["client"], las), tmp_path, las.pem).returncode == 0
    assert las.proc.poll() is None


def test_concurrent_clients(kiln, kiln_bin, clients, tmp_path):
    """More clients than connection slots: the rest wait in the backlog, all get
    served, the same program gets the same measurement."""
    d = Las(kiln_bin, tmp_path, extra=("--max-clients", "4", "--no-cache"))
    try:
        procs = [subprocess.Popen([clients["client"], str(d.sock), RD],
                                  stdout=subprocess.PIPE, text=True) for _ in range(40)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs)
        wms = {json.loads(verify(kiln, o, tmp_path, d.pem).stdout)["workload_measurement"]
               for o in outs}
        assert len(wms) == 1
        # Many threads of one process at once (the pid-reuse guard must not
        # mistake a busy multi-threaded peer for a changed one).
        answers = []
        ths = [threading.Thread(target=lambda: answers.append(
            raw(d.sock, b'{"report_data": "%s"}\n' % RD.encode()))) for _ in range(12)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        assert len(answers) == 12
        for a in answers:
            assert json.loads(a)["format"] == "kiln-las-v1", a
    finally:
        assert d.stop() == 0


def test_request_cli(kiln, las):
    p = kiln("las", "request", "--socket", las.sock, "--report-data", RD)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["format"] == "kiln-las-v1"
    p = kiln("las", "request", "--socket", las.sock, "--report-data", "zz")
    assert p.returncode == 2 and "128 hex digits" in p.stderr


def test_request_without_daemon(kiln, tmp_path):
    p = kiln("las", "request", "--socket", tmp_path / "none.sock", "--report-data", RD)
    assert p.returncode == 1
    assert "cannot reach kiln-las" in p.stderr and "none.sock" in p.stderr


def test_serve_refuses_non_socket(kiln, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    p = kiln("las", "serve", "--socket", f, "--key", tmp_path / "k.key")
    assert p.returncode == 1 and "is not a socket" in p.stderr
    assert f.read_text() == "x"


def test_bad_key_file(kiln, tmp_path):
    k = tmp_path / "bad.key"
    k.write_text("not a key\n")
    os.chmod(k, 0o600)
    p = kiln("las", "serve", "--socket", tmp_path / "s.sock", "--key", k)
    assert p.returncode == 1 and "expected a PEM private key" in p.stderr
    os.chmod(k, 0o644)
    p = kiln("las", "cert", "--key", k)
    assert p.returncode == 1 and "chmod 600" in p.stderr


def test_measure_cli(kiln, tmp_path):
    # --pid of a program running under the runtime equals the pre-main
    # measurement of the same program.
    sleeper = subprocess.Popen(["sleep", "60"], env=runtime_env())
    try:
        p = kiln("measure", "--pid", sleeper.pid, check=True)
        assert p.stdout.strip() == measure(kiln, "sleep", "60")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert measure(kiln, "/bin/true") != measure(kiln, "/bin/false")
    p = kiln("measure")
    assert p.returncode == 2 and "missing -- PROG" in p.stderr
    p = kiln("measure", "--help")
    assert p.returncode == 0 and "Usage: kiln measure" in p.stdout
    p = kiln("measure", "--", tmp_path / "nonexistent")
    assert p.returncode == 1 and "cannot run" in p.stderr
    p = kiln("measure", "--pid", "abc")
    assert p.returncode == 2
    p = kiln("measure", "--pid", "2147483646")
    assert p.returncode == 1 and "measuring pid 2147483646" in p.stderr


def test_measure_static_binary_from_file(kiln, tmp_path):
    src = tmp_path / "s.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    exe = tmp_path / "s"
    subprocess.run(["cc", "-static", "-o", str(exe), str(src)], check=True)
    p = kiln("measure", "--manifest", "--", exe)
    assert p.returncode == 0, p.stderr
    # Measured from the file, never run: the program's own output never appears.
    assert "hello" not in p.stdout
    lines = p.stdout.splitlines()
    digest = hashlib.sha256(exe.read_bytes()).hexdigest()
    assert lines[0] == "kiln-manifest-v1" and lines[2] == f"exe {digest}" and len(lines) == 4
    manifest = "\n".join(lines[:3]) + "\n"
    assert lines[3] == hashlib.sha384(manifest.encode()).hexdigest()
    # A dynamic program that never returns to the loader's constructors would
    # be caught by the output check; a setuid one is refused up front.
    dyn = tmp_path / "d"
    subprocess.run(["cc", "-o", str(dyn), str(src)], check=True)
    os.chmod(dyn, 0o4755)
    p = kiln("measure", "--", dyn)
    assert p.returncode == 1 and "is setuid/setgid" in p.stderr
    assert "hello" not in p.stdout
