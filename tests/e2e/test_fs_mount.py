"""kiln fs mount as users meet it: files unlinked while open (nothing left behind, also
after the mount process is killed), who may use a mount made by root, fallocate.
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


def test_unlinked_while_open_leaves_nothing(mounted):
    kiln_bin, vol, key, m = mounted
    with m:
        assert m.error is None, m.error
        d = m.mnt / "work" / "sub"
        d.mkdir(parents=True)
        fd = os.open(d / "f", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, b"still here")
        os.unlink(d / "f")
        assert os.listdir(d) == []
        assert os.listdir(m.mnt) == ["work"]
        os.rmdir(d)  # was ENOTEMPTY: .fuse_hidden* stayed in the directory
        assert os.pread(fd, 100, 0) == b"still here"
        assert os.fstat(fd).st_nlink == 0
        os.pwrite(fd, b"STILL", 0)
        assert os.pread(fd, 5, 0) == b"STILL"
        os.close(fd)
        # The place the mount keeps such files in does not exist for programs.
        for bad in (".kiln-fuse-unlinked", ".kiln-fuse-unlinked/x"):
            with pytest.raises(FileNotFoundError):
                os.stat(m.mnt / bad)
        assert m.unmount() is None, m.error
    assert names_in_volume(kiln_bin, vol, key) == ["work/"]
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
        os.fsync(dfd)  # commit the namespace with the file hidden
        os.close(dfd)
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait()
        os.close(fd)
        subprocess.run(["fusermount3", "-uz", str(m.mnt)], capture_output=True)
        m.proc = None
    assert ".kiln-fuse-unlinked/" in names_in_volume(kiln_bin, vol, key)
    again = Mount(kiln_bin, vol, key, m.mnt)
    with again:
        assert again.error is None, again.error
        assert os.listdir(again.mnt) == ["keep"]
        assert again.unmount() is None, again.error
    assert names_in_volume(kiln_bin, vol, key) == ["keep"]
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
