#!/usr/bin/env bash
# Server benchmark: rpc_server (bench/rpc_bench_server, non-blocking 16-byte
# echo on one loop) against the bare nghttp2+libevent floor
# (bench/bare_h2_server, canned response), driven by h2load, server pinned
# to CPU 0 and h2load to CPU 1.  Reports req/s, mean latency, and server
# CPU per call (utime+stime from /proc/PID/stat) as medians of REPS runs,
# peers interleaved rep by rep, and the ratio rpc/bare per scenario.  Then
# RSS with 10,000 in-flight calls (100 connections x 100 streams, each
# held until cancelled).
#
#   bench/server_bench.sh BUILD_DIR [REPS]
# Needs h2load (Debian nghttp2-client) and taskset (util-linux).
# The grpc-go / grpc C++ anchors of the issue are not built here yet.
set -euo pipefail
build=${1:?usage: server_bench.sh BUILD_DIR [REPS]}
reps=${2:-3}
bare=$build/bench/bare_h2_server
rpc=$build/bench/rpc_bench_server
for b in "$bare" "$rpc"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done
command -v h2load >/dev/null || { echo "h2load missing (nghttp2-client)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
# FanoutRequest{payload: 14 bytes} = a 16-byte message, 5-byte gRPC prefix.
printf '\x00\x00\x00\x00\x10\x1a\x0ebench-payload!' > "$tmp/req.bin"
path=/demo.v1.Demo/Fanout

wait_idle() {  # until the machine is under ~10% busy (max 30 s)
  for _ in $(seq 30); do
    read -r _ a b c d _ < /proc/stat; sleep 1
    read -r _ a2 b2 c2 d2 _ < /proc/stat
    busy=$(( (a2-a)+(b2-b)+(c2-c) )); tot=$(( busy+(d2-d) ))
    [ $(( busy*100 )) -lt $(( tot*10 )) ] && return 0
  done
  echo "(machine still busy; figures are noisy)" >&2
}

start() {  # binary -> sets PID PORT
  taskset -c 0 "$1" 0 > "$tmp/out" 2>"$tmp/err" &
  PID=$!; pids+=("$PID")
  for _ in $(seq 100); do grep -q listening "$tmp/out" && break; sleep 0.05; done
  PORT=$(awk '/listening/{print $4}' "$tmp/out")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_one() {  # name c m n -> appends "name c m rps mean_us cpu_us"
  local name=$1 c=$2 m=$3 n=$4 out t0 t1 rps mean
  t0=$(cpu_ticks "$PID")
  out=$(taskset -c 1 h2load -t 1 -n "$n" -c "$c" -m "$m" -d "$tmp/req.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$PORT$path" 2>&1)
  t1=$(cpu_ticks "$PID")
  echo "$out" | grep -q "$n succeeded" || { echo "$name: h2load failed: $out" >&2; exit 1; }
  rps=$(echo "$out" | grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)')
  mean=$(echo "$out" | awk '/time for request/{v=$6; if (v ~ /ms$/) {sub("ms","",v); v*=1000} else sub("us","",v); print v}')
  echo "$name $c $m $rps $mean $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)*1e6/hz/n}')" >> "$tmp/results"
}

scenarios=("1 1 20000" "4 32 300000" "64 1 100000")
wait_idle
for rep in $(seq "$reps"); do
  for peer in bare rpc; do
    bin=$bare; [ $peer = rpc ] && bin=$rpc
    start "$bin"
    for sc in "${scenarios[@]}"; do run_one $peer $sc; done
    stop
  done
done

median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
sel() { awk -v p="$1" -v c="$2" -v m="$3" -v f="$4" '$1==p&&$2==c&&$3==m{print $f}' "$tmp/results" | median; }
printf '\n%-6s %-6s %12s %12s %14s\n' peer 'c x m' 'req/s' 'mean us' 'CPU us/call'
for sc in "${scenarios[@]}"; do
  set -- $sc
  for peer in bare rpc; do
    printf '%-6s %-6s %12s %12s %14s\n' $peer "$1x$2" "$(sel $peer $1 $2 4)" \
      "$(sel $peer $1 $2 5)" "$(sel $peer $1 $2 6)"
  done
  awk -v a="$(sel rpc $1 $2 6)" -v b="$(sel bare $1 $2 6)" -v c="$1x$2" \
    'BEGIN{printf "       rpc/bare server CPU per call at %s: %.2fx\n", c, a/b}'
done

# Memory: 10,000 calls held open (demo.v1.Demo/Ticks stays pending until
# its context is cancelled; h2load is killed = 100 disconnects).
start "$rpc"
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
idle=$(rss "$PID")
taskset -c 1 h2load -t 1 -n 10000 -c 100 -m 100 -d "$tmp/req.bin" \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$PORT/demo.v1.Demo/Ticks" > /dev/null 2>&1 &
h2=$!; pids+=("$h2")
sleep 3
loaded=$(rss "$PID")
kill "$h2"; wait "$h2" 2>/dev/null || true
sleep 1
after=$(rss "$PID")
stop
echo
echo "RSS idle ${idle} KiB, with 10,000 in-flight calls ${loaded} KiB ($(( (loaded-idle)*1024/10000 )) bytes per call), after disconnect ${after} KiB"
cat "$tmp/out" | tail -1
