#!/usr/bin/env bash
# A profile-guided build of claimline (PGO): the same code, laid out and inlined by the compiler
# from counts of what a load does most, not from its guesses. Three steps:
#   1. a release build that counts (`-Cprofile-generate`) into $WORK/gen;
#   2. training runs with it on synthetic exports it writes itself (`claimline synth`, seeds and
#      sizes none of the benchmarks use): every table of a v1, a v2 and a v3 export into Parquet
#      and SQLite, a second load into the same output (a claim history against an earlier run),
#      a gzip export, the `header8` and one-column views, `scan`;
#   3. the counts merged (`llvm-profdata`, from rustup's `llvm-tools` component, added here when
#      missing) and a release build that uses them (`-Cprofile-use`) into $WORK/use.
# The binary is $WORK/use/release/claimline; its path is the last line printed. The benchmarks
# take it as BIN:
#
#   benches/pgo.sh
#   BIN=target/pgo/use/release/claimline ROUNDS=7 VIEW=header8 benches/load.sh
#   BIN=target/pgo/use/release/claimline ROUNDS=7 benches/throughput.sh
#
# Each build is a whole release build of its own (its own target folder: RUSTFLAGS differ),
# about seven minutes each on 2 cores; the training takes seconds. RUSTFLAGS already set are
# kept, the profile's flag added to them. Nothing of it is needed to build, test or use
# claimline: `cargo build --release` stays the way to build it.
#
# Needs: cargo, rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-target/pgo}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
COUNTS="$WORK/counts"
DATA="$WORK/training"

SYSROOT=$(rustc --print sysroot)
HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA="$SYSROOT/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
  rustup component add llvm-tools >&2
fi

# 1. The build that counts.
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$COUNTS" CARGO_TARGET_DIR="$WORK/gen" \
  cargo build --release -q -p claimline --bin claimline
GEN="$WORK/gen/release/claimline"

# 2. Training. The data stays for the next time; the counts do not.
rm -rf "$COUNTS"
mkdir -p "$DATA"
for v in v1 v2 v3; do
  # v2, the version most exports are now, weighs most: about 230 MB of EOBs, v1 and v3 about 115.
  benes=12
  [ "$v" = v2 ] && benes=24
  [ -f "$DATA/export-$v/manifest.json" ] || {
    rm -rf "$DATA/export-$v"
    "$GEN" synth --benes "$benes" --years 7 --version "$v" --seed 3 \
      --out "$DATA/export-$v" >/dev/null
  }
done
[ -f "$DATA/export-gz/manifest.json" ] || {
  rm -rf "$DATA/export-gz"
  "$GEN" synth --benes 8 --years 7 --seed 4 --gzip --out "$DATA/export-gz" >/dev/null
}
# (A counting build writes its counts as it exits: see `exit_without_clean_up`.)
export LLVM_PROFILE_FILE="$COUNTS/%m_%p.profraw"
load() {
  rm -rf "$DATA/out"
  "$GEN" load "$@" --out "$DATA/out" --no-report >/dev/null
}
for v in v1 v2 v3; do
  load "$DATA/export-$v" --format both
done
load "$DATA/export-gz" --format parquet
load "$DATA/export-v2" --format sqlite
load "$DATA/export-v2" --format parquet --views benches/views/header8.json
load "$DATA/export-v2" --format parquet --views benches/views/id_only.json --all-versions
# A second run into the same output: the claim history against an earlier run, `current/`
# rebuilt in part, SQLite's merge.
rm -rf "$DATA/out2"
"$GEN" load "$DATA/export-v2" --out "$DATA/out2" --format both --no-report >/dev/null
"$GEN" load "$DATA/export-v2" --out "$DATA/out2" --format both --no-report >/dev/null
"$GEN" scan "$DATA/export-v2" >/dev/null
"$GEN" scan "$DATA/export-gz" >/dev/null
unset LLVM_PROFILE_FILE
rm -rf "$DATA/out" "$DATA/out2"

# 3. The counts merged, and the build that uses them.
"$PROFDATA" merge -o "$WORK/claimline.profdata" "$COUNTS"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$WORK/claimline.profdata" CARGO_TARGET_DIR="$WORK/use" \
  cargo build --release -q -p claimline --bin claimline
echo "$WORK/use/release/claimline"
