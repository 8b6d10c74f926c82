#!/usr/bin/env python3
"""Start-up cost of a program under `kiln run` (docs/runtime.md, "Start-up cost
of kiln run"): wall time of three commands, natively and under one or two kiln
builds, each round running every case of every build once, alternately (the
order turns every round), so that builds compared share the machine's load.

  true     kiln run -- /bin/true
  volume   kiln run --volume V=KEY -- /bin/true
  sqlite   kiln run --volume V=KEY -- sqlite3 V/x.db "select 1;"
  version  kiln --version (no program: a command the kiln front hands to
           kiln-tool, what its extra exec costs the other commands)

Usage: bench/runtime/startup.py BUILD_A [BUILD_B] [--rounds N] [--key NAME]
Prints per case and build the median ms with its spread (min, max) and, with
two builds, B/A per round; writes bench/results/startup.json under --key
(default "startup": one build, `make bench`; "compare": two)."""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SQL = "select 1;"


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def timed_ms(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit(f"startup.py: {' '.join(cmd)}: exit {p.returncode}: {p.stderr.decode()[-400:]}")
    return ms


def wait_server_gone(vol):
    """Not timed: a volume server that has not yet gone would serve the next run."""
    for _ in range(2000):
        if not (vol / ".kiln" / "server").exists():
            return
        time.sleep(0.005)


def summary(vals):
    s = sorted(vals)
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "n": len(s)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("builds", nargs="+", help="one or two kiln build directories")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--key", default=None)
    args = ap.parse_args()
    if len(args.builds) > 2:
        ap.error("at most two builds")
    sqlite = shutil.which("sqlite3")
    if not sqlite:
        sys.exit("startup.py: sqlite3 not found (scripts/install-deps.sh installs it)")
    names = ["a", "b"][:len(args.builds)]
    kilns = {n: str(pathlib.Path(b).resolve() / "kiln") for n, b in zip(names, args.builds)}
    times = {}  # (build, case) -> [ms]
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="kiln-startup-") as tmp:
        tmp = pathlib.Path(tmp)
        cmds = {"native": {"true": ["/bin/true"], "sqlite": [sqlite, str(tmp / "x.db"), SQL]}}
        vols = {}
        for n, k in kilns.items():
            vol, key = tmp / f"vol-{n}", tmp / f"vol-{n}.key"
            subprocess.run([k, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                           capture_output=True)
            vols[n] = vol
            run_v = [k, "run", "--volume", f"{vol}={key}", "--"]
            cmds[n] = {"true": [k, "run", "--", "/bin/true"],
                       "volume": run_v + ["/bin/true"],
                       "sqlite": run_v + [sqlite, str(vol / "x.db"), SQL],
                       "version": [k, "--version"]}
        # One untimed run of each (page cache, the database files made).
        for n, cases in cmds.items():
            for cmd in cases.values():
                timed_ms(cmd)
                if n in vols:
                    wait_server_gone(vols[n])
        order = list(cmds)
        for r in range(args.rounds):
            for n in (order if r % 2 == 0 else order[::-1]):
                for case, cmd in cmds[n].items():
                    times.setdefault((n, case), []).append(timed_ms(cmd))
                    if n in vols:
                        wait_server_gone(vols[n])
    res = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_start": load_start, "load_end": loadavg(), "rounds": args.rounds,
           "builds": dict(zip(names, args.builds)), "cases": {}}
    for (n, case), vals in sorted(times.items()):
        res["cases"].setdefault(case, {})[n] = summary(vals)
    if len(names) == 2:
        for case in ("true", "volume", "sqlite", "version"):
            a, b = times[("a", case)], times[("b", case)]
            res["cases"][case]["b_over_a"] = summary([y / x for x, y in zip(a, b)])
    for case, per in res["cases"].items():
        print(case, json.dumps(per), flush=True)
    print("load", load_start, "->", res["load_end"])
    key = args.key or ("compare" if len(names) == 2 else "startup")
    out = ROOT / "bench" / "results" / "startup.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data[key] = res
    out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
