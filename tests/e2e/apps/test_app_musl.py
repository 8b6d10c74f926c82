"""Programs of other kinds than glibc-linked ones (issue 13): a musl-linked
program (built here with Debian's musl-gcc, as Alpine's are linked) runs under
libkiln-musl.so, which `kiln run` picks from its program interpreter: the file
shield on a volume (libc calls, raw `syscall` instructions through Syscall
User Dispatch, fork and exec across both C libraries) and attestation before
main with the policy's argv, environment, injected file and volume; sqlite3
built with musl-gcc from Debian's source package on a volume. A static
musl program runs on a volume under the static loader (the default) and the
supervisor. Files that are no x86-64
program, and programs of a loader kiln has no runtime for, are refused before
anything runs them, with the file and the reason named (src/evidence/elf.c)."""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from kilnapps import BUILD, SECRET, sqlite_on_volume
from kilnenv import ROOT

APPS = ROOT / "tests" / "e2e" / "apps"
SRC = APPS / "static_files.c"
NOTE = "musl-known-plaintext-7741"
HELLO = '#include <stdio.h>\nint main(void) { puts("program ran"); return 0; }\n'
# fork+execv (f) or posix_spawn (s) of argv[2...]; prints the child's status.
SPAWN = r"""
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv)
{
    pid_t pid;
    int st;
    if (argc < 3)
        return 2;
    if (argv[1][0] == 'f') {
        pid = fork();
        if (pid == 0) {
            execv(argv[2], argv + 2);
            _exit(127);
        }
    } else if (posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ)) {
        return 1;
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return 1;
    printf("child exit=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 0;
}
"""


@pytest.fixture(scope="module")
def musl_gcc():
    path = shutil.which("musl-gcc")
    if not path:
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    if not (BUILD / "src" / "runtime" / "libkiln-musl.so").exists():
        pytest.fail("libkiln-musl.so not built (scripts/build-musl-openssl.sh, -Dmusl=enabled)")
    return path


def build(musl_gcc, tmp_path, name, src, *flags):
    exe = tmp_path / name
    if isinstance(src, str):
        (tmp_path / f"{name}.c").write_text(src)
        src = tmp_path / f"{name}.c"
    subprocess.run([musl_gcc, *flags, "-O1", "-o", str(exe), str(src)], check=True)
    return exe


def kiln(volume, *args, env=None):
    return subprocess.run([volume.kiln_bin, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_static_musl_program_on_a_volume(volume, musl_gcc, tmp_path):
    prog = build(musl_gcc, tmp_path, "files-musl-static", SRC, "-static")
    # The default for a static program: the static loader.
    p = volume.run(prog, "write", volume.dir, SECRET, check=True)
    assert p.stdout.splitlines() == [f"read: {SECRET}", f"size: {len(SECRET)}",
                                     f"renamed: {SECRET}+more"]
    assert f"kiln: {prog} is statically linked: running it in-process under the static " \
           "loader (kiln-sload; file calls trap by seccomp)" in p.stderr.splitlines()
    volume.assert_no_plaintext()
    # The supervisor reads what the loader wrote.
    p = volume.run(prog, "read", volume.dir, extra=["--static=supervise"], check=True)
    assert p.stdout.splitlines() == [f"content: {SECRET}+more", f"size: {len(SECRET) + 5}"]
    assert f"kiln: {prog} is statically linked: running it supervised (seccomp), " \
           "every file call traps" in p.stderr.splitlines()
    m = kiln(volume, "measure", "--", prog)
    assert m.returncode == 0, m.stderr
    assert f"kiln: measure: {prog}: statically linked, measured from its file" in m.stderr


def test_musl_program_on_a_volume(volume, musl_gcc, tmp_path):
    prog = build(musl_gcc, tmp_path, "files-musl", SRC)
    p = volume.run(prog, "write", volume.dir, SECRET, check=True)
    assert p.stdout.splitlines() == [f"read: {SECRET}", f"size: {len(SECRET)}",
                                     f"renamed: {SECRET}+more"]
    assert "supervised" not in p.stderr         # the runtime in the process, no supervisor
    volume.assert_no_plaintext()
    p = volume.run(prog, "read", volume.dir, check=True)
    assert p.stdout.splitlines() == [f"content: {SECRET}+more", f"size: {len(SECRET) + 5}"]
    # fork: the child closes its copy of a protected fd, the parent writes on.
    p = volume.run(prog, "fork", volume.dir, check=True)
    assert p.stdout == "forked: AB\n"
    # A glibc program reads what the musl one wrote (same volume, same format).
    p = volume.run("/bin/cat", volume.dir / "renamed.txt", check=True)
    assert p.stdout == f"{SECRET}+more"
    m = kiln(volume, "measure", "--", prog)
    assert m.returncode == 0, m.stderr
    assert f"kiln: measure: {prog}: musl dynamic, measured before main() with " \
           "libkiln-musl.so preloaded" in m.stderr
    assert len(m.stdout.strip()) == 96


def test_musl_raw_system_calls_on_a_volume(volume, musl_gcc, tmp_path):
    """Inline `syscall` instructions and musl's own syscall(): only Syscall User
    Dispatch sees the first (musl's libc issues its calls inline too)."""
    prog = build(musl_gcc, tmp_path, "direct-musl", APPS / "direct_syscall.c")
    target = volume.dir / "raw.txt"
    p = volume.run(prog, "write", target, SECRET, check=True)
    p = volume.run(prog, "read", target, check=True)
    assert p.stdout == f"size={len(SECRET)} content={SECRET}\n"
    p = volume.run(prog, "libc-read", target, check=True)
    assert p.stdout == f"size={len(SECRET)} content={SECRET}\n"
    volume.assert_no_plaintext()


def test_musl_fork_exec_and_spawn_across_c_libraries(volume, musl_gcc, tmp_path):
    """Each executed program gets the runtime of its own C library: musl to
    musl, musl to glibc (cat) and glibc (sh) to musl, by fork+exec and by
    posix_spawn; each child reads the volume's plaintext."""
    files = build(musl_gcc, tmp_path, "files-musl", SRC)
    spawn = build(musl_gcc, tmp_path, "spawn-musl", SPAWN)
    volume.run(files, "write", volume.dir, SECRET, check=True)
    want = f"content: {SECRET}+more\nsize: {len(SECRET) + 5}\n"
    for how in ("fork", "spawn"):
        p = volume.run(spawn, how, files, "read", volume.dir, check=True)
        assert p.stdout == want + "child exit=0\n", (how, p.stdout, p.stderr)
        p = volume.run(spawn, how, "/bin/cat", volume.dir / "renamed.txt", check=True)
        assert p.stdout == f"{SECRET}+more" + "child exit=0\n", (how, p.stdout, p.stderr)
    p = volume.run("/bin/sh", "-c", f"{files} read {volume.dir}", check=True)
    assert p.stdout == want
    volume.assert_no_plaintext()


def test_program_of_a_copied_root_file_system(volume, musl_gcc, tmp_path):
    """An image's binary run on the host with the image's own loader (its
    PT_INTERP pointed into the copied root file system, as patchelf
    --set-interpreter does; docs/runtime.md, "Alpine images"): still a musl
    program, and the measurement covers the image's loader."""
    rootfs = tmp_path / "rootfs" / "lib"
    rootfs.mkdir(parents=True)
    loader = rootfs / "ld-musl-x86_64.so.1"
    shutil.copy("/lib/ld-musl-x86_64.so.1", loader)
    prog = build(musl_gcc, tmp_path, "files-rootfs", SRC, f"-Wl,--dynamic-linker={loader}")
    p = volume.run(prog, "write", volume.dir, SECRET, check=True)
    assert p.stdout.splitlines()[-1] == f"renamed: {SECRET}+more"
    volume.assert_no_plaintext()
    m = kiln(volume, "measure", "--manifest", "--", prog)
    assert m.returncode == 0, m.stderr
    assert "musl dynamic" in m.stderr
    loader_sha = hashlib.sha256(loader.read_bytes()).hexdigest()
    assert f"lib {loader_sha}" in m.stdout.splitlines(), m.stdout


def policy(prog, data, meas):
    return json.dumps({
        "name": "acme/musl", "predecessor": None,
        "access": {"read": ["owner"], "update": ["owner"]},
        "secrets": [{"name": "pw", "kind": "ascii", "size": 24}],
        "volumes": [{"name": "data"}],
        "services": [{"name": "app", "command": [str(prog), "attest", str(data)],
                      "environment": {"APP_PW": "{{secret.pw}}", "NOTE": NOTE},
                      "pwd": str(data),
                      "files": [{"path": "/etc/kiln-test/pw.txt", "content": "{{secret.pw}}",
                                 "mode": "0600"}],
                      "mounts": [{"volume": "data", "path": str(data)}],
                      "measurement": [meas]}],
        "security": {"tee": ["sim"], "allow_insecure_sim": True}}, indent=1)


def test_musl_attested_run(kiln, cas, cas_identity, musl_gcc, tmp_path):
    """Attestation before main in a musl process: the policy's argv, environment
    (not the launcher's), pwd, injected file and a CAS volume; measured by
    `kiln measure` with libkiln-musl.so, the value the runtime measures."""
    owner, _ = cas_identity("owner")
    prog = build(musl_gcc, tmp_path, "files-musl", SRC)
    data = tmp_path / "data"
    m = subprocess.run([str(BUILD / "kiln"), "measure", "--", str(prog)], capture_output=True,
                       text=True)
    assert m.returncode == 0, m.stderr
    (tmp_path / "p.yaml").write_text(policy(prog, data, m.stdout.strip()))
    kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)
    cmd = [cas.kiln_bin, "run", "--cas", cas.url, "--cas-ca", cas.ca_file, "--session",
           "acme/musl", "--service", "app", "--tee", "sim", "--", str(prog), "attest",
           "/nonexistent", "launcher-arg"]
    for lines in (1, 2):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, LAUNCHER_ENV="1"))
        assert p.returncode == 0, p.stdout + p.stderr + cas.log()[-3000:]
        assert p.stdout.splitlines() == [f"argv {data}", "pw-env 24 policy-env-only",
                                         "pw-file same", f"cwd {data}", f"lines {lines}"]
        assert "kiln: WARNING: INSECURE" in p.stderr
        assert not os.path.exists("/etc/kiln-test/pw.txt")
    raw = b"".join(f.read_bytes() for f in (data / ".kiln").rglob("*") if f.is_file())
    assert raw and NOTE.encode() not in raw
    # Another musl program (one byte more) is not the measured one: refused
    # before its main, nothing written.
    bad = tmp_path / "modified"
    bad.write_bytes(prog.read_bytes() + b"\0")
    bad.chmod(0o755)
    p = subprocess.run(cmd[:-4] + [str(bad), "attest", "/nonexistent"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
    assert "kiln: attestation refused by the CAS (request id " in p.stderr, p.stderr


def test_unknown_loader_is_refused_before_it_runs(volume, musl_gcc, tmp_path):
    prog = build(musl_gcc, tmp_path, "hello-other", HELLO,
                 "-Wl,--dynamic-linker=/lib/ld-kiln-unknown.so.1")
    for args in (("run", "--", prog), ("run", "--volume", f"{volume.dir}={volume.key}", "--", prog),
                 ("measure", "--", prog)):
        p = kiln(volume, *args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "program ran" not in p.stdout
        assert f"{prog} has a program interpreter kiln has no runtime for " \
               "(/lib/ld-kiln-unknown.so.1)" in p.stderr, p.stderr


def test_missing_musl_runtime_is_named(volume, musl_gcc, tmp_path):
    prog = build(musl_gcc, tmp_path, "hello-musl", HELLO)
    env = dict(os.environ, KILN_RUNTIME_MUSL_LIB=str(tmp_path / "none" / "libkiln-musl.so"))
    p = kiln(volume, "run", "--", prog, env=env)
    assert p.returncode == 1 and "program ran" not in p.stdout
    assert f"KILN_RUNTIME_MUSL_LIB={tmp_path}/none/libkiln-musl.so: not a readable absolute " \
           "path" in p.stderr, p.stderr
    p = kiln(volume, "run", "--", prog)
    assert p.returncode == 0 and p.stdout == "program ran\n", p.stderr


def test_files_that_are_no_x86_64_program_are_refused(volume, tmp_path):
    true = open("/bin/true", "rb").read()
    cases = {}
    cases["aarch64"] = (true[:18] + (183).to_bytes(2, "little") + true[20:],
                        "an ELF program for another architecture (aarch64")
    cases["elf32"] = (true[:4] + b"\x01" + true[5:], "a 32-bit ELF program")
    cases["truncated"] = (true[:40], "truncated ELF header")
    cases["headers-cut"] = (true[:80], "its program headers lie beyond the end of the file")
    obj_src = tmp_path / "o.c"
    obj_src.write_text("int f(void) { return 1; }\n")
    subprocess.run(["cc", "-c", "-o", str(tmp_path / "o.o"), str(obj_src)], check=True)
    cases["object"] = ((tmp_path / "o.o").read_bytes(), "not an executable (ELF type 1")
    for name, (data, why) in cases.items():
        exe = tmp_path / name
        exe.write_bytes(data)
        exe.chmod(0o755)
        for cmd in ("run", "measure"):
            p = kiln(volume, cmd, "--", exe)
            assert p.returncode == 1, (name, cmd, p.stderr)
            assert f"kiln: {cmd}: {exe}: {why}" in p.stderr, (name, cmd, p.stderr)


def test_scripts_and_glibc_programs_still_run(volume, tmp_path):
    """The classification leaves what it does not refuse alone: a #! script
    (its interpreter runs it) and a glibc program."""
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\necho script ran\n")
    script.chmod(0o755)
    p = kiln(volume, "run", "--", script)
    assert p.returncode == 0 and p.stdout == "script ran\n", p.stderr
    p = kiln(volume, "run", "--", "/bin/echo", "glibc ran")
    assert p.returncode == 0 and p.stdout == "glibc ran\n", p.stderr


SQLITE_MUSL = pathlib.Path(os.environ.get("KILN_MUSL_SQLITE3", "/opt/kiln/musl-sqlite3")) / \
    "bin" / "sqlite3-musl"


@pytest.mark.stress
def test_musl_sqlite3_on_a_volume_stress(volume, musl_gcc):
    """sqlite3 built with musl-gcc from the amalgamation of Debian's sqlite3
    source package (scripts/build-musl-sqlite3.sh, which `make stress` runs
    first: building it takes minutes, so it is not part of make check): a
    database with a journal on a protected volume, read back by it and by
    Debian's (glibc) sqlite3."""
    if not os.access(SQLITE_MUSL, os.X_OK):
        pytest.fail(f"{SQLITE_MUSL} not built (scripts/build-musl-sqlite3.sh, run by "
                    "make stress)")
    sqlite_on_volume(volume, SQLITE_MUSL)
