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
from netenv import free_port, q, wait_port


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
        # Without the CA curl refuses the server; plaintext HTTP gets no answer.
        assert curl(f"{base}/small.bin", check=False).returncode == 60
        p = curl(f"http://127.0.0.1:{port}/small.bin", check=False)
        assert p.returncode != 0 and small not in p.stdout
        assert srv.alive(), srv.err()
    finally:
        up.shutdown()
    srv.stop()
    assert "the peer speaks plaintext HTTP, not TLS" in srv.err()
