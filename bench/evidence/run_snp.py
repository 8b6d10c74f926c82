#!/usr/bin/env python3
"""bench/evidence (AMD): SEV-SNP report verifications per second on one core, with and
without the chain cache, next to the raw ECDSA P-384 verify rate (in process and from
`openssl speed ecdsap384`) measured in the same run. The work is done by
BUILD_DIR/bench/evidence/bench_snp, which writes the JSON and a Markdown table.

Usage: bench/evidence/run_snp.py --build BUILD_DIR [--seconds 6]
                                 [--out bench/results/evidence_snp.json]
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", default="6")
    ap.add_argument("--out", default="bench/results/evidence_snp.json")
    a = ap.parse_args()
    exe = os.path.join(a.build, "bench", "evidence", "bench_snp")
    if not os.access(exe, os.X_OK):
        print(f"bench/evidence: {exe} not built (run make)", file=sys.stderr)
        return 1
    env = dict(os.environ)
    env.setdefault("KILN_TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    return subprocess.run([exe, "--seconds", a.seconds, "--out", a.out], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
