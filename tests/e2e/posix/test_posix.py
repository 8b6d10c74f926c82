"""POSIX edge cases, natively and in both views of a protected volume.

Each case is a small program in cases/ (Python, or C for bad pointers) that works
in the directory given as argv[1] and prints `key: value` lines (see
cases/caselib.py). The test runs it natively, then under `kiln run --volume` and
on a `kiln fs mount`, and requires every line to equal the native one. Lines that
differ today while a fix is in progress on another branch are listed in
known_failures.py (strict: a listed line that starts to match fails too, so the
list shrinks as fixes land); documented refusals (device nodes) are there too.

Add a case: write cases/NAME.py printing `key: value` lines and add NAME to CASES.
Run one: KILN_BUILD=$PWD/build python3 -m pytest -q tests/e2e/posix -k 'links and mount'
KILN_POSIX_RECORD=FILE appends every differing line to FILE as JSON (to draft entries).
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from kilnenv import BUILD  # noqa: E402
from kilnviews import Mount, fuse_usable, init_volume, run_argv, verify_volume  # noqa: E402

import known_failures  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
# Debian's interpreter, not a pyenv one earlier on PATH.
PYTHON = "/usr/bin/python3"
CASES = ["perms", "times", "inode", "paths", "links", "sparse", "unlink_open", "dirs",
         "statvfs", "special", "locks", "efault", "direct"]
NEEDS_ROOT = {"perms"}


def case_argv(case):
    if case == "efault":
        exe = BUILD / "tests" / "e2e" / "posix" / "posix_efault"
        if not exe.exists():
            pytest.fail(f"{exe} not built")
        return [str(exe)]
    return [PYTHON, str(CASES_DIR / f"{case}.py")]


def case_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYENV"))}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def parse(stdout):
    lines = {}
    for ln in stdout.splitlines():
        key, sep, value = ln.partition(": ")
        if sep:
            lines[key] = value
    return lines


class Outcome:
    def __init__(self, p, view):
        self.view, self.rc = view, p.returncode
        self.stdout, self.stderr = p.stdout or "", p.stderr or ""
        self.lines = parse(self.stdout)
        self.problems = []

    def describe(self):
        return (f"[{self.view}] exit {self.rc}\n--- stdout\n{self.stdout[-3000:]}"
                f"\n--- stderr\n{self.stderr[-3000:]}")


@pytest.fixture
def world_tmp():
    """A temp dir every uid can traverse (perms drops privileges in children)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="kiln-posix-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_case(case, view, base, kiln):
    """Run case in view below base; returns an Outcome."""
    argv, env = case_argv(case), case_env()

    def go(prefix, where):
        try:
            p = subprocess.run(prefix + argv + [str(where)], capture_output=True, text=True,
                               timeout=300, env=env, cwd=str(where), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            p = subprocess.CompletedProcess(e.cmd, None, e.stdout or "", "timed out (300 s)")
            if isinstance(p.stdout, bytes):
                p.stdout = p.stdout.decode(errors="replace")
        return Outcome(p, view)

    if view == "native":
        d = base / "native"
        d.mkdir(mode=0o755)
        return go([], d)
    vol, key = base / "vol", base / "vol.key"
    err = init_volume(kiln, vol, key)
    assert err is None, err
    os.chmod(vol, 0o755)
    if view == "run":
        o = go(run_argv(kiln, vol, key), vol)
    else:
        with Mount(kiln, vol, key, base / "mnt") as m:
            assert m.error is None, m.error
            o = go([], m.mnt)
            if m.unmount():
                o.problems.append(m.error)
    err = verify_volume(kiln, vol, key)
    if err:
        o.problems.append(err)
    return o


_native_cache = {}


def native_outcome(case, world_tmp, kiln):
    if case not in _native_cache:
        o = run_case(case, "native", world_tmp, kiln)
        assert o.rc == 0, "the case fails natively (a broken case):\n" + o.describe()
        assert o.lines, "the case printed nothing natively:\n" + o.describe()
        _native_cache[case] = o
    return _native_cache[case]


@pytest.mark.parametrize("view", ["run", "mount"])
@pytest.mark.parametrize("case", CASES)
def test_posix(case, view, world_tmp, kiln_bin):
    if case in NEEDS_ROOT and os.geteuid() != 0:
        pytest.skip("needs root (children drop to other uids)")
    if view == "mount":
        why = fuse_usable()
        if why:
            pytest.skip(why)
    native = native_outcome(case, world_tmp, kiln_bin)
    got = run_case(case, view, world_tmp, kiln_bin)

    mismatch = {}
    for key, want in native.lines.items():
        refused = known_failures.REFUSED.get((case, key))
        if refused is not None:
            want = refused[0]
        have = got.lines.get(key, "<missing>")
        if have != want:
            mismatch[key] = (want, have)
    for key in got.lines.keys() - native.lines.keys():
        mismatch[key] = ("<missing>", got.lines[key])
    if got.rc != 0:
        mismatch["<exit status>"] = ("0", str(got.rc))
    for p in got.problems:
        mismatch[f"<{p.split(':')[0]}>"] = ("ok", p)

    record = os.environ.get("KILN_POSIX_RECORD")
    if record:
        # Draft entries for known_failures.py (each still needs its owner and reason).
        with open(record, "a") as f:
            for k, (w, h) in sorted(mismatch.items()):
                f.write(json.dumps([case, view, k, w, h]) + "\n")
    known = known_failures.KNOWN.get((case, view), {})
    unexpected = {k: v for k, v in mismatch.items() if k not in known}
    fixed = [k for k in known if k not in mismatch]
    report = "\n".join(f"  {k}: native {w!r}, {view} {h!r}" + (f"  [known: {known[k]}]"
                                                               if k in known else "")
                       for k, (w, h) in sorted(mismatch.items()))
    msg = []
    if unexpected:
        msg.append(f"{len(unexpected)} line(s) differ from native:\n{report}")
    if fixed:
        msg.append("listed in known_failures.py but now equal to native (remove them): " +
                   ", ".join(sorted(fixed)))
    if msg:
        pytest.fail("\n".join(msg) + "\n" + (got.describe() if unexpected else ""))
    if mismatch:
        owners = sorted({known[k].split(":")[0] for k in mismatch})
        pytest.xfail(f"{len(mismatch)} known difference(s) (owners: {', '.join(owners)}):\n"
                     + report)
