"""nginx with several workers behind a shielded listen port: static files and a
proxied upstream, checked with curl --cacert (the policy's CA from kiln policy
certificate). The workers share the listening socket across fork; each TLS
session is its own worker's. A client without the CA, or speaking plaintext,
gets nothing."""
import hashlib
import http.server
import os
import subprocess
import threading

from kilnapps import need, nginx_conf
from netenv import PYTHON, TlsRecords, free_port, q, wait_port


def policy(nginx, prefix, conf, port, upstream):
    return f"""\
name: t/nginx
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: web, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: web
    command: [{q(nginx)}, -p, {q(prefix)}, -c, {q(conf)}]
    measurement: [any]
    network:
      default: deny
      listen:
        - {{port: {port}, certificate: web, alpn: [http/1.1]}}
      connect:
        - {{host: 127.0.0.1, port: {upstream}, plain: true}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


class Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"upstream saw {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def curl(*args, check=True):
    p = subprocess.run(["curl", "-sS", "--max-time", "30", *map(str, args)],
                       capture_output=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def test_nginx_workers_behind_the_shield(net, tmp_path):
    nginx = need("nginx")
    need("curl")
    port = free_port()
    up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    www = tmp_path / "www"
    www.mkdir()
    small = os.urandom(4096)
    big = os.urandom(1 << 20)
    (www / "small.bin").write_bytes(small)
    (www / "big.bin").write_bytes(big)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = nginx_conf(prefix, f"""    listen 127.0.0.1:{port};
    root {www};
    add_header X-Worker $pid;
    location /up/ {{ proxy_pass http://127.0.0.1:{up.server_port}; }}""",
                      workers=4, connections=256, http_extra="  keepalive_timeout 30;\n")
    try:
        net.apply(policy(nginx, prefix, conf, port, up.server_port))
        srv = net.start("t/nginx", "web", program=nginx)
        wait_port(port, srv)
        ca = net.cert("t/nginx:ca")
        base = f"https://localhost:{port}"
        assert curl("--cacert", ca, f"{base}/small.bin").stdout == small
        got = curl("--cacert", ca, f"{base}/big.bin").stdout
        assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest()
        assert curl("--cacert", ca, f"{base}/up/x?y=1").stdout == b"upstream saw /up/x?y=1\n"
        # Many connections (new ones each time, and keep-alive ones in one
        # curl): several workers answer, each over its own TLS sessions.
        workers = set()
        for _ in range(40):
            p = curl("--cacert", ca, "-D", "-", "-o", "/dev/null", f"{base}/small.bin")
            workers |= {line.split(b":")[1].strip() for line in p.stdout.splitlines()
                        if line.lower().startswith(b"x-worker:")}
        p = curl("--cacert", ca, *[f"{base}/small.bin"] * 20)
        assert p.stdout == small * 20
        assert len(workers) >= 2, workers
        # One record per 4 KiB response, as nginx's own TLS sends it (header
        # by writev and body by sendfile are two calls; the shield holds the
        # header for the body, net/hold.c), over keep-alive.
        c = TlsRecords(port, ca)
        try:
            for _ in range(3):
                c.send(b"GET /small.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                r = c.record()
                assert r.startswith(b"HTTP/1.1 200") and r.endswith(small), r[:200]
        finally:
            c.close()
        # Without the CA curl refuses the server; plaintext HTTP gets no answer.
        assert curl(f"{base}/small.bin", check=False).returncode == 60
        p = curl(f"http://127.0.0.1:{port}/small.bin", check=False)
        assert p.returncode != 0 and small not in p.stdout
        assert srv.alive(), srv.err()
    finally:
        up.shutdown()
    srv.stop()
    assert "the peer speaks plaintext HTTP, not TLS" in srv.err()


FILL = r"""
import hashlib, os
d = os.environ["WWW"]
big = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(32768))
with open(os.path.join(d, "big.bin"), "wb") as f:
    f.write(big)
with open(os.path.join(d, "small.html"), "wb") as f:
    f.write(b"<p>kiln-protected-page</p>\n" * 150)
print("filled", len(big))
"""


def volume_policy(nginx, prefix, conf, port, www):
    return f"""\
name: t/nginx-vol
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: web, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
volumes:
  - {{name: www}}
services:
  - name: fill
    command: [{q(PYTHON)}, -c, {q(FILL)}]
    environment: {{WWW: {q(www)}}}
    mounts: [{{volume: www, path: {q(www)}}}]
    measurement: [any]
  - name: web
    command: [{q(nginx)}, -p, {q(prefix)}, -c, {q(conf)}]
    mounts: [{{volume: www, path: {q(www)}}}]
    measurement: [any]
    network:
      default: deny
      listen:
        - {{port: {port}, certificate: web}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def test_nginx_sendfile_from_a_volume_into_the_shield(net, tmp_path):
    """Protected files into shielded sockets: nginx's sendfile reads chunks the
    file shield decrypts and the network shield encrypts; whole files, ranges
    (sendfile with an offset) and keep-alive, with ciphertext at both ends."""
    nginx = need("nginx")
    need("curl")
    port = free_port()
    www = tmp_path / "www"
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = nginx_conf(prefix, f"""    listen 127.0.0.1:{port};
    root {www};""", workers=2)
    net.apply(volume_policy(nginx, prefix, conf, port, www))
    p = net.run("t/nginx-vol", "fill")
    assert p.returncode == 0 and "filled 1048576" in p.stdout, p.stderr
    big = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(32768))
    small = b"<p>kiln-protected-page</p>\n" * 150
    # What the host sees: no plaintext in the volume's files.
    raw = b"".join(f.read_bytes() for f in www.rglob("*") if f.is_file())
    assert raw and b"kiln-protected-page" not in raw and big[:64] not in raw
    srv = net.start("t/nginx-vol", "web", program=nginx)
    wait_port(port, srv)
    ca = net.cert("t/nginx-vol:ca")
    base = f"https://localhost:{port}"
    assert curl("--cacert", ca, f"{base}/small.html").stdout == small
    got = curl("--cacert", ca, f"{base}/big.bin").stdout
    assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest()
    # Ranges: sendfile from an offset inside a chunk and across chunks.
    for lo, hi in ((1000, 2999), (4095, 4096), (300000, 700123), (1048000, 1048575)):
        assert curl("--cacert", ca, "-r", f"{lo}-{hi}", f"{base}/big.bin").stdout == \
            big[lo:hi + 1], (lo, hi)
    # Keep-alive: one connection, many files.
    assert curl("--cacert", ca, *[f"{base}/small.html"] * 10).stdout == small * 10
    # A missing file is nginx's 404, quietly (ENOENT is an expected result).
    p = curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", f"{base}/none")
    assert p.stdout == b"404"
    assert srv.alive(), srv.err()
    srv.stop()
    assert "kiln:" not in srv.err().replace("kiln: WARNING: INSECURE", ""), srv.err()
