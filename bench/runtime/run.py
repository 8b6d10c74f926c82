#!/usr/bin/env python3
"""kiln runtime benchmark: cost per system call (native / LD_PRELOAD wrapper /
Syscall User Dispatch trap) and `kiln run /bin/true` start-up overhead, measured
in one run. Writes bench/results/runtime.json and prints a table.

Usage: bench/runtime/run.py BUILD_DIR [--only sqlite|redis|nginx] [--rounds N]
                            [--compare BUILD_DIR2]
(--only runs that one application benchmark, prints it and writes nothing;
--only nginx runs native and shielded nginx side by side N times and prints
each round, the median and the spread; with --compare, BUILD_DIR2's kiln too,
in every round, and each later build over the first).
"""
import argparse
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_bench(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(r["op"], r["path"]): r["ns"] for r in map(json.loads, out.splitlines())}


def startup_ms(cmd, n=40):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


SQLITE_WORKLOAD = (
    "PRAGMA journal_mode=DELETE;\n"
    "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);\n"
    + "".join(
        "BEGIN;\nWITH RECURSIVE c(x) AS (SELECT %d UNION ALL SELECT x+1 FROM c WHERE x<%d)"
        " INSERT INTO t(k, v) SELECT (x*7919)%%100000, printf('row-%%08d', x) FROM c;\nCOMMIT;\n"
        % (i * 10000 + 1, (i + 1) * 10000) for i in range(10))
    + "CREATE INDEX tk ON t(k);\n"
    + "".join("SELECT count(*) FROM t WHERE k = %d;\n" % (i * 37) for i in range(2000)))


def sqlite_bench(kiln, rounds=5):
    """Native and shielded runs side by side, `rounds` times (the machine is shared):
    the ratio of each pair, reported as the median with the spread (min, max)."""
    import shutil
    sqlite = shutil.which("sqlite3")
    if not sqlite:
        return None
    native, shielded, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for r in range(rounds):
            plain = tmp / f"plain{r}"
            plain.mkdir()
            vol, key = tmp / f"vol{r}", tmp / f"vol{r}.key"
            subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                           capture_output=True)
            t0 = time.perf_counter()
            subprocess.run([sqlite, str(plain / "b.db")], input=SQLITE_WORKLOAD, text=True,
                           check=True, capture_output=True)
            native.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([kiln, "run", "--volume", f"{vol}={key}", "--", sqlite,
                            str(vol / "b.db")], input=SQLITE_WORKLOAD, text=True, check=True,
                           capture_output=True)
            shielded.append(time.perf_counter() - t0)
            ratios.append(native[-1] / shielded[-1])
            # The volume server exits after its final commit, once the program
            # has gone: wait for it before the next round or the clean-up.
            for _ in range(6000):
                if not (vol / ".kiln" / "server").exists():
                    break
                time.sleep(0.01)
    return {"native_s": statistics.median(native), "kiln_s": statistics.median(shielded),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "rounds": rounds}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_rps(server_cmd, port):
    """SET/GET requests per second with 50 clients against server_cmd."""
    import shutil
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(200):
            if subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                              text=True).stdout.strip() == "PONG":
                break
            # A server that is gone never answers: redis-benchmark would
            # retry its connections for ever.
            if proc.poll() is not None:
                err.seek(0)
                raise SystemExit(f"{server_cmd[:6]}... exited {proc.returncode}: "
                                 f"{err.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.05)
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "50", "-n", "100000",
                              "-t", "set,get", "-q", "--csv"], capture_output=True, text=True,
                             check=True, timeout=600).stdout
        rps = {}
        for line in out.splitlines():
            cols = [c.strip('"') for c in line.split(",")]
            if cols[0] in ("SET", "GET"):
                rps[cols[0]] = float(cols[1])
        subprocess.run(["redis-cli", "-p", str(port), "SHUTDOWN", "NOSAVE"], capture_output=True)
        proc.wait(timeout=30)
        return rps
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


def redis_bench(kiln, rounds=5):
    """Interleaved runs per configuration: the best of each (kept for the
    older tables) and, per round, kiln over its native peer of the same round
    ("ratios": median, spread), which is what the targets are read from: the
    best of several noisy runs of each side need not come from the same
    moment of the machine's load."""
    best, pairs = {}, {"no_shield": {}, "aof_volume": {}}
    for _ in range(rounds):
        once = redis_bench_once(kiln)
        for conf, rps in once.items():
            cur = best.setdefault(conf, {})
            for op, v in rps.items():
                cur[op] = max(cur.get(op, 0.0), v)
        for name, conf, base in (("no_shield", "kiln_no_shield", "native"),
                                 ("aof_volume", "kiln_aof_volume", "native_aof")):
            for op in once.get(conf, {}):
                if once.get(base, {}).get(op):
                    pairs[name].setdefault(op, []).append(once[conf][op] / once[base][op])
    if not best:
        return None
    best["ratios"] = {name: {op: {"ratio": statistics.median(rs), "min": min(rs),
                                  "max": max(rs), "rounds": len(rs)}
                             for op, rs in ops.items()}
                      for name, ops in pairs.items()}
    return best


def redis_bench_once(kiln):
    import shutil
    if not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
        return {}
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        plain = tmp / "plain"
        plain.mkdir()
        vol, key = tmp / "vol", tmp / "vol.key"
        subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                       capture_output=True)
        base = ["redis-server", "--save", "", "--bind", "127.0.0.1", "--daemonize", "no"]
        aof = ["--appendonly", "yes", "--appendfsync", "everysec"]
        p = free_port()
        res["native"] = redis_rps(base + ["--port", str(p), "--dir", str(plain)], p)
        p = free_port()
        res["kiln_no_shield"] = redis_rps([kiln, "run", "--"] + base +
                                          ["--port", str(p), "--dir", str(plain)], p)
        p = free_port()
        res["native_aof"] = redis_rps(base + aof + ["--port", str(p), "--dir", str(plain)], p)
        p = free_port()
        res["kiln_aof_volume"] = redis_rps([kiln, "run", "--volume", f"{vol}={key}", "--"] +
                                           base + aof + ["--port", str(p), "--dir", str(vol)], p)
    return res


NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
user root root;
error_log stderr crit;
pid {prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  sendfile on;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


def nginx_cpu_ticks(prefix):
    """CPU ticks (user + system) of the nginx master and its workers so far."""
    try:
        master = int((prefix / "nginx.pid").read_text())
        kids = pathlib.Path(f"/proc/{master}/task/{master}/children").read_text().split()
        total = 0
        for pid in [master] + [int(k) for k in kids]:
            f = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        return total
    except (OSError, ValueError):
        return None


def wrk_rps(cmd, prefix, root, files):
    """Requests per second and nginx CPU microseconds per request, per file.
    CPU per request is much less sensitive to other jobs on the machine than
    the rate (wrk and nginx share the cores with them)."""
    import os
    port = free_port()
    prefix.mkdir(exist_ok=True)
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(prefix=prefix, port=port, root=root))
    proc = subprocess.Popen(cmd + ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import urllib.request
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{files[0]}", timeout=2).read()
                break
            except OSError:
                time.sleep(0.05)
        out = {}
        for f in files:
            t0 = nginx_cpu_ticks(prefix)
            r = subprocess.run(["wrk", "-t2", "-c32", "-d3s", f"http://127.0.0.1:{port}/{f}"],
                               capture_output=True, text=True, check=True).stdout
            t1 = nginx_cpu_ticks(prefix)
            line = [ln for ln in r.splitlines() if ln.startswith("Requests/sec:")][0]
            reqs = [ln for ln in r.splitlines() if " requests in " in ln][0]
            n = int(reqs.split()[0])
            cpu = None
            if t0 is not None and t1 is not None and n:
                cpu = (t1 - t0) / os.sysconf("SC_CLK_TCK") * 1e6 / n
            out[f] = (float(line.split()[1]), cpu)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def nginx_bench(kiln, others=(), first=0):
    """One round: native nginx and nginx under `kiln run --volume` of kiln and
    of each of others (builds compared side by side, each on a volume of its
    own: one volume server per volume), served one after the other in an
    order rotated by first. Per file: the first kiln's numbers, and
    "others": the same for each other kiln."""
    import os
    import shutil
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")) or not shutil.which("wrk"):
        return None
    kilns = [kiln, *others]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        plain = tmp / "plain"
        plain.mkdir()
        (plain / "4k.bin").write_bytes(os.urandom(4096))
        (plain / "1m.bin").write_bytes(os.urandom(1 << 20))
        files = ["4k.bin", "1m.bin"]
        runs = [("native", [], plain)]
        for i, k in enumerate(kilns):
            vol, key = tmp / f"vol{i}", tmp / f"vol{i}.key"
            subprocess.run([k, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                           capture_output=True)
            subprocess.run([k, "run", "--volume", f"{vol}={key}", "--", "cp",
                            str(plain / "4k.bin"), str(plain / "1m.bin"), str(vol)], check=True,
                           capture_output=True)
            runs.append((i, [k, "run", "--volume", f"{vol}={key}", "--"], vol))
        got = {}
        for j in range(len(runs)):
            name, cmd, root = runs[(j + first) % len(runs)]
            got[name] = wrk_rps(cmd, tmp / f"p{name}", root, files)
    native = got["native"]

    def compare(shielded):
        res = {}
        for f in files:
            r = {"native_rps": native[f][0], "kiln_rps": shielded[f][0],
                 "ratio": shielded[f][0] / native[f][0]}
            if native[f][1] and shielded[f][1]:
                r.update(native_cpu_us_per_req=native[f][1], kiln_cpu_us_per_req=shielded[f][1],
                         cpu_ratio=native[f][1] / shielded[f][1])
            res[f] = r
        return res
    res = compare(got[0])
    if others:
        res["others"] = [compare(got[i]) for i in range(1, len(kilns))]
    return res


@contextlib.contextmanager
def loopback_cas(kiln, tmp, policy):
    """A kiln-cas on loopback with policy applied (YAML text): yields the
    environment that lets `kiln run --session ...` attest (sim) to it."""
    cas = subprocess.Popen([kiln, "cas", "serve", "--data", str(tmp / "cas"), "--listen",
                            "127.0.0.1:0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in cas.stdout:
            if line.startswith("listening "):
                url = line.split()[1]
                break
        env = dict(os.environ, KILN_CAS=url, KILN_CAS_CA=str(tmp / "cas" / "ca.pem"),
                   KILN_IDENTITY=str(tmp / "owner.pem"))
        subprocess.run([kiln, "identity", "create", "--out", str(tmp / "owner.pem")],
                       check=True, capture_output=True)
        (tmp / "p.yaml").write_text(policy)
        subprocess.run([kiln, "policy", "apply", str(tmp / "p.yaml")], check=True,
                       capture_output=True, env=env)
        yield env
    finally:
        cas.terminate()
        cas.wait(timeout=30)


def attested_startup_ms(kiln, n=20):
    """`kiln run /usr/bin/true` attesting (sim) to a loopback kiln-cas."""
    policy = ("name: bench/true\npredecessor: null\n"
              "access: {read: [owner], update: [owner]}\n"
              "services:\n  - {name: t, command: [/usr/bin/true], measurement: [any]}\n"
              "security: {tee: [sim], allow_insecure_sim: true}\n")
    with tempfile.TemporaryDirectory() as tmp, \
            loopback_cas(kiln, pathlib.Path(tmp), policy) as env:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([kiln, "run", "--session", "bench/true", "--service", "t",
                            "--tee", "sim", "--", "/usr/bin/true"], check=True,
                           capture_output=True, env=env)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)


def serve_loop_ns(kiln, exe):
    """ns per open + fstat + sendfile + close + recv of a 4 KiB file (exe: serve_loop.c,
    built by bench/runtime/meson.build): natively, under kiln run (cache of closed files
    on), and with the cache off."""
    import os
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        plain = tmp / "4k.bin"
        plain.write_bytes(os.urandom(4096))
        vol, key = tmp / "vol", tmp / "vol.key"
        subprocess.run([kiln, "fs", "init", str(vol), "--key-file", str(key)], check=True,
                       capture_output=True)
        run = [kiln, "run", "--volume", f"{vol}={key}", "--"]
        subprocess.run(run + ["cp", str(plain), str(vol)], check=True, capture_output=True)

        def ns(cmd, env=None, n="20000"):
            out = subprocess.run(cmd + [n], check=True, capture_output=True, text=True,
                                 env=dict(os.environ, **(env or {}))).stdout
            return json.loads(out)["ns"]
        return {"native_ns": ns([str(exe), str(plain)]),
                "kiln_ns": ns(run + [str(exe), str(vol / "4k.bin")]),
                "kiln_no_cache_ns": ns(run + [str(exe), str(vol / "4k.bin")],
                                       {"KILN_FILE_CACHE": "0"}, "2000")}


def nginx_rounds(kiln, rounds, say=print):
    """nginx_bench repeated `rounds` times (the machine is shared): per file, the
    round with the median ratio, plus median, min and max of ratios (and of CPU
    per request ratios). None when nginx or wrk is missing."""
    per_file = {}
    for r in range(rounds):
        res = nginx_bench(kiln)
        if res is None:
            return None
        for f, v in res.items():
            per_file.setdefault(f, []).append(v)
            line = (f"round {r + 1} {f}: native {v['native_rps']:.0f}/s, "
                    f"kiln {v['kiln_rps']:.0f}/s ({v['ratio']:.2f}x)")
            if "cpu_ratio" in v:
                line += (f"; nginx CPU per request native {v['native_cpu_us_per_req']:.2f} us, "
                         f"kiln {v['kiln_cpu_us_per_req']:.2f} us ({v['cpu_ratio']:.2f}x)")
            say(line)
    out = {}
    for f, vs in per_file.items():
        vs = sorted(vs, key=lambda v: v["ratio"])
        ratios = [v["ratio"] for v in vs]
        r = dict(vs[len(vs) // 2])
        r.update(ratio=statistics.median(ratios), ratio_min=min(ratios),
                 ratio_max=max(ratios), rounds=len(vs))
        cpu = [v["cpu_ratio"] for v in vs if "cpu_ratio" in v]
        if cpu:
            r.update(cpu_ratio=statistics.median(cpu), cpu_ratio_min=min(cpu),
                     cpu_ratio_max=max(cpu))
        out[f] = r
    return out


def nginx_compare(kilns, rounds, say=print):
    """Builds side by side: each round serves natively and under each build's
    kiln run (order rotated per round). Per build and file: kiln/native rps
    ratio and native/kiln CPU per request ratio, median and spread; per file,
    each later build over the first (rps, and first/later CPU per request),
    measured in the same round."""
    per = {}  # (build index, file) -> [round results]
    for r in range(rounds):
        res = nginx_bench(kilns[0], kilns[1:], first=r)
        if res is None:
            return None
        builds = [{f: v for f, v in res.items() if f != "others"}] + res.get("others", [])
        for b, by_file in enumerate(builds):
            for f, v in by_file.items():
                per.setdefault((b, f), []).append(v)
        for f in builds[0]:
            line = f"round {r + 1} load {os.getloadavg()[0]:.1f} {f}: native " \
                   f"{builds[0][f]['native_rps']:.0f}/s"
            for b, by_file in enumerate(builds):
                v = by_file[f]
                line += f" | build {b} {v['kiln_rps']:.0f}/s ({v['ratio']:.2f}x)"
                if "cpu_ratio" in v:
                    line += (f" CPU {v['kiln_cpu_us_per_req']:.2f} us "
                             f"(native {v['native_cpu_us_per_req']:.2f})")
            say(line)
    out = {}
    for (b, f), vs in per.items():
        ratios = [v["ratio"] for v in vs]
        o = {"ratio": statistics.median(ratios), "ratio_min": min(ratios),
             "ratio_max": max(ratios), "rounds": len(vs),
             "native_rps": statistics.median(v["native_rps"] for v in vs),
             "kiln_rps": statistics.median(v["kiln_rps"] for v in vs)}
        cpu = [v for v in vs if "cpu_ratio" in v]
        if cpu:
            o.update(cpu_ratio=statistics.median(v["cpu_ratio"] for v in cpu),
                     cpu_ratio_min=min(v["cpu_ratio"] for v in cpu),
                     cpu_ratio_max=max(v["cpu_ratio"] for v in cpu),
                     native_cpu_us_per_req=statistics.median(
                         v["native_cpu_us_per_req"] for v in cpu),
                     kiln_cpu_us_per_req=statistics.median(
                         v["kiln_cpu_us_per_req"] for v in cpu))
        if b:
            first = per[(0, f)]
            over = [v["kiln_rps"] / w["kiln_rps"] for v, w in zip(vs, first)]
            o.update(over_first=statistics.median(over), over_first_min=min(over),
                     over_first_max=max(over))
            cpu_over = [w["kiln_cpu_us_per_req"] / v["kiln_cpu_us_per_req"]
                        for v, w in zip(vs, first) if "cpu_ratio" in v and "cpu_ratio" in w]
            if cpu_over:
                o.update(cpu_over_first=statistics.median(cpu_over),
                         cpu_over_first_min=min(cpu_over), cpu_over_first_max=max(cpu_over))
        out.setdefault(f"build{b}", {})[f] = o
    return out


def nginx_only(kiln, rounds, others=()):
    """Side-by-side nginx runs, repeated: median and spread."""
    for k in (kiln, *others):
        loop = serve_loop_ns(k, pathlib.Path(kiln).parent / "bench" / "runtime" / "serve_loop")
        print(f"serve loop (open + fstat + sendfile + close + recv, 4 KiB), {k}: native "
              f"{loop['native_ns']:.0f} ns, kiln {loop['kiln_ns']:.0f} ns, kiln with "
              f"KILN_FILE_CACHE=0 {loop['kiln_no_cache_ns']:.0f} ns", flush=True)
    if others:
        res = nginx_compare([kiln, *others], rounds, lambda line: print(line, flush=True))
        if res is None:
            print("nginx or wrk not installed")
            return 1
        for b, by_file in res.items():
            for f, r in by_file.items():
                line = (f"nginx {f} {b}: median {r['ratio']:.2f}x native over {r['rounds']} "
                        f"rounds (min {r['ratio_min']:.2f}x, max {r['ratio_max']:.2f}x)")
                if "cpu_ratio" in r:
                    line += (f"; CPU per request {r['kiln_cpu_us_per_req']:.2f} us, native "
                             f"{r['native_cpu_us_per_req']:.2f} us, native/kiln "
                             f"{r['cpu_ratio']:.2f}x ({r['cpu_ratio_min']:.2f}-"
                             f"{r['cpu_ratio_max']:.2f})")
                if "over_first" in r:
                    line += (f"; over build0: rps {r['over_first']:.2f}x ("
                             f"{r['over_first_min']:.2f}-{r['over_first_max']:.2f})")
                if "cpu_over_first" in r:
                    line += (f", CPU build0/this {r['cpu_over_first']:.2f}x ("
                             f"{r['cpu_over_first_min']:.2f}-{r['cpu_over_first_max']:.2f})")
                print(line)
        print("json " + json.dumps(res))
        return 0
    res = nginx_rounds(kiln, rounds, lambda line: print(line, flush=True))
    if res is None:
        print("nginx or wrk not installed")
        return 1
    for f, r in res.items():
        print(f"nginx {f}: median {r['ratio']:.2f}x native over {r['rounds']} rounds "
              f"(min {r['ratio_min']:.2f}x, max {r['ratio_max']:.2f}x)")
        if "cpu_ratio" in r:
            print(f"nginx {f}: CPU per request, native/kiln: median {r['cpu_ratio']:.2f}x "
                  f"(min {r['cpu_ratio_min']:.2f}x, max {r['cpu_ratio_max']:.2f}x)")
    return 0


def main():
    ap = argparse.ArgumentParser(description="kiln runtime benchmark")
    ap.add_argument("build", nargs="?", default=str(ROOT / "build"))
    ap.add_argument("--only", choices=["sqlite", "redis", "nginx"])
    ap.add_argument("--rounds", type=int, default=5, help="sqlite and nginx rounds (default 5)")
    ap.add_argument("--compare", action="append", default=[], metavar="BUILD",
                    help="with --only nginx: also this build, side by side in every round")
    args = ap.parse_args()
    build = pathlib.Path(args.build).resolve()
    kiln = str(build / "kiln")
    if args.only == "nginx":
        return nginx_only(kiln, args.rounds,
                          [str(pathlib.Path(b).resolve() / "kiln") for b in args.compare])
    if args.only:
        res = {"sqlite": lambda: sqlite_bench(kiln, args.rounds),
               "redis": lambda: redis_bench(kiln),
               "nginx": lambda: nginx_bench(kiln)}[args.only]()
        print(json.dumps(res, indent=2))
        return
    exe = build / "bench" / "runtime" / "syscall_bench"
    native = run_bench([str(exe)])
    kilned = run_bench([kiln, "run", "--sud", "on", "--", str(exe)])
    kilned_nosud = run_bench([kiln, "run", "--sud", "off", "--", str(exe)])
    rows = []
    for op in dict.fromkeys(k[0] for k in native):
        rows.append({
            "op": op,
            "native_ns": native[(op, "libc")],
            "preload_ns": kilned[(op, "libc")],
            "preload_nosud_ns": kilned_nosud[(op, "libc")],
            "sud_trap_ns": kilned[(op, "inline")],
        })
    start = {
        "native_ms": startup_ms(["/bin/true"]),
        "kiln_run_ms": startup_ms([kiln, "run", "--", "/bin/true"]),
        "kiln_run_sud_ms": startup_ms([kiln, "run", "--sud", "on", "--", "/bin/true"]),
    }
    start["overhead_ms"] = start["kiln_run_ms"] - start["native_ms"]
    start["kiln_run_attested_sim_ms"] = attested_startup_ms(kiln)
    sqlite = sqlite_bench(kiln, args.rounds)
    redis = redis_bench(kiln)
    nginx = nginx_rounds(kiln, args.rounds, lambda line: None)
    result = {"syscalls": rows, "startup": start, "sqlite": sqlite, "redis": redis,
              "nginx": nginx,
              "note": "dev mode (no attestation); ns per call, best of 5 rounds"}
    out = ROOT / "bench" / "results" / "runtime.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = ["| call | native ns | wrapper (SUD on) ns | wrapper (SUD off) ns | SUD trap ns |",
          "|---|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| `{r['op']}` | {r['native_ns']:.0f} | {r['preload_ns']:.0f} | "
                  f"{r['preload_nosud_ns']:.0f} | {r['sud_trap_ns']:.0f} |")
    md.append("")
    md.append(f"kiln run /bin/true: {start['kiln_run_ms']:.2f} ms vs {start['native_ms']:.2f} ms "
              f"native (+{start['overhead_ms']:.2f} ms)")
    md.append(f"kiln run /usr/bin/true attesting (sim) to a loopback kiln-cas: "
              f"{start['kiln_run_attested_sim_ms']:.1f} ms (target <= 20 ms)")
    if sqlite:
        md.append(f"sqlite3 100k inserts + 2k indexed selects on a protected volume: "
                  f"{sqlite['ratio']:.2f}x native (median of {sqlite['rounds']} side-by-side "
                  f"rounds, {sqlite['ratio_min']:.2f}-{sqlite['ratio_max']:.2f})")
    if redis:
        for op in ("SET", "GET"):
            plain, aof = redis["ratios"]["no_shield"][op], redis["ratios"]["aof_volume"][op]
            md.append(f"redis {op}: {plain['ratio']:.2f}x native without shields "
                      f"({plain['min']:.2f}-{plain['max']:.2f}), {aof['ratio']:.2f}x with AOF on "
                      f"a protected volume ({aof['min']:.2f}-{aof['max']:.2f}; median of "
                      f"{aof['rounds']} side-by-side rounds)")
    if nginx:
        for f, r in nginx.items():
            md.append(f"nginx + wrk {f} from a protected volume: {r['ratio']:.2f}x native "
                      f"(median of {r['rounds']} side-by-side rounds, "
                      f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
                      + (f" (nginx CPU per request: {r['cpu_ratio']:.2f}x)" if "cpu_ratio" in r
                         else ""))
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"{'call':22} {'native':>9} {'preload':>9} {'preload,':>9} {'SUD trap':>9}")
    print(f"{'':22} {'ns':>9} {'+SUD ns':>9} {'no SUD ns':>9} {'ns':>9}")
    for r in rows:
        print(f"{r['op']:22} {r['native_ns']:9.1f} {r['preload_ns']:9.1f} "
              f"{r['preload_nosud_ns']:9.1f} {r['sud_trap_ns']:9.1f}")
    print(f"\nstart-up /bin/true: native {start['native_ms']:.2f} ms, kiln run "
          f"{start['kiln_run_ms']:.2f} ms (+{start['overhead_ms']:.2f} ms), "
          f"kiln run --sud on {start['kiln_run_sud_ms']:.2f} ms, attested (sim, loopback CAS) "
          f"{start['kiln_run_attested_sim_ms']:.1f} ms")
    if sqlite:
        print(f"sqlite3 100,000 inserts (10 transactions) + 2,000 indexed selects: native "
              f"{sqlite['native_s']:.3f} s, kiln file shield {sqlite['kiln_s']:.3f} s "
              f"(ratio {sqlite['ratio']:.2f}x native, median of {sqlite['rounds']} rounds, "
              f"spread {sqlite['ratio_min']:.2f}-{sqlite['ratio_max']:.2f})")
    if redis:
        for op in ("SET", "GET"):
            print(f"redis-benchmark {op} (50 clients): native {redis['native'][op]:.0f}/s, "
                  f"kiln no shield {redis['kiln_no_shield'][op]:.0f}/s "
                  f"({redis['kiln_no_shield'][op] / redis['native'][op]:.2f}x); AOF native "
                  f"{redis['native_aof'][op]:.0f}/s, AOF on a protected volume "
                  f"{redis['kiln_aof_volume'][op]:.0f}/s "
                  f"({redis['kiln_aof_volume'][op] / redis['native_aof'][op]:.2f}x)")
    if nginx:
        for f, r in nginx.items():
            print(f"nginx + wrk {f} from a protected volume: {r['kiln_rps']:.0f}/s vs "
                  f"{r['native_rps']:.0f}/s native in the median round; ratio median "
                  f"{r['ratio']:.2f}x over {r['rounds']} rounds "
                  f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f})")
            if "cpu_ratio" in r:
                print(f"  nginx CPU per request: native {r['native_cpu_us_per_req']:.2f} us, "
                      f"kiln {r['kiln_cpu_us_per_req']:.2f} us ({r['cpu_ratio']:.2f}x)")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
