#!/usr/bin/env python3
"""make conformance: CPython's file test modules, natively and in both views of a
protected volume (`kiln run --volume` and `kiln fs mount`).

Each module runs in its own `python3.11 -m test -v MODULE` process, once per view,
on a fresh volume, with TMPDIR (hence regrtest's working directory) inside it:

  native  a plain directory on the same disk
  run     `kiln run --volume VOL=KEY -- python3.11 -m test ...`, TMPDIR=VOL/tmp
  mount   `kiln fs mount VOL MNT -f`, then python3.11 natively, TMPDIR=MNT/tmp

After a kiln view the volume is unmounted (mount view) and `kiln fs verify` must pass.
A module passes in a view when regrtest exits 0, no test that ran natively was skipped
in that view, and the volume verifies. The table (modules passing per view, wall time
per view, failing tests per module) goes to stdout and build/conformance/*.json.
Exit status: 1 when a module that passes natively does not pass in a kiln view (or
fails natively: the environment is broken), 2 on usage errors, else 0.

Usage: scripts/conformance.py [--build DIR] [--views native,run,mount]
                              [--modules M,...|--slice FILE] [--out DIR] [--jobs N]
                              [--timeout-scale F] [--keep]
See docs/conformance.md.
"""
import argparse
import concurrent.futures
import contextlib
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from kilnviews import Mount, init_volume, kill_group, quiet, run_argv, verify_volume  # noqa: E402
MODULES_FILE = ROOT / "tests" / "conformance" / "modules.txt"
REFUSALS_FILE = ROOT / "tests" / "conformance" / "refusals.txt"
VIEWS = ("native", "run", "mount")
VIEW_TITLES = {"native": "native", "run": "`kiln run`", "mount": "`kiln fs mount`"}
# Debian's interpreter, matching libpython3.11-testsuite (a pyenv python3.11 earlier on
# PATH would run a different standard library against these tests).
PYTHON = os.environ.get("KILN_CONFORMANCE_PYTHON", "/usr/bin/python3.11")


def die(msg, code=2):
    print(f"conformance: {msg}", file=sys.stderr)
    sys.exit(code)


def read_list(path):
    """Lines of NAME [VALUE] with # comments -> list of (name, value or None)."""
    out = []
    for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2:
            die(f"{path}:{n}: expected 'NAME [VALUE]', got {line!r}")
        out.append((parts[0], parts[1] if len(parts) == 2 else None))
    return out


def refusals():
    """Skip reasons that are documented refusals (tests/conformance/refusals.txt)."""
    out = []
    for line in REFUSALS_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def module_timeouts():
    return {name: int(value or 600) for name, value in read_list(MODULES_FILE)}


# ---- one module in one view ----------------------------------------------------------------

class Run:
    """The result of one module in one view (what goes into the JSON)."""

    def __init__(self, module, view):
        self.module, self.view = module, view
        self.status = "error"       # pass | fail | timeout | skipped | error
        self.rc = None
        self.wall_s = 0.0
        self.tests = 0
        self.failures = []          # test ids (FAIL)
        self.errors = []            # test ids (ERROR)
        self.skipped = {}           # test id -> reason
        self.extra_skips = []       # skipped here, run natively
        self.notes = []             # harness-level problems (timeout, verify, unmount ...)
        self.log = None

    def as_dict(self):
        return {k: getattr(self, k) for k in ("module", "view", "status", "rc", "wall_s",
                                              "tests", "failures", "errors", "skipped",
                                              "extra_skips", "notes", "log")}

    @classmethod
    def from_dict(cls, d):
        r = cls(d["module"], d["view"])
        for k, v in d.items():
            setattr(r, k, v)
        return r

    def failed_tests(self):
        return sorted(set(self.failures) | set(self.errors))


def parse_junit(run, xml_path):
    try:
        tree = ET.parse(xml_path)
    except (OSError, ET.ParseError) as e:
        run.notes.append(f"no test report ({e.__class__.__name__})")
        return False
    for tc in tree.iter("testcase"):
        name = tc.get("name", "?")
        run.tests += 1
        for child in tc:
            if child.tag == "failure":
                run.failures.append(name)
            elif child.tag == "error":
                run.errors.append(name)
            elif child.tag == "skipped":
                run.skipped[name] = (child.text or child.get("message") or "").strip()[:200]
    return True


FAIL_RE = re.compile(r"^(FAIL|ERROR): (\S+) \(([\w.]+)\)", re.M)


def parse_log(run, text):
    """Fallback when regrtest died before writing its report: the unittest headers."""
    for kind, _meth, ident in FAIL_RE.findall(text):
        (run.failures if kind == "FAIL" else run.errors).append(ident)
    m = re.search(r"^Ran (\d+) tests?", text, re.M)
    if m:
        run.tests = int(m.group(1))


def run_logged(argv, log, timeout, **kw):
    """Run argv in its own process group, output to the open file log. Returns
    (returncode or None on timeout, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, **kw)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        p.wait()
        rc = None
    return rc, time.monotonic() - t0


class Env:
    def __init__(self, args):
        self.kiln = str(pathlib.Path(args.build, "kiln").resolve())
        self.out = pathlib.Path(args.out).resolve()
        self.keep = args.keep
        self.timeout_scale = args.timeout_scale
        self.timeouts = module_timeouts()
        self.work = pathlib.Path(args.workdir).resolve() if args.workdir else None


def test_env(tmpdir):
    env = dict(os.environ)
    env["TMPDIR"] = str(tmpdir)
    # A pyenv or virtualenv setting must not leak into Debian's interpreter.
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYENV_VERSION"):
        env.pop(k, None)
    # The check build's kiln is ASan-instrumented; libfuse keeps allocations to exit.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def regrtest_argv(module, xml_path, timeout):
    # regrtest's own --timeout dumps every thread's stack (faulthandler) before we kill.
    return [PYTHON, "-m", "test", "-v", "--junit-xml", str(xml_path),
            "--timeout", str(int(max(30, timeout - 20))), module]


def run_one(env, module, view):
    r = Run(module, view)
    timeout = env.timeouts.get(module, 600) * (1 if view == "native" else env.timeout_scale)
    vdir = env.out / view
    vdir.mkdir(parents=True, exist_ok=True)
    log_path, xml_path = vdir / f"{module}.log", vdir / f"{module}.xml"
    r.log = str(log_path)
    for p in (log_path, xml_path):
        if p.exists():
            p.unlink()
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"kiln-conf-{view}-{module}-", dir=env.work))
    vol, key = base / "vol", base / "vol.key"
    rc = None
    try:
        with open(log_path, "w") as log:
            log.write(f"# {module} in view {view}, {datetime.datetime.now().isoformat()}\n")
            log.flush()
            if view != "native":
                err = init_volume(env.kiln, vol, key)
                if err:
                    r.notes.append(err)
                    return r
            with contextlib.ExitStack() as stack:
                prefix = []
                if view == "native":
                    cwd = base / "native"
                    cwd.mkdir()
                elif view == "run":
                    cwd, prefix = vol, run_argv(env.kiln, vol, key)
                else:
                    m = stack.enter_context(Mount(env.kiln, vol, key, base / "mnt", log=log))
                    if m.error:
                        r.notes.append(m.error)
                        return r
                    cwd = m.mnt
                tmpdir = cwd / "tmp"
                # Made the way the program sees the view (under kiln run: inside the volume).
                mk = quiet(prefix + ["mkdir", str(tmpdir)])
                if mk.returncode != 0:
                    r.notes.append(f"mkdir of TMPDIR failed: {mk.stderr.strip()}")
                    return r
                argv = prefix + regrtest_argv(module, xml_path, timeout)
                log.write(f"# {' '.join(map(str, argv))}\n# cwd={cwd} TMPDIR={tmpdir}\n")
                log.flush()
                rc, wall = run_logged(argv, log, timeout, cwd=cwd, env=test_env(tmpdir))
                r.wall_s, r.rc = round(wall, 2), rc
                if view == "mount" and m.unmount():
                    r.notes.append(m.error)
            if view != "native":
                err = verify_volume(env.kiln, vol, key)
                if err:
                    r.notes.append(err + " (after the module)")
        classify(r, module, log_path.read_text(errors="replace"), xml_path, rc, timeout)
        return r
    finally:
        if not env.keep:
            shutil.rmtree(base, ignore_errors=True)


def classify(r, module, text, xml_path, rc, timeout):
    if not parse_junit(r, xml_path):
        parse_log(r, text)
    if rc is None:
        r.status = "timeout"
        r.notes.append(f"timed out after {timeout} s (killed; stacks in the log)")
    elif rc < 0:
        r.notes.append(f"killed by signal {-rc}" + (" (not by this harness: the kernel's OOM "
                                                    "killer? see dmesg)" if rc == -9 else ""))
    elif re.search(rf"^{re.escape(module)} skipped", text, re.M) or \
            re.search(r"^1 test skipped:", text, re.M):
        r.status = "skipped"
        r.notes.append("the whole module was skipped")
    elif rc == 0 and not r.failed_tests():
        r.status = "pass"
    else:
        r.status = "fail"
        if not r.failed_tests():
            # Usually the module could not even load: name the exception it died of.
            exc = re.findall(r"^[\w.]*(?:Error|Exception|Exit)\b.*$", text, re.M)
            why = exc[-1] if exc else " | ".join(text.strip().splitlines()[-3:])
            r.notes.append(f"regrtest exited {rc} without a failing test: {why[:300]}")
    if r.notes and r.status == "pass":
        r.status = "fail"


# ---- the table ----------------------------------------------------------------------------

def fmt_s(s):
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def cell(r):
    if r is None:
        return "-"
    if r.status == "pass":
        return f"pass {fmt_s(r.wall_s)}"
    detail = []
    if r.failed_tests():
        detail.append(f"{len(r.failed_tests())} failed")
    if r.extra_skips:
        detail.append(f"{len(r.extra_skips)} extra skips")
    if r.status == "timeout":
        detail.append("timeout")
    elif r.notes and not detail:
        detail.append(r.notes[0][:40])
    return f"**{r.status}** {fmt_s(r.wall_s)} ({', '.join(detail)})" if detail else \
        f"**{r.status}** {fmt_s(r.wall_s)}"


def report(results, modules, views):
    by = {(r.module, r.view): r for r in results}
    lines = ["| | " + " | ".join(VIEW_TITLES[v] for v in views) + " |",
             "|---|" + "---|" * len(views)]
    passing = [sum(1 for m in modules if by.get((m, v)) and by[(m, v)].status == "pass")
               for v in views]
    lines.append("| modules passing | " + " | ".join(f"{n}/{len(modules)}" for n in passing)
                 + " |")
    walls = [sum(by[(m, v)].wall_s for m in modules if (m, v) in by) for v in views]
    lines.append("| wall time | " + " | ".join(fmt_s(w) for w in walls) + " |")
    if "native" in views and walls[0] > 0:
        lines.append("| vs native | " + " | ".join(f"{w / walls[0]:.2f}×" for w in walls) + " |")
    lines.append("")
    lines.append("| module | " + " | ".join(VIEW_TITLES[v] for v in views) + " |")
    lines.append("|---|" + "---|" * len(views))
    for m in modules:
        lines.append(f"| {m} | " + " | ".join(cell(by.get((m, v))) for v in views) + " |")
    details = []
    for m in modules:
        for v in views:
            r = by.get((m, v))
            if r is None or r.status == "pass":
                continue
            details.append(f"- {m} [{v}] {r.status}" +
                           (f" (rc {r.rc})" if r.rc not in (None, 0) else "") + ":")
            for n in r.notes:
                details.append(f"    note: {n}")
            for t in r.failed_tests():
                details.append(f"    {'FAIL ' if t in r.failures else 'ERROR'} {t}")
            for t in r.extra_skips:
                details.append(f"    SKIP  {t} (runs natively): {r.skipped.get(t, '')[:100]}")
            details.append(f"    log: {r.log}")
    if details:
        lines.append("")
        lines.append("Failing tests per module and view:")
        lines.extend(details)
    return "\n".join(lines)


def load_previous(out, module, view):
    path = out / f"{view}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for d in data.get("modules", []):
        if d.get("module") == module:
            return Run.from_dict(d)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"), help="build dir holding kiln")
    ap.add_argument("--views", default=",".join(VIEWS), help="comma list of native,run,mount")
    ap.add_argument("--modules", help="comma list (default: tests/conformance/modules.txt)")
    ap.add_argument("--slice", help="a file of 'MODULE DATE' lines (the make check slice)")
    ap.add_argument("--out", default=None, help="results dir (default BUILD/conformance)")
    ap.add_argument("--jobs", type=int, default=1, help="module runs in parallel (default 1)")
    ap.add_argument("--timeout-scale", type=float, default=2.0,
                    help="multiply the module timeouts in kiln views (default 2)")
    ap.add_argument("--workdir", help="where the temp dirs and volumes go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep volumes and temp dirs")
    args = ap.parse_args()

    views = [v.strip() for v in args.views.split(",") if v.strip()]
    for v in views:
        if v not in VIEWS:
            die(f"unknown view {v!r} (expected {', '.join(VIEWS)})")
    views = [v for v in VIEWS if v in views]
    known = module_timeouts()
    if args.slice:
        modules = [m for m, _ in read_list(args.slice)]
    elif args.modules:
        modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    else:
        modules = list(known)
    for m in modules:
        if m not in known:
            die(f"unknown module {m!r} (not in {MODULES_FILE.relative_to(ROOT)})")
    if not os.access(PYTHON, os.X_OK):
        die(f"{PYTHON} not found (scripts/install-deps.sh installs python3.11)")
    tests_dir = pathlib.Path("/usr/lib/python3.11/test")
    for m in modules:
        if not (tests_dir / m).is_dir() and not (tests_dir / f"{m}.py").is_file():
            die(f"{tests_dir}/{m} is missing (scripts/install-deps.sh installs CPython's "
                "test suite, test_sqlite3 from the python3.11 source package)")
    if args.out is None:
        args.out = str(pathlib.Path(args.build) / "conformance")
    env = Env(args)
    if set(views) - {"native"} and not os.access(env.kiln, os.X_OK):
        die(f"{env.kiln} not built (run make, or pass --build)")
    if "mount" in views and not shutil.which("fusermount3"):
        die("fusermount3 not installed (the mount view needs FUSE)", 1)
    env.out.mkdir(parents=True, exist_ok=True)

    jobs = [(m, v) for m in modules for v in views]
    results, by = [], {}
    print(f"conformance: {len(modules)} module(s) x {len(views)} view(s) "
          f"({', '.join(views)}), results in {env.out}", flush=True)

    refused = refusals()

    def compare_skips(r):
        """Tests skipped in a kiln view that ran natively hide missing features: they
        count as failures of the view."""
        native = by.get((r.module, "native")) or load_previous(env.out, r.module, "native")
        if native is None or native.status not in ("pass", "fail"):
            return
        r.extra_skips = sorted(t for t in r.skipped if t not in native.skipped and
                               not any(x in r.skipped[t] for x in refused))
        if r.extra_skips and r.status == "pass":
            r.status = "fail"

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(run_one, env, m, v): (m, v) for m, v in jobs}
        for f in concurrent.futures.as_completed(futs):
            r = f.result()
            results.append(r)
            by[(r.module, r.view)] = r
            if r.view != "native" and (r.module, "native") in by or "native" not in views:
                compare_skips(r)
            elif r.view == "native":
                for v in views[1:]:
                    if (r.module, v) in by:
                        compare_skips(by[(r.module, v)])
            print(f"  {r.module:16} {r.view:6} {r.status:8} {fmt_s(r.wall_s):>7}"
                  f"  tests={r.tests} failed={len(r.failed_tests())}"
                  f" extra_skips={len(r.extra_skips)}", flush=True)

    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    for v in views:
        rs = [by[(m, v)] for m in modules if (m, v) in by]
        (env.out / f"{v}.json").write_text(json.dumps(
            {"view": v, "date": stamp, "python": PYTHON,
             "passing": sum(r.status == "pass" for r in rs), "modules": [r.as_dict() for r in rs],
             "wall_s": round(sum(r.wall_s for r in rs), 2)}, indent=1) + "\n")
    table = report(results, modules, views)
    (env.out / "table.md").write_text(table + "\n")
    print()
    print(table)

    regress, native_bad = [], []
    for m in modules:
        nat = by.get((m, "native")) or load_previous(env.out, m, "native")
        if nat is not None and nat.status != "pass":
            native_bad.append(m)
            continue
        for v in views:
            if v != "native" and by[(m, v)].status != "pass":
                regress.append(f"{m} [{v}]")
    passed = sum(r.status == "pass" for r in results)
    print()
    if native_bad:
        print("conformance: fails natively (environment problem, not kiln): " +
              ", ".join(native_bad))
    if regress:
        print("conformance: passes natively, fails under kiln: " + ", ".join(regress))
    print(f"conformance: {passed} passed, {len(results) - passed} failed")
    return 1 if regress or native_bad else 0


if __name__ == "__main__":
    sys.exit(main())
