"""The runtime's cache of closed files (docs/runtime.md, "The cache of closed
files"): a long-running program under kiln run (python3 answering commands on
stdin) keeps its handles on files it closed (the volume server's memfds) for
the next open. These tests check that the cache never hides a change: another
kiln process rewriting, unlinking or committing next to a file, tampering found
at the next load from disk, the bound set by KILN_FILE_CACHE, and that closing a
written file still commits it at once."""
import os
import re
import subprocess

from kilnapps import SECRET, need
from kilnenv import BUILD

SERVER = r"""
import os, sys
print("pid", os.getpid(), flush=True)
for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    try:
        if cmd == "read":
            with open(arg, "rb") as f:
                out = "ok " + f.read().decode(errors="replace")
        elif cmd == "size":
            out = "ok %d" % os.path.getsize(arg)
        elif cmd == "write":
            path, _, text = arg.partition(" ")
            with open(path, "w") as f:
                f.write(text)
            out = "ok"
        elif cmd == "unlink":
            os.unlink(arg)
            out = "ok"
        elif cmd == "stat":
            st = os.stat(arg)
            out = "ok %d %d %d" % (st.st_ino, st.st_nlink, st.st_mtime_ns)
        elif cmd == "create":
            fd = os.open(arg, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.fchown(fd, os.getuid(), os.getgid())  # as sqlite does its journal's
            os.close(fd)
            out = "ok"
        elif cmd == "dupread":
            fd = os.open(arg, os.O_RDONLY)
            fd2 = os.dup(fd)
            os.close(fd)
            data = os.read(fd2, 1 << 20)
            os.fstat(fd2)
            os.close(fd2)
            out = "ok " + data.decode(errors="replace")
        elif cmd == "hold":
            held = open(arg, "rb")
            out = "ok"
        elif cmd == "release":
            out = "ok " + held.read().decode(errors="replace")
            held.close()
        elif cmd == "forkread":
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    paths = arg.split()
                    data = b"|".join(open(q, "rb").read() for q in paths)
                    os.write(w, data)
                finally:
                    os._exit(0)
            os.close(w)
            data = b""
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
            os.close(r)
            os.waitpid(pid, 0)
            out = "ok " + data.decode(errors="replace")
        elif cmd == "memfds":
            n = 0
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if "kiln-plaintext" in os.readlink("/proc/self/fd/" + fd):
                        n += 1
                except OSError:
                    pass
            out = "ok %d" % n
        else:
            out = "bad command"
    except OSError as e:
        out = "err %d" % e.errno
    print(out, flush=True)
"""


class App:
    """python3 under kiln run, kept running across several requests."""

    def __init__(self, volume, env=None, args=()):
        e = {k: v for k, v in os.environ.items() if k != "KILN_FILE_CACHE"}
        e.update(env or {})
        self.proc = subprocess.Popen(
            [volume.kiln_bin, "run", *args, "--volume", f"{volume.dir}={volume.key}", "--",
             need("python3"), "-u", "-c", SERVER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=e)
        line = self.proc.stdout.readline()
        assert line.startswith("pid "), line + self.proc.stderr.read()
        self.pid = int(line.split()[1])

    def memfds(self):
        """The runtime's plaintext memfds in the app, counted from outside: the
        app itself cannot see them in its /proc/self/fd (the runtime hides its
        own fds; the process is non-dumpable, so this takes root)."""
        n = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                if "kiln-plaintext" in os.readlink(f"/proc/{self.pid}/fd/{fd}"):
                    n += 1
            except OSError:
                pass
        return n

    def ask(self, *words):
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "app exited:\n" + self.proc.stderr.read()
        return line.rstrip("\n")

    def stop(self):
        """End of input: the app exits; returns its stderr."""
        _, err = self.proc.communicate(timeout=60)
        return err


def write(volume, rel, text):
    volume.run("sh", "-c", f"printf %s '{text}' > {volume.dir}/{rel}", check=True)


def test_cache_sees_other_process_rewrite(volume):
    write(volume, "f.txt", "one")
    app = App(volume)
    try:
        f = volume.dir / "f.txt"
        assert app.ask("read", f) == "ok one"
        assert app.ask("read", f) == "ok one"  # from the cache
        write(volume, "f.txt", "two-" + SECRET)  # another kiln process commits
        assert app.ask("read", f) == "ok two-" + SECRET
        assert app.ask("size", f) == f"ok {len('two-' + SECRET)}"
        # A rename by another process, then a file of that name again.
        volume.run("mv", f, volume.dir / "g.txt", check=True)
        assert app.ask("read", f) == "err 2"
        assert app.ask("read", volume.dir / "g.txt") == "ok two-" + SECRET
    finally:
        app.stop()
    volume.assert_no_plaintext()


def test_open_file_sees_other_process_rewrite(volume):
    """A file open in the app while another process truncates and rewrites it
    (the same file): the open fd reads the new contents, as it would natively,
    and so does every later open."""
    write(volume, "f.txt", "old")
    app = App(volume)
    try:
        f = volume.dir / "f.txt"
        assert app.ask("hold", f) == "ok"
        write(volume, "f.txt", "new")
        assert app.ask("read", f) == "ok new"
        assert app.ask("release") == "ok new"
        assert app.ask("read", f) == "ok new"
        assert app.ask("read", f) == "ok new"
    finally:
        app.stop()


def test_cache_unlink_gives_enoent(volume):
    write(volume, "a.txt", "aaa")
    write(volume, "b.txt", "bbb")
    app = App(volume)
    try:
        a, b = volume.dir / "a.txt", volume.dir / "b.txt"
        assert app.ask("read", a) == "ok aaa"
        assert app.ask("read", b) == "ok bbb"
        volume.run("rm", a, check=True)  # another process
        assert app.ask("read", a) == "err 2"
        assert app.ask("unlink", b) == "ok"  # this process
        assert app.ask("read", b) == "err 2"
    finally:
        app.stop()


def test_cache_tamper_found_at_next_load(volume):
    big = (SECRET + " ") * 4000  # the largest data file of the volume
    write(volume, "big.txt", big)
    write(volume, "small.txt", "s")
    app = App(volume)
    try:
        path = volume.dir / "big.txt"
        assert app.ask("read", path) == "ok " + big
        volume.tamper_largest()
        # Held in memory, verified when it was read: the change on disk
        # cannot reach it (the volume server's cache, like a page cache).
        write(volume, "small.txt", "t")
        assert app.ask("read", path) == "ok " + big
        assert app.ask("read", volume.dir / "small.txt") == "ok t"
    finally:
        app.stop()
    # The next load from disk finds it: a new process, a new volume server.
    p = volume.run("cat", volume.dir / "big.txt")
    assert p.returncode != 0 and "big.txt" in p.stderr and "corrupt" in p.stderr


def test_cache_bound_and_dup(volume):
    for i in range(5):
        write(volume, f"{i}.txt", f"file{i}")
    files = [volume.dir / f"{i}.txt" for i in range(5)]
    for env, cached in (({"KILN_FILE_CACHE": "2"}, 2), ({"KILN_FILE_CACHE": "0"}, 0),
                        ({}, 5), ({"KILN_FILE_CACHE": "10:64"}, 5)):
        app = App(volume, env)
        try:
            for _ in range(2):
                for i, f in enumerate(files):
                    assert app.ask("read", f) == f"ok file{i}"
            # Closed files still held decrypted: exactly the bound (the last
            # close is counted by the next call into the shield, this stat).
            assert app.ask("size", files[0]) == "ok 5"
            assert app.memfds() == cached, env
            assert app.ask("memfds") == "ok 0"  # invisible to the program
            assert app.ask("dupread", files[0]) == "ok file0"
        finally:
            app.stop()


def test_cache_and_fork(volume):
    """A forked child reads files the parent has cached and files it has not
    (its own reopen path), and sees another process's rewrite."""
    write(volume, "p.txt", "parent")
    write(volume, "c.txt", "child")
    app = App(volume)
    try:
        p, c = volume.dir / "p.txt", volume.dir / "c.txt"
        assert app.ask("read", p) == "ok parent"
        assert app.ask("forkread", c, p) == "ok child|parent"
        write(volume, "p.txt", "parent2")
        assert app.ask("forkread", p, c) == "ok parent2|child"
        assert app.ask("read", p) == "ok parent2"
        assert app.ask("read", c) == "ok child"
    finally:
        app.stop()


THREADS = r"""
import os, sys, threading
d = sys.argv[1]
want = {f"t{i}.txt": (f"thread-file-{i}-" * 50).encode() for i in range(3)}
errors = []

def reader(k):
    try:
        for j in range(1500):
            name = f"t{(j + k) % 3}.txt"
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            if j % 3 == 0:
                fd2 = os.dup(fd)
                os.close(fd)
                fd = fd2
            if os.fstat(fd).st_size != len(want[name]) or os.pread(fd, 65536, 0) != want[name]:
                errors.append(name)
            os.close(fd)
    except OSError as e:
        errors.append(repr(e))

def writer():
    try:
        for j in range(200):
            with open(os.path.join(d, "w.txt"), "w") as f:
                f.write(str(j))
            with open(os.path.join(d, "w.txt")) as f:
                if f.read() != str(j):
                    errors.append("w.txt")
    except OSError as e:
        errors.append(repr(e))

ts = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
ts.append(threading.Thread(target=writer))
for t in ts:
    t.start()
for t in ts:
    t.join()
print("errors", len(errors), errors[:3])
"""


def test_cache_threads(volume):
    """Threads opening, dup'ing and closing cached files (lock-free closes)
    while another thread writes: every read sees the right bytes."""
    for i in range(3):
        write(volume, f"t{i}.txt", f"thread-file-{i}-" * 50)
    p = volume.run(need("python3"), "-c", THREADS, volume.dir, check=True)
    assert p.stdout.strip() == "errors 0 []", p.stdout + p.stderr
    p = volume.run("cat", volume.dir / "w.txt", check=True)
    assert p.stdout == "199"


def test_cache_bad_knob(volume):
    p = volume.run("true", env={"KILN_FILE_CACHE": "lots"})
    assert p.returncode == 1
    assert "KILN_FILE_CACHE=lots: expected FILES or FILES:MIB" in p.stderr


def test_close_of_written_file_commits(volume):
    app = App(volume)
    try:
        f = volume.dir / "w.txt"
        assert app.ask("write", f, "hello-" + SECRET) == "ok"
        # Still running: another process reads what the close committed.
        p = volume.run("cat", f, check=True)
        assert p.stdout == "hello-" + SECRET
        assert app.ask("read", f) == "ok hello-" + SECRET
        write(volume, "w.txt", "other")
        assert app.ask("read", f) == "ok other"
    finally:
        app.stop()


def test_on_exit_changes_survive_another_process_commit(volume):
    """--freshness on-exit keeps a closed file's changes in memory until exit;
    another process committing to the volume meanwhile must not drop them."""
    app = App(volume, args=["--freshness", "on-exit"])
    try:
        a = volume.dir / "a.txt"
        assert app.ask("write", a, "mine-" + SECRET) == "ok"
        write(volume, "b.txt", "theirs")  # another kiln process commits
        assert app.ask("read", volume.dir / "b.txt") == "ok theirs"
        assert app.ask("read", a) == "ok mine-" + SECRET
    finally:
        err = app.stop()
    assert app.proc.returncode == 0, err
    assert volume.run("cat", a, check=True).stdout == "mine-" + SECRET
    assert volume.run("cat", volume.dir / "b.txt", check=True).stdout == "theirs"
    volume.assert_no_plaintext()


REOPEN = r"""
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    fd = os.open(path, os.O_RDONLY)
    assert os.fstat(fd).st_size == 4096 and len(os.read(fd, 8192)) == 4096
    os.close(fd)
"""


def server_requests(volume):
    """Requests the volume server answered (KILN_SHIELD_STATS=1), once it exited."""
    volume.wait_server_gone()
    lines = (volume.dir / ".kiln" / "server.log").read_text().splitlines()
    return int(re.search(r"(\d+) requests;", [ln for ln in lines if "requests;" in ln][-1])
               .group(1))


def test_reopen_of_unchanged_file_costs_no_round_trip(volume):
    """nginx's pattern: open, fstat, read, close of the same file again and
    again. Once the process knows the file and nothing changed in the volume,
    an open is a reopen of the memfd and a close of a read-only fd releases
    nothing at the server: 300 opens cost the server no more requests than
    one (was 2 round trips per open)."""
    write(volume, "page.html", "x" * 4096)
    env = {"KILN_SHIELD_STATS": "1"}
    py = need("python3")
    counts = {}
    for n in (1, 300):
        volume.run(py, "-c", REOPEN, volume.dir / "page.html", n, env=env, check=True)
        counts[n] = server_requests(volume)
    assert counts[300] - counts[1] < 10, counts


def test_lockfree_opens_under_signals_and_threads(volume):
    """Three threads open, fstat, read and close (one also dup's) known files
    while SIGALRM every 200 us does the same in its handler, on whatever
    thread it interrupts (the lock-free open and close take no lock and
    leave the signal mask alone; the locked calls block signals). Every read
    has the file's bytes and nothing deadlocks; another process's rewrite
    afterwards is seen."""
    prog = BUILD / "tests" / "e2e" / "apps" / "rt_reopen_signals"
    for name in ("a", "b", "c"):
        write(volume, f"{name}.txt", f"{name}.txt" * 120)
    p = volume.run(prog, volume.dir, 5000, timeout=240)
    assert p.returncode == 0 and p.stdout.startswith("ok "), p.stdout + p.stderr
    assert int(p.stdout.split()[1]) > 0, p.stdout
    app = App(volume)
    try:
        a = volume.dir / "a.txt"
        assert app.ask("read", a) == "ok " + "a.txt" * 120
        assert app.ask("read", a) == "ok " + "a.txt" * 120  # lock-free now
        write(volume, "a.txt", "changed")
        assert app.ask("read", a) == "ok changed"
    finally:
        app.stop()
