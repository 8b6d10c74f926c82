"""AMD certificates per product and chip in the CAS store (issue 12, docs/cas.md "AMD
certificates"): `kiln cas collateral import` of the real AMD chains of
../shared/testdata/evidence/snp (VCEK and VLEK kinds for Milan, Genoa, Turin) and the
real Milan VCEK; `collateral list` with their validity; an SNP attestation verified with
the VCEK stored for its report's chip ID and reported TCB, refused naming the chip and
what is missing without it. The CAS verifies at the sample's time
(--insecure-evidence-time); the real report then fails the binding check (its
report_data was not made for our key), which proves verification passed."""

from cas_fixtures import Workload, post_evidence, refusal_reason
from kilnenv import TESTDATA

SNP = TESTDATA / "evidence" / "snp"
WM = "ab" * 48
CHIP = ("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b7"
        "6a1936776b564ea464cdce40c05f63c9b610c5068b006b5d")
VCEK_KEY = f"vcek:{CHIP}:bl2.tee0.snp5.uc68"


def test_import_list_and_attest_by_chip(kiln, hwcas, tmp_path):
    data = ["--data", hwcas.data]
    # A VCEK needs its product's chain first: refused, saying so; nothing stored.
    p = kiln("cas", "collateral", "import", SNP / "vcek_milan.der", *data)
    assert p.returncode == 1 and "import the AMD ASK chain of its product first" in p.stderr
    assert "SEV-Milan" in p.stderr, p.stderr
    chains = {"ask_ark_milan.pem": "Milan ASK/ARK chain (VCEK) chain:Milan:vcek",
              "ask_ark_milan_vlek.pem": "Milan ASVK/ARK chain (VLEK) chain:Milan:vlek",
              "ask_ark_genoa.pem": "Genoa ASK/ARK chain (VCEK) chain:Genoa:vcek",
              "ask_ark_genoa_vlek.pem": "Genoa ASVK/ARK chain (VLEK) chain:Genoa:vlek",
              "ask_ark_turin_vcek.pem": "Turin ASK/ARK chain (VCEK) chain:Turin:vcek",
              "ask_ark_turin_vlek.pem": "Turin ASVK/ARK chain (VLEK) chain:Turin:vlek"}
    p = kiln("cas", "collateral", "import", *[SNP / f for f in chains], *data, check=True)
    out = p.stdout.splitlines()
    assert [ln.split(" from ")[0] for ln in out] == \
        [f"trusted AMD {v}" for v in chains.values()], out
    # The overlap of the ASK's and the ARK's validity.
    assert out[0].endswith(" from 2020-10-22T18:24:20Z until 2045-10-22T17:23:05Z"), out[0]
    p = kiln("cas", "collateral", "import", SNP / "vcek_milan.der", *data, check=True)
    assert p.stdout == (f"trusted AMD Milan VCEK {VCEK_KEY} from 2022-09-24T00:55:28Z until "
                        "2029-09-24T00:55:28Z\n"), p.stdout

    lines = kiln("cas", "collateral", "list", *data, check=True).stdout.splitlines()
    assert lines[0] == "no collateral (kiln cas collateral add FILE --tee sgx|tdx)"
    amd = [ln.split(" from ")[0] for ln in lines[1:]]
    assert f"snp VCEK Milan {VCEK_KEY} valid" in amd, amd
    assert "snp ASVK/ARK chain (VLEK) Turin chain:Turin:vlek valid" in amd, amd
    assert len(amd) == 7, amd

    w = Workload(hwcas, tmp_path)
    report = (SNP / "report_milan.bin").read_bytes()
    status, body = post_evidence(w, "snp", report, WM)
    assert status == 403 and refusal_reason(hwcas, body).startswith("binding mismatch"), \
        refusal_reason(hwcas, body)
    # The same report signed "by a VLEK" (report flags bits 4:2 = 1): there is no VLEK
    # for its TCB in the store, and this chip's VCEK is not given for it: refused,
    # naming what is missing.
    other = bytearray(report)
    other[0x48] = (other[0x48] & ~0x1C) | (1 << 2)
    status, body = post_evidence(w, "snp", bytes(other), WM)
    r = refusal_reason(hwcas, body)
    assert status == 403 and r.startswith("no VLEK for reported TCB bl2.tee0.snp5.uc68 in "
                                          "the store"), r
    assert "evidence does not verify: no VLEK certificate given" in r, r
    # Each import is audited.
    out = kiln("audit", "show", *data, check=True).stdout
    assert [ln.split()[2] for ln in out.splitlines()].count("trust.amd") == 7, out
    kiln("audit", "verify", *data, check=True)


def test_report_without_its_chips_vcek_refused(kiln, hwcas, tmp_path):
    kiln("cas", "collateral", "import", SNP / "ask_ark_milan.pem", "--data", hwcas.data,
         check=True)
    w = Workload(hwcas, tmp_path)
    status, body = post_evidence(w, "snp", SNP / "report_milan.bin", WM)
    r = refusal_reason(hwcas, body)
    assert status == 403, body
    assert r.startswith(f"no VCEK for chip_id {CHIP[:16]}... reported TCB "
                        "bl2.tee0.snp5.uc68 in the store (kiln cas collateral import "
                        "VCEK.der; the AMD KDS serves it); evidence does not verify: "), r
