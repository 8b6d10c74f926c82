"""kiln-cas with several event loops (--threads 4) under concurrent clients: every
answer is correct, secrets and volume keys made on first use are made once, no
volume tag update is lost, a nonce is used once even when loops race for it, and
the audit log stays one verified chain. No timing is asserted."""
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cas_fixtures import CasServer, Workload

N_VOLUMES = 16

POLICY = """\
name: conc/app
secrets:
  - {name: pw, kind: ascii, size: 24}
  - {name: sig, kind: key, algorithm: p256}
volumes:
%s
services:
  - name: app
    command: [/bin/app, "{{secret.pw}}"]
    environment: {SIG: "{{secret.sig.pem}}"}
    mounts:
%s
    measurement: [any]
security: {tee: [sim], allow_insecure_sim: true}
""" % ("\n".join(f"  - {{name: v{i}}}" for i in range(N_VOLUMES)),
       "\n".join(f"      - {{volume: v{i}, path: /v{i}}}" for i in range(N_VOLUMES)))


def small_policy(name, pred, version):
    return (f"name: {name}\npredecessor: {pred}\nservices:\n  - name: s\n"
            f"    command: [/bin/s, \"v{version}\"]\n    measurement: [any]\n"
            "security: {tee: [sim], allow_insecure_sim: true}\n")


@pytest.fixture
def cas4(kiln_bin, tmp_path):
    server = CasServer(kiln_bin, tmp_path, ["--threads", "4"]).start()
    yield server
    rc = server.stop()
    assert rc in (None, 0), f"kiln cas serve exited {rc}:\n{server.log()[-4000:]}"


def post_policy(cas, ident, text):
    return cas.request("POST", "/v1/policies", text, certfile=ident)


def apply_chain(cas, ident, name, n):
    """Create then update one policy n times, each naming the previous hash."""
    pred, versions = "null", []
    for v in range(1, n + 1):
        status, body = post_policy(cas, ident, small_policy(name, pred, v))
        assert status == (201 if v == 1 else 200), body
        assert body["name"] == name
        versions.append(body["version"])
        pred = body["hash"]
    return versions


def audit_kinds(kiln, cas):
    p = kiln("audit", "verify", "--data", cas.data, check=True)
    assert "chain and signatures verified" in p.stdout, p.stdout
    p = kiln("audit", "show", "--data", cas.data, check=True)
    return [ln.split()[2] for ln in p.stdout.splitlines()]


def test_threads_option(kiln):
    p = kiln("cas", "serve", "--data", "/nonexistent/x", "--threads", "0")
    assert p.returncode == 2 and "--threads '0': expected a number from 1 to 64" in p.stderr
    p = kiln("cas", "serve", "--data", "/nonexistent/x", "--threads", "65")
    assert p.returncode == 2
    assert "--threads" in kiln("cas", "serve", "--help", check=True).stdout


def parallel_attestations_and_applies(kiln, cas, alice, tmp_path, n_workloads, n_chains,
                                      chain_len):
    assert post_policy(cas, alice, POLICY)[0] == 201
    workloads = [Workload(cas, tmp_path) for _ in range(n_workloads)]

    def attest(w):
        return w.attest("conc/app", "app")

    with ThreadPoolExecutor(max_workers=n_workloads + n_chains) as ex:
        applies = [ex.submit(apply_chain, cas, alice, f"conc/p{i}", chain_len)
                   for i in range(n_chains)]
        results = list(ex.map(attest, workloads))
        for f in applies:
            assert f.result() == list(range(1, chain_len + 1))
    # Every attestation succeeded and saw the same secrets and volume keys: each was
    # generated once although 64 requests asked for it first at the same time.
    for status, body in results:
        assert status == 200, body
        assert body["insecure"] is True
    assert len({body["argv"][1] for _, body in results}) == 1
    assert len({body["env"]["SIG"] for _, body in results}) == 1
    vols = {json.dumps(body["volumes"], sort_keys=True) for _, body in results}
    assert len(vols) == 1
    assert len(results[0][1]["volumes"]) == N_VOLUMES
    # Every workload holds a grant: each works on its own volume concurrently.
    vol_ids = [v["id"] for v in results[0][1]["volumes"]]

    def cycles(i):
        w, base = workloads[i], f"/v1/volumes/{vol_ids[i]}"
        for tag in range(1, 6):
            assert w.post(base + "/prepare", {"tag": tag}) == \
                (200, {"committed": tag - 1, "prepared": tag})
            assert w.post(base + "/commit", {"tag": tag}) == \
                (200, {"committed": tag, "prepared": None})
        return w.get(base + "/tag")

    with ThreadPoolExecutor(max_workers=N_VOLUMES) as ex:
        tags = list(ex.map(cycles, range(N_VOLUMES)))
    assert tags == [(200, {"committed": 5, "prepared": None})] * N_VOLUMES
    # All of it is durable: a restart shows every tag and policy version.
    cas.restart()
    status, body = Workload(cas, tmp_path).attest("conc/app", "app")
    assert status == 200
    assert [v["tag"]["committed"] for v in body["volumes"]] == [5] * N_VOLUMES
    assert body["argv"][1] == results[0][1]["argv"][1]
    for i in range(n_chains):
        status, body = cas.request("GET", f"/v1/policies/conc/p{i}", certfile=alice)
        assert status == 200 and body["version"] == chain_len
    metrics = cas.metrics()
    assert 'kiln_cas_attestations_total{result="ok",reason=""} 1\n' in metrics
    cas.stop()
    kinds = audit_kinds(kiln, cas)
    assert kinds.count("secrets.release") == n_workloads + 1
    assert kinds.count("policy.create") == n_chains + 1
    assert kinds.count("policy.update") == n_chains * (chain_len - 1)
    assert len(kinds) == n_workloads + 1 + n_chains + 1 + n_chains * (chain_len - 1)


def test_parallel_attestations_and_applies(kiln, cas4, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    parallel_attestations_and_applies(kiln, cas4, alice, tmp_path, 64, 8, 6)


@pytest.mark.stress
def test_parallel_attestations_and_applies_stress(kiln, kiln_bin, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    for trial in range(3):
        workdir = tmp_path / f"trial{trial}"
        workdir.mkdir()
        cas = CasServer(kiln_bin, workdir, ["--threads", "8"]).start()
        try:
            parallel_attestations_and_applies(kiln, cas, alice, workdir, 256, 16, 10)
        finally:
            cas.stop()


def test_nonce_used_once_when_loops_race(kiln, cas4, cas_identity, tmp_path):
    cas = cas4
    alice, _ = cas_identity("alice")
    assert post_policy(cas, alice, POLICY.replace("conc/app", "conc/race"))[0] == 201
    racers, rounds = 8, 6
    workloads = [Workload(cas, tmp_path) for _ in range(racers)]
    ok_total = 0
    for _ in range(rounds):
        nonce = workloads[0].nonce()
        barrier = threading.Barrier(racers)

        def race(w):
            # Handshake first, then all send the same nonce at once.
            conn = http.client.HTTPSConnection("127.0.0.1", cas.port, timeout=60,
                                               context=cas.ssl_context(w.pem))
            try:
                conn.connect()
                body = json.dumps({"session": "conc/race", "service": "app", "tee": "sim",
                                   "evidence": w.evidence(nonce), "nonce": nonce})
                barrier.wait()
                conn.request("POST", "/v1/attest", body=body)
                r = conn.getresponse()
                return r.status, json.loads(r.read())
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=racers) as ex:
            res = list(ex.map(race, workloads))
        statuses = sorted(s for s, _ in res)
        assert statuses == [200] + [403] * (racers - 1), res
        ok_total += 1
    metrics = cas.metrics()
    assert f'kiln_cas_attestations_total{{result="ok",reason=""}} {ok_total}\n' in metrics
    assert (f'kiln_cas_attestations_total{{result="refused",reason="stale_nonce"}} '
            f'{rounds * (racers - 1)}\n') in metrics
    assert cas.log().count("stale nonce: unknown, already used or expired") == \
        rounds * (racers - 1)
    cas.stop()
    kinds = audit_kinds(kiln, cas)
    assert kinds == ["policy.create"] + ["secrets.release"] * rounds


def test_a_refusal_burns_the_nonce(kiln, cas4, cas_identity, tmp_path):
    """Evidence is verified before the nonce is consumed (without the store lock);
    a refusal at any step still burns the nonce: no second try with it."""
    cas = cas4
    alice, _ = cas_identity("alice")
    assert post_policy(cas, alice, POLICY.replace("conc/app", "conc/burn"))[0] == 201
    w, other = Workload(cas, tmp_path), Workload(cas, tmp_path)
    refusals = [
        (dict(evidence="not base64!"), "bad_evidence"),
        (dict(evidence=None, tee="sgx9"), "unknown_tee"),
        (dict(evidence="e30="), "bad_evidence"),  # {} does not verify
        (dict(evidence="other"), "binding_mismatch"),
        (dict(evidence=None, session="conc/none"), "unknown_session"),
    ]
    for kw, label in refusals:
        n = w.nonce()
        kw = dict(kw)
        if kw.get("evidence") == "other":
            kw["evidence"] = other.evidence(n)
        status, body = w.attest(kw.pop("session", "conc/burn"), "app", nonce=n, **kw)
        assert status == 403 and body["error"] == "attestation refused", (label, body)
        status, body = w.attest("conc/burn", "app", nonce=n)
        assert status == 403, (label, body)
    metrics = cas.metrics()
    assert (f'kiln_cas_attestations_total{{result="refused",reason="stale_nonce"}} '
            f'{len(refusals)}\n') in metrics
    assert w.attest("conc/burn", "app")[0] == 200
