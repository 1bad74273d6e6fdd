#!/usr/bin/env bash
# Issue 20's numbers: every CCLF table of a synthetic seven-year v2 export into PostgreSQL, next
# to SQLite and Parquet in the same run, and next to PostgreSQL's own COPY of the same rows from
# CSV (the floor: no parsing, no views, no claim-history rule). Rounds alternate; medians.
# A throwaway server (tests/postgres-server, fsync on) on loopback, its own data folder.
#
#   benches/postgres.sh                  # 60 beneficiaries × 7 years (about 560 MB), 3 rounds
#   BENES=20 ROUNDS=5 benches/postgres.sh
#
# Needs: cargo, GNU time, PostgreSQL's server packages, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-60}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-target/bench-postgres}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# Every timed run writes a new output; they go once the timed runs are over
# (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

cargo build --release -q -p claimline --bin claimline
BIN=target/release/claimline
EXPORT="$WORK/export-v2-$BENES"
[ -d "$EXPORT" ] || "$BIN" synth --benes "$BENES" --years 7 --seed 7 --out "$EXPORT" >/dev/null
EXPORT_MB=$(du -cb "$EXPORT"/*.ndjson | tail -1 | awk '{print $1/1e6}')

PGDIR=$(mktemp -d /tmp/claimline-pgbench.XXXXXX)
trap 'tests/postgres-server stop "$PGDIR"' EXIT
PG_FSYNC=on tests/postgres-server start "$PGDIR"
URL=$(cat "$PGDIR/url")
export CLAIMLINE_POSTGRES_URL=$URL
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -q -v ON_ERROR_STOP=1 "$URL")

declare -A T M
run() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/last.json"
  read -r s kb < "$WORK/t"
  T[$name]+="$s "; M[$name]+="$kb "
}
for r in $(seq "$ROUNDS"); do
  run parquet "$BIN" load "$EXPORT" --out "$(fresh_out parquet)" --format parquet --no-report --json
  ROWS=$(python3 -c 'import json,sys; print(sum(json.load(open(sys.argv[1]))["tables"].values()))' "$WORK/last.json")
  run sqlite "$BIN" load "$EXPORT" --out "$(fresh_out sqlite)" --format sqlite --no-report --json
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS bench CASCADE"
  run postgres "$BIN" load "$EXPORT" --out "$(fresh_out postgres)" --format postgres \
    --postgres-schema bench --no-report --json
  # The floor: the same rows, as CSV files, into empty tables of the same types by COPY.
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS floor CASCADE" -c "CREATE SCHEMA floor"
  rm -rf "$WORK/csv"; mkdir -p "$WORK/csv"; chmod 777 "$WORK/csv"
  copies=()
  for t in $("${PSQL[@]}" -Atc "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bench' AND table_name <> '_claimline_runs'"); do
    "${PSQL[@]}" -c "CREATE TABLE floor.\"$t\" (LIKE bench.\"$t\")" \
      -c "\\copy bench.\"$t\" TO '$WORK/csv/$t.csv' CSV"
    copies+=(-c "\\copy floor.\"$t\" FROM '$WORK/csv/$t.csv' CSV")
  done
  run floor "${PSQL[@]}" "${copies[@]}"
  echo "round $r done" >&2
done
fresh_out_clear

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
row() { # label, name
  local s kb
  s=$(echo "${T[$2]}" | median); kb=$(echo "${M[$2]}" | median)
  awk -v l="$1" -v s="$s" -v mb="$EXPORT_MB" -v rows="$ROWS" -v kb="$kb" \
    'BEGIN {printf "| %s | %.2f | %.0f | %.0f | %.0f |\n", l, s, mb/s, rows/s, kb/1024}'
}
CSV_MB=$(du -cb "$WORK"/csv/*.csv | tail -1 | awk '{print $1/1e6}')
echo "input: synthetic 7-year v2 export, $BENES beneficiaries, ${EXPORT_MB%.*} MB of NDJSON; $ROWS rows in all tables; PostgreSQL $("${PSQL[@]}" -Atc 'SHOW server_version') on loopback, fsync on; $ROUNDS rounds, medians"
echo "| run | s | MB/s of NDJSON | rows/s | peak RSS MiB (client) |"
echo "|---|---|---|---|---|"
row "load, every CCLF table → Parquet" parquet
row "load, every CCLF table → SQLite" sqlite
row "load, every CCLF table → PostgreSQL" postgres
row "PostgreSQL's COPY of the same rows from CSV (${CSV_MB%.*} MB; the floor)" floor
