"""Attestation with the `host` backend: a real kiln-las on a unix socket signs
evidence about this test process; the CAS trusts it via `kiln cas trust-las`."""
import base64
import hashlib
import json

from cas_fixtures import Workload, las_evidence

POLICY = """\
name: acme/host
services:
  - {{name: app, command: [/bin/app, "{{{{secret.pw}}}}"], measurement: [{meas}]}}
secrets:
  - {{name: pw, kind: ascii}}
security: {{tee: [host]}}
"""




def test_host_attestation(kiln, cas, cas_identity, las, tmp_path):
    sock, cert = las.sock, las.cert
    alice, _ = cas_identity("alice")
    # kiln-las measures this very process; learn its measurement first, after
    # one full round so every shared object Python needs is already mapped.
    w = Workload(cas, tmp_path)
    w.nonce()
    las_evidence(sock, bytes(64))
    first = las_evidence(sock, bytes(64))
    wm = bytes.fromhex(json.loads(base64.b64decode(first["payload"]))["workload_measurement"])
    w.wm = wm

    def attest(session="acme/host"):
        n = w.nonce()
        rd = hashlib.sha512(b"kiln-v1" + w.spki + bytes.fromhex(n) + wm).digest()
        ev = base64.b64encode(json.dumps(las_evidence(sock, rd)).encode()).decode()
        return w.attest(session, "app", tee="host", nonce=n, evidence=ev)

    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.format(meas=wm.hex()))
    kiln("policy", "apply", policy, env=cas.env(alice), check=True)
    # Not trusted yet: refused.
    s, b = attest()
    assert s == 403
    assert "evidence does not verify" in cas.log()
    kiln("cas", "trust-las", cert, "--data", cas.data, check=True)
    s, r = attest()
    assert s == 200, cas.log()
    assert r["insecure"] is False and r["tee"] == "host"
    assert len(r["argv"][1]) == 32
    line = [ln for ln in cas.log().splitlines() if r["request_id"] in ln][-1]
    assert "attestation ok" in line and "INSECURE" not in line
