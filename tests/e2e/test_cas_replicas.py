"""Two kiln-cas processes on one PostgreSQL store (issue 15): interchangeable,
and correct under concurrency across processes. Clients race policy updates
with one predecessor (exactly one wins), a nonce fetched at one replica is used
at the other, clients race with one nonce at both (exactly one is served), a
volume tag advances once per prepare/commit across replicas, and the audit log
stays one chain that verifies. The store survives PostgreSQL restarting: a
request after the restart is served on a new connection; while PostgreSQL is
down requests get a clean error and the CAS keeps running. The volume grants
of attested workload keys are rows of the store: a workload attested at one
process prepares and commits its volume tags at the other, and a grant evicted,
expired or deleted with its policy at one is refused at the other. No timing is
asserted."""
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cas_fixtures import CasServer, Workload

RACERS = 8


def policy(name, pred, version):
    return (f"name: {name}\npredecessor: {pred}\n"
            "secrets:\n  - {name: pw, kind: ascii, size: 24}\n"
            "volumes:\n  - {name: data}\n"
            "services:\n  - name: app\n"
            f"    command: [/bin/app, \"{{{{secret.pw}}}}\", \"v{version}\"]\n"
            "    mounts: [{volume: data, path: /data}]\n"
            "    measurement: [any]\n"
            "security: {tee: [sim], allow_insecure_sim: true}\n")


def start_replicas(kiln_bin, tmp_path, pg_server, args_a=(), args_b=()):
    """Two CAS processes on one new database; the second set up with a copy of
    the first's CA and master key, as an operator would."""
    name, _ = pg_server.new_store()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = CasServer(kiln_bin, tmp_path / "a", ["--threads", "2", *args_a],
                  pg=(pg_server, name)).start()
    a.data.chmod(0o700)
    b_data = tmp_path / "b" / "cas-data"
    b_data.mkdir(mode=0o700)
    for f in ("ca.key", "ca.pem", "master.key"):
        shutil.copy2(a.data / f, b_data / f)
    b = CasServer(kiln_bin, tmp_path / "b", ["--threads", "2", *args_b],
                  pg=(pg_server, name)).start()
    assert a.fingerprint == b.fingerprint
    return a, b


def stop_replicas(a, b):
    for cas in (a, b):
        rc = cas.stop()
        assert rc in (None, 0), f"kiln cas serve exited {rc}:\n{cas.log()[-4000:]}"


@pytest.fixture
def replicas(kiln_bin, tmp_path, pg_server):
    a, b = start_replicas(kiln_bin, tmp_path, pg_server)
    yield a, b
    stop_replicas(a, b)


def post(cas, ident, text):
    return cas.request("POST", "/v1/policies", text, certfile=ident)


def verify_audit(kiln, cas):
    p = kiln("audit", "verify", "--data", cas.data, *cas.store_args, check=True)
    assert "chain and signatures verified" in p.stdout
    return int(p.stdout.split()[3])


def test_replicas_race(kiln, replicas, cas_identity, tmp_path):
    a, b = replicas
    alice, _ = cas_identity("alice")
    status, v1 = post(a, alice, policy("rep/app", "null", 1))
    assert status == 201, v1
    # Policy updates with one predecessor, half at each replica: one wins.
    go = threading.Barrier(RACERS)

    def update(i):
        go.wait()
        return post((a, b)[i % 2], alice, policy("rep/app", v1["hash"], 100 + i))

    with ThreadPoolExecutor(RACERS) as ex:
        results = list(ex.map(update, range(RACERS)))
    won = [body for status, body in results if status == 200]
    assert len(won) == 1, results
    assert sorted(s for s, _ in results) == [200] + [409] * (RACERS - 1), results
    for cas in (a, b):
        status, got = cas.request("GET", "/v1/policies/rep/app", certfile=alice)
        assert status == 200 and got["hash"] == won[0]["hash"] and got["version"] == 2

    # A nonce from one replica is good at the other, once.
    w = Workload(a, tmp_path)
    s, r1 = Workload(b, tmp_path).attest("rep/app", "app", nonce=w.nonce())
    assert s == 200, r1
    # One nonce, racing clients at both replicas: exactly one is served.
    nonce = w.nonce()
    ev = w.evidence(nonce)
    go = threading.Barrier(RACERS)

    def attest(i):
        go.wait()
        cas = (a, b)[i % 2]
        body = {"session": "rep/app", "service": "app", "tee": "sim", "evidence": ev,
                "nonce": nonce}
        return cas.request("POST", "/v1/attest", body, certfile=w.pem)[0]

    with ThreadPoolExecutor(RACERS) as ex:
        statuses = sorted(ex.map(attest, range(RACERS)))
    assert statuses == [200] + [403] * (RACERS - 1), statuses

    # The secret released is the same at both replicas (one store).
    s, r2 = Workload(a, tmp_path).attest("rep/app", "app")
    assert s == 200 and r2["argv"][1] == r1["argv"][1]

    # Volume tags: prepare/commit alternating replicas, each step seen by both.
    vid = r2["volumes"][0]["id"]
    wa = Workload(a, tmp_path)
    assert wa.attest("rep/app", "app")[0] == 200
    wb = Workload(b, tmp_path)
    assert wb.attest("rep/app", "app")[0] == 200
    base = f"/v1/volumes/{vid}"
    for tag in range(1, 5):
        w1, w2 = (wa, wb) if tag % 2 else (wb, wa)
        assert w1.post(base + "/prepare", {"tag": tag})[0] == 200
        assert w2.post(base + "/commit", {"tag": tag}) == \
            (200, {"committed": tag, "prepared": None})
    assert a.volume_committed("rep/app") == 4

    # One chain: every acknowledged change and release is in it, in one order.
    n = verify_audit(kiln, a)
    p = kiln("audit", "show", "--data", a.data, *a.store_args, check=True)
    kinds = [ln.split()[2] for ln in p.stdout.splitlines()]
    assert len(kinds) == n
    assert kinds.count("policy.update") == 1 and kinds.count("secrets.release") == 5


def test_store_restart_and_outage(kiln, replicas, cas_identity, pg_server, tmp_path):
    a, b = replicas
    alice, _ = cas_identity("alice")
    status, v1 = post(a, alice, policy("rep/r", "null", 1))
    assert status == 201
    pg_server.stop()
    # Down: a clean error, no crash, nothing half-applied.
    status, body = post(b, alice, policy("rep/r", v1["hash"], 2))
    assert status in (500, 503), (status, body)
    assert a.request("GET", "/v1/health")[0] == 200
    pg_server.start()
    # Up again: both replicas reconnect for the next request.
    status, v2 = post(b, alice, policy("rep/r", v1["hash"], 2))
    assert status == 200, v2
    status, got = a.request("GET", "/v1/policies/rep/r", certfile=alice)
    assert status == 200 and got["hash"] == v2["hash"]
    assert Workload(a, tmp_path).attest("rep/r", "app")[0] == 200
    assert Workload(b, tmp_path).attest("rep/r", "app")[0] == 200
    verify_audit(kiln, b)


def test_audit_verify_while_replicas_write(kiln, replicas, cas_identity):
    """kiln audit verify reads the log and its signed head from one snapshot:
    appends by running CAS processes meanwhile never look like a cut log."""
    a, b = replicas
    alice, _ = cas_identity("alice")
    stop = threading.Event()
    errors = []

    def writer(cas, name):
        pred, version = "null", 1
        while not stop.is_set():
            status, body = post(cas, alice, policy(name, pred, version))
            if status not in (200, 201):
                errors.append((status, body))
                return
            pred, version = body["hash"], version + 1

    threads = [threading.Thread(target=writer, args=(cas, f"rep/w{i}"))
               for i, cas in enumerate((a, b))]
    for t in threads:
        t.start()
    try:
        counts = [verify_audit(kiln, (a, b)[i % 2]) for i in range(6)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert counts == sorted(counts) and counts[-1] > counts[0], counts



RACE_POLICY = ("name: rep/c\npredecessor: null\nsecrets:\n"
               "  - {name: ca, kind: x509-ca, common_name: \"Rep CA\"}\n"
               "services:\n  - name: app\n    command: [/bin/app]\n"
               "    measurement: [any]\n    console: protected\n"
               "security: {tee: [sim], allow_insecure_sim: true}\n")
RACE_ROUNDS = 25


# About 14 s each (25 rounds of a race across two processes): make stress.
@pytest.mark.stress
@pytest.mark.parametrize("path,field", [("/v1/certificate", {"secret": "ca"}),
                                        ("/v1/console", {"service": "app"})])
def test_key_request_races_delete(replicas, cas_identity, pg_server, path, field):
    """A certificate or console key request at one process racing the policy's
    delete at the other: it reads the policy, then waits for the store's lock
    while the delete (and the secrets with it) commits. Inside its transaction
    it must find the policy gone and answer 503, not make the secret or key
    again for the policy that is gone: that row would stay in the store, and a
    later policy of the same name (maybe someone else's) would inherit it."""
    a, b = replicas
    alice, _ = cas_identity("alice")
    statuses = []
    for i in range(RACE_ROUNDS):
        status, body = post(a, alice, RACE_POLICY)
        assert status == 201, body
        got = []

        def ask():
            for _ in range(4):
                got.append(b.request("POST", path, {"session": "rep/c", **field},
                                     certfile=alice))

        t = threading.Thread(target=ask)
        t.start()
        status, _ = a.request("DELETE", "/v1/policies/rep/c", certfile=alice)
        assert status == 200
        t.join()
        left = pg_server.psql(a.pg[1], "SELECT count(*) FROM secrets WHERE session = 'rep/c'")
        assert left == "0\n", (i, [s for s, _ in got])
        for s, body in got:
            assert s in (200, 403, 503), (s, body)
            if s == 503:
                assert body["error"] == "the policy changed during the request, ask again"
        statuses += [s for s, _ in got]
    print(path, {s: statuses.count(s) for s in set(statuses)})


def grant_rows(pg_server, cas, session):
    return pg_server.psql(cas.pg[1], f"SELECT count(*) FROM grants WHERE session = '{session}'")


def test_grants_shared_by_replicas(kiln_bin, tmp_path, pg_server, cas_identity):
    a, b = start_replicas(kiln_bin, tmp_path, pg_server, ["--grants-per-policy", "2"],
                          ["--grants-per-policy", "2"])
    try:
        alice, _ = cas_identity("alice")
        status, body = post(a, alice, policy("rep/g", "null", 1))
        assert status == 201, body
        vid = None

        def tags(w, cas, tag):
            w.cas = cas
            vol = f"/v1/volumes/{vid}"
            got = [w.post(vol + "/prepare", {"tag": tag}), w.post(vol + "/commit", {"tag": tag})]
            assert [s for s, _ in got] == [200, 200], got
            return got[1][1]

        def refused(w, cas, tag):
            w.cas = cas
            s, body = w.post(f"/v1/volumes/{vid}/prepare", {"tag": tag})
            assert s == 403 and body["error"] == "this key holds no grant for the volume"

        # Attested through A, tags through B; and the reverse.
        w1 = Workload(a, tmp_path)
        s, r = w1.attest("rep/g", "app")
        assert s == 200, r
        vid = r["volumes"][0]["id"]
        assert tags(w1, b, 1) == {"committed": 1, "prepared": None}
        w2 = Workload(b, tmp_path)
        assert w2.attest("rep/g", "app")[0] == 200
        assert tags(w2, a, 2) == {"committed": 2, "prepared": None}
        # A third key at A evicts the policy's oldest grant (w1's).
        w3 = Workload(a, tmp_path)
        assert w3.attest("rep/g", "app")[0] == 200
        assert grant_rows(pg_server, a, "rep/g") == "2\n"
        assert "grant evicted: policy holds its limit of live grants" in a.log()
        # Evicted at A: refused at B, and at A.
        refused(w1, b, 3)
        refused(w1, a, 3)
        tags(w3, b, 3)

        # Grants outlive a restart: B made w2's, and serves it after one.
        b.extra_args += ["--grant-ttl", "1"]
        b.restart()
        tags(w2, b, 4)
        # Expired: w4's grant, made by B (1 s), is refused at A (whose own
        # grants last a day) and at B. It evicted w2's, the oldest.
        w4 = Workload(b, tmp_path)
        assert w4.attest("rep/g", "app")[0] == 200
        time.sleep(1.2)
        refused(w4, a, 5)
        refused(w4, b, 5)
        refused(w2, a, 5)
        tags(w3, a, 5)

        # The policy deleted through A: w3's tag request through B is refused,
        # and no grant of the policy is left.
        assert a.request("DELETE", "/v1/policies/rep/g", certfile=alice)[0] == 200
        refused(w3, b, 6)
        assert grant_rows(pg_server, a, "rep/g") == "0\n"
        # A policy of the same name again: the old keys hold nothing in it.
        status, body = post(b, alice, policy("rep/g", "null", 1))
        assert status == 201, body
        s, r = Workload(b, tmp_path).attest("rep/g", "app")
        assert s == 200, r
        assert r["volumes"][0]["id"] != vid
        vid = r["volumes"][0]["id"]
        refused(w3, a, 1)
    finally:
        stop_replicas(a, b)
