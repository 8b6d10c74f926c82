"""Intel verification collateral per platform in the CAS (issue 12, docs/cas.md
"Collateral per platform"): `kiln cas collateral add/list/remove`, one collateral
per tee and FMSPC, chosen by the FMSPC of the quote being verified, with the real
quotes and collateral of ../shared/testdata/evidence (two TDX platforms:
B0C06F000000 for quote_v4, 90C06F000000 for quote_v5). The CAS verifies at the
samples' time (--insecure-evidence-time); the quotes then fail the binding check
(their report_data was not made for our key), which proves verification passed."""

from cas_fixtures import Workload, post_evidence, refusal_reason
from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
WM = "ab" * 48


def test_collateral_is_chosen_by_the_quotes_fmspc(kiln, hwcas, tmp_path):
    data = ["--data", hwcas.data]
    assert kiln("cas", "collateral", "list", *data, check=True).stdout == \
        "no collateral (kiln cas collateral add FILE --tee sgx|tdx)\n"
    p = kiln("cas", "collateral", "add", EV / "tdx" / "quote_v4_collateral.json", "--tee", "tdx",
             *data, check=True)
    assert p.stdout.startswith("trusted tdx collateral for FMSPC B0C06F000000 from "
                               "2025-06-19T10:32:27Z until 2025-07-19T10:00:35Z (first to end: ")
    assert "note: it expired at 2025-07-19T10:00:35Z" in p.stderr  # today is later
    p = kiln("cas", "collateral", "add", EV / "tdx" / "quote_v5_tcb_not_supported_collateral.json",
             "--tee", "tdx", *data, check=True)
    assert "FMSPC 90C06F000000" in p.stdout
    lines = kiln("cas", "collateral", "list", *data, check=True).stdout.splitlines()
    assert [ln.split()[:3] for ln in lines] == [["tdx", "90C06F000000", "EXPIRED"],
                                                ["tdx", "B0C06F000000", "EXPIRED"]], lines

    w = Workload(hwcas, tmp_path)
    # Each quote verifies with its own platform's collateral: v4 reaches the binding
    # check; v5 is verified with the 2026 collateral, not yet valid at the samples'
    # 2025 time (with v4's, it would be an FMSPC mismatch).
    status, body = post_evidence(w, "tdx", EV / "tdx" / "quote_v4.bin", WM)
    assert status == 403 and refusal_reason(hwcas, body).startswith("binding mismatch")
    status, body = post_evidence(w, "tdx", EV / "tdx" / "quote_v5_tcb_not_supported.bin", WM)
    r = refusal_reason(hwcas, body)
    assert status == 403 and r.startswith("evidence does not verify"), r
    assert "FMSPC" not in r and "not yet valid" in r, r
    # Without the collateral of its FMSPC a quote is refused, naming tee and FMSPC.
    p = kiln("cas", "collateral", "remove", "B0C06F000000", "--tee", "tdx", *data, check=True)
    assert p.stdout == "removed tdx collateral for FMSPC B0C06F000000\n"
    status, body = post_evidence(w, "tdx", EV / "tdx" / "quote_v4.bin", WM)
    assert refusal_reason(hwcas, body) == ("no collateral for tee tdx FMSPC B0C06F000000 "
                                   "(kiln cas collateral add FILE --tee tdx)")
    status, body = post_evidence(w, "sgx", EV / "sgx" / "quote.bin", WM)
    assert refusal_reason(hwcas, body).startswith("no collateral for tee sgx FMSPC 00A067110000")
    p = kiln("cas", "collateral", "remove", "B0C06F000000", "--tee", "tdx", *data)
    assert p.returncode == 1 and "no collateral for tee tdx FMSPC B0C06F000000" in p.stderr
    # Every change is audited with its FMSPC.
    out = kiln("audit", "show", "--data", hwcas.data, check=True).stdout
    kinds = [ln.split()[2] for ln in out.splitlines()]
    assert kinds == ["trust.collateral", "trust.collateral", "trust.collateral.remove"], out
    assert '"fmspc":"B0C06F000000"' in out
    kiln("audit", "verify", "--data", hwcas.data, check=True)


def test_collateral_freshness_at_the_current_time(kiln, cas, tmp_path):
    """Verified now, the 2025 collateral is stale: refused naming what expired;
    list says EXPIRED and the CLI warned when it was added."""
    p = kiln("cas", "collateral", "add", EV / "sgx" / "collateral.json", "--tee", "sgx",
             "--data", cas.data, check=True)
    assert "FMSPC 00A067110000" in p.stdout and "note: it expired at" in p.stderr
    assert kiln("cas", "collateral", "list", "--data", cas.data,
                check=True).stdout.startswith("sgx 00A067110000 EXPIRED from ")
    w = Workload(cas, tmp_path)
    status, body = post_evidence(w, "sgx", EV / "sgx" / "quote.bin", WM)
    r = refusal_reason(cas, body)
    assert status == 403 and r.startswith("evidence does not verify") and "expired" in r, r
