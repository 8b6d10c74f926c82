"""kiln fs mount as users meet it: files unlinked while open (nothing left behind, also
after the mount process is killed), a namespace that survives a remount, who may use a
mount made by root, fallocate.
The POSIX edge cases of the mount view are in tests/e2e/posix; docs/fs.md."""
import ctypes
import errno
import os
import pathlib
import signal
import subprocess
import tempfile

import pytest

from kilnviews import Mount, fuse_usable, init_volume, verify_volume


@pytest.fixture
def mounted(kiln_bin):
    """(kiln, vol, key, Mount) on a world-traversable temp dir (non-root users try it)."""
    why = fuse_usable()
    if why:
        pytest.skip(why)
    base = pathlib.Path(tempfile.mkdtemp(prefix="kiln-mount-"))
    os.chmod(base, 0o755)
    vol, key = base / "vol", base / "vol.key"
    assert init_volume(kiln_bin, vol, key) is None
    m = Mount(kiln_bin, vol, key, base / "mnt")
    try:
        yield kiln_bin, vol, key, m
    finally:
        m.__exit__(None, None, None)
        subprocess.run(["rm", "-rf", str(base)])


def names_in_volume(kiln_bin, vol, key):
    p = subprocess.run([kiln_bin, "fs", "ls", str(vol), "-r", "--key-file", str(key)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return [ln.split()[-1] for ln in p.stdout.splitlines()]


def backing_files(vol):
    """Backing files of the volume's storage (32 hex digits, no suffix)."""
    return [n for n in os.listdir(vol / ".kiln") if len(n) == 32]


def test_unlinked_while_open_leaves_nothing(mounted):
    kiln_bin, vol, key, m = mounted
    with m:
        assert m.error is None, m.error
        d = m.mnt / "work" / "sub"
        d.mkdir(parents=True)
        fd = os.open(d / "f", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, b"still here")
        ino = os.fstat(fd).st_ino
        os.unlink(d / "f")
        assert os.listdir(d) == []
        assert os.listdir(m.mnt) == ["work"]
        os.rmdir(d)  # was ENOTEMPTY when libfuse hid the file as .fuse_hidden*
        assert os.pread(fd, 100, 0) == b"still here"
        st = os.fstat(fd)
        assert (st.st_nlink, st.st_ino) == (0, ino)
        os.fchmod(fd, 0o640)  # the inode, without a name or a directory
        assert os.fstat(fd).st_mode & 0o777 == 0o640
        os.pwrite(fd, b"STILL", 0)
        assert os.pread(fd, 5, 0) == b"STILL"
        os.close(fd)
        assert m.unmount() is None, m.error
    assert names_in_volume(kiln_bin, vol, key) == ["work/"]
    assert backing_files(vol) == []
    assert verify_volume(kiln_bin, vol, key) is None


def test_unlinked_files_of_a_killed_mount_are_removed_at_the_next(mounted):
    kiln_bin, vol, key, m = mounted
    with m:
        assert m.error is None, m.error
        (m.mnt / "keep").write_bytes(b"kept")
        fd = os.open(m.mnt / "gone", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, b"x" * 5000)
        os.fsync(fd)
        os.unlink(m.mnt / "gone")
        dfd = os.open(m.mnt, os.O_RDONLY)
        os.fsync(dfd)  # commit the namespace without the file, still open
        os.close(dfd)
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait()
        os.close(fd)
        subprocess.run(["fusermount3", "-uz", str(m.mnt)], capture_output=True)
        m.proc = None
    assert names_in_volume(kiln_bin, vol, key) == ["keep"]
    again = Mount(kiln_bin, vol, key, m.mnt)
    with again:
        assert again.error is None, again.error
        assert os.listdir(again.mnt) == ["keep"]
        assert again.unmount() is None, again.error
    assert names_in_volume(kiln_bin, vol, key) == ["keep"]
    assert len(backing_files(vol)) == 1  # the unlinked file's went with the crash's leftovers
    assert verify_volume(kiln_bin, vol, key) is None


def test_leftovers_of_the_old_unlinked_directory_are_removed(mounted, tmp_path):
    """Mounts before pf's inodes kept files unlinked while open as
    .kiln-fuse-unlinked/.fuse_hidden* and a killed mount left them: the next mount
    removes those names (and only those)."""
    kiln_bin, vol, key, m = mounted
    src = tmp_path / "data"
    src.write_bytes(b"x")
    for name in (".kiln-fuse-unlinked/.fuse_hidden000a00000001", "mine/.fuse_hidden1"):
        p = subprocess.run([kiln_bin, "fs", "put", str(vol), name, "--from", str(src),
                            "--key-file", str(key)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    with m:
        assert m.error is None, m.error
        assert sorted(os.listdir(m.mnt)) == ["mine"]
        assert os.listdir(m.mnt / "mine") == [".fuse_hidden1"]  # not ours: kept
        assert m.unmount() is None, m.error
    assert verify_volume(kiln_bin, vol, key) is None


def test_namespace_survives_remount(mounted):
    """Links, symlinks, special nodes, owners and times made through the mount are
    in the volume: a second mount (and kiln fs) sees the same inodes."""
    kiln_bin, vol, key, m = mounted
    with m:
        assert m.error is None, m.error
        (m.mnt / "d").mkdir()
        (m.mnt / "d" / "f").write_bytes(b"data")
        os.link(m.mnt / "d" / "f", m.mnt / "hard")
        os.symlink("d/f", m.mnt / "sym")
        os.mkfifo(m.mnt / "fifo", 0o640)
        os.chown(m.mnt / "d" / "f", 1234, 5678)
        os.utime(m.mnt / "d" / "f", ns=(1_000_000_001, 2_000_000_002))
        before = {n: os.lstat(m.mnt / n) for n in ("d", "d/f", "hard", "sym", "fifo")}
        assert m.unmount() is None, m.error
    again = Mount(kiln_bin, vol, key, m.mnt)
    with again:
        assert again.error is None, again.error
        for n, b in before.items():
            a = os.lstat(again.mnt / n)
            assert (a.st_ino, a.st_mode, a.st_nlink, a.st_uid, a.st_gid, a.st_size) == \
                (b.st_ino, b.st_mode, b.st_nlink, b.st_uid, b.st_gid, b.st_size), n
            assert (a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns) == \
                (b.st_atime_ns, b.st_mtime_ns, b.st_ctime_ns), n
        assert os.readlink(again.mnt / "sym") == "d/f"
        assert before["d/f"].st_atime_ns == 1_000_000_001
        assert (again.mnt / "sym").read_bytes() == b"data"
        assert again.unmount() is None, again.error
    assert verify_volume(kiln_bin, vol, key) is None


def as_nobody(argv):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv,
                          capture_output=True, text=True)


def test_mount_by_root_is_open_to_users_by_mode_bits(mounted):
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts for other users)")
    _, _, _, m = mounted
    with m:
        assert m.error is None, m.error
        (m.mnt / "public").write_bytes(b"for everyone\n")
        os.chmod(m.mnt / "public", 0o644)
        (m.mnt / "private").write_bytes(b"root only\n")
        os.chmod(m.mnt / "private", 0o600)
        os.chmod(m.mnt, 0o755)
        r = as_nobody(["cat", str(m.mnt / "public")])
        assert r.returncode == 0 and r.stdout == "for everyone\n", r.stderr
        r = as_nobody(["cat", str(m.mnt / "private")])
        assert r.returncode != 0 and "Permission denied" in r.stderr
        r = as_nobody(["sh", "-c", f"echo x >> {m.mnt / 'public'}"])
        assert r.returncode != 0 and "Permission denied" in r.stderr
        r = as_nobody(["touch", str(m.mnt / "new")])
        assert r.returncode != 0 and "Permission denied" in r.stderr
        assert (m.mnt / "public").read_bytes() == b"for everyone\n"
        assert not (m.mnt / "new").exists()
        assert m.unmount() is None, m.error


def test_fallocate(mounted):
    kiln_bin, vol, key, m = mounted
    with m:
        assert m.error is None, m.error
        fd = os.open(m.mnt / "f", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, b"\xaa" * 20000)
        os.posix_fallocate(fd, 0, 100000)
        assert os.fstat(fd).st_size == 100000
        assert os.pread(fd, 10, 50000) == bytes(10)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
        FALLOC_FL_COLLAPSE_RANGE = 8  # not supported: EOPNOTSUPP, as Linux says for it
        assert libc.fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096) == -1
        assert ctypes.get_errno() == errno.EOPNOTSUPP
        os.close(fd)
        assert m.unmount() is None, m.error
    assert verify_volume(kiln_bin, vol, key) is None
