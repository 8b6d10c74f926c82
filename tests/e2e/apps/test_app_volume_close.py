"""When `kiln run --volume D` returns, the volume is closed: its server has
made its last commit, closed the volume and let its lock go, so the user may
remove D or make a new volume there at once (docs/runtime.md, "The file
shield"). One open of the volume for both of the server's starters: libkiln
(dynamic programs) and the supervisor of static programs."""
import fcntl
import os
import shutil
import subprocess
import threading
import time

import pytest

from kilnapps import BUILD, SECRET, Volume

STATIC = BUILD / "tests" / "e2e" / "apps" / "rt_static_files"
ROUNDS = {"dynamic": 20, "static": 5}  # supervised runs are slower


def closed_now(voldir):
    """What the user sees the moment kiln run has returned: no server file,
    the volume's lock free (a server still closing holds it)."""
    store = voldir / ".kiln"
    assert not (store / "server").exists(), "kiln run returned before its volume server closed"
    fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pytest.fail("kiln run returned while its volume server still held the volume")
    finally:
        os.close(fd)


def write_cmd(kind, voldir):
    if kind == "static":
        if not STATIC.exists():
            pytest.fail(f"{STATIC} not built")
        # --static=supervise: the supervisor, whatever the default for
        # static programs becomes.
        return ["--static=supervise"], [STATIC, "write", voldir, SECRET]
    # dash ends with _exit: no destructor runs, only the exit_group.
    return [], ["sh", "-c", f"echo {SECRET} > {voldir}/f.txt"]


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_run_returns_with_the_volume_closed(kiln_bin, tmp_path, kind):
    for i in range(ROUNDS[kind]):
        root = tmp_path / str(i)
        root.mkdir()
        vol = Volume(kiln_bin, root)
        extra, argv = write_cmd(kind, vol.dir)
        vol.run(*argv, extra=extra, check=True)
        closed_now(vol.dir)
        # Removed and made again at once: nothing of the old server writes.
        shutil.rmtree(vol.dir)
        vol = Volume(kiln_bin, root)
        p = vol.run("/bin/true", check=True)
        assert "not waiting longer" not in p.stderr, p.stderr
        closed_now(vol.dir)


def test_run_does_not_wait_for_a_server_others_use(volume, tmp_path):
    """The server outlives a run while another workload is its client; the
    run that ends first returns at once, and the server stays for the other."""
    up = tmp_path / "up"  # outside the volume: the test sees it
    other = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                              "--", "sh", "-c", f"echo > {volume.dir}/o.txt; echo > {up}; sleep 2"],
                             stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(500):
            if up.exists():
                break
            time.sleep(0.01)
        assert up.exists()
        p = volume.run("sh", "-c", f"echo {SECRET} > {volume.dir}/f.txt", check=True, timeout=8)
        assert "not waiting longer" not in p.stderr, p.stderr
        assert (volume.dir / ".kiln" / "server").exists()  # still serving the other run
    finally:
        assert other.wait(timeout=30) == 0, other.stderr.read()
    closed_now(volume.dir)
    p = volume.run("cat", volume.dir / "f.txt", check=True)
    assert p.stdout == SECRET + "\n"


def test_supervised_run_waits_for_the_volume_lock(volume):
    """A `kiln fs` command (or a server closing) holds the volume's lock for
    a while: a new run waits for it up to 10 s, the supervised one as the
    dynamic one (the supervisor's own open gave up after 5 s)."""
    fd = os.open(volume.dir / ".kiln", os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    timer = threading.Timer(6, os.close, (fd,))
    timer.start()
    try:
        extra, argv = write_cmd("static", volume.dir)
        p = volume.run(*argv, extra=extra, timeout=60)
    finally:
        timer.join()
    assert p.returncode == 0, p.stderr
    closed_now(volume.dir)


def test_rollback_refused_alike_on_both_paths(volume, tmp_path):
    """The volume's store put back to an older state (the host can): the
    same refusal from the supervised path and the dynamic one, naming the
    volume once, before the program runs."""
    extra, argv = write_cmd("static", volume.dir)
    volume.run(*argv, extra=extra, check=True)
    old = tmp_path / "old-store"
    shutil.copytree(volume.dir / ".kiln", old)
    volume.run("sh", "-c", f"echo more > {volume.dir}/more.txt", check=True)
    shutil.rmtree(volume.dir / ".kiln")
    shutil.copytree(old, volume.dir / ".kiln")
    said = []
    for extra, argv in [(["--static=supervise"], [STATIC, "read", volume.dir]),
                        ([], ["cat", volume.dir / "renamed.txt"])]:
        p = volume.run(*argv, extra=extra)
        assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
        line = p.stderr.splitlines()[-1]
        assert line.count(str(volume.dir)) == 1, line
        said.append(line.split(f"volume {volume.dir}: ", 1)[1])
    assert said[0] == said[1] and said[0].startswith("volume rolled back: found version "), said
