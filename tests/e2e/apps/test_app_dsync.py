"""O_DSYNC, O_SYNC and RWF_DSYNC on protected files (docs/runtime.md, "O_DSYNC,
O_SYNC, RWF_DSYNC, RWF_SYNC"): a write returns only once durable, as after an
fdatasync. The program (dsync_writer.c) writes records with no fsync, prints
"ack I" after each write returned, and waits; the test then kills the volume
server and the whole kiln run process group with SIGKILL (a crash: what the
server held uncommitted is gone, test_app_durability.py), and every
acknowledged record must be on the volume. The flag must also hold on a dup of
the fd, in a forked child and after its exec (the writer does its last third
of the records there), and F_GETFL must report it."""
import os
import signal
import subprocess

import pytest

from kilnapps import BUILD
from test_app_crash_stress import server_pid, wait_gone

N = 24
REC = 64


def prog(name):
    path = BUILD / "tests" / "e2e" / "apps" / name
    if not path.exists():
        pytest.fail(f"{path} not built")
    return str(path)


def run_and_crash(volume, argv, extra=()):
    """Run argv until it prints "ready", then kill -9 its volume server and every
    process of the run. Returns the acknowledged record numbers."""
    proc = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             *extra, "--", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    acked, last = [], ""
    try:
        for line in proc.stdout:
            last = line.strip()
            if last == "ready":
                break
            if last.startswith("ack "):
                acked.append(int(last.split()[1]))
        srv = server_pid(volume)
        assert srv, "no volume server"
        os.kill(srv, signal.SIGKILL)
        wait_gone(srv)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        err = proc.stderr.read()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
    assert last == "ready", f"the writer did not finish: {err[-2000:]}"
    # The runtime is quiet: kiln run's own lines only.
    assert all(l.startswith(("kiln: development mode", "kiln: " + argv[0]))
               for l in err.splitlines()), err
    return acked


def check_on_volume(volume, acked):
    assert acked == list(range(N)), acked
    p = subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), "log", "--key-file",
                        str(volume.key)], capture_output=True)
    assert p.returncode == 0, f"the log is not on the volume: {p.stderr.decode()}"
    data = p.stdout
    for i in acked:
        rec = data[i * REC:(i + 1) * REC]
        assert rec.startswith(b"record %06d " % i), \
            f"acknowledged record {i} lost in the crash ({len(data)} bytes on the volume)"
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode == 0 and "0 damaged" in v.stdout, v.stdout + v.stderr


@pytest.mark.parametrize("mode", ["oflag", "osync", "rwf", "sendfile", "copy", "splice"])
def test_dsync_writes_survive_a_crash(volume, mode):
    acked = run_and_crash(volume, [prog("rt_dsync_writer"), mode, volume.dir, str(N)])
    check_on_volume(volume, acked)


@pytest.mark.parametrize("static,mode", [("supervise", "oflag"), ("supervise", "rwf"),
                                         ("supervise", "sendfile"), ("supervise", "copy"),
                                         ("supervise", "splice"), ("loader", "oflag")])
def test_dsync_writes_survive_a_crash_static(volume, static, mode):
    """Statically linked: under the seccomp supervisor (supervise_sync.c), and
    under the static loader (libkiln, the same handlers as the dynamic path).
    Supervised sendfile, copy_file_range and splice into the O_DSYNC fd were
    durable only at the next fsync or exit (lost here) before the supervisor
    did them itself; the splice waits for a pipe a forked child fills."""
    acked = run_and_crash(volume, [prog("rt_static_dsync_writer"), mode, volume.dir, str(N)],
                          extra=(f"--static={static}",))
    check_on_volume(volume, acked)
