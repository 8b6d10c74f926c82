#!/usr/bin/env python3
"""bench/cas_store: kiln-cas attestations/s and policy applies/s on its three
stores, measured side by side in one run: SQLite with one CAS process, and
PostgreSQL with one and with two CAS processes on one database (the load
split evenly between the two, as a TCP load balancer would).

Each attestation is GET /v1/nonce + POST /v1/attest on a fresh TLS connection
with an ephemeral client certificate (bench/cas/loadgen.c, mode attest); each
apply a new version of a policy (mode apply, each client its own policy, a new
connection each). PostgreSQL runs with fsync on, as SQLite runs with
synchronous=FULL: every acknowledged write is durable in both.

Configurations are interleaved --repeat times so that all see the same machine
load; the table gives the median [min-max]; ratios are of medians of one run.
The load generator runs on the same CPUs as the servers and PostgreSQL.

Where the time goes, per operation: CPU of the CAS processes, of PostgreSQL
(the postmaster and its backends) and of the load generator, and the
statements PostgreSQL executed (pg_stat_statements, round trips included). The
CPUs' busy share of the measurement (all three over seconds x CPUs) says
whether a second CAS process could have had a CPU to run on.

Usage: bench/cas_store/run.py --kiln build/kiln --loadgen build/bench/cas/loadgen
                              [--seconds 4] [--repeat 3] [--clients 16]
                              [--out bench/results/cas_store.json]
"""
import argparse
import importlib.util
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from cas_fixtures import CasServer  # noqa: E402
from pgserver import PgServer  # noqa: E402

# The policy and the table cells of bench/cas (one attested service, one secret).
_spec = importlib.util.spec_from_file_location("cas_bench", ROOT / "bench" / "cas" / "run.py")
cas_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cas_bench)
POLICY, spread, cpu_seconds = cas_bench.POLICY, cas_bench.spread, cas_bench.cpu_seconds

CONFIGS = ("sqlite-1", "postgresql-1", "postgresql-2")


def pg_cpu_s(pg):
    """CPU seconds of the postmaster and every process it started (a backend
    that exits meanwhile is counted in the postmaster's reaped time)."""
    master, *kids = pg.pids()
    total = cpu_seconds(master, reaped=True)
    for k in kids:
        try:
            total += cpu_seconds(k)
        except OSError:
            pass
    return total


def pg_statements(pg, db):
    """Statements PostgreSQL has executed in db (pg_stat_statements)."""
    out = pg.psql(db, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                      "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return int(out.strip() or 0)


def loadgen(args, servers, ident, mode, pg=None, db=None):
    """args.clients clients split over the servers, all at once; summed, with
    the CPU each side spent and the statements PostgreSQL ran meanwhile."""
    cas0 = sum(cpu_seconds(c.proc.pid) for c in servers)
    pg0 = pg_cpu_s(pg) if db else 0.0
    st0 = pg_statements(pg, db) if db else 0
    gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for i, cas in enumerate(servers):
        n = args.clients // len(servers)
        # Apply: each loadgen's policies named apart (bench/<mode><i><client>).
        m = mode if mode == "attest" else f"apply{i}x"
        procs.append(subprocess.Popen([args.loadgen, m, "127.0.0.1", str(cas.port),
                                       cas.ca_file, ident, str(n), str(args.seconds)],
                                      stdout=subprocess.PIPE, text=True))
    outs = [json.loads(p.communicate()[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ops = sum(o["ops_per_s"] for o in outs) * args.seconds
    cpu = {"cas": sum(cpu_seconds(c.proc.pid) for c in servers) - cas0,
           "postgresql": pg_cpu_s(pg) - pg0 if db else 0.0,
           "loadgen": (gen1.ru_utime + gen1.ru_stime) - (gen0.ru_utime + gen0.ru_stime)}
    return {"ops_per_s": sum(o["ops_per_s"] for o in outs),
            "errors": sum(o["errors"] for o in outs),
            "p50_ms": max(o["p50_ms"] for o in outs),
            "p99_ms": max(o["p99_ms"] for o in outs),
            "cpu_us_per_op": {k: 1e6 * v / max(ops, 1) for k, v in cpu.items()},
            "cpu_busy": sum(cpu.values()) / (args.seconds * os.cpu_count()),
            "statements_per_op": (pg_statements(pg, db) - st0) / max(ops, 1) if db else None}


def one_run(args, config, pg):
    store, n = config.rsplit("-", 1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        db = pg.new_store()[0] if store == "postgresql" else None
        if db:
            pg.psql(db, "CREATE EXTENSION pg_stat_statements")
        servers = []
        try:
            for i in range(int(n)):
                (tmp / str(i)).mkdir()
                cas = CasServer(args.kiln, tmp / str(i), pg=(pg, db) if db else None)
                if i:
                    cas.data.mkdir(mode=0o700)
                    for f in ("ca.key", "ca.pem", "master.key"):
                        shutil.copy2(servers[0].data / f, cas.data / f)
                servers.append(cas.start())
            ident = str(tmp / "id.pem")
            subprocess.run([args.kiln, "identity", "create", "--out", ident], check=True,
                           capture_output=True)
            (tmp / "p.yaml").write_text(POLICY)
            subprocess.run([args.kiln, "policy", "apply", tmp / "p.yaml"],
                           env=dict(os.environ, **servers[0].env(ident)), check=True,
                           capture_output=True)
            return {"attest": loadgen(args, servers, ident, "attest", pg, db),
                    "apply": loadgen(args, servers, ident, "apply", pg, db),
                    "loadavg": os.getloadavg()[0]}
        finally:
            for cas in servers:
                cas.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--out", default="bench/results/cas_store.json")
    args = ap.parse_args()
    pg = PgServer(fsync=True, settings=["shared_preload_libraries=pg_stat_statements"])
    runs = {c: [] for c in CONFIGS}
    try:
        for _ in range(args.repeat):
            for c in CONFIGS:
                runs[c].append(one_run(args, c, pg))
    finally:
        pg.close()
    med = {c: {k: statistics.median(r[k]["ops_per_s"] for r in runs[c])
               for k in ("attest", "apply")} for c in CONFIGS}
    ratios = {k: {"postgresql-1 / sqlite-1": med["postgresql-1"][k] / med["sqlite-1"][k],
                  "postgresql-2 / postgresql-1": med["postgresql-2"][k] /
                  med["postgresql-1"][k]} for k in ("attest", "apply")}
    # Per run, the same ratios: their spread shows how much to trust the medians.
    per_run = {k: {"postgresql-1 / sqlite-1": [runs["postgresql-1"][i][k]["ops_per_s"] /
                                               runs["sqlite-1"][i][k]["ops_per_s"]
                                               for i in range(args.repeat)],
                   "postgresql-2 / postgresql-1": [runs["postgresql-2"][i][k]["ops_per_s"] /
                                                   runs["postgresql-1"][i][k]["ops_per_s"]
                                                   for i in range(args.repeat)]}
               for k in ("attest", "apply")}
    result = {"configs": runs, "ratios_of_medians": ratios, "ratios_per_run": per_run,
              "seconds": args.seconds, "repeat": args.repeat, "clients": args.clients,
              "cpus": os.cpu_count()}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    md = [f"kiln-cas stores, {args.clients} clients, {args.repeat} runs of {args.seconds:g} s "
          "per measurement per configuration (interleaved); median [min–max].", "",
          "| store | CAS processes | attest/s | attest p99 ms | apply/s | apply p99 ms |",
          "|---|---|---|---|---|---|"]
    for c in CONFIGS:
        store, n = c.rsplit("-", 1)
        rs = runs[c]
        md.append(f"| {store} | {n} | {spread([r['attest']['ops_per_s'] for r in rs], '{:.0f}')}"
                  f" | {spread([r['attest']['p99_ms'] for r in rs], '{:.1f}')} | "
                  f"{spread([r['apply']['ops_per_s'] for r in rs], '{:.0f}')} | "
                  f"{spread([r['apply']['p99_ms'] for r in rs], '{:.1f}')} |")
    md.append("")
    for k, what in (("attest", "attestations"), ("apply", "policy applies")):
        for name, v in ratios[k].items():
            md.append(f"- {what}: {name} = {v:.2f} (per run: "
                      f"{', '.join(f'{x:.2f}' for x in per_run[k][name])})")
    md += ["", "Per operation (median of the runs): CPU µs of the CAS processes, PostgreSQL "
           "and the load generator; PostgreSQL statements; the CPUs' busy share during "
           "the measurement.", "",
           "| store | CAS processes | op | CAS µs | PostgreSQL µs | loadgen µs | statements | "
           "CPUs busy |", "|---|---|---|---|---|---|---|---|"]
    for c in CONFIGS:
        store, n = c.rsplit("-", 1)
        for k in ("attest", "apply"):
            rs = [r[k] for r in runs[c]]
            per = {w: statistics.median(r["cpu_us_per_op"][w] for r in rs)
                   for w in ("cas", "postgresql", "loadgen")}
            st = (f"{statistics.median(r['statements_per_op'] for r in rs):.1f}"
                  if rs[0]["statements_per_op"] is not None else "–")
            busy = statistics.median(r["cpu_busy"] for r in rs)
            md.append(f"| {store} | {n} | {k} | {per['cas']:.0f} | "
                      f"{per['postgresql']:.0f} | {per['loadgen']:.0f} | {st} | "
                      f"{100 * busy:.0f} % |")
    loads = [r["loadavg"] for c in CONFIGS for r in runs[c]]
    md += ["", f"load average during the runs {min(loads):.1f}–{max(loads):.1f} on "
           f"{os.cpu_count()} CPUs; servers, PostgreSQL and the load generator share them "
           "(two CAS processes cannot use more CPUs than one here: compare ratios)"]
    text = "\n".join(md) + "\n"
    pathlib.Path(args.out).with_suffix(".md").write_text(text)
    print(text)
    errors = sum(r[k]["errors"] for c in CONFIGS for r in runs[c] for k in ("attest", "apply"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
