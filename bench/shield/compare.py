#!/usr/bin/env python3
"""Two kiln builds side by side on the commit-bound workloads of the file shield
(issue 10): in every round each workload runs natively, under build A and under
build B, one after the other, so that the ratios of a round share the machine's
load. Reported per workload: kiln/native of each build (median, spread) and B/A.

  fsync     write 4 KiB at offset 0 + fdatasync, 100 per round: ms per fsync
  fsync1250 the same in a volume that also holds 1,250 small files (a metadata of
            ~200 KB, as a PostgreSQL data directory's: what a commit rewrites)
  sqlite4   4 concurrent sqlite3 writers (WAL), rows/s
  sqlite    100k inserts + index (bench/runtime), s
  sqlite2   the issue's two concurrent loops of 100 sqlite3 processes inserting
            a row each (bench/shield/run.py): rows/s, mostly start-up cost
  pgbench   TPC-B -c 8 (scale 10, -T SECS), tps

Usage: bench/shield/compare.py BUILD_A BUILD_B [--only NAME ...] [--rounds N]
       [--pg-secs S] [--key NAME]
Results go to bench/results/shield.json under --key (default "compare")."""
import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
# bench/shield/run.py under another name: it imports bench/runtime's run.py as "run".
_spec = importlib.util.spec_from_file_location("shield_run", ROOT / "bench/shield/run.py")
shield = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shield)
rtbench = shield.rtbench

FSYNC_PROG = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(fd, b"\0" * (1 << 20), 0)
os.fsync(fd)
page = os.urandom(4096)
t = time.perf_counter()
for i in range(100):
    os.pwrite(fd, page, 0)
    os.fdatasync(fd)
print((time.perf_counter() - t) * 1000 / 100)
"""


# Files beside the one the fsync loop writes (made and committed first).
FILL_PROG = r"""
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    fd = os.open(os.path.join(d, "s%05d" % i), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"x" * 100)
    os.close(fd)
fd = os.open(d, os.O_RDONLY)
os.fsync(fd)
"""


def fsync_once(kiln, tmp, others=0):
    """ms per write + fdatasync: native and under kiln (lower is better); others:
    small files made first in each directory."""
    out = {}
    plain = tmp / "plain"
    plain.mkdir()
    vol, key = shield.volume(kiln, tmp)
    for name, cmd, d in (("native", [], plain),
                         ("kiln", [kiln, "run", "--volume", f"{vol}={key}", "--"], vol)):
        if others:
            subprocess.run(cmd + [sys.executable, "-c", FILL_PROG, str(d), str(others)],
                           capture_output=True, text=True, check=True)
            if name == "kiln":
                shield.wait_server_gone(vol)
        p = subprocess.run(cmd + [sys.executable, "-c", FSYNC_PROG, str(d / "f")],
                           capture_output=True, text=True, check=True)
        out[name] = float(p.stdout.split()[-1])
    shield.wait_server_gone(vol)
    return out


def sqlite_loops_once(kiln, tmp):
    """rows/s of the two loops natively and under kiln (higher is better)."""
    r = shield.sqlite_loops_once(kiln, tmp)
    return {"native": r["native"]["rows_per_s"], "kiln": r["kiln"]["rows_per_s"],
            "errors": r["native"]["errors"] + r["kiln"]["errors"]}


def with_tmp(fn, kiln):
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        return fn(kiln, pathlib.Path(tmp))


def summary(vals):
    vals = sorted(vals)
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1],
            "rounds": len(vals)}


def main():
    ap = argparse.ArgumentParser(description="two kiln builds side by side")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--only", nargs="*", default=["fsync", "sqlite4", "sqlite", "pgbench"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-secs", type=int, default=20)
    ap.add_argument("--key", default="compare")
    args = ap.parse_args()
    builds = {"a": str(pathlib.Path(args.a).resolve() / "kiln"),
              "b": str(pathlib.Path(args.b).resolve() / "kiln")}
    # Each: (round function of a kiln path -> {"native": x, "kiln": y}, higher is better?)
    work = {
        "fsync": (lambda k: with_tmp(fsync_once, k), False),
        "fsync1250": (lambda k: with_tmp(lambda kk, t: fsync_once(kk, t, 1250), k), False),
        "sqlite4": (lambda k: with_tmp(shield.sqlite_writers_once, k), True),
        "sqlite": (lambda k: (lambda r: {"native": r["native_s"], "kiln": r["kiln_s"]})(
            rtbench.sqlite_bench(k, 1)), False),
        "sqlite2": (lambda k: with_tmp(sqlite_loops_once, k), True),
        "pgbench": (lambda k: shield.pgbench_once(k, 10, args.pg_secs), True),
    }
    res = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_start": open("/proc/loadavg").read().split()[:3],
           "a": args.a, "b": args.b, "rounds": args.rounds}
    for name in args.only:
        fn, higher = work[name]
        raw = []
        for r in range(args.rounds):
            # Alternate the order so that neither build always runs first.
            order = ("a", "b") if r % 2 == 0 else ("b", "a")
            got = {x: fn(builds[x]) for x in order}
            got["load"] = open("/proc/loadavg").read().split()[:3]  # after the round
            raw.append(got)
            print(name, r, json.dumps(got), flush=True)

        def ratio(x):
            return [(g[x]["kiln"] / g[x]["native"]) if higher else
                    (g[x]["native"] / g[x]["kiln"]) for g in raw]
        b_over_a = [(g["b"]["kiln"] / g["a"]["kiln"]) if higher else
                    (g["a"]["kiln"] / g["b"]["kiln"]) for g in raw]
        res[name] = {"higher_is_better": higher, "raw": raw,
                     "a_vs_native": summary(ratio("a")), "b_vs_native": summary(ratio("b")),
                     "b_speed_vs_a": summary(b_over_a)}
        print(name, json.dumps({k: v for k, v in res[name].items() if k != "raw"}), flush=True)
        # Saved after each workload: a later one that fails loses only itself.
        res["load_end"] = open("/proc/loadavg").read().split()[:3]
        out = ROOT / "bench" / "results" / "shield.json"
        data = json.loads(out.read_text()) if out.exists() else {}
        data[args.key] = res
        out.write_text(json.dumps(data, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
