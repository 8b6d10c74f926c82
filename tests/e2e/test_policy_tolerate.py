"""security.tolerate entries ({status, advisories, until}, docs/policy.md) decided on
the real SGX and TDX quotes of ../shared/testdata/evidence with their collateral, at
the samples' time 2025-07-01 (EXPECTED.md: the SGX quote is
ConfigurationAndSWHardeningNeeded with INTEL-SA-00289 and INTEL-SA-00615; the TDX v4
quote UpToDate with none). `kiln policy check` runs the CAS's decision (pol_decide)
offline: through a CAS these quotes stop earlier, at the binding check (their
report_data was not made for our key). `kiln policy apply` warns about an expired
entry and still applies the policy."""
from kilnenv import TESTDATA

EV = TESTDATA / "evidence"
AT = "2025-07-01T00:00:00Z"
BOTH = "[INTEL-SA-00289, INTEL-SA-00615]"


def policy(tmp_path, tolerate, name="acme/app"):
    path = tmp_path / "policy.yaml"
    path.write_text(f"name: {name}\n"
                    "security:\n"
                    "  tee: [sgx, tdx]\n"
                    "  tolerate:\n" + "".join(f"    - {t}\n" for t in tolerate) +
                    "services:\n"
                    "  - name: app\n"
                    "    command: [/bin/true]\n"
                    "    measurement: [any]\n")
    return path


def entry(status, advisories=BOTH, until="2025-07-31"):
    return f"{{status: {status}, advisories: {advisories}, until: {until}}}"


def check(kiln, pol, tee="sgx"):
    quote, coll = {"sgx": ("sgx/quote.bin", "sgx/collateral.json"),
                   "tdx": ("tdx/quote_v4.bin", "tdx/quote_v4_collateral.json")}[tee]
    return kiln("policy", "check", pol, "--service", "app", "--evidence", EV / quote,
                "--tee", tee, "--collateral", EV / coll, "--at", AT)


def refused(p, expected):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == f"refused: {expected}\n", p.stdout


def test_tolerated_with_every_advisory_until_a_date(kiln, tmp_path):
    pol = policy(tmp_path, [entry("sw-hardening-needed"), entry("configuration-needed")])
    p = check(kiln, pol)
    assert (p.returncode, p.stdout) == (0, "allowed\n"), p.stderr
    # Not expired at the samples' time, but it is now (2026): policy check warns too.
    assert "security.tolerate entry for sw-hardening-needed expired (until 2025-07-31" \
        in p.stderr
    # An up-to-date quote needs no tolerance at all.
    p = check(kiln, pol, "tdx")
    assert (p.returncode, p.stdout) == (0, "allowed\n"), p.stderr


def test_missing_advisory_refused_naming_it(kiln, tmp_path):
    pol = policy(tmp_path, [entry("sw-hardening-needed", "[INTEL-SA-00289]"),
                            entry("configuration-needed")])
    refused(check(kiln, pol), 'claims.tcb_status "ConfigurationAndSWHardeningNeeded": '
            "advisories INTEL-SA-00615 are not in the security.tolerate entry for "
            "sw-hardening-needed (until 2025-07-31)")
    # ignore_advisories does not widen an entry: the entry names what it tolerates.
    pol.write_text(pol.read_text().replace("  tolerate:", "  ignore_advisories: "
                                           "[INTEL-SA-00615]\n  tolerate:"))
    refused(check(kiln, pol), 'claims.tcb_status "ConfigurationAndSWHardeningNeeded": '
            "advisories INTEL-SA-00615 are not in the security.tolerate entry for "
            "sw-hardening-needed (until 2025-07-31)")


def test_expired_entry_refused_naming_the_date(kiln, tmp_path):
    pol = policy(tmp_path, [entry("sw-hardening-needed"),
                            entry("configuration-needed", until="2025-06-30")])
    refused(check(kiln, pol), 'claims.tcb_status "ConfigurationAndSWHardeningNeeded": '
            "the security.tolerate entry for configuration-needed expired "
            "(until 2025-06-30, UTC)")
    # The last day itself is still in force: 2025-07-01 00:00 is within "until 2025-07-01".
    pol = policy(tmp_path, [entry("sw-hardening-needed"),
                            entry("configuration-needed", until="2025-07-01")])
    assert check(kiln, pol).stdout == "allowed\n"


def test_wrong_category_refused(kiln, tmp_path):
    pol = policy(tmp_path, [entry("outdated-tcb"), entry("configuration-needed")])
    refused(check(kiln, pol), 'claims.tcb_status "ConfigurationAndSWHardeningNeeded" '
            "needs security.tolerate [sw-hardening-needed]")


def test_plain_form_unchanged(kiln, tmp_path):
    # The list form still tolerates the status; advisories then need ignore_advisories.
    pol = policy(tmp_path, ["sw-hardening-needed", "configuration-needed"])
    refused(check(kiln, pol), 'claims.advisories has "INTEL-SA-00289" which is not in '
            "security.ignore_advisories")
    # Plain and entry forms mix, one per status.
    pol = policy(tmp_path, ["configuration-needed", entry("sw-hardening-needed")])
    pol.write_text(pol.read_text().replace("  tolerate:", f"  ignore_advisories: {BOTH}\n"
                                           "  tolerate:"))
    assert check(kiln, pol).stdout == "allowed\n"


def test_apply_warns_about_an_expired_entry(kiln, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    pol = policy(tmp_path, [entry("sw-hardening-needed", until="2025-06-30")])
    p = kiln("policy", "apply", pol, env=cas.env(alice))
    assert p.returncode == 0, p.stderr
    assert p.stderr == (f"kiln: warning: {pol}: security.tolerate entry for "
                        "sw-hardening-needed expired (until 2025-06-30, UTC): it tolerates "
                        "nothing now\n")
    got = kiln("policy", "get", "acme/app", env=cas.env(alice), check=True).stdout
    assert "until: 2025-06-30" in got
    # A far-off date: no warning.
    pol = policy(tmp_path, [entry("sw-hardening-needed", until="2099-12-31")], "acme/b")
    p = kiln("policy", "apply", pol, env=cas.env(alice), check=True)
    assert p.stderr == ""
