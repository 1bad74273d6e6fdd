#!/usr/bin/env bash
# Where a load's work goes, part by part, against `scan` of the same input.
#
# - Instructions (callgrind, one thread, deterministic: the same binary and input give the same
#   counts, unlike wall times on a shared VM): the load's total and its parts (the parse, the
#   views' `where` and rows, the rest of the link stage, rows made Arrow batches, the run's
#   Parquet parts, `current/`, loading the views), and `scan`'s total.
# - CPU time (`perf stat`, every thread, median of ROUNDS): the same two commands at full speed.
#   Its ratio above the instructions' ratio is what one thread's instruction count does not
#   show: kernel work (page faults, file writes), instructions that wait on memory, threads that
#   wait on each other.
#
#   benches/budget.sh                                      # 6 beneficiaries × 7 years (58 MB)
#   BENES=60 benches/budget.sh                             # the 582 MB export (minutes)
#   VIEWS=benches/views/id_only.json benches/budget.sh     # one view instead of every table
#
# Needs: cargo, valgrind; perf for the CPU-time rows (left out, with a note, when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-6}
ROUNDS=${ROUNDS:-5}
VIEWS=${VIEWS:-}
WORK=${WORK:-target/bench-budget}
mkdir -p "$WORK"
command -v valgrind >/dev/null || { echo "budget.sh needs valgrind (apt-get install valgrind)" >&2; exit 2; }

cargo build --release -q -p claimline --bin claimline
BIN=target/release/claimline
EXPORT="$WORK/export-v2-$BENES"
if [ ! -d "$EXPORT" ]; then # made aside, so that an interrupted run leaves no half an export
  rm -rf "$EXPORT.tmp"
  "$BIN" synth --benes "$BENES" --years 7 --seed 7 --out "$EXPORT.tmp" >/dev/null
  mv "$EXPORT.tmp" "$EXPORT"
fi
MB=$(du -cb "$EXPORT"/*.ndjson | tail -1 | awk '{printf "%.0f", $1/1e6}')
LOAD=(load "$EXPORT" --format parquet --no-report --run-id R1)
[ -n "$VIEWS" ] && LOAD+=(--views "$VIEWS")

fail() { echo "$1 failed; its output:" >&2; cat "$WORK/err" >&2; exit 1; }
rm -rf "$WORK/out"
RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$WORK/scan.cg" \
  "$BIN" scan "$EXPORT" >/dev/null 2>"$WORK/err" || fail scan
valgrind --tool=callgrind --callgrind-out-file="$WORK/load.cg" \
  "$BIN" "${LOAD[@]}" --threads 1 --out "$WORK/out" >/dev/null 2>"$WORK/err" || fail load

CPU=""
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
  # Every load writes a new folder; they go once the runs are over (benches/fresh_out.sh).
  . benches/fresh_out.sh
  for r in $(seq "$ROUNDS"); do
    s=$(perf stat -x, -e task-clock "$BIN" scan "$EXPORT" 2>&1 >/dev/null | awk -F, '/task-clock/ {print $1}')
    l=$(perf stat -x, -e task-clock "$BIN" "${LOAD[@]}" --out "$(fresh_out load)" 2>&1 >/dev/null |
      awk -F, '/task-clock/ {print $1}')
    CPU+="$s $l;"
  done
  fresh_out_clear
else
  echo "note: no perf here, so no CPU-time rows" >&2
fi

python3 - "$WORK/scan.cg" "$WORK/load.cg" "$CPU" "$MB" "${VIEWS:-every built-in view}" <<'EOF'
import re, statistics as st, subprocess, sys

def inclusive(path):
    """Total and the inclusive count of every function, by name (the largest, where inlining
    lists one function under several files)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", path],
                         capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"([\d,]+) \([\d. ]+%\)\s+PROGRAM TOTALS", out).group(1).replace(",", ""))
    funcs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([\d. ]+%\)\s+([^:\s][^:]*):(.*?)(?: \[[^\]]*\])?$", line)
        if m:
            n = int(m.group(1).replace(",", ""))
            funcs[m.group(3)] = max(funcs.get(m.group(3), 0), n)
    return total, funcs

def get(funcs, name):
    return max((n for k, n in funcs.items() if k == name or k.endswith("::" + name)), default=0)

scan_total, sf = inclusive(sys.argv[1])
total, f = inclusive(sys.argv[2])
stage1 = get(sf, "find_structural_bits_avx2") or get(sf, "find_structural_bits")
parse = get(f, "simd_json::Deserializer::fill_tape_padded")
where = get(f, "ViewDefinition::filter")
rows = get(f, "ViewDefinition::evaluate_filtered")
link = get(f, "claimline_link::Plan::evaluate_reading")
# These are in every load: a zero means the listing was not understood (a function renamed or
# inlined away), not that the part is free.
if 0 in (stage1, parse, rows, link) or link < where + rows:
    sys.exit(f"callgrind_annotate's listing not understood: stage 1 {stage1}, parse {parse}, "
             f"where {where}, rows {rows}, link stage {link}")
# The run's parts: `encode` closes a part that reaches 8 Mi rows itself, so the two counts
# overlap for a table that big (not for the inputs here).
parts = [
    ("parse (simd-json's stages 1 and 2)", parse),
    ("the views' `where`", where),
    ("the views' rows", rows),
    ("the rest of the link stage (lineage, cells, MBIs)", link - where - rows),
    ("rows made Arrow batches for the sink", get(f, "claimline_sink::arrow::record_batch")),
    ("the run's Parquet parts (encode, close)", get(f, "TableWriter::encode") + get(f, "TableWriter::close_part")),
    ("`current/` (cut, encode)", get(f, "claimline_sink::current::build_table")),
    ("views read and checked", get(f, "ViewDefinition::from_json") + get(f, "claimline_load::paths::check")),
]
rest = total - sum(n for _, n in parts)
print(f"input: synthetic 7-year v2 export, {sys.argv[4]} MB; views: {sys.argv[5]}")
print("| part of a load (callgrind, one thread) | M instructions | share of the load | per scan instruction |")
print("|---|---|---|---|")
for name, n in parts + [("everything else (line splitting, claim history, sinks' commit, …)", rest)]:
    print(f"| {name} | {n/1e6:,.1f} | {100*n/total:.1f}% | {n/scan_total:.2f} |")
print(f"| **the load** | **{total/1e6:,.1f}** | 100% | **{total/scan_total:.2f}** |")
print(f"| `scan` of the same input | {scan_total/1e6:,.1f} | | 1.00 |")
print(f"| of which simd-json's stage 1 (structural index, UTF-8) | {stage1/1e6:,.1f} | | {stage1/scan_total:.2f} |")
cpu = [tuple(map(float, r.split())) for r in sys.argv[3].split(";") if r.strip()]
if cpu:
    scan_ms = st.median(c[0] for c in cpu)
    load_ms = st.median(c[1] for c in cpu)
    print()
    print(f"CPU time (perf stat task-clock, every thread, median of {len(cpu)}): scan "
          f"{scan_ms:.0f} ms, load {load_ms:.0f} ms, ratio {load_ms/scan_ms:.2f} "
          f"(instructions: {total/scan_total:.2f})")
EOF
