#!/usr/bin/env bash
# Issue 18's table, reproducibly: how much of `scan`'s rate survives a load, in the same run,
# rounds alternating, medians. Rows:
#   - scan of a synthetic seven-year v2 export, and a load of every CCLF table → Parquet, → SQLite;
#   - a load of the same export served gzip-compressed (`synth --gzip`) → Parquet, against plain;
#   - scan of SIZE_MB of generated EOBs, and a load of a one-column view (`id`) → Parquet.
# The header projection against DuckDB with an explicit minimal schema is benches/load.sh.
#
#   benches/throughput.sh                       # 60 beneficiaries × 7 years, 1000 MB, 3 rounds
#   BENES=20 SIZE_MB=300 ROUNDS=5 benches/throughput.sh
#   BIN=target/pgo/use/release/claimline ... # another build of claimline (the profile-guided one
#                                        # of benches/pgo.sh, say); the default is target/release
#
# Each share is given twice: the median reference time over the median run time, and the
# median over the rounds of each round's own share (the steadier of the two when the VM's
# speed moves between rounds).
#
# After the table, the loads' phases (setup, scan, claim history, commit, current tables: each
# load's `--json` report), medians, say where their time went.
#
# Needs: cargo, GNU time, GNU date (`%N`), python3.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-60}
SIZE_MB=${SIZE_MB:-1000}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-target/bench-throughput}
mkdir -p "$WORK"
# Every load writes a new folder; they go once the timed runs are over (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

cargo build --release -q -p claimline --bin claimline
cargo build --release -q -p claimline-synth --example eob_ndjson
BIN=${BIN:-target/release/claimline}

EXPORT="$WORK/export-v2-$BENES"
GZ="$WORK/export-v2-$BENES-gz"
[ -d "$EXPORT" ] || "$BIN" synth --benes "$BENES" --years 7 --seed 7 --out "$EXPORT" >/dev/null
[ -d "$GZ" ] || "$BIN" synth --benes "$BENES" --years 7 --seed 7 --gzip --out "$GZ" >/dev/null
EOBS_DIR="$WORK/eobs-$SIZE_MB"
if [ ! -f "$EOBS_DIR/ExplanationOfBenefit.000.ndjson" ]; then
  mkdir -p "$EOBS_DIR"
  target/release/examples/eob_ndjson "$EOBS_DIR/ExplanationOfBenefit.000.ndjson" "$SIZE_MB" 42
fi
# Every input read once from disk, whatever wrote it (see benches/page_cache.py).
python3 benches/page_cache.py "$EXPORT" "$GZ" "$EOBS_DIR"
EXPORT_MB=$(du -cb "$EXPORT"/*.ndjson | tail -1 | awk '{print $1/1e6}')
EOBS_MB=$(du -cb "$EOBS_DIR"/*.ndjson | tail -1 | awk '{print $1/1e6}')

declare -A T M P
run() { # name, command...
  local name=$1; shift
  # GNU time's wall clock has hundredths of a second, too coarse for shares near 1 (0.30 s
  # against 0.32 s): the nanosecond clock around it gives the wall time to the millisecond
  # (GNU time's own start and exit included, the same for every run), GNU time the peak RSS.
  local start end
  start=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$WORK/t" "$@" > "$WORK/stdout"
  end=$(date +%s%N)
  read -r kb < "$WORK/t"
  T[$name]+="$(awk -v ns=$((end - start)) 'BEGIN {printf "%.3f", ns / 1e9}') "; M[$name]+="$kb "
  # A load's report (`--json`) says where its time went, phase by phase.
  if [ "${1##*/}" = claimline ] && [ "$2" = load ]; then
    P[$name]+="$(python3 benches/phases.py "$WORK/stdout") "
  fi
}
for r in $(seq "$ROUNDS"); do
  run scan "$BIN" scan "$EXPORT"
  run parquet "$BIN" load "$EXPORT" --out "$(fresh_out parquet)" --format parquet --no-report --json
  run sqlite "$BIN" load "$EXPORT" --out "$(fresh_out sqlite)" --format sqlite --no-report --json
  run gzip "$BIN" load "$GZ" --out "$(fresh_out gzip)" --format parquet --no-report --json
  run scan_eobs "$BIN" scan "$EOBS_DIR"
  run id_only "$BIN" load "$EOBS_DIR" --views benches/views/id_only.json --all-versions \
    --out "$(fresh_out id_only)" --format parquet --no-report --json
  echo "round $r done" >&2
done
fresh_out_clear

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# The median over the rounds of each round's own share (its reference's time over the run's):
# a run and its reference, seconds apart, meet the VM at the same speed, where the medians of
# each may come from different hours of it (its speed doubled and halved within minutes in
# the forty-ninth round).
round_share() { # name, reference name
  python3 -c 'import statistics, sys
runs, refs = ([float(x) for x in a.split()] for a in sys.argv[1:3])
print(statistics.median(r / t for t, r in zip(runs, refs)))' "${T[$1]}" "${T[$2]}"
}
row() { # label, name, MB, reference name
  local s kb ref own
  s=$(echo "${T[$2]}" | median); kb=$(echo "${M[$2]}" | median); ref=$(echo "${T[$4]}" | median)
  own=$(round_share "$2" "$4")
  awk -v l="$1" -v s="$s" -v mb="$3" -v kb="$kb" -v ref="$ref" -v own="$own" \
    'BEGIN {printf "| %s | %.3f | %.0f | %.2f | %.2f | %.0f |\n", l, s, mb/s, ref/s, own, kb/1024}'
}
echo "inputs: synthetic 7-year v2 export, $BENES beneficiaries, ${EXPORT_MB%.*} MB of NDJSON; generated EOBs, ${EOBS_MB%.*} MB; $ROUNDS rounds, medians"
echo "| run | s | MB/s of NDJSON | share of scan | share, median of the rounds' own | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
row "scan, synthetic export" scan "$EXPORT_MB" scan
row "load, every CCLF table → Parquet" parquet "$EXPORT_MB" scan
row "load, every CCLF table → SQLite" sqlite "$EXPORT_MB" scan
row "load from the gzip export → Parquet (share: of the plain load)" gzip "$EXPORT_MB" parquet
row "scan, generated EOBs" scan_eobs "$EOBS_MB" scan_eobs
row "load of a one-column view (id) → Parquet, --all-versions" id_only "$EOBS_MB" scan_eobs

phases() { # label, name: the median of each phase over the rounds (from the loads' reports)
  echo "${P[$2]}" | python3 -c '
import statistics, sys
label = sys.argv[1]
runs = [[float(x) for x in r.split(",")] for r in sys.stdin.read().split()]
cols = [statistics.median(c) for c in zip(*runs)]
print("| " + label + " | " + " | ".join(f"{c:.3f}" for c in cols) + " |")' "$1"
}
echo
echo "Where the loads' time went (their reports' phases, seconds, medians):"
echo "| load | setup | scan | claim history | commit | current tables |"
echo "|---|---|---|---|---|---|"
phases "every CCLF table → Parquet" parquet
phases "every CCLF table → SQLite" sqlite
phases "gzip export → Parquet" gzip
phases "one-column view → Parquet" id_only
