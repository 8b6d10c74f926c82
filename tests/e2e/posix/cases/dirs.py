"""Directory listings: rewinding a directory fd between getdents listings, d_type,
and /proc/self/fd showing only the program's own fds."""
import ctypes
import os

from caselib import base_dir, out, write_file

base_dir("dirs")
os.mkdir("d")
for n in ("a", "b", "c"):
    write_file(f"d/{n}")
os.mkdir("d/sub")
fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY)
out("listdir_fd_1", sorted(os.listdir(fd)))
out("listdir_fd_2", sorted(os.listdir(fd)))
out("scandir_fd_1", sorted((e.name, e.is_dir(), e.is_file()) for e in os.scandir(fd)))
out("scandir_fd_2", sorted(e.name for e in os.scandir(fd)))
os.lseek(fd, 0, os.SEEK_SET)
out("after_lseek_0", sorted(os.listdir(fd)))
out("fwalk", sorted((p, sorted(ds), sorted(fs)) for p, ds, fs, _ in os.fwalk("d")))
os.close(fd)
out("scandir_types", sorted((e.name, e.is_dir(follow_symlinks=False),
                             e.is_file(follow_symlinks=False)) for e in os.scandir("d")))
out("listdir_after_unlink", (os.unlink("d/b"), sorted(os.listdir("d")))[1])
out("dot_entries_hidden", "." not in os.listdir("d") and ".." not in os.listdir("d"))
many = [f"n{i:04d}" for i in range(1500)]
for n in many:
    write_file(f"d/sub/{n}")
out("large_dir_count", len(os.listdir("d/sub")))
out("large_dir_complete", sorted(os.listdir("d/sub")) == many)


def seekdir_resumes():
    # telldir in the middle of a listing, read on, seekdir back: the same rest
    # (a big directory: the listing spans several getdents calls).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = libc.telldir.argtypes = libc.closedir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    off = 19  # d_name in struct dirent64 (glibc x86-64)

    def rest(dp):
        names = []
        while True:
            e = libc.readdir(dp)
            if not e:
                return names
            names.append(ctypes.string_at(e + off).decode())

    dp = libc.opendir(b"d/sub")
    for _ in range(700):
        libc.readdir(dp)
    pos = libc.telldir(dp)
    first = rest(dp)
    libc.seekdir(dp, pos)
    again = rest(dp)
    libc.closedir(dp)
    return len(first), first == again


out("seekdir_resumes", seekdir_resumes())


def own_fds():
    return sorted(int(x) for x in os.listdir("/proc/self/fd"))


start = own_fds()
out("proc_fd_start", start)
opened = [os.open(f"d/{n}", os.O_RDONLY) for n in ("a", "c")]
out("proc_fd_after_open", own_fds())
for f in opened:
    os.close(f)
out("proc_fd_after_close", own_fds())

# fchdir into a directory fd, then relative names there (coreutils mkdir -p
# does this for every component).
here = os.getcwd()
for i in range(20):
    os.mkdir(f"fc{i}")
    fd = os.open(f"fc{i}", os.O_RDONLY | os.O_DIRECTORY)
    os.fchdir(fd)
    os.close(fd)
    os.mkdir("inner")
    os.chdir(here)
out("fchdir_then_relative", all(os.path.isdir(f"fc{i}/inner") for i in range(20)))
out("fchdir_cwd_tail", (os.chdir("fc3"), os.getcwd().endswith("/dirs/fc3"))[1])
os.chdir(here)
