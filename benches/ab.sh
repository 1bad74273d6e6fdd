#!/usr/bin/env bash
# Two claimline binaries on the same command, rounds alternating (A B, B A, …), medians: how a
# change is measured on a shared VM whose speed drifts by 10% or more from minute to minute
# (a round of A and B runs within seconds of each other; compare within one run of this script).
#
#   benches/ab.sh A_BIN B_BIN ROUNDS -- load EXPORT --format parquet --no-report
#
# Each run gets a new `--out` (appended to the command), all removed at the end
# (benches/fresh_out.sh says why). Prints, per binary, the median wall
# time and its quartiles, the median CPU time (user + system), minor page faults and peak RSS.
# With `COLD="FILE_OR_FOLDER…"`, those inputs leave the page cache before every run
# (`benches/page_cache.py --drop`): each run reads them from disk, as a load of more claims than
# the machine's memory does.
# Needs: GNU time, GNU date (`%N`), python3.
set -euo pipefail
[ $# -ge 4 ] && [ "$4" = "--" ] || {
  echo "usage: $0 A_BIN B_BIN ROUNDS -- COMMAND ARGS…" >&2
  exit 2
}
A=$1 B=$2 ROUNDS=$3
shift 4
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
. "$(dirname "$0")/fresh_out.sh"
for round in $(seq "$ROUNDS"); do
  # A B, then B A: neither binary always runs first.
  order="A B"
  [ $((round % 2)) -eq 0 ] && order="B A"
  for name in $order; do
    bin=${!name}
    out=$(fresh_out "$name")
    # Word splitting of COLD is wanted: it lists paths.
    # shellcheck disable=SC2086
    [ -z "${COLD:-}" ] || python3 "$(dirname "$0")/page_cache.py" --drop $COLD
    # GNU time's wall clock has hundredths of a second; the nanosecond clock around it gives
    # the wall time to the millisecond (GNU time's own start and exit included, the same for A
    # and B).
    start=$(date +%s%N)
    /usr/bin/time -o "$WORK/time" -f "%U %S %R %M" "$bin" "$@" --out "$out" \
      >/dev/null 2>"$WORK/stderr" || { cat "$WORK/stderr" >&2; exit 1; }
    end=$(date +%s%N)
    echo "$name $(( (end - start) / 1000 )) $(tail -1 "$WORK/time")" >> "$WORK/times"
  done
done
python3 - "$WORK/times" "$A" "$B" <<'EOF'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1]) if l[:2] in ("A ", "B ")]
for name, label in (("A", sys.argv[2]), ("B", sys.argv[3])):
    r = [list(map(float, x[1:])) for x in rows if x[0] == name]
    wall = [x[0] / 1e6 for x in r]
    q1, q2, q3 = st.quantiles(wall, n=4, method="inclusive") if len(wall) > 1 else wall * 3
    print(f"{name} {label}: wall {q2:.3f} s (quartiles {q1:.3f}–{q3:.3f}), "
          f"CPU {st.median(x[1] + x[2] for x in r):.2f} s, minor faults {st.median(x[3] for x in r):.0f}, "
          f"peak RSS {st.median(x[4] for x in r) / 1024:.0f} MiB ({len(r)} runs)")
EOF
