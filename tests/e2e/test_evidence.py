"""End-to-end tests for `kiln evidence verify|produce` on the real samples in
../shared/testdata/evidence (expected results: its EXPECTED.md).

Every backend is part of every build (`kiln evidence verify --help` lists them):
a missing one fails the tests that need it.
"""
import json
import os
import pathlib
import re
import ssl

import pytest

from kilnenv import BUILD, TESTDATA

EV = TESTDATA / "evidence"
SNP = EV / "snp"
AT = "2025-07-01T00:00:00Z"
MEASUREMENT = ("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b"
               "6bdf8a9ece31a5a608eb0cf2e4872b01")


def snp_args(report=None, chain="ask_ark_milan.pem", vcek=None, at=AT):
    args = ["evidence", "verify", str(report or SNP / "report_milan.bin"), "--tee", "snp",
            "--cert-chain", str(vcek or SNP / "vcek_milan.der")]
    if chain:
        args += ["--cert-chain", str(SNP / chain)]
    if at:
        args += ["--at", at]
    return args


def one_line_error(p):
    """The explanation on stderr is exactly one line naming the failed check."""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_help_lists_every_backend(kiln_bin):
    import subprocess
    out = subprocess.run([kiln_bin, "evidence", "verify", "--help"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"^Backends:(.*)$", out, re.M)
    assert m, out
    assert set(m.group(1).split()) == {"sim", "host", "sgx", "tdx", "snp"}


# ---- SNP ------------------------------------------------------------------------------

def test_snp_real_report_verifies(kiln):
    p = kiln(*snp_args())
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "verdict: authentic" in out
    assert f"measurement: {MEASUREMENT}" in out
    assert "debug: true" in out
    assert "policy: 0xb0000" in out
    assert "signing_key: vcek" in out
    assert "product: Milan" in out
    assert re.search(r"reported_tcb:\s*\n\s+bootloader: 2\n\s+tee: 0\n\s+snp: 5\n"
                     r"\s+microcode: 68", out), out
    assert p.stderr == ""


def test_snp_json(kiln):
    p = kiln(*snp_args(), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["verdict"] == "authentic"
    assert doc["error"] is None
    c = doc["claims"]
    assert c["tee"] == "snp"
    assert c["measurement"] == MEASUREMENT
    assert c["platform_measurement"] == MEASUREMENT
    assert c["policy"] == 0xb0000
    assert c["debug"] is True and c["smt"] is True and c["migrate_ma"] is False
    assert c["reported_tcb"] == {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}
    assert c["vmpl"] == 0 and c["guest_svn"] == 0 and c["report_version"] == 2
    assert c["signing_key"] == "vcek"
    assert c["report_data"] == "0102030405" + "00" * 59
    assert c["chip_id"].startswith("3ac3fe21e13fb099")


def test_snp_pem_vcek_and_split_chain(kiln, tmp_path):
    """The VCEK as PEM works like the DER file; the chain may come in several files."""
    vcek_pem = tmp_path / "vcek.pem"
    vcek_pem.write_text(ssl.DER_cert_to_PEM_cert((SNP / "vcek_milan.der").read_bytes()))
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
                       (SNP / "ask_ark_milan.pem").read_text(), re.S)
    assert len(certs) == 2
    (tmp_path / "ask.pem").write_text(certs[0])
    (tmp_path / "ark.der").write_bytes(ssl.PEM_cert_to_DER_cert(certs[1]))
    p = kiln("evidence", "verify", SNP / "report_milan.bin", "--tee=snp",
             "--cert-chain", vcek_pem, "--cert-chain", tmp_path / "ask.pem",
             "--cert-chain", tmp_path / "ark.der", f"--at={AT}")
    assert p.returncode == 0, p.stderr
    # Without the ARK there is no trusted root.
    p = kiln("evidence", "verify", SNP / "report_milan.bin", "--tee", "snp",
             "--cert-chain", vcek_pem, "--cert-chain", tmp_path / "ask.pem", "--at", AT)
    assert p.returncode == 1
    assert "ARK-Milan" in one_line_error(p)


@pytest.mark.parametrize("chain", ["ask_ark_genoa.pem", "ask_ark_turin_vcek.pem",
                                   "ask_ark_milan_vlek.pem"])
def test_snp_wrong_chain(kiln, chain):
    p = kiln(*snp_args(chain=chain))
    assert p.returncode == 1
    line = one_line_error(p)
    assert "VCEK certificate: its issuer SEV-Milan is not among the given certificates" in line
    assert "verdict: not authentic" in p.stdout


@pytest.mark.parametrize("offset,what", [(0x04, "guest_svn"), (0x08, "policy"),
                                         (0x50, "report_data"), (0x90, "measurement"),
                                         (0x180, "reported_tcb"), (0x1A0, "chip_id"),
                                         (0x2A0, "signature")])
def test_snp_flipped_bit(kiln, tmp_path, offset, what):
    data = bytearray((SNP / "report_milan.bin").read_bytes())
    data[offset] ^= 0x01
    f = tmp_path / f"flip_{what}.bin"
    f.write_bytes(bytes(data))
    p = kiln(*snp_args(report=f))
    assert p.returncode == 1
    assert "signature" in one_line_error(p)
    assert "does not verify" in p.stdout


def test_snp_truncated_and_trailing(kiln, tmp_path):
    data = (SNP / "report_milan.bin").read_bytes()
    f = tmp_path / "short.bin"
    f.write_bytes(data[:0x1A8])
    p = kiln(*snp_args(report=f))
    assert p.returncode == 1
    assert "truncated at 424 bytes: field 'chip_id'" in one_line_error(p)
    f.write_bytes(data + b"\0\0\0")
    p = kiln(*snp_args(report=f))
    assert p.returncode == 1
    assert "3 unexpected bytes after the 1184-byte report" in one_line_error(p)
    f.write_bytes(b"")
    assert kiln(*snp_args(report=f)).returncode == 1


def test_snp_expired_and_json_error(kiln):
    p = kiln(*snp_args(at="2030-01-01T00:00:00Z"))
    assert p.returncode == 1
    assert ("certificate SEV-VCEK is valid 2022-09-24T00:55:28Z to 2029-09-24T00:55:28Z, "
            "not at 2030-01-01T00:00:00Z") in one_line_error(p)
    p = kiln(*snp_args(at="2030-01-01T02:00:00+02:00"), "--json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["verdict"] == "not authentic"
    assert doc["claims"] is None
    assert "not at 2030-01-01T00:00:00Z" in doc["error"]


def cert_table(blobs):
    """A GHCB certificate table: {GUID, offset, length} entries, a zero entry, the DERs."""
    import struct
    import uuid
    off = 24 * (len(blobs) + 1)
    head, body = b"", b""
    for guid, der in blobs:
        head += uuid.UUID(guid).bytes + struct.pack("<II", off + len(body), len(der))
        body += der
    return head + b"\0" * 24 + body


def pem_ders(path):
    return [ssl.PEM_cert_to_DER_cert(c) for c in re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", path.read_text(), re.S)]


def test_snp_certificate_table(kiln, tmp_path):
    """What `kiln evidence produce --tee snp` writes on a host that serves certificates
    (report || GHCB certificate table) verifies without --cert-chain."""
    vcek, ask, ark = ("63da758d-e664-4564-adc5-f4b93be8accd",
                      "4ab7b379-bbac-4fe4-a02f-05aef327c782",
                      "c0b406a4-a803-4952-9743-3fb6014cd0ae")
    milan = pem_ders(SNP / "ask_ark_milan.pem")
    genoa = pem_ders(SNP / "ask_ark_genoa.pem")
    report = (SNP / "report_milan.bin").read_bytes()
    f = tmp_path / "extended.bin"
    f.write_bytes(report + cert_table([(vcek, (SNP / "vcek_milan.der").read_bytes()),
                                       (ask, milan[0]), (ark, milan[1])]))
    p = kiln("evidence", "verify", f, "--tee", "snp", "--at", AT, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["claims"]["measurement"] == MEASUREMENT
    # The host's table cannot bring its own root: with Genoa's ARK, Milan's is missing.
    f.write_bytes(report + cert_table([(vcek, (SNP / "vcek_milan.der").read_bytes()),
                                       (ask, milan[0]), (ark, genoa[1])]))
    p = kiln("evidence", "verify", f, "--tee", "snp", "--at", AT)
    assert p.returncode == 1
    assert "its issuer ARK-Milan (the AMD root, ARK) is not among" in one_line_error(p)
    # A well-formed table holding something that is not a certificate.
    f.write_bytes(report + cert_table([(vcek, b"x" * 10)]))
    p = kiln("evidence", "verify", f, "--tee", "snp", "--at", AT)
    assert p.returncode == 1
    assert "SNP certificate table: certificate 1 is not DER X.509" in one_line_error(p)
    # A table whose entry points outside it is just trailing garbage.
    f.write_bytes(report + cert_table([(vcek, b"x" * 10)])[:50])
    p = kiln("evidence", "verify", f, "--tee", "snp", "--at", AT)
    assert p.returncode == 1
    assert "50 unexpected bytes after the 1184-byte report (not an SNP certificate table)" \
        in one_line_error(p)


def test_snp_forged_amd_crl(kiln, tmp_path):
    """A CRL (DER, via --cert-chain) that claims ARK-Milan as issuer but is signed by
    another key is refused, naming the CRL."""
    import subprocess
    subj = "/OU=Engineering/C=US/L=Santa Clara/ST=CA/O=Advanced Micro Devices/CN=ARK-Milan"
    run = lambda *a: subprocess.run(["openssl", *a], cwd=tmp_path, check=True,
                                    capture_output=True)
    run("req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem",
        "-out", "ca.pem", "-subj", subj, "-days", "2")
    (tmp_path / "index.txt").write_text("")
    (tmp_path / "crlnumber").write_text("01\n")
    (tmp_path / "ca.cnf").write_text("[ca]\ndefault_ca = x\n[x]\ndatabase = index.txt\n"
                                     "crlnumber = crlnumber\ndefault_md = sha384\n"
                                     "default_crl_days = 1\n")
    run("ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "k.pem", "-cert", "ca.pem",
        "-out", "crl.pem")
    run("crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der")
    p = kiln(*snp_args(), "--cert-chain", tmp_path / "crl.der")
    assert p.returncode == 1
    assert "CRL of ARK-Milan: signature by ARK-Milan does not verify" in one_line_error(p)


def test_snp_missing_certificates(kiln):
    p = kiln("evidence", "verify", SNP / "report_milan.bin", "--tee", "snp", "--at", AT)
    assert p.returncode == 1
    assert "no VCEK certificate given" in one_line_error(p)


def test_bad_inputs_are_failures(kiln, tmp_path):
    p = kiln(*snp_args(report=tmp_path / "nope.bin"))
    assert p.returncode == 1
    assert "nope.bin" in one_line_error(p)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"\x30\x03\x01\x01")
    p = kiln(*snp_args(vcek=junk))
    assert p.returncode == 1
    assert "junk.pem: certificate 1 (at byte 0) is neither PEM nor DER" in one_line_error(p)
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    p = kiln(*snp_args(), "--collateral", bad)
    assert p.returncode == 1
    assert "c.json:1:" in one_line_error(p)


@pytest.mark.parametrize("args,needle", [
    ([], "Usage"),
    (["verify"], "missing FILE"),
    (["verify", "x.bin"], "missing --tee"),
    (["verify", "x.bin", "--tee", "sev"], "--tee must be sgx, tdx or snp"),
    (["verify", "x.bin", "--tee", "snp", "--at", "yesterday"], "not an RFC 3339 time"),
    (["verify", "x.bin", "--tee", "snp", "--at", "2025-13-01T00:00:00Z"], "RFC 3339"),
    (["verify", "x.bin", "--tee", "snp", "--frobnicate"], "unknown option '--frobnicate'"),
    (["verify", "x.bin", "--tee", "snp", "--cert-chain"], "--cert-chain needs a value"),
    (["verify", "x.bin", "y.bin", "--tee", "snp"], "unexpected argument 'y.bin'"),
    (["attest"], "unknown subcommand 'attest'"),
    (["produce", "--tee", "sgx", "--out", "x"], "--tee must be tdx or snp"),
    (["produce", "--tee", "snp"], "missing --out"),
    (["produce", "--tee", "snp", "--out", "x", "--report-data", "zz"], "--report-data"),
    (["produce", "--tee", "snp", "--out", "x", "--report-data", "00" * 65], "--report-data"),
])
def test_usage_errors(kiln, args, needle):
    p = kiln("evidence", *args)
    assert p.returncode == 2
    assert needle in p.stderr


def test_help(kiln):
    for args in (["--help"], ["verify", "--help"], ["produce", "--help"]):
        p = kiln("evidence", *args)
        assert p.returncode == 0
        assert "Usage: kiln evidence" in p.stdout
    assert "evidence" in kiln("--help").stdout


# ---- producer (no configfs-tsm on this machine) ----------------------------------------

def test_produce_without_configfs(kiln, tmp_path):
    out = tmp_path / "ev.bin"
    p = kiln("evidence", "produce", "--tee", "snp", "--out", out,
             env={"KILN_TSM_PATH": str(tmp_path / "absent")})
    assert p.returncode == 1
    assert "configfs-tsm is not available" in one_line_error(p)
    assert not out.exists()
    # A directory that is not configfs: the entry has no attributes; nothing left behind.
    fake = tmp_path / "tsm"
    fake.mkdir()
    p = kiln("evidence", "produce", "--tee", "tdx", "--report-data", "ab" * 64, "--out", out,
             env={"KILN_TSM_PATH": str(fake)})
    assert p.returncode == 1
    assert "/generation" in one_line_error(p)
    assert list(fake.iterdir()) == []
    assert not out.exists()


@pytest.mark.skipif(pathlib.Path("/sys/kernel/config/tsm/report").exists() or
                    pathlib.Path("/dev/sev-guest").exists() or
                    pathlib.Path("/dev/tdx_guest").exists(),
                    reason="this machine is a confidential VM")
def test_produce_outside_cvm(kiln, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KILN_TSM_PATH"}
    import subprocess
    for tee, dev in (("snp", "/dev/sev-guest"), ("tdx", "/dev/tdx_guest")):
        p = subprocess.run([str(BUILD / "kiln"), "evidence", "produce", "--tee", tee, "--out",
                            str(tmp_path / "x")], capture_output=True, text=True, env=env)
        assert p.returncode == 1
        assert dev in one_line_error(p)


# ---- Intel ---------------------------------------------------------------------------

def test_sgx_quote(kiln):
    p = kiln("evidence", "verify", EV / "sgx" / "quote.bin", "--tee", "sgx", "--collateral",
             EV / "sgx" / "collateral.json", "--at", AT, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    c = json.loads(p.stdout)["claims"]
    assert c["tee"] == "sgx"
    assert c["mrenclave"] == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert c["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert sorted(c["advisories"]) == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert c["debug"] is False


def test_sgx_flipped_bit(kiln, tmp_path):
    data = bytearray((EV / "sgx" / "quote.bin").read_bytes())
    data[112] ^= 1  # MRENCLAVE
    f = tmp_path / "q.bin"
    f.write_bytes(bytes(data))
    p = kiln("evidence", "verify", f, "--tee", "sgx", "--collateral",
             EV / "sgx" / "collateral.json", "--at", AT)
    assert p.returncode == 1
    one_line_error(p)


def test_tdx_v4_quote(kiln):
    p = kiln("evidence", "verify", EV / "tdx" / "quote_v4.bin", "--tee", "tdx",
             "--collateral", EV / "tdx" / "quote_v4_collateral.json", "--at", AT, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    c = json.loads(p.stdout)["claims"]
    assert c["tee"] == "tdx"
    assert c["mrtd"].startswith("91eb2b44d141d4ec")
    assert c["tcb_status"] == "UpToDate"
    assert c["debug"] is False


def test_tdx_v5_tcb_not_supported(kiln):
    p = kiln("evidence", "verify", EV / "tdx" / "quote_v5_tcb_not_supported.bin", "--tee",
             "tdx", "--collateral", EV / "tdx" / "quote_v5_tcb_not_supported_collateral.json",
             "--at", "2026-03-01T00:00:00Z")
    assert p.returncode == 1
    assert "TCB" in one_line_error(p)
