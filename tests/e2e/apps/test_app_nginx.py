"""nginx under kiln run: static files (4 KiB and 1 MiB) served from a protected
volume by a forked worker (open + fstat + sendfile on the plaintext)."""
import hashlib
import os
import subprocess
import time
import urllib.error
import urllib.request

from kilnapps import SECRET, need, nginx_conf
from test_app_redis import free_port


def test_nginx_static(volume, tmp_path):
    nginx = need("nginx")
    small = (SECRET + "\n").encode() * (4096 // (len(SECRET) + 1) + 1)
    small = small[:4096]
    big = os.urandom(1 << 20) + SECRET.encode()
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.txt").write_bytes(small)
    (src / "big.bin").write_bytes(big)
    volume.run("sh", "-c", f"mkdir {volume.dir}/www && cp {src}/small.txt {src}/big.bin "
               f"{volume.dir}/www/", check=True)
    port = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    # Workers keep root: the volume directory is 0700 (see docs/runtime.md on
    # programs that drop privileges).
    conf = nginx_conf(prefix, f"    listen 127.0.0.1:{port};\n    root {volume.dir}/www;")
    proc = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             "--", nginx, "-p", str(prefix), "-c", str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        for _ in range(200):
            if proc.poll() is not None:
                raise AssertionError("nginx exited:\n" + proc.stdout.read())
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/small.txt",
                                              timeout=5).read()
                break
            except urllib.error.HTTPError:
                raise
            except OSError:
                time.sleep(0.05)
        assert body == small
        got = urllib.request.urlopen(f"http://127.0.0.1:{port}/big.bin", timeout=30).read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/missing", timeout=5)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    volume.assert_no_plaintext()
