#!/usr/bin/env python3
"""The musl path against the glibc path (issue 13 target: musl >= 0.95x the
glibc path): the sqlite workload of bench/runtime (100k inserts in 10
transactions, an index, 2k indexed selects) on a protected volume, by sqlite3
built from one amalgamation with the same flags twice, with musl-gcc and gcc
(scripts/build-musl-sqlite3.sh), so the C library and the runtime build are
what differ. Each round runs the four side by side (native glibc, native musl,
glibc under libkiln.so, musl under libkiln-musl.so); ratios per round, the
median with the spread. Writes bench/results/musl.json and musl.md.

Usage: bench/musl/run.py BUILD_DIR [--rounds N]
"""
import argparse
import functools
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SQLITE_DIR = pathlib.Path(os.environ.get("KILN_MUSL_SQLITE3", "/opt/kiln/musl-sqlite3")) / "bin"
REDIS_DIR = pathlib.Path(os.environ.get("KILN_MUSL_REDIS", "/opt/kiln/musl-redis")) / "bin"


@functools.lru_cache(maxsize=None)
def runtime_bench():
    """bench/runtime/run.py as a module (loaded once): its sqlite workload and
    redis_rps (redis-benchmark, 50 clients, SET and GET)."""
    spec = importlib.util.spec_from_file_location("bench_runtime", ROOT / "bench" / "runtime" /
                                                  "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def workload():
    """The one sqlite workload of the runtime benchmark (bench/runtime/run.py)."""
    return runtime_bench().SQLITE_WORKLOAD


def timed(cmd, text):
    t0 = time.perf_counter()
    subprocess.run(cmd, input=text, text=True, check=True, capture_output=True)
    return time.perf_counter() - t0


def sqlite_rounds(kiln, rounds):
    sql = workload()
    progs = {"glibc": str(SQLITE_DIR / "sqlite3-glibc"), "musl": str(SQLITE_DIR / "sqlite3-musl")}
    for p in progs.values():
        if not os.access(p, os.X_OK):
            raise SystemExit(f"{p} missing: run scripts/build-musl-sqlite3.sh")
    t = {k: [] for k in ("native_glibc", "native_musl", "kiln_glibc", "kiln_musl")}
    # ignore_cleanup_errors: a volume server may still be removing its files.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        for r in range(rounds):
            # Alternate which goes first: the machine is shared.
            for libc, prog in sorted(progs.items(), reverse=bool(r % 2)):
                plain = tmp / f"plain-{libc}{r}"
                plain.mkdir()
                t[f"native_{libc}"].append(timed([prog, str(plain / "b.db")], sql))
                vol, key = tmp / f"vol-{libc}{r}", tmp / f"vol-{libc}{r}.key"
                subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)],
                               check=True, capture_output=True)
                t[f"kiln_{libc}"].append(timed([kiln, "run", "--volume", f"{vol}={key}", "--",
                                                prog, str(vol / "b.db")], sql))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in t.items()),
                  flush=True)

    def ratio(num, den):
        rs = [a / b for a, b in zip(t[num], t[den])]
        return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}
    return {"rounds": rounds, "seconds": {k: statistics.median(v) for k, v in t.items()},
            "raw_seconds": t,
            # throughput ratios: > 1 means the first is faster
            "musl_path_vs_glibc_path": ratio("kiln_glibc", "kiln_musl"),
            "musl_native_vs_glibc_native": ratio("native_glibc", "native_musl"),
            "glibc_path_vs_native": ratio("native_glibc", "kiln_glibc"),
            "musl_path_vs_native": ratio("native_musl", "kiln_musl")}


def redis_rounds(kiln, rounds):
    """redis-server from one source, built with gcc and musl-gcc
    (scripts/build-musl-redis.sh), AOF everysec on a protected volume under
    kiln run, against the same binary natively on a plain directory."""
    rps_of = runtime_bench().redis_rps
    progs = {"glibc": str(REDIS_DIR / "redis-server-glibc"),
             "musl": str(REDIS_DIR / "redis-server-musl")}
    for p in progs.values():
        if not os.access(p, os.X_OK):
            raise SystemExit(f"{p} missing: run scripts/build-musl-redis.sh")
    got = {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        for r in range(rounds):
            for libc, prog in sorted(progs.items(), reverse=bool(r % 2)):
                port = 20000 + (os.getpid() % 20000)
                base = [prog, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "yes", "--appendfsync", "everysec"]
                plain = tmp / f"plain-{libc}{r}"
                plain.mkdir()
                got.setdefault(f"native_{libc}", []).append(
                    rps_of(base + ["--dir", str(plain)], port))
                vol, key = tmp / f"vol-{libc}{r}", tmp / f"vol-{libc}{r}.key"
                subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)],
                               check=True, capture_output=True)
                got.setdefault(f"kiln_{libc}", []).append(
                    rps_of([kiln, "run", "--volume", f"{vol}={key}", "--"] + base +
                           ["--dir", str(vol)], port))
            print(f"redis round {r + 1}: " + ", ".join(
                f"{k} SET {v[-1].get('SET', 0):.0f}/s GET {v[-1].get('GET', 0):.0f}/s"
                for k, v in got.items()), flush=True)
    res = {"rounds": rounds, "raw_rps": got}
    for op in ("SET", "GET"):
        def ratio(num, den):
            rs = [a[op] / b[op] for a, b in zip(got[num], got[den]) if b.get(op)]
            return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}
        res[op] = {"musl_path_vs_glibc_path": ratio("kiln_musl", "kiln_glibc"),
                   "musl_native_vs_glibc_native": ratio("native_musl", "native_glibc"),
                   "glibc_path_vs_native": ratio("kiln_glibc", "native_glibc"),
                   "musl_path_vs_native": ratio("kiln_musl", "native_musl")}
    return res


def main():
    ap = argparse.ArgumentParser(description="kiln musl path benchmark")
    ap.add_argument("build", nargs="?", default=str(ROOT / "build"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    kiln = str(pathlib.Path(args.build).resolve() / "kiln")
    load = os.getloadavg()[0]
    res = sqlite_rounds(kiln, args.rounds)
    res["redis"] = redis_rounds(kiln, args.rounds)
    res["load_before"] = load
    out = ROOT / "bench" / "results" / "musl.json"
    out.write_text(json.dumps(res, indent=2) + "\n")

    def fmt(r):
        return f"{r['median']:.2f}x (spread {r['min']:.2f}-{r['max']:.2f})"
    s = res["seconds"]
    md = ["sqlite3 (one amalgamation, built with gcc and with musl-gcc) 100k inserts + 2k "
          f"indexed selects on a protected volume, median of {res['rounds']} side-by-side "
          f"rounds (load {load:.1f} before the run):", "",
          "| | glibc | musl |", "|---|---:|---:|",
          f"| native s | {s['native_glibc']:.3f} | {s['native_musl']:.3f} |",
          f"| kiln run --volume s | {s['kiln_glibc']:.3f} | {s['kiln_musl']:.3f} |", "",
          f"musl path vs glibc path (throughput): {fmt(res['musl_path_vs_glibc_path'])} "
          "(target >= 0.95x)",
          f"musl native vs glibc native: {fmt(res['musl_native_vs_glibc_native'])} (the C "
          "libraries alone)",
          f"glibc path vs native: {fmt(res['glibc_path_vs_native'])}; musl path vs native: "
          f"{fmt(res['musl_path_vs_native'])}", "",
          "redis-server (one source, built with gcc and with musl-gcc), redis-benchmark "
          f"-c 50 -n 100000, AOF everysec, {res['redis']['rounds']} side-by-side rounds "
          "(requests/s ratios, > 1: the first is faster):", "",
          "| | musl path / glibc path (target >= 0.95x) | musl native / glibc native | "
          "glibc path / native | musl path / native |", "|---|---|---|---|---|"]
    for op in ("SET", "GET"):
        r = res["redis"][op]
        md.append(f"| {op} | {fmt(r['musl_path_vs_glibc_path'])} | "
                  f"{fmt(r['musl_native_vs_glibc_native'])} | "
                  f"{fmt(r['glibc_path_vs_native'])} | {fmt(r['musl_path_vs_native'])} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
