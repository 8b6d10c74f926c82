"""kiln run --cas: what the program sees and what never leaks, refusals and
their one-line errors, and the options --host-env, --volume-dir, --las-socket
(docs/attestation.md). Complements test_run_attest.py."""
import os
import re
import subprocess

import pytest

POLICY = """\
name: {name}
predecessor: null
access: {{read: [owner], update: [owner]}}
secrets:
  - {{name: pw, kind: ascii, size: 24}}
volumes:
  - {{name: data}}
services:
  - name: app
    command: [{cmd}]
    environment:
      APP_SECRET: "{{{{secret.pw}}}}"
      APP_MODE: attested{extra_env}
{host_env}    files:
      - {{path: /etc/kiln-test-cli/secret.txt, content: "{{{{secret.pw}}}}", mode: "0400"}}
    mounts:
      - {{volume: data, path: {mount}}}
    measurement: [{meas}]
security:
  tee: [{tee}]
  allow_insecure_sim: {sim}
"""
WARNING = ("kiln: WARNING: INSECURE simulation backend: no confidentiality, "
           "for development only")


@pytest.fixture
def owner(cas_identity):
    return cas_identity("owner")[0]


def apply_policy(kiln, cas, owner, tmp_path, name, cmd, meas="any", tee="sim", sim="true",
                 host_env=False):
    text = POLICY.format(
        name=name, cmd=cmd, meas=meas, tee=tee, sim=sim, mount=tmp_path / "mnt" / "data",
        extra_env='\n      PORT: "{{host.PORT}}"' if host_env else "",
        host_env="    host_env: [PORT]\n" if host_env else "")
    path = tmp_path / (name.replace("/", "_") + ".yaml")
    path.write_text(text)
    kiln("policy", "apply", path, env=cas.env(owner), check=True)


def run(kiln, cas, tmp_path, *prog, session, tee="sim", extra=(), env=None):
    e = {"KILN_OUTSIDE_VAR": "launcher-only"}
    e.update(env or {})
    return kiln("run", "--cas", cas.url, "--cas-fingerprint", cas.fingerprint,
                "--session", session, "--service", "app", "--tee", tee,
                "--volume-dir", f"data={tmp_path}/vol-{session.replace('/', '_')}",
                *extra, "--", *prog, env=e, cwd=tmp_path)


def env_of(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def refused(p, cas):
    """The one refusal line; its request id names the reason in the CAS log."""
    assert p.returncode == 1, p.stderr
    m = re.search(r"^kiln: attestation refused by the CAS \(request id (\S+)\)$", p.stderr,
                  re.M)
    assert m, p.stderr
    lines = [ln for ln in cas.log().splitlines() if m.group(1) in ln]
    assert lines and 'msg="attestation refused"' in lines[-1] and "reason=" in lines[-1]
    return lines[-1]


def test_only_policy_env_and_nothing_leaks(kiln, cas, owner, tmp_path):
    apply_policy(kiln, cas, owner, tmp_path, "acme/env", "/usr/bin/env")
    p = run(kiln, cas, tmp_path, "/usr/bin/env", "FOO=bar", session="acme/env")
    assert p.returncode == 0, p.stderr
    assert p.stderr == WARNING + "\n"
    env = env_of(p.stdout)
    # Only the policy's values: not the launcher's environment, not its argv.
    assert set(env) == {"APP_SECRET", "APP_MODE"}
    secret = env["APP_SECRET"]
    assert re.fullmatch(r"[ -~]{24}", secret) and env["APP_MODE"] == "attested"
    # The injected file is served from memory at its path, never from disk.
    apply_policy(kiln, cas, owner, tmp_path, "acme/cat",
                 "/bin/cat, /etc/kiln-test-cli/secret.txt")
    p = run(kiln, cas, tmp_path, "/bin/cat", session="acme/cat")
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"[ -~]{24}", p.stdout)
    assert not os.path.exists("/etc/kiln-test-cli")
    cat_secret = p.stdout
    # /proc/PID/environ and cmdline of the process show the launcher's values.
    # (Python, not a shell: an exec'd child attests again and this policy names
    # only one program.)
    code = ("import os;e=open('/proc/self/environ','rb').read();"
            "c=open('/proc/self/cmdline','rb').read();"
            "print((e+c).replace(bytes(1),bytes([10])).decode());"
            "print('SECRET='+os.environ['APP_SECRET'])")
    apply_policy(kiln, cas, owner, tmp_path, "acme/proc", f'/usr/bin/python3, -c, "{code}"')
    p = run(kiln, cas, tmp_path, "/usr/bin/python3", session="acme/proc")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    sh_secret = out[-1].split("=", 1)[1]
    assert len(sh_secret) == 24 and sh_secret not in "\n".join(out[:-1])
    assert "KILN_OUTSIDE_VAR=launcher-only" in out
    # No file anywhere under the test's directory (volumes, CAS data) holds a secret.
    for s in (secret, cat_secret, sh_secret):
        g = subprocess.run(["grep", "-rlF", s, str(tmp_path)], capture_output=True)
        assert g.returncode == 1, g.stdout


def test_volume_dir(kiln, cas, owner, tmp_path):
    code = ("import os,sys;p=sys.argv[1]+'/note.txt';"
            "print(open(p).read() if os.path.exists(p) else 'none');"
            "open(p,'w').write('kiln-volume-plaintext')")
    mount = tmp_path / "mnt" / "data"
    apply_policy(kiln, cas, owner, tmp_path, "acme/py",
                 f'/usr/bin/python3, -c, "{code}", {mount}')
    p1 = run(kiln, cas, tmp_path, "/usr/bin/python3", session="acme/py")
    assert p1.returncode == 0, p1.stderr
    assert p1.stdout == "none\n"
    vol = tmp_path / "vol-acme_py"
    assert (vol / ".kiln").is_dir()
    assert not mount.exists()  # the program's path is virtual; the ciphertext is in DIR

    def tags():
        return cas.volume_committed("acme/py")

    tag1 = tags()
    assert tag1 >= 1
    p2 = run(kiln, cas, tmp_path, "/usr/bin/python3", session="acme/py")
    assert p2.returncode == 0, p2.stderr
    assert p2.stdout == "kiln-volume-plaintext\n"
    assert tags() > tag1
    for f in vol.rglob("*"):
        if f.is_file():
            assert b"kiln-volume-plaintext" not in f.read_bytes(), f


def test_refusals(kiln, cas, owner, tmp_path):
    marker = tmp_path / "ran"
    apply_policy(kiln, cas, owner, tmp_path, "acme/nosim", f"/usr/bin/touch, {marker}",
                 sim="false")
    line = refused(run(kiln, cas, tmp_path, "/usr/bin/touch", session="acme/nosim"), cas)
    assert "allow_insecure_sim" in line or "sim" in line
    assert not marker.exists()
    m = kiln("measure", "--", "/bin/true", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{96}", m)
    apply_policy(kiln, cas, owner, tmp_path, "acme/pin", "/bin/true", meas=m)
    p = run(kiln, cas, tmp_path, "/bin/true", session="acme/pin")
    assert p.returncode == 0, p.stderr
    refused(run(kiln, cas, tmp_path, "/bin/false", session="acme/pin"), cas)
    refused(run(kiln, cas, tmp_path, "/bin/true", session="acme/none"), cas)


def test_wrong_pin(kiln, cas, owner, tmp_path):
    apply_policy(kiln, cas, owner, tmp_path, "acme/env", "/usr/bin/env")
    p = kiln("run", "--cas", cas.url, "--cas-fingerprint", "ab" * 32, "--session",
             "acme/env", "--service", "app", "--tee", "sim", "--", "/usr/bin/env")
    assert p.returncode == 1 and p.stdout == ""
    last = p.stderr.splitlines()[-1]
    assert last.startswith(f"kiln: cannot reach the CAS at {cas.url}: ")
    assert "pinned CA" in last


def test_host_env(kiln, cas, owner, tmp_path):
    apply_policy(kiln, cas, owner, tmp_path, "acme/hostenv", "/usr/bin/env", host_env=True)
    p = run(kiln, cas, tmp_path, "/usr/bin/env", session="acme/hostenv",
            extra=("--host-env", "PORT"), env={"PORT": "8443"})
    assert p.returncode == 0, p.stderr
    env = env_of(p.stdout)
    assert env["PORT"] == "8443" and set(env) == {"APP_SECRET", "APP_MODE", "PORT"}
    # Without --host-env nothing from the launcher's environment is sent, so the
    # CAS cannot fill {{host.PORT}} and refuses.
    line = refused(run(kiln, cas, tmp_path, "/usr/bin/env", session="acme/hostenv",
                       env={"PORT": "1"}), cas)
    assert "PORT" in line


@pytest.mark.parametrize("args,msg", [
    (["--session", "a/b", "--", "true"], "need --cas"),
    (["--host-env", "A=B", "--", "true"], "--host-env 'A=B': expected"),
    (["--volume-dir", "nodir", "--", "true"], "--volume-dir 'nodir': expected NAME=DIR"),
    (["--las-socket", "/tmp/" + "x" * 200, "--", "true"], "--las-socket"),
    (["--volume-dir", "data=/tmp/x", "--", "true"], "need --cas"),
])
def test_usage(kiln, args, msg):
    p = kiln("run", *args, env={"KILN_CAS": "", "KILN_CAS_CA": "",
                                "KILN_CAS_FINGERPRINT": ""})
    assert p.returncode == 2, p.stderr
    assert msg in p.stderr




def test_host_backend_las_socket(kiln, cas, owner, las, tmp_path):
    sock, cert = las.sock, las.cert
    m = kiln("measure", "--", "/usr/bin/env", check=True).stdout.strip()
    apply_policy(kiln, cas, owner, tmp_path, "acme/host", "/usr/bin/env", meas=m,
                 tee="host", sim="false")
    extra = ("--las-socket", str(sock))
    env = {"KILN_LAS_SOCKET": str(tmp_path / "nowhere.sock")}
    # Not trusted yet: refused.
    refused(run(kiln, cas, tmp_path, "/usr/bin/env", session="acme/host", tee="host",
                extra=extra, env=env), cas)
    kiln("cas", "trust-las", cert, "--data", cas.data, check=True)
    p = run(kiln, cas, tmp_path, "/usr/bin/env", session="acme/host", tee="host",
            extra=extra, env=env)
    assert p.returncode == 0, p.stderr + cas.log()[-2000:]
    assert p.stderr == ""  # no INSECURE warning for host
    assert set(env_of(p.stdout)) == {"APP_SECRET", "APP_MODE"}
    # Another binary under the pinned measurement is refused.
    refused(run(kiln, cas, tmp_path, "/bin/cat", session="acme/host", tee="host",
                extra=extra, env=env), cas)
    # Without --las-socket the variable's (wrong) socket is used: a clear error.
    p = run(kiln, cas, tmp_path, "/usr/bin/env", session="acme/host", tee="host", env=env)
    assert p.returncode == 1
    assert "kiln: attestation: host evidence (kiln-las): cannot reach kiln-las at" in p.stderr


def connections(cas):
    m = re.search(r"^kiln_cas_connections_total (\d+)$", cas.metrics(), re.M)
    assert m, cas.metrics()
    return int(m.group(1))


def test_nonce_and_attestation_share_one_connection(kiln, cas, owner, tmp_path):
    """One TLS handshake for the attestation (nonce + attest), not two: an
    attested start-up is mostly handshakes. The second metrics scrape is a
    connection of its own."""
    path = tmp_path / "true.yaml"
    path.write_text("name: acme/true\npredecessor: null\n"
                    "access: {read: [owner], update: [owner]}\n"
                    "services:\n  - {name: app, command: [/usr/bin/true], measurement: [any]}\n"
                    "security: {tee: [sim], allow_insecure_sim: true}\n")
    kiln("policy", "apply", path, env=cas.env(owner), check=True)
    before = connections(cas)
    p = run(kiln, cas, tmp_path, "/usr/bin/true", session="acme/true")
    assert p.returncode == 0, p.stderr
    assert connections(cas) - before == 2
