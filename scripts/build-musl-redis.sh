#!/usr/bin/env bash
# Build redis-server from Debian's redis source package with musl-gcc (and with
# gcc, the control of bench/musl), for the musl stress tests, bench/musl and
# the kiln-cc stress test:
#
#   /opt/kiln/musl-redis/bin/redis-server-musl   musl-gcc, dynamic (ld-musl)
#   /opt/kiln/musl-redis/bin/redis-server-glibc  gcc, dynamic (glibc), same flags
#   /opt/kiln/musl-redis/src/                    the unpacked source (pristine),
#                                                which tests/e2e/test_kiln_cc.py
#                                                builds again with kiln-cc
#   /opt/kiln/musl-redis/KILN-STAMP              source version and flags
#
# redis's own allocator choice is MALLOC=libc (its bundled jemalloc is not
# built), no TLS, no systemd: the parts of redis that kiln's shields see are
# the same. Run by `make stress` on first use, not by install-deps (it takes
# minutes on a loaded machine).
# Usage: scripts/build-musl-redis.sh [--check]   (--check: exit 1 unless built)
set -euo pipefail
# shellcheck source=apt-source.sh
. "$(dirname "$0")/apt-source.sh"

PREFIX=${KILN_MUSL_REDIS:-/opt/kiln/musl-redis}
MAKEFLAGS_WANT=(MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no)
STAMP_WANT="make: ${MAKEFLAGS_WANT[*]}; musl and glibc"

built() {
  [ -x "$PREFIX/bin/redis-server-musl" ] && [ -x "$PREFIX/bin/redis-server-glibc" ] &&
    [ -f "$PREFIX/src/Makefile" ] &&
    [ -f "$PREFIX/KILN-STAMP" ] && grep -qxF "$STAMP_WANT" "$PREFIX/KILN-STAMP"
}

if built; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "build-musl-redis: $PREFIX is missing or stale (run scripts/build-musl-redis.sh as root)" >&2
  exit 1
fi
command -v musl-gcc >/dev/null || { echo "build-musl-redis: musl-gcc missing (scripts/install-deps.sh)" >&2; exit 1; }

start=$(date +%s)
fetch_source redis build-musl-redis
version=$(sed -n 's/^Version: //p' "$(ls "$tmp"/redis_*.dsc | head -n1)")
mkdir "$tmp/pristine"
tar -xf "$(ls "$tmp"/redis_*.orig.tar.* | head -n1)" -C "$tmp/pristine" --strip-components=1
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/bin"
for libc in musl glibc; do
  cc=gcc
  [ "$libc" = musl ] && cc=musl-gcc
  cp -a "$tmp/pristine" "$tmp/build-$libc"
  echo "build-musl-redis: redis $version: compiling redis-server with $cc (${MAKEFLAGS_WANT[*]})"
  nice -n 5 make -C "$tmp/build-$libc" -j"$(nproc)" "${MAKEFLAGS_WANT[@]}" CC=$cc redis-server \
    >"$tmp/make-$libc.log" 2>&1 || { tail -n 30 "$tmp/make-$libc.log" >&2; exit 1; }
  cp "$tmp/build-$libc/src/redis-server" "$PREFIX.new/bin/redis-server-$libc"
done
mv "$tmp/pristine" "$PREFIX.new/src"
{
  echo "redis $version (Debian source package) built by kiln scripts/build-musl-redis.sh"
  echo "$STAMP_WANT"
} >"$PREFIX.new/KILN-STAMP"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
echo "build-musl-redis: redis $version in $PREFIX ($(( $(date +%s) - start )) s)"
