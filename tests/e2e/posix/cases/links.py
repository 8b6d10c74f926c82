"""Hard links, symlinks (relative, absolute, dangling, loops, leaving the volume),
O_TMPFILE + linkat, renameat2 flags."""
import ctypes
import errno
import os

from caselib import base_dir, check, out, read_file, res, write_file

d = base_dir("links")
write_file("f", b"one")
out("link", res(os.link, "f", "h"))
if os.path.exists("h"):
    write_file("h", b"two")
    out("link_shares_data", read_file("f"))
    check("link_unlink_first", os.unlink, "f")
    out("link_survives", read_file("h"))
    write_file("f", b"one")
check("link_existing", os.link, "f", "h")
os.mkdir("dir")
check("link_dir", os.link, "dir", "dir2")
check("link_missing", os.link, "nope", "x")

out("symlink_rel", res(os.symlink, "f", "s_rel"))
out("readlink_rel", res(os.readlink, "s_rel"))
out("read_through_rel", res(read_file, "s_rel"))
out("lstat_is_link", res(lambda: os.path.islink("s_rel")))
out("stat_through_size", res(lambda: os.stat("s_rel").st_size))
out("symlink_abs", res(os.symlink, os.path.join(d, "f"), "s_abs"))
out("read_through_abs", res(read_file, "s_abs"))
# Calls through an absolute symlink back into the volume (a kiln view walks
# out of the volume and in again: shutil and tempfile make such links).
write_file("g", b"12345")
out("symlink_abs_g", res(os.symlink, os.path.join(d, "g"), "s_abs_g"))
out("chmod_through_abs", res(lambda: (os.chmod("s_abs_g", 0o640),
                                      oct(os.stat("g").st_mode & 0o7777))[1]))
out("utime_through_abs", res(lambda: (os.utime("s_abs_g", ns=(10**9 + 7, 2 * 10**9 + 9)),
                                      os.stat("g").st_mtime_ns)[1]))
out("access_through_abs", res(os.access, "s_abs_g", os.R_OK))
out("lutime_link", res(lambda: (os.utime("s_abs_g", ns=(3 * 10**9, 4 * 10**9 + 1),
                                         follow_symlinks=False),
                                os.lstat("s_abs_g").st_mtime_ns,
                                os.stat("g").st_mtime_ns == 2 * 10**9 + 9)[1:]))
out("truncate_through_abs", res(lambda: (os.truncate("s_abs_g", 2), read_file("g"))[1]))
if os.getuid() == 0:
    out("lchown_link", res(lambda: (os.lchown("s_abs_g", 1000, 1000),
                                    os.lstat("s_abs_g").st_uid, os.stat("g").st_uid)[1:]))
    out("chown_through_abs", res(lambda: (os.chown("s_abs_g", 1001, 1001),
                                          os.stat("g").st_gid)[1]))
out("symlink_dir", res(os.symlink, "dir", "s_dir"))
out("create_through_dir_link", res(write_file, "s_dir/inner", b"in"))
out("read_inner", res(read_file, "dir/inner"))
out("symlink_dangling", res(os.symlink, "missing", "s_dangling"))
check("stat_dangling", os.stat, "s_dangling")
out("lstat_dangling", res(lambda: os.path.islink("s_dangling")))
check("open_dangling", os.open, "s_dangling", os.O_RDONLY)
out("create_through_dangling", res(write_file, "s_dangling", b"made"))
out("dangling_target_made", res(read_file, "missing"))
check("symlink_existing", os.symlink, "f", "s_rel")
out("loop_a", res(os.symlink, "loop_b", "loop_a"))
out("loop_b", res(os.symlink, "loop_a", "loop_b"))
check("stat_loop", os.stat, "loop_a")
check("open_loop", os.open, "loop_a", os.O_RDONLY)
check("open_nofollow_link", os.open, "s_rel", os.O_RDONLY | os.O_NOFOLLOW)
out("out_of_volume", res(os.symlink, "/proc/self/comm", "s_out"))
out("read_out_of_volume", res(lambda: len(read_file("s_out")) > 0))
out("out_dotdot", res(os.symlink, "../../../../../../../../../../etc/hostname", "s_up"))
out("read_out_dotdot", res(lambda: read_file("s_up") == read_file("/etc/hostname")))
out("unlink_link_keeps_target", res(lambda: (os.unlink("s_rel"), os.path.exists("f"))[1]))
out("rename_link", res(lambda: (os.rename("s_abs", "s_abs2"),
                                os.readlink("s_abs2") == os.path.join(d, "f"))[1]))
out("link_to_symlink", res(lambda: (os.link("s_dir", "s_dir_hard", follow_symlinks=False),
                                    os.path.islink("s_dir_hard"))[1]))
# ".." after a symlink is the parent of the link's target (physical), not the
# directory holding the link (lexical).
os.makedirs("p/q/r")
out("dotdot_link", res(os.symlink, "p/q/r", "dl"))
out("dotdot_after_link", res(lambda: sorted(os.listdir("dl/.."))))
out("dotdot_create", res(lambda: (write_file("dl/../made", b"x"), os.path.exists("p/q/made"))[1]))
out("dotdot_twice", res(lambda: os.stat("dl/../..").st_ino == os.stat("p").st_ino))
out("dotdot_abs_link", res(os.symlink, os.path.join(d, "p/q/r"), "adl"))
out("dotdot_after_abs", res(lambda: sorted(os.listdir("adl/.."))))
out("dotdot_up_link", res(os.symlink, "../p/q", "dir/up"))
out("dotdot_after_up", res(lambda: sorted(os.listdir("dir/up/.."))))
out("dotdot_chained", res(lambda: sorted(os.listdir("dir/up/r/../../q/.."))))
out("dotdot_file_link", res(os.symlink, "f", "fl"))
check("dotdot_after_file_link", os.listdir, "fl/..")
out("listing", sorted(os.listdir(".")))

libc = ctypes.CDLL(None, use_errno=True)
SYS_renameat2, AT_FDCWD, AT_SYMLINK_FOLLOW = 316, -100, 0x400


def linkat_follow(src, dst):
    # os.link() calls link(2), which does not follow /proc/self/fd's magic links.
    if libc.linkat(AT_FDCWD, src.encode(), AT_FDCWD, dst.encode(), AT_SYMLINK_FOLLOW) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


# O_TMPFILE + linkat through /proc/self/fd (what glibc's and systemd's atomic writes do).
names = sorted(os.listdir("."))
fd = res(os.open, ".", os.O_TMPFILE | os.O_RDWR, 0o600)
out("o_tmpfile", "ok" if isinstance(fd, int) else fd)
if isinstance(fd, int):
    os.write(fd, b"tmp")
    out("o_tmpfile_invisible", sorted(os.listdir(".")) == names)
    out("linkat_tmpfile", res(linkat_follow, f"/proc/self/fd/{fd}", "from_tmp"))
    os.close(fd)
    out("tmpfile_content", res(read_file, "from_tmp"))

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def renameat2(a, b, flags):
    r = libc.syscall(SYS_renameat2, AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


write_file("x", b"X")
write_file("y", b"Y")
check("noreplace_existing", renameat2, "x", "y", RENAME_NOREPLACE)
check("noreplace_new", renameat2, "x", "z", RENAME_NOREPLACE)
check("exchange", renameat2, "z", "y", RENAME_EXCHANGE)
out("exchanged", res(lambda: (read_file("z"), read_file("y"))))


def exchange_open():
    # An fd open on one name writes the file that moved to the other name.
    fd = os.open("z", os.O_WRONLY)
    try:
        renameat2("z", "y", RENAME_EXCHANGE)
        os.write(fd, b"W")
    finally:
        os.close(fd)
    return read_file("y"), read_file("z")


out("exchange_open_fd", res(exchange_open))
check("exchange_missing", renameat2, "z", "nope", RENAME_EXCHANGE)
check("exchange_file_dir", renameat2, "z", "dir", RENAME_EXCHANGE)
out("exchange_file_dir_types", (os.path.isdir("z"), os.path.isfile("dir")))
check("both_flags", renameat2, "y", "z", RENAME_EXCHANGE | RENAME_NOREPLACE)
out("errno_names_ok", errno.errorcode[errno.EEXIST])
