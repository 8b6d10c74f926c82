#!/usr/bin/env bash
# redis-server linked statically against musl, from the source that
# scripts/build-musl-redis.sh keeps (same make flags), for bench/static (the
# static loader against the supervisor and the glibc path):
#
#   /opt/kiln/musl-redis/bin/redis-server-musl-static
#
# Rebuilt whenever build-musl-redis.sh rebuilt the directory (it replaces it
# whole). Takes minutes: run by `make bench` on first use, not by
# install-deps. Usage: scripts/build-musl-redis-static.sh [--check]
set -euo pipefail
PREFIX=${KILN_MUSL_REDIS:-/opt/kiln/musl-redis}
OUT="$PREFIX/bin/redis-server-musl-static"
MAKEFLAGS_WANT=(MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no)

if [ "${1:-}" = "--check" ]; then
  [ -x "$OUT" ] && exit 0
  echo "build-musl-redis-static: $OUT missing (run scripts/build-musl-redis-static.sh)" >&2
  exit 1
fi
"$(dirname "$0")/build-musl-redis.sh"
[ -x "$OUT" ] && exit 0
command -v musl-gcc >/dev/null || { echo "build-musl-redis-static: musl-gcc missing (scripts/install-deps.sh)" >&2; exit 1; }
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a "$PREFIX/src" "$tmp/build"
echo "build-musl-redis-static: compiling redis-server with musl-gcc -static (${MAKEFLAGS_WANT[*]})"
nice -n 5 make -C "$tmp/build" -j"$(nproc)" "${MAKEFLAGS_WANT[@]}" CC=musl-gcc LDFLAGS=-static \
  redis-server >"$tmp/make.log" 2>&1 || { tail -n 30 "$tmp/make.log" >&2; exit 1; }
cp "$tmp/build/src/redis-server" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "build-musl-redis-static: $OUT ($(( $(date +%s) - start )) s)"
