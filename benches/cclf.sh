#!/usr/bin/env bash
# CCLF files both ways, end to end: a seeded synthetic export is loaded to SQLite, exported as
# CCLF files (`claimline export cclf`), and those files loaded back (`claimline load-cclf`) to
# Parquet, to SQLite and to both, several rounds, alternating. Prints medians of wall time and
# MB/s of CCLF records, and peak RSS.
#
#   benches/cclf.sh                       # 60 beneficiaries × 7 years, v3, 3 rounds, files ×10
#   BENES=20 ROUNDS=5 REPEAT=1 benches/cclf.sh
#
# REPEAT=N loads each exported file N times over (the records repeated in one file, as a
# bigger delivery; CCLF0 left out), so the load's rate is measured on more than the export.
#
# Needs: cargo, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-60}
YEARS=${YEARS:-7}
VERSION=${VERSION:-v3}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-10}
WORK=${WORK:-target/bench-cclf}
mkdir -p "$WORK"
# Every timed run writes a new output; they go once the timed runs are over
# (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

cargo build --release -q -p claimline --bin claimline
BIN=target/release/claimline

EXPORT="$WORK/export-$VERSION-$BENES-$YEARS"
if [ ! -d "$EXPORT" ]; then
  "$BIN" synth --benes "$BENES" --years "$YEARS" --version "$VERSION" --seed 7 --out "$EXPORT" >/dev/null
fi
NDJSON=$(du -cb "$EXPORT"/*.ndjson | tail -1 | cut -f1)

BCDA=$(fresh_out bcda)
/usr/bin/time -f "%e %M" -o "$WORK/t" "$BIN" load "$EXPORT" --out "$BCDA" --format sqlite >/dev/null
read -r LOAD_S LOAD_KB < "$WORK/t"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A SECS RSS
for round in $(seq "$ROUNDS"); do
  FILES=$(fresh_out files)
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$BIN" export cclf --from "$BCDA" --out "$FILES" --aco 1234 >/dev/null
  read -r s kb < "$WORK/t"; SECS[export]+="$s "; RSS[export]+="$kb "
  for format in parquet sqlite both; do
    DELIVERY=$(fresh_out delivery)
    mkdir -p "$DELIVERY"
    for f in "$FILES"/P.A*ZC[1-9AB]*; do
      for _ in $(seq "$REPEAT"); do cat "$f"; done > "$DELIVERY/$(basename "$f")"
    done
    /usr/bin/time -f "%e %M" -o "$WORK/t" "$BIN" load-cclf "$DELIVERY" --out "$(fresh_out "back-$format")" --format "$format" >/dev/null
    read -r s kb < "$WORK/t"; SECS[$format]+="$s "; RSS[$format]+="$kb "
  done
done
CCLF=$(du -cb "$DELIVERY"/P.A* | tail -1 | cut -f1)
RECORDS=$(cat "$DELIVERY"/P.A*ZC[1-9AB]* | wc -l)
EXPORTED=$(du -cb "$FILES"/P.A* | tail -1 | cut -f1)
fresh_out_clear

echo "input: $VERSION synthetic export, $BENES beneficiaries × $YEARS years, $((NDJSON / 1000000)) MB NDJSON; exported CCLF files: $((EXPORTED / 1000000)) MB; loaded (×$REPEAT): $((CCLF / 1000000)) MB, $RECORDS records"
echo "load (NDJSON → SQLite, once): ${LOAD_S} s, $(awk -v b="$NDJSON" -v s="$LOAD_S" 'BEGIN {printf "%.0f", b/1e6/s}') MB/s, peak RSS $((LOAD_KB / 1024)) MiB"
printf '| step | median s | MB/s of CCLF records | records/s | peak RSS MiB |\n|---|---|---|---|---|\n'
for step in export parquet sqlite both; do
  s=$(echo "${SECS[$step]}" | tr ' ' '\n' | grep . | median)
  kb=$(echo "${RSS[$step]}" | tr ' ' '\n' | grep . | median)
  name=$([ "$step" = export ] && echo "export cclf (SQLite → files)" || echo "load-cclf → $step")
  bytes=$([ "$step" = export ] && echo "$EXPORTED" || echo "$CCLF")
  records=$([ "$step" = export ] && echo $((RECORDS / REPEAT)) || echo "$RECORDS")
  awk -v n="$name" -v s="$s" -v b="$bytes" -v r="$records" -v kb="$kb" \
    'BEGIN {printf "| %s | %.2f | %.0f | %.0f | %.0f |\n", n, s, b/1e6/s, r/s, kb/1024}'
done
