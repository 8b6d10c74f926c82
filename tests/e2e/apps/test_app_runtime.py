"""Runtime behaviour with real programs: threads, signals, fork, exec, and the
volume staying consistent for `kiln fs verify`; keys never in /proc."""
import subprocess

from kilnapps import SECRET, Volume

THREADS = r"""
import os, sys, threading, signal
d = sys.argv[1]
signal.signal(signal.SIGALRM, lambda *a: None)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)   # signals during shield calls
def work(t):
    for i in range(40):
        p = os.path.join(d, f"t{t}-{i}.txt")
        with open(p, "w") as f:
            f.write(f"{sys.argv[2]} {t} {i}\n" * 50)
            f.flush()
            os.fsync(f.fileno())
        with open(p) as f:
            assert f.read() == f"{sys.argv[2]} {t} {i}\n" * 50
        if i % 3 == 0:
            os.rename(p, p + ".old")
        if i % 5 == 0:
            os.unlink(p + ".old" if i % 3 == 0 else p)
ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
signal.setitimer(signal.ITIMER_REAL, 0, 0)
pid = os.fork()
if pid == 0:
    with open(os.path.join(d, "child.txt"), "w") as f:
        f.write("from child\n")
    os._exit(0)
os.waitpid(pid, 0)
print(open(os.path.join(d, "child.txt")).read().strip(), len(os.listdir(d)))
"""


def test_threads_signals_fork(volume):
    p = volume.run("python3", "-c", THREADS, volume.dir, SECRET, check=True, timeout=120)
    # 4 threads x 40 files, 8 of each thread's removed, plus the child's file.
    assert p.stdout.strip() == "from child 129"
    volume.assert_no_plaintext()
    # The runtime's commits keep the volume and its trusted tag consistent.
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "129 file(s) intact, 0 damaged" in v.stdout


def test_key_never_in_proc(volume):
    key_hex = volume.key.read_bytes().hex()
    p = volume.run("sh", "-c", "cat /proc/$$/environ /proc/$$/cmdline | tr '\\0' '\\n'; "
                   "ls -l /proc/$$/fd", check=True)
    assert "KILN_CONFIG_FD=" in p.stdout
    assert key_hex not in p.stdout
    # The config pipe was read and closed before main: only stdout/stderr (the
    # test's capture) are pipes.
    pipes = [line.split()[-3] for line in p.stdout.splitlines() if "-> pipe:" in line]
    assert sorted(pipes) == ["1", "2"], p.stdout


def test_fs_cat_sees_what_the_app_wrote(volume):
    volume.run("sh", "-c", f"echo {SECRET} > {volume.dir}/hello.txt", check=True)
    p = subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), "hello.txt",
                        "--key-file", str(volume.key)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == SECRET + "\n"


OUTSIDE_LINKS = r"""
import os, sys
vol, out = sys.argv[1], sys.argv[2]
os.symlink(vol, os.path.join(out, "to_vol"))                      # a link to the volume
os.symlink(os.path.join(vol, "data.txt"), os.path.join(out, "to_file"))
os.symlink("to_vol/sub", os.path.join(out, "to_sub"))              # relative, through a link
with open(os.path.join(out, "to_vol", "made.txt"), "w") as f:      # created through the link
    f.write(sys.argv[3])
with open(os.path.join(vol, "data.txt"), "w") as f:
    f.write("data " + sys.argv[3])
os.mkdir(os.path.join(out, "to_vol", "sub"))
with open(os.path.join(out, "to_sub", "deep.txt"), "w") as f:
    f.write("deep")
print(open(os.path.join(vol, "made.txt")).read() == sys.argv[3],
      open(os.path.join(out, "to_file")).read() == "data " + sys.argv[3],
      os.stat(os.path.join(out, "to_file")).st_size,
      sorted(os.listdir(os.path.join(vol, "sub"))),
      open(os.path.join(out, "to_vol", "sub", "..", "made.txt")).read() == sys.argv[3])
"""


def test_symlinks_outside_into_the_volume(volume, tmp_path):
    """A symlink outside the volume that points into it reaches the volume's
    files (read and create), never the store on disk: no plaintext name or
    content lands beside .kiln."""
    out = tmp_path / "outside"
    out.mkdir()
    p = volume.run("python3", "-c", OUTSIDE_LINKS, volume.dir, out, SECRET, check=True)
    assert p.stdout.split() == ["True", "True", str(len("data " + SECRET)), "['deep.txt']",
                                "True"]
    assert sorted(x.name for x in volume.dir.iterdir()) == [".kiln"]
    volume.assert_no_plaintext()


DEVICES = r"""
import os, sys
a, b = sys.argv[1], sys.argv[2]
for d in (a, b):
    open(os.path.join(d, "f"), "w").write("x")
    os.mkdir(os.path.join(d, "sub"))
ids = {}
for d in (a, b):
    for name in ("", "f", "sub"):
        st = os.stat(os.path.join(d, name))
        ids[(d, name)] = (st.st_dev, st.st_ino)
host = os.stat(os.path.dirname(a))
print(len(set(ids.values())), len({dev for dev, _ in ids.values()}),
      host.st_dev in {dev for dev, _ in ids.values()}, ids[(a, "f")][0])
"""


def test_each_volume_is_its_own_device(kiln_bin, volume, tmp_path):
    """Programs take (st_dev, st_ino) as a file's identity (PostgreSQL derives its
    shared-memory key from it; tar, cp and du detect links with it). pf's inode
    numbers restart in every volume, so each volume reports its own device: no
    pair is shared between two volumes or with the host, and the device is the
    same in the next run."""
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = Volume(kiln_bin, other_root)
    args = ["--volume", f"{other.dir}={other.key}"]
    p = volume.run("python3", "-c", DEVICES, volume.dir, other.dir, extra=args, check=True)
    distinct, devices, host_dev_seen, dev_a = p.stdout.split()
    assert (distinct, devices, host_dev_seen) == ("6", "2", "False"), p.stdout
    again = volume.run("python3", "-c", f"import os; print(os.stat({str(volume.dir)!r}).st_dev)",
                       check=True)
    assert again.stdout.strip() == dev_a
