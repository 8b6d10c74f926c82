#!/usr/bin/env python3
"""bench/cas: kiln-cas attestations per second and latency at 1, 16 and 64
concurrent clients, next to the bare mutual-TLS handshake + empty request rate of
the same server in the same run (loopback), plus the policy apply rate.

Each attestation is the runtime's flow on one fresh TLS connection with an
ephemeral client certificate: GET /v1/nonce, POST /v1/attest (sim evidence,
one secret substituted, an audit entry written and made durable).

Usage: bench/cas/run.py --kiln build/kiln --loadgen build/bench/cas/loadgen
                        [--seconds 5] [--out bench/results/cas.json]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "e2e"))
from cas_fixtures import CasServer  # noqa: E402

POLICY = """\
name: bench/attest
secrets:
  - {name: pw, kind: ascii}
services:
  - name: app
    command: [/bin/app, "{{secret.pw}}"]
    measurement: [any]
security: {tee: [sim], allow_insecure_sim: true}
"""


def loadgen(args, cas, ident, mode, threads):
    out = subprocess.run([args.loadgen, mode, "127.0.0.1", str(cas.port), cas.ca_file,
                          ident, str(threads), str(args.seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", default="bench/results/cas.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cas = CasServer(args.kiln, tmp).start()
        try:
            ident = os.path.join(tmp, "id.pem")
            subprocess.run([args.kiln, "identity", "create", "--out", ident], check=True,
                           capture_output=True)
            pol = os.path.join(tmp, "p.yaml")
            pathlib.Path(pol).write_text(POLICY)
            env = dict(os.environ, **cas.env(ident))
            subprocess.run([args.kiln, "policy", "apply", pol], env=env, check=True,
                           capture_output=True)
            rows = []
            for threads in (1, 16, 64):
                bare = loadgen(args, cas, ident, "bare", threads)
                att = loadgen(args, cas, ident, "attest", threads)
                rows.append({"clients": threads, "bare": bare, "attest": att,
                             "ratio": att["ops_per_s"] / bare["ops_per_s"]
                             if bare["ops_per_s"] else 0.0})
            apply = loadgen(args, cas, ident, "apply", 16)
            apply_ka = loadgen(args, cas, ident, "apply-ka", 16)
        finally:
            cas.stop()
    load = os.getloadavg()
    result = {"rows": rows, "apply": apply, "apply_keepalive": apply_ka, "loadavg": load,
              "cpus": os.cpu_count()}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    md = ["| clients | bare mTLS req/s | attest/s | ratio | attest p50 ms | attest p99 ms |"
          " bare p99 ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['clients']} | {r['bare']['ops_per_s']:.0f} | "
                  f"{r['attest']['ops_per_s']:.0f} | {r['ratio']:.2f} | "
                  f"{r['attest']['p50_ms']:.1f} | {r['attest']['p99_ms']:.1f} | "
                  f"{r['bare']['p99_ms']:.1f} |")
    md.append("")
    md.append(f"policy apply (16 clients, a new TLS connection each, like `kiln policy "
              f"apply`): {apply['ops_per_s']:.0f}/s, p50 {apply['p50_ms']:.1f} ms, "
              f"p99 {apply['p99_ms']:.1f} ms")
    md.append("")
    md.append(f"policy apply (16 clients, kept-alive connections): "
              f"{apply_ka['ops_per_s']:.0f}/s, p50 {apply_ka['p50_ms']:.1f} ms, "
              f"p99 {apply_ka['p99_ms']:.1f} ms")
    md.append("")
    md.append(f"load average during the run {load[0]:.1f} on {os.cpu_count()} CPUs "
              "(the machine is shared: compare ratios, not absolute numbers)")
    text = "\n".join(md) + "\n"
    pathlib.Path(args.out).with_suffix(".md").write_text(text)
    print(text)
    errors = sum(r["attest"]["errors"] + r["bare"]["errors"] for r in rows) + \
        apply["errors"] + apply_ka["errors"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
