#!/usr/bin/env bash
# Build the libFuzzer targets (clang) and run each briefly over its seed corpus.
# Usage: scripts/fuzz-smoke.sh FUZZ_BUILD_DIR SECONDS
set -uo pipefail
build=$1
seconds=${2:-10}
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found" >&2
  exit 1
fi
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Dtests=disabled -Dfuse=disabled \
    -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C "$build" fuzz-targets >/dev/null || { ninja -C "$build" fuzz-targets; exit 1; }
# One target per core at a time (each still gets SECONDS of a whole core):
# the smoke run of two dozen targets takes half the wall time on two cores.
jobs_max=$(nproc 2>/dev/null || echo 2)
run_one() {  # target, result file: "ok LINE" or "FAILED LINE" + the log's tail
  local target=$1 res=$2 name corpus work runs
  name=$(basename "$target")
  corpus=fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
  if "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=0 "$work" > "$work.log" 2>&1; then
    runs=$(grep -oE '#[0-9]+' "$work.log" | tail -1)
    echo "ok fuzz: $name ok (${runs:-#0} runs, seed corpus $corpus)" > "$res"
  else
    { echo "FAILED fuzz: $name FAILED"; tail -40 "$work.log"; } > "$res"
  fi
  rm -rf "$work" "$work.log"
}
results=()
for target in "$build"/fuzz/fuzz_*; do
  [ -f "$target" ] && [ -x "$target" ] || continue
  res=$(mktemp)
  results+=("$res")
  run_one "$target" "$res" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
done
wait
passed=0 failed=0
for res in "${results[@]}"; do
  if [ "$(head -c 3 "$res")" = "ok " ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  sed '1s/^ok //; 1s/^FAILED //' "$res"
  rm -f "$res"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
