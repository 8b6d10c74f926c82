"""FIFOs and AF_UNIX sockets inside a protected volume (docs/runtime.md "links,
FIFOs and sockets"): their names are the program's secrets like any file name.
Before, a bind() inside a volume made a socket file with its plaintext name
beside `.kiln`, invisible to the program's own lstat/unlink and never removed.
Now the node lives in the volume (encrypted metadata) and the kernel's socket or
FIFO in the volume server's private directory (0700) under the node's inode
number: no file on the host bears the name, and nothing is left when the
workload ends."""
import os
import pathlib
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))
from kilnapps import Volume  # noqa: E402
from kilnenv import wait_server_gone  # noqa: E402

import pytest  # noqa: E402

NAMES = ("secret-sock-5f1c2a", "secret-fifo-5f1c2a", "secret-dgram-5f1c2a")
# Where a socket or FIFO could land on the host.
PLACES = ("/tmp", "/dev/shm", "/run", "/var/tmp")

PROGRAM = r"""
import os, socket, sys
os.chdir(sys.argv[1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("secret-sock-5f1c2a")
s.listen(1)
os.mkfifo("secret-fifo-5f1c2a")
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.bind("secret-dgram-5f1c2a")
print("ready", s.getsockname(), os.getpid(), flush=True)
sys.stdin.readline()
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect("secret-sock-5f1c2a")
conn, _ = s.accept()
c.sendall(b"ping")
print("got", conn.recv(4).decode(), flush=True)
for n in ("secret-sock-5f1c2a", "secret-fifo-5f1c2a"):
    os.unlink(n)
print("left", sorted(os.listdir(".")), flush=True)
"""


@pytest.fixture
def volume(kiln_bin, tmp_path):
    return Volume(kiln_bin, tmp_path)


def host_files_named(roots, names):
    hits = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            for n in dirnames + filenames:
                if any(name in n for name in names):
                    hits.append(os.path.join(dirpath, n))
    return hits


def bound_dir(pid):
    """The directory of the kernel's sockets the process holds (from
    /proc/net/unix: other workloads on the host may have their own)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    dirs = set()
    with open("/proc/net/unix") as f:
        next(f)
        for ln in f:
            cols = ln.split()
            if len(cols) >= 8 and cols[6] in inodes and cols[7].startswith("/"):
                dirs.add(os.path.dirname(cols[7]))
    assert len(dirs) == 1, dirs
    return pathlib.Path(dirs.pop())


def test_bound_socket_and_fifo_leave_no_plaintext_name(volume, tmp_path):
    p = subprocess.Popen(
        [volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}", "--",
         "/usr/bin/python3", "-c", PROGRAM, str(volume.dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("ready"), line + p.stderr.read()
        # The program sees the path it bound (getsockname), not the kernel's.
        assert line.split()[:2] == ["ready", "secret-sock-5f1c2a"], line
        # While they exist: no host file bears a name; the volume directory
        # holds only the store.
        hits = host_files_named([str(tmp_path), *PLACES], NAMES)
        assert hits == [], hits
        assert sorted(os.listdir(volume.dir)) == [".kiln"]
        # The kernel's objects: in a private directory, by inode number.
        d = bound_dir(int(line.split()[2]))
        assert d.parent == pathlib.Path("/tmp") and d.name.startswith("kiln-nodes-"), d
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        entries = sorted(os.listdir(d))
        assert len(entries) == 3 and all(e.isdigit() for e in entries), entries
        kinds = sorted(stat.S_IFMT(os.lstat(d / e).st_mode) for e in entries)
        assert kinds == sorted([stat.S_IFSOCK, stat.S_IFSOCK, stat.S_IFIFO]), kinds
        out, err = p.communicate("go\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "got ping" in out, out + err
    assert "left ['secret-dgram-5f1c2a']" in out, out
    # The program's unlink removed the kernel objects; the end of the volume
    # server (it removes .kiln/server last) removed the rest, and the directory.
    wait_server_gone(volume.dir)
    assert not d.exists(), sorted(os.listdir(d))
    assert host_files_named([str(tmp_path), *PLACES], NAMES) == []
    # The names are in the volume, encrypted: a new workload lists the one left.
    p = volume.run("/usr/bin/python3", "-c",
                   f"import os, stat; print(stat.S_ISSOCK(os.lstat('{volume.dir}/secret-dgram-5f1c2a').st_mode))",
                   check=True)
    assert p.stdout.strip() == "True"
    assert b"secret-dgram" not in volume.raw_bytes()


def test_device_nodes_refused(volume):
    """mknod of a character device in a volume: EPERM (a plaintext door to the
    host's devices), one line, nothing made."""
    p = volume.run("/usr/bin/python3", "-c",
                   "import os, sys\n"
                   "for i in range(3):\n"
                   "    try:\n"
                   f"        os.mknod('{volume.dir}/null%d' % i, 0o600 | 0o020000, os.makedev(1, 3))\n"
                   "    except PermissionError:\n"
                   "        print('EPERM')\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["EPERM"] * 3
    assert sum("device nodes are refused" in ln for ln in p.stderr.splitlines()) == 1, p.stderr
    assert sorted(os.listdir(volume.dir)) == [".kiln"]
