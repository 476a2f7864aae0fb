#!/usr/bin/env bash
# `make run`: starts `metasync serve` with the embedded defaults. On a fresh data directory it
# first loads the sample estate (`metasync demo`) so there is something to look at, and says so.
# Extra arguments go to `metasync serve` (e.g. make run ARGS="--listen 127.0.0.1:9090").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/metasync}
DATA=${METASYNC_DATA_DIR:-./data}
if [ -e "$DATA/metasync.db" ]; then
  exec "$BIN" serve ${ARGS:-}
fi
"$BIN" serve ${ARGS:-} &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
echo "metasync: fresh data directory $DATA: loading the sample estate (metasync demo)…"
if ! "$BIN" demo; then
  echo "metasync: the sample estate could not be loaded (is the server up?)" >&2
fi
wait $pid
