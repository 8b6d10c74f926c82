#!/usr/bin/env python3
"""Where a pgbench run's time goes in the volume server (issue 10): pgbench -c 8
under kiln run, with strace attached to the volume server for the run only (after
pgbench -i). Reported: tps (slowed by strace: compare with compare.py, not with
this), the commits that ended in a commit log record (a write to .kiln/log)
against checkpoints (a rename of meta.tmp over meta) and how many log records
came between two checkpoints, the time in each kind of sync, the backing files
read (fills), and the server's counters (KILN_SHIELD_STATS=1, its last line).

Usage: bench/shield/pgprof.py BUILD_DIR [--secs S] [--scale N] [--keep-trace PATH]"""
import argparse
import collections
import importlib.util
import os
import pathlib
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
# bench/shield/run.py under another name (it imports bench/runtime's run.py as "run").
_spec = importlib.util.spec_from_file_location("shield_run", ROOT / "bench/shield/run.py")
shield = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shield)

TRACED = "renameat2,fsync,fdatasync,pwrite64,pread64,unlinkat,io_uring_enter"
CALL = re.compile(r"^\d+ +(\w+)\(\d+<([^>]*)>.*<([\d.]+)>$")


def kind(path, vol):
    """A backing file's role from its name (ids made one)."""
    p = path.replace(str(vol), "VOL")
    return re.sub(r"/[0-9a-f]{32}", "/ID", p)


def cpu_seconds(pid):
    """utime + stime of a process and its threads (io_uring workers are threads)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def summarize(trace, vol):
    calls = collections.defaultdict(list)
    order = []  # "record" / "checkpoint", in the order the server made them
    for line in open(trace, errors="replace"):
        m = CALL.match(line)
        if not m:
            continue
        call, path, secs = m.group(1), kind(m.group(2), vol), float(m.group(3))
        calls[(call, path)].append(secs)
        if call == "pwrite64" and path == "VOL/.kiln/log":
            order.append("record")
        elif call == "renameat2" and '"meta.tmp"' in line:
            order.append("checkpoint")
    runs, n = [], 0
    for what in order:
        if what == "record":
            n += 1
        else:
            runs.append(n)
            n = 0
    print(f"commits: {order.count('record')} log records, {order.count('checkpoint')} "
          f"checkpoints; records between checkpoints: {runs + [n]}")
    print(f"{'call':14} {'file':32} {'n':>6} {'total s':>8} {'median ms':>10}")
    for (call, path), v in sorted(calls.items(), key=lambda kv: -sum(kv[1]))[:14]:
        print(f"{call:14} {path:32} {len(v):6} {sum(v):8.3f} {statistics.median(v) * 1e3:10.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--secs", type=int, default=15)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--keep-trace")
    args = ap.parse_args()
    if not (shield.PGBIN / "postgres").exists() or os.geteuid() != 0:
        sys.exit("pgprof: needs PostgreSQL 15 and root (runs it as the postgres user)")
    kiln = str(pathlib.Path(args.build).resolve() / "kiln")
    os.environ["KILN_SHIELD_STATS"] = "1"
    root = pathlib.Path(tempfile.mkdtemp(prefix="kiln-pgprof-"))
    trace = root / "strace"
    cpu = [0.0, 0.0]
    try:
        root.chmod(0o755)
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        vol, key = shield.volume(kiln, root, owner="postgres")

        def attach():
            # DIR/.kiln/server: "PID @SOCKET" of the server of this volume.
            pid = (vol / ".kiln" / "server").read_text().split()[0]
            st = subprocess.Popen(["strace", "-f", "-y", "-T", "-o", str(trace), "-p", pid,
                                   "-e", "trace=" + TRACED], stderr=subprocess.DEVNULL)
            time.sleep(1)  # attached to every thread before the run starts
            start = (cpu_seconds(pid), time.monotonic())

            def detach():
                cpu[:] = [cpu_seconds(pid) - start[0], time.monotonic() - start[1]]
                st.send_signal(signal.SIGINT)
                st.wait()
            return detach
        tps = shield.pg_tps([kiln, "run", "--volume", f"{vol}={key}", "--"], root,
                            vol / "data", args.scale, 8, args.secs, attach)
        shield.wait_server_gone(vol)
        print(f"pgbench -c 8, scale {args.scale}, {args.secs} s under strace: {tps:.1f} tps")
        print(f"server CPU (every thread, strace's cost included): {cpu[0]:.2f} s "
              f"in {cpu[1]:.1f} s")
        summarize(trace, vol)
        log = (vol / ".kiln" / "server.log").read_text().strip().splitlines()
        print("server (pgbench -i and the run):", log[-1].split(": ", 1)[-1] if log else "-")
        if args.keep_trace:
            shutil.copy(trace, args.keep_trace)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
