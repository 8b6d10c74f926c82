"""The one list of POSIX edge-case lines that differ from native today.

KNOWN[(case, view)] = {key: "OWNER: reason"}: a line of cases/CASE.py whose value
in VIEW differs from native while the fix is in progress on OWNER's branch (sys,
shield, pf, fuse). Strict both ways: an unlisted difference fails, and so does a
listed line that now equals native (delete it when the fix lands). docs/conformance.md
carries the same list by class for the lead.

REFUSED[(case, key)] = (value, reason): behaviour kiln refuses by design in both
views, with the errno Linux gives for a file system that does not support it.
"""

FUSE_ATIME = ("fuse: atime is relatime under kiln run; FUSE inodes are S_NOATIME in the "
              "kernel and reads are served from its page cache (keep_cache), so a read "
              "never reaches the mount to move atime")

KNOWN = {
    ("times", "mount"): {
        "atime_read_old": FUSE_ATIME,
        "atime_read_held_fd": FUSE_ATIME,
        "atime_sendfile_from": FUSE_ATIME,
        "atime_read_after_write": FUSE_ATIME,
    },
}

REFUSED = {
    # Device nodes in a protected volume would be plaintext doors to the host's
    # devices: refused with EPERM, as mknod(2) answers on a file system without
    # mknod support (docs/conformance.md, docs/runtime.md).
    ("special", "mknod_chr"): ("EPERM", "device nodes are refused in protected volumes"),
}
