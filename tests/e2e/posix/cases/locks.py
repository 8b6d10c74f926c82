"""Locks between processes on one file: fcntl (POSIX), OFD, flock and lockf, seen by
a forked child and by an independent (exec'd) process; released on close and exit."""
import fcntl
import os
import struct
import subprocess
import sys

from caselib import base_dir, in_child, out, res, write_file

if len(sys.argv) > 2 and sys.argv[2] == "--probe":
    # An independent process: try each kind of lock on argv[3], print the results.
    path = sys.argv[3]
    fd = os.open(path, os.O_RDWR)
    print(res(fcntl.lockf, fd, fcntl.LOCK_EX | fcntl.LOCK_NB), end=" ")
    print(res(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB), end="")
    os.close(fd)
    sys.exit(0)

FLOCK = "=hh4xqqi4x"  # struct flock on x86-64
SELF = os.path.abspath(__file__)
base_dir("locks")
write_file("db", b"x" * 100)


def try_lock(lock, path="db"):
    """lock(fd, LOCK_EX | LOCK_NB) on a new open of path: ok or the errno name."""
    fd = os.open(path, os.O_RDWR)
    try:
        return res(lock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def try_lockf():
    return try_lock(fcntl.lockf)


def try_flock():
    return try_lock(fcntl.flock)


def ofd_lock(fd, start, length):
    r = res(fcntl.fcntl, fd, fcntl.F_OFD_SETLK,
            struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0))
    return r if isinstance(r, str) else "ok"


def try_ofd(start=0, length=10):
    fd = os.open("db", os.O_RDWR)
    try:
        return ofd_lock(fd, start, length)
    finally:
        os.close(fd)


def probe():
    p = subprocess.run([sys.executable, SELF, sys.argv[1], "--probe",
                        os.path.abspath("db")], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()[-200:]


# POSIX record lock (lockf = fcntl F_SETLK) held by this process.
fd = os.open("db", os.O_RDWR)
out("lockf_take", res(fcntl.lockf, fd, fcntl.LOCK_EX))
out("lockf_child_conflict", in_child(try_lockf))
out("lockf_exec_probe", probe())
getlk = fcntl.fcntl(os.open("db", os.O_RDWR), fcntl.F_GETLK,
                    struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
out("getlk_own_unlocked", struct.unpack(FLOCK, getlk)[0] == fcntl.F_UNLCK)
out("getlk_from_child_sees_parent",
    in_child(lambda: struct.unpack(FLOCK, fcntl.fcntl(os.open("db", os.O_RDWR), fcntl.F_GETLK,
          struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)))[4] == os.getppid()))
out("range_lock_other_range", in_child(lambda: res(lambda: fcntl.lockf(
    os.open("db", os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 200))))
# Closing ANY fd of the file releases this process's POSIX locks.
os.close(os.open("db", os.O_RDONLY))
out("lockf_released_on_other_close", in_child(try_lockf))
out("lockf_retake", res(fcntl.lockf, fd, fcntl.LOCK_EX | fcntl.LOCK_NB))
os.close(fd)
out("lockf_after_close", in_child(try_lockf))

# flock: per open file description.
fd = os.open("db", os.O_RDWR)
out("flock_take", res(fcntl.flock, fd, fcntl.LOCK_EX))
out("flock_child_other_open", in_child(try_flock))
out("flock_same_process_other_open", try_flock())
out("flock_inherited_fd", in_child(lambda: res(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)))
out("flock_exec_probe", probe())
fcntl.flock(fd, fcntl.LOCK_UN)
out("flock_after_unlock", in_child(try_flock))
os.close(fd)

# OFD locks: per open file description, conflict even within one process.
fd = os.open("db", os.O_RDWR)
out("ofd_take", ofd_lock(fd, 0, 10))
out("ofd_same_process_other_open", try_ofd())
out("ofd_child_conflict", in_child(try_ofd))
out("ofd_other_range", try_ofd(20, 5))
os.close(fd)
out("ofd_after_close", try_ofd())

# A lock held by a process that exits is released.
pid = os.fork()
if pid == 0:
    f = os.open("db", os.O_RDWR)
    fcntl.lockf(f, fcntl.LOCK_EX)
    os._exit(0)
os.waitpid(pid, 0)
out("lockf_after_holder_exit", try_lockf())
