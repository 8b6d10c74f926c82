#!/usr/bin/env python3
"""Generate src/runtime/syscalls.c: one entry for EVERY x86-64 syscall number.

Run: scripts/runtime/gen_syscalls.py > src/runtime/syscalls.c
     scripts/runtime/gen_syscalls.py --markdown   (the table in docs/runtime.md)
Names come from the kernel's unistd_64.h plus the numbers added after the
installed headers (listed below); numbers without a syscall get "unassigned".
The action of each call says what the runtime does when the call touches a
protected file (by path or by fd); calls that touch nothing protected always
pass through unchanged.
"""
import re

HDR = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
LATER = {451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack", 454: "futex_wake",
         455: "futex_wait", 456: "futex_requeue", 457: "statmount", 458: "listmount",
         459: "lsm_get_self_attr", 460: "lsm_set_self_attr", 461: "lsm_list_modules",
         462: "mseal", 463: "setxattrat", 464: "getxattrat", 465: "listxattrat",
         466: "removexattrat", 467: "open_tree_attr", 468: "file_getattr",
         469: "file_setattr"}
MAX = 469

names = {}
for line in open(HDR):
    m = re.match(r"#define __NR_(\w+) (\d+)", line)
    if m:
        names[int(m.group(2))] = m.group(1)
for k, v in LATER.items():
    names.setdefault(k, v)

# name: (action, fd arg mask, [(dirfd_arg or -1, path_arg)], note)
# Protected fds are real kernel fds (memfd holding the plaintext), so data-path calls
# on them (read, write, mmap, sendfile, ...) are correct natively: action "pass".
S, P, R, X = "RT_SYS_SHIELD", "RT_SYS_PASS", "RT_SYS_REFUSE", "RT_SYS_RUNTIME"
T = {}
def fd(name, act, *args, note=""):
    m = 0
    for a in args:
        m |= 1 << a
    T[name] = (act, m, [], note)
def path(name, act, *pairs, fds=(), note=""):
    m = 0
    for a in fds:
        m |= 1 << a
    T[name] = (act, m, list(pairs), note)

for n in ["read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
          "preadv2", "pwritev2", "lseek", "ioctl", "flock", "readahead", "fadvise64",
          "fallocate", "sync_file_range", "ftruncate", "fstatfs", "vmsplice", "syncfs"]:
    fd(n, P, 0, note="plaintext memfd: native semantics")
fd("mmap", P, 4, note="plaintext memfd: MAP_SHARED works natively")
for n in ["sendfile", "tee", "copy_file_range"]:
    fd(n, P, 0, 1 if n != "copy_file_range" else 2, note="plaintext memfd: native")
fd("splice", P, 0, 2, note="plaintext memfd: native")
fd("close", S, 0, note="drop reference; last close flushes per --freshness")
fd("close_range", S, note="closes shield entries in the range")
fd("dup", S, 0, note="new fd shares the shield object")
fd("dup2", S, 0, 1, note="new fd shares the shield object")
fd("dup3", S, 0, 1, note="new fd shares the shield object")
fd("fcntl", S, 0, note="F_DUPFD* share the shield object; locks native")
fd("fstat", S, 0, note="identity and mode of the protected file")
fd("fsync", S, 0, note="encrypt changed chunks, commit metadata")
fd("fdatasync", S, 0, note="as fsync")
fd("fchmod", S, 0, note="mode kept by the shield")
fd("fchown", S, 0, note="accepted, ownership not stored")
fd("getdents", R, 0, note="legacy; use getdents64")
fd("getdents64", S, 0, note="directory listing of the plaintext view")
fd("fchdir", X, 0, note="into a volume directory: virtual working directory")
for n in ["fsetxattr", "fremovexattr"]:
    fd(n, R, 0, note="xattrs are not stored in volumes")
fd("fgetxattr", S, 0, note="ENODATA: volume files have no xattrs")
fd("flistxattr", S, 0, note="empty list: volume files have no xattrs")
fd("epoll_ctl", P, 2)

for n in ["open", "creat"]:
    path(n, S, (-1, 0), note="opens the plaintext view")
path("openat", S, (0, 1), note="opens the plaintext view")
path("openat2", S, (0, 1), note="as openat; resolve flags ignored")
for n in ["stat", "lstat"]:
    path(n, S, (-1, 0), note="plaintext size, shield mode")
path("newfstatat", S, (0, 1), note="plaintext size, shield mode")
path("statx", S, (0, 1), note="plaintext size, shield mode")
path("access", S, (-1, 0))
path("faccessat", S, (0, 1))
path("faccessat2", S, (0, 1))
path("truncate", S, (-1, 0), note="resizes the plaintext")
path("rename", S, (-1, 0), (-1, 1), note="both ends in one volume, else EXDEV")
path("renameat", S, (0, 1), (2, 3), note="both ends in one volume, else EXDEV")
path("renameat2", S, (0, 1), (2, 3), note="flags must be 0 on protected paths")
path("mkdir", S, (-1, 0))
path("mkdirat", S, (0, 1))
path("rmdir", S, (-1, 0))
path("unlink", S, (-1, 0))
path("unlinkat", S, (0, 1))
path("chmod", S, (-1, 0), note="mode kept by the shield")
path("fchmodat", S, (0, 1), note="mode kept by the shield")
path("fchmodat2", S, (0, 1), note="mode kept by the shield")
for n in ["chown", "lchown"]:
    path(n, S, (-1, 0), note="accepted, ownership not stored")
path("fchownat", S, (0, 1), note="accepted, ownership not stored")
for n in ["utime", "utimes"]:
    path(n, S, (-1, 0), note="accepted, times not stored")
path("futimesat", S, (0, 1), note="accepted, times not stored")
path("utimensat", S, (0, 1), fds=(0,), note="accepted, times not stored")
path("readlink", S, (-1, 0), note="protected files are never symlinks: EINVAL")
path("readlinkat", S, (0, 1), note="protected files are never symlinks: EINVAL")
path("chdir", X, (-1, 0), note="into a volume directory: virtual working directory")
path("statfs", P, (-1, 0), note="reports the backing file system")
path("link", R, (-1, 0), (-1, 1), note="hard links are not supported in volumes")
path("linkat", R, (0, 1), (2, 3), note="hard links are not supported in volumes")
path("symlink", R, (-1, 1), note="symlinks are not supported in volumes")
path("symlinkat", R, (1, 2), note="symlinks are not supported in volumes")
path("mknod", R, (-1, 0))
path("mknodat", R, (0, 1))
for n in ["setxattr", "lsetxattr", "removexattr", "lremovexattr"]:
    path(n, R, (-1, 0), note="xattrs are not stored in volumes")
for n in ["getxattr", "lgetxattr"]:
    path(n, S, (-1, 0), note="ENODATA: volume files have no xattrs")
for n in ["listxattr", "llistxattr"]:
    path(n, S, (-1, 0), note="empty list: volume files have no xattrs")
for n in ["setxattrat", "getxattrat", "listxattrat", "removexattrat", "file_getattr",
          "file_setattr"]:
    path(n, R, (0, 1), note="xattrs are not stored in volumes")
path("execve", X, (-1, 0), note="re-launch under the runtime; protected executables refused")
path("execveat", X, (0, 1), note="re-launch under the runtime; protected executables refused")
path("chroot", R, (-1, 0))
path("acct", R, (-1, 0))
path("swapon", R, (-1, 0))
path("swapoff", R, (-1, 0))
path("mount", R, (-1, 1))
path("umount2", R, (-1, 0))
path("pivot_root", R, (-1, 0), (-1, 1))
path("uselib", R, (-1, 0))
path("inotify_add_watch", R, (-1, 1), fds=(0,), note="no change notification for volumes")
path("fanotify_mark", R, (3, 4), note="no change notification for volumes")
path("name_to_handle_at", R, (0, 1), note="file handles would bypass the shield")
fd("open_by_handle_at", R, note="file handles would bypass the shield")
path("open_tree", R, (0, 1))
path("open_tree_attr", R, (0, 1))
path("fspick", R, (0, 1))
path("mount_setattr", R, (0, 1))
path("move_mount", R, (0, 1), (2, 3))
path("quotactl", R, (-1, 1))

for n, note in [("rt_sigreturn", "returns through the runtime's restorer"),
                ("rt_sigaction", "SIGSYS stays the runtime's"),
                ("rt_sigprocmask", "SIGSYS is never blocked"),
                ("rt_sigsuspend", "SIGSYS is never blocked"),
                ("rt_sigtimedwait", "SIGSYS is never waited for"),
                ("signalfd", "SIGSYS removed from the set"),
                ("signalfd4", "SIGSYS removed from the set"),
                ("clone", "threads get their own dispatch selector"),
                ("clone3", "ENOSYS: libc falls back to clone"),
                ("fork", "child inherits the fd table"),
                ("vfork", "run as fork: the runtime's handler cannot share the stack"),
                ("prctl", "PR_SET_SYSCALL_USER_DISPATCH reserved to the runtime"),
                ("getcwd", "the virtual working directory inside a volume"),
                ("io_uring_setup", "refused when volumes are mounted: rings bypass the shield"),
                ("io_uring_enter", "refused when volumes are mounted"),
                ("io_uring_register", "refused when volumes are mounted"),
                ("process_vm_writev", "allowed; cannot reach the runtime's keys "
                                      "without ptrace rights")]:
    T[n] = (X, 0, [], note)

import sys

if len(sys.argv) > 1 and sys.argv[1] == "--markdown":
    word = {S: "shield", P: "pass", R: "refuse", X: "runtime"}
    print("| nr | call | action | fd args | path args | note |")
    print("|---:|---|---|---|---|---|")
    for nr in range(MAX + 1):
        name = names.get(nr)
        if name is None:
            print(f"| {nr} | (unassigned) | pass | | | the kernel answers ENOSYS |")
            continue
        act, mask, pairs, note = T.get(name, (P, 0, [], ""))
        fds = ",".join(str(i) for i in range(6) if mask & (1 << i))
        ps = ", ".join((f"{d}:{p}" if d >= 0 else f"{p}") for d, p in pairs)
        print(f"| {nr} | `{name}` | {word[act]} | {fds} | {ps} | {note} |")
    sys.exit(0)

out = []
out.append("/* kiln runtime: what the runtime does with EVERY x86-64 system call.")
out.append(" * GENERATED by scripts/runtime/gen_syscalls.py; edit the generator, not this file.")
out.append(" *")
out.append(" * RT_SYS_PASS    the call needs nothing from the runtime (also on protected fds,")
out.append(" *                which are memfds holding the plaintext: data calls are native)")
out.append(" * RT_SYS_SHIELD  on protected paths/fds the runtime implements the call")
out.append(" * RT_SYS_REFUSE  on protected paths/fds the call fails with ENOTSUP and one")
out.append(" *                stderr line naming the call and the path; elsewhere it passes")
out.append(" * RT_SYS_RUNTIME the runtime always looks at the call (signals, threads, exec)")
out.append(" * fd_mask: bit i set when argument i is an fd; paths: (dirfd arg, path arg). */")
out.append('#include "runtime/runtime.h"')
out.append("")
out.append("const struct rt_syscall g_rt_syscalls[RT_SYSCALL_COUNT] = {")
for nr in range(MAX + 1):
    name = names.get(nr)
    if name is None:
        out.append(f'\t[{nr}] = {{ "unassigned", RT_SYS_PASS, 0, {{ {{ -1, -1 }}, {{ -1, -1 }} }},'
                   f'\n\t\t"no such call: the kernel answers ENOSYS" }},')
        continue
    act, mask, pairs, note = T.get(name, (P, 0, [], ""))
    pairs = (pairs + [(-1, -1), (-1, -1)])[:2]
    ps = ", ".join(f"{{ {d}, {p} }}" for d, p in pairs)
    out.append(f'\t[{nr}] = {{ "{name}", {act}, 0x{mask:x}, {{ {ps} }},\n\t\t"{note}" }},')
out.append("};")
missing = set(T) - set(names.values())
assert not missing, missing
out.append("")
out.append("const char *rt_syscall_name(long nr)")
out.append("{")
out.append("\tif (nr < 0 || nr > RT_SYSCALL_MAX)")
out.append('\t\treturn "unknown";')
out.append("\treturn g_rt_syscalls[nr].name;")
out.append("}")
print("\n".join(out))
