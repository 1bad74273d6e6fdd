#!/usr/bin/env bash
# What one more column costs a load: CCLF5 (one row per carrier claim line, 52 columns) cut
# down to groups of its columns, each group loaded alone → Parquet from the synthetic
# seven-year v2 export, rounds alternating, medians of CPU time (user + system, to the
# microsecond: GNU time's hundredths of a second would be 24 ns a cell of the `line` group).
# Groups:
#   - one: the line number alone (`CLM_LINE_NUM`), the load's cost without the columns;
#   - line: the columns read from the line itself (`item`): not `%resource`, not `{}`, with the
#     line number (16);
#   - claim: the columns read from the claim (`%resource`, not `%rowIndex`: evaluated once per
#     claim and copied to its lines), with the line number (24);
#   - all: the 52 columns, also the 4 that join a line to the claim's care team and diagnoses
#     (`%rowIndex`) and the 9 unmapped ones (`{}`).
# Every group's copy of the view drops the `claimline/link` tag of `BENE_MBI_ID` (the MBI
# lookup): with it a load reads the Patients first and writes `bene_xref` and `cclf9` too, work
# that no column's count should carry. A group's CPU over `one`'s (each round's own), per cell
# it adds (rows × its columns past the first), is what a column costs a row: its evaluation,
# its conversions to the table's cells and Arrow, and its two encodings (the run's part and
# `current/`).
#
#   benches/columns.sh                 # 60 beneficiaries × 7 years, 5 rounds
#   BENES=20 ROUNDS=9 benches/columns.sh
#   BIN=/tmp/claimline-before benches/columns.sh
#
# Needs: cargo, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-60}
ROUNDS=${ROUNDS:-5}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
WORK=${WORK:-target/bench-throughput}
mkdir -p "$WORK/columns"
# Every load writes a new folder; they go once the timed runs are over (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

# `BIN=path/to/claimline` measures that build (two builds compared: run the script with each,
# in turn); without it, the tree's release build.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p claimline --bin claimline
  BIN=target/release/claimline
fi
echo "measuring $BIN" >&2
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
    for c in cols:
        c["tag"] = [t for t in c.get("tag", []) if t["name"] != "claimline/link"]
    json.dump(v, open(f"{sys.argv[1]}/{name}.json", "w"))
PY

# CPU seconds (user + system) of a command, its standard output to a file.
cpu_of() { # OUTPUT_FILE COMMAND ARGS…
  python3 - "$@" <<'PY'
import os, sys
out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
pid = os.fork()
if pid == 0:
    os.dup2(out, 1)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as e:
        print(f"{sys.argv[2]}: {e}", file=sys.stderr)
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"{sys.argv[2]} failed ({os.waitstatus_to_exitcode(status)})")
print(f"{usage.ru_utime + usage.ru_stime:.6f}")
PY
}

NAMES="one line claim all"
declare -A CPU
for round in $(seq "$ROUNDS"); do
  for g in $NAMES; do
    out=$(fresh_out "$g")
    CPU[$g]+="$(cpu_of "$WORK/columns/$g.report.json" "$BIN" load "$EXPORT" \
      --views "$WORK/columns/$g.json" --format parquet --no-report --json --out "$out") "
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
for g, times in cpu.items():
    view = json.load(open(f"{work}/{g}.json"))
    n = len(view["select"][0]["column"])
    rows = json.load(open(f"{work}/{g}.report.json"))["tables"][f"cclf5_{g}"]
    med = statistics.median(times)
    # Each round's own difference from `one` (the runs of a round are seconds apart).
    own = statistics.median(t - o for t, o in zip(times, cpu["one"]))
    per_cell = f"{own / (rows * (n - 1)) * 1e9:.0f}" if n > 1 and rows else ""
    print(f"| {g} | {n} | {rows} | {med:.3f} | {own:+.3f} | {per_cell} |")
PY
