#!/usr/bin/env bash
# `make fuzz`: runs every libFuzzer target (build-fuzz/fuzz_*) for FUZZ_SECONDS each (default
# 300) on a scratch copy of its seed corpus (tests/fuzz/corpus/<name>), so the repo is not
# written to. Crashes are left in the scratch directory, whose path is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
rc=0
for f in tests/fuzz/fuzz_*.c; do
  name=$(basename "$f" .c)
  work=$(mktemp -d)
  corpus=tests/fuzz/corpus/${name#fuzz_}
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $name for ${FUZZ_SECONDS}s in $work"
  build-fuzz/"$name" -max_total_time="$FUZZ_SECONDS" -artifact_prefix="$work/" "$work" || rc=1
done
exit $rc
