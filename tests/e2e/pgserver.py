"""A PostgreSQL 15 server for the CAS tests (`kiln cas serve --store ...`).

initdb into a temp dir, run as the postgres user when the tests run as root
(PostgreSQL refuses root), unix socket in that dir on a free port number, no
TCP; stopped and removed at teardown. One server per test session; each test
gets a database of its own (PgServer.new_store)."""
import itertools
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile

PGBIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, fsync=False):
        """fsync False: faster tests (a crashed test server is thrown away);
        benchmarks want it on, as in production."""
        self.fsync = fsync
        if not (PGBIN / "postgres").exists():
            raise RuntimeError(f"{PGBIN}/postgres missing: scripts/install-deps.sh installs "
                               "postgresql-15")
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="kiln-cas-pg-"))
        self.root.chmod(0o755)
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.data = self.root / "data"
        self.log = self.root / "pg.log"
        self.port = free_port()
        self._names = itertools.count(1)
        self.run(PGBIN / "initdb", "-D", self.data, "-A", "trust", "-U", self.user,
                 "--no-sync", "-E", "UTF8", check=True)
        self.start()

    def run(self, *argv, check=False, timeout=120, **kw):
        argv = [str(a) for a in argv]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def start(self):
        self.run(PGBIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                 f"-k {self.root} -p {self.port} -c listen_addresses='' "
                 f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200", "start",
                 check=True)

    def stop(self, mode="fast"):
        self.run(PGBIN / "pg_ctl", "-D", self.data, "-w", "-t", "60", "-m", mode, "stop")

    def close(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db):
        return f"postgresql:///{db}?host={self.root}&port={self.port}&user={self.user}"

    def new_store(self):
        """A fresh database: its connection URI."""
        name = f"kiln{next(self._names)}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name, self.url(name)

    def psql(self, db, query, check=True):
        """Rows of query as text (psql -At)."""
        return self.run(PGBIN / "psql", "-h", self.root, "-p", self.port, "-U", self.user,
                        "-At", "-v", "ON_ERROR_STOP=1", "-c", query, db, check=check).stdout

    def dump(self, db):
        return self.run(PGBIN / "pg_dump", "-h", self.root, "-p", self.port, "-U", self.user,
                        db, check=True).stdout
