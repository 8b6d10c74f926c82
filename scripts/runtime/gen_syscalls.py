#!/usr/bin/env python3
"""Generate src/runtime/syscalls.def: one entry for EVERY x86-64 syscall number.

Run: scripts/runtime/gen_syscalls.py > src/runtime/syscalls.def
     scripts/runtime/gen_syscalls.py --markdown   (the table in docs/runtime.md)

The .def file is the one table of the runtime: a list of
RT_SYSCALL(nr, name, action, handler, fd_mask, dirfd0, path0, dirfd1, path1,
supervised, note) lines that src/runtime/syscalls.c expands into the data table
(names, actions, argument positions: the CLI and the unit tests use it),
src/runtime/dispatch.c into libkiln's handler table, and src/runtime/sys/sys.h
into the handlers' declarations. `supervised` marks the calls that the seccomp
supervisor of statically linked programs traps (src/runtime/supervise.c builds
its filter from it).
Names come from the kernel's unistd_64.h plus the numbers added after the
installed headers (listed below); numbers without a syscall get "unassigned".
The action of each call says what the runtime does when the call touches a
protected file (by path or by fd); calls that touch nothing protected always
pass through unchanged.
"""
import re
import sys

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
# Protected fds are real kernel fds (opens of the volume server's plaintext memfd):
# data calls stay native, but the shield keeps the chunk state around them (fills
# before, dirty marks after: src/runtime/shield/data.c), so they are "shield" calls;
# calls that cannot change or read the file's data pass.
# The handler of a "shield" or "runtime" call is rt__sys_<name> (src/runtime/sys/),
# unless HANDLER names another; "pass" calls are issued unchanged (rt__sys_pass) and
# "refuse" calls fail with ENOTSUP and one line (rt__sys_refuse).
S, P, R, X = "SHIELD", "PASS", "REFUSE", "RUNTIME"
T = {}
HANDLER = {}
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

# The calls the seccomp supervisor of a statically linked program traps (every
# other call runs in the kernel unchanged): what src/runtime/supervise.c implements.
SUPERVISED = {"open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx",
              "access", "faccessat", "faccessat2", "unlink", "unlinkat", "rename",
              "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "truncate", "fsync",
              "fdatasync", "close", "exit_group",
              # protected directory fds (supervise_dirs.c)
              "getdents64",
              # an attested static program may not execute another (supervise.c)
              "execve", "execveat"}

for n in ["read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
          "preadv2", "pwritev2"]:
    fd(n, S, 0, note="native on the memfd; chunks filled before, marked dirty after")
    HANDLER[n] = "rt__sys_data"
for n in ["ioctl", "flock", "readahead", "fadvise64", "sync_file_range", "vmsplice"]:
    fd(n, P, 0, note="plaintext memfd: native semantics")
fd("lseek", S, 0, note="files: SEEK_DATA/SEEK_HOLE answered by the volume server from pf's "
   "holes; directory fds: the listing's position")
fd("ftruncate", S, 0, note="the volume server resizes file, memfd and chunk state")
fd("fallocate", S, 0, note="allocation native; punch/zero range by the volume server")
fd("syncfs", S, 0, note="commits the volume")
fd("mmap", S, 4, note="range filled, file never evicted while mapped; writable "
   "mappings written back at msync/munmap/exit")
for n, note in [("munmap", "a protected mapping is unregistered (written back if writable)"),
                ("mremap", "a protected mapping follows; a grown one is filled"),
                ("msync", "MS_SYNC of a writable protected mapping commits it")]:
    T[n] = (X, 0, [], note)
    HANDLER[n] = "rt__sys_maps"
for n in ["sendfile", "copy_file_range"]:
    fd(n, S, 0, 1 if n != "copy_file_range" else 2,
       note="from a protected file: native per filled window; into one: copied")
    HANDLER[n] = "rt__sys_transfer"
fd("splice", S, 0, 2, note="from a protected file: native per filled window; into one "
   "from a pipe: through the write path")
HANDLER["splice"] = "rt__sys_transfer"
fd("tee", P, 0, 1, note="pipes only")
fd("close", S, 0, note="drop reference; last close flushes per --freshness")
fd("close_range", S, note="closes shield entries in the range")
fd("dup", S, 0, note="new fd shares the shield object")
fd("dup2", S, 0, 1, note="new fd shares the shield object")
fd("dup3", S, 0, 1, note="new fd shares the shield object")
HANDLER["dup2"] = HANDLER["dup3"] = "rt__sys_dup"
fd("fcntl", S, 0, note="F_DUPFD* share the shield object; locks native")
fd("fstat", S, 0, note="identity and mode of the protected file")
fd("fsync", S, 0, note="encrypt changed chunks, commit metadata")
fd("fdatasync", S, 0, note="as fsync")
fd("fchmod", S, 0, note="mode kept by the shield")
fd("fchown", S, 0, note="owner kept by the volume; the server checks who may change it")
fd("getdents", R, 0, note="legacy; use getdents64")
fd("getdents64", S, 0, note="directory listing of the plaintext view; /proc/self/fd "
                            "without the runtime's fds")
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
path("renameat2", S, (0, 1), (2, 3), note="RENAME_NOREPLACE, RENAME_EXCHANGE in volumes; "
     "RENAME_WHITEOUT EINVAL")
path("mkdir", S, (-1, 0))
path("mkdirat", S, (0, 1))
path("rmdir", S, (-1, 0))
path("unlink", S, (-1, 0))
path("unlinkat", S, (0, 1))
path("chmod", S, (-1, 0), note="mode kept by the shield")
path("fchmodat", S, (0, 1), note="mode kept by the shield")
path("fchmodat2", S, (0, 1), note="mode kept by the shield")
for n in ["chown", "lchown"]:
    path(n, S, (-1, 0), note="owner kept by the volume; the server checks who may change it")
path("fchownat", S, (0, 1), note="owner kept by the volume; the server checks who may change it")
for n in ["utime", "utimes"]:
    path(n, S, (-1, 0), note="atime and mtime stored (pf), ctime moves")
path("futimesat", S, (0, 1), note="atime and mtime stored (pf), ctime moves")
path("utimensat", S, (0, 1), fds=(0,), note="atime and mtime stored with ns (UTIME_NOW, UTIME_OMIT), ctime moves")
path("readlink", S, (-1, 0), note="a symlink's stored target; /proc/self/fd/N: the program's path")
path("readlinkat", S, (0, 1), note="a symlink's stored target; /proc/self/fd/N: the program's path")
path("chdir", X, (-1, 0), note="into a volume directory: virtual working directory")
path("statfs", S, (-1, 0), note="the volume's numbers (its store's file system)")
fd("fstatfs", S, 0, note="the volume's numbers (its store's file system)")
path("link", S, (-1, 0), (-1, 1), note="hard link within a volume (pf v2); across: EXDEV")
path("linkat", S, (0, 1), (2, 3), fds=(0,), note="hard link within a volume; AT_EMPTY_PATH and /proc/self/fd/N of a protected fd (O_TMPFILE)")
path("symlink", S, (-1, 1), note="a symlink in the volume, target stored as given")
path("symlinkat", S, (1, 2), note="a symlink in the volume, target stored as given")
path("mknod", S, (-1, 0), note="FIFO and socket nodes in the volume (their kernel objects in the volume server's private directory); devices EPERM")
path("mknodat", S, (0, 1), note="FIFO and socket nodes in the volume (their kernel objects in the volume server's private directory); devices EPERM")
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

for n, note in [("rt_sigaction", "SIGSYS, SIGSEGV and SIGBUS stay the runtime's"),
                ("rt_sigprocmask", "SIGSYS, SIGSEGV and SIGBUS are never blocked"),
                ("clone3", "ENOSYS: libc falls back to clone"),
                ("prctl", "PR_SET_SYSCALL_USER_DISPATCH reserved to the runtime"),
                ("getcwd", "the virtual working directory inside a volume"),
                ("io_uring_setup", "refused when volumes are mounted: rings bypass the shield"),
                ("bind", "AF_UNIX path in a volume: a socket node; the kernel's socket in "
                         "the volume server's private directory under its inode number"),
                ("connect", "AF_UNIX path in a volume: to the node's socket"),
                ("sendto", "AF_UNIX path in a volume: to the node's socket"),
                ("getsockname", "the program's path for a socket bound in a volume"),
                ("getpeername", "the program's path for a socket bound in a volume")]:
    T[n] = (X, 0, [], note)
T["exit_group"] = (X, 0, [], "what this process wrote is committed; the volume's last "
                  "client waits for its server's close")
# Seen by the SIGSYS handler itself (sud.c) before any dispatch; through the
# syscall(2) wrapper they are issued unchanged.
for n, note in [("rt_sigreturn", "trapped: returns through the runtime's restorer (sud.c)"),
                ("clone", "trapped: threads get their own dispatch selector, a fork child "
                          "its own volume state (sud.c)"),
                ("vfork", "trapped: run as fork, the runtime's handler cannot share the "
                          "stack (sud.c)")]:
    T[n] = (X, 0, [], note)
    HANDLER[n] = "rt__sys_pass"
# The caller's credentials go with every request about a volume path (cred.c
# keeps them per thread): every call that changes them is seen.
for n in ["setuid", "setgid", "setreuid", "setregid", "setgroups", "setresuid", "setresgid",
          "setfsuid", "setfsgid", "capset"]:
    T[n] = (X, 0, [], "credentials for permission checks in volumes read again")
    HANDLER[n] = "rt__sys_setcred"
for n, note in [("rt_sigsuspend", "SIGSYS is never blocked, so never left pending"),
                ("rt_sigtimedwait", "SIGSYS is never blocked, so never waited for"),
                ("signalfd", "SIGSYS is never blocked, so a signalfd never reads it"),
                ("signalfd4", "SIGSYS is never blocked, so a signalfd never reads it"),
                ("fork", "libc forks with clone; the runtime's pthread_atfork handlers set the child up"),
                ("io_uring_enter", "no ring exists while volumes are mounted"),
                ("io_uring_register", "no ring exists while volumes are mounted"),
                ("process_vm_writev", "allowed; cannot reach the runtime's keys "
                                      "without ptrace rights")]:
    T[n] = (P, 0, [], note)

def handler(name, act):
    if act == P:
        return "rt__sys_pass"
    if act == R:
        return "rt__sys_refuse"
    return HANDLER.get(name, "rt__sys_" + name)


missing = set(T) - set(names.values())
assert not missing, missing

if len(sys.argv) > 1 and sys.argv[1] == "--markdown":
    word = {S: "shield", P: "pass", R: "refuse", X: "runtime"}
    print("| nr | call | action | handler | fd args | path args | static | note |")
    print("|---:|---|---|---|---|---|---|---|")
    for nr in range(MAX + 1):
        name = names.get(nr)
        if name is None:
            print(f"| {nr} | (unassigned) | pass | | | | | the kernel answers ENOSYS |")
            continue
        act, mask, pairs, note = T.get(name, (P, 0, [], ""))
        fds = ",".join(str(i) for i in range(6) if mask & (1 << i))
        ps = ", ".join((f"{d}:{p}" if d >= 0 else f"{p}") for d, p in pairs)
        h = handler(name, act)
        h = f"`{h}`" if act in (S, X) and h != "rt__sys_pass" else ""
        sv = "trap" if name in SUPERVISED else ""
        print(f"| {nr} | `{name}` | {word[act]} | {h} | {fds} | {ps} | {sv} | {note} |")
    sys.exit(0)

out = []
out.append("/* kiln runtime: what the runtime does with EVERY x86-64 system call.")
out.append(" * GENERATED by scripts/runtime/gen_syscalls.py; edit the generator, not this file.")
out.append(" *")
out.append(" * RT_SYSCALL(nr, name, action, handler, fd_mask, dirfd0, path0, dirfd1, path1,")
out.append(" *            supervised, note)")
out.append(" * PASS    the call needs nothing from the runtime, also on protected fds")
out.append(" *         (opens of the volume server's plaintext memfd)")
out.append(" * SHIELD  on protected paths/fds the handler implements the call")
out.append(" * REFUSE  on protected paths/fds the call fails with ENOTSUP and one")
out.append(" *         stderr line naming the call and the path; elsewhere it passes")
out.append(" * RUNTIME the handler always looks at the call (signals, threads, exec)")
out.append(" * fd_mask: bit i set when argument i is an fd; (dirfd, path) argument pairs,")
out.append(" * -1 when absent; supervised: trapped by the supervisor of static programs.")
out.append(" * Expanded by syscalls.c (data), dispatch.c (handlers), sys/sys.h (declarations). */")
for nr in range(MAX + 1):
    name = names.get(nr)
    if name is None:
        out.append(f'RT_SYSCALL({nr}, "unassigned", PASS, rt__sys_pass, 0x0, -1, -1, -1, -1, 0,\n'
                   f'\t"no such call: the kernel answers ENOSYS")')
        continue
    act, mask, pairs, note = T.get(name, (P, 0, [], ""))
    pairs = (pairs + [(-1, -1), (-1, -1)])[:2]
    ps = ", ".join(f"{d}, {p}" for d, p in pairs)
    sv = 1 if name in SUPERVISED else 0
    out.append(f'RT_SYSCALL({nr}, "{name}", {act}, {handler(name, act)}, 0x{mask:x}, {ps}, {sv},'
               f'\n\t"{note}")')
print("\n".join(out))
