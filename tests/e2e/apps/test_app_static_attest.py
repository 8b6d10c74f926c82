"""A statically linked program under `kiln run --static=supervise --cas`
(docs/runtime.md, "Statically linked programs"; the default, the static loader,
is test_app_static_loader_attest.py): the launcher is its supervisor; it measures the
file, attests (sim, or host through kiln-las with the static_exe request), and
runs that very file with the policy's argv, env, pwd, injected files and a CAS
volume."""
import contextlib
import re
import hashlib
import json
import os
import socket
import subprocess

import pytest

from kilnapps import BUILD

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
NOTE = "static-known-plaintext-5150"



def policy(prog, data, meas):
    """The policy, as JSON (a YAML flow document): two services that differ in
    their arguments only (hold: wait for EOF on stdin after the work)."""
    def service(name, *extra):
        return {"name": name, "command": [str(prog), "attest", str(data), *extra],
                "environment": {"APP_PW": "{{secret.pw}}", "NOTE": NOTE},
                "pwd": str(data),
                "files": [{"path": "/etc/kiln-test/pw.txt", "content": "{{secret.pw}}",
                           "mode": "0600"}],
                "mounts": [{"volume": "data", "path": str(data)}],
                "measurement": [meas]}
    return json.dumps({
        "name": "acme/static", "predecessor": None,
        "access": {"read": ["owner"], "update": ["owner"]},
        "secrets": [{"name": "pw", "kind": "ascii", "size": 24}],
        "volumes": [{"name": "data"}],
        "services": [service("app"), service("hold", "hold")],
        "security": {"tee": ["sim", "host"], "allow_insecure_sim": True}}, indent=1)


def measure(*args):
    m = subprocess.run([str(BUILD / "kiln"), "measure", *args], capture_output=True, text=True)
    assert m.returncode == 0, m.stderr
    return m.stdout


@pytest.fixture
def static(kiln, cas, cas_identity, tmp_path):
    if not PROG.exists():
        pytest.fail(f"{PROG} not built")
    owner, _ = cas_identity("owner")
    data = tmp_path / "data"
    prog = tmp_path / "rt_static_files"    # a copy: the tests make a modified one beside it
    prog.write_bytes(PROG.read_bytes())
    prog.chmod(0o755)

    def apply(meas=None):
        text = policy(prog, data, meas or measure("--", prog).strip())
        (tmp_path / "p.yaml").write_text(text)
        kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)

    def cmd(program=None, tee="sim", service="app", las=None, cas_url=None):
        extra = ["--las-socket", str(las.sock)] if las else []
        return [cas.kiln_bin, "run", "--static=supervise", "--cas", cas_url or cas.url,
                "--cas-ca", cas.ca_file,
                "--session", "acme/static", "--service", service, "--tee", tee, *extra,
                "--", str(program or prog), "attest", "/nonexistent", "launcher-arg"]

    def run(program=None, **kw):
        return subprocess.run(cmd(program, **kw), capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, LAUNCHER_ENV="1"))

    def committed():
        return cas.volume_committed("acme/static")

    return {"apply": apply, "run": run, "cmd": cmd, "prog": prog, "data": data,
            "committed": committed, "tmp": tmp_path}


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


def host_las(request, kiln, cas, tee):
    """For host: the las fixture, trusted by the CAS; for sim: None."""
    if tee != "host":
        return None
    las = request.getfixturevalue("las")
    kiln("cas", "trust-las", las.cert, "--data", cas.data, check=True)
    return las


def attested_twice(fx, cas, tee, las, runner):
    """Two attested runs of the app service (fx: a fixture's dict with run, data,
    prog, committed): the policy's argv, env, file and pwd, and the volume: the
    second run reads what the first wrote, and its fsync moves the freshness
    tag the CAS holds. For host, kiln-las's evidence is the measurement of the
    passed program (what `kiln measure` prints), which the kiln executable
    runner runs (supervised_by). Returns the first run."""
    data = fx["data"]
    first = fx["run"](tee=tee, las=las)
    check_run(first, data, 1)
    assert ("kiln: WARNING: INSECURE" in first.stderr) == (tee == "sim")
    assert NOTE.encode() not in ciphertext(data)
    tag1 = fx["committed"]()
    assert tag1 >= 1
    check_run(fx["run"](tee=tee, las=las), data, 2)
    assert fx["committed"]() > tag1
    assert NOTE.encode() not in ciphertext(data)
    if las:
        sha = hashlib.sha256(runner.read_bytes()).hexdigest()
        m = measure("--", fx["prog"]).strip()
        log = las.log_path.read_text()
        assert f'exe="{fx["prog"]}" measurement={m} supervised_by={sha}' in log, log
        assert f"supervised_by={sha}" in cas.log()
    return first


@pytest.mark.parametrize("tee", ["sim", "host"])
def test_static_attested_run(static, cas, kiln, request, tee):
    static["apply"]()
    # The supervisor is kiln-tool: the kiln front executes it for --cas.
    attested_twice(static, cas, tee, host_las(request, kiln, cas, tee), BUILD / "kiln-tool")


def test_static_tampered_volume_is_eio(static):
    static["apply"]()
    data = static["data"]
    check_run(static["run"](), data, 1)
    # A backing file (32 hex digits): meta.tmp/meta.pub are metadata copies
    # nothing may trust, and can be the largest files of a small volume.
    files = [f for f in (data / ".kiln").rglob("*")
             if f.is_file() and re.fullmatch(r"[0-9a-f]{32}", f.name) and f.stat().st_size > 0]
    target = max(files, key=lambda f: f.stat().st_size)
    b = bytearray(target.read_bytes())
    b[len(b) // 2] ^= 1
    target.write_bytes(bytes(b))
    p = static["run"]()
    assert p.returncode == 1
    assert p.stdout.splitlines()[-1] == "open-notes: errno=5"
    assert any(line.startswith(f"kiln: openat on {data}/notes.txt: ")
               for line in p.stderr.splitlines()), p.stderr


def test_static_modified_binary_refused(static, cas):
    static["apply"]()
    bad = static["tmp"] / "modified"
    bad.write_bytes(static["prog"].read_bytes() + b"\0")   # one byte appended
    bad.chmod(0o755)
    assert measure("--", bad) != measure("--", static["prog"])
    p = static["run"](bad)
    assert p.returncode == 1
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("kiln: attestation refused by the CAS (request id "), p.stderr
    assert "not in service 'app' measurement" in cas.log()
    assert not static["data"].exists()     # never ran: no volume, no output


def test_static_policy_command_must_be_the_program(static):
    # The CAS accepts the measurement (the same bytes) but the policy names
    # another file than the one started: the supervisor does not run it.
    static["apply"]()
    other = static["tmp"] / "copy"
    other.write_bytes(static["prog"].read_bytes())
    other.chmod(0o755)
    p = static["run"](other)
    assert p.returncode == 1 and p.stdout == ""
    assert "is not the program that was started" in p.stderr
    assert not static["data"].exists()


def test_static_unreachable_cas(static):
    static["apply"]()
    p = static["run"](cas_url="https://127.0.0.1:1")
    assert p.returncode == 1
    assert p.stdout == ""
    lines = [line for line in p.stderr.splitlines() if "WARNING: INSECURE" not in line]
    # The path is said before the attestation (as the loader's is).
    assert len(lines) == 2 and lines[0].endswith(" is statically linked: running it "
                                                 "supervised (seccomp), every file call traps")
    assert lines[1].startswith("kiln: cannot reach the CAS at https://127.0.0.1:1: "), p.stderr
    assert not static["data"].exists()


def test_static_measure_equals_running_process(static):
    prog = static["prog"]
    manifest = measure("--manifest", "--", prog).splitlines()
    assert manifest[0] == "kiln-manifest-v1"
    exe = hashlib.sha256(prog.read_bytes()).hexdigest()
    assert f"exe {exe}" in manifest
    assert not [line for line in manifest if line.startswith("lib ")]
    # A running process of the same file maps nothing else: same value.
    p = subprocess.Popen([str(prog), "hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        assert measure("--pid", str(p.pid)).strip() == manifest[-1]
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        p.stdout.close()


@contextlib.contextmanager
def holding(cmd):
    """The "hold" service started by cmd, once it has printed its lines and
    waits: yields the launcher's Popen, then lets it exit (status 0)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, LAUNCHER_ENV="1"))
    try:
        out = [p.stdout.readline() for _ in range(6)]
        assert out[1] == "pw-env 24 policy-env-only\n" and out[5] == "ready\n", out
        yield p
    finally:
        p.stdin.close()
        rc = p.wait(timeout=60)
        p.stdout.close()
        p.stderr.close()
    assert rc == 0


def test_static_secrets_not_in_launcher_proc(static):
    static["apply"]()
    with holding(static["cmd"](service="hold")) as p:
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            (child,) = f.read().split()
        with open(f"/proc/{child}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        secret = env[b"APP_PW"]    # documented: exec puts the program's env on its stack
        assert len(secret) == 24
        for name in ("cmdline", "environ"):
            with open(f"/proc/{p.pid}/{name}", "rb") as f:
                assert secret not in f.read(), name


def las_ask(las, line, fds=()):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(las.sock))
        socket.send_fds(s, [line.encode()], list(fds))
        with s.makefile("rb") as f:
            return json.loads(f.readline())


def test_las_static_exe_only_from_kiln(las):
    rd = "ab" * 64
    with open(PROG, "rb") as f:
        fd = f.fileno()
        # This Python process is not the kiln build of kiln-las: refused.
        a = las_ask(las, f'{{"report_data": "{rd}", "static_exe": true}}\n', [fd])
        assert a == {"error": "static_exe: the peer is not the kiln build of this kiln-las "
                              "or its kiln-sload (only they may pass a program)"}
        # A descriptor without the flag, the flag without a descriptor: refused.
        a = las_ask(las, f'{{"report_data": "{rd}"}}\n', [fd])
        assert a == {"error": "a file descriptor is accepted only with \"static_exe\": true"}
        a = las_ask(las, f'{{"report_data": "{rd}", "static_exe": true}}\n')
        assert a == {"error": "static_exe needs the program's file descriptor (SCM_RIGHTS)"}
        a = las_ask(las, f'{{"report_data": "{rd}"}}\n', [fd, fd])
        assert a == {"error": "one file descriptor at most, with the first byte of the "
                              "request"}
    # The plain request still measures the caller.
    a = las_ask(las, f'{{"report_data": "{rd}"}}\n')
    assert a.get("format") == "kiln-las-v1", a


@pytest.mark.parametrize("shield", [{"network": {"default": "deny"}},
                                    {"console": "protected"}])
def test_static_with_network_or_console_refused(static, kiln, cas, cas_identity, shield):
    # The network and console shields live in libkiln: a supervised static
    # program cannot have them, so the launcher refuses to run it unshielded.
    meas = measure("--", static["prog"]).strip()
    doc = json.loads(policy(static["prog"], static["data"], meas))
    doc["services"][0].update(shield)
    path = static["tmp"] / "p.yaml"
    path.write_text(json.dumps(doc))
    owner, _ = cas_identity("shield-owner")
    kiln("policy", "apply", path, env=cas.env(owner), check=True)
    p = static["run"]()
    assert p.returncode == 1, p.stdout + p.stderr
    assert NOTE not in p.stdout
    key = next(iter(shield))
    assert f"the policy shields this service's {key}, which a statically linked program " \
           "cannot have" in p.stderr, p.stderr
