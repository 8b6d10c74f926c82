"""kiln evidence verify on the real Intel SGX/TDX DCAP samples: what the CLI user sees
for trailing bytes, expired collateral, missing collateral and damaged collateral.
(Plain verification of each sample is also covered by test_evidence.py.)"""
import json

from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
AT = "2025-07-01T00:00:00Z"


def verify(kiln, quote, tee, *extra):
    return kiln("evidence", "verify", quote, "--tee", tee, *extra)


def test_tdx_trailing_bytes_reported(kiln):
    p = verify(kiln, EV / "tdx" / "quote_v4.bin", "tdx", "--collateral",
               EV / "tdx" / "quote_v4_collateral.json", "--at", AT, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["verdict"] == "authentic"
    assert out["claims"]["trailing_bytes"] == 70
    assert out["claims"]["quote_version"] == 4
    assert out["claims"]["rtmr3"] == "00" * 48


def test_expired_collateral_names_the_item(kiln):
    p = verify(kiln, EV / "tdx" / "quote_v4.bin", "tdx", "--collateral",
               EV / "tdx" / "quote_v4_collateral.json", "--at", "2025-07-19T10:10:00Z")
    assert p.returncode == 1
    assert "PCK CRL has expired" in p.stdout
    assert "verification time 2025-07-19T10:10:00Z" in p.stdout
    assert len(p.stderr.strip().splitlines()) == 1


def test_missing_collateral(kiln):
    p = verify(kiln, EV / "sgx" / "quote.bin", "sgx", "--at", AT)
    assert p.returncode == 1
    assert "collateral is required" in p.stderr


def test_damaged_tcb_info_json(kiln, tmp_path):
    col = json.loads((EV / "sgx" / "collateral.json").read_text())
    assert '"tcbEvaluationDataNumber":17' in col["tcb_info"]
    col["tcb_info"] = col["tcb_info"].replace('"tcbEvaluationDataNumber":17',
                                              '"tcbEvaluationDataNumber":18')
    f = tmp_path / "collateral.json"
    f.write_text(json.dumps(col))
    p = verify(kiln, EV / "sgx" / "quote.bin", "sgx", "--collateral", f, "--at", AT, "--json")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["verdict"] == "not authentic"
    assert out["claims"] is None
    assert "TCB Info signature" in out["error"]


def test_truncated_quote(kiln, tmp_path):
    f = tmp_path / "q.bin"
    f.write_bytes((EV / "sgx" / "quote.bin").read_bytes()[:1020])
    p = verify(kiln, f, "sgx", "--collateral", EV / "sgx" / "collateral.json", "--at", AT)
    assert p.returncode == 1
    assert "quote truncated" in p.stderr
    assert "QE auth data" in p.stderr
