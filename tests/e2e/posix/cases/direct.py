"""O_DIRECT: accepted on protected files and served through the cache (issue 10):
aligned writes and reads, the flag kept (F_GETFL), a buffered descriptor of the same
file sees what went through the direct one, and the reverse; O_DIRECT with O_CREAT,
O_TRUNC and O_APPEND."""
import fcntl
import mmap
import os

from caselib import base_dir, check, out, res

base_dir("direct")
KiB = 1 << 10


def aligned(size, byte):
    buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT wants on most file systems
    buf.write(bytes([byte]) * size)
    return buf


fd = os.open("d", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
out("flag_kept", bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
out("write_aligned", res(os.pwritev, fd, [aligned(8 * KiB, 0x61)], 0))
out("write_aligned_at_64k", res(os.pwritev, fd, [aligned(4 * KiB, 0x62)], 64 * KiB))
out("size", os.fstat(fd).st_size)
rb = aligned(8 * KiB, 0)
out("read_aligned", res(os.preadv, fd, [rb], 0))
out("read_back", bytes(rb[:2]) + bytes(rb[-2:]))
hole = aligned(4 * KiB, 0xff)
out("read_hole", res(os.preadv, fd, [hole], 32 * KiB))
out("hole_zero", bytes(hole) == bytes(4 * KiB))
check("fsync", os.fsync, fd)

# Buffered and direct descriptors of one file agree both ways.
b = os.open("d", os.O_RDWR)
out("buffered_sees_direct", os.pread(b, 2, 64 * KiB))
os.pwrite(b, b"Z" * (4 * KiB), 4 * KiB)
rb2 = aligned(4 * KiB, 0)
os.preadv(fd, [rb2], 4 * KiB)
out("direct_sees_buffered", bytes(rb2[:2]))
os.close(b)
os.close(fd)

fd = os.open("d", os.O_WRONLY | os.O_TRUNC | os.O_DIRECT)
out("size_after_trunc", os.fstat(fd).st_size)
os.close(fd)
fd = os.open("d", os.O_WRONLY | os.O_APPEND | os.O_DIRECT)
os.writev(fd, [aligned(4 * KiB, 0x63)])
os.writev(fd, [aligned(4 * KiB, 0x64)])
out("size_after_appends", os.fstat(fd).st_size)
os.close(fd)
with open("d", "rb") as f:
    data = f.read()
out("appended", data[:1] + data[4 * KiB:4 * KiB + 1])
