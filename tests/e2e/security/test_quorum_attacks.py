"""Attacks on quorum rules (issue 12), each by one stakeholder of a policy that
needs two of three (owner alice, bob, carol) or names an export's approver:
re-proposing, deleting, exporting a secret to a policy the attacker owns, a
replayed approval, an approval of a stale hash, an expired proposal, an approval
signed with another identity's key, a section change without that section's
owners. Each is refused with a message naming the
rule, and `kiln audit verify` is clean after each."""
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
    # Deleting the policy alone is refused naming the rule (no proposal for deletes).
    p = s.run("bob", "delete", "acme/g")
    assert p.returncode == 1
    assert "access.update (there is no access.delete) needs 2 of [owner, " in p.stderr
    # Mallory takes no part: she learns nothing and cannot approve.
    p = s.run("mallory", "approve", "acme/g", "--hash", hs)
    assert p.returncode == 1 and "403: not allowed or not found" in p.stderr
    assert s.run("alice", "list", check=True).stdout == f"acme/g 1 {h1}\n"
    s.audit_clean()


def test_replayed_and_forged_approvals(kiln, cas, cas_identity, tmp_path):
    s, h1 = start(kiln, cas, cas_identity, tmp_path)
    v2, h2 = s.version(h1, size=24)
    s.run("alice", "apply", v2, check=True)
    sig = tmp_path / "bob.sig"
    s.run("bob", "sign", v2, "--identity", s.files["bob"], "--out", sig, check=True)
    approval = json.loads(sig.read_text())
    # Bob's approval claiming to be Carol's: her identity, his key.
    forged = dict(approval, identity=s.ids["carol"])
    p = s.cas.request("POST", "/v1/proposals/approve", body=forged,
                      certfile=s.files["mallory"], keyfile=s.files["mallory"])
    assert p[0] == 403, p
    assert (f"approval names identity {s.ids['carol']} but carries the key of {s.ids['bob']}: "
            "an approval must be signed with the approver's own key") in p[1]["error"]
    # Carol's key with a signature made over something else does not verify.
    carol_sig = tmp_path / "carol-other.sig"
    other, _ = s.version(h1, size=40)
    s.run("carol", "sign", other, "--identity", s.files["carol"], "--out", carol_sig,
          check=True)
    moved = dict(json.loads(carol_sig.read_text()), hash=h2)
    p = s.cas.request("POST", "/v1/proposals/approve", body=moved,
                      certfile=s.files["mallory"], keyfile=s.files["mallory"])
    assert p[0] == 403 and "the signature does not verify" in p[1]["error"], p
    sigbytes = bytearray(base64.b64decode(approval["signature"]))
    sigbytes[-1] ^= 1
    p = s.cas.request("POST", "/v1/proposals/approve",
                      body=dict(approval, signature=base64.b64encode(sigbytes).decode()),
                      certfile=s.files["mallory"], keyfile=s.files["mallory"])
    assert p[0] in (400, 403), p
    # A detached approval for another version is refused by apply before sending.
    p = s.run("alice", "apply", other, "--signature", sig)
    assert p.returncode == 1 and f"it approves 'acme/g' version {h2}" in p.stderr
    # Bob's genuine approval applies the change (anybody may carry it) ...
    p = s.cas.request("POST", "/v1/proposals/approve", body=approval,
                      certfile=s.files["carol"], keyfile=s.files["carol"])
    assert p[0] == 200 and p[1]["applied"] is True, p
    # ... once: replayed, there is nothing left to approve.
    p = s.cas.request("POST", "/v1/proposals/approve", body=approval,
                      certfile=s.files["carol"], keyfile=s.files["carol"])
    assert p[0] == 404 and f"no pending proposal {h2} of 'acme/g'" in p[1]["error"], p
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
