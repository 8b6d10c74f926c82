"""Attack: an export trusted a policy name (issue 16, item 2).

The owner of an sgx-only policy exported a secret to `alice/prod-worker`; another
identity created `alice/prod-worker` first (names are first come, first served)
with `tee: [sim]`, imported the secret and received it after a sim attestation.

Defences tested here: an export names the importer *and* binds its owner identity
or its policy_hash (a bare name is a validation error); the exporter's security
rules apply to every release of its secrets whatever the importer says; each such
release is logged and audited under the exporting policy; an operator can reserve
a namespace (`alice/...`) for its owners.
"""
import json

from cas_fixtures import Workload, assert_refused


def apply(kiln, cas, ident, path):
    return kiln("policy", "apply", path, env=cas.env(ident))


def exporter(tee, export):
    sim = "true" if "sim" in tee else "false"
    return f"""\
name: acme/keys
secrets:
  - name: api
    kind: ascii
    export:
{export}
services:
  - {{name: s, command: [/bin/true], measurement: [any]}}
security: {{tee: [{tee}], allow_insecure_sim: {sim}}}
"""


def importer(name, pinned):
    return f"""\
name: {name}
secrets:
  - {{name: k, import: {{session: acme/keys, secret: api, policy_hash: "{pinned}"}}}}
services:
  - {{name: w, command: ["/bin/worker", "{{{{secret.k}}}}"], measurement: [any]}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def test_export_by_name_alone_is_a_validation_error(kiln, tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(exporter("sgx", "      - {session: alice/prod-worker}"))
    p = kiln("policy", "validate", path)
    assert p.returncode == 1
    assert p.stderr == (
        f"kiln: {path}:6:9: secret 'api': export to 'alice/prod-worker' names only a policy, "
        "which anybody may create first: add 'owner: sha256:<id>' (the importer owner's "
        "identity, 'kiln identity show') or 'policy_hash: sha256:<hash>' (the importer's "
        "version)\n")


def test_squatter_cannot_import_from_sgx_only_exporter(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    mallory, mallory_id = cas_identity("mallory")
    e = tmp_path / "e.yaml"
    e.write_text(exporter("sgx", f'      - {{session: alice/prod-worker, owner: "{alice_id}"}}\n'
                                 f'      - {{session: alice/dev, owner: "{alice_id}"}}'))
    h = apply(kiln, cas, alice, e).stdout.split()[-1]

    # The squatter takes the importer's name first, with tee [sim].
    sq = tmp_path / "sq.yaml"
    sq.write_text(importer("alice/prod-worker", h))
    assert apply(kiln, cas, mallory, sq).returncode == 0
    s, body = Workload(cas, tmp_path).attest("alice/prod-worker", "w")
    assert_refused(cas, s, body, "export_refused",
                   "policy 'acme/keys' does not export 'api' to 'alice/prod-worker' owned by "
                   f"{mallory_id}")

    # Even an importer the export does name (owned by alice) gets nothing from a
    # sim attestation: the exporter's tee rule follows its secret.
    dev = tmp_path / "dev.yaml"
    dev.write_text(importer("alice/dev", h))
    assert apply(kiln, cas, alice, dev).returncode == 0
    s, body = Workload(cas, tmp_path).attest("alice/dev", "w")
    assert_refused(cas, s, body, "export_refused",
                   "secret 'k' imported from 'acme/keys': exporting policy 'acme/keys' refuses: "
                   'tee \\"sim\\" not in security.tee [sgx]')
    assert "attestation ok" not in cas.log()


def test_honest_importer_still_works_and_release_is_audited_by_exporter(
        kiln, kiln_bin, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    e = tmp_path / "e.yaml"
    # Bound once by owner (any version of bob's importer), once by version.
    e.write_text(exporter("sim", f'      - {{session: bob/worker, owner: "{bob_id}"}}'))
    h = apply(kiln, cas, alice, e).stdout.split()[-1]
    imp = tmp_path / "i.yaml"
    imp.write_text(importer("bob/worker", h))
    assert apply(kiln, cas, bob, imp).returncode == 0
    s, a = Workload(cas, tmp_path).attest("acme/keys", "s")
    s2, b = Workload(cas, tmp_path).attest("bob/worker", "w")
    assert s == 200 and s2 == 200, cas.log()[-2000:]
    # The exporter's own service has no reference; the importer got the value.
    assert len(b["argv"][1]) == 32
    log = [ln for ln in cas.log().splitlines() if b["request_id"] in ln]
    assert any('msg="exported secret released" session=acme/keys secret=api '
               'imported_by=bob/worker via_session=bob/worker service=w tee=sim' in ln
               for ln in log), log
    cas.stop()
    p = kiln("audit", "show", "--data", cas.data, check=True)
    rel = [ln.split(" ", 5) for ln in p.stdout.splitlines() if " secrets.release " in ln]
    # acme/keys' own attestation, bob/worker's, and bob/worker's under acme/keys
    assert [r[4] for r in rel] == ["subject=acme/keys", "subject=bob/worker",
                                   "subject=acme/keys"], p.stdout
    details = json.loads(rel[2][5].rsplit(" ", 2)[0])
    assert details["imported_by"] == "bob/worker" and details["secret"] == "api"
    assert details["policy_hash"] == h and details["request_id"] == b["request_id"]
    assert rel[2][3] == rel[1][3]  # the same actor: bob/worker's workload key
    assert kiln("audit", "verify", "--data", cas.data).returncode == 0


def test_namespace_reserved_for_its_owners(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    mallory, mallory_id = cas_identity("mallory")
    early = tmp_path / "early.yaml"
    early.write_text("name: alice/early\n")
    assert apply(kiln, cas, mallory, early).returncode == 0
    p = kiln("cas", "namespace", "alice", "--owner", alice_id, "--data", cas.data)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "namespace alice/ reserved for 1 identity\n"
    # Reserving does not evict the squatter's policy; it says so.
    assert p.stderr == (f"kiln: cas namespace: note: alice/early is owned by {mallory_id}, "
                        "not by a namespace owner (delete it if it is a squatter's)\n")
    late = tmp_path / "late.yaml"
    late.write_text("name: alice/prod-worker\n")
    p = apply(kiln, cas, mallory, late)
    assert p.returncode == 1
    assert "CAS answered 403: policy names under 'alice/' are reserved for the namespace's " \
           "owners (kiln cas namespace)" in p.stderr
    assert apply(kiln, cas, alice, late).returncode == 0
    # Elsewhere names stay first come, first served.
    other = tmp_path / "other.yaml"
    other.write_text("name: mallory/x\n")
    assert apply(kiln, cas, mallory, other).returncode == 0
    p = kiln("cas", "namespace", "alice", "--owner", "alice", "--data", cas.data)
    assert p.returncode == 1 and "expected an identity 'sha256:<64 hex>'" in p.stderr
    p = kiln("cas", "namespace", "alice", "--remove", "--data", cas.data, check=True)
    assert p.stdout == "namespace alice/ released\n"
    late.write_text("name: alice/other\n")
    assert apply(kiln, cas, mallory, late).returncode == 0
    cas.stop()
    p = kiln("audit", "show", "--data", cas.data, check=True)
    kinds = [ln.split()[2] for ln in p.stdout.splitlines()]
    assert "namespace.set" in kinds and "namespace.remove" in kinds
    assert json.dumps(alice_id) in p.stdout
