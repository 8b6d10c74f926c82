"""PostgreSQL 15 on a protected volume under kiln run (issue 10): initdb, start,
pgbench -i and a pgbench run with 8 clients, pg_amcheck --heapallindexed clean and
no ERROR in the server log; stop and restart; kill -9 of the postmaster under load
(its volume server lives on), then kill -9 of the postmaster and of the volume
server (a crash): restart recovers, checks stay clean, the volume verifies.

PostgreSQL refuses to run as root: everything runs as the postgres user in a
directory it owns. make check runs a short version; make stress the full one
(scale 10, 30 s)."""
import ctypes
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from kilnapps import SECRET

PGBIN = pathlib.Path("/usr/lib/postgresql/15/bin")
STRESS = os.environ.get("KILN_STRESS") == "1"
SCALE = 10 if STRESS else 2
SECONDS = 30 if STRESS else 5


def children(pid):
    """Processes whose parent is pid."""
    out = []
    for d in pathlib.Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


class Pg:
    """A protected volume owned by postgres, with PostgreSQL's data directory in it."""

    def __init__(self, kiln_bin):
        self.kiln = kiln_bin
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="kiln-pg-"))
        self.root.chmod(0o755)
        pw = pwd.getpwnam("postgres")
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.vol = self.root / "vol"
        self.key = self.root / "vol.key"
        self.data = self.vol / "data"
        self.log = self.root / "pg.log"
        self.ctl_log = self.root / "ctl.log"
        self.as_pg([kiln_bin, "fs", "init", self.vol, "--key-file", self.key], check=True)

    def as_pg(self, argv, check=False, timeout=600, **kw):
        p = subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)],
                           capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def run(self, *argv, check=False, timeout=600):
        return self.as_pg([self.kiln, "run", "--volume", f"{self.vol}={self.key}", "--",
                           *argv], check=check, timeout=timeout)

    def start(self):
        # pg_ctl's stderr becomes the volume server's log when it starts it.
        with open(self.ctl_log, "a") as ctl:
            p = subprocess.run(["runuser", "-u", "postgres", "--", self.kiln, "run", "--volume",
                                f"{self.vol}={self.key}", "--", PGBIN / "pg_ctl", "-D",
                                self.data, "-l", self.log, "-o",
                                f"-k {self.root} -c listen_addresses=''", "-w", "-t", "120",
                                "start"], stdout=ctl, stderr=ctl, timeout=300)
        assert p.returncode == 0, self.ctl_log.read_text() + self.log.read_text()

    def stop(self):
        self.run(PGBIN / "pg_ctl", "-D", self.data, "-w", "-t", "120", "-m", "fast", "stop",
                 check=True)

    def sql(self, query, check=True):
        return self.run(PGBIN / "psql", "-h", self.root, "-At", "-v", "ON_ERROR_STOP=1", "-c",
                        query, "postgres", check=check)

    def postmaster_pid(self):
        """From postmaster.pid, which exists only inside the volume."""
        return int(self.run("cat", self.data / "postmaster.pid", check=True).stdout.split()[0])

    def server_pid(self):
        return int((self.vol / ".kiln" / "server").read_text().split()[0])

    def amcheck(self):
        p = self.run(PGBIN / "pg_amcheck", "-h", self.root, "--install-missing",
                     "--heapallindexed", "postgres")
        assert p.returncode == 0, p.stdout + p.stderr

    def errors(self):
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if "ERROR:" in line]

    def wait_gone(self, pid):
        """Until pid is reaped (PostgreSQL's lock file check sees a zombie as
        running): this test is the subreaper of what it starts."""
        for _ in range(600):
            reap()
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise AssertionError(f"pid {pid} still running")

    def wait_server_gone(self):
        """The volume server exits (after its last commit) with its last client."""
        info = self.vol / ".kiln" / "server"
        if info.exists():
            try:
                self.wait_gone(int(info.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass

    def cleanup(self):
        self.run(PGBIN / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        self.wait_server_gone()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pg(kiln_bin):
    if not (PGBIN / "postgres").exists():
        pytest.skip("postgresql-15 not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root to run PostgreSQL as the postgres user")
    # Orphans (the postmaster, the volume server) come to this process, which
    # reaps them: killed ones must be gone, not zombies, before a restart.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    p = Pg(kiln_bin)
    try:
        yield p
    finally:
        p.cleanup()
        reap()
        libc.prctl(36, 0, 0, 0, 0)


def pgbench(pg, *args, timeout=600):
    return pg.run(PGBIN / "pgbench", "-h", pg.root, *args, "postgres", timeout=timeout)


def test_postgres(pg):
    r = pg.run(PGBIN / "initdb", "-D", pg.data, "-A", "trust", "-U", "postgres")
    assert r.returncode == 0, r.stdout + r.stderr
    pg.start()
    r = pgbench(pg, "-i", "-s", str(SCALE))
    assert r.returncode == 0, r.stderr
    r = pgbench(pg, "-c", "8", "-T", str(SECONDS))
    assert r.returncode == 0 and "number of failed transactions: 0" in r.stdout, r.stdout + r.stderr
    pg.sql(f"CREATE TABLE secret(v text); INSERT INTO secret VALUES ('{SECRET}');")
    pg.amcheck()
    assert pg.errors() == []
    # Stop and start again.
    pg.stop()
    pg.start()
    assert pg.sql("SELECT v FROM secret").stdout.strip() == SECRET
    count = int(pg.sql("SELECT count(*) FROM pgbench_accounts").stdout)
    assert count == SCALE * 100000

    # kill -9 of the postmaster under load: its backends go, the volume server
    # (another process) stays and keeps what they wrote; PostgreSQL recovers.
    bench = subprocess.Popen(["runuser", "-u", "postgres", "--", pg.kiln, "run", "--volume",
                              f"{pg.vol}={pg.key}", "--", PGBIN / "pgbench", "-h", pg.root,
                              "-c", "8", "-T", "60", "postgres"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    pm = pg.postmaster_pid()
    os.kill(pm, signal.SIGKILL)
    bench.wait(timeout=120)
    pg.wait_gone(pm)
    pg.start()
    pg.amcheck()
    assert pg.sql("SELECT v FROM secret").stdout.strip() == SECRET

    # A crash: the postmaster and the volume server killed under load. What
    # was fsync'd (the WAL up to each commit) is on disk; recovery replays it.
    bench = subprocess.Popen(["runuser", "-u", "postgres", "--", pg.kiln, "run", "--volume",
                              f"{pg.vol}={pg.key}", "--", PGBIN / "pgbench", "-h", pg.root,
                              "-c", "8", "-T", "60", "postgres"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    pm, srv = pg.postmaster_pid(), pg.server_pid()
    # Every PostgreSQL process at once (the postmaster and its children,
    # each in its own session), and the volume server: as a power cut would.
    for pid in [pm, *children(pm), srv]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    bench.wait(timeout=120)
    for pid in (pm, srv):
        pg.wait_gone(pid)
    pg.start()
    pg.amcheck()
    assert pg.sql("SELECT v FROM secret").stdout.strip() == SECRET
    assert int(pg.sql("SELECT count(*) FROM pgbench_accounts").stdout) == SCALE * 100000
    assert pg.errors() == [], pg.errors()[:5]
    pg.stop()
    pg.wait_server_gone()
    v = pg.as_pg([pg.kiln, "fs", "verify", pg.vol, "--key-file", pg.key])
    assert v.returncode == 0, v.stdout + v.stderr
    data = b"".join(p.read_bytes() for p in (pg.vol / ".kiln").iterdir() if p.is_file())
    assert SECRET.encode() not in data
