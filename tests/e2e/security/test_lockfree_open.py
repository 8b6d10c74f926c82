"""The lock-free open (src/runtime/shield/fast.c) never answers where the volume
server would refuse.

A process that opened a file keeps a slot (path, node, mode, owner, the
credentials it asked with, the namespace generation); the next open of that
path is answered from the slot without the lock and without a round trip. An
attacker inside the workload's trust boundary is not the concern here; the
program's own privilege separation is: a worker that dropped to another uid, a
file another process of the workload made private. So the slot must go stale
the moment another process changes the file's mode or owner, or replaces the
name (rename over it, unlink, a symlink in its place, a hard link made under a
name), and must not serve other credentials than those it was filled with.

Each step runs natively (a host directory) and under `kiln run` (a volume);
the results must be the expected ones in both. A worker forked by the program
drops to uid 1001 and answers open requests over a pipe; it opens each path
twice before a change (the second open is the lock-free one), and the change
is made by another process of the workload (a new python3 under the same
`kiln run`)."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))
from kilnapps import Volume  # noqa: E402

import pytest  # noqa: E402

PROGRAM = r"""
import errno, os, subprocess, sys
os.chdir(sys.argv[1])
PY = sys.executable
out = []

def attempt(path, flags=0):
    try:
        fd = os.open(path, os.O_RDONLY | flags)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        return "ok " + os.read(fd, 64).decode()
    finally:
        os.close(fd)

def worker(uid, r, w):
    # Under kiln run a forked child reaches the volume server on its first
    # call about the volume: before it drops root (the server's socket is in
    # a directory only root may search, on the host).
    os.stat(".")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    for line in r:
        path, flags = line.split()
        w.write(attempt(path, int(flags)) + "\n")
        w.flush()

def start(uid):
    a, b = os.pipe()
    c, d = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(b); os.close(c)
        worker(uid, os.fdopen(a), os.fdopen(d, "w"))
        os._exit(0)
    os.close(a); os.close(d)
    return pid, os.fdopen(b, "w"), os.fdopen(c)

pid, to_w, from_w = start(1001)

def ask(path, flags=0):
    to_w.write(f"{path} {flags}\n")
    to_w.flush()
    return from_w.readline().strip()

def other(code):
    # Another process of the workload makes the change.
    subprocess.run([PY, "-c", "import os\n" + code], check=True)

def make(name, text, mode=0o644, uid=0, gid=0):
    with open(name, "w") as f:
        f.write(text)
    os.chmod(name, mode)
    os.chown(name, uid, gid)

def step(name, path, change, flags=0):
    before = [ask(path), ask(path)]
    other(change)
    out.append(f"{name}: {before[0]} | {before[1]} -> {ask(path, flags)}")

make("f", "one")
step("chmod", "f", "os.chown('f', 1000, 1000); os.chmod('f', 0o600)")
make("f", "two", 0o600, 1001, 1001)
step("chown", "f", "os.chown('f', 1000, 1000)")
make("f", "three")
make("g", "private", 0o600)
step("rename", "f", "os.rename('g', 'f')")
make("f", "four")
make("h", "private", 0o600)
step("symlink", "f", "os.unlink('f'); os.symlink('h', 'f')")
make("f", "five")
step("unlink", "f", "os.unlink('f')")
make("p", "six")
os.symlink("p", "l")
step("nofollow", "l", "pass", os.O_NOFOLLOW)
make("q", "private", 0o600)
step("link", "k", "os.link('q', 'k')")
to_w.close()
os.waitpid(pid, 0)

# The same process, other credentials: root opens a private file twice, then
# drops to uid 1001 and opens it again.
make("r", "seven", 0o600, 1000, 1000)
pid = os.fork()
if pid == 0:
    first = [attempt("r"), attempt("r")]
    os.setresuid(1001, 1001, 1001)
    print(f"setuid: {first[0]} | {first[1]} -> {attempt('r')}", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("\n".join(out), flush=True)
"""

EXPECTED = """\
setuid: ok seven | ok seven -> EACCES
chmod: ok one | ok one -> EACCES
chown: ok two | ok two -> EACCES
rename: ok three | ok three -> EACCES
symlink: ok four | ok four -> EACCES
unlink: ok five | ok five -> ENOENT
nofollow: ok six | ok six -> ELOOP
link: ENOENT | ENOENT -> EACCES
"""


@pytest.fixture
def volume(kiln_bin, tmp_path):
    return Volume(kiln_bin, tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="the worker drops to uid 1001: needs root")
def test_lockfree_open_never_answers_a_refusal(volume, tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    # Natively: in a directory uid 1001 may search (pytest's tmp_path is 0700).
    with tempfile.TemporaryDirectory() as native:
        os.chmod(native, 0o755)
        p = subprocess.run([sys.executable, str(prog), native], capture_output=True,
                           text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == EXPECTED, "native:\n" + p.stdout
    p = volume.run(sys.executable, prog, volume.dir, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == EXPECTED, "under kiln run:\n" + p.stdout + p.stderr


# A description whose fd was closed untouched is kept as its file's spare and
# lent to the next open with the same flags (fast.c). Whatever the program did
# to a description must not show through the next open: offset, status flags,
# a flock, a forked or exec'd child's or a socket's receiver's use of a shared
# one; nor its access mode.
SPARES = r"""
import fcntl, os, socket, subprocess, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, bytes(range(256)) * 16)
os.close(fd)

def first(flags=os.O_RDONLY):
    fd = os.open(p, flags)
    try:
        return os.read(fd, 1)[0]
    finally:
        os.close(fd)

for i in range(200):  # nginx: open, pread (sendfile), close
    fd = os.open(p, os.O_RDONLY)
    assert os.pread(fd, 4, 8) == bytes([8, 9, 10, 11])
    os.close(fd)
out = [first(), first()]                        # read moved the offset
fd = os.open(p, os.O_RDONLY); os.lseek(fd, 7, 0); os.close(fd)
out.append(first())                             # lseek
fd = os.open(p, os.O_RDONLY); os.close(fd)
out.append(os.open(p, os.O_RDONLY) == fd)       # the lowest free fd
os.close(fd)
fd = os.open(p, os.O_RDONLY); os.set_blocking(fd, False); os.close(fd)
fd = os.open(p, os.O_RDONLY); out.append(os.get_blocking(fd)); os.close(fd)
fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK); out.append(os.get_blocking(fd)); os.close(fd)
fd = os.open(p, os.O_RDONLY)
try:
    os.write(fd, b"x")
except OSError as e:
    out.append(e.errno)
os.close(fd)
fd = os.open(p, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); os.close(fd)
a, b = os.open(p, os.O_RDONLY), os.open(p, os.O_RDONLY)
fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)   # the closed fd's flock went
os.close(a); os.close(b)
fd = os.open(p, os.O_RDONLY)
pid = os.fork()
if pid == 0:
    os.read(fd, 5)
    os._exit(0)
os.waitpid(pid, 0)
os.close(fd)
out.append(first())                             # a forked child's read
a, b = socket.socketpair()
fd = os.open(p, os.O_RDONLY)
socket.send_fds(a, [b"x"], [fd])
got = socket.recv_fds(b, 1, 1)[1][0]
os.close(fd)
os.read(got, 3)
os.close(got)
out.append(first())                             # the read of an fd sent over a socket
fd = os.open(p, os.O_RDONLY)
subprocess.run([sys.executable, "-c", f"import os; os.read({fd}, 9)"], pass_fds=[fd],
               check=True)
os.close(fd)
out.append(first())                             # an exec'd child's read
print(*out)
"""


def test_spare_descriptions_keep_no_trace(volume, tmp_path):
    prog = tmp_path / "spares.py"
    prog.write_text(SPARES)
    expected = "0 0 0 True True False 9 0 0 0\n"
    p = subprocess.run([sys.executable, str(prog), str(tmp_path / "plain")],
                       capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout) == (0, expected), "native:\n" + p.stdout + p.stderr
    log = tmp_path / "trace"
    p = volume.run("strace", "-f", "-qq", "-e", "trace=openat", "-o", log, sys.executable,
                   prog, volume.dir / "f", timeout=300)
    assert (p.returncode, p.stdout) == (0, expected), "under kiln run:\n" + p.stdout + p.stderr
    # The memfd's reopens through /proc/self/fd (openat(<its fd>, "<n>")): one
    # per open before spares (200 in the loop alone).
    reopens = re.findall(r'openat\(\d+, "\d+",', log.read_text())
    assert len(reopens) < 40, len(reopens)
