"""statvfs/fstatvfs answer for a volume path with sane numbers."""
import os

from caselib import base_dir, out, res, write_file

base_dir("statvfs")
write_file("f", b"x")
st = res(os.statvfs, ".")
out("statvfs", "ok" if not isinstance(st, str) else st)
if not isinstance(st, str):
    out("bsize_positive", st.f_bsize > 0)
    out("blocks_positive", st.f_blocks > 0)
    out("bfree_le_blocks", st.f_bavail <= st.f_bfree <= st.f_blocks)
    out("namemax", st.f_namemax)
fd = os.open("f", os.O_RDONLY)
fst = res(os.fstatvfs, fd)
out("fstatvfs", "ok" if not isinstance(fst, str) else fst)
os.close(fd)
out("statvfs_file", "ok" if not isinstance(res(os.statvfs, "f"), str) else "error")
out("statvfs_missing", res(os.statvfs, "missing"))
