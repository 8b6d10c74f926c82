"""Collateral from a PCCS (issue 12, docs/cas.md "Collateral from a PCCS"):
`kiln cas collateral fetch --pccs URL` and `kiln cas serve --pccs URL` against a
local PCCS-shaped server (pccs_fixtures.py) serving the real collateral of
../shared/testdata/evidence. Validity is judged at the samples' time
(--insecure-at / --insecure-evidence-time); every failure keeps what is stored.
Attacks by a lying PCCS: security/test_pccs_attacks.py."""
import base64
import time

import pytest

from cas_fixtures import CasServer, Workload
from pccs_fixtures import AT, EV, SGX_FMSPC, TDX_FMSPC, Pccs, self_signed


@pytest.fixture
def pccs():
    server = Pccs()
    yield server
    server.close()


def fetch(kiln, cas, pccs, *args, at=AT):
    extra = ["--insecure-at", at] if at else []
    return kiln("cas", "collateral", "fetch", "--pccs", pccs.url, "--data", cas.data, *extra,
                *args)


def listed(kiln, cas):
    return kiln("cas", "collateral", "list", "--data", cas.data, check=True).stdout


def test_fetch_sgx_and_tdx(kiln, cas, pccs):
    p = fetch(kiln, cas, pccs, "--fmspc", SGX_FMSPC, "--tee", "sgx")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"fetched sgx collateral for FMSPC {SGX_FMSPC} from "
                               "2025-06-19T10:56:11Z until 2025-07-19T10:01:18Z")
    assert "INSECURE" in p.stderr  # --insecure-at
    assert pccs.hits["/sgx/certification/v4/pckcrl"] == 1
    p = fetch(kiln, cas, pccs, "--fmspc", TDX_FMSPC, "--tee", "tdx")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"fetched tdx collateral for FMSPC {TDX_FMSPC} from ")
    assert pccs.hits["/tdx/certification/v4/tcb"] == 1
    lines = listed(kiln, cas).splitlines()
    assert [ln.split()[:2] for ln in lines[:2]] == [["sgx", SGX_FMSPC], ["tdx", TDX_FMSPC]]
    # without --fmspc: every stored platform, unchanged
    p = fetch(kiln, cas, pccs)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith(f"unchanged sgx collateral for FMSPC {SGX_FMSPC}")
    assert p.stdout.splitlines()[1].startswith(f"unchanged tdx collateral for FMSPC {TDX_FMSPC}")
    out = kiln("audit", "show", "--data", cas.data, check=True).stdout
    assert out.count("trust.collateral") == 2 and pccs.url in out


def test_fetched_collateral_verifies_quotes(kiln, kiln_bin, pccs, tmp_path):
    cas = CasServer(kiln_bin, tmp_path, extra_args=["--insecure-evidence-time", AT]).start()
    try:
        assert fetch(kiln, cas, pccs, "--fmspc", SGX_FMSPC, "--tee", "sgx").returncode == 0
        w = Workload(cas, tmp_path)
        body = {"session": "acme/app", "service": "app", "tee": "sgx", "nonce": w.nonce(),
                "evidence": base64.b64encode((EV / "sgx" / "quote.bin").read_bytes()).decode(),
                "workload_measurement": "ab" * 48}
        status, r = cas.request("POST", "/v1/attest", body, certfile=w.pem)
        assert status == 403
        # verified with the fetched collateral: refused only at the binding
        assert "binding mismatch" in cas.log() and "no collateral" not in cas.log()
    finally:
        assert cas.stop() == 0


@pytest.mark.parametrize("path,fault,why", [
    ("/sgx/certification/v4/tcb", "404", "answers 404"),
    ("/sgx/certification/v4/tcb", "garbage", 'TCB Info: expected {"tcbInfo": {...}'),
    ("/sgx/certification/v4/qe/identity", "garbage", "QE Identity: expected"),
    ("/sgx/certification/v4/pckcrl", "no_chain", "no SGX-PCK-CRL-Issuer-Chain header"),
    ("/sgx/certification/v4/rootcacrl", "garbage", "collateral does not verify"),
    ("/sgx/certification/v4/tcb", "slow", "no complete answer within 2 s"),
])
def test_fetch_failures_keep_the_stored_collateral(kiln, cas, pccs, path, fault, why):
    assert fetch(kiln, cas, pccs, "--fmspc", SGX_FMSPC, "--tee", "sgx").returncode == 0
    before = listed(kiln, cas)
    pccs.faults[path] = fault
    t0 = time.monotonic()
    p = fetch(kiln, cas, pccs, "--fmspc", SGX_FMSPC, "--tee", "sgx", "--timeout", "2")
    assert p.returncode == 1
    assert why in p.stderr, p.stderr
    assert f"tee sgx FMSPC {SGX_FMSPC}" in p.stderr
    assert "stored before, if any, is kept" in p.stderr
    assert time.monotonic() - t0 < 25  # the slow PCCS did not hold it
    assert listed(kiln, cas) == before


def test_fetch_expired_refused(kiln, cas, pccs):
    """Judged now, the 2025 samples have expired: nothing is stored."""
    p = fetch(kiln, cas, pccs, "--fmspc", SGX_FMSPC, "--tee", "sgx", at=None)
    assert p.returncode == 1
    assert f"the collateral of tee sgx FMSPC {SGX_FMSPC} is expired" in p.stderr
    assert "not stored" in p.stderr
    assert listed(kiln, cas).startswith("no collateral")


def test_fetch_unknown_fmspc_and_usage(kiln, cas, pccs):
    p = fetch(kiln, cas, pccs, "--fmspc", "0123456789AB", "--tee", "sgx")
    assert p.returncode == 1 and "answers 404" in p.stderr and "0123456789AB" in p.stderr
    p = fetch(kiln, cas, pccs)
    assert p.returncode == 2 and "no platform stored" in p.stderr
    p = kiln("cas", "collateral", "fetch", "--pccs", "ftp://x", "--fmspc", SGX_FMSPC, "--tee",
             "sgx", "--data", cas.data)
    assert p.returncode != 0 and "expected http[s]://HOST" in p.stderr
    p = kiln("cas", "collateral", "fetch", "--pccs", "http://127.0.0.1:1", "--fmspc", SGX_FMSPC,
             "--tee", "sgx", "--data", cas.data)
    assert p.returncode == 1 and "no answer" in p.stderr


def test_fetch_https(kiln, cas, tmp_path):
    pem = self_signed(tmp_path)
    server = Pccs(tls_pem=pem)
    try:
        p = fetch(kiln, cas, server, "--fmspc", SGX_FMSPC, "--tee", "sgx", "--pccs-ca", pem)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("fetched sgx collateral")
        # not checked against the system's CAs: refused
        p = fetch(kiln, cas, server, "--fmspc", SGX_FMSPC, "--tee", "sgx")
        assert p.returncode == 1 and "TLS failure" in p.stderr, p.stderr
    finally:
        server.close()


def wait_log(cas, text, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in cas.log():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged:\n{cas.log()[-3000:]}")


def test_serve_pccs_fetches_missing_and_refreshes(kiln, kiln_bin, pccs, tmp_path):
    cas = CasServer(kiln_bin, tmp_path, extra_args=[
        "--insecure-evidence-time", AT, "--pccs", pccs.url, "--pccs-interval", "1"]).start()
    try:
        wait_log(cas, "collateral refresher started")
        w = Workload(cas, tmp_path)

        def attest():
            body = {"session": "acme/app", "service": "app", "tee": "sgx", "nonce": w.nonce(),
                    "evidence": base64.b64encode((EV / "sgx" / "quote.bin").read_bytes()).decode(),
                    "workload_measurement": "ab" * 48}
            return cas.request("POST", "/v1/attest", body, certfile=w.pem)

        # no collateral: refused naming the platform, and asked of the PCCS
        status, _ = attest()
        assert status == 403
        assert f"no collateral for tee sgx FMSPC {SGX_FMSPC}" in cas.log()
        wait_log(cas, "collateral refreshed")
        assert f"fmspc={SGX_FMSPC} why=missing" in cas.log()
        status, _ = attest()
        assert status == 403
        wait_log(cas, "binding mismatch")
        # stored and past half of its window: fetched again each interval
        wait_log(cas, 'msg="collateral unchanged"')
        # a PCCS gone bad: logged, the stored collateral kept and used
        pccs.faults["/sgx/certification/v4/tcb"] = "garbage"
        wait_log(cas, "collateral refresh failed: the stored collateral is kept")
        n = cas.log().count("binding mismatch")
        attest()
        assert cas.log().count("binding mismatch") == n + 1
        assert f"sgx {SGX_FMSPC} valid" in listed(kiln, cas).replace("  ", " ") or \
            SGX_FMSPC in listed(kiln, cas)
    finally:
        assert cas.stop() == 0, cas.log()[-3000:]
