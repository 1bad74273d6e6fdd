#!/usr/bin/env bash
# What one more column costs a load: CCLF5 (one row per carrier claim line, 52 columns) cut
# down to groups of its columns, each group loaded alone → Parquet from the synthetic
# seven-year v2 export, rounds alternating, medians of CPU time (user + system). Groups:
#   - one: the line number alone (`CLM_LINE_NUM`), the load's cost without the columns;
#   - line: the columns read from the line itself (`item`), not `%resource`, not `{}`;
#   - claim: the columns read from the claim (`%resource`, not `%rowIndex`: evaluated once per
#     claim and copied to its lines), with the line number;
#   - all: the 52 columns.
# A group's CPU over `one`'s, per cell it adds (rows × its columns past the first), is what a
# column costs a row: its evaluation, its conversions to the table's cells and Arrow, and its
# two encodings (the run's part and `current/`).
#
#   benches/columns.sh                 # 60 beneficiaries × 7 years, 5 rounds
#   BENES=20 ROUNDS=9 benches/columns.sh
#
# Needs: cargo, GNU time, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-60}
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-target/bench-throughput}
mkdir -p "$WORK/columns"
# Every load writes a new folder; they go once the timed runs are over (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

cargo build --release -q -p claimline --bin claimline
BIN=target/release/claimline
EXPORT="$WORK/export-v2-$BENES"
[ -d "$EXPORT" ] || "$BIN" synth --benes "$BENES" --years 7 --seed 7 --out "$EXPORT" >/dev/null
python3 benches/page_cache.py "$EXPORT"

# The groups, each a view of its own table (`cclf5_<group>`).
python3 - "$WORK/columns" <<'PY'
import copy, json, sys
view = json.load(open("mappings/cclf/v2/cclf5.json"))
columns = view["select"][0]["column"]
claim = lambda c: "%resource" in c["path"] and "%rowIndex" not in c["path"]
line_number = [c for c in columns if c["name"] == "CLM_LINE_NUM"]
groups = {
    "one": line_number,
    "line": [c for c in columns if "%resource" not in c["path"] and c["path"].strip() != "{}"],
    "claim": line_number + [c for c in columns if claim(c)],
    "all": columns,
}
for name, cols in groups.items():
    v = copy.deepcopy(view)
    v["name"] = f"cclf5_{name}"
    v["select"][0]["column"] = cols
    json.dump(v, open(f"{sys.argv[1]}/{name}.json", "w"))
PY

NAMES="one line claim all"
declare -A CPU
for round in $(seq "$ROUNDS"); do
  for g in $NAMES; do
    out=$(fresh_out "$g")
    /usr/bin/time -f "%U %S" -o "$WORK/columns/time" "$BIN" load "$EXPORT" \
      --views "$WORK/columns/$g.json" --format parquet --no-report --json --out "$out" \
      > "$WORK/columns/$g.report.json"
    CPU[$g]+="$(awk '{print $1 + $2}' "$WORK/columns/time") "
  done
  echo "round $round done" >&2
done
fresh_out_clear

python3 - "$WORK/columns" "$ROUNDS" "${CPU[one]}" "${CPU[line]}" "${CPU[claim]}" "${CPU[all]}" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], sys.argv[2]
cpu = dict(zip(["one", "line", "claim", "all"], (list(map(float, a.split())) for a in sys.argv[3:7])))
print(f"CCLF5's columns by group, {rounds} rounds, medians of CPU (user + system)")
print("| group | columns | rows | CPU s | over `one` | ns per added cell |")
print("|---|---|---|---|---|---|")
base = statistics.median(cpu["one"])
for g, times in cpu.items():
    view = json.load(open(f"{work}/{g}.json"))
    n = len(view["select"][0]["column"])
    rows = json.load(open(f"{work}/{g}.report.json"))["tables"][f"cclf5_{g}"]
    med = statistics.median(times)
    # Each round's own difference from `one` (the runs of a round are seconds apart).
    own = statistics.median(t - o for t, o in zip(times, cpu["one"]))
    per_cell = f"{own / (rows * (n - 1)) * 1e9:.0f}" if n > 1 else ""
    print(f"| {g} | {n} | {rows} | {med:.3f} | {own:+.3f} | {per_cell} |")
PY
