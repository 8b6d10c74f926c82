"""The three views of a directory that kiln's conformance tests compare:

  native  a plain directory
  run     a protected volume seen by a program under `kiln run --volume VOL=KEY`
  mount   a protected volume mounted with `kiln fs mount VOL MNT -f`

Used by tests/e2e/posix (pytest) and scripts/conformance.py (make conformance).
Import from here, not from a conftest (see kilnenv.py)."""
import os
import pathlib
import shutil
import signal
import subprocess
import time

VIEWS = ("native", "run", "mount")


def fuse_usable():
    """None when FUSE mounts can be made here, else why not."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not shutil.which("fusermount3"):
        return "fusermount3 not installed"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return f"/dev/fuse unusable: {e}"
    return None


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def quiet(argv, timeout=120, **kw):
    """Run argv with output captured; a timeout gives returncode None."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        return subprocess.CompletedProcess(argv, None, out or "", "timed out")


def init_volume(kiln, vol, key):
    """kiln fs init; returns None or the error text."""
    p = quiet([kiln, "fs", "init", str(vol), "--key-file", str(key)])
    return None if p.returncode == 0 else f"kiln fs init failed: {p.stderr.strip()}"


def verify_volume(kiln, vol, key, wait_s=30, output=None):
    """kiln fs verify; returns None or the lines that are not 'ok'. A volume still
    held by a process that is finishing (a mount being torn down, the runtime's
    volume server making its last commit after its last client left) is waited
    for up to wait_s seconds. output (a list) receives verify's stdout."""
    deadline = time.monotonic() + wait_s
    while True:
        v = quiet([kiln, "fs", "verify", str(vol), "--key-file", str(key)], timeout=600)
        if "in use by another process" not in (v.stderr or "") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if output is not None:
        output.append(v.stdout or "")
    if v.returncode == 0:
        return None
    bad = [ln for ln in (v.stdout + v.stderr).splitlines() if not ln.startswith("ok")]
    return "kiln fs verify failed: " + "; ".join(bad[:5])


def run_argv(kiln, vol, key):
    """The prefix that runs a program under kiln run with the volume mounted in place."""
    return [kiln, "run", "--volume", f"{vol}={key}", "--"]


class Mount:
    """`kiln fs mount VOL MNT -f` as a context manager; .error says why it failed
    (mount did not come up, unmount failed, or the mount process exited non-zero)."""

    def __init__(self, kiln, vol, key, mnt, log=subprocess.DEVNULL, env=None):
        self.argv = [kiln, "fs", "mount", str(vol), str(mnt), "-f", "--key-file", str(key)]
        self.mnt, self.log, self.env, self.proc, self.error = pathlib.Path(mnt), log, env, None, None

    def __enter__(self):
        env = dict(self.env or os.environ)
        # The check build's kiln is ASan-instrumented; libfuse keeps allocations to exit.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        self.mnt.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT
                                     if self.log is not subprocess.DEVNULL else subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.error = f"kiln fs mount exited {self.proc.returncode}: {err.strip()}"
                break
            if time.monotonic() > deadline:
                self.error = "kiln fs mount did not come up within 30 s"
                break
            time.sleep(0.02)
        return self

    def unmount(self):
        """Unmount and reap the mount process; sets and returns .error on failure."""
        if self.proc is None:
            return self.error
        r = None
        for _ in range(50):
            if not os.path.ismount(self.mnt):
                break
            r = quiet(["fusermount3", "-u", str(self.mnt)])
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            self.error = self.error or f"unmount failed: {r.stderr.strip()}"
            quiet(["fusermount3", "-uz", str(self.mnt)])
        try:
            rc = self.proc.wait(timeout=120)
            if rc != 0 and not self.error:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.error = f"kiln fs mount exited {rc}: {err.strip()[-500:]}"
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait()
            self.error = self.error or "kiln fs mount did not exit within 120 s after unmount"
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        return self.error

    def __exit__(self, *exc):
        if self.proc is not None:
            if exc[0] is None:
                self.unmount()
            else:
                quiet(["fusermount3", "-uz", str(self.mnt)])
                kill_group(self.proc)
                self.proc.wait()
                self.proc = None
        return False
