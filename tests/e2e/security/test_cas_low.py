"""The low items of issue 16 (item 7), each performed as the review did.

- a co-updater removing the owner from `access.update`;
- key files readable by group/others, and a FIFO as a key file;
- an oversized body (libevent's HTML 413 before), a 409 saying `prepared -1`;
- error messages echoing all 70,000 characters of their input;
- `charset: "a"` (a zero-entropy secret), `measurement: [any, <hex>]`;
- a binary that is not `command[0]` attesting under `measurement: [any]`.
"""
import hashlib
import base64
import json
import os
import socket
import ssl
import subprocess
import sys

from cas_fixtures import CasServer, Workload, assert_refused, las_evidence

ID_HEX = "sha256:" + "1" * 64


def apply(kiln, cas, ident, path):
    return kiln("policy", "apply", path, env=cas.env(ident))


def test_co_updater_cannot_lock_the_owner_out(kiln, cas, cas_identity, tmp_path):
    alice, alice_id = cas_identity("alice")
    bob, bob_id = cas_identity("bob")
    p = tmp_path / "p.yaml"
    p.write_text(f'name: acme/shared\naccess: {{update: [owner, "{bob_id}"]}}\n')
    h = apply(kiln, cas, alice, p).stdout.split()[-1]
    # Bob may change the policy, but not take the owner's update access away.
    p.write_text(f'name: acme/shared\npredecessor: "{h}"\naccess: {{update: ["{bob_id}"]}}\n')
    r = apply(kiln, cas, bob, p)
    assert r.returncode == 1
    assert "CAS answered 403: only the owner may remove the owner's update access" in r.stderr
    p.write_text(f'name: acme/shared\npredecessor: "{h}"\n'
                 f'access: {{read: ["{ID_HEX}"], update: [owner, "{bob_id}"]}}\n')
    h = apply(kiln, cas, bob, p).stdout.split()[-1]
    # The owner may give it up (and then, like anybody, needs update access).
    p.write_text(f'name: acme/shared\npredecessor: "{h}"\naccess: {{update: ["{bob_id}"]}}\n')
    assert apply(kiln, cas, alice, p).returncode == 0


def test_key_files_must_be_private_regular_files(kiln, kiln_bin, cas, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    os.chmod(alice, 0o644)
    r = kiln("policy", "list", env=cas.env(alice))
    assert r.returncode == 1
    assert (f"identity {alice} is accessible by group or others (mode 0644): a private key "
            f"file must be 0600 (chmod 600 {alice})") in r.stderr
    os.chmod(alice, 0o600)
    assert kiln("policy", "list", env=cas.env(alice)).returncode == 0
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    r = kiln("policy", "list", env=cas.env(str(fifo)), timeout=60)  # no writer: must not wait
    assert r.returncode == 1
    assert f"identity {fifo} is not a regular file" in r.stderr
    # The CAS's own keys too: a readable master key stops the service at start.
    cas.stop()
    os.chmod(cas.data / "master.key", 0o644)
    rc = cas.start(expect_fail=True)
    assert rc == 1
    assert "master.key is accessible by group or others (mode 0644)" in cas.log()
    os.chmod(cas.data / "master.key", 0o600)
    os.chmod(cas.data / "ca.key", 0o640)
    assert cas.start(expect_fail=True) == 1
    assert "ca.key is accessible by group or others (mode 0640)" in cas.log()
    os.chmod(cas.data / "ca.key", 0o600)
    cas.start()


def raw(cas, data):
    """Send raw bytes over TLS; returns (status line, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", cas.port), timeout=30) as s:
        with cas.ssl_context().wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(data)
            out = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ConnectionError, ssl.SSLError):
                    break
                if not chunk:
                    break
                out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return lines[0], lines[1:], body


def test_oversized_body_gets_the_json_error(cas):
    status, headers, body = raw(cas, b"POST /v1/policies HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Length: 5000000\r\n\r\n" + b"a" * 1000)
    assert status == "HTTP/1.1 413 Content Too Large"
    assert "Content-Type: application/json" in headers and "Connection: close" in headers
    j = json.loads(body)
    assert j["error"] == "body too large (at most 1 MiB)" and len(j["request_id"]) == 16


def test_409_never_says_prepared_minus_one(cas, kiln, cas_identity, tmp_path):
    alice, _ = cas_identity("alice")
    p = tmp_path / "p.yaml"
    p.write_text("name: acme/v\nvolumes: [{name: data}]\nservices:\n"
                 "  - {name: s, command: [/bin/s], mounts: [{volume: data, path: /d}], "
                 "measurement: [any]}\nsecurity: {tee: [sim], allow_insecure_sim: true}\n")
    apply(kiln, cas, alice, p)
    w = Workload(cas, tmp_path)
    s, g = w.attest("acme/v", "s")
    assert s == 200
    status, body = w.post(f"/v1/volumes/{g['volumes'][0]['id']}/commit", {"tag": 1})
    assert status == 409 and body["prepared"] is None
    assert body["error"] == ("commit 1 refused: committed 0, prepared none (prepare needs "
                             "a tag above both, commit needs the prepared tag)")


def test_error_messages_do_not_echo_unbounded_input(kiln, kiln_bin, cas, cas_identity,
                                                    tmp_path):
    long = "/" + "x" * 70000
    # The launcher's volume path check.
    r = subprocess.run([kiln_bin, "run", "--volume-dir", "data=" + long, "--", "/bin/true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert len(r.stderr) < 2000 and "... (truncated)" in r.stderr, r.stderr[:200]
    # The policy validator, offline and at the CAS.
    p = tmp_path / "p.yaml"
    p.write_text("name: acme/x\nservices:\n  - {name: s, command: [/bin/s], "
                 f"pwd: {long[1:]}, measurement: [any]}}\nsecurity: {{tee: [sim]}}\n")
    r = kiln("policy", "validate", p)
    assert r.returncode == 1 and len(r.stderr) < 2000 and "... (truncated)" in r.stderr
    alice, _ = cas_identity("alice")
    status, body = cas.request("POST", "/v1/policies", p.read_text(), certfile=alice)
    assert status == 400 and len(body["error"]) < 600
    assert body["error"].endswith("... (truncated)"), body["error"][-40:]


def test_low_entropy_secrets_and_any_with_measurements_refused(kiln, tmp_path):
    cases = {
        'secrets:\n  - {name: k, kind: ascii, charset: "a", size: 4096}\n':
            "p.yaml:3:48: secret 'k': a charset of one character gives a secret anybody "
            "can guess (at least 64 bits of entropy are needed)",
        'secrets:\n  - {name: pin, kind: ascii, size: 8, charset: "0123456789"}\n':
            "p.yaml:3:36: secret 'pin': 8 characters from 10 possible give 26 bits of "
            "entropy, fewer than 64: make size at least 20",
        'secrets:\n  - {name: b, kind: binary, size: 4}\n':
            "p.yaml:3:35: secret 'b': 4 bytes from 256 possible give 32 bits of entropy, "
            "fewer than 64: make size at least 8",
        'secrets:\n  - {name: d, kind: ascii, charset: "aab"}\n':
            "p.yaml:3:37: secret charset: 'a' appears twice",
        f'services:\n  - {{name: s, command: [/bin/s], measurement: [any, "{"a" * 96}"]}}\n'
        'security: {tee: [sim]}\n':
            "p.yaml:3:48: measurement: 'any' accepts every program, so the other values "
            "say nothing: list [any] or measurements, not both",
    }
    for body, msg in cases.items():
        p = tmp_path / "p.yaml"
        p.write_text("name: acme/e\n" + body)
        r = kiln("policy", "validate", p)
        assert r.returncode == 1 and r.stderr == f"kiln: {p.parent}/{msg}\n", r.stderr
    p.write_text("name: acme/e\nsecrets:\n  - {name: pin, kind: ascii, size: 20, "
                 'charset: "0123456789"}\n  - {name: k, kind: ascii, size: 11}\n')
    assert kiln("policy", "validate", p).returncode == 0


HOST_POLICY = """\
name: acme/any
secrets:
  - {{name: pw, kind: ascii}}
services:
  - {{name: app, command: [{cmd}, "{{{{secret.pw}}}}"], measurement: [any]}}
security: {{tee: [host]}}
"""


def test_cas_checks_the_program_is_command0_under_any(kiln, cas, cas_identity, las, tmp_path):
    """kiln-las names the executable it measured (claims.exe); under [any] the CAS
    itself requires it to be command[0] (the runtime's own check can be skipped
    by a workload that does not run libkiln)."""
    alice, _ = cas_identity("alice")
    kiln("cas", "trust-las", las.cert, "--data", cas.data, check=True)
    w = Workload(cas, tmp_path)
    w.nonce()
    first = las_evidence(las.sock, bytes(64))
    wm = bytes.fromhex(json.loads(base64.b64decode(first["payload"]))["workload_measurement"])
    exe = os.path.realpath(sys.executable)  # this process is what kiln-las measures

    def attest():
        n = w.nonce()
        rd = hashlib.sha512(b"kiln-v1" + w.spki + bytes.fromhex(n) + wm).digest()
        ev = base64.b64encode(json.dumps(las_evidence(las.sock, rd)).encode()).decode()
        return w.attest("acme/any", "app", tee="host", nonce=n, evidence=ev)

    p = tmp_path / "p.yaml"
    p.write_text(HOST_POLICY.format(cmd="/usr/bin/true"))
    h = apply(kiln, cas, alice, p).stdout.split()[-1]
    s, body = attest()
    assert_refused(cas, s, body, "wrong_program",
                   f"claims.exe {exe} is not service 'app' command[0] /usr/bin/true")
    p.write_text(HOST_POLICY.format(cmd=exe).replace("name: acme/any\n",
                                                     f"name: acme/any\npredecessor: {h}\n"))
    assert apply(kiln, cas, alice, p).returncode == 0
    s, body = attest()
    assert s == 200, cas.log()[-2000:]
