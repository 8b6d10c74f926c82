"""kiln run: command line, development mode, errors, secrets handling."""
import os
import pathlib
import subprocess

import pytest


def test_help(kiln):
    p = kiln("run", "--help")
    assert p.returncode == 0
    assert p.stdout.startswith("Usage: kiln run [OPTIONS] -- PROGRAM [ARGS...]")


@pytest.mark.parametrize("args,msg", [
    ([], "run: missing PROGRAM"),
    (["--freshness", "sometimes", "--", "true"], "--freshness 'sometimes': expected"),
    (["--sud", "maybe", "--", "true"], "--sud 'maybe': expected on, off or auto"),
    (["--volume", "nokey", "--", "true"], "--volume 'nokey': expected MOUNT=DIR:KEYFILE"),
    (["--bogus", "--", "true"], "run: unknown or incomplete option '--bogus'"),
    (["--cas", "https://127.0.0.1:1", "--cas-fingerprint", "00" * 32, "--session", "a/b",
      "--service", "s", "--tee", "sim", "--sud", "off", "--", "true"],
     "run: --sud off with --cas: an attested program needs Syscall User Dispatch"),
])
def test_usage_errors(kiln, args, msg):
    p = kiln("run", *args)
    assert p.returncode == 2
    assert msg in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_dev_mode_runs_program(kiln):
    p = kiln("run", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert p.stderr == "kiln: development mode: no attestation\nerr\n"


@pytest.mark.parametrize("sud", ["auto", "on"])
def test_bash_children_run(kiln, sud):
    """bash has its own unsetenv (for its variable table): the runtime's
    removal of the config fd's variable must not go through it, or bash
    exports a closed fd's number to every child, which then dies before its
    main ('runtime configuration: Bad file descriptor')."""
    p = kiln("run", "--sud", sud, "--", "bash", "--norc", "-c",
             '/bin/echo child; echo "rc=$? var=${KILN_CONFIG_FD-unset}"')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "child\nrc=0 var=unset\n"
    assert p.stderr == "kiln: development mode: no attestation\n"


def test_sud_on_without_volumes(kiln):
    """SUD traps every call made outside the runtime; programs still work,
    including threads and children."""
    code = ("import threading,subprocess,os;"
            "t=threading.Thread(target=print,args=('thread',));t.start();t.join();"
            "print(subprocess.run(['echo','child'],capture_output=True,text=True).stdout,end='');"
            "print(os.system('true'))")
    p = kiln("run", "--sud", "on", "--", "python3", "-c", code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["thread", "child", "0"]


def test_missing_program(kiln):
    p = kiln("run", "--", "/nonexistent/prog")
    assert p.returncode == 1
    assert "cannot execute /nonexistent/prog: No such file or directory" in p.stderr


def test_bad_key_file(kiln, tmp_path):
    key = tmp_path / "k"
    key.write_text("not a key\n")
    p = kiln("run", "--volume", f"{tmp_path}={key}", "--", "true")
    assert p.returncode == 2
    assert f"key file {key}: not a volume key" in p.stderr
    p = kiln("run", "--volume", f"{tmp_path}={tmp_path}/missing", "--", "true")
    assert p.returncode == 2
    assert f"key file {tmp_path}/missing: No such file or directory" in p.stderr


def test_not_a_volume(kiln, tmp_path):
    key = tmp_path / "k"
    key.write_text("ab" * 32 + "\n")
    d = tmp_path / "empty"
    d.mkdir()
    p = kiln("run", "--volume", f"{d}={key}", "--", "true")
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1].startswith(f"kiln: file shield: volume {d}")


def test_runtime_lib_override(kiln, tmp_path):
    p = kiln("run", "--", "true", env={"KILN_RUNTIME_LIB": str(tmp_path / "nope.so")})
    assert p.returncode == 1
    assert "KILN_RUNTIME_LIB=" in p.stderr


def test_key_not_in_cmdline_or_environ(kiln, tmp_path):
    """The key travels through a pipe: /proc/PID/cmdline and environ of the
    started program (the launcher's pid) never hold it."""
    key_hex = "5a" * 32
    key = tmp_path / "k"
    key.write_text(key_hex + "\n")
    d = tmp_path / "empty"
    d.mkdir()
    # Without a volume the runtime is still configured through the pipe.
    p = kiln("run", "--", "/bin/sh", "-c",
             "tr '\\0' '\\n' < /proc/$$/environ; tr '\\0' ' ' < /proc/$$/cmdline")
    assert p.returncode == 0
    assert "KILN_CONFIG_FD=" in p.stdout and "LD_PRELOAD=" in p.stdout
    assert key_hex not in p.stdout
