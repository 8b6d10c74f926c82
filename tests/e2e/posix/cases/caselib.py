"""Helpers for the POSIX edge-case programs (tests/e2e/posix/cases/*.py).

A case program gets a writable directory (in the view under test) as argv[1],
makes its own files below it and prints one `key: value` line per observation.
Values must not depend on the view's path or on the clock: errno names, booleans,
sizes, comparisons ("advanced"), never inode numbers or times themselves. The test
runs the program natively and in each kiln view and compares the lines."""
import errno
import os
import sys
import time


def out(key, value):
    print(f"{key}: {value}", flush=True)


def res(fn, *args, **kw):
    """'ok' (or fn's result when it is not None) or the errno name fn raised."""
    try:
        r = fn(*args, **kw)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "ok" if r is None else r


def check(key, fn, *args, **kw):
    """key: ok or the errno name (what fn returns is not printed: it may be an fd
    number or a stat result, which differ between views)."""
    r = res(fn, *args, **kw)
    out(key, r if isinstance(r, str) else "ok")


def base_dir(name):
    """A fresh sub-directory of argv[1] named after the case, mode 0777 (children of
    other uids work in it) and made the working directory."""
    d = os.path.join(sys.argv[1], name)
    os.mkdir(d)
    os.chmod(d, 0o777)
    os.chdir(d)
    return d


def write_file(path, data=b"data", mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def read_all(fd):
    """Everything until end of file from fd, which is then closed."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data


def in_child(fn, *args, setup=None):
    """Run fn(*args) in a forked child (after setup(), if given) and return its
    result in res() form, or 'SIG<n>' if the child died of a signal."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            if setup:
                setup()
            v = str(res(fn, *args))
        except BaseException as e:  # noqa: BLE001 (reported, never raised in a child)
            v = f"child error {e!r}"
        os.write(w, v.encode())
        os._exit(0)
    os.close(w)
    data = read_all(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"SIG{os.WTERMSIG(status)}"
    return data.decode()


def as_user(uid, gid, fn, *args):
    """in_child() with uid/gid and no supplementary groups."""
    def drop():
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    return in_child(fn, *args, setup=drop)


def compare_times(before, after):
    """advanced / same / went back, for two nanosecond timestamps."""
    if after > before:
        return "advanced"
    return "same" if after == before else "went back"


def tick():
    """Let the clock move past the file system's timestamp granularity (ext4 takes
    the kernel's coarse clock: a few ms)."""
    time.sleep(0.02)
