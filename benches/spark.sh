#!/usr/bin/env bash
# The Python and Spark paths next to the CLI, on one synthetic seven-year export of about 1 GB,
# in the same run, alternating, ROUNDS times: `claimline load` (every CCLF table to Parquet),
# `claimline.read` (every table in memory), `claimline.spark.load` on local[2] (every table to
# Parquet), and Spark's own `spark.read.json` with an explicit minimal schema doing a CCLF1-like
# header projection of the EOBs. Prints one JSON line per job (benches/spark_bench.py: wall
# time, MB/s of NDJSON, peak RSS of the whole process tree).
#
#   benches/spark.sh                  # 115 beneficiaries x 7 years (~1.07 GB), 2 rounds
#   BENES=30 ROUNDS=1 benches/spark.sh
#
# Needs: cargo, python3, Java 17 (pyspark, pandas and pyarrow come from PyPI into a virtualenv
# this script makes), maturin (also from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-115}
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-target/bench-spark}
mkdir -p "$WORK"

cargo build --release -q -p claimline --bin claimline
export CLAIMLINE="$PWD/target/release/claimline"

VENV="$WORK/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "maturin>=1.9,<2" "pyspark==4.3.0" "pandas>=2.2,<3" pyarrow
fi
rm -rf "$WORK/wheels"
"$VENV/bin/maturin" build --release --quiet --out "$WORK/wheels"
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$WORK"/wheels/claimline-*.whl

EXPORT="$WORK/export-$BENES"
if [ ! -d "$EXPORT" ]; then
  "$CLAIMLINE" synth --benes "$BENES" --years 7 --seed 42 --out "$EXPORT"
fi
du -sh "$EXPORT"

# Every timed run writes a new output; they go once the timed runs are over
# (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear
for round in $(seq "$ROUNDS"); do
  for mode in cli read spark_load spark_json; do
    "$VENV/bin/python" benches/spark_bench.py "$mode" "$EXPORT" "$(fresh_out "$mode")"
  done
done
fresh_out_clear
