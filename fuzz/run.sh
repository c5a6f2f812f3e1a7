#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS on a working copy of its committed
# corpus (nice'd), going on after a crash (each crash is kept under
# WORKDIR/TARGET/artifacts/), and prints one summary line: the coverage
# (cov: PCs, ft: features) at the end, executions and execs/s over the
# whole run, crashes.  Needs the fuzz build (README "Fuzzing").
# Usage: fuzz/run.sh TARGET SECONDS [WORKDIR (default build/fuzz/runs)]
set -euo pipefail
cd "$(dirname "$0")/.."
t=$1
secs=$2
work=${3:-build/fuzz/runs}
bin=build/fuzz/fuzz/fuzz_$t
[ -x "$bin" ] || { echo "no $bin: build the fuzz tree first" >&2; exit 2; }
dir=$work/$t
mkdir -p "$dir/corpus" "$dir/artifacts"
cp -n fuzz/corpus/"$t"/* "$dir/corpus/" 2>/dev/null || true
: > "$dir/log"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/fuzz/ubsan.supp
export ASAN_OPTIONS=detect_leaks=1
extra=()
case $t in server_h2|client_response) extra=(-max_len=8192) ;; esac
start=$(date +%s)
runs=0
crashes=0
while :; do
  left=$((start + secs - $(date +%s)))
  [ "$left" -gt 0 ] || break
  rc=0
  nice -n 10 "$bin" -max_total_time="$left" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${extra[@]}" \
    "$dir/corpus" > "$dir/segment" 2>&1 || rc=$?
  # The server logs bad input (rate-limited); keep the fuzzer's lines.
  grep -v '^rpc_server: ' "$dir/segment" >> "$dir/log" || true
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/segment" | tail -1)
  [ -n "$n" ] || n=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$dir/segment" | tail -1)
  runs=$((runs + ${n:-0}))
  [ "$rc" -eq 0 ] || crashes=$((crashes + 1))
  [ "$crashes" -lt 20 ] || break
done
elapsed=$(($(date +%s) - start))
# Coverage of the final corpus: one pass over it.
nice -n 10 "$bin" -runs=0 "${extra[@]}" "$dir/corpus" > "$dir/final" 2>&1 || true
cov=$(grep -o 'INITED cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$dir/final" | tail -1)
echo "$t: ${cov#INITED } runs: $runs in ${elapsed}s exec/s: $((runs / (elapsed > 0 ? elapsed : 1))) crashes: $crashes ($(date -u +%F))"
