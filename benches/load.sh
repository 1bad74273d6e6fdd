#!/usr/bin/env bash
# End-to-end load benchmark: `claimline load` with a header view to Parquet, next to DuckDB doing
# the same projection of the same NDJSON file to Parquet, in the same run, alternating, several
# times. Prints medians of wall time, MB/s, rows/s and peak RSS, and of claimline's phases (its
# `--json` report's `phases`). claimline's time is its whole process; DuckDB's runs from its
# connection to the end of its COPY, timed by its script (Python's start and `import duckdb`, about
# 0.2-0.3 s here, are not the engine's work; the process's time is printed beside it). The
# ratio of the two tools is also given round by round (median and range): the two run seconds
# apart, at one speed of a VM whose speed moves. VIEW picks
# the projection:
# `cclf1_like` (11 CCLF1-like columns, with the principal diagnosis and the line count) or
# `header8` (issue 18's 8 columns: id, patient, claim type, claim id, dates, payment, status).
#
#   benches/load.sh            # 1000 MB of generated R4 EOBs, 3 rounds, cclf1_like
#   SIZE_MB=200 ROUNDS=5 VIEW=header8 benches/load.sh
#   for s in 1000 2500 5000; do SIZE_MB=$s VIEW=header8 benches/load.sh; done   # the ratio by size
#   BIN=target/pgo/use/release/claimline ... # another build of claimline (the profile-guided one
#                                        # of benches/pgo.sh, say); the default is target/release
#
# Needs: cargo, python3 (DuckDB comes from PyPI into a virtualenv this script makes), GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-1000}
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-42}
WORK=${WORK:-target/bench-load}
THREADS=${THREADS:-0}
VIEW=${VIEW:-cclf1_like}
case "$VIEW" in
  cclf1_like | header8) ;;
  *) echo "VIEW must be cclf1_like or header8, not $VIEW" >&2; exit 2 ;;
esac
mkdir -p "$WORK"
# Every timed run writes a new output; they go once the timed runs are over
# (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

cargo build --release -q -p claimline --bin claimline
cargo build --release -q -p claimline-synth --example eob_ndjson
BIN=${BIN:-target/release/claimline}

INPUT_DIR="$WORK/input-$SIZE_MB-$SEED"
INPUT="$INPUT_DIR/ExplanationOfBenefit.000.ndjson"
if [ ! -f "$INPUT" ]; then
  mkdir -p "$INPUT_DIR"
  target/release/examples/eob_ndjson "$INPUT" "$SIZE_MB" "$SEED"
fi
# The input read once from disk, whatever wrote it: both tools meet the same page cache (see
# benches/page_cache.py).
python3 benches/page_cache.py "$INPUT"
BYTES=$(stat -c %s "$INPUT")
EOBS=$(wc -l < "$INPUT")

VENV="$WORK/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "duckdb>=1.3"
fi

# One DuckDB script, the projection by VIEW: the SELECT list and the explicit schema declaring
# only the fields that projection reads (what a skilled user would write).
cat > "$WORK/duckdb_load.py" <<'PY'
import sys, time, duckdb
view, src, dst, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
CLM_TYPE = "list_filter(type.coding, lambda x: x.system = 'https://bluebutton.cms.gov/resources/variables/nch_clm_type_cd')[1].code AS clm_type_cd"
CLM_ID = "list_filter(identifier, lambda x: x.system = 'https://bluebutton.cms.gov/resources/variables/clm_id')[1].value AS cur_clm_uniq_id"
HEADER_COLUMNS = """
    identifier: 'STRUCT(system VARCHAR, "value" VARCHAR)[]',
    patient: 'STRUCT(reference VARCHAR)',
    type: 'STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[])',
    billablePeriod: 'STRUCT("start" DATE, "end" DATE)',
    payment: 'STRUCT(amount STRUCT("value" DECIMAL(13,2)))',
    status: 'VARCHAR'"""
PROJECTIONS = {
    "cclf1_like": (f"""
    {CLM_ID},
    patient.reference AS bene_ref,
    {CLM_TYPE},
    billablePeriod."start" AS clm_from_dt,
    billablePeriod."end" AS clm_thru_dt,
    payment.amount."value" AS clm_pmt_amt,
    list_filter(identifier, lambda x: x.system = 'https://bluebutton.cms.gov/resources/identifier/claim-group')[1].value AS clm_grp,
    status,
    provider.identifier."value" AS prvdr_npi,
    list_filter(flatten(list_transform(
        list_filter(diagnosis, lambda d: list_contains(flatten(list_transform(d.type, lambda t: list_transform(t.coding, lambda c: c.code))), 'principal')),
        lambda d: d.diagnosisCodeableConcept.coding)),
      lambda c: c.system = 'http://hl7.org/fhir/sid/icd-10-cm')[1].code AS prncpl_dgns_cd,
    len(item) AS line_count""", HEADER_COLUMNS + """,
    provider: 'STRUCT(identifier STRUCT("value" VARCHAR))',
    diagnosis: 'STRUCT(type STRUCT(coding STRUCT(code VARCHAR)[])[], diagnosisCodeableConcept STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[]))[]',
    item: 'STRUCT(sequence INTEGER)[]'"""),
    "header8": (f"""
    id,
    patient.reference AS bene_ref,
    {CLM_TYPE},
    {CLM_ID},
    billablePeriod."start" AS clm_from_dt,
    billablePeriod."end" AS clm_thru_dt,
    payment.amount."value" AS clm_pmt_amt,
    status""", """
    id: 'VARCHAR',""" + HEADER_COLUMNS),
}
select, columns = PROJECTIONS[view]
# DuckDB's time runs from its connection to the end of the COPY: the interpreter's start and
# `import duckdb` (0.2-0.3 s here) are Python's, not the engine's, and the count after is a check.
started = time.perf_counter()
con = duckdb.connect()
if threads:
    con.execute(f"SET threads = {threads}")
con.execute(f"""
COPY (
  SELECT{select}
  FROM read_json('{src}', format = 'newline_delimited', columns = {{{columns}
  }}, maximum_object_size = 268435456)
) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)
""")
seconds = time.perf_counter() - started
print(con.execute(f"SELECT count(*) FROM read_parquet('{dst}')").fetchone()[0])
print(f"{seconds:.4f}")
PY

measure() { # name, command...: prints "seconds peak_rss_kb cpu_seconds"
  local name=$1; shift
  # GNU time's wall clock has hundredths of a second, too coarse for ratios near 2 (0.37 s
  # against 0.73 s): the nanosecond clock around it gives the wall time to the millisecond
  # (GNU time's own start and exit included, the same for both tools), GNU time the peak RSS
  # and the CPU time (user and system, every thread: the whole process's).
  local start end kb user sys
  start=$(date +%s%N)
  /usr/bin/time -f "%M %U %S" -o "$WORK/time.$name" "$@" > "$WORK/out.$name" 2> "$WORK/err.$name" \
    || { cat "$WORK/err.$name" >&2; exit 1; }
  end=$(date +%s%N)
  read -r kb user sys < <(tail -1 "$WORK/time.$name")
  echo "$(awk -v ns=$((end - start)) 'BEGIN {printf "%.3f", ns / 1e9}') $kb $(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')"
}

anon() { # name, command...: prints the peak of RssAnon in KB
  # Peak RSS counts the pages of a memory-mapped input being parsed; RssAnon (sampled every
  # 20 ms by one process reading /proc) is the process's own memory, without them. Sampled in
  # runs of their own: the loop of pgrep, awk and sleep this script ran during its timed runs
  # until the seventeenth round made DuckDB's 11-column run 28% longer and claimline's 16% on
  # this 2-core VM (results/2026-12-04-throughput-round17.md).
  local name=$1; shift
  "$@" > "$WORK/out.$name" 2> "$WORK/err.$name" &
  local pid=$!
  python3 - "$pid" <<'SAMPLER' &
import sys, time
pid, peak, samples = sys.argv[1], 0, 0
while True:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        break
    if "\nState:\tZ" in status:
        break
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            peak, samples = max(peak, int(line.split()[1])), samples + 1
    time.sleep(0.02)
# A run over before its first sample has no peak to tell.
print(peak if samples else "nan")
SAMPLER
  local spid=$!
  wait "$pid" || { cat "$WORK/err.$name" >&2; exit 1; }
  wait "$spid"
}

# Each tool's command, writing to a new path (`fresh_out`).
cl_cmd() { CL=("$BIN" load "$INPUT_DIR" --views "benches/views/$VIEW.json" --format parquet
  --out "$(fresh_out claimline)" --threads "$THREADS" --json); }
dk_cmd() { DK=("$VENV/bin/python" "$WORK/duckdb_load.py" "$VIEW" "$INPUT" "$(fresh_out duckdb).parquet"
  "$THREADS"); }
declare -a CL_T CL_M CL_E DK_T DK_P DK_M CL_P CL_C DK_C
for r in $(seq 1 "$ROUNDS"); do
  cl_cmd; dk_cmd
  read -r t m c < <(measure claimline "${CL[@]}")
  CL_T+=("$t"); CL_M+=("$m"); CL_C+=("$c")
  # Where claimline's time went, from its report (`--json`): seconds per phase; and its own
  # time, from the start of the load to the end of its commit (the report's `seconds`: without
  # the process's start and exit, as DuckDB's time is without Python's).
  CL_P+=("$(python3 benches/phases.py "$WORK/out.claimline")")
  CL_E+=("$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["seconds"])' "$WORK/out.claimline")")
  # DuckDB's own time is what its script measured (second line of its output); the process's
  # (with Python's start and `import duckdb`) is kept beside it.
  read -r t m c < <(measure duckdb "${DK[@]}")
  DK_P+=("$t"); DK_M+=("$m"); DK_C+=("$c"); DK_T+=("$(sed -n 2p "$WORK/out.duckdb")")
  echo "round $r: claimline ${CL_T[-1]} s (its load ${CL_E[-1]} s, peak RSS ${CL_M[-1]} KB), duckdb ${DK_T[-1]} s (its process ${DK_P[-1]} s, peak RSS ${DK_M[-1]} KB)"
done
ROWS=$(sed -n 1p "$WORK/out.duckdb")
cl_cmd; dk_cmd
CL_A=$(anon claimline "${CL[@]}")
DK_A=$(anon duckdb "${DK[@]}")
fresh_out_clear

python3 - "$BYTES" "$EOBS" "$ROWS" "${CL_T[*]}" "${CL_M[*]}" "$CL_A" "${DK_T[*]}" "${DK_M[*]}" "$DK_A" "$VIEW" "${CL_P[*]}" "${DK_P[*]}" "${CL_E[*]}" "${CL_C[*]}" "${DK_C[*]}" <<'PY'
import sys, statistics as st
b, eobs, rows = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cl_t, cl_m, cl_a, dk_t, dk_m, dk_a = ([float(x) for x in a.split()] for a in sys.argv[4:10])
view = sys.argv[10]
dk_p = [float(x) for x in sys.argv[12].split()]
print(f"view: {view}; input: {b/1e6:.0f} MB of R4 EOB NDJSON, {eobs} EOBs ({b/eobs/1e3:.1f} KB a line); {rows} rows out")
for name, t, m, a in (("claimline", cl_t, cl_m, cl_a), ("duckdb", dk_t, dk_m, dk_a)):
    med = st.median(t)
    print(f"{name:>9}: median {med:.3f} s  {b/1e6/med:7.1f} MB/s  {eobs/med:9.0f} rows/s  peak RSS {st.median(m)/1024:.0f} MiB (anon {st.median(a)/1024:.0f} MiB, a sampled run)")
print(f"claimline / duckdb speed: {st.median(dk_t)/st.median(cl_t):.2f}x (claimline's whole process against DuckDB's connection to the end of its COPY)")
# Each round's own ratio (the two tools run seconds apart, at one speed of the VM; the medians
# above may come from its different hours): the median of those, and their range.
own = sorted(d / c for c, d in zip(cl_t, dk_t))
print(f"  the rounds' own ratios: median {st.median(own):.2f}x (from {own[0]:.2f}x to {own[-1]:.2f}x)")
cl_e = [float(x) for x in sys.argv[13].split()]
print(f"claimline's load alone (its report's seconds, start of the load to the end of its commit): median {st.median(cl_e):.3f} s; {st.median(dk_t)/st.median(cl_e):.2f}x DuckDB's, each tool's own time")
print(f"duckdb's process (Python's start, import duckdb, the COPY, the count): median {st.median(dk_p):.2f} s; against it {st.median(dk_p)/st.median(cl_t):.2f}x, as rounds 1-25 measured")
cl_c, dk_c = ([float(x) for x in a.split()] for a in sys.argv[14:16])
# CPU per GB at several SIZE_MB tells each engine's cost at the margin (a GB more): DuckDB's
# falls as its input grows (a fixed start-up; its COPY took 0.05 s for 10 MB, 0.30 s for 200 MB
# in round 37), and its process also holds Python's start and `import duckdb` (about 0.15 s of
# CPU here).
print(f"CPU (user + system, whole process, median): claimline {st.median(cl_c):.2f} s ({st.median(cl_c)/(b/1e9):.2f} s per GB), duckdb {st.median(dk_c):.2f} s ({st.median(dk_c)/(b/1e9):.2f} s per GB)")
phases = [[float(x) for x in r.split(",")] for r in sys.argv[11].split()]
names = ("setup", "scan", "claim history", "commit", "current tables")
print("claimline's phases (medians): " + ", ".join(f"{n} {st.median(c):.3f} s" for n, c in zip(names, zip(*phases))))
PY
