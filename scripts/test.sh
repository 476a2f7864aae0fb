#!/usr/bin/env bash
# `make test` after the builds: every test tier, each stage counted, a closing
# "N passed, M failed" line, non-zero exit if anything failed.
#   1. unit tests (CTest + cmocka), normal build
#   2. whole-engine tests (pytest, Debian's python3) against build/metasync over loopback
#   3. the same unit and engine tests against the ASan+UBSan build
#   4. every fuzz target for FUZZ_SECONDS (default 20) each
#   5. docs/config.md matches `metasync config --markdown`
#   6. the PostgreSQL store: its unit tests and the engine tests (-m "not slow", without the
#      sqlite_only ones) against a throwaway PostgreSQL 15 (tests/e2e/pgserver.py)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
passed=0
failed=0
failures=()

stage() { # stage NAME COMMAND...
  local name=$1
  shift
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: ok"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED"
  fi
}

fuzz_all() {
  local dir=build-fuzz rc=0
  for f in tests/fuzz/fuzz_*.c; do
    local name
    name=$(basename "$f" .c)
    local corpus=tests/fuzz/corpus/${name#fuzz_}
    local work
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    echo "fuzz: $name for ${FUZZ_SECONDS}s"
    if ! "$dir/$name" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 \
        -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
      tail -40 "$work.log"
      rc=1
    fi
    rm -rf "$work" "$work.log"
  done
  return $rc
}

docs_config() {
  diff -u docs/config.md <(build/metasync config --markdown) &&
    echo "docs/config.md is up to date"
}

postgres_all() {
  local dir rc=0 url
  dir=$(mktemp -d)
  $PY tests/e2e/pgserver.py start "$dir" >/dev/null || { rm -rf "$dir"; return 1; }
  url=$($PY tests/e2e/pgserver.py database "$dir" unit "$PWD/build/metasync" | sed -n 1p) || rc=1
  [ $rc -eq 0 ] && { MS_TEST_PG_URL="$url" ctest --test-dir build --output-on-failure \
    -R test_store_postgres || rc=1; }
  $PY tests/e2e/pgserver.py stop "$dir"
  rm -rf "$dir"
  env METASYNC_TEST_STORE=postgres METASYNC_BIN="$PWD/build/metasync" \
    $PY -m pytest -q -p no:cacheprovider -m "not slow and not sqlite_only" tests/e2e || rc=1
  return $rc
}

stage "unit tests" ctest --test-dir build --output-on-failure
stage "engine tests" env METASYNC_BIN="$PWD/build/metasync" $PY -m pytest -q -p no:cacheprovider tests/e2e
stage "unit tests (ASan+UBSan)" env ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure
stage "engine tests (ASan+UBSan)" env METASYNC_BIN="$PWD/build-asan/metasync" METASYNC_TEST_SANITIZED=1 \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  $PY -m pytest -q -p no:cacheprovider -m "not slow" tests/e2e
stage "fuzz" fuzz_all
stage "docs" docs_config
stage "postgres store" postgres_all

echo
if [ $failed -gt 0 ]; then
  echo "failed stages: ${failures[*]}"
fi
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]
