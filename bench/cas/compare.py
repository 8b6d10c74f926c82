#!/usr/bin/env python3
"""bench/cas/compare.py: two kiln builds side by side (e.g. before and after a
change of the CAS), interleaved in one run so both see the same machine load.

For each build and each round: a fresh kiln-cas with its default event loops,
attestations per second at 16 and 64 clients, and policy applies per second (16
clients, fresh connections and kept alive), as bench/cas/run.py measures them.
Prints, per measurement, each build's median [min-max] over the rounds and the
ratio of the medians (B / A), and the server's CPU per operation.

Usage: bench/cas/compare.py --a build-old/kiln --b build/kiln --loadgen LOADGEN
                            [--rounds 5] [--seconds 4]
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "e2e"))
from cas_fixtures import CasServer  # noqa: E402
from run import POLICY, loadgen  # noqa: E402

MEASURES = (("attest", 16), ("attest", 64), ("apply", 16), ("apply-ka", 16))


def one_round(args, kiln):
    with tempfile.TemporaryDirectory() as tmp:
        cas = CasServer(kiln, tmp).start()
        try:
            ident = os.path.join(tmp, "id.pem")
            subprocess.run([kiln, "identity", "create", "--out", ident], check=True,
                           capture_output=True)
            pol = os.path.join(tmp, "p.yaml")
            pathlib.Path(pol).write_text(POLICY)
            subprocess.run([kiln, "policy", "apply", pol], check=True, capture_output=True,
                           env=dict(os.environ, **cas.env(ident)))
            return {f"{m}/{c}": loadgen(args, cas, ident, m, c) for m, c in MEASURES}
        finally:
            cas.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="kiln binary A (before)")
    ap.add_argument("--b", required=True, help="kiln binary B (after)")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4)
    args = ap.parse_args()
    runs = {"a": [], "b": []}
    for i in range(args.rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        for which in ("a", "b") if i % 2 == 0 else ("b", "a"):
            runs[which].append(one_round(args, getattr(args, which)))
    print(f"{args.rounds} interleaved rounds of {args.seconds:g} s; A = {args.a}, "
          f"B = {args.b}; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| measurement | A ops/s | B ops/s | B/A | A server CPU µs/op | B server CPU µs/op |")
    print("|---|---|---|---|---|---|")
    errors = 0
    for m, c in MEASURES:
        key = f"{m}/{c}"
        a = [r[key]["ops_per_s"] for r in runs["a"]]
        b = [r[key]["ops_per_s"] for r in runs["b"]]
        ca = statistics.median(r[key]["server_cpu_us"] for r in runs["a"])
        cb = statistics.median(r[key]["server_cpu_us"] for r in runs["b"])
        errors += sum(r[key]["errors"] for w in runs.values() for r in w)
        print(f"| {m}, {c} clients | {statistics.median(a):.0f} [{min(a):.0f}–{max(a):.0f}] | "
              f"{statistics.median(b):.0f} [{min(b):.0f}–{max(b):.0f}] | "
              f"{statistics.median(b) / statistics.median(a):.2f} | {ca:.0f} | {cb:.0f} |")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
