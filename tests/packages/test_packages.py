"""kiln's Debian packages on a clean Debian 12 root (make deb runs this after
building and checking them; not part of make check: it downloads a base
system, a few minutes).

mmdebstrap makes a minimal bookworm root from the machine's apt sources,
installs the built .deb files into it with apt (their dependencies from the
mirror, nothing else of this machine), then runs tests/packages/tour.sh there:
systemd-analyze verify on the installed units, then
the README's tour (a volume, kiln run, a CAS, a policy, an attested run, the
audit log) with only the packaged files."""
import os
import pathlib
import shutil
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
DEBS = pathlib.Path(os.environ.get("KILN_DEB_DIR", HERE.parent.parent / "build-deb"))


def test_packages_install_and_run_the_tour_on_a_clean_root(tmp_path):
    debs = sorted(d for d in DEBS.glob("*.deb") if "-dbgsym_" not in d.name)
    names = {d.name.split("_")[0] for d in debs}
    if names != {"kiln", "libkiln", "kiln-cas", "kiln-las"}:
        pytest.fail(f"{DEBS}: expected the four packages of make deb, found {sorted(names)}")
    if not shutil.which("mmdebstrap"):
        pytest.fail("mmdebstrap not installed (scripts/install-deps.sh installs it)")
    stage = tmp_path / "debs"
    stage.mkdir()
    for d in debs:
        shutil.copy(d, stage)
    shutil.copy(HERE / "tour.sh", stage)
    root = tmp_path / "root"
    p = subprocess.run(
        ["mmdebstrap", "--variant=apt", "--mode=root", "--include=ca-certificates,systemd,man-db",
         "--customize-hook=mkdir -p \"$1/tmp/kiln\"",
         f"--customize-hook=copy-in {' '.join(str(x) for x in sorted(stage.iterdir()))} /tmp/kiln",
         "--customize-hook=chroot \"$1\" sh -c 'apt-get install -y -q /tmp/kiln/*.deb'",
         "--customize-hook=chroot \"$1\" sh /tmp/kiln/tour.sh",
         "bookworm", str(root), "http://deb.debian.org/debian"],
        capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert "tour: ok" in out, out[-6000:]
    # Installed from the packages, not from this machine: the root had no kiln.
    assert (root / "usr/bin/kiln").exists()
    assert list(root.glob("usr/lib/*/kiln/kiln-tool"))
