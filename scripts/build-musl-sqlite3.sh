#!/usr/bin/env bash
# Build sqlite3 (the command-line shell) from Debian's sqlite3 source package
# twice from the same amalgamation and flags, for the musl e2e test and the
# musl-vs-glibc benchmark (tests/e2e/apps/test_app_musl.py, bench/musl):
#
#   /opt/kiln/musl-sqlite3/bin/sqlite3-musl    musl-gcc, dynamic (ld-musl)
#   /opt/kiln/musl-sqlite3/bin/sqlite3-glibc   gcc, dynamic (glibc): the control
#   /opt/kiln/musl-sqlite3/src/                the amalgamation (sqlite3.c, shell.c,
#                                              sqlite3.h), which the kiln-cc stress test
#                                              builds with kiln-cc (tests/e2e/test_kiln_cc.py)
#   /opt/kiln/musl-sqlite3/KILN-STAMP          source version and flags
#
# Debian's orig tarball is SQLite's full source tree: the amalgamation
# (sqlite3.c, shell.c) is generated with tclsh (package tcl).
# Usage: scripts/build-musl-sqlite3.sh [--check]   (--check: exit 1 unless built)
set -euo pipefail
# shellcheck source=apt-source.sh
. "$(dirname "$0")/apt-source.sh"

PREFIX=${KILN_MUSL_SQLITE3:-/opt/kiln/musl-sqlite3}
CFLAGS=(-O2 -DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_DQS=0)
STAMP_WANT="cflags: ${CFLAGS[*]}; amalgamation kept in src"

built() {
  [ -x "$PREFIX/bin/sqlite3-musl" ] && [ -x "$PREFIX/bin/sqlite3-glibc" ] &&
    [ -f "$PREFIX/src/sqlite3.c" ] && [ -f "$PREFIX/src/shell.c" ] &&
    [ -f "$PREFIX/KILN-STAMP" ] && grep -qxF "$STAMP_WANT" "$PREFIX/KILN-STAMP"
}

if built; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "build-musl-sqlite3: $PREFIX is missing or stale (run scripts/build-musl-sqlite3.sh as root)" >&2
  exit 1
fi
for tool in musl-gcc gcc tclsh; do
  command -v "$tool" >/dev/null || { echo "build-musl-sqlite3: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done

start=$(date +%s)
fetch_source sqlite3 build-musl-sqlite3
version=$(sed -n 's/^Version: //p' "$(ls "$tmp"/sqlite3_*.dsc | head -n1)")
tar -xf "$(ls "$tmp"/sqlite3_*.orig.tar.* | grep -v -- -www | head -n1)" -C "$tmp"
src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'sqlite3-*' | head -n1)
echo "build-musl-sqlite3: sqlite3 $version: generating the amalgamation (tclsh)"
(cd "$src" && ./configure --disable-tcl --disable-readline --disable-editline \
  --disable-shared >"$tmp/configure.log" 2>&1 && make sqlite3.c shell.c >"$tmp/make.log" 2>&1) || {
  tail -n 30 "$tmp/configure.log" "$tmp/make.log" >&2; exit 1; }
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/bin" "$PREFIX.new/src"
cp "$src/sqlite3.c" "$src/shell.c" "$src/sqlite3.h" "$src/sqlite3ext.h" "$PREFIX.new/src/"
echo "build-musl-sqlite3: compiling with musl-gcc and gcc (${CFLAGS[*]})"
nice -n 5 musl-gcc "${CFLAGS[@]}" -o "$PREFIX.new/bin/sqlite3-musl" "$src/shell.c" "$src/sqlite3.c" -lpthread
nice -n 5 gcc "${CFLAGS[@]}" -o "$PREFIX.new/bin/sqlite3-glibc" "$src/shell.c" "$src/sqlite3.c" -lpthread -lm
{
  echo "sqlite3 $version (Debian source package) built by kiln scripts/build-musl-sqlite3.sh"
  echo "$STAMP_WANT"
} >"$PREFIX.new/KILN-STAMP"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
echo "build-musl-sqlite3: sqlite3 $version in $PREFIX ($(( $(date +%s) - start )) s)"
