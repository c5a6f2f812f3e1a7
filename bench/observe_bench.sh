#!/usr/bin/env bash
# The cost of observability (issue 12): server CPU per call with metrics,
# the access log and /ctxz on vs off, as a ratio in one run.
#
#   bench/observe_bench.sh BUILD_DIR [REPS]
#
# bench/observe_bench_server (the non-blocking 16-byte echo on one loop,
# pinned to CPU 0) is driven by h2load (CPU 1) at 1x1 and 4x32
# (connections x streams).  "metrics" = rpc_server_enable_admin alone; "on" = rpc_server_enable_admin (per-method
# counters and histograms, the live-call registry) + the access log to a
# file in a temp dir + a reader loading /ctxz and /metrics every 100 ms
# during the run (its CPU is the server's admin thread, counted).  Modes
# are interleaved rep by rep; the table shows medians of REPS runs and
# on/off.  Goal: <= 1.10.  Needs h2load (nghttp2-client), taskset, curl.
set -euo pipefail
build=${1:?usage: observe_bench.sh BUILD_DIR [REPS]}
reps=${2:-3}
srv=$build/bench/observe_bench_server
[ -x "$srv" ] || { echo "missing $srv (cmake -DCTX_BUILD_BENCH=ON)" >&2; exit 1; }
for t in h2load taskset curl; do
  command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
printf '\x00\x00\x00\x00\x10\x1a\x0ebench-payload!' > "$tmp/req.bin"
path=/demo.v1.Demo/Fanout
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

start() { # mode -> PID PORT ADMIN
  : > "$tmp/out"
  taskset -c 0 "$srv" 0 "$1" "$tmp/access.jsonl" > "$tmp/out" 2>"$tmp/err" &
  PID=$!; pids+=("$PID")
  for _ in $(seq 100); do grep -q listening "$tmp/out" && break; sleep 0.05; done
  PORT=$(awk '/listening/{print $4}' "$tmp/out")
  ADMIN=$(awk '/admin on/{print $4}' "$tmp/out")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

run_one() { # mode c m n
  local mode=$1 c=$2 m=$3 n=$4 t0 t1 out reader=""
  if [ "$mode" != off ]; then
    ( while :; do curl -s "http://127.0.0.1:$ADMIN/ctxz" >/dev/null
                   curl -s "http://127.0.0.1:$ADMIN/metrics" >/dev/null; sleep 0.1; done ) &
    reader=$!; pids+=("$reader")
  fi
  t0=$(cpu_ticks "$PID")
  out=$(taskset -c 1 h2load -t 1 -n "$n" -c "$c" -m "$m" -d "$tmp/req.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$PORT$path" 2>&1)
  t1=$(cpu_ticks "$PID")
  [ -n "$reader" ] && { kill "$reader"; wait "$reader" 2>/dev/null || true; }
  echo "$out" | grep -q "$n succeeded" || { echo "h2load failed: $out" >&2; exit 1; }
  rps=$(echo "$out" | grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)')
  echo "$mode $c $m $rps $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" 'BEGIN{printf "%.3f", (b-a)*1e6/hz/n}')" >> "$tmp/results"
}

scenarios=("1 1 20000" "4 32 300000")
for rep in $(seq "$reps"); do
  for mode in off metrics on; do
    start $mode
    for sc in "${scenarios[@]}"; do run_one $mode $sc; done
    stop
  done
done
lines=$(wc -l < "$tmp/access.jsonl")
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
sel() { awk -v p="$1" -v c="$2" -v m="$3" -v f="$4" '$1==p&&$2==c&&$3==m{print $f}' "$tmp/results" | median; }
printf '%-6s %-8s %11s %13s %7s\n' 'c x m' mode 'req/s' 'CPU us/call' 'vs off'
for sc in "${scenarios[@]}"; do
  set -- $sc
  off=$(sel off $1 $2 5)
  for mode in off metrics on; do
    printf '%-6s %-8s %11s %13s %7s\n' "$1x$2" $mode "$(sel $mode $1 $2 4)" "$(sel $mode $1 $2 5)" \
      "$(awk -v a="$(sel $mode $1 $2 5)" -v b="$off" 'BEGIN{printf "%.3f", a/b}')"
  done
done
echo "(access log: $lines lines written; medians of $reps runs; CPU = server utime+stime / calls)"
