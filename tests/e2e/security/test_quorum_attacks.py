"""Attacks on quorum rules (issue 12), each by one stakeholder of a policy that
needs two of three (owner alice, bob, carol) or names an export's approver:
re-proposing, deleting (a deletion waits for its quorum), exporting a secret to a
policy the attacker owns, a replayed approval, an approval carried over to the
same change withdrawn and proposed again, a detached approval used twice, an
approval of a stale hash, an expired proposal, an approval signed with another
identity's key, a section change without that section's owners, a flood of
refused requests. Each is refused with a message naming the rule, every refusal
is in the audit chain (rate-limited), and `kiln audit verify` is clean after
each."""
import base64
import json
import time

POLICY = """\
name: acme/g
predecessor: {pred}
access:
  update: {{require: 2, of: [owner, {bob}, {carol}]}}
secrets:
  - name: k
    kind: binary
    size: {size}
    export: {{require: 1, of: [{carol}], to: {to}}}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


class Stakeholders:
    def __init__(self, kiln, cas, cas_identity, tmp_path):
        self.kiln, self.cas, self.tmp = kiln, cas, tmp_path
        self.files, self.ids = {}, {}
        for who in ("alice", "bob", "carol", "mallory"):
            self.files[who], self.ids[who] = cas_identity(who)
        self.n = 0

    def version(self, pred, size=16, to="[]"):
        self.n += 1
        path = write(self.tmp, f"v{self.n}.yaml", POLICY.format(
            pred=pred, size=size, to=to, bob=self.ids["bob"], carol=self.ids["carol"]))
        return path, self.kiln("policy", "validate", path, check=True).stdout.split()[-1]

    def run(self, who, *args, check=None):
        return self.kiln("policy", *args, env=self.cas.env(self.files[who]), check=check)

    def proposal_id(self, who, hash_):
        out = self.run(who, "proposals", "acme/g", "--json", check=True).stdout
        ids = [e["id"] for e in map(json.loads, out.splitlines()) if e["hash"] == hash_]
        assert len(ids) == 1, out
        return ids[0]

    def refusals(self):
        """The policy.refused entries: (actor, subject, details)."""
        out = self.kiln("audit", "show", "--data", self.cas.data, check=True).stdout
        rows = []
        for line in out.splitlines():
            f = line.split(" ", 5)
            if len(f) == 6 and f[2] == "policy.refused":
                rows.append((f[3].removeprefix("actor="), f[4].removeprefix("subject="),
                             json.loads(f[5].rsplit(" ", 1)[0])))
        return rows

    def audit_clean(self):
        p = self.kiln("audit", "verify", "--data", self.cas.data)
        assert p.returncode == 0 and p.stdout.startswith("audit log ok:"), p.stdout + p.stderr


def start(kiln, cas, cas_identity, tmp_path):
    s = Stakeholders(kiln, cas, cas_identity, tmp_path)
    v1, h1 = s.version("null")
    s.run("alice", "apply", v1, check=True)
    return s, h1


def test_bypass_by_reproposing_deleting_exporting(kiln, cas, cas_identity, tmp_path):
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    bob = s.ids["bob"]
    # Bob exports the secret to a policy he owns: a proposal waiting for Carol (the
    # export's approver) besides a second update approval.
    steal, hs = s.version(h1, to=f"[{{session: bob/loot, owner: {bob}}}]")
    p = s.run("bob", "apply", steal, check=True)
    assert p.stdout.startswith(f"proposed acme/g {hs}\n") and "needs: access.update needs 2" \
        in p.stdout
    # Re-proposing the same change does not reset it nor count twice.
    p = s.run("bob", "apply", steal)
    assert p.returncode == 1
    assert f"a proposal of 'acme/g' with hash {hs} is already pending (re-proposing" in p.stderr
    # Approving his own proposal again: an approval counts once.
    p = s.run("bob", "approve", "acme/g", "--hash", hs)
    assert p.returncode == 1
    assert f"{bob} already approved proposal {hs} of 'acme/g' (an approval counts once)" \
        in p.stderr
    # Alice's approval meets access.update but not the export's rule.
    p = s.run("alice", "approve", "acme/g", "--hash", hs, check=True)
    assert p.stdout.startswith(f"approved acme/g {hs}\n")
    assert (f"needs: changing the export of secret 'k' needs one of [{s.ids['carol']}]; this "
            "request has 0 (none)") in p.stdout, p.stdout
    # Deleting the policy alone does not delete it: the deletion waits for the
    # update rule's quorum (there is no access.delete).
    p = s.run("bob", "delete", "acme/g", check=True)
    assert p.stdout.startswith(f"proposed delete acme/g {h1}\n")
    assert "needs: access.update (there is no access.delete) needs 2 of [owner, " in p.stdout
    # Mallory takes no part: she learns nothing and cannot approve.
    p = s.run("mallory", "approve", "acme/g", "--hash", hs)
    assert p.returncode == 1 and "403: not allowed or not found" in p.stderr
    assert s.run("alice", "list", check=True).stdout == f"acme/g 1 {h1}\n"
    s.audit_clean()


def test_replayed_and_forged_approvals(kiln, cas, cas_identity, tmp_path):
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    v2, h2 = s.version(h1, size=24)
    s.run("alice", "apply", v2, check=True)
    pid = s.proposal_id("bob", h2)
    sig = tmp_path / "bob.sig"
    p = s.run("bob", "sign", v2, "--identity", s.files["bob"], "--proposal", pid, "--out", sig,
              check=True)
    assert f"\n  proposal {pid}\n  not-after " in p.stdout, p.stdout
    approval = json.loads(sig.read_text())
    mallory = dict(certfile=s.files["mallory"], keyfile=s.files["mallory"])
    # Bob's approval claiming to be Carol's: her identity, his key.
    forged = dict(approval, identity=s.ids["carol"])
    p = s.cas.request("POST", "/v1/proposals/approve", body=forged, **mallory)
    assert p[0] == 403, p
    assert (f"approval names identity {s.ids['carol']} but carries the key of {s.ids['bob']}: "
            "an approval must be signed with the approver's own key") in p[1]["error"]
    # Carol's key with a signature made over something else does not verify.
    carol_sig = tmp_path / "carol-other.sig"
    other, _ = s.version(h1, size=40)
    s.run("carol", "sign", other, "--identity", s.files["carol"], "--out", carol_sig,
          check=True)
    moved = dict(json.loads(carol_sig.read_text()), hash=h2)
    p = s.cas.request("POST", "/v1/proposals/approve", body=moved, **mallory)
    assert p[0] == 403 and "the signature does not verify" in p[1]["error"], p
    # Moved to the deletion of the version, or to another proposal id: same.
    for field, value in (("action", "delete"), ("proposal", "0" * 32),
                         ("not_after", approval["not_after"] + 86400)):
        p = s.cas.request("POST", "/v1/proposals/approve", body=dict(approval, **{field: value}),
                          **mallory)
        assert p[0] == 403 and "the signature does not verify" in p[1]["error"], (field, p)
    sigbytes = bytearray(base64.b64decode(approval["signature"]))
    sigbytes[-1] ^= 1
    p = s.cas.request("POST", "/v1/proposals/approve",
                      body=dict(approval, signature=base64.b64encode(sigbytes).decode()),
                      **mallory)
    assert p[0] in (400, 403), p
    # An approval of the format before proposal ids (reusable) is refused.
    p = s.cas.request("POST", "/v1/proposals/approve", body=dict(approval, kiln_approval=1),
                      **mallory)
    assert p[0] == 400 and "format 1 (not bound to a proposal" in p[1]["error"], p
    # A detached approval made for a submission counts only with the change, not
    # for a pending proposal.
    offline = tmp_path / "carol-v2.sig"
    s.run("carol", "sign", v2, "--identity", s.files["carol"], "--out", offline, check=True)
    p = s.cas.request("POST", "/v1/proposals/approve", body=json.loads(offline.read_text()),
                      certfile=s.files["carol"], keyfile=s.files["carol"])
    assert p[0] == 403 and (f"was made before proposal {pid} existed (offline:") in p[1]["error"] \
        and "it counts only when submitted with the change" in p[1]["error"], p
    # A detached approval for another version is refused by apply before sending.
    p = s.run("alice", "apply", other, "--signature", sig)
    assert p.returncode == 1 and f"it approves the update of 'acme/g' version {h2}" in p.stderr
    # Bob's genuine approval applies the change (anybody may carry it) ...
    p = s.cas.request("POST", "/v1/proposals/approve", body=approval,
                      certfile=s.files["carol"], keyfile=s.files["carol"])
    assert p[0] == 200 and p[1]["applied"] is True, p
    # ... once: replayed, there is nothing left to approve.
    p = s.cas.request("POST", "/v1/proposals/approve", body=approval,
                      certfile=s.files["carol"], keyfile=s.files["carol"])
    assert p[0] == 404 and f"no pending proposal {h2} of 'acme/g'" in p[1]["error"], p
    s.audit_clean()


def test_approval_does_not_carry_over(kiln, cas, cas_identity, tmp_path):
    """Bob approves Alice's proposal; she withdraws it and proposes the same
    version again: Bob's approval (online or detached) counts for neither the new
    proposal nor a second submission."""
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    bob = s.ids["bob"]
    # An export to Bob's policy: needs Carol (the export's approver) besides two
    # update approvals, so Alice's and Bob's approvals leave it pending.
    steal, hs = s.version(h1, to=f"[{{session: bob/loot, owner: {bob}}}]")
    s.run("alice", "apply", steal, check=True)
    first = s.proposal_id("alice", hs)
    sig = tmp_path / "bob.sig"
    s.run("bob", "sign", steal, "--identity", s.files["bob"], "--proposal", first, "--out", sig,
          check=True)
    s.run("alice", "withdraw", "acme/g", "--hash", hs, check=True)
    s.run("alice", "apply", steal, check=True)
    second = s.proposal_id("alice", hs)
    assert second != first
    p = s.run("carol", "approve", "acme/g", "--hash", hs, "--signature", sig)
    assert p.returncode == 1
    assert (f"approval by {bob} is of proposal {first}, not of the pending proposal {second} "
            f"of 'acme/g' {hs} (the change was withdrawn or expired and proposed again: an "
            "approval does not carry over") in p.stderr, p.stderr
    # A detached approval made for a submission counts once: used in one
    # submission (withdrawn), it is refused in the next.
    s.run("alice", "withdraw", "acme/g", "--hash", hs, check=True)
    off = tmp_path / "bob-offline.sig"
    s.run("bob", "sign", steal, "--identity", s.files["bob"], "--out", off, check=True)
    p = s.run("alice", "apply", steal, "--signature", off, check=True)
    assert p.stdout.startswith(f"proposed acme/g {hs}\n  approved by: {s.ids['alice']}, {bob}\n")
    s.run("alice", "withdraw", "acme/g", "--hash", hs, check=True)
    p = s.run("alice", "apply", steal, "--signature", off)
    assert p.returncode == 1
    assert (f"approval by {bob} (offline:") in p.stderr and ("was already used: a detached "
                                                           "approval counts once") in p.stderr
    assert s.run("alice", "proposals", "acme/g", check=True).stdout == ""
    assert s.run("alice", "list", check=True).stdout == f"acme/g 1 {h1}\n"
    s.audit_clean()


def test_delete_needs_its_quorum(kiln, cas, cas_identity, tmp_path):
    """A deletion is a proposal like a change: Bob alone cannot delete, Bob twice
    counts once, an approval of the update of the same hash does not count, and
    it deletes once Alice approves."""
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    p = s.run("bob", "delete", "acme/g", check=True)
    assert p.stdout.startswith(f"proposed delete acme/g {h1}\n  approved by: {s.ids['bob']}\n")
    p = s.run("bob", "delete", "acme/g")
    assert p.returncode == 1
    assert f"a proposal to delete 'acme/g' with hash {h1} is already pending" in p.stderr
    p = s.run("bob", "approve", "acme/g", "--hash", h1)
    assert p.returncode == 1 and "already approved proposal" in p.stderr
    out = s.run("carol", "proposals", "acme/g", check=True).stdout
    assert out.startswith(f"acme/g {h1} pending delete\n  proposed by: {s.ids['bob']}\n"), out
    # Mallory takes no part in the delete rule: refused, learns nothing.
    p = s.run("mallory", "delete", "acme/g")
    assert p.returncode == 1 and "403: not allowed or not found" in p.stderr
    # Carol's approval signed for an update of this hash does not verify as a delete.
    pid = s.proposal_id("carol", h1)
    v1 = str(tmp_path / "v1.yaml")
    sig = tmp_path / "carol.sig"
    s.run("carol", "sign", v1, "--identity", s.files["carol"], "--proposal", pid, "--out", sig,
          check=True)
    p = s.run("carol", "approve", "acme/g", "--hash", h1, "--signature", sig)
    assert p.returncode == 1
    assert (f"approval by {s.ids['carol']} approves the update of 'acme/g' {h1}, but the pending "
            "proposal is to delete it") in p.stderr, p.stderr
    assert s.run("alice", "list", check=True).stdout == f"acme/g 1 {h1}\n"
    p = s.run("alice", "approve", "acme/g", "--hash", h1, check=True)
    assert p.stdout == "deleted acme/g\n"
    assert s.run("alice", "list", check=True).stdout == ""
    assert s.run("alice", "proposals", check=True).stdout == ""
    out = s.kiln("audit", "show", "--data", s.cas.data, check=True).stdout
    assert [line.split()[2] for line in out.splitlines() if "policy.delete" in line.split()[2]] \
        == ["policy.delete"]
    s.audit_clean()


def test_refusals_audited_and_rate_limited(kiln, cas, cas_identity, tmp_path):
    """Every refused request (a change, an approval, a delete, a read) is in the
    audit chain with who, the policy, the hash and the rule; a client flooding
    refused requests gets at most 10 entries a minute, and does not crowd out
    another identity's refusals."""
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    v2, h2 = s.version(h1, size=24)
    s.run("alice", "apply", v2, check=True)
    mallory = s.ids["mallory"]
    t0 = time.time()
    assert s.run("mallory", "get", "acme/g").returncode == 1
    assert s.run("mallory", "apply", v2).returncode == 1
    assert s.run("mallory", "delete", "acme/g").returncode == 1
    p = s.cas.request("POST", "/v1/proposals/withdraw", body={"policy": "acme/g", "hash": h2},
                      certfile=s.files["mallory"], keyfile=s.files["mallory"])
    assert p[0] == 403, p
    rows = [r for r in s.refusals() if r[0] == mallory]
    assert [(r[1], r[2]["request"], r[2]["status"]) for r in rows] == [
        ("acme/g", "policy.read", 403), ("acme/g", "policy.apply", 403),
        ("acme/g", "policy.delete", 403), ("acme/g", "policy.withdraw", 403)], rows
    assert rows[1][2]["hash"] == h2 and rows[2][2]["hash"] == h1
    # Bob approving twice: refused with the rule, audited with the proposal's hash.
    s.run("bob", "approve", "acme/g", "--hash", h2, check=True)  # applies v2
    v3, h3 = s.version(h2, size=32)
    s.run("bob", "apply", v3, check=True)
    assert s.run("bob", "approve", "acme/g", "--hash", h3).returncode == 1
    last = s.refusals()[-1]
    assert last[0] == s.ids["bob"] and last[2]["request"] == "policy.approve"
    assert last[2]["hash"] == h3 and "(an approval counts once)" in last[2]["reason"], last
    # A flood: 30 refused reads by Mallory.
    for _ in range(30):
        code, _ = s.cas.request("GET", "/v1/policies/acme/g", certfile=s.files["mallory"],
                                keyfile=s.files["mallory"])
        assert code == 403
    minutes = int(time.time()) // 60 - int(t0) // 60 + 1
    flood = [r for r in s.refusals() if r[0] == mallory]
    assert len(flood) <= 10 * minutes < 34, (len(flood), minutes)
    # Another identity's refusal is still written: Carol re-proposing v3.
    before = len(s.refusals())
    assert s.run("carol", "apply", v3).returncode == 1
    assert len(s.refusals()) == before + 1 and s.refusals()[-1][0] == s.ids["carol"]
    assert s.refusals()[-1][2]["status"] == 409
    s.audit_clean()


def test_stale_and_expired_proposals(kiln, cas, cas_identity, tmp_path):
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    va, ha = s.version(h1, size=24)
    vb, hb = s.version(h1, size=32)
    s.run("alice", "apply", va, check=True)
    s.run("bob", "apply", vb, check=True)
    s.run("carol", "approve", "acme/g", "--hash", ha, check=True)  # applies A
    p = s.run("carol", "approve", "acme/g", "--hash", hb)
    assert p.returncode == 1
    assert (f"proposal {hb} of 'acme/g' is stale: it replaces {h1} but the current version "
            f"is {ha}") in p.stderr, p.stderr
    assert f"acme/g {hb} stale\n" in s.run("alice", "proposals", check=True).stdout
    vc, hc = s.version(ha, size=40)
    s.run("alice", "apply", vc, "--expires", "1s", check=True)
    time.sleep(2)
    p = s.run("bob", "approve", "acme/g", "--hash", hc)
    assert p.returncode == 1
    assert f"proposal {hc} of 'acme/g' expired at " in p.stderr, p.stderr
    assert f"acme/g {hc} expired\n" in s.run("bob", "proposals", "acme/g", check=True).stdout
    # Proposed again, it starts afresh (the old approvals lapsed with it).
    p = s.run("alice", "apply", vc, check=True)
    assert p.stdout.startswith(f"proposed acme/g {hc}\n  approved by: {s.ids['alice']}\n")
    assert s.run("alice", "list", check=True).stdout == f"acme/g 2 {ha}\n"
    s.audit_clean()


def test_section_change_without_its_owners(kiln, cas, cas_identity, tmp_path):
    """access.update needs 2 of 3, and security is owned by Carol alone: Alice and
    Bob together meet the update rule but cannot loosen security without her."""
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    text = POLICY.format(pred=h1, size=16, to="[]", bob=s.ids["bob"], carol=s.ids["carol"])
    owned = write(tmp_path, "owned.yaml", text + f"owners: {{security: [{s.ids['carol']}]}}\n")
    ho = s.kiln("policy", "validate", owned, check=True).stdout.split()[-1]
    s.run("alice", "apply", owned, check=True)
    s.run("bob", "approve", "acme/g", "--hash", ho, check=True)  # applied: owners set
    loose = write(tmp_path, "loose.yaml", text.replace(f"predecessor: {h1}", f"predecessor: {ho}")
                  + f"owners: {{security: [{s.ids['carol']}]}}\n"
                  "security: {tee: [sim], allow_insecure_sim: true}\n")
    hl = s.kiln("policy", "validate", loose, check=True).stdout.split()[-1]
    s.run("alice", "apply", loose, check=True)
    p = s.run("bob", "approve", "acme/g", "--hash", hl, check=True)
    assert p.stdout.startswith(f"approved acme/g {hl}\n")
    assert (f"needs: changing section 'security' (owners) needs one of [{s.ids['carol']}]; "
            "this request has 0 (none)") in p.stdout, p.stdout
    # Dropping Carol's ownership first is a change of the section too.
    drop = write(tmp_path, "drop.yaml", text.replace(f"predecessor: {h1}", f"predecessor: {ho}")
                 .replace("size: 16", "size: 24"))
    hd = s.kiln("policy", "validate", drop, check=True).stdout.split()[-1]
    s.run("alice", "apply", drop, check=True)
    p = s.run("bob", "approve", "acme/g", "--hash", hd, check=True)
    assert "needs: changing section 'security' (owners)" in p.stdout, p.stdout
    assert s.run("alice", "list", check=True).stdout == f"acme/g 2 {ho}\n"
    s.audit_clean()
