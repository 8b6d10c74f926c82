"""Hostile collateral and quotes against the per-platform collateral of the CAS
(`kiln cas collateral add`, /v1/attest): a collateral whose TCB Info was edited
(its Intel signature no longer verifies), collateral of the other TEE kind, an
FMSPC that is not 12 hex digits, a quote too short to name its platform, and AMD
certificates that are not an AMD chain (`kiln cas collateral import`). Each is
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


def test_import_refuses_what_is_not_an_amd_chain(kiln, cas, tmp_path):
    data = ["--data", cas.data]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    p = kiln("cas", "collateral", "import", junk, *data)
    assert p.returncode == 1 and "no certificate found" in p.stderr, p.stderr
    # An ASK without its ARK, and a chain whose root is not a pinned ARK.
    pem = (EV / "snp" / "ask_ark_milan.pem").read_text()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", pem,
                        re.S)
    one = tmp_path / "ask_only.pem"
    one.write_text(blocks[0])
    p = kiln("cas", "collateral", "import", one, *data)
    assert p.returncode == 1 and "neither a VCEK" in p.stderr, p.stderr
    mixed = tmp_path / "mixed.pem"
    mixed.write_text(blocks[0] + re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
        (EV / "snp" / "ask_ark_genoa.pem").read_text(), re.S)[1])
    p = kiln("cas", "collateral", "import", mixed, *data)
    assert p.returncode == 1 and "does not verify" in p.stderr, p.stderr
    p = kiln("cas", "collateral", "import", *data)
    assert p.returncode == 2
    assert kiln("cas", "collateral", "list", *data, check=True).stdout == \
        "no collateral (kiln cas collateral add FILE --tee sgx|tdx)\n"
