#!/usr/bin/env bash
# Install every Debian package kiln needs to build, test, demo and benchmark.
# Idempotent: does nothing (and never touches the network) when all are present.
# Usage: scripts/install-deps.sh [--check]   (--check: exit 1 if something is missing)
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
  # libraries
  libssl-dev libyaml-dev libjansson-dev libsqlite3-dev libevent-dev libpq-dev
  libfuse3-dev fuse3 liburing-dev libseccomp-dev
  # tests
  libcmocka-dev python3 python3-pytest openssl curl
  # make check runs the end-to-end tests on two workers (pytest -n 2)
  python3-pytest-xdist
  # tests/e2e/security: which files kiln opens in a volume
  strace
  # CAS e2e tests: ephemeral workload keys and certificates
  python3-cryptography
  # kiln cas serve --store postgresql://...: the CAS tests run PostgreSQL
  # themselves (initdb into a temp dir), and tests/e2e/apps runs it under kiln
  postgresql-15
  # apps exercised end to end and in benchmarks
  sqlite3 redis-server redis-tools nginx-light busybox git tar
  # musl programs (tests/e2e/apps/test_app_musl.py, security/test_exec_kinds.py);
  # tcl: tclsh generates sqlite's amalgamation (scripts/build-musl-sqlite3.sh)
  musl-tools tcl
  # a static Go program under kiln (tests/e2e/apps/test_app_static_go.py builds it
  # with CGO_ENABLED=0: the Go runtime's raw clone and arch_prctl per thread)
  golang-go
  # benchmarks
  gocryptfs stunnel4 hyperfine wrk
  # make deb: Debian packages, checked (lintian); tests/e2e/test_packages.py installs
  # them into a clean Debian 12 root (mmdebstrap)
  debhelper dpkg-dev lintian mmdebstrap
  # make conformance: CPython's file tests (Debian's interpreter and its test suite)
  python3.11 libpython3.11-testsuite
)

# make conformance also runs test_sqlite3, which Debian's libpython3.11-testsuite
# leaves out: it is taken from the python3.11 source package (apt-get source, which
# needs a deb-src line) and put where upstream's test suite has it, beside the other
# test packages (regrtest's package loader requires that place).
CONF_SQLITE=/usr/lib/python3.11/test/test_sqlite3
CONF_SOURCES=/etc/apt/sources.list.d/kiln-deb-src.sources

conformance_tests_present() {
  [ -f "$CONF_SQLITE/__init__.py" ]
}

# apt-get source needs a deb-src line: make conformance (python3.11) and
# libkiln-musl.so's OpenSSL (scripts/build-musl-openssl.sh) take sources.
ensure_deb_src() {
  if [ ! -f "$CONF_SOURCES" ] && ! grep -rqs '^Types:.*deb-src\|^deb-src ' \
      /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "install-deps: adding a deb-src line ($CONF_SOURCES) for apt-get source"
    cat > "$CONF_SOURCES" <<'SRC'
# Added by kiln scripts/install-deps.sh: make conformance takes CPython's
# test_sqlite3 from the python3.11 source package, libkiln-musl.so OpenSSL
# from the openssl one (scripts/build-musl-openssl.sh).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
}

install_conformance_tests() {
  ensure_deb_src
  apt-get update -qq
  local tmp orig
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && apt-get source --download-only -qq python3.11 >/dev/null)
  orig=$(ls "$tmp"/python3.11_*.orig.tar.* | head -n1)
  tar -xf "$orig" -C "$tmp" --wildcards '*/Lib/test/test_sqlite3/*'
  rm -rf "$CONF_SQLITE"
  cp -r "$tmp"/Python-*/Lib/test/test_sqlite3 "$CONF_SQLITE"
  echo "from $(basename "$orig") by kiln scripts/install-deps.sh (make conformance)" \
    > "$CONF_SQLITE/KILN-SOURCE"
  rm -rf "$tmp"
  echo "install-deps: CPython's test_sqlite3 in $CONF_SQLITE"
}

# Debian's busybox-static (the static loader's e2e tests, test_app_static_loader.py)
# conflicts with the busybox package: its binary is unpacked into
# /opt/kiln/busybox-static/bin instead of installed.
BUSYBOX_STATIC=/opt/kiln/busybox-static
busybox_static_present() {
  [ -x "$BUSYBOX_STATIC/bin/busybox" ]
}

install_busybox_static() {
  local tmp
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  chown _apt "$tmp" 2>/dev/null || true
  apt-get update -qq
  (cd "$tmp" && apt-get download -qq busybox-static >/dev/null)
  dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/root"
  mkdir -p "$BUSYBOX_STATIC/bin"
  install -m 0755 "$tmp/root/bin/busybox" "$BUSYBOX_STATIC/bin/busybox"
  rm -rf "$tmp"
  echo "install-deps: busybox-static in $BUSYBOX_STATIC"
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# libkiln-musl.so links a static OpenSSL built with musl-gcc, which Debian
# does not ship: built once per machine into /opt/kiln/musl-openssl (about 3
# minutes of CPU; 8 minutes on a loaded 2-core machine).
# sqlite3 built with musl-gcc from Debian's source (test_app_musl.py's stress
# test, bench/musl) is not built here: `make stress` and bench/musl build it
# on first use (scripts/build-musl-sqlite3.sh, about 2 min of CPU), which
# keeps a clean machine's make check as short as it was.
MUSL_OPENSSL="$(dirname "$0")/build-musl-openssl.sh"
musl_builds_present() {
  "$MUSL_OPENSSL" --check 2>/dev/null
}

if [ "${#missing[@]}" -eq 0 ] && conformance_tests_present && musl_builds_present &&
   busybox_static_present; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  [ "${#missing[@]}" -eq 0 ] || echo "install-deps: missing packages: ${missing[*]}" >&2
  conformance_tests_present || echo "install-deps: missing $CONF_SQLITE" >&2
  musl_builds_present || "$MUSL_OPENSSL" --check
  busybox_static_present || echo "install-deps: missing $BUSYBOX_STATIC/bin/busybox" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; or $CONF_SQLITE; or the musl OpenSSL" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
conformance_tests_present || install_conformance_tests
busybox_static_present || install_busybox_static
if ! musl_builds_present; then
  ensure_deb_src
  "$MUSL_OPENSSL"
fi
echo "install-deps: done"
