"""Timestamps: atime/mtime/ctime stored with nanoseconds, ctime advancing on every
change of the inode (chmod, chown, link, rename, truncate, write, utime)."""
import os

from caselib import base_dir, compare_times, out, res, tick, write_file

base_dir("times")
before_create = os.stat(".").st_mtime_ns
tick()
write_file("f", b"hello")
st = os.stat("f")
out("dir_mtime_on_create", compare_times(before_create, os.stat(".").st_mtime_ns))
out("ctime_eq_mtime_at_create", st.st_ctime_ns == st.st_mtime_ns)

os.utime("f", ns=(1_000_000_123, 2_000_000_456))
st = os.stat("f")
out("utime_atime_ns", st.st_atime_ns)
out("utime_mtime_ns", st.st_mtime_ns)
with open("f", "rb") as fh:
    out("fstat_atime_ns", os.fstat(fh.fileno()).st_atime_ns)
os.utime("f", ns=(3_000_000_000, 4_000_000_007))
out("utime_again", f"{os.stat('f').st_atime_ns} {os.stat('f').st_mtime_ns}")
fd = os.open("f", os.O_RDONLY)
os.utime(fd, ns=(5_000_000_001, 6_000_000_002))
os.close(fd)
out("futimens", f"{os.stat('f').st_atime_ns} {os.stat('f').st_mtime_ns}")
os.utime("f", ns=(7_000_000_000, 8_000_000_000), follow_symlinks=True)


def step(name, fn, watch=("ctime",)):
    before = os.stat("f")
    tick()
    r = res(fn)
    if isinstance(r, str) and r != "ok":
        for w in watch:
            out(f"{name}_{w}", r)
        return
    after = os.stat("f")
    for w in watch:
        out(f"{name}_{w}", compare_times(getattr(before, f"st_{w}_ns"),
                                          getattr(after, f"st_{w}_ns")))


step("utime", lambda: os.utime("f", ns=(9_000_000_000, 9_000_000_000)))
step("chmod", lambda: os.chmod("f", 0o600))
step("chown", lambda: os.chown("f", 1000, 1000))
step("link", lambda: os.link("f", "f2"))
step("unlink_other_name", lambda: os.unlink("f2"))
step("rename", lambda: os.rename("f", "g") or os.rename("g", "f"))
step("truncate", lambda: os.truncate("f", 2), ("ctime", "mtime"))
step("write", lambda: write_file("f", b"again"), ("ctime", "mtime"))


def append():
    with open("f", "ab") as fh:
        fh.write(b"more")


step("append", append, ("ctime", "mtime"))
step("read", lambda: open("f", "rb").read(), ("ctime", "mtime"))

now_before = os.stat("f")
tick()
os.utime("f")
st = os.stat("f")
out("touch_mtime", compare_times(now_before.st_mtime_ns, st.st_mtime_ns))
out("touch_atime_eq_mtime", st.st_atime_ns == st.st_mtime_ns)
out("touch_not_before_ctime_of_create", st.st_mtime_ns >= now_before.st_ctime_ns)

tick()
t0 = os.stat(".")
write_file("new")
t1 = os.stat(".")
out("dir_mtime_on_create2", compare_times(t0.st_mtime_ns, t1.st_mtime_ns))
tick()
os.unlink("new")
out("dir_mtime_on_unlink", compare_times(t1.st_mtime_ns, os.stat(".").st_mtime_ns))
os.mkdir("d")
os.utime("d", ns=(11_000_000_011, 12_000_000_012))
out("dir_utime", f"{os.stat('d').st_atime_ns} {os.stat('d').st_mtime_ns}")

# atime is relatime, as Linux's default mount option: a read moves it when it
# is not after the last modification or change (or is a day old), then not
# again; whether the data comes from disk or from what a process holds open.
write_file("a", b"data" * 1000)


def atime_step(name, fn):
    before = os.stat("a").st_atime_ns
    tick()
    fn()
    out(f"atime_{name}", compare_times(before, os.stat("a").st_atime_ns))


def read_a():
    with open("a", "rb") as fh:
        fh.read()


os.utime("a", ns=(1_000_000_000, 2_000_000_000))
atime_step("read_old", read_a)
atime_step("read_again", read_a)
held = os.open("a", os.O_RDONLY)
os.utime("a", ns=(1_000_000_000, 2_000_000_000))
atime_step("read_held_fd", lambda: os.pread(held, 100, 0))
atime_step("read_held_again", lambda: os.pread(held, 100, 0))
os.utime("a", ns=(1_000_000_000, 2_000_000_000))
atime_step("read_zero_bytes", lambda: os.pread(held, 0, 0))
os.utime("a", ns=(1_000_000_000, 2_000_000_000))
r_, w_ = os.pipe()
atime_step("sendfile_from", lambda: os.sendfile(w_, held, 0, 100))
os.close(r_)
os.close(w_)
os.utime("a", ns=(1_000_000_000, 2_000_000_000))
noatime = os.open("a", os.O_RDONLY | os.O_NOATIME)
atime_step("read_noatime", lambda: os.pread(noatime, 100, 0))
os.close(noatime)
tick()
write_file("a", b"changed")
atime_step("read_after_write", lambda: os.pread(held, 100, 0))
os.close(held)
