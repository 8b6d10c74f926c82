"""kiln run's start-up: what the launcher maps before the program's exec
(docs/runtime.md, "Start-up cost of kiln run"). Never timings: what is
loaded, and that the fast paths stay correct. The front (`kiln`) runs the
common `kiln run` itself and executes the full tool (`kiln-tool`) for the rest
(docs/architecture.md "Binaries")."""
import os
import subprocess

import pytest

# Shared objects the full tool needs and the front must not map.
TOOL_ONLY_LIBS = ("libcrypto.so", "libssl.so", "libevent", "libfuse3.so", "libyaml",
                  "libjansson.so")


def loaded_objects(path):
    """The shared objects the dynamic loader maps for path, as ldd lists them
    (without running it)."""
    env = dict(os.environ, LD_TRACE_LOADED_OBJECTS="1")
    p = subprocess.run([path], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def tool_bin(kiln_bin):
    return os.path.join(os.path.dirname(kiln_bin), "kiln-tool")


def test_launcher_does_not_map_the_store_libraries(kiln_bin):
    """libpq (with Kerberos, LDAP, GnuTLS and their constructors) and
    libsqlite3 are loaded by the CAS store when it opens, not by every kiln
    command: `kiln run` pays for none of them, nor does the full tool."""
    for binary in (kiln_bin, tool_bin(kiln_bin)):
        libs = loaded_objects(binary)
        for lib in ("libpq.so", "libsqlite3.so", "libgnutls.so", "libkrb5.so", "libldap"):
            assert not [x for x in libs if x.startswith(lib)], (binary, lib, libs)


def loader_trace(argv, **kw):
    """argv run with LD_DEBUG=files: (process, the loader's lines of every
    process it became or started)."""
    env = dict(os.environ, LD_DEBUG="files")
    env.update(kw.pop("env", {}))
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, **kw)
    return p, [line for line in p.stderr.splitlines() if "file=" in line or
               "transferring control" in line]


def test_front_runs_a_dynamic_program_without_the_tool(kiln, kiln_bin, tmp_path):
    """`kiln run` of a dynamic program in development mode, with or without a
    volume, is the front's: nothing of the full tool's libraries (libcrypto,
    libssl, libevent, fuse3, yaml, jansson) is mapped by any process before
    the program (nor by it: libkiln's OpenSSL is its own), which still gets its
    runtime and its volume. Every other
    command goes through kiln-tool, with them."""
    d, key = tmp_path / "vol", tmp_path / "vol.key"
    kiln("fs", "init", d, "--key-file", key, check=True)
    cases = [
        ["run", "--", "/bin/true"],
        ["run", "--volume", f"{d}={key}", "--", "/bin/sh", "-c", f"echo hi > {d}/f; cat {d}/f"],
    ]
    for args in cases:
        p, trace = loader_trace([kiln_bin, *args])
        assert p.returncode == 0, p.stderr
        assert "kiln: development mode: no attestation" in p.stderr
        assert any("libkiln.so" in line for line in trace), trace
        for lib in TOOL_ONLY_LIBS:
            assert not [x for x in trace if lib in x], (args, lib, trace)
    assert p.stdout == "hi\n"
    # The rest is the full tool's, which maps them.
    p, trace = loader_trace([kiln_bin, "fs", "ls", d, "--key-file", key])
    assert p.returncode == 0, p.stderr
    assert "f" in p.stdout.split()
    for lib in TOOL_ONLY_LIBS:
        assert [x for x in trace if lib in x], (lib, trace)


def run_both(kiln_bin, args):
    out = []
    for binary in (kiln_bin, tool_bin(kiln_bin)):
        p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
        out.append((p.returncode, p.stdout, p.stderr))
    return out


@pytest.mark.parametrize("args", [
    [], ["--help"], ["--version"], ["version"], ["nosuch"], ["run"], ["run", "--help"],
    ["run", "-h", "--", "/bin/true"], ["run", "--nosuch", "--", "/bin/true"],
    ["run", "--volume"], ["run", "--volume", "nokey", "--", "/bin/true"],
    ["run", "--volume", "/nonexistent=/nonexistent.key", "--", "/bin/true"],
    ["run", "--freshness", "never", "--", "/bin/true"], ["run", "--sud", "maybe", "--", "true"],
    ["run", "--session", "s", "--", "/bin/true"], ["run", "--static", "x", "--", "/bin/true"],
    ["run", "--", "/nonexistent/program"], ["run", "--", "kiln-no-such-program"],
    ["run", "--", "/etc/hostname"], ["run", "--", "/bin/sh", "-c", "echo $0; exit 3"],
])
def test_front_says_what_the_tool_says(kiln_bin, args):
    """Whichever binary handles a command line, the user sees the same output,
    errors and exit code: the front's own refusals are the tool's (one
    option table, one parser)."""
    front, tool = run_both(kiln_bin, args)
    assert front == tool


def test_front_finds_its_tool_by_its_own_path(kiln_bin, tmp_path):
    """The front executes the kiln-tool next to its own file (/proc/self/exe)
    or the installed one: never one named by PATH, argv[0], a symlink's
    directory or the environment, which the host owns."""
    marker = tmp_path / "fake-ran"
    fake = tmp_path / "kiln-tool"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\necho fake tool\nexit 0\n")
    fake.chmod(0o755)
    link = tmp_path / "kiln"
    link.symlink_to(kiln_bin)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               KILN_TOOL=str(fake), KILN_LIBEXEC=str(tmp_path), KILN_BUILD=str(tmp_path))
    want = subprocess.run([tool_bin(kiln_bin), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert want.returncode == 0 and want.stdout.startswith("kiln ")
    for argv0, exe in ((str(link), str(link)), ("kiln", kiln_bin), (str(fake), kiln_bin),
                       (str(link), kiln_bin)):
        p = subprocess.run([argv0, "--version"], executable=exe, env=env, capture_output=True,
                           text=True, timeout=60)
        assert (p.returncode, p.stdout) == (0, want.stdout), (argv0, exe, p.stdout, p.stderr)
        assert not marker.exists(), (argv0, exe)
    # kiln-cc (a link to kiln) is the tool's, also when its first argument is "run".
    cc = subprocess.run([os.path.join(os.path.dirname(kiln_bin), "kiln-cc"), "run", "-E"],
                        env=dict(os.environ, KILN_CC="/bin/echo"), capture_output=True,
                        text=True, timeout=60)
    assert (cc.returncode, cc.stdout) == (0, "run -E\n"), cc.stderr
    assert not marker.exists()
