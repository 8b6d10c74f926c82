#!/usr/bin/env python3
"""The order of a one-file commit's block requests (docs/fs.md "One flush per
commit, eighteenth session"): a 4 KiB pwrite + fdatasync loop under `kiln run
--volume` with the local tag file next to the key, traced with the block
layer's tracepoints (`perf record -e block:block_rq_issue -e
block:block_rq_complete -a`, as root) and the volume server's replies
(syscalls:sys_enter_sendmsg of the kiln-volume process).

Per commit (a write of the tag file's block, found by FIEMAP): the tag's
write and the commit log's writes since the previous reply must have
completed before a device flush (FF) is issued, and that flush must complete
before the server's reply. Reported: the commits checked, those without such
a flush ("uncovered", must be 0), the flushes per commit (1 when the tag's
prepare rides the log's flush, 2 with a sync of its own), and the flushes
issued while the tag's write was in flight ("early": the log's flush, which
then does not cover the tag, in the old order).

--workload truncate: the same loop with an ftruncate (alternately 60 and 64
KiB) before each fdatasync: every commit a two-phase record (the truncate
writes in place), its prepare riding since ride18. --workload sqlite: N
sqlite3 transactions of one INSERT each, DELETE journal, synchronous=FULL
(data records, one-phase and two-phase ones, the journal's create and unlink).

Usage: flush_order.py KILN_BIN [--commits N] [--workload W] [--dir DIR] [--json]
DIR (default: a temporary directory in /var/tmp) must be on a block device.
Exit status: 0 all covered, 1 some uncovered, 2 cannot trace (no perf, not
root, no tracepoints, no block device, or four traces in a row that lost a
flush's event at perf's start: see parse)."""
import argparse
import bisect
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

FSYNC_LOOP = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(fd, b"\0" * 65536, 0)
os.fsync(fd)
page = os.urandom(4096)
for i in range(int(sys.argv[2])):
    os.pwrite(fd, page, 0)
    os.fdatasync(fd)
"""

TRUNCATE_LOOP = FSYNC_LOOP.replace("    os.fdatasync(fd)",
                                   "    os.ftruncate(fd, 61440 if i % 2 else 65536)\n"
                                   "    os.fdatasync(fd)")

SQLITE_LOOP = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB)")
for i in range(int(sys.argv[2])):
    db.execute("BEGIN")
    db.execute("INSERT INTO t(v) VALUES (randomblob(200))")
    db.execute("COMMIT")
"""

WORKLOADS = {"fsync": FSYNC_LOOP, "truncate": TRUNCATE_LOOP, "sqlite": SQLITE_LOOP}

EVENT = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)/\d+\s+\[\d+\]\s+(?P<t>[\d.]+):\s+"
                   r"(?P<ev>[\w:]+):\s+(?P<rest>.*)$")
BLOCK = re.compile(r"^(?P<dev>\d+,\d+) (?P<rwbs>\S+) (?:\d+ )?\(.*?\) (?P<sector>\d+) \+ "
                   r"(?P<n>\d+)")


class CannotTrace(Exception):
    pass


class LostFlush(CannotTrace):
    pass


def extents(path):
    """[(first 512-byte sector on the disk, count)] of path's data (FIEMAP
    through filefrag), with the partition's start added."""
    out = subprocess.run(["filefrag", "-e", "-b512", str(path)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise CannotTrace(f"filefrag {path}: {out.stderr.strip()}")
    ext = []
    for line in out.stdout.splitlines():
        m = re.match(r"\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):", line)
        if m:
            ext.append((int(m.group(1)), int(m.group(2)) - int(m.group(1)) + 1))
    st = os.stat(path)
    sysdev = pathlib.Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not sysdev.exists():
        raise CannotTrace(f"{path} is not on a block device")
    start = int((sysdev / "start").read_text()) if (sysdev / "partition").exists() else 0
    return [(s + start, n) for s, n in ext]


def overlaps(sector, n, ext):
    return any(sector < s + c and s < sector + max(n, 1) for s, c in ext)


def parse(script_out, tag_ext, log_ext):
    """Block requests and replies: (issue, complete) of the tag's writes, of
    the log's writes, of the flushes; the times of the replies of the server
    that wrote the tag (other volume servers may run beside it)."""
    tag, log, flush, sends = [], [], [], []
    server = set()
    pending = {}  # sector -> [issue list of (kind, issue time)]
    flush_open = []
    ff = []  # (time, open flushes after it, a completion found none open)
    for line in script_out.splitlines():
        m = EVENT.match(line)
        if not m:
            continue
        t, ev, rest = float(m.group("t")), m.group("ev"), m.group("rest")
        if ev.endswith("sys_enter_sendmsg"):
            if m.group("comm") == "kiln-volume":
                sends.append((t, m.group("pid")))
            continue
        b = BLOCK.match(rest)
        if not b:
            continue
        rwbs, sector, n = b.group("rwbs"), int(b.group("sector")), int(b.group("n"))
        if ev.endswith("block_rq_issue"):
            if rwbs.startswith("FF"):
                flush_open.append(t)
                ff.append((t, len(flush_open), False))
            elif "W" in rwbs and overlaps(sector, n, tag_ext):
                pending.setdefault(sector, []).append(("tag", t))
                if m.group("comm") == "kiln-volume":
                    server.add(m.group("pid"))
            elif "W" in rwbs and overlaps(sector, n, log_ext):
                pending.setdefault(sector, []).append(("log", t))
        elif ev.endswith("block_rq_complete"):
            if rwbs.startswith("FF"):
                orphan = not flush_open
                if flush_open:
                    flush.append((flush_open.pop(0), t))
                ff.append((t, len(flush_open), orphan))
            elif sector in pending and pending[sector]:
                kind, issued = pending[sector].pop(0)
                (tag if kind == "tag" else log).append((issued, t))
    replies = [t for t, pid in sends if pid in server]
    # Flushes carry no id: they are paired in order. A flush whose issue or
    # completion perf missed while it enabled its per-CPU buffers (one was in
    # flight then) shifts every later pair by one, and the check would judge
    # on wrong times (seen under other processes' flushes: no flush ever
    # completes before its commit's reply, or all complete early). From the
    # first reply on, a completion must find its issue, and the device must
    # be idle (none open) at least once; else the trace is refused.
    late = [(n, orphan) for t, n, orphan in ff if replies and t >= min(replies)]
    if late and (any(orphan for _, orphan in late) or min(n for n, _ in late) > 0):
        raise LostFlush("flush events lost at the trace's start (unpaired flushes)")
    return sorted(tag), sorted(log), sorted(flush), sorted(replies)


def check(tag, log, flush, replies):
    """Per tag write: the reply after it; the log writes issued since the
    reply before it; a flush issued after all of them completed and completed
    before the reply."""
    checked = uncovered = early = 0
    per_commit = []
    for issued, done in tag:
        i = bisect.bisect_right(replies, done)
        if i == len(replies):
            continue  # traced to the end without its reply
        reply, prev = replies[i], replies[i - 1] if i else 0.0
        need = max([done] + [c for s, c in log if prev < s < reply])
        checked += 1
        if not any(fi >= need and fc <= reply for fi, fc in flush):
            uncovered += 1
        early += sum(1 for fi, _ in flush if issued <= fi < done)
        per_commit.append(sum(1 for fi, _ in flush if prev < fi < reply))
    per_commit.sort()
    return {"commits": checked, "uncovered": uncovered, "early_flushes": early,
            "flushes_per_commit_median": per_commit[len(per_commit) // 2] if per_commit else 0,
            "flushes_per_commit_mean": round(sum(per_commit) / len(per_commit), 2)
            if per_commit else 0.0}


def trace(kiln, commits, base, workload="fsync"):
    if not shutil.which("perf") or not shutil.which("filefrag"):
        raise CannotTrace("perf or filefrag not installed")
    if os.geteuid() != 0:
        raise CannotTrace("block tracepoints need root")
    d = pathlib.Path(tempfile.mkdtemp(prefix="kiln-flush-order-", dir=base))
    try:
        vol, key = d / "vol", d / "vol.key"
        subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                       capture_output=True)
        run = [kiln, "run", "--volume", f"{vol}={key}", "--", sys.executable, "-c",
               WORKLOADS[workload],
               str(vol / "f")]
        # A first run: the tag file gets its full line, the log its blocks.
        subprocess.run(run + ["20"], check=True, capture_output=True)
        tag_ext = extents(pathlib.Path(str(key) + ".version"))
        data = d / "perf.data"
        p = subprocess.run(["perf", "record", "-q", "-o", str(data), "-a",
                            "-e", "block:block_rq_issue", "-e", "block:block_rq_complete",
                            "-e", "syscalls:sys_enter_sendmsg", "--"] + run + [str(commits)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise CannotTrace(f"perf record failed: {p.stderr.strip()[-400:]}")
        log_ext = extents(vol / ".kiln" / "log")
        out = subprocess.run(["perf", "script", "-i", str(data), "-F",
                              "comm,pid,tid,cpu,time,event,trace"], capture_output=True,
                             text=True)
        if out.returncode != 0:
            raise CannotTrace(f"perf script failed: {out.stderr.strip()[-400:]}")
        tag, log, flush, replies = parse(out.stdout, tag_ext, log_ext)
        if not tag or not replies:
            raise CannotTrace("no tag writes or replies traced")
        r = check(tag, log, flush, replies)
        stats = [ln for ln in (vol / ".kiln" / "server.log").read_text().splitlines()
                 if "riding" in ln] if (vol / ".kiln" / "server.log").exists() else []
        r["server_stats"] = stats[-1] if stats else ""
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kiln")
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="fsync")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.environ["KILN_SHIELD_STATS"] = "1"
    r, err = None, None
    for attempt in range(4):
        try:
            r = trace(a.kiln, a.commits, a.dir, a.workload)
            r["traces_refused"] = attempt
            break
        except LostFlush as e:
            err = e  # another trace: the loss is at perf's start, by chance
        except CannotTrace as e:
            err = e
            break
    if r is None:
        print(f"flush_order: cannot trace: {err}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['commits']} commits: {r['uncovered']} uncovered, flushes per commit "
              f"median {r['flushes_per_commit_median']} mean {r['flushes_per_commit_mean']}, "
              f"{r['early_flushes']} issued while the tag's write was in flight")
    return 1 if r["uncovered"] else 0


if __name__ == "__main__":
    sys.exit(main())
