#!/usr/bin/env python3
"""bench/evidence (Intel): SGX and TDX DCAP quote verifications per second on one core,
without a cache, with a parsed-collateral cache, and with the cache plus the PCK memo,
next to the raw ECDSA P-256 verify rate of `openssl speed` measured in the same run
(absolute numbers on a shared machine move; the ratios are what to compare).

Usage: bench/evidence/run_intel.py --build BUILD_DIR [--seconds 2]
                                   [--out bench/results/evidence_intel.json]
The program is BUILD_DIR/bench/evidence/bench_dcap (bench/evidence/meson.build).
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

TARGET = 2000  # verifications/s per core with cached collateral (issue 6)


def bench_binary(build, tmp):
    exe = os.path.join(build, "bench", "evidence", "bench_dcap")
    if not os.access(exe, os.X_OK):
        sys.exit(f"{exe} not built (ninja -C {build})")
    return exe


def pinned(cmd):
    """Run on one fixed core (the same one for every program, so ratios compare)."""
    if subprocess.run(["sh", "-c", "command -v taskset"], capture_output=True).returncode:
        return cmd
    return ["taskset", "-c", str(min(os.sched_getaffinity(0)))] + cmd


def openssl_ecdsa(seconds):
    out = subprocess.run(pinned(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"]),
                         capture_output=True, text=True).stdout
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        return None
    return {"sign_per_s": float(m.group(1)), "verify_per_s": float(m.group(2))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--testdata", default=os.environ.get("KILN_TESTDATA",
                                                         "../shared/testdata"))
    ap.add_argument("--out", default="bench/results/evidence_intel.json")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        exe = bench_binary(os.path.realpath(a.build), tmp)
        print("bench/evidence: SGX/TDX DCAP ...", file=sys.stderr, flush=True)
        cmd = pinned([exe, "--testdata", a.testdata, "--seconds", str(a.seconds)])
        dcap = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                         text=True).stdout)
    print("bench/evidence: openssl speed ecdsap256 ...", file=sys.stderr, flush=True)
    ecdsa = openssl_ecdsa(max(1, int(a.seconds)))

    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_avg_1m": os.getloadavg()[0], "single_core": True,
               "target_cached_per_s": TARGET, "openssl_ecdsap256": ecdsa, "tee": {}}
    for tee in ("sgx", "tdx"):
        d = dcap[tee]
        r = {k: d[k] for k in ("quote", "verify_per_s_no_cache", "verify_per_s_collateral_cache",
                               "verify_per_s_collateral_cache_pck_memo",
                               "collateral_parse_per_s")}
        if ecdsa:
            v = ecdsa["verify_per_s"]
            # How many raw ECDSA verifications one quote verification costs.
            r["ecdsa_equivalents_no_cache"] = round(v / d["verify_per_s_no_cache"], 2)
            r["ecdsa_equivalents_collateral_cache"] = round(
                v / d["verify_per_s_collateral_cache"], 2)
            r["ecdsa_equivalents_collateral_cache_pck_memo"] = round(
                v / d["verify_per_s_collateral_cache_pck_memo"], 2)
        r["cache_speedup"] = round(d["verify_per_s_collateral_cache_pck_memo"] /
                                   d["verify_per_s_no_cache"], 2)
        r["meets_target"] = d["verify_per_s_collateral_cache_pck_memo"] >= TARGET
        results["tee"][tee] = r
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    lines = ["| TEE | no cache /s | collateral cache /s | cache + PCK memo /s | "
             "ECDSA-verify equivalents (no cache / cache / memo) | target ≥ 2000/s |",
             "|---|---|---|---|---|---|"]
    for tee, r in results["tee"].items():
        eq = (f"{r.get('ecdsa_equivalents_no_cache', float('nan')):.1f} / "
              f"{r.get('ecdsa_equivalents_collateral_cache', float('nan')):.1f} / "
              f"{r.get('ecdsa_equivalents_collateral_cache_pck_memo', float('nan')):.1f}")
        lines.append(f"| {tee} | {r['verify_per_s_no_cache']:.0f} | "
                     f"{r['verify_per_s_collateral_cache']:.0f} | "
                     f"{r['verify_per_s_collateral_cache_pck_memo']:.0f} | {eq} | "
                     f"{'yes' if r['meets_target'] else 'NO'} |")
    lines.append("")
    lines.append(f"openssl speed -seconds {max(1, int(a.seconds))} ecdsap256: "
                 + (f"{ecdsa['verify_per_s']:.0f} verify/s, {ecdsa['sign_per_s']:.0f} sign/s"
                    if ecdsa else "not available")
                 + f" (same run, one core; load average {results['load_avg_1m']:.2f})")
    table = "\n".join(lines)
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
        f.write(table + "\n")
    print(table)
    return 0 if all(r["meets_target"] for r in results["tee"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
