"""Helpers for running real programs under `kiln run` with protected volumes
(fixtures are re-exported by conftest.py)."""
import os
import pathlib
import shutil
import subprocess

import pytest

from kilnenv import BUILD, wait_server_gone

SECRET = "KILN-PLAINTEXT-MARKER-5f1c2a"


class Volume:
    """A protected volume made by `kiln fs init`, mounted with `--volume`."""

    def __init__(self, kiln_bin, root):
        self.kiln_bin = kiln_bin
        self.dir = root / "vol"
        self.key = root / "vol.key"
        p = subprocess.run([kiln_bin, "fs", "init", str(self.dir), "--key-file", str(self.key)],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr

    def run(self, *argv, mount=None, extra=(), input=None, timeout=300, env=None, check=False):
        spec = f"{mount}={self.dir}:{self.key}" if mount else f"{self.dir}={self.key}"
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.run([self.kiln_bin, "run", "--volume", spec, *extra, "--", *map(str, argv)],
                           capture_output=True, text=isinstance(input, str) or input is None,
                           input=input, timeout=timeout, env=e)
        if check and p.returncode != 0:
            raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def storage_files(self):
        return sorted(p for p in (self.dir / ".kiln").iterdir() if p.is_file())

    def backing_files(self):
        """The files' data: backing files named by 32 hex digits. Not the
        metadata, the sidecars (.j .t .h) or the volume server's own files,
        which the server removes when it exits, possibly while we list."""
        return [p for p in self.storage_files()
                if len(p.name) == 32 and all(c in "0123456789abcdef" for c in p.name)]

    def raw_bytes(self):
        """Every byte the volume holds on disk (after the volume server's exit:
        it removes .kiln/server then, which raced the listing)."""
        self.wait_server_gone()
        out = b""
        for p in self.dir.rglob("*"):
            try:
                if p.is_file():
                    out += p.read_bytes()
            except FileNotFoundError:
                pass
        return out

    def assert_no_plaintext(self, marker=SECRET):
        data = self.raw_bytes()
        assert data, "volume holds no data"
        assert marker.encode() not in data, "plaintext found on disk"

    def wait_server_gone(self, seconds=30):
        wait_server_gone(self.dir, seconds)

    def tamper_largest(self):
        """Flip one byte in the middle of the largest data file (not the metadata:
        meta, nor meta.pub and the temporary files next to them)."""
        files = [p for p in self.backing_files() if p.stat().st_size > 0]
        target = max(files, key=lambda p: p.stat().st_size)
        b = bytearray(target.read_bytes())
        b[len(b) // 2] ^= 0x01
        target.write_bytes(bytes(b))
        return target


def sqlite_on_volume(volume, prog, extra=()):
    """prog (a sqlite3 shell) makes a database with a journal on the volume and
    reads it back; Debian's sqlite3 under libkiln reads it too; no plaintext on
    disk. extra: options of kiln run (e.g. --static=loader). Returns the first
    run (its stderr says which path ran it)."""
    db = volume.dir / "app.db"
    sql = ("PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
           "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<2000)"
           f" INSERT INTO t(v) SELECT '{SECRET}-' || x FROM c; COMMIT;"
           "CREATE INDEX tv ON t(v); SELECT count(*) FROM t;")
    first = volume.run(prog, db, sql, extra=extra, check=True)
    assert first.stdout.splitlines()[-1] == "2000"
    p = volume.run(prog, db, "PRAGMA integrity_check; SELECT v FROM t WHERE id=1234;",
                   extra=extra, check=True)
    assert p.stdout.splitlines() == ["ok", f"{SECRET}-1234"]
    p = volume.run("sqlite3", db, "SELECT count(*), max(id) FROM t;", check=True)
    assert p.stdout == "2000|2000\n"
    volume.assert_no_plaintext()
    return first


@pytest.fixture
def volume(kiln_bin, tmp_path):
    return Volume(kiln_bin, tmp_path)


@pytest.fixture(scope="session")
def direct_syscall_bin():
    path = BUILD / "tests" / "e2e" / "apps" / "rt_direct_syscall"
    if not path.exists():
        pytest.fail(f"{path} not built")
    return str(path)


def nginx_conf(prefix, server, workers=1, connections=64, http_extra=""):
    """Write PREFIX/nginx.conf for `nginx -p PREFIX -c ...` in the foreground:
    workers keep root, logs to stderr, every temp path under prefix; server
    is the body of the one server block. Returns the file's path."""
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
user root root;
master_process on;
worker_processes {workers};
error_log stderr info;
pid {prefix}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  sendfile on;
{http_extra}  server {{
{server}
  }}
}}
""")
    return conf


def need(prog):
    path = shutil.which(prog) or (f"/usr/sbin/{prog}" if pathlib.Path(f"/usr/sbin/{prog}").exists()
                                  else None)
    if not path:
        pytest.skip(f"{prog} not installed")
    return path
