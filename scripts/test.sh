#!/usr/bin/env bash
# Runs every test: the whole suite plain, the whole suite under
# ASan+UBSan, and the threaded tests (label "tsan") under ThreadSanitizer.
# Installs missing Debian packages first.  Usage: scripts/test.sh [plain|asan|tsan]...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(plain asan tsan)
werror=ON
rc=0
for mode in "${modes[@]}"; do
  dir=build/test-$mode
  flags=(-DCTX_WERROR=$werror -DCTX_BUILD_BENCH=ON)
  ctest_args=(--output-on-failure -j "$jobs")
  case "$mode" in
    plain) ;;
    asan)  flags+=(-DCTX_ASAN=ON) ;;
    tsan)  flags+=(-DCTX_TSAN=ON); ctest_args+=(-L tsan) ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "==== $mode build" >&2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
  echo "==== $mode tests" >&2
  # TSan needs the old mmap layout on kernels with high ASLR entropy.
  runner=()
  [ "$mode" = tsan ] && command -v setarch >/dev/null && runner=(setarch "$(uname -m)" -R)
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
       "${runner[@]}" ctest --test-dir "$dir" "${ctest_args[@]}"; then
    rc=1
  fi
done
total_fail=$rc
if [ $total_fail -eq 0 ]; then echo "all test modes passed: ${modes[*]}"; fi
exit $total_fail
