#!/usr/bin/env bash
# Issue 18's memory target, by input size: peak anonymous memory (resident memory less the
# mapped input's pages) under 1 GiB at any input size. For each size, `claimline synth` writes
# a seven-year v2 export; a load of every CCLF table into Parquet, then one into SQLite, run
# with their anonymous memory sampled (benches/peak_anon.py); the table gives each peak, each
# load's time and phases, and the growth per GB from one size to the next. Each size's input
# and outputs are removed before the next.
#
#   benches/memory.sh                 # 1, 5 and 10 GB of EOB NDJSON
#   SIZES="5 10 20" benches/memory.sh # (free disk: a little over the largest size, twice)
#
# Needs: cargo, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-1 5 10}
SEED=${SEED:-42}
WORK=${WORK:-target/bench-memory}
BIN=target/release/claimline
mkdir -p "$WORK"
cargo build --release -q -p claimline --bin claimline

echo "| GB of EOB NDJSON | EOBs | → Parquet: peak anon MiB | s | phases (setup, scan, history, commit, current) | → SQLite: peak anon MiB | s |"
echo "|---|---|---|---|---|---|---|"
prev_gb="" prev_pq="" prev_sq=""
growth=""
for gb in $SIZES; do
  # A seven-year v2 beneficiary is about 9.6 MB of EOB NDJSON.
  benes=$(( (gb * 10000 + 95) / 96 ))
  export_dir="$WORK/export-$gb"
  rm -rf "$export_dir" "$WORK/out-pq" "$WORK/out-sq"
  "$BIN" synth --benes "$benes" --years 7 --seed "$SEED" --out "$export_dir" >/dev/null
  python3 benches/page_cache.py "$export_dir" >/dev/null
  read -r pq pq_s _ < <(python3 benches/peak_anon.py "$WORK/pq.json" -- \
    "$BIN" load "$export_dir" --out "$WORK/out-pq" --format parquet --no-report --json)
  read -r sq sq_s _ < <(python3 benches/peak_anon.py "$WORK/sq.json" -- \
    "$BIN" load "$export_dir" --out "$WORK/out-sq" --format sqlite --no-report --json)
  phases=$(python3 benches/phases.py "$WORK/pq.json" | awk -F, '{printf "%.2f, %.2f, %.2f, %.2f, %.2f", $1, $2, $3, $4, $5}')
  eobs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['resources'].get('ExplanationOfBenefit', 0))" "$WORK/pq.json")
  echo "| $gb | $eobs | $pq | $pq_s | $phases | $sq | $sq_s |"
  if [ -n "$prev_gb" ]; then
    growth+=$(awk -v a="$prev_gb" -v b="$gb" -v p1="$prev_pq" -v p2="$pq" -v s1="$prev_sq" -v s2="$sq" \
      'BEGIN {printf "%s → %s GB: Parquet %+.0f MiB per GB, SQLite %+.0f MiB per GB\n", a, b, (p2-p1)/(b-a), (s2-s1)/(b-a)}')
    growth+=$'\n'
  fi
  prev_gb=$gb prev_pq=$pq prev_sq=$sq
  rm -rf "$export_dir" "$WORK/out-pq" "$WORK/out-sq"
done
echo
printf '%s' "$growth"
