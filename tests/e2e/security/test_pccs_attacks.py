"""A PCCS the attacker controls (it sits on the host's network): whatever it
answers, the CAS stores only collateral Intel signed for the platform asked
for, valid at the time, within bounded time and memory, and keeps what it had
(docs/cas.md "Collateral from a PCCS")."""
import time

import pytest

from pccs_fixtures import AT, SGX_FMSPC, Pccs


@pytest.fixture
def pccs():
    server = Pccs()
    yield server
    server.close()


def fetch(kiln, cas, pccs, *args):
    return kiln("cas", "collateral", "fetch", "--pccs", pccs.url, "--data", cas.data,
                "--insecure-at", AT, "--fmspc", SGX_FMSPC, "--tee", "sgx", *args)


@pytest.mark.parametrize("fault,why", [
    # the TCB status raised to UpToDate, Intel's signature kept
    ("tamper", "collateral does not verify"),
    # another platform's (authentic) TCB Info for this FMSPC
    ("other_fmspc", "this is TDX collateral"),
    # an answer far larger than any collateral
    ("huge", "answer larger than 1048576 bytes"),
    # one byte a second: the whole answer is bounded, not only each wait
    ("drip", "no complete answer within 3 s"),
])
def test_lying_pccs_refused_and_stored_kept(kiln, cas, pccs, fault, why):
    assert fetch(kiln, cas, pccs).returncode == 0
    before = kiln("cas", "collateral", "list", "--data", cas.data, check=True).stdout
    audit = kiln("audit", "show", "--data", cas.data, check=True).stdout
    pccs.faults["/sgx/certification/v4/tcb"] = fault
    t0 = time.monotonic()
    p = fetch(kiln, cas, pccs, "--timeout", "3")
    assert p.returncode == 1
    assert why in p.stderr, p.stderr
    assert time.monotonic() - t0 < 20
    assert kiln("cas", "collateral", "list", "--data", cas.data, check=True).stdout == before
    assert kiln("audit", "show", "--data", cas.data, check=True).stdout == audit
    assert kiln("audit", "verify", "--data", cas.data).returncode == 0
