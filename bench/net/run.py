#!/usr/bin/env python3
"""kiln network shield benchmark (docs/runtime.md, "The network shield"), all
variants side by side in one run, each round in turn, `--rounds` times:

  nginx + wrk, 4 KiB and 1 MiB, keep-alive and a new connection per request:
    plain     nginx native, plaintext HTTP (the ceiling)
    shield    nginx under kiln run --cas (sim), TLS by the network shield
    nginx     nginx native with its own TLS (same kind of key: P-256)
    stunnel   nginx native plaintext behind stunnel4 (TLS)
  redis-benchmark (SET/GET, 50 clients, --tls):
    shield    redis-server under the shield
    native    redis-server's own --tls-port
    stunnel   redis-server behind stunnel4

Ratios are per round (shield / other), reported as the median with min-max.

What the rates measure: the client (wrk, redis-benchmark) and every variant's
server share the machine's cores with each other and with whatever else runs.
When the cores are busy (other jobs: a load above 2 on 2 cores) a variant's
rate is set by the share of CPU its threads win from the scheduler more than
by what a request costs it: stunnel4 runs a thread per connection (32 for wrk)
and wins about twice the CPU of nginx's two workers, so at twice the CPU per
request it served as many 4 KiB requests (a run at load 14: 1.1 cores against
0.6). And where responses are big or each request makes a handshake, the
client's own CPU is larger than any server's: every TLS variant then runs at
the client's rate. So each case also reports, per variant and round,
  server CPU us/request   the serving side's processes (nginx's master and
                          workers; for stunnel4 stunnel and its nginx
                          backend; redis-server), from /proc
  client CPU us/request   wrk's or redis-benchmark's own (getrusage of the
                          child), about the same for every TLS variant
  server cores            its CPU seconds per second of the run: the share
                          it won
and the CPU ratio other/shield of the server CPU per request: the rate ratio
the variants would show where the server's CPU is what limits (a server with
the cores to itself), the honest comparison on shared cores. Writes
bench/results/net.json and net.md.

Usage: bench/net/run.py BUILD_DIR [--rounds N] [--seconds S] [--case NAME]...
                        [--base-lib LIBKILN] [--out NAME] [--strace]

  --case NAME      only these cases ("4k keep-alive", "1m new-conn", "redis");
                   default all
  --base-lib PATH  one more variant, "base": the shield with another build's
                   libkiln.so (KILN_RUNTIME_LIB), e.g. main's, to measure a
                   change side by side in the same run
  --out NAME       results as bench/results/NAME.json and NAME.md (default net)
  --strace         after each keep-alive case, one more wrk run per TLS variant
                   (shield, base, nginx) under strace -c -f: system calls per
                   request of its processes (sendto per response: records)
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from cas_fixtures import CasServer  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS_N = 100000  # requests per redis-benchmark run
PORTS = set()


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in PORTS:
            PORTS.add(p)
            return p


def wait_port(port, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}")
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in open(name).read().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total


def family(pid):
    """pid and its descendants (nginx's master and workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                kids = open(f"/proc/{p}/task/{t}/children").read().split()
                todo += [int(k) for k in kids]
        except OSError:
            pass
    return out


NGINX_CONF = """daemon off;
user root root;
master_process on;
worker_processes 2;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  sendfile on;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port} {ssl};
    {tls}
    root {root};
  }}
}}
"""


class Env:
    def __init__(self, build, tmp):
        self.kiln = str(build / "kiln")
        self.tmp = tmp
        self.cas = CasServer(self.kiln, tmp).start()
        self.ident = tmp / "owner.pem"
        subprocess.run([self.kiln, "identity", "create", "--out", str(self.ident)], check=True,
                       capture_output=True)
        self.env = dict(os.environ, **self.cas.env(str(self.ident)))

    def apply(self, text):
        p = self.tmp / "policy.yaml"
        p.write_text(text)
        subprocess.run([self.kiln, "policy", "apply", str(p)], check=True, capture_output=True,
                       env=self.env)

    def cert(self, ref, out):
        pem = subprocess.run([self.kiln, "policy", "certificate", ref], check=True,
                             capture_output=True, env=self.env, text=True).stdout
        out.write_text(pem)
        return out

    def run_argv(self, session, service, prog):
        return [self.kiln, "run", "--cas", self.cas.url, "--cas-ca", self.cas.ca_file,
                "--session", session, "--service", service, "--tee", "sim", "--", prog]


def self_signed(tmp):
    key, crt = tmp / "tls.key", tmp / "tls.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def stunnel(tmp, name, accept, connect, crt, key):
    conf = tmp / f"stunnel-{name}.conf"
    conf.write_text(f"""foreground = yes
pid =
debug = 3
output = {tmp}/stunnel-{name}.log
[{name}]
accept = 127.0.0.1:{accept}
connect = 127.0.0.1:{connect}
cert = {crt}
key = {key}
sslVersionMin = TLSv1.3
""")
    return subprocess.Popen(["stunnel4", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def child_cpu():
    """CPU seconds of the children waited for so far (the clients)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measured(pids, count_of, cmd):
    """Run the client cmd; count_of(stdout) gives (rate, requests). Returns
    the rate and the per-request CPU of the servers (pids) and of the client,
    in us, and the servers' cores (CPU seconds per second)."""
    t0, c0, w0 = cpu_ticks(pids), child_cpu(), time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    t1, c1, w1 = cpu_ticks(pids), child_cpu(), time.monotonic()
    rate, n = count_of(out)
    server = (t1 - t0) / os.sysconf("SC_CLK_TCK")
    return {"rps": rate, "server_us": server * 1e6 / max(n, 1),
            "client_us": (c1 - c0) * 1e6 / max(n, 1), "server_cores": server / (w1 - w0)}


def wrk_counts(out):
    rps = float([ln for ln in out.splitlines() if ln.startswith("Requests/sec:")][0].split()[1])
    n = int([ln for ln in out.splitlines() if " requests in " in ln][0].split()[0])
    return rps, n


def wrk(pids, url, seconds, close):
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", url]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    return measured(pids, wrk_counts, cmd)


def strace_counts(pids, url, seconds):
    """System calls per request of the serving processes (pids) during one
    more keep-alive wrk run under strace -c -f: {"total": n, syscall: n}.
    strace slows the server, not what it calls per request."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as f:
        st = subprocess.Popen(["strace", "-c", "-f", "-o", f.name]
                              + [a for p in pids for a in ("-p", str(p))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # attached
        out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", url], capture_output=True,
                             text=True, check=True).stdout
        st.send_signal(signal.SIGINT)
        st.wait(timeout=60)
        n = max(wrk_counts(out)[1], 1)
        res = {}
        for line in open(f.name).read().splitlines():
            w = line.split()
            if len(w) >= 5 and w[0][0].isdigit() and w[-1] != "total" and w[3].isdigit():
                res[w[-1]] = int(w[3]) / n
            elif len(w) >= 4 and w[-1] == "total":
                res["total"] = int(w[3]) / n
        return res


def nginx_variants(env, tmp, root, crt, key, seconds, base_lib=None):
    """Start the four nginx variants: {name: (url base, [processes whose CPU counts])},
    the processes to stop, the policy's CA file."""
    procs, out = [], {}

    def start(name, cmd, port, ssl, tls):
        prefix = tmp / f"nginx-{name}"
        prefix.mkdir(exist_ok=True)
        (prefix / "nginx.conf").write_text(NGINX_CONF.format(prefix=prefix, port=port, root=root,
                                                              ssl=ssl, tls=tls))
        with open(prefix / "stderr.log", "wb") as log:
            p = subprocess.Popen(cmd + ["-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=log, env=run_env)
        procs.append(p)
        try:
            wait_port(port, p)
        except RuntimeError as e:
            raise RuntimeError(f"{name}: {e}: {(prefix / 'stderr.log').read_text()[-2000:]}")
        return p

    run_env = None
    ports = {n: free_port() for n in ("plain", "shield", "base", "nginx", "backend", "stunnel")}
    env.apply(f"""\
name: bench/nginx
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: web, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: web
    command: [{json.dumps(NGINX)}, -p, {json.dumps(str(tmp / 'nginx-shield'))}, -c,
              {json.dumps(str(tmp / 'nginx-shield' / 'nginx.conf'))}]
    measurement: [any]
    network:
      listen:
        - {{port: {ports['shield']}, certificate: web}}
  - name: base
    command: [{json.dumps(NGINX)}, -p, {json.dumps(str(tmp / 'nginx-base'))}, -c,
              {json.dumps(str(tmp / 'nginx-base' / 'nginx.conf'))}]
    measurement: [any]
    network:
      listen:
        - {{port: {ports['base']}, certificate: web}}
security: {{tee: [sim], allow_insecure_sim: true}}
""")
    ca = env.cert("bench/nginx:ca", tmp / "ca.pem")
    p = start("plain", [NGINX], ports["plain"], "", "")
    out["plain"] = (f"http://127.0.0.1:{ports['plain']}", [p])
    p = start("shield", env.run_argv("bench/nginx", "web", NGINX)[:-1] + [NGINX],
              ports["shield"], "", "")
    out["shield"] = (f"https://127.0.0.1:{ports['shield']}", [p])
    if base_lib:
        # The same policy (service "base": its own port), another runtime.
        run_env = dict(os.environ, KILN_RUNTIME_LIB=str(base_lib))
        p = start("base", env.run_argv("bench/nginx", "base", NGINX)[:-1] + [NGINX],
                  ports["base"], "", "")
        run_env = None
        out["base"] = (f"https://127.0.0.1:{ports['base']}", [p])
    p = start("nginx", [NGINX], ports["nginx"], "ssl",
              f"ssl_certificate {crt}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;")
    out["nginx"] = (f"https://127.0.0.1:{ports['nginx']}", [p])
    backend = start("backend", [NGINX], ports["backend"], "", "")
    s = stunnel(tmp, "nginx", ports["stunnel"], ports["backend"], crt, key)
    procs.append(s)
    wait_port(ports["stunnel"], s)
    out["stunnel"] = (f"https://127.0.0.1:{ports['stunnel']}", [backend, s])
    return out, procs, ca


def nginx_bench(env, tmp, rounds, seconds, cases=None, base_lib=None, strace=False):
    root = tmp / "www"
    root.mkdir()
    (root / "4k.bin").write_bytes(os.urandom(4096))
    (root / "1m.bin").write_bytes(os.urandom(1 << 20))
    crt, key = self_signed(tmp)
    variants, procs, _ = nginx_variants(env, tmp, root, crt, key, seconds, base_lib)
    res = {}
    try:
        for f in ("4k.bin", "1m.bin"):
            for close in (False, True):
                case = f"{f[:-4]} {'new-conn' if close else 'keep-alive'}"
                if cases and case not in cases:
                    continue
                per = {n: [] for n in variants}
                for _ in range(rounds):
                    for n, (base, ps) in variants.items():
                        pids = [x for p in ps for x in family(p.pid)]
                        per[n].append(wrk(pids, f"{base}/{f}", seconds, close))
                res[case] = summarize(per)
                if strace and not close:
                    res[case]["syscalls_per_req"] = {
                        n: strace_counts([x for p in ps for x in family(p.pid)],
                                         f"{base}/{f}", seconds)
                        for n, (base, ps) in variants.items() if n in ("shield", "base", "nginx")}
                print(case, json.dumps(res[case]["median_rps"]), flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    return res


def spread(r):
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def summarize(per):
    """per: {variant: [measured() of each round]}."""
    rps = {n: [m["rps"] for m in v] for n, v in per.items()}
    out = {"median_rps": {n: statistics.median(v) for n, v in rps.items()},
           "rounds_rps": rps, "rounds": per}
    for k in ("server_us", "client_us", "server_cores"):
        out[k] = {n: statistics.median([m[k] for m in v]) for n, v in per.items()}
    out["cpu_us_per_req"] = out["server_us"]  # the name of earlier results
    ratios, cpu_ratios = {}, {}
    for other in per:
        if other == "shield":
            continue
        ratios[f"shield/{other}"] = spread(
            [s / o for s, o in zip(rps["shield"], rps[other]) if o])
        cpu_ratios[f"shield/{other}"] = spread(
            [o["server_us"] / s["server_us"] for s, o in zip(per["shield"], per[other])
             if s["server_us"]])
    out["ratios"] = ratios
    out["cpu_ratios"] = cpu_ratios
    return out


def redis_bench(env, tmp, rounds):
    server = shutil.which("redis-server")
    bench = shutil.which("redis-benchmark")
    crt, key = self_signed(tmp)
    ports = {n: free_port() for n in ("shield", "native", "backend", "stunnel")}
    env.apply(f"""\
name: bench/redis
secrets:
  - {{name: ca, kind: x509-ca}}
  - {{name: srv, kind: x509, issuer: ca, dns: [localhost], ip: [127.0.0.1]}}
services:
  - name: redis
    command: [{json.dumps(server)}, --port, "{ports['shield']}", --bind, 127.0.0.1, --save, "",
              --appendonly, "no", --daemonize, "no"]
    measurement: [any]
    network:
      listen:
        - {{port: {ports['shield']}, certificate: srv}}
security: {{tee: [sim], allow_insecure_sim: true}}
""")
    ca = env.cert("bench/redis:ca", tmp / "redis-ca.pem")
    procs = []

    def start(cmd, port):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_port(port, p)

    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
    start(env.run_argv("bench/redis", "redis", server), ports["shield"])
    start([server, "--port", "0", "--tls-port", str(ports["native"]), "--tls-cert-file", str(crt),
           "--tls-key-file", str(key), "--tls-auth-clients", "no", "--tls-protocols", "TLSv1.3",
           *common], ports["native"])
    start([server, "--port", str(ports["backend"]), *common], ports["backend"])
    s = stunnel(tmp, "redis", ports["stunnel"], ports["backend"], crt, key)
    procs.append(s)
    wait_port(ports["stunnel"], s)
    cas = {"shield": ca, "native": crt, "stunnel": crt}
    servers = {"shield": [procs[0]], "native": [procs[1]], "stunnel": [procs[2], procs[3]]}
    res = {}

    def counts(out):
        line = [ln for ln in out.replace("\r", "\n").splitlines()
                if "requests per second" in ln][-1]
        return float(line.split(":")[1].split()[0]), REDIS_N

    try:
        for test in ("set", "get"):
            per = {n: [] for n in cas}
            for _ in range(rounds):
                for n, cafile in cas.items():
                    pids = [x for p in servers[n] for x in family(p.pid)]
                    per[n].append(measured(pids, counts, [
                        bench, "-h", "127.0.0.1", "-p", str(ports[n]), "--tls", "--cacert",
                        str(cafile), "-n", str(REDIS_N), "-c", "50", "-t", test, "-q"]))
            res[test] = summarize(per)
            print("redis", test, json.dumps(res[test]["median_rps"]), flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--case", action="append", default=[],
                    choices=["4k keep-alive", "4k new-conn", "1m keep-alive", "1m new-conn",
                             "redis"])
    ap.add_argument("--base-lib", type=pathlib.Path)
    ap.add_argument("--out", default="net")
    ap.add_argument("--strace", action="store_true")
    a = ap.parse_args()
    nginx_cases = [c for c in a.case if c != "redis"]
    for prog in ("wrk", "stunnel4", "redis-server", "redis-benchmark", "openssl"):
        if not shutil.which(prog):
            print(f"bench/net: {prog} not installed", file=sys.stderr)
            return 1
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        env = Env(pathlib.Path(a.build), tmp)
        try:
            res = {"load_before": load, "rounds": a.rounds, "seconds": a.seconds,
                   "nginx": nginx_bench(env, tmp, a.rounds, a.seconds, nginx_cases,
                                        a.base_lib, a.strace)
                   if nginx_cases or not a.case else {},
                   "redis": redis_bench(env, tmp, a.rounds)
                   if "redis" in a.case or not a.case else {}}
        finally:
            env.cas.stop()
    out = ROOT / "bench" / "results"
    (out / f"{a.out}.json").write_text(json.dumps(res, indent=1) + "\n")
    md = ["# bench/net: the network shield (one run, ratios per round: median (min-max))", "",
          f"load average before: {load:.1f}, after: {os.getloadavg()[0]:.1f}; {a.rounds} "
          f"rounds of {a.seconds} s per case; {os.cpu_count()} cores", "",
          "rate: requests per second, shield / other. cpu: the other's server CPU per request "
          "/ the shield's (the rate ratio where the server's CPU limits). Targets: >= 0.8x "
          "nginx's own TLS (redis: native --tls is not a target), >= 1.2x stunnel4.", "",
          "| case | shield/s | rate / nginx TLS | rate / stunnel4 | cpu / nginx TLS | "
          "cpu / stunnel4 | rate / plaintext |", "|---|---|---|---|---|---|---|"]

    def r(d, k, kind="ratios"):
        x = d[kind][k]
        return f"{x['median']:.2f} ({x['min']:.2f}-{x['max']:.2f})"

    def per_variant(d, names):
        return ", ".join(f"{d['server_us'][n]:.0f}/{d['client_us'][n]:.0f}/"
                         f"{d['server_cores'][n]:.2f}" for n in names)
    for case, d in res["nginx"].items():
        md.append(f"| nginx {case} | {d['median_rps']['shield']:.0f} | {r(d, 'shield/nginx')} | "
                  f"{r(d, 'shield/stunnel')} | {r(d, 'shield/nginx', 'cpu_ratios')} | "
                  f"{r(d, 'shield/stunnel', 'cpu_ratios')} | {r(d, 'shield/plain')} |")
    for t, d in res["redis"].items():
        md.append(f"| redis {t} | {d['median_rps']['shield']:.0f} | {r(d, 'shield/native')} "
                  f"(native) | {r(d, 'shield/stunnel')} | "
                  f"{r(d, 'shield/native', 'cpu_ratios')} (native) | "
                  f"{r(d, 'shield/stunnel', 'cpu_ratios')} | |")
    names = [n for n in ("shield", "base", "nginx", "stunnel", "plain")
             if res["nginx"] and n in next(iter(res["nginx"].values()))["server_us"]]
    md += ["", "Per variant (medians): server CPU us/request / client CPU us/request / "
           "server cores", ""]
    if res["nginx"]:
        md += ["| case | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for case, d in res["nginx"].items():
            md.append(f"| nginx {case} | " + " | ".join(per_variant(d, [n]) for n in names)
                      + " |")
    if res["redis"]:
        md += ["", "| redis-benchmark | shield | native --tls | stunnel4 |", "|---|---|---|---|"]
        for t, d in res["redis"].items():
            md.append(f"| {t} | " + " | ".join(per_variant(d, [n])
                                               for n in ("shield", "native", "stunnel")) + " |")
    hs = [(size, res["nginx"][f"{size} new-conn"], res["nginx"][f"{size} keep-alive"])
          for size in ("4k", "1m")
          if f"{size} new-conn" in res["nginx"] and f"{size} keep-alive" in res["nginx"]]
    if hs:
        md += ["", "Handshake CPU per connection (server, new-conn minus keep-alive, us): "
               + "; ".join(f"{size}: " + ", ".join(
                   f"{n} {nc['server_us'][n] - ka['server_us'][n]:.0f}"
                   for n in names if n != "plain") for size, nc, ka in hs)]
    if a.base_lib and res["nginx"]:
        md += ["", f"base: the shield with {a.base_lib}", "",
               "| case | rate shield / base | rate base / nginx TLS | cpu shield / base |",
               "|---|---|---|---|"]
        for case, d in res["nginx"].items():
            per = d["rounds_rps"]
            b = [x / y for x, y in zip(per["base"], per["nginx"]) if y]
            md.append(f"| nginx {case} | {r(d, 'shield/base')} | {statistics.median(b):.2f} "
                      f"({min(b):.2f}-{max(b):.2f}) | {r(d, 'shield/base', 'cpu_ratios')} |")
    sc = [(case, d["syscalls_per_req"]) for case, d in res["nginx"].items()
          if "syscalls_per_req" in d]
    if sc:
        md += ["", "System calls per request of the serving processes (strace -c -f, one "
               "more keep-alive run): total, sendto, writev, sendfile, epoll_wait, "
               "rt_sigprocmask", ""]
        for case, d in sc:
            for n, c in d.items():
                md.append(f"- nginx {case}, {n}: " + ", ".join(
                    f"{k} {c.get(k, 0):.2f}" for k in ("total", "sendto", "writev", "sendfile",
                                                       "epoll_wait", "rt_sigprocmask")))
    (out / f"{a.out}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
