#!/usr/bin/env bash
# bench/run.sh — MetaSync's benchmark (`make bench`): 1M assets through HTTP NDJSON into the
# embedded store, in hierarchical and in shuffled order, against the raw SQLite limit measured in
# the same run; then the fast-lane latency while a bulk backlog drains. See docs/performance.md.
#
# Environment (all optional):
#   BUILD=build            build directory holding metasync and bench_* (make bench builds it)
#   BENCH_ASSETS=1000000   assets in the estate (e.g. 100000 for a quick run)
#   BENCH_DIR=/tmp/metasync-bench   where the NDJSON files and data directories go (not the repo)
#   BENCH_BATCH=5000 BENCH_PARALLEL=4   metasync ingest --batch / --parallel
#   BENCH_SYNC=full        store.synchronous for the server and the raw loop (full|normal)
#   BENCH_ORDERS="hierarchical shuffled"   which orders to run
#   BENCH_REPEAT=3         hierarchical ingests (each into a fresh store); the figures are the
#                          median run's, every run's rate is printed (this VM varies ±8% run to run)
#   BENCH_ENGINE_SQL="hierarchical"   orders for which the raw loop also runs with the engine's
#                          extra lookups (attribution; "" for none: the shuffled one takes minutes)
#   BENCH_FASTLANE=1       run the fast-lane test; BENCH_PROBES=500 probes
#   BENCH_BACKLOG_PARALLEL=8 BENCH_BACKLOG_BATCH=10000   ingest settings of the backlog
#   BENCH_PERF=0           1: record `perf` of the server during the hierarchical ingest
#   BENCH_KEEP=0           1: keep the data directories afterwards
#   BENCH_STORE=sqlite     postgres: the same ingest into the PostgreSQL store (a throwaway
#                          PostgreSQL 15 from tests/e2e/pgserver.py under $BENCH_DIR/pg); its limit
#                          is PostgreSQL's own COPY of the very rows the engine wrote into a fresh
#                          database with the same schema (bench_pg_copy); plus EXPLAIN ANALYZE of
#                          the main read queries on the hierarchical database ($BENCH_DIR/explain.txt)
# Output: a table on stdout, and one machine-readable line `BENCH_SUMMARY {json}` (also written
# to $BENCH_DIR/summary.json). Timings are reported, never asserted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${BENCH_ASSETS:-1000000}
DIR=${BENCH_DIR:-/tmp/metasync-bench}
BATCH=${BENCH_BATCH:-5000}
PAR=${BENCH_PARALLEL:-4}
SYNC=${BENCH_SYNC:-full}
ORDERS=${BENCH_ORDERS-hierarchical shuffled}
REPEAT=${BENCH_REPEAT:-3}
ENGINE_SQL=${BENCH_ENGINE_SQL-hierarchical}
FASTLANE=${BENCH_FASTLANE:-1}
PROBES=${BENCH_PROBES:-500}
BL_PAR=${BENCH_BACKLOG_PARALLEL:-8}
BL_BATCH=${BENCH_BACKLOG_BATCH:-10000}
PERF=${BENCH_PERF:-0}
KEEP=${BENCH_KEEP:-0}
STORE=${BENCH_STORE:-sqlite}

MS=$BUILD/metasync
GEN=$BUILD/bench_gen_estate
RAW=$BUILD/bench_raw_sqlite
PROBE=$BUILD/bench_fastlane_probe
for b in "$MS" "$GEN" "$RAW" "$PROBE"; do
  [[ -x $b ]] || { echo "bench: $b is missing; build first (make build, or BUILD=dir)" >&2; exit 2; }
done
mkdir -p "$DIR"

SERVER_PID=""
INGEST_PID=""
cleanup() {
  [[ -n $INGEST_PID ]] && kill "$INGEST_PID" 2>/dev/null || true
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- helpers ---------------------------------------------------------------------------------

# PostgreSQL mode: one cluster for the run; pg_db NAME creates and migrates a database and sets
# PG_APP and PG_OWNER (URLs).
PGDIR=$DIR/pg
PGPY="/usr/bin/python3 $ROOT/tests/e2e/pgserver.py"
if [[ $STORE == postgres ]]; then
  FASTLANE=0
  ENGINE_SQL=""
  rm -rf "$PGDIR"
  mkdir -p "$PGDIR"
  $PGPY start "$PGDIR" >/dev/null
  cleanup_pg() { cleanup; $PGPY stop "$PGDIR" || true; }
  trap cleanup_pg EXIT
fi
pg_db() {
  local urls
  urls=$($PGPY database "$PGDIR" "$1" "$MS")
  PG_APP=$(sed -n 1p <<<"$urls")
  PG_OWNER=$(sed -n 2p <<<"$urls")
}
# pg_bytes OWNER_URL: bytes of the tenant tables and their indexes.
pg_bytes() {
  psql -X -A -t "$1" -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
}

# pg_explain ORDER: EXPLAIN (ANALYZE, BUFFERS) of the store's main read queries, as the
# application role (row-level security on), on the database just ingested (hierarchical only).
# The estate has no lineage: one edge per table to the next table is added first (as the owner).
pg_explain() {
  [[ $1 == hierarchical ]] || return 0
  local out=$DIR/explain.txt q="psql -X -A -t -q"
  $q "$PG_OWNER" -c "INSERT INTO edges(tenant, src, dst) SELECT 'default', qn, nxt FROM (SELECT qn, lead(qn) OVER (ORDER BY qn) AS nxt FROM assets WHERE type = 'table') t WHERE nxt IS NOT NULL" -c "ANALYZE assets, tags, edges, changes, seen"
  local col tbl mid seq
  col=$($q "$PG_OWNER" -c "SELECT qn FROM assets WHERE type = 'column' ORDER BY qn OFFSET 400000 LIMIT 1")
  tbl=$($q "$PG_OWNER" -c "SELECT qn FROM assets WHERE type = 'table' ORDER BY qn OFFSET 40000 LIMIT 1")
  mid=$($q "$PG_OWNER" -c "SELECT qn FROM assets WHERE type = 'column' ORDER BY qn OFFSET 300000 LIMIT 1")
  seq=$($q "$PG_OWNER" -c "SELECT max(seq) / 2 FROM changes")
  local tags="(SELECT coalesce(json_agg(json_build_array(t.tag, t.source, t.origin) ORDER BY t.tag, t.origin), '[]') FROM tags t WHERE t.tenant = a.tenant AND t.qn = a.qn)"
  local cols="a.qn, a.id, a.type, a.name, a.parent, a.attributes, a.version, a.deleted, a.created_at, a.orphan, a.updated_at, $tags"
  local walk="WITH RECURSIVE w(qn, d) AS (SELECT '$tbl'::text COLLATE \"C\", 0 UNION SELECT e.dst, w.d + 1 FROM edges e JOIN w ON e.tenant = 'default' AND e.src = w.qn WHERE w.d < 3)"
  {
    echo "# EXPLAIN (ANALYZE, BUFFERS) as $(sed 's|.*//\([^@]*\)@.*|\1|' <<<"$PG_APP") with metasync.tenant = 'default'"
    echo "# $($q "$PG_OWNER" -c "SELECT count(*) FROM assets") assets, $($q "$PG_OWNER" -c "SELECT count(*) FROM changes") change records, $($q "$PG_OWNER" -c "SELECT count(*) FROM tags") tags, $($q "$PG_OWNER" -c "SELECT count(*) FROM edges") edges"
    for sql in \
      "SELECT $cols FROM assets a WHERE a.tenant = 'default' AND a.qn = '$col'" \
      "SELECT $cols FROM assets a WHERE a.tenant = 'default' AND a.type = 'column' AND NOT a.deleted AND a.qn > '$mid' ORDER BY a.qn LIMIT 101" \
      "SELECT $cols FROM assets a WHERE a.tenant = 'default' AND a.parent = '$tbl' AND NOT a.deleted ORDER BY a.qn LIMIT 101" \
      "SELECT $cols FROM assets a WHERE a.tenant = 'default' AND a.search @@ to_tsquery('simple', 'customer:* & id:*') AND NOT a.deleted ORDER BY a.qn LIMIT 101" \
      "$walk SELECT w.qn, MIN(w.d), a.type, a.name FROM w LEFT JOIN assets a ON a.tenant = 'default' AND a.qn = w.qn AND NOT a.deleted WHERE w.d > 0 AND w.qn <> '$tbl' GROUP BY w.qn, a.type, a.name ORDER BY MIN(w.d), w.qn" \
      "SELECT seq, op, qn, type, version, before, after, changed, cause, ts FROM changes WHERE tenant = 'default' AND seq > $seq ORDER BY seq LIMIT 1000" \
      "SELECT seq, op, qn, type, version, before, after, changed, cause, ts FROM changes WHERE tenant = 'default' AND qn = '$col' ORDER BY seq"; do
      echo
      echo "## $sql" | cut -c1-400
      $q "$PG_APP" -c "SET metasync.tenant = 'default'" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $sql"
    done
  } >"$out" 2>&1
  log "$1: EXPLAIN ANALYZE of the main read queries in $out"
}

# start_server DATADIR [config flags...]: sets SERVER_PID and URL.
start_server() {
  local dd=$1; shift
  rm -rf "$dd"; mkdir -p "$dd"
  "$MS" serve --listen 127.0.0.1:0 --data-dir "$dd" --store.synchronous "$SYNC" "$@" \
    >"$dd.log" 2>&1 &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 1 200); do
    URL=$(sed -n 's|.*http: listening on \(http://[0-9.:]*\).*|\1|p' "$dd.log" | head -1)
    [[ -n $URL ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dd.log" >&2; exit 4; }
    sleep 0.05
  done
  [[ -n $URL ]] || { echo "bench: server did not start" >&2; cat "$dd.log" >&2; exit 4; }
  for _ in $(seq 1 100); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# cpu_secs PID: user+system CPU seconds of a process so far.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# thread_cpu PID: CPU seconds of the server's live threads, busiest first (the request threads
# of finished connections are gone by then; the busiest one is the writer).
thread_cpu() {
  local hz; hz=$(getconf CLK_TCK)
  for t in /proc/"$1"/task/*; do
    [[ -r $t/stat ]] || continue
    awk -v tid="${t##*/}" -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%.1f tid %s\n", ($12 + $13) / hz, tid }' "$t/stat"
  done | sort -rn | head -4 | awk '{ printf "%s%s=%ss", (NR > 1 ? ", " : ""), $2 " " $3, $1 }' || true
}

# hist_q FILE METRIC Q [LABEL]: quantile Q of a Prometheus histogram, linear inside the bucket
# (like histogram_quantile). LABEL restricts to series carrying it, e.g. lane="fast".
hist_q() {
  awk -v m="$2_bucket" -v q="$3" -v lab="${4:-}" '
    index($0, m "{") == 1 && (lab == "" || index($0, lab) > 0) {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = le; cum[n] = $NF + 0
    }
    END {
      if (!n || cum[n] == 0) { print "nan"; exit }
      rank = q * cum[n]; prevb = 0; prevc = 0
      for (i = 1; i <= n; i++) {
        if (cum[i] >= rank) {
          if (bound[i] == "+Inf") { printf "%.4f\n", prevb; exit }
          b = bound[i] + 0
          if (cum[i] == prevc) { printf "%.4f\n", b; exit }
          printf "%.4f\n", prevb + (b - prevb) * (rank - prevc) / (cum[i] - prevc); exit
        }
        if (bound[i] != "+Inf") prevb = bound[i] + 0
        prevc = cum[i]
      }
    }' "$1"
}

# metric FILE NAME: value of an unlabelled sample (0 when absent).
metric() { awk -v m="$2" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }

bytes_of() { du -sb "$1" 2>/dev/null | awk '{ print $1 }' || echo 0; }

fmt_int() { printf "%'d" "${1%.*}" 2>/dev/null || printf "%s" "$1"; }

# ---- input -----------------------------------------------------------------------------------

HIER=$DIR/estate-$N-hierarchical.ndjson
SHUF=$DIR/estate-$N-shuffled.ndjson
COLS=$DIR/columns-$N.ndjson
COLS_TABLES=$DIR/columns-$N-tables.ndjson
STAMP=$DIR/estate-$N.stamp
if [[ ! -s $HIER || ! -s $SHUF || ! -s $COLS || ! -s $COLS_TABLES || ! -f $STAMP || $GEN -nt $STAMP ]]; then
  log "generating $N assets into $DIR"
  "$GEN" --assets "$N" --out "$HIER" --shuffled "$SHUF" 2>"$STAMP"
  "$GEN" --columns "$N" --out "$COLS" --tables-out "$COLS_TABLES" 2>>"$STAMP"
fi
ESTATE_DESC=$(head -1 "$STAMP" | sed 's/^gen_estate: //')
log "estate: $ESTATE_DESC"

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
NCPU=$(nproc)
log "machine: $NCPU CPUs, load average $LOAD0 before the run, $(uname -r)"
if awk -v l="$LOAD0" 'BEGIN { exit !(l >= 0.5) }'; then
  log "WARNING: the machine is not idle (load $LOAD0): figures will be lower than on a quiet machine"
fi

declare -A R
SUMMARY=""
add() { SUMMARY+="${SUMMARY:+,}\"$1\":$2"; }

# ---- ingest runs -----------------------------------------------------------------------------

for order in $ORDERS; do
  case $order in
    hierarchical) FILE=$HIER ;;
    shuffled) FILE=$SHUF ;;
    *) echo "bench: unknown order $order" >&2; exit 2 ;;
  esac
  DD=$DIR/data-$order
  REPS=1
  [[ $order == hierarchical ]] && REPS=$REPEAT
  RUNS=()
  for rep in $(seq 1 "$REPS"); do
    # The client's input comes from the page cache, and no writeback of earlier steps (the
    # generated estate, the previous run's database) competes with the run's own syncs.
    cat "$FILE" >/dev/null
    sync
    if [[ $STORE == postgres ]]; then
      pg_db "bench_$order"
      start_server "$DD" --store.url "$PG_APP"
    else
      start_server "$DD"
    fi
    log "$order: ingesting $(fmt_int "$N") assets into $URL (batch $BATCH, parallel $PAR, synchronous=$SYNC; run $rep of $REPS)"
    PERF_PID=""
    if [[ $PERF == 1 && $order == hierarchical ]] && command -v perf >/dev/null; then
      perf record -F 499 -g -p "$SERVER_PID" -o "$DIR/perf-$order.data" >/dev/null 2>&1 &
      PERF_PID=$!
    fi
    C0=$(cpu_secs "$SERVER_PID")
    T0=$(date +%s.%N)
    set +e
    /usr/bin/time -f "%e %U %S %M" -o "$DIR/ingest-$order.time" \
      "$MS" ingest "$FILE" --server "$URL" --batch "$BATCH" --parallel "$PAR" --no-progress --quiet \
      >"$DIR/ingest-$order.out" 2>&1
    RC=$?
    set -e
    T1=$(date +%s.%N)
    C1=$(cpu_secs "$SERVER_PID")
    [[ -n $PERF_PID ]] && { kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true; }
    THREADS=$(thread_cpu "$SERVER_PID" || true)
    curl -fsS "$URL/metrics" >"$DIR/metrics-$order.txt"
    # A search waits until the full-text index (SQLite: kept by the indexer thread) holds every
    # commit before it: how long the first one takes is how far the index was behind.
    SEARCH_MS=$(curl -fsS -o /dev/null -w '%{time_total}' "$URL/api/v1/assets?q=bench&limit=1" |
      awk '{ printf "%.0f", $1 * 1000 }')
    HWM=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
    stop_server
    [[ $RC == 0 ]] || { log "$order: ingest exited $RC"; cat "$DIR/ingest-$order.out" >&2; }
    M=$DIR/metrics-$order.txt
    WALL=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
    ACC=$(awk '/^accepted:/ { print $2 }' "$DIR/ingest-$order.out")
    REJ=$(awk '/^rejected:/ { print $2 }' "$DIR/ingest-$order.out")
    RATE=$(awk -v n="${ACC:-0}" -v w="$WALL" 'BEGIN { printf "%.0f", n / w }')
    COMMITS=$(metric "$M" metasync_commits_total)
    APPLIED=$(metric "$M" metasync_events_applied_total)
    PER_COMMIT=$(awk -v a="$APPLIED" -v c="$COMMITS" 'BEGIN { printf "%d", c ? a / c + 0.5 : 1 }')
    P50=$(hist_q "$M" metasync_commit_duration_seconds 0.50)
    P99=$(hist_q "$M" metasync_commit_duration_seconds 0.99)
    # The writer is the busiest server thread (thread_cpu lists the busiest first). Commit durations
    # no longer measure it: with deferred durability they include the sync, overlapped with the
    # next commit's work.
    BUSIEST=$(sed -n 's/^tid [0-9]*=\([0-9.]*\)s.*/\1/p' <<<"$THREADS")
    WRITER_BUSY=$(awk -v s="${BUSIEST:-0}" -v w="$WALL" 'BEGIN { printf "%.0f", 100 * s / w }')
    SRV_CPU=$(awk -v a="$C0" -v b="$C1" -v w="$WALL" 'BEGIN { printf "%.2f", (b - a) / w }')
    read -r _ CLI_U CLI_S _ <"$DIR/ingest-$order.time"
    CLI_CPU=$(awk -v u="$CLI_U" -v s="$CLI_S" -v w="$WALL" 'BEGIN { printf "%.2f", (u + s) / w }')
    if [[ $STORE == postgres ]]; then
      DB_B=$(pg_bytes "$PG_OWNER")
    else
      DB_B=0  # the store and its search database, each with its WAL
      for f in metasync.db metasync.db-wal metasync-search.db metasync-search.db-wal; do
        [[ -e $DD/$f ]] && DB_B=$(( DB_B + $(bytes_of "$DD/$f") ))
      done
    fi
    SNAP_B=$(bytes_of "$DD/snapshots")
    ALL_B=$(bytes_of "$DD")
    ORPH=$(awk '/^metasync_orphans/ { print $2 }' "$M" | head -1)
    log "$order: $(fmt_int "$ACC") accepted in ${WALL}s = $(fmt_int "$RATE") assets/s; $COMMITS commits (~$PER_COMMIT events each), commit p50 ${P50}s p99 ${P99}s; writer (busiest thread) on CPU ${WRITER_BUSY}% of the wall time; server ${SRV_CPU} cores, client ${CLI_CPU} cores; peak RSS $((HWM / 1024)) MiB"
    log "$order: server threads: $THREADS"
    log "$order: the first search after the last answer took ${SEARCH_MS} ms (the full-text index catching up)"
    declare -p RATE WALL ACC REJ COMMITS PER_COMMIT P50 P99 WRITER_BUSY SRV_CPU CLI_CPU HWM DB_B \
      SNAP_B ALL_B ORPH >"$DIR/run-$order-$rep.vars"
    RUNS+=("$RATE $rep")
    [[ $KEEP == 1 && $rep == "$REPS" ]] || rm -rf "$DD"
    (( rep < REPS )) && sleep 2 # let the disk settle between runs
  done
  # The median run (by assets/s) stands for the order; the others are printed.
  MED=$(printf '%s\n' "${RUNS[@]}" | sort -n | awk -v n="$REPS" 'NR == int((n + 1) / 2) { print $2 }')
  # shellcheck disable=SC1090
  source "$DIR/run-$order-$MED.vars"
  RUN_RATES=$(printf '%s\n' "${RUNS[@]}" | awk '{ print $1 }' | paste -sd, -)
  (( REPS > 1 )) && log "$order: $REPS runs at $RUN_RATES assets/s; the median one (run $MED) is reported"

  RD=$DIR/raw-$order
  rm -rf "$RD"
  if [[ $STORE == postgres ]]; then
    pg_explain "$order"
    SRC_OWNER=$PG_OWNER
    pg_db "bench_copy_$order"
    log "$order: PostgreSQL's COPY of the same rows into a fresh database with the same schema"
    "$ROOT/bench/pg_copy.sh" "$SRC_OWNER" "$PG_APP" "$PG_OWNER" "$RD" "copy-$order" \
      >"$DIR/raw-$order.out" 2>"$DIR/raw-$order.err"
  else
    log "$order: raw SQLite loop, transactions of $PER_COMMIT rows (the engine's average commit)"
    sync # the engine run's database is written back first, as before the engine run
    "$RAW" --file "$FILE" --dir "$RD" --txn "$PER_COMMIT" --sync "$SYNC" --label "raw-$order" \
      >"$DIR/raw-$order.out" 2>"$DIR/raw-$order.err"
  fi
  RAW_RATE=$(sed -n 's/^RAW .*rows_per_s=\([0-9]*\).*/\1/p' "$DIR/raw-$order.out")
  RAW_P50=$(sed -n 's/^RAW .*commit_p50_ms=\([0-9.]*\).*/\1/p' "$DIR/raw-$order.out")
  RAW_P99=$(sed -n 's/^RAW .*commit_p99_ms=\([0-9.]*\).*/\1/p' "$DIR/raw-$order.out")
  RAW_DB=$(sed -n 's/^RAW .*db_bytes=\([0-9]*\).*/\1/p' "$DIR/raw-$order.out")
  head -1 "$DIR/raw-$order.out" >&2
  [[ $KEEP == 1 ]] || rm -rf "$RD"
  RATIO=$(awk -v a="$RATE" -v b="$RAW_RATE" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
  ESQL_RATE=0
  if [[ " $ENGINE_SQL " == *" $order "* ]]; then
    log "$order: raw loop with the engine's lookups too (attribution)"
    "$RAW" --file "$FILE" --dir "$RD" --txn "$PER_COMMIT" --sync "$SYNC" --engine-sql \
      --label "raw+lookups-$order" >"$DIR/rawsql-$order.out" 2>"$DIR/rawsql-$order.err"
    ESQL_RATE=$(sed -n 's/^RAW .*rows_per_s=\([0-9]*\).*/\1/p' "$DIR/rawsql-$order.out")
    head -1 "$DIR/rawsql-$order.out" >&2
    rm -rf "$RD"
  fi

  R[$order.rate]=$RATE; R[$order.wall]=$WALL; R[$order.acc]=$ACC; R[$order.rej]=$REJ
  R[$order.p50]=$P50; R[$order.p99]=$P99; R[$order.hwm]=$HWM; R[$order.percommit]=$PER_COMMIT
  R[$order.db]=$DB_B; R[$order.snap]=$SNAP_B; R[$order.all]=$ALL_B
  R[$order.raw]=$RAW_RATE; R[$order.rawp50]=$RAW_P50; R[$order.rawp99]=$RAW_P99
  R[$order.rawdb]=$RAW_DB; R[$order.ratio]=$RATIO; R[$order.esql]=$ESQL_RATE
  R[$order.busy]=$WRITER_BUSY; R[$order.srvcpu]=$SRV_CPU; R[$order.clicpu]=$CLI_CPU
  add "$order" "{\"assets\":${ACC:-0},\"rejected\":${REJ:-0},\"seconds\":$WALL,\"assets_per_s\":$RATE,\"commits\":$COMMITS,\"events_per_commit\":$PER_COMMIT,\"commit_p50_s\":$P50,\"commit_p99_s\":$P99,\"writer_busy_pct\":$WRITER_BUSY,\"server_cores\":$SRV_CPU,\"client_cores\":$CLI_CPU,\"peak_rss_kib\":$HWM,\"db_bytes\":$DB_B,\"snapshot_bytes\":$SNAP_B,\"data_dir_bytes\":$ALL_B,\"orphans_left\":${ORPH:-0},\"raw_rows_per_s\":${RAW_RATE:-0},\"raw_commit_p50_ms\":${RAW_P50:-0},\"raw_commit_p99_ms\":${RAW_P99:-0},\"raw_db_bytes\":${RAW_DB:-0},\"raw_with_lookups_rows_per_s\":${ESQL_RATE:-0},\"ratio_to_raw\":$RATIO,\"runs_assets_per_s\":[$RUN_RATES]}"
  sleep 2 # let the disk settle between runs
done

# ---- fast lane under a bulk backlog -----------------------------------------------------------

FL_LINE=""
if [[ $FASTLANE == 1 ]]; then
  DD=$DIR/data-fastlane
  start_server "$DD"
  log "fast lane: loading the backlog's $(wc -l <"$COLS_TABLES") containers first"
  "$MS" ingest "$COLS_TABLES" --server "$URL" --batch "$BATCH" --parallel "$PAR" --no-progress \
    --quiet >"$DIR/ingest-backlog-tables.out" 2>&1 || true
  log "fast lane: backlog of $(fmt_int "$N") columns (ingest --parallel $BL_PAR --batch $BL_BATCH), $PROBES table events probed"
  "$MS" ingest "$COLS" --server "$URL" --batch "$BL_BATCH" --batch-bytes 16777216 \
    --parallel "$BL_PAR" --no-progress --quiet >"$DIR/ingest-backlog.out" 2>&1 &
  INGEST_PID=$!
  "$PROBE" --server "$URL" --count "$PROBES" --interval-ms 20 --watch-pid "$INGEST_PID" \
    >"$DIR/fastlane.out" 2>"$DIR/fastlane.err" || true
  kill "$INGEST_PID" 2>/dev/null || true
  wait "$INGEST_PID" 2>/dev/null || true
  INGEST_PID=""
  curl -fsS "$URL/metrics" >"$DIR/metrics-fastlane.txt" || true
  FL_HWM=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
  stop_server
  [[ $KEEP == 1 ]] || rm -rf "$DD"
  FL_LINE=$(grep '^FASTLANE' "$DIR/fastlane.out" || echo "FASTLANE probes=0")
  head -1 "$DIR/fastlane.out" >&2 || true
  BLAG_P99=$(hist_q "$DIR/metrics-fastlane.txt" metasync_ingest_lag_seconds 0.99 'lane="bulk"')
  FLC_P99=$(hist_q "$DIR/metrics-fastlane.txt" metasync_commit_duration_seconds 0.99)
  fl() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$FL_LINE"; }
  R[fl.p50]=$(fl p50_ms); R[fl.p99]=$(fl p99_ms); R[fl.max]=$(fl max_ms)
  R[fl.n]=$(fl probes); R[fl.under]=$(fl under_backlog); R[fl.qmed]=$(fl bulk_queue_median)
  R[fl.qmax]=$(fl bulk_queue_max); R[fl.hwm]=$FL_HWM; R[fl.slag]=$(fl server_lag_p99_ms)
  add fastlane "{\"probes\":${R[fl.n]:-0},\"under_backlog\":${R[fl.under]:-0},\"p50_ms\":${R[fl.p50]:-0},\"p99_ms\":${R[fl.p99]:-0},\"max_ms\":${R[fl.max]:-0},\"bulk_queue_median\":${R[fl.qmed]:-0},\"bulk_queue_max\":${R[fl.qmax]:-0},\"server_fast_lag_p99_ms\":${R[fl.slag]:-0},\"server_bulk_lag_p99_s\":$BLAG_P99,\"commit_p99_s\":$FLC_P99,\"peak_rss_kib\":${FL_HWM:-0}}"
fi

# ---- report ------------------------------------------------------------------------------------

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
echo
echo "MetaSync benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $LOAD0 → $LOAD1"
echo "estate: $ESTATE_DESC"
echo "ingest: metasync ingest --batch $BATCH --parallel $PAR; store.synchronous=$SYNC"
echo
printf '%-13s %12s %11s %11s %9s %10s %12s %10s %12s %7s\n' order assets/s commit-p50 commit-p99 'peak RSS' 'B/asset' 'B/asset(db)' raw-rows/s raw+lookups ratio
for order in $ORDERS; do
  printf '%-13s %12s %10.1fms %10.1fms %7dMiB %10.0f %12.0f %10s %12s %6.2fx\n' "$order" \
    "$(fmt_int "${R[$order.rate]}")" "$(awk -v v="${R[$order.p50]}" 'BEGIN { print v * 1000 }')" \
    "$(awk -v v="${R[$order.p99]}" 'BEGIN { print v * 1000 }')" "$(( ${R[$order.hwm]} / 1024 ))" \
    "$(awk -v b="${R[$order.all]}" -v n="$N" 'BEGIN { print b / n }')" \
    "$(awk -v b="${R[$order.db]}" -v n="$N" 'BEGIN { print b / n }')" \
    "$(fmt_int "${R[$order.raw]:-0}")" "$(fmt_int "${R[$order.esql]:-0}")" "${R[$order.ratio]}"
done
if [[ $STORE == postgres ]]; then
  echo "  (store: PostgreSQL; B/asset(db): tables + indexes (pg_total_relation_size) / assets;"
  echo "   raw: PostgreSQL's COPY of the same rows into the same tables, one transaction; ratio = assets/s / raw)"
else
echo "  (B/asset: the whole data directory incl. snapshots / assets; B/asset(db): metasync.db + metasync-search.db + WALs;"
echo "   raw: the minimal SQLite loop, same schema, same rows, transactions of the engine's average commit size;"
echo "   raw+lookups: the same plus every read/update the engine's writer issues; ratio = assets/s / raw)"
fi
for order in $ORDERS; do
  echo "  $order: ${R[$order.percommit]} events/commit on average; writer on CPU ${R[$order.busy]}% of the run; server used ${R[$order.srvcpu]} cores, the ingest client ${R[$order.clicpu]}; raw commit p50/p99 ${R[$order.rawp50]}/${R[$order.rawp99]} ms"
done
if [[ $FASTLANE == 1 ]]; then
  echo
  echo "fast lane under backlog: ${R[fl.n]:-0} probes (${R[fl.under]:-0} met a non-empty bulk lane; median ${R[fl.qmed]:-0}, max ${R[fl.qmax]:-0} events queued):"
  echo "  posted → visible p50 ${R[fl.p50]:-?} ms, p99 ${R[fl.p99]:-?} ms, max ${R[fl.max]:-?} ms; server-side enqueue → commit of the probes p99 ${R[fl.slag]:-?} ms; bulk-lane lag p99 ${BLAG_P99}s; peak RSS $(( ${R[fl.hwm]:-0} / 1024 )) MiB"
fi
echo
[[ $STORE == postgres ]] && echo "target (PostgreSQL store): ratio to COPY ≥ 0.5"
echo "targets (2 cores): ratio ≥ 0.70 | hierarchical ≥ 100,000 assets/s | fast-lane p99 ≤ 50 ms | RSS ≤ 256 MiB"
JSON="{\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"store\":\"$STORE\",\"assets\":$N,\"cpus\":$NCPU,\"load_before\":$LOAD0,\"load_after\":$LOAD1,\"batch\":$BATCH,\"parallel\":$PAR,\"synchronous\":\"$SYNC\",$SUMMARY}"
echo "$JSON" >"$DIR/summary.json"
echo "BENCH_SUMMARY $JSON"
