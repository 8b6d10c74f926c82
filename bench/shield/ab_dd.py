#!/usr/bin/env python3
"""dd write + conv=fsync and cold read of MIB MiB: natively, with a base build's kiln
(e.g. main's) and with this build's, side by side in rounds (the order rotated
each round), so a change is measured against its base under the same load.
Prints each round and the ratios (median, min-max).

Usage: bench/shield/ab_dd.py BASE_KILN NEW_KILN [ROUNDS [MIB]] [--key NAME]
(--key: also store the rounds and ratios in bench/results/shield.json under NAME)"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run as sb  # noqa: E402  (volume, wait_server_gone, drop_caches)
store = None
if "--key" in sys.argv:
    i = sys.argv.index("--key")
    store = sys.argv[i + 1]
    del sys.argv[i:i + 2]
if len(sys.argv) < 3:
    sys.exit(__doc__)
main_k, new_k = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
mib = int(sys.argv[4]) if len(sys.argv) > 4 else 512
res = {"native": [], "main": [], "new": []}  # (write MB/s, read MB/s) per round
loads = []
names = ["native", "main", "new"]
for r in range(rounds):
    order = names[r % 3:] + names[:r % 3]
    load = os.getloadavg()[0]
    loads.append(load)
    row = {}
    for name in order:
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
            tmp = pathlib.Path(tmp)
            if name == "native":
                cmd, path = [], tmp / "f"
            else:
                k = main_k if name == "main" else new_k
                vol, key = sb.volume(k, tmp)
                cmd, path = [k, "run", "--volume", f"{vol}={key}", "--"], vol / "f"
            dd = ["dd", "if=/dev/zero", "bs=1M", f"count={mib}", "conv=fsync", "status=none"]
            t = time.perf_counter()
            subprocess.run(cmd + dd + [f"of={path}"], check=True, capture_output=True)
            w = mib / (time.perf_counter() - t)
            if name != "native":
                sb.wait_server_gone(vol)
            sb.drop_caches()
            t = time.perf_counter()
            subprocess.run(cmd + ["dd", f"if={path}", "of=/dev/null", "bs=1M", "status=none"],
                           check=True, capture_output=True)
            rd = mib / (time.perf_counter() - t)
            if name != "native":
                sb.wait_server_gone(vol)
            res[name].append((w, rd))
            row[name] = (w, rd)
    print(f"round {r} load {load:.1f}: " + "  ".join(f"{n} w {row[n][0]:.0f} r {row[n][1]:.0f} MB/s" for n in names), flush=True)


def med(xs):
    xs = sorted(xs)
    return f"{statistics.median(xs):.2f}x ({xs[0]:.2f}-{xs[-1]:.2f})"


ratios = {}
for i, what in ((0, "write"), (1, "cold read")):
    nat = [x[i] for x in res["native"]]
    for n in ("main", "new"):
        ratios[f"{what}: {n}/native"] = med([a[i]/b for a, b in zip(res[n], nat)])
    ratios[f"{what}: new/main"] = med([a[i]/b[i] for a, b in zip(res['new'], res['main'])])
for k, v in ratios.items():
    print(f"{k} {v}")
if store:
    out = pathlib.Path(__file__).resolve().parents[2] / "bench" / "results" / "shield.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data[store] = {"base": main_k, "new": new_k, "mib": mib, "loads": loads, "ratios": ratios,
                 "mb_s_write_read": res, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out.write_text(json.dumps(data, indent=2) + "\n")
