"""Issue 16 item 6: whoever controls the disk under a volume plants symlinks,
FIFOs and directories where kiln keeps its own files (`.kiln` itself, the
metadata, backing files, journals, tag lists, the version file), hoping kiln
follows them with its own uid (it truncated a target to 0 bytes and wrote GCM
tags into another) or blocks on them.

The names are not picked by hand: each step of a real workload (kiln fs init,
put, a program under `kiln run --volume` that overwrites, creates, renames and
fsyncs, kiln fs cat and verify) runs under strace, which lists every file it
opens, creates, renames or removes in the volume and the version file. Then:

- every open there carries O_NOFOLLOW and O_NONBLOCK (both storage layers);
- for every name a step opens that an attacker can know in advance (it exists
  before the step, or the step opens it again when run twice from the same
  state), the step is replayed from that state with a symlink to a file
  outside, a FIFO, a directory and (as root) a device planted at the name: it
  must fail with a message naming the problem, leave the symlink's target
  untouched, and not hang. Names only a random id gives (new backing files) are opened with
  O_CREAT|O_EXCL, which never follows a planted entry.
"""
import os
import re
import shutil
import stat
import subprocess

import pytest

from kilnenv import BUILD

KILN = str(BUILD / "kiln")
TARGET_TEXT = b"precious file outside the volume\n"
PROGRAM = r"""
import os, sys
d = sys.argv[1]
with open(os.path.join(d, "big"), "r+b") as f:
    f.seek(4096 * 3)
    f.write(b"x" * 5000)
    f.flush()
    os.fsync(f.fileno())
with open(os.path.join(d, "new.txt"), "wb") as f:
    f.write(b"new file\n")
    os.fsync(f.fileno())
os.rename(os.path.join(d, "new.txt"), os.path.join(d, "renamed.txt"))
print(len(open(os.path.join(d, "big"), "rb").read()))
"""
OPEN_RE = re.compile(r'^(\d+\s+)?(open|openat|openat2|creat)\((?:(\d+)<([^>]*)>|AT_FDCWD(?:<[^>]*>)?), '
                     r'"([^"]*)", ([^)]*)\)')


def steps(vol, key, src, python):
    """The workload: (name, argv). Each step starts from the state the
    previous one left."""
    return [
        ("init", [KILN, "fs", "init", vol, "--key-file", key]),
        ("put", [KILN, "fs", "put", vol, "/big", "--from", src, "--key-file", key]),
        ("run", [KILN, "run", "--volume", f"{vol}={key}", "--", python, "-c", PROGRAM, vol]),
        ("cat", [KILN, "fs", "cat", vol, "/big", "--key-file", key]),
        ("verify", [KILN, "fs", "verify", vol, "--key-file", key]),
    ]


class World:
    """A volume, its key and version file in one directory that can be saved
    and restored (the attacker replays a step from a known state)."""

    def __init__(self, root):
        self.root = root
        self.vol = str(root / "vol")
        self.key = str(root / "vol.key")

    # The last step's volume server may still be exiting while we copy or
    # delete the tree; it removes its own .kiln/server file then. A file that
    # vanishes under us is gone either way (CI: FileNotFoundError 'server').
    @staticmethod
    def _copy(src, dst):
        try:
            shutil.copy2(src, dst)
        except FileNotFoundError:
            pass

    @staticmethod
    def _gone(func, path, exc):
        if not issubclass(exc[0], FileNotFoundError):
            raise exc[1]

    def save(self, to):
        shutil.copytree(self.root, to, symlinks=True, copy_function=self._copy)

    def restore(self, frm):
        shutil.rmtree(self.root, onerror=self._gone)
        shutil.copytree(frm, self.root, symlinks=True, copy_function=self._copy)


def traced(argv, log, timeout=120):
    # LeakSanitizer cannot run under ptrace (a sanitized build in make check).
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return subprocess.run(["strace", "-f", "-qq", "-y", "-s", "4096", "-o", str(log),
                           "-e", "trace=open,openat,openat2,creat,rename,renameat,renameat2,"
                                 "unlink,unlinkat,mkdir,mkdirat,inotify_add_watch",
                           *argv], capture_output=True, encoding="utf-8", errors="replace",
                          timeout=timeout, env=env)


def own_names(log, world):
    """(name, flags) of every open of kiln's own files in the trace; name is
    relative to the world root ("vol/.kiln/meta", "vol/.kiln", "vol.key.version")."""
    root = str(world.root) + "/"
    out = []
    for line in open(log):
        m = OPEN_RE.match(line)
        if not m:
            continue
        base, path, flags = m.group(4), m.group(5), m.group(6)
        full = path if path.startswith("/") else (base or os.getcwd()) + "/" + path
        full = os.path.normpath(full)
        if not full.startswith(root):
            continue
        rel = full[len(root):]
        if rel.startswith("vol/.kiln") or (rel.startswith("vol.key.") and rel != "vol.key"):
            out.append((rel, flags))
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Run the workload once under strace, saving the state before each step
    and each step's opens (twice from the same state: what both runs open is
    predictable for an attacker)."""
    if not shutil.which("strace"):
        pytest.fail("strace is needed (scripts/install-deps.sh installs it)")
    base = tmp_path_factory.mktemp("links")
    world = World(base / "world")
    world.root.mkdir()
    src = base / "big.src"
    src.write_bytes(os.urandom(4096 * 20 + 123))
    python = os.path.realpath("/usr/bin/python3")
    record = []
    for i, (name, argv) in enumerate(steps(world.vol, world.key, str(src), python)):
        before = base / f"before-{i}"
        world.save(before)
        runs = []
        for attempt in range(2):
            if attempt:
                world.restore(before)
            log = base / f"trace-{i}-{attempt}"
            p = traced(argv, log)
            assert p.returncode == 0, f"step {name}: {p.stderr}"
            runs.append(own_names(log, world))
        record.append({"step": name, "argv": argv, "before": before,
                       "opens": runs[0] + runs[1],
                       "names": sorted({n for n, _ in runs[0]} & {n for n, _ in runs[1]})})
    names = {n for s in record for n in s["names"]}
    dirs = {n for n in names if os.path.isdir(world.root / n)}
    return {"world": world, "steps": record, "base": base, "dirs": dirs}


def test_every_open_is_safe(recorded):
    """Both storage layers (kiln fs: pf's; kiln run: the runtime's) and the
    version file: no open of kiln's own files follows a symlink or can block."""
    seen = 0
    for s in recorded["steps"]:
        for name, flags in s["opens"]:
            # O_CREAT|O_EXCL never opens an existing entry (a temporary name).
            safe = ("O_NOFOLLOW" in flags and "O_NONBLOCK" in flags) or \
                ("O_CREAT" in flags and "O_EXCL" in flags)
            assert safe, (s["step"], name, flags)
            seen += 1
    steps_with_opens = {s["step"] for s in recorded["steps"] if s["opens"]}
    assert steps_with_opens == {"init", "put", "run", "cat", "verify"}
    assert seen > 20


def test_every_name_is_recorded(recorded):
    """The enumeration found the kinds of names the code uses."""
    names = {n for s in recorded["steps"] for n in s["names"]}
    assert "vol/.kiln" in names and "vol/.kiln/meta" in names
    assert any(n.endswith(".j") for n in names)        # a journal (the run's overwrite)
    assert any(n.endswith(".t") for n in names)        # a tag list (a file of 21 chunks)
    assert any(n.startswith("vol.key.") for n in names)  # the version file


def plant(path, kind, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if kind == "symlink":
        os.symlink(target, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    else:
        os.mkdir(path)


def trials(recorded):
    for i, s in enumerate(recorded["steps"]):
        for name in s["names"]:
            # A device needs root to make (the host's root is the attacker here).
            for kind in ("symlink", "fifo", "dir") + (("device",) if os.geteuid() == 0 else ()):
                # A directory where kiln keeps a directory (.kiln) is no plant:
                # an empty one is a volume without metadata, and said so.
                if kind == "dir" and name in recorded["dirs"]:
                    continue
                yield i, name, kind


def test_planted_entries_refused(recorded, tmp_path):
    """Replay each step with a symlink, a FIFO and a directory at each name it
    opens: refused with a message, target untouched, no hang."""
    world = recorded["world"]
    target = tmp_path / "outside.txt"
    failures = []
    count = 0
    for i, name, kind in trials(recorded):
        s = recorded["steps"][i]
        world.restore(s["before"])
        target.write_bytes(TARGET_TEXT)
        plant(str(world.root / name), kind, str(target))
        try:
            p = subprocess.run(s["argv"], capture_output=True, encoding="utf-8",
                               errors="replace", timeout=60)
        except subprocess.TimeoutExpired:
            failures.append(f"{s['step']} {name} {kind}: hung")
            continue
        count += 1
        what = f"{s['step']} {name} {kind}"
        if target.read_bytes() != TARGET_TEXT or not stat.S_ISREG(target.stat().st_mode):
            failures.append(f"{what}: the symlink's target was changed")
        if "planted?" not in p.stderr:
            failures.append(f"{what}: not refused, or without saying why (exit "
                            f"{p.returncode}): {p.stderr[-400:]}")
        elif p.returncode == 0 and s["step"] != "run":
            failures.append(f"{what}: refused, but exit 0")
        elif p.returncode == 0:
            # A program under kiln run exits with its own status: the runtime
            # refused the planted entry (said so above) and its data must be
            # whole in the volume.
            v = subprocess.run([KILN, "fs", "verify", world.vol, "--key-file", world.key],
                               capture_output=True, text=True, timeout=60)
            if v.returncode != 0 and "planted?" not in v.stderr:
                failures.append(f"{what}: exit 0 and the volume does not verify: {v.stderr}")
    assert count >= 100
    assert not failures, "\n".join(failures)
