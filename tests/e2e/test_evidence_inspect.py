"""kiln evidence inspect on the real SGX/TDX quotes and the SNP report of the
testdata: what can be checked without collateral passes or fails like
verification does, every claim is printed, and the output says plainly that
the TCB status was not evaluated (issue 12)."""
import json

import pytest

from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
AT = "2025-07-01T00:00:00Z"


def inspect(kiln, path, tee, *extra):
    return kiln("evidence", "inspect", path, "--tee", tee, *extra)


def claims_of(p):
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["verdict"] == "checks pass, TCB status not evaluated"
    assert out["tcb_evaluated"] is False and out["error"] is None
    return out["claims"]


@pytest.mark.parametrize("quote,tee,collateral", [
    ("sgx/quote.bin", "sgx", "sgx/collateral.json"),
    ("tdx/quote_v4.bin", "tdx", "tdx/quote_v4_collateral.json"),
])
def test_inspect_agrees_with_verify_without_the_tcb(kiln, quote, tee, collateral):
    c = claims_of(inspect(kiln, EV / quote, tee, "--at", AT, "--json"))
    v = kiln("evidence", "verify", EV / quote, "--tee", tee, "--collateral", EV / collateral,
             "--at", AT, "--json")
    assert v.returncode == 0, v.stdout
    full = json.loads(v.stdout)["claims"]
    assert c["tcb_status"] == "not evaluated" and full["tcb_status"] != "not evaluated"
    # What collateral decides is absent; everything the quote carries is the same.
    for k in ("advisories", "qe_status", "platform_tcb_status", "collateral_valid_until",
              "tdx_module_status"):
        assert k not in c
    for k, val in full.items():
        if k not in ("tcb_status", "advisories", "qe_status", "platform_tcb_status",
                     "collateral_valid_until", "tdx_module_status"):
            assert c[k] == val, k
    assert c["fmspc"] == full["fmspc"] and len(c["pck_cpusvn"]) == 32


def test_inspect_text_says_tcb_not_evaluated(kiln):
    p = inspect(kiln, EV / "sgx" / "quote.bin", "sgx", "--at", AT)
    assert p.returncode == 0, p.stderr
    assert "NOT evaluated: the TCB status" in p.stdout
    assert "verdict: checks pass, TCB status not evaluated" in p.stdout
    assert "mrenclave: 33d8736db756ed49" in p.stdout


def test_inspect_passes_where_verify_refuses_the_tcb(kiln):
    """The v5 TDX quote's platform TCB is not supported: verify refuses it;
    inspect finds it authentic and says it did not look at the TCB."""
    q = EV / "tdx" / "quote_v5_tcb_not_supported.bin"
    v = kiln("evidence", "verify", q, "--tee", "tdx", "--collateral",
             EV / "tdx" / "quote_v5_tcb_not_supported_collateral.json",
             "--at", "2026-03-01T00:00:00Z")
    assert v.returncode == 1 and "TCB" in v.stderr
    c = claims_of(inspect(kiln, q, "tdx", "--at", "2026-03-01T00:00:00Z", "--json"))
    assert c["quote_version"] == 5 and c["tcb_status"] == "not evaluated"


def test_inspect_snp(kiln):
    snp = EV / "snp"
    c = claims_of(inspect(kiln, snp / "report_milan.bin", "snp", "--cert-chain",
                          snp / "vcek_milan.der", "--cert-chain", snp / "ask_ark_milan.pem",
                          "--at", AT, "--json"))
    assert c["tee"] == "snp" and c["tcb_status"] == "not evaluated"
    assert c["measurement"].startswith("b07af9620f3b839b")
    # Another product's chain does not carry the VCEK: the chain check fails.
    p = inspect(kiln, snp / "report_milan.bin", "snp", "--cert-chain", snp / "vcek_milan.der",
                "--cert-chain", snp / "ask_ark_genoa.pem", "--at", AT)
    assert p.returncode == 1 and "verdict: not authentic" in p.stdout


def test_inspect_failures(kiln, tmp_path):
    good = (EV / "sgx" / "quote.bin").read_bytes()
    flipped = bytearray(good)
    flipped[200] ^= 1  # report body: the quote signature no longer verifies
    (tmp_path / "flipped.bin").write_bytes(flipped)
    p = inspect(kiln, tmp_path / "flipped.bin", "sgx", "--at", AT)
    assert p.returncode == 1 and "quote signature" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    (tmp_path / "short.bin").write_bytes(good[:100])
    p = inspect(kiln, tmp_path / "short.bin", "sgx", "--at", AT)
    assert p.returncode == 1 and "truncated" in p.stderr
    # The PCK chain's validity is checked: the PCK CA expires in 2033.
    p = inspect(kiln, EV / "sgx" / "quote.bin", "sgx", "--at", "2040-01-01T00:00:00Z")
    assert p.returncode == 1 and "has expired" in p.stderr
    p = inspect(kiln, EV / "sgx" / "quote.bin", "tdx", "--at", AT)
    assert p.returncode == 1 and "expected TDX" in p.stderr
    # A PCK certificate (in the quote's PEM chain) with one byte changed.
    i = good.index(b"-----BEGIN CERTIFICATE-----") + 400
    bad = bytearray(good)
    bad[i] = ord("A") if bad[i] != ord("A") else ord("B")
    (tmp_path / "pck.bin").write_bytes(bad)
    p = inspect(kiln, tmp_path / "pck.bin", "sgx", "--at", AT)
    assert p.returncode == 1 and "PCK" in p.stderr, p.stderr


@pytest.mark.parametrize("args,needle", [
    (["--collateral", "x.json"], "uses no collateral"),
    (["--tee", "host"], "--tee must be sgx, tdx or snp"),
    (["--at", "yesterday"], "RFC 3339"),
])
def test_inspect_usage(kiln, args, needle):
    argv = ["evidence", "inspect", str(EV / "sgx" / "quote.bin")]
    if "--tee" not in args:
        argv += ["--tee", "sgx"]
    p = kiln(*argv, *args)
    assert p.returncode == 2 and needle in p.stderr, p.stderr
