#!/usr/bin/env bash
# Run every benchmark (bench/<name>/run BUILD_DIR). Each writes bench/results/<name>*.json
# and a Markdown table next to it, with ratios measured side by side in the same run.
# Usage: scripts/bench.sh BUILD_DIR [NAME...]
set -uo pipefail
build=$1; shift
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in bench/*/; do [ -x "$d/run" ] && names+=("$(basename "$d")"); done
fi
failed=0
for n in "${names[@]}"; do
  echo "== bench/$n"
  if ! "bench/$n/run" "$build"; then
    echo "bench/$n: FAILED" >&2
    failed=1
  fi
done
exit $failed
