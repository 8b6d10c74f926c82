#!/usr/bin/env bash
# Run every test tier of `make check` and print each runner's summary lines.
# Usage: scripts/check.sh CHECK_BUILD_DIR FUZZ_BUILD_DIR FUZZ_SECONDS
set -uo pipefail
build=$(realpath "$1")
fuzz_build=$2
fuzz_seconds=${3:-10}
status=0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== module dependencies (scripts/check-deps.py: includes and meson edges)"
if ! scripts/check-deps.py; then
  status=1
fi

echo "== unit tests (cmocka)"
if ! meson test -C "$build" --print-errorlogs --suite unit > "$build/unit.log" 2>&1; then
  status=1
fi
# Each cmocka binary prints its own summary; show them plus meson's totals.
grep -hE '^\[ *(PASSED|FAILED|  ERROR) *\]|^\[=+\] [0-9]+ test' "$build"/meson-logs/testlog.txt || true
grep -E '^(Ok|Fail|Expected Fail|Unexpected Pass|Skipped|Timeout):' "$build/unit.log" || cat "$build/unit.log"

echo "== end-to-end tests (pytest)"
# Two workers: most tests wait (servers starting, programs exiting, sync), so two
# run side by side on two cores. Every test starts its own services on ephemeral
# ports in its own directories, which is what makes that safe. The 15 slowest are
# listed: make check has a time budget (15 min in CI), and a test that grows is
# seen in the next run's output, not guessed at.
KILN_BUILD="$build" /usr/bin/python3 -m pytest -q -m "not stress" tests/e2e -p no:cacheprovider \
  -n 2 --durations=15 --durations-min=5
rc=$?
# pytest exit 5 means no tests were collected: that is a failure here.
[ $rc -eq 0 ] || status=1

echo "== conformance slice (CPython file tests in tests/conformance/check-slice.txt, 3 views)"
if ! scripts/conformance.py --build "$build" --slice tests/conformance/check-slice.txt \
    --out "$build/conformance-slice"; then
  status=1
fi

echo "== fuzz smoke (libFuzzer over seed corpora, ${fuzz_seconds}s each)"
if ! scripts/fuzz-smoke.sh "$fuzz_build" "$fuzz_seconds"; then
  status=1
fi

exit $status
