#!/usr/bin/env bash
# Server benchmark: rpc_server (bench/rpc_bench_server, 16-byte echo on one
# loop: non-blocking "rpc", and blocking -- the path users write -- with the
# server's default pool "rpcblk" and with 2/64/256 workers "blk2",
# "blk64", "blk256"; interop_server's EmptyCall in its default
# configuration "interop"; with BASELINE_BUILD=DIR also that build's
# non-blocking and blocking echo "base"/"baseblk", for an A/B of two
# builds in one run) against the bare nghttp2+libevent floor
# (bench/bare_h2_server, canned response) and, when built with
# bench/peers/build_peers.sh BUILD_DIR/bench/peers, the grpc-go 1.33
# (GOMAXPROCS=1) and grpc C++ 1.51 callback/sync anchors -- all serving
# demo.v1.Demo/Fanout -- driven by h2load, server pinned to CPU 0 and h2load
# to CPU 1.  Reports req/s, latency (1x1: p50/p99 from h2load's log;
# others: mean), and server CPU per call (utime+stime from /proc/PID/stat)
# as medians of REPS runs, peers interleaved rep by rep, and each peer's
# CPU per call as a ratio to the bare floor.  Then RSS with 10,000
# in-flight calls (100 connections x 100 streams, each held until
# cancelled).
#
#   bench/server_bench.sh BUILD_DIR [REPS]
# Needs h2load and nghttp (Debian nghttp2-client), taskset (util-linux).
set -euo pipefail
build=${1:?usage: server_bench.sh BUILD_DIR [REPS]}
reps=${2:-3}
bare=$build/bench/bare_h2_server
rpc=$build/bench/rpc_bench_server
for b in "$bare" "$rpc"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done
interop=$build/server/interop_server
peers=(bare rpc rpcblk blk2 blk64 blk256 interop)
[ -n "${BASELINE_BUILD:-}" ] && peers+=(base baseblk)

pdir=$build/bench/peers
[ -x "$pdir/go_echo" ] && peers+=(go)
[ -x "$pdir/cpp_echo" ] && peers+=(cppcb cppsync)
# PEERS="bare rpc ..." measures only those.
[ -n "${PEERS:-}" ] && read -r -a peers <<< "$PEERS"
peer_cmd() {
  case $1 in
    bare) echo "$bare 0" ;;
    rpc) echo "$rpc 0" ;;
    rpcblk) echo "$rpc 0 1 blocking 0" ;;
    blk2) echo "$rpc 0 1 blocking 2" ;;
    blk64) echo "$rpc 0 1 blocking 64" ;;
    blk256) echo "$rpc 0 1 blocking 256" ;;
    interop) echo "$interop --port=0" ;;
    base) echo "$BASELINE_BUILD/bench/rpc_bench_server 0" ;;
    baseblk) echo "$BASELINE_BUILD/bench/rpc_bench_server 0 1 blocking 0" ;;
    go) echo "env GOMAXPROCS=1 $pdir/go_echo 0" ;;
    cppcb) echo "$pdir/cpp_echo 0 callback" ;;
    cppsync) echo "$pdir/cpp_echo 0 sync" ;;
  esac
}
command -v h2load >/dev/null || { echo "h2load missing (nghttp2-client)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
# FanoutRequest{payload: 14 bytes} = a 16-byte message, 5-byte gRPC prefix.
printf '\x00\x00\x00\x00\x10\x1a\x0ebench-payload!' > "$tmp/req.bin"
printf '\x00\x00\x00\x00\x00' > "$tmp/empty.bin"
path=/demo.v1.Demo/Fanout
# interop_server is measured on grpc.testing.TestService/EmptyCall.
peer_path() { [ "$1" = interop ] && echo /grpc.testing.TestService/EmptyCall || echo "$path"; }
peer_req() { [ "$1" = interop ] && echo "$tmp/empty.bin" || echo "$tmp/req.bin"; }

wait_idle() {  # until the machine is under ~10% busy (max 30 s)
  for _ in $(seq 30); do
    read -r _ a b c d _ < /proc/stat; sleep 1
    read -r _ a2 b2 c2 d2 _ < /proc/stat
    busy=$(( (a2-a)+(b2-b)+(c2-c) )); tot=$(( busy+(d2-d) ))
    [ $(( busy*100 )) -lt $(( tot*10 )) ] && return 0
  done
  echo "(machine still busy; figures are noisy)" >&2
}

start() {  # command... -> sets PID PORT
  taskset -c 0 "$@" > "$tmp/out" 2>"$tmp/err" &
  PID=$!; pids+=("$PID")
  for _ in $(seq 100); do grep -q listening "$tmp/out" && break; sleep 0.05; done
  PORT=$(awk '/listening/{print $4}' "$tmp/out")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

check_grpc() {  # the peer really answers grpc-status 0 (h2load only sees :status)
  nghttp -v -d "$(peer_req "$1")" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$PORT$(peer_path "$1")" 2>&1 | grep -aq 'grpc-status: 0' \
    || { echo "$1 does not answer grpc-status 0" >&2; exit 1; }
}

run_one() {  # name c m n -> appends "name c m rps lat cpu_us p99"
  local name=$1 c=$2 m=$3 n=$4 out t0 t1 rps lat p99=- log=()
  [ "$c$m" = 11 ] && log=(--log-file="$tmp/log")
  t0=$(cpu_ticks "$PID")
  out=$(taskset -c 1 h2load -t 1 -n "$n" -c "$c" -m "$m" -d "$(peer_req "$name")" "${log[@]}" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$PORT$(peer_path "$name")" 2>&1)
  t1=$(cpu_ticks "$PID")
  echo "$out" | grep -q "$n succeeded" || { echo "$name: h2load failed: $out" >&2; exit 1; }
  rps=$(echo "$out" | grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)')
  lat=$(echo "$out" | awk '/time for request/{v=$6; if (v ~ /ms$/) {sub("ms","",v); v*=1000} else sub("us","",v); print v}')
  if [ ${#log[@]} -gt 0 ]; then
    read -r lat p99 < <(awk '{print $3}' "$tmp/log" | sort -n |
      awk '{v[NR]=$1} END{print v[int(NR*0.5)], v[int(NR*0.99)]}')
  fi
  echo "$name $c $m $rps $lat $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)*1e6/hz/n}') $p99" >> "$tmp/results"
}

scenarios=("1 1 20000" "4 32 300000" "64 1 100000")
wait_idle
for rep in $(seq "$reps"); do
  for peer in "${peers[@]}"; do
    # shellcheck disable=SC2046
    start $(peer_cmd $peer)
    [ "$rep" = 1 ] && check_grpc $peer
    for sc in "${scenarios[@]}"; do run_one $peer $sc; done
    stop
  done
done

# Starvation: the blocking echo with the default pool (32 initial
# workers), unary p99 at 1x1 alone and while 64 long-lived blocking
# streams (Ticks held open, 2x the initial pool) occupy workers.
for rep in $(seq "$reps"); do
  start "$rpc" 0 1 blocking 0
  run_one starve-alone 1 1 20000
  taskset -c 1 h2load -t 1 -n 64 -c 1 -m 64 -d "$tmp/req.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$PORT/demo.v1.Demo/Ticks" > /dev/null 2>&1 &
  hold=$!; pids+=("$hold")
  sleep 1 # let the 64 streams reach their handlers (a pace, not a sync)
  run_one starve-64streams 1 1 20000
  kill "$hold"; wait "$hold" 2>/dev/null || true
  stop
done

median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
sel() { awk -v p="$1" -v c="$2" -v m="$3" -v f="$4" '$1==p&&$2==c&&$3==m{print $f}' "$tmp/results" | median; }
printf '\n%-8s %-6s %11s %16s %12s %10s\n' peer 'c x m' 'req/s' 'latency us' 'CPU us/call' 'vs bare'
for sc in "${scenarios[@]}"; do
  set -- $sc
  for peer in "${peers[@]}"; do
    lat=$(sel $peer $1 $2 5)
    [ "$1$2" = 11 ] && lat="$lat / $(sel $peer $1 $2 7)" || lat="$lat (mean)"
    printf '%-8s %-6s %11s %16s %12s %9sx\n' $peer "$1x$2" "$(sel $peer $1 $2 4)" \
      "$lat" "$(sel $peer $1 $2 6)" \
      "$(awk -v a="$(sel $peer $1 $2 6)" -v b="$(sel bare $1 $2 6)" 'BEGIN{printf "%.2f", a/b}')"
  done
done
echo "(1x1 latency: p50 / p99 from h2load --log-file; grpc-go runs with GOMAXPROCS=1)"
echo
echo "starvation (blocking echo, default pool; unary 1x1):"
for name in starve-alone starve-64streams; do
  printf '  %-18s p50 %s us  p99 %s us\n' "$name" "$(sel $name 1 1 5)" "$(sel $name 1 1 7)"
done

# Memory: 10,000 calls held open (demo.v1.Demo/Ticks stays pending until
# its context is cancelled; h2load is killed = 100 disconnects).
start "$rpc" 0
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
