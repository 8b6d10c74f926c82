"""kiln policy check: the CAS's attestation decision (pol_decide), run offline on the
real hardware evidence samples in ../shared/testdata/evidence (times from EXPECTED.md).
The report_data binding is not part of it (it needs a live nonce)."""
import json

from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
AT_2025 = "2025-07-01T00:00:00Z"
AT_2026 = "2026-03-01T00:00:00Z"
MRTD_V4 = ("91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
           "de03ae6dc5f87f27428b2538873118b7")


def policy(tmp_path, security, measurement="[any]"):
    path = tmp_path / "policy.yaml"
    path.write_text("name: acme/app\n"
                    "security:\n" + "".join(f"  {k}: {v}\n" for k, v in security.items()) +
                    "services:\n"
                    "  - name: app\n"
                    "    command: [/bin/true]\n"
                    f"    measurement: {measurement}\n")
    return path


def check(kiln, pol, *args):
    return kiln("policy", "check", pol, "--service", "app", *args)


def sgx(kiln, pol):
    return check(kiln, pol, "--evidence", EV / "sgx" / "quote.bin", "--tee", "sgx",
                 "--collateral", EV / "sgx" / "collateral.json", "--at", AT_2025)


def tdx_v4(kiln, pol):
    return check(kiln, pol, "--evidence", EV / "tdx" / "quote_v4.bin", "--tee", "tdx",
                 "--collateral", EV / "tdx" / "quote_v4_collateral.json", "--at", AT_2025)


def snp(kiln, pol):
    return check(kiln, pol, "--evidence", EV / "snp" / "report_milan.bin", "--tee", "snp",
                 "--cert-chain", EV / "snp" / "vcek_milan.der",
                 "--cert-chain", EV / "snp" / "ask_ark_milan.pem", "--at", AT_2025)


def refused(p, *needles):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    line = p.stdout.strip()
    assert line.startswith("refused: "), line
    assert "\n" not in line
    for n in needles:
        assert n in line, (n, line)
    return line


def allowed(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == "allowed\n"


def test_sgx_tcb_status_not_tolerated(kiln, tmp_path):
    refused(sgx(kiln, policy(tmp_path, {"tee": "[sgx]"})), "tcb_status",
            "ConfigurationAndSWHardeningNeeded", "configuration-needed",
            "sw-hardening-needed")


def test_sgx_tolerated_but_advisories_not_ignored(kiln, tmp_path):
    pol = policy(tmp_path, {"tee": "[sgx]",
                            "tolerate": "[configuration-needed, sw-hardening-needed]"})
    line = refused(sgx(kiln, pol), "advisories", "ignore_advisories")
    assert "INTEL-SA-00289" in line or "INTEL-SA-00615" in line
    # Ignoring one of the two still refuses, naming the other.
    pol = policy(tmp_path, {"tee": "[sgx]",
                            "tolerate": "[configuration-needed, sw-hardening-needed]",
                            "ignore_advisories": "[INTEL-SA-00289]"})
    refused(sgx(kiln, pol), "INTEL-SA-00615")


def test_sgx_tolerated_and_ignored_allowed(kiln, tmp_path):
    pol = policy(tmp_path, {"tee": "[sgx]",
                            "tolerate": "[configuration-needed, sw-hardening-needed]",
                            "ignore_advisories": "[INTEL-SA-00289, INTEL-SA-00615]"})
    allowed(sgx(kiln, pol))


def test_sgx_not_in_tee_list(kiln, tmp_path):
    refused(sgx(kiln, policy(tmp_path, {"tee": "[tdx]"})), "tee", '"sgx"',
            "security.tee [tdx]")


def test_tdx_v4_up_to_date_allowed(kiln, tmp_path):
    allowed(tdx_v4(kiln, policy(tmp_path, {"tee": "[tdx]"})))


def test_tdx_v4_measurement_pins_mrtd(kiln, tmp_path):
    # Hardware claims carry no workload_measurement, so the service's measurement list
    # is matched against platform_measurement (MRTD for TDX).
    allowed(tdx_v4(kiln, policy(tmp_path, {"tee": "[tdx]"}, f"[{MRTD_V4}]")))
    other = "ab" * 48
    refused(tdx_v4(kiln, policy(tmp_path, {"tee": "[tdx]"}, f"[{other}]")),
            "platform_measurement", MRTD_V4, "service 'app' measurement")


def test_tdx_v4_with_workload_measurement(kiln, tmp_path):
    # As the CAS does for a CVM workload once the binding holds: the list is then
    # matched against the workload measurement, not MRTD.
    wm = "cd" * 48
    pol = policy(tmp_path, {"tee": "[tdx]"}, f"[{wm}]")
    refused(tdx_v4(kiln, pol), "platform_measurement")
    allowed(check(kiln, pol, "--evidence", EV / "tdx" / "quote_v4.bin", "--tee", "tdx",
                  "--collateral", EV / "tdx" / "quote_v4_collateral.json", "--at", AT_2025,
                  "--workload-measurement", wm))
    pol = policy(tmp_path, {"tee": "[tdx]"}, f"[{MRTD_V4}]")
    refused(check(kiln, pol, "--evidence", EV / "tdx" / "quote_v4.bin", "--tee", "tdx",
                  "--collateral", EV / "tdx" / "quote_v4_collateral.json", "--at", AT_2025,
                  "--workload-measurement", wm), "workload_measurement", wm)


def test_tdx_v5_unverifiable(kiln, tmp_path):
    p = check(kiln, policy(tmp_path, {"tee": "[tdx]"}), "--evidence",
              EV / "tdx" / "quote_v5_tcb_not_supported.bin", "--tee", "tdx", "--collateral",
              EV / "tdx" / "quote_v5_tcb_not_supported_collateral.json", "--at", AT_2026)
    refused(p, "evidence does not verify", "TCB level not supported")


def test_snp_debug_refused_unless_tolerated(kiln, tmp_path):
    refused(snp(kiln, policy(tmp_path, {"tee": "[snp]"})), "debug",
            "security.tolerate lacks 'debug'")
    allowed(snp(kiln, policy(tmp_path, {"tee": "[snp]", "tolerate": "[debug]"})))


def test_claims_file(kiln, tmp_path):
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"tee": "host", "insecure": False, "debug": False,
                                  "workload_measurement": "cd" * 48,
                                  "platform_measurement": "sha256:" + "00" * 32}))
    allowed(check(kiln, policy(tmp_path, {"tee": "[host]"}, f"[{'cd' * 48}]"),
                  "--claims", claims))
    # workload_measurement, when present, is what the list is matched against.
    refused(check(kiln, policy(tmp_path, {"tee": "[host]"}, f"[{'ab' * 48}]"),
                  "--claims", claims), "workload_measurement")


def test_usage_errors(kiln, tmp_path):
    pol = policy(tmp_path, {"tee": "[sgx]"})
    for args in ([pol], [pol, "--service", "app"],
                 [pol, "--service", "app", "--evidence", EV / "sgx" / "quote.bin"],
                 [pol, "--service", "app", "--evidence", "x", "--tee", "nope"],
                 [pol, "--service", "app", "--claims", "c.json", "--tee", "sgx"],
                 [pol, "--service", "app", "--claims", "c.json", "--at", "yesterday"],
                 [pol, "--service", "app", "--claims", "c.json",
                  "--workload-measurement", "ab" * 48],
                 [pol, "--service", "app", "--evidence", "x", "--tee", "tdx",
                  "--workload-measurement", "AB" * 48]):
        p = kiln("policy", "check", *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = kiln("policy", "check", pol, "--service", "nope", "--claims", "c.json")
    assert p.returncode == 1 and "no service 'nope'" in p.stderr
    p = kiln("policy", "check", "--help")
    assert p.returncode == 0 and "binding" in p.stdout
