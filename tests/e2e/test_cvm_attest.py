"""Hardware-TEE attestation path (docs/attestation.md, "Confidential VMs"):
`kiln run --tee tdx|snp|auto` and the CAS's /v1/attest for tee sgx/tdx/snp, where the
workload measurement travels beside the evidence and is bound through report_data.

This machine is no TEE, so: the runtime's failure without configfs-tsm is checked, and
the CAS side is driven with the REAL SGX quote and SNP report from
../shared/testdata/evidence, posted by a Python mTLS client. They verify (at the
samples' time, --insecure-evidence-time) and then fail the binding check, because their
report_data was not made for our key and nonce: that proves the hardware path goes
through verification to the binding."""
import base64
import hashlib
import os

import pytest

from cas_fixtures import Workload, post_evidence, refusal_reason
from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
WM = hashlib.sha384(b"cvm workload").digest()


def b64(path):
    return base64.b64encode(path.read_bytes()).decode()


def test_sgx_quote_reaches_the_binding_check(kiln, hwcas, tmp_path):
    w = Workload(hwcas, tmp_path)
    # Without collateral the CAS cannot verify an Intel quote: a named refusal.
    status, body = post_evidence(w, "sgx", EV / "sgx" / "quote.bin", WM)
    assert status == 403, body
    assert refusal_reason(hwcas, body).startswith("no collateral for tee sgx FMSPC 00A067110000")

    p = kiln("cas", "trust-collateral", EV / "sgx" / "collateral.json", "--tee", "sgx",
             "--data", hwcas.data)
    assert p.returncode == 0, p.stderr
    status, body = post_evidence(w, "sgx", EV / "sgx" / "quote.bin", WM)
    assert status == 403, body
    assert body == {"error": "attestation refused", "request_id": body["request_id"]}
    assert refusal_reason(hwcas, body).startswith("binding mismatch")
    assert f"workload_measurement={WM.hex()}" in hwcas.log()
    metrics = hwcas.metrics()
    assert 'kiln_cas_attestations_total{result="refused",reason="binding_mismatch"} 1' in metrics
    assert 'kiln_cas_attestations_total{result="refused",reason="no_collateral"} 1' in metrics

    # A damaged quote fails verification first (not the binding): verification runs.
    quote = bytearray((EV / "sgx" / "quote.bin").read_bytes())
    quote[200] ^= 1
    status, body = post_evidence(w, "sgx", bytes(quote), WM)
    assert status == 403
    assert refusal_reason(hwcas, body).startswith("evidence does not verify")


def test_tdx_collateral_is_per_tee(kiln, hwcas, tmp_path):
    w = Workload(hwcas, tmp_path)
    kiln("cas", "trust-collateral", EV / "sgx" / "collateral.json", "--tee", "sgx",
         "--data", hwcas.data, check=True)
    status, body = post_evidence(w, "tdx", EV / "tdx" / "quote_v4.bin", WM)
    assert status == 403
    assert refusal_reason(hwcas, body).startswith("no collateral for tee tdx FMSPC B0C06F000000")
    kiln("cas", "trust-collateral", EV / "tdx" / "quote_v4_collateral.json", "--tee", "tdx",
         "--data", hwcas.data, check=True)
    status, body = post_evidence(w, "tdx", EV / "tdx" / "quote_v4.bin", WM)
    assert status == 403
    assert refusal_reason(hwcas, body).startswith("binding mismatch")


def test_snp_report_reaches_the_binding_check(kiln, hwcas, tmp_path):
    w = Workload(hwcas, tmp_path)
    for f in ("vcek_milan.der", "ask_ark_milan.pem"):
        p = kiln("cas", "trust-amd-chain", EV / "snp" / f, "--data", hwcas.data)
        assert p.returncode == 0 and p.stdout.startswith("trusted AMD certificates amd:")
    status, body = post_evidence(w, "snp", EV / "snp" / "report_milan.bin", WM)
    assert status == 403
    assert refusal_reason(hwcas, body).startswith("binding mismatch")


def test_workload_measurement_field_rules(kiln, hwcas, tmp_path):
    w = Workload(hwcas, tmp_path)
    # Hardware tee without the field: 400, before any verification.
    status, body = post_evidence(w, "sgx", EV / "sgx" / "quote.bin", None)
    assert status == 400
    assert "workload_measurement" in body["error"]
    # Malformed field: 400.
    nonce = w.nonce()
    status, body = hwcas.request("POST", "/v1/attest", {
        "session": "acme/app", "service": "app", "tee": "sgx", "nonce": nonce,
        "evidence": b64(EV / "sgx" / "quote.bin"), "workload_measurement": "AB" * 48},
        certfile=w.pem)
    assert status == 400 and "96 lowercase hex" in body["error"]
    # sim carries the measurement inside its evidence: the field is refused.
    nonce = w.nonce()
    status, body = hwcas.request("POST", "/v1/attest", {
        "session": "acme/app", "service": "app", "tee": "sim", "nonce": nonce,
        "evidence": w.evidence(nonce), "workload_measurement": WM.hex()}, certfile=w.pem)
    assert status == 400 and "only for hardware tees" in body["error"]


def test_expired_collateral_without_evidence_time(kiln, cas, tmp_path):
    # The plain `cas` fixture verifies at the current time: the 2025 collateral has
    # expired, which is a verification failure, named.
    kiln("cas", "trust-collateral", EV / "sgx" / "collateral.json", "--tee", "sgx",
         "--data", cas.data, check=True)
    w = Workload(cas, tmp_path)
    status, body = post_evidence(w, "sgx", EV / "sgx" / "quote.bin", WM)
    assert status == 403
    reason = refusal_reason(cas, body)
    assert reason.startswith("evidence does not verify") and "expired" in reason


def test_trust_usage_errors(kiln, cas, tmp_path):
    p = kiln("cas", "trust-collateral", EV / "sgx" / "collateral.json", "--tee", "snp",
             "--data", cas.data)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    p = kiln("cas", "trust-collateral", bad, "--tee", "sgx", "--data", cas.data)
    assert p.returncode == 1 and "collateral must be a JSON object" in p.stderr
    p = kiln("cas", "trust-amd-chain", bad, "--data", cas.data)
    assert p.returncode == 1 and "no certificate found" in p.stderr


def run_tdx(kiln, cas, tmp_path, tee, tsm_path):
    marker = tmp_path / "ran"
    return marker, kiln("run", "--cas", cas.url, "--cas-fingerprint", cas.fingerprint,
                        "--session", "acme/app", "--service", "app", "--tee", tee, "--",
                        "/bin/sh", "-c", f"touch {marker}",
                        env={"KILN_TSM_PATH": str(tsm_path)}, cwd=tmp_path)


def test_run_tee_tdx_without_configfs_tsm(kiln, cas, tmp_path):
    empty = tmp_path / "tsm"
    empty.mkdir()
    marker, p = run_tdx(kiln, cas, tmp_path, "tdx", empty)
    assert p.returncode != 0
    assert not marker.exists()
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("kiln: attestation: tdx evidence: configfs-tsm"), lines[0]
    assert str(empty) in lines[0]
    assert os.listdir(empty) == []  # no entry left behind


@pytest.mark.skipif(os.path.exists("/dev/tdx_guest") or os.path.exists("/dev/sev-guest"),
                    reason="this machine has a TEE guest device")
def test_run_tee_auto_without_tee(kiln, cas, tmp_path):
    marker, p = run_tdx(kiln, cas, tmp_path, "auto", tmp_path / "no-such-dir")
    assert p.returncode == 1
    assert not marker.exists()
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "no TEE found: use --tee host or sim" in lines[0]


def test_run_tee_rejects_unknown(kiln, cas, tmp_path):
    marker, p = run_tdx(kiln, cas, tmp_path, "sgx", tmp_path)
    assert p.returncode == 2 and not marker.exists()
    assert "expected sim, host, tdx, snp or auto" in p.stderr
