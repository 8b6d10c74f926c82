"""What a program's calls and a commit cost in system calls, counted with strace
(never timed): libc functions PostgreSQL calls per transaction do not trap
through SIGSYS, nor do stdio's reads and writes (sqlite3's shell), a commit
does not reopen the volume's tag file, and nginx's fstat of the file it serves
is answered without one."""
import os
import re
import shutil
import subprocess

import pytest

from kilnapps import SECRET, need


def strace(volume, log, trace, *argv, stdin=None):
    """argv under kiln run --volume, under strace -f (the volume server too)."""
    if not shutil.which("strace"):
        pytest.fail("strace is needed (scripts/install-deps.sh installs it)")
    # LeakSanitizer cannot run under ptrace (a sanitized build in make check).
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(log), *trace, volume.kiln_bin, "run",
                        "--volume", f"{volume.dir}={volume.key}", "--", *map(str, argv)],
                       capture_output=True, text=True, timeout=300, env=env, input=stdin)
    assert p.returncode == 0, p.stderr
    volume.wait_server_gone()
    return p


# kill (PostgreSQL's SetLatch) and sync_file_range (its checkpointer's write-back
# hints) through libc's functions; the signal must still arrive.
LIBC_CALLS = r"""
import ctypes, os, signal, sys
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
libc = ctypes.CDLL(None, use_errno=True)
sfr = libc.sync_file_range
sfr.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"x" * 8192)
for i in range(50):
    os.kill(os.getpid(), 0)
    assert sfr(fd, 0, 0, 2) == 0, ctypes.get_errno()  # SYNC_FILE_RANGE_WRITE
assert sfr(-1, 0, 0, 2) == -1 and ctypes.get_errno() == 9  # EBADF
os.kill(os.getpid(), signal.SIGUSR1)
os.close(fd)
print("signals", len(got))
"""


def test_kill_and_sync_file_range_do_not_trap(volume, tmp_path):
    py = need("python3")
    log = tmp_path / "trace"
    p = strace(volume, log, ["-e", "trace=none", "-e", "signal=SIGSYS"], py, "-c", LIBC_CALLS,
               volume.dir / "f")
    assert p.stdout.split() == ["signals", "1"]
    trapped = sigsys(log)
    assert trapped.count("kill") == 0, trapped
    assert trapped.count("sync_file_range") == 0, trapped


def sigsys(log):
    return re.findall(r"si_syscall=__NR_(\w+)", log.read_text())


def test_stdio_of_sqlite3_does_not_trap(volume, tmp_path):
    """sqlite3's shell reads its statements from a pipe and prints each one's
    rows with stdio, which glibc reads and writes through its internal __read
    and __write: one SIGSYS trap per statement (200) before the runtime took
    stdio's jump table slots."""
    sqlite = need("sqlite3")
    log = tmp_path / "trace"
    sql = "".join(f"select {i};\n" for i in range(200))
    p = strace(volume, log, ["-e", "trace=none", "-e", "signal=SIGSYS"], sqlite,
               volume.dir / "x.db", stdin=sql)
    assert p.stdout.split() == [str(i) for i in range(200)]
    trapped = sigsys(log)
    assert trapped.count("write") == 0 and trapped.count("read") == 0, trapped


# fopen, fwrite, fseek, fread, fstat of the stream's buffer: a protected file
# through stdio's jump table (the runtime's functions now) is still the shield's.
STDIO_FILE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
for fn in (libc.fwrite, libc.fread):
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
libc.fseek.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
libc.fclose.argtypes = [ctypes.c_void_p]
line = sys.argv[2].encode() + b"\n"
f = libc.fopen(sys.argv[1].encode(), b"w+")
for i in range(3000):
    assert libc.fwrite(line, 1, len(line), f) == len(line)
buf = ctypes.create_string_buffer(len(line) * 3000)
for i in range(10):
    assert libc.fseek(f, 0, 0) == 0
    assert libc.fread(buf, 1, len(buf), f) == len(buf) and buf.raw == line * 3000
assert libc.fclose(f) == 0
print("stdio ok")
"""


def test_stdio_writes_to_a_protected_file_stay_shielded(volume, tmp_path):
    """A stream on a protected file, written with fwrite (about 30 buffers
    flushed), read back ten times with fread (about 300 buffers filled):
    ciphertext on disk, the plaintext through the runtime, and no trap for the
    stream's writes and reads (the few reads left are the loader's, loading
    ctypes)."""
    py = need("python3")
    log = tmp_path / "trace"
    p = strace(volume, log, ["-e", "trace=none", "-e", "signal=SIGSYS"], py, "-c", STDIO_FILE,
               volume.dir / "s.txt", SECRET)
    assert p.stdout.split() == ["stdio", "ok"]
    trapped = sigsys(log)
    assert trapped.count("write") == 0 and trapped.count("read") < 100, trapped
    volume.assert_no_plaintext()
    p = volume.run("cat", volume.dir / "s.txt", check=True)
    assert p.stdout == (SECRET + "\n") * 3000


FSYNCS = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
for i in range(int(sys.argv[2])):
    os.pwrite(fd, b"%06d" % i, 0)
    os.fsync(fd)
    if i == 10 and len(sys.argv) > 3:
        os.unlink(sys.argv[3])  # the tag file, removed by hand mid-run
os.close(fd)
"""


def tag_opens(log, tag):
    """Opens of the tag file by the process that writes it (the volume server;
    the launcher and each program's runtime read it once)."""
    opens = [ln.split()[0] for ln in log.read_text().splitlines() if f'"{tag}"' in ln]
    writers = {ln.split()[0] for ln in log.read_text().splitlines()
               if f'"{tag}"' in ln and "O_WRONLY" in ln}
    assert writers, "the tag file was never written"
    return sum(1 for pid in opens if pid in writers)


def test_commit_keeps_the_tag_file_open(volume, tmp_path):
    """30 commits: the volume server opens the tag file once to read, once to
    write and once at its open to check whether prepares may ride the log's
    flush (srv_open.c, ride_dev), not three times per commit; its line ends
    committed."""
    py = need("python3")
    tag = f"{volume.key}.version"
    log = tmp_path / "trace"
    strace(volume, log, ["-e", "trace=openat"], py, "-c", FSYNCS, volume.dir / "f", 30)
    assert tag_opens(log, tag) <= 3
    committed, prepared = open(tag).read().split()
    assert committed == prepared and int(committed) >= 30
    p = volume.run(py, "-c", "import sys; print(open(sys.argv[1]).read())", volume.dir / "f",
                   check=True)
    assert p.stdout.strip() == "000029"


def test_tag_file_removed_mid_run_is_made_again(volume, tmp_path):
    """The kept fd is let go when its file loses its name: the next commit makes
    the tag file again and the volume opens with it."""
    py = need("python3")
    tag = f"{volume.key}.version"
    volume.run(py, "-c", FSYNCS, volume.dir / "f", 20, tag, check=True)
    volume.wait_server_gone()
    committed, prepared = open(tag).read().split()
    assert committed == prepared and int(committed) >= 20
    p = volume.run(py, "-c", "import sys; print(open(sys.argv[1]).read())", volume.dir / "f",
                   check=True)
    assert p.stdout.strip() == "000019"


# nginx's request: open, fstat, send, close; and the sizes a kept answer must
# follow: this process's writes, another's append, truncation, fallocate.
FSTATS = r"""
import os, subprocess, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"a" * 4096)
os.close(fd)
for i in range(200):
    fd = os.open(p, os.O_RDONLY)
    assert os.fstat(fd).st_size == 4096
    os.close(fd)
rd = os.open(p, os.O_RDONLY)
wr = os.open(p, os.O_WRONLY)
os.pwrite(wr, b"b", 9999)
assert os.fstat(rd).st_size == 10000
os.ftruncate(wr, 10)
assert os.fstat(rd).st_size == 10 and os.stat(p).st_size == 10
subprocess.run([sys.executable, "-c", "import os, sys\n"
                "f = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
                "os.write(f, b'x' * 90)", p], check=True)
assert os.fstat(rd).st_size == 100, os.fstat(rd).st_size
os.posix_fallocate(wr, 0, 20000)
assert os.fstat(rd).st_size == 20000, os.fstat(rd).st_size
print("sizes ok")
"""


def test_fstat_of_a_protected_file_makes_no_system_call(volume, tmp_path):
    """200 open + fstat + close of one protected file: the fstats are answered
    from what the runtime kept of the plaintext memfd's size (it moves with
    every change: size_seq), not by a system call each (was 200)."""
    py = need("python3")
    log = tmp_path / "trace"
    p = strace(volume, log, ["-e", "trace=fstat,newfstatat,statx"], py, "-c", FSTATS,
               volume.dir / "f")
    assert p.stdout.split() == ["sizes", "ok"]
    # The runtime's fstats of the plaintext memfd (4096 bytes during the loop).
    calls = re.findall(r"\bfstat\(\d+, \{st_mode=S_IFREG\|\d+, st_size=4096,", log.read_text())
    assert len(calls) < 20, len(calls)


GROW = r"""
import os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
for i in range(50):
    os.write(fd, b"y" * 100)
    assert os.fstat(fd).st_size == 100 * (i + 1)
    os.fdatasync(fd)
print("grown", os.fstat(fd).st_size)
# A sealed write (1 MiB of whole chunks at the end), its cold read, and the fd
# inherited by an exec'd program.
big = os.open(sys.argv[1] + ".big", os.O_RDWR | os.O_CREAT, 0o600)
assert os.write(big, b"z" * (1 << 20)) == 1 << 20
assert os.pread(big, 1 << 20, 0) == b"z" * (1 << 20)
subprocess.run([sys.executable, "-c", "import os, sys\n"
                "assert os.pread(int(sys.argv[1]), 4, 4096) == b'zzzz'", str(big)],
               pass_fds=(big,), check=True)
print("sealed", os.fstat(big).st_size)
"""


def test_no_stat_asks_a_memfds_times(volume, tmp_path):
    """A file grown by appends, fstat and fdatasync after each, then a sealed
    write, its cold read and an exec'd program that inherits its fd: neither
    the program's runtime (the size after each append, the append's end, the
    window's and the read's size, the fds an exec hands on and attaches) nor
    the volume server (each write-back) asks a plaintext memfd for its times,
    only statx of size, inode and blocks (docs/fs.md, one17: such a stat makes
    the memfd's next write move the floor of every file's coarse mtime, and
    the commit's fdatasyncs then write their inode table blocks)."""
    py = need("python3")
    log = tmp_path / "trace"
    p = strace(volume, log, ["-y", "-e", "trace=fstat,newfstatat,statx"], py, "-c", GROW,
               volume.dir / "f")
    assert p.stdout.split() == ["grown", "5000", "sealed", str(1 << 20)]
    text = log.read_text()
    asked = re.findall(r"\b(?:fstat|newfstatat)\(\d+</memfd:kiln-plaintext>.*", text)
    assert asked == [], asked[:5]  # 103 before (this build of main)
    masks = re.findall(r"statx\(\d+</memfd:kiln-plaintext>[^,]*, \"\", [A-Z_|]+, ([A-Z_|]+)",
                       text)
    assert masks and all("TIME" not in m for m in masks), set(masks)


RELATIVE = r"""
import os, sys
os.chdir(sys.argv[1])
os.close(os.open("rel", os.O_RDWR | os.O_CREAT, 0o600))
for i in range(100):
    os.close(os.open("rel", os.O_RDONLY))
print("opened", i + 1)
"""


def test_relative_open_in_a_volume_asks_getcwd_at_most_twice(volume, tmp_path):
    """100 opens of a protected file by a relative name (the working directory
    in the volume): the runtime resolves the path to see that the call is the
    shield's, and again in the open's handler, each asking the kernel's cwd
    (3 getcwd an open before: the dispatch asked rt__touches twice)."""
    py = need("python3")
    log = tmp_path / "trace"
    p = strace(volume, log, ["-e", "trace=getcwd", "-e", "signal=none"], py, "-c", RELATIVE,
               volume.dir)
    assert p.stdout.split() == ["opened", "100"]
    calls = log.read_text().count(f'getcwd("{volume.dir}", ')
    assert 100 <= calls < 210, calls
