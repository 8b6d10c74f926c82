#!/usr/bin/env python3
"""kiln-cc benchmark: one SQLite workload program (SQL on stdin, through
sqlite3_exec) built twice from one source, with cc and with kiln-cc, run side
by side in each round: natively on a plain directory, the cc build under
`kiln run --volume` (runtime preloaded) and the kiln-cc build under
`kiln run --volume` (runtime linked in). Reports each ratio as the median over
the rounds with its spread. Writes bench/results/cc.{json,md}.

Usage: bench/cc/run.py BUILD_DIR [--rounds N]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "runtime"))
from run import SQLITE_WORKLOAD  # noqa: E402  the workload bench/runtime measures

PROGRAM = r"""
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	size_t cap = 1 << 20, len = 0, n;
	char *sql = malloc(cap), *err = NULL;
	sqlite3 *db;

	while (sql && (n = fread(sql + len, 1, cap - len - 1, stdin)) > 0)
		if ((len += n) == cap - 1 && !(sql = realloc(sql, cap *= 2)))
			return 1;
	if (!sql || argc != 2 || sqlite3_open(argv[1], &db) != SQLITE_OK)
		return 1;
	sql[len] = '\0';
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s\n", err);
		return 1;
	}
	return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
}
"""


def timed(cmd, **kw):
    t0 = time.perf_counter()
    subprocess.run(cmd, input=SQLITE_WORKLOAD, text=True, check=True, capture_output=True,
                   **kw)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    build = pathlib.Path(args.build)
    kiln, kiln_cc = str(build / "kiln"), str(build / "kiln-cc")
    runs = {"native": [], "preload": [], "kiln_cc": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        src = tmp / "sqlw.c"
        src.write_text(PROGRAM)
        plain, linked = tmp / "sqlw-cc", tmp / "sqlw-kiln-cc"
        subprocess.run(["cc", "-O2", "-o", plain, src, "-lsqlite3"], check=True)
        subprocess.run([kiln_cc, "-O2", "-o", linked, src, "-lsqlite3"], check=True,
                       capture_output=True, env=dict(os.environ, KILN_CC_MEASURE="0"))
        for r in range(args.rounds):
            d = tmp / f"plain{r}"
            d.mkdir()
            runs["native"].append(timed([plain, d / "b.db"]))
            for name, prog in (("preload", plain), ("kiln_cc", linked)):
                vol, key = tmp / f"{name}{r}", tmp / f"{name}{r}.key"
                subprocess.run([kiln, "fs", "init", vol, "--key-file", key], check=True,
                               capture_output=True)
                runs[name].append(timed([kiln, "run", "--volume", f"{vol}={key}", "--", prog,
                                         vol / "b.db"]))
            print(f"round {r + 1}: native {runs['native'][-1]:.2f} s, preloaded "
                  f"{runs['preload'][-1]:.2f} s, kiln-cc {runs['kiln_cc'][-1]:.2f} s",
                  flush=True)

    def ratio(a, b):
        rs = [x / y for x, y in zip(runs[a], runs[b])]
        return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}

    res = {
        "workload": "SQLite: 100k inserts in 10 transactions, an index, 2,000 lookups "
                    "(bench/runtime's workload) through sqlite3_exec, DB on a volume",
        "rounds": args.rounds,
        "load": os.getloadavg()[0],
        "seconds_median": {k: statistics.median(v) for k, v in runs.items()},
        "kiln_cc_vs_preload": ratio("preload", "kiln_cc"),
        "preload_vs_native": ratio("native", "preload"),
        "kiln_cc_vs_native": ratio("native", "kiln_cc"),
    }
    out = ROOT / "bench" / "results"
    (out / "cc.json").write_text(json.dumps(res, indent=2) + "\n")
    rows = [("kiln-cc build vs preloaded build (target >= 1.0x)", res["kiln_cc_vs_preload"]),
            ("preloaded build vs native", res["preload_vs_native"]),
            ("kiln-cc build vs native", res["kiln_cc_vs_native"])]
    md = [f"# kiln-cc (bench/cc, {args.rounds} rounds side by side, load {res['load']:.1f})",
          "", res["workload"] + ". Speed ratio (higher is faster), median (min-max).", "",
          "| comparison | ratio |", "|---|---|"]
    md += [f"| {n} | {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f}) |" for n, r in rows]
    (out / "cc.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
