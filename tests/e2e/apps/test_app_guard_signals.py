"""Signals under the file shield. Its guards (the shield's lock, a round trip to
the volume server, a file's append lock) must not let a handler of the program
run inside them: the handler may call into the shield again. They no longer
mask signals for that (two rt_sigprocmask per guarded call, as many system
calls as a cached lookup of sqlite's -journal made natively): the program's
handlers are installed as the runtime's, which keep a signal that arrives
inside a guard and deliver it when the guard ends (docs/runtime.md, "Signals
inside the shields' guards"). With a real-time handler installed they mask
again."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from kilnenv import BUILD

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_guard_signals"


@pytest.mark.parametrize("restart,rt", [(1, False), (0, False), (1, True)],
                         ids=["sa_restart", "no_restart", "masked"])
def test_handlers_doing_io_inside_guarded_calls(volume, restart, rt):
    """The main thread stats and opens protected files, appends to a log and
    makes round trips (create, fsync, rename, unlink) while a thread sends it
    2000 SIGUSR1 (every tenth a SIGBUS, which the runtime's fault handler
    keeps), each once the last was handled, and a 300 us timer SIGALRM; the
    handlers stat, open, read and append to the same files. No call fails
    (EINTR included, SA_RESTART or not), every read is right, every signal
    sent is handled once, the log holds one record per append, nothing
    deadlocks (on main a handler's append waited for ever for the append lock
    its own thread held; a kept signal was sent twice when a handler ended a
    guard while the outer guard's end was sending)."""
    argv = [PROG, volume.dir, 2000, restart] + (["rt"] if rt else [])
    p = volume.run(*argv, timeout=240)
    assert p.returncode == 0 and p.stdout.startswith("ok "), p.stdout + p.stderr
    rounds, usr1, alrm = map(int, p.stdout.split()[1:])
    assert usr1 == 2000 and rounds > 0 and alrm > 0, p.stdout


WSTREAM = BUILD / "tests" / "e2e" / "apps" / "rt_wstream_signals"


def test_handler_appending_during_a_sealed_write(volume):
    """The main thread writes 48 blocks of 1 MiB at the end of a file (sealed
    in its own process, each window under the file's append lock) while
    SIGUSR1 (one at a time) and a 300 us SIGALRM interrupt it; both handlers
    append a 4 KiB record to the same file. Nothing deadlocks (before the
    sealed window ran in a guard, the handler's append waited for ever for the
    lock its own thread held: the program says so after 20 s), every block is
    whole and at most one record per append is in the file; the windows were
    sealed by the program."""
    p = volume.run(WSTREAM, volume.dir, 48, env={"KILN_SHIELD_STATS": "1"}, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("ok "), p.stdout + p.stderr
    blocks, recs, usr1 = map(int, p.stdout.split()[1:])
    assert blocks == 48 and usr1 > 0, p.stdout
    volume.wait_server_gone(30)
    line = [ln for ln in (volume.dir / ".kiln" / "server.log").read_text().splitlines()
            if "plaintext peak" in ln][-1]
    m = re.search(r"(\d+) sealed writes of (\d+) chunks", line)
    assert m and int(m.group(2)) > 0, line


# N stats and N access() of a missing file: sqlite looks for its -journal and
# -wal before every statement, answered from the lookup cache.
LOOKUPS = r"""
import os, signal, sys
if len(sys.argv) > 3:
    signal.signal(signal.SIGRTMIN, lambda *a: None)  # deferral off: guards mask
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
j = os.path.join(sys.argv[1], "db-journal")
for i in range(int(sys.argv[2])):
    if os.access(j, os.F_OK):
        raise SystemExit("db-journal exists?")
    try:
        os.stat(j)
        raise SystemExit("db-journal exists?")
    except FileNotFoundError:
        pass
os.kill(os.getpid(), signal.SIGUSR1)
print("handled", len(got))
"""


def sigprocmasks(volume, tmp_path, n, *extra):
    """rt_sigprocmask calls of the whole run (the program and its server)."""
    if not shutil.which("strace"):
        pytest.fail("strace is needed (scripts/install-deps.sh installs it)")
    log = tmp_path / "trace"
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=rt_sigprocmask",
                        volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}", "--",
                        sys.executable, "-c", LOOKUPS, volume.dir, n, *extra],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["handled", "1"], p.stdout
    volume.wait_server_gone()
    return len(re.findall(r"rt_sigprocmask\(", log.read_text()))


def test_cached_lookups_change_no_signal_mask(volume, tmp_path):
    """400 more cached lookups of a missing file make no more rt_sigprocmask
    (main: a pair each, 800); with a real-time handler installed the guards
    mask again (a pair each), and the signal still arrives."""
    base = sigprocmasks(volume, tmp_path, "1")
    more = sigprocmasks(volume, tmp_path, "201")
    assert more - base < 40, (base, more)
    base = sigprocmasks(volume, tmp_path, "1", "rt")
    more = sigprocmasks(volume, tmp_path, "201", "rt")
    assert more - base >= 800, (base, more)
