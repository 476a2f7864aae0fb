#!/usr/bin/env bash
# bench/kafka.sh — the Kafka benchmark (`make bench-kafka`): N Avro events through Kafka (the
# librdkafka mock cluster, build/ms_mock_cluster) into the embedded store. Measures, in one run:
#   core    the HTTP NDJSON ingest rate of the same estate (bench/run.sh, hierarchical order only),
#           the figure the Kafka rate is compared with;
#   kafka   events/s = N / (first produce → last event processed by the server), producing as fast
#           as librdkafka takes them while MetaSync consumes (bench_kafka_produce);
#   raw     the same topics read by a minimal librdkafka loop, no decoding (bench_kafka_consume_raw),
#           with the server stopped: the transport limit;
#   latency produced → visible in the change feed (SSE), producing at half the measured Kafka rate.
# See docs/performance.md ("Kafka ingest").
#
# Environment (all optional):
#   BUILD=build             build directory holding metasync, ms_mock_cluster and bench_*
#   BENCH_EVENTS=1000000    events in the estate (e.g. 100000 for a quick run)
#   BENCH_DIR=/tmp/metasync-bench-kafka   where the NDJSON, data directories and logs go
#   BENCH_REPEAT=1          repetitions of core + kafka + raw; the report gives their medians
#   BENCH_CORE=1            0: skip the HTTP figure (BENCH_CORE_RATE=N to give one instead)
#   BENCH_LATENCY=1         0: skip the latency run
#   BENCH_LAT_EVENTS=200000 events produced in the latency run (the first ones of the estate)
#   BENCH_LAT_WARMUP=0     seconds at the start of the latency run left out of the quantiles (a fresh
#                           producer, consumer and store; their worst is reported as warm-up max)
#   BENCH_LAT_RATE=         events/s of the latency run; default half the median Kafka rate
#   BENCH_FAST_PARTITIONS=16 BENCH_BULK_PARTITIONS=64   partitions of the two topics: the mock
#                           keeps ~5 MiB per partition in memory, so 1M events need many (raw
#                           reports `dropped` when the mock no longer held some)
#   BENCH_SYNC=full         store.synchronous of the servers (as bench/run.sh)
#   BENCH_SERVER_FLAGS="--kafka.properties.fetch.wait.max.ms 10"   extra `metasync serve` flags.
#                           The default makes the mock behave like Kafka: a real broker answers a
#                           fetch as soon as it has data (fetch.min.bytes=1), the mock holds a fetch
#                           that finds none for fetch.wait.max.ms (librdkafka's 500 ms), which adds
#                           ~350 ms to the p50 latency. "" runs with librdkafka's defaults.
#   BENCH_PERF=0            1: `perf record` the server during the (first) Kafka run
#   BENCH_KEEP=0            1: keep the data directories
# Output: a table, and one line `BENCH_SUMMARY {json}` (also $BENCH_DIR/summary.json). Timings are
# reported, never asserted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${BENCH_EVENTS:-1000000}
DIR=${BENCH_DIR:-/tmp/metasync-bench-kafka}
REPEAT=${BENCH_REPEAT:-1}
CORE=${BENCH_CORE:-1}
CORE_RATE=${BENCH_CORE_RATE:-}
LATENCY=${BENCH_LATENCY:-1}
LAT_N=${BENCH_LAT_EVENTS:-200000}
LAT_RATE=${BENCH_LAT_RATE:-}
LAT_WARMUP=${BENCH_LAT_WARMUP:-0}
PF=${BENCH_FAST_PARTITIONS:-16}
PB=${BENCH_BULK_PARTITIONS:-64}
SYNC=${BENCH_SYNC:-full}
PERF=${BENCH_PERF:-0}
KEEP=${BENCH_KEEP:-0}
read -r -a SERVER_FLAGS <<<"${BENCH_SERVER_FLAGS---kafka.properties.fetch.wait.max.ms 10}"
FAST_T=metasync.events
BULK_T=metasync.events.bulk
((LAT_N > N)) && LAT_N=$N

MS=$BUILD/metasync
MOCK=$BUILD/ms_mock_cluster
GEN=$BUILD/bench_gen_estate
PROD=$BUILD/bench_kafka_produce
RAW=$BUILD/bench_kafka_consume_raw
for b in "$MS" "$MOCK" "$GEN" "$PROD" "$RAW"; do
  [[ -x $b ]] || { echo "bench-kafka: $b is missing; build first (make build, or BUILD=dir)" >&2; exit 2; }
done
mkdir -p "$DIR"

SERVER_PID=""
MOCK_PID=""
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  [[ -n $MOCK_PID ]] && kill "$MOCK_PID" 2>/dev/null || true
  exec 3>&- 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '[bench-kafka %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fmt_int() { printf "%'d" "${1%.*}" 2>/dev/null || printf "%s" "$1"; }
kv() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; } # kv NAME LINE: value of NAME=… in LINE
kvn() { local v; v=$(kv "$1" "$2"); echo "${v:-0}"; } # the same, 0 when absent (for the JSON)
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (!NR) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# thread_cpu PID: CPU seconds of the process's busiest threads, with their names.
thread_cpu() {
  local hz; hz=$(getconf CLK_TCK)
  for t in /proc/"$1"/task/*; do
    [[ -r $t/stat ]] || continue
    awk -v name="$(cat "$t/comm" 2>/dev/null)" -v tid="${t##*/}" -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%.1f %s/%s\n", ($12 + $13) / hz, name, tid }' "$t/stat"
  done | sort -rn | head -6 | awk '{ printf "%s%s=%ss", (NR > 1 ? ", " : ""), $2, $1 }' || true
}
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# start_mock: a fresh mock cluster with the two topics; sets MOCK_PID and BROKERS.
start_mock() {
  rm -f "$DIR/mock.in"
  mkfifo "$DIR/mock.in"
  "$MOCK" <"$DIR/mock.in" >"$DIR/mock.out" 2>"$DIR/mock.err" &
  MOCK_PID=$!
  exec 3>"$DIR/mock.in"
  BROKERS=""
  for _ in $(seq 1 100); do
    BROKERS=$(head -1 "$DIR/mock.out" 2>/dev/null || true)
    [[ -n $BROKERS ]] && break
    sleep 0.05
  done
  [[ -n $BROKERS ]] || { echo "bench-kafka: the mock cluster did not start" >&2; exit 4; }
  echo "topic $FAST_T $PF" >&3
  echo "topic $BULK_T $PB" >&3
  for _ in $(seq 1 100); do
    (($(grep -c '^ok' "$DIR/mock.out" || true) >= 2)) && return
    sleep 0.05
  done
  echo "bench-kafka: the mock cluster did not create the topics" >&2; cat "$DIR/mock.out" >&2; exit 4
}

stop_mock() {
  exec 3>&-
  wait "$MOCK_PID" 2>/dev/null || true
  MOCK_PID=""
}

# start_server DATADIR: a fresh server consuming the topics (no changes sink: the core figure has
# none either); waits until its consumer has its partitions. Sets SERVER_PID and URL.
start_server() {
  local dd=$1
  rm -rf "$dd"; mkdir -p "$dd"
  "$MS" serve --listen 127.0.0.1:0 --data-dir "$dd" --store.synchronous "$SYNC" \
    --kafka.brokers "$BROKERS" --kafka.changes-topic "" --kafka.topics "$FAST_T" \
    --kafka.bulk-topics "$BULK_T" --kafka.group-id "bench-$RANDOM" "${SERVER_FLAGS[@]}" >"$dd.log" 2>&1 &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 1 200); do
    URL=$(sed -n 's|.*http: listening on \(http://[0-9.:]*\).*|\1|p' "$dd.log" | head -1)
    [[ -n $URL ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dd.log" >&2; exit 4; }
    sleep 0.05
  done
  [[ -n $URL ]] || { echo "bench-kafka: server did not start" >&2; cat "$dd.log" >&2; exit 4; }
  for _ in $(seq 1 600); do grep -q 'kafka: assigned' "$dd.log" && return; sleep 0.05; done
  echo "bench-kafka: the server's consumer got no partitions" >&2; cat "$dd.log" >&2; exit 4
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# ---- input -----------------------------------------------------------------------------------

FILE=$DIR/estate-$N.ndjson
STAMP=$DIR/estate-$N.stamp
if [[ ! -s $FILE || ! -f $STAMP || $GEN -nt $STAMP ]]; then
  log "generating $N events into $DIR"
  "$GEN" --assets "$N" --out "$FILE" 2>"$STAMP"
fi
ESTATE_DESC=$(head -1 "$STAMP" | sed 's/^gen_estate: //')
log "estate: $ESTATE_DESC"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
NCPU=$(nproc)
log "machine: $NCPU CPUs, load average $LOAD0 before the run"

# ---- runs ------------------------------------------------------------------------------------

CORES="" KRATES="" PRATES="" RAWS="" CPUS=""
RAW_DROPPED=0 APPLIED=0 REJECTED=0
for r in $(seq 1 "$REPEAT"); do
  if [[ $CORE == 1 && -z $CORE_RATE ]]; then
    log "run $r: core HTTP ingest of the same $N events (bench/run.sh, hierarchical)"
    BUILD=$BUILD BENCH_ASSETS=$N BENCH_DIR=$DIR/core BENCH_ORDERS=hierarchical BENCH_ENGINE_SQL="" \
      BENCH_FASTLANE=0 BENCH_SYNC=$SYNC BENCH_PERF=0 bash "$ROOT/bench/run.sh" >"$DIR/core-$r.out" 2>"$DIR/core-$r.err"
    C=$(sed -n 's/^BENCH_SUMMARY .*"hierarchical":{[^}]*"assets_per_s":\([0-9]*\).*/\1/p' "$DIR/core-$r.out")
    log "run $r: core $(fmt_int "${C:-0}") events/s"
    CORES+=" ${C:-0}"
  fi

  start_mock
  DD=$DIR/data-kafka
  start_server "$DD"
  log "run $r: producing $(fmt_int "$N") Avro events to $FAST_T ($PF partitions) and $BULK_T ($PB) on $BROKERS"
  PERF_PID=""
  if [[ $PERF == 1 && $r == 1 ]] && command -v perf >/dev/null; then
    perf record -F 499 -g -p "$SERVER_PID" -o "$DIR/perf-kafka.data" >/dev/null 2>&1 &
    PERF_PID=$!
  fi
  C0=$(cpu_secs "$SERVER_PID")
  T0=$(date +%s.%N)
  "$PROD" --brokers "$BROKERS" --server "$URL" --file "$FILE" --count "$N" \
    --fast-topic "$FAST_T" --bulk-topic "$BULK_T" >"$DIR/kafka-$r.out" 2>"$DIR/kafka-$r.err" || true
  T1=$(date +%s.%N)
  C1=$(cpu_secs "$SERVER_PID")
  log "run $r: server threads: $(thread_cpu "$SERVER_PID")"
  [[ -n $PERF_PID ]] && { kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true; }
  curl -fsS "$URL/metrics" >"$DIR/metrics-kafka-$r.txt" || true
  stop_server
  L=$(grep '^KPRODUCE' "$DIR/kafka-$r.out" || echo "KPRODUCE events=0")
  cat "$DIR/kafka-$r.err" >&2
  log "run $r: $L"
  KRATES+=" $(kv events_per_s "$L")"
  PRATES+=" $(kv produce_per_s "$L")"
  APPLIED=$(kv applied "$L"); REJECTED=$(kv rejected "$L")
  # The producer encodes before it starts the clock: count the server's CPU over the whole call.
  CPUS+=" $(awk -v a="$C0" -v b="$C1" -v s="$(kv visible_s "$L")" 'BEGIN { printf "%.2f", s ? (b - a) / s : 0 }')"

  log "run $r: raw consume of both topics (server stopped)"
  "$RAW" --brokers "$BROKERS" --topics "$FAST_T,$BULK_T" >"$DIR/raw-$r.out" 2>"$DIR/raw-$r.err" || true
  RL=$(grep '^KRAW' "$DIR/raw-$r.out" || echo "KRAW messages=0")
  log "run $r: $RL"
  RAWS+=" $(kv msgs_per_s "$RL")"
  RAW_DROPPED=$(kv dropped "$RL")
  stop_mock
  [[ $KEEP == 1 ]] || rm -rf "$DD"
  sleep 2
done

CORE_MED=${CORE_RATE:-$(median <<<"$CORES")}
K_MED=$(median <<<"$KRATES")
P_MED=$(median <<<"$PRATES")
RAW_MED=$(median <<<"$RAWS")
CPU_MED=$(median <<<"$CPUS")
R_CORE=$(awk -v a="$K_MED" -v b="$CORE_MED" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
R_RAW=$(awk -v a="$K_MED" -v b="$RAW_MED" 'BEGIN { printf "%.2f", b ? a / b : 0 }')

# ---- latency at half the rate ------------------------------------------------------------------

LL="KLATENCY events=0"
if [[ $LATENCY == 1 ]]; then
  LAT_RATE=${LAT_RATE:-$(awk -v k="$K_MED" 'BEGIN { printf "%.0f", k / 2 }')}
  start_mock
  DD=$DIR/data-latency
  start_server "$DD"
  log "latency: $(fmt_int "$LAT_N") events at $(fmt_int "$LAT_RATE") events/s, followed on $URL/api/v1/changes/stream"
  "$PROD" --brokers "$BROKERS" --server "$URL" --file "$FILE" --count "$LAT_N" --rate "$LAT_RATE" \
    --fast-topic "$FAST_T" --bulk-topic "$BULK_T" --timeout-s 60 --warmup-s "$LAT_WARMUP" --dump "$DIR/latency.tsv" >"$DIR/latency.out" 2>"$DIR/latency.err" || true
  curl -fsS "$URL/metrics" >"$DIR/metrics-latency.txt" || true
  stop_server
  stop_mock
  [[ $KEEP == 1 ]] || rm -rf "$DD"
  LL=$(grep '^KLATENCY' "$DIR/latency.out" || echo "KLATENCY events=0")
  log "latency: $LL"
fi

# ---- report ------------------------------------------------------------------------------------

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
echo
echo "MetaSync Kafka benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $NCPU CPUs, load $LOAD0 → $LOAD1"
echo "estate: $ESTATE_DESC"
echo "topics: $FAST_T ($PF partitions), $BULK_T ($PB partitions) on the librdkafka mock cluster; store.synchronous=$SYNC; medians of $REPEAT run(s)"
echo
printf '%-34s %14s %s\n' measure value "runs"
printf '%-34s %14s %s\n' "core HTTP ingest (events/s)" "$(fmt_int "$CORE_MED")" "${CORES:- (given)}"
printf '%-34s %14s %s\n' "Kafka → store (events/s)" "$(fmt_int "$K_MED")" "$KRATES"
printf '%-34s %14s %s\n' "  producer alone (events/s)" "$(fmt_int "$P_MED")" "$PRATES"
printf '%-34s %14s %s\n' "  server CPU (cores)" "$CPU_MED" "$CPUS"
printf '%-34s %14s %s\n' "raw consume (messages/s)" "$(fmt_int "$RAW_MED")" "$RAWS"
printf '%-34s %14s\n' "Kafka / core" "${R_CORE}x"
printf '%-34s %14s\n' "Kafka / raw consume" "${R_RAW}x"
printf '%-34s %14s\n' "latency rate (events/s)" "$(fmt_int "$(kv rate "$LL")")"
printf '%-34s %14s\n' "  events seen / produced" "$(kv seen "$LL") / $(kv events "$LL")"
printf '%-34s %14s\n' "  produced → visible p50 (ms)" "$(kv p50_ms "$LL")"
printf '%-34s %14s\n' "  produced → visible p99 (ms)" "$(kv p99_ms "$LL")"
printf '%-34s %14s\n' "  produced → visible max (ms)" "$(kv max_ms "$LL")"
echo "  (applied $APPLIED, rejected $REJECTED in the last Kafka run; raw: $RAW_DROPPED messages no longer held by the mock)"
echo
echo "targets (2 cores): Kafka / core ≥ 0.70 | p99 ≤ 100 ms at half the maximum rate"
JSON="{\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"events\":$N,\"cpus\":$NCPU,\"load_before\":$LOAD0,\"load_after\":$LOAD1,\"repeat\":$REPEAT,\"synchronous\":\"$SYNC\",\"fast_partitions\":$PF,\"bulk_partitions\":$PB,\"core_events_per_s\":${CORE_MED:-0},\"kafka_events_per_s\":${K_MED:-0},\"producer_events_per_s\":${P_MED:-0},\"server_cores\":${CPU_MED:-0},\"raw_consume_msgs_per_s\":${RAW_MED:-0},\"raw_dropped\":${RAW_DROPPED:-0},\"ratio_to_core\":$R_CORE,\"ratio_to_raw\":$R_RAW,\"applied\":${APPLIED:-0},\"rejected\":${REJECTED:-0},\"latency\":{\"events\":$(kvn events "$LL"),\"seen\":$(kvn seen "$LL"),\"rate\":$(kvn rate "$LL"),\"p50_ms\":$(kvn p50_ms "$LL"),\"p90_ms\":$(kvn p90_ms "$LL"),\"p99_ms\":$(kvn p99_ms "$LL"),\"max_ms\":$(kvn max_ms "$LL")},\"runs\":{\"core\":[$(tr -s ' ' ',' <<<"${CORES# }")],\"kafka\":[$(tr -s ' ' ',' <<<"${KRATES# }")],\"raw\":[$(tr -s ' ' ',' <<<"${RAWS# }")]}}"
echo "$JSON" >"$DIR/summary.json"
echo "BENCH_SUMMARY $JSON"
