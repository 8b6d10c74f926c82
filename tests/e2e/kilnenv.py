"""Paths shared by the e2e tests. Import from here, not from conftest: pytest loads
several conftest.py files (tests/e2e, tests/e2e/apps) and `import conftest` picks
whichever came first on sys.path."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("KILN_BUILD", ROOT / "build")).resolve()
TESTDATA = (ROOT / ".." / "shared" / "testdata").resolve()
