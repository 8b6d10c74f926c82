#!/usr/bin/env python3
"""Start-up of `kiln run` with two builds of the runtime side by side: this
build's libkiln.so (network and console shields in libkiln-net.so, loaded only
for a grant that configures one) and another libkiln.so given by path (e.g. one
built from the commit before the split). One kiln CLI and one kiln-cas serve
both; each round runs every case once per runtime, alternating, so both see the
same load. Cases: `kiln run /bin/true` (no attestation), `/usr/bin/true`
attested (sim) without a network shield, and with one (network: default deny).

Usage: bench/runtime/startup_split.py BUILD_DIR OTHER_LIBKILN_SO [--rounds N]
Prints, per case, the median ms of each runtime, the ratio this/other per round
(median, min, max) and the load average before and after.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from run import loopback_cas  # noqa: E402

POLICY = """\
name: bench/split
predecessor: null
access: {read: [owner], update: [owner]}
services:
  - {name: plain, command: [/usr/bin/true], measurement: [any]}
  - name: net
    command: [/usr/bin/true]
    measurement: [any]
    network: {default: deny}
security: {tee: [sim], allow_insecure_sim: true}
"""


def once_ms(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("other_lib")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    build = pathlib.Path(args.build).resolve()
    kiln = str(build / "kiln")
    libs = {"this": str(build / "src" / "runtime" / "libkiln.so"),
            "other": str(pathlib.Path(args.other_lib).resolve())}
    attest = [kiln, "run", "--session", "bench/split", "--tee", "sim", "--service"]
    cases = {"true": [kiln, "run", "--", "/bin/true"],
             "attested": attest + ["plain", "--", "/usr/bin/true"],
             "attested+net": attest + ["net", "--", "/usr/bin/true"]}
    load0 = os.getloadavg()
    times = {(c, r): [] for c in cases for r in libs}
    with tempfile.TemporaryDirectory() as tmp, \
            loopback_cas(kiln, pathlib.Path(tmp), POLICY) as env:
        for _ in range(args.rounds):
            for case, cmd in cases.items():
                base = os.environ if case == "true" else env  # no CAS: no attestation
                for rt, lib in libs.items():
                    times[(case, rt)].append(once_ms(cmd, dict(base, KILN_RUNTIME_LIB=lib)))
    load1 = os.getloadavg()
    print(f"{args.rounds} rounds; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    print(f"{'case':14} {'this ms':>8} {'other ms':>9} {'ratio (median, min-max)':>26}")
    for case in cases:
        a, b = times[(case, "this")], times[(case, "other")]
        ratios = [x / y for x, y in zip(a, b)]
        print(f"{case:14} {statistics.median(a):8.2f} {statistics.median(b):9.2f} "
              f"{statistics.median(ratios):10.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
