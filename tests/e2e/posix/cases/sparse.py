"""Sparse files: holes stay holes (no data stored), SEEK_DATA/SEEK_HOLE, fallocate
(allocate, punch hole), ftruncate up, offsets past 4 GiB."""
import ctypes
import os

from caselib import base_dir, check, out, res

base_dir("sparse")
MiB = 1 << 20
fd = os.open("s", os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"head", 0)
os.pwrite(fd, b"tail", 64 * MiB)
os.fsync(fd)
st = os.fstat(fd)
out("size", st.st_size)
out("allocated_under_1MiB", st.st_blocks * 512 < MiB)
out("hole_reads_zero", os.pread(fd, 8, 32 * MiB) == bytes(8))
out("seek_data_0", res(os.lseek, fd, 0, os.SEEK_DATA))
out("seek_hole_0", res(os.lseek, fd, 0, os.SEEK_HOLE))
out("seek_data_middle", res(os.lseek, fd, 32 * MiB, os.SEEK_DATA))
out("seek_hole_tail", res(os.lseek, fd, 64 * MiB, os.SEEK_HOLE))
check("seek_data_past_end", os.lseek, fd, 65 * MiB, os.SEEK_DATA)
check("seek_hole_past_end", os.lseek, fd, 65 * MiB, os.SEEK_HOLE)
os.close(fd)

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


fd = os.open("p", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"\xaa" * (4 * MiB))
os.fsync(fd)
check("punch_hole", fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MiB, MiB)
out("punched_reads_zero", os.pread(fd, 4096, MiB + 4096) == bytes(4096))
out("around_punch_kept", os.pread(fd, 1, MiB - 1) + os.pread(fd, 1, 2 * MiB) == b"\xaa\xaa")
out("size_after_punch", os.fstat(fd).st_size)
out("seek_hole_after_punch", res(os.lseek, fd, 0, os.SEEK_HOLE))
out("seek_data_in_punch", res(os.lseek, fd, MiB, os.SEEK_DATA))
check("punch_without_keep_size", fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)
check("fallocate_extend", fallocate, fd, 0, 0, 8 * MiB)
out("size_after_fallocate", os.fstat(fd).st_size)
check("fallocate_keep_size", fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 16 * MiB)
out("size_after_keep_size", os.fstat(fd).st_size)
check("posix_fallocate", os.posix_fallocate, fd, 0, 9 * MiB)
out("size_after_posix_fallocate", os.fstat(fd).st_size)
check("fallocate_bad_mode", fallocate, fd, 0x100000, 0, 1)
os.close(fd)

fd = os.open("t", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 256 * MiB)
out("truncate_up_sparse", os.fstat(fd).st_blocks * 512 < MiB)
out("truncate_up_zero", os.pread(fd, 16, 128 * MiB) == bytes(16))
os.close(fd)

fd = os.open("big", os.O_RDWR | os.O_CREAT, 0o644)
out("write_past_4GiB", res(os.pwrite, fd, b"big", 5 << 30))
out("big_size", os.fstat(fd).st_size)
out("big_read", os.pread(fd, 3, 5 << 30))
out("big_sparse", os.fstat(fd).st_blocks * 512 < MiB)
os.close(fd)
