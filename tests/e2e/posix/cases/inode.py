"""Inode numbers: stable across rename (same and other directory) and reopen; hard
links share one; link counts."""
import os

from caselib import base_dir, out, res, write_file

base_dir("inode")
write_file("a", b"1")
os.mkdir("d")
ino = os.stat("a").st_ino
os.rename("a", "b")
out("rename_same_dir", os.stat("b").st_ino == ino)
os.rename("b", "d/c")
out("rename_other_dir", os.stat("d/c").st_ino == ino)
fd = os.open("d/c", os.O_RDWR)
out("fstat_eq_stat", os.fstat(fd).st_ino == ino)
os.write(fd, b"more")
os.fsync(fd)
os.close(fd)
out("after_write_fsync", os.stat("d/c").st_ino == ino)
write_file("other", b"2")
out("distinct_files", os.stat("other").st_ino != ino)
dino = os.stat("d").st_ino
os.rename("d", "e")
out("dir_rename", os.stat("e").st_ino == dino)
out("file_in_renamed_dir", os.stat("e/c").st_ino == ino)
write_file("x", b"3")
xino = os.stat("x").st_ino
os.rename("other", "x")
out("rename_over_takes_source_ino", os.stat("x").st_ino != xino)
link = res(os.link, "e/c", "hard")
out("link", link)
if link == "ok":
    out("link_same_ino", os.stat("hard").st_ino == ino)
    out("nlink_two", os.stat("e/c").st_nlink)
    os.unlink("e/c")
    out("nlink_after_unlink", os.stat("hard").st_nlink)
out("dir_nlink", os.stat("e").st_nlink)
os.mkdir("e/sub")
out("dir_nlink_with_subdir", os.stat("e").st_nlink)
out("dot_is_dir", os.stat("e/.").st_ino == os.stat("e").st_ino)
out("dotdot_is_parent", os.stat("e/sub/..").st_ino == os.stat("e").st_ino)
