#!/usr/bin/env bash
# sqlite3 linked statically against musl, from the amalgamation that
# scripts/build-musl-sqlite3.sh keeps (same flags), for the static loader's
# stress test (tests/e2e/apps/test_app_static_loader.py) and bench/static:
#
#   /opt/kiln/musl-sqlite3/bin/sqlite3-musl-static
#
# Rebuilt whenever build-musl-sqlite3.sh rebuilt the directory (it replaces it
# whole). Usage: scripts/build-musl-sqlite3-static.sh [--check]
set -euo pipefail
PREFIX=${KILN_MUSL_SQLITE3:-/opt/kiln/musl-sqlite3}
OUT="$PREFIX/bin/sqlite3-musl-static"
CFLAGS=(-O2 -DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_DQS=0)

if [ "${1:-}" = "--check" ]; then
  [ -x "$OUT" ] && exit 0
  echo "build-musl-sqlite3-static: $OUT missing (run scripts/build-musl-sqlite3-static.sh)" >&2
  exit 1
fi
"$(dirname "$0")/build-musl-sqlite3.sh"
[ -x "$OUT" ] && exit 0
echo "build-musl-sqlite3-static: compiling with musl-gcc -static (${CFLAGS[*]})"
nice -n 5 musl-gcc -static "${CFLAGS[@]}" -o "$OUT.tmp" "$PREFIX/src/shell.c" \
  "$PREFIX/src/sqlite3.c" -lpthread
mv "$OUT.tmp" "$OUT"
echo "build-musl-sqlite3-static: $OUT"
