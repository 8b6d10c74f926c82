"""The one list of POSIX edge-case lines that differ from native today.

KNOWN[(case, view)] = {key: "OWNER: reason"}: a line of cases/CASE.py whose value
in VIEW differs from native while the fix is in progress on OWNER's branch (sys,
shield, pf, fuse). Strict both ways: an unlisted difference fails, and so does a
listed line that now equals native (delete it when the fix lands). docs/conformance.md
carries the same list by class for the lead.

REFUSED[(case, key)] = (value, reason): behaviour kiln refuses by design in both
views, with the errno Linux gives for a file system that does not support it.
"""

KNOWN = {
    ('perms', 'run'): dict.fromkeys([
        'mode_after',
    ], 'pf: the mode of an open file after chmod by another process (stat of an open file '
       'reads the memfd node; pf v2 attributes in the state segment)'),
    ('times', 'run'): dict.fromkeys([
        'chown_ctime', 'link_ctime', 'unlink_other_name_ctime',
    ], 'sys: chown stored; nodes: link(2) in volumes'),
    ('inode', 'run'): dict.fromkeys([
        'link', 'link_same_ino', 'nlink_after_unlink', 'nlink_two',
    ], 'nodes: hard links in volumes (server op LINK)'),
    ('links', 'run'): dict.fromkeys([
        'create_through_dir_link', 'dangling_target_made', 'link',
        'link_existing', 'link_shares_data', 'link_survives',
        'link_to_symlink', 'link_unlink_first', 'linkat_tmpfile', 'listing', 'loop_a', 'loop_b',
        'lstat_dangling', 'lstat_is_link', 'o_tmpfile', 'o_tmpfile_invisible', 'open_loop',
        'open_nofollow_link', 'out_dotdot', 'out_of_volume', 'read_inner', 'read_out_dotdot',
        'read_out_of_volume', 'read_through_abs', 'read_through_rel', 'readlink_rel',
        'rename_link', 'stat_loop', 'stat_through_size', 'symlink_abs', 'symlink_dangling',
        'symlink_dir', 'symlink_existing', 'symlink_rel', 'tmpfile_content',
        'unlink_link_keeps_target',
    ], 'sys: symlink, link, O_TMPFILE, renameat2 through volumes (pf v2 links and symlinks)'),
    ('special', 'run'): dict.fromkeys([
        'fifo_data', 'fifo_is_fifo', 'fifo_listed', 'fifo_size', 'getsockname_tail',
        'leftovers', 'mkfifo', 'mkfifo_existing', 'recv_dgram', 'sock_data',
        'sock_is_socket', 'sock_listed', 'unlink_fifo', 'unlink_sock',
    ], 'sys: mkfifo and AF_UNIX bind inside volumes (pf v2 special nodes)'),
    ('efault', 'run'): dict.fromkeys([
        'readlink_buf', 'setup_symlink',
    ], 'sys: symlink and readlink in volumes (pf v2 symlinks); the probe needs a link'),
}

REFUSED = {
    # Device nodes in a protected volume would be plaintext doors to the host's
    # devices: refused with EPERM, as mknod(2) answers on a file system without
    # mknod support (docs/conformance.md, docs/runtime.md).
    ("special", "mknod_chr"): ("EPERM", "device nodes are refused in protected volumes"),
}
