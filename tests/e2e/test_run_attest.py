"""kiln run with attestation: a real kiln-cas (sim backend, INSECURE, opt-in by
policy), the runtime's ephemeral key bound into the evidence, argv/env/files/
volume from the policy, freshness tags held by the CAS, refusals."""
import os
import shutil
import subprocess

import pytest

from kilnenv import BUILD, wait_server_gone

SECRET_MARK = "kiln-attested-run"

APP = r"""
import os, sys
d = os.environ["DATA"]
print("argv", sys.argv[1:])
print("pw-env", len(os.environ["APP_PW"]), "launcher-env" in os.environ)
print("pw-file", open("/etc/kiln-test/pw.txt").read() == os.environ["APP_PW"])
print("cwd", os.getcwd())
p = os.path.join(d, "notes.txt")
old = open(p).read() if os.path.exists(p) else ""
with open(p, "a") as f:
    f.write(os.environ["APP_PW"] + "\n")
    f.flush()
    os.fsync(f.fileno())
print("lines", len((old + os.environ["APP_PW"] + "\n").splitlines()))
"""

POLICY = """\
name: acme/app
predecessor: {pred}
access: {{read: [owner], update: [owner]}}
secrets:
  - {{name: pw, kind: ascii, size: 24}}
volumes:
  - {{name: data}}
services:
  - name: app
    command: [{python}, -c, {app}, policy-arg]
    environment:
      APP_PW: "{{{{secret.pw}}}}"
      DATA: {data}
    pwd: {data}
    files:
      - {{path: /etc/kiln-test/pw.txt, content: "{{{{secret.pw}}}}", mode: "0600"}}
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [{meas}]
security:
  tee: [sim]
  allow_insecure_sim: true
"""


def json_str(s):
    import json
    return json.dumps(s)


@pytest.fixture
def attested(kiln, cas, cas_identity, tmp_path):
    owner, _ = cas_identity("owner")
    python = os.path.realpath("/usr/bin/python3")
    data = tmp_path / "data"

    def apply(meas="any", pred="null"):
        text = POLICY.format(python=python, app=json_str(APP), data=data, meas=meas, pred=pred)
        (tmp_path / "p.yaml").write_text(text)
        p = kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)
        return p.stdout

    def run(*prog, env=None, session="acme/app", service="app"):
        e = dict(os.environ, **(env or {}))
        return subprocess.run([cas.kiln_bin, "run", "--cas", cas.url,
                               "--cas-ca", cas.ca_file, "--session", session, "--service",
                               service, "--tee", "sim", "--", *map(str, prog)],
                              capture_output=True, text=True, env=e, timeout=120)

    return {"apply": apply, "run": run, "python": python, "data": data, "owner": owner}


def test_attested_run(attested, cas):
    attested["apply"]()
    py = attested["python"]
    p = attested["run"](py, "-c", "print('launcher argv')", "launcher-arg",
                        env={"launcher-env": "1"})
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "argv ['policy-arg']"          # the policy's argv, not the launcher's
    assert out[1] == "pw-env 24 False"              # the policy's environment only
    assert out[2] == "pw-file True"                 # injected file, in memory only
    assert out[3] == f"cwd {attested['data']}"      # pwd inside the volume
    assert out[4] == "lines 1"
    assert "development mode" not in p.stderr
    assert not os.path.exists("/etc/kiln-test/pw.txt")
    # The volume is encrypted on disk and its tag is held by the CAS. (The
    # volume server removes .kiln/server as it exits: a listing taken before
    # that raced the removal, FileNotFoundError in make check.)
    wait_server_gone(attested["data"])
    raw = b"".join(f.read_bytes() for f in (attested["data"] / ".kiln").iterdir())
    assert raw and b"APP_PW" not in raw
    # A second run (new key, new attestation) sees the data.
    p = attested["run"](py, "-c", "pass")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[4] == "lines 2"


def test_attested_rollback_refused(attested):
    attested["apply"]()
    py = attested["python"]
    assert attested["run"](py).returncode == 0
    store = attested["data"] / ".kiln"
    wait_server_gone(attested["data"])
    old = {f.name: f.read_bytes() for f in store.iterdir()}
    assert attested["run"](py).returncode == 0
    wait_server_gone(attested["data"])
    # Put the older volume state back: the CAS's tag says it is a rollback.
    for f in store.iterdir():
        f.unlink()
    for name, data in old.items():
        (store / name).write_bytes(data)
    p = attested["run"](py)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "kiln: file shield: volume" in p.stderr and "rolled back" in p.stderr


def test_wrong_program_refused(attested):
    attested["apply"]()
    # The CAS accepts the measurement (policy: any) but the policy's command is
    # another program than the one started: the runtime refuses to run it.
    p = attested["run"]("/bin/true")
    assert p.returncode == 1
    assert "is not the program that was started" in p.stderr


def test_pinned_measurement(attested, kiln, tmp_path):
    py = attested["python"]
    # kiln measure with libkiln itself as the measuring library: the value is
    # what the runtime measures (its own dependencies mapped too).
    m = subprocess.run([str(BUILD / "kiln"), "measure", "--", py], capture_output=True,
                       text=True, env=dict(os.environ, KILN_MEASURE_LIB=str(
                           BUILD / "src" / "runtime" / "libkiln.so")))
    assert m.returncode == 0, m.stderr
    meas = m.stdout.strip()
    attested["apply"](meas=meas)
    assert attested["run"](py).returncode == 0
    # A different binary (a copy of python with one byte appended) is refused.
    bad = tmp_path / "python3"
    bad.write_bytes(open(py, "rb").read() + b"\0")
    bad.chmod(0o755)
    p = attested["run"](bad)
    assert p.returncode == 1
    assert "attestation refused" in p.stderr and "request id" in p.stderr


def test_attest_errors(kiln, tmp_path):
    p = kiln("run", "--cas", "https://127.0.0.1:1", "--cas-fingerprint", "00" * 32,
             "--session", "s", "--service", "x", "--tee", "sim", "--", "true")
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "kiln: WARNING: INSECURE simulation backend: no confidentiality, for development only",
        p.stderr.splitlines()[1]]
    assert p.stderr.splitlines()[1].startswith(
        "kiln: cannot reach the CAS at https://127.0.0.1:1: cannot connect")
    p = kiln("run", "--cas", "https://127.0.0.1:1", "--session", "s", "--service", "x",
             "--", "true", env={"KILN_CAS_CA": "", "KILN_CAS_FINGERPRINT": ""})
    assert p.returncode == 2
    assert "--cas needs --cas-ca FILE or --cas-fingerprint HEX" in p.stderr
    p = kiln("run", "--cas", "https://127.0.0.1:1", "--cas-fingerprint", "00" * 32, "--", "true")
    assert p.returncode == 2
    assert "--cas needs --session and --service" in p.stderr




def test_attested_run_host_backend(attested, kiln, cas, las, tmp_path):
    """tee host: kiln-las measures the process (leaving libkiln out by digest) and
    signs the evidence; the runtime's own measurement must agree for the binding."""
    sock, cert = las.sock, las.cert
    kiln("cas", "trust-las", cert, "--data", cas.data, check=True)
    text = POLICY.replace("tee: [sim]\n  allow_insecure_sim: true", "tee: [host]")
    python = attested["python"]
    (tmp_path / "h.yaml").write_text(text.format(
        python=python, app=json_str(APP), data=attested["data"], meas="any", pred="null"))
    kiln("policy", "apply", tmp_path / "h.yaml", env=cas.env(attested["owner"]), check=True)
    p = subprocess.run([cas.kiln_bin, "run", "--cas", cas.url, "--cas-ca", cas.ca_file,
                        "--session", "acme/app", "--service", "app", "--tee", "host", "--",
                        python], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, KILN_LAS_SOCKET=str(sock)))
    assert p.returncode == 0, p.stderr + cas.log()[-2000:]
    assert p.stdout.splitlines()[0] == "argv ['policy-arg']"

