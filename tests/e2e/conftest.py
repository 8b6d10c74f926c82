"""Shared fixtures for kiln end-to-end tests.

Tests run the real `kiln` binary (from $KILN_BUILD, default ./build) and real
programs; every service a test needs is started by the test on an ephemeral port
in a temp dir and stopped afterwards.
"""
import os
import pathlib
import subprocess

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
from cas_fixtures import CasServer  # noqa: E402


@pytest.fixture
def cas(kiln_bin, tmp_path):
    server = CasServer(kiln_bin, tmp_path).start()
    yield server
    # A clean exit also means no sanitizer report (leaks fail the test).
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
