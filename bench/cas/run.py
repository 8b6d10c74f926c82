#!/usr/bin/env python3
"""bench/cas: kiln-cas attestations per second and latency at 1, 16 and 64
concurrent clients, next to the bare mutual-TLS handshake + empty request rate of
the same server in the same run (loopback), plus the policy apply rate.

Each attestation is the runtime's flow on one fresh TLS connection with an
ephemeral client certificate: GET /v1/nonce, POST /v1/attest (sim evidence,
one secret substituted, an audit entry written and made durable).

The server runs with each --threads value given (default: 1 and the default of
one event loop per CPU), and every configuration is measured --repeat times,
interleaved so that all see the same machine load; the tables give the median and
the spread (min-max) of the runs. The machine is shared: compare ratios measured in
the same run, not absolute numbers across runs.

Usage: bench/cas/run.py --kiln build/kiln --loadgen build/bench/cas/loadgen
                        [--seconds 4] [--repeat 3] [--threads 1,default]
                        [--out bench/results/cas.json]
"""
import argparse
import json
import os
import pathlib
import statistics
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


def cpu_seconds(pid, reaped=False):
    """User + system CPU time of a process (all its threads); with reaped, also
    of the children it has waited for (PostgreSQL backends that have exited)."""
    f = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def loadgen(args, cas, ident, mode, threads):
    before = cpu_seconds(cas.proc.pid)
    out = subprocess.run([args.loadgen, mode, "127.0.0.1", str(cas.port), cas.ca_file,
                          ident, str(threads), str(args.seconds)],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    # Server CPU per operation: what the service costs, whatever else runs.
    r["server_cpu_us"] = (cpu_seconds(cas.proc.pid) - before) / max(r["ops"], 1) * 1e6
    return r


def one_run(args, threads):
    """All measurements against one fresh server with --threads threads."""
    extra = [] if threads == "default" else ["--threads", threads]
    with tempfile.TemporaryDirectory() as tmp:
        cas = CasServer(args.kiln, tmp, extra).start()
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
            for clients in (1, 16, 64):
                bare = loadgen(args, cas, ident, "bare", clients)
                att = loadgen(args, cas, ident, "attest", clients)
                rows.append({"clients": clients, "bare": bare, "attest": att,
                             "ratio": att["ops_per_s"] / bare["ops_per_s"]
                             if bare["ops_per_s"] else 0.0})
            apply = loadgen(args, cas, ident, "apply", 16)
            apply_ka = loadgen(args, cas, ident, "apply-ka", 16)
        finally:
            cas.stop()
    return {"threads": threads, "rows": rows, "apply": apply, "apply_keepalive": apply_ka,
            "loadavg": os.getloadavg()[0]}


def spread(values, fmt):
    """'median [min-max]' of a list of numbers."""
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return (fmt + " [" + fmt + "–" + fmt + "]").format(med, min(values), max(values))


def table(runs):
    md = ["| clients | bare mTLS req/s | attest/s | ratio | attest p50 ms | attest p99 ms |"
          " bare p99 ms | server CPU µs per bare / attest |", "|---|---|---|---|---|---|---|---|"]
    for i, clients in enumerate((1, 16, 64)):
        rs = [r["rows"][i] for r in runs]
        md.append(f"| {clients} | {spread([r['bare']['ops_per_s'] for r in rs], '{:.0f}')} | "
                  f"{spread([r['attest']['ops_per_s'] for r in rs], '{:.0f}')} | "
                  f"{spread([r['ratio'] for r in rs], '{:.2f}')} | "
                  f"{spread([r['attest']['p50_ms'] for r in rs], '{:.1f}')} | "
                  f"{spread([r['attest']['p99_ms'] for r in rs], '{:.1f}')} | "
                  f"{spread([r['bare']['p99_ms'] for r in rs], '{:.1f}')} | "
                  f"{statistics.median([r['bare']['server_cpu_us'] for r in rs]):.0f} / "
                  f"{statistics.median([r['attest']['server_cpu_us'] for r in rs]):.0f} |")
    md.append("")
    for key, what in (("apply", "a new TLS connection each, like `kiln policy apply`"),
                      ("apply_keepalive", "kept-alive connections")):
        md.append(f"policy apply (16 clients, {what}): "
                  f"{spread([r[key]['ops_per_s'] for r in runs], '{:.0f}')}/s, "
                  f"p50 {spread([r[key]['p50_ms'] for r in runs], '{:.1f}')} ms, "
                  f"p99 {spread([r[key]['p99_ms'] for r in runs], '{:.1f}')} ms, server CPU "
                  f"{statistics.median([r[key]['server_cpu_us'] for r in runs]):.0f} µs "
                  "per apply")
        md.append("")
    return md


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1,default",
                    help="comma-separated --threads values; 'default' = one per CPU")
    ap.add_argument("--out", default="bench/results/cas.json")
    args = ap.parse_args()
    configs = args.threads.split(",")
    runs = {c: [] for c in configs}
    for _ in range(args.repeat):
        for c in configs:
            runs[c].append(one_run(args, c))
    load = os.getloadavg()
    result = {"configs": runs, "seconds": args.seconds, "repeat": args.repeat,
              "loadavg": load, "cpus": os.cpu_count()}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    md = [f"kiln-cas, {args.repeat} runs of {args.seconds:g} s per measurement per "
          "configuration (interleaved); each cell is the median [min–max] of the runs.", ""]
    for c in configs:
        name = f"one event loop per CPU ({os.cpu_count()})" if c == "default" else \
            f"--threads {c}"
        md.append(f"### {name}")
        md.append("")
        md.extend(table(runs[c]))
    loads = [r["loadavg"] for c in configs for r in runs[c]]
    md.append(f"load average during the runs {min(loads):.1f}–{max(loads):.1f} on "
              f"{os.cpu_count()} CPUs, load generator on the same CPUs (the machine is "
              "shared: compare ratios, not absolute numbers)")
    text = "\n".join(md) + "\n"
    pathlib.Path(args.out).with_suffix(".md").write_text(text)
    print(text)
    errors = sum(r["attest"]["errors"] + r["bare"]["errors"]
                 for c in configs for run in runs[c] for r in run["rows"]) + \
        sum(run["apply"]["errors"] + run["apply_keepalive"]["errors"]
            for c in configs for run in runs[c])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
