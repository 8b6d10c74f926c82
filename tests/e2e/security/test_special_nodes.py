"""FIFOs and AF_UNIX sockets inside a protected volume (docs/runtime.md "links,
FIFOs and sockets"): their names are the program's secrets like any file name.
Before, a bind() inside a volume made a socket file with its plaintext name
beside `.kiln`, invisible to the program's own lstat/unlink and never removed.
Now the node lives in the volume (encrypted metadata) and the kernel's socket or
FIFO in the volume server's private directory (01700, plus an ACL entry per
other uid the workload became) under the node's inode number: no file on the
host bears the name, and nothing is left when the workload ends."""
import errno
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

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
        assert stat.S_IMODE(d.stat().st_mode) == 0o1700
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


# A workload that drops privileges (issue 17): root makes a FIFO and a socket in
# the volume, then a child that setpriv's to uid 65534 writes to the FIFO,
# connects to the socket and binds a socket of its own; a process of another
# uid outside the workload, knowing the kernel objects' paths, is refused.
DROP_CHILD = """
import os, socket
fd = os.open("fifo", os.O_WRONLY)
os.write(fd, b"from-nobody")
os.close(fd)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect("sock")
c.sendall(b"hello")
c.close()
b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
b.bind("d/own")
print("child uid", os.getuid(), "own", oct(os.stat("d/own").st_mode & 0o777), flush=True)
b.close()
os.unlink("d/own")
"""

DROP_PROGRAM = """
import os, signal, socket, subprocess, sys
signal.alarm(120)  # a child that cannot open the FIFO must not hang the test
os.chdir(sys.argv[1])
os.umask(0)
os.mkfifo("fifo", 0o666)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("sock")
s.listen(1)
os.mkdir("d", 0o777)
p = subprocess.Popen(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                      sys.executable, "-c", sys.argv[2]])
r = os.open("fifo", os.O_RDONLY)
got = b""
while True:
    chunk = os.read(r, 100)
    if not chunk:
        break
    got += chunk
os.close(r)
conn, _ = s.accept()
data = conn.recv(5)
print("fifo", got.decode(), "sock", data.decode(), "child exit", p.wait(), flush=True)
os.mkfifo("private", 0o600)
print("ready", os.getpid(), flush=True)
sys.stdin.readline()
"""

PROBE = """
import os, sys
try:
    os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
    print("opened")
except OSError as x:
    print(x.errno)
"""


def acl_users(path):
    """{uid: perm} of the ACL_USER entries of path's access ACL (the kernel's
    layout: version u32, then tag u16, perm u16, id u32 per entry)."""
    try:
        raw = os.getxattr(path, "system.posix_acl_access")
    except OSError:
        return None
    ents = [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]
    return {uid: perm for tag, perm, uid in ents if tag == 2}


def test_fifo_and_socket_after_dropping_uid(kiln_bin):
    # The volume in a directory uid 65534 may traverse (pytest's tmp_path is
    # root's alone).
    world = pathlib.Path(tempfile.mkdtemp(prefix="kiln-drop-"))
    os.chmod(world, 0o755)
    volume = Volume(kiln_bin, world)
    os.chmod(volume.dir, 0o755)
    p = subprocess.Popen(
        [volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}", "--",
         "/usr/bin/python3", "-c", DROP_PROGRAM, str(volume.dir), DROP_CHILD],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        assert lines[0] == "child uid 65534 own 0o777\n", lines + [p.stderr.read()]
        assert lines[1] == "fifo from-nobody sock hello child exit 0\n", lines
        # The kernel objects' directory lets the workload's uids in (01700
        # plus an ACL entry: its mask shows as the group bits), nobody else.
        d = bound_dir(int(lines[2].split()[1]))
        assert stat.S_IMODE(d.stat().st_mode) == 0o1730, oct(d.stat().st_mode)
        assert acl_users(d) == {65534: 3}, acl_users(d)
        fifos = [e for e in os.listdir(d) if stat.S_ISFIFO(os.lstat(d / e).st_mode)]
        modes = sorted(stat.S_IMODE(os.lstat(d / e).st_mode) for e in fifos)
        assert modes == [0o600, 0o666], modes
        # Another host user (uid 1000, never part of the workload) cannot reach
        # them, although a FIFO's own mode would let it.
        for e in fifos:
            probe = subprocess.run(
                ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
                 "/usr/bin/python3", "-c", PROBE, str(d / e)], capture_output=True, text=True)
            assert probe.stdout.strip() == str(errno.EACCES), probe.stdout + probe.stderr
        out, err = p.communicate("done\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(world, ignore_errors=True)
    assert p.returncode == 0, err
    # Quiet: nothing but the launcher's own notice.
    assert [ln for ln in err.splitlines()
            if ln.startswith("kiln:") and "development mode" not in ln] == [], err
