#!/usr/bin/env bash
# Merges the corpus a fuzzing run grew into fuzz/corpus/TARGET.  Keeps the
# hand-made inputs (every file not named by libFuzzer's 40-hex-digit hash:
# seed-* from fuzz/gen_seeds.py, the older named ones), adds the inputs that reach
# edges they do not (edges only: no hit-count buckets, no comparison
# features, so the committed corpus stays small), and leaves out any input
# that fails the replay under a gcc ASan+UBSan build -- ctest replays the
# corpus there, so a crasher would fail the suite: it is printed, and
# belongs in fuzz/crashers/ once understood.
# Usage: fuzz/merge.sh TARGET GROWN_DIR [ASAN_BUILD (default build/test-asan)]
set -euo pipefail
cd "$(dirname "$0")/.."
t=$1
grown=$2
asan=${3:-build/test-asan}
bin=build/fuzz/fuzz/fuzz_$t
replay=$asan/fuzz/fuzz_replay_$t
[ -x "$bin" ] || { echo "no $bin: build the fuzz tree first" >&2; exit 2; }
[ -x "$replay" ] || { echo "no $replay: build $asan (CTX_ASAN=ON) first" >&2; exit 2; }
extra=()
case $t in server_h2|client_response) extra=(-max_len=8192) ;; esac
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
hashed() { [[ $(basename "$1") =~ ^[0-9a-f]{40}$ ]]; }
for f in fuzz/corpus/"$t"/*; do hashed "$f" || cp "$f" "$out"/; done
UBSAN_OPTIONS=halt_on_error=1:suppressions=$PWD/fuzz/ubsan.supp \
  nice -n 10 "$bin" -merge=1 -use_counters=0 -use_cmp=0 -use_value_profile=0 \
  "${extra[@]}" "$out" fuzz/corpus/"$t" "$grown" 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new' || true
for f in "$out"/*; do
  hashed "$f" || continue
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$replay" "$f" > "$out.log" 2>&1; then
    echo "left out (fails the ASan replay): $f" >&2
    grep -m3 -E 'ERROR|runtime error|fuzz_' "$out.log" >&2 || true
    cp "$f" "$grown/../failing-$(basename "$f")" 2>/dev/null || true
    rm -f "$f"
  fi
done
rm -f "$out.log"
for f in fuzz/corpus/"$t"/*; do hashed "$f" && rm -f "$f"; done
for f in "$out"/*; do hashed "$f" && cp "$f" fuzz/corpus/"$t"/; done
n=$(ls fuzz/corpus/"$t" | wc -l)
h=$(ls fuzz/corpus/"$t" | grep -cE '^[0-9a-f]{40}$' || true)
echo "$t: $n files ($((n - h)) hand-made, $h from fuzzing)"
