#!/usr/bin/env python3
"""File shield v2 benchmarks (issue 10): each workload natively and on a protected
volume under kiln run, side by side in one run, repeated; ratios reported as the
median with the spread. Writes bench/results/shield.json and shield.md.

  head -c 10 of a 512 MiB file; two loops of 100 sqlite3 inserts (the issue's table)
  pgbench TPC-B -c 8 (scale 10)         target >= 0.6x native tps (kiln fs mount beside)
  sqlite 100k inserts + index; 4 writers    >= 0.8x; >= 0.6x
  dd 512 MiB write + fsync; cold read       >= 0.8x each (gocryptfs as a peer)
  open + read 10 bytes of a 4 GiB file      <= 5 ms; plaintext while streaming it
                                            <= cache + 64 MiB
  redis AOF, nginx 4 KiB                    >= 0.9x each (bench/runtime's code)

Usage: bench/shield/run.py BUILD_DIR [--only NAME ...] [--rounds N] [--quick]
(--quick: smaller sizes, for a smoke run.)"""
import argparse
import functools
import json
import os
import pathlib
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "runtime"))
import run as rtbench  # noqa: E402  (sqlite, redis and nginx of bench/runtime)

PGBIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def spread(pairs):
    """pairs of (native, kiln) values where higher is better: ratios."""
    ratios = sorted(k / n for n, k in pairs if n)
    return {"ratio": statistics.median(ratios), "min": ratios[0], "max": ratios[-1],
            "rounds": len(ratios), "pairs": pairs}


def volume(kiln, root, owner=None):
    vol, key = root / "vol", root / "vol.key"
    cmd = [kiln, "fs", "init", str(vol), "--key-file", str(key)]
    if owner:
        cmd = ["runuser", "-u", owner, "--"] + cmd
    subprocess.run(cmd, check=True, capture_output=True)
    return vol, key


def wait_server_gone(vol):
    """The volume server exits (after a final commit) once its last client has
    gone: wait for it (up to 60 s) before the next step or the clean-up."""
    for _ in range(6000):
        if not (vol / ".kiln" / "server").exists():
            return
        time.sleep(0.01)


def drop_caches():
    subprocess.run(["sync"])
    try:
        pathlib.Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


# ---- dd -----------------------------------------------------------------------
def dd_once(kiln, tmp, mib):
    out = {}
    plain = tmp / "plain"
    plain.mkdir()
    vol, key = volume(kiln, tmp)
    dd = ["dd", "if=/dev/zero", "bs=1M", f"count={mib}", "conv=fsync", "status=none"]
    for name, cmd, path in (("native", [], plain / "f"),
                            ("kiln", [kiln, "run", "--volume", f"{vol}={key}", "--"], vol / "f")):
        t = time.perf_counter()
        subprocess.run(cmd + dd + [f"of={path}"], check=True, capture_output=True)
        out[name + "_write_mbs"] = mib / (time.perf_counter() - t)
        wait_server_gone(vol)
        cold = drop_caches()
        t = time.perf_counter()
        subprocess.run(cmd + ["dd", f"if={path}", "of=/dev/null", "bs=1M", "status=none"],
                       check=True, capture_output=True)
        out[name + "_read_mbs"] = mib / (time.perf_counter() - t)
        out["cold"] = cold
        wait_server_gone(vol)
    shutil.rmtree(plain)
    shutil.rmtree(vol)
    return out


def dd_bench(kiln, rounds, mib):
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
            runs.append(dd_once(kiln, pathlib.Path(tmp), mib))
    return {"mib": mib,
            "write": spread([(r["native_write_mbs"], r["kiln_write_mbs"]) for r in runs]),
            "read": spread([(r["native_read_mbs"], r["kiln_read_mbs"]) for r in runs]),
            "cold": all(r["cold"] for r in runs)}


# ---- the big file -----------------------------------------------------------------
BIG_HEAD = ("import os, sys, time\nt = time.perf_counter()\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\nos.pread(fd, 10, int(sys.argv[2]))\n"
            "print('%.3f' % ((time.perf_counter() - t) * 1000))\n")


def bigfile_bench(kiln, gib, cache_mib):
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        vol, key = volume(kiln, tmp)
        env = dict(os.environ, KILN_FILE_CACHE=f"64:{cache_mib}", KILN_SHIELD_STATS="1")
        size = gib << 30
        run = [kiln, "run", "--volume", f"{vol}={key}", "--"]
        subprocess.run(run + ["dd", "if=/dev/urandom", f"of={vol}/big", "bs=1M",
                              f"count={gib * 1024}", "conv=fsync", "status=none"],
                       check=True, env=env, capture_output=True)
        wait_server_gone(vol)
        drop_caches()
        heads = []
        for _ in range(5):
            p = subprocess.run(run + [sys.executable, "-c", BIG_HEAD, f"{vol}/big",
                                      str(size - 10)], check=True, env=env,
                               capture_output=True, text=True)
            heads.append(float(p.stdout))
            wait_server_gone(vol)
        t = time.perf_counter()
        subprocess.run(run + ["dd", f"if={vol}/big", "of=/dev/null", "bs=1M", "status=none"],
                       check=True, env=env, capture_output=True)
        secs = time.perf_counter() - t
        wait_server_gone(vol)
        log = (vol / ".kiln" / "server.log").read_text().splitlines()
        peak = int(re.search(r"plaintext peak (\d+) KiB", [ln for ln in log if "peak" in ln][-1])
                   .group(1))
    return {"gib": gib, "cache_mib": cache_mib, "open_read10_ms": heads,
            "open_read10_ms_median": statistics.median(heads), "stream_mbs": gib * 1024 / secs,
            "peak_plaintext_mib": peak / 1024}


# ---- sqlite: 4 concurrent writers ---------------------------------------------------
def sqlite_writers_once(kiln, tmp, rows=400):
    sqlite = shutil.which("sqlite3")
    out = {}
    plain = tmp / "plain"
    plain.mkdir()
    vol, key = volume(kiln, tmp)
    for name, cmd, d in (("native", [], plain),
                         ("kiln", [kiln, "run", "--volume", f"{vol}={key}", "--"], vol)):
        db = d / "w.db"
        subprocess.run(cmd + [sqlite, str(db)], input="PRAGMA journal_mode=WAL;\n"
                       "CREATE TABLE t(w, i, v);\n", text=True, check=True, capture_output=True)
        script = lambda w: ".timeout 30000\n" + "".join(  # noqa: E731
            f"INSERT INTO t VALUES ({w}, {i}, printf('%0100d', {i}));\n" for i in range(rows))
        t = time.perf_counter()
        procs = [subprocess.Popen(cmd + [sqlite, str(db)], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
                 for _ in range(4)]
        for w, p in enumerate(procs):
            p.stdin.write(script(w))
            p.stdin.close()
        for p in procs:
            p.wait()
        out[name] = 4 * rows / (time.perf_counter() - t)
        wait_server_gone(vol)
    return out


def sqlite_writers_bench(kiln, rounds):
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
            runs.append(sqlite_writers_once(kiln, pathlib.Path(tmp)))
    return spread([(r["native"], r["kiln"]) for r in runs])


# ---- the table: head -c 10 of 512 MiB, two sqlite3 loops ---------------------
def run_timed(cmd, **kw):
    """Wall seconds and the max RSS (KiB) of cmd's process tree (GNU time)."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, **kw)
    secs = time.perf_counter() - t
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    return secs, int(err.strip().splitlines()[-1]), p.stdout


def head_once(kiln, tmp, mib):
    plain = tmp / "plain"
    plain.mkdir()
    vol, key = volume(kiln, tmp)
    env = dict(os.environ, KILN_SHIELD_STATS="1")
    out = {}
    for name, cmd, d in (("native", [], plain),
                         ("kiln", [kiln, "run", "--volume", f"{vol}={key}", "--"], vol)):
        subprocess.run(cmd + ["dd", "if=/dev/urandom", f"of={d}/f", "bs=1M", f"count={mib}",
                              "conv=fsync", "status=none"], check=True, capture_output=True)
        wait_server_gone(vol)
        # Warm: the ciphertext (or plaintext) in the host's page cache, as in the issue.
        subprocess.run(["cat", f"{d}/f"] if name == "native" else
                       ["sh", "-c", f"cat {vol}/.kiln/* > /dev/null"], stdout=subprocess.DEVNULL)
        secs, rss, got = run_timed(cmd + ["head", "-c", "10", f"{d}/f"], env=env)
        out[name] = {"ms": secs * 1000, "rss_kib": rss}
        wait_server_gone(vol)
    log = (vol / ".kiln" / "server.log").read_text().splitlines()
    line = [ln for ln in log if "plaintext peak" in ln][-1]
    out["kiln"]["server_fill_chunks"] = int(re.search(r"fills of (\d+) chunks", line).group(1))
    out["kiln"]["server_peak_kib"] = int(re.search(r"plaintext peak (\d+) KiB", line).group(1))
    # kiln run alone (no volume file touched): the launcher's own start-up cost.
    secs, _, _ = run_timed([kiln, "run", "--volume", f"{vol}={key}", "--", "true"])
    out["kiln_run_true_ms"] = secs * 1000
    return out


def head_bench(kiln, rounds, mib):
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
            runs.append(head_once(kiln, pathlib.Path(tmp), mib))
    return {"mib": mib, "runs": runs,
            "native_ms": statistics.median(r["native"]["ms"] for r in runs),
            "kiln_ms": statistics.median(r["kiln"]["ms"] for r in runs),
            "kiln_true_ms": statistics.median(r["kiln_run_true_ms"] for r in runs),
            "kiln_rss_kib": max(r["kiln"]["rss_kib"] for r in runs),
            "kiln_fill_chunks": max(r["kiln"]["server_fill_chunks"] for r in runs),
            "kiln_server_peak_kib": max(r["kiln"]["server_peak_kib"] for r in runs)}


def sqlite_loops_once(kiln, tmp, n=100):
    """The issue's case: two concurrent shell loops of n `sqlite3 -cmd ".timeout 5000" db
    "insert ..."` processes on one database (rollback journal, a process per row)."""
    sqlite = shutil.which("sqlite3")
    plain = tmp / "plain"
    plain.mkdir()
    vol, key = volume(kiln, tmp)
    out = {}
    for name, cmd, d in (("native", [], plain),
                         ("kiln", [kiln, "run", "--volume", f"{vol}={key}", "--"], vol)):
        db = d / "l.db"
        subprocess.run(cmd + [sqlite, str(db), "CREATE TABLE t(w, i);"], check=True,
                       capture_output=True)
        loop = (f'for i in $(seq {n}); do {sqlite} -cmd ".timeout 5000" {db} '
                f'"INSERT INTO t VALUES ($1, $i);" || echo FAIL >&2; done')
        t = time.perf_counter()
        procs = [subprocess.Popen(cmd + ["sh", "-c", loop, "sh", str(w)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for w in range(2)]
        errs = "".join(p.communicate()[1] for p in procs)
        secs = time.perf_counter() - t
        rows = subprocess.run(cmd + [sqlite, str(db), "SELECT count(*) FROM t; "
                                     "PRAGMA integrity_check;"], capture_output=True, text=True)
        out[name] = {"secs": secs, "rows_per_s": 2 * n / secs,
                     "errors": errs.count("FAIL"),
                     "result": rows.stdout.split()}
        wait_server_gone(vol)
    return out


def sqlite_loops_bench(kiln, rounds):
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
            runs.append(sqlite_loops_once(kiln, pathlib.Path(tmp)))
    res = spread([(r["native"]["rows_per_s"], r["kiln"]["rows_per_s"]) for r in runs])
    res["runs"] = runs
    return res


# ---- pgbench ------------------------------------------------------------------------
def pg_tps(run, root, data, scale, clients, secs, attach=None):
    """tps of pgbench -c CLIENTS for SECS after pgbench -i -s SCALE; attach: called
    between the two (a profiler), returns what to call once the run is over."""
    pg = lambda *a, **kw: subprocess.run(  # noqa: E731
        ["runuser", "-u", "postgres", "--", *run, *map(str, a)], capture_output=True, text=True,
        **kw)
    r = pg(PGBIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres")
    assert r.returncode == 0, r.stderr
    r = pg(PGBIN / "pg_ctl", "-D", data, "-l", root / "log", "-o",
           f"-k {root} -c listen_addresses=''", "-w", "start", stdout=None)
    assert r.returncode == 0, r.stderr
    try:
        assert pg(PGBIN / "pgbench", "-h", root, "-i", "-s", scale, "postgres").returncode == 0
        detach = attach() if attach else None
        try:
            r = pg(PGBIN / "pgbench", "-h", root, "-c", clients, "-j", 2, "-T", secs, "postgres")
        finally:
            if detach:
                detach()
        return float(re.search(r"tps = ([\d.]+)", r.stdout).group(1))
    finally:
        pg(PGBIN / "pg_ctl", "-D", data, "-w", "-m", "fast", "stop")


def mount_volume(kiln, vol, key, mnt, owner):
    """kiln fs mount VOL MNT as OWNER (FUSE, foreground); returns the process."""
    mnt.mkdir()
    os.chown(mnt, pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)
    proc = subprocess.Popen(["runuser", "-u", owner, "--", kiln, "fs", "mount", str(vol),
                             str(mnt), "--key-file", str(key), "-f"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Not os.path.ismount: a mount without allow_other is closed to root too.
    for _ in range(400):
        if f" {mnt} " in open("/proc/self/mountinfo").read():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("kiln fs mount did not appear")


def unmount(mnt, proc):
    subprocess.run(["fusermount3", "-u", str(mnt)])
    proc.wait(timeout=120)


def pgbench_once(kiln, scale, secs, views=("native", "kiln")):
    out = {}
    for name in views:
        root = pathlib.Path(tempfile.mkdtemp(prefix="kiln-pgb-"))
        try:
            root.chmod(0o755)
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            if name == "native":
                out[name] = pg_tps([], root, root / "data", scale, 8, secs)
            elif name == "mount":
                # PostgreSQL refuses root, and a mount by root does not let
                # postgres own its data directory: postgres mounts the volume
                # itself, which needs /dev/fuse open to it (Debian's default
                # mode 0666; some containers make it 0600 for the benchmark's
                # minutes only, then restored).
                vol, key = volume(kiln, root, owner="postgres")
                mnt = root / "mnt"
                mode = os.stat("/dev/fuse").st_mode & 0o777
                os.chmod("/dev/fuse", mode | 0o666)
                try:
                    proc = mount_volume(kiln, vol, key, mnt, "postgres")
                    try:
                        out[name] = pg_tps([], root, mnt / "data", scale, 8, secs)
                    finally:
                        unmount(mnt, proc)
                finally:
                    os.chmod("/dev/fuse", mode)
            else:
                vol, key = volume(kiln, root, owner="postgres")
                out[name] = pg_tps([kiln, "run", "--volume", f"{vol}={key}", "--"], root,
                                   vol / "data", scale, 8, secs)
                wait_server_gone(vol)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return out


def pgbench_bench(kiln, rounds, scale, secs):
    if not (PGBIN / "postgres").exists() or os.geteuid() != 0:
        return None
    runs = [pgbench_once(kiln, scale, secs, ("native", "kiln", "mount"))
            for _ in range(rounds)]
    res = spread([(r["native"], r["kiln"]) for r in runs])
    res["vs_mount"] = spread([(r["mount"], r["kiln"]) for r in runs])
    res["mount_vs_native"] = spread([(r["native"], r["mount"]) for r in runs])
    return res


def main():
    ap = argparse.ArgumentParser(description="kiln file shield v2 benchmarks")
    ap.add_argument("build", nargs="?", default=str(ROOT / "build"))
    ap.add_argument("--only", nargs="*", default=None,
                    choices=["head", "sqlite2", "pgbench", "sqlite", "sqlite4", "dd", "bigfile",
                             "redis", "nginx"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--table-only", action="store_true",
                    help="rewrite bench/results/shield.md from shield.json; run nothing")
    args = ap.parse_args()
    kiln = str(pathlib.Path(args.build).resolve() / "kiln")
    want = set(args.only or ["head", "sqlite2", "pgbench", "sqlite", "sqlite4", "dd", "bigfile",
                             "redis", "nginx"])
    q = args.quick
    # The volume server may still make its last commit when a workload of
    # bench/runtime removes its temporary directory: that is no failure.
    tempfile.TemporaryDirectory = functools.partial(tempfile.TemporaryDirectory,
                                                    ignore_cleanup_errors=True)
    out = ROOT / "bench" / "results" / "shield.json"
    # --only updates the named workloads of the last results (each keeps the
    # time and load average of its own run).
    res = {}
    if (args.only or args.table_only) and out.exists():
        res = json.loads(out.read_text())
    if args.table_only:
        want = set()
    else:
        res["uptime"] = open("/proc/loadavg").read().split()[:3]
    steps = [
        ("head", lambda: head_bench(kiln, args.rounds, 64 if q else 512)),
        ("sqlite2", lambda: sqlite_loops_bench(kiln, args.rounds)),
        ("pgbench", lambda: pgbench_bench(kiln, args.rounds, 2 if q else 10, 10 if q else 30)),
        ("sqlite", lambda: rtbench.sqlite_bench(kiln, max(args.rounds, 3))),
        ("sqlite4", lambda: sqlite_writers_bench(kiln, args.rounds)),
        ("dd", lambda: dd_bench(kiln, args.rounds, 64 if q else 512)),
        ("bigfile", lambda: bigfile_bench(kiln, 1 if q else 4, 256)),
        ("redis", lambda: rtbench.redis_bench(kiln)),
        ("nginx", lambda: rtbench.nginx_rounds(kiln, args.rounds, lambda line: None)),
    ]
    for name, fn in steps:
        if name in want:
            print(f"== {name}", flush=True)
            load = open("/proc/loadavg").read().split()[:3]
            res[name] = fn()
            if isinstance(res[name], dict):
                res[name]["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                res[name]["load"] = load
            print(json.dumps(res[name], indent=1, default=str)[:2000], flush=True)
            # After each workload: a later failure loses nothing measured.
            out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = [f"load average at the last start: {' '.join(res['uptime'])}", "",
          "| workload | kiln / native (median, spread, rounds) | target |", "|---|---|---|"]

    def row(label, r, target):
        if r:
            md.append(f"| {label} | {r['ratio']:.2f}x ({r['min']:.2f}-{r['max']:.2f}, "
                      f"{r['rounds']}) | {target} |")
    h = res.get("head")
    if h:
        md.append(f"| head -c 10 of a {h['mib']} MiB file (warm), wall | {h['kiln_ms']:.1f} ms "
                  f"(native {h['native_ms']:.1f} ms; kiln run of true {h['kiln_true_ms']:.1f} ms);"
                  f" max RSS {h['kiln_rss_kib'] // 1024} MiB, {h['kiln_fill_chunks']} chunks "
                  f"decrypted, server plaintext {h['kiln_server_peak_kib']} KiB | "
                  "issue: was 3.35 s, 532 MB |")
    s2 = res.get("sqlite2")
    if s2:
        errs = sum(r["kiln"]["errors"] for r in s2["runs"])
        rows = [r["kiln"]["result"] for r in s2["runs"]]
        md.append(f"| two loops of 100 sqlite3 processes inserting, rows/s | {s2['ratio']:.2f}x "
                  f"({s2['min']:.2f}-{s2['max']:.2f}, {s2['rounds']}); {errs} errors; "
                  f"count, integrity: {rows} | issue: 52 of 200 failed |")
    row("pgbench TPC-B -c 8, tps", res.get("pgbench"), ">= 0.6x")
    if res.get("pgbench"):
        row("pgbench TPC-B -c 8, kiln run / kiln fs mount", res["pgbench"]["vs_mount"], "-")
        row("pgbench TPC-B -c 8, kiln fs mount / native", res["pgbench"]["mount_vs_native"], "-")
    s = res.get("sqlite")
    if s:
        md.append(f"| sqlite 100k inserts + index | {s['ratio']:.2f}x ({s['ratio_min']:.2f}-"
                  f"{s['ratio_max']:.2f}, {s['rounds']}) | >= 0.8x |")
    row("sqlite, 4 concurrent writers (WAL), rows/s", res.get("sqlite4"), ">= 0.6x")
    if res.get("dd"):
        row(f"dd {res['dd']['mib']} MiB write + fsync", res["dd"]["write"], ">= 0.8x")
        row(f"dd {res['dd']['mib']} MiB cold read", res["dd"]["read"], ">= 0.8x")
    b = res.get("bigfile")
    if b:
        md.append(f"| open + read 10 bytes of a {b['gib']} GiB file | "
                  f"{b['open_read10_ms_median']:.2f} ms (runs {b['open_read10_ms']}) | <= 5 ms |")
        md.append(f"| plaintext held while streaming it (cache {b['cache_mib']} MiB) | "
                  f"{b['peak_plaintext_mib']:.0f} MiB at most, {b['stream_mbs']:.0f} MB/s | "
                  f"<= cache + 64 MiB |")
    r = res.get("redis")
    if r and "ratios" in r:  # older results kept only the best of each side
        for op in ("SET", "GET"):
            a = r["ratios"]["aof_volume"][op]
            md.append(f"| redis {op}, AOF everysec on a volume | {a['ratio']:.2f}x "
                      f"({a['min']:.2f}-{a['max']:.2f}, {a['rounds']}) | >= 0.9x |")
    n = res.get("nginx")
    if n and "4k.bin" in n:
        v = n["4k.bin"]
        md.append(f"| nginx 4 KiB | {v['ratio']:.2f}x ({v['ratio_min']:.2f}-{v['ratio_max']:.2f},"
                  f" {v['rounds']}) | >= 0.9x |")
    md += ["", "Each workload's run (UTC, load average at its start): " + "; ".join(
        f"{k} {v['when']} ({' '.join(v['load'])})" for k, v in res.items()
        if isinstance(v, dict) and "when" in v and "load" in v) + "."]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
