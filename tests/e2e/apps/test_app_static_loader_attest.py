"""A statically linked program attested through the static loader (`kiln run
--static=loader --cas`, docs/runtime.md "The static loader"): libkiln's
constructor in kiln-sload opens the program once, measures that descriptor
(the exe line only, what `kiln measure -- STATIC` prints), checks the runtime
around it, attests (sim, or host through kiln-las with the static_exe request
from kiln-sload) and maps that descriptor with the policy's argv and env on
the program's new stack, its injected files and a CAS volume."""
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cas_proxy import CasProxy
from kilnapps import BUILD
from test_app_static_attest import NOTE, attested_twice, check_run, holding, host_las, \
    measure, policy

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
SLOAD = BUILD / "src" / "runtime" / "kiln-sload"
HELLO = BUILD / "tests" / "e2e" / "apps" / "rt_static_hello"
BUSYBOX = Path(os.environ.get("KILN_BUSYBOX_STATIC", "/opt/kiln/busybox-static/bin/busybox"))


def said_loader(p, prog):
    return (f"kiln: {prog} is statically linked: running it in-process under the static "
            "loader (kiln-sload; file calls trap by seccomp)") in p.stderr.splitlines()


@pytest.fixture
def loaded(kiln, cas, cas_identity, tmp_path):
    if not PROG.exists():
        pytest.fail(f"{PROG} not built")
    owner, _ = cas_identity("owner")
    data = tmp_path / "data"
    prog = tmp_path / "rt_static_files"
    prog.write_bytes(PROG.read_bytes())
    prog.chmod(0o755)

    def apply(meas=None, session="acme/static", **service):
        """The policy of test_app_static_attest, its first service updated."""
        doc = json.loads(policy(prog, data, meas or measure("--", prog).strip()))
        doc["name"] = session
        doc["services"][0].update(service)
        (tmp_path / "p.yaml").write_text(json.dumps(doc))
        kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)
        applied.append(session)

    def cmd(program=None, tee="sim", service="app", las=None, session="acme/static"):
        extra = ["--las-socket", str(las.sock)] if las else []
        return [cas.kiln_bin, "run", "--static=loader", "--cas", cas.url, "--cas-ca",
                cas.ca_file, "--session", session, "--service", service, "--tee", tee,
                *extra, "--", str(program or prog), "attest", "/nonexistent", "launcher-arg"]

    def run(program=None, **kw):
        if not applied:
            apply()
        return subprocess.run(cmd(program, **kw), capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, LAUNCHER_ENV="1"))

    applied = []
    return {"run": run, "cmd": cmd, "prog": prog, "data": data, "apply": apply,
            "committed": lambda: cas.volume_committed("acme/static")}


@pytest.mark.parametrize("tee", ["sim", "host"])
def test_loader_attested_run(loaded, cas, kiln, request, tee):
    # For host, kiln-las measured the passed program for kiln-sload.
    p = attested_twice(loaded, cas, tee, host_las(request, kiln, cas, tee), SLOAD)
    assert said_loader(p, loaded["prog"]), p.stderr
    assert "supervised" not in p.stderr


def test_loader_attests_what_kiln_measure_prints(loaded, cas):
    # The policy pins `kiln measure -- STATIC` (exe line only): the loader's
    # run is accepted. One byte of difference in the pinned value: refused by
    # the CAS for its measurement, before the program runs.
    prog = loaded["prog"]
    manifest = measure("--manifest", "--", prog).splitlines()
    assert manifest[2] == f"exe {hashlib.sha256(prog.read_bytes()).hexdigest()}"
    assert len(manifest) == 4
    p = loaded["run"]()
    check_run(p, loaded["data"], 1)
    wrong = manifest[-1][:-1] + ("0" if manifest[-1][-1] != "0" else "1")
    loaded["apply"](wrong, session="acme/wrong")
    p = loaded["run"](session="acme/wrong")
    assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
    assert p.stderr.splitlines()[-1].startswith("kiln: attestation refused by the CAS "
                                                "(request id "), p.stderr
    assert "not in service 'app' measurement" in cas.log()


def test_loader_unreachable_cas(loaded, cas):
    cmd = loaded["cmd"]()
    cmd[cmd.index(cas.url)] = "https://127.0.0.1:1"
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    lines = [line for line in p.stderr.splitlines()
             if "WARNING: INSECURE" not in line and "running it in-process" not in line]
    assert len(lines) == 1 and lines[0].startswith(
        "kiln: cannot reach the CAS at https://127.0.0.1:1: "), p.stderr
    assert not loaded["data"].exists()


@pytest.mark.parametrize("shield", [{"network": {"default": "deny"}},
                                    {"console": "protected"}])
def test_loader_with_network_or_console_refused(loaded, shield):
    loaded["apply"](**shield)
    p = loaded["run"]()
    assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
    key = next(iter(shield))
    assert (f"kiln: attestation: the policy shields this service's {key}, which the static "
            "loader does not run: refusing to run it unshielded") in p.stderr, p.stderr


def test_busybox_static_attested_in_process(loaded):
    if not BUSYBOX.exists():
        pytest.fail(f"{BUSYBOX} missing: run scripts/install-deps.sh (busybox-static)")
    loaded["apply"](command=[str(BUSYBOX), "cat", "/etc/kiln-test/pw.txt"],
                    measurement=[measure("--", BUSYBOX).strip()])
    p = loaded["run"](BUSYBOX)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) == 24 and p.stdout.isprintable(), p.stdout   # the secret
    assert said_loader(p, BUSYBOX), p.stderr


def test_loader_secrets_not_in_proc(loaded):
    # Under the supervisor the policy's environment is in the program's
    # /proc/PID/environ (documented); in the loader it is on a stack the
    # loader built in memory: kiln-sload's environ and cmdline are the launcher's.
    loaded["apply"]()
    with holding(loaded["cmd"](service="hold")) as p:
        assert os.readlink(f"/proc/{p.pid}/exe") == str(SLOAD)
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            env = f.read()
        # The launcher's variable is there, none of the policy's.
        assert b"LAUNCHER_ENV=1" in env
        assert b"APP_PW=" not in env and NOTE.encode() not in env
        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert argv[:2] == [str(SLOAD).encode(), str(loaded["prog"]).encode()]
        assert str(loaded["data"]).encode() not in argv      # the policy's argv


def test_loader_maps_the_measured_descriptor(loaded, cas):
    # A static program renamed over the program's path when the second CAS
    # connection comes in: the grant's command was checked, and libkiln, in
    # its constructor, creates the policy's new volume (prepare/commit on
    # connections of their own) before kiln-sload's main maps the program.
    # The one descriptor is mapped: the original runs. (Reopened by path at
    # the mapping, the replacement ran with the grant: tried, "static hello".)
    loaded["apply"]()
    prog = loaded["prog"]
    repl = prog.parent / "replacement"
    shutil.copy(HELLO, repl)
    proxy = CasProxy(cas.port, lambda n: n == 2 and os.replace(repl, prog))
    try:
        cmd = loaded["cmd"]()
        cmd[cmd.index(cas.url)] = proxy.url
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        proxy.close()
    assert proxy.accepted >= 2 and not repl.exists()
    assert "static hello" not in p.stdout
    check_run(p, loaded["data"], 1)
