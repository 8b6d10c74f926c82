"""Hostile collateral and quotes against the per-platform collateral of the CAS
(`kiln cas collateral add`, /v1/attest): a collateral whose TCB Info was edited
(its Intel signature no longer verifies), collateral of the other TEE kind, an
FMSPC that is not 12 hex digits, a quote too short to name its platform. Each is
refused with a message naming what is wrong; nothing is stored by a refused add;
the audit log stays clean."""
import base64
import json
import re

from cas_fixtures import Workload
from kilnenv import TESTDATA

EV = TESTDATA / "evidence"


def test_hostile_collateral_is_refused_at_add(kiln, cas, tmp_path):
    data = ["--data", cas.data]
    col = json.loads((EV / "sgx" / "collateral.json").read_text())
    # Raise the TCB level the TCB Info reports: Intel's signature covers the bytes.
    key = next(k for k in col if "tcb" in k.lower() and "info" in k.lower()
               and isinstance(col[k], str) and "tcbLevels" in col[k])
    col[key] = col[key].replace('"OutOfDate"', '"UpToDate"', 1).replace(
        '"tcbEvaluationDataNumber":', '"tcbEvaluationDataNumber": ', 1)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(col))
    p = kiln("cas", "collateral", "add", edited, "--tee", "sgx", *data)
    assert p.returncode == 1
    assert f"{edited}: collateral does not verify: " in p.stderr, p.stderr
    # The other TEE kind's collateral.
    p = kiln("cas", "collateral", "add", EV / "sgx" / "collateral.json", "--tee", "tdx", *data)
    assert p.returncode == 1 and "this is SGX collateral (TCB Info id 'SGX', FMSPC " \
        "00A067110000), not tdx" in p.stderr, p.stderr
    # Usage errors: exit 2, one line.
    for args in (("remove", "00a06711", "--tee", "sgx"), ("remove", "00A067110000", "--tee", "snp"),
                 ("add", EV / "sgx" / "collateral.json")):
        p = kiln("cas", "collateral", *args, *data)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, (args, p.stderr)
    assert kiln("cas", "collateral", "list", *data, check=True).stdout.startswith("no collateral")
    kiln("audit", "verify", "--data", cas.data, check=True)


def test_quote_that_names_no_platform(kiln, cas, tmp_path):
    kiln("cas", "collateral", "add", EV / "sgx" / "collateral.json", "--tee", "sgx",
         "--data", cas.data, check=True)
    w = Workload(cas, tmp_path)
    for quote in ((EV / "sgx" / "quote.bin").read_bytes()[:600], b"\0" * 48):
        body = {"session": "acme/app", "service": "app", "tee": "sgx", "nonce": w.nonce(),
                "evidence": base64.b64encode(quote).decode(), "workload_measurement": "ab" * 48}
        status, ans = cas.request("POST", "/v1/attest", body, certfile=w.pem)
        assert status == 403, ans
        line = [ln for ln in cas.log().splitlines() if ans["request_id"] in ln][-1]
        assert re.search(r'reason="evidence does not verify: [^"]+"', line), line
    kiln("audit", "verify", "--data", cas.data, check=True)
