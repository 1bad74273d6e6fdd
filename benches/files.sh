#!/usr/bin/env bash
# A load of an export split into many files, as BCDA splits a big one (the README's
# 30,000-beneficiary export: some 600 EOB files): the synthetic export's EOB lines dealt into
# FILES files (`split -n l/FILES`), loaded with a manifest naming them (as `claimline fetch`
# writes one: each file's version is then checked on its first 256 KiB) and without one (each
# file's version found from its first MiB), against the export in its own few files. Every
# table → Parquet, rounds alternating, medians of the load's time and of its setup phase (its
# `--json` report: discovery, the version samples, the views, the sinks opened).
#
#   benches/files.sh                   # 60 beneficiaries × 7 years, 200 files, 5 rounds
#   FILES=600 ROUNDS=3 benches/files.sh
#   BIN=/path/to/another/claimline benches/files.sh   # another build, same inputs
#
# Needs: cargo, python3, GNU split.
set -euo pipefail
cd "$(dirname "$0")/.."

BENES=${BENES:-60}
FILES=${FILES:-200}
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-target/bench-files}
mkdir -p "$WORK"
# Every load writes a new folder; they go once the timed runs are over (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

cargo build --release -q -p claimline --bin claimline
BIN=${BIN:-target/release/claimline}

EXPORT="$WORK/export-v2-$BENES"
[ -d "$EXPORT" ] || "$BIN" synth --benes "$BENES" --years 7 --seed 7 --out "$EXPORT" >/dev/null
SPLIT="$WORK/split-$BENES-$FILES"
WITH_MANIFEST="$WORK/split-$BENES-$FILES-manifest"
if [ ! -d "$WITH_MANIFEST" ]; then
  rm -rf "$SPLIT"
  mkdir -p "$SPLIT"
  cp "$EXPORT"/Patient.*.ndjson "$EXPORT"/Coverage.*.ndjson "$SPLIT"/
  cat "$EXPORT"/ExplanationOfBenefit.*.ndjson > "$WORK/eobs.ndjson"
  digits=$(( ${#FILES} > 3 ? ${#FILES} : 3 ))
  (cd "$SPLIT" && split -n "l/$FILES" -d -a "$digits" --additional-suffix=.ndjson \
    ../eobs.ndjson ExplanationOfBenefit.)
  rm "$WORK/eobs.ndjson"
  mkdir -p "$WORK/tmp-manifest"
  ln "$SPLIT"/*.ndjson "$WORK/tmp-manifest"/
  # The export's manifest, its output listing the new files.
  python3 - "$EXPORT/manifest.json" "$WORK/tmp-manifest" <<'PY'
import json, os, sys
manifest, folder = sys.argv[1], sys.argv[2]
with open(manifest) as f:
    m = json.load(f)
base = m["output"][0]["url"].rsplit("/", 1)[0]
m["output"] = [
    {"type": name.split(".")[0], "url": f"{base}/{name}"}
    for name in sorted(os.listdir(folder))
    if name.endswith(".ndjson")
]
with open(os.path.join(folder, "manifest.json"), "w") as f:
    json.dump(m, f)
PY
  mv "$WORK/tmp-manifest" "$WITH_MANIFEST"
fi
# Every input read once from disk, whatever wrote it (see benches/page_cache.py).
python3 benches/page_cache.py "$EXPORT" "$SPLIT" >/dev/null
in_files() { find "$1" -name '*.ndjson' | wc -l; }

declare -A S SETUP
for r in $(seq 1 "$ROUNDS"); do
  for name in export split manifest; do
    case $name in
      export) input=$EXPORT ;;
      split) input=$SPLIT ;;
      manifest) input=$WITH_MANIFEST ;;
    esac
    "$BIN" load "$input" --out "$(fresh_out "$name")" --format parquet --no-report --json \
      > "$WORK/report.json"
    read -r s setup < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["seconds"], d["phases"]["setup"])' "$WORK/report.json")
    S[$name]+="$s "
    SETUP[$name]+="$setup "
  done
  echo "round $r done" >&2
done
fresh_out_clear

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "%.3f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "every CCLF table → Parquet, $ROUNDS rounds alternating, medians (s):"
echo "| input | files | load | setup |"
echo "|---|---|---|---|"
echo "| the export ($BENES beneficiaries, a manifest) | $(in_files "$EXPORT") | $(echo "${S[export]}" | median) | $(echo "${SETUP[export]}" | median) |"
echo "| its EOB lines in $FILES files, no manifest | $(in_files "$SPLIT") | $(echo "${S[split]}" | median) | $(echo "${SETUP[split]}" | median) |"
echo "| the same files and a manifest | $(in_files "$WITH_MANIFEST") | $(echo "${S[manifest]}" | median) | $(echo "${SETUP[manifest]}" | median) |"
