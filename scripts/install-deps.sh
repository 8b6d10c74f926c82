#!/usr/bin/env bash
# Install every Debian package kiln needs to build, test, demo and benchmark.
# Idempotent: does nothing (and never touches the network) when all are present.
# Usage: scripts/install-deps.sh [--check]   (--check: exit 1 if something is missing)
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
  # libraries
  libssl-dev libyaml-dev libjansson-dev libsqlite3-dev libevent-dev
  libfuse3-dev fuse3 liburing-dev libseccomp-dev
  # tests
  libcmocka-dev python3 python3-pytest openssl curl
  # CAS e2e tests: ephemeral workload keys and certificates
  python3-cryptography
  # apps exercised end to end and in benchmarks
  sqlite3 redis-server redis-tools nginx-light busybox
  # benchmarks
  gocryptfs stunnel4 hyperfine wrk
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
