#!/usr/bin/env bash
# make deb: Debian packages of the working tree (debian/), checked.
#   scripts/deb.sh [--no-install-test] [OUTDIR]     (default build-deb)
# Copies the tree (tracked and untracked files git does not ignore) to
# OUTDIR/kiln-VERSION, builds the binary packages with dpkg-buildpackage,
# then runs lintian on them (errors and warnings fail) and tests/packages (the
# packages installed on a clean Debian 12 root made by mmdebstrap, where
# systemd-analyze verify checks the service units and the README's tour runs).
# The .deb files end up in OUTDIR.
set -euo pipefail
install_test=1
if [ "${1:-}" = --no-install-test ]; then install_test=0; shift; fi
out=${1:-build-deb}
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src="$out/kiln-$version"

for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null || { echo "deb: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$src"
(cd "$root" && git ls-files -co --exclude-standard -z | grep -zv '^build' |
   xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$src"
echo "deb: building kiln $version in $src (a release build: a few minutes)"
(cd "$src" && dpkg-buildpackage -us -uc -b --no-sign >../dpkg-buildpackage.log 2>&1) || {
  tail -40 "$out/dpkg-buildpackage.log" >&2
  echo "deb: dpkg-buildpackage failed (log: $out/dpkg-buildpackage.log)" >&2
  exit 1
}
echo "deb: lintian"
lintian --fail-on error,warning "$out"/*.changes
ls -1 "$out"/*.deb | sed 's/^/deb: built /'
if [ $install_test = 1 ]; then
  echo "deb: installing them on a clean Debian 12 root (mmdebstrap; a few minutes)"
  KILN_DEB_DIR=$(cd "$out" && pwd) /usr/bin/python3 -m pytest -q -p no:cacheprovider \
    "$root/tests/packages"
fi
