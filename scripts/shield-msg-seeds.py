#!/usr/bin/env python3
"""Write seeds for fuzz/fuzz_rt_shield_msg.c: one packet per volume-server op
in the layout of src/runtime/shield/proto.c (header, fixed fields, strings,
credentials). Run from the repository root when proto.h gains an op:
    scripts/shield-msg-seeds.py fuzz/corpus/rt_shield_msg
Existing seeds with other names are left alone."""
import os
import struct
import sys

# enum rt_op in src/runtime/shield/proto.h (order matters).
OPS = ["HELLO", "AUTH", "OPEN", "ATTACH", "RELEASE", "FILL", "FSYNC", "SYNCALL",
       "TRUNCATE", "FALLOCATE", "STAT", "UNLINK", "MKDIR", "RENAME", "CHMOD",
       "UTIMES", "READDIR", "MAP", "UNMAP", "WRITEBACK", "GROW", "CHOWN", "SEEK",
       "LINK", "SYMLINK", "READLINK", "MKNOD", "ESCAPE", "STREAM", "WSTREAM"]
OP = {name: i + 1 for i, name in enumerate(OPS)}


def cred(uid=1000, gid=1000, groups=(1000, 27)):
    return struct.pack("<III", uid, gid, len(groups)) + b"".join(
        struct.pack("<I", g) for g in groups)


def msg(op, flags=0, mode=0, pid=1234, fid=0, a=0, b=0, strs=None, uid=1000, tail=b""):
    body = struct.pack("<IIIIQQQ", flags, mode, pid, 0, fid, a, b) + tail
    if strs is not None:
        body += b"".join(s + b"\0" for s in strs) + cred(uid=uid)
    return struct.pack("<II", OP[op], len(body)) + body


SEEDS = {
    # link(2) by path and linkat(AT_EMPTY_PATH) of an open file (id, no from)
    "link": msg("LINK", strs=[b"dir/a", b"dir/b"]),
    "link_follow_fd": msg("LINK", flags=0x400, fid=7, strs=[b"", b"b"]),
    "symlink": msg("SYMLINK", strs=[b"../target with space", b"d/link"]),
    "symlink_abs": msg("SYMLINK", strs=[b"/etc/passwd", b"l"], uid=65534),
    "readlink": msg("READLINK", strs=[b"d/link"]),
    "mknod_fifo": msg("MKNOD", mode=0o010644, strs=[b"fifo"]),
    "mknod_sock": msg("MKNOD", mode=0o140755, strs=[b"d/sock"]),
    "mknod_chr": msg("MKNOD", mode=0o020600, strs=[b"dev"]),  # refused: EPERM
    "escape": msg("ESCAPE", strs=[b"d/link/x/y"]),
    "escape_nofollow": msg("ESCAPE", flags=1, strs=[b"d/link"]),
    "seek_data": msg("SEEK", flags=3, fid=9, a=4096),          # SEEK_DATA
    "seek_hole": msg("SEEK", flags=4, fid=9, a=(1 << 32) + 1),  # SEEK_HOLE
    "chown_fd": msg("CHOWN", fid=5, a=0, b=0xffffffff, strs=[b""]),
    "exchange": msg("RENAME", flags=2, strs=[b"a", b"b/c"]),   # RENAME_EXCHANGE
    "noreplace": msg("RENAME", flags=1, strs=[b"x", b"y"]),    # RENAME_NOREPLACE
    "utimes_now": msg("UTIMES", flags=0x5, fid=0, strs=[b"f"]),
    "utimes_omit": msg("UTIMES", flags=0x2, a=0, b=1_700_000_000_123_456_789,
                       strs=[b"f"]),
    # statfs(2) asks no server op (the volume's store answers, stat.c);
    # a readdir and a truncate by path cover the remaining string ops.
    "readdir": msg("READDIR", a=3, strs=[b"d"]),
    "truncate_path": msg("TRUNCATE", a=1 << 33, strs=[b"big"]),
    "fallocate": msg("FALLOCATE", flags=0x3, fid=4, a=0, b=65536),
    "grow": msg("GROW", fid=4, a=1 << 20),
    "syncall": msg("SYNCALL"),
    "attach": msg("ATTACH", flags=1, fid=3),
    "release": msg("RELEASE", fid=3),
    "fsync": msg("FSYNC", flags=1, fid=3),
    "unlink_dir": msg("UNLINK", flags=0x200, strs=[b"d/sub"]),  # AT_REMOVEDIR
    "mkdir": msg("MKDIR", mode=0o755, strs=[b"d/new"]),
    "chmod": msg("CHMOD", mode=0o4755, strs=[b"f"]),
    "map": msg("MAP", fid=3, a=1),
    "unmap": msg("UNMAP", fid=3, a=1),
    "writeback": msg("WRITEBACK"),
    # the tags of chunks 256..1279, with the hand-over (RT_STREAM_KEY)
    "stream": msg("STREAM", flags=1, fid=3, a=256, b=1024),
    # reserve chunks 1024..1279 with the hand-over; their tags (RT_WSTREAM_DONE);
    # cancel
    "wstream": msg("WSTREAM", flags=1, fid=3, a=1024, b=256),
    "wstream_done": msg("WSTREAM", flags=2, fid=3, a=1024, b=4,
                        tail=bytes(range(64))),
    "wstream_cancel": msg("WSTREAM", flags=4, fid=3, a=1024, b=256),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/rt_shield_msg"
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
