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
    def __init__(self, fsync=False, settings=(), primary=None):
        """fsync False: faster tests (a crashed test server is thrown away);
        benchmarks want it on, as in production. settings: more `-c` options
        ("synchronous_standby_names=*"). primary: a running PgServer this one
        is a streaming standby of (pg_basebackup -R: its data copied, then
        following the primary's WAL until promote())."""
        self.fsync = fsync
        self.settings = list(settings)
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
        if primary is None:
            self.run(PGBIN / "initdb", "-D", self.data, "-A", "trust", "-U", self.user,
                     "--no-sync", "-E", "UTF8", check=True)
        else:
            # Over the primary's unix socket (initdb -A trust allows local
            # replication); -R: standby.signal and primary_conninfo.
            self.run(PGBIN / "pg_basebackup", "-D", self.data, "-R", "-X", "stream",
                     "-h", primary.root, "-p", primary.port, "-U", self.user,
                     "--no-sync", check=True)
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
                 f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200" +
                 "".join(f" -c {kv}" for kv in self.settings), "start", check=True)

    def stop(self, mode="fast"):
        self.run(PGBIN / "pg_ctl", "-D", self.data, "-w", "-t", "60", "-m", mode, "stop")

    def pids(self):
        """The postmaster's pid, then those of the processes it started."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return [pid] + [int(p.name) for p in pathlib.Path("/proc").iterdir()
                        if p.name.isdigit() and self._ppid(p) == pid]

    def crash(self):
        """kill -9 the postmaster and every process of this server at once, as a
        machine that dies would: no shutdown checkpoint, nothing flushed."""
        for p in self.pids():
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass

    @staticmethod
    def _ppid(proc):
        try:
            return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None

    def promote(self):
        """A standby becomes a primary (read-write) and stops following."""
        self.run(PGBIN / "pg_ctl", "-D", self.data, "-w", "-t", "60", "promote", check=True)

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
