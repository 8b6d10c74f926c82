"""What an fsync makes durable under kiln run, and what a crash may lose: namespace
changes are seen at once by every process of the workload (the volume server holds
them) and become durable at the next fsync of a file or directory (docs/fs.md, "What
a crash can lose"). A crash is kill -9 of the program and of its volume server (kill
-9 of the program alone loses nothing: the server commits at its exit): the volume
must open, never be rejected, and keep everything fsync'd."""
import os
import signal
import subprocess

from kilnapps import need

PROGRAM = r"""
import os, sys
d = sys.argv[1]
open(os.path.join(d, "early"), "w").close()               # create, no fsync (yet)
with open(os.path.join(d, "synced-empty"), "w") as f:      # create + fsync (no data)
    os.fsync(f.fileno())
with open(os.path.join(d, "synced-data"), "w") as f:       # create + data + fsync
    f.write("durable")
    f.flush()
    os.fsync(f.fileno())
with open(os.path.join(d, "old-name"), "w") as f:
    f.write("moved")
    f.flush()
    os.fsync(f.fileno())
os.rename(os.path.join(d, "old-name"), os.path.join(d, "new-name"))
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)              # rename + directory fsync
os.fsync(dfd)
os.close(dfd)
# After the last fsync: published only.
os.unlink(os.path.join(d, "synced-data"))
open(os.path.join(d, "late"), "w").close()
print("ready", flush=True)
sys.stdin.read()
"""


def fs(volume, *args):
    return subprocess.run([volume.kiln_bin, "fs", args[0], str(volume.dir), *args[1:],
                           "--key-file", str(volume.key)], capture_output=True, text=True)


def server_pid(volume):
    """The volume server's pid (written by the server into .kiln/server)."""
    return int((volume.dir / ".kiln" / "server").read_text().split()[0])


def run_and_kill(volume, program, while_running=None):
    """Run program under kiln run until it prints "ready", then kill -9 it and its
    volume server (a crash of the workload)."""
    py = need("python3")
    proc = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             "--", py, "-c", program, str(volume.dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        if while_running:
            while_running()
        os.kill(server_pid(volume), signal.SIGKILL)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()


def test_fsync_durable_crash_loses_the_rest(volume):
    def while_running():
        # Another process sees the namespace as the workload does (kiln fs asks
        # the volume server while it runs).
        ls = fs(volume, "ls")
        assert ls.returncode == 0, ls.stderr
        names = ls.stdout.split()
        assert "late" in names and "synced-data" not in names, ls.stdout

    run_and_kill(volume, PROGRAM, while_running)
    ls = fs(volume, "ls")
    assert ls.returncode == 0, ls.stderr
    names = ls.stdout.split()
    # Everything up to the last fsync survives (an fsync commits every change published
    # before it, "early" included); the create and unlink after it are lost.
    assert "synced-empty" in names and "new-name" in names and "old-name" not in names
    assert "early" in names
    assert "late" not in names and "synced-data" in names
    cat = fs(volume, "cat", "synced-data")
    assert cat.returncode == 0 and cat.stdout == "durable", cat.stderr
    cat = fs(volume, "cat", "new-name")
    assert cat.returncode == 0 and cat.stdout == "moved", cat.stderr
    v = fs(volume, "verify")
    assert v.returncode == 0 and "0 damaged" in v.stdout, v.stdout + v.stderr


EMPTY_FSYNC = r"""
import os, sys
d = sys.argv[1]
with open(os.path.join(d, "data"), "w") as f:
    f.write("x")
    f.flush()
    os.fsync(f.fileno())
with open(os.path.join(d, "empty"), "w") as f:              # nothing written: the fsync
    os.fsync(f.fileno())                                    # must still commit the name
print("ready", flush=True)
sys.stdin.read()
"""


def test_fsync_of_new_empty_file_is_durable(volume):
    run_and_kill(volume, EMPTY_FSYNC)
    ls = fs(volume, "ls")
    assert ls.returncode == 0, ls.stderr
    assert "empty" in ls.stdout.split() and "data" in ls.stdout.split(), ls.stdout
