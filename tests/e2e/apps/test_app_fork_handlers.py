"""Forks beside the program's own use of the file shield. The runtime holds
the shield's lock across a fork (the child must not inherit it held by a
thread it does not have). The program's pthread_atfork handlers run around
that, and may use protected files; a signal's handler may too, so the lock is
held inside a guard that keeps the program's signals until it ends
(docs/runtime.md, "Forks")."""
import pytest

from kilnenv import BUILD

PROG = BUILD / "tests" / "e2e" / "apps" / "rt_fork_handlers"


@pytest.mark.parametrize("sud", ["on", "off"])
def test_fork_handlers_and_signal_handlers_use_the_shield(volume, sud):
    """The prepare handler creates, writes and fsyncs a protected file, the
    parent and child handlers append to a protected log (on main the prepare
    handler's open waited for ever for the lock the runtime had taken before
    it); then 300 SIGUSR1 arrive while the program forks through libc and the
    raw system call, and their handler opens a protected file and appends.
    Every child reads the prepared file's bytes, the log holds one record per
    append, and nothing of it is plaintext on disk."""
    p = volume.run(PROG, volume.dir, 300, extra=("--sud", sud), timeout=240)
    assert p.returncode == 0 and p.stdout.startswith("ok "), p.stdout + p.stderr
    forks, usr1 = map(int, p.stdout.split()[1:])
    assert usr1 == 300 and forks > 30, p.stdout
    assert not (volume.dir / "prepared").exists()
    raw = volume.raw_bytes()
    assert b"prepared" not in raw and b"sssssss" not in raw
