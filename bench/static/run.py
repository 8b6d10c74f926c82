#!/usr/bin/env python3
"""Static programs: the in-process loader (the default for static programs,
`--static=loader`) against the seccomp supervisor (`--static=supervise`), the
glibc (LD_PRELOAD) path and native (issue 13 target: static loader >= 0.9x the
glibc path).

1. Per-call costs (bench/static/trapcost.c, one source built dynamic and
   static): an untrapped call, a call trapped and answered on the loader's fast
   path (read of /dev/zero), a call on its slow path (getcwd: FS switched both
   ways), the FS switch pair itself (arch_prctl(ARCH_SET_FS) twice, natively),
   and open + read(4 KiB) + close of a protected file.
2. The sqlite workload of bench/runtime (100k inserts in 10 transactions, an
   index, 2k indexed selects) on a protected volume: sqlite3 linked statically
   against musl (scripts/build-musl-sqlite3-static.sh) natively, supervised and
   in-process, against sqlite3 from the same amalgamation built with gcc
   (dynamic, glibc) natively and under libkiln.

3. With --base BASE_BUILD (another build of kiln, e.g. main's): the supervised
   configuration with that build's `kiln` too, side by side (same programs), and
   the head of a big protected file (--big-mib, written by dd under libkiln):
   `rt_static_files head FILE 10` supervised, its time and the most plaintext
   the launcher and the volume server held in memfds meanwhile (sampled every
   10 ms: either design keeps the plaintext in memfds).

4. Attested start-up (`kiln run --cas ... --tee sim` to a loopback kiln-cas,
   a policy per program): busybox-static `true` under the loader and
   supervised, Debian's (dynamic) busybox `true` under libkiln.
5. redis-benchmark (50 clients, SET and GET) against redis-server from one
   source linked statically against musl (scripts/build-musl-redis-static.sh)
   under the loader and supervised, and built with gcc (dynamic, glibc) under
   libkiln, each with its AOF (everysec) on a protected volume, and again
   without AOF or RDB (the network's system calls alone); natively too.

--parts picks some of calls, sqlite, startup, redis (default: all).

Every round runs every configuration side by side, in an order that alternates
(the machine is shared); ratios per round, the median with the spread, the load
average with them. Writes bench/results/static.json and static.md.

Usage: bench/static/run.py BUILD_DIR [--rounds N] [--base BASE_BUILD] [--big-mib N]
                          [--parts calls,sqlite,startup,redis]
"""
import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SQLITE_DIR = pathlib.Path(os.environ.get("KILN_MUSL_SQLITE3", "/opt/kiln/musl-sqlite3")) / "bin"
REDIS_DIR = pathlib.Path(os.environ.get("KILN_MUSL_REDIS", "/opt/kiln/musl-redis")) / "bin"
BUSYBOX_STATIC = os.environ.get("KILN_BUSYBOX_STATIC", "/opt/kiln/busybox-static/bin/busybox")
SUPERVISE = "--static=supervise"
MODES = {"getppid": 50000, "read": 50000, "getcwd": 20000, "orc": 5000}


def runtime_bench():
    """bench/runtime/run.py as a module: its sqlite workload and redis_rps."""
    spec = importlib.util.spec_from_file_location("bench_runtime",
                                                  ROOT / "bench" / "runtime" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def workload():
    return runtime_bench().SQLITE_WORKLOAD


def new_volume(kiln, tmp, name):
    vol, key = tmp / name, tmp / f"{name}.key"
    subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                   capture_output=True)
    return vol, key


def configs(kiln, build, vol, key, plain, base_kiln=None):
    dyn = str(build / "bench" / "static" / "trapcost")
    st = str(build / "bench" / "static" / "trapcost_static")
    shield = [kiln, "run", "--volume", f"{vol}={key}", "--"]
    supervise = [kiln, "run", SUPERVISE, "--volume", f"{vol}={key}", "--"]
    loader = [kiln, "run", "--static=loader", "--volume", f"{vol}={key}", "--"]
    c = {"native_glibc": ([dyn], plain), "glibc_path": (shield + [dyn], vol),
         "native_static": ([st], plain), "supervised": (supervise + [st], vol),
         "loader": (loader + [st], vol)}
    if base_kiln:
        c["supervised_base"] = ([base_kiln, "run", SUPERVISE, "--volume", f"{vol}={key}", "--",
                                 st], vol)
    return c


def ns(cmd, mode, n, d):
    args = [mode, str(n)] + ([str(d / "f")] if mode == "orc" else [])
    p = subprocess.run(cmd + args, capture_output=True, text=True, check=True)
    return float(p.stdout.split()[-1])


def trap_rounds(kiln, build, rounds, base_kiln=None):
    got = {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        vol, key = new_volume(kiln, tmp, "vol")
        plain = tmp / "plain"
        plain.mkdir()
        (plain / "f").write_bytes(os.urandom(4096))
        subprocess.run([kiln, "run", "--volume", f"{vol}={key}", "--", "/bin/sh", "-c",
                        f"head -c 4096 /dev/urandom > {vol}/f"], check=True, capture_output=True)
        cfgs = configs(kiln, build, vol, key, plain, base_kiln)
        for r in range(rounds):
            names = sorted(cfgs, reverse=bool(r % 2))
            for name in names:
                cmd, d = cfgs[name]
                for mode, n in MODES.items():
                    got.setdefault(name, {}).setdefault(mode, []).append(ns(cmd, mode, n, d))
            got.setdefault("native_static", {}).setdefault("fsswitch", []).append(
                ns(cfgs["native_static"][0], "fsswitch", 20000, plain))
            print(f"round {r + 1}: " + "; ".join(
                f"{c} " + " ".join(f"{m} {v[-1]:.0f}" for m, v in got[c].items()) for c in names),
                flush=True)
    return got


def sqlite_rounds(kiln, rounds, base_kiln=None):
    sql = workload()
    static = str(SQLITE_DIR / "sqlite3-musl-static")
    glibc = str(SQLITE_DIR / "sqlite3-glibc")
    for p in (static, glibc):
        if not os.access(p, os.X_OK):
            raise SystemExit(f"{p} missing: run scripts/build-musl-sqlite3-static.sh")
    t, fails = {}, {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        for r in range(rounds):
            runs = {
                "native_glibc": lambda d: [glibc, str(d / "b.db")],
                "glibc_path": lambda d: [kiln, "run", "--volume", f"{d}={d}.key", "--", glibc,
                                         str(d / "b.db")],
                "native_static": lambda d: [static, str(d / "b.db")],
                "supervised": lambda d: [kiln, "run", SUPERVISE, "--volume", f"{d}={d}.key",
                                         "--", static, str(d / "b.db")],
                "loader": lambda d: [kiln, "run", "--static=loader", "--volume", f"{d}={d}.key",
                                     "--", static, str(d / "b.db")],
            }
            if base_kiln:
                runs["supervised_base"] = lambda d: [base_kiln, "run", SUPERVISE, "--volume",
                                                     f"{d}={d}.key", "--", static,
                                                     str(d / "b.db")]
            for name in sorted(runs, reverse=bool(r % 2)):
                d = tmp / f"{name}{r}"
                if name.startswith("native"):
                    d.mkdir()
                else:
                    new_volume(kiln, tmp, f"{name}{r}")
                t0 = time.perf_counter()
                p = subprocess.run(runs[name](d), input=sql, text=True, capture_output=True)
                took = time.perf_counter() - t0
                # The supervisor refuses the directory open sqlite makes to
                # fsync its journal's directory ("readonly database"): kept
                # as a failure, not a time.
                if p.returncode != 0 or "error" in p.stderr.lower():
                    if not name.startswith("supervised"):
                        raise SystemExit(f"sqlite {name} failed: {p.stderr[-2000:]}")
                    fails.setdefault(name, p.stderr.strip().splitlines()[-1:])
                    took = None
                t.setdefault(name, []).append(took)
            print(f"sqlite round {r + 1}: " + ", ".join(
                f"{k} " + (f"{v[-1]:.3f} s" if v[-1] is not None else "failed")
                for k, v in t.items()), flush=True)
    return t, fails


def memfd_bytes(pids):
    """Plaintext the given processes hold in memfds (distinct inodes, bytes
    the kernel backs them with)."""
    seen, total = set(), 0
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for n in names:
            try:
                if not os.readlink(f"/proc/{pid}/fd/{n}").startswith("/memfd:"):
                    continue
                st = os.stat(f"/proc/{pid}/fd/{n}")
            except OSError:
                continue
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def timed_peak(cmd, vol):
    """Run cmd (kiln run on volume vol): (seconds, most plaintext MiB the
    launcher and the volume's server held in memfds meanwhile, sampled every
    10 ms), its stdout."""
    peak, done = [0], threading.Event()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sample():
        while not done.is_set():
            pids = [p.pid]
            try:
                pids.append(int((vol / ".kiln" / "server").read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
            peak[0] = max(peak[0], memfd_bytes(pids))
            time.sleep(0.01)
    t = threading.Thread(target=sample)
    t.start()
    out, err = p.communicate()
    took = time.perf_counter() - t0
    done.set()
    t.join()
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed: {err.decode(errors='replace')[-2000:]}")
    return took, peak[0] / 2**20, out


def big_head_rounds(kiln, build, base_kiln, mib, rounds):
    """head -c 10 of a big protected file, supervised, new and base builds."""
    head = str(build / "tests" / "e2e" / "apps" / "rt_static_files")
    got = {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        vol, key = new_volume(kiln, tmp, "big")
        subprocess.run([kiln, "run", "--volume", f"{vol}={key}", "--", "dd", "if=/dev/urandom",
                        f"of={vol}/big.bin", "bs=1M", f"count={mib}", "status=none"],
                       check=True, capture_output=True)
        first = subprocess.run([kiln, "fs", "cat", str(vol), "big.bin", "--key-file", str(key)],
                               check=True, capture_output=True).stdout[:10]
        kilns = {"supervised": kiln, "supervised_base": base_kiln}
        for r in range(rounds):
            for name in sorted(kilns, reverse=bool(r % 2)):
                took, peak, out = timed_peak([kilns[name], "run", SUPERVISE, "--volume",
                                              f"{vol}={key}", "--", head, "head",
                                              f"{vol}/big.bin", "10"], vol)
                if out != first:
                    raise SystemExit(f"{name}: head read {out!r}, the file starts {first!r}")
                got.setdefault(name, {}).setdefault("seconds", []).append(took)
                got[name].setdefault("plaintext_peak_mib", []).append(peak)
            print(f"big head round {r + 1}: " + ", ".join(
                f"{k} {v['seconds'][-1]:.2f} s {v['plaintext_peak_mib'][-1]:.0f} MiB"
                for k, v in got.items()), flush=True)
    return got


class LoopbackCas:
    """kiln cas serve on 127.0.0.1 with one policy (bench/static: start-up),
    sim allowed; env(): what kiln run needs to attest to it."""

    def __init__(self, kiln, tmp, services):
        self.kiln, self.tmp = kiln, tmp
        self.proc = subprocess.Popen([kiln, "cas", "serve", "--data", str(tmp / "cas"),
                                      "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        url = None
        for line in self.proc.stdout:
            if line.startswith("listening "):
                url = line.split()[1]
                break
        if not url:
            raise SystemExit("kiln cas serve did not start")
        self.env = dict(os.environ, KILN_CAS=url, KILN_CAS_CA=str(tmp / "cas" / "ca.pem"),
                        KILN_IDENTITY=str(tmp / "owner.pem"))
        subprocess.run([kiln, "identity", "create", "--out", str(tmp / "owner.pem")],
                       check=True, capture_output=True)
        svc = "".join(f"  - {{name: {n}, command: [{', '.join(json.dumps(a) for a in c)}], "
                      "measurement: [any]}\n" for n, c in services.items())
        (tmp / "p.yaml").write_text(
            "name: bench/static\npredecessor: null\n"
            "access: {read: [owner], update: [owner]}\n"
            f"services:\n{svc}"
            "security: {tee: [sim], allow_insecure_sim: true}\n")
        p = subprocess.run([kiln, "policy", "apply", str(tmp / "p.yaml")],
                           capture_output=True, text=True, env=self.env)
        if p.returncode != 0:
            self.close()
            raise SystemExit(f"kiln policy apply: {p.stderr}")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def startup_rounds(kiln, rounds, n=20):
    """Attested start-up, ms per run (n runs per configuration per round, in
    alternating order): busybox-static true under the loader and supervised,
    Debian's dynamic busybox true under libkiln."""
    if not os.access(BUSYBOX_STATIC, os.X_OK):
        raise SystemExit(f"{BUSYBOX_STATIC} missing: run scripts/install-deps.sh")
    services = {"st": [BUSYBOX_STATIC, "true"], "dyn": ["/bin/busybox", "true"]}
    runs = {"loader": ["--static=loader"], "supervised": [SUPERVISE], "dynamic": []}
    got = {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        cas = LoopbackCas(kiln, pathlib.Path(tmp), services)
        try:
            for r in range(rounds):
                for name in sorted(runs, reverse=bool(r % 2)):
                    svc = "dyn" if name == "dynamic" else "st"
                    cmd = [kiln, "run", *runs[name], "--session", "bench/static", "--service",
                           svc, "--tee", "sim", "--", services[svc][0]]
                    for _ in range(n):
                        t0 = time.perf_counter()
                        subprocess.run(cmd, check=True, capture_output=True, env=cas.env)
                        got.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
                print(f"startup round {r + 1}: " + ", ".join(
                    f"{k} {statistics.median(v[-n:]):.1f} ms" for k, v in got.items()),
                    flush=True)
        finally:
            cas.close()
    return got


def redis_rounds(kiln, rounds, aof):
    """redis-server (one source: static musl, dynamic glibc) with its AOF
    (everysec, aof) or nothing (no AOF, no RDB: the system calls of the
    network alone) on a protected volume: the static one under the loader and
    supervised, the glibc one under libkiln; both natively on a plain dir."""
    rps_of = runtime_bench().redis_rps
    static = str(REDIS_DIR / "redis-server-musl-static")
    glibc = str(REDIS_DIR / "redis-server-glibc")
    for p in (static, glibc):
        if not os.access(p, os.X_OK):
            raise SystemExit(f"{p} missing: run scripts/build-musl-redis-static.sh")
    runs = {"native_glibc": (None, glibc), "glibc_path": ([], glibc),
            "native_static": (None, static), "supervised": ([SUPERVISE], static),
            "loader": (["--static=loader"], static)}
    got, fails = {}, {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = pathlib.Path(tmp)
        for r in range(rounds):
            for name in sorted(runs, reverse=bool(r % 2)):
                opts, prog = runs[name]
                port = runtime_bench().free_port()
                base = [prog, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "yes" if aof else "no", "--appendfsync", "everysec"]
                d = tmp / f"{name}{r}"
                if opts is None:
                    d.mkdir()
                    cmd = base + ["--dir", str(d)]
                else:
                    vol, key = new_volume(kiln, tmp, f"{name}{r}")
                    cmd = [kiln, "run", *opts, "--volume", f"{vol}={key}", "--"] + base + \
                        ["--dir", str(vol)]
                try:
                    got.setdefault(name, []).append(rps_of(cmd, port))
                except SystemExit as e:
                    # The supervisor refuses the open of a volume directory
                    # (redis 7 fsyncs its appendonlydir): kept as a failure.
                    if name != "supervised":
                        raise
                    fails.setdefault(name, str(e).strip().splitlines()[-1])
                    got.setdefault(name, []).append(None)
            print(f"redis (aof {aof}) round {r + 1}: " + ", ".join(
                f"{k} SET {v[-1]['SET']:.0f}/s GET {v[-1]['GET']:.0f}/s" if v[-1] else
                f"{k} failed" for k, v in got.items()), flush=True)
    return got, fails


PARTS = ("calls", "sqlite", "startup", "redis")


def spread(rs):
    return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}


def main():
    ap = argparse.ArgumentParser(description="kiln static loader benchmark")
    ap.add_argument("build", nargs="?", default=str(ROOT / "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base", help="another build of kiln: its supervisor side by side")
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated: " + ", ".join(PARTS))
    args = ap.parse_args()
    parts = args.parts.split(",")
    if not parts or any(p not in PARTS for p in parts):
        ap.error(f"--parts: expected some of {', '.join(PARTS)}")
    build = pathlib.Path(args.build).resolve()
    kiln = str(build / "kiln")
    base_kiln = str(pathlib.Path(args.base).resolve() / "kiln") if args.base else None
    load = os.getloadavg()
    calls = trap_rounds(kiln, build, args.rounds, base_kiln) if "calls" in parts else None
    sq, sq_fails = sqlite_rounds(kiln, args.rounds, base_kiln) if "sqlite" in parts \
        else (None, None)
    big = big_head_rounds(kiln, build, base_kiln, args.big_mib, min(args.rounds, 3)) \
        if base_kiln and "sqlite" in parts else {}
    start = startup_rounds(kiln, args.rounds) if "startup" in parts else None
    redis = {aof: redis_rounds(kiln, args.rounds, aof) for aof in (True, False)} \
        if "redis" in parts else None
    load_after = os.getloadavg()
    name = "static" if set(parts) == set(PARTS) else "static-" + "-".join(parts)
    res = {"rounds": args.rounds, "load_before": load, "load_after": load_after}
    md = [f"bench/static/run {' '.join(parts)}: {args.rounds} side-by-side rounds; load "
          f"{load[0]:.1f} before, {load_after[0]:.1f} after.", ""]
    if calls and sq:
        calls_sqlite(res, md, args, calls, sq, sq_fails, big, base_kiln)
    if start:
        startup_report(res, md, start)
    for aof, (rps, fails) in (redis or {}).items():
        redis_report(res, md, rps, fails, aof)
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def startup_report(res, md, start):
    def rel(a, b):  # a's time over b's, per run
        return spread([x / y for x, y in zip(start[a], start[b])])
    res["startup_ms"] = {k: spread(v) for k, v in start.items()}
    res["startup_raw_ms"] = start
    res["startup_loader_over_supervised"] = rel("loader", "supervised")
    res["startup_loader_over_dynamic"] = rel("loader", "dynamic")
    md += ["Attested start-up (`kiln run --cas ... --tee sim`, loopback kiln-cas), ms per run:",
           "", "| configuration | median | min | max |", "|---|---:|---:|---:|"]
    for k, v in res["startup_ms"].items():
        md.append(f"| {k} | {v['median']:.1f} | {v['min']:.1f} | {v['max']:.1f} |")
    md += ["", "loader: busybox-static true, --static=loader; supervised: the same,"
           " --static=supervise; dynamic: Debian's busybox true under libkiln.",
           f"loader time / supervised time: {res['startup_loader_over_supervised']['median']:.2f}"
           f" (spread {res['startup_loader_over_supervised']['min']:.2f}-"
           f"{res['startup_loader_over_supervised']['max']:.2f}); loader / dynamic: "
           f"{res['startup_loader_over_dynamic']['median']:.2f} (spread "
           f"{res['startup_loader_over_dynamic']['min']:.2f}-"
           f"{res['startup_loader_over_dynamic']['max']:.2f})", ""]


def redis_report(res, md, redis, fails, aof):
    key = "redis_aof" if aof else "redis_no_aof"
    res[f"{key}_raw_rps"] = redis
    res[f"{key}_failures"] = fails
    cols = sorted(redis)
    md += ["redis-benchmark -c 50 -n 100000, requests/s (median of rounds; " +
           ("AOF everysec on a protected volume, or a plain dir natively):" if aof else
            "no AOF, no RDB: --dir a protected volume, or a plain dir natively):"), "",
           "| op | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for op in ("SET", "GET"):
        med = {c: [r[op] for r in redis[c] if r] for c in cols}
        md.append(f"| {op} | " + " | ".join(f"{statistics.median(med[c]):.0f}" if med[c]
                                             else "fails" for c in cols) + " |")
        for a, b in (("loader", "glibc_path"), ("supervised", "glibc_path"),
                     ("loader", "supervised"), ("loader", "native_static")):
            rs = [x[op] / y[op] for x, y in zip(redis[a], redis[b]) if x and y]
            if rs:
                res[f"{key}_{op}_{a}_vs_{b}"] = spread(rs)
    md.append("")
    for op in ("SET", "GET"):
        md.append(f"{op}: " + "; ".join(
            f"{k[len(key) + len(op) + 2:]} {v['median']:.2f}x ({v['min']:.2f}-{v['max']:.2f})"
            for k, v in res.items() if k.startswith(f"{key}_{op}_")) + " (target: loader >= "
            "0.9x the glibc path)")
    md += ["", "static: redis-server linked statically against musl; glibc: the same source "
           "built with gcc (scripts/build-musl-redis.sh, build-musl-redis-static.sh)."]
    md += [f"{k} failed: {v}" for k, v in fails.items()] + [""]


def calls_sqlite(res, md, args, calls, sq, sq_fails, big, base_kiln):
    def ratio(num, den):  # throughput of den's path relative to num's: t_num / t_den
        rs = [a / b for a, b in zip(sq[num], sq[den]) if a and b]
        return spread(rs) if rs else None

    def median(v):
        v = [x for x in v if x is not None]
        return statistics.median(v) if v else None
    med = {c: {m: statistics.median(v) for m, v in ms.items()} for c, ms in calls.items()}
    fast = [a - b for a, b in zip(calls["loader"]["read"], calls["native_static"]["read"])]
    slow = [a - b for a, b in zip(calls["loader"]["getcwd"], calls["native_static"]["getcwd"])]
    pair = calls["native_static"]["fsswitch"]
    res.update({
        "ns_per_call": med, "raw_ns_per_call": calls,
        "loader_fast_trap_ns": spread(fast), "loader_slow_trap_ns": spread(slow),
        "fs_switch_pair_ns": spread(pair),
        "loader_slow_trap_without_fs_switch_ns": spread([s - p for s, p in zip(slow, pair)]),
        "sqlite_seconds": {k: median(v) for k, v in sq.items()},
        "sqlite_raw_seconds": sq, "sqlite_failures": sq_fails,
        # > 1: the second is faster
        "sqlite_loader_vs_glibc_path": ratio("glibc_path", "loader"),
        "sqlite_supervised_vs_glibc_path": ratio("glibc_path", "supervised"),
        "sqlite_loader_vs_supervised": ratio("supervised", "loader"),
        "sqlite_loader_vs_native_static": ratio("native_static", "loader")})
    if base_kiln:
        res["base_build"] = args.base
        res["sqlite_supervised_vs_base"] = ratio("supervised_base", "supervised")
        res["orc_supervised_vs_base"] = spread(
            [b / a for a, b in zip(calls["supervised"]["orc"], calls["supervised_base"]["orc"])])
        res["big_head_mib"] = args.big_mib
        res["big_head"] = {k: {m: spread(v) for m, v in ms.items()} for k, ms in big.items()}
        res["big_head_raw"] = big

    def fmt(r, unit=""):
        if r is None:
            return "n/a (a side failed: " + "; ".join(
                f"{k}: {' '.join(v)}" for k, v in sq_fails.items()) + ")"
        return f"{r['median']:.2f}{unit} (spread {r['min']:.2f}-{r['max']:.2f})"

    def fns(r):
        return f"{r['median']:.0f} ns (spread {r['min']:.0f}-{r['max']:.0f})"
    cols = ["native_glibc", "glibc_path", "native_static", "supervised", "loader"]
    if base_kiln:
        cols.append("supervised_base")
    md += [f"Per call, ns (median of {args.rounds} side-by-side rounds):", "",
           "| call | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for m in MODES:
        md.append(f"| {m} | " + " | ".join(f"{med[c][m]:.0f}" for c in cols) + " |")
    md += ["",
           f"loader fast-path trap (read of /dev/zero over native): {fns(res['loader_fast_trap_ns'])}",
           f"loader slow-path trap (getcwd over native): {fns(res['loader_slow_trap_ns'])}",
           f"of which the FS switch pair (2x arch_prctl, no FSGSBASE here): "
           f"{fns(res['fs_switch_pair_ns'])}",
           f"slow path without the FS switch (what FSGSBASE hardware would pay, plus a few ns): "
           f"{fns(res['loader_slow_trap_without_fs_switch_ns'])}", "",
           "sqlite workload (100k inserts, index, 2k selects) on a protected volume, s:", "",
           "| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols),
           "| " + " | ".join(f"{res['sqlite_seconds'][c]:.3f}" if res['sqlite_seconds'][c]
                             else "fails" for c in cols) + " |", "",
           f"loader vs glibc path (throughput): {fmt(res['sqlite_loader_vs_glibc_path'], 'x')} "
           "(target >= 0.9x)",
           f"supervised vs glibc path: {fmt(res['sqlite_supervised_vs_glibc_path'], 'x')}",
           f"loader vs supervised: {fmt(res['sqlite_loader_vs_supervised'], 'x')}",
           f"loader vs native (static musl): {fmt(res['sqlite_loader_vs_native_static'], 'x')}",
           "", "native_static/supervised/loader run sqlite3 linked statically against musl; "
           "native_glibc/glibc_path the same amalgamation built with gcc (dynamic)."]
    if base_kiln:
        md += ["", f"supervised_base: the supervisor of {args.base} (same programs).", "",
               f"sqlite supervised vs supervised_base (throughput): "
               f"{fmt(res['sqlite_supervised_vs_base'], 'x')}",
               f"protected open+read+close (orc) supervised vs supervised_base (speed): "
               f"{fmt(res['orc_supervised_vs_base'], 'x')}", "",
               f"head of a {args.big_mib} MiB protected file (rt_static_files head FILE 10, "
               "supervised): seconds, and the most plaintext the launcher and the volume "
               "server held in memfds meanwhile (sampled every 10 ms):", "",
               "| build | seconds | plaintext peak MiB |", "|---|---:|---:|"]
        for k, v in res["big_head"].items():
            md.append(f"| {k} | {v['seconds']['median']:.2f} ({v['seconds']['min']:.2f}-"
                      f"{v['seconds']['max']:.2f}) | {v['plaintext_peak_mib']['median']:.0f} |")
    md.append("")


if __name__ == "__main__":
    main()
