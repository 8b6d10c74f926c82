"""AMD certificates per product and chip in the CAS store (issue 12, docs/cas.md "AMD
certificates"): `kiln cas collateral import` of the real AMD chains of
../shared/testdata/evidence/snp (VCEK and VLEK kinds for Milan, Genoa, Turin) and the
real Milan VCEK; `collateral list` with their validity; an SNP attestation verified with
the VCEK stored for its report's chip ID and reported TCB, refused naming the chip and
what is missing without it. The CAS verifies at the sample's time
(--insecure-evidence-time); the real report then fails the binding check (its
report_data was not made for our key), which proves verification passed."""
import base64
import re

import pytest

from cas_fixtures import CasServer, Workload
from kilnenv import TESTDATA

SNP = TESTDATA / "evidence" / "snp"
AT = "2025-07-01T00:00:00Z"
WM = "ab" * 48
CHIP = ("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b7"
        "6a1936776b564ea464cdce40c05f63c9b610c5068b006b5d")
VCEK_KEY = f"vcek:{CHIP}:bl2.tee0.snp5.uc68"


@pytest.fixture
def hwcas(kiln_bin, tmp_path):
    server = CasServer(kiln_bin, tmp_path, extra_args=["--insecure-evidence-time", AT]).start()
    yield server
    rc = server.stop()
    assert rc in (None, 0), f"kiln cas serve exited {rc}:\n{server.log()[-4000:]}"


def post(w, report):
    body = {"session": "acme/app", "service": "app", "tee": "snp", "nonce": w.nonce(),
            "evidence": base64.b64encode(report).decode(), "workload_measurement": WM}
    return w.cas.request("POST", "/v1/attest", body, certfile=w.pem)


def reason(cas, body):
    lines = [ln for ln in cas.log().splitlines()
             if body["request_id"] in ln and 'msg="attestation refused"' in ln]
    assert len(lines) == 1, cas.log()[-3000:]
    return re.search(r'reason="((?:[^"\\]|\\.)*)"', lines[0]).group(1)


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
    status, body = post(w, report)
    assert status == 403 and reason(hwcas, body).startswith("binding mismatch"), \
        reason(hwcas, body)
    # The same report signed "by a VLEK" (report flags bits 4:2 = 1): there is no VLEK
    # for its TCB in the store, and this chip's VCEK is not given for it: refused,
    # naming what is missing.
    other = bytearray(report)
    other[0x48] = (other[0x48] & ~0x1C) | (1 << 2)
    status, body = post(w, bytes(other))
    r = reason(hwcas, body)
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
    status, body = post(w, (SNP / "report_milan.bin").read_bytes())
    r = reason(hwcas, body)
    assert status == 403, body
    assert r.startswith(f"no VCEK for chip_id {CHIP[:16]}... reported TCB "
                        "bl2.tee0.snp5.uc68 in the store (kiln cas collateral import "
                        "VCEK.der; the AMD KDS serves it); evidence does not verify: "), r


def test_import_refuses_what_is_not_an_amd_chain(kiln, cas, tmp_path):
    data = ["--data", cas.data]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    p = kiln("cas", "collateral", "import", junk, *data)
    assert p.returncode == 1 and "no certificate found" in p.stderr, p.stderr
    # An ASK without its ARK, and a chain whose root is not a pinned ARK.
    pem = (SNP / "ask_ark_milan.pem").read_text()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", pem,
                        re.S)
    one = tmp_path / "ask_only.pem"
    one.write_text(blocks[0])
    p = kiln("cas", "collateral", "import", one, *data)
    assert p.returncode == 1 and "neither a VCEK" in p.stderr, p.stderr
    mixed = tmp_path / "mixed.pem"
    mixed.write_text(blocks[0] + re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
        (SNP / "ask_ark_genoa.pem").read_text(), re.S)[1])
    p = kiln("cas", "collateral", "import", mixed, *data)
    assert p.returncode == 1 and "does not verify" in p.stderr, p.stderr
    p = kiln("cas", "collateral", "import", *data)
    assert p.returncode == 2
    assert kiln("cas", "collateral", "list", *data, check=True).stdout == \
        "no collateral (kiln cas collateral add FILE --tee sgx|tdx)\n"
