#!/usr/bin/env bash
# A load by beneficiaries, not by claims: an ACO's Patient and Coverage resources alone (a
# `_type=Patient,Coverage` export), at several counts of beneficiaries. What a load holds per
# beneficiary until its end (CCLF8's join, the MBIs, each Patient's place) grows with them,
# where the claims' state is bounded; benches/memory.sh's inputs (a few hundred beneficiaries
# with seven years of claims each) never show it.
#
# For each count N, benches/bene_copies.py copies the Patient and Coverage resources of a
# synthetic export (`claimline synth`, 100 beneficiaries, v2) to N beneficiaries (new ids and
# MBIs); a load of every CCLF table into Parquet, then one into SQLite, run with their anonymous
# memory sampled (benches/peak_anon.py). The table gives each load's peak, time, MB/s and
# phases, and the growth per beneficiary from one count to the next. Each count's input and
# outputs are removed before the next.
#
#   benches/benes.sh                              # 25,000, 50,000 and 100,000 beneficiaries
#   BENES="100000 200000" benches/benes.sh        # (about 53 KB of NDJSON a beneficiary)
#   BIN=/path/to/other/claimline benches/benes.sh # another build, for a comparison
#
# Needs: cargo, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-25000 50000 100000}
WORK=${WORK:-target/bench-benes}
mkdir -p "$WORK"
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p claimline --bin claimline
  BIN=target/release/claimline
fi
SOURCE="$WORK/source"
[ -d "$SOURCE" ] || "$BIN" synth --benes 100 --years 1 --seed 7 --out "$SOURCE" >/dev/null

echo "| beneficiaries | MB of NDJSON | → Parquet: peak anon MiB | s | MB/s | phases (setup, scan, history, commit) | → SQLite: peak anon MiB | s | phases |"
echo "|---|---|---|---|---|---|---|---|---|"
# A load's phases from its report, as the table gives them.
phases() {
  python3 benches/phases.py "$1" | awk -F, '{printf "%.2f, %.2f, %.2f, %.2f", $1, $2, $3, $4}'
}
prev_n="" prev_pq="" prev_sq=""
growth=""
for n in $BENES; do
  input="$WORK/benes-$n"
  rm -rf "$input" "$WORK/out-pq" "$WORK/out-sq"
  python3 benches/bene_copies.py "$SOURCE" "$n" "$input"
  python3 benches/page_cache.py "$input" >/dev/null
  mb=$(du -cb "$input"/*.ndjson | tail -1 | awk '{printf "%.0f", $1 / 1e6}')
  read -r pq pq_s pq_rc < <(python3 benches/peak_anon.py "$WORK/pq.json" -- \
    "$BIN" load "$input" --out "$WORK/out-pq" --format parquet --no-report --json)
  read -r sq sq_s sq_rc < <(python3 benches/peak_anon.py "$WORK/sq.json" -- \
    "$BIN" load "$input" --out "$WORK/out-sq" --format sqlite --no-report --json)
  # A load that failed has no figures to give.
  if [ "$pq_rc" != 0 ] || [ "$sq_rc" != 0 ]; then
    echo "$n beneficiaries: a load exited $pq_rc (Parquet) / $sq_rc (SQLite); see $WORK/pq.json, $WORK/sq.json" >&2
    exit 1
  fi
  rate=$(awk -v mb="$mb" -v s="$pq_s" 'BEGIN {printf "%.0f", mb / s}')
  echo "| $n | $mb | $pq | $pq_s | $rate | $(phases "$WORK/pq.json") | $sq | $sq_s | $(phases "$WORK/sq.json") |"
  if [ -n "$prev_n" ]; then
    growth+=$(awk -v a="$prev_n" -v b="$n" -v p0="$prev_pq" -v p1="$pq" -v s0="$prev_sq" -v s1="$sq" \
      'BEGIN {printf "%d → %d beneficiaries: Parquet %.2f KiB, SQLite %.2f KiB a beneficiary\n", a, b, (p1 - p0) * 1024 / (b - a), (s1 - s0) * 1024 / (b - a)}')
    growth+=$'\n'
  fi
  prev_n=$n prev_pq=$pq prev_sq=$sq
  rm -rf "$input" "$WORK/out-pq" "$WORK/out-sq"
done
echo
printf "Growth of the peak: %s" "${growth:-one count only}"
