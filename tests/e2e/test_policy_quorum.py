"""Quorum rules in policies (issue 12): `{require: M, of: [...]}` for
access.read/update/delete and a secret's export, validated strictly, enforced by
the CAS with a message naming the rule; a change one stakeholder cannot make alone
waits as a pending proposal until approved (online or with detached signatures);
`kiln audit verify` stays clean. Attacks: tests/e2e/security/test_quorum_attacks.py."""
import re

import pytest

from cas_fixtures import STORES

OWNER_ONLY_2_OF_3 = """\
name: acme/q
predecessor: {pred}
access:
  update: {{require: 2, of: [owner, {bob}, {carol}]}}
  read: [owner, {dave}]
secrets:
  - name: k
    kind: binary
    export: {{require: 1, of: [{carol}], to: {to}}}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_validate_quorum_forms(kiln, tmp_path, cas_identity):
    _, bob = cas_identity("bob")
    ok = write(tmp_path, "ok.yaml", "name: a\naccess:\n  update: {require: 2, of: [owner, "
               f"{bob}]}}\n  delete: [owner]\n")
    p = kiln("policy", "validate", ok, check=True)
    assert re.fullmatch(r".*: ok, sha256:[0-9a-f]{64}\n", p.stdout)
    # {require: 1, of: L} is the list L: same hash
    same1 = write(tmp_path, "l.yaml", f"name: a\naccess: {{update: [owner, {bob}]}}\n")
    same2 = write(tmp_path, "r.yaml", f"name: a\naccess: {{update: {{require: 1, of: [{bob}, "
                  "owner]}}\n")
    h1 = kiln("policy", "validate", same1, check=True).stdout.split()[-1]
    assert kiln("policy", "validate", same2, check=True).stdout.split()[-1] == h1
    bad = write(tmp_path, "bad.yaml", f"name: a\naccess:\n  update: {{require: 3, of: [owner, "
                f"{bob}]}}\n")
    p = kiln("policy", "validate", bad)
    assert p.returncode == 1
    assert p.stderr == (f"kiln: {bad}:3:21: access update: require 3 is more than the 2 "
                        "identities in 'of' (it could never be met)\n")
    dup = write(tmp_path, "dup.yaml", f"name: a\naccess:\n  read: {{require: 1, of: [{bob}, "
                f"{bob}]}}\n")
    p = kiln("policy", "validate", dup)
    assert p.returncode == 1 and f"access read: duplicate entry '{bob}'" in p.stderr


def test_quorum_refuses_one_stakeholder(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    carol, carol_id = cas_identity("carol")
    dave, dave_id = cas_identity("dave")
    ids = dict(bob=bob_id, carol=carol_id, dave=dave_id)
    first = write(tmp_path, "p1.yaml", OWNER_ONLY_2_OF_3.format(pred="null", to="[]", **ids))
    p = kiln("policy", "apply", first, env=cas.env(alice), check=True)
    h = p.stdout.split()[-1]
    update = write(tmp_path, "p2.yaml", OWNER_ONLY_2_OF_3.format(pred=h, to="[]", **ids)
                   .replace("kind: binary", "kind: binary\n    size: 48"))
    # The owner alone: one of the two approvals needed; the change waits as a
    # proposal. Bob proposing the same change again does not reset or double it.
    p = kiln("policy", "apply", update, env=cas.env(alice), check=True)
    assert p.stdout.startswith("proposed acme/q ")
    assert (f"needs: access.update needs 2 of [owner, {bob_id}, {carol_id}]; this request "
            f"has 1 ({alice_id})") in p.stdout, p.stdout
    p = kiln("policy", "apply", update, env=cas.env(bob))
    assert p.returncode == 1 and "is already pending (re-proposing does not reset it" in p.stderr
    # Dave takes no part in updates: he learns nothing.
    p = kiln("policy", "apply", update, env=cas.env(dave))
    assert p.returncode == 1 and "403: not allowed or not found" in p.stderr
    # Deleting falls back to the update rule: one stakeholder cannot delete either;
    # the deletion waits as a proposal.
    p = kiln("policy", "delete", "acme/q", env=cas.env(bob), check=True)
    assert p.stdout.startswith(f"proposed delete acme/q {h}\n")
    assert "needs: access.update (there is no access.delete) needs 2 of" in p.stdout
    # Dave reads (the read list) but takes no part in updates: he cannot approve.
    assert "name: acme/q" in kiln("policy", "get", "acme/q", env=cas.env(dave),
                                  check=True).stdout
    assert "name: acme/q" in kiln("policy", "get", "acme/q", env=cas.env(carol),
                                  check=True).stdout
    # Nothing changed, and the audit log says exactly that: the refusals are in it.
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == f"acme/q 1 {h}\n"
    p = kiln("audit", "show", "--data", cas.data, check=True)
    kinds = [line.split()[2] for line in p.stdout.splitlines() if line.strip()]
    assert kinds == ["policy.create", "policy.propose", "policy.refused", "policy.refused",
                     "policy.propose"], p.stdout
    kiln("audit", "verify", "--data", cas.data, check=True)


def test_read_quorum_refused(kiln, cas, cas_identity, tmp_path):
    """A read is one request by one identity: a read rule needing more than one
    has no approval path, so a new version with one is refused, naming the rule."""
    alice, _ = cas_identity("alice")
    _, bob_id = cas_identity("bob")
    path = write(tmp_path, "r.yaml", f"name: acme/r\naccess:\n  read: {{require: 2, of: "
                 f"[owner, {bob_id}]}}\n")
    why = (f"access.read needs 2 of [owner, {bob_id}], but a read is one request by one "
           "identity: a read quorum has no approval path")
    for args in (("validate", path), ("apply", path)):
        p = kiln("policy", *args, env=cas.env(alice))
        assert p.returncode == 1 and f"kiln: {path}: {why}" in p.stderr, p.stderr
    # The CAS refuses it too (a client that skips the check).
    code, body = cas.request("POST", "/v1/policies", body=open(path).read(),
                             certfile=alice, keyfile=alice)
    assert code == 400 and why in body["error"], body
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == ""


def test_export_quorum(kiln, cas, cas_identity, tmp_path):
    """Bob may update on his own, but exporting the secret to a policy he owns
    needs Carol, whom the export names."""
    alice, _ = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    _, carol_id = cas_identity("carol")
    text = ("name: acme/x\npredecessor: {pred}\naccess: {{update: [owner, " + bob_id + "]}}\n"
            "secrets:\n  - name: k\n    kind: binary\n    export: {{require: 1, of: [" +
            carol_id + "], to: {to}}}\n")
    p = kiln("policy", "apply", write(tmp_path, "x1.yaml", text.format(pred="null", to="[]")),
             env=cas.env(alice), check=True)
    h = p.stdout.split()[-1]
    steal = text.format(pred=h, to=f"[{{session: bob/app, owner: {bob_id}}}]")
    p = kiln("policy", "apply", write(tmp_path, "x2.yaml", steal), env=cas.env(bob),
             check=True)
    assert p.stdout.startswith("proposed acme/x ")
    assert (f"needs: changing the export of secret 'k' needs one of [{carol_id}]; this "
            "request has 0 (none)") in p.stdout, p.stdout
    # Dropping the quorum, or the secret, is a change of its export too.
    plain = text.format(pred=h, to="[]").replace(
        f"{{require: 1, of: [{carol_id}], to: []}}", "[]")
    p = kiln("policy", "apply", write(tmp_path, "x3.yaml", plain), env=cas.env(bob),
             check=True)
    assert "needs: changing the export of secret 'k'" in p.stdout
    gone = text.format(pred=h, to="[]").replace("name: k", "name: k2")
    p = kiln("policy", "apply", write(tmp_path, "x4.yaml", gone), env=cas.env(bob),
             check=True)
    assert "needs: changing the export of secret 'k'" in p.stdout
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == f"acme/x 1 {h}\n"
    # Other changes stay Bob's to make alone.
    other = text.format(pred=h, to="[]").replace("kind: binary", "kind: binary\n    size: 40")
    p = kiln("policy", "apply", write(tmp_path, "x5.yaml", other), env=cas.env(bob),
             check=True)
    assert p.stdout.startswith("updated acme/x version 2")
    assert kiln("audit", "verify", "--data", cas.data).returncode == 0


TWO_OF_THREE = """\
name: acme/v
predecessor: {pred}
access:
  update: {{require: 2, of: [owner, {bob}, {carol}]}}
secrets:
  - {{name: k, kind: binary, size: {size}}}
"""


@pytest.mark.parametrize("cas_store", STORES)
def test_two_of_three_proposal_and_approval(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    carol, carol_id = cas_identity("carol")
    text = lambda pred, size: TWO_OF_THREE.format(pred=pred, size=size, bob=bob_id,  # noqa
                                                  carol=carol_id)
    h1 = kiln("policy", "apply", write(tmp_path, "v1.yaml", text("null", 16)),
              env=cas.env(alice), check=True).stdout.split()[-1]
    v2 = write(tmp_path, "v2.yaml", text(h1, 24))
    h2 = kiln("policy", "validate", v2, check=True).stdout.split()[-1]
    # Alice alone: the change waits as a proposal under its hash.
    p = kiln("policy", "apply", v2, env=cas.env(alice), check=True)
    assert p.stdout.startswith(f"proposed acme/v {h2}\n  approved by: {alice_id}\n"
                               f"  needs: access.update needs 2 of [owner, {bob_id}, "
                               f"{carol_id}]; this request has 1 ({alice_id})\n"), p.stdout
    p = kiln("policy", "proposals", "acme/v", env=cas.env(carol), check=True)
    assert p.stdout.startswith(f"acme/v {h2} pending\n  proposed by: {alice_id}\n"
                               f"  approved by: {alice_id}\n"), p.stdout
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == f"acme/v 1 {h1}\n"
    # Bob approves: two distinct approvals, the version takes effect.
    p = kiln("policy", "approve", "acme/v", "--hash", h2, env=cas.env(bob), check=True)
    assert p.stdout == f"updated acme/v version 2 {h2}\n"
    assert kiln("policy", "list", env=cas.env(alice), check=True).stdout == f"acme/v 2 {h2}\n"
    assert kiln("policy", "proposals", env=cas.env(alice), check=True).stdout == ""
    # Offline: Carol signs version 3 on her own machine; Bob submits it with her
    # signature and it applies at once.
    v3 = write(tmp_path, "v3.yaml", text(h2, 32))
    sig = tmp_path / "carol.sig"
    p = kiln("policy", "sign", v3, "--identity", carol, "--out", sig, check=True)
    h3 = kiln("policy", "validate", v3, check=True).stdout.split()[-1]
    assert p.stdout.startswith(f"signed acme/v {h3} -> {sig}\nsigned message (valid until ")
    assert (f"\n  kiln policy approval v2\n  policy acme/v\n  action update\n  hash {h3}\n"
            "  proposal offline:") in p.stdout, p.stdout
    p = kiln("policy", "apply", v3, "--signature", sig, env=cas.env(bob), check=True)
    assert p.stdout == f"updated acme/v version 3 {h3}\n"
    p = kiln("audit", "show", "--data", cas.data, *cas.store_args, check=True)
    kinds = re.findall(r"\bpolicy\.[a-z]+\b", p.stdout)
    assert kinds == ["policy.create", "policy.propose", "policy.approve", "policy.update",
                     "policy.update"], p.stdout
    p = kiln("audit", "verify", "--data", cas.data, *cas.store_args, check=True)
    assert p.stdout.startswith("audit log ok: 5 entries")


@pytest.mark.parametrize("cas_store", STORES)
def test_proposer_withdraws(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    _, carol_id = cas_identity("carol")
    text = lambda pred, size: TWO_OF_THREE.format(pred=pred, size=size, bob=bob_id,  # noqa
                                                  carol=carol_id)
    h1 = kiln("policy", "apply", write(tmp_path, "v1.yaml", text("null", 16)),
              env=cas.env(alice), check=True).stdout.split()[-1]
    v2 = write(tmp_path, "v2.yaml", text(h1, 24))
    h2 = kiln("policy", "apply", v2, "--expires", "2d", env=cas.env(bob),
              check=True).stdout.split()[2]
    p = kiln("policy", "withdraw", "acme/v", "--hash", h2, env=cas.env(alice))
    assert p.returncode == 1
    assert f"only the proposer ({bob_id}) may withdraw proposal {h2}" in p.stderr
    p = kiln("policy", "withdraw", "acme/v", "--hash", h2, env=cas.env(bob), check=True)
    assert p.stdout == f"withdrew acme/v {h2}\n"
    p = kiln("policy", "approve", "acme/v", "--hash", h2, env=cas.env(alice))
    assert p.returncode == 1 and f"no pending proposal {h2} of 'acme/v'" in p.stderr
    assert kiln("audit", "verify", "--data", cas.data, *cas.store_args).returncode == 0


SECTIONS = """\
name: acme/s
predecessor: {pred}
access: {{update: [owner, {operator}]}}
owners:
  services.measurement: [{vendor}]
  secrets: [owner]
secrets: [{{name: k, kind: binary, size: {size}}}]
security: {{tee: [sim], allow_insecure_sim: true}}
services: [{{name: app, command: [{cmd}], measurement: [{meas}]}}]
"""


def test_section_owners_and_diff(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    operator, operator_id = cas_identity("operator")
    vendor, vendor_id = cas_identity("vendor")
    v = lambda n, pred, size=16, cmd="/bin/true", meas="any": write(  # noqa
        tmp_path, f"s{n}.yaml", SECTIONS.format(pred=pred, size=size, cmd=cmd, meas=meas,
                                                operator=operator_id, vendor=vendor_id))
    h1 = kiln("policy", "apply", v(1, "null"), env=cas.env(alice), check=True).stdout.split()[-1]
    wm = "ab" * 32
    p = kiln("policy", "diff", v(0, "null"), v(2, h1, meas=wm, size=24), check=True)
    assert p.stdout == (
        f"acme/s {h1} -> " + p.stdout.split()[3] + "\n"
        f"  every change: access.update needs one of [owner, {operator_id}]\n"
        f"  secrets: changed; its owners: one of [owner]\n"
        f"  services.measurement: changed; its owners: one of [{vendor_id}]\n"), p.stdout
    # The operator may change the command alone (no owners), not the measurement.
    p = kiln("policy", "apply", v(3, h1, cmd="/bin/false"), env=cas.env(operator), check=True)
    assert p.stdout.startswith("updated acme/s version 2 ")
    h2 = p.stdout.split()[-1]
    p = kiln("policy", "apply", v(4, h2, meas=wm), env=cas.env(operator), check=True)
    assert p.stdout.startswith("proposed acme/s ")
    assert (f"needs: changing section 'services.measurement' (owners) needs one of "
            f"[{vendor_id}]; this request has 0 (none)") in p.stdout, p.stdout
    h4 = p.stdout.split()[2]
    p = kiln("policy", "approve", "acme/s", "--hash", h4, env=cas.env(vendor), check=True)
    assert p.stdout == f"updated acme/s version 3 {h4}\n"
    assert kiln("audit", "verify", "--data", cas.data).returncode == 0
