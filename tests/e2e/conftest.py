"""Shared fixtures for kiln end-to-end tests.

Tests run the real `kiln` binary (from $KILN_BUILD, default ./build) and real
programs; every service a test needs is started by the test on an ephemeral port
in a temp dir and stopped afterwards.
"""
import os
import signal
import subprocess
import time

import pytest

from kilnenv import BUILD, ROOT, TESTDATA  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "stress: long reliability trials (make stress)")


@pytest.fixture(scope="session")
def kiln_bin():
    path = BUILD / "kiln"
    if not path.exists():
        pytest.fail(f"{path} not built (run make or set KILN_BUILD)")
    return str(path)


@pytest.fixture
def kiln(kiln_bin):
    """Run `kiln ARGS...`; returns CompletedProcess (text mode)."""

    def run(*args, input=None, check=None, timeout=120, env=None, **kw):
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.run([kiln_bin, *map(str, args)], input=input, capture_output=True,
                           text=isinstance(input, str) or input is None, timeout=timeout,
                           env=e, **kw)
        if check is True and p.returncode != 0:
            raise AssertionError(f"kiln {' '.join(map(str, args))} failed ({p.returncode}):\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    return run


# ---- kiln-cas (owned by the policy/CAS tests; reusable by every e2e test) ----
# `cas` yields a running cas_fixtures.CasServer (url, fingerprint, ca_file, data,
# env(identity), request(), restart(), kill9()); `cas_identity` makes identities.
from cas_fixtures import EVIDENCE_TIME, CasServer  # noqa: E402
from pgserver import PgServer  # noqa: E402


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the session (tests/e2e/pgserver.py)."""
    try:
        server = PgServer()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    server.close()


@pytest.fixture
def cas_store():
    """The store `cas` runs on: "sqlite" here; a test parametrized with
    @pytest.mark.parametrize("cas_store", STORES) runs on both."""
    return "sqlite"


@pytest.fixture
def cas(kiln_bin, tmp_path, cas_store, request):
    pg = None
    if cas_store == "postgresql":
        server = request.getfixturevalue("pg_server")
        pg = (server, server.new_store()[0])
    server = CasServer(kiln_bin, tmp_path, pg=pg).start()
    yield server
    # A clean exit also means no sanitizer report (leaks fail the test).
    rc = server.stop()
    assert rc in (None, 0), f"kiln cas serve exited {rc}:\n{server.log()[-4000:]}"


@pytest.fixture
def attested_cas(kiln_bin, tmp_path):
    """A CAS serving its own attestation with the sim backend (INSECURE)."""
    server = CasServer(kiln_bin, tmp_path, extra_args=["--tee", "sim"]).start()
    yield server
    rc = server.stop()
    assert rc in (None, 0), f"kiln cas serve exited {rc}:\n{server.log()[-4000:]}"


@pytest.fixture
def hwcas(kiln_bin, tmp_path):
    """A CAS on SQLite judging the real evidence of testdata/evidence at the time it
    was captured (its collateral has expired since)."""
    server = CasServer(kiln_bin, tmp_path,
                       extra_args=["--insecure-evidence-time", EVIDENCE_TIME]).start()
    yield server
    rc = server.stop()
    assert rc in (None, 0), f"kiln cas serve exited {rc}:\n{server.log()[-4000:]}"


@pytest.fixture
def cas_identity(kiln, tmp_path):
    """cas_identity("alice") -> (path, id) of a new identity file."""

    def make(name):
        path = tmp_path / f"{name}.identity.pem"
        p = kiln("identity", "create", "--out", path, check=True)
        return str(path), p.stdout.strip()

    return make


# ---- kiln-las (host attestor) for tests that attest with --tee host ----
class LasDaemon:
    """A running `kiln las serve` on a temp socket: .sock, .key, .cert (its PEM)."""

    def __init__(self, kiln_bin, tmp_path):
        self.sock, self.key = tmp_path / "las.sock", tmp_path / "las.key"
        self.cert = tmp_path / "las.pem"
        self.log_path = tmp_path / "las.log"
        self._log = open(self.log_path, "wb")
        # libkiln is left out of measurements by digest, as libkiln leaves itself out.
        self.proc = subprocess.Popen(
            [kiln_bin, "las", "serve", "--socket", str(self.sock), "--key", str(self.key),
             "--runtime-lib", str(BUILD / "src" / "runtime" / "libkiln.so")],
            stdout=self._log, stderr=self._log)
        for _ in range(600):
            if self.sock.exists() and self.cert.exists():
                return
            if self.proc.poll() is not None:
                pytest.fail("kiln las serve exited: " + self.log_path.read_text())
            time.sleep(0.05)
        pytest.fail("kiln las serve did not create its socket: " + self.log_path.read_text())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self._log.close()
        return rc


@pytest.fixture
def las(kiln_bin, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("kiln las serve runs as root")
    daemon = LasDaemon(kiln_bin, tmp_path)
    yield daemon
    assert daemon.stop() == 0, daemon.log_path.read_text()[-4000:]
