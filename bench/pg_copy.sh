#!/usr/bin/env bash
# bench/pg_copy.sh — the PostgreSQL store's limit for bench/run.sh (BENCH_STORE=postgres): the
# rows the engine wrote (assets, tags, edges, change records, seen ids, tenants) copied out of
# its database, then timed: PostgreSQL's own COPY of exactly those rows into a fresh database
# with the same schema (indexes, generated full-text column), in one transaction (psql -1). As
# the tables' owner: PostgreSQL refuses COPY FROM under row-level security, so the limit skips
# the policy checks the store's inserts pay.
#
#   bench/pg_copy.sh SRC_OWNER_URL DST_APP_URL DST_OWNER_URL WORKDIR LABEL
# Prints a human line, then the machine line bench/run.sh reads:
#   RAW label=… rows=… secs=… rows_per_s=… txn=… commit_p50_ms=0 commit_p99_ms=0 db_bytes=…
set -euo pipefail
SRC=$1 DST_OWNER=$3 W=$4 LABEL=$5
mkdir -p "$W"
chmod 755 "$W"
declare -A COLS=(
  [tenants]="tenant, last_seq"
  [seen]="tenant, id"
  [assets]="tenant, qn, type, name, parent, attributes, version, created_at, updated_at, deleted, orphan"
  [tags]="tenant, qn, tag, source, origin"
  [edges]="tenant, src, dst, via"
  [changes]="tenant, seq, op, qn, type, version, before, after, changed, cause, ts"
)
ORDER=(tenants seen assets tags edges changes)
script=$W/copy.sql
: >"$script"
for t in "${ORDER[@]}"; do
  psql -X -q "$SRC" -c "\\copy (SELECT ${COLS[$t]} FROM $t) TO '$W/$t.copy'"
  echo "\\copy $t(${COLS[$t]}) FROM '$W/$t.copy'" >>"$script"
done
ROWS=$(wc -l <"$W/assets.copy")
T0=$(date +%s.%N)
psql -X -q -1 -v ON_ERROR_STOP=1 "$DST_OWNER" -f "$script"
T1=$(date +%s.%N)
BYTES=$(psql -X -A -t "$DST_OWNER" -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
RATE=$(awk -v n="$ROWS" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }')
echo "COPY of $ROWS assets with their change records, tags, edges and seen ids: ${SECS}s = $RATE assets/s"
echo "RAW label=$LABEL rows=$ROWS secs=$SECS rows_per_s=$RATE txn=$ROWS commit_p50_ms=0 commit_p99_ms=0 db_bytes=$BYTES"
rm -rf "$W"
