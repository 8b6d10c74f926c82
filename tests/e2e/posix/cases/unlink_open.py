"""A file unlinked (or replaced by rename) while open lives until its last close,
leaves nothing behind, and does not keep its directory from being removed."""
import os

from caselib import base_dir, check, out, read_file, res, write_file

base_dir("unlink_open")
os.mkdir("d")
write_file("d/f", b"before")
fd = os.open("d/f", os.O_RDWR)
fd2 = os.open("d/f", os.O_RDONLY)
os.unlink("d/f")
out("listing_after_unlink", os.listdir("d"))
out("fstat_nlink", os.fstat(fd).st_nlink)
out("read_after_unlink", os.pread(fd, 100, 0))
out("write_after_unlink", os.pwrite(fd, b"AFTER", 0))
out("other_fd_sees_write", os.pread(fd2, 100, 0))
check("fsync_after_unlink", os.fsync, fd)
check("rmdir_while_open", os.rmdir, "d")
out("read_after_rmdir", res(os.pread, fd, 5, 0))
check("fchmod_unlinked", os.fchmod, fd, 0o600)
os.close(fd2)
os.close(fd)
out("dir_gone", not os.path.exists("d"))

os.mkdir("r")
write_file("r/a", b"old")
write_file("r/b", b"new")
fd = os.open("r/a", os.O_RDONLY)
os.rename("r/b", "r/a")
out("old_fd_reads_old", os.pread(fd, 10, 0))
out("path_reads_new", read_file("r/a"))
os.close(fd)
out("listing_after_replace", sorted(os.listdir("r")))
write_file("r/c", b"c")
fds = [os.open("r/c", os.O_RDONLY) for _ in range(3)]
os.unlink("r/a")
os.unlink("r/c")
for f in fds:
    os.close(f)
check("rmdir_after_close", os.rmdir, "r")
out("entries_left", os.listdir("."))
