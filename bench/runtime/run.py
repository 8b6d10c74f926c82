#!/usr/bin/env python3
"""kiln runtime benchmark: cost per system call (native / LD_PRELOAD wrapper /
Syscall User Dispatch trap) and `kiln run /bin/true` start-up overhead, measured
in one run. Writes bench/results/runtime.json and prints a table.

Usage: bench/runtime/run.py BUILD_DIR
"""
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_bench(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(r["op"], r["path"]): r["ns"] for r in map(json.loads, out.splitlines())}


def startup_ms(cmd, n=40):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build").resolve()
    kiln = str(build / "kiln")
    with tempfile.TemporaryDirectory() as tmp:
        exe = pathlib.Path(tmp) / "syscall_bench"
        subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench/runtime/syscall_bench.c")],
                       check=True)
        native = run_bench([str(exe)])
        kilned = run_bench([kiln, "run", "--sud", "on", "--", str(exe)])
        kilned_nosud = run_bench([kiln, "run", "--sud", "off", "--", str(exe)])
    rows = []
    for op in dict.fromkeys(k[0] for k in native):
        rows.append({
            "op": op,
            "native_ns": native[(op, "libc")],
            "preload_ns": kilned[(op, "libc")],
            "preload_nosud_ns": kilned_nosud[(op, "libc")],
            "sud_trap_ns": kilned[(op, "inline")],
        })
    start = {
        "native_ms": startup_ms(["/bin/true"]),
        "kiln_run_ms": startup_ms([kiln, "run", "--", "/bin/true"]),
        "kiln_run_sud_ms": startup_ms([kiln, "run", "--sud", "on", "--", "/bin/true"]),
    }
    start["overhead_ms"] = start["kiln_run_ms"] - start["native_ms"]
    result = {"syscalls": rows, "startup": start,
              "note": "dev mode (no attestation); ns per call, best of 5 rounds"}
    out = ROOT / "bench" / "results" / "runtime.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'call':22} {'native':>9} {'preload':>9} {'preload,':>9} {'SUD trap':>9}")
    print(f"{'':22} {'ns':>9} {'+SUD ns':>9} {'no SUD ns':>9} {'ns':>9}")
    for r in rows:
        print(f"{r['op']:22} {r['native_ns']:9.1f} {r['preload_ns']:9.1f} "
              f"{r['preload_nosud_ns']:9.1f} {r['sud_trap_ns']:9.1f}")
    print(f"\nstart-up /bin/true: native {start['native_ms']:.2f} ms, kiln run "
          f"{start['kiln_run_ms']:.2f} ms (+{start['overhead_ms']:.2f} ms), "
          f"kiln run --sud on {start['kiln_run_sud_ms']:.2f} ms")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
