#!/usr/bin/env python3
"""Supervised writers (`kiln run --static=supervise`), two builds side by side,
alternating, ROUNDS rounds: busybox-static dd of 64 MiB (bs=4k) into a new
file; a rewrite of one 4 KiB block of it (conv=notrunc); the static musl
sqlite3: 100k inserts in 10 transactions, an index, 2k selects.

Usage: bench/static/rewrite.py BEFORE_BUILD AFTER_BUILD [ROUNDS]"""
import os, statistics, subprocess, sys, tempfile, time
BB = "/opt/kiln/busybox-static/bin/busybox"
SQ = "/opt/kiln/musl-sqlite3/bin/sqlite3-musl-static"
builds = {"before": os.path.join(sys.argv[1], "kiln"), "after": os.path.join(sys.argv[2], "kiln")}
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
TMP = tempfile.mkdtemp(prefix="kiln-rewrite-")
sql = "PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
for i in range(10):
    sql += ("BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<10000)"
            f" INSERT INTO t(v) SELECT hex(randomblob(16)) || x FROM c; COMMIT;")
sql += "CREATE INDEX tv ON t(v);"
sql += "".join(f"SELECT count(*) FROM t WHERE v > '{i:04x}';" for i in range(0, 2000, 1))
def run(kiln, root, *argv):
    t = time.perf_counter()
    subprocess.run([kiln, "run", "--static=supervise", "--volume", f"{root}/vol={root}/key", "--", *argv],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t
res = {}
for r in range(ROUNDS):
    order = list(builds.items()) if r % 2 == 0 else list(builds.items())[::-1]
    for b, kiln in order:
        root = f"{TMP}/{b}"
        subprocess.run(["rm", "-rf", root]); os.makedirs(root)
        subprocess.run([kiln, "fs", "init", f"{root}/vol", "--key-file", f"{root}/key"], capture_output=True, check=True)
        t1 = run(kiln, root, BB, "dd", "if=/dev/urandom", f"of={root}/vol/f", "bs=4k", "count=16384")
        t2 = run(kiln, root, BB, "dd", "if=/dev/zero", f"of={root}/vol/f", "bs=4k", "count=1", "seek=100", "conv=notrunc")
        t3 = run(kiln, root, SQ, f"{root}/vol/db", sql)
        for k, v in (("dd 64 MiB", t1), ("rewrite 1 block", t2), ("sqlite", t3)):
            res.setdefault(k, {}).setdefault(b, []).append(v)
        print(f"round {r+1} {b}: dd {t1:.2f}s rewrite {t2:.2f}s sqlite {t3:.2f}s", flush=True)
for k, d in res.items():
    ratios = [a / b for a, b in zip(d["before"], d["after"])]
    print(f"{k}: before median {statistics.median(d['before']):.2f}s, after {statistics.median(d['after']):.2f}s; "
          f"before/after median {statistics.median(ratios):.2f}x (spread {min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} rounds)")
print("load:", open("/proc/loadavg").read().split()[:3])
subprocess.run(["rm", "-rf", TMP])
