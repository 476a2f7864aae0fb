#!/usr/bin/env bash
# `make demo`: loads the sample estate. Uses the running server if there is one; otherwise starts
# one on the default data directory for the load and stops it afterwards (the data stays).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/metasync}
SERVER=${METASYNC_SERVER:-http://127.0.0.1:8080}
if curl -fsS "$SERVER/readyz" >/dev/null 2>&1; then
  exec "$BIN" demo
fi
"$BIN" serve &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
"$BIN" demo
