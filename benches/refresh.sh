#!/usr/bin/env bash
# `current/`'s refresh against a growing history: its memory must not grow with the output's
# claim versions (issue 18's memory target, "at any input size", for outputs loaded run after
# run). One seven-year export of SIZE_GB (gzip, as BCDA serves it) is loaded RUNS times into
# one Parquet output (each load a new run touching every claim: the refresh's heaviest case),
# then a small export (SMALL_BENES beneficiaries) as one run more: the common case of a short
# run into a long history. Each load's peak anonymous memory (sampled as benches/peak_anon.py
# samples it), the peak after its scan (the commit and the refresh, from the same samples),
# and its phases.
#
#   benches/refresh.sh                          # 20 GB, three runs, then 60 beneficiaries
#   SIZE_GB=5 RUNS=4 benches/refresh.sh
#   BIN=/path/to/other/claimline benches/refresh.sh   # another build, for a comparison
#
# Needs: cargo, python3. Free disk: about a twentieth of SIZE_GB for the gzip export, and the
# outputs.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_GB=${SIZE_GB:-20}
RUNS=${RUNS:-3}
SMALL_BENES=${SMALL_BENES:-60}
SEED=${SEED:-42}
WORK=${WORK:-target/bench-refresh}
mkdir -p "$WORK"
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p claimline --bin claimline
  BIN=target/release/claimline
fi

# A seven-year v2 beneficiary is about 9.6 MB of EOB NDJSON.
benes=$(( (SIZE_GB * 10000 + 95) / 96 ))
big="$WORK/export-$SIZE_GB-gz"
small="$WORK/export-small-$SMALL_BENES"
# (Written aside and renamed: an export cut short is not taken for a whole one next time.)
if [ ! -d "$big" ]; then
  rm -rf "$big.tmp"
  "$BIN" synth --benes "$benes" --years 7 --seed "$SEED" --gzip --out "$big.tmp" >/dev/null
  mv "$big.tmp" "$big"
fi
if [ ! -d "$small" ]; then
  rm -rf "$small.tmp"
  "$BIN" synth --benes "$SMALL_BENES" --years 7 --seed 7 --out "$small.tmp" >/dev/null
  mv "$small.tmp" "$small"
fi
python3 benches/page_cache.py "$big" "$small" >/dev/null
out="$WORK/out"
rm -rf "$out"

echo "| load | claim versions before | peak anon MiB | after the scan MiB | s | phases (setup, scan, history, commit, current) |"
echo "|---|---|---|---|---|---|"
versions=0
load() { # name, input, run id
  python3 - "$WORK/load.json" "$1" "$versions" "$BIN" load "$2" --out "$out" --format parquet \
    --no-report --json --run-id "$3" <<'PY'
import json, subprocess, sys, time
sys.path.insert(0, "benches")
from peak_anon import status_kib

report, name, versions, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
samples = []
start = time.monotonic()
with open(report, "w") as out:
    p = subprocess.Popen(cmd, stdout=out)
    while p.poll() is None:
        samples.append((time.monotonic() - start, status_kib(p.pid, "RssAnon") / 1024))
        time.sleep(0.02)
wall = time.monotonic() - start
if p.returncode != 0:
    sys.exit(f"{name}: exit {p.returncode}")
r = json.load(open(report))
phases = [r["phases"][k] for k in ("setup", "scan", "history", "commit", "current")]
# The process's start is a few ms before the report's setup: samples after setup, scan and
# the claim history are the commit's and the refresh's.
scan_end = sum(phases[:3]) + 0.05
after = max((m for t, m in samples if t > scan_end), default=0)
peak = max((m for _, m in samples), default=0)
print(f"| {name} | {versions} | {peak:.0f} | {after:.0f} | {wall:.2f} | "
      + ", ".join(f"{x:.2f}" for x in phases) + " |")
PY
  versions=$(( versions + $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tables'].get('_claimline_claims', 0))" "$WORK/load.json") ))
}
# Run ids in order, whatever RUNS.
for i in $(seq 1 "$RUNS"); do
  printf -v id '20261207T%06dZ' "$i"
  load "$SIZE_GB GB, run $i" "$big" "$id"
done
printf -v id '20261207T%06dZ' "$((RUNS + 1))"
load "$SMALL_BENES beneficiaries, run $((RUNS + 1))" "$small" "$id"
rm -rf "$out"
